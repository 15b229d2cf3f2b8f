//! Read models and requests that cross the core's boundary: a host's status (what the store
//! keeps and a restart hands back) and snapshot, job and rollout snapshots, rollout requests
//! and filters, and `FleetError`, the one error the fleet facade returns. Plain domain data;
//! the daemon maps it to wire types and store records.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
pub use tendhost_pkg::Packages;
use tendhost_pkg::{
    CheckReport, Inventory, PackageManager, PendingUpdate, RebootState, Removal, ServiceToRestart,
    UpgradedPackage,
};

use crate::events::OutputStream;
use crate::spec::{HostOrigin, MaintenanceWindow, UpdatePolicy};
use crate::state::{FailureRecord, HostState, JobKind};

/// Mutable facts about a host: what its jobs found and where it stands. The store mirrors it
/// (`Persistence::host_changed`) and a restart hands it back to `Fleet::start`.
#[derive(Debug, Clone)]
pub struct HostStatus {
    pub state: HostState,
    pub failure: Option<FailureRecord>,
    pub report: CheckReport,
    pub reboot: RebootState,
    pub inventory: Option<Inventory>,
    pub manager: Option<PackageManager>,
    pub last_check: Option<Timestamp>,
    pub current_job: Option<String>,
    pub last_error: Option<String>,
    /// A detached upgrade that was lost (host unreachable past the reconnect window): the next
    /// check collects its real outcome.
    pub lost_job: Option<LostJob>,
    /// The last health check (stored with the status: a restart keeps it).
    pub last_health_check: Option<HealthReport>,
    /// After the last update: processes still running replaced code (stored with the status).
    pub services_to_restart: Vec<ServiceToRestart>,
    /// What `report` was read from on an apt host (`tendhost_pkg::Look::fingerprint`; in
    /// memory: a restart forgets it): the next check reuses `report` while it matches.
    pub look_fingerprint: Option<String>,
    /// When each pending package (by name) was first found pending; kept while it stays
    /// pending, whatever newer version a later check finds for it.
    pub pending_since: BTreeMap<String, Timestamp>,
}

impl HostStatus {
    /// Takes a check's report found at `now`: packages pending before keep their
    /// `pending_since`, new ones get `now`, packages no longer pending are forgotten.
    pub fn set_report(&mut self, report: CheckReport, now: Timestamp) {
        let mut since = BTreeMap::new();
        for update in &report.pending {
            let first_seen = self.pending_since.get(&update.name).copied().unwrap_or(now);
            since.insert(update.name.clone(), first_seen);
        }
        self.pending_since = since;
        self.report = report;
    }
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub ok: bool,
    /// What the last attempt said.
    pub output: String,
    pub attempts: u32,
    pub at: Timestamp,
    /// The job it ran in (`None`: a pre-check before a job was created).
    pub job_id: Option<String>,
}

/// A detached upgrade whose outcome is still on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostJob {
    pub job_id: String,
    /// Bytes of the host-side log already read (0: read it all again).
    pub log_offset: u64,
}

impl Default for HostStatus {
    fn default() -> Self {
        Self {
            state: HostState::Idle,
            failure: None,
            report: CheckReport::default(),
            reboot: RebootState::Unknown,
            inventory: None,
            manager: None,
            last_check: None,
            current_job: None,
            last_error: None,
            lost_job: None,
            last_health_check: None,
            services_to_restart: Vec::new(),
            pending_since: BTreeMap::new(),
            look_fingerprint: None,
        }
    }
}

/// Everything known about one host, as of now.
#[derive(Debug, Clone)]
pub struct HostSnapshot {
    pub name: String,
    /// `local` or the SSH address.
    pub addr: String,
    pub port: Option<u16>,
    pub user: String,
    pub tags: Vec<String>,
    pub groups: Vec<String>,
    pub origin: HostOrigin,
    pub updates: UpdatePolicy,
    pub auto_reboot: bool,
    pub maintenance_window: Option<MaintenanceWindow>,
    pub state: HostState,
    pub failure: Option<FailureRecord>,
    pub pending: Vec<PendingUpdate>,
    pub held: Vec<String>,
    pub kept_back: Vec<String>,
    pub removals: Vec<Removal>,
    pub reboot: RebootState,
    pub inventory: Option<Inventory>,
    pub last_check: Option<Timestamp>,
    pub current_job: Option<String>,
    /// Last connection problem, if the host is unreachable.
    pub last_error: Option<String>,
    pub last_health_check: Option<HealthReport>,
    pub services_to_restart: Vec<ServiceToRestart>,
    /// When each pending package was first found pending (by name).
    pub pending_since: BTreeMap<String, Timestamp>,
}

impl HostSnapshot {
    /// Since when the oldest pending security update has been pending.
    pub fn security_pending_since(&self) -> Option<Timestamp> {
        self.pending
            .iter()
            .filter(|update| update.security)
            .filter_map(|update| self.pending_since.get(&update.name))
            .min()
            .copied()
    }
}

/// Job lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Busy,
    Lost,
    Cancelled,
    Interrupted,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Busy,
        JobState::Lost,
        JobState::Cancelled,
        JobState::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Busy => "busy",
            JobState::Lost => "lost",
            JobState::Cancelled => "cancelled",
            JobState::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    pub fn is_finished(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// One line of a job's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub time: Timestamp,
    pub stream: OutputStream,
    pub line: String,
}

/// Options of an update job.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateOptions {
    pub dry_run: bool,
    /// Ignore the maintenance window.
    pub force: bool,
    /// What the update installs (the host's excludes still apply).
    pub packages: Packages,
    /// For this job, instead of the host's `auto_reboot`; `None` keeps it.
    pub reboot: Option<RebootChoice>,
}

impl UpdateOptions {
    /// A plain update or reboot: every package, the host's own reboot policy.
    pub fn new(dry_run: bool, force: bool) -> Self {
        Self {
            dry_run,
            force,
            ..Self::default()
        }
    }
}

/// Whether an update reboots its host afterwards (a schedule's `reboot`), overriding the
/// host's `auto_reboot` for that run; the maintenance window still applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebootChoice {
    /// Never reboot.
    Never,
    /// Reboot when the host says it needs one (`auto_reboot = true`).
    IfRequired,
    /// Reboot after every update that ran.
    Always,
}

impl RebootChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            RebootChoice::Never => "never",
            RebootChoice::IfRequired => "if_required",
            RebootChoice::Always => "always",
        }
    }

    pub fn parse(s: &str) -> Option<RebootChoice> {
        [
            RebootChoice::Never,
            RebootChoice::IfRequired,
            RebootChoice::Always,
        ]
        .into_iter()
        .find(|choice| choice.as_str() == s)
    }
}

/// A job, as of now.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub id: String,
    pub host: String,
    pub kind: JobKind,
    pub state: JobState,
    pub options: UpdateOptions,
    pub rollout_id: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    /// Human summary of the outcome (error message for failures).
    pub summary: Option<String>,
    pub exit_code: Option<i32>,
    pub packages_changed: Vec<UpgradedPackage>,
    /// Of `packages_changed`, those the selection did not name: what the package manager
    /// installed or upgraded for the selected packages.
    pub also_installed: Vec<UpgradedPackage>,
    pub packages_failed: Vec<String>,
    /// For dry runs and checks: what would be upgraded.
    pub pending: Vec<PendingUpdate>,
    /// For dry runs: the exact commands that would run.
    pub commands: Vec<String>,
    /// Updates: processes still running replaced code when the job ended.
    pub services_to_restart: Vec<ServiceToRestart>,
    pub log: Vec<LogLine>,
}

impl JobSnapshot {
    /// A job just created: `queued`, nothing run or found yet.
    pub fn queued(
        id: String,
        host: String,
        kind: JobKind,
        options: UpdateOptions,
        rollout_id: Option<String>,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            host,
            kind,
            state: JobState::Queued,
            options,
            rollout_id,
            created_at,
            started_at: None,
            finished_at: None,
            summary: None,
            exit_code: None,
            packages_changed: Vec::new(),
            also_installed: Vec::new(),
            packages_failed: Vec::new(),
            pending: Vec::new(),
            commands: Vec::new(),
            services_to_restart: Vec::new(),
            log: Vec::new(),
        }
    }
}

/// Which hosts a fleet operation targets. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFilter {
    /// Hosts must carry all these tags.
    pub tags: Vec<String>,
    /// Hosts must be in at least one of these groups.
    pub groups: Vec<String>,
    pub exclude_hosts: Vec<String>,
    /// Only these hosts.
    pub hosts: Vec<String>,
}

/// `max_failures`: a count or a percentage of the targeted hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxFailures {
    Count(usize),
    Percent(u8),
}

impl MaxFailures {
    /// Failures allowed for `n_hosts` targets; the rollout stops when failures exceed it.
    pub fn allowed(self, n_hosts: usize) -> usize {
        match self {
            MaxFailures::Count(count) => count,
            MaxFailures::Percent(percent) => n_hosts * usize::from(percent) / 100,
        }
    }

    /// Parses `"N%"` (0..=100).
    pub fn parse_percent(s: &str) -> Option<MaxFailures> {
        let digits = s.strip_suffix('%')?;
        let value: u8 = digits.trim().parse().ok()?;
        (value <= 100).then_some(MaxFailures::Percent(value))
    }
}

/// What `POST /fleet/update` asks for (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRequest {
    pub batch_size: usize,
    pub delay: Duration,
    pub max_failures: MaxFailures,
    pub canary: Vec<String>,
    pub filter: HostFilter,
    pub dry_run: bool,
    pub force: bool,
    /// Wait for `POST /rollouts/{id}/approve` after this batch (`None`: never wait).
    pub approve_after: Option<ApproveAfter>,
    /// A rollout still waiting for approval this long after its gate opened is cancelled.
    pub approval_timeout: Option<Duration>,
    /// What each host's update installs.
    pub packages: Packages,
    /// For this run, instead of each host's `auto_reboot`.
    pub reboot: Option<RebootChoice>,
    /// Hosts outside their maintenance window wait in the rollout (`deferred`) for it to open
    /// rather than being skipped; at most `window_grace` after the rollout started.
    pub defer_outside_window: bool,
    pub window_grace: Duration,
    /// Who started it.
    pub trigger: Trigger,
}

/// `approve_after`: the batch after which a rollout waits for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproveAfter {
    /// The canary batch (the rollout needs canary hosts).
    Canary,
    /// The batch with this index (from 0, as `RolloutBatch::index`).
    Batch(usize),
}

/// A rollout waiting at its approval gate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalGate {
    /// The batch that finished before the gate.
    pub after_batch: usize,
    pub since: Timestamp,
    /// When the wait is cancelled (`approval_timeout`), if ever.
    pub deadline: Option<Timestamp>,
}

/// The default `window_grace`: one day.
pub const DEFAULT_WINDOW_GRACE: Duration = Duration::from_secs(24 * 3600);

/// Who started a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A request through the API, with the name of its token (`None` with auth off, or in a
    /// rollout stored before triggers were recorded).
    Api(Option<String>),
    /// A `[[schedule]]`, by name.
    Schedule(String),
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::Api(None)
    }
}

/// What kind of fleet operation a rollout runs on each host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutKind {
    Check,
    Update,
}

impl RolloutKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutKind::Check => "check",
            RolloutKind::Update => "update",
        }
    }
}

/// Rollout lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    Running,
    /// Waiting at its approval gate (`approve_after`) for `POST /rollouts/{id}/approve`.
    AwaitingApproval,
    Completed,
    /// Stopped because failures exceeded `max_failures`.
    Stopped,
    Cancelled,
    Interrupted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::AwaitingApproval => "awaiting_approval",
            RolloutState::Completed => "completed",
            RolloutState::Stopped => "stopped",
            RolloutState::Cancelled => "cancelled",
            RolloutState::Interrupted => "interrupted",
        }
    }
}

/// A host's place in a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutHostState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    /// Outside its maintenance window, waiting for it to open (within the run's
    /// `window_grace`).
    Deferred,
}

impl RolloutHostState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutHostState::Pending => "pending",
            RolloutHostState::Running => "running",
            RolloutHostState::Succeeded => "succeeded",
            RolloutHostState::Failed => "failed",
            RolloutHostState::Skipped => "skipped",
            RolloutHostState::Cancelled => "cancelled",
            RolloutHostState::Deferred => "deferred",
        }
    }
}

/// One host in a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutHost {
    pub host: String,
    pub batch: usize,
    pub state: RolloutHostState,
    pub job_id: Option<String>,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
}

/// One batch of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutBatch {
    pub index: usize,
    pub hosts: Vec<String>,
    pub canary: bool,
    /// `pending`, `running`, `finished`, `skipped`.
    pub state: &'static str,
}

/// A rollout, as of now.
#[derive(Debug, Clone)]
pub struct RolloutSnapshot {
    pub id: String,
    pub kind: RolloutKind,
    pub state: RolloutState,
    pub request: RolloutRequest,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub batches: Vec<RolloutBatch>,
    pub hosts: Vec<RolloutHost>,
    pub n_failed: usize,
    /// Set while the rollout waits at its approval gate.
    pub gate: Option<ApprovalGate>,
    /// Who approved it (the token name), once approved.
    pub approved_by: Option<String>,
}

/// Why the fleet refused or could not do something. Each variant maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// 404.
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    /// 409 `host_busy`.
    #[error("host {host} is busy with job {job_id}")]
    HostBusy { host: String, job_id: String },
    /// 409 `invalid_transition`.
    #[error("cannot {action} host {host} while it is {current_state}: {hint}")]
    InvalidTransition {
        host: String,
        action: &'static str,
        current_state: HostState,
        hint: String,
    },
    /// 409 `updates_disabled`.
    #[error(
        "updates and reboots are disabled for host {host} (policy updates = \"check-only\"); set \
         `updates = \"allowed\"` in its [host.policy] to allow them"
    )]
    UpdatesDisabled { host: String },
    /// 409 `outside_maintenance_window`.
    #[error(
        "host {host} is outside its maintenance window ({window}); pass force = true to update anyway"
    )]
    OutsideMaintenanceWindow { host: String, window: String },
    /// 409 `unhealthy_before_update`: the host's `pre_check` failed before a single-host update.
    #[error(
        "host {host} is unhealthy before its update (health_check pre_check failed: {output}); \
         pass force = true to update anyway"
    )]
    UnhealthyBeforeUpdate { host: String, output: String },
    /// 409 `duplicate`.
    #[error("host {name:?} already exists")]
    Duplicate { name: String },
    /// 409 `config_host`.
    #[error("host {name:?} is defined in the config file; remove it there")]
    ConfigHost { name: String },
    /// 409 `rollout_finished`.
    #[error("rollout {id} is already {state}")]
    RolloutFinished { id: String, state: &'static str },
    /// 409 `invalid_rollout_state` (e.g. resuming a rollout that is not interrupted).
    #[error("rollout {id} is {state}: {hint}")]
    InvalidRollout {
        id: String,
        state: &'static str,
        hint: &'static str,
    },
    /// 422 naming the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// 503: the daemon is shutting down or an actor is gone.
    #[error("{0}")]
    Unavailable(String),
    /// 503: the orchestrator has stopped (the daemon is shutting down), so the fleet cannot be
    /// listed; never an empty list in its place.
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

impl FleetError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        FleetError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use tendhost_pkg::{CheckReport, PendingUpdate};

    use crate::model::HostStatus;

    fn report(names: &[&str]) -> CheckReport {
        CheckReport {
            pending: names
                .iter()
                .map(|name| PendingUpdate {
                    name: (*name).to_owned(),
                    current_version: Some("1".to_owned()),
                    new_version: "2".to_owned(),
                    origin: "Debian".to_owned(),
                    arch: "amd64".to_owned(),
                    security: true,
                    excluded: false,
                })
                .collect(),
            ..CheckReport::default()
        }
    }

    #[test]
    fn pending_since_stays_while_pending_and_goes_with_the_update() {
        let (day1, day2, day3) = (
            Timestamp::from_second(1_000_000).unwrap(),
            Timestamp::from_second(1_086_400).unwrap(),
            Timestamp::from_second(1_172_800).unwrap(),
        );
        let mut status = HostStatus::default();
        status.set_report(report(&["openssl"]), day1);
        status.set_report(report(&["openssl", "curl"]), day2);
        assert_eq!(status.pending_since["openssl"], day1, "kept while pending");
        assert_eq!(status.pending_since["curl"], day2, "new");
        status.set_report(report(&["curl"]), day3);
        assert!(
            !status.pending_since.contains_key("openssl"),
            "installed: forgotten"
        );
        status.set_report(report(&["openssl", "curl"]), day3);
        assert_eq!(
            status.pending_since["openssl"], day3,
            "pending again: from now"
        );
        assert_eq!(status.pending_since["curl"], day2);
    }
}
