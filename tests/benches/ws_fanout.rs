//! Benchmark: WebSocket fan-out (`tendhost_tests::bench::plane::ws_fanout`): N clients on
//! `GET /ws/events`, the daemon's RSS before and after they connect (memory per idle client),
//! then a fleet check of loopback hosts while every client reads: events lost, `lagged`, RSS.
//! The daemon is the release binary in a child process. Prints Markdown for
//! docs/benchmarks.md.
//!
//! Run: `cargo build --release -p tendhost && cargo bench -p tendhost-tests --bench ws_fanout`
//! (arguments: clients, default 1000; hosts, default 20).

use tendhost_tests::bench::plane::{FanoutOptions, bench_binary, ws_fanout};

fn main() {
    let numbers: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let options = FanoutOptions {
        binary: bench_binary(),
        clients: numbers.first().copied().unwrap_or(1000),
        hosts: numbers.get(1).copied().unwrap_or(20),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(ws_fanout(options));
    println!("{}", report.markdown());
    assert!(
        report.errors.is_empty(),
        "errors: {:?}",
        &report.errors[..report.errors.len().min(5)]
    );
}
