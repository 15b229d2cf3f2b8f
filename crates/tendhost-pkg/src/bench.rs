//! The parser bench's core, sized by its caller: `benches/parsers.rs` runs it at full size
//! (`cargo bench -p tendhost-pkg --bench parsers`), the unit test below at a tiny one so CI
//! notices when the bench breaks. Every parser of host output (`parse::every::PARSERS`) on
//! generated inputs (random bytes and lines built from tokens of real output, fixed seed),
//! against a baseline measured in the same run on the same inputs: a trivial line split. Then
//! each parser on two sizes of generated lines (mixed listings; our installed listing for the
//! parsers of two listings), whose time ratio shows it is linear. [`Report`] prints as Markdown.
//!
//! Not used by the daemon; no timing is asserted anywhere.

use std::fmt;
use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::parse::every::PARSERS;

/// How much the bench does.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// Inputs each parser parses (cycling over `distinct` ones).
    pub cases: usize,
    /// Distinct generated inputs.
    pub distinct: usize,
    /// Lines of the smaller and the larger listing.
    pub small_lines: usize,
    pub large_lines: usize,
}

impl Sizes {
    /// What `cargo bench` runs: 1,000,000 cases, listings of 100k and 1M lines.
    pub const FULL: Sizes = Sizes {
        cases: 1_000_000,
        distinct: 4_096,
        small_lines: 100_000,
        large_lines: 1_000_000,
    };
}

const TOKENS: &[&str] = &[
    "Inst ",
    "Conf ",
    "(",
    ")",
    "[",
    "]",
    "\t",
    " ",
    "ii ",
    "noarch",
    ".x86_64",
    "-1.0-1",
    ":",
    "=",
    "\"",
    "==> ",
    " <==",
    "{\"",
    "}",
    "1e300",
    "-1",
    "NaN",
    "18446744073709551615",
    "E: Could not get lock ",
    "Error: ",
    "pkg",
    "1.0",
    "amd64",
    "\n",
    "\n",
    "\n",
    "é",
    "\u{0}",
];

/// xorshift64*: a fixed-seed generator, so every run parses the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap_or(u64::MAX)).unwrap_or(0)
    }
}

fn generate(rng: &mut Rng) -> String {
    if rng.below(4) == 0 {
        let bytes: Vec<u8> = (0..rng.below(256))
            .map(|_| u8::try_from(rng.next() & 0xff).unwrap_or(0))
            .collect();
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    (0..rng.below(64))
        .map(|_| TOKENS[rng.below(TOKENS.len())])
        .collect()
}

/// Which generated listing a parser gets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Listing {
    Mixed,
    /// Our installed-package listing, which the parsers of two listings need whole (a bad
    /// line ends `parse_installed` at once).
    InstalledOnly,
}

/// `n` lines of `listing`.
fn lines(n: usize, listing: Listing) -> String {
    let mut rng = Rng(7);
    let mut text = String::new();
    for i in 0..n {
        let kind = match listing {
            Listing::InstalledOnly => 0,
            Listing::Mixed => rng.below(3),
        };
        match kind {
            0 => text.push_str(&format!("ii \tpkg{i}\tamd64\t1.{i}-1\n")),
            1 => text.push_str(&format!("Inst pkg{i} [1.0] (1.{i} repo [amd64])\n")),
            _ => text.push_str(&format!("pkg{i}.noarch 1.{i}-1 repo\n")),
        }
    }
    text
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
}

fn baseline(text: &str) -> usize {
    text.split('\n').count()
}

/// One parser's figures and what it returned on the two listings.
#[derive(Debug)]
pub struct Row {
    pub name: &'static str,
    /// All `cases` generated inputs.
    pub elapsed: Duration,
    pub small: Duration,
    pub large: Duration,
    /// The parser's result (`fn(&str) -> usize`) on the smaller and the larger listing.
    pub found_small: usize,
    pub found_large: usize,
}

/// Everything one run measured.
#[derive(Debug)]
pub struct Report {
    pub sizes: Sizes,
    /// Average bytes of a distinct input.
    pub input_bytes: usize,
    /// The line split over all cases.
    pub baseline: Duration,
    /// One per parser of `PARSERS`, in its order.
    pub rows: Vec<Row>,
}

/// Runs the bench at `sizes`.
pub fn run(sizes: Sizes) -> Report {
    let distinct = sizes.distinct.max(1);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let inputs: Vec<String> = (0..distinct).map(|_| generate(&mut rng)).collect();
    let input_bytes: usize = inputs.iter().map(String::len).sum::<usize>() / distinct;
    let every_case = |parse: fn(&str) -> usize| {
        time(|| {
            for i in 0..sizes.cases {
                black_box(parse(black_box(&inputs[i % distinct])));
            }
        })
        .0
    };
    let baseline = every_case(baseline);
    let mixed = (
        lines(sizes.small_lines, Listing::Mixed),
        lines(sizes.large_lines, Listing::Mixed),
    );
    let installed = (
        lines(sizes.small_lines, Listing::InstalledOnly),
        lines(sizes.large_lines, Listing::InstalledOnly),
    );
    let rows = PARSERS
        .iter()
        .map(|(name, parse)| {
            let elapsed = every_case(*parse);
            let two_listings = name.starts_with("installed::")
                || *name == "job::upgraded_packages"
                || *name == "job::unfinished_packages";
            let (small, large) = if two_listings { &installed } else { &mixed };
            let (t_small, found_small) = time(|| black_box(parse(black_box(small))));
            let (t_large, found_large) = time(|| black_box(parse(black_box(large))));
            Row {
                name,
                elapsed,
                small: t_small,
                large: t_large,
                found_small,
                found_large,
            }
        })
        .collect();
    Report {
        sizes,
        input_bytes,
        baseline,
        rows,
    }
}

impl Report {
    fn ns_per_case(&self, total: Duration) -> f64 {
        let cases = u32::try_from(self.sizes.cases.max(1)).unwrap_or(u32::MAX);
        total.as_secs_f64() * 1e9 / f64::from(cases)
    }
}

/// A listing size as the table's header names it: `100k`, `1M`, `20`.
fn lines_label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (small, large) = (
            lines_label(self.sizes.small_lines),
            lines_label(self.sizes.large_lines),
        );
        writeln!(
            f,
            "{} cases per parser, {} distinct inputs of {} bytes on average",
            self.sizes.cases, self.sizes.distinct, self.input_bytes
        )?;
        writeln!(
            f,
            "baseline (line split): {:.1} ns/case\n",
            self.ns_per_case(self.baseline)
        )?;
        writeln!(
            f,
            "| parser | ns/case | × baseline | {small} lines | {large} lines | {large} / {small} |"
        )?;
        writeln!(f, "| --- | ---: | ---: | ---: | ---: | ---: |")?;
        for row in &self.rows {
            writeln!(
                f,
                "| `{}` | {:.1} | {:.1} | {} ms | {} ms | {:.1} |",
                row.name,
                self.ns_per_case(row.elapsed),
                row.elapsed.as_secs_f64() / self.baseline.as_secs_f64().max(1e-9),
                row.small.as_millis(),
                row.large.as_millis(),
                row.large.as_secs_f64() / row.small.as_secs_f64().max(1e-9),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::bench::{Sizes, run};
    use crate::parse::every::PARSERS;

    /// The smoke of `benches/parsers.rs` that CI runs: the same code at a tiny size. Checks
    /// what the parsers returned, never how fast.
    #[test]
    fn smoke_parsers_bench() {
        let report = run(Sizes {
            cases: 2_000,
            distinct: 64,
            small_lines: 20,
            large_lines: 200,
        });
        let names: Vec<&str> = report.rows.iter().map(|row| row.name).collect();
        let expected: Vec<&str> = PARSERS.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, expected, "one row per parser, in order");
        assert!(report.input_bytes > 0, "inputs were generated");
        let found = |name: &str| {
            let row = report.rows.iter().find(|row| row.name == name).unwrap();
            (row.found_small, row.found_large)
        };
        // Our installed listing parses, whole, at both sizes.
        assert_eq!(found("installed::parse_installed"), (1, 1));
        // Mixed listings hold `Inst` lines, which the simulation parser accepts, and no
        // failure lines.
        assert_eq!(found("apt::parse_simulation"), (1, 1));
        assert_eq!(found("apt::failed_packages"), (0, 0));
        let table = report.to_string();
        assert!(table.contains("| parser | ns/case | × baseline | 20 lines | 200 lines |"));
        for name in expected {
            assert!(
                table.contains(&format!("| `{name}` |")),
                "{name} in\n{table}"
            );
        }
    }
}
