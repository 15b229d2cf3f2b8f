//! What every host and rollout shares: the event bus, the job registry, the fleet-wide
//! concurrency limit, SSH state, and the persistence hooks the store plugs into.

use std::sync::Arc;

use tendhost_exec::ExecEnv;
use tokio::sync::Semaphore;

use crate::events::EventBus;
use crate::host::HostShared;
use crate::jobs::Jobs;

/// Mirrors state changes to durable storage (the daemon wires the SQLite store in).
pub trait Persistence: Send + Sync {
    /// A host's status changed.
    fn host_changed(&self, host: &HostShared);
    /// A job was created or changed.
    fn job_changed(&self, jobs: &Jobs, job_id: &str);
}

/// Shared by the whole fleet.
pub struct FleetContext {
    pub bus: EventBus,
    pub jobs: Arc<Jobs>,
    /// Fleet-wide limit on hosts doing remote work at once (`[daemon] max_parallel`).
    pub remote_slots: Arc<Semaphore>,
    pub exec_env: ExecEnv,
    pub persistence: Option<Arc<dyn Persistence>>,
}

impl FleetContext {
    pub fn persist_host(&self, host: &HostShared) {
        if let Some(persistence) = &self.persistence {
            persistence.host_changed(host);
        }
    }

    pub fn persist_job(&self, job_id: &str) {
        if let Some(persistence) = &self.persistence {
            persistence.job_changed(&self.jobs, job_id);
        }
    }
}
