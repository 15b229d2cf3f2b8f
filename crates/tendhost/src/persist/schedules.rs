//! Where schedule states live: `data_dir/schedules.json` (0600, replaced atomically: temp
//! file, fsync, rename), holding each schedule's `paused`, `last_run` and `last_rollout_id`,
//! so a pause survives a restart and `catch_up` knows the last run. A schedule's run also
//! leaves a row in the audit trail (method `SCHEDULE`, path `/schedules/{name}/run`,
//! token `schedule:{name}`, with the rollout id).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tendhost_core::schedule::{ScheduleState, ScheduleStore};
use tendhost_store::{AuditRecord, Store};

/// The file name inside the data dir.
pub const SCHEDULES_FILE: &str = "schedules.json";

#[derive(Serialize, Deserialize)]
struct StoredSchedule {
    #[serde(default)]
    paused: bool,
    /// Unix epoch milliseconds.
    #[serde(default)]
    last_run_ms: Option<i64>,
    #[serde(default)]
    last_rollout_id: Option<String>,
}

/// Schedule states in the data dir, and audit rows of their runs in the store.
pub struct FileScheduleStore {
    path: PathBuf,
    store: Option<Store>,
}

impl FileScheduleStore {
    pub fn new(data_dir: &Path, store: Option<Store>) -> Self {
        Self {
            path: data_dir.join(SCHEDULES_FILE),
            store,
        }
    }

    /// The states saved by an earlier run (none when the file is missing; an unreadable file
    /// is logged and ignored, so schedules start unpaused rather than not at all).
    pub fn load(&self) -> BTreeMap<String, ScheduleState> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err, "cannot read schedule states");
                return BTreeMap::new();
            }
        };
        let stored: BTreeMap<String, StoredSchedule> = match serde_json::from_str(&text) {
            Ok(stored) => stored,
            Err(err) => {
                tracing::warn!(path = %self.path.display(), %err, "schedule states do not decode; ignored");
                return BTreeMap::new();
            }
        };
        stored
            .into_iter()
            .map(|(name, stored)| {
                let state = ScheduleState {
                    paused: stored.paused,
                    last_run: stored
                        .last_run_ms
                        .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
                    last_rollout_id: stored.last_rollout_id,
                };
                (name, state)
            })
            .collect()
    }

    fn write(&self, text: &str) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

impl ScheduleStore for FileScheduleStore {
    fn save(&self, states: &BTreeMap<String, ScheduleState>) {
        let stored: BTreeMap<&String, StoredSchedule> = states
            .iter()
            .map(|(name, state)| {
                let stored = StoredSchedule {
                    paused: state.paused,
                    last_run_ms: state.last_run.map(Timestamp::as_millisecond),
                    last_rollout_id: state.last_rollout_id.clone(),
                };
                (name, stored)
            })
            .collect();
        let text = serde_json::to_string_pretty(&stored).unwrap_or_default();
        if let Err(err) = self.write(&text) {
            tracing::error!(path = %self.path.display(), %err, "cannot save schedule states");
        }
    }

    fn triggered(&self, schedule: &str, rollout_id: &str) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let record = AuditRecord {
            id: 0,
            time_ms: Timestamp::now().as_millisecond(),
            token: Some(format!("schedule:{schedule}")),
            role: None,
            source: "schedule".to_owned(),
            method: "SCHEDULE".to_owned(),
            path: format!("/schedules/{schedule}/run"),
            host: None,
            job_id: None,
            rollout_id: Some(rollout_id.to_owned()),
            status: Some(202),
            body: None,
        };
        tokio::spawn(async move {
            if let Err(err) = store.insert_audit(record).await {
                tracing::error!(%err, "cannot record a schedule's run in the audit trail");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt as _;

    use tendhost_core::schedule::{ScheduleState, ScheduleStore};

    use crate::persist::schedules::{FileScheduleStore, SCHEDULES_FILE};

    #[test]
    fn states_round_trip_through_a_private_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileScheduleStore::new(dir.path(), None);
        assert!(store.load().is_empty());
        let mut states = BTreeMap::new();
        states.insert(
            "nightly".to_owned(),
            ScheduleState {
                paused: true,
                last_run: Some("2026-11-21T02:00:00Z".parse().unwrap()),
                last_rollout_id: Some("rollout-1".to_owned()),
            },
        );
        store.save(&states);
        assert_eq!(FileScheduleStore::new(dir.path(), None).load(), states);
        let mode = std::fs::metadata(dir.path().join(SCHEDULES_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(SCHEDULES_FILE), "not json").unwrap();
        assert!(store.load().is_empty());
    }
}
