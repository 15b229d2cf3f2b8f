//! Fleet rollouts: `plan` splits targets into batches (canary first, then fixed batches of
//! `batch_size`, like Ansible's `serial`); `start` runs them in a task: each host's job goes
//! through its host actor (so concurrency is what the host actors really do), failures are
//! counted against `max_failures`, and cancellation lets running hosts finish but starts no new
//! ones.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use kameo::actor::ActorRef;
use tokio::sync::watch;

use crate::context::FleetContext;
use crate::events::EventKind;
use crate::host::{HostActor, HostEntry, StartJob};
use crate::model::{
    FleetError, JobState, RolloutBatch, RolloutHost, RolloutHostState, RolloutKind, RolloutRequest,
    RolloutSnapshot, RolloutState, Trigger, UpdateOptions,
};
use crate::spec::UpdatePolicy;
use crate::state::{HostState, Request};

/// A rollout's state, shared by its handle (which the orchestrator keeps) and its runner task.
type SharedRollout = Arc<Mutex<RolloutSnapshot>>;

fn lock(rollout: &SharedRollout) -> MutexGuard<'_, RolloutSnapshot> {
    rollout.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Splits `targets` (names) into batches: the canary hosts first as their own batch, then the
/// rest in order in batches of `batch_size`. Returns `(hosts, is_canary)` per batch.
pub fn plan(targets: &[String], canary: &[String], batch_size: usize) -> Vec<(Vec<String>, bool)> {
    let batch_size = batch_size.max(1);
    let mut batches = Vec::new();
    let canary: Vec<String> = targets
        .iter()
        .filter(|t| canary.contains(t))
        .cloned()
        .collect();
    if !canary.is_empty() {
        batches.push((canary.clone(), true));
    }
    let rest: Vec<String> = targets
        .iter()
        .filter(|t| !canary.contains(t))
        .cloned()
        .collect();
    for chunk in rest.chunks(batch_size) {
        batches.push((chunk.to_vec(), false));
    }
    batches
}

/// A running or finished rollout.
#[derive(Clone)]
pub struct RolloutHandle {
    shared: SharedRollout,
    cancel: watch::Sender<bool>,
    ctx: Arc<FleetContext>,
}

impl RolloutHandle {
    pub fn snapshot(&self) -> RolloutSnapshot {
        lock(&self.shared).clone()
    }

    /// Requests cancellation; 409 when the rollout already ended.
    pub fn cancel(&self) -> Result<(), FleetError> {
        let state = lock(&self.shared).state;
        if state == RolloutState::Interrupted {
            // Nothing runs: cancelling settles it for good (it can no longer be resumed).
            let snapshot = {
                let mut rollout = lock(&self.shared);
                rollout.state = RolloutState::Cancelled;
                for host in &mut rollout.hosts {
                    if matches!(
                        host.state,
                        RolloutHostState::Pending
                            | RolloutHostState::Running
                            | RolloutHostState::Deferred
                    ) {
                        host.state = RolloutHostState::Cancelled;
                        host.reason = Some("rollout cancelled after it was interrupted".to_owned());
                    }
                }
                rollout.clone()
            };
            self.ctx.persist_rollout(&snapshot);
            self.ctx.bus.publish(EventKind::RolloutFinished {
                rollout_id: snapshot.id,
                state: RolloutState::Cancelled.as_str().to_owned(),
            });
            return Ok(());
        }
        if state != RolloutState::Running {
            return Err(FleetError::RolloutFinished {
                id: lock(&self.shared).id.clone(),
                state: state.as_str(),
            });
        }
        let _ = self.cancel.send(true);
        Ok(())
    }

    /// A rollout from a previous run (read from the store), not running.
    pub fn restored(ctx: Arc<FleetContext>, snapshot: RolloutSnapshot) -> RolloutHandle {
        let (cancel, _) = watch::channel(false);
        RolloutHandle {
            shared: Arc::new(Mutex::new(snapshot)),
            cancel,
            ctx,
        }
    }

    /// Continues an `interrupted` rollout with the hosts not yet done (pending, or running
    /// when the daemon stopped), in their original batches; failures counted so far still
    /// count. Returns the handle that now runs it.
    pub fn resume(&self, targets: Vec<HostEntry>) -> Result<RolloutHandle, FleetError> {
        let batches = {
            let mut rollout = lock(&self.shared);
            if rollout.state != RolloutState::Interrupted {
                return Err(FleetError::InvalidRollout {
                    id: rollout.id.clone(),
                    state: rollout.state.as_str(),
                    hint: "only an interrupted rollout can be resumed",
                });
            }
            rollout.state = RolloutState::Running;
            rollout.finished_at = None;
            let mut batches: Vec<(usize, Vec<String>)> = Vec::new();
            for host in &mut rollout.hosts {
                if matches!(
                    host.state,
                    RolloutHostState::Pending
                        | RolloutHostState::Running
                        | RolloutHostState::Deferred
                ) {
                    host.state = RolloutHostState::Pending;
                    match batches.iter_mut().find(|(index, _)| *index == host.batch) {
                        Some((_, hosts)) => hosts.push(host.host.clone()),
                        None => batches.push((host.batch, vec![host.host.clone()])),
                    }
                }
            }
            batches.sort_by_key(|(index, _)| *index);
            for batch in &mut rollout.batches {
                if batches.iter().any(|(index, _)| *index == batch.index) {
                    batch.state = "pending";
                }
            }
            batches
        };
        let hosts = batches
            .iter()
            .flat_map(|(_, hosts)| hosts.clone())
            .collect();
        Ok(launch(
            Start::Resumed,
            Arc::clone(&self.ctx),
            Arc::clone(&self.shared),
            hosts,
            batches,
            targets,
        ))
    }
}

/// Whether `launch` starts a rollout or resumes one.
#[derive(Clone, Copy)]
enum Start {
    New,
    Resumed,
}

/// Runs `shared` (persisted and announced first) over `batches` (original batch index, hosts)
/// in a background task; `hosts` is what `rollout_started` names.
fn launch(
    start: Start,
    ctx: Arc<FleetContext>,
    shared: SharedRollout,
    hosts: Vec<String>,
    batches: Vec<(usize, Vec<String>)>,
    targets: Vec<HostEntry>,
) -> RolloutHandle {
    let snapshot = lock(&shared).clone();
    ctx.persist_rollout(&snapshot);
    if let (Start::New, Trigger::Schedule(schedule)) = (start, &snapshot.request.trigger) {
        ctx.bus.publish(EventKind::ScheduleTriggered {
            schedule: schedule.clone(),
            rollout_id: snapshot.id.clone(),
        });
    }
    ctx.bus.publish(EventKind::RolloutStarted {
        rollout_id: snapshot.id,
        hosts,
        n_batches: batches.len(),
        dry_run: snapshot.request.dry_run,
    });
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let runner = Runner {
        ctx: Arc::clone(&ctx),
        kind: snapshot.kind,
        request: snapshot.request,
        shared: Arc::clone(&shared),
        cancel: cancel_rx,
        targets,
        started_at: crate::clock::now(),
    };
    tokio::spawn(runner.run(batches));
    RolloutHandle {
        shared,
        cancel: cancel_tx,
        ctx,
    }
}

/// Starts a rollout over `targets` in a background task.
pub fn start(
    ctx: Arc<FleetContext>,
    kind: RolloutKind,
    request: RolloutRequest,
    targets: Vec<HostEntry>,
) -> RolloutHandle {
    let names: Vec<String> = targets.iter().map(|t| t.shared.name().to_owned()).collect();
    let batch_size = match kind {
        // A fleet check is one batch; the fleet-wide limit (max_parallel) queues the excess.
        RolloutKind::Check => names.len(),
        RolloutKind::Update => request.batch_size,
    };
    let batches = plan(&names, &request.canary, batch_size);
    let snapshot = RolloutSnapshot {
        id: ctx.ids.next("rollout"),
        kind,
        state: RolloutState::Running,
        request,
        created_at: Timestamp::now(),
        finished_at: None,
        batches: batches
            .iter()
            .enumerate()
            .map(|(index, (hosts, canary))| RolloutBatch {
                index,
                hosts: hosts.clone(),
                canary: *canary,
                state: "pending",
            })
            .collect(),
        hosts: batches
            .iter()
            .enumerate()
            .flat_map(|(index, (hosts, _))| {
                hosts.iter().map(move |host| RolloutHost {
                    host: host.clone(),
                    batch: index,
                    state: RolloutHostState::Pending,
                    job_id: None,
                    reason: None,
                })
            })
            .collect(),
        n_failed: 0,
    };
    let batches = batches
        .into_iter()
        .enumerate()
        .map(|(index, (hosts, _))| (index, hosts))
        .collect();
    launch(
        Start::New,
        ctx,
        Arc::new(Mutex::new(snapshot)),
        names,
        batches,
        targets,
    )
}

struct Runner {
    ctx: Arc<FleetContext>,
    kind: RolloutKind,
    request: RolloutRequest,
    shared: SharedRollout,
    cancel: watch::Receiver<bool>,
    targets: Vec<HostEntry>,
    /// The clock when this run started (what `window_grace` counts from).
    started_at: Timestamp,
}

impl Runner {
    fn set_host(
        &self,
        host: &str,
        state: RolloutHostState,
        job_id: Option<String>,
        reason: Option<String>,
    ) {
        let mut rollout = lock(&self.shared);
        if let Some(entry) = rollout.hosts.iter_mut().find(|h| h.host == host) {
            entry.state = state;
            if job_id.is_some() {
                entry.job_id = job_id;
            }
            if reason.is_some() {
                entry.reason = reason;
            }
        }
        if state == RolloutHostState::Failed {
            rollout.n_failed += 1;
        }
        let snapshot = rollout.clone();
        drop(rollout);
        self.ctx.persist_rollout(&snapshot);
    }

    fn set_batch(&self, index: usize, state: &'static str) {
        let snapshot = {
            let mut rollout = lock(&self.shared);
            if let Some(batch) = rollout.batches.get_mut(index) {
                batch.state = state;
            }
            rollout.clone()
        };
        self.ctx.persist_rollout(&snapshot);
    }

    /// Marks every still-pending host with `state` and `reason`, and their batches skipped.
    fn close_pending(&self, state: RolloutHostState, reason: &str) {
        let mut rollout = lock(&self.shared);
        for host in &mut rollout.hosts {
            if matches!(
                host.state,
                RolloutHostState::Pending | RolloutHostState::Deferred
            ) {
                host.state = state;
                host.reason = Some(reason.to_owned());
            }
        }
        for batch in &mut rollout.batches {
            if batch.state == "pending" {
                batch.state = "skipped";
            }
        }
    }

    fn entry(&self, name: &str) -> Option<&HostEntry> {
        self.targets.iter().find(|t| t.shared.name() == name)
    }

    /// Why a host is skipped before starting, if it is.
    fn skip_reason(&self, entry: &HostEntry) -> Option<String> {
        if self.kind == RolloutKind::Check {
            return None;
        }
        let spec = &entry.shared.spec;
        if spec.policy.updates == UpdatePolicy::CheckOnly && !self.request.dry_run {
            return Some("updates are disabled (policy updates = \"check-only\")".to_owned());
        }
        if !self.request.force
            && let Some(window) = &spec.policy.maintenance_window
            && !crate::window::is_open(window, &crate::clock::zoned_now())
        {
            return Some(format!(
                "outside its maintenance window ({})",
                crate::window::describe(window)
            ));
        }
        if entry.shared.status().state == HostState::Failed {
            return Some("host is failed; retry or acknowledge it first".to_owned());
        }
        None
    }

    async fn start_host(
        &self,
        actor: &ActorRef<HostActor>,
        rollout_id: &str,
    ) -> Result<String, FleetError> {
        let request = match self.kind {
            RolloutKind::Check => Request::Check,
            RolloutKind::Update => Request::Update,
        };
        actor
            .ask(StartJob {
                request,
                options: UpdateOptions {
                    dry_run: self.request.dry_run,
                    force: self.request.force,
                    packages: self.request.packages.clone(),
                    reboot: self.request.reboot,
                },
                rollout_id: Some(rollout_id.to_owned()),
            })
            .await
            .map_err(|err| match err {
                kameo::error::SendError::HandlerError(err) => err,
                other => FleetError::Unavailable(format!("host actor unavailable: {other}")),
            })
    }

    /// Starts `hosts` (skipping or deferring those that cannot run now) and waits for their
    /// jobs; deferred hosts go to `deferred` with the time their window opens. `None` when the
    /// daemon is stopping (a job was interrupted).
    async fn run_hosts(
        &self,
        rollout_id: &str,
        hosts: &[String],
        deferred: &mut Vec<(Timestamp, String)>,
    ) -> Option<(usize, usize)> {
        let mut started = Vec::new();
        for name in hosts {
            let Some(entry) = self.entry(name).filter(|e| e.actor.is_alive()).cloned() else {
                self.set_host(
                    name,
                    RolloutHostState::Skipped,
                    None,
                    Some("host was removed".to_owned()),
                );
                continue;
            };
            if let Some(opens_at) = self.defer_until(&entry) {
                let grace_ends = self.started_at.checked_add(self.request.window_grace).ok();
                if grace_ends.is_some_and(|ends| opens_at <= ends) {
                    self.set_host(name, RolloutHostState::Deferred, None, None);
                    self.ctx.bus.publish(EventKind::HostDeferred {
                        rollout_id: rollout_id.to_owned(),
                        host: name.clone(),
                        opens_at,
                    });
                    deferred.push((opens_at, name.clone()));
                } else {
                    self.set_host(
                        name,
                        RolloutHostState::Skipped,
                        None,
                        Some(format!(
                            "window_not_open: its maintenance window does not open within \
                             window_grace ({}s) of the run's start",
                            self.request.window_grace.as_secs()
                        )),
                    );
                }
                continue;
            }
            if let Some(reason) = self.skip_reason(&entry) {
                self.set_host(name, RolloutHostState::Skipped, None, Some(reason));
                continue;
            }
            match self.start_host(&entry.actor, rollout_id).await {
                Ok(job_id) => {
                    self.set_host(name, RolloutHostState::Running, Some(job_id.clone()), None);
                    // Watched from now: the registry may forget the job once it finished.
                    let watch = self.ctx.jobs.watch(&job_id);
                    started.push((name.clone(), job_id, watch));
                }
                Err(err @ FleetError::HostBusy { .. }) => {
                    self.set_host(
                        name,
                        RolloutHostState::Skipped,
                        None,
                        Some(format!("busy: {err}")),
                    );
                }
                Err(err) => {
                    self.set_host(name, RolloutHostState::Failed, None, Some(err.to_string()));
                }
            }
        }
        let (mut n_ok, mut n_failed) = (0, 0);
        for (name, job_id, watch) in started {
            let state = match watch {
                Some(watch) => crate::jobs::wait_finished(watch).await,
                None => None,
            };
            if state == Some(JobState::Interrupted) {
                // Only `Fleet::shutdown` interrupts a job of this run: the daemon is
                // stopping. The rollout is not over; leave it as stored (`running`) for
                // the next start to mark `interrupted`, as after a crash: no failure
                // counted, no new host started, nothing to resume lost.
                return None;
            }
            if state == Some(JobState::Succeeded) {
                n_ok += 1;
                self.set_host(&name, RolloutHostState::Succeeded, None, None);
            } else {
                n_failed += 1;
                let summary = self
                    .ctx
                    .jobs
                    .get_without_log(&job_id)
                    .and_then(|job| job.summary)
                    .unwrap_or_default();
                let outcome = state.map_or("unknown", JobState::as_str);
                self.set_host(
                    &name,
                    RolloutHostState::Failed,
                    None,
                    Some(format!("job {outcome}: {summary}")),
                );
            }
        }
        Some((n_ok, n_failed))
    }

    /// When a host outside its maintenance window would be updated, if this run defers such
    /// hosts (`defer_outside_window`, not `force`) and the host's window is closed now.
    fn defer_until(&self, entry: &HostEntry) -> Option<Timestamp> {
        if self.kind == RolloutKind::Check
            || self.request.force
            || self.request.dry_run
            || !self.request.defer_outside_window
            || entry.shared.spec.policy.updates == UpdatePolicy::CheckOnly
        {
            return None;
        }
        let window = entry.shared.spec.policy.maintenance_window.as_ref()?;
        let now = crate::clock::zoned_now();
        if crate::window::is_open(window, &now) {
            return None;
        }
        crate::window::next_open(window, &now).map(|opens| opens.timestamp())
    }

    /// Runs `batches` (original batch index, hosts) in order.
    async fn run(mut self, batches: Vec<(usize, Vec<String>)>) {
        let rollout_id = lock(&self.shared).id.clone();
        let n_hosts = lock(&self.shared).hosts.len();
        let allowed = match self.kind {
            RolloutKind::Check => usize::MAX,
            RolloutKind::Update => self.request.max_failures.allowed(n_hosts),
        };
        let mut final_state = RolloutState::Completed;
        let mut deferred: Vec<(Timestamp, String)> = Vec::new();
        for (position, (index, hosts)) in batches.iter().enumerate() {
            let index = *index;
            if *self.cancel.borrow() {
                final_state = RolloutState::Cancelled;
                break;
            }
            if position > 0 && !self.request.delay.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(self.request.delay) => {}
                    _ = self.cancel.wait_for(|c| *c) => {
                        final_state = RolloutState::Cancelled;
                        break;
                    }
                }
            }
            self.set_batch(index, "running");
            self.ctx.bus.publish(EventKind::BatchStarted {
                rollout_id: rollout_id.clone(),
                batch: index,
                hosts: hosts.clone(),
            });
            let Some((n_ok, n_failed)) = self.run_hosts(&rollout_id, hosts, &mut deferred).await
            else {
                return;
            };
            self.set_batch(index, "finished");
            self.ctx.bus.publish(EventKind::BatchFinished {
                rollout_id: rollout_id.clone(),
                batch: index,
                succeeded: n_ok,
                failed: n_failed,
            });
            let n_failed_total = lock(&self.shared).n_failed;
            if n_failed_total > allowed {
                final_state = RolloutState::Stopped;
                break;
            }
        }
        // Deferred hosts, as their windows open: the rollout runs until they are done.
        while final_state == RolloutState::Completed && !deferred.is_empty() {
            let Some(next) = deferred.iter().map(|(opens_at, _)| *opens_at).min() else {
                break;
            };
            tokio::select! {
                () = crate::clock::sleep_until(next) => {}
                _ = self.cancel.wait_for(|c| *c) => {
                    final_state = RolloutState::Cancelled;
                    break;
                }
            }
            let now = crate::clock::now();
            let (due, later): (Vec<_>, Vec<_>) = deferred
                .into_iter()
                .partition(|(opens_at, _)| *opens_at <= now);
            deferred = later;
            let due: Vec<String> = due.into_iter().map(|(_, name)| name).collect();
            let mut again = Vec::new();
            if self
                .run_hosts(&rollout_id, &due, &mut again)
                .await
                .is_none()
            {
                return;
            }
            deferred.extend(again);
            if lock(&self.shared).n_failed > allowed {
                final_state = RolloutState::Stopped;
            }
        }
        match final_state {
            RolloutState::Stopped => {
                let n_failed = lock(&self.shared).n_failed;
                self.close_pending(
                    RolloutHostState::Skipped,
                    &format!(
                        "rollout stopped: {n_failed} failures exceed max_failures ({allowed})"
                    ),
                );
            }
            RolloutState::Cancelled => {
                self.close_pending(RolloutHostState::Cancelled, "rollout cancelled");
            }
            _ => {}
        }
        let snapshot = {
            let mut rollout = lock(&self.shared);
            rollout.state = final_state;
            rollout.finished_at = Some(Timestamp::now());
            rollout.clone()
        };
        self.ctx.persist_rollout(&snapshot);
        self.ctx.bus.publish(EventKind::RolloutFinished {
            rollout_id,
            state: final_state.as_str().to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::model::MaxFailures;
    use crate::rollout::plan;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn fixed_batches_like_serial() {
        let batches = plan(&names(&["a", "b", "c", "d", "e"]), &[], 2);
        let hosts: Vec<Vec<String>> = batches.into_iter().map(|(h, _)| h).collect();
        assert_eq!(
            hosts,
            [names(&["a", "b"]), names(&["c", "d"]), names(&["e"])]
        );
    }

    #[test]
    fn canary_goes_first_as_its_own_batch() {
        let batches = plan(&names(&["a", "b", "c", "d"]), &names(&["c"]), 2);
        assert_eq!(batches[0], (names(&["c"]), true));
        assert_eq!(batches[1], (names(&["a", "b"]), false));
        assert_eq!(batches[2], (names(&["d"]), false));
    }

    #[test]
    fn max_failures_count_and_percent() {
        assert_eq!(MaxFailures::Count(1).allowed(10), 1);
        assert_eq!(MaxFailures::Percent(25).allowed(10), 2);
        assert_eq!(MaxFailures::Percent(0).allowed(10), 0);
        assert_eq!(
            MaxFailures::parse_percent("30%"),
            Some(MaxFailures::Percent(30))
        );
        assert_eq!(MaxFailures::parse_percent("130%"), None);
        assert_eq!(MaxFailures::parse_percent("30"), None);
    }
}
