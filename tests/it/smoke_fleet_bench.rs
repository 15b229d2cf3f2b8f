//! CI smoke of the fleet bench (`tests/benches/fleet_throughput.rs`): its body,
//! `tendhost_tests::bench::fleet::run`, on 2 hosts for 1 round, in the debug build, with the
//! raw OpenSSH baseline and without Ansible (installing it and its Python runs cost more than
//! the smoke is worth). Asserts only outcomes (every rollout succeeded, every upgrade landed
//! on every host, each contender ran), never timings.

use tendhost_tests::bench::fleet::{FleetBench, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_bench_runs_tiny_with_the_raw_ssh_baseline() {
    let bench = FleetBench {
        hosts: 2,
        check_rounds: 1,
        update_rounds: 1,
        ansible: false,
    };
    let Some(report) = run(&bench).await else {
        return;
    };
    // The run itself panics when a rollout fails on a host or a host lacks the new versions.
    assert_eq!(report.tendhost_checks.len(), 1);
    assert_eq!(report.raw_checks.len(), 1);
    assert_eq!(report.raw_upgrades.len(), 1);
    assert_eq!(report.tendhost_updates.len(), 1);
    assert!(report.ansible_checks.is_empty() && report.ansible_upgrades.is_empty());
    assert!(report.tendhost_updates.iter().all(|t| t.jobs.len() == 2));
    // tendhost's update and the raw upgrade, each on both hosts.
    assert_eq!(report.verified_upgrades, 4);
    let markdown = report.markdown();
    assert!(markdown.contains("tendhost / raw"), "{markdown}");
}
