//! `tendhost-store`: tendhost's durable state in one SQLite database (`data_dir/tendhost.db`,
//! bundled SQLite, WAL): runtime hosts, host status, jobs and their output, rollouts, and the
//! event log whose `seq` keeps increasing across restarts.
//!
//! [`Store`] is a cheap-to-clone handle. One dedicated thread owns the connection and commits
//! in groups (see `writer`); async methods wait on that thread without blocking the runtime, and
//! return only after their writes are committed. [`Store::log_line`] and [`Store::post_event`]
//! only queue; [`Store::flush`] waits until everything queued before it is committed.
//!
//! Here: opening (data dir, OS lock, migrations, writer thread), the handle's plumbing (the
//! requests it queues for the writer), and retention. Table queries live in `hosts`, `jobs`, `events`, `rollouts`; record types in
//! `records`. No wire types, no actors, no clocks: callers pass times (Unix epoch ms).

mod audit;
mod error;
mod events;
mod hosts;
mod jobs;
mod lock;
mod notifications;
mod posted;
mod records;
mod rollouts;
mod schema;
mod sql;
#[cfg(test)]
mod testing;
mod timing;
mod writer;

use std::fmt;
use std::path::Path;
use std::sync::{Arc, mpsc};

use tokio::sync::oneshot;

pub use crate::audit::{AuditFilter, AuditRecord, AuditUpdate};
pub use crate::error::{Result, StoreError};
pub use crate::events::EventSink;
use crate::jobs::LineOp;
pub use crate::lock::LOCK_FILE;
pub use crate::notifications::{DeliveryRecord, DeliveryUpdate};
pub use crate::records::{
    EventRecord, HostStatusRecord, JobCompletion, JobFilter, JobRecord, Listed, NewEvent,
    OutputLineRecord, Page, Pruned, RolloutBatchRecord, RolloutHostRecord, RolloutRecord,
    RuntimeHostRecord, job_state, rollout_state,
};
pub use crate::schema::SCHEMA_VERSION;
pub use crate::timing::set_commit_observer;
use crate::writer::{CallFn, Writer};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tendhost.db";

/// A request to the writer thread, in the order it was sent.
pub(crate) enum Op {
    /// An output line: no answer; a failure is logged.
    Line(LineOp),
    /// An event posted without waiting: no answer; a failure is logged.
    Event(NewEvent),
    Call(CallFn),
    SetSink(EventSink),
    Close(oneshot::Sender<()>),
}

/// Handle to the open store; clones share the one writer thread.
///
/// The database stays open (and the data directory locked) until [`Store::close`] returns, or
/// until every handle is dropped and the writer has committed what was queued.
#[derive(Clone)]
pub struct Store {
    ops: mpsc::Sender<Op>,
    db_path: Arc<Path>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("db_path", &self.db_path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `data_dir` (created if missing): takes the directory's OS lock,
    /// opens or creates the database, applies pending migrations and starts the writer thread.
    ///
    /// Blocking (file I/O, migrations): call it before serving, or in `spawn_blocking`.
    /// Errors name the path: [`StoreError::DataDir`], [`StoreError::Locked`] (with the holder's
    /// pid), [`StoreError::Corrupt`], [`StoreError::TooNew`], [`StoreError::Migration`].
    pub fn open(data_dir: impl AsRef<Path>) -> Result<Self> {
        let data_dir = data_dir.as_ref();
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let lock = lock::DataDirLock::acquire(data_dir)?;
        let db_path = data_dir.join(DB_FILE);
        let mut conn = schema::open_connection(&db_path)?;
        schema::migrate(&mut conn, &db_path, SCHEMA_VERSION)?;
        let next_seq = events::initial_next_seq(&conn)
            .map_err(|source| error::open_error(&db_path, source))?;
        let writer = Writer::new(conn, next_seq, db_path.clone(), lock);
        let (ops, ops_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("tendhost-store".to_owned())
            .spawn(move || writer.run(&ops_rx))
            .map_err(StoreError::Thread)?;
        tracing::debug!(path = %db_path.display(), next_seq, "store opened");
        Ok(Self {
            ops,
            db_path: Arc::from(db_path),
        })
    }

    /// Path of the database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Waits until every request sent before this call (output lines, posted events included)
    /// is committed.
    pub async fn flush(&self) -> Result<()> {
        self.call(|_| Ok(())).await
    }

    /// Commits what is queued, closes the database and releases the data directory lock;
    /// returns once all of that is done. Other handles get [`StoreError::Closed`] afterwards.
    pub async fn close(self) -> Result<()> {
        let (reply, done) = oneshot::channel();
        self.send(Op::Close(reply))?;
        done.await.map_err(|_| StoreError::Closed)
    }

    /// Deletes finished jobs (with their output) and finished rollouts whose end is before
    /// `older_than_ms`, and events older than it. `seq` is unaffected: it never goes back, even
    /// when every event is pruned. One transaction, run on the writer thread.
    pub async fn prune(&self, older_than_ms: i64) -> Result<Pruned> {
        self.call(move |writer| {
            let (jobs, output_lines) = jobs::prune(&writer.conn, older_than_ms)?;
            writer.forget_line_idx(None);
            let events = events::prune(&writer.conn, older_than_ms, writer.last_seq())?;
            let rollouts = rollouts::prune(&writer.conn, older_than_ms)?;
            audit::prune(&writer.conn, older_than_ms)?;
            notifications::prune(&writer.conn, older_than_ms)?;
            Ok(Pruned {
                jobs,
                output_lines,
                events,
                rollouts,
            })
        })
        .await
    }

    /// Runs `f` on the writer thread inside a savepoint of the current group, and answers once
    /// the group is committed (so a successful answer means "on disk").
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<R> + Send + 'static,
    {
        let (op, answer) = writer::call_op(f);
        self.send(op)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn send_op(&self, op: Op) -> Result<()> {
        self.send(op)
    }

    fn send(&self, op: Op) -> Result<()> {
        self.ops.send(op).map_err(|_| StoreError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::records::{JobCompletion, JobRecord, NewEvent};
    use crate::testing::{self, reopen_after_drop};
    use crate::{Pruned, Store, StoreError};

    fn job(id: &str, state: &str, created_at_ms: i64) -> JobRecord {
        testing::job(id, "web-1", state, created_at_ms)
    }

    fn event(time_ms: i64) -> NewEvent {
        NewEvent {
            time_ms,
            kind: "host_connected".to_owned(),
            host: Some("web-1".to_owned()),
            body: json!({}),
            correlation: 0,
        }
    }

    #[tokio::test]
    async fn prune_deletes_old_finished_jobs_with_output_and_old_events() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (id, state, created) in [
            ("old-done", "succeeded", 100),
            ("old-running", "running", 100),
            ("new-done", "failed", 5_000),
        ] {
            store.insert_job(job(id, state, created)).await.unwrap();
            store.log_line(id, "stdout", created, "line").unwrap();
            store.log_line(id, "stderr", created, "line").unwrap();
        }
        for id in ["old-done", "new-done"] {
            let finished_at_ms = if id == "old-done" { 200 } else { 5_100 };
            store
                .complete_job(
                    id,
                    JobCompletion {
                        state: "succeeded".to_owned(),
                        finished_at_ms,
                        outcome: None,
                        packages_changed: json!([]),
                    },
                )
                .await
                .unwrap();
        }
        for time_ms in [100, 200, 5_000] {
            store.append_event(event(time_ms)).await.unwrap();
        }

        let pruned = store.prune(1_000).await.unwrap();
        assert_eq!(
            pruned,
            Pruned {
                jobs: 1,
                output_lines: 2,
                events: 2,
                rollouts: 0
            }
        );
        assert!(store.job("old-done").await.unwrap().is_none());
        assert!(
            store
                .job_output("old-done", 0, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store.job("old-running").await.unwrap().is_some(),
            "running jobs are kept"
        );
        assert_eq!(store.job_output("new-done", 0, 10).await.unwrap().len(), 2);
        assert_eq!(store.oldest_event_seq().await.unwrap(), Some(3));
        assert_eq!(store.prune(1_000).await.unwrap(), Pruned::default());
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn seq_never_goes_back_after_every_event_is_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for time_ms in [1, 2, 3] {
            store.append_event(event(time_ms)).await.unwrap();
        }
        assert_eq!(store.prune(10).await.unwrap().events, 3);
        assert_eq!(store.oldest_event_seq().await.unwrap(), None);
        store.close().await.unwrap();

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.next_seq().await.unwrap(), 4);
        assert_eq!(store.append_event(event(20)).await.unwrap().seq, 4);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn failing_call_leaves_the_rest_of_its_group_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert_job(job("a", "queued", 1)).await.unwrap();
        // Queued together, so they likely share a group; each must stand on its own anyway.
        let (dup, fresh, ev) = tokio::join!(
            store.insert_job(job("a", "queued", 1)),
            store.insert_job(job("b", "queued", 2)),
            store.append_event(event(3)),
        );
        assert!(
            matches!(dup, Err(StoreError::Duplicate { what: "job", .. })),
            "{dup:?}"
        );
        fresh.unwrap();
        assert_eq!(ev.unwrap().seq, 1);
        store.close().await.unwrap();

        let store = Store::open(dir.path()).unwrap();
        assert!(store.job("b").await.unwrap().is_some());
        assert_eq!(store.events_after(0, 10).await.unwrap().len(), 1);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn requests_after_close_get_closed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let other = store.clone();
        store.close().await.unwrap();
        assert!(matches!(other.job("x").await, Err(StoreError::Closed)));
        assert!(matches!(
            other.log_line("x", "stdout", 0, "l"),
            Err(StoreError::Closed)
        ));
    }

    #[tokio::test]
    async fn dropping_every_handle_commits_what_was_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert_job(job("j", "running", 1)).await.unwrap();
        for line_idx in 0..100 {
            store
                .log_line("j", "stdout", 1, &format!("line {line_idx}"))
                .unwrap();
        }
        drop(store);
        // The writer releases the lock once it has committed and closed; wait for that.
        let store = reopen_after_drop(dir.path());
        assert_eq!(store.job_output("j", 0, 1000).await.unwrap().len(), 100);
        store.close().await.unwrap();
    }
}
