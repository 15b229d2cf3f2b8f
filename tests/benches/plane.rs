//! Benchmark: the control plane with 10,000 hosts (`tendhost_tests::bench::plane`): start
//! time, RSS, and `GET /hosts?per_page=200`, `GET /hosts/{name}` and `GET /fleet/summary`
//! latency against `GET /health` while the start-up checks run. The daemon is the release
//! binary in a child process. Prints Markdown for docs/benchmarks.md.
//!
//! Run: `cargo build --release -p tendhost && cargo bench -p tendhost-tests --bench plane`
//! (arguments: hosts, default 10000; rounds, default 500; `--no-check-on-start`;
//! `--max-parallel=N`).

use tendhost_tests::bench::plane::{PlaneOptions, bench_binary, control_plane};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers: Vec<usize> = args.iter().filter_map(|arg| arg.parse().ok()).collect();
    let options = PlaneOptions {
        binary: bench_binary(),
        hosts: numbers.first().copied().unwrap_or(10_000),
        rounds: numbers.get(1).copied().unwrap_or(500),
        check_on_start: !args.iter().any(|arg| arg == "--no-check-on-start"),
        max_parallel: args
            .iter()
            .find_map(|arg| arg.strip_prefix("--max-parallel=")?.parse().ok()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(control_plane(options));
    println!("{}", report.markdown());
    assert!(
        report.errors.is_empty(),
        "wrong answers: {:?}",
        &report.errors[..report.errors.len().min(5)]
    );
}
