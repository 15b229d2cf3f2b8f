//! Notification deliveries (migration 0005): a row is inserted when a message is queued for a
//! notifier and updated after each attempt. Rows are not events: they never enter the seq
//! stream. Retention prunes them with the rest. No secret is ever stored here.

use rusqlite::{Connection, Row, params};

use crate::Store;
use crate::error::Result;
use crate::sql::count;

/// One delivery row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Given by the store on insert (ignored when inserting).
    pub id: i64,
    pub notifier: String,
    pub kind: String,
    pub event: String,
    pub title: String,
    pub rollout_id: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub attempts: u32,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub last_error: Option<String>,
}

/// What one attempt changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    pub updated_ms: i64,
    pub attempts: u32,
    pub status: String,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "id, notifier, kind, event, title, rollout_id, created_ms, updated_ms, attempts, status, last_error";

fn from_row(row: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let attempts: i64 = row.get(8)?;
    Ok(DeliveryRecord {
        id: row.get(0)?,
        notifier: row.get(1)?,
        kind: row.get(2)?,
        event: row.get(3)?,
        title: row.get(4)?,
        rollout_id: row.get(5)?,
        created_ms: row.get(6)?,
        updated_ms: row.get(7)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        status: row.get(9)?,
        last_error: row.get(10)?,
    })
}

pub(crate) fn prune(conn: &Connection, older_than_ms: i64) -> Result<u64> {
    let n_deleted = conn.execute(
        "DELETE FROM notifications WHERE created_ms < ?1 AND status != 'pending'",
        [older_than_ms],
    )?;
    Ok(count(n_deleted))
}

impl Store {
    /// Inserts `record` and returns its id once committed.
    pub async fn insert_delivery(&self, record: DeliveryRecord) -> Result<i64> {
        self.call(move |writer| {
            writer
                .conn
                .prepare_cached(
                    "INSERT INTO notifications (notifier, kind, event, title, rollout_id,
                                                created_ms, updated_ms, attempts, status, last_error)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?
                .execute(params![
                    record.notifier,
                    record.kind,
                    record.event,
                    record.title,
                    record.rollout_id,
                    record.created_ms,
                    record.updated_ms,
                    record.attempts,
                    record.status,
                    record.last_error
                ])?;
            Ok(writer.conn.last_insert_rowid())
        })
        .await
    }

    /// Records the outcome of an attempt of delivery `id`; returns once committed.
    pub async fn update_delivery(&self, id: i64, update: DeliveryUpdate) -> Result<()> {
        self.call(move |writer| {
            writer.conn.execute(
                "UPDATE notifications SET updated_ms = ?2, attempts = ?3, status = ?4,
                                          last_error = ?5
                 WHERE id = ?1",
                params![
                    id,
                    update.updated_ms,
                    update.attempts,
                    update.status,
                    update.last_error
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Ends every `pending` delivery as `failed` with `reason` (a restart: their queue is gone);
    /// answers how many.
    pub async fn fail_pending_deliveries(&self, now_ms: i64, reason: String) -> Result<u64> {
        self.call(move |writer| {
            let n_failed = writer.conn.execute(
                "UPDATE notifications SET status = 'failed', updated_ms = ?1,
                                          last_error = ?2
                 WHERE status = 'pending'",
                params![now_ms, reason],
            )?;
            Ok(count(n_failed))
        })
        .await
    }

    /// The `limit` most recent deliveries, newest first.
    pub async fn list_deliveries(&self, limit: u32) -> Result<Vec<DeliveryRecord>> {
        self.read(move |conn: &Connection| {
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM notifications ORDER BY id DESC LIMIT ?1"
                ))?
                .query_map([limit], from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(items)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(created_ms: i64, status: &str) -> DeliveryRecord {
        DeliveryRecord {
            id: 0,
            notifier: "ops".to_owned(),
            kind: "webhook".to_owned(),
            event: "rollout_finished".to_owned(),
            title: "Rollout finished".to_owned(),
            rollout_id: Some("r-1".to_owned()),
            created_ms,
            updated_ms: created_ms,
            attempts: 0,
            status: status.to_owned(),
            last_error: None,
        }
    }

    #[tokio::test]
    async fn deliveries_are_inserted_updated_listed_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.insert_delivery(row(10, "pending")).await.unwrap();
        let b = store.insert_delivery(row(20, "pending")).await.unwrap();
        store
            .update_delivery(
                a,
                DeliveryUpdate {
                    updated_ms: 30,
                    attempts: 3,
                    status: "failed".to_owned(),
                    last_error: Some("connection refused".to_owned()),
                },
            )
            .await
            .unwrap();
        store.close().await.unwrap();

        let store = Store::open(dir.path()).unwrap();
        let listed = store.list_deliveries(10).await.unwrap();
        assert_eq!(
            listed.iter().map(|r| r.id).collect::<Vec<_>>(),
            [b, a],
            "newest first"
        );
        assert_eq!(listed[1].attempts, 3);
        assert_eq!(listed[1].status, "failed");
        assert_eq!(listed[1].last_error.as_deref(), Some("connection refused"));
        assert_eq!(store.list_deliveries(1).await.unwrap().len(), 1);
        // Only finished rows are pruned: a pending one still has attempts to make.
        store.prune(25).await.unwrap();
        let left = store.list_deliveries(10).await.unwrap();
        assert_eq!(left.iter().map(|r| r.id).collect::<Vec<_>>(), [b]);
        // A restart ends what was pending.
        let n_failed = store
            .fail_pending_deliveries(50, "restarted".to_owned())
            .await
            .unwrap();
        assert_eq!(n_failed, 1);
        let ended = store.list_deliveries(10).await.unwrap();
        assert_eq!(ended[0].status, "failed");
        assert_eq!(ended[0].last_error.as_deref(), Some("restarted"));
        assert_eq!(ended[0].updated_ms, 50);
        store.close().await.unwrap();
    }
}
