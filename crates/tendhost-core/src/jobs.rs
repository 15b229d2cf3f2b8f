//! The job registry: every job's snapshot and log, and a way to wait for a job to finish.
//! Shared by host actors (which write) and the API (which reads). The registry is the source
//! of truth while the daemon runs; the store (when configured) mirrors it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use tokio::sync::watch;

use crate::events::OutputStream;
use crate::model::{JobSnapshot, JobState, LogLine, UpdateOptions};
use crate::state::JobKind;

/// In-memory log lines kept per job (older lines are dropped, with a marker).
pub const MAX_LOG_LINES: usize = 50_000;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new id: `prefix` + milliseconds since the epoch + a process-wide counter, so ids sort by
/// creation time and never repeat across restarts.
pub fn new_id(prefix: &str) -> String {
    let millis = Timestamp::now().as_millisecond();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{millis:x}-{n}")
}

impl JobSnapshot {
    /// A job just registered: `queued`, nothing run, no outcome, no log.
    pub fn queued(
        id: String,
        host: String,
        kind: JobKind,
        options: UpdateOptions,
        rollout_id: Option<String>,
        created_at: Timestamp,
    ) -> Self {
        Self {
            id,
            host,
            kind,
            state: JobState::Queued,
            options,
            rollout_id,
            created_at,
            started_at: None,
            finished_at: None,
            summary: None,
            exit_code: None,
            packages_changed: Vec::new(),
            packages_failed: Vec::new(),
            pending: Vec::new(),
            commands: Vec::new(),
            log: Vec::new(),
        }
    }
}

struct Entry {
    snapshot: JobSnapshot,
    state_tx: watch::Sender<JobState>,
    dropped_lines: usize,
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

    /// Registers a queued job and returns its id.
    pub fn create(
        &self,
        host: &str,
        kind: JobKind,
        options: UpdateOptions,
        rollout_id: Option<String>,
    ) -> String {
        let id = new_id("job");
        let snapshot = JobSnapshot::queued(
            id.clone(),
            host.to_owned(),
            kind,
            options,
            rollout_id,
            Timestamp::now(),
        );
        let (state_tx, _) = watch::channel(JobState::Queued);
        let mut inner = self.lock();
        inner.order.push(id.clone());
        inner.by_id.insert(
            id.clone(),
            Entry {
                snapshot,
                state_tx,
                dropped_lines: 0,
            },
        );
        id
    }

    /// Puts a job from a previous run back in the registry (recovery of interrupted jobs,
    /// whose outcome a later check may still collect from the host).
    pub fn restore(&self, snapshot: JobSnapshot) {
        let (state_tx, _) = watch::channel(snapshot.state);
        let mut inner = self.lock();
        if inner.by_id.contains_key(&snapshot.id) {
            return;
        }
        inner.order.push(snapshot.id.clone());
        inner.by_id.insert(
            snapshot.id.clone(),
            Entry {
                snapshot,
                state_tx,
                dropped_lines: 0,
            },
        );
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

    /// Appends an output line.
    pub fn log(&self, id: &str, stream: OutputStream, line: &str) {
        let mut inner = self.lock();
        if let Some(entry) = inner.by_id.get_mut(id) {
            if entry.snapshot.log.len() >= MAX_LOG_LINES {
                entry.snapshot.log.remove(0);
                entry.dropped_lines += 1;
            }
            entry.snapshot.log.push(LogLine {
                time: Timestamp::now(),
                stream,
                line: line.to_owned(),
            });
        }
    }

    pub fn get(&self, id: &str) -> Option<JobSnapshot> {
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
            .map(|job| JobSnapshot {
                log: Vec::new(),
                ..job.clone()
            })
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
    use crate::jobs::{Jobs, new_id};
    use crate::model::{JobState, UpdateOptions};
    use crate::state::JobKind;

    #[test]
    fn ids_are_unique() {
        let a = new_id("job");
        let b = new_id("job");
        assert_ne!(a, b);
        assert!(a.starts_with("job-"));
    }

    #[tokio::test]
    async fn wait_finished_sees_the_final_state() {
        let jobs = std::sync::Arc::new(Jobs::default());
        let id = jobs.create("h", JobKind::Check, UpdateOptions::default(), None);
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
