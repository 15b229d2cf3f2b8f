//! Test-only (feature `testing`): a process-wide clock a test pins and moves
//! ([`set_now`]), and [`settled`] to wait until the notification service has acted on a time
//! (digests due, hosts unreachable long enough). nextest runs each test in its own process, so
//! one pinned clock never leaks into another test.

use std::sync::OnceLock;

use jiff::Timestamp;
use tokio::sync::watch;

struct TestClock {
    now: watch::Sender<Option<Timestamp>>,
    settled: watch::Sender<Option<Timestamp>>,
}

fn clock() -> &'static TestClock {
    static CLOCK: OnceLock<TestClock> = OnceLock::new();
    CLOCK.get_or_init(|| TestClock {
        now: watch::channel(None).0,
        settled: watch::channel(None).0,
    })
}

/// Pins the notifier's clock to `time` and wakes the service.
pub fn set_now(time: Timestamp) {
    clock().now.send_replace(Some(time));
}

/// Waits until the service has acted on the pinned time `time` (or a later one).
pub async fn settled(time: Timestamp) {
    let mut settled = clock().settled.subscribe();
    let _ = settled
        .wait_for(|seen| seen.is_some_and(|seen| seen >= time))
        .await;
}

pub(crate) fn pinned() -> Option<Timestamp> {
    *clock().now.borrow()
}

pub(crate) fn subscribe() -> watch::Receiver<Option<Timestamp>> {
    clock().now.subscribe()
}

pub(crate) fn report_settled(time: Timestamp) {
    if pinned().is_some() {
        clock().settled.send_replace(Some(time));
    }
}
