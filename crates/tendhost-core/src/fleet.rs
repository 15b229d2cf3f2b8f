//! `Fleet`: the handle the daemon holds. It starts the orchestrator (which spawns one
//! supervised host actor per host), runs the periodic-check scheduler, and turns API requests
//! into actor messages. Every method answers with domain values or a `FleetError`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kameo::actor::{ActorRef, Spawn};
use kameo::error::SendError;
use tendhost_exec::{ExecEnv, Executor, LocalExecutor, LocalTarget, SshExecutor, SshTarget};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::context::{FleetContext, Persistence};
use crate::events::{EventBus, EventKind, EventTransport};
#[cfg(feature = "testing")]
use crate::host::Panic;
use crate::host::{Acknowledge, HostEntry, HostShared, StartJob};
use crate::ids::Ids;
use crate::index::{HostIndex, IndexCell};
use crate::jobs::{Jobs, JobsOptions};
use crate::model::{
    DEFAULT_WINDOW_GRACE, FleetError, HostFilter, HostSnapshot, HostStatus, JobSnapshot, JobState,
    MaxFailures, Packages, RolloutKind, RolloutRequest, RolloutSnapshot, Trigger, UpdateOptions,
};
pub use crate::orchestrator::Put;
use crate::orchestrator::{
    AddHost, AllHosts, ApproveRollout, CancelRollout, ExecutorFactory, GetHost, GetRollout,
    ListRollouts, OrchestratorActor, OrchestratorArgs, RemoveHost, ResumeRollout, RolloutHandles,
    StartRollout, index_of, new_shared,
};
use crate::orchestrator::{PutConfigHost, RetireHost, SetGroups};
use crate::spec::{HostOrigin, HostSpec, HostTarget, KnownHostsPolicy};
use crate::state::Request;

/// How the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub data_dir: PathBuf,
    /// Fleet-wide limit on hosts doing remote work at once.
    pub max_parallel: usize,
    /// Events kept in memory for WebSocket replay.
    pub event_buffer: usize,
    /// Events a WebSocket client may fall behind before it gets `lagged`.
    pub event_channel: usize,
    /// Check every host soon after start (spread over up to 30 s), not only after its
    /// `check_interval`.
    pub check_on_start: bool,
    /// Seq of the first event (continues the stored sequence after a restart).
    pub first_seq: u64,
    /// What the job registry keeps in memory.
    pub jobs: JobsOptions,
    /// Finished rollouts kept in memory (older ones only in the store).
    pub keep_finished_rollouts: usize,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("."),
            max_parallel: 32,
            event_buffer: 10_000,
            event_channel: 4_096,
            check_on_start: true,
            first_seq: 1,
            jobs: JobsOptions::default(),
            keep_finished_rollouts: 100,
        }
    }
}

/// Why the fleet could not start.
#[derive(Debug, thiserror::Error)]
pub enum FleetStartError {
    #[error("cannot set up SSH state in the data dir: {0}")]
    Exec(#[from] tendhost_exec::ExecError),
}

/// What a previous run left, handed to [`Fleet::start_with`].
#[derive(Default)]
pub struct Restored {
    pub jobs: Vec<JobSnapshot>,
    pub rollouts: Vec<RolloutSnapshot>,
    pub transport: Option<Arc<dyn EventTransport>>,
    /// Other ids earlier runs issued (at least the newest job's): new job and rollout ids
    /// sort after them and after those of `jobs` and `rollouts`, even when the clock went
    /// back.
    pub issued_ids: Vec<String>,
}

/// The running fleet. Cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    orchestrator: ActorRef<OrchestratorActor>,
    ctx: Arc<FleetContext>,
    index: Arc<IndexCell>,
    scheduler: Arc<JoinHandle<()>>,
}

/// Builds the executor a host spec asks for.
pub fn executor_for(spec: &HostSpec, env: &ExecEnv) -> Arc<dyn Executor> {
    match &spec.target {
        HostTarget::Local => {
            let mut target = LocalTarget::new(spec.name.clone());
            target.sudo = spec.sudo;
            target.command_timeout = spec.timing.command_timeout;
            Arc::new(LocalExecutor::new(target))
        }
        HostTarget::Ssh { addr, port } => {
            let mut target = SshTarget::new(spec.name.clone(), addr.clone());
            target.port = *port;
            target.user.clone_from(&spec.user);
            target.key.clone_from(&spec.ssh_key);
            target.sudo = spec.sudo;
            target.known_hosts_policy = match spec.known_hosts {
                KnownHostsPolicy::Strict => tendhost_exec::KnownHostsPolicy::Strict,
                KnownHostsPolicy::AcceptNew => tendhost_exec::KnownHostsPolicy::AcceptNew,
            };
            target.host_key_sha256.clone_from(&spec.host_key_sha256);
            // Hosts registered through the API do not tell why they cannot be reached, and
            // never get the agent's or ssh's default keys (only the configured key).
            target.connect_errors = match spec.origin {
                HostOrigin::Config => tendhost_exec::ConnectErrors::Detailed,
                HostOrigin::Runtime => tendhost_exec::ConnectErrors::Uniform,
            };
            target.default_identities = spec.origin == HostOrigin::Config;
            target.connect_timeout = spec.timing.connect_timeout;
            target.command_timeout = spec.timing.command_timeout;
            target.idle_timeout = spec.timing.ssh_idle_timeout;
            Arc::new(SshExecutor::new(target, env))
        }
    }
}

/// A due time no check reaches: about a century after `now` (or as far as `Instant` goes).
fn far_future(now: tokio::time::Instant) -> tokio::time::Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    now.checked_add(CENTURY).unwrap_or(now)
}

fn spread(name: &str, window: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(hasher.finish() % millis)
}

impl Fleet {
    /// Starts the orchestrator and one actor per host. Call from within a tokio runtime.
    pub fn start(
        hosts: Vec<HostSpec>,
        groups: BTreeMap<String, Vec<String>>,
        options: &FleetOptions,
        mut initial: HashMap<String, HostStatus>,
        persistence: Option<Arc<dyn Persistence>>,
    ) -> Result<Fleet, FleetStartError> {
        Self::start_with(
            hosts,
            groups,
            options,
            &mut initial,
            persistence,
            Restored::default(),
        )
    }

    /// `start`, plus what a previous run left: jobs to put back in the registry (interrupted
    /// ones whose outcome a check may still collect), rollouts, and an event transport.
    pub fn start_with(
        hosts: Vec<HostSpec>,
        groups: BTreeMap<String, Vec<String>>,
        options: &FleetOptions,
        initial: &mut HashMap<String, HostStatus>,
        persistence: Option<Arc<dyn Persistence>>,
        restored: Restored,
    ) -> Result<Fleet, FleetStartError> {
        let exec_env = ExecEnv::open(&options.data_dir)?;
        let ids = Ids::after(
            restored
                .jobs
                .iter()
                .map(|job| job.id.as_str())
                .chain(restored.rollouts.iter().map(|rollout| rollout.id.as_str()))
                .chain(restored.issued_ids.iter().map(String::as_str)),
        );
        let ctx = Arc::new(FleetContext {
            bus: EventBus::new(
                options.first_seq,
                options.event_buffer,
                options.event_channel,
            ),
            jobs: Arc::new(Jobs::new(options.jobs)),
            ids,
            remote_slots: Arc::new(Semaphore::new(options.max_parallel.max(1))),
            persistence,
        });
        if let Some(transport) = restored.transport {
            ctx.bus.set_transport(transport);
        }
        for job in restored.jobs {
            ctx.jobs.restore(job);
        }
        let executor_factory: ExecutorFactory =
            Arc::new(move |spec: &HostSpec| executor_for(spec, &exec_env));
        let hosts: Vec<Arc<HostShared>> = hosts
            .into_iter()
            .map(|spec| {
                let status = initial.remove(&spec.name).unwrap_or_default();
                new_shared(&ctx, &executor_factory, spec, status)
            })
            .collect();
        // Readers see every host from the start, before the actors are spawned.
        let index = Arc::new(IndexCell::default());
        index.store(index_of(&hosts, groups.clone()));
        let orchestrator = OrchestratorActor::spawn(OrchestratorArgs {
            ctx: Arc::clone(&ctx),
            hosts,
            index: Arc::clone(&index),
            groups,
            executor_factory,
            rollouts: restored.rollouts,
            keep_finished_rollouts: options.keep_finished_rollouts,
        });
        let scheduler = tokio::spawn(schedule_checks(
            orchestrator.clone(),
            Arc::clone(&index),
            options.check_on_start,
            options.max_parallel.max(1),
        ));
        Ok(Fleet {
            orchestrator,
            ctx,
            index,
            scheduler: Arc::new(scheduler),
        })
    }

    pub fn events(&self) -> &EventBus {
        &self.ctx.bus
    }

    /// Publishes an event about the daemon itself (its TLS certificate, its config file), which the core's
    /// actors know nothing of. Host, job and rollout events come only from the core; one of
    /// those handed in here is refused and returned.
    pub fn announce(&self, kind: EventKind) -> Result<(), EventKind> {
        match kind {
            EventKind::CertificateRenewed { .. }
            | EventKind::CertificateReloadFailed { .. }
            | EventKind::ConfigReloaded { .. }
            | EventKind::ConfigReloadFailed { .. }
            | EventKind::CertificateRenewalFailed { .. } => {
                self.ctx.bus.publish(kind);
                Ok(())
            }
            other => Err(other),
        }
    }

    /// The registered hosts and groups as of now, read without asking the orchestrator (each
    /// host's status is read live through it); [`FleetError::ShuttingDown`] once the
    /// orchestrator is gone.
    pub fn index(&self) -> Result<Arc<HostIndex>, FleetError> {
        if !self.orchestrator.is_alive() {
            return Err(FleetError::ShuttingDown);
        }
        Ok(self.index.load())
    }

    /// Every host (a snapshot of each, in name order); [`FleetError::ShuttingDown`] once the
    /// orchestrator is gone. Readers that show a few hosts use [`Fleet::index`] instead.
    // `async` stays: every caller of the facade awaits it, and a read may need the
    // orchestrator again; today it reads the index.
    #[allow(clippy::unused_async)]
    pub async fn hosts(&self) -> Result<Vec<HostSnapshot>, FleetError> {
        Ok(self.index()?.iter().map(|host| host.snapshot()).collect())
    }

    async fn entry(&self, name: &str) -> Result<(HostEntry, Vec<String>), FleetError> {
        self.orchestrator
            .ask(GetHost(name.to_owned()))
            .await
            .map_err(|err| FleetError::Unavailable(format!("orchestrator unavailable: {err}")))?
            .ok_or_else(|| FleetError::NotFound {
                kind: "host",
                name: name.to_owned(),
            })
    }

    // `async` stays: every caller of the facade awaits it, and a read may need the
    // orchestrator again; today it reads the index.
    #[allow(clippy::unused_async)]
    pub async fn host(&self, name: &str) -> Result<HostSnapshot, FleetError> {
        self.index()?
            .get(name)
            .map(|host| host.snapshot())
            .ok_or_else(|| FleetError::NotFound {
                kind: "host",
                name: name.to_owned(),
            })
    }

    /// Registers a host at runtime. Never a `local` host: the API must not be a way to run
    /// commands on the daemon's own machine.
    pub async fn add_host(&self, spec: HostSpec) -> Result<HostSnapshot, FleetError> {
        if spec.target == HostTarget::Local {
            return Err(FleetError::invalid(
                "addr",
                "hosts added through the API cannot be local; define local hosts in the config file",
            ));
        }
        flatten(
            self.orchestrator
                .ask(AddHost {
                    spec,
                    status: HostStatus::default(),
                })
                .await,
        )
    }

    pub async fn remove_host(&self, name: &str) -> Result<(), FleetError> {
        flatten(self.orchestrator.ask(RemoveHost(name.to_owned())).await).map(|_| ())
    }

    /// Config reload: puts a host of the config file in place (added when new, replaced when
    /// its definition changed, keeping its status). `HostBusy` while a job runs on it.
    pub async fn put_config_host(&self, spec: HostSpec) -> Result<Put, FleetError> {
        flatten(self.orchestrator.ask(PutConfigHost(spec)).await)
    }

    /// Config reload: removes a host whatever its origin. `HostBusy` while a job runs on it.
    pub async fn retire_host(&self, name: &str) -> Result<(), FleetError> {
        flatten(self.orchestrator.ask(RetireHost(name.to_owned())).await)
    }

    /// Config reload: the groups of the config file.
    pub async fn set_groups(&self, groups: BTreeMap<String, Vec<String>>) {
        let _ = self.orchestrator.ask(SetGroups(groups)).await;
    }

    async fn request(
        &self,
        name: &str,
        request: Request,
        options: UpdateOptions,
    ) -> Result<String, FleetError> {
        let (entry, _) = self.entry(name).await?;
        flatten(
            entry
                .actor
                .ask(StartJob {
                    request,
                    options,
                    rollout_id: None,
                })
                .await,
        )
    }

    pub async fn check(&self, name: &str) -> Result<String, FleetError> {
        self.request(name, Request::Check, UpdateOptions::default())
            .await
    }

    /// Updates the host; with a `pre_check` health check (and not `force`), an unhealthy host
    /// is refused (409 `unhealthy_before_update`) before any job starts.
    pub async fn update(&self, name: &str, options: UpdateOptions) -> Result<String, FleetError> {
        if !options.force && !options.dry_run {
            let (entry, _) = self.entry(name).await?;
            if entry.shared.status().current_job.is_none()
                && let Err(output) = crate::health::pre_check(&entry.shared).await
            {
                return Err(FleetError::UnhealthyBeforeUpdate {
                    host: name.to_owned(),
                    output,
                });
            }
        }
        self.request(name, Request::Update, options).await
    }

    /// Reboots the host; `options.force` ignores its maintenance window.
    pub async fn reboot(&self, name: &str, options: UpdateOptions) -> Result<String, FleetError> {
        self.request(name, Request::Reboot, options).await
    }

    pub async fn retry(&self, name: &str) -> Result<String, FleetError> {
        self.request(name, Request::Retry, UpdateOptions::new(false, true))
            .await
    }

    pub async fn acknowledge(&self, name: &str) -> Result<HostSnapshot, FleetError> {
        let (entry, groups) = self.entry(name).await?;
        flatten(entry.actor.ask(Acknowledge).await)?;
        Ok(entry.shared.snapshot(groups))
    }

    pub fn job(&self, id: &str) -> Result<JobSnapshot, FleetError> {
        self.ctx.jobs.get(id).ok_or_else(|| FleetError::NotFound {
            kind: "job",
            name: id.to_owned(),
        })
    }

    /// The job without its log (the store has the whole log).
    pub fn job_without_log(&self, id: &str) -> Result<JobSnapshot, FleetError> {
        self.ctx
            .jobs
            .get_without_log(id)
            .ok_or_else(|| FleetError::NotFound {
                kind: "job",
                name: id.to_owned(),
            })
    }

    /// Jobs, newest first (without logs).
    pub fn jobs(&self, host: Option<&str>, state: Option<JobState>) -> Vec<JobSnapshot> {
        self.ctx.jobs.list(host, state)
    }

    /// Waits for a job to finish (tests and the CLI use it).
    pub async fn wait_job(&self, id: &str) -> Option<JobState> {
        self.ctx.jobs.wait_finished(id).await
    }

    pub async fn fleet_check(&self, filter: HostFilter) -> Result<RolloutSnapshot, FleetError> {
        self.fleet_check_by(filter, Trigger::default()).await
    }

    /// [`Fleet::fleet_check`] started by `trigger`.
    pub async fn fleet_check_by(
        &self,
        filter: HostFilter,
        trigger: Trigger,
    ) -> Result<RolloutSnapshot, FleetError> {
        let request = RolloutRequest {
            batch_size: usize::MAX,
            delay: Duration::ZERO,
            max_failures: MaxFailures::Count(usize::MAX),
            canary: Vec::new(),
            filter,
            dry_run: false,
            force: true,
            approve_after: None,
            approval_timeout: None,
            packages: Packages::All,
            reboot: None,
            defer_outside_window: false,
            window_grace: DEFAULT_WINDOW_GRACE,
            trigger,
        };
        self.start_rollout(RolloutKind::Check, request).await
    }

    pub async fn fleet_update(
        &self,
        request: RolloutRequest,
    ) -> Result<RolloutSnapshot, FleetError> {
        if request.batch_size == 0 {
            return Err(FleetError::invalid("batch_size", "must be at least 1"));
        }
        self.start_rollout(RolloutKind::Update, request).await
    }

    async fn start_rollout(
        &self,
        kind: RolloutKind,
        request: RolloutRequest,
    ) -> Result<RolloutSnapshot, FleetError> {
        flatten(self.orchestrator.ask(StartRollout { kind, request }).await)
    }

    pub async fn rollout(&self, id: &str) -> Result<RolloutSnapshot, FleetError> {
        self.orchestrator
            .ask(GetRollout(id.to_owned()))
            .await
            .ok()
            .flatten()
            .ok_or_else(|| FleetError::NotFound {
                kind: "rollout",
                name: id.to_owned(),
            })
    }

    pub async fn rollouts(&self) -> Vec<RolloutSnapshot> {
        self.orchestrator
            .ask(ListRollouts)
            .await
            .unwrap_or_default()
    }

    /// Continues an `interrupted` rollout with the hosts not yet done.
    pub async fn resume_rollout(&self, id: &str) -> Result<RolloutSnapshot, FleetError> {
        flatten(self.orchestrator.ask(ResumeRollout(id.to_owned())).await)
    }

    /// Continues a rollout waiting at its approval gate; `by` names who approved it.
    pub async fn approve_rollout(&self, id: &str, by: &str) -> Result<RolloutSnapshot, FleetError> {
        flatten(
            self.orchestrator
                .ask(ApproveRollout {
                    id: id.to_owned(),
                    by: by.to_owned(),
                })
                .await,
        )
    }

    pub async fn cancel_rollout(&self, id: &str) -> Result<RolloutSnapshot, FleetError> {
        flatten(self.orchestrator.ask(CancelRollout(id.to_owned())).await)
    }

    // `async` stays: every caller of the facade awaits it, and a read may need the
    // orchestrator again; today it reads the index.
    #[allow(clippy::unused_async)]
    pub async fn groups(&self) -> BTreeMap<String, Vec<String>> {
        self.index.load().groups().clone()
    }

    /// Tags with the number of hosts carrying each; [`FleetError::ShuttingDown`] once the
    /// orchestrator is gone.
    // `async` stays: every caller of the facade awaits it, and a read may need the
    // orchestrator again; today it reads the index.
    #[allow(clippy::unused_async)]
    pub async fn tags(&self) -> Result<BTreeMap<String, usize>, FleetError> {
        let mut tags = BTreeMap::new();
        for host in self.index()?.iter() {
            for tag in &host.spec().tags {
                *tags.entry(tag.clone()).or_insert(0) += 1;
            }
        }
        Ok(tags)
    }

    /// Test hook: makes a host actor panic (its supervisor restarts it).
    #[cfg(feature = "testing")]
    pub async fn panic_host(&self, name: &str) -> Result<(), FleetError> {
        let (entry, _) = self.entry(name).await?;
        let _ = entry.actor.tell(Panic).await;
        Ok(())
    }

    /// Test hook: the next job task of `name` panics once it runs.
    #[cfg(feature = "testing")]
    pub fn panic_next_job(&self, name: &str) {
        crate::testing::arm_job_panic(name);
    }

    /// Stops the scheduler, lets running jobs finish for up to `grace`, marks the rest
    /// `interrupted`, closes SSH connections and stops the actors.
    pub async fn shutdown(&self, grace: Duration) {
        self.scheduler.abort();
        let hosts: Vec<Arc<HostShared>> = self.orchestrator.ask(AllHosts).await.unwrap_or_default();
        let _ = self.orchestrator.ask(RolloutHandles).await;
        let wait_all = async {
            for host in &hosts {
                host.join_task().await;
            }
        };
        if tokio::time::timeout(grace, wait_all).await.is_err() {
            // Only in memory: the store keeps them `running`, so the next start's recovery
            // marks them `interrupted` and re-checks their hosts (collecting detached upgrades
            // that finished meanwhile), exactly as after a crash.
            let ids = self.ctx.jobs.interrupt_unfinished();
            tracing::warn!(
                n_jobs = ids.len(),
                "jobs still running at shutdown were marked interrupted; the next start re-checks their hosts"
            );
        }
        for host in &hosts {
            host.executor.close().await;
        }
        let _ = self.orchestrator.stop_gracefully().await;
        self.orchestrator.wait_for_shutdown().await;
    }
}

fn flatten<T, M>(result: Result<T, SendError<M, FleetError>>) -> Result<T, FleetError> {
    match result {
        Ok(value) => Ok(value),
        Err(SendError::HandlerError(err)) => Err(err),
        Err(other) => Err(FleetError::Unavailable(format!(
            "actor unavailable: {other}"
        ))),
    }
}

/// How often the periodic-check scheduler looks for due hosts.
const SCHEDULER_TICK: Duration = Duration::from_millis(250);

/// Periodic checks: each host is checked every `check_interval`, the first time after a
/// per-host offset so the fleet is not hit at once. A tick starts no more checks than
/// `max_parallel` leaves room for (hosts with a job running count against it), the most
/// overdue first; the others stay due for the next tick. So background checks never pile up
/// as thousands of queued jobs (each with its registry entry, rows and events) that would
/// compete with the API: they run at the pace the remote slots allow.
async fn schedule_checks(
    orchestrator: ActorRef<OrchestratorActor>,
    index: Arc<IndexCell>,
    check_on_start: bool,
    max_parallel: usize,
) {
    let started = tokio::time::Instant::now();
    let mut due: HashMap<String, tokio::time::Instant> = HashMap::new();
    let mut tick = tokio::time::interval(SCHEDULER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !orchestrator.is_alive() {
            return;
        }
        let hosts = index.load();
        let now = tokio::time::Instant::now();
        // First checks are spread over half a second per host, at most 30 s: a single host
        // is checked at once, a big fleet is not hit all at once.
        let n_hosts = u32::try_from(hosts.len()).unwrap_or(u32::MAX);
        let start_window = Duration::from_millis(500)
            .checked_mul(n_hosts)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(30));
        let mut busy = 0_usize;
        let mut ready = Vec::new();
        for host in hosts.iter() {
            let interval = host.spec().timing.check_interval;
            let name = host.name();
            // Checked: an interval beyond what an `Instant` holds (refused by the config and
            // the API, yet possible from a store written before the bounds) means "never".
            let next = *due.entry(name.to_owned()).or_insert_with(|| {
                let first = if check_on_start {
                    Some(spread(name, interval.min(start_window)))
                } else {
                    interval.checked_add(spread(name, interval.min(Duration::from_secs(300))))
                };
                first
                    .and_then(|offset| started.checked_add(offset))
                    .unwrap_or_else(|| far_future(now))
            });
            let running = host.read(|status| status.current_job.is_some());
            busy += usize::from(running);
            if now < next {
                continue;
            }
            if running {
                due.insert(
                    name.to_owned(),
                    now.checked_add(interval).unwrap_or_else(|| far_future(now)),
                );
                continue;
            }
            ready.push((next, host));
        }
        ready.sort_by_key(|(next, _)| *next);
        for (_, host) in ready.into_iter().take(max_parallel.saturating_sub(busy)) {
            let interval = host.spec().timing.check_interval;
            due.insert(
                host.name().to_owned(),
                now.checked_add(interval).unwrap_or_else(|| far_future(now)),
            );
            if let Err(err) =
                host.shared()
                    .start_job(Request::Check, UpdateOptions::default(), None)
            {
                tracing::debug!(host = %host.name(), %err, "periodic check skipped");
            }
        }
    }
}
