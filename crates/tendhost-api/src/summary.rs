//! `GET /fleet/summary`: the aggregate the dashboard's overview shows, computed by the daemon
//! in one pass over the fleet so that 10,000 hosts cost one small answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::hosts::HostState;

/// Hosts per state (every state is listed, zeros included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"state": "pending_updates", "hosts": 12}))]
pub struct StateCount {
    pub state: HostState,
    pub hosts: u64,
}

/// Hosts per operating system (name and version from the last inventory; `unknown` before the
/// first check).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"os": "Debian GNU/Linux 12", "hosts": 40}))]
pub struct OsCount {
    pub os: String,
    pub hosts: u64,
}

/// A failed or unreachable host, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "web-07", "state": "unreachable", "reason": "cannot connect: connection refused"}))]
pub struct AttentionHost {
    pub name: String,
    pub state: HostState,
    /// The failure's error or the last connection problem.
    pub reason: Option<String>,
}

/// The fleet at a glance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "n_hosts": 50,
    "by_state": [{"state": "idle", "hosts": 38}, {"state": "pending_updates", "hosts": 10}, {"state": "unreachable", "hosts": 2}],
    "up_to_date": 38, "with_pending": 4, "with_security": 6,
    "pending_updates": 31, "security_updates": 9,
    "reboot_required": 3,
    "needs_attention": 2,
    "attention": [{"name": "web-07", "state": "unreachable", "reason": "cannot connect"}],
    "reboot_hosts": ["db-01"],
    "os": [{"os": "Debian GNU/Linux 12", "hosts": 40}, {"os": "Fedora Linux 40", "hosts": 10}]
}))]
pub struct FleetSummary {
    pub n_hosts: u64,
    /// Every host state with its count, in the state machine's order.
    pub by_state: Vec<StateCount>,
    /// Hosts with no pending update (the donut's first slice).
    pub up_to_date: u64,
    /// Hosts with pending updates, none of them security updates.
    pub with_pending: u64,
    /// Hosts with at least one pending security update.
    pub with_security: u64,
    /// Pending updates over all hosts.
    pub pending_updates: u64,
    /// Pending security updates over all hosts.
    pub security_updates: u64,
    /// Hosts whose reboot state is `required`.
    pub reboot_required: u64,
    /// Failed and unreachable hosts.
    pub needs_attention: u64,
    /// The first 50 of them, by name.
    pub attention: Vec<AttentionHost>,
    /// The first 50 hosts needing a reboot, by name.
    pub reboot_hosts: Vec<String>,
    /// Hosts per operating system, most common first.
    pub os: Vec<OsCount>,
}
