//! The job registry: every job's snapshot and log, and a way to wait for a job to finish.
//! Shared by host actors (which write) and the fleet facade (which reads). The registry is the
//! source of truth while the daemon runs; the store (when configured) mirrors it. Ids come from
//! `ids`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use jiff::Timestamp;
use tokio::sync::watch;

use crate::events::OutputStream;
use crate::model::{JobSnapshot, JobState, LogLine, MAX_LOG_LINES, UpdateOptions};
use crate::state::JobKind;

struct Entry {
    /// The job without its log (`log` stays empty here).
    snapshot: JobSnapshot,
    log: VecDeque<LogLine>,
    state_tx: watch::Sender<JobState>,
    dropped_lines: usize,
}

impl Entry {
    fn new(mut snapshot: JobSnapshot) -> Self {
        let log = std::mem::take(&mut snapshot.log).into();
        let (state_tx, _) = watch::channel(snapshot.state);
        Self {
            snapshot,
            log,
            state_tx,
            dropped_lines: 0,
        }
    }
}

/// All jobs of this daemon run.
#[derive(Default)]
pub struct Jobs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_id: HashMap<String, Entry>,
    /// Ids in creation order.
    order: Vec<String>,
}

impl Jobs {
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
        inner.order.push(id.clone());
        inner.by_id.insert(id, Entry::new(snapshot));
    }

    /// Puts a job from a previous run back in the registry (recovery of interrupted jobs,
    /// whose outcome a later check may still collect from the host).
    pub fn restore(&self, snapshot: JobSnapshot) {
        let mut inner = self.lock();
        if inner.by_id.contains_key(&snapshot.id) {
            return;
        }
        inner.order.push(snapshot.id.clone());
        inner
            .by_id
            .insert(snapshot.id.clone(), Entry::new(snapshot));
    }

    /// Applies `f` to the job's snapshot (no-op for unknown ids).
    pub fn update(&self, id: &str, f: impl FnOnce(&mut JobSnapshot)) {
        let mut inner = self.lock();
        if let Some(entry) = inner.by_id.get_mut(id) {
            f(&mut entry.snapshot);
            let state = entry.snapshot.state;
            entry.state_tx.send_if_modified(|current| {
                let changed = *current != state;
                *current = state;
                changed
            });
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

    /// Appends an output line logged at `time`.
    pub fn log(&self, id: &str, stream: OutputStream, time: Timestamp, line: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.by_id.get_mut(id) {
            if entry.log.len() >= MAX_LOG_LINES {
                entry.log.pop_front();
                entry.dropped_lines += 1;
            }
            entry.log.push_back(LogLine {
                time,
                stream,
                line: line.to_owned(),
            });
        }
    }

    /// The job with its log.
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

    /// Waits until the job is finished; returns its final state (`None` for unknown ids).
    pub async fn wait_finished(&self, id: &str) -> Option<JobState> {
        let mut rx = self.lock().by_id.get(id)?.state_tx.subscribe();
        let state = *rx.wait_for(|state| state.is_finished()).await.ok()?;
        Some(state)
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

#[cfg(test)]
mod tests {
    use crate::events::OutputStream;
    use crate::jobs::Jobs;
    use crate::model::{JobState, MAX_LOG_LINES, UpdateOptions};
    use crate::state::JobKind;

    #[test]
    fn the_log_keeps_the_newest_lines() {
        let jobs = Jobs::default();
        jobs.create(
            "job-1".into(),
            "h",
            JobKind::Update,
            UpdateOptions::default(),
            None,
        );
        for n in 0..=MAX_LOG_LINES {
            jobs.log(
                "job-1",
                OutputStream::Stdout,
                jiff::Timestamp::now(),
                &n.to_string(),
            );
        }
        let job = jobs.get("job-1").unwrap();
        assert_eq!(job.log.len(), MAX_LOG_LINES);
        assert_eq!(job.log[0].line, "1");
        assert_eq!(job.log.last().unwrap().line, MAX_LOG_LINES.to_string());
        assert!(jobs.get_without_log("job-1").unwrap().log.is_empty());
        assert!(jobs.list(None, None)[0].log.is_empty());
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
