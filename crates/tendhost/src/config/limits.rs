//! `[daemon]` keys that bound memory: the job log kept in memory and in the store, finished
//! jobs and rollouts kept in memory, the store's write queue and the number of WebSocket clients. Each is an
//! integer in a range; a value outside it is a `file:line:col` error naming the key.

use toml::Spanned;

use crate::config::Validator;

/// What the daemon keeps, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a job's log kept in memory (its tail; the store has the rest).
    pub job_log_memory: usize,
    /// Bytes of a job's log kept in the store; a marker line replaces what comes after.
    pub job_log_max: u64,
    /// Finished jobs kept in memory (older ones are read from the store).
    pub keep_finished_jobs: usize,
    /// Finished rollouts kept in memory (older ones are read from the store).
    pub keep_finished_rollouts: usize,
    /// Requests the store's write queue holds before producers wait.
    pub store_queue: usize,
    /// WebSocket clients at once; one more gets 503 `too_many_clients`.
    pub max_ws_clients: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            job_log_memory: 1024 * 1024,
            job_log_max: 64 * 1024 * 1024,
            keep_finished_jobs: 1000,
            keep_finished_rollouts: 100,
            store_queue: 4096,
            max_ws_clients: 1000,
        }
    }
}

/// The `[daemon]` keys of [`Limits`], as written.
#[derive(Debug, Default)]
pub(crate) struct RawLimits<'a> {
    pub job_log_memory: Option<&'a Spanned<i64>>,
    pub job_log_max: Option<&'a Spanned<i64>>,
    pub keep_finished_jobs: Option<&'a Spanned<i64>>,
    pub keep_finished_rollouts: Option<&'a Spanned<i64>>,
    pub store_queue: Option<&'a Spanned<i64>>,
    pub max_ws_clients: Option<&'a Spanned<i64>>,
}

const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;
const GIB: i64 = 1024 * MIB;

impl Validator<'_> {
    pub(crate) fn limits(&mut self, raw: &RawLimits<'_>) -> Limits {
        let base = Limits::default();
        let mut get = |value: Option<&Spanned<i64>>, min: i64, max: i64, key: &str, default| {
            value
                .and_then(|value| self.int_in_range(value, min, max, key))
                .unwrap_or(default)
        };
        let job_log_memory = get(
            raw.job_log_memory,
            4 * KIB,
            256 * MIB,
            "job_log_memory",
            usize_i64(base.job_log_memory),
        );
        let job_log_max = get(
            raw.job_log_max,
            4 * KIB,
            16 * GIB,
            "job_log_max",
            i64::try_from(base.job_log_max).unwrap_or(i64::MAX),
        );
        let keep_finished_jobs = get(
            raw.keep_finished_jobs,
            1,
            1_000_000,
            "keep_finished_jobs",
            usize_i64(base.keep_finished_jobs),
        );
        let keep_finished_rollouts = get(
            raw.keep_finished_rollouts,
            1,
            100_000,
            "keep_finished_rollouts",
            usize_i64(base.keep_finished_rollouts),
        );
        let store_queue = get(
            raw.store_queue,
            16,
            1_000_000,
            "store_queue",
            usize_i64(base.store_queue),
        );
        let max_ws_clients = get(
            raw.max_ws_clients,
            1,
            1_000_000,
            "max_ws_clients",
            usize_i64(base.max_ws_clients),
        );
        Limits {
            job_log_memory: usize::try_from(job_log_memory).unwrap_or(base.job_log_memory),
            job_log_max: u64::try_from(job_log_max).unwrap_or(base.job_log_max),
            keep_finished_jobs: usize::try_from(keep_finished_jobs)
                .unwrap_or(base.keep_finished_jobs),
            keep_finished_rollouts: usize::try_from(keep_finished_rollouts)
                .unwrap_or(base.keep_finished_rollouts),
            store_queue: usize::try_from(store_queue).unwrap_or(base.store_queue),
            max_ws_clients: usize::try_from(max_ws_clients).unwrap_or(base.max_ws_clients),
        }
    }
}

fn usize_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
