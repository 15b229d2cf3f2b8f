//! Test-only hooks (cargo feature `testing`): a standalone event bus that the daemon's
//! persistence tests can publish on, without a fleet. Never enabled in the daemon's build.

use std::sync::Arc;

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
