//! The notifier's clock: what "now" is for `unreachable_after` and `digest_at`. In a release
//! build it is the system clock and nothing else. With the `testing` feature a test may pin it
//! ([`crate::testing`]): the service then wakes on every change and reports when it has acted
//! on a time, so digests and unreachable reports are driven by the test, not by waiting.

use jiff::Timestamp;

/// Now, as the notifier sees it.
pub fn now() -> Timestamp {
    #[cfg(feature = "testing")]
    if let Some(pinned) = crate::testing::pinned() {
        return pinned;
    }
    Timestamp::now()
}

/// Wakes the service when a test moves the clock; never completes otherwise.
pub struct Watcher {
    #[cfg(feature = "testing")]
    inner: tokio::sync::watch::Receiver<Option<Timestamp>>,
}

impl Watcher {
    pub fn new() -> Self {
        Self {
            #[cfg(feature = "testing")]
            inner: crate::testing::subscribe(),
        }
    }

    pub async fn changed(&mut self) {
        #[cfg(feature = "testing")]
        if self.inner.changed().await.is_ok() {
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// The service has acted on every time up to `time` (reported to a waiting test).
pub fn settled(time: Timestamp) {
    #[cfg(feature = "testing")]
    crate::testing::report_settled(time);
    #[cfg(not(feature = "testing"))]
    let _ = time;
}
