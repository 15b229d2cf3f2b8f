//! The tendhost daemon as a library: configuration, telemetry, the HTTP/WebSocket layer and
//! `run`, the seam that `main` and the tests both drive. `main.rs` only parses the command line
//! and calls in here.

pub mod config;
pub mod http;
pub mod telemetry;

use std::future::Future;
use std::time::Duration;

use color_eyre::eyre::{Result, WrapErr};
use tokio::net::TcpListener;

use tendhost_core::{Fleet, FleetOptions};

use crate::config::Config;

/// How long in-flight requests may take to finish after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long running jobs may take to finish at shutdown before they are marked `interrupted`
/// (their detached upgrades keep running on the hosts; the next start collects them).
pub const JOB_GRACE: Duration = Duration::from_secs(2);

/// Runs the daemon on `listener` until `shutdown` completes, then drains in-flight requests
/// (at most `DRAIN_TIMEOUT`), stops the actors and flushes the store.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    std::fs::create_dir_all(&config.daemon.data_dir).wrap_err_with(|| {
        format!(
            "cannot create data_dir {}",
            config.daemon.data_dir.display()
        )
    })?;
    let addr = listener.local_addr().wrap_err("listener has no address")?;
    let fleet = Fleet::start(
        config.hosts.clone(),
        config.groups.clone(),
        &FleetOptions {
            data_dir: config.daemon.data_dir.clone(),
            max_parallel: config.daemon.max_parallel,
            check_on_start: config.daemon.check_on_start,
            event_buffer: config.daemon.event_buffer,
            event_channel: config.daemon.event_channel,
            ..FleetOptions::default()
        },
        std::collections::HashMap::new(),
        None,
    )
    .wrap_err("cannot start the fleet")?;

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let state = http::AppState::new(&config, fleet.clone(), stop_rx.clone());
    let app = http::router(state);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut drain_rx = stop_rx.clone();

    tracing::info!(%addr, "tendhost listening");
    // The graceful shutdown also waits for upgraded (WebSocket) connections; every session sees
    // the same stop signal and ends after its close frame (`http::ws::CLOSE_TIMEOUT`).
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
        tracing::info!("shutting down: no longer accepting connections");
    });
    let drain_deadline = async move {
        let _ = drain_rx.wait_for(|stop| *stop).await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = server => result.wrap_err("HTTP server failed")?,
        () = drain_deadline => {
            tracing::warn!(timeout = ?DRAIN_TIMEOUT, "in-flight requests did not finish in time; closing them");
        }
    }
    fleet.shutdown(JOB_GRACE).await;
    tracing::info!("tendhost stopped");
    Ok(())
}
