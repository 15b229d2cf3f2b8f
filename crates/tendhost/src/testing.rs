//! Values the unit tests of several modules share (compiled for tests only).

use tendhost_core::events::{EventKind, OutputStream};
use tendhost_core::state::{HostState, JobKind};

/// One event of every type, with every field set.
pub fn one_of_each() -> Vec<EventKind> {
    let host = || "web-1".to_owned();
    let job_id = || "j1".to_owned();
    let rollout_id = || "r1".to_owned();
    vec![
        EventKind::HostStateChanged {
            host: host(),
            from: HostState::WaitingReboot,
            to: HostState::PendingUpdates,
        },
        EventKind::JobStarted {
            job_id: job_id(),
            host: host(),
            kind: JobKind::Update,
        },
        EventKind::JobOutput {
            job_id: job_id(),
            host: host(),
            stream: OutputStream::Stderr,
            line: "W: something".to_owned(),
        },
        EventKind::UpdateProgress {
            host: host(),
            package: "curl".to_owned(),
            done: 1,
            total: 3,
        },
        EventKind::JobFinished {
            job_id: job_id(),
            host: host(),
            outcome: "succeeded".to_owned(),
        },
        EventKind::HostConnected { host: host() },
        EventKind::HostDisconnected {
            host: host(),
            reason: "connection refused".to_owned(),
        },
        EventKind::RolloutStarted {
            rollout_id: rollout_id(),
            hosts: vec![host()],
            n_batches: 1,
            dry_run: false,
        },
        EventKind::BatchStarted {
            rollout_id: rollout_id(),
            batch: 0,
            hosts: vec![host()],
        },
        EventKind::BatchFinished {
            rollout_id: rollout_id(),
            batch: 0,
            succeeded: 1,
            failed: 0,
        },
        EventKind::RolloutFinished {
            rollout_id: rollout_id(),
            state: "completed".to_owned(),
        },
        EventKind::HostAdded { host: host() },
        EventKind::HostRemoved { host: host() },
        EventKind::CertificateRenewed {
            serial: "3A0F9C21D4E5B6A7".to_owned(),
            not_after: jiff::Timestamp::from_millisecond(1_767_225_600_123).unwrap(),
        },
        EventKind::CertificateReloadFailed {
            path: "/etc/tendhost/cert.pem".to_owned(),
            error: "no CERTIFICATE block in the file".to_owned(),
        },
        EventKind::RolloutAwaitingApproval {
            rollout_id: rollout_id(),
            after_batch: 0,
        },
        EventKind::RolloutApproved {
            rollout_id: rollout_id(),
            by: "ci".to_owned(),
        },
        EventKind::HealthCheckFinished {
            host: host(),
            job_id: Some(job_id()),
            ok: false,
            output: "curl: (7) connection refused".to_owned(),
        },
        EventKind::ConfigReloaded {
            added: vec![host()],
            removed: Vec::new(),
            changed: vec!["web-02".to_owned()],
        },
        EventKind::ConfigReloadFailed {
            errors: vec![
                "/etc/tendhost/tendhost.toml:3:7: bind: invalid socket address".to_owned(),
            ],
        },
        EventKind::ScheduleTriggered {
            schedule: "nightly".to_owned(),
            rollout_id: rollout_id(),
        },
        EventKind::HostDeferred {
            rollout_id: rollout_id(),
            host: host(),
            opens_at: jiff::Timestamp::from_millisecond(1_767_225_600_000).unwrap(),
        },
        EventKind::CertificateRenewalFailed {
            error: "cannot use the ACME directory https://acme.example/dir: connection refused"
                .to_owned(),
            next_attempt: jiff::Timestamp::from_millisecond(1_767_225_600_456).unwrap(),
        },
    ]
}
