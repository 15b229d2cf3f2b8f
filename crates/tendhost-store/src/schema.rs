//! Opening the database file and bringing its schema up to date: connection settings (WAL,
//! full sync, foreign keys) and the numbered, append-only migrations in `migrations/`, tracked
//! with `PRAGMA user_version`. Table queries live in the table modules, not here.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Result, StoreError, open_error};

/// One schema step. Versions are 1, 2, 3... with no gaps; a released step is never edited.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_status_output",
        sql: include_str!("../migrations/0002_status_output.sql"),
    },
    Migration {
        version: 3,
        name: "0003_rollouts",
        sql: include_str!("../migrations/0003_rollouts.sql"),
    },
    Migration {
        version: 4,
        name: "0004_audit",
        sql: include_str!("../migrations/0004_audit.sql"),
    },
    Migration {
        version: 5,
        name: "0005_notifications",
        sql: include_str!("../migrations/0005_notifications.sql"),
    },
    Migration {
        version: 6,
        name: "0006_host_health",
        sql: include_str!("../migrations/0006_host_health.sql"),
    },
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Opens (creating if missing) the database at `path` with the store's connection settings.
pub(crate) fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| open_error(path, source))?;
    // The first statement that reads the file: a file that is not a database fails here.
    let journal_mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(|source| open_error(path, source))?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Open {
            path: path.to_path_buf(),
            source: rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {journal_mode}, WAL is needed"
            )),
        });
    }
    // FULL: a commit is on disk when it returns, also across a power loss; group commit keeps
    // the cost per output line low.
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(|source| open_error(path, source))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|source| open_error(path, source))?;
    Ok(conn)
}

/// The schema version recorded in the file (0 for a new, empty database).
pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
}

/// Applies every migration above the file's version, up to `target`, each in its own
/// transaction together with its `user_version` bump.
pub(crate) fn migrate(conn: &mut Connection, path: &Path, target: i64) -> Result<()> {
    let found = schema_version(conn).map_err(|source| open_error(path, source))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|migration| migration.version > found && migration.version <= target)
    {
        let apply = |conn: &mut Connection| -> rusqlite::Result<()> {
            let tx = conn.transaction()?;
            tx.execute_batch(migration.sql)?;
            tx.pragma_update(None, "user_version", migration.version)?;
            tx.commit()
        };
        apply(conn).map_err(|source| {
            if crate::error::is_corruption(&source) {
                StoreError::Corrupt {
                    path: path.to_path_buf(),
                    source,
                }
            } else {
                StoreError::Migration {
                    path: path.to_path_buf(),
                    version: migration.version,
                    name: migration.name,
                    source,
                }
            }
        })?;
        tracing::info!(
            path = %path.display(),
            version = migration.version,
            name = migration.name,
            "applied database migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::records::{JobFilter, NewEvent, Page};
    use crate::schema::{MIGRATIONS, SCHEMA_VERSION, migrate, open_connection, schema_version};
    use crate::{DB_FILE, Store, StoreError};

    #[test]
    fn migrations_are_numbered_without_gaps() {
        for (migration_idx, migration) in MIGRATIONS.iter().enumerate() {
            let version = i64::try_from(migration_idx).unwrap() + 1;
            assert_eq!(migration.version, version);
            assert!(
                migration.name.starts_with(&format!("{version:04}_")),
                "{} does not match version {version}",
                migration.name
            );
        }
    }

    #[tokio::test]
    async fn new_database_gets_the_latest_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.close().await.unwrap();
        let conn = open_connection(&dir.path().join(DB_FILE)).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
        let journal_mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(journal_mode, "wal");
    }

    /// A database left at version 1 with rows in it is upgraded on open, rows kept and readable
    /// through the current API, with the columns added later at their defaults.
    #[tokio::test]
    async fn version_1_database_is_upgraded_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join(DB_FILE);
        {
            let mut conn = open_connection(&db_path).unwrap();
            migrate(&mut conn, &db_path, 1).unwrap();
            assert_eq!(schema_version(&conn).unwrap(), 1);
            conn.execute_batch(
                "INSERT INTO runtime_hosts (name, addr, port, user, added_at_ms)
                     VALUES ('web-1', '10.0.0.5', 2222, 'ops', 1000);
                 INSERT INTO jobs (id, host, kind, state, created_at_ms, started_at_ms,
                                   finished_at_ms, outcome)
                     VALUES ('job-1', 'web-1', 'update', 'succeeded', 2000, 2100, 2900,
                             '{\"exit_code\":0}');
                 INSERT INTO events (seq, time_ms, type, host, body)
                     VALUES (1, 2000, 'job_started', 'web-1', '{\"job_id\":\"job-1\"}'),
                            (2, 2900, 'job_finished', 'web-1', '{\"job_id\":\"job-1\"}');",
            )
            .unwrap();
        }

        let store = Store::open(dir.path()).unwrap();
        let host = store.runtime_host("web-1").await.unwrap().unwrap();
        assert_eq!(
            (host.addr.as_str(), host.port, host.user.as_deref()),
            ("10.0.0.5", 2222, Some("ops"))
        );
        assert_eq!(host.tags, Vec::<String>::new());
        assert_eq!(
            (host.ssh_key, host.sudo, host.extra),
            (None, None, json!({}))
        );

        let job = store.job("job-1").await.unwrap().unwrap();
        assert_eq!(job.state, "succeeded");
        assert_eq!(job.outcome, Some(json!({"exit_code": 0})));
        assert_eq!((job.params, job.packages_changed), (json!({}), json!([])));
        let listed = store
            .list_jobs(
                JobFilter::default(),
                Page {
                    offset: 0,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        assert_eq!(listed.total, 1);

        // Tables from later migrations work on the upgraded file.
        store
            .log_line("job-1", "stdout", 2500, "old job, new line")
            .unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.job_output("job-1", 0, 10).await.unwrap().len(), 1);

        let events = store.events_after(0, 10).await.unwrap();
        assert_eq!(
            events.iter().map(|event| event.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        let event = store
            .append_event(NewEvent {
                time_ms: 3000,
                kind: "host_added".to_owned(),
                host: Some("web-2".to_owned()),
                body: json!({}),
                correlation: 0,
            })
            .await
            .unwrap();
        assert_eq!(
            event.seq, 3,
            "seq continues after the old database's last event"
        );
        store.close().await.unwrap();

        let conn = open_connection(&db_path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn database_from_a_newer_tendhost_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join(DB_FILE);
        {
            let conn = open_connection(&db_path).unwrap();
            conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
                .unwrap();
        }
        match Store::open(dir.path()).unwrap_err() {
            StoreError::TooNew {
                path,
                found,
                supported,
            } => {
                assert_eq!(path, db_path);
                assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
            }
            other => panic!("expected TooNew, got {other:?}"),
        }
    }

    #[test]
    fn garbage_file_is_reported_corrupt_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join(DB_FILE);
        let garbage = b"this is not a SQLite database, only garbage bytes ".repeat(200);
        std::fs::write(&db_path, garbage).unwrap();
        let error = Store::open(dir.path()).unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt { path, .. } if *path == db_path),
            "expected Corrupt, got {error:?}"
        );
        assert!(error.to_string().contains(&db_path.display().to_string()));
        // The failed open released the lock: a later open meets the same error, not `Locked`.
        assert!(matches!(
            Store::open(dir.path()),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn data_dir_under_a_regular_file_is_reported_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").unwrap();
        let data_dir = file.join("data");
        let error = Store::open(&data_dir).unwrap_err();
        assert!(
            matches!(&error, StoreError::DataDir { path, .. } if *path == data_dir),
            "expected DataDir, got {error:?}"
        );
        assert!(error.to_string().contains(&data_dir.display().to_string()));
    }
}
