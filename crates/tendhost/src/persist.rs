//! The bridge between the fleet and the SQLite store: `StoreBridge` implements the core's
//! `Persistence` hook (host status, jobs, rollouts, output lines, all queued in order on the
//! store's writer) and `EventTransport` (the store numbers and commits every event, then its
//! sink delivers it to the bus: no client sees an event a crash could lose, and `seq` is never
//! reused). Also: encoding domain values as store records (JSON columns hold the wire shapes
//! from `tendhost-api`), decoding them at start (`recover`), and the daily retention task.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};
use tendhost_api::hosts as wire;
use tendhost_api::jobs as wire_jobs;
use tendhost_api::rollouts as wire_rollouts;
use tendhost_core::Persistence;
use tendhost_core::events::{Event, EventBus, EventKind, EventTransport, OutputStream};
use tendhost_core::model::{
    HostFilter, HostStatus, JobSnapshot, JobState, LostJob, MaxFailures, RolloutBatch, RolloutHost,
    RolloutHostState, RolloutKind, RolloutRequest, RolloutSnapshot, RolloutState, UpdateOptions,
};
use tendhost_core::state::{FailureRecord, HostState, JobKind};
use tendhost_pkg::{Inventory, InventorySource, PackageManager, PendingUpdate, RebootState};
use tendhost_store::{
    EventRecord, HostStatusRecord, JobRecord, NewEvent, OutputLineRecord, RolloutBatchRecord,
    RolloutHostRecord, RolloutRecord, Store,
};

use crate::http::{events_map, mapping};

/// Body key correlating a submitted event with its committed record.
const CORRELATION_KEY: &str = "_n";

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

fn ms(timestamp: Timestamp) -> i64 {
    timestamp.as_millisecond()
}

fn from_ms(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn parse_time(text: &str) -> Option<Timestamp> {
    text.parse().ok()
}

/// Fleet -> store.
pub struct StoreBridge {
    store: Store,
    next_n: AtomicU64,
    /// Submitted events waiting for their commit, by correlation number.
    pending: Mutex<HashMap<u64, EventKind>>,
    bus: OnceLock<EventBus>,
}

impl StoreBridge {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            next_n: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            bus: OnceLock::new(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Makes the store deliver committed events to `bus` (call once, before events flow).
    pub fn connect(self: &Arc<Self>, bus: &EventBus) -> tendhost_store::Result<()> {
        let _ = self.bus.set(bus.clone());
        let bridge = Arc::clone(self);
        self.store
            .set_event_sink(Box::new(move |record: &EventRecord| {
                bridge.committed(record);
            }))
    }

    fn committed(&self, record: &EventRecord) {
        let Some(n) = record.body.get(CORRELATION_KEY).and_then(Value::as_u64) else {
            return;
        };
        let kind = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&n);
        if let (Some(kind), Some(bus), Ok(seq)) = (kind, self.bus.get(), u64::try_from(record.seq))
        {
            bus.deliver(Event {
                seq,
                time: from_ms(record.time_ms),
                kind,
            });
        }
    }
}

/// The wire body of an event without `seq`, `time` and `type` (stored in the events table).
fn event_body(kind: &EventKind) -> Value {
    let event = Event {
        seq: 0,
        time: Timestamp::now(),
        kind: kind.clone(),
    };
    let mut value = serde_json::to_value(events_map::event_message(&event)).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("seq");
        object.remove("time");
        object.remove("type");
    }
    value
}

/// A stored event as the wire message the WebSocket sends (`{seq, time, type, ...}`).
pub fn event_json(record: &EventRecord) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("seq".to_owned(), json!(record.seq));
    object.insert(
        "time".to_owned(),
        json!(mapping::time(from_ms(record.time_ms))),
    );
    object.insert("type".to_owned(), json!(record.kind));
    if let Some(body) = record.body.as_object() {
        for (key, value) in body {
            if key != CORRELATION_KEY {
                object.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(object)
}

impl EventTransport for StoreBridge {
    fn submit(&self, kind: EventKind) {
        let n = self.next_n.fetch_add(1, Ordering::Relaxed);
        let mut body = event_body(&kind);
        if let Some(object) = body.as_object_mut() {
            object.insert(CORRELATION_KEY.to_owned(), json!(n));
        }
        let event = NewEvent {
            time_ms: now_ms(),
            kind: kind.type_name().to_owned(),
            host: kind.host().map(str::to_owned),
            body,
        };
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(n, kind);
        if let Err(err) = self.store.post_event(event) {
            // The store is closed (shutdown): the event cannot be made durable; drop it.
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&n);
            tracing::debug!(%err, "event dropped: store closed");
        }
    }
}

impl Persistence for StoreBridge {
    fn host_changed(&self, name: &str, status: &HostStatus) {
        if let Err(err) = self.store.post_host_status(host_record(name, status)) {
            tracing::warn!(host = %name, %err, "host status not stored");
        }
    }

    fn job_changed(&self, job: &JobSnapshot) {
        if let Err(err) = self.store.post_job(job_record(job)) {
            tracing::warn!(job = %job.id, %err, "job not stored");
        }
    }

    fn rollout_changed(&self, rollout: &RolloutSnapshot) {
        if let Err(err) = self.store.post_rollout(rollout_record(rollout)) {
            tracing::warn!(rollout = %rollout.id, %err, "rollout not stored");
        }
    }

    fn job_output(&self, job_id: &str, stream: OutputStream, line: &str) {
        let stream = match stream {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        };
        let _ = self.store.log_line(job_id, stream, now_ms(), line);
    }
}

// ---- host status ------------------------------------------------------------------------

fn host_record(name: &str, status: &HostStatus) -> HostStatusRecord {
    let pending: Vec<wire::PendingUpdate> = status
        .report
        .pending
        .iter()
        .map(mapping::pending_update)
        .collect();
    HostStatusRecord {
        name: name.to_owned(),
        state: status.state.as_str().to_owned(),
        failure: status
            .failure
            .as_ref()
            .and_then(|f| serde_json::to_value(mapping::failure(f)).ok()),
        pending_updates: serde_json::to_value(pending).unwrap_or_else(|_| json!([])),
        reboot_state: status.reboot.wire_name().to_owned(),
        inventory: status
            .inventory
            .as_ref()
            .and_then(|i| serde_json::to_value(mapping::inventory(i)).ok()),
        last_check_ms: status.last_check.map(ms),
        updated_at_ms: now_ms(),
    }
}

fn host_state_from_wire(state: wire::HostState) -> HostState {
    HostState::parse(
        serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .as_deref()
            .unwrap_or("idle"),
    )
    .unwrap_or(HostState::Idle)
}

fn job_kind_from_wire(kind: wire_jobs::JobKind) -> JobKind {
    match kind {
        wire_jobs::JobKind::Check => JobKind::Check,
        wire_jobs::JobKind::Update => JobKind::Update,
        wire_jobs::JobKind::Reboot => JobKind::Reboot,
    }
}

fn pending_from_wire(update: wire::PendingUpdate) -> PendingUpdate {
    PendingUpdate {
        name: update.name,
        current_version: update.current_version,
        new_version: update.new_version,
        origin: update.origin,
        arch: update.arch,
        security: update.security,
    }
}

fn inventory_from_wire(inventory: wire::Inventory) -> Inventory {
    Inventory {
        os_name: inventory.os_name,
        os_version: inventory.os_version,
        kernel: inventory.kernel,
        arch: inventory.arch,
        uptime: Duration::from_secs(inventory.uptime_seconds),
        boot_id: inventory.boot_id,
        pid1_start_ticks: inventory.pid1_start_ticks,
        package_manager: inventory.package_manager.map(|pm| match pm {
            wire::PackageManager::Apt => PackageManager::Apt,
            wire::PackageManager::Dnf => PackageManager::Dnf,
            wire::PackageManager::Yum => PackageManager::Yum,
        }),
        installed_packages: inventory.installed_packages,
        disk_free_root: inventory.disk_free_root_bytes,
        source: match inventory.source {
            wire::InventorySource::Commands => InventorySource::Commands,
            wire::InventorySource::Osquery => InventorySource::Osquery,
        },
    }
}

/// A stored status back as the host's starting status. A state that means "a job was
/// running" becomes `idle`: that job is `interrupted` now, and the host gets re-checked.
fn host_status_from(record: HostStatusRecord) -> HostStatus {
    let mut status = HostStatus::default();
    let state = HostState::parse(&record.state).unwrap_or(HostState::Idle);
    status.state = if state.is_busy() {
        HostState::Idle
    } else {
        state
    };
    status.failure = record
        .failure
        .and_then(|value| serde_json::from_value::<wire::Failure>(value).ok())
        .map(|failure| FailureRecord {
            previous_state: host_state_from_wire(failure.previous_state),
            action: job_kind_from_wire(failure.action),
            error: failure.error,
            failed_at: parse_time(&failure.failed_at).unwrap_or(Timestamp::UNIX_EPOCH),
            retry_count: failure.retry_count,
            acknowledged: failure.acknowledged,
            job_id: failure.job_id,
        });
    if status.state == HostState::Failed && status.failure.is_none() {
        status.state = HostState::Idle;
    }
    status.report.pending =
        serde_json::from_value::<Vec<wire::PendingUpdate>>(record.pending_updates)
            .unwrap_or_default()
            .into_iter()
            .map(pending_from_wire)
            .collect();
    status.reboot = match record.reboot_state.as_str() {
        "required" => RebootState::Required {
            packages: Vec::new(),
        },
        "not_required" => RebootState::NotRequired,
        _ => RebootState::Unknown,
    };
    status.inventory = record
        .inventory
        .and_then(|value| serde_json::from_value::<wire::Inventory>(value).ok())
        .map(inventory_from_wire);
    status.last_check = record.last_check_ms.map(from_ms);
    status
}

// ---- jobs -------------------------------------------------------------------------------

/// The job as stored: its wire shape (without the log, which has its own table) in `outcome`.
fn job_record(job: &JobSnapshot) -> JobRecord {
    let mut wire_job = mapping::job(job);
    wire_job.log.clear();
    let packages_changed = serde_json::to_value(&wire_job.packages_changed).unwrap_or_default();
    JobRecord {
        id: job.id.clone(),
        host: job.host.clone(),
        kind: job.kind.as_str().to_owned(),
        params: json!({
            "dry_run": job.options.dry_run,
            "force": job.options.force,
            "rollout_id": job.rollout_id,
        }),
        state: job.state.as_str().to_owned(),
        created_at_ms: ms(job.created_at),
        started_at_ms: job.started_at.map(ms),
        finished_at_ms: job.finished_at.map(ms),
        outcome: serde_json::to_value(&wire_job).ok(),
        packages_changed,
    }
}

fn job_state_wire(state: &str) -> wire_jobs::JobState {
    serde_json::from_value(json!(state)).unwrap_or(wire_jobs::JobState::Interrupted)
}

/// A stored job as the wire `Job` (state and times from the record's own columns, which
/// recovery may have changed), with `lines` as its log.
pub fn job_from_record(record: &JobRecord, lines: Vec<OutputLineRecord>) -> Option<wire_jobs::Job> {
    let mut job: wire_jobs::Job = serde_json::from_value(record.outcome.clone()?).ok()?;
    job.state = job_state_wire(&record.state);
    job.started_at = record.started_at_ms.map(|t| mapping::time(from_ms(t)));
    job.finished_at = record.finished_at_ms.map(|t| mapping::time(from_ms(t)));
    if record.state == tendhost_store::job_state::INTERRUPTED && job.summary.is_none() {
        job.summary = Some("the daemon stopped while the job ran".to_owned());
    }
    job.log = lines
        .into_iter()
        .map(|line| wire_jobs::LogLine {
            time: mapping::time(from_ms(line.time_ms)),
            stream: if line.stream == "stderr" {
                wire_jobs::LogStream::Stderr
            } else {
                wire_jobs::LogStream::Stdout
            },
            line: line.line,
        })
        .collect();
    Some(job)
}

/// A stored job as a list entry.
pub fn job_summary_from_record(record: &JobRecord) -> Option<wire_jobs::JobSummary> {
    let job = job_from_record(record, Vec::new())?;
    Some(wire_jobs::JobSummary {
        id: job.id,
        host: job.host,
        kind: job.kind,
        state: job.state,
        dry_run: job.dry_run,
        force: job.force,
        rollout_id: job.rollout_id,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
        summary: job.summary,
        exit_code: job.exit_code,
    })
}

/// A stored job back in the registry's shape (recovery).
fn job_snapshot_from_record(record: &JobRecord) -> Option<JobSnapshot> {
    Some(JobSnapshot {
        id: record.id.clone(),
        host: record.host.clone(),
        kind: JobKind::parse(&record.kind)?,
        state: JobState::parse(&record.state)?,
        options: UpdateOptions {
            dry_run: record.params["dry_run"].as_bool().unwrap_or(false),
            force: record.params["force"].as_bool().unwrap_or(false),
        },
        rollout_id: record.params["rollout_id"].as_str().map(str::to_owned),
        created_at: from_ms(record.created_at_ms),
        started_at: record.started_at_ms.map(from_ms),
        finished_at: record.finished_at_ms.map(from_ms),
        summary: Some("the daemon stopped while the job ran".to_owned()),
        exit_code: None,
        packages_changed: Vec::new(),
        packages_failed: Vec::new(),
        pending: Vec::new(),
        commands: Vec::new(),
        log: Vec::new(),
    })
}

// ---- rollouts ---------------------------------------------------------------------------

/// The rollout as stored: its wire shape in `params`, plus the store's batch and host rows.
fn rollout_record(rollout: &RolloutSnapshot) -> RolloutRecord {
    let wire_rollout = mapping::rollout(rollout);
    RolloutRecord {
        id: rollout.id.clone(),
        params: serde_json::to_value(&wire_rollout).unwrap_or_default(),
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
                detail: json!({ "reason": host.reason }),
                updated_at_ms: now_ms(),
            })
            .collect(),
    }
}

fn batch_state(state: wire_rollouts::BatchState) -> &'static str {
    match state {
        wire_rollouts::BatchState::Pending => "pending",
        wire_rollouts::BatchState::Running => "running",
        wire_rollouts::BatchState::Finished => "finished",
        wire_rollouts::BatchState::Skipped => "skipped",
    }
}

fn rollout_host_state(state: wire_rollouts::RolloutHostState) -> RolloutHostState {
    match state {
        wire_rollouts::RolloutHostState::Pending => RolloutHostState::Pending,
        wire_rollouts::RolloutHostState::Running => RolloutHostState::Running,
        wire_rollouts::RolloutHostState::Succeeded => RolloutHostState::Succeeded,
        wire_rollouts::RolloutHostState::Failed => RolloutHostState::Failed,
        wire_rollouts::RolloutHostState::Skipped => RolloutHostState::Skipped,
        wire_rollouts::RolloutHostState::Cancelled => RolloutHostState::Cancelled,
    }
}

/// A stored rollout back as a snapshot (its state from the record, which recovery may have
/// set to `interrupted`).
fn rollout_from_record(record: &RolloutRecord) -> Option<RolloutSnapshot> {
    let wire_rollout: wire_rollouts::Rollout =
        serde_json::from_value(record.params.clone()).ok()?;
    let kind = match wire_rollout.kind {
        wire_rollouts::RolloutKind::Check => RolloutKind::Check,
        wire_rollouts::RolloutKind::Update => RolloutKind::Update,
    };
    let state = match record.state.as_str() {
        "running" | "interrupted" => RolloutState::Interrupted,
        "completed" => RolloutState::Completed,
        "stopped" => RolloutState::Stopped,
        _ => RolloutState::Cancelled,
    };
    let max_failures = match (kind, wire_rollout.max_failures) {
        (RolloutKind::Check, _) => MaxFailures::Count(usize::MAX),
        (_, wire_rollouts::MaxFailures::Count(n)) => {
            MaxFailures::Count(usize::try_from(n).unwrap_or(usize::MAX))
        }
        (_, wire_rollouts::MaxFailures::Percent(p)) => MaxFailures::Percent(p),
    };
    Some(RolloutSnapshot {
        id: wire_rollout.id,
        kind,
        state,
        request: RolloutRequest {
            batch_size: usize::try_from(wire_rollout.batch_size).unwrap_or(usize::MAX),
            delay: Duration::from_millis(wire_rollout.delay_ms),
            max_failures,
            canary: wire_rollout.canary,
            filter: HostFilter {
                tags: wire_rollout.filter.tags,
                groups: wire_rollout.filter.groups,
                exclude_hosts: wire_rollout.filter.exclude_hosts,
                hosts: wire_rollout.filter.hosts,
            },
            dry_run: wire_rollout.dry_run,
            force: wire_rollout.force,
        },
        created_at: from_ms(record.created_at_ms),
        finished_at: record.finished_at_ms.map(from_ms),
        batches: wire_rollout
            .batches
            .into_iter()
            .map(|batch| RolloutBatch {
                index: batch.index,
                hosts: batch.hosts,
                canary: batch.canary,
                state: batch_state(batch.state),
            })
            .collect(),
        hosts: wire_rollout
            .hosts
            .into_iter()
            .map(|host| RolloutHost {
                host: host.host,
                batch: host.batch,
                state: rollout_host_state(host.state),
                job_id: host.job_id,
                reason: host.reason,
            })
            .collect(),
        n_failed: wire_rollout.n_failed,
    })
}

// ---- start-up recovery and retention ----------------------------------------------------

/// What the previous run left, ready for `Fleet::start_with`.
#[derive(Default)]
pub struct Recovered {
    pub statuses: HashMap<String, HostStatus>,
    pub runtime_hosts: Vec<tendhost_store::RuntimeHostRecord>,
    /// Jobs that were running when the daemon stopped, now `interrupted`.
    pub interrupted_jobs: Vec<JobSnapshot>,
    pub rollouts: Vec<RolloutSnapshot>,
    /// Hosts to re-check at once (their job was interrupted).
    pub recheck: Vec<String>,
}

/// Marks what was running as `interrupted` and reads back hosts, statuses and rollouts.
/// An interrupted update leaves its host with a `lost_job`, so the re-check collects the
/// real outcome from the host's job directory when the upgrade finished there.
pub async fn recover(store: &Store) -> tendhost_store::Result<Recovered> {
    let now = now_ms();
    let interrupted = store.mark_running_interrupted(now).await?;
    let n_rollouts = store.mark_rollouts_interrupted(now).await?.len();
    let mut recovered = Recovered {
        runtime_hosts: store.runtime_hosts().await?,
        ..Recovered::default()
    };
    for record in store.host_statuses().await? {
        let name = record.name.clone();
        recovered.statuses.insert(name, host_status_from(record));
    }
    for record in &interrupted {
        let Some(job) = job_snapshot_from_record(record) else {
            continue;
        };
        if job.kind == JobKind::Update && !job.options.dry_run {
            let status = recovered.statuses.entry(job.host.clone()).or_default();
            status.lost_job = Some(LostJob {
                job_id: job.id.clone(),
                log_offset: 0,
            });
        }
        if !recovered.recheck.contains(&job.host) {
            recovered.recheck.push(job.host.clone());
        }
        recovered.interrupted_jobs.push(job);
    }
    let mut offset = 0;
    loop {
        let page = store
            .list_rollouts(tendhost_store::Page { offset, limit: 500 })
            .await?;
        let n = u32::try_from(page.items.len()).unwrap_or(u32::MAX);
        recovered
            .rollouts
            .extend(page.items.iter().filter_map(rollout_from_record));
        if n < 500 {
            break;
        }
        offset += n;
    }
    recovered.rollouts.sort_by_key(|r| r.created_at);
    if !interrupted.is_empty() || n_rollouts > 0 {
        tracing::warn!(
            n_jobs = interrupted.len(),
            n_rollouts,
            "jobs and rollouts that were running when the daemon stopped are now interrupted"
        );
    }
    Ok(recovered)
}

/// Prunes finished jobs and events older than `retention_days`, now and then daily.
pub async fn retention(store: Store, retention_days: u32) {
    let keep = Duration::from_secs(u64::from(retention_days) * 24 * 60 * 60);
    let mut tick = tokio::time::interval(Duration::from_secs(24 * 60 * 60));
    loop {
        tick.tick().await;
        let cutoff = now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        match store.prune(cutoff).await {
            Ok(pruned) => tracing::info!(
                jobs = pruned.jobs,
                output_lines = pruned.output_lines,
                events = pruned.events,
                rollouts = pruned.rollouts,
                retention_days,
                "pruned old jobs and events"
            ),
            Err(err) => tracing::warn!(%err, "pruning old jobs and events failed"),
        }
    }
}
