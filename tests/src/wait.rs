//! Waiting in tests: the one deadline every wait of the suite shares, below the test runner's
//! kill (`.config/nextest.toml`: 5 × 60 s), polling for a condition until it holds, and an
//! HTTP client whose requests give up at the same deadline. A
//! wait that runs out panics naming what did not happen and what was seen instead, so a hang
//! is a readable failure rather than a killed test. These are hang guards, never speed
//! assertions: tests do not measure time (benchmarks do).

use std::future::Future;
use std::time::{Duration, Instant};

/// How long any one wait in the suite may take before the test gives up on it. Generous (the
/// machine may be loaded), and well below the 300 s after which nextest kills a test, so the
/// failure message is always printed.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(120);

/// An HTTP client for tests whose every request gives up after [`WAIT_DEADLINE`] (a daemon
/// that never answers fails the request, naming it, instead of hanging the test).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(WAIT_DEADLINE)
        .build()
        .expect("build the HTTP client")
}

/// How often [`until`] and [`until_blocking`] look again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Polls `probe` until it returns `Ok(value)`, and returns the value. `Err(seen)` means "not
/// yet" and says what the probe saw instead.
///
/// # Panics
/// When the probe has not succeeded within [`WAIT_DEADLINE`]: `"{what} did not happen within
/// 120s; last seen: {seen}"`.
pub async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {WAIT_DEADLINE:?}; last seen: {seen}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`until`] for code that cannot await (a blocking probe, polled on this thread).
///
/// # Panics
/// As [`until`].
pub fn until_blocking<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        let seen = match probe() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {WAIT_DEADLINE:?}; last seen: {seen}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Awaits `future`, which is expected to complete by itself (a shutdown, a message, a process
/// exit), and returns its output.
///
/// # Panics
/// When it has not completed within [`WAIT_DEADLINE`]: `"{what} did not happen within 120s"`.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(WAIT_DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within {WAIT_DEADLINE:?}"))
}
