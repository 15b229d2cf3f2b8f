//! Parser bench (`cargo bench -p tendhost-pkg --bench parsers`): every parser of host output
//! (`parse::every::PARSERS`) on at least 1,000,000 generated inputs each (random bytes and
//! lines built from tokens of real output, fixed seed), against a baseline measured in the same
//! run on the same inputs: a trivial line split. Then each parser on 100,000 and 1,000,000
//! generated lines (mixed listings; our installed listing for the parsers of two listings),
//! whose time ratio shows it is linear (about 10). Prints a Markdown table;
//! the figures go to docs/benchmarks.md with the machine's load (`uptime`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tendhost_pkg::parse::every::PARSERS;

const CASES: usize = 1_000_000;
/// Distinct generated inputs; the cases cycle over them.
const DISTINCT: usize = 4_096;

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

/// `n` lines of mixed listings, or (`installed_only`) of our installed-package listing, which
/// the parsers of two listings need whole (a bad line ends `parse_installed` at once).
fn lines(n: usize, installed_only: bool) -> String {
    let mut rng = Rng(7);
    let mut text = String::new();
    for i in 0..n {
        let kind = if installed_only { 0 } else { rng.below(3) };
        match kind {
            0 => text.push_str(&format!("ii \tpkg{i}\tamd64\t1.{i}-1\n")),
            1 => text.push_str(&format!("Inst pkg{i} [1.0] (1.{i} repo [amd64])\n")),
            _ => text.push_str(&format!("pkg{i}.noarch 1.{i}-1 repo\n")),
        }
    }
    text
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn baseline(text: &str) -> usize {
    text.split('\n').count()
}

fn main() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let inputs: Vec<String> = (0..DISTINCT).map(|_| generate(&mut rng)).collect();
    let bytes: usize = inputs.iter().map(String::len).sum::<usize>() / DISTINCT;
    let run = |parse: fn(&str) -> usize| {
        time(|| {
            for i in 0..CASES {
                black_box(parse(black_box(&inputs[i % DISTINCT])));
            }
        })
    };
    let base = run(baseline);
    println!("{CASES} cases per parser, {DISTINCT} distinct inputs of {bytes} bytes on average");
    println!("baseline (line split): {:.1} ns/case\n", ns(base));
    println!("| parser | ns/case | × baseline | 100k lines | 1M lines | 1M / 100k |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let mixed = (lines(100_000, false), lines(1_000_000, false));
    let installed = (lines(100_000, true), lines(1_000_000, true));
    for (name, parse) in PARSERS {
        let elapsed = run(*parse);
        let two_listings = name.starts_with("installed::")
            || *name == "job::upgraded_packages"
            || *name == "job::unfinished_packages";
        let (small, large) = if two_listings { &installed } else { &mixed };
        let t_small = time(|| {
            black_box(parse(black_box(small)));
        });
        let t_large = time(|| {
            black_box(parse(black_box(large)));
        });
        println!(
            "| `{name}` | {:.1} | {:.1} | {} ms | {} ms | {:.1} |",
            ns(elapsed),
            elapsed.as_secs_f64() / base.as_secs_f64(),
            t_small.as_millis(),
            t_large.as_millis(),
            t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-9),
        );
    }
}

fn ns(total: Duration) -> f64 {
    // CASES is exact in an f64.
    total.as_secs_f64() * 1e9 / f64::from(u32::try_from(CASES).unwrap_or(u32::MAX))
}
