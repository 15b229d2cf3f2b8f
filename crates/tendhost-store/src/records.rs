//! The store's own record types: plain data as stored, one struct per table row, plus the few
//! state names the store itself must understand (for recovery and retention). These are not wire
//! types: the daemon maps them to and from `tendhost-api`. No SQL lives here.

use serde_json::Value;

/// Job state names the store interprets; any other string is stored as given.
pub mod job_state {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    /// Set by recovery on jobs that were `queued` or `running` when the daemon stopped.
    pub const INTERRUPTED: &str = "interrupted";
}

/// Rollout state names the store interprets; any other string is stored as given.
pub mod rollout_state {
    pub const RUNNING: &str = "running";
    /// Waiting for approval: kept as it is by recovery and never pruned.
    pub const AWAITING_APPROVAL: &str = "awaiting_approval";
    /// Set by recovery on rollouts that were `running` when the daemon stopped.
    pub const INTERRUPTED: &str = "interrupted";
}

/// A host added at runtime through the API (config-file hosts are never stored).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeHostRecord {
    pub name: String,
    pub addr: String,
    pub port: u16,
    /// `None`: the daemon's defaults apply.
    pub user: Option<String>,
    pub ssh_key: Option<String>,
    pub tags: Vec<String>,
    /// `None`: the daemon's defaults apply.
    pub sudo: Option<bool>,
    /// Any further fields of the host definition, as a JSON object (`{}` when none).
    pub extra: Value,
    pub added_at_ms: i64,
}

/// A host's last known state (config and runtime hosts alike), keyed by host name.
#[derive(Debug, Clone, PartialEq)]
pub struct HostStatusRecord {
    pub name: String,
    pub state: String,
    /// The failure record (previous state, error, failed_at, retry_count, acknowledged).
    pub failure: Option<Value>,
    /// The pending updates, as a JSON array.
    pub pending_updates: Value,
    /// `required`, `not_required` or `unknown`.
    pub reboot_state: String,
    pub inventory: Option<Value>,
    pub last_check_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// The last health check (ok, output, attempts, at, job id), when one ran.
    pub health: Option<Value>,
    /// Processes still running replaced code after the last update, as a JSON array.
    pub services_to_restart: Value,
    /// Since when each pending package has been pending: a JSON object, name to Unix ms.
    pub pending_since: Value,
}

/// One job (check, update, reboot) on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    pub host: String,
    pub kind: String,
    pub params: Value,
    pub state: String,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub outcome: Option<Value>,
    /// Packages changed by the job, as a JSON array (`[]` when none).
    pub packages_changed: Value,
}

/// The end of a job, written by [`crate::Store::complete_job`].
#[derive(Debug, Clone, PartialEq)]
pub struct JobCompletion {
    pub state: String,
    pub finished_at_ms: i64,
    pub outcome: Option<Value>,
    pub packages_changed: Value,
}

/// One line of a job's output log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLineRecord {
    pub job_id: String,
    /// 0, 1, 2... per job, in the order the lines were logged.
    pub idx: i64,
    /// `stdout` or `stderr` (stored as given).
    pub stream: String,
    pub time_ms: i64,
    pub line: String,
}

/// An event before the store gives it its `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub time_ms: i64,
    /// The event type (`job_started`, `host_state_changed`...).
    pub kind: String,
    pub host: Option<String>,
    /// The event's other fields, as the caller chose to encode them.
    pub body: Value,
    /// The caller's own number for this event, handed back with the committed record to the
    /// [`crate::EventSink`] (to match it with what was submitted); never stored.
    pub correlation: u64,
}

/// A committed event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub time_ms: i64,
    pub kind: String,
    pub host: Option<String>,
    pub body: Value,
}

/// A fleet rollout with its batches and hosts.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRecord {
    pub id: String,
    pub params: Value,
    pub state: String,
    pub created_at_ms: i64,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Ordered by `idx`.
    pub batches: Vec<RolloutBatchRecord>,
    /// In the order they were first stored (canary first, then batch order).
    pub hosts: Vec<RolloutHostRecord>,
}

/// One batch of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutBatchRecord {
    pub idx: i64,
    pub state: String,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// One host's status within a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutHostRecord {
    pub host: String,
    /// `None` for a host never put in a batch (e.g. skipped up front).
    pub batch_idx: Option<i64>,
    pub state: String,
    pub job_id: Option<String>,
    /// Anything else (skip reason, error), as a JSON object (`{}` when none).
    pub detail: Value,
    pub updated_at_ms: i64,
}

/// Optional filters for [`crate::Store::list_jobs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub host: Option<String>,
    pub state: Option<String>,
    pub kind: Option<String>,
}

/// Which slice of a list to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u32,
    pub limit: u32,
}

/// One page of a list and the total number of matching items.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// What [`crate::Store::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub jobs: u64,
    pub output_lines: u64,
    pub events: u64,
    pub rollouts: u64,
}
