//! The audit trail: one row per request that changes something or was refused. A row is
//! inserted (and committed) before the request's handler runs, so nothing the request causes
//! can be announced before its row is on disk; its outcome (status, job or rollout id) is
//! written when the handler has answered. Rows are not events: they never enter the seq
//! stream. Retention prunes them with the rest.

use rusqlite::{Connection, Row, params};

use crate::Store;
use crate::error::Result;
use crate::records::{Listed, Page};
use crate::sql::{count, total};

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Given by the store on insert (ignored when inserting).
    pub id: i64,
    pub time_ms: i64,
    /// The token's name (`None` when auth is disabled or no valid token was sent).
    pub token: Option<String>,
    pub role: Option<String>,
    /// The client address.
    pub source: String,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    pub job_id: Option<String>,
    pub rollout_id: Option<String>,
    /// `None` while the request runs (or if the daemon died before it answered).
    pub status: Option<u16>,
    /// The request body with secrets redacted, as JSON text.
    pub body: Option<String>,
}

/// The outcome of an audited request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditUpdate {
    pub status: u16,
    pub job_id: Option<String>,
    pub rollout_id: Option<String>,
}

/// Filters of [`Store::list_audit`]; each is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub token: Option<String>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub since_ms: Option<i64>,
}

const COLUMNS: &str =
    "id, time_ms, token, role, source, method, path, host, job_id, rollout_id, status, body";

fn from_row(row: &Row<'_>) -> rusqlite::Result<AuditRecord> {
    let status: Option<i64> = row.get(10)?;
    Ok(AuditRecord {
        id: row.get(0)?,
        time_ms: row.get(1)?,
        token: row.get(2)?,
        role: row.get(3)?,
        source: row.get(4)?,
        method: row.get(5)?,
        path: row.get(6)?,
        host: row.get(7)?,
        job_id: row.get(8)?,
        rollout_id: row.get(9)?,
        status: status.and_then(|s| u16::try_from(s).ok()),
        body: row.get(11)?,
    })
}

pub(crate) fn prune(conn: &Connection, older_than_ms: i64) -> Result<u64> {
    let n_deleted = conn.execute("DELETE FROM audit WHERE time_ms < ?1", [older_than_ms])?;
    Ok(count(n_deleted))
}

/// `path LIKE prefix%` with the prefix's own wildcards escaped.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Store {
    /// Inserts `record` and returns its id once committed.
    pub async fn insert_audit(&self, record: AuditRecord) -> Result<i64> {
        self.call(move |writer| {
            writer
                .conn
                .prepare_cached(
                    "INSERT INTO audit (time_ms, token, role, source, method, path, host, job_id,
                                        rollout_id, status, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?
                .execute(params![
                    record.time_ms,
                    record.token,
                    record.role,
                    record.source,
                    record.method,
                    record.path,
                    record.host,
                    record.job_id,
                    record.rollout_id,
                    record.status,
                    record.body
                ])?;
            Ok(writer.conn.last_insert_rowid())
        })
        .await
    }

    /// Records the outcome of the request behind row `id`; returns once committed.
    pub async fn finish_audit(&self, id: i64, update: AuditUpdate) -> Result<()> {
        self.call(move |writer| {
            writer.conn.execute(
                "UPDATE audit SET status = ?2, job_id = COALESCE(?3, job_id),
                                  rollout_id = COALESCE(?4, rollout_id)
                 WHERE id = ?1",
                params![id, update.status, update.job_id, update.rollout_id],
            )?;
            Ok(())
        })
        .await
    }

    /// Audit rows matching `filter`, newest first.
    pub async fn list_audit(&self, filter: AuditFilter, page: Page) -> Result<Listed<AuditRecord>> {
        self.read(move |conn: &Connection| {
            let condition = "(?1 IS NULL OR token = ?1) AND (?2 IS NULL OR host = ?2)
                             AND (?3 IS NULL OR path LIKE ?3 ESCAPE '\\')
                             AND (?4 IS NULL OR time_ms >= ?4)";
            let pattern = filter.path_prefix.as_deref().map(like_prefix);
            let n_rows: i64 = conn
                .prepare_cached(&format!("SELECT COUNT(*) FROM audit WHERE {condition}"))?
                .query_row(
                    params![filter.token, filter.host, pattern, filter.since_ms],
                    |row| row.get(0),
                )?;
            let items = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM audit WHERE {condition}
                     ORDER BY id DESC LIMIT ?5 OFFSET ?6"
                ))?
                .query_map(
                    params![
                        filter.token,
                        filter.host,
                        pattern,
                        filter.since_ms,
                        page.limit,
                        page.offset
                    ],
                    from_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Listed {
                items,
                total: total(n_rows),
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(time_ms: i64, token: &str, path: &str) -> AuditRecord {
        AuditRecord {
            id: 0,
            time_ms,
            token: Some(token.to_owned()),
            role: Some("operate".to_owned()),
            source: "127.0.0.1".to_owned(),
            method: "POST".to_owned(),
            path: path.to_owned(),
            host: Some("web-1".to_owned()),
            job_id: None,
            rollout_id: None,
            status: None,
            body: None,
        }
    }

    #[tokio::test]
    async fn rows_are_inserted_finished_filtered_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store
            .insert_audit(row(10, "ci", "/hosts/web-1/check"))
            .await
            .unwrap();
        let b = store
            .insert_audit(row(20, "ops", "/hosts_x/update"))
            .await
            .unwrap();
        assert!(b > a);
        store
            .finish_audit(
                a,
                AuditUpdate {
                    status: 202,
                    job_id: Some("j-1".to_owned()),
                    rollout_id: None,
                },
            )
            .await
            .unwrap();
        store.close().await.unwrap();

        let store = Store::open(dir.path()).unwrap();
        let all = store
            .list_audit(
                AuditFilter::default(),
                Page {
                    offset: 0,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(all.total, 2);
        assert_eq!(all.items[0].id, b, "newest first");
        assert_eq!(all.items[1].status, Some(202));
        assert_eq!(all.items[1].job_id.as_deref(), Some("j-1"));
        let by_prefix = store
            .list_audit(
                AuditFilter {
                    path_prefix: Some("/hosts/".to_owned()),
                    ..AuditFilter::default()
                },
                Page {
                    offset: 0,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(by_prefix.total, 1, "`_` in the prefix is not a wildcard");
        let since = store
            .list_audit(
                AuditFilter {
                    token: Some("ops".to_owned()),
                    since_ms: Some(15),
                    ..AuditFilter::default()
                },
                Page {
                    offset: 0,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(since.items.len(), 1);
        store.prune(15).await.unwrap();
        let left = store
            .list_audit(
                AuditFilter::default(),
                Page {
                    offset: 0,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(left.items.iter().map(|r| r.id).collect::<Vec<_>>(), [b]);
        store.close().await.unwrap();
    }
}
