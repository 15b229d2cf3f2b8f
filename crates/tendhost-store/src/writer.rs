//! The one thread that owns the SQLite connection, and the group commit it runs: it takes every
//! request queued so far (up to [`MAX_GROUP`]), runs them in one transaction, each call inside
//! its own savepoint so one failing call does not undo the others, commits once, hands committed
//! events to the event sink in `seq` order, and only then answers the callers. So whatever a
//! caller is told has happened is on disk, and a burst of output lines costs one commit, not one
//! per line. It also keeps each job's stored output within `job_log_max` bytes (one marker line
//! past them). The typed operations on tables live in their own modules; this file only
//! schedules.

use rusqlite::Connection;
use std::collections::HashMap;
use std::path::PathBuf;
use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::oneshot;

use crate::error::{Result, StoreError};
use crate::events::EventSink;
use crate::jobs::LineOp;
use crate::lock::DataDirLock;
use crate::records::{EventRecord, NewEvent};
use crate::{LOG_TRUNCATED, Op};
use crate::{events, jobs};

/// Most requests committed in one transaction; bounds the latency one group adds.
pub(crate) const MAX_GROUP: usize = 8192;

/// Answers a caller once the group's commit result is known.
pub(crate) type Deliver = Box<dyn FnOnce(Result<(), &str>) + Send>;

/// A request with an answer. Given `None` when the group's transaction could not even begin:
/// it must not run then, only answer with the error.
pub(crate) type CallFn = Box<dyn FnOnce(Option<&mut Writer>) -> Deliver + Send>;

/// Wraps `f` as a request: it runs inside a savepoint of its group, and the receiver gets its
/// result once the group's commit is known (a failed commit turns success into an error).
pub(crate) fn call_op<R, F>(f: F) -> (Op, oneshot::Receiver<Result<R>>)
where
    R: Send + 'static,
    F: FnOnce(&mut Writer) -> Result<R> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    let call = Box::new(move |writer: Option<&mut Writer>| -> Deliver {
        let result = writer.map(|writer| writer.savepoint(f));
        Box::new(move |committed: Result<(), &str>| {
            let answer = match (result, committed) {
                (Some(Err(error)), _) => Err(error),
                (_, Err(message)) => Err(StoreError::Commit(message.to_owned())),
                (Some(Ok(value)), Ok(())) => Ok(value),
                (None, Ok(())) => Err(StoreError::Commit("the transaction did not begin".into())),
            };
            let _ = reply.send(answer);
        })
    });
    (Op::Call(call), answer)
}

pub(crate) struct Writer {
    pub(crate) conn: Connection,
    /// The `seq` the next event gets; only ever increases, except back to the start of a group
    /// whose commit failed (those numbers were never handed out).
    next_seq: i64,
    /// Where each job's output stands (next line index, bytes stored), learned from the table
    /// on a job's first line.
    line_budget: HashMap<String, LineBudget>,
    /// Bytes of output stored per job before the marker line.
    job_log_max: u64,
    /// Events written in the open transaction with their correlation numbers, handed to the
    /// sink after the commit.
    uncommitted_events: Vec<(EventRecord, u64)>,
    sink: Option<EventSink>,
    db_path: PathBuf,
    /// Released only after the connection is closed.
    lock: DataDirLock,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        next_seq: i64,
        db_path: PathBuf,
        lock: DataDirLock,
        job_log_max: u64,
    ) -> Self {
        Self {
            conn,
            next_seq,
            line_budget: HashMap::new(),
            job_log_max,
            uncommitted_events: Vec::new(),
            sink: None,
            db_path,
            lock,
        }
    }

    pub(crate) fn run(mut self, ops: &mut Receiver<Op>) {
        let mut group = Vec::new();
        let close_reply = loop {
            let Some(op) = ops.blocking_recv() else {
                // Every `Store` handle is gone.
                break None;
            };
            group.push(op);
            while group.len() < MAX_GROUP {
                match ops.try_recv() {
                    Ok(op) => group.push(op),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            }
            if let Some(reply) = self.run_group(&mut group) {
                break Some(reply);
            }
        };
        self.shut_down();
        if let Some(reply) = close_reply {
            let _ = reply.send(());
        }
    }

    /// Runs and commits one group; returns the reply of a `Close` request if the group had one
    /// (requests queued after it are dropped, so their callers get `StoreError::Closed`).
    fn run_group(&mut self, group: &mut Vec<Op>) -> Option<oneshot::Sender<()>> {
        let seq_at_start = self.next_seq;
        let began = self.conn.execute_batch("BEGIN");
        let mut delivers: Vec<Deliver> = Vec::new();
        let mut close_reply = None;
        for op in group.drain(..) {
            if close_reply.is_some() {
                continue;
            }
            match op {
                Op::Close(reply) => close_reply = Some(reply),
                Op::SetSink(sink) => self.sink = Some(sink),
                Op::Call(call) if began.is_ok() => delivers.push(call(Some(self))),
                Op::Call(call) => delivers.push(call(None)),
                Op::Line(line) if began.is_ok() => self.log_line(&line),
                Op::Event(event) if began.is_ok() => {
                    if let Err(error) = self.append_event(event) {
                        tracing::error!(%error, "cannot store a posted event");
                    }
                }
                Op::Line(_) | Op::Event(_) => {}
            }
        }
        let commit_started = std::time::Instant::now();
        let committed = began
            .and_then(|()| self.conn.execute_batch("COMMIT"))
            .map_err(|error| format!("{}: {error}", self.db_path.display()));
        match &committed {
            Ok(()) => {
                crate::timing::committed(commit_started.elapsed());
                let events = std::mem::take(&mut self.uncommitted_events);
                if let Some(sink) = &mut self.sink {
                    for (event, correlation) in &events {
                        sink(event, *correlation);
                    }
                }
            }
            Err(message) => {
                tracing::error!(%message, "store commit failed; the group's writes are lost");
                if !self.conn.is_autocommit()
                    && let Err(error) = self.conn.execute_batch("ROLLBACK")
                {
                    tracing::error!(%error, "store rollback failed");
                }
                self.next_seq = seq_at_start;
                self.uncommitted_events.clear();
                self.line_budget.clear();
            }
        }
        let committed = committed.as_ref().copied().map_err(String::as_str);
        for deliver in delivers {
            deliver(committed);
        }
        close_reply
    }

    /// Closes the connection, then releases the data directory lock.
    fn shut_down(self) {
        let Self {
            conn,
            db_path,
            lock,
            ..
        } = self;
        if let Err((_, error)) = conn.close() {
            tracing::error!(path = %db_path.display(), %error, "closing the database failed");
        }
        drop(lock);
    }

    /// Runs `f` inside a savepoint: all of its writes, or none of them.
    pub(crate) fn savepoint<R>(&mut self, f: impl FnOnce(&mut Self) -> Result<R>) -> Result<R> {
        self.conn.execute_batch("SAVEPOINT call")?;
        let seq_before = self.next_seq;
        let n_events_before = self.uncommitted_events.len();
        let result = f(self).and_then(|value| {
            self.conn.execute_batch("RELEASE call")?;
            Ok(value)
        });
        if result.is_err() {
            self.next_seq = seq_before;
            self.uncommitted_events.truncate(n_events_before);
            if let Err(error) = self.conn.execute_batch("ROLLBACK TO call; RELEASE call") {
                tracing::error!(%error, "store savepoint rollback failed");
            }
        }
        result
    }

    /// The `seq` the next event will get.
    pub(crate) fn next_seq(&self) -> i64 {
        self.next_seq
    }

    /// The last `seq` handed out (0 before the first event ever).
    pub(crate) fn last_seq(&self) -> i64 {
        self.next_seq - 1
    }

    pub(crate) fn append_event(&mut self, event: NewEvent) -> Result<EventRecord> {
        let record = EventRecord {
            seq: self.next_seq,
            time_ms: event.time_ms,
            kind: event.kind,
            host: event.host,
            body: event.body,
        };
        events::insert(&self.conn, &record)?;
        self.next_seq += 1;
        self.uncommitted_events
            .push((record.clone(), event.correlation));
        Ok(record)
    }

    fn log_line(&mut self, line: &LineOp) {
        let result = (|| -> Result<()> {
            let budget = if let Some(budget) = self.line_budget.get(&line.job_id) {
                *budget
            } else {
                let (next_idx, n_bytes, truncated) = jobs::line_position(&self.conn, &line.job_id)?;
                LineBudget {
                    next_idx,
                    n_bytes,
                    truncated,
                }
            };
            if budget.truncated {
                return Ok(());
            }
            let n_line_bytes = line.line.len() as u64;
            let next = if budget.n_bytes + n_line_bytes <= self.job_log_max {
                jobs::insert_line(&self.conn, line, budget.next_idx)?;
                LineBudget {
                    next_idx: budget.next_idx + 1,
                    n_bytes: budget.n_bytes + n_line_bytes,
                    truncated: false,
                }
            } else {
                let marker = LineOp {
                    job_id: line.job_id.clone(),
                    stream: line.stream.clone(),
                    time_ms: line.time_ms,
                    line: format!(
                        "{LOG_TRUNCATED} it reached {} bytes (daemon.job_log_max); \
                         later output of this job was not stored]",
                        self.job_log_max
                    ),
                };
                jobs::insert_line(&self.conn, &marker, budget.next_idx)?;
                LineBudget {
                    next_idx: budget.next_idx + 1,
                    n_bytes: budget.n_bytes,
                    truncated: true,
                }
            };
            self.line_budget.insert(line.job_id.clone(), next);
            Ok(())
        })();
        if let Err(error) = result {
            self.line_budget.remove(&line.job_id);
            tracing::error!(job_id = %line.job_id, %error, "cannot store an output line");
        }
    }

    /// Forgets cached line positions (after jobs were deleted or completed).
    pub(crate) fn forget_line_idx(&mut self, job_id: Option<&str>) {
        match job_id {
            Some(job_id) => {
                self.line_budget.remove(job_id);
            }
            None => self.line_budget.clear(),
        }
    }
}

/// Where a job's stored output stands.
#[derive(Debug, Clone, Copy)]
struct LineBudget {
    next_idx: i64,
    /// Bytes of the lines stored (the marker not counted).
    n_bytes: u64,
    /// The marker is stored: nothing more of this job's output is.
    truncated: bool,
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use crate::error::StoreError;
    use crate::jobs::{self, LineOp, OnConflict};
    use crate::lock::DataDirLock;
    use crate::records::NewEvent;
    use crate::writer::{Writer, call_op};
    use crate::{DB_FILE, LOG_TRUNCATED, Op, schema, testing};

    fn writer(dir: &std::path::Path) -> Writer {
        writer_with_log_max(dir, u64::MAX)
    }

    fn writer_with_log_max(dir: &std::path::Path, job_log_max: u64) -> Writer {
        let lock = DataDirLock::acquire(dir).unwrap();
        let db_path = dir.join(DB_FILE);
        let mut conn = schema::open_connection(&db_path).unwrap();
        schema::migrate(&mut conn, &db_path, schema::SCHEMA_VERSION).unwrap();
        Writer::new(conn, 1, db_path, lock, job_log_max)
    }

    fn stored_lines(writer: &Writer, job_id: &str) -> Vec<String> {
        writer
            .conn
            .prepare("SELECT line FROM job_output WHERE job_id = ?1 ORDER BY idx")
            .unwrap()
            .query_map([job_id], |row| row.get(0))
            .unwrap()
            .collect::<rusqlite::Result<Vec<String>>>()
            .unwrap()
    }

    /// A job's stored output stops at `job_log_max` bytes with one marker line saying so;
    /// other jobs are not affected, and a writer started later (a restart) goes on counting
    /// from what is stored.
    #[test]
    fn output_past_job_log_max_ends_in_one_marker_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer_with_log_max(dir.path(), 10);
        for id in ["a", "b"] {
            let job = testing::job(id, "h", "running", 0);
            jobs::insert(&writer.conn, &job, OnConflict::Ignore).unwrap();
        }
        let mut group = vec![
            line("a", "12345"),
            line("a", "6789"),
            line("b", "0123456789"),
            line("a", "abc"),
            line("a", "d"),
            line("a", "e"),
        ];
        writer.run_group(&mut group);
        let a = stored_lines(&writer, "a");
        assert_eq!(a[..2], ["12345", "6789"]);
        assert_eq!(a.len(), 3, "{a:?}");
        assert!(a[2].starts_with(LOG_TRUNCATED), "{a:?}");
        assert!(a[2].contains("10 bytes (daemon.job_log_max)"), "{a:?}");
        assert_eq!(stored_lines(&writer, "b"), ["0123456789"]);

        writer.forget_line_idx(None);
        writer.run_group(&mut vec![line("a", "f"), line("b", "g")]);
        assert_eq!(
            stored_lines(&writer, "a").len(),
            3,
            "nothing after the marker"
        );
        assert_eq!(stored_lines(&writer, "b").len(), 2, "b got its marker now");
        assert!(stored_lines(&writer, "b")[1].starts_with(LOG_TRUNCATED));
    }

    fn insert_job(id: &str) -> impl FnOnce(&mut Writer) -> crate::Result<()> + Send + 'static {
        let id = id.to_owned();
        move |writer| {
            // A write before the failing one, undone with it (its seq too).
            writer.append_event(event())?;
            let job = testing::job(&id, "h", "running", 0);
            let n_inserted = jobs::insert(&writer.conn, &job, OnConflict::Ignore)?;
            if n_inserted == 0 {
                return Err(StoreError::Duplicate {
                    what: "job",
                    key: id,
                });
            }
            Ok(())
        }
    }

    fn event() -> NewEvent {
        NewEvent {
            time_ms: 0,
            kind: "job_started".to_owned(),
            host: None,
            body: json!({}),
            correlation: 0,
        }
    }

    fn line(job_id: &str, text: &str) -> Op {
        Op::Line(LineOp {
            job_id: job_id.to_owned(),
            stream: "stdout".to_owned(),
            time_ms: 0,
            line: text.to_owned(),
        })
    }

    fn recording_sink(writer: &mut Writer) -> Arc<Mutex<Vec<i64>>> {
        let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
        let sink_seen = Arc::clone(&seen);
        writer.sink = Some(Box::new(move |event, _correlation| {
            sink_seen.lock().unwrap().push(event.seq);
        }));
        seen
    }

    /// One group holding a failing call between good ones: the failing call's writes (and its
    /// event's seq) are undone, everything else is committed together.
    #[test]
    fn one_failing_call_does_not_undo_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        let seen = recording_sink(&mut writer);
        let (first, first_answer) = call_op(insert_job("a"));
        let (dup, mut dup_answer) = call_op(insert_job("a"));
        let (second, second_answer) = call_op(insert_job("b"));
        let (read, read_answer) =
            call_op(|writer: &mut Writer| Ok(jobs::next_line_idx(&writer.conn, "a")?));
        let mut group = vec![
            first,
            line("a", "one"),
            dup,
            Op::Event(event()),
            line("a", "two"),
            second,
            read,
        ];
        assert!(writer.run_group(&mut group).is_none());

        first_answer.blocking_recv().unwrap().unwrap();
        assert!(matches!(
            dup_answer.try_recv().unwrap(),
            Err(StoreError::Duplicate { what: "job", .. })
        ));
        second_answer.blocking_recv().unwrap().unwrap();
        assert_eq!(
            read_answer.blocking_recv().unwrap().unwrap(),
            2,
            "reads see the group"
        );
        assert_eq!(
            *seen.lock().unwrap(),
            [1, 2, 3],
            "no seq lost to the failed call"
        );
        let n_jobs: i64 = writer
            .conn
            .query_row("SELECT COUNT(*) FROM jobs", [], |row| row.get(0))
            .unwrap();
        assert_eq!(n_jobs, 2);
        assert!(
            writer.conn.is_autocommit(),
            "the group's transaction is closed"
        );
    }

    /// A group whose transaction cannot begin: nothing runs, every caller hears of it, no
    /// event reaches the sink and no seq is used up.
    #[test]
    fn failed_group_answers_every_caller_and_announces_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        let seen = recording_sink(&mut writer);
        // Leaves a transaction open, so the group's own BEGIN fails.
        writer.conn.execute_batch("BEGIN").unwrap();
        let (call, answer) = call_op(insert_job("a"));
        let mut group = vec![call, Op::Event(event()), line("a", "lost")];
        writer.run_group(&mut group);
        assert!(matches!(
            answer.blocking_recv().unwrap(),
            Err(StoreError::Commit(message)) if message.contains(DB_FILE)
        ));
        assert!(seen.lock().unwrap().is_empty());
        assert!(
            writer.conn.is_autocommit(),
            "the writer rolled the stray transaction back"
        );

        let (call, answer) = call_op(insert_job("a"));
        writer.run_group(&mut vec![call]);
        answer.blocking_recv().unwrap().unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [1],
            "seq 1 was never handed out before"
        );
    }

    #[test]
    fn close_drops_the_requests_queued_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = writer(dir.path());
        let (close, _closed) = tokio::sync::oneshot::channel();
        let (before, before_answer) = call_op(insert_job("a"));
        let (after, after_answer) = call_op(insert_job("b"));
        let mut group = vec![before, Op::Close(close), after];
        assert!(writer.run_group(&mut group).is_some());
        before_answer.blocking_recv().unwrap().unwrap();
        assert!(
            after_answer.blocking_recv().is_err(),
            "the caller sees the store closed"
        );
    }
}
