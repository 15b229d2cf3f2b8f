//! The orchestrator actor: owns the registry of host actors (from config and added at runtime),
//! supervises them (a panicking host actor is restarted with its shared state; the others do
//! not notice), knows groups and tags, and runs fleet rollouts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kameo::Actor;
use kameo::actor::{ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::message::{Context, Message};
use kameo::supervision::{RestartPolicy, SupervisionStrategy};

use crate::context::FleetContext;
use crate::events::EventKind;
use crate::host::{HostActor, HostArgs, HostEntry, HostShared};
use crate::index::{HostIndex, IndexCell};
use crate::model::{
    FleetError, HostFilter, HostSnapshot, HostStatus, RolloutKind, RolloutRequest, RolloutSnapshot,
    RolloutState,
};
use crate::rollout::{self, RolloutHandle};
use crate::spec::{HostOrigin, HostSpec};

/// Builds the executor for a host spec (SSH or local).
pub type ExecutorFactory = Arc<dyn Fn(&HostSpec) -> Arc<dyn tendhost_exec::Executor> + Send + Sync>;

/// Spawn arguments.
pub struct OrchestratorArgs {
    pub ctx: Arc<FleetContext>,
    /// The hosts of the config (and the store), already in `index`; their actors are
    /// spawned by `on_start`.
    pub hosts: Vec<Arc<HostShared>>,
    /// Where the orchestrator publishes its hosts and groups after every change.
    pub index: Arc<IndexCell>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub executor_factory: ExecutorFactory,
    /// Rollouts from previous runs (oldest first), shown and resumable but not running.
    pub rollouts: Vec<RolloutSnapshot>,
    /// Finished rollouts kept in memory; older ones are forgotten (the store keeps them).
    pub keep_finished_rollouts: usize,
}

pub struct OrchestratorActor {
    ctx: Arc<FleetContext>,
    hosts: BTreeMap<String, Slot>,
    groups: BTreeMap<String, Vec<String>>,
    rollouts: HashMap<String, RolloutHandle>,
    rollout_order: Vec<String>,
    keep_finished_rollouts: usize,
    executor_factory: ExecutorFactory,
    index: Arc<IndexCell>,
}

/// A registered host: its shared state, and its actor once something needed it. Actors are
/// spawned on first use (a request to the host, a rollout that targets it), not at start: the
/// periodic checks start jobs through `HostShared` directly, so a big fleet that nobody
/// addresses costs no actor per host.
#[derive(Clone)]
struct Slot {
    shared: Arc<HostShared>,
    actor: Option<ActorRef<HostActor>>,
}

impl From<HostEntry> for Slot {
    fn from(entry: HostEntry) -> Self {
        Slot {
            shared: entry.shared,
            actor: Some(entry.actor),
        }
    }
}

impl Slot {
    /// Stops the actor (if one was spawned) and closes the connection.
    async fn stop(&self) {
        if let Some(actor) = &self.actor {
            let _ = actor.stop_gracefully().await;
        }
        self.shared.executor.close().await;
    }
}

/// A host's shared state, with its executor from `factory`.
pub fn new_shared(
    ctx: &Arc<FleetContext>,
    factory: &ExecutorFactory,
    spec: HostSpec,
    status: HostStatus,
) -> Arc<HostShared> {
    let executor = factory(&spec);
    Arc::new(HostShared::new(spec, executor, status, Arc::clone(ctx)))
}

/// The index of `hosts` and `groups`.
pub fn index_of<'a>(
    hosts: impl IntoIterator<Item = &'a Arc<HostShared>>,
    groups: BTreeMap<String, Vec<String>>,
) -> HostIndex {
    let hosts = hosts
        .into_iter()
        .map(|shared| (shared.name().to_owned(), Arc::clone(shared)))
        .collect();
    HostIndex::new(hosts, groups)
}

impl OrchestratorActor {
    /// Publishes the current hosts and groups to the readers' index.
    fn publish(&self) {
        self.index.store(index_of(
            self.hosts.values().map(|entry| &entry.shared),
            self.groups.clone(),
        ));
    }

    /// Forgets the oldest finished rollouts beyond `keep_finished_rollouts` (running and
    /// interrupted ones always stay: they can still change).
    fn evict_rollouts(&mut self) {
        let mut n_finished = 0;
        let mut forget = Vec::new();
        for id in self.rollout_order.iter().rev() {
            let Some(handle) = self.rollouts.get(id) else {
                continue;
            };
            let state = handle.snapshot().state;
            if matches!(state, RolloutState::Running | RolloutState::Interrupted) {
                continue;
            }
            n_finished += 1;
            if n_finished > self.keep_finished_rollouts {
                forget.push(id.clone());
            }
        }
        if forget.is_empty() {
            return;
        }
        for id in &forget {
            self.rollouts.remove(id);
        }
        let rollouts = &self.rollouts;
        self.rollout_order.retain(|id| rollouts.contains_key(id));
    }

    async fn spawn_host(
        &self,
        me: &ActorRef<Self>,
        spec: HostSpec,
        status: HostStatus,
    ) -> HostEntry {
        let shared = new_shared(&self.ctx, &self.executor_factory, spec, status);
        Self::spawn_actor(me, shared).await
    }

    /// Spawns the supervised actor of a host.
    async fn spawn_actor(me: &ActorRef<Self>, shared: Arc<HostShared>) -> HostEntry {
        let actor = HostActor::supervise(
            me,
            HostArgs {
                shared: Arc::clone(&shared),
            },
        )
        .restart_policy(RestartPolicy::Transient)
        .restart_limit(100, Duration::from_secs(60))
        .spawn()
        .await;
        HostEntry { actor, shared }
    }

    /// The entry of host `name`, spawning its actor if it has none yet.
    async fn entry_of(&mut self, me: &ActorRef<Self>, name: &str) -> Option<HostEntry> {
        let slot = self.hosts.get_mut(name)?;
        let actor = if let Some(actor) = &slot.actor {
            actor.clone()
        } else {
            let entry = Self::spawn_actor(me, Arc::clone(&slot.shared)).await;
            slot.actor = Some(entry.actor.clone());
            entry.actor
        };
        Some(HostEntry {
            actor,
            shared: Arc::clone(&slot.shared),
        })
    }

    /// The entries of `names` (known hosts), spawning their actors as needed.
    async fn entries_of(&mut self, me: &ActorRef<Self>, names: &[String]) -> Vec<HostEntry> {
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            entries.extend(self.entry_of(me, name).await);
        }
        entries
    }

    fn all_names(&self) -> Vec<String> {
        self.hosts.keys().cloned().collect()
    }

    /// Rollout `id`, or `not_found`.
    fn rollout(&self, id: &str) -> Result<&RolloutHandle, FleetError> {
        self.rollouts.get(id).ok_or_else(|| FleetError::NotFound {
            kind: "rollout",
            name: id.to_owned(),
        })
    }

    fn groups_of(&self, host: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, members)| members.iter().any(|m| m == host))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Names of the hosts matching `filter`, in name order; unknown names in `filter` are an
    /// error.
    fn resolve(&self, filter: &HostFilter) -> Result<Vec<String>, FleetError> {
        for (field, names) in [
            ("filter.hosts", &filter.hosts),
            ("filter.exclude_hosts", &filter.exclude_hosts),
        ] {
            if let Some(unknown) = names.iter().find(|name| !self.hosts.contains_key(*name)) {
                return Err(FleetError::invalid(
                    field,
                    format!("unknown host {unknown:?}"),
                ));
            }
        }
        if let Some(unknown) = filter.groups.iter().find(|g| !self.groups.contains_key(*g)) {
            return Err(FleetError::invalid(
                "filter.groups",
                format!("unknown group {unknown:?}"),
            ));
        }
        let in_groups: BTreeSet<&str> = filter
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten()
            .map(String::as_str)
            .collect();
        Ok(self
            .hosts
            .iter()
            .filter(|(name, _)| filter.hosts.is_empty() || filter.hosts.contains(name))
            .filter(|(name, _)| !filter.exclude_hosts.contains(name))
            .filter(|(name, _)| filter.groups.is_empty() || in_groups.contains(name.as_str()))
            .filter(|(_, entry)| {
                filter
                    .tags
                    .iter()
                    .all(|tag| entry.shared.spec.tags.contains(tag))
            })
            .map(|(name, _)| name.clone())
            .collect())
    }
}

impl Actor for OrchestratorActor {
    type Args = OrchestratorArgs;
    type Error = Infallible;

    fn supervision_strategy() -> SupervisionStrategy {
        SupervisionStrategy::OneForOne
    }

    async fn on_start(args: Self::Args, actor_ref: ActorRef<Self>) -> Result<Self, Self::Error> {
        let mut orchestrator = OrchestratorActor {
            ctx: args.ctx,
            hosts: BTreeMap::new(),
            groups: args.groups,
            rollouts: HashMap::new(),
            rollout_order: Vec::new(),
            keep_finished_rollouts: args.keep_finished_rollouts,
            executor_factory: args.executor_factory,
            index: args.index,
        };
        for shared in args.hosts {
            let name = shared.name().to_owned();
            orchestrator.hosts.insert(
                name,
                Slot {
                    shared,
                    actor: None,
                },
            );
        }
        let targets = if args
            .rollouts
            .iter()
            .any(|snapshot| snapshot.state == RolloutState::AwaitingApproval)
        {
            let names = orchestrator.all_names();
            orchestrator.entries_of(&actor_ref, &names).await
        } else {
            Vec::new()
        };
        for snapshot in args.rollouts {
            let id = snapshot.id.clone();
            // A rollout waiting for approval waits on (its gate is durable); any other is
            // shown and resumable but not running.
            let handle = if snapshot.state == RolloutState::AwaitingApproval {
                rollout::wait_again(Arc::clone(&orchestrator.ctx), snapshot, targets.clone())
            } else {
                RolloutHandle::restored(Arc::clone(&orchestrator.ctx), snapshot)
            };
            orchestrator.rollout_order.push(id.clone());
            orchestrator.rollouts.insert(id, handle);
        }
        orchestrator.evict_rollouts();
        Ok(orchestrator)
    }
}

/// One host's actor and shared state.
pub struct GetHost(pub String);

impl Message<GetHost> for OrchestratorActor {
    type Reply = Option<(HostEntry, Vec<String>)>;

    async fn handle(&mut self, msg: GetHost, ctx: &mut Context<Self, Self::Reply>) -> Self::Reply {
        let entry = self.entry_of(ctx.actor_ref(), &msg.0).await?;
        Some((entry, self.groups_of(&msg.0)))
    }
}

/// Register a host at runtime.
pub struct AddHost {
    pub spec: HostSpec,
    pub status: HostStatus,
}

impl Message<AddHost> for OrchestratorActor {
    type Reply = Result<HostSnapshot, FleetError>;

    async fn handle(&mut self, msg: AddHost, ctx: &mut Context<Self, Self::Reply>) -> Self::Reply {
        let name = msg.spec.name.clone();
        if self.hosts.contains_key(&name) {
            return Err(FleetError::Duplicate { name });
        }
        let entry = self.spawn_host(ctx.actor_ref(), msg.spec, msg.status).await;
        let snapshot = entry.shared.snapshot(Vec::new());
        entry.shared.persist();
        self.hosts.insert(name.clone(), entry.into());
        self.publish();
        self.ctx.bus.publish(EventKind::HostAdded { host: name });
        Ok(snapshot)
    }
}

/// Remove a runtime host (409 for config hosts and while a job runs).
pub struct RemoveHost(pub String);

impl Message<RemoveHost> for OrchestratorActor {
    type Reply = Result<Arc<HostShared>, FleetError>;

    async fn handle(&mut self, msg: RemoveHost, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        let name = msg.0;
        let entry = self.hosts.get(&name).ok_or_else(|| FleetError::NotFound {
            kind: "host",
            name: name.clone(),
        })?;
        if entry.shared.spec.origin == HostOrigin::Config {
            return Err(FleetError::ConfigHost { name });
        }
        if let Some(job_id) = entry.shared.status().current_job.clone() {
            return Err(FleetError::HostBusy { host: name, job_id });
        }
        let entry = self.hosts.remove(&name).expect("checked above");
        self.publish();
        entry.stop().await;
        self.ctx.bus.publish(EventKind::HostRemoved { host: name });
        Ok(entry.shared)
    }
}

/// Start a rollout (fleet check or fleet update).
pub struct StartRollout {
    pub kind: RolloutKind,
    pub request: RolloutRequest,
}

impl Message<StartRollout> for OrchestratorActor {
    type Reply = Result<RolloutSnapshot, FleetError>;

    async fn handle(
        &mut self,
        msg: StartRollout,
        ctx: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        let names = self.resolve(&msg.request.filter)?;
        for canary in &msg.request.canary {
            if !names.contains(canary) {
                return Err(FleetError::invalid(
                    "canary",
                    format!("canary host {canary:?} is not among the rollout's target hosts"),
                ));
            }
        }
        if names.is_empty() {
            return Err(FleetError::invalid("filter", "no host matches the filter"));
        }
        let targets = self.entries_of(ctx.actor_ref(), &names).await;
        let handle = rollout::start(Arc::clone(&self.ctx), msg.kind, msg.request, targets)?;
        let snapshot = handle.snapshot();
        self.rollout_order.push(snapshot.id.clone());
        self.rollouts.insert(snapshot.id.clone(), handle);
        self.evict_rollouts();
        Ok(snapshot)
    }
}

/// One rollout.
pub struct GetRollout(pub String);

impl Message<GetRollout> for OrchestratorActor {
    type Reply = Option<RolloutSnapshot>;

    async fn handle(&mut self, msg: GetRollout, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        self.rollout(&msg.0).ok().map(RolloutHandle::snapshot)
    }
}

/// All rollouts, newest first.
pub struct ListRollouts;

impl Message<ListRollouts> for OrchestratorActor {
    type Reply = Vec<RolloutSnapshot>;

    async fn handle(&mut self, _: ListRollouts, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        self.rollout_order
            .iter()
            .rev()
            .filter_map(|id| self.rollouts.get(id))
            .map(RolloutHandle::snapshot)
            .collect()
    }
}

/// Cancel a rollout: running hosts finish, no new ones start.
pub struct CancelRollout(pub String);

impl Message<CancelRollout> for OrchestratorActor {
    type Reply = Result<RolloutSnapshot, FleetError>;

    async fn handle(
        &mut self,
        msg: CancelRollout,
        _: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        let handle = self.rollout(&msg.0)?;
        handle.cancel()?;
        Ok(handle.snapshot())
    }
}

/// Approve a rollout waiting at its gate: it goes on with the next batch.
pub struct ApproveRollout {
    pub id: String,
    /// Who approves (the token name).
    pub by: String,
}

impl Message<ApproveRollout> for OrchestratorActor {
    type Reply = Result<RolloutSnapshot, FleetError>;

    async fn handle(
        &mut self,
        msg: ApproveRollout,
        _: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        let handle = self.rollout(&msg.id)?;
        handle.approve(&msg.by)?;
        Ok(handle.snapshot())
    }
}

/// Resume an interrupted rollout with the hosts not yet done.
pub struct ResumeRollout(pub String);

impl Message<ResumeRollout> for OrchestratorActor {
    type Reply = Result<RolloutSnapshot, FleetError>;

    async fn handle(
        &mut self,
        msg: ResumeRollout,
        ctx: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        self.rollout(&msg.0)?;
        let names = self.all_names();
        let targets = self.entries_of(ctx.actor_ref(), &names).await;
        let resumed = self.rollout(&msg.0)?.resume(targets)?;
        let snapshot = resumed.snapshot();
        self.rollouts.insert(msg.0, resumed);
        Ok(snapshot)
    }
}

/// Every host's shared state (for shutdown and the scheduler).
pub struct AllHosts;

impl Message<AllHosts> for OrchestratorActor {
    type Reply = Vec<Arc<HostShared>>;

    async fn handle(&mut self, _: AllHosts, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        self.hosts.values().map(|e| Arc::clone(&e.shared)).collect()
    }
}

/// Rollout tasks, to wait for at shutdown.
pub struct RolloutHandles;

impl Message<RolloutHandles> for OrchestratorActor {
    type Reply = Vec<RolloutHandle>;

    async fn handle(
        &mut self,
        _: RolloutHandles,
        _: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        self.rollouts.values().cloned().collect()
    }
}

/// Config reload: `spec` in place of the host of that name, or added when new (config hosts
/// may be `local`). A changed host keeps its status and takes the new settings from its next
/// job on; one whose job runs is left as it is (`HostBusy`: try again when the job ends).
pub struct PutConfigHost(pub HostSpec);

/// What [`PutConfigHost`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    Added,
    Replaced,
    Unchanged,
}

impl Message<PutConfigHost> for OrchestratorActor {
    type Reply = Result<Put, FleetError>;

    async fn handle(
        &mut self,
        msg: PutConfigHost,
        ctx: &mut Context<Self, Self::Reply>,
    ) -> Self::Reply {
        let name = msg.0.name.clone();
        let Some(old) = self.hosts.get(&name) else {
            let entry = self
                .spawn_host(ctx.actor_ref(), msg.0, HostStatus::default())
                .await;
            entry.shared.persist();
            self.hosts.insert(name.clone(), entry.into());
            self.publish();
            self.ctx.bus.publish(EventKind::HostAdded { host: name });
            return Ok(Put::Added);
        };
        if old.shared.spec == msg.0 {
            return Ok(Put::Unchanged);
        }
        let status = old.shared.status().clone();
        if let Some(job_id) = status.current_job.clone() {
            return Err(FleetError::HostBusy { host: name, job_id });
        }
        let old = self.hosts.remove(&name).expect("checked above");
        old.stop().await;
        let entry = self.spawn_host(ctx.actor_ref(), msg.0, status).await;
        self.hosts.insert(name, entry.into());
        self.publish();
        Ok(Put::Replaced)
    }
}

/// Config reload: remove a host whatever its origin, unless its job runs (`HostBusy`).
pub struct RetireHost(pub String);

impl Message<RetireHost> for OrchestratorActor {
    type Reply = Result<(), FleetError>;

    async fn handle(&mut self, msg: RetireHost, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        let name = msg.0;
        let Some(entry) = self.hosts.get(&name) else {
            return Ok(());
        };
        if let Some(job_id) = entry.shared.status().current_job.clone() {
            return Err(FleetError::HostBusy { host: name, job_id });
        }
        let entry = self.hosts.remove(&name).expect("checked above");
        self.publish();
        entry.stop().await;
        self.ctx.bus.publish(EventKind::HostRemoved { host: name });
        Ok(())
    }
}

/// Config reload: the groups from the file.
pub struct SetGroups(pub BTreeMap<String, Vec<String>>);

impl Message<SetGroups> for OrchestratorActor {
    type Reply = ();

    async fn handle(&mut self, msg: SetGroups, _: &mut Context<Self, Self::Reply>) -> Self::Reply {
        self.groups = msg.0;
        self.publish();
    }
}
