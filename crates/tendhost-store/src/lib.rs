//! `tendhost-store`: tendhost's durable state in one SQLite database (`data_dir/tendhost.db`,
//! bundled SQLite, WAL): runtime hosts, host status, jobs and their output, rollouts, and the
//! event log whose `seq` keeps increasing across restarts.
//!
//! [`Store`] is a cheap-to-clone handle. One dedicated thread owns the connection and commits
//! in groups (see `writer`); async methods wait on that thread without blocking the runtime, and
//! return only after their writes are committed. [`Store::log_line`] and [`Store::post_event`]
//! only queue; [`Store::flush`] waits until everything queued before it is committed.
//!
//! The writer's queue is bounded ([`StoreOptions::queue`]): async requests wait for room,
//! producers of output lines wait in [`Store::room`] before queueing, and a queueing call that
//! finds the queue full waits on its thread until the writer has made room, so no write is ever
//! dropped. That wait cannot deadlock: the writer thread never waits on a caller (it only answers
//! oneshot channels and hands committed events to the sink, whose locks nobody holds while
//! queueing). Reads run on read-only connections of their own (`reader`), never on the writer.
//!
//! Here: opening (data dir, OS lock, migrations, writer thread), the handle's plumbing (the
//! requests it queues for the writer), and retention. Table queries live in `hosts`, `jobs`, `events`, `rollouts`; record types in
//! `records`; the throughput bench's core in `bench` (hidden, not used by the daemon). No wire types, no actors, no clocks: callers pass times (Unix epoch ms).

mod audit;
#[doc(hidden)]
pub mod bench;
mod error;
mod events;
mod hosts;
mod jobs;
mod lock;
mod notifications;
mod posted;
mod reader;
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
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

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

/// How the store bounds what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Requests the writer's queue holds before producers wait (`[daemon] store_queue`).
    pub queue: usize,
    /// Bytes of output stored per job (`[daemon] job_log_max`); past them one marker line
    /// ([`LOG_TRUNCATED`]) is stored and the rest of the job's output is not.
    pub job_log_max: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            queue: 4096,
            job_log_max: 64 * 1024 * 1024,
        }
    }
}

/// Start of the line stored in place of a job's output past `job_log_max`.
pub const LOG_TRUNCATED: &str = "[tendhost: log truncated:";

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
    readers: Arc<reader::Readers>,
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
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// [`Store::open`] with bounds other than the defaults.
    pub fn open_with(data_dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self> {
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
        let writer = Writer::new(conn, next_seq, db_path.clone(), lock, options.job_log_max);
        let (ops, mut ops_rx) = mpsc::channel(options.queue.max(1));
        std::thread::Builder::new()
            .name(WRITER_THREAD.to_owned())
            .spawn(move || writer.run(&mut ops_rx))
            .map_err(StoreError::Thread)?;
        tracing::debug!(path = %db_path.display(), next_seq, "store opened");
        Ok(Self {
            ops,
            readers: Arc::new(reader::Readers::new(db_path.clone())),
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
        self.send_async(Op::Close(reply)).await?;
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
        self.send_async(op).await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn send_op(&self, op: Op) -> Result<()> {
        self.send(op)
    }

    /// Waits until the writer's queue has room for a few more requests: producers of many
    /// writes (a job's output lines) call it before queueing, so a flood waits here instead of
    /// filling the queue.
    pub async fn room(&self) -> Result<()> {
        let n_wanted = (self.ops.max_capacity() / 4).clamp(1, ROOM_WANTED);
        let permits = self
            .ops
            .reserve_many(n_wanted)
            .await
            .map_err(|_| StoreError::Closed)?;
        drop(permits);
        Ok(())
    }

    /// Requests queued and not yet taken by the writer.
    pub fn queued(&self) -> usize {
        self.ops.max_capacity() - self.ops.capacity()
    }

    /// Queues `op`; when the queue is full, waits on this thread until the writer makes room.
    /// The writer never waits on a caller, so this wait always ends.
    ///
    /// The send is polled `unconstrained`: called from a task whose cooperative budget is
    /// spent, tokio would answer `Pending` and defer the wake-up to the scheduler, which
    /// cannot run while this thread waits here (a current-thread runtime then never wakes).
    fn send(&self, op: Op) -> Result<()> {
        match self.ops.try_send(op) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Closed),
            Err(mpsc::error::TrySendError::Full(op)) => {
                let send = || reader::block_on(tokio::task::unconstrained(self.ops.send(op)));
                let sent = match tokio::runtime::Handle::try_current() {
                    // Lets the runtime move this worker's other tasks elsewhere meanwhile.
                    Ok(handle)
                        if handle.runtime_flavor()
                            == tokio::runtime::RuntimeFlavor::MultiThread =>
                    {
                        tokio::task::block_in_place(send)
                    }
                    _ => send(),
                };
                sent.map_err(|_| StoreError::Closed)
            }
        }
    }

    /// Queues `op`, waiting (asynchronously) for room.
    async fn send_async(&self, op: Op) -> Result<()> {
        self.ops.send(op).await.map_err(|_| StoreError::Closed)
    }
}

/// Name of the writer thread.
pub(crate) const WRITER_THREAD: &str = "tendhost-store";

/// Most queue slots [`Store::room`] waits for.
const ROOM_WANTED: usize = 64;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::records::{JobCompletion, JobRecord, NewEvent};
    use crate::testing::{self, reopen_after_drop};
    use crate::{Pruned, Store, StoreError, StoreOptions, WRITER_THREAD};

    /// Keeps the writer thread inside one request until the returned sender is used (or
    /// dropped), as a slow disk would.
    async fn hold_writer(store: &Store) -> std::sync::mpsc::Sender<()> {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (entered, inside) = tokio::sync::oneshot::channel();
        let held = store.clone();
        tokio::spawn(async move {
            held.call(move |_| {
                let _ = entered.send(());
                let _ = released.recv();
                Ok(())
            })
            .await
        });
        inside.await.unwrap();
        release
    }

    /// With the writer held, a producer of output lines gets no further than the queue's
    /// capacity (it waits in `room`, and a plain `log_line` waits on its thread); once the
    /// writer goes on, every line is stored: none was dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_slows_producers_and_drops_nothing() {
        const CAPACITY: usize = 16;
        const N_LINES: usize = 1_000;
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            queue: CAPACITY,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), options).unwrap();
        store.insert_job(job("j", "running", 1)).await.unwrap();
        let release = hold_writer(&store).await;

        let n_queued = Arc::new(AtomicUsize::new(0));
        let producer = {
            let (store, n_queued) = (store.clone(), Arc::clone(&n_queued));
            tokio::spawn(async move {
                for line_idx in 0..N_LINES {
                    store.room().await.unwrap();
                    store
                        .log_line("j", "stdout", 1, &format!("line {line_idx}"))
                        .unwrap();
                    n_queued.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // A second producer on a plain thread, without `room`: it blocks in `log_line`.
        let blocking = {
            let (store, n_queued) = (store.clone(), Arc::clone(&n_queued));
            std::thread::spawn(move || {
                for line_idx in 0..N_LINES {
                    store
                        .log_line("j", "stderr", 1, &format!("b {line_idx}"))
                        .unwrap();
                    n_queued.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // Both have run into the full queue: nothing more is queued after many turns.
        for _ in 0..1_000 {
            tokio::task::yield_now().await;
            assert!(store.queued() <= CAPACITY);
        }
        assert!(
            n_queued.load(Ordering::SeqCst) <= CAPACITY,
            "{} lines queued behind a held writer with a queue of {CAPACITY}",
            n_queued.load(Ordering::SeqCst)
        );
        release.send(()).unwrap();
        producer.await.unwrap();
        tokio::task::spawn_blocking(move || blocking.join().unwrap())
            .await
            .unwrap();
        store.flush().await.unwrap();
        let lines = store.job_output("j", 0, 10_000).await.unwrap();
        assert_eq!(lines.len(), 2 * N_LINES, "no line dropped");
        store.close().await.unwrap();
    }

    /// A queueing call that finds the queue full from a task whose cooperative budget is
    /// spent still wakes when the writer makes room, on a current-thread runtime too (as the
    /// daemon runs in-process in tests): tokio defers such a task's wake-up to its scheduler,
    /// which cannot run while the call waits on that thread. The producer runs on its own
    /// thread so that a wedge fails this test instead of hanging it.
    #[test]
    fn a_full_queue_wakes_a_producer_whose_budget_is_spent_on_a_current_thread_runtime() {
        const CAPACITY: usize = 16;
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            queue: CAPACITY,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), options).unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let producer = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                store.insert_job(job("j", "running", 1)).await.unwrap();
                let release = hold_writer(&store).await;
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    let _ = release.send(());
                });
                // A fresh budget (128 units), spent to the last unit without yielding.
                tokio::task::yield_now().await;
                for _ in 0..128 {
                    tokio::task::consume_budget().await;
                }
                for line_idx in 0..CAPACITY * 4 {
                    store
                        .log_line("j", "stdout", 1, &format!("line {line_idx}"))
                        .unwrap();
                }
                store.flush().await.unwrap();
                let n_lines = store.job_output("j", 0, 10_000).await.unwrap().len();
                store.close().await.unwrap();
                n_lines
            })
        });
        std::thread::spawn(move || {
            let _ = done.send(producer.join());
        });
        let n_lines = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the producer never woke once the writer made room")
            .unwrap();
        assert_eq!(n_lines, CAPACITY * 4, "no line dropped");
    }

    /// Reads run on read-only connections, not on the writer thread: a replay read answers
    /// while the writer is held inside another request, and no read runs on that thread.
    #[tokio::test]
    async fn reads_do_not_wait_for_or_run_on_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for time_ms in [1, 2, 3] {
            store.append_event(event(time_ms)).await.unwrap();
        }
        let release = hold_writer(&store).await;
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(120),
            store.events_after(0, 10),
        )
        .await
        .expect("a read of committed events waited for the held writer");
        assert_eq!(read.unwrap().len(), 3);
        let thread = store
            .read_committed(|_| Ok(std::thread::current().name().map(str::to_owned)))
            .await
            .unwrap();
        assert_ne!(thread.as_deref(), Some(WRITER_THREAD));
        release.send(()).unwrap();
        // A read of the writer's own tables sees what was queued before it.
        store.log_line("x", "stdout", 1, "queued").unwrap();
        store.insert_job(job("x", "running", 1)).await.unwrap();
        assert!(store.job("x").await.unwrap().is_some());
        store.close().await.unwrap();
    }

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
