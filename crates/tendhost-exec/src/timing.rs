//! A process-wide observer of SSH master connection times (the daemon feeds it to its
//! Prometheus histogram). One daemon per process; setting it again replaces the observer.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

type Observer = Arc<dyn Fn(Duration) + Send + Sync>;

static CONNECT: RwLock<Option<Observer>> = RwLock::new(None);

/// Calls `observer` with the duration of every SSH master connection that succeeded.
pub fn set_connect_observer(observer: impl Fn(Duration) + Send + Sync + 'static) {
    *CONNECT.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(observer));
}

pub(crate) fn connected(elapsed: Duration) {
    let observer = CONNECT
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(observer) = observer {
        observer(elapsed);
    }
}
