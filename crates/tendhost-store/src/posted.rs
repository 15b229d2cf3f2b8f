//! Writes queued without waiting: whole-record upserts of jobs, host status and rollouts that
//! the daemon sends as its state changes. They are committed in the order they were queued,
//! together with everything else in their group, and before any event queued after them
//! reaches the event sink: so an event announcing a job's outcome is never delivered before
//! that outcome is on disk. A failure is logged (there is no one to answer).

use crate::Store;
use crate::error::Result;
use crate::jobs::{self, OnConflict};
use crate::records::{HostStatusRecord, JobRecord, RolloutRecord};
use crate::writer::{Writer, call_op};

impl Store {
    fn post<F>(&self, what: &'static str, key: String, f: F) -> Result<()>
    where
        F: FnOnce(&mut Writer) -> Result<()> + Send + 'static,
    {
        let (op, _answer) = call_op(move |writer| {
            let result = f(writer);
            if let Err(error) = &result {
                tracing::error!(what, key = %key, %error, "store: queued write failed");
            }
            result
        });
        self.send_op(op)
    }

    /// Queues an insert-or-replace of the whole job record.
    pub fn post_job(&self, job: JobRecord) -> Result<()> {
        self.post("job", job.id.clone(), move |writer| {
            jobs::insert(&writer.conn, &job, OnConflict::Replace)?;
            Ok(())
        })
    }

    /// Queues an insert-or-replace of a host's status.
    pub fn post_host_status(&self, status: HostStatusRecord) -> Result<()> {
        self.post("host_status", status.name.clone(), move |writer| {
            crate::hosts::put_status(&writer.conn, &status)
        })
    }

    /// Queues an insert-or-update of a rollout with its batches and hosts.
    pub fn post_rollout(&self, rollout: RolloutRecord) -> Result<()> {
        self.post("rollout", rollout.id.clone(), move |writer| {
            crate::rollouts::upsert(&writer.conn, &rollout)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::records::{HostStatusRecord, RolloutBatchRecord, RolloutHostRecord, RolloutRecord};
    use crate::testing;
    use crate::{JobRecord, Store};

    #[tokio::test]
    async fn posted_writes_upsert_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut job: JobRecord = testing::job("j1", "web-1", "queued", 1_000);
        store.post_job(job.clone()).unwrap();
        job.state = "succeeded".to_owned();
        job.finished_at_ms = Some(2_000);
        store.post_job(job.clone()).unwrap();
        store
            .post_host_status(HostStatusRecord {
                name: "web-1".to_owned(),
                state: "idle".to_owned(),
                failure: None,
                pending_updates: json!([]),
                reboot_state: "unknown".to_owned(),
                inventory: None,
                last_check_ms: Some(1_500),
                updated_at_ms: 1_500,
                health: None,
                services_to_restart: json!([]),
                pending_since: json!({}),
            })
            .unwrap();
        let mut rollout = RolloutRecord {
            id: "r1".to_owned(),
            params: json!({"batch_size": 1}),
            state: "running".to_owned(),
            created_at_ms: 1_000,
            started_at_ms: Some(1_000),
            finished_at_ms: None,
            batches: vec![RolloutBatchRecord {
                idx: 0,
                state: "running".to_owned(),
                started_at_ms: Some(1_000),
                finished_at_ms: None,
            }],
            hosts: vec![RolloutHostRecord {
                host: "web-1".to_owned(),
                batch_idx: Some(0),
                state: "running".to_owned(),
                job_id: Some("j1".to_owned()),
                detail: json!({}),
                updated_at_ms: 1_000,
            }],
        };
        store.post_rollout(rollout.clone()).unwrap();
        rollout.state = "completed".to_owned();
        rollout.finished_at_ms = Some(3_000);
        rollout.hosts[0].state = "succeeded".to_owned();
        store.post_rollout(rollout.clone()).unwrap();
        store.flush().await.unwrap();

        assert_eq!(store.job("j1").await.unwrap().unwrap(), job);
        assert_eq!(
            store
                .host_status("web-1")
                .await
                .unwrap()
                .unwrap()
                .last_check_ms,
            Some(1_500)
        );
        let stored = store.rollout("r1").await.unwrap().unwrap();
        assert_eq!(stored.state, "completed");
        assert_eq!(stored.hosts[0].state, "succeeded");
        assert_eq!(stored.finished_at_ms, Some(3_000));
    }
}
