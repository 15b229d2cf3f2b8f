//! Parser bench (`cargo bench -p tendhost-pkg --bench parsers`): every parser of host output
//! (`parse::every::PARSERS`) on at least 1,000,000 generated inputs each (random bytes and
//! lines built from tokens of real output, fixed seed), against a baseline measured in the same
//! run on the same inputs: a trivial line split. Then each parser on 100,000 and 1,000,000
//! generated lines (mixed listings; our installed listing for the parsers of two listings),
//! whose time ratio shows it is linear (about 10). Prints a Markdown table;
//! the figures go to docs/benchmarks.md with the machine's load (`uptime`).
//!
//! The work lives in `tendhost_pkg::bench`, whose unit test runs it at a tiny size in CI.

use tendhost_pkg::bench::{Sizes, run};

fn main() {
    print!("{}", run(Sizes::FULL));
}
