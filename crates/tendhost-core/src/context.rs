//! What every host and rollout shares: the event bus, the job registry, the id generator, the
//! fleet-wide concurrency limit, and `Persistence`, the hook the store plugs into.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use jiff::Timestamp;

use tokio::sync::Semaphore;

use crate::events::{EventBus, EventKind, OutputStream};
use crate::ids::Ids;
use crate::jobs::Jobs;
use crate::model::{HostStatus, JobSnapshot, RolloutSnapshot};

/// Mirrors state changes to durable storage (the daemon wires the SQLite store in). Each
/// method gets the changed value as the model has it; none may call back into the fleet, and
/// each should queue its write rather than wait for it.
pub trait Persistence: Send + Sync {
    /// Host `name`'s status changed (a copy of it). The host calls it for one change at a
    /// time, so writes of one host are queued in the order of its changes; its status is not
    /// locked meanwhile, so a wait for room here never holds up a reader of it.
    fn host_changed(&self, name: &str, status: &HostStatus);
    /// A job was created or changed (its log is empty here: lines arrive through
    /// `job_output`). Must queue the write before returning: an event published afterwards is
    /// delivered only after this write is committed.
    fn job_changed(&self, job: &JobSnapshot);
    /// A rollout was created or changed.
    fn rollout_changed(&self, rollout: &RolloutSnapshot);
    /// An output line of a job, with the time the registry gave it (so the stored log and the
    /// live one agree to the millisecond).
    fn job_output(&self, job_id: &str, stream: OutputStream, time: Timestamp, line: &str);
    /// Waits until the durable queue has room for more output (backpressure: a job printing
    /// faster than the store commits waits here, before reading more of its output). Ready at
    /// once by default.
    fn room(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// Shared by the whole fleet.
pub struct FleetContext {
    pub bus: EventBus,
    pub jobs: Arc<Jobs>,
    pub ids: Ids,
    /// Fleet-wide limit on hosts doing remote work at once (`[daemon] max_parallel`).
    pub remote_slots: Arc<Semaphore>,
    pub persistence: Option<Arc<dyn Persistence>>,
}

impl FleetContext {
    pub fn persist_host(&self, name: &str, status: &HostStatus) {
        if let Some(persistence) = &self.persistence {
            persistence.host_changed(name, status);
        }
    }

    pub fn persist_job(&self, job_id: &str) {
        if let Some(persistence) = &self.persistence
            && let Some(job) = self.jobs.get_without_log(job_id)
        {
            persistence.job_changed(&job);
        }
    }

    pub fn persist_rollout(&self, rollout: &RolloutSnapshot) {
        if let Some(persistence) = &self.persistence {
            persistence.rollout_changed(rollout);
        }
    }

    /// Waits until the store can take more output lines (see [`Persistence::room`]).
    pub async fn output_room(&self) {
        if let Some(persistence) = &self.persistence {
            persistence.room().await;
        }
    }

    /// Records an output line of a job: in memory, in the store, and on the bus.
    pub fn job_output(&self, host: &str, job_id: &str, stream: OutputStream, line: &str) {
        let time = Timestamp::now();
        self.jobs.log(job_id, stream, time, line);
        if let Some(persistence) = &self.persistence {
            persistence.job_output(job_id, stream, time, line);
        }
        self.bus.publish(EventKind::JobOutput {
            job_id: job_id.to_owned(),
            host: host.to_owned(),
            stream,
            line: line.to_owned(),
        });
    }
}
