//! Job bodies: what a check, an update and a reboot do on a host, through `tendhost-pkg`'s
//! operations over the host's executor. Each body moves the host through the state machine and
//! reports remote failures as data (job state + host state), never as a panic or a handler
//! error. Runs inside the task the host actor started; holds one fleet-wide remote slot. Which
//! state a job leaves its host in is decided in one place, `settle`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use jiff::Timestamp;
use tendhost_exec::{OutputSink, Stream};
use tendhost_pkg::{
    AptUpgrade as PkgAptUpgrade, CheckReport, Inventory, InventoryRead, JobId, ListRefresh,
    PackageManager, PkgError, PkgOptions, RebootState, Target, UpgradeOutcome, UpgradeState,
    progress_package,
};

use crate::events::{EventKind, OutputStream};
use crate::host::HostShared;
use crate::model::{JobState, LostJob, Packages, RebootChoice, UpdateOptions};
use crate::settle::{Ending, Step, requires_reboot, settle};
use crate::spec::{AptUpgrade, PinnedManager, RestartServices};
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

    fn ready(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.host.ctx().output_room())
    }
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
                match (update.security, update.excluded) {
                    (true, true) => ", security, excluded",
                    (true, false) => ", security",
                    (false, true) => ", excluded",
                    (false, false) => "",
                }
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
        exclude: spec.policy.exclude.clone(),
        ..PkgOptions::default()
    }
}

/// How a step of a job ended, for the host state and the job state.
enum StepError {
    /// The host could not be reached: host `unreachable`.
    Unreachable(String),
    /// The package database was locked: job `busy`, host back to `back_to` (`None`: where it
    /// was when the job started).
    Busy {
        error: String,
        back_to: Option<HostState>,
    },
    /// A detached upgrade stayed out of reach past the reconnect window: job `lost`, host
    /// `unreachable` until a check collects the outcome.
    Lost(String),
    /// Anything else: host `failed`.
    Failed(String),
    /// The health check failed after the update: host `failed` with reason
    /// `health_check_failed`.
    Unhealthy(String),
}

impl From<PkgError> for StepError {
    fn from(err: PkgError) -> Self {
        if err.is_connection_failure() {
            StepError::Unreachable(err.to_string())
        } else if matches!(err, PkgError::Locked { .. }) {
            StepError::Busy {
                error: err.to_string(),
                back_to: None,
            }
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
    #[cfg(feature = "testing")]
    crate::testing::job_panic_hook(host.name());
    let mut reason = None;
    let body = async {
        match kind {
            JobKind::Check => run_check(host, job_id, true).await,
            JobKind::Update if options.dry_run => run_dry_run(host, job_id, &options).await,
            JobKind::Update => run_update(host, job_id, &options).await,
            JobKind::Reboot => run_reboot(host, job_id).await,
        }
    };
    // The job's overall deadline: whatever the host answers (or does not), the job ends and
    // gives its fleet-wide slot back.
    let job_timeout = host.spec.timing.job_timeout;
    let result = tokio::time::timeout(job_timeout, body)
        .await
        .unwrap_or_else(|_| Err(timed_out(host, job_id, kind, job_timeout)));
    let (ending, state, summary) = match result {
        // A job that succeeded has settled its host already.
        Ok(summary) => (None, JobState::Succeeded, summary),
        Err(StepError::Unreachable(error)) => {
            host.status().last_error = Some(error.clone());
            (Some(Ending::Unreachable), JobState::Failed, error)
        }
        Err(StepError::Busy { error, back_to }) => (
            Some(Ending::Busy {
                back_to: back_to.unwrap_or(previous),
            }),
            JobState::Busy,
            error,
        ),
        Err(StepError::Lost(error)) => (Some(Ending::Lost), JobState::Lost, error),
        Err(StepError::Failed(error)) => (Some(Ending::Failed), JobState::Failed, error),
        Err(StepError::Unhealthy(error)) => {
            reason = Some(crate::health::HEALTH_CHECK_FAILED);
            (Some(Ending::Failed), JobState::Failed, error)
        }
    };
    if let Some(ending) = ending {
        match settle(ending, auto_reboot(host, &options)) {
            HostState::Failed => host.fail_for(kind, previous, summary.clone(), job_id, reason),
            to => host.transition(to),
        }
        let reason = match ending {
            Ending::Unreachable => Some(summary.clone()),
            Ending::Lost => Some("lost during upgrade".to_owned()),
            _ => None,
        };
        if let Some(reason) = reason {
            ctx.bus.publish(EventKind::HostDisconnected {
                host: host.name().to_owned(),
                reason,
            });
        }
    }
    // Committed before the event that announces it.
    host.persist();
    // Subscribed before the job's end is announced, to see that announcement (it arrives
    // once the outcome is committed).
    let (_, announced) = ctx.bus.subscribe_since(None);
    finish_job(host, job_id, state, summary);
    let collected = host.take_collected();
    if !collected.is_empty() {
        tokio::spawn(retire(
            Arc::clone(host),
            job_id.to_owned(),
            collected,
            announced,
        ));
    }
}

/// How long [`retire`] waits for a job's end to be committed.
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// Once `job_id`'s end is announced (so its outcome, and those of the `collected` jobs before
/// it, are committed), marks the `collected` job directories on the host and removes all but
/// the newest `keep_job_dirs`. If the announcement is not seen or the host does not answer,
/// the jobs are noted again for the next job's end; their directories stay meanwhile.
async fn retire(
    host: Arc<HostShared>,
    job_id: String,
    collected: Vec<String>,
    mut announced: tokio::sync::broadcast::Receiver<Arc<crate::events::Event>>,
) {
    let committed = tokio::time::timeout(COMMIT_WAIT, async {
        loop {
            match announced.recv().await {
                Ok(event) => {
                    if matches!(&event.kind, EventKind::JobFinished { job_id: id, .. } if *id == job_id)
                    {
                        return true;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    drop(announced);
    let retired = if committed {
        let ids: Vec<JobId> = collected
            .iter()
            .filter_map(|id| JobId::new(id.as_str()).ok())
            .collect();
        tendhost_pkg::retire_jobs(
            host.executor.as_ref(),
            &ids,
            &pkg_options(&host, false),
            host.spec.keep_job_dirs,
        )
        .await
        .map_err(|err| err.to_string())
    } else {
        Err(format!("the end of job {job_id} was not seen committed"))
    };
    match retired {
        Ok(retired) => tracing::debug!(
            host = host.name(),
            kept = retired.kept,
            removed = retired.removed,
            "job directories retired"
        ),
        Err(err) => {
            tracing::warn!(host = host.name(), %err, "job directories not retired; the next job tries again");
            for id in &collected {
                host.collected(id);
            }
        }
    }
}

/// The failure of a job that ran past `job_timeout`, logged to the job too. An update's
/// detached upgrade is left alone on the host (killing dpkg mid-run would break the host); its
/// log stays in the job directory.
fn timed_out(host: &HostShared, job_id: &str, kind: JobKind, job_timeout: Duration) -> StepError {
    let mut reason = format!(
        "job timed out: still running after job_timeout ({})",
        humantime::format_duration(job_timeout)
    );
    if kind == JobKind::Update {
        reason.push_str("; an upgrade already started on the host is left to finish there");
    }
    tracing::warn!(host = host.name(), job_id, %reason, "job timed out");
    job_note(host, job_id, &format!("tendhost: {reason}"));
    StepError::Failed(reason)
}

/// [`run_job`] with a panic contained: the job ends `failed` with an internal-error reason, the
/// panic is logged, and the host fails from the state it was in, so the caller frees it and a
/// rollout waiting on the job goes on.
pub async fn run_job_contained(
    host: &Arc<HostShared>,
    job_id: &str,
    kind: JobKind,
    options: UpdateOptions,
) {
    let previous = host.status().state;
    let run = AssertUnwindSafe(run_job(host, job_id, kind, options)).catch_unwind();
    let Err(payload) = run.await else {
        return;
    };
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    tracing::error!(
        host = host.name(),
        job_id,
        panic = %message,
        "job task panicked; the job is failed and the host freed"
    );
    let summary = format!("internal error: the job task panicked ({message})");
    host.fail(kind, previous, summary.clone(), job_id);
    host.persist();
    finish_job(host, job_id, JobState::Failed, summary);
}

/// Ends job `job_id` with `state`: in the registry, in the store, then the `job_finished`
/// event (after the write it announces).
fn finish_job(host: &HostShared, job_id: &str, state: JobState, summary: String) {
    let ctx = host.ctx();
    ctx.jobs.finish(job_id, state, Some(summary));
    ctx.persist_job(job_id);
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

/// What a step read from the host at its end.
struct Findings {
    report: CheckReport,
    /// `None`: not read (a dry run); the last known state stands.
    reboot: Option<RebootState>,
    /// `None`: not read, or reading it failed; the last inventory stands.
    inventory: Option<Inventory>,
    /// What `report` was read from (`None`: unknown, the next look reads everything).
    fingerprint: Option<String>,
}

/// Whether a look reads the inventory too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WithInventory {
    Yes,
    No,
    /// Only when the host's boot id is not the one of the inventory last read (it rebooted,
    /// or none was read yet); the uptime is kept current either way. A check does this: what
    /// the inventory holds changes with an upgrade (read then) or a reboot.
    IfRebooted,
}

/// Reads pending updates (refreshing the lists when `refresh` and the policy says so), the
/// reboot state and, as `with_inventory` says, the inventory (whose failure is only logged):
/// one command on apt hosts (`tendhost_pkg::look`).
async fn look(
    host: &HostShared,
    manager: PackageManager,
    refresh: bool,
    with_inventory: WithInventory,
) -> Result<Findings, StepError> {
    let exec = host.executor.as_ref();
    let known_boot = match with_inventory {
        WithInventory::IfRebooted => host
            .status()
            .inventory
            .as_ref()
            .map(|inventory| inventory.boot_id.clone()),
        _ => None,
    };
    let read = match (with_inventory, &known_boot) {
        (WithInventory::No, _) => InventoryRead::Never,
        (WithInventory::IfRebooted, Some(boot_id)) => InventoryRead::UnlessBoot(boot_id),
        _ => InventoryRead::Always,
    };
    let previous = {
        let status = host.status();
        status
            .look_fingerprint
            .clone()
            .map(|fingerprint| (fingerprint, status.report.clone()))
    };
    let previous = previous
        .as_ref()
        .map(|(fingerprint, report)| (fingerprint.as_str(), report));
    let look =
        tendhost_pkg::look(exec, manager, &pkg_options(host, refresh), read, previous).await?;
    Ok(findings_of(host, look))
}

/// The findings of a look; the inventory's failure is only logged, and a look that skipped
/// the inventory keeps the known one's uptime current.
fn findings_of(host: &HostShared, look: tendhost_pkg::Look) -> Findings {
    let inventory = match look.inventory {
        Some(Ok(inventory)) => Some(inventory),
        Some(Err(err)) => {
            tracing::warn!(host = %host.name(), %err, "inventory failed");
            None
        }
        None => None,
    };
    if inventory.is_none()
        && let Some(uptime) = look.uptime
        && let Some(known) = host.status().inventory.as_mut()
    {
        known.uptime = uptime;
    }
    Findings {
        report: look.report,
        reboot: Some(look.reboot),
        inventory,
        fingerprint: look.fingerprint,
    }
}

/// Records what `step` found in the host's status and settles the host (`settle`); returns
/// the state it settled on, or `rebooting` when the job has to reboot the host now (the host
/// is still where the step left it then).
fn record_and_settle(host: &HostShared, step: Step, findings: Findings) -> HostState {
    record_and_settle_with(host, step, findings, host.spec.policy.auto_reboot)
}

/// [`record_and_settle`] with the reboot policy of this job.
fn record_and_settle_with(
    host: &HostShared,
    step: Step,
    findings: Findings,
    auto_reboot: bool,
) -> HostState {
    let ending = {
        let mut status = host.status();
        let Findings {
            report,
            reboot,
            inventory,
            fingerprint,
        } = findings;
        status.look_fingerprint = fingerprint;
        if let Some(reboot) = reboot {
            status.reboot = reboot;
        }
        if inventory.is_some() {
            status.inventory = inventory;
        }
        let ending = Ending::Found {
            step,
            pending: !report.pending.is_empty(),
            reboot_required: requires_reboot(&status.reboot),
        };
        status.set_report(report, crate::clock::now());
        status.last_check = Some(Timestamp::now());
        ending
    };
    let to = settle(ending, auto_reboot);
    if !matches!(to, HostState::Rebooting | HostState::Failed) {
        host.transition(to);
    }
    to
}

/// Check: querying -> pending_updates / waiting_reboot / idle (`settle`); collects a
/// previously lost upgrade first.
async fn run_check(host: &HostShared, job_id: &str, refresh: bool) -> Result<String, StepError> {
    host.transition(HostState::Querying);
    let was_connected = host.status().last_error.is_none();
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
    let findings = look(host, manager, refresh, WithInventory::IfRebooted).await?;
    let reboot = findings.reboot.clone().unwrap_or(RebootState::Unknown);
    note_report(host, job_id, &findings.report, &reboot);
    let n_pending = findings.report.pending.len();
    host.ctx().jobs.update(job_id, |job| {
        job.pending.clone_from(&findings.report.pending);
    });
    record_and_settle(host, Step::Check, findings);
    Ok(format!(
        "{n_pending} pending update(s){}",
        if requires_reboot(&reboot) {
            "; reboot required"
        } else {
            ""
        }
    ))
}

/// The next check after a lost upgrade collects its real outcome from the host's job dir.
async fn collect_lost(host: &HostShared, check_job: &str, manager: PackageManager, lost: &LostJob) {
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
            finish_job(
                host,
                lost,
                state,
                format!(
                    "collected after the host came back: {}",
                    outcome_summary(&outcome)
                ),
            );
            host.status().lost_job = None;
            host.collected(lost);
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

/// Whether a job reboots a host that needs it: the job's `reboot` choice, else the host's
/// `auto_reboot`.
fn auto_reboot(host: &HostShared, options: &UpdateOptions) -> bool {
    match options.reboot {
        None => host.spec.policy.auto_reboot,
        Some(RebootChoice::Never) => false,
        Some(RebootChoice::IfRequired | RebootChoice::Always) => true,
    }
}

/// Logs the selection of an update that is not "every package".
fn note_selection(host: &HostShared, job_id: &str, options: &UpdateOptions) {
    if options.packages != Packages::All {
        job_note(
            host,
            job_id,
            &format!("packages: {}", options.packages.describe()),
        );
    }
    if !host.spec.policy.exclude.is_empty() {
        let globs: Vec<&str> = host
            .spec
            .policy
            .exclude
            .iter()
            .map(tendhost_pkg::ExcludeGlob::as_str)
            .collect();
        job_note(
            host,
            job_id,
            &format!("never upgraded here: {}", globs.join(", ")),
        );
    }
}

/// Dry run: querying -> what a check would settle on, with the last known reboot state.
async fn run_dry_run(
    host: &HostShared,
    job_id: &str,
    options: &UpdateOptions,
) -> Result<String, StepError> {
    host.transition(HostState::Querying);
    let manager = manager(host).await?;
    let opts = pkg_options(host, true);
    note_selection(host, job_id, options);
    let dry_run =
        tendhost_pkg::dry_run_selected(host.executor.as_ref(), manager, &opts, &options.packages)
            .await?;
    let n_pending = dry_run.report.pending.len();
    note_report(host, job_id, &dry_run.report, &host.status().reboot.clone());
    for command in &dry_run.commands {
        job_note(host, job_id, &format!("would run: {command}"));
    }
    host.ctx().jobs.update(job_id, |job| {
        job.pending.clone_from(&dry_run.report.pending);
        job.commands.clone_from(&dry_run.commands);
    });
    let findings = Findings {
        report: dry_run.report,
        reboot: None,
        inventory: None,
        fingerprint: None,
    };
    record_and_settle(host, Step::DryRun, findings);
    Ok(format!("dry run: {n_pending} package(s) would be upgraded"))
}

/// Update: (a first check) -> updating -> the detached upgrade -> what `settle` says, which
/// on an `auto_reboot` host that needs it is a reboot and its verification.
async fn run_update(
    host: &HostShared,
    job_id: &str,
    options: &UpdateOptions,
) -> Result<String, StepError> {
    // A selection is resolved against a fresh look at the host, not the last periodic check.
    let selective = options.packages != Packages::All || !host.spec.policy.exclude.is_empty();
    if host.status().last_check.is_none() || selective {
        run_check(host, job_id, true).await?;
    }
    let manager = manager(host).await?;
    let previous = host.status().state;
    host.transition(HostState::Updating);
    let opts = pkg_options(host, false);
    note_selection(host, job_id, options);
    let target = Target::resolve(
        manager,
        &options.packages,
        &opts.exclude,
        &host.status().report,
    );
    if !target.not_pending.is_empty() {
        job_note(
            host,
            job_id,
            &format!(
                "no pending update on this host for: {}",
                target.not_pending.join(", ")
            ),
        );
    }
    let total = match &target.selected {
        Some(selected) => u32::try_from(selected.len()).unwrap_or(u32::MAX),
        None => u32::try_from(host.status().report.pending.len()).unwrap_or(u32::MAX),
    };
    let sink = JobSink {
        host,
        job_id,
        total,
        done: 0.into(),
    };
    let id = JobId::new(job_id).map_err(|err| StepError::Failed(err.to_string()))?;
    let outcome = match tendhost_pkg::upgrade_selected(
        host.executor.as_ref(),
        manager,
        &id,
        &opts,
        &target,
        &sink,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(err) => {
            return Err(match StepError::from(err) {
                StepError::Busy { error, .. } => StepError::Busy {
                    error,
                    back_to: Some(previous),
                },
                other => other,
            });
        }
    };
    record_outcome(host, job_id, &outcome);
    if outcome.state != UpgradeState::Lost {
        host.collected(job_id);
    }
    let also_installed = target.also_installed(&outcome.upgraded);
    let mut summary = outcome_summary(&outcome);
    if !also_installed.is_empty() {
        let names: Vec<&str> = also_installed.iter().map(|p| p.name.as_str()).collect();
        summary.push_str(&format!("; also installed: {}", names.join(", ")));
    }
    host.ctx().jobs.update(job_id, |job| {
        job.also_installed = also_installed;
    });
    match outcome.state {
        UpgradeState::Succeeded => {}
        UpgradeState::Failed => {
            return Err(StepError::Failed(format!("upgrade failed: {summary}")));
        }
        UpgradeState::Busy => {
            return Err(StepError::Busy {
                error: format!("package database locked: {summary}"),
                back_to: Some(previous),
            });
        }
        UpgradeState::Lost => {
            let mut status = host.status();
            status.lost_job = Some(LostJob {
                job_id: job_id.to_owned(),
                log_offset: outcome.log_offset,
            });
            status.last_error = Some(format!(
                "lost contact for the whole reconnect window ({}s)",
                opts.reconnect_window.as_secs()
            ));
            return Err(StepError::Lost(
                "the host stayed unreachable past the reconnect window; the next check collects the real outcome"
                    .to_owned(),
            ));
        }
    }
    // Where the host stands now: pending list (no refresh), reboot flag and the inventory
    // (its package count changed). An apt job looked itself once its upgrade had ended; a
    // job without that look (dnf, or the look's answer is unusable) is looked at now.
    let closing = outcome.closing_look.as_deref().and_then(|text| {
        tendhost_pkg::closing_look(host.name(), text, &opts)
            .inspect_err(|err| {
                tracing::warn!(host = %host.name(), %err, "the job's closing look is unusable; looking again");
            })
            .ok()
    });
    let findings = match closing {
        Some(look) => findings_of(host, look),
        None => look(host, manager, false, WithInventory::No).await?,
    };
    host.status().failure = None;
    let settled = record_and_settle_with(host, Step::Update, findings, auto_reboot(host, options));
    let always = options.reboot == Some(RebootChoice::Always) && settled != HostState::Failed;
    let summary = if settled == HostState::Rebooting || always {
        reboot_and_verify(host, job_id).await?;
        format!("{summary}; rebooted and verified")
    } else if requires_reboot(&host.status().reboot) {
        format!("{summary}; reboot required")
    } else {
        summary
    };
    let summary = format!("{summary}{}", services_after(host, job_id).await);
    Ok(format!("{summary}{}", health_after(host, job_id).await?))
}

/// After an update: which processes still run replaced code (`services_to_restart`, kept in
/// the host and the job); with `restart_services = "restart"`, their units are restarted and
/// the scan repeated. A failing scan is logged, never the job's failure. Returns the
/// summary's tail.
async fn services_after(host: &HostShared, job_id: &str) -> String {
    let exec = host.executor.as_ref();
    let mut found = match tendhost_pkg::services_to_restart(exec).await {
        Ok(found) => found,
        Err(err) => {
            job_note(
                host,
                job_id,
                &format!("services to restart: scan failed: {err}"),
            );
            return String::new();
        }
    };
    if host.spec.policy.restart_services == RestartServices::Restart
        && found.iter().any(|process| process.unit.is_some())
    {
        match tendhost_pkg::restart_units(exec, &found).await {
            Ok(results) => {
                for (unit, result) in results {
                    let line = match result {
                        Ok(()) => format!("restarted {unit} (restart_services = \"restart\")"),
                        Err(error) => format!("restarting {unit} failed: {error}"),
                    };
                    job_note(host, job_id, &line);
                }
            }
            Err(err) => job_note(host, job_id, &format!("restarting services failed: {err}")),
        }
        match tendhost_pkg::services_to_restart(exec).await {
            Ok(again) => found = again,
            Err(err) => job_note(
                host,
                job_id,
                &format!("services to restart: scan failed: {err}"),
            ),
        }
    }
    for process in &found {
        job_note(
            host,
            job_id,
            &format!(
                "still running replaced code: pid {} {}{}",
                process.pid,
                process.command,
                process
                    .unit
                    .as_ref()
                    .map_or_else(String::new, |unit| format!(" ({unit})"))
            ),
        );
    }
    let tail = if found.is_empty() {
        String::new()
    } else {
        format!("; {} process(es) still run replaced code", found.len())
    };
    host.ctx().jobs.update(job_id, |job| {
        job.services_to_restart.clone_from(&found);
    });
    host.status().services_to_restart = found;
    host.persist();
    tail
}

async fn run_reboot(host: &HostShared, job_id: &str) -> Result<String, StepError> {
    reboot_and_verify(host, job_id).await?;
    Ok(format!(
        "rebooted and verified{}",
        health_after(host, job_id).await?
    ))
}

/// The host's health check after an update or a reboot (nothing without one): the summary's
/// tail when it passes, [`StepError::Unhealthy`] with its output when it fails.
async fn health_after(host: &HostShared, job_id: &str) -> Result<String, StepError> {
    let Some(report) = crate::health::check_host(host, Some(job_id)).await else {
        return Ok(String::new());
    };
    job_note(
        host,
        job_id,
        &format!(
            "health check {} after {} attempt(s): {}",
            if report.ok { "passed" } else { "failed" },
            report.attempts,
            report.output
        ),
    );
    if report.ok {
        Ok("; health check passed".to_owned())
    } else {
        Err(StepError::Unhealthy(format!(
            "health check failed: {}",
            report.output
        )))
    }
}

/// rebooting (issue the reboot, wait for a new boot identity) -> verifying (check again) ->
/// idle / pending_updates, or failed when the host still requires a reboot.
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
    let findings = look(host, manager, false, WithInventory::Yes).await?;
    if record_and_settle(host, Step::Verify, findings) == HostState::Failed {
        return Err(StepError::Failed(
            "the host still requires a reboot after rebooting".to_owned(),
        ));
    }
    Ok(())
}
