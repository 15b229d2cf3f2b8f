//! Fleet rollouts: the rollout row with its parameters and state, its batches, and each host's
//! status within it; plus recovery of rollouts a stopped daemon left `running` (they become
//! `interrupted` and are never resumed by the store). Choosing targets and running batches is
//! the core crate's business.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::records::{
    Listed, Page, RolloutBatchRecord, RolloutHostRecord, RolloutRecord, rollout_state,
};
use crate::sql::{count, json_column, json_text, total};

const ROLLOUT_COLUMNS: &str = "id, params, state, created_at_ms, started_at_ms, finished_at_ms";

/// Reads a rollout row; batches and hosts are filled in by `complete`.
fn rollout_from_row(row: &Row<'_>) -> rusqlite::Result<RolloutRecord> {
    Ok(RolloutRecord {
        id: row.get(0)?,
        params: json_column(row, 1)?,
        state: row.get(2)?,
        created_at_ms: row.get(3)?,
        started_at_ms: row.get(4)?,
        finished_at_ms: row.get(5)?,
        batches: Vec::new(),
        hosts: Vec::new(),
    })
}

/// Fills in the batches and hosts of a rollout read by `rollout_from_row`.
fn complete(conn: &Connection, mut rollout: RolloutRecord) -> Result<RolloutRecord> {
    rollout.batches = conn
        .prepare_cached(
            "SELECT idx, state, started_at_ms, finished_at_ms FROM rollout_batches
             WHERE rollout_id = ?1 ORDER BY idx",
        )?
        .query_map([&rollout.id], |row| {
            Ok(RolloutBatchRecord {
                idx: row.get(0)?,
                state: row.get(1)?,
                started_at_ms: row.get(2)?,
                finished_at_ms: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rollout.hosts = conn
        .prepare_cached(
            "SELECT host, batch_idx, state, job_id, detail, updated_at_ms FROM rollout_hosts
             WHERE rollout_id = ?1 ORDER BY position",
        )?
        .query_map([&rollout.id], |row| {
            Ok(RolloutHostRecord {
                host: row.get(0)?,
                batch_idx: row.get(1)?,
                state: row.get(2)?,
                job_id: row.get(3)?,
                detail: json_column(row, 4)?,
                updated_at_ms: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rollout)
}

fn get(conn: &Connection, id: &str) -> Result<Option<RolloutRecord>> {
    let rollout = conn
        .query_row(
            &format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = ?1"),
            [id],
            rollout_from_row,
        )
        .optional()?;
    rollout.map(|rollout| complete(conn, rollout)).transpose()
}

fn require(conn: &Connection, id: &str) -> Result<()> {
    let exists = conn
        .query_row("SELECT 1 FROM rollouts WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some();
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound {
            what: "rollout",
            key: id.to_owned(),
        })
    }
}

fn put_batch(conn: &Connection, rollout_id: &str, batch: &RolloutBatchRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO rollout_batches
             (rollout_id, idx, state, started_at_ms, finished_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        rollout_id,
        batch.idx,
        batch.state,
        batch.started_at_ms,
        batch.finished_at_ms
    ])?;
    Ok(())
}

/// Inserts or updates a host's row; a new host goes after the rollout's existing ones.
fn put_host(conn: &Connection, rollout_id: &str, host: &RolloutHostRecord) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO rollout_hosts
             (rollout_id, host, position, batch_idx, state, job_id, detail, updated_at_ms)
         VALUES (?1, ?2,
                 (SELECT COALESCE(MAX(position) + 1, 0) FROM rollout_hosts WHERE rollout_id = ?1),
                 ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (rollout_id, host) DO UPDATE SET
             batch_idx = excluded.batch_idx, state = excluded.state, job_id = excluded.job_id,
             detail = excluded.detail, updated_at_ms = excluded.updated_at_ms",
    )?
    .execute(params![
        rollout_id,
        host.host,
        host.batch_idx,
        host.state,
        host.job_id,
        json_text(&host.detail),
        host.updated_at_ms
    ])?;
    Ok(())
}

/// Inserts a rollout or updates its row, batches and hosts.
pub(crate) fn upsert(conn: &Connection, rollout: &RolloutRecord) -> Result<()> {
    conn.execute(
        &format!(
            "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (id) DO UPDATE SET
                 params = excluded.params, state = excluded.state,
                 started_at_ms = excluded.started_at_ms, finished_at_ms = excluded.finished_at_ms"
        ),
        params![
            rollout.id,
            json_text(&rollout.params),
            rollout.state,
            rollout.created_at_ms,
            rollout.started_at_ms,
            rollout.finished_at_ms
        ],
    )?;
    for batch in &rollout.batches {
        put_batch(conn, &rollout.id, batch)?;
    }
    for host in &rollout.hosts {
        put_host(conn, &rollout.id, host)?;
    }
    Ok(())
}

/// Deletes rollouts no longer running that ended before `older_than_ms` (batches and hosts go
/// with them).
pub(crate) fn prune(conn: &Connection, older_than_ms: i64) -> Result<u64> {
    let n_deleted = conn.execute(
        "DELETE FROM rollouts
         WHERE state != ?1 AND COALESCE(finished_at_ms, created_at_ms) < ?2",
        params![rollout_state::RUNNING, older_than_ms],
    )?;
    Ok(count(n_deleted))
}

impl Store {
    /// Stores a new rollout with its batches and hosts, all or nothing;
    /// [`StoreError::Duplicate`] if its id exists.
    pub async fn insert_rollout(&self, rollout: RolloutRecord) -> Result<()> {
        self.call(move |writer| {
            let n_inserted = writer.conn.execute(
                &format!(
                    "INSERT INTO rollouts ({ROLLOUT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO NOTHING"
                ),
                params![
                    rollout.id,
                    json_text(&rollout.params),
                    rollout.state,
                    rollout.created_at_ms,
                    rollout.started_at_ms,
                    rollout.finished_at_ms
                ],
            )?;
            if n_inserted == 0 {
                return Err(StoreError::Duplicate {
                    what: "rollout",
                    key: rollout.id,
                });
            }
            for batch in &rollout.batches {
                put_batch(&writer.conn, &rollout.id, batch)?;
            }
            for host in &rollout.hosts {
                put_host(&writer.conn, &rollout.id, host)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>> {
        let id = id.to_owned();
        self.read(move |conn: &Connection| get(conn, &id)).await
    }

    /// Rollouts, newest first, one page of them, with the total count.
    pub async fn list_rollouts(&self, page: Page) -> Result<Listed<RolloutRecord>> {
        self.list_rollouts_in(None, page).await
    }

    /// Rollouts in `state` (every state for `None`), newest first, one page of them, with
    /// the total count.
    pub async fn list_rollouts_in(
        &self,
        state: Option<String>,
        page: Page,
    ) -> Result<Listed<RolloutRecord>> {
        self.read(move |conn: &Connection| {
            let total_rollouts: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM rollouts WHERE ?1 IS NULL OR state = ?1")?
                .query_row([&state], |row| row.get(0))?;
            let rollouts = conn
                .prepare(&format!(
                    "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE ?3 IS NULL OR state = ?3
                     ORDER BY created_at_ms DESC, id DESC LIMIT ?1 OFFSET ?2"
                ))?
                .query_map(params![page.limit, page.offset, state], rollout_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let items = rollouts
                .into_iter()
                .map(|rollout| complete(conn, rollout))
                .collect::<Result<Vec<_>>>()?;
            Ok(Listed {
                items,
                total: total(total_rollouts),
            })
        })
        .await
    }

    /// Sets a rollout's state, and its end time when given.
    pub async fn set_rollout_state(
        &self,
        id: &str,
        state: &str,
        finished_at_ms: Option<i64>,
    ) -> Result<()> {
        let (id, state) = (id.to_owned(), state.to_owned());
        self.call(move |writer| {
            let changed = writer.conn.execute(
                "UPDATE rollouts SET state = ?2, finished_at_ms = COALESCE(?3, finished_at_ms)
                 WHERE id = ?1",
                params![id, state, finished_at_ms],
            )?;
            if changed == 0 {
                return Err(StoreError::NotFound {
                    what: "rollout",
                    key: id,
                });
            }
            Ok(())
        })
        .await
    }

    /// Inserts or replaces one batch of a rollout.
    pub async fn put_rollout_batch(
        &self,
        rollout_id: &str,
        batch: RolloutBatchRecord,
    ) -> Result<()> {
        let rollout_id = rollout_id.to_owned();
        self.call(move |writer| {
            require(&writer.conn, &rollout_id)?;
            put_batch(&writer.conn, &rollout_id, &batch)
        })
        .await
    }

    /// Inserts or updates one host's status in a rollout (a new host is listed last).
    pub async fn put_rollout_host(&self, rollout_id: &str, host: RolloutHostRecord) -> Result<()> {
        let rollout_id = rollout_id.to_owned();
        self.call(move |writer| {
            require(&writer.conn, &rollout_id)?;
            put_host(&writer.conn, &rollout_id, &host)
        })
        .await
    }

    /// Recovery at start: every rollout left `running` becomes `interrupted`, finished at
    /// `now_ms`. Per-host and per-batch rows are left as they were, so a resume can tell which
    /// hosts are done. Returns those rollouts, oldest first.
    pub async fn mark_rollouts_interrupted(&self, now_ms: i64) -> Result<Vec<RolloutRecord>> {
        self.call(move |writer| {
            let mut rollouts = writer
                .conn
                .prepare(&format!(
                    "UPDATE rollouts SET state = ?1, finished_at_ms = ?2 WHERE state = ?3
                     RETURNING {ROLLOUT_COLUMNS}"
                ))?
                .query_map(
                    params![rollout_state::INTERRUPTED, now_ms, rollout_state::RUNNING],
                    rollout_from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rollouts.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
            rollouts
                .into_iter()
                .map(|rollout| complete(&writer.conn, rollout))
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::records::{Page, RolloutBatchRecord, RolloutHostRecord, RolloutRecord};
    use crate::{Store, StoreError};

    fn host(name: &str, batch_idx: Option<i64>, state: &str) -> RolloutHostRecord {
        RolloutHostRecord {
            host: name.to_owned(),
            batch_idx,
            state: state.to_owned(),
            job_id: None,
            detail: json!({}),
            updated_at_ms: 10,
        }
    }

    fn batch(idx: i64, state: &str) -> RolloutBatchRecord {
        RolloutBatchRecord {
            idx,
            state: state.to_owned(),
            started_at_ms: None,
            finished_at_ms: None,
        }
    }

    fn rollout(id: &str, state: &str, created_at_ms: i64) -> RolloutRecord {
        RolloutRecord {
            id: id.to_owned(),
            params: json!({"batch_size": 2, "max_failures": "50%", "canary": ["z-canary"]}),
            state: state.to_owned(),
            created_at_ms,
            started_at_ms: Some(created_at_ms),
            finished_at_ms: None,
            batches: vec![batch(0, "running"), batch(1, "pending")],
            hosts: vec![
                // Canary first although its name sorts last: insertion order is kept.
                host("z-canary", Some(0), "running"),
                host("web-1", Some(1), "pending"),
                RolloutHostRecord {
                    detail: json!({"reason": "outside_maintenance_window"}),
                    ..host("web-2", None, "skipped")
                },
            ],
        }
    }

    #[tokio::test]
    async fn rollout_round_trips_with_batches_and_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut expected = rollout("r1", "running", 100);
        store.insert_rollout(expected.clone()).await.unwrap();
        assert!(matches!(
            store.insert_rollout(rollout("r1", "running", 200)).await,
            Err(StoreError::Duplicate {
                what: "rollout",
                ..
            })
        ));
        assert_eq!(store.rollout("r1").await.unwrap(), Some(expected.clone()));

        let canary_done = RolloutHostRecord {
            state: "succeeded".to_owned(),
            job_id: Some("job-9".to_owned()),
            updated_at_ms: 150,
            ..expected.hosts[0].clone()
        };
        store
            .put_rollout_host("r1", canary_done.clone())
            .await
            .unwrap();
        let batch_done = RolloutBatchRecord {
            state: "finished".to_owned(),
            started_at_ms: Some(100),
            finished_at_ms: Some(150),
            ..expected.batches[0].clone()
        };
        store
            .put_rollout_batch("r1", batch_done.clone())
            .await
            .unwrap();
        let late = host("web-3", Some(1), "pending");
        store.put_rollout_host("r1", late.clone()).await.unwrap();
        store
            .set_rollout_state("r1", "completed", Some(300))
            .await
            .unwrap();
        store.close().await.unwrap();

        expected.hosts[0] = canary_done;
        expected.hosts.push(late);
        expected.batches[0] = batch_done;
        expected.state = "completed".to_owned();
        expected.finished_at_ms = Some(300);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.rollout("r1").await.unwrap(), Some(expected));
        assert_eq!(store.rollout("r2").await.unwrap(), None);
        assert!(matches!(
            store
                .put_rollout_host("r2", host("x", None, "pending"))
                .await,
            Err(StoreError::NotFound {
                what: "rollout",
                ..
            })
        ));
        assert!(matches!(
            store.set_rollout_state("r2", "cancelled", None).await,
            Err(StoreError::NotFound { .. })
        ));
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn list_rollouts_in_a_state_counts_and_pages_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (idx, state) in ["completed", "running", "completed"]
            .into_iter()
            .enumerate()
        {
            let record = rollout(&format!("r{idx}"), state, i64::try_from(idx).unwrap());
            store.insert_rollout(record).await.unwrap();
        }
        let page = Page {
            offset: 0,
            limit: 10,
        };
        let completed = store
            .list_rollouts_in(Some("completed".to_owned()), page)
            .await
            .unwrap();
        assert_eq!(completed.total, 2);
        let ids: Vec<&str> = completed.items.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r2", "r0"]);
        assert_eq!(store.list_rollouts(page).await.unwrap().total, 3);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn list_rollouts_pages_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (id, created) in [("a", 1), ("b", 2), ("c", 3)] {
            store
                .insert_rollout(rollout(id, "completed", created))
                .await
                .unwrap();
        }
        let listed = store
            .list_rollouts(Page {
                offset: 1,
                limit: 5,
            })
            .await
            .unwrap();
        let ids: Vec<_> = listed
            .items
            .iter()
            .map(|rollout| rollout.id.as_str())
            .collect();
        assert_eq!((ids, listed.total), (vec!["b", "a"], 3));
        assert_eq!(
            listed.items[0].hosts.len(),
            3,
            "listed rollouts are complete"
        );
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn recovery_interrupts_running_rollouts_and_keeps_host_progress() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .insert_rollout(rollout("live", "running", 1))
            .await
            .unwrap();
        store
            .insert_rollout(rollout("done", "completed", 2))
            .await
            .unwrap();
        let interrupted = store.mark_rollouts_interrupted(500).await.unwrap();
        assert_eq!(interrupted.len(), 1);
        let live = &interrupted[0];
        assert_eq!(
            (live.id.as_str(), live.state.as_str(), live.finished_at_ms),
            ("live", "interrupted", Some(500))
        );
        assert_eq!(live.hosts, rollout("live", "running", 1).hosts);
        assert_eq!(
            store.rollout("done").await.unwrap().unwrap().state,
            "completed"
        );
        assert!(
            store
                .mark_rollouts_interrupted(600)
                .await
                .unwrap()
                .is_empty()
        );
        // Pruning removes finished rollouts with their batches and hosts, never running ones.
        store
            .insert_rollout(rollout("again", "running", 3))
            .await
            .unwrap();
        assert_eq!(store.prune(1_000).await.unwrap().rollouts, 2);
        assert!(store.rollout("live").await.unwrap().is_none());
        assert!(store.rollout("again").await.unwrap().is_some());
        store.close().await.unwrap();
    }
}
