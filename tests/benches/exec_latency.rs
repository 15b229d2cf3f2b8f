//! Benchmark: latency of one trivial command (`true`) through `SshExecutor` on a cold host (new
//! master connection: TCP, key exchange, authentication) versus a warm one (multiplexed over
//! the open master). Against a Debian host of the Docker test fleet (skipped with
//! `TENDHOST_SKIP_FLEET=1`) and the loopback sshd of `tendhost_tests::sshd`; `LocalExecutor`
//! for reference. Prints Markdown tables for docs/benchmarks.md.
//!
//! Run: `cargo bench -p tendhost-tests --bench exec_latency` (optional argument: cold rounds,
//! default 30; warm and local rounds are 10x as many). The work lives in
//! `tendhost_tests::bench::exec_latency`; `it::smoke_benches` runs it small in CI.

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with('-'))
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(30);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(tendhost_tests::bench::exec_latency::run(rounds));
}
