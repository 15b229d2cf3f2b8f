//! Smoke runs of the end-to-end benches (`tests/benches/*.rs`): the same code as the full runs
//! (`tendhost_tests::bench`), at tiny sizes in the debug build, so CI notices when a bench
//! breaks. Each checks what the bench did (commands answered, requests and pages answered,
//! hosts updated or failed), never how fast: the figures come from the full runs only.
//! `fleet_throughput` is not smoked here (its code is its own, being reworked apart); the
//! crate benches are smoked by unit tests in `tendhost-pkg` and `tendhost-store`
//! (`bench::tests`).

use std::time::Duration;

use tendhost_api::rollouts::{RolloutHostState, RolloutState};
use tendhost_tests::bench::{dashboard, exec_latency, hostile_fleet};
use tendhost_tests::fleet::{Hostile, SKIP_ENV};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_latency_bench_runs_every_case() {
    let rounds = 2;
    let outcome = exec_latency::run(rounds).await;
    let mut expected = Vec::new();
    if std::env::var(SKIP_ENV).map_or(true, |value| value != "1") {
        expected.push(("fleet host (container): cold (new connection)", rounds));
        expected.push(("fleet host (container): warm (multiplexed)", rounds * 10));
    }
    expected.push(("loopback sshd: cold (new connection)", rounds));
    expected.push(("loopback sshd: warm (multiplexed)", rounds * 10));
    expected.push(("local: `true`", rounds * 10));
    let rows: Vec<(&str, usize)> = outcome
        .rows
        .iter()
        .map(|(name, runs)| (name.as_str(), *runs))
        .collect();
    assert_eq!(rows, expected);
    // One login per cold executor and one for the warm one: the warm rounds reused its master.
    assert_eq!(outcome.loopback_logins, outcome.expected_logins);
    assert_eq!(outcome.expected_logins, rounds + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_bench_answers_every_request_and_draws_every_page() {
    let outcome = dashboard::run(dashboard::Sizes {
        n_hosts: 60,
        rounds: 2,
        page_loads: 1,
    })
    .await;
    let paths: Vec<&str> = outcome.requests.iter().map(|(path, _, _)| *path).collect();
    assert_eq!(
        paths,
        [
            "/health",
            "/fleet/summary",
            "/hosts?page=1&per_page=50",
            "/hosts?page=1&per_page=50&sort=-pending",
        ]
    );
    for (path, size, runs) in &outcome.requests {
        assert!(*size > 0, "{path} answered an empty body");
        assert_eq!(*runs, 2, "{path}");
    }
    assert_eq!(outcome.summary_hosts, 60);
    assert_eq!(outcome.first_page_hosts, 50);
    assert_eq!(outcome.pages, [("#/", 1), ("#/hosts", 1)]);
}

/// Profiles whose failures come quickly (no command or job timeout to wait for), so the smoke
/// stays short; `it::hostile_hosts` covers every profile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_fleet_bench_updates_the_ordinary_hosts_and_fails_the_hostile_ones() {
    let sizes = hostile_fleet::Sizes {
        copies: 1,
        profiles: vec![Hostile::Garbage, Hostile::ExitsMidLine],
        n_ordinary: 1,
        idle_for: Duration::from_secs(1),
    };
    let Some(outcome) = hostile_fleet::run(&sizes).await else {
        return;
    };
    let phases: Vec<&str> = outcome.phases.iter().map(|phase| phase.name).collect();
    assert_eq!(phases, ["idle (baseline)", "fleet check", "fleet update"]);
    for phase in &outcome.phases {
        assert!(phase.probes > 0, "{}: /health was probed", phase.name);
        assert_eq!(phase.failures, 0, "{}: every probe answered", phase.name);
    }
    assert_eq!(outcome.versions.len(), 1, "{:?}", outcome.versions);
    let (ordinary, version) = &outcome.versions[0];
    assert_eq!(version, "1.1", "{ordinary} after the update");
    for rollout in [&outcome.check, &outcome.update] {
        assert_eq!(rollout.state, RolloutState::Completed, "{rollout:#?}");
        assert_eq!(rollout.hosts.len(), 3, "{rollout:#?}");
        let succeeded: Vec<&str> = rollout
            .hosts
            .iter()
            .filter(|host| host.state == RolloutHostState::Succeeded)
            .map(|host| host.host.as_str())
            .collect();
        assert_eq!(succeeded, [ordinary.as_str()], "{rollout:#?}");
    }
}
