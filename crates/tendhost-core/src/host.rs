//! One managed host: `HostShared` (its state, outside any actor, so a restarted actor and a
//! still-running job task both see it), `HostActor` (the kameo actor that validates requests
//! against the state machine and starts one job task at a time), and `HostEntry`, the pair the
//! orchestrator registers and rollouts drive.
//!
//! The job bodies (what a check, an update and a reboot do on the host) live in `driver`; this
//! file owns admission, state transitions and the event each transition emits.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use kameo::Actor;
use kameo::actor::ActorRef;
use kameo::error::Infallible;
use kameo::message::{Context, Message};
use tendhost_exec::Executor;
use tokio::task::JoinHandle;

use crate::context::FleetContext;
use crate::driver;
use crate::events::EventKind;
use crate::model::{FleetError, HostSnapshot, HostStatus, UpdateOptions};
use crate::spec::{HostSpec, HostTarget, UpdatePolicy};
use crate::state::{FailureRecord, HostState, JobKind, Refusal, Request, allows};

/// One registered host: its actor and the state it shares with its job task.
#[derive(Clone)]
pub struct HostEntry {
    pub actor: ActorRef<HostActor>,
    pub shared: Arc<HostShared>,
}

/// A host's definition, status, executor and running job; shared by its actor (across
/// restarts), its job task and the orchestrator.
pub struct HostShared {
    pub spec: HostSpec,
    pub executor: Arc<dyn Executor>,
    status: Mutex<HostStatus>,
    /// Held while a copy of the status is taken and queued for the store, so this host's
    /// writes are queued in the order of its changes without holding `status` meanwhile
    /// (queueing may wait for room: readers of the status must not wait with it).
    persist_order: Mutex<()>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Jobs whose outcome was collected from their job directory on the host, waiting to be
    /// retired there (`driver::retire`) once the outcome is stored.
    collected: Mutex<Vec<String>>,
    ctx: Arc<FleetContext>,
}

impl HostShared {
    pub fn new(
        spec: HostSpec,
        executor: Arc<dyn Executor>,
        status: HostStatus,
        ctx: Arc<FleetContext>,
    ) -> Self {
        Self {
            spec,
            executor,
            status: Mutex::new(status),
            persist_order: Mutex::new(()),
            task: Mutex::new(None),
            collected: Mutex::new(Vec::new()),
            ctx,
        }
    }

    pub fn ctx(&self) -> &Arc<FleetContext> {
        &self.ctx
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn status(&self) -> MutexGuard<'_, HostStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the status with `change` and mirrors the result to the store. The status is
    /// locked only while `change` runs and a copy is taken; the copy is queued after, in this
    /// host's order of changes (`persist_order`). `None` from `change`: nothing changed,
    /// nothing is written.
    fn change_status<R>(&self, change: impl FnOnce(&mut HostStatus) -> Option<R>) -> Option<R> {
        let _order = self
            .persist_order
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (result, copy) = {
            let mut status = self.status();
            let result = change(&mut status)?;
            (result, status.clone())
        };
        self.ctx.persist_host(&self.spec.name, &copy);
        Some(result)
    }

    /// Moves to `to`, emitting `host_state_changed`. An invalid move is a bug: it is logged and
    /// refused.
    pub fn transition(&self, to: HostState) {
        let from = self.change_status(|status| {
            let from = status.state;
            if from == to {
                return None;
            }
            if !from.can_move_to(to) {
                tracing::error!(host = %self.spec.name, %from, %to, "invalid state transition refused");
                return None;
            }
            status.state = to;
            Some(from)
        });
        let Some(from) = from else {
            return;
        };
        self.ctx.bus.publish(EventKind::HostStateChanged {
            host: self.spec.name.clone(),
            from,
            to,
        });
    }

    /// Moves to `failed` with a failure record.
    pub fn fail(&self, action: JobKind, previous_state: HostState, error: String, job_id: &str) {
        self.fail_for(action, previous_state, error, job_id, None);
    }

    /// [`Self::fail`] with a machine-readable `reason` (`health_check_failed`).
    pub fn fail_for(
        &self,
        action: JobKind,
        previous_state: HostState,
        error: String,
        job_id: &str,
        reason: Option<&str>,
    ) {
        {
            let mut status = self.status();
            let retry_count = status.failure.as_ref().map_or(0, |f| f.retry_count);
            status.failure = Some(FailureRecord {
                previous_state,
                action,
                error: error.clone(),
                failed_at: Timestamp::now(),
                retry_count,
                acknowledged: false,
                job_id: Some(job_id.to_owned()),
                reason: reason.map(str::to_owned),
            });
            status.last_error = Some(error);
        }
        self.transition(HostState::Failed);
    }

    /// Notes that job `job_id`'s outcome was read from its job directory.
    pub(crate) fn collected(&self, job_id: &str) {
        self.collected
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(job_id.to_owned());
    }

    /// The jobs noted by [`HostShared::collected`] so far, leaving none.
    pub(crate) fn take_collected(&self) -> Vec<String> {
        std::mem::take(
            &mut *self
                .collected
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Mirrors the current status to the store.
    pub fn persist(&self) {
        self.change_status(|_| Some(()));
    }

    /// A read model of this host.
    pub fn snapshot(&self, groups: Vec<String>) -> HostSnapshot {
        let status = self.status().clone();
        let (addr, port) = match &self.spec.target {
            HostTarget::Local => ("local".to_owned(), None),
            HostTarget::Ssh { addr, port } => (addr.clone(), Some(*port)),
        };
        HostSnapshot {
            name: self.spec.name.clone(),
            addr,
            port,
            user: self.spec.user.clone(),
            tags: self.spec.tags.clone(),
            groups,
            origin: self.spec.origin,
            updates: self.spec.policy.updates,
            auto_reboot: self.spec.policy.auto_reboot,
            maintenance_window: self.spec.policy.maintenance_window.clone(),
            state: status.state,
            failure: status.failure,
            pending: status.report.pending,
            held: status.report.held,
            kept_back: status.report.kept_back,
            removals: status.report.removals,
            reboot: status.reboot,
            inventory: status.inventory,
            last_check: status.last_check,
            current_job: status.current_job,
            last_error: status.last_error,
            last_health_check: status.last_health_check,
            services_to_restart: status.services_to_restart,
            pending_since: status.pending_since,
        }
    }

    /// Whether a job task is running.
    pub fn job_running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// Waits for the running job task, if any.
    pub async fn join_task(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Admits `kind` (state machine, policy, window) and starts it as a task; returns the job id.
    pub fn start_job(
        self: &Arc<Self>,
        request: Request,
        options: UpdateOptions,
        rollout_id: Option<String>,
    ) -> Result<String, FleetError> {
        // `check-only` promises the host is not changed: no update and no reboot.
        if matches!(request, Request::Update | Request::Reboot)
            && !options.dry_run
            && self.spec.policy.updates == UpdatePolicy::CheckOnly
        {
            // Whatever the host is doing, this answer does not change.
            return Err(FleetError::UpdatesDisabled {
                host: self.spec.name.clone(),
            });
        }
        let (kind, previous_state, job_id) = {
            let mut status = self.status();
            if let Some(job_id) = status.current_job.clone() {
                return Err(FleetError::HostBusy {
                    host: self.spec.name.clone(),
                    job_id,
                });
            }
            match allows(status.state, request) {
                Ok(()) => {}
                Err(Refusal::Busy) => {
                    return Err(FleetError::HostBusy {
                        host: self.spec.name.clone(),
                        job_id: status.current_job.clone().unwrap_or_default(),
                    });
                }
                Err(Refusal::InvalidTransition { hint }) => {
                    return Err(FleetError::InvalidTransition {
                        host: self.spec.name.clone(),
                        action: request.as_str(),
                        current_state: status.state,
                        hint: hint.replace("{name}", &self.spec.name),
                    });
                }
            }
            let kind = match request {
                Request::Check => JobKind::Check,
                Request::Update => JobKind::Update,
                Request::Reboot => JobKind::Reboot,
                Request::Retry => status.failure.as_ref().map_or(JobKind::Check, |f| f.action),
                Request::Acknowledge => unreachable!("acknowledge starts no job"),
            };
            if matches!(kind, JobKind::Update | JobKind::Reboot) && !options.dry_run {
                self.check_policy(kind, &options)?;
            }
            let previous_state = if request == Request::Retry {
                if let Some(failure) = status.failure.as_mut() {
                    failure.retry_count += 1;
                }
                status
                    .failure
                    .as_ref()
                    .map_or(status.state, |f| f.previous_state)
            } else {
                status.state
            };
            let job_id = self.ctx.ids.next("job");
            self.ctx.jobs.create(
                job_id.clone(),
                &self.spec.name,
                kind,
                options.clone(),
                rollout_id,
            );
            status.current_job = Some(job_id.clone());
            (kind, previous_state, job_id)
        };
        self.ctx.persist_job(&job_id);
        if request == Request::Retry {
            // Leave `failed` for the state the failed action started from.
            let restore = match previous_state {
                HostState::Failed | HostState::Querying | HostState::Updating => HostState::Idle,
                other => other,
            };
            self.transition(restore);
        }
        let host = Arc::clone(self);
        let id = job_id.clone();
        let task = tokio::spawn(async move {
            driver::run_job_contained(&host, &id, kind, options).await;
            host.status().current_job = None;
            host.persist();
        });
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
        Ok(job_id)
    }

    fn check_policy(&self, kind: JobKind, options: &UpdateOptions) -> Result<(), FleetError> {
        if matches!(kind, JobKind::Update | JobKind::Reboot)
            && self.spec.policy.updates == UpdatePolicy::CheckOnly
        {
            return Err(FleetError::UpdatesDisabled {
                host: self.spec.name.clone(),
            });
        }
        if !options.force
            && let Some(window) = &self.spec.policy.maintenance_window
            && !crate::window::is_open(window, &crate::clock::zoned_now())
        {
            return Err(FleetError::OutsideMaintenanceWindow {
                host: self.spec.name.clone(),
                window: crate::window::describe(window),
            });
        }
        Ok(())
    }

    /// Marks the failure as seen.
    pub fn acknowledge(&self) -> Result<(), FleetError> {
        let mut refused = None;
        self.change_status(|status| {
            if allows(status.state, Request::Acknowledge).is_err() {
                refused = Some(FleetError::InvalidTransition {
                    host: self.spec.name.clone(),
                    action: "acknowledge",
                    current_state: status.state,
                    hint: "only a failed host can be acknowledged".to_owned(),
                });
                return None;
            }
            if let Some(failure) = status.failure.as_mut() {
                failure.acknowledged = true;
            }
            Some(())
        });
        refused.map_or(Ok(()), Err)
    }
}

/// The kameo actor for one host. Its state is `HostShared`, so a restart by the supervisor
/// (after a panic) resumes with the last known state and any running job task keeps running.
pub struct HostActor {
    shared: Arc<HostShared>,
}

/// Spawn arguments (cloned by the supervisor on restart).
#[derive(Clone)]
pub struct HostArgs {
    pub shared: Arc<HostShared>,
}

impl Actor for HostActor {
    type Args = HostArgs;
    type Error = Infallible;

    async fn on_start(args: Self::Args, _actor_ref: ActorRef<Self>) -> Result<Self, Self::Error> {
        if args.shared.job_running() {
            tracing::info!(host = %args.shared.name(), "host actor (re)started; re-adopting its running job");
        }
        Ok(HostActor {
            shared: args.shared,
        })
    }
}

/// Start a job (check, update, reboot, retry).
pub struct StartJob {
    pub request: Request,
    pub options: UpdateOptions,
    pub rollout_id: Option<String>,
}

impl Message<StartJob> for HostActor {
    type Reply = Result<String, FleetError>;

    async fn handle(
        &mut self,
        msg: StartJob,
        _ctx: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        self.shared
            .start_job(msg.request, msg.options, msg.rollout_id)
    }
}

/// Mark a failure as seen.
pub struct Acknowledge;

impl Message<Acknowledge> for HostActor {
    type Reply = Result<(), FleetError>;

    async fn handle(
        &mut self,
        _msg: Acknowledge,
        _ctx: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        self.shared.acknowledge()
    }
}

/// Test hook: makes the actor panic, to exercise supervision.
#[cfg(feature = "testing")]
pub struct Panic;

#[cfg(feature = "testing")]
impl Message<Panic> for HostActor {
    type Reply = ();

    #[allow(clippy::panic)]
    async fn handle(&mut self, _msg: Panic, _ctx: &mut Context<Self, Self::Reply>) -> Self::Reply {
        panic!(
            "deliberate panic in host actor {} (test hook)",
            self.shared.name()
        );
    }
}
