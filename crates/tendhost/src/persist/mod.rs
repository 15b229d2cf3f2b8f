//! The bridge between the fleet and the SQLite store: `StoreBridge` implements the core's
//! `Persistence` hook (host status, jobs, rollouts, output lines, all queued in order on the
//! store's writer) and `EventTransport` (the store numbers and commits every event, then its
//! sink delivers it to the bus: no client sees an event a crash could lose, and `seq` is never
//! reused). Also: start-up recovery (`recover`) and the daily retention task.
//!
//! `codec` is the stored format (domain values to store records and back); `records` is the
//! read side the HTTP handlers get (`Records`). Nothing here knows the HTTP layer or the wire
//! types: handlers map what `Records` returns with the same code as this run's values.

mod codec;
mod notify;
mod records;
pub mod schedules;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use tendhost_core::Persistence;
use tendhost_core::events::{Event, EventBus, EventKind, EventTransport, OutputStream};
use tendhost_core::model::{HostStatus, LostJob};
use tendhost_core::model::{JobSnapshot, RolloutSnapshot};
use tendhost_core::state::JobKind;
use tendhost_store::{EventRecord, NewEvent, Store};

pub use crate::persist::notify::{Delivery, DeliveryLogStore};
pub use crate::persist::records::{EVENT_PAGE, JobQuery, Records, RecordsError, RuntimeHost};

fn now_ms() -> i64 {
    codec::ms(jiff::Timestamp::now())
}

/// Fleet -> store.
pub struct StoreBridge {
    store: Store,
    next_n: AtomicU64,
    /// Submitted events waiting for their commit, by correlation number.
    pending: Mutex<HashMap<u64, EventKind>>,
    bus: OnceLock<EventBus>,
}

impl StoreBridge {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            next_n: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            bus: OnceLock::new(),
        })
    }

    /// Makes the store deliver committed events to `bus` (call once, before events flow).
    pub fn connect(self: &Arc<Self>, bus: &EventBus) -> tendhost_store::Result<()> {
        let _ = self.bus.set(bus.clone());
        let bridge = Arc::clone(self);
        self.store
            .set_event_sink(Box::new(move |record: &EventRecord, n: u64| {
                bridge.committed(record, n);
            }))
    }

    fn committed(&self, record: &EventRecord, n: u64) {
        let kind = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&n);
        if let (Some(kind), Some(bus), Ok(seq)) = (kind, self.bus.get(), u64::try_from(record.seq))
        {
            bus.deliver(Event {
                seq,
                time: codec::from_ms(record.time_ms),
                kind,
            });
        }
    }
}

impl EventTransport for StoreBridge {
    fn submit(&self, kind: EventKind) {
        let n = self.next_n.fetch_add(1, Ordering::Relaxed);
        let event = NewEvent {
            time_ms: now_ms(),
            kind: kind.type_name().to_owned(),
            host: kind.host().map(str::to_owned),
            body: codec::event_body(&kind),
            correlation: n,
        };
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(n, kind);
        if let Err(err) = self.store.post_event(event) {
            // The store is closed (shutdown): the event cannot be made durable; drop it.
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&n);
            tracing::debug!(%err, "event dropped: store closed");
        }
    }
}

impl Persistence for StoreBridge {
    fn host_changed(&self, name: &str, status: &HostStatus) {
        let record = codec::host_status_record(name, status, now_ms());
        if let Err(err) = self.store.post_host_status(record) {
            tracing::warn!(host = %name, %err, "host status not stored");
        }
    }

    fn job_changed(&self, job: &JobSnapshot) {
        if let Err(err) = self.store.post_job(codec::job_record(job)) {
            tracing::warn!(job = %job.id, %err, "job not stored");
        }
    }

    fn rollout_changed(&self, rollout: &RolloutSnapshot) {
        if let Err(err) = self
            .store
            .post_rollout(codec::rollout_record(rollout, now_ms()))
        {
            tracing::warn!(rollout = %rollout.id, %err, "rollout not stored");
        }
    }

    fn job_output(&self, job_id: &str, stream: OutputStream, time: Timestamp, line: &str) {
        let _ = self.store.log_line(
            job_id,
            codec::stream_name(stream),
            time.as_millisecond(),
            line,
        );
    }

    fn room(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async {
            // A closed store (shutdown) has no queue to wait for.
            let _ = self.store.room().await;
        })
    }
}

// ---- start-up recovery and retention ----------------------------------------------------

/// What the previous run left, ready for `Fleet::start_with`.
#[derive(Default)]
pub struct Recovered {
    pub statuses: HashMap<String, HostStatus>,
    pub runtime_hosts: Vec<RuntimeHost>,
    /// Jobs that were running when the daemon stopped, now `interrupted`.
    pub interrupted_jobs: Vec<JobSnapshot>,
    pub rollouts: Vec<RolloutSnapshot>,
    /// Hosts to re-check at once (their job was interrupted).
    pub recheck: Vec<String>,
}

/// Marks what was running as `interrupted` and reads back hosts, statuses and rollouts.
/// An interrupted update leaves its host with a `lost_job`, so the re-check collects the
/// real outcome from the host's job directory when the upgrade finished there.
pub async fn recover(store: &Store) -> tendhost_store::Result<Recovered> {
    let now = now_ms();
    let interrupted = store.mark_running_interrupted(now).await?;
    let n_rollouts = store.mark_rollouts_interrupted(now).await?.len();
    let mut recovered = Recovered {
        runtime_hosts: store
            .runtime_hosts()
            .await?
            .into_iter()
            .map(RuntimeHost::from_record)
            .collect(),
        ..Recovered::default()
    };
    for record in store.host_statuses().await? {
        let name = record.name.clone();
        recovered.statuses.insert(name, codec::host_status(record));
    }
    for record in &interrupted {
        let Some(job) = codec::interrupted_job(record) else {
            continue;
        };
        if job.kind == JobKind::Update && !job.options.dry_run {
            let status = recovered.statuses.entry(job.host.clone()).or_default();
            status.lost_job = Some(LostJob {
                job_id: job.id.clone(),
                log_offset: 0,
            });
        }
        if !recovered.recheck.contains(&job.host) {
            recovered.recheck.push(job.host.clone());
        }
        recovered.interrupted_jobs.push(job);
    }
    let mut offset = 0;
    loop {
        let page = store
            .list_rollouts(tendhost_store::Page { offset, limit: 500 })
            .await?;
        let n = u32::try_from(page.items.len()).unwrap_or(u32::MAX);
        recovered
            .rollouts
            .extend(page.items.iter().filter_map(codec::rollout));
        if n < 500 {
            break;
        }
        offset += n;
    }
    recovered.rollouts.sort_by_key(|r| r.created_at);
    if !interrupted.is_empty() || n_rollouts > 0 {
        tracing::warn!(
            n_jobs = interrupted.len(),
            n_rollouts,
            "jobs and rollouts that were running when the daemon stopped are now interrupted"
        );
    }
    Ok(recovered)
}

/// Prunes finished jobs and events older than `retention_days`, now and then daily.
pub async fn retention(store: Store, retention_days: u32) {
    let keep = Duration::from_secs(u64::from(retention_days) * 24 * 60 * 60);
    let mut tick = tokio::time::interval(Duration::from_secs(24 * 60 * 60));
    loop {
        tick.tick().await;
        let cutoff = now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
        match store.prune(cutoff).await {
            Ok(pruned) => tracing::info!(
                jobs = pruned.jobs,
                output_lines = pruned.output_lines,
                events = pruned.events,
                rollouts = pruned.rollouts,
                retention_days,
                "pruned old jobs and events"
            ),
            Err(err) => tracing::warn!(%err, "pruning old jobs and events failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tendhost_core::events::EventTransport;
    use tendhost_core::testing::{event_bus, publish, set_transport};
    use tendhost_store::Store;

    use crate::persist::StoreBridge;

    /// Events go through the store and reach the bus committed, each with its stored `seq`;
    /// the correlation between what was submitted and what was committed travels beside the
    /// event, so stored bodies hold the event's fields only.
    #[tokio::test]
    async fn committed_events_reach_the_bus_and_bodies_hold_no_correlation_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bridge = StoreBridge::new(store.clone());
        let bus = event_bus(1, 100, 100);
        bridge.connect(&bus).unwrap();
        set_transport(&bus, Arc::clone(&bridge) as Arc<dyn EventTransport>);
        let (_, mut live) = bus.subscribe_since(None);
        let kinds = crate::testing::one_of_each();
        for kind in &kinds {
            publish(&bus, kind.clone());
        }
        for (seq, kind) in (1..).zip(&kinds) {
            let event = live.recv().await.unwrap();
            assert_eq!((event.seq, &event.kind), (seq, kind));
        }
        let stored = store.events_after(0, 100).await.unwrap();
        assert_eq!(stored.len(), kinds.len());
        for (record, kind) in stored.iter().zip(&kinds) {
            assert_eq!(record.kind, kind.type_name());
            let fields = record.body.as_object().unwrap();
            assert!(!fields.contains_key("_n"), "{}", record.body);
            assert_eq!(
                crate::persist::codec::event_kind(record).as_ref(),
                Some(kind)
            );
        }
        drop(bridge);
        store.close().await.unwrap();
    }
}
