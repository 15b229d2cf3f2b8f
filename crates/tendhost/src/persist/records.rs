//! `Records`: what the HTTP handlers may ask of the state database, as domain values. Jobs and
//! events of earlier runs (decoded by `persist::codec`, then mapped to the wire by the same code
//! as this run's), and the runtime hosts registered through the API. The handlers never see
//! the store or its record types.

use std::fmt;

use jiff::Timestamp;
use serde_json::Value;
use tendhost_core::events::{Event, EventKind};
use tendhost_core::model::{JobSnapshot, JobState, LogLine, RolloutSnapshot, RolloutState};
use tendhost_core::state::JobKind;
use tendhost_store::{JobFilter, OutputLineRecord, Page, RuntimeHostRecord, Store, StoreError};

use crate::persist::codec;

/// Output lines read per request when loading a job's log.
const LOG_PAGE: u32 = 10_000;

/// Events read (and held) per page when replaying from disk.
pub const EVENT_PAGE: u32 = 500;

fn decode_rollout(record: &tendhost_store::RolloutRecord) -> Option<RolloutSnapshot> {
    let rollout = codec::rollout(record);
    if rollout.is_none() {
        tracing::warn!(rollout = %record.id, "stored rollout does not decode; left out");
    }
    rollout
}

/// Why the state database could not answer.
#[derive(Debug)]
pub enum RecordsError {
    /// The store failed or is closed.
    Unavailable(String),
    /// What is stored does not decode (the message names the record).
    Corrupt(String),
}

impl fmt::Display for RecordsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordsError::Unavailable(message) | RecordsError::Corrupt(message) => {
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for RecordsError {}

impl From<StoreError> for RecordsError {
    fn from(err: StoreError) -> Self {
        RecordsError::Unavailable(err.to_string())
    }
}

/// A host registered through the API, as kept across restarts. `definition` is the host's
/// whole definition as its registrar encoded it (the daemon rebuilds the host from it); the
/// other fields are kept beside it for people reading the database.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeHost {
    pub name: String,
    pub addr: String,
    /// 0 when the definition leaves the port to the defaults.
    pub port: u16,
    pub user: Option<String>,
    pub ssh_key: Option<String>,
    pub tags: Vec<String>,
    pub sudo: Option<bool>,
    pub definition: Value,
    pub added_at: Timestamp,
}

impl RuntimeHost {
    pub(crate) fn from_record(record: RuntimeHostRecord) -> Self {
        Self {
            name: record.name,
            addr: record.addr,
            port: record.port,
            user: record.user,
            ssh_key: record.ssh_key,
            tags: record.tags,
            sudo: record.sudo,
            definition: record.extra,
            added_at: codec::from_ms(record.added_at_ms),
        }
    }

    fn into_record(self) -> RuntimeHostRecord {
        RuntimeHostRecord {
            name: self.name,
            addr: self.addr,
            port: self.port,
            user: self.user,
            ssh_key: self.ssh_key,
            tags: self.tags,
            sudo: self.sudo,
            extra: self.definition,
            added_at_ms: codec::ms(self.added_at),
        }
    }
}

/// Which jobs `Records::jobs` lists; `None` does not filter.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub host: Option<String>,
    pub state: Option<JobState>,
    pub kind: Option<JobKind>,
}

/// The state database as the handlers see it (cheap to clone).
#[derive(Debug, Clone)]
pub struct Records {
    store: Store,
}

impl Records {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The `limit` most recent notification deliveries, newest first.
    pub async fn deliveries(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::persist::Delivery>, RecordsError> {
        let records = self.store.list_deliveries(limit).await?;
        Ok(records.into_iter().map(Into::into).collect())
    }

    /// A stored job with its whole stored log (at most `job_log_max` bytes and the marker
    /// line), `None` if unknown.
    pub async fn job(&self, id: &str) -> Result<Option<JobSnapshot>, RecordsError> {
        let Some(record) = self.store.job(id).await? else {
            return Ok(None);
        };
        let lines = self.output_lines(id).await?;
        codec::job(&record, lines)
            .map(Some)
            .map_err(RecordsError::Corrupt)
    }

    /// A job's whole stored log, with every line queued before this call.
    pub async fn job_log(&self, id: &str) -> Result<Vec<LogLine>, RecordsError> {
        Ok(codec::log_lines(self.output_lines(id).await?))
    }

    async fn output_lines(&self, id: &str) -> Result<Vec<OutputLineRecord>, RecordsError> {
        let mut lines = Vec::new();
        loop {
            let from = i64::try_from(lines.len()).unwrap_or(i64::MAX);
            let page = self.store.job_output(id, from, LOG_PAGE).await?;
            let n = page.len();
            lines.extend(page);
            if n < LOG_PAGE as usize {
                return Ok(lines);
            }
        }
    }

    /// One page of the stored jobs matching `query`, newest first, without their logs, and how
    /// many match in all. A job that does not decode is left out (and logged).
    pub async fn jobs(
        &self,
        query: JobQuery,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<JobSnapshot>, u64), RecordsError> {
        let filter = JobFilter {
            host: query.host,
            state: query.state.map(|state| state.as_str().to_owned()),
            kind: query.kind.map(|kind| kind.as_str().to_owned()),
        };
        let listed = self.store.list_jobs(filter, Page { offset, limit }).await?;
        let jobs = listed
            .items
            .iter()
            .filter_map(|record| {
                codec::job(record, Vec::new())
                    .inspect_err(|err| tracing::warn!(%err, "stored job left out of the list"))
                    .ok()
            })
            .collect();
        Ok((jobs, listed.total))
    }

    /// A stored rollout, `None` if unknown (or if it does not decode, logged).
    pub async fn rollout(&self, id: &str) -> Result<Option<RolloutSnapshot>, RecordsError> {
        let record = self.store.rollout(id).await?;
        Ok(record.as_ref().and_then(decode_rollout))
    }

    /// One page of the stored rollouts in `state` (all for `None`), newest first, and how
    /// many match in all. One that does not decode is left out (logged).
    pub async fn rollouts(
        &self,
        state: Option<RolloutState>,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<RolloutSnapshot>, u64), RecordsError> {
        let listed = self
            .store
            .list_rollouts_in(
                state.map(|state| state.as_str().to_owned()),
                Page { offset, limit },
            )
            .await?;
        let rollouts = listed.items.iter().filter_map(decode_rollout).collect();
        Ok((rollouts, listed.total))
    }

    /// The oldest `seq` still stored (`None` when the log is empty).
    pub async fn oldest_event_seq(&self) -> Result<Option<u64>, RecordsError> {
        let seq = self.store.oldest_event_seq().await?;
        Ok(seq.and_then(|seq| u64::try_from(seq).ok()))
    }

    /// One page of stored events: those with `after < seq < before`, oldest first, at most
    /// [`EVENT_PAGE`] read, the ones `keep` accepts. Also the seq to read on from, or `None`
    /// when nothing more is below `before`. A store failure ends the replay (logged); an event
    /// that does not decode is skipped (logged).
    pub async fn events_page(
        &self,
        after: u64,
        before: u64,
        keep: impl Fn(&EventKind) -> bool,
    ) -> (Vec<Event>, Option<u64>) {
        let from = i64::try_from(after).unwrap_or(i64::MAX);
        let page = match self.store.events_after(from, EVENT_PAGE).await {
            Ok(page) => page,
            Err(err) => {
                tracing::warn!(%err, "replay from the state database stopped");
                return (Vec::new(), None);
            }
        };
        let full = page.len() == EVENT_PAGE as usize;
        let mut events = Vec::new();
        let mut last = after;
        for record in page {
            let Ok(seq) = u64::try_from(record.seq) else {
                continue;
            };
            if seq >= before {
                return (events, None);
            }
            last = seq;
            let Some(kind) = codec::event_kind(&record) else {
                tracing::warn!(seq, kind = %record.kind, "stored event does not decode; skipped");
                continue;
            };
            if keep(&kind) {
                events.push(Event {
                    seq,
                    time: codec::from_ms(record.time_ms),
                    kind,
                });
            }
        }
        (events, full.then_some(last))
    }

    /// Keeps a host registered through the API (an existing name is an error).
    pub async fn add_runtime_host(&self, host: RuntimeHost) -> Result<(), RecordsError> {
        Ok(self.store.add_runtime_host(host.into_record()).await?)
    }

    /// Forgets a runtime host; `false` if it was not stored.
    pub async fn remove_runtime_host(&self, name: &str) -> Result<bool, RecordsError> {
        Ok(self.store.remove_runtime_host(name).await?)
    }
}
