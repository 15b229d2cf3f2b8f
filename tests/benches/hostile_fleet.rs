//! Benchmark: the daemon's responsiveness and memory while hostile hosts of the test fleet
//! answer its commands (every profile of `tendhost_tests::fleet::Hostile` at once, `copies`
//! hosts of each, beside 2 ordinary apt hosts). The daemon runs in this process
//! (`spawn_app`, release build); a prober asks `GET /health` every 20 ms and a sampler reads
//! this process's `VmRSS` every 100 ms, first while idle (the baseline), then during a fleet
//! check and a fleet update of every host. Prints Markdown for docs/benchmarks.md and the
//! targets (p99 <= 100 ms, RSS <= 256 MiB) next to the figures; it asserts only outcomes (the
//! ordinary hosts are checked and updated, the hostile ones fail). Skipped with
//! `TENDHOST_SKIP_FLEET=1`.
//!
//! Run: `cargo bench -p tendhost-tests --bench hostile_fleet` (optional argument: copies of
//! each profile, default 2). The work lives in `tendhost_tests::bench::hostile_fleet`;
//! `it::smoke_benches` runs it small in CI.

use tendhost_tests::bench::hostile_fleet::{Sizes, run};

fn main() {
    let copies = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .find_map(|arg| arg.parse::<usize>().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(&Sizes::full(copies)));
}
