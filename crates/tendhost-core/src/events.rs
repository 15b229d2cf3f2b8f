//! The event bus: every state change and job step, numbered by ONE daemon-wide sequence.
//!
//! `publish` assigns `seq`, appends to the in-memory replay buffer and broadcasts, all under one
//! lock, so broadcast order is seq order. `subscribe_since` takes the same lock to copy the
//! buffered tail and subscribe at once: a subscriber gets every event after `since` exactly once
//! (no gap and no duplicate at the seam between replay and live). Slow subscribers lag (tokio
//! broadcast) instead of blocking publishers.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use tokio::sync::broadcast;

use crate::state::{HostState, JobKind};

/// One event: `seq` (daemon-wide, +1 per event), when, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub seq: u64,
    pub time: Timestamp,
    pub kind: EventKind,
}

/// Output stream of a job line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    HostStateChanged {
        host: String,
        from: HostState,
        to: HostState,
    },
    JobStarted {
        job_id: String,
        host: String,
        kind: JobKind,
    },
    JobOutput {
        job_id: String,
        host: String,
        stream: OutputStream,
        line: String,
    },
    UpdateProgress {
        host: String,
        package: String,
        done: u32,
        total: u32,
    },
    JobFinished {
        job_id: String,
        host: String,
        /// Job state wire name (`succeeded`, `failed`, `busy`, `lost`, ...).
        outcome: String,
    },
    HostConnected {
        host: String,
    },
    HostDisconnected {
        host: String,
        reason: String,
    },
    RolloutStarted {
        rollout_id: String,
        hosts: Vec<String>,
        n_batches: usize,
        dry_run: bool,
    },
    BatchStarted {
        rollout_id: String,
        batch: usize,
        hosts: Vec<String>,
    },
    BatchFinished {
        rollout_id: String,
        batch: usize,
        succeeded: usize,
        failed: usize,
    },
    RolloutFinished {
        rollout_id: String,
        /// Rollout state wire name.
        state: String,
    },
    /// A rollout finished batch `after_batch` and waits for approval.
    RolloutAwaitingApproval {
        rollout_id: String,
        after_batch: usize,
    },
    /// A rollout waiting for approval was approved by `by` (a token name).
    RolloutApproved {
        rollout_id: String,
        by: String,
    },
    /// A host's health check ran (after an update, or before it with `pre_check`).
    HealthCheckFinished {
        host: String,
        job_id: Option<String>,
        ok: bool,
        output: String,
    },
    HostAdded {
        host: String,
    },
    HostRemoved {
        host: String,
    },
    /// The daemon serves a new TLS certificate (renewed, or new files loaded).
    CertificateRenewed {
        serial: String,
        not_after: Timestamp,
    },
    /// A replacement TLS certificate was refused; the old one keeps serving.
    CertificateReloadFailed {
        path: String,
        error: String,
    },
    /// The config file was re-read (SIGHUP) and applied: host names added, removed (a host
    /// with a running job goes when the job ends), changed (new settings from its next job).
    ConfigReloaded {
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
    },
    /// The config file was re-read and refused; nothing changed. Each problem as
    /// `file:line:col: message`.
    ConfigReloadFailed {
        errors: Vec<String>,
    },
    /// A `[[schedule]]` started its rollout.
    ScheduleTriggered {
        schedule: String,
        rollout_id: String,
    },
    /// A host of a rollout is outside its maintenance window and waits for it to open.
    HostDeferred {
        rollout_id: String,
        host: String,
        opens_at: Timestamp,
    },
    /// The ACME CA did not issue a certificate; the current one keeps serving.
    CertificateRenewalFailed {
        error: String,
        next_attempt: Timestamp,
    },
}

impl EventKind {
    /// Wire name of the event type.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::HostStateChanged { .. } => "host_state_changed",
            EventKind::JobStarted { .. } => "job_started",
            EventKind::JobOutput { .. } => "job_output",
            EventKind::UpdateProgress { .. } => "update_progress",
            EventKind::JobFinished { .. } => "job_finished",
            EventKind::HostConnected { .. } => "host_connected",
            EventKind::HostDisconnected { .. } => "host_disconnected",
            EventKind::RolloutStarted { .. } => "rollout_started",
            EventKind::BatchStarted { .. } => "batch_started",
            EventKind::BatchFinished { .. } => "batch_finished",
            EventKind::RolloutFinished { .. } => "rollout_finished",
            EventKind::RolloutAwaitingApproval { .. } => "rollout_awaiting_approval",
            EventKind::RolloutApproved { .. } => "rollout_approved",
            EventKind::HealthCheckFinished { .. } => "health_check_finished",
            EventKind::HostAdded { .. } => "host_added",
            EventKind::HostRemoved { .. } => "host_removed",
            EventKind::CertificateRenewed { .. } => "certificate_renewed",
            EventKind::CertificateReloadFailed { .. } => "certificate_reload_failed",
            EventKind::ConfigReloaded { .. } => "config_reloaded",
            EventKind::ConfigReloadFailed { .. } => "config_reload_failed",
            EventKind::ScheduleTriggered { .. } => "schedule_triggered",
            EventKind::HostDeferred { .. } => "host_deferred",
            EventKind::CertificateRenewalFailed { .. } => "certificate_renewal_failed",
        }
    }

    /// The host the event is about, if any (for `?host=` filters).
    pub fn host(&self) -> Option<&str> {
        match self {
            EventKind::HostStateChanged { host, .. }
            | EventKind::JobStarted { host, .. }
            | EventKind::JobOutput { host, .. }
            | EventKind::UpdateProgress { host, .. }
            | EventKind::JobFinished { host, .. }
            | EventKind::HostConnected { host }
            | EventKind::HostDisconnected { host, .. }
            | EventKind::HostAdded { host }
            | EventKind::HostRemoved { host }
            | EventKind::HealthCheckFinished { host, .. }
            | EventKind::HostDeferred { host, .. } => Some(host),
            EventKind::RolloutStarted { .. }
            | EventKind::BatchStarted { .. }
            | EventKind::BatchFinished { .. }
            | EventKind::RolloutFinished { .. }
            | EventKind::RolloutAwaitingApproval { .. }
            | EventKind::RolloutApproved { .. }
            | EventKind::CertificateRenewed { .. }
            | EventKind::CertificateReloadFailed { .. }
            | EventKind::ConfigReloaded { .. }
            | EventKind::ConfigReloadFailed { .. }
            | EventKind::ScheduleTriggered { .. }
            | EventKind::CertificateRenewalFailed { .. } => None,
        }
    }
}

/// All event type wire names (for validating `?types=`).
pub const EVENT_TYPES: [&str; 23] = [
    "host_state_changed",
    "job_started",
    "job_output",
    "update_progress",
    "job_finished",
    "host_connected",
    "host_disconnected",
    "rollout_started",
    "batch_started",
    "batch_finished",
    "rollout_finished",
    "host_added",
    "host_removed",
    "certificate_renewed",
    "certificate_reload_failed",
    "rollout_awaiting_approval",
    "rollout_approved",
    "health_check_finished",
    "config_reloaded",
    "config_reload_failed",
    "schedule_triggered",
    "host_deferred",
    "certificate_renewal_failed",
];

/// Durable path for events: takes each published event, stores it, and hands it back with
/// its committed `seq` through [`EventBus::deliver`], in `seq` order. With a transport the
/// store (not the bus) numbers events, so an event is never seen before it is committed and a
/// `seq` is never reused after a crash.
pub trait EventTransport: Send + Sync {
    fn submit(&self, kind: EventKind);
}

/// What a new subscriber gets before going live.
#[derive(Debug)]
pub struct Replay {
    /// Set when events after `since` are no longer buffered: the oldest seq still available.
    pub gap_oldest_seq: Option<u64>,
    /// Buffered events with `seq > since`, oldest first.
    pub events: Vec<Arc<Event>>,
}

struct BusState {
    next_seq: u64,
    buffer: VecDeque<Arc<Event>>,
}

/// The daemon-wide event bus. Cheap to clone. Only the core publishes; the daemon
/// subscribes (`subscribe_since`) and, as the `EventTransport`, delivers committed events.
#[derive(Clone)]
pub struct EventBus {
    state: Arc<Mutex<BusState>>,
    sender: broadcast::Sender<Arc<Event>>,
    buffer_len: usize,
    transport: Arc<Mutex<Option<Arc<dyn EventTransport>>>>,
}

impl EventBus {
    /// A bus whose first event gets `first_seq`, keeping the last `buffer_len` events for
    /// replay, with room for `channel_capacity` events per subscriber before it lags.
    pub(crate) fn new(first_seq: u64, buffer_len: usize, channel_capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(channel_capacity.max(1));
        Self {
            state: Arc::new(Mutex::new(BusState {
                next_seq: first_seq.max(1),
                buffer: VecDeque::with_capacity(buffer_len),
            })),
            sender,
            buffer_len: buffer_len.max(1),
            transport: Arc::new(Mutex::new(None)),
        }
    }

    /// Routes events through `transport` from now on (the daemon sets the store here).
    pub(crate) fn set_transport(&self, transport: Arc<dyn EventTransport>) {
        *self
            .transport
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(transport);
    }

    /// Publishes one event. Without a transport it is numbered, buffered and broadcast at
    /// once; with one, it is broadcast when the transport delivers it back committed.
    pub(crate) fn publish(&self, kind: EventKind) {
        let transport = self
            .transport
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(transport) = transport {
            transport.submit(kind);
        } else {
            {
                let mut state = self
                    .state
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let seq = state.next_seq;
                let event = Event {
                    seq,
                    time: Timestamp::now(),
                    kind,
                };
                Self::push(&mut state, &self.sender, self.buffer_len, event);
            }
        }
    }

    /// Buffers and broadcasts an event the transport committed with its `seq`.
    pub fn deliver(&self, event: Event) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::push(&mut state, &self.sender, self.buffer_len, event);
    }

    fn push(
        state: &mut BusState,
        sender: &broadcast::Sender<Arc<Event>>,
        buffer_len: usize,
        event: Event,
    ) {
        state.next_seq = event.seq + 1;
        let event = Arc::new(event);
        if state.buffer.len() == buffer_len {
            state.buffer.pop_front();
        }
        state.buffer.push_back(Arc::clone(&event));
        // No receivers is fine.
        let _ = sender.send(event);
    }

    /// Subscribes and returns the buffered events after `since` (all buffered when `None`
    /// means "live only": no replay).
    pub fn subscribe_since(&self, since: Option<u64>) -> (Replay, broadcast::Receiver<Arc<Event>>) {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let receiver = self.sender.subscribe();
        let Some(since) = since else {
            return (
                Replay {
                    gap_oldest_seq: None,
                    events: Vec::new(),
                },
                receiver,
            );
        };
        let oldest = state
            .buffer
            .front()
            .map_or(state.next_seq, |event| event.seq);
        let gap_oldest_seq = (since.saturating_add(1) < oldest).then_some(oldest);
        let events = state
            .buffer
            .iter()
            .filter(|event| event.seq > since)
            .cloned()
            .collect();
        (
            Replay {
                gap_oldest_seq,
                events,
            },
            receiver,
        )
    }

    /// The seq the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next_seq
    }
}

#[cfg(test)]
mod tests {
    use crate::events::{EventBus, EventKind};

    fn added(name: &str) -> EventKind {
        EventKind::HostAdded {
            host: name.to_owned(),
        }
    }

    #[test]
    fn seq_increases_by_one_per_event() {
        let bus = EventBus::new(1, 10, 10);
        bus.publish(added("a"));
        bus.publish(added("b"));
        let (replay, _) = bus.subscribe_since(Some(0));
        let seqs: Vec<u64> = replay.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2]);
        let bus = EventBus::new(41, 10, 10);
        bus.publish(added("a"));
        assert_eq!(bus.next_seq(), 42);
    }

    #[tokio::test]
    async fn replay_then_live_without_gap_or_duplicate() {
        let bus = EventBus::new(1, 100, 100);
        for idx in 0..5 {
            bus.publish(added(&format!("h{idx}")));
        }
        let (replay, mut live) = bus.subscribe_since(Some(2));
        assert_eq!(replay.gap_oldest_seq, None);
        let seqs: Vec<u64> = replay.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        bus.publish(added("later"));
        assert_eq!(live.recv().await.unwrap().seq, 6);
    }

    #[test]
    fn replay_gap_when_since_is_older_than_the_buffer() {
        let bus = EventBus::new(1, 3, 10);
        for idx in 0..10 {
            bus.publish(added(&format!("h{idx}")));
        }
        let (replay, _) = bus.subscribe_since(Some(2));
        assert_eq!(replay.gap_oldest_seq, Some(8));
        assert_eq!(replay.events.len(), 3);
        // Exactly at the edge: since = 7 means the next wanted is 8, which is buffered.
        let (replay, _) = bus.subscribe_since(Some(7));
        assert_eq!(replay.gap_oldest_seq, None);
        // since = 0 on a fresh bus is no gap.
        let fresh = EventBus::new(1, 3, 10);
        assert_eq!(fresh.subscribe_since(Some(0)).0.gap_oldest_seq, None);
    }
}
