//! A process-wide observer of group commit times (the daemon feeds it to its Prometheus
//! histogram): how long each `COMMIT` of the writer thread took, fsync included.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

type Observer = Arc<dyn Fn(Duration) + Send + Sync>;

static COMMIT: RwLock<Option<Observer>> = RwLock::new(None);

/// Calls `observer` with the duration of every commit of the store's writer.
pub fn set_commit_observer(observer: impl Fn(Duration) + Send + Sync + 'static) {
    *COMMIT.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(observer));
}

pub(crate) fn committed(elapsed: Duration) {
    let observer = COMMIT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(observer) = observer {
        observer(elapsed);
    }
}
