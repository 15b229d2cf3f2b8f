//! Job bodies: what a check, an update and a reboot do on a host, through `tendhost-pkg`'s
//! operations over the host's executor. Each body moves the host through the state machine and
//! reports remote failures as data (job state + host state), never as a panic or a handler
//! error. Runs inside the task the host actor started; holds one fleet-wide remote slot.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tendhost_exec::{OutputSink, Stream};
use tendhost_pkg::{
    AptUpgrade as PkgAptUpgrade, JobId, ListRefresh, PackageManager, PkgError, PkgOptions,
    RebootState, UpgradeOutcome, UpgradeState,
};

use crate::events::{EventKind, OutputStream};
use crate::host::HostShared;
use crate::model::{JobState, UpdateOptions};
use crate::spec::{AptUpgrade, PinnedManager};
use crate::state::{HostState, JobKind};

/// How long a rebooting host may take to come back with a new boot identity.
pub const REBOOT_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Streams a job's output lines into the job log and onto the event bus, and derives
/// `update_progress` from dpkg's "Setting up" lines.
struct JobSink<'a> {
    host: &'a HostShared,
    job_id: &'a str,
    total: u32,
    done: std::sync::atomic::AtomicU32,
}

impl OutputSink for JobSink<'_> {
    fn line(&self, stream: Stream, line: &str) {
        let stream = match stream {
            Stream::Stdout => OutputStream::Stdout,
            Stream::Stderr => OutputStream::Stderr,
        };
        let ctx = self.host.ctx();
        ctx.job_output(self.host.name(), self.job_id, stream, line);
        if let Some(package) = progress_package(line) {
            let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            ctx.bus.publish(EventKind::UpdateProgress {
                host: self.host.name().to_owned(),
                package: package.to_owned(),
                done,
                total: self.total.max(done),
            });
        }
    }
}

/// The package a progress line finished: dpkg's `Setting up NAME (VERSION) ...` or dnf's
/// `  Upgrading        : NAME-VERSION 1/4`.
fn progress_package(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("Setting up ") {
        return rest
            .split_whitespace()
            .next()
            .map(|p| p.split(':').next().unwrap_or(p));
    }
    let trimmed = line.trim_start();
    let rest = trimmed
        .strip_prefix("Upgrading")?
        .trim_start()
        .strip_prefix(':')?;
    rest.split_whitespace().next()
}

/// Appends a line tendhost itself writes (not the host's output) to the job log and the bus.
fn job_note(host: &HostShared, job_id: &str, line: &str) {
    host.ctx()
        .job_output(host.name(), job_id, OutputStream::Stdout, line);
}

/// Logs what a check found: one line per pending update, held and kept-back packages,
/// removals and the reboot state.
fn note_report(
    host: &HostShared,
    job_id: &str,
    report: &tendhost_pkg::CheckReport,
    reboot: &RebootState,
) {
    job_note(
        host,
        job_id,
        &format!("{} pending update(s)", report.pending.len()),
    );
    for update in &report.pending {
        job_note(
            host,
            job_id,
            &format!(
                "  {} {} -> {} ({}{})",
                update.name,
                update.current_version.as_deref().unwrap_or("(new)"),
                update.new_version,
                update.origin,
                if update.security { ", security" } else { "" }
            ),
        );
    }
    if !report.held.is_empty() {
        job_note(host, job_id, &format!("held: {}", report.held.join(", ")));
    }
    if !report.kept_back.is_empty() {
        job_note(
            host,
            job_id,
            &format!("kept back: {}", report.kept_back.join(", ")),
        );
    }
    for removal in &report.removals {
        job_note(
            host,
            job_id,
            &format!("would remove: {} {}", removal.name, removal.version),
        );
    }
    job_note(host, job_id, &format!("reboot: {}", reboot.wire_name()));
}

fn pkg_options(host: &HostShared, refresh: bool) -> PkgOptions {
    let spec = &host.spec;
    PkgOptions {
        refresh: if refresh && spec.policy.refresh_lists {
            ListRefresh::Refresh
        } else {
            ListRefresh::Skip
        },
        apt_upgrade: match spec.policy.apt_upgrade {
            AptUpgrade::DistUpgrade => PkgAptUpgrade::DistUpgrade,
            AptUpgrade::Upgrade => PkgAptUpgrade::Upgrade,
        },
        lock_timeout: spec.timing.dpkg_lock_timeout,
        reconnect_window: spec.timing.reconnect_window,
        ..PkgOptions::default()
    }
}

/// How a step of a job ended, for the host state and the job state.
enum StepError {
    /// The host could not be reached: host `unreachable`.
    Unreachable(String),
    /// The package database was locked: job `busy`, host back to where it was.
    Busy(String),
    /// A detached upgrade stayed out of reach past the reconnect window: job `lost`, host
    /// already `unreachable`.
    Lost(String),
    /// Anything else: host `failed`.
    Failed(String),
}

impl From<PkgError> for StepError {
    fn from(err: PkgError) -> Self {
        if err.is_connection_failure() {
            StepError::Unreachable(err.to_string())
        } else if matches!(err, PkgError::Locked { .. }) {
            StepError::Busy(err.to_string())
        } else {
            StepError::Failed(err.to_string())
        }
    }
}

/// Runs job `job_id` of `kind` on `host` to its end.
pub async fn run_job(host: &Arc<HostShared>, job_id: &str, kind: JobKind, options: UpdateOptions) {
    let ctx = Arc::clone(host.ctx());
    let _permit = Arc::clone(&ctx.remote_slots).acquire_owned().await.ok();
    ctx.jobs.set_running(job_id);
    ctx.persist_job(job_id);
    ctx.bus.publish(EventKind::JobStarted {
        job_id: job_id.to_owned(),
        host: host.name().to_owned(),
        kind,
    });
    let previous = host.status().state;
    let result = match kind {
        JobKind::Check => run_check(host, job_id, true).await,
        JobKind::Update if options.dry_run => run_dry_run(host, job_id).await,
        JobKind::Update => run_update(host, job_id).await,
        JobKind::Reboot => run_reboot(host, job_id).await,
    };
    let (state, summary) = match result {
        Ok(summary) => (JobState::Succeeded, summary),
        Err(StepError::Unreachable(error)) => {
            host.status().last_error = Some(error.clone());
            host.transition(HostState::Unreachable);
            ctx.bus.publish(EventKind::HostDisconnected {
                host: host.name().to_owned(),
                reason: error.clone(),
            });
            (JobState::Failed, error)
        }
        Err(StepError::Busy(error)) => {
            // Retryable: nothing changed; the host goes back to where it was.
            host.transition(match previous {
                HostState::Failed => HostState::Idle,
                other => other,
            });
            (JobState::Busy, error)
        }
        Err(StepError::Lost(error)) => (JobState::Lost, error),
        Err(StepError::Failed(error)) => {
            host.fail(kind, previous, error.clone(), job_id);
            (JobState::Failed, error)
        }
    };
    ctx.jobs.finish(job_id, state, Some(summary));
    // Committed before the event that announces it.
    ctx.persist_job(job_id);
    ctx.persist_host(host);
    ctx.bus.publish(EventKind::JobFinished {
        job_id: job_id.to_owned(),
        host: host.name().to_owned(),
        outcome: state.as_str().to_owned(),
    });
}

async fn manager(host: &HostShared) -> Result<PackageManager, StepError> {
    if let Some(manager) = host.status().manager {
        return Ok(manager);
    }
    let pinned = host.spec.package_manager.map(|pinned| match pinned {
        PinnedManager::Apt => PackageManager::Apt,
        PinnedManager::Dnf => PackageManager::Dnf,
        PinnedManager::Yum => PackageManager::Yum,
    });
    let manager = tendhost_pkg::detect(host.executor.as_ref(), pinned).await?;
    host.status().manager = Some(manager);
    Ok(manager)
}

/// Check: querying -> pending_updates / idle (or waiting_reboot when a reboot is pending);
/// collects a previously lost upgrade first.
async fn run_check(host: &HostShared, job_id: &str, refresh: bool) -> Result<String, StepError> {
    host.transition(HostState::Querying);
    let was_connected = host.status().last_error.is_none();
    let exec = host.executor.as_ref();
    let manager = manager(host).await?;
    job_note(
        host,
        job_id,
        &format!("package manager: {}", manager.as_str()),
    );
    if !was_connected {
        host.status().last_error = None;
        host.ctx().bus.publish(EventKind::HostConnected {
            host: host.name().to_owned(),
        });
    }
    let lost_job = host.status().lost_job.clone();
    if let Some(lost) = lost_job {
        collect_lost(host, job_id, manager, &lost).await;
    }
    let opts = pkg_options(host, refresh);
    let report = tendhost_pkg::check(exec, manager, &opts).await?;
    let reboot = tendhost_pkg::reboot_state(exec, manager).await?;
    let inventory = match tendhost_pkg::inventory(exec, Some(manager)).await {
        Ok(inventory) => Some(inventory),
        Err(err) => {
            tracing::warn!(host = %host.name(), %err, "inventory failed");
            None
        }
    };
    note_report(host, job_id, &report, &reboot);
    let n_pending = report.pending.len();
    let reboot_required = matches!(reboot, RebootState::Required { .. });
    host.ctx()
        .jobs
        .update(job_id, |job| job.pending.clone_from(&report.pending));
    {
        let mut status = host.status();
        status.report = report;
        status.reboot = reboot;
        if inventory.is_some() {
            status.inventory = inventory;
        }
        status.last_check = Some(Timestamp::now());
    }
    let waiting_reboot = reboot_required && !host.spec.policy.auto_reboot;
    host.transition(if n_pending > 0 {
        HostState::PendingUpdates
    } else if waiting_reboot {
        HostState::WaitingReboot
    } else {
        HostState::Idle
    });
    Ok(format!(
        "{n_pending} pending update(s){}",
        if reboot_required {
            "; reboot required"
        } else {
            ""
        }
    ))
}

/// The next check after a lost upgrade collects its real outcome from the host's job dir.
async fn collect_lost(
    host: &HostShared,
    check_job: &str,
    manager: PackageManager,
    lost: &crate::host::LostJob,
) {
    let (lost, offset) = (lost.job_id.as_str(), lost.log_offset);
    let Ok(lost_id) = JobId::new(lost) else {
        host.status().lost_job = None;
        return;
    };
    let opts = pkg_options(host, false);
    if offset == 0 {
        job_note(
            host,
            lost,
            "reading the host's job log from its start (the daemon restarted while the job ran)",
        );
    }
    let sink = JobSink {
        host,
        job_id: lost,
        total: 0,
        done: 0.into(),
    };
    match tendhost_pkg::collect(
        host.executor.as_ref(),
        manager,
        &lost_id,
        offset,
        &opts,
        &sink,
    )
    .await
    {
        Ok(outcome) if outcome.state != UpgradeState::Lost => {
            let state = job_state(outcome.state);
            record_outcome(host, lost, &outcome);
            host.ctx().jobs.update(lost, |job| {
                job.state = state;
                job.finished_at = Some(Timestamp::now());
                job.summary = Some(format!(
                    "collected after the host came back: {}",
                    outcome_summary(&outcome)
                ));
            });
            host.ctx().persist_job(lost);
            host.ctx().bus.publish(EventKind::JobFinished {
                job_id: lost.to_owned(),
                host: host.name().to_owned(),
                outcome: state.as_str().to_owned(),
            });
            host.status().lost_job = None;
            job_note(
                host,
                check_job,
                &format!(
                    "collected the outcome of lost job {lost}: {}",
                    state.as_str()
                ),
            );
        }
        Ok(_) => {}
        Err(err) => {
            tracing::warn!(host = %host.name(), job = lost, %err, "collecting a lost job failed");
            if matches!(err, PkgError::JobNotFound { .. }) {
                host.status().lost_job = None;
            }
        }
    }
}

fn job_state(state: UpgradeState) -> JobState {
    match state {
        UpgradeState::Succeeded => JobState::Succeeded,
        UpgradeState::Failed => JobState::Failed,
        UpgradeState::Busy => JobState::Busy,
        UpgradeState::Lost => JobState::Lost,
    }
}

fn record_outcome(host: &HostShared, job_id: &str, outcome: &UpgradeOutcome) {
    host.ctx().jobs.update(job_id, |job| {
        job.exit_code = outcome.exit_code;
        job.packages_changed.clone_from(&outcome.upgraded);
        job.packages_failed.clone_from(&outcome.failed);
    });
}

fn outcome_summary(outcome: &UpgradeOutcome) -> String {
    let mut summary = format!(
        "{} package(s) upgraded, exit code {}",
        outcome.upgraded.len(),
        outcome
            .exit_code
            .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
    );
    if !outcome.failed.is_empty() {
        summary.push_str(&format!("; failed: {}", outcome.failed.join(", ")));
    }
    if outcome.repaired_dpkg {
        summary.push_str("; repaired an interrupted dpkg first");
    }
    summary
}

async fn run_dry_run(host: &HostShared, job_id: &str) -> Result<String, StepError> {
    host.transition(HostState::Querying);
    let manager = manager(host).await?;
    let opts = pkg_options(host, true);
    let dry_run = tendhost_pkg::dry_run(host.executor.as_ref(), manager, &opts).await?;
    let n_pending = dry_run.report.pending.len();
    note_report(host, job_id, &dry_run.report, &host.status().reboot.clone());
    for command in &dry_run.commands {
        job_note(host, job_id, &format!("would run: {command}"));
    }
    host.ctx().jobs.update(job_id, |job| {
        job.pending.clone_from(&dry_run.report.pending);
        job.commands.clone_from(&dry_run.commands);
    });
    {
        let mut status = host.status();
        status.report = dry_run.report;
        status.last_check = Some(Timestamp::now());
    }
    let state = host.status().state;
    if state == HostState::Querying {
        host.transition(if n_pending > 0 {
            HostState::PendingUpdates
        } else {
            HostState::Idle
        });
    }
    Ok(format!("dry run: {n_pending} package(s) would be upgraded"))
}

async fn run_update(host: &HostShared, job_id: &str) -> Result<String, StepError> {
    if host.status().last_check.is_none() {
        run_check(host, job_id, true).await?;
    }
    let manager = manager(host).await?;
    let previous = host.status().state;
    host.transition(HostState::Updating);
    let opts = pkg_options(host, false);
    let total = u32::try_from(host.status().report.pending.len()).unwrap_or(u32::MAX);
    let sink = JobSink {
        host,
        job_id,
        total,
        done: 0.into(),
    };
    let id = JobId::new(job_id).map_err(|err| StepError::Failed(err.to_string()))?;
    let outcome =
        match tendhost_pkg::upgrade(host.executor.as_ref(), manager, &id, &opts, &sink).await {
            Ok(outcome) => outcome,
            Err(err) => {
                let err = StepError::from(err);
                if let StepError::Busy(_) = err {
                    host.transition(previous);
                }
                return Err(err);
            }
        };
    record_outcome(host, job_id, &outcome);
    let summary = outcome_summary(&outcome);
    match outcome.state {
        UpgradeState::Succeeded => {}
        UpgradeState::Failed => {
            return Err(StepError::Failed(format!("upgrade failed: {summary}")));
        }
        UpgradeState::Busy => {
            host.transition(previous);
            return Err(StepError::Busy(format!(
                "package database locked: {summary}"
            )));
        }
        UpgradeState::Lost => {
            {
                let mut status = host.status();
                status.lost_job = Some(crate::host::LostJob {
                    job_id: job_id.to_owned(),
                    log_offset: outcome.log_offset,
                });
                status.last_error = Some(format!(
                    "lost contact for the whole reconnect window ({}s)",
                    opts.reconnect_window.as_secs()
                ));
            }
            host.transition(HostState::Unreachable);
            host.ctx().bus.publish(EventKind::HostDisconnected {
                host: host.name().to_owned(),
                reason: "lost during upgrade".to_owned(),
            });
            return Err(StepError::Lost(
                "the host stayed unreachable past the reconnect window; the next check collects the real outcome"
                    .to_owned(),
            ));
        }
    }
    // Where the host stands now: pending list (no refresh) and reboot flag.
    let exec = host.executor.as_ref();
    let report = tendhost_pkg::check(exec, manager, &pkg_options(host, false)).await?;
    let reboot = tendhost_pkg::reboot_state(exec, manager).await?;
    let reboot_required = matches!(reboot, RebootState::Required { .. });
    let n_pending = report.pending.len();
    {
        let mut status = host.status();
        status.report = report;
        status.reboot = reboot;
        status.last_check = Some(Timestamp::now());
        status.failure = None;
    }
    if reboot_required && host.spec.policy.auto_reboot {
        reboot_and_verify(host, job_id).await?;
        return Ok(format!("{summary}; rebooted and verified"));
    }
    host.transition(if reboot_required {
        HostState::WaitingReboot
    } else if n_pending > 0 {
        HostState::PendingUpdates
    } else {
        HostState::Idle
    });
    Ok(if reboot_required {
        format!("{summary}; reboot required")
    } else {
        summary
    })
}

async fn run_reboot(host: &HostShared, job_id: &str) -> Result<String, StepError> {
    reboot_and_verify(host, job_id).await?;
    Ok("rebooted and verified".to_owned())
}

/// rebooting (issue the reboot, wait for a new boot identity) -> verifying (check again) ->
/// idle / pending_updates.
async fn reboot_and_verify(host: &HostShared, job_id: &str) -> Result<(), StepError> {
    host.transition(HostState::Rebooting);
    let exec = host.executor.as_ref();
    let log = |line: &str| job_note(host, job_id, line);
    let before = tendhost_pkg::reboot(exec, host.spec.reboot_command.as_deref()).await?;
    log(&format!(
        "reboot issued (boot id {}, pid 1 started at tick {})",
        before.boot_id, before.pid1_start_ticks
    ));
    // The old connection is dead or dying; start a fresh one.
    exec.close().await;
    let after =
        tendhost_pkg::wait_for_new_boot(exec, &before, REBOOT_TIMEOUT, Duration::from_secs(1))
            .await
            .map_err(|err| StepError::Failed(err.to_string()))?;
    log(&format!(
        "host is back with a new boot identity (boot id {}, pid 1 started at tick {})",
        after.boot_id, after.pid1_start_ticks
    ));
    host.transition(HostState::Verifying);
    let manager = manager(host).await?;
    let report = tendhost_pkg::check(exec, manager, &pkg_options(host, false)).await?;
    let reboot = tendhost_pkg::reboot_state(exec, manager).await?;
    if matches!(reboot, RebootState::Required { .. }) {
        return Err(StepError::Failed(
            "the host still requires a reboot after rebooting".to_owned(),
        ));
    }
    let inventory = tendhost_pkg::inventory(exec, Some(manager)).await.ok();
    let n_pending = report.pending.len();
    {
        let mut status = host.status();
        status.report = report;
        status.reboot = reboot;
        if inventory.is_some() {
            status.inventory = inventory;
        }
        status.last_check = Some(Timestamp::now());
    }
    host.transition(if n_pending > 0 {
        HostState::PendingUpdates
    } else {
        HostState::Idle
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::driver::progress_package;

    #[test]
    fn progress_lines() {
        assert_eq!(
            progress_package("Setting up tendhost-a (1.1) ..."),
            Some("tendhost-a")
        );
        assert_eq!(
            progress_package("Setting up libc6:amd64 (2.36) ..."),
            Some("libc6")
        );
        assert_eq!(
            progress_package("  Upgrading        : hello-2.0-1.noarch       1/2"),
            Some("hello-2.0-1.noarch")
        );
        assert_eq!(progress_package("Unpacking x (1) ..."), None);
    }
}
