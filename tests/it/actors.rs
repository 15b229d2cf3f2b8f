//! Actor supervision, driven through `tendhost_core::Fleet` on real hosts: `local` hosts of
//! this machine (checks run `apt-get -s` here, never `apt-get update`) and a test-fleet host
//! over SSH. A host actor that panics is restarted with its last known state, the job it had
//! started keeps running and is re-adopted (the host refuses a second one meanwhile), and the
//! other hosts and the orchestrator do not notice. A job task that panics (a test hook) ends
//! `failed` with an internal-error reason, frees its host, and a rollout waiting on it goes on.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use tendhost_core::model::{FleetError, HostFilter, JobState, RolloutState};
use tendhost_core::spec::{HostOrigin, HostPolicy, HostSpec, HostTarget, KnownHostsPolicy, Timing};
use tendhost_core::state::HostState;
use tendhost_core::{Fleet, FleetOptions};
use tendhost_tests::fleet::{Fleet as TestFleet, Host};

fn local_host(name: &str) -> HostSpec {
    HostSpec {
        name: name.to_owned(),
        target: HostTarget::Local,
        user: "root".to_owned(),
        ssh_key: None,
        sudo: false,
        known_hosts: KnownHostsPolicy::Strict,
        host_key_sha256: None,
        timing: Timing::default(),
        tags: vec!["local".to_owned()],
        compose_paths: Vec::new(),
        reboot_command: None,
        package_manager: None,
        policy: HostPolicy {
            refresh_lists: false,
            updates: tendhost_core::spec::UpdatePolicy::CheckOnly,
            ..HostPolicy::default()
        },
        docker: tendhost_core::spec::DockerSettings::default(),
        origin: HostOrigin::Config,
    }
}

/// A check-only host spec for a test-fleet host, logging in as root with the fleet's key.
fn fleet_host(name: &str, host: &Host, key: &Path) -> HostSpec {
    HostSpec {
        target: HostTarget::Ssh {
            addr: host.addr().to_string(),
            port: host.port(),
        },
        ssh_key: Some(key.to_owned()),
        known_hosts: KnownHostsPolicy::AcceptNew,
        tags: vec!["fleet".to_owned()],
        ..local_host(name)
    }
}

#[tokio::test]
async fn panicking_host_actor_is_restarted_with_its_state_and_job() {
    let Some(test_fleet) = TestFleet::builder().apt(1).start().await else {
        return;
    };
    let host = &test_fleet.hosts()[0];
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(
        vec![
            fleet_host("one", host, test_fleet.ssh_key()),
            local_host("two"),
        ],
        BTreeMap::new(),
        &FleetOptions {
            data_dir: dir.path().to_owned(),
            check_on_start: false,
            ..FleetOptions::default()
        },
        HashMap::new(),
        None,
    )
    .unwrap();

    // A first check gives host "one" real state to remember.
    let first = fleet.check("one").await.unwrap();
    assert_eq!(fleet.wait_job(&first).await, Some(JobState::Succeeded));
    let before = fleet.host("one").await.unwrap();
    assert!(before.last_check.is_some());
    assert!(before.inventory.is_some(), "a check records the inventory");

    // The host hangs (docker pause: its connection stays open, nothing answers), so the
    // next check cannot finish until it is unpaused. Start it and make the actor panic.
    host.pause().await;
    let running = fleet.check("one").await.unwrap();
    fleet.panic_host("one").await.unwrap();

    // The restarted actor answers with the same state, refuses a second job while the
    // re-adopted one runs, and the job finishes once the host answers again.
    let during = fleet.host("one").await.unwrap();
    assert_eq!(during.inventory, before.inventory);
    assert_eq!(during.state, HostState::Querying);
    let err = fleet.check("one").await.unwrap_err();
    assert!(
        matches!(err, tendhost_core::model::FleetError::HostBusy { .. }),
        "{err}"
    );
    host.unpause().await;
    assert_eq!(fleet.wait_job(&running).await, Some(JobState::Succeeded));

    // The restarted actor takes new work.
    let mut next = None;
    for _ in 0..50 {
        match fleet.check("one").await {
            Ok(job) => {
                next = Some(job);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let next = next.expect("restarted host actor accepts a new check");
    assert_eq!(fleet.wait_job(&next).await, Some(JobState::Succeeded));

    // The other host did not notice.
    let other = fleet.check("two").await.unwrap();
    assert_eq!(fleet.wait_job(&other).await, Some(JobState::Succeeded));
    assert_eq!(fleet.hosts().await.unwrap().len(), 2);
    fleet.shutdown(Duration::from_secs(5)).await;
    // With the orchestrator gone the fleet cannot be listed: an error (503 `shutting_down`
    // through the API), not an empty fleet.
    assert!(
        matches!(fleet.hosts().await, Err(FleetError::ShuttingDown)),
        "hosts() after shutdown"
    );
    // Nor its tags (`GET /tags` answers 503 `shutting_down` too).
    assert!(
        matches!(fleet.tags().await, Err(FleetError::ShuttingDown)),
        "tags() after shutdown"
    );
}

#[tokio::test]
async fn periodic_checks_follow_each_hosts_check_interval() {
    let dir = tempfile::tempdir().unwrap();
    let mut frequent = local_host("frequent");
    frequent.timing.check_interval = Duration::from_secs(2);
    let rare = local_host("rare"); // default interval: 6 h
    let fleet = Fleet::start(
        vec![frequent, rare],
        BTreeMap::new(),
        &FleetOptions {
            data_dir: dir.path().to_owned(),
            check_on_start: false,
            ..FleetOptions::default()
        },
        HashMap::new(),
        None,
    )
    .unwrap();
    // Nobody asks for a check: the scheduler starts them, again and again, for "frequent" only.
    // What is counted is checks that ran to an end, whatever apt on this shared machine said
    // (another test's apt may hold a lock): the claim is about scheduling.
    tendhost_tests::wait::until("two background checks of \"frequent\" ran", || async {
        let finished: Vec<_> = fleet
            .jobs(Some("frequent"), None)
            .into_iter()
            .filter(|job| !matches!(job.state, JobState::Queued | JobState::Running))
            .map(|job| job.state)
            .collect();
        if finished.len() >= 2 {
            Ok(())
        } else {
            Err(format!("finished checks: {finished:?}"))
        }
    })
    .await;
    assert!(fleet.jobs(Some("rare"), None).is_empty());
    fleet.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_panicking_job_task_fails_the_job_frees_the_host_and_the_rollout_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(
        vec![local_host("p1"), local_host("p2")],
        BTreeMap::new(),
        &FleetOptions {
            data_dir: dir.path().to_owned(),
            check_on_start: false,
            ..FleetOptions::default()
        },
        HashMap::new(),
        None,
    )
    .unwrap();

    // A single job: failed with the reason, the host free for the next one.
    fleet.panic_next_job("p1");
    let job = fleet.check("p1").await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(120), fleet.wait_job(&job))
        .await
        .expect("the job whose task panicked did not end within 120 s");
    assert_eq!(ended, Some(JobState::Failed));
    let summary = fleet.job(&job).unwrap().summary.unwrap_or_default();
    assert!(summary.starts_with("internal error"), "{summary}");
    assert!(summary.contains("deliberate panic"), "{summary}");
    let host = fleet.host("p1").await.unwrap();
    assert_eq!(host.current_job, None, "the host is freed");
    assert_eq!(host.state, HostState::Failed);
    assert_eq!(
        host.failure.as_ref().map(|f| f.error.as_str()),
        Some(summary.as_str())
    );
    let next = fleet.check("p1").await.expect("a new job, not host_busy");
    assert_eq!(fleet.wait_job(&next).await, Some(JobState::Succeeded));

    // A rollout over both: p1's job panics, the rollout still finishes and p2 is checked.
    fleet.panic_next_job("p1");
    let rollout = fleet.fleet_check(HostFilter::default()).await.unwrap();
    let mut finished = None;
    for _ in 0..1200 {
        let now = fleet.rollout(&rollout.id).await.unwrap();
        if now.state != RolloutState::Running {
            finished = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = finished.expect("the rollout did not finish within 120 s after a job panicked");
    assert_eq!(finished.state, RolloutState::Completed, "{finished:?}");
    let jobs = fleet.jobs(Some("p2"), None);
    assert!(
        jobs.iter()
            .any(|j| j.rollout_id.as_deref() == Some(rollout.id.as_str())
                && j.state == JobState::Succeeded),
        "{jobs:?}"
    );
    assert_eq!(fleet.host("p1").await.unwrap().current_job, None);
    fleet.shutdown(Duration::from_secs(5)).await;
}
