//! The store's one error type, [`StoreError`]: what went wrong and, for anything about files, the
//! path. Mapping of SQLite error codes to variants lives here too; nothing else does.

use std::io;
use std::path::PathBuf;

/// Everything `tendhost-store` can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory cannot be created or written (e.g. a parent is a regular file).
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process (another tendhost) holds the data directory's lock.
    #[error(
        "data directory is in use: {lock_path} is locked by another tendhost (pid {})",
        pid.map_or_else(|| "unknown".to_owned(), |pid| pid.to_string())
    )]
    Locked {
        lock_path: PathBuf,
        pid: Option<u32>,
    },
    /// The database file exists but is not a readable SQLite database.
    #[error("database {path} is corrupt or not a SQLite database: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The database cannot be opened or set up for another reason.
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer tendhost with migrations this one does not know.
    #[error(
        "database {path} has schema version {found}, newer than the {supported} this tendhost \
         knows; run a newer tendhost or restore an older database"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    /// A schema migration failed; the database is left at the previous version.
    #[error("cannot migrate database {path} to schema version {version} ({name}): {source}")]
    Migration {
        path: PathBuf,
        version: i64,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// A query or write failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column does not parse, or a value does not serialize.
    #[error("{what} is not valid JSON: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A stored value is out of range for its record field.
    #[error("stored {what} is invalid: {message}")]
    BadRow { what: &'static str, message: String },
    /// The record to change does not exist.
    #[error("{what} {key:?} not found")]
    NotFound { what: &'static str, key: String },
    /// A record with that key already exists.
    #[error("{what} {key:?} already exists")]
    Duplicate { what: &'static str, key: String },
    /// The transaction holding this write could not be committed; the write is lost.
    #[error("database commit failed: {0}")]
    Commit(String),
    /// The store was closed (or its writer thread stopped) before the request was served.
    #[error("the store is closed")]
    Closed,
    /// The writer thread could not be started.
    #[error("cannot start the store writer thread: {0}")]
    Thread(#[source] io::Error),
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// True when SQLite says the file is not a database or is damaged.
pub(crate) fn is_corruption(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// Maps an error met while opening `path` to `Corrupt` or `Open`.
pub(crate) fn open_error(path: &std::path::Path, source: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    if is_corruption(&source) {
        StoreError::Corrupt { path, source }
    } else {
        StoreError::Open { path, source }
    }
}
