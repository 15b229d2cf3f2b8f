//! Store throughput bench (`cargo bench -p tendhost-store`): sustained output lines/s through
//! the group-committing writer, posted events/s, and the latency of writes that commit before
//! returning. Prints one line per figure; the figures go in `docs/benchmarks.md` ("Store").
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a small, checked pass.
//! The database lives in a temp dir (`TMPDIR`); no timing is asserted anywhere.
//!
//! The work lives in `tendhost_store::bench`, whose unit test runs the small pass in CI.

use tendhost_store::bench::{Sizes, run};

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let sizes = if full { Sizes::FULL } else { Sizes::QUICK };
    let report = runtime
        .block_on(run(sizes, dir.path()))
        .expect("the store bench runs");
    print!("{report}");
}
