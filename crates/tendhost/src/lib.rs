//! The tendhost daemon as a library: configuration, telemetry, the HTTP/WebSocket layer and
//! `run`, the seam that `main` and the tests both drive. `main.rs` only parses the command line
//! and calls in here.

pub mod api_hosts;
pub mod audit;
pub mod config;
pub mod host_rules;
pub mod http;
pub mod persist;
pub mod reload;
pub mod sd_notify;
pub mod telemetry;
#[cfg(test)]
mod testing;

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::ListenerExt;

use color_eyre::eyre::{Result, WrapErr};
use tokio::net::TcpListener;

use std::sync::Arc;

use jiff::Timestamp;
use tendhost_core::{Fleet, FleetOptions, Restored};
use tendhost_store::Store;

use crate::config::Config;
use crate::persist::StoreBridge;

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
    create_private_dir(&config.daemon.data_dir)?;
    let addr = listener.local_addr().wrap_err("listener has no address")?;

    // The store first: it takes the data dir's lock, so a second daemon stops here, before
    // touching the first one's SSH control sockets.
    let data_dir = config.daemon.data_dir.clone();
    let store_options = tendhost_store::StoreOptions {
        queue: config.daemon.limits.store_queue,
        job_log_max: config.daemon.limits.job_log_max,
    };
    let store = tokio::task::spawn_blocking(move || Store::open_with(&data_dir, store_options))
        .await
        .wrap_err("opening the store panicked")?
        .wrap_err("cannot open the state database")?;
    restrict_db_files(store.db_path());
    let access = Arc::new(access_control(&config, &store)?);
    // TLS after the store's lock, so a second daemon never rewrites the first one's
    // certificates. A bad certificate file comes back as `tendhost_tls::Error` (exit 2).
    let (tls, tls_events) = start_tls(&config, addr)?;
    let recovered = persist::recover(&store)
        .await
        .wrap_err("cannot read the state database")?;
    let bridge = StoreBridge::new(store.clone());

    let mut hosts = config.hosts.clone();
    for record in &recovered.runtime_hosts {
        match http::new_host::host_spec_from_record(
            record,
            &config.defaults,
            &config.daemon.api_hosts,
        ) {
            Ok(spec) if hosts.iter().any(|h| h.name == spec.name) => tracing::warn!(
                host = %spec.name,
                "a host registered through the API now also exists in the config file; the config wins"
            ),
            Ok(spec) => hosts.push(spec),
            Err(err) => {
                tracing::error!(host = %record.name, %err, "stored runtime host is no longer valid; skipped");
            }
        }
    }
    let mut statuses = recovered.statuses;
    let first_seq = u64::try_from(
        store
            .next_seq()
            .await
            .wrap_err("cannot read the event log")?,
    )
    .unwrap_or(1);
    // New ids sort after the newest job's even if the clock went back since it was made.
    let newest_job = store
        .list_jobs(
            tendhost_store::JobFilter::default(),
            tendhost_store::Page {
                offset: 0,
                limit: 1,
            },
        )
        .await
        .wrap_err("cannot read the jobs table")?;
    let fleet = Fleet::start_with(
        hosts,
        config.groups.clone(),
        &FleetOptions {
            data_dir: config.daemon.data_dir.clone(),
            max_parallel: config.daemon.max_parallel,
            check_on_start: config.daemon.check_on_start,
            event_buffer: config.daemon.event_buffer,
            event_channel: config.daemon.event_channel,
            first_seq,
            jobs: tendhost_core::JobsOptions {
                log_memory: config.daemon.limits.job_log_memory,
                keep_finished: config.daemon.limits.keep_finished_jobs,
                // The store has every job's whole log (up to `job_log_max`).
                finished_logs: tendhost_core::FinishedLogs::Drop,
            },
            keep_finished_rollouts: config.daemon.limits.keep_finished_rollouts,
        },
        &mut statuses,
        Some(Arc::clone(&bridge) as Arc<dyn tendhost_core::Persistence>),
        Restored {
            jobs: recovered.interrupted_jobs,
            rollouts: recovered.rollouts,
            transport: Some(Arc::clone(&bridge) as Arc<dyn tendhost_core::events::EventTransport>),
            issued_ids: newest_job.items.into_iter().map(|job| job.id).collect(),
        },
    )
    .wrap_err("cannot start the fleet")?;
    bridge
        .connect(fleet.events())
        .wrap_err("cannot connect the event log")?;
    for host in &recovered.recheck {
        match fleet.check(host).await {
            Ok(job) => tracing::info!(%host, %job, "re-checking a host whose job was interrupted"),
            Err(err) => {
                tracing::warn!(%host, %err, "cannot re-check a host whose job was interrupted");
            }
        }
    }
    let schedule_store =
        persist::schedules::FileScheduleStore::new(&config.daemon.data_dir, Some(store.clone()));
    let saved_schedules = schedule_store.load();
    let schedules = tendhost_core::schedule::Schedules::start(
        fleet.clone(),
        config.schedules.clone(),
        saved_schedules,
        Arc::new(schedule_store),
    );
    let retention = tokio::spawn(persist::retention(
        store.clone(),
        config.daemon.retention_days,
    ));

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let metrics = tendhost_metrics::Metrics::new();
    let metrics = Arc::new(if tls.is_some() {
        metrics.with_certificate()
    } else {
        metrics
    });
    let observed = Arc::clone(&metrics);
    tendhost_exec::set_connect_observer(move |elapsed| observed.observe_ssh_connect(elapsed));
    let observed = Arc::clone(&metrics);
    tendhost_store::set_commit_observer(move |elapsed| observed.observe_store_commit(elapsed));
    let metrics_follower = metrics.follow(&fleet);
    let records = persist::Records::new(store.clone());
    let reload = tokio::spawn(reload_tokens(Arc::clone(&access.keyring)));
    let notify = http::NotifySlot::default();
    let config_reload = tokio::spawn(
        reload::Reloader::new(config.clone(), fleet.clone(), Arc::clone(&access.keyring))
            .with_schedules(schedules.clone())
            .with_notify(Arc::clone(&notify), store.clone())
            .on_hangup(),
    );
    let mut state = http::AppState::new(
        &config,
        fleet.clone(),
        stop_rx.clone(),
        Some(records),
        access,
        metrics,
    );
    if let Some(tls) = &tls {
        state = state.with_tls(tls.clone());
    }
    state = state.with_schedules(schedules.clone());
    let n_ended = store
        .fail_pending_deliveries(
            Timestamp::now().as_millisecond(),
            "the daemon stopped before delivering it".to_owned(),
        )
        .await
        .wrap_err("cannot read the notification deliveries")?;
    if n_ended > 0 {
        tracing::warn!(
            n_ended,
            "notifications still pending at the last stop are recorded as failed"
        );
    }
    *notify
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) =
        start_notify(&config, &fleet, &store)?;
    state = state.with_notify(Arc::clone(&notify));
    let tls_forward = tokio::spawn(forward_tls_events(tls_events, fleet.clone()));
    // The plain listener: redirects to https, and/or the ACME HTTP-01 answers.
    let tls_config = &config.daemon.tls;
    let redirect = match (tls_config.acme_http.or(tls_config.redirect_http), &tls) {
        (Some(plain_addr), Some(tls)) => {
            let plain = http::redirect::Plain {
                redirect: tls_config.redirect_http == Some(plain_addr),
                acme: tls_config.acme_http.map(|_| tls.clone()),
            };
            let what = if plain.redirect {
                "redirect_http"
            } else {
                "the ACME HTTP-01 address"
            };
            Some(
                http::redirect::spawn(plain_addr, addr.port(), plain, stop_rx.clone())
                    .await
                    .wrap_err_with(|| format!("cannot listen on {what} {plain_addr}"))?,
            )
        }
        _ => None,
    };
    let app = http::router(state);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut drain_rx = stop_rx.clone();

    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, "tendhost listening");
    sd_notify::notify(&format!("READY=1\nSTATUS=listening on {scheme}://{addr}"));
    // The graceful shutdown also waits for upgraded (WebSocket) connections; every session sees
    // the same stop signal and ends after its close frame (`http::ws::CLOSE_TIMEOUT`). With TLS
    // the same `axum::serve` runs over `tendhost_tls::TlsListener`, so this holds for both.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let graceful = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
        sd_notify::notify("STOPPING=1\nSTATUS=shutting down");
        tracing::info!("shutting down: no longer accepting connections");
    };
    let server: std::pin::Pin<Box<dyn Future<Output = std::io::Result<()>> + Send>> = match &tls {
        Some(tls) => {
            // `tap_io` makes axum's `ConnectInfo<SocketAddr>` work for this listener as it
            // does for a plain `TcpListener`; it also turns Nagle off like a browser expects.
            let listener = tendhost_tls::TlsListener::new(listener, tls.server_config())
                .wrap_err("cannot start the TLS listener")?
                .tap_io(|stream| {
                    let _ = stream.get_ref().0.set_nodelay(true);
                });
            // Both listeners are up (the plain one is bound above): ACME may order now.
            tls.listeners_ready();
            Box::pin(
                axum::serve(listener, app)
                    .with_graceful_shutdown(graceful)
                    .into_future(),
            )
        }
        None => Box::pin(
            axum::serve(listener, app)
                .with_graceful_shutdown(graceful)
                .into_future(),
        ),
    };
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
    schedules.stop();
    fleet.shutdown(JOB_GRACE).await;
    retention.abort();
    reload.abort();
    config_reload.abort();
    tls_forward.abort();
    if let Some(redirect) = redirect {
        redirect.abort();
    }
    drop(tls);
    metrics_follower.abort();
    // Out of the slot, whoever still holds the slot: its tasks stop now.
    drop(
        notify
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(),
    );
    store
        .flush()
        .await
        .wrap_err("cannot flush the state database")?;
    drop(bridge);
    store
        .close()
        .await
        .wrap_err("cannot close the state database")?;
    tracing::info!("tendhost stopped");
    Ok(())
}

/// Starts the notifiers of `[[notify]]` (none: no service). Deliveries are recorded in the
/// store; their tasks stop when the service is dropped (at shutdown, or replaced by a reload).
pub(crate) fn start_notify(
    config: &Config,
    fleet: &Fleet,
    store: &Store,
) -> Result<Option<Arc<tendhost_notify::Service>>> {
    if config.notify.is_empty() {
        return Ok(None);
    }
    let log = Arc::new(persist::DeliveryLogStore::new(store.clone()));
    let service = tendhost_notify::Service::start(
        fleet,
        config.notify.clone(),
        log,
        config.daemon.public_url.clone(),
    )
    .wrap_err("cannot start the notifiers")?;
    for (name, kind) in service.notifiers() {
        tracing::info!(notifier = name, kind, "notifier ready");
    }
    Ok(Some(Arc::new(service)))
}

/// Starts the certificate service when TLS is on; with it off, warns when the bind address is
/// reachable from other machines. Events come out on the returned channel.
fn start_tls(
    config: &Config,
    addr: SocketAddr,
) -> Result<(
    Option<tendhost_tls::Tls>,
    tokio::sync::mpsc::UnboundedReceiver<tendhost_tls::TlsEvent>,
)> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let Some(mode) = &config.daemon.tls.mode else {
        if !addr.ip().is_loopback() {
            tracing::warn!(
                %addr,
                "TLS is off (daemon.tls.mode = \"off\") on an address other machines can reach: tokens, job logs and pending updates cross the network in clear text"
            );
        }
        return Ok((None, rx));
    };
    let tls = tendhost_tls::Tls::start(mode.clone(), move |event| {
        let _ = tx.send(event);
    })?;
    let status = tls.status();
    tracing::info!(
        mode = mode.name(),
        serial = %status.cert.serial,
        sans = ?status.cert.sans,
        not_after = %http::tls::time(status.cert.not_after),
        temporary = status.temporary,
        "TLS certificate loaded"
    );
    Ok((Some(tls), rx))
}

/// The CA certificate of a `self-signed` daemon (`tendhost tls ca`), or why there is none.
pub fn tls_ca_pem(config: &Config) -> Result<String, String> {
    let Some(tendhost_tls::Mode::SelfSigned(settings)) = &config.daemon.tls.mode else {
        return Err(format!(
            "{}: the daemon has its own CA only with [daemon.tls] mode = \"self-signed\"",
            config.source.display()
        ));
    };
    let path = tendhost_tls::ca_path(settings);
    std::fs::read_to_string(&path).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{}: no CA yet; the daemon creates it at its first start with mode = \"self-signed\"",
            path.display()
        ),
        _ => format!("{}: cannot read: {err}", path.display()),
    })
}

/// Publishes the certificate service's events on the event bus (`certificate_renewed`,
/// `certificate_reload_failed`, `certificate_renewal_failed`).
async fn forward_tls_events(
    mut events: tokio::sync::mpsc::UnboundedReceiver<tendhost_tls::TlsEvent>,
    fleet: Fleet,
) {
    use tendhost_core::events::EventKind;
    while let Some(event) = events.recv().await {
        let kind = match event {
            tendhost_tls::TlsEvent::Renewed { serial, not_after } => {
                EventKind::CertificateRenewed {
                    serial,
                    not_after: jiff::Timestamp::try_from(not_after)
                        .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                }
            }
            tendhost_tls::TlsEvent::ReloadFailed { path, error } => {
                EventKind::CertificateReloadFailed {
                    path: path.display().to_string(),
                    error,
                }
            }
            tendhost_tls::TlsEvent::RenewalFailed {
                error,
                next_attempt,
            } => EventKind::CertificateRenewalFailed {
                error,
                next_attempt: jiff::Timestamp::try_from(next_attempt)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
            },
        };
        if let Err(kind) = fleet.announce(kind) {
            tracing::error!(?kind, "not a daemon event; not published");
        }
    }
}

/// Creates `data_dir` (and parents) and makes it 0700: it holds the state database, SSH
/// control sockets and known_hosts, and the bootstrap token.
fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .wrap_err_with(|| format!("cannot create data_dir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .wrap_err_with(|| format!("cannot make data_dir {} private (0700)", dir.display()))
}

/// The database and its WAL files hold job logs and host inventories: 0600.
fn restrict_db_files(db: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let path = std::path::PathBuf::from(path);
        if path.exists()
            && let Err(err) =
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        {
            tracing::warn!(path = %path.display(), %err, "cannot make the database file 0600");
        }
    }
}

/// Tokens (config, tokens file, or the bootstrap admin token), the limiter and the audit log.
fn access_control(config: &Config, store: &Store) -> Result<http::auth::AccessControl> {
    let auth = &config.daemon.auth;
    let keyring = if !auth.enabled {
        tracing::warn!(
            bind = %config.daemon.bind,
            "API authentication is disabled (daemon.auth.enabled = false): anyone who can reach this loopback port can act on every host"
        );
        tendhost_auth::Keyring::fixed(Vec::new())
    } else if auth.tokens.is_empty() && auth.tokens_file.is_none() {
        let bootstrap = tendhost_auth::load_or_create_bootstrap(&config.daemon.data_dir)
            .map_err(|err| color_eyre::eyre::eyre!("cannot set up the bootstrap token: {err}"))?;
        tracing::info!(
            path = %bootstrap.path.display(),
            created = bootstrap.created,
            "no API tokens configured: the admin token named \"bootstrap\" is in this file (mode 0600)"
        );
        tendhost_auth::Keyring::fixed(vec![bootstrap.entry])
    } else {
        tendhost_auth::Keyring::new(auth.tokens.clone(), auth.tokens_file.clone())
            .map_err(|errors| color_eyre::eyre::eyre!("bad tokens_file:\n{}", errors.join("\n")))?
    };
    let sessions = if auth.enabled {
        Some(
            tendhost_auth::Sessions::load_or_create(
                &config.daemon.data_dir,
                http::auth::unix_now(),
            )
            .map_err(|err| {
                color_eyre::eyre::eyre!("cannot set up the dashboard's sessions: {err}")
            })?,
        )
    } else {
        None
    };
    Ok(http::auth::AccessControl {
        enabled: auth.enabled,
        keyring: Arc::new(keyring),
        limiter: tendhost_auth::FailureLimiter::default(),
        tickets: tendhost_auth::TicketBook::default(),
        sessions,
        trusted_proxies: config.daemon.trusted_proxies.clone(),
        audit: Some(audit::AuditLog::new(store.clone())),
    })
}

/// How often the tokens file is looked at for changes.
const TOKENS_FILE_POLL: Duration = Duration::from_secs(2);

/// Re-reads the tokens file when it changes (SIGHUP reads it again through the config reload,
/// `reload.rs`); a bad file keeps the last good set.
async fn reload_tokens(keyring: Arc<tendhost_auth::Keyring>) {
    let Some(path) = keyring.tokens_file().map(std::path::Path::to_path_buf) else {
        return;
    };
    let mut tick = tokio::time::interval(TOKENS_FILE_POLL);
    loop {
        tick.tick().await;
        match keyring.reload(false) {
            Ok(tendhost_auth::Reloaded::Unchanged) => {}
            Ok(tendhost_auth::Reloaded::Applied { n_tokens }) => {
                tracing::info!(path = %path.display(), n_tokens, "tokens reloaded");
            }
            Err(errors) => {
                for error in &errors {
                    tracing::error!(problem = %error, "tokens_file not applied; the previous tokens stay in force");
                }
            }
        }
    }
}
