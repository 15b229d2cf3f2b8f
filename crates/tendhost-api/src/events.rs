//! The WebSocket stream's wire types (`GET /ws/events`): one JSON message per WebSocket text
//! frame, either an event (`EventMessage`: flat `{seq, time, type, ...fields}`) or a control
//! message (`ControlMessage`: `replay_gap`, `lagged`; no `seq`). `StreamMessage` is either.
//! The daemon maps its domain events into these; nothing here knows about the bus.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::hosts::HostState;
use crate::jobs::{JobKind, LogStream};

/// One event from the daemon's event bus.
///
/// `seq` increases by exactly 1 per event across the whole daemon, so a gap in what a client
/// received means it missed events (after `lagged`, reconnect with `?since=<last seq>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "seq": 42,
    "time": "2025-06-01T12:00:00.123Z",
    "type": "host_state_changed",
    "host": "web-1",
    "from": "idle",
    "to": "querying"
}))]
pub struct EventMessage {
    /// Daemon-wide sequence number (+1 per event).
    #[schema(example = 42)]
    pub seq: u64,
    /// When the event happened (RFC 3339, UTC).
    #[schema(example = "2025-06-01T12:00:00.123Z", format = DateTime)]
    pub time: String,
    /// `type` and the type's own fields.
    #[serde(flatten)]
    pub event: EventPayload,
}

/// What happened; the `type` field names the variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventPayload {
    /// A host moved between states (what the host actor really did).
    HostStateChanged {
        host: String,
        from: HostState,
        to: HostState,
    },
    /// A job started running on a host.
    JobStarted {
        job_id: String,
        host: String,
        kind: JobKind,
    },
    /// One line of a job's output.
    JobOutput {
        job_id: String,
        host: String,
        stream: LogStream,
        line: String,
    },
    /// A package finished upgrading.
    UpdateProgress {
        host: String,
        package: String,
        done: u32,
        total: u32,
    },
    /// A job ended.
    JobFinished {
        job_id: String,
        host: String,
        /// The job's final state (a `JobState` wire name).
        #[schema(value_type = crate::jobs::JobState)]
        outcome: String,
    },
    /// The daemon reached a host again after it was unreachable.
    HostConnected { host: String },
    /// The daemon lost a host.
    HostDisconnected { host: String, reason: String },
    /// A fleet rollout started.
    RolloutStarted {
        rollout_id: String,
        hosts: Vec<String>,
        n_batches: usize,
        dry_run: bool,
    },
    /// A rollout batch started (batches count from 0).
    BatchStarted {
        rollout_id: String,
        batch: usize,
        hosts: Vec<String>,
    },
    /// A rollout batch ended.
    BatchFinished {
        rollout_id: String,
        batch: usize,
        succeeded: usize,
        failed: usize,
    },
    /// A rollout ended.
    RolloutFinished {
        rollout_id: String,
        /// The rollout's final state (a `RolloutState` wire name).
        #[schema(value_type = crate::rollouts::RolloutState)]
        state: String,
    },
    /// A host was registered (through the API).
    HostAdded { host: String },
    /// A host was removed (through the API).
    HostRemoved { host: String },
    /// The daemon serves a new TLS certificate: renewed (`self-signed`) or replaced files
    /// loaded (`files`).
    CertificateRenewed {
        /// Serial number, upper-case hex.
        serial: String,
        /// End of the new certificate's validity (RFC 3339, UTC).
        #[schema(format = DateTime)]
        not_after: String,
    },
    /// A replacement certificate or key was refused; the old pair keeps serving.
    CertificateReloadFailed {
        /// The file at fault.
        path: String,
        /// Why it was refused.
        error: String,
    },
    /// A rollout finished batch `after_batch` and waits for `POST /rollouts/{id}/approve`.
    RolloutAwaitingApproval {
        rollout_id: String,
        /// Index of the batch that finished before the gate.
        after_batch: usize,
    },
    /// A rollout waiting for approval was approved and goes on.
    RolloutApproved {
        rollout_id: String,
        /// The name of the token that approved it (`anonymous` with auth off).
        by: String,
    },
    /// A host's health check ran: after an update (and its reboot), or before it with
    /// `pre_check`. `output` is what the failing (or last) attempt said.
    HealthCheckFinished {
        host: String,
        /// The update or reboot job it ran in; null for a `pre_check` before an update.
        job_id: Option<String>,
        ok: bool,
        output: String,
    },
    /// The config file was re-read (SIGHUP) and applied.
    ConfigReloaded {
        /// Hosts added.
        added: Vec<String>,
        /// Hosts removed (one with a running job goes when the job ends).
        removed: Vec<String>,
        /// Hosts whose definition changed (new settings from their next job).
        changed: Vec<String>,
    },
    /// The config file was re-read and refused: nothing changed.
    ConfigReloadFailed {
        /// Every problem, as `file:line:col: message`.
        errors: Vec<String>,
    },
    /// A `[[schedule]]` started its rollout (the usual rollout events follow).
    ScheduleTriggered {
        schedule: String,
        rollout_id: String,
    },
    /// A host of a rollout is outside its maintenance window: it waits as `deferred` until
    /// the window opens (RFC 3339 `opens_at`), or is skipped past the run's `window_grace`.
    HostDeferred {
        rollout_id: String,
        host: String,
        #[schema(format = DateTime)]
        opens_at: String,
    },
    /// `acme`: the CA did not issue a certificate (unreachable, refused, a failed validation);
    /// the current certificate keeps serving.
    CertificateRenewalFailed {
        /// What failed.
        error: String,
        /// When the daemon tries again (RFC 3339, UTC); the pause grows with each failure.
        #[schema(format = DateTime)]
        next_attempt: String,
    },
}

/// A message about the stream itself (carries no `seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// First message when `?since=` is older than the replay buffer: events after `since` and
    /// before `oldest_seq` are gone; replay starts at `oldest_seq`.
    #[schema(example = json!({"type": "replay_gap", "oldest_seq": 1200}))]
    ReplayGap { oldest_seq: u64 },
    /// The client fell behind the bus and `missed` events were dropped for it; the stream
    /// continues with newer events.
    #[schema(example = json!({"type": "lagged", "missed": 311}))]
    Lagged { missed: u64 },
}

/// Any message on `GET /ws/events`: an event (has `seq`) or a control message (has not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
#[schema(example = json!({
    "seq": 43,
    "time": "2025-06-01T12:00:01.020Z",
    "type": "job_finished",
    "job_id": "j-7f3a",
    "host": "web-1",
    "outcome": "succeeded"
}))]
pub enum StreamMessage {
    Event(EventMessage),
    Control(ControlMessage),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::events::{ControlMessage, EventMessage, EventPayload, StreamMessage};
    use crate::hosts::HostState;
    use crate::jobs::JobKind;

    #[test]
    fn event_is_one_flat_object() {
        let message = EventMessage {
            seq: 7,
            time: "2025-06-01T12:00:00Z".to_owned(),
            event: EventPayload::HostStateChanged {
                host: "web-1".to_owned(),
                from: HostState::Idle,
                to: HostState::PendingUpdates,
            },
        };
        let value = serde_json::to_value(&message).unwrap();
        assert_eq!(
            value,
            json!({"seq": 7, "time": "2025-06-01T12:00:00Z", "type": "host_state_changed",
                   "host": "web-1", "from": "idle", "to": "pending_updates"})
        );
        let back: StreamMessage = serde_json::from_value(value).unwrap();
        assert_eq!(back, StreamMessage::Event(message));
    }

    #[test]
    fn control_messages_have_no_seq() {
        let value = serde_json::to_value(ControlMessage::Lagged { missed: 3 }).unwrap();
        assert_eq!(value, json!({"type": "lagged", "missed": 3}));
        let back: StreamMessage =
            serde_json::from_value(json!({"type": "replay_gap", "oldest_seq": 9})).unwrap();
        assert_eq!(
            back,
            StreamMessage::Control(ControlMessage::ReplayGap { oldest_seq: 9 })
        );
    }

    #[test]
    fn job_started_round_trips() {
        let text =
            r#"{"seq":1,"time":"t","type":"job_started","job_id":"j","host":"h","kind":"check"}"#;
        let StreamMessage::Event(message) = serde_json::from_str(text).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(
            message.event,
            EventPayload::JobStarted {
                job_id: "j".to_owned(),
                host: "h".to_owned(),
                kind: JobKind::Check
            }
        );
        assert_eq!(serde_json::to_string(&message).unwrap(), text);
    }
}
