//! Runtime hosts (added through the API; config-file hosts are never stored) and every host's
//! last known status (state, failure, pending updates, reboot state, inventory, last check,
//! last health check, services to restart).
//! Validation of host definitions belongs to the daemon; this module stores what it is given.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::Store;
use crate::error::{Result, StoreError};
use crate::records::{HostStatusRecord, RuntimeHostRecord};
use crate::sql::{json_column, json_text, opt_json_column, opt_json_text, string_list_column};

const HOST_COLUMNS: &str = "name, addr, port, user, ssh_key, tags, sudo, extra, added_at_ms";

fn host_from_row(row: &Row<'_>) -> rusqlite::Result<RuntimeHostRecord> {
    Ok(RuntimeHostRecord {
        name: row.get(0)?,
        addr: row.get(1)?,
        port: row.get(2)?,
        user: row.get(3)?,
        ssh_key: row.get(4)?,
        tags: string_list_column(row, 5)?,
        sudo: row.get(6)?,
        extra: json_column(row, 7)?,
        added_at_ms: row.get(8)?,
    })
}

const STATUS_COLUMNS: &str = "name, state, failure, pending_updates, reboot_state, inventory, \
                              last_check_ms, updated_at_ms, health, services_to_restart, \
                              pending_since";

fn status_from_row(row: &Row<'_>) -> rusqlite::Result<HostStatusRecord> {
    Ok(HostStatusRecord {
        name: row.get(0)?,
        state: row.get(1)?,
        failure: opt_json_column(row, 2)?,
        pending_updates: json_column(row, 3)?,
        reboot_state: row.get(4)?,
        inventory: opt_json_column(row, 5)?,
        last_check_ms: row.get(6)?,
        updated_at_ms: row.get(7)?,
        health: opt_json_column(row, 8)?,
        services_to_restart: json_column(row, 9)?,
        pending_since: json_column(row, 10)?,
    })
}

fn delete_status(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM host_status WHERE name = ?1", [name])? > 0)
}

/// Insert-or-replace of a host's status row.
pub(crate) fn put_status(conn: &Connection, status: &HostStatusRecord) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO host_status ({STATUS_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        status.name,
        status.state,
        opt_json_text(status.failure.as_ref()),
        json_text(&status.pending_updates),
        status.reboot_state,
        opt_json_text(status.inventory.as_ref()),
        status.last_check_ms,
        status.updated_at_ms,
        opt_json_text(status.health.as_ref()),
        json_text(&status.services_to_restart),
        json_text(&status.pending_since),
    ])?;
    Ok(())
}

impl Store {
    /// Stores a host added at runtime; [`StoreError::Duplicate`] if the name exists.
    pub async fn add_runtime_host(&self, host: RuntimeHostRecord) -> Result<()> {
        self.call(move |writer| {
            let tags = serde_json::to_string(&host.tags).map_err(|source| StoreError::Json {
                what: "host tags",
                source,
            })?;
            let n_inserted = writer.conn.execute(
                &format!(
                    "INSERT INTO runtime_hosts ({HOST_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (name) DO NOTHING"
                ),
                params![
                    host.name,
                    host.addr,
                    host.port,
                    host.user,
                    host.ssh_key,
                    tags,
                    host.sudo,
                    json_text(&host.extra),
                    host.added_at_ms,
                ],
            )?;
            if n_inserted == 0 {
                return Err(StoreError::Duplicate {
                    what: "runtime host",
                    key: host.name,
                });
            }
            Ok(())
        })
        .await
    }

    pub async fn runtime_host(&self, name: &str) -> Result<Option<RuntimeHostRecord>> {
        let name = name.to_owned();
        self.read(move |conn: &Connection| {
            let host = conn
                .query_row(
                    &format!("SELECT {HOST_COLUMNS} FROM runtime_hosts WHERE name = ?1"),
                    [name],
                    host_from_row,
                )
                .optional()?;
            Ok(host)
        })
        .await
    }

    /// Every runtime host, in the order they were added.
    pub async fn runtime_hosts(&self) -> Result<Vec<RuntimeHostRecord>> {
        self.read(move |conn: &Connection| {
            let hosts = conn
                .prepare(&format!(
                    "SELECT {HOST_COLUMNS} FROM runtime_hosts ORDER BY added_at_ms, name"
                ))?
                .query_map([], host_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(hosts)
        })
        .await
    }

    /// Deletes a runtime host and its status; false if there was no such runtime host. Its
    /// jobs stay in the history.
    pub async fn remove_runtime_host(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.call(move |writer| {
            let removed = writer
                .conn
                .execute("DELETE FROM runtime_hosts WHERE name = ?1", [&name])?
                > 0;
            if removed {
                delete_status(&writer.conn, &name)?;
            }
            Ok(removed)
        })
        .await
    }

    /// Stores a host's status, replacing the previous one.
    pub async fn put_host_status(&self, status: HostStatusRecord) -> Result<()> {
        self.call(move |writer| put_status(&writer.conn, &status))
            .await
    }

    pub async fn host_status(&self, name: &str) -> Result<Option<HostStatusRecord>> {
        let name = name.to_owned();
        self.read(move |conn: &Connection| {
            let status = conn
                .query_row(
                    &format!("SELECT {STATUS_COLUMNS} FROM host_status WHERE name = ?1"),
                    [name],
                    status_from_row,
                )
                .optional()?;
            Ok(status)
        })
        .await
    }

    /// Every stored host status, by name.
    pub async fn host_statuses(&self) -> Result<Vec<HostStatusRecord>> {
        self.read(move |conn: &Connection| {
            let statuses = conn
                .prepare(&format!(
                    "SELECT {STATUS_COLUMNS} FROM host_status ORDER BY name"
                ))?
                .query_map([], status_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(statuses)
        })
        .await
    }

    /// Deletes a host's status (e.g. of a config host removed from the file); false if none.
    pub async fn remove_host_status(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.call(move |writer| delete_status(&writer.conn, &name))
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::records::{HostStatusRecord, RuntimeHostRecord};
    use crate::{Store, StoreError};

    fn host(name: &str, added_at_ms: i64) -> RuntimeHostRecord {
        RuntimeHostRecord {
            name: name.to_owned(),
            addr: "192.0.2.7".to_owned(),
            port: 65_535,
            user: Some("deploy".to_owned()),
            ssh_key: Some("/etc/tendhost/keys/id_ed25519".to_owned()),
            tags: vec!["web".to_owned(), "eu \"west\"".to_owned()],
            sudo: Some(true),
            extra: json!({"known_hosts": "accept_new"}),
            added_at_ms,
        }
    }

    fn status(name: &str) -> HostStatusRecord {
        HostStatusRecord {
            name: name.to_owned(),
            state: "failed".to_owned(),
            failure: Some(json!({
                "previous_state": "updating", "error": "dpkg was interrupted",
                "failed_at": "2024-05-01T10:00:00Z", "retry_count": 2, "acknowledged": false
            })),
            pending_updates: json!([{"name": "openssl", "version": "3.0.13-1"}]),
            reboot_state: "required".to_owned(),
            inventory: Some(json!({"os": "debian", "version": "12"})),
            last_check_ms: Some(1_700_000_000_000),
            updated_at_ms: 1_700_000_000_500,
            health: Some(json!({"ok": false, "output": "curl: (7) refused", "attempts": 3})),
            services_to_restart: json!([{"pid": 412, "command": "nginx", "unit": "nginx.service"}]),
            pending_since: json!({"openssl": 1_699_000_000_000_i64}),
        }
    }

    #[tokio::test]
    async fn runtime_hosts_round_trip_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let full = host("web-1", 2);
        let minimal = RuntimeHostRecord {
            user: None,
            ssh_key: None,
            tags: Vec::new(),
            sudo: None,
            extra: json!({}),
            port: 22,
            ..host("db-1", 1)
        };
        store.add_runtime_host(full.clone()).await.unwrap();
        store.add_runtime_host(minimal.clone()).await.unwrap();
        assert!(matches!(
            store.add_runtime_host(host("web-1", 3)).await,
            Err(StoreError::Duplicate { what: "runtime host", key }) if key == "web-1"
        ));
        store.close().await.unwrap();

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.runtime_hosts().await.unwrap(),
            vec![minimal.clone(), full.clone()]
        );
        assert_eq!(store.runtime_host("web-1").await.unwrap(), Some(full));
        assert_eq!(store.runtime_host("nope").await.unwrap(), None);

        store.put_host_status(status("db-1")).await.unwrap();
        assert!(store.remove_runtime_host("db-1").await.unwrap());
        assert!(!store.remove_runtime_host("db-1").await.unwrap());
        assert_eq!(
            store.host_status("db-1").await.unwrap(),
            None,
            "status goes with the host"
        );
        assert_eq!(store.runtime_hosts().await.unwrap().len(), 1);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn host_status_round_trips_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let failed = status("web-1");
        store.put_host_status(failed.clone()).await.unwrap();
        let idle = HostStatusRecord {
            name: "app-1".to_owned(),
            state: "idle".to_owned(),
            failure: None,
            pending_updates: json!([]),
            reboot_state: "unknown".to_owned(),
            inventory: None,
            last_check_ms: None,
            updated_at_ms: 5,
            health: None,
            services_to_restart: json!([]),
            pending_since: json!({}),
        };
        store.put_host_status(idle.clone()).await.unwrap();
        store.close().await.unwrap();

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.host_status("web-1").await.unwrap(),
            Some(failed.clone())
        );
        assert_eq!(
            store.host_statuses().await.unwrap(),
            vec![idle, failed.clone()]
        );

        let recovered = HostStatusRecord {
            state: "idle".to_owned(),
            failure: None,
            reboot_state: "not_required".to_owned(),
            ..failed
        };
        store.put_host_status(recovered.clone()).await.unwrap();
        assert_eq!(store.host_status("web-1").await.unwrap(), Some(recovered));
        assert!(store.remove_host_status("web-1").await.unwrap());
        assert!(!store.remove_host_status("web-1").await.unwrap());
        assert_eq!(store.host_statuses().await.unwrap().len(), 1);
        store.close().await.unwrap();
    }
}
