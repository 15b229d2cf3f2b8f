//! Domain -> wire for the event stream: `tendhost_core::events::Event` into
//! `tendhost_api::events::EventMessage` (states and kinds through `http::mapping`, shared with
//! the REST handlers). The WebSocket session itself is in `http::ws`.

use tendhost_api::events::{EventMessage, EventPayload};
use tendhost_api::jobs::LogStream;
use tendhost_core::events::{Event, EventKind, OutputStream};

use crate::http::mapping::{host_state, job_kind, time};

/// The wire form of one bus event.
pub fn event_message(event: &Event) -> EventMessage {
    EventMessage {
        seq: event.seq,
        time: time(event.time),
        event: payload(&event.kind),
    }
}

fn payload(kind: &EventKind) -> EventPayload {
    match kind.clone() {
        EventKind::HostStateChanged { host, from, to } => EventPayload::HostStateChanged {
            host,
            from: host_state(from),
            to: host_state(to),
        },
        EventKind::JobStarted { job_id, host, kind } => EventPayload::JobStarted {
            job_id,
            host,
            kind: job_kind(kind),
        },
        EventKind::JobOutput {
            job_id,
            host,
            stream,
            line,
        } => EventPayload::JobOutput {
            job_id,
            host,
            stream: match stream {
                OutputStream::Stdout => LogStream::Stdout,
                OutputStream::Stderr => LogStream::Stderr,
            },
            line,
        },
        EventKind::UpdateProgress {
            host,
            package,
            done,
            total,
        } => EventPayload::UpdateProgress {
            host,
            package,
            done,
            total,
        },
        EventKind::JobFinished {
            job_id,
            host,
            outcome,
        } => EventPayload::JobFinished {
            job_id,
            host,
            outcome,
        },
        EventKind::HostConnected { host } => EventPayload::HostConnected { host },
        EventKind::HostDisconnected { host, reason } => {
            EventPayload::HostDisconnected { host, reason }
        }
        EventKind::RolloutStarted {
            rollout_id,
            hosts,
            n_batches,
            dry_run,
        } => EventPayload::RolloutStarted {
            rollout_id,
            hosts,
            n_batches,
            dry_run,
        },
        EventKind::BatchStarted {
            rollout_id,
            batch,
            hosts,
        } => EventPayload::BatchStarted {
            rollout_id,
            batch,
            hosts,
        },
        EventKind::BatchFinished {
            rollout_id,
            batch,
            succeeded,
            failed,
        } => EventPayload::BatchFinished {
            rollout_id,
            batch,
            succeeded,
            failed,
        },
        EventKind::RolloutFinished { rollout_id, state } => {
            EventPayload::RolloutFinished { rollout_id, state }
        }
        EventKind::HostAdded { host } => EventPayload::HostAdded { host },
        EventKind::HostRemoved { host } => EventPayload::HostRemoved { host },
        EventKind::CertificateRenewed { serial, not_after } => EventPayload::CertificateRenewed {
            serial,
            not_after: time(not_after),
        },
        EventKind::CertificateReloadFailed { path, error } => {
            EventPayload::CertificateReloadFailed { path, error }
        }
        EventKind::RolloutAwaitingApproval {
            rollout_id,
            after_batch,
        } => EventPayload::RolloutAwaitingApproval {
            rollout_id,
            after_batch,
        },
        EventKind::RolloutApproved { rollout_id, by } => {
            EventPayload::RolloutApproved { rollout_id, by }
        }
        EventKind::HealthCheckFinished {
            host,
            job_id,
            ok,
            output,
        } => EventPayload::HealthCheckFinished {
            host,
            job_id,
            ok,
            output,
        },
        EventKind::ConfigReloaded {
            added,
            removed,
            changed,
        } => EventPayload::ConfigReloaded {
            added,
            removed,
            changed,
        },
        EventKind::ConfigReloadFailed { errors } => EventPayload::ConfigReloadFailed { errors },
        EventKind::ScheduleTriggered {
            schedule,
            rollout_id,
        } => EventPayload::ScheduleTriggered {
            schedule,
            rollout_id,
        },
        EventKind::HostDeferred {
            rollout_id,
            host,
            opens_at,
        } => EventPayload::HostDeferred {
            rollout_id,
            host,
            opens_at: time(opens_at),
        },
        EventKind::CertificateRenewalFailed {
            error,
            next_attempt,
        } => EventPayload::CertificateRenewalFailed {
            error,
            next_attempt: time(next_attempt),
        },
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use tendhost_core::events::{EVENT_TYPES, Event, EventKind};
    use tendhost_core::state::{HostState, JobKind};

    use crate::http::events_map::event_message;
    use crate::testing::one_of_each;

    #[test]
    fn every_event_type_keeps_its_wire_name_and_host() {
        let kinds = one_of_each();
        assert_eq!(kinds.len(), EVENT_TYPES.len());
        for (seq, kind) in (1..).zip(kinds) {
            let event = Event {
                seq,
                time: Timestamp::from_second(1_750_000_000).unwrap(),
                kind,
            };
            let value = serde_json::to_value(event_message(&event)).unwrap();
            assert_eq!(value["seq"], seq, "{value}");
            assert_eq!(value["time"], "2025-06-15T15:06:40Z", "{value}");
            assert_eq!(value["type"], event.kind.type_name(), "{value}");
            assert_eq!(value["host"].as_str(), event.kind.host(), "{value}");
        }
    }

    #[test]
    fn states_and_kinds_use_the_domain_wire_names() {
        for state in HostState::ALL {
            let event = Event {
                seq: 1,
                time: Timestamp::UNIX_EPOCH,
                kind: EventKind::HostStateChanged {
                    host: "h".to_owned(),
                    from: state,
                    to: state,
                },
            };
            let value = serde_json::to_value(event_message(&event)).unwrap();
            assert_eq!(value["from"], state.as_str());
            assert_eq!(value["to"], state.as_str());
        }
        for kind in [JobKind::Check, JobKind::Update, JobKind::Reboot] {
            let event = Event {
                seq: 1,
                time: Timestamp::UNIX_EPOCH,
                kind: EventKind::JobStarted {
                    job_id: "j".to_owned(),
                    host: "h".to_owned(),
                    kind,
                },
            };
            let value = serde_json::to_value(event_message(&event)).unwrap();
            assert_eq!(value["kind"], kind.as_str());
        }
    }
}
