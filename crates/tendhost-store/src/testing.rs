//! Helpers shared by the unit tests (compiled for tests only): a job record to start from and
//! reopening a store whose handles were dropped without `close`, as after a crash.

use std::path::Path;

use serde_json::json;

use crate::records::JobRecord;
use crate::{Store, StoreError};

pub(crate) fn job(id: &str, host: &str, state: &str, created_at_ms: i64) -> JobRecord {
    JobRecord {
        id: id.to_owned(),
        host: host.to_owned(),
        kind: "update".to_owned(),
        params: json!({"dry_run": false}),
        state: state.to_owned(),
        created_at_ms,
        started_at_ms: None,
        finished_at_ms: None,
        outcome: None,
        packages_changed: json!([]),
    }
}

/// Opens the store in `dir` once the writer of the dropped handles has committed what was
/// queued and released the lock.
pub(crate) fn reopen_after_drop(dir: &Path) -> Store {
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(StoreError::Locked { .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(other) => panic!("{other}"),
        }
    }
}
