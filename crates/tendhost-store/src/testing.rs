//! Helpers shared by the unit tests (compiled for tests only): a job record to start from and
//! reopening a store whose handles were dropped without `close`, as after a crash.

use std::path::Path;
use std::time::{Duration, Instant};

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

/// How long a test waits for the dropped handles' writer to let go of the lock: a hang guard,
/// well below the test runner's 300 s kill (the same bound as `tendhost_tests::wait`).
const REOPEN_DEADLINE: Duration = Duration::from_secs(120);

/// Opens the store in `dir` once the writer of the dropped handles has committed what was
/// queued and released the lock.
///
/// # Panics
/// When the lock is still held after [`REOPEN_DEADLINE`], or opening fails otherwise.
pub(crate) fn reopen_after_drop(dir: &Path) -> Store {
    let deadline = Instant::now() + REOPEN_DEADLINE;
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(err @ StoreError::Locked { .. }) => panic!(
                "the writer of the dropped store handles did not release the lock within \
                 {REOPEN_DEADLINE:?}: {err}"
            ),
            Err(other) => panic!("{other}"),
        }
    }
}
