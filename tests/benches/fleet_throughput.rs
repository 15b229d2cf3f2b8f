//! Benchmark: the daemon managing apt hosts of the Docker test fleet against raw OpenSSH over
//! warm ControlMaster sockets and Ansible (forks = hosts, pipelining), all three in the same
//! run on the same hosts: a fleet check (`apt-get update` + simulate) and a refresh + upgrade
//! of 2 packages, every upgrade verified out of band. The body is
//! `tendhost_tests::bench::fleet` (the CI smoke `tests/it/smoke_fleet_bench.rs` runs it tiny).
//! Prints Markdown for docs/benchmarks.md. Skipped with `TENDHOST_SKIP_FLEET=1`.
//!
//! Run: `cargo bench -p tendhost-tests --bench fleet_throughput -- [--hosts=N] [--no-ansible]
//! [CHECK_ROUNDS [UPDATE_ROUNDS]]` (20 hosts, 5 check rounds and 3 update rounds by default;
//! `--hosts=100` is the 100-host mode, about 5 GiB of memory: bench only, never CI).

use tendhost_tests::bench::fleet::{FleetBench, run};

fn main() {
    let mut bench = FleetBench::default();
    let mut numbers = Vec::new();
    for arg in std::env::args().skip(1) {
        if let Some(hosts) = arg.strip_prefix("--hosts=") {
            bench.hosts = hosts
                .parse()
                .unwrap_or_else(|_| panic!("--hosts={hosts}: expected a number of hosts"));
        } else if arg == "--no-ansible" {
            bench.ansible = false;
        } else if let Ok(number) = arg.parse::<usize>() {
            numbers.push(number);
        }
        // Anything else (cargo's `--bench`) is not ours.
    }
    if let Some(&rounds) = numbers.first() {
        bench.check_rounds = rounds.max(1);
    }
    if let Some(&rounds) = numbers.get(1) {
        bench.update_rounds = rounds.max(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Some(report) = runtime.block_on(run(&bench)) {
        println!("{}", report.markdown());
    }
}
