//! Unit tests of the event-fed metrics: job and rollout counters, durations, bounded labels.

use jiff::{SignedDuration, Timestamp};
use tendhost_core::events::{Event, EventKind};
use tendhost_core::state::JobKind;

use crate::Metrics;

fn event(seq: u64, time: Timestamp, kind: EventKind) -> Event {
    Event { seq, time, kind }
}

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|line| line.starts_with(prefix))
}

#[test]
fn a_finished_job_is_counted_by_kind_and_outcome_without_its_id() {
    let metrics = Metrics::new();
    let start = Timestamp::from_second(1_700_000_000).unwrap();
    let end = start + SignedDuration::from_secs(3);
    metrics.observe(
        &event(
            1,
            start,
            EventKind::JobStarted {
                job_id: "job-0001".to_owned(),
                host: "web1".to_owned(),
                kind: JobKind::Update,
            },
        ),
        &|_| None,
    );
    metrics.observe(
        &event(
            2,
            end,
            EventKind::JobFinished {
                job_id: "job-0001".to_owned(),
                host: "web1".to_owned(),
                outcome: "succeeded".to_owned(),
            },
        ),
        &|_| None,
    );
    let text = metrics.render(&[]);
    assert_eq!(
        line(
            &text,
            r#"tendhost_jobs_total{kind="update",outcome="succeeded"}"#
        ),
        Some(r#"tendhost_jobs_total{kind="update",outcome="succeeded"} 1"#),
        "{text}"
    );
    assert_eq!(
        line(&text, r#"tendhost_job_duration_seconds_sum{kind="update"}"#),
        Some(r#"tendhost_job_duration_seconds_sum{kind="update"} 3.0"#),
        "{text}"
    );
    assert!(
        !text.contains("job-0001"),
        "a job id leaked into a label: {text}"
    );
    // Counters that did not move are there at 0, so increase() sees their first step.
    assert!(
        text.contains(r#"tendhost_jobs_total{kind="check",outcome="failed"} 0"#),
        "{text}"
    );
}

#[test]
fn a_job_whose_start_was_missed_takes_its_kind_from_the_lookup() {
    let metrics = Metrics::new();
    let finished = EventKind::JobFinished {
        job_id: "job-x".to_owned(),
        host: "db1".to_owned(),
        outcome: "busy".to_owned(),
    };
    metrics.observe(&event(1, Timestamp::now(), finished.clone()), &|_| None);
    metrics.observe(&event(2, Timestamp::now(), finished), &|_| {
        Some(JobKind::Check)
    });
    let text = metrics.render(&[]);
    assert!(
        text.contains(r#"tendhost_jobs_total{kind="check",outcome="busy"} 1"#),
        "{text}"
    );
}

#[test]
fn rollout_outcomes_are_a_closed_set() {
    let metrics = Metrics::new();
    for (seq, state) in [(1, "stopped"), (2, "stopped"), (3, "no-such-state")] {
        metrics.observe(
            &event(
                seq,
                Timestamp::now(),
                EventKind::RolloutFinished {
                    rollout_id: format!("r{seq}"),
                    state: state.to_owned(),
                },
            ),
            &|_| None,
        );
    }
    let text = metrics.render(&[]);
    assert!(
        text.contains(r#"tendhost_rollouts_total{outcome="stopped"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tendhost_rollouts_total{outcome="other"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tendhost_rollouts_total{outcome="completed"} 0"#),
        "{text}"
    );
    assert!(!text.contains("no-such-state"), "{text}");
}

#[test]
fn websocket_clients_count_open_streams() {
    let metrics = Metrics::new();
    let first = metrics.websocket_opened();
    let second = metrics.websocket_opened();
    assert!(
        metrics
            .render(&[])
            .contains("tendhost_websocket_clients 2\n")
    );
    drop(first);
    drop(second);
    assert!(
        metrics
            .render(&[])
            .contains("tendhost_websocket_clients 0\n")
    );
}

#[test]
fn the_prometheus_text_names_counter_families_with_total_and_has_no_eof() {
    let text = crate::to_prometheus_text(&Metrics::new().render(&[]));
    assert!(
        text.contains("# TYPE tendhost_jobs_total counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# HELP tendhost_rollouts_total Finished"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE tendhost_websocket_clients gauge\n"),
        "{text}"
    );
    assert!(!text.contains("# EOF"), "{text}");
}
