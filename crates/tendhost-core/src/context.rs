//! What every host and rollout shares: the event bus, the job registry, the fleet-wide
//! concurrency limit, SSH state, and the persistence hooks the store plugs into.

use std::sync::Arc;

use tendhost_exec::ExecEnv;
use tokio::sync::Semaphore;

use crate::events::{EventBus, OutputStream};
use crate::host::HostShared;
use crate::jobs::Jobs;
use crate::model::RolloutSnapshot;

/// Mirrors state changes to durable storage (the daemon wires the SQLite store in).
pub trait Persistence: Send + Sync {
    /// A host's status changed.
    fn host_changed(&self, host: &HostShared);
    /// A job was created or changed. Must queue the write before returning: an event
    /// published afterwards is delivered only after this write is committed.
    fn job_changed(&self, jobs: &Jobs, job_id: &str);
    /// A rollout was created or changed.
    fn rollout_changed(&self, rollout: &RolloutSnapshot);
    /// An output line of a job.
    fn job_output(&self, job_id: &str, stream: OutputStream, line: &str);
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

    pub fn persist_rollout(&self, rollout: &RolloutSnapshot) {
        if let Some(persistence) = &self.persistence {
            persistence.rollout_changed(rollout);
        }
    }

    /// Records an output line of a job: in memory, in the store, and on the bus.
    pub fn job_output(&self, host: &str, job_id: &str, stream: OutputStream, line: &str) {
        self.jobs.log(job_id, stream, line);
        if let Some(persistence) = &self.persistence {
            persistence.job_output(job_id, stream, line);
        }
        self.bus.publish(crate::events::EventKind::JobOutput {
            job_id: job_id.to_owned(),
            host: host.to_owned(),
            stream,
            line: line.to_owned(),
        });
    }
}
