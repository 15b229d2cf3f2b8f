//! Test-only hooks (cargo feature `testing`): a standalone event bus that the daemon's
//! persistence tests can publish on, without a fleet, and a hook that makes a host's next job
//! task panic. Never enabled in the daemon's build.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use crate::events::{EventBus, EventKind, EventTransport};

/// A bus whose first event gets `first_seq`, with its replay buffer and channel sizes.
pub fn event_bus(first_seq: u64, buffer_len: usize, channel_capacity: usize) -> EventBus {
    EventBus::new(first_seq, buffer_len, channel_capacity)
}

/// Routes `bus`'s events through `transport` (as the fleet does with the store).
pub fn set_transport(bus: &EventBus, transport: Arc<dyn EventTransport>) {
    bus.set_transport(transport);
}

/// Publishes `kind` as the core would.
pub fn publish(bus: &EventBus, kind: EventKind) {
    bus.publish(kind);
}

/// Hosts whose next job task panics (set by `Fleet::panic_next_job`).
static PANIC_NEXT_JOB: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Makes the next job task of `host` panic once it runs.
pub(crate) fn arm_job_panic(host: &str) {
    PANIC_NEXT_JOB
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get_or_insert_with(HashSet::new)
        .insert(host.to_owned());
}

/// Called by every job task: panics when the host's next job was armed to.
pub(crate) fn job_panic_hook(host: &str) {
    let armed = PANIC_NEXT_JOB
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
        .is_some_and(|hosts| hosts.remove(host));
    assert!(
        !armed,
        "deliberate panic in a job task of {host} (test hook)"
    );
}
