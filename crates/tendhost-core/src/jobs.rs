//! The job registry: every job's snapshot and the tail of its log, and a way to wait for a job
//! to finish. Shared by host actors (which write) and the fleet facade (which reads). The
//! registry is the source of truth while the daemon runs; the store (when configured) mirrors it
//! and keeps the whole log. Memory stays bounded: a job keeps the newest `log_memory` bytes of
//! its log (a ring of lines with byte accounting, no shifting), and only the newest
//! `keep_finished` finished jobs stay (the API reads older ones from the store). Ids come from
//! `ids`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::events::OutputStream;
use crate::model::{JobSnapshot, JobState, LogLine, UpdateOptions};
use crate::state::JobKind;

/// What the registry keeps in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobsOptions {
    /// Bytes of log lines kept per job (`[daemon] job_log_memory`); older lines go first.
    pub log_memory: usize,
    /// Finished jobs kept; older finished jobs are forgotten (the store keeps them).
    pub keep_finished: usize,
    /// What a finished job keeps of its log.
    pub finished_logs: FinishedLogs,
}

/// Whether a finished job keeps its log tail in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FinishedLogs {
    /// Kept (no store holds the log).
    #[default]
    Keep,
    /// Dropped once the job finishes: the store has the whole log.
    Drop,
}

impl Default for JobsOptions {
    fn default() -> Self {
        Self {
            log_memory: 1024 * 1024,
            keep_finished: 1000,
            finished_logs: FinishedLogs::Keep,
        }
    }
}

/// Bytes a kept line is counted for beyond its text (time, stream, allocation).
const LINE_OVERHEAD: usize = 48;

struct Entry {
    /// The job without its log (`log` stays empty here).
    snapshot: JobSnapshot,
    log: VecDeque<LogLine>,
    /// Bytes the lines in `log` are counted for.
    log_bytes: usize,
    state_tx: watch::Sender<JobState>,
}

impl Entry {
    fn new(mut snapshot: JobSnapshot, log_memory: usize) -> Self {
        let (state_tx, _) = watch::channel(snapshot.state);
        let lines = std::mem::take(&mut snapshot.log);
        let mut entry = Self {
            snapshot,
            log: VecDeque::new(),
            log_bytes: 0,
            state_tx,
        };
        for line in lines {
            entry.push_line(line, log_memory);
        }
        entry
    }

    /// Appends a line, dropping the oldest ones while the log is over `log_memory` bytes (a
    /// single line over it is cut to fit).
    fn push_line(&mut self, mut line: LogLine, log_memory: usize) {
        let budget = log_memory.saturating_sub(LINE_OVERHEAD).max(1);
        if line.line.len() > budget {
            let mut cut = budget;
            while !line.line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.line.truncate(cut);
        }
        self.log_bytes += line.line.len() + LINE_OVERHEAD;
        self.log.push_back(line);
        while self.log_bytes > log_memory.max(1) && self.log.len() > 1 {
            if let Some(old) = self.log.pop_front() {
                self.log_bytes -= old.line.len() + LINE_OVERHEAD;
            }
        }
    }
}

/// All jobs of this daemon run (the newest finished ones, and every unfinished one).
#[derive(Default)]
pub struct Jobs {
    inner: Mutex<Inner>,
    options: JobsOptions,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Entry>,
    /// Ids in creation order; ids of forgotten jobs are skipped and compacted away now and
    /// then.
    order: VecDeque<String>,
    /// Finished jobs' ids in the order they finished, oldest first.
    finished: VecDeque<String>,
}

impl Inner {
    /// Forgets the oldest finished jobs beyond `keep`.
    fn evict(&mut self, keep: usize) {
        while self.finished.len() > keep {
            if let Some(id) = self.finished.pop_front() {
                self.by_id.remove(&id);
            }
        }
        if self.order.len() > 2 * self.by_id.len() + 64 {
            let by_id = &self.by_id;
            self.order.retain(|id| by_id.contains_key(id));
        }
    }
}

impl Jobs {
    pub fn new(options: JobsOptions) -> Self {
        Self {
            inner: Mutex::default(),
            options,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers job `id`, queued.
    pub fn create(
        &self,
        id: String,
        host: &str,
        kind: JobKind,
        options: UpdateOptions,
        rollout_id: Option<String>,
    ) {
        let snapshot = JobSnapshot::queued(
            id.clone(),
            host.to_owned(),
            kind,
            options,
            rollout_id,
            Timestamp::now(),
        );
        let mut inner = self.lock();
        inner.order.push_back(id.clone());
        inner
            .by_id
            .insert(id, Entry::new(snapshot, self.options.log_memory));
    }

    /// Puts a job from a previous run back in the registry (recovery of interrupted jobs,
    /// whose outcome a later check may still collect from the host).
    pub fn restore(&self, snapshot: JobSnapshot) {
        let mut inner = self.lock();
        if inner.by_id.contains_key(&snapshot.id) {
            return;
        }
        inner.order.push_back(snapshot.id.clone());
        if snapshot.state.is_finished() {
            inner.finished.push_back(snapshot.id.clone());
        }
        inner.by_id.insert(
            snapshot.id.clone(),
            Entry::new(snapshot, self.options.log_memory),
        );
        inner.evict(self.options.keep_finished);
    }

    /// Applies `f` to the job's snapshot (no-op for unknown ids).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut JobSnapshot)) {
        let mut inner = self.lock();
        let Some(entry) = inner.by_id.get_mut(id) else {
            return;
        };
        let was_finished = entry.snapshot.state.is_finished();
        f(&mut entry.snapshot);
        let state = entry.snapshot.state;
        entry.state_tx.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        if state.is_finished() && !was_finished {
            if self.options.finished_logs == FinishedLogs::Drop {
                entry.log = VecDeque::new();
                entry.log_bytes = 0;
            }
            inner.finished.push_back(id.to_owned());
            inner.evict(self.options.keep_finished);
        }
    }

    pub fn set_running(&self, id: &str) {
        self.update(id, |job| {
            job.state = JobState::Running;
            job.started_at = Some(Timestamp::now());
        });
    }

    /// Marks the job finished with `state` and a summary.
    pub fn finish(&self, id: &str, state: JobState, summary: Option<String>) {
        self.update(id, |job| {
            job.state = state;
            job.summary = summary;
            job.finished_at = Some(Timestamp::now());
        });
    }

    /// Appends an output line logged at `time` (O(1): the oldest lines leave the ring).
    pub fn log(&self, id: &str, stream: OutputStream, time: Timestamp, line: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.by_id.get_mut(id) {
            entry.push_line(
                LogLine {
                    time,
                    stream,
                    line: line.to_owned(),
                },
                self.options.log_memory,
            );
        }
    }

    /// The job with the tail of its log kept in memory.
    pub fn get(&self, id: &str) -> Option<JobSnapshot> {
        self.lock().by_id.get(id).map(|entry| JobSnapshot {
            log: entry.log.iter().cloned().collect(),
            ..entry.snapshot.clone()
        })
    }

    /// The job without its log (what the store mirrors: lines are stored one by one).
    pub fn get_without_log(&self, id: &str) -> Option<JobSnapshot> {
        self.lock()
            .by_id
            .get(id)
            .map(|entry| entry.snapshot.clone())
    }

    /// Jobs, newest first, filtered by host and state (without their logs, which can be big).
    pub fn list(&self, host: Option<&str>, state: Option<JobState>) -> Vec<JobSnapshot> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.by_id.get(id))
            .map(|entry| &entry.snapshot)
            .filter(|job| host.is_none_or(|host| job.host == host))
            .filter(|job| state.is_none_or(|state| job.state == state))
            .cloned()
            .collect()
    }

    /// Follows the job's state; the receiver keeps the final state even after the registry
    /// has forgotten the job (`None` for unknown ids).
    pub fn watch(&self, id: &str) -> Option<watch::Receiver<JobState>> {
        Some(self.lock().by_id.get(id)?.state_tx.subscribe())
    }

    /// Waits until the job is finished; returns its final state (`None` for unknown ids).
    pub async fn wait_finished(&self, id: &str) -> Option<JobState> {
        let rx = self.watch(id)?;
        wait_finished(rx).await
    }

    /// Marks every unfinished job `interrupted` (daemon shutdown with jobs still running);
    /// returns their ids.
    pub fn interrupt_unfinished(&self) -> Vec<String> {
        let ids: Vec<String> = {
            let inner = self.lock();
            inner
                .by_id
                .values()
                .filter(|entry| !entry.snapshot.state.is_finished())
                .map(|entry| entry.snapshot.id.clone())
                .collect()
        };
        for id in &ids {
            self.finish(
                id,
                JobState::Interrupted,
                Some("the daemon stopped while the job ran".to_owned()),
            );
        }
        ids
    }
}

/// Waits until a watched job is finished; its final state.
pub async fn wait_finished(mut rx: watch::Receiver<JobState>) -> Option<JobState> {
    let state = *rx.wait_for(|state| state.is_finished()).await.ok()?;
    Some(state)
}

#[cfg(test)]
mod tests {
    use crate::events::OutputStream;
    use crate::jobs::{Jobs, JobsOptions, LINE_OVERHEAD};
    use crate::model::{JobState, UpdateOptions};
    use crate::state::JobKind;

    fn create(jobs: &Jobs, id: &str) {
        jobs.create(
            id.into(),
            "h",
            JobKind::Update,
            UpdateOptions::default(),
            None,
        );
    }

    /// The log in memory keeps the newest lines within `log_memory` bytes, however many lines
    /// come (a line bigger than the whole budget is cut to fit).
    #[test]
    fn the_log_keeps_the_newest_lines_within_its_byte_budget() {
        const LOG_MEMORY: usize = 64 * 1024;
        let jobs = Jobs::new(JobsOptions {
            log_memory: LOG_MEMORY,
            ..JobsOptions::default()
        });
        create(&jobs, "job-1");
        let line = "x".repeat(1000);
        let n_lines = 10_000;
        for n in 0..n_lines {
            jobs.log(
                "job-1",
                OutputStream::Stdout,
                jiff::Timestamp::now(),
                &format!("{n:05} {line}"),
            );
        }
        let job = jobs.get("job-1").unwrap();
        let n_bytes: usize = job.log.iter().map(|l| l.line.len() + LINE_OVERHEAD).sum();
        assert!(n_bytes <= LOG_MEMORY, "{n_bytes} bytes kept");
        assert!(n_bytes > LOG_MEMORY - 2 * (line.len() + LINE_OVERHEAD));
        assert!(
            job.log
                .last()
                .unwrap()
                .line
                .starts_with(&format!("{:05}", n_lines - 1))
        );
        let first: usize = job.log[0].line[..5].parse().unwrap();
        assert_eq!(first + job.log.len(), n_lines, "the newest lines, in order");
        assert!(jobs.get_without_log("job-1").unwrap().log.is_empty());
        assert!(jobs.list(None, None)[0].log.is_empty());

        jobs.log(
            "job-1",
            OutputStream::Stdout,
            jiff::Timestamp::now(),
            &"é".repeat(LOG_MEMORY),
        );
        let job = jobs.get("job-1").unwrap();
        assert_eq!(job.log.len(), 1);
        assert!(job.log[0].line.len() <= LOG_MEMORY);
    }

    /// Only the newest `keep_finished` finished jobs stay; unfinished ones always do, and a
    /// watcher still learns the final state of a job the registry forgot.
    #[tokio::test]
    async fn finished_jobs_beyond_keep_finished_are_forgotten() {
        let jobs = Jobs::new(JobsOptions {
            keep_finished: 3,
            ..JobsOptions::default()
        });
        create(&jobs, "running");
        jobs.set_running("running");
        create(&jobs, "watched");
        let watched = jobs.watch("watched").unwrap();
        jobs.finish("watched", JobState::Failed, None);
        for idx in 0..10 {
            let id = format!("job-{idx}");
            create(&jobs, &id);
            jobs.finish(&id, JobState::Succeeded, None);
        }
        let ids: Vec<String> = jobs.list(None, None).into_iter().map(|j| j.id).collect();
        assert_eq!(ids, ["job-9", "job-8", "job-7", "running"]);
        assert!(jobs.get("watched").is_none());
        assert_eq!(
            crate::jobs::wait_finished(watched).await,
            Some(JobState::Failed)
        );
    }

    #[tokio::test]
    async fn wait_finished_sees_the_final_state() {
        let jobs = std::sync::Arc::new(Jobs::default());
        let id = "job-1".to_owned();
        jobs.create(
            id.clone(),
            "h",
            JobKind::Check,
            UpdateOptions::default(),
            None,
        );
        let waiter = {
            let jobs = std::sync::Arc::clone(&jobs);
            let id = id.clone();
            tokio::spawn(async move { jobs.wait_finished(&id).await })
        };
        jobs.set_running(&id);
        jobs.finish(&id, JobState::Busy, None);
        assert_eq!(waiter.await.unwrap(), Some(JobState::Busy));
        assert_eq!(jobs.list(Some("h"), Some(JobState::Busy)).len(), 1);
        assert!(jobs.list(Some("other"), None).is_empty());
    }
}
