//! Smoke runs of the control-plane benches (`tendhost_tests::bench::plane`), tiny and on the
//! debug daemon binary: 200 loopback hosts with start-up checks running, and 20 WebSocket
//! clients through a fleet check. They assert what the benches promise (every page and host
//! answered correctly, no event lost, no `lagged`), never how fast.

use tendhost_tests::bench::plane::{FanoutOptions, PlaneOptions, control_plane, ws_fanout};
use tendhost_tests::daemon::daemon_binary;

#[tokio::test]
async fn plane_bench_pages_and_hosts_answer_while_checks_run() {
    let report = control_plane(PlaneOptions {
        binary: daemon_binary(),
        hosts: 200,
        rounds: 20,
        check_on_start: true,
        max_parallel: None,
    })
    .await;
    println!("{}", report.markdown());
    assert!(
        report.errors.is_empty(),
        "wrong answers: {:?}",
        report.errors
    );
    assert_eq!(report.latencies.len(), 4);
    assert!(report.latencies.iter().all(|l| l.samples.len() == 20));
    assert!(report.rss_listed_kib > 0, "the daemon's RSS was not read");
}

#[tokio::test]
async fn ws_fanout_bench_loses_no_event() {
    let report = ws_fanout(FanoutOptions {
        binary: daemon_binary(),
        hosts: 5,
        clients: 20,
    })
    .await;
    println!("{}", report.markdown());
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert_eq!(
        report.complete, 20,
        "every client saw the check start and finish"
    );
    assert_eq!(report.lost, 0);
    assert_eq!(report.lagged, 0);
    // rollout_started, batch_started, per host job_started .. job_finished, batch_finished,
    // rollout_finished: more than one event per host.
    assert!(report.events > 5, "only {} events", report.events);
}
