//! The wall clock that schedules and maintenance windows read: [`now`], [`zoned_now`] (in the
//! daemon's time zone) and [`sleep_until`] a wall-clock instant. In a release build this is
//! the system clock. With the `testing` feature a test can set it ([`testing::set`]): the
//! clock then runs on from the time set, and sleepers wake at once to look again, so a test
//! moves to 02:59:58 on a Saturday instead of waiting for it. Nothing but this feature can
//! set it; no API route reaches it.

use std::time::Duration;

use jiff::{Timestamp, Zoned};

/// Longest real sleep between two looks at the clock (a changed system clock is noticed
/// within it).
const MAX_NAP: Duration = Duration::from_secs(30);

/// The current wall-clock time.
pub fn now() -> Timestamp {
    #[cfg(feature = "testing")]
    if let Some(now) = testing::now() {
        return now;
    }
    Timestamp::now()
}

/// [`now`] in the daemon's time zone (what maintenance windows are read in).
pub fn zoned_now() -> Zoned {
    now().to_zoned(jiff::tz::TimeZone::system())
}

/// Sleeps until the wall clock reaches `at` (returns at once when it has).
pub async fn sleep_until(at: Timestamp) {
    while !nap_until(at).await {}
}

/// Sleeps until the wall clock reaches `at`, or less: at most [`MAX_NAP`], and in tests until
/// the clock is set. Returns whether `at` was reached; a caller that plans by the clock plans
/// again when it was not.
pub async fn nap_until(at: Timestamp) -> bool {
    // Registered before the clock is read, so a change in between is not missed.
    #[cfg(feature = "testing")]
    let changed = testing::changed();
    let left = at.duration_since(now());
    if left.is_negative() || left.is_zero() {
        return true;
    }
    let nap = Duration::try_from(left).unwrap_or(MAX_NAP).min(MAX_NAP);
    #[cfg(feature = "testing")]
    tokio::select! {
        () = tokio::time::sleep(nap) => {}
        () = changed => {}
    }
    #[cfg(not(feature = "testing"))]
    tokio::time::sleep(nap).await;
    now() >= at
}

#[cfg(feature = "testing")]
pub mod testing {
    //! The settable clock of the `testing` feature.

    use std::sync::{LazyLock, Mutex, PoisonError};
    use std::time::Instant;

    use jiff::{SignedDuration, Timestamp};
    use tokio::sync::Notify;

    /// The time set and the real instant it was set at.
    static SET: Mutex<Option<(Timestamp, Instant)>> = Mutex::new(None);
    static CHANGED: LazyLock<Notify> = LazyLock::new(Notify::new);

    pub(crate) fn now() -> Option<Timestamp> {
        let set = *SET.lock().unwrap_or_else(PoisonError::into_inner);
        set.map(|(at, since)| {
            let elapsed = SignedDuration::try_from(since.elapsed()).unwrap_or(SignedDuration::ZERO);
            at.checked_add(elapsed).unwrap_or(at)
        })
    }

    /// Completes at the next [`set`] or [`reset`] after this call.
    pub(crate) fn changed() -> std::pin::Pin<Box<tokio::sync::futures::Notified<'static>>> {
        let mut changed = Box::pin(CHANGED.notified());
        changed.as_mut().enable();
        changed
    }

    /// Sets the wall clock of this process to `at` (it runs on from there); every sleeper
    /// looks again.
    pub fn set(at: Timestamp) {
        *SET.lock().unwrap_or_else(PoisonError::into_inner) = Some((at, Instant::now()));
        CHANGED.notify_waiters();
    }

    /// Back to the system clock.
    pub fn reset() {
        *SET.lock().unwrap_or_else(PoisonError::into_inner) = None;
        CHANGED.notify_waiters();
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;

    use crate::clock::{now, sleep_until, testing};

    #[tokio::test]
    async fn a_set_clock_runs_on_and_wakes_sleepers() {
        let start: Timestamp = "2026-11-21T02:59:00Z".parse().unwrap();
        testing::set(start);
        assert!(now() >= start && now() < start + Duration::from_secs(5));
        let sleeper = tokio::spawn(sleep_until(start + Duration::from_secs(3600)));
        tokio::task::yield_now().await;
        testing::set(start + Duration::from_secs(3601));
        tokio::time::timeout(Duration::from_secs(60), sleeper)
            .await
            .expect("the sleeper woke when the clock moved past its time")
            .unwrap();
        testing::reset();
        assert!(now() > "2026-01-01T00:00:00Z".parse().unwrap());
    }
}
