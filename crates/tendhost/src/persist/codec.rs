//! The stored format: domain values (`tendhost-core`, `tendhost-pkg`) to the store's records
//! and back. The JSON columns' shapes are defined here by this module's own serde types, so the
//! stored format changes only when this file does, never with the wire types of
//! `tendhost-api` (the two happen to share field names today: the stored shapes were the wire
//! shapes of the first release, and databases it wrote must keep reading). Enum values are
//! stored by their domain names (`HostState::as_str` and friends); times in JSON as RFC 3339
//! with milliseconds, in columns as Unix epoch milliseconds. Pure conversions: no store access.
//!
//! JSON is built through `serde_json::Value`, whose objects keep their keys sorted: the text
//! written is byte for byte what earlier releases wrote.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tendhost_core::events::{EventKind, OutputStream};
use tendhost_core::model::{
    ApprovalGate, ApproveAfter, DEFAULT_WINDOW_GRACE, HostFilter, JobSnapshot, JobState, LogLine,
    MaxFailures, Packages, RebootChoice, RolloutBatch, RolloutHost, RolloutHostState, RolloutKind,
    RolloutRequest, RolloutSnapshot, RolloutState, Trigger, UpdateOptions,
};
use tendhost_core::model::{HealthReport, HostStatus};
use tendhost_core::state::{FailureRecord, HostState, JobKind};
use tendhost_pkg::{
    Inventory, InventorySource, PackageManager, PendingUpdate, RebootState, ServiceToRestart,
    UpgradedPackage,
};
use tendhost_store::{
    EventRecord, HostStatusRecord, JobRecord, OutputLineRecord, RolloutBatchRecord,
    RolloutHostRecord, RolloutRecord, job_state,
};

/// The summary of a job that was running when the daemon stopped.
pub const INTERRUPTED_SUMMARY: &str = "the daemon stopped while the job ran";

pub fn ms(timestamp: Timestamp) -> i64 {
    timestamp.as_millisecond()
}

pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn to_json(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or_default()
}

fn from_json<T: DeserializeOwned>(value: Value) -> Option<T> {
    serde_json::from_value(value).ok()
}

// ---- field encodings --------------------------------------------------------------------

/// A domain enum stored by its name.
trait Named: Sized {
    fn name(&self) -> &'static str;
    fn from_name(name: &str) -> Option<Self>;
}

impl Named for HostState {
    fn name(&self) -> &'static str {
        self.as_str()
    }
    fn from_name(name: &str) -> Option<Self> {
        HostState::parse(name)
    }
}

impl Named for JobKind {
    fn name(&self) -> &'static str {
        self.as_str()
    }
    fn from_name(name: &str) -> Option<Self> {
        JobKind::parse(name)
    }
}

impl Named for OutputStream {
    fn name(&self) -> &'static str {
        stream_name(*self)
    }
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "stdout" => Some(OutputStream::Stdout),
            "stderr" => Some(OutputStream::Stderr),
            _ => None,
        }
    }
}

/// `#[serde(with = "by_name")]`: a [`Named`] enum as its name.
mod by_name {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::persist::codec::Named;

    pub fn serialize<T: Named, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(value.name())
    }

    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        let name = String::deserialize(deserializer)?;
        T::from_name(&name).ok_or_else(|| D::Error::custom(format!("unknown name {name:?}")))
    }
}

pub fn stream_name(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    }
}

/// An output line's stream column (anything but `stderr` reads as stdout).
fn stream_of(name: &str) -> OutputStream {
    if name == "stderr" {
        OutputStream::Stderr
    } else {
        OutputStream::Stdout
    }
}

/// A time inside a JSON column: RFC 3339 with millisecond precision.
fn time_text(timestamp: Timestamp) -> String {
    from_ms(ms(timestamp)).to_string()
}

fn time_of(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

// ---- events -----------------------------------------------------------------------------

/// An event as stored: `type` goes to its own column, the other fields to `body`.
#[derive(Serialize, Deserialize)]
#[serde(remote = "EventKind", tag = "type", rename_all = "snake_case")]
enum StoredEvent {
    HostStateChanged {
        host: String,
        #[serde(with = "by_name")]
        from: HostState,
        #[serde(with = "by_name")]
        to: HostState,
    },
    JobStarted {
        job_id: String,
        host: String,
        #[serde(with = "by_name")]
        kind: JobKind,
    },
    JobOutput {
        job_id: String,
        host: String,
        #[serde(with = "by_name")]
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
        state: String,
    },
    HostAdded {
        host: String,
    },
    HostRemoved {
        host: String,
    },
    CertificateRenewed {
        serial: String,
        #[serde(with = "by_time")]
        not_after: Timestamp,
    },
    CertificateReloadFailed {
        path: String,
        error: String,
    },
    RolloutAwaitingApproval {
        rollout_id: String,
        after_batch: usize,
    },
    RolloutApproved {
        rollout_id: String,
        by: String,
    },
    HealthCheckFinished {
        host: String,
        job_id: Option<String>,
        ok: bool,
        output: String,
    },
    ConfigReloaded {
        added: Vec<String>,
        removed: Vec<String>,
        changed: Vec<String>,
    },
    ConfigReloadFailed {
        errors: Vec<String>,
    },
    ScheduleTriggered {
        schedule: String,
        rollout_id: String,
    },
    HostDeferred {
        rollout_id: String,
        host: String,
        #[serde(with = "by_time")]
        opens_at: Timestamp,
    },
    CertificateRenewalFailed {
        error: String,
        #[serde(with = "by_time")]
        next_attempt: Timestamp,
    },
}

/// `#[serde(with = "by_time")]`: a time as RFC 3339 text with milliseconds.
mod by_time {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::time_text(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::time_of(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// The `body` column of an event: its fields without `type`.
pub fn event_body(kind: &EventKind) -> Value {
    let mut value = StoredEvent::serialize(kind, serde_json::value::Serializer).unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("type");
    }
    value
}

/// A stored event back as the domain event (`None` when its type or fields are unknown).
/// Fields this release does not know (such as the `_n` correlation key of earlier releases)
/// are ignored.
pub fn event_kind(record: &EventRecord) -> Option<EventKind> {
    let mut fields = record.body.as_object()?.clone();
    fields.insert("type".to_owned(), Value::String(record.kind.clone()));
    StoredEvent::deserialize(Value::Object(fields)).ok()
}

// ---- host status ------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct StoredFailure {
    #[serde(with = "by_name")]
    previous_state: HostState,
    #[serde(with = "by_name")]
    action: JobKind,
    error: String,
    failed_at: String,
    retry_count: u32,
    acknowledged: bool,
    job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "PendingUpdate")]
struct StoredPendingUpdate {
    name: String,
    current_version: Option<String>,
    new_version: String,
    origin: String,
    arch: String,
    security: bool,
    /// Written only when set, so rows without excludes keep the first release's bytes.
    #[serde(default, skip_serializing_if = "is_false")]
    excluded: bool,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_false(value: &bool) -> bool {
    !*value
}

/// One pending update in a JSON array.
#[derive(Serialize, Deserialize)]
struct Pending(#[serde(with = "StoredPendingUpdate")] PendingUpdate);

fn pending_json(pending: &[PendingUpdate]) -> Vec<Pending> {
    pending.iter().cloned().map(Pending).collect()
}

fn pending_of(pending: Vec<Pending>) -> Vec<PendingUpdate> {
    pending.into_iter().map(|Pending(update)| update).collect()
}

#[derive(Serialize, Deserialize)]
struct StoredInventory {
    os_name: String,
    os_version: String,
    kernel: String,
    arch: String,
    uptime_seconds: u64,
    boot_id: String,
    pid1_start_ticks: u64,
    package_manager: Option<String>,
    installed_packages: u64,
    disk_free_root_bytes: u64,
    source: String,
}

impl From<&Inventory> for StoredInventory {
    fn from(inventory: &Inventory) -> Self {
        Self {
            os_name: inventory.os_name.clone(),
            os_version: inventory.os_version.clone(),
            kernel: inventory.kernel.clone(),
            arch: inventory.arch.clone(),
            uptime_seconds: inventory.uptime.as_secs(),
            boot_id: inventory.boot_id.clone(),
            pid1_start_ticks: inventory.pid1_start_ticks,
            package_manager: inventory.package_manager.map(|pm| pm.as_str().to_owned()),
            installed_packages: inventory.installed_packages,
            disk_free_root_bytes: inventory.disk_free_root,
            source: match inventory.source {
                InventorySource::Commands => "commands",
                InventorySource::Osquery => "osquery",
            }
            .to_owned(),
        }
    }
}

impl From<StoredInventory> for Inventory {
    fn from(stored: StoredInventory) -> Self {
        Self {
            os_name: stored.os_name,
            os_version: stored.os_version,
            kernel: stored.kernel,
            arch: stored.arch,
            uptime: Duration::from_secs(stored.uptime_seconds),
            boot_id: stored.boot_id,
            pid1_start_ticks: stored.pid1_start_ticks,
            package_manager: stored
                .package_manager
                .and_then(|name| name.parse::<PackageManager>().ok()),
            installed_packages: stored.installed_packages,
            disk_free_root: stored.disk_free_root_bytes,
            source: if stored.source == "osquery" {
                InventorySource::Osquery
            } else {
                InventorySource::Commands
            },
        }
    }
}

pub fn host_status_record(name: &str, status: &HostStatus, now_ms: i64) -> HostStatusRecord {
    HostStatusRecord {
        name: name.to_owned(),
        state: status.state.as_str().to_owned(),
        failure: status.failure.as_ref().map(|failure| {
            to_json(&StoredFailure {
                previous_state: failure.previous_state,
                action: failure.action,
                error: failure.error.clone(),
                failed_at: time_text(failure.failed_at),
                retry_count: failure.retry_count,
                acknowledged: failure.acknowledged,
                job_id: failure.job_id.clone(),
                reason: failure.reason.clone(),
            })
        }),
        pending_updates: to_json(&pending_json(&status.report.pending)),
        reboot_state: status.reboot.wire_name().to_owned(),
        inventory: status
            .inventory
            .as_ref()
            .map(|inventory| to_json(&StoredInventory::from(inventory))),
        last_check_ms: status.last_check.map(ms),
        updated_at_ms: now_ms,
        health: status
            .last_health_check
            .as_ref()
            .map(|report| to_json(&StoredHealth::from(report))),
        services_to_restart: to_json(
            &status
                .services_to_restart
                .iter()
                .map(StoredService::from)
                .collect::<Vec<_>>(),
        ),
        pending_since: to_json(
            &status
                .pending_since
                .iter()
                .map(|(name, since)| (name.as_str(), ms(*since)))
                .collect::<BTreeMap<&str, i64>>(),
        ),
    }
}

/// The `health` column: the host's last health check.
#[derive(Serialize, Deserialize)]
struct StoredHealth {
    ok: bool,
    output: String,
    attempts: u32,
    at: String,
    job_id: Option<String>,
}

impl From<&HealthReport> for StoredHealth {
    fn from(report: &HealthReport) -> Self {
        Self {
            ok: report.ok,
            output: report.output.clone(),
            attempts: report.attempts,
            at: time_text(report.at),
            job_id: report.job_id.clone(),
        }
    }
}

impl StoredHealth {
    fn into_report(self) -> Option<HealthReport> {
        Some(HealthReport {
            ok: self.ok,
            output: self.output,
            attempts: self.attempts,
            at: time_of(&self.at)?,
            job_id: self.job_id,
        })
    }
}

/// A stored status back as the host's starting status. A state that means "a job was
/// running" becomes `idle`: that job is `interrupted` now, and the host gets re-checked.
pub fn host_status(record: HostStatusRecord) -> HostStatus {
    let mut status = HostStatus::default();
    let state = HostState::parse(&record.state).unwrap_or(HostState::Idle);
    status.state = if state.is_busy() {
        HostState::Idle
    } else {
        state
    };
    status.failure = record
        .failure
        .and_then(from_json::<StoredFailure>)
        .map(|failure| FailureRecord {
            previous_state: failure.previous_state,
            action: failure.action,
            error: failure.error,
            failed_at: time_of(&failure.failed_at).unwrap_or(Timestamp::UNIX_EPOCH),
            retry_count: failure.retry_count,
            acknowledged: failure.acknowledged,
            job_id: failure.job_id,
            reason: failure.reason,
        });
    if status.state == HostState::Failed && status.failure.is_none() {
        status.state = HostState::Idle;
    }
    status.report.pending = pending_of(from_json(record.pending_updates).unwrap_or_default());
    status.reboot = match record.reboot_state.as_str() {
        "required" => RebootState::Required {
            packages: Vec::new(),
        },
        "not_required" => RebootState::NotRequired,
        _ => RebootState::Unknown,
    };
    status.inventory = record
        .inventory
        .and_then(from_json::<StoredInventory>)
        .map(Inventory::from);
    status.last_check = record.last_check_ms.map(from_ms);
    status.last_health_check = record
        .health
        .and_then(from_json::<StoredHealth>)
        .and_then(StoredHealth::into_report);
    status.services_to_restart = from_json::<Vec<StoredService>>(record.services_to_restart)
        .unwrap_or_default()
        .into_iter()
        .map(ServiceToRestart::from)
        .collect();
    status.pending_since = from_json::<BTreeMap<String, i64>>(record.pending_since)
        .unwrap_or_default()
        .into_iter()
        .map(|(name, since_ms)| (name, from_ms(since_ms)))
        .collect();
    status
}

// ---- jobs -------------------------------------------------------------------------------

/// The `params` column: what the job was asked to do.
#[derive(Serialize, Deserialize)]
struct StoredJobParams {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    rollout_id: Option<String>,
    /// `"security"` or a list of names; absent for every package.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    packages: Option<StoredPackages>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reboot: Option<String>,
}

/// A selection other than every package: `"security"`, or names.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredPackages {
    Word(String),
    Names(Vec<String>),
}

fn stored_packages(packages: &Packages) -> Option<StoredPackages> {
    match packages {
        Packages::All => None,
        Packages::Security => Some(StoredPackages::Word("security".to_owned())),
        Packages::Names(names) => Some(StoredPackages::Names(names.clone())),
    }
}

fn packages_of(stored: Option<StoredPackages>) -> Packages {
    match stored {
        None => Packages::All,
        Some(StoredPackages::Word(word)) if word == "security" => Packages::Security,
        Some(StoredPackages::Word(_)) => Packages::All,
        Some(StoredPackages::Names(names)) => Packages::Names(names),
    }
}

fn job_options(dry_run: bool, force: bool, params: StoredJobParams) -> UpdateOptions {
    UpdateOptions {
        dry_run,
        force,
        packages: packages_of(params.packages),
        reboot: params.reboot.as_deref().and_then(RebootChoice::parse),
    }
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "UpgradedPackage")]
struct StoredPackageChange {
    name: String,
    from: Option<String>,
    to: String,
}

/// One changed package in a JSON array.
#[derive(Serialize, Deserialize)]
struct Changed(#[serde(with = "StoredPackageChange")] UpgradedPackage);

/// The `outcome` column: the whole job without its log (which has its own table). The fields
/// the columns also hold (id, state, times...) are written for readers of the first release;
/// this one reads them from the columns.
#[derive(Serialize, Deserialize)]
struct StoredJob {
    id: String,
    host: String,
    #[serde(with = "by_name")]
    kind: JobKind,
    state: String,
    dry_run: bool,
    force: bool,
    rollout_id: Option<String>,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    summary: Option<String>,
    exit_code: Option<i32>,
    packages_changed: Vec<Changed>,
    /// Written only when not empty (rows of the first release have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    also_installed: Vec<Changed>,
    packages_failed: Vec<String>,
    pending: Vec<Pending>,
    commands: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    services_to_restart: Vec<StoredService>,
    /// Always empty.
    #[serde(default, skip_deserializing)]
    log: [(); 0],
}

#[derive(Serialize, Deserialize)]
struct StoredService {
    pid: u32,
    command: String,
    unit: Option<String>,
}

impl From<&ServiceToRestart> for StoredService {
    fn from(process: &ServiceToRestart) -> Self {
        Self {
            pid: process.pid,
            command: process.command.clone(),
            unit: process.unit.clone(),
        }
    }
}

impl From<StoredService> for ServiceToRestart {
    fn from(process: StoredService) -> Self {
        Self {
            pid: process.pid,
            command: process.command,
            unit: process.unit,
        }
    }
}

fn changed_json(packages: &[UpgradedPackage]) -> Vec<Changed> {
    packages.iter().cloned().map(Changed).collect()
}

pub fn job_record(job: &JobSnapshot) -> JobRecord {
    let outcome = StoredJob {
        id: job.id.clone(),
        host: job.host.clone(),
        kind: job.kind,
        state: job.state.as_str().to_owned(),
        dry_run: job.options.dry_run,
        force: job.options.force,
        rollout_id: job.rollout_id.clone(),
        created_at: time_text(job.created_at),
        started_at: job.started_at.map(time_text),
        finished_at: job.finished_at.map(time_text),
        summary: job.summary.clone(),
        exit_code: job.exit_code,
        packages_changed: changed_json(&job.packages_changed),
        also_installed: changed_json(&job.also_installed),
        packages_failed: job.packages_failed.clone(),
        pending: pending_json(&job.pending),
        commands: job.commands.clone(),
        services_to_restart: job
            .services_to_restart
            .iter()
            .map(StoredService::from)
            .collect(),
        log: [],
    };
    JobRecord {
        id: job.id.clone(),
        host: job.host.clone(),
        kind: job.kind.as_str().to_owned(),
        params: to_json(&StoredJobParams {
            dry_run: job.options.dry_run,
            force: job.options.force,
            rollout_id: job.rollout_id.clone(),
            packages: stored_packages(&job.options.packages),
            reboot: job.options.reboot.map(|choice| choice.as_str().to_owned()),
        }),
        state: job.state.as_str().to_owned(),
        created_at_ms: ms(job.created_at),
        started_at_ms: job.started_at.map(ms),
        finished_at_ms: job.finished_at.map(ms),
        outcome: Some(to_json(&outcome)),
        packages_changed: to_json(&changed_json(&job.packages_changed)),
    }
}

/// The job's fields kept in columns and `params`, with `outcome`'s fields left empty.
fn job_base(record: &JobRecord) -> Result<JobSnapshot, String> {
    let kind = JobKind::parse(&record.kind)
        .ok_or_else(|| format!("unknown job kind {:?}", record.kind))?;
    let params: StoredJobParams = serde_json::from_value(record.params.clone())
        .map_err(|err| format!("params do not decode: {err}"))?;
    let rollout_id = params.rollout_id.clone();
    let options = job_options(params.dry_run, params.force, params);
    let created_at = from_ms(record.created_at_ms);
    Ok(JobSnapshot {
        state: JobState::parse(&record.state).unwrap_or(JobState::Interrupted),
        started_at: record.started_at_ms.map(from_ms),
        finished_at: record.finished_at_ms.map(from_ms),
        ..JobSnapshot::queued(
            record.id.clone(),
            record.host.clone(),
            kind,
            options,
            rollout_id,
            created_at,
        )
    })
}

/// A stored job as the registry shows jobs (state and times from the record's own columns,
/// which recovery may have changed), with `lines` as its log.
pub fn job(record: &JobRecord, lines: Vec<OutputLineRecord>) -> Result<JobSnapshot, String> {
    let outcome: StoredJob = record
        .outcome
        .clone()
        .ok_or("it has no outcome")
        .and_then(|outcome| serde_json::from_value(outcome).map_err(|_| "outcome does not decode"))
        .map_err(|err| format!("stored job {}: {err}", record.id))?;
    let mut job = job_base(record).map_err(|err| format!("stored job {}: {err}", record.id))?;
    job.options.dry_run = outcome.dry_run;
    job.options.force = outcome.force;
    job.rollout_id = outcome.rollout_id;
    job.summary = outcome.summary;
    if record.state == job_state::INTERRUPTED && job.summary.is_none() {
        job.summary = Some(INTERRUPTED_SUMMARY.to_owned());
    }
    job.exit_code = outcome.exit_code;
    job.packages_changed = outcome
        .packages_changed
        .into_iter()
        .map(|Changed(package)| package)
        .collect();
    job.also_installed = outcome
        .also_installed
        .into_iter()
        .map(|Changed(package)| package)
        .collect();
    job.packages_failed = outcome.packages_failed;
    job.pending = pending_of(outcome.pending);
    job.commands = outcome.commands;
    job.services_to_restart = outcome
        .services_to_restart
        .into_iter()
        .map(ServiceToRestart::from)
        .collect();
    job.log = log_lines(lines);
    Ok(job)
}

/// Stored output lines as a job's log.
pub fn log_lines(lines: Vec<OutputLineRecord>) -> Vec<LogLine> {
    lines
        .into_iter()
        .map(|line| LogLine {
            time: from_ms(line.time_ms),
            stream: stream_of(&line.stream),
            line: line.line,
        })
        .collect()
}

/// A job recovery marked `interrupted`, back in the registry's shape.
pub fn interrupted_job(record: &JobRecord) -> Option<JobSnapshot> {
    JobState::parse(&record.state)?;
    let job = job_base(record).ok()?;
    Some(JobSnapshot {
        summary: Some(INTERRUPTED_SUMMARY.to_owned()),
        ..job
    })
}

// ---- rollouts ---------------------------------------------------------------------------

/// `max_failures`: a count, or `"N%"`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredMaxFailures {
    Count(u64),
    Percent(String),
}

#[derive(Serialize, Deserialize)]
struct StoredFilter {
    tags: Vec<String>,
    groups: Vec<String>,
    exclude_hosts: Vec<String>,
    hosts: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredCounts {
    pending: usize,
    running: usize,
    succeeded: usize,
    failed: usize,
    skipped: usize,
    cancelled: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    deferred: usize,
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(value: &usize) -> bool {
    *value == 0
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredTrigger {
    Schedule(String),
    Api(String),
}

fn stored_trigger(trigger: &Trigger) -> Option<StoredTrigger> {
    match trigger {
        Trigger::Api(None) => None,
        Trigger::Api(Some(token)) => Some(StoredTrigger::Api(token.clone())),
        Trigger::Schedule(name) => Some(StoredTrigger::Schedule(name.clone())),
    }
}

fn trigger_of(stored: Option<StoredTrigger>) -> Trigger {
    match stored {
        None => Trigger::Api(None),
        Some(StoredTrigger::Api(token)) => Trigger::Api(Some(token)),
        Some(StoredTrigger::Schedule(name)) => Trigger::Schedule(name),
    }
}

#[derive(Serialize, Deserialize)]
struct StoredBatch {
    index: usize,
    hosts: Vec<String>,
    canary: bool,
    state: String,
}

#[derive(Serialize, Deserialize)]
struct StoredRolloutHost {
    host: String,
    batch: usize,
    state: String,
    job_id: Option<String>,
    reason: Option<String>,
}

/// The `params` column of a rollout: the whole rollout as of its last change. `batch_size`
/// and `max_failures` of a fleet check are what it runs with (one batch, no limit); `counts`
/// and the times are written for readers of the first release.
#[derive(Serialize, Deserialize)]
struct StoredRollout {
    id: String,
    kind: String,
    state: String,
    created_at: String,
    finished_at: Option<String>,
    batch_size: u64,
    delay_ms: u64,
    max_failures: StoredMaxFailures,
    canary: Vec<String>,
    filter: StoredFilter,
    dry_run: bool,
    force: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    packages: Option<StoredPackages>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reboot: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    defer_outside_window: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    window_grace_ms: Option<u64>,
    /// `{"schedule": NAME}` or `{"api": TOKEN}`; absent for an API request without a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trigger: Option<StoredTrigger>,
    n_failed: usize,
    counts: StoredCounts,
    batches: Vec<StoredBatch>,
    hosts: Vec<StoredRolloutHost>,
    /// `"canary"` or a batch index; absent: no gate (and in rows of earlier releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approve_after: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval_timeout_ms: Option<u64>,
    /// The open gate of a rollout `awaiting_approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gate: Option<StoredGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approved_by: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredGate {
    after_batch: usize,
    since: String,
    deadline: Option<String>,
}

fn stored_approve_after(gate: ApproveAfter) -> Value {
    match gate {
        ApproveAfter::Canary => Value::String("canary".to_owned()),
        ApproveAfter::Batch(index) => Value::from(u64::try_from(index).unwrap_or(u64::MAX)),
    }
}

fn approve_after_of(value: &Value) -> Option<ApproveAfter> {
    match value {
        Value::String(text) if text == "canary" => Some(ApproveAfter::Canary),
        other => other
            .as_u64()
            .map(|index| ApproveAfter::Batch(usize::try_from(index).unwrap_or(usize::MAX))),
    }
}

fn stored_rollout(rollout: &RolloutSnapshot) -> StoredRollout {
    let request = &rollout.request;
    let (batch_size, max_failures) = match rollout.kind {
        RolloutKind::Check => (
            u64::try_from(rollout.hosts.len()).unwrap_or(u64::MAX),
            StoredMaxFailures::Percent("100%".to_owned()),
        ),
        RolloutKind::Update => (
            u64::try_from(request.batch_size).unwrap_or(u64::MAX),
            match request.max_failures {
                MaxFailures::Count(count) => {
                    StoredMaxFailures::Count(u64::try_from(count).unwrap_or(u64::MAX))
                }
                MaxFailures::Percent(percent) => StoredMaxFailures::Percent(format!("{percent}%")),
            },
        ),
    };
    let count = |state: RolloutHostState| {
        rollout
            .hosts
            .iter()
            .filter(|host| host.state == state)
            .count()
    };
    StoredRollout {
        id: rollout.id.clone(),
        kind: rollout.kind.as_str().to_owned(),
        state: rollout.state.as_str().to_owned(),
        created_at: time_text(rollout.created_at),
        finished_at: rollout.finished_at.map(time_text),
        batch_size,
        delay_ms: u64::try_from(request.delay.as_millis()).unwrap_or(u64::MAX),
        max_failures,
        canary: request.canary.clone(),
        filter: StoredFilter {
            tags: request.filter.tags.clone(),
            groups: request.filter.groups.clone(),
            exclude_hosts: request.filter.exclude_hosts.clone(),
            hosts: request.filter.hosts.clone(),
        },
        dry_run: request.dry_run,
        force: request.force,
        packages: stored_packages(&request.packages),
        reboot: request.reboot.map(|choice| choice.as_str().to_owned()),
        defer_outside_window: request.defer_outside_window,
        window_grace_ms: (request.window_grace != DEFAULT_WINDOW_GRACE)
            .then(|| u64::try_from(request.window_grace.as_millis()).unwrap_or(u64::MAX)),
        trigger: stored_trigger(&request.trigger),
        n_failed: rollout.n_failed,
        counts: StoredCounts {
            pending: count(RolloutHostState::Pending),
            running: count(RolloutHostState::Running),
            succeeded: count(RolloutHostState::Succeeded),
            failed: count(RolloutHostState::Failed),
            skipped: count(RolloutHostState::Skipped),
            cancelled: count(RolloutHostState::Cancelled),
            deferred: count(RolloutHostState::Deferred),
        },
        batches: rollout
            .batches
            .iter()
            .map(|batch| StoredBatch {
                index: batch.index,
                hosts: batch.hosts.clone(),
                canary: batch.canary,
                state: batch.state.to_owned(),
            })
            .collect(),
        hosts: rollout
            .hosts
            .iter()
            .map(|host| StoredRolloutHost {
                host: host.host.clone(),
                batch: host.batch,
                state: host.state.as_str().to_owned(),
                job_id: host.job_id.clone(),
                reason: host.reason.clone(),
            })
            .collect(),
        approve_after: request.approve_after.map(stored_approve_after),
        approval_timeout_ms: request
            .approval_timeout
            .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        gate: rollout.gate.as_ref().map(|gate| StoredGate {
            after_batch: gate.after_batch,
            since: time_text(gate.since),
            deadline: gate.deadline.map(time_text),
        }),
        approved_by: rollout.approved_by.clone(),
    }
}

/// The rollout as stored: the whole rollout in `params`, plus the store's batch and host rows.
pub fn rollout_record(rollout: &RolloutSnapshot, now_ms: i64) -> RolloutRecord {
    RolloutRecord {
        id: rollout.id.clone(),
        params: to_json(&stored_rollout(rollout)),
        state: rollout.state.as_str().to_owned(),
        created_at_ms: ms(rollout.created_at),
        started_at_ms: Some(ms(rollout.created_at)),
        finished_at_ms: rollout.finished_at.map(ms),
        batches: rollout
            .batches
            .iter()
            .map(|batch| RolloutBatchRecord {
                idx: i64::try_from(batch.index).unwrap_or(i64::MAX),
                state: batch.state.to_owned(),
                started_at_ms: None,
                finished_at_ms: None,
            })
            .collect(),
        hosts: rollout
            .hosts
            .iter()
            .map(|host| RolloutHostRecord {
                host: host.host.clone(),
                batch_idx: i64::try_from(host.batch).ok(),
                state: host.state.as_str().to_owned(),
                job_id: host.job_id.clone(),
                detail: serde_json::json!({ "reason": host.reason }),
                updated_at_ms: now_ms,
            })
            .collect(),
    }
}

fn batch_state(name: &str) -> &'static str {
    match name {
        "running" => "running",
        "finished" => "finished",
        "skipped" => "skipped",
        _ => "pending",
    }
}

fn rollout_host_state(name: &str) -> RolloutHostState {
    match name {
        "running" => RolloutHostState::Running,
        "succeeded" => RolloutHostState::Succeeded,
        "failed" => RolloutHostState::Failed,
        "skipped" => RolloutHostState::Skipped,
        "cancelled" => RolloutHostState::Cancelled,
        "deferred" => RolloutHostState::Deferred,
        _ => RolloutHostState::Pending,
    }
}

/// A stored rollout back as a snapshot (its state from the record, which recovery may have
/// set to `interrupted`).
pub fn rollout(record: &RolloutRecord) -> Option<RolloutSnapshot> {
    let stored: StoredRollout = from_json(record.params.clone())?;
    let kind = match stored.kind.as_str() {
        "check" => RolloutKind::Check,
        "update" => RolloutKind::Update,
        _ => return None,
    };
    let state = match record.state.as_str() {
        "running" | "interrupted" => RolloutState::Interrupted,
        "awaiting_approval" => RolloutState::AwaitingApproval,
        "completed" => RolloutState::Completed,
        "stopped" => RolloutState::Stopped,
        _ => RolloutState::Cancelled,
    };
    let max_failures = match (kind, stored.max_failures) {
        (RolloutKind::Check, _) => MaxFailures::Count(usize::MAX),
        (_, StoredMaxFailures::Count(n)) => {
            MaxFailures::Count(usize::try_from(n).unwrap_or(usize::MAX))
        }
        (_, StoredMaxFailures::Percent(text)) => MaxFailures::parse_percent(&text)?,
    };
    Some(RolloutSnapshot {
        id: stored.id,
        kind,
        state,
        request: RolloutRequest {
            batch_size: usize::try_from(stored.batch_size).unwrap_or(usize::MAX),
            delay: Duration::from_millis(stored.delay_ms),
            max_failures,
            canary: stored.canary,
            filter: HostFilter {
                tags: stored.filter.tags,
                groups: stored.filter.groups,
                exclude_hosts: stored.filter.exclude_hosts,
                hosts: stored.filter.hosts,
            },
            dry_run: stored.dry_run,
            force: stored.force,
            approve_after: stored.approve_after.as_ref().and_then(approve_after_of),
            approval_timeout: stored.approval_timeout_ms.map(Duration::from_millis),
            packages: packages_of(stored.packages),
            reboot: stored.reboot.as_deref().and_then(RebootChoice::parse),
            defer_outside_window: stored.defer_outside_window,
            window_grace: stored
                .window_grace_ms
                .map_or(DEFAULT_WINDOW_GRACE, Duration::from_millis),
            trigger: trigger_of(stored.trigger),
        },
        created_at: from_ms(record.created_at_ms),
        finished_at: record.finished_at_ms.map(from_ms),
        batches: stored
            .batches
            .into_iter()
            .map(|batch| RolloutBatch {
                index: batch.index,
                hosts: batch.hosts,
                canary: batch.canary,
                state: batch_state(&batch.state),
            })
            .collect(),
        hosts: stored
            .hosts
            .into_iter()
            .map(|host| RolloutHost {
                host: host.host,
                batch: host.batch,
                state: rollout_host_state(&host.state),
                job_id: host.job_id,
                reason: host.reason,
            })
            .collect(),
        n_failed: stored.n_failed,
        gate: stored.gate.and_then(|gate| {
            Some(ApprovalGate {
                after_batch: gate.after_batch,
                since: time_of(&gate.since)?,
                deadline: gate.deadline.as_deref().and_then(time_of),
            })
        }),
        approved_by: stored.approved_by,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tendhost_store::{JobFilter, Page, Store};

    use crate::persist::codec;

    /// The database the first release wrote (`tests/data/store-compat`, made by
    /// `scripts/make-store-fixture`), restored into `dir` and opened.
    fn fixture_store(dir: &std::path::Path) -> Store {
        let dump = include_str!("../../../../tests/data/store-compat/tendhost.sql");
        let db = rusqlite::Connection::open(dir.join(tendhost_store::DB_FILE)).unwrap();
        db.execute_batch(dump).unwrap();
        drop(db);
        Store::open(dir).unwrap()
    }

    /// Every event type: its stored body holds its fields (no `type`, no correlation key) and
    /// reads back as the same event.
    #[test]
    fn every_event_type_round_trips() {
        let kinds = crate::testing::one_of_each();
        assert_eq!(kinds.len(), tendhost_core::events::EVENT_TYPES.len());
        for kind in kinds {
            let body = codec::event_body(&kind);
            let fields = body.as_object().unwrap();
            assert!(
                !fields.contains_key("type") && !fields.contains_key("_n"),
                "{body}"
            );
            let record = tendhost_store::EventRecord {
                seq: 1,
                time_ms: 0,
                kind: kind.type_name().to_owned(),
                host: kind.host().map(str::to_owned),
                body,
            };
            assert_eq!(codec::event_kind(&record), Some(kind));
        }
    }

    /// Every row of the first release's database decodes, and encoding it again writes the
    /// same JSON, byte for byte (less the `_n` key, which is no longer stored).
    #[tokio::test]
    async fn rows_of_the_first_release_decode_and_encode_to_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = fixture_store(dir.path());

        let events = store.events_after(0, 100_000).await.unwrap();
        assert!(events.len() > 100, "the fixture has events");
        let mut types = std::collections::BTreeSet::new();
        for record in &events {
            let kind = codec::event_kind(record)
                .unwrap_or_else(|| panic!("event {} does not decode: {record:?}", record.seq));
            assert_eq!(kind.type_name(), record.kind);
            assert_eq!(kind.host(), record.host.as_deref());
            let mut body = record.body.clone();
            body.as_object_mut().unwrap().remove("_n");
            let encoded = codec::event_body(&kind);
            assert_eq!(
                encoded.to_string(),
                body.to_string(),
                "event {}",
                record.seq
            );
            types.insert(record.kind.clone());
        }
        assert!(types.len() >= 8, "{types:?}");

        let jobs = store
            .list_jobs(
                JobFilter::default(),
                Page {
                    offset: 0,
                    limit: 500,
                },
            )
            .await
            .unwrap()
            .items;
        assert!(jobs.len() > 5, "the fixture has jobs");
        for record in &jobs {
            let job = codec::job(record, Vec::new()).unwrap();
            let encoded = codec::job_record(&job);
            let text = |value: &Option<Value>| value.as_ref().map(Value::to_string);
            assert_eq!(
                text(&encoded.outcome),
                text(&record.outcome),
                "job {}",
                record.id
            );
            assert_eq!(encoded.params.to_string(), record.params.to_string());
            assert_eq!(
                encoded.packages_changed.to_string(),
                record.packages_changed.to_string()
            );
            assert_eq!(&encoded, record, "job {}", record.id);
        }

        let statuses = store.host_statuses().await.unwrap();
        assert!(
            statuses.iter().any(|status| status.failure.is_some())
                && statuses.iter().any(|status| status.inventory.is_some()),
            "the fixture has a failure and an inventory: {statuses:?}"
        );
        for record in &statuses {
            let status = codec::host_status(record.clone());
            let encoded = codec::host_status_record(&record.name, &status, record.updated_at_ms);
            let text = |value: &Option<Value>| value.as_ref().map(Value::to_string);
            assert_eq!(text(&encoded.failure), text(&record.failure));
            assert_eq!(text(&encoded.inventory), text(&record.inventory));
            assert_eq!(
                encoded.pending_updates.to_string(),
                record.pending_updates.to_string()
            );
            assert_eq!(&encoded, record, "host {}", record.name);
        }

        let rollouts = store
            .list_rollouts(Page {
                offset: 0,
                limit: 500,
            })
            .await
            .unwrap()
            .items;
        assert_eq!(rollouts.len(), 2, "a fleet check and a fleet update");
        for record in &rollouts {
            let rollout = codec::rollout(record).unwrap();
            let encoded = codec::rollout_record(&rollout, 0);
            assert_eq!(encoded.params.to_string(), record.params.to_string());
            assert_eq!(
                (
                    &encoded.state,
                    encoded.created_at_ms,
                    encoded.finished_at_ms
                ),
                (&record.state, record.created_at_ms, record.finished_at_ms)
            );
            assert_eq!(encoded.batches, record.batches);
            for (encoded, stored) in encoded.hosts.iter().zip(&record.hosts) {
                assert_eq!(
                    (
                        &encoded.host,
                        encoded.batch_idx,
                        &encoded.state,
                        &encoded.job_id
                    ),
                    (
                        &stored.host,
                        stored.batch_idx,
                        &stored.state,
                        &stored.job_id
                    )
                );
                assert_eq!(encoded.detail, stored.detail);
            }
        }
        store.close().await.unwrap();
    }
}
