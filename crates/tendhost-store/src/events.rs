//! The event log: appending with the next `seq` (committed before it is announced), posting
//! without waiting, the committed-event sink, and reading back for WebSocket replay. `seq` is
//! handed out only by the writer thread, from `max(seq)` or the prune floor found at open, so
//! it never repeats, across restarts and crashes alike.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::Result;
use crate::records::{EventRecord, NewEvent};
use crate::sql::{count, json_column, json_text};
use crate::{Op, Store};

/// Called on the writer thread with every committed event, in `seq` order, once each, with the
/// correlation number it was submitted with ([`NewEvent::correlation`]).
///
/// It must not block nor panic (a panic stops the store): forward the event, e.g. with a
/// `tokio::sync::broadcast::Sender::send`, and return.
pub type EventSink = Box<dyn FnMut(&EventRecord, u64) + Send>;

/// `store_meta` key: every `seq` up to this value has been used (kept when pruning).
const SEQ_FLOOR: &str = "seq_floor";

pub(crate) fn insert(conn: &Connection, event: &EventRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (seq, time_ms, type, host, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        event.seq,
        event.time_ms,
        event.kind,
        event.host,
        json_text(&event.body)
    ])?;
    Ok(())
}

/// The first `seq` to hand out in this run.
pub(crate) fn initial_next_seq(conn: &Connection) -> rusqlite::Result<i64> {
    let max_seq: i64 = conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |row| {
        row.get(0)
    })?;
    let floor: i64 = conn
        .query_row(
            "SELECT value FROM store_meta WHERE key = ?1",
            [SEQ_FLOOR],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    Ok(max_seq.max(floor) + 1)
}

/// Deletes events older than `older_than_ms`, first recording `last_seq` as the floor.
pub(crate) fn prune(conn: &Connection, older_than_ms: i64, last_seq: i64) -> Result<u64> {
    conn.execute(
        "INSERT INTO store_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = MAX(value, excluded.value)",
        params![SEQ_FLOOR, last_seq],
    )?;
    let n_deleted = conn.execute("DELETE FROM events WHERE time_ms < ?1", [older_than_ms])?;
    Ok(count(n_deleted))
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        seq: row.get(0)?,
        time_ms: row.get(1)?,
        kind: row.get(2)?,
        host: row.get(3)?,
        body: json_column(row, 4)?,
    })
}

impl Store {
    /// Stores `event` with the next `seq` and returns it once committed, so the caller can
    /// announce it knowing a crash cannot lose it (nor reuse its `seq`).
    ///
    /// Concurrent callers each get a distinct `seq`, but their awaits may finish in any order:
    /// to announce in `seq` order, use the [`EventSink`] (see [`Store::set_event_sink`]).
    pub async fn append_event(&self, event: NewEvent) -> Result<EventRecord> {
        self.call(move |writer| writer.append_event(event)).await
    }

    /// Queues `event` without waiting (for high-rate events such as output lines). It gets its
    /// `seq` on the writer thread and reaches the sink after its commit; a failure is logged.
    pub fn post_event(&self, event: NewEvent) -> Result<()> {
        self.send(Op::Event(event))
    }

    /// From the next commit on, hands every committed event (appended or posted) to `sink`,
    /// on the writer thread, in `seq` order, exactly once, after its commit. Replaces any
    /// previous sink. Takes effect in order with other requests: events sent after this call
    /// all reach the sink.
    pub fn set_event_sink(&self, sink: EventSink) -> Result<()> {
        self.send(Op::SetSink(sink))
    }

    /// Up to `limit` committed events with `seq > after_seq`, oldest first.
    pub async fn events_after(&self, after_seq: i64, limit: u32) -> Result<Vec<EventRecord>> {
        self.read_committed(move |conn: &Connection| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, time_ms, type, host, body FROM events
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let events = stmt
                .query_map(params![after_seq, limit], event_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(events)
        })
        .await
    }

    /// The oldest `seq` still stored (`None` when the log is empty): replay from before it is
    /// a gap.
    pub async fn oldest_event_seq(&self) -> Result<Option<i64>> {
        self.read_committed(move |conn: &Connection| {
            let seq = conn.query_row("SELECT MIN(seq) FROM events", [], |row| row.get(0))?;
            Ok(seq)
        })
        .await
    }

    /// The `seq` the next event will get (1 on a new database).
    pub async fn next_seq(&self) -> Result<i64> {
        self.call(|writer| Ok(writer.next_seq())).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use crate::Store;
    use crate::records::{EventRecord, NewEvent};

    fn event(kind: &str, host: Option<&str>, body: serde_json::Value) -> NewEvent {
        NewEvent {
            time_ms: 1_700_000_000_000,
            kind: kind.to_owned(),
            host: host.map(str::to_owned),
            body,
            correlation: 0,
        }
    }

    #[tokio::test]
    async fn events_round_trip_and_seq_continues_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.next_seq().await.unwrap(), 1);
        assert_eq!(store.oldest_event_seq().await.unwrap(), None);
        let first = store
            .append_event(event(
                "host_state_changed",
                Some("web-1"),
                json!({"from": "idle", "to": "querying"}),
            ))
            .await
            .unwrap();
        let second = store
            .append_event(event("rollout_started", None, json!({"rollout_id": "r1"})))
            .await
            .unwrap();
        assert_eq!((first.seq, second.seq), (1, 2));
        assert_eq!(
            store.events_after(0, 10).await.unwrap(),
            vec![first.clone(), second.clone()]
        );
        assert_eq!(
            store.events_after(1, 10).await.unwrap(),
            vec![second.clone()]
        );
        assert_eq!(store.events_after(0, 1).await.unwrap(), vec![first.clone()]);
        assert!(store.events_after(2, 10).await.unwrap().is_empty());
        store.close().await.unwrap();

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.oldest_event_seq().await.unwrap(), Some(1));
        assert_eq!(store.next_seq().await.unwrap(), 3);
        let third = store
            .append_event(event("host_added", Some("web-2"), json!({})))
            .await
            .unwrap();
        assert_eq!(third.seq, 3);
        assert_eq!(
            store.events_after(0, 10).await.unwrap(),
            vec![first, second, third]
        );
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn sink_sees_every_committed_event_once_in_seq_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let seen: Arc<Mutex<Vec<EventRecord>>> = Arc::default();
        let sink_seen = Arc::clone(&seen);
        store
            .set_event_sink(Box::new(move |event, _correlation| {
                sink_seen.lock().unwrap().push(event.clone());
            }))
            .unwrap();

        let n_posted = 500;
        for line_idx in 0..n_posted {
            store
                .post_event(event(
                    "job_output",
                    Some("web-1"),
                    json!({"line": line_idx}),
                ))
                .unwrap();
        }
        // Appends racing each other and the posted events.
        let appends = (0..20).map(|append_idx| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append_event(event("job_started", None, json!({"n": append_idx})))
                    .await
                    .unwrap()
            })
        });
        let mut appended = Vec::new();
        for append in appends {
            appended.push(append.await.unwrap());
        }
        store.flush().await.unwrap();

        let seen = seen.lock().unwrap().clone();
        let seqs: Vec<i64> = seen.iter().map(|event| event.seq).collect();
        assert_eq!(seqs, (1..=n_posted + 20).collect::<Vec<_>>());
        // What the sink saw is what is stored.
        assert_eq!(store.events_after(0, 1000).await.unwrap(), seen);
        for record in appended {
            assert!(
                seen.contains(&record),
                "appended {record:?} reached the sink"
            );
        }
        store.close().await.unwrap();
    }
}
