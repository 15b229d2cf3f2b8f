//! Domain -> wire: turns `tendhost-core` snapshots (hosts, jobs, rollouts) and `tendhost-pkg`
//! values into `tendhost-api` types, and `FleetError` into `ApiError` (one HTTP status and code
//! per variant). Pure conversions; the handlers decide what to fetch.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde_json::json;
use tendhost_api::gates as wire_gates;
use tendhost_api::hosts as wire;
use tendhost_api::jobs as wire_jobs;
use tendhost_api::packages as wire_packages;
use tendhost_api::rollouts as wire_rollouts;
use tendhost_api::schedules as wire_schedules;
use tendhost_core::events::OutputStream;
use tendhost_core::model::{
    ApproveAfter, FleetError, HostFilter, HostSnapshot, JobSnapshot, JobState, LogLine,
    MaxFailures, Packages, RebootChoice, RolloutBatch, RolloutHost, RolloutHostState, RolloutKind,
    RolloutSnapshot, RolloutState, Trigger,
};
use tendhost_core::spec::{HostOrigin, MaintenanceWindow, UpdatePolicy, Weekday};
use tendhost_core::state::{FailureRecord, HostState, JobKind};
use tendhost_pkg::{
    Inventory, InventorySource, PackageManager, PendingUpdate, RebootState, ServiceToRestart,
    UpgradedPackage,
};

use crate::http::error::ApiError;

impl From<FleetError> for ApiError {
    fn from(err: FleetError) -> Self {
        let message = err.to_string();
        match err {
            FleetError::NotFound { .. } => ApiError::not_found(message),
            FleetError::UnhealthyBeforeUpdate { output, .. } => {
                ApiError::new(StatusCode::CONFLICT, "unhealthy_before_update", message)
                    .with_details(json!({ "output": output }))
            }
            FleetError::HostBusy { job_id, .. } => {
                ApiError::new(StatusCode::CONFLICT, "host_busy", message)
                    .with_details(json!({ "job_id": job_id }))
            }
            FleetError::InvalidTransition {
                action,
                current_state,
                ..
            } => ApiError::new(StatusCode::CONFLICT, "invalid_transition", message)
                .with_details(json!({ "current_state": current_state.as_str(), "action": action })),
            FleetError::UpdatesDisabled { .. } => {
                ApiError::new(StatusCode::CONFLICT, "updates_disabled", message)
            }
            FleetError::OutsideMaintenanceWindow { window, .. } => {
                ApiError::new(StatusCode::CONFLICT, "outside_maintenance_window", message)
                    .with_details(json!({ "window": window }))
            }
            FleetError::Duplicate { .. } => {
                ApiError::new(StatusCode::CONFLICT, "duplicate", message)
                    .with_details(json!({ "field": "name" }))
            }
            FleetError::ConfigHost { .. } => {
                ApiError::new(StatusCode::CONFLICT, "config_host", message)
            }
            FleetError::RolloutFinished { state, .. } => {
                ApiError::new(StatusCode::CONFLICT, "rollout_finished", message)
                    .with_details(json!({ "current_state": state }))
            }
            FleetError::InvalidRollout { state, .. } => {
                ApiError::new(StatusCode::CONFLICT, "invalid_rollout_state", message)
                    .with_details(json!({ "current_state": state }))
            }
            FleetError::Invalid { field, message } => ApiError::invalid_value(&field, message),
            FleetError::Unavailable(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            FleetError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
        }
    }
}

/// RFC 3339.
/// RFC 3339 with millisecond precision (what the state database keeps, so a time reads the
/// same before and after a restart).
pub fn time(timestamp: Timestamp) -> String {
    let millis = Timestamp::from_millisecond(timestamp.as_millisecond()).unwrap_or(timestamp);
    millis.to_string()
}

pub fn opt_time(timestamp: Option<Timestamp>) -> Option<String> {
    timestamp.map(time)
}

pub fn host_state(state: HostState) -> wire::HostState {
    match state {
        HostState::Idle => wire::HostState::Idle,
        HostState::Querying => wire::HostState::Querying,
        HostState::PendingUpdates => wire::HostState::PendingUpdates,
        HostState::Updating => wire::HostState::Updating,
        HostState::WaitingReboot => wire::HostState::WaitingReboot,
        HostState::Rebooting => wire::HostState::Rebooting,
        HostState::Verifying => wire::HostState::Verifying,
        HostState::Failed => wire::HostState::Failed,
        HostState::Unreachable => wire::HostState::Unreachable,
    }
}

pub fn job_kind(kind: JobKind) -> wire_jobs::JobKind {
    match kind {
        JobKind::Check => wire_jobs::JobKind::Check,
        JobKind::Update => wire_jobs::JobKind::Update,
        JobKind::Reboot => wire_jobs::JobKind::Reboot,
    }
}

pub fn job_state(state: JobState) -> wire_jobs::JobState {
    match state {
        JobState::Queued => wire_jobs::JobState::Queued,
        JobState::Running => wire_jobs::JobState::Running,
        JobState::Succeeded => wire_jobs::JobState::Succeeded,
        JobState::Failed => wire_jobs::JobState::Failed,
        JobState::Busy => wire_jobs::JobState::Busy,
        JobState::Lost => wire_jobs::JobState::Lost,
        JobState::Cancelled => wire_jobs::JobState::Cancelled,
        JobState::Interrupted => wire_jobs::JobState::Interrupted,
    }
}

pub fn reboot_state(reboot: &RebootState) -> wire::RebootState {
    match reboot {
        RebootState::Required { .. } => wire::RebootState::Required,
        RebootState::NotRequired => wire::RebootState::NotRequired,
        RebootState::Unknown => wire::RebootState::Unknown,
    }
}

fn reboot_status(reboot: &RebootState) -> wire::RebootStatus {
    wire::RebootStatus {
        state: reboot_state(reboot),
        packages: match reboot {
            RebootState::Required { packages } => packages.clone(),
            RebootState::NotRequired | RebootState::Unknown => Vec::new(),
        },
    }
}

fn origin(origin: HostOrigin) -> wire::HostOrigin {
    match origin {
        HostOrigin::Config => wire::HostOrigin::Config,
        HostOrigin::Runtime => wire::HostOrigin::Runtime,
    }
}

fn update_policy(policy: UpdatePolicy) -> wire::UpdatePolicy {
    match policy {
        UpdatePolicy::Allowed => wire::UpdatePolicy::Allowed,
        UpdatePolicy::CheckOnly => wire::UpdatePolicy::CheckOnly,
    }
}

fn weekday(day: Weekday) -> wire::Weekday {
    match day {
        Weekday::Mon => wire::Weekday::Mon,
        Weekday::Tue => wire::Weekday::Tue,
        Weekday::Wed => wire::Weekday::Wed,
        Weekday::Thu => wire::Weekday::Thu,
        Weekday::Fri => wire::Weekday::Fri,
        Weekday::Sat => wire::Weekday::Sat,
        Weekday::Sun => wire::Weekday::Sun,
    }
}

fn hhmm(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

fn window(window: &MaintenanceWindow) -> wire::MaintenanceWindow {
    wire::MaintenanceWindow {
        start: hhmm(window.start_minute),
        end: hhmm(window.end_minute),
        days: window.days.iter().copied().map(weekday).collect(),
    }
}

pub fn failure(failure: &FailureRecord) -> wire::Failure {
    wire::Failure {
        previous_state: host_state(failure.previous_state),
        action: job_kind(failure.action),
        error: failure.error.clone(),
        failed_at: time(failure.failed_at),
        retry_count: failure.retry_count,
        acknowledged: failure.acknowledged,
        job_id: failure.job_id.clone(),
        reason: failure.reason.clone(),
    }
}

pub fn pending_update(update: &PendingUpdate) -> wire_packages::PendingUpdate {
    pending_update_since(update, None)
}

/// [`pending_update`] with when it was first found pending.
fn pending_update_since(
    update: &PendingUpdate,
    since: Option<Timestamp>,
) -> wire_packages::PendingUpdate {
    wire_packages::PendingUpdate {
        pending_since: opt_time(since),
        name: update.name.clone(),
        current_version: update.current_version.clone(),
        new_version: update.new_version.clone(),
        origin: update.origin.clone(),
        arch: update.arch.clone(),
        security: update.security,
        excluded: update.excluded,
    }
}

fn package_manager(manager: PackageManager) -> wire::PackageManager {
    match manager {
        PackageManager::Apt => wire::PackageManager::Apt,
        PackageManager::Dnf => wire::PackageManager::Dnf,
        PackageManager::Yum => wire::PackageManager::Yum,
    }
}

fn inventory_summary(inventory: &Inventory) -> wire::InventorySummary {
    wire::InventorySummary {
        os_name: inventory.os_name.clone(),
        os_version: inventory.os_version.clone(),
        kernel: inventory.kernel.clone(),
        arch: inventory.arch.clone(),
        package_manager: inventory.package_manager.map(package_manager),
        installed_packages: inventory.installed_packages,
        uptime_seconds: inventory.uptime.as_secs(),
    }
}

pub fn inventory(inventory: &Inventory) -> wire::Inventory {
    wire::Inventory {
        os_name: inventory.os_name.clone(),
        os_version: inventory.os_version.clone(),
        kernel: inventory.kernel.clone(),
        arch: inventory.arch.clone(),
        uptime_seconds: inventory.uptime.as_secs(),
        boot_id: inventory.boot_id.clone(),
        pid1_start_ticks: inventory.pid1_start_ticks,
        package_manager: inventory.package_manager.map(package_manager),
        installed_packages: inventory.installed_packages,
        disk_free_root_bytes: inventory.disk_free_root,
        source: match inventory.source {
            InventorySource::Commands => wire::InventorySource::Commands,
            InventorySource::Osquery => wire::InventorySource::Osquery,
        },
    }
}

pub fn host_summary(host: &HostSnapshot) -> wire::HostSummary {
    wire::HostSummary {
        name: host.name.clone(),
        addr: host.addr.clone(),
        port: host.port,
        user: host.user.clone(),
        tags: host.tags.clone(),
        groups: host.groups.clone(),
        origin: origin(host.origin),
        updates: update_policy(host.updates),
        state: host_state(host.state),
        n_pending: host.pending.len(),
        n_security: host.pending.iter().filter(|p| p.security).count(),
        reboot: reboot_state(&host.reboot),
        last_check: opt_time(host.last_check),
        current_job: host.current_job.clone(),
        failure: host.failure.as_ref().map(failure),
    }
}

pub fn host_detail(host: &HostSnapshot) -> wire::HostDetail {
    wire::HostDetail {
        name: host.name.clone(),
        addr: host.addr.clone(),
        port: host.port,
        user: host.user.clone(),
        tags: host.tags.clone(),
        groups: host.groups.clone(),
        origin: origin(host.origin),
        policy: wire::HostPolicy {
            updates: update_policy(host.updates),
            auto_reboot: host.auto_reboot,
            maintenance_window: host.maintenance_window.as_ref().map(window),
        },
        state: host_state(host.state),
        failure: host.failure.as_ref().map(failure),
        pending: host
            .pending
            .iter()
            .map(|update| {
                pending_update_since(update, host.pending_since.get(&update.name).copied())
            })
            .collect(),
        n_security: host.pending.iter().filter(|p| p.security).count(),
        held: host.held.clone(),
        kept_back: host.kept_back.clone(),
        removals: host
            .removals
            .iter()
            .map(|removal| wire::Removal {
                name: removal.name.clone(),
                version: removal.version.clone(),
            })
            .collect(),
        reboot: reboot_status(&host.reboot),
        inventory: host.inventory.as_ref().map(inventory_summary),
        last_check: opt_time(host.last_check),
        current_job: host.current_job.clone(),
        last_error: host.last_error.clone(),
        last_health_check: host
            .last_health_check
            .as_ref()
            .map(|report| wire_gates::HealthCheck {
                ok: report.ok,
                at: time(report.at),
                job_id: report.job_id.clone(),
                output: report.output.clone(),
                attempts: report.attempts,
            }),
        services_to_restart: services(&host.services_to_restart),
    }
}

fn services(processes: &[ServiceToRestart]) -> Vec<wire_gates::ServiceToRestart> {
    processes
        .iter()
        .map(|process| wire_gates::ServiceToRestart {
            pid: process.pid,
            command: process.command.clone(),
            unit: process.unit.clone(),
        })
        .collect()
}

pub fn host_inventory(host: &HostSnapshot) -> wire::HostInventory {
    wire::HostInventory {
        host: host.name.clone(),
        last_check: opt_time(host.last_check),
        inventory: host.inventory.as_ref().map(inventory),
    }
}

fn log_line(line: &LogLine) -> wire_jobs::LogLine {
    wire_jobs::LogLine {
        time: time(line.time),
        stream: match line.stream {
            OutputStream::Stdout => wire_jobs::LogStream::Stdout,
            OutputStream::Stderr => wire_jobs::LogStream::Stderr,
        },
        line: line.line.clone(),
    }
}

pub fn job_summary(job: &JobSnapshot) -> wire_jobs::JobSummary {
    wire_jobs::JobSummary {
        id: job.id.clone(),
        host: job.host.clone(),
        kind: job_kind(job.kind),
        state: job_state(job.state),
        dry_run: job.options.dry_run,
        force: job.options.force,
        rollout_id: job.rollout_id.clone(),
        created_at: time(job.created_at),
        started_at: opt_time(job.started_at),
        finished_at: opt_time(job.finished_at),
        summary: job.summary.clone(),
        exit_code: job.exit_code,
    }
}

fn package_change(package: &UpgradedPackage) -> wire_packages::PackageChange {
    wire_packages::PackageChange {
        name: package.name.clone(),
        from: package.from.clone(),
        to: package.to.clone(),
    }
}

pub fn job(job: &JobSnapshot) -> wire_jobs::Job {
    wire_jobs::Job {
        summary: job_summary(job),
        packages_changed: job.packages_changed.iter().map(package_change).collect(),
        also_installed: job.also_installed.iter().map(package_change).collect(),
        packages_failed: job.packages_failed.clone(),
        pending: job.pending.iter().map(pending_update).collect(),
        commands: job.commands.clone(),
        services_to_restart: services(&job.services_to_restart),
        log: job.log.iter().map(log_line).collect(),
    }
}

pub fn rollout_kind(kind: RolloutKind) -> wire_rollouts::RolloutKind {
    match kind {
        RolloutKind::Check => wire_rollouts::RolloutKind::Check,
        RolloutKind::Update => wire_rollouts::RolloutKind::Update,
    }
}

pub fn rollout_state(state: RolloutState) -> wire_rollouts::RolloutState {
    match state {
        RolloutState::Running => wire_rollouts::RolloutState::Running,
        RolloutState::AwaitingApproval => wire_rollouts::RolloutState::AwaitingApproval,
        RolloutState::Completed => wire_rollouts::RolloutState::Completed,
        RolloutState::Stopped => wire_rollouts::RolloutState::Stopped,
        RolloutState::Cancelled => wire_rollouts::RolloutState::Cancelled,
        RolloutState::Interrupted => wire_rollouts::RolloutState::Interrupted,
    }
}

fn rollout_host_state(state: RolloutHostState) -> wire_rollouts::RolloutHostState {
    match state {
        RolloutHostState::Pending => wire_rollouts::RolloutHostState::Pending,
        RolloutHostState::Running => wire_rollouts::RolloutHostState::Running,
        RolloutHostState::Succeeded => wire_rollouts::RolloutHostState::Succeeded,
        RolloutHostState::Failed => wire_rollouts::RolloutHostState::Failed,
        RolloutHostState::Skipped => wire_rollouts::RolloutHostState::Skipped,
        RolloutHostState::Cancelled => wire_rollouts::RolloutHostState::Cancelled,
        RolloutHostState::Deferred => wire_rollouts::RolloutHostState::Deferred,
    }
}

fn batch(batch: &RolloutBatch) -> wire_rollouts::RolloutBatch {
    wire_rollouts::RolloutBatch {
        index: batch.index,
        hosts: batch.hosts.clone(),
        canary: batch.canary,
        state: match batch.state {
            "running" => wire_rollouts::BatchState::Running,
            "finished" => wire_rollouts::BatchState::Finished,
            "skipped" => wire_rollouts::BatchState::Skipped,
            _ => wire_rollouts::BatchState::Pending,
        },
    }
}

fn rollout_host(host: &RolloutHost) -> wire_rollouts::RolloutHost {
    wire_rollouts::RolloutHost {
        host: host.host.clone(),
        batch: host.batch,
        state: rollout_host_state(host.state),
        job_id: host.job_id.clone(),
        reason: host.reason.clone(),
    }
}

fn counts(rollout: &RolloutSnapshot) -> wire_rollouts::RolloutCounts {
    let mut counts = wire_rollouts::RolloutCounts::default();
    for host in &rollout.hosts {
        let count = match host.state {
            RolloutHostState::Pending => &mut counts.pending,
            RolloutHostState::Running => &mut counts.running,
            RolloutHostState::Succeeded => &mut counts.succeeded,
            RolloutHostState::Failed => &mut counts.failed,
            RolloutHostState::Skipped => &mut counts.skipped,
            RolloutHostState::Cancelled => &mut counts.cancelled,
            RolloutHostState::Deferred => &mut counts.deferred,
        };
        *count += 1;
    }
    counts
}

pub fn filter(filter: &HostFilter) -> wire_rollouts::HostFilter {
    wire_rollouts::HostFilter {
        tags: filter.tags.clone(),
        groups: filter.groups.clone(),
        exclude_hosts: filter.exclude_hosts.clone(),
        hosts: filter.hosts.clone(),
    }
}

/// The hosts of a rollout in the order they run (batch by batch).
fn ordered_hosts(rollout: &RolloutSnapshot) -> Vec<String> {
    rollout
        .batches
        .iter()
        .flat_map(|batch| batch.hosts.iter().cloned())
        .collect()
}

pub fn rollout_accepted(rollout: &RolloutSnapshot) -> wire_rollouts::RolloutAccepted {
    wire_rollouts::RolloutAccepted {
        rollout_id: rollout.id.clone(),
        kind: rollout_kind(rollout.kind),
        hosts: ordered_hosts(rollout),
        batches: rollout.batches.iter().map(batch).collect(),
    }
}

pub fn rollout(rollout: &RolloutSnapshot) -> wire_rollouts::Rollout {
    let request = &rollout.request;
    // A fleet check runs as one batch with no failure limit; show that, not the internal
    // "unlimited" sentinels.
    let (batch_size, max_failures) = match rollout.kind {
        RolloutKind::Check => (
            u64::try_from(rollout.hosts.len()).unwrap_or(u64::MAX),
            wire_rollouts::MaxFailures::Percent(100),
        ),
        RolloutKind::Update => (
            u64::try_from(request.batch_size).unwrap_or(u64::MAX),
            match request.max_failures {
                MaxFailures::Count(count) => {
                    wire_rollouts::MaxFailures::Count(u64::try_from(count).unwrap_or(u64::MAX))
                }
                MaxFailures::Percent(percent) => wire_rollouts::MaxFailures::Percent(percent),
            },
        ),
    };
    wire_rollouts::Rollout {
        id: rollout.id.clone(),
        kind: rollout_kind(rollout.kind),
        state: rollout_state(rollout.state),
        created_at: time(rollout.created_at),
        finished_at: opt_time(rollout.finished_at),
        batch_size,
        delay_ms: u64::try_from(request.delay.as_millis()).unwrap_or(u64::MAX),
        max_failures,
        canary: request.canary.clone(),
        filter: filter(&request.filter),
        dry_run: request.dry_run,
        force: request.force,
        packages: packages(&request.packages),
        reboot: request.reboot.map(reboot_choice),
        trigger: trigger(&request.trigger),
        n_failed: rollout.n_failed,
        counts: counts(rollout),
        batches: rollout.batches.iter().map(batch).collect(),
        hosts: rollout.hosts.iter().map(rollout_host).collect(),
        approve_after: request.approve_after.map(|gate| match gate {
            ApproveAfter::Canary => wire_gates::ApproveAfter::Canary,
            ApproveAfter::Batch(index) => {
                wire_gates::ApproveAfter::Batch(u64::try_from(index).unwrap_or(u64::MAX))
            }
        }),
        approval_timeout: request
            .approval_timeout
            .map(|timeout| humantime::format_duration(timeout).to_string()),
        awaiting_approval: rollout.gate.as_ref().map(|gate| wire_gates::ApprovalGate {
            after_batch: gate.after_batch,
            since: time(gate.since),
            deadline: opt_time(gate.deadline),
        }),
        approved_by: rollout.approved_by.clone(),
    }
}

pub fn rollout_summary(rollout: &RolloutSnapshot) -> wire_rollouts::RolloutSummary {
    wire_rollouts::RolloutSummary {
        id: rollout.id.clone(),
        kind: rollout_kind(rollout.kind),
        state: rollout_state(rollout.state),
        created_at: time(rollout.created_at),
        finished_at: opt_time(rollout.finished_at),
        dry_run: rollout.request.dry_run,
        trigger: trigger(&rollout.request.trigger),
        n_hosts: rollout.hosts.len(),
        n_batches: rollout.batches.len(),
        n_failed: rollout.n_failed,
        counts: counts(rollout),
    }
}

pub fn packages(packages: &Packages) -> wire_schedules::Packages {
    match packages {
        Packages::All => wire_schedules::Packages::All,
        Packages::Security => wire_schedules::Packages::Security,
        Packages::Names(names) => wire_schedules::Packages::Names(names.clone()),
    }
}

pub fn reboot_choice(choice: RebootChoice) -> wire_schedules::RebootChoice {
    match choice {
        RebootChoice::Never => wire_schedules::RebootChoice::Never,
        RebootChoice::IfRequired => wire_schedules::RebootChoice::IfRequired,
        RebootChoice::Always => wire_schedules::RebootChoice::Always,
    }
}

pub fn trigger(trigger: &Trigger) -> wire_schedules::Trigger {
    match trigger {
        Trigger::Api(token) => wire_schedules::Trigger::Api(token.clone()),
        Trigger::Schedule(name) => wire_schedules::Trigger::Schedule(name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use tendhost_core::model::{FleetError, RolloutHostState, RolloutKind, RolloutState};
    use tendhost_core::state::{HostState, JobKind};
    use tendhost_pkg::RebootState;

    use crate::http::error::ApiError;
    use crate::http::mapping::{
        hhmm, host_state, job_kind, job_state, reboot_state, rollout_host_state, rollout_kind,
        rollout_state,
    };

    #[test]
    fn every_fleet_error_has_its_status_and_code() {
        let cases = [
            (
                FleetError::NotFound {
                    kind: "host",
                    name: "x".into(),
                },
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                FleetError::HostBusy {
                    host: "x".into(),
                    job_id: "job-1".into(),
                },
                StatusCode::CONFLICT,
                "host_busy",
            ),
            (
                FleetError::InvalidTransition {
                    host: "x".into(),
                    action: "retry",
                    current_state: HostState::Idle,
                    hint: "h".into(),
                },
                StatusCode::CONFLICT,
                "invalid_transition",
            ),
            (
                FleetError::UpdatesDisabled { host: "x".into() },
                StatusCode::CONFLICT,
                "updates_disabled",
            ),
            (
                FleetError::OutsideMaintenanceWindow {
                    host: "x".into(),
                    window: "w".into(),
                },
                StatusCode::CONFLICT,
                "outside_maintenance_window",
            ),
            (
                FleetError::Duplicate { name: "x".into() },
                StatusCode::CONFLICT,
                "duplicate",
            ),
            (
                FleetError::ConfigHost { name: "x".into() },
                StatusCode::CONFLICT,
                "config_host",
            ),
            (
                FleetError::RolloutFinished {
                    id: "r".into(),
                    state: "completed",
                },
                StatusCode::CONFLICT,
                "rollout_finished",
            ),
            (
                FleetError::invalid("batch_size", "must be at least 1"),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_value",
            ),
            (
                FleetError::Unavailable("gone".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                FleetError::ShuttingDown,
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
            ),
        ];
        for (err, status, code) in cases {
            let text = err.to_string();
            let api = ApiError::from(err);
            assert_eq!((api.status, api.code), (status, code), "{text}");
            assert_eq!(api.message, text);
        }
        let api = ApiError::from(FleetError::InvalidTransition {
            host: "x".into(),
            action: "retry",
            current_state: HostState::PendingUpdates,
            hint: "h".into(),
        });
        assert_eq!(api.details.unwrap()["current_state"], "pending_updates");
        let api = ApiError::from(FleetError::invalid("filter.hosts", "unknown host \"q\""));
        assert_eq!(api.details.unwrap()["field"], "filter.hosts");
    }

    #[test]
    fn wire_names_match_the_core() {
        for state in HostState::ALL {
            let wire = serde_json::to_value(host_state(state)).unwrap();
            assert_eq!(wire, state.as_str());
        }
        for state in tendhost_core::model::JobState::ALL {
            let wire = serde_json::to_value(job_state(state)).unwrap();
            assert_eq!(wire, state.as_str());
        }
        for kind in [JobKind::Check, JobKind::Update, JobKind::Reboot] {
            assert_eq!(serde_json::to_value(job_kind(kind)).unwrap(), kind.as_str());
        }
        for state in [
            RolloutState::Running,
            RolloutState::AwaitingApproval,
            RolloutState::Completed,
            RolloutState::Stopped,
            RolloutState::Cancelled,
            RolloutState::Interrupted,
        ] {
            assert_eq!(
                serde_json::to_value(rollout_state(state)).unwrap(),
                state.as_str()
            );
        }
        for state in [
            RolloutHostState::Pending,
            RolloutHostState::Running,
            RolloutHostState::Succeeded,
            RolloutHostState::Failed,
            RolloutHostState::Skipped,
            RolloutHostState::Cancelled,
        ] {
            assert_eq!(
                serde_json::to_value(rollout_host_state(state)).unwrap(),
                state.as_str()
            );
        }
        for kind in [RolloutKind::Check, RolloutKind::Update] {
            assert_eq!(
                serde_json::to_value(rollout_kind(kind)).unwrap(),
                kind.as_str()
            );
        }
        for (reboot, name) in [
            (RebootState::Required { packages: vec![] }, "required"),
            (RebootState::NotRequired, "not_required"),
            (RebootState::Unknown, "unknown"),
        ] {
            assert_eq!(serde_json::to_value(reboot_state(&reboot)).unwrap(), name);
            assert_eq!(reboot.wire_name(), name);
        }
        assert_eq!(hhmm(0), "00:00");
        assert_eq!(hhmm(23 * 60 + 59), "23:59");
    }
}
