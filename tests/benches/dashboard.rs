//! Benchmark: the dashboard with 10,000 configured hosts. The real daemon (in-process, real
//! HTTP, auth off on loopback) is given 10,000 `[[host]]` tables at TEST-NET addresses that
//! are never contacted (no check at start, a 30-day interval). Measured: the latency of
//! `GET /fleet/summary` and of the first page of `GET /hosts` (name order, and sorted by
//! pending updates), with `GET /health` as the same-run baseline; then headless Chromium's
//! navigation timing for the overview and the host list: the load event, and the page's own
//! `tendhost:shown:*` mark (its data drawn). Prints Markdown tables for docs/benchmarks.md.
//!
//! Run: `cargo bench -p tendhost-tests --bench dashboard` (optional argument: hosts, default
//! 10000). The work lives in `tendhost_tests::bench::dashboard`; `it::smoke_benches` runs it
//! small in CI.

use tendhost_tests::bench::dashboard::{Sizes, run};

fn main() {
    let n_hosts: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(Sizes::full(n_hosts)));
}
