//! The running TLS service: the certificate resolver read on every handshake, the status
//! behind `GET /tls`, and the background task that keeps the certificate fresh (renewal in
//! `self-signed` mode, watching the files in `files` mode, ordering from the CA in `acme`
//! mode).
//!
//! A new pair is always complete and checked before it is swapped in; a refused one leaves
//! the old pair serving and is reported as a [`TlsEvent::ReloadFailed`] and in `last_error`.
//! In `acme` mode a failed order is a [`TlsEvent::RenewalFailed`] with the time of the next
//! attempt, which backs off; until the first certificate is issued a temporary self-signed
//! one serves, so the API is up meanwhile.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::{Notify, watch};

use crate::acme::{ACME_TLS_ALPN, Issuer};
use crate::ca::{Ca, Paths};
use crate::certs::{CertInfo, Loaded, load_pair};
use crate::fsio::{self, CERT_MODE, KEY_MODE};
use crate::{Acme, Challenge, Error, Mode, SelfSigned};

/// How often the watched files are looked at in `files` mode.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// How long a changed pair may stay unusable before the change is reported as failed: a tool
/// that writes the certificate and then the key gets this long between the two.
pub const SETTLE: Duration = Duration::from_secs(3);

/// Longest wait between two attempts of a failed renewal.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the service reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsEvent {
    /// A new certificate is being served (renewed, or new files loaded).
    Renewed {
        serial: String,
        not_after: SystemTime,
    },
    /// A replacement was refused; the old certificate keeps serving.
    ReloadFailed { path: PathBuf, error: String },
    /// The ACME CA did not issue a certificate; the current one keeps serving and the next
    /// attempt is at `next_attempt`.
    RenewalFailed {
        error: String,
        next_attempt: SystemTime,
    },
}

/// The served certificate and what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsStatus {
    /// `"files"`, `"self-signed"` or `"acme"`.
    pub mode: &'static str,
    pub cert: CertInfo,
    /// `acme`: the served certificate is the temporary self-signed one (nothing issued yet).
    pub temporary: bool,
    /// When the next renewal (or, after a failure, the next attempt) is due (`self-signed`
    /// and `acme`).
    pub next_renewal: Option<SystemTime>,
    /// Why the last reload or renewal failed, until one succeeds.
    pub last_error: Option<String>,
}

/// Why `renew` did not renew.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("renewal is only possible in self-signed and acme mode; this daemon runs in {0} mode")]
    NotSupported(&'static str),
    #[error("{0}")]
    Failed(Error),
}

type EventSink = Box<dyn Fn(TlsEvent) + Send + Sync>;

/// The running service; cheap to clone. The background task stops with the last clone.
#[derive(Clone)]
pub struct Tls {
    inner: Arc<Inner>,
    _task: Arc<TaskGuard>,
}

struct Inner {
    mode: Mode,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    status: Mutex<TlsStatus>,
    on_event: EventSink,
    ca: Option<Ca>,
    acme: Option<Issuer>,
    /// Failed ACME attempts in a row (the backoff).
    acme_failures: AtomicU32,
    /// Turns `true` once the listeners that answer ACME challenges are up.
    listening: watch::Sender<bool>,
    /// Serialises renewals (timer and `POST /tls/renew`).
    renewing: tokio::sync::Mutex<()>,
    /// Wakes the renewal timer when a manual renewal moved the due time.
    rescheduled: Notify,
}

struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("mode", &self.inner.mode.name())
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Loads (or, in `self-signed` mode, creates) the certificate and starts the background
    /// task. Must run inside a tokio runtime. Errors name the file at fault.
    pub fn start(
        mode: Mode,
        on_event: impl Fn(TlsEvent) + Send + Sync + 'static,
    ) -> Result<Tls, Error> {
        let provider = crate::provider();
        let (mut ca, mut acme, mut temporary) = (None, None, false);
        let (loaded, next_renewal) = match &mode {
            Mode::Files {
                cert_path,
                key_path,
            } => {
                warn_if_readable_by_others(key_path);
                (load_pair(cert_path, key_path, &provider)?, None)
            }
            Mode::SelfSigned(settings) => {
                let (own_ca, loaded) = start_self_signed(settings, &provider)?;
                let next = renewal_due(&loaded.info, settings);
                ca = Some(own_ca);
                (loaded, Some(next))
            }
            Mode::Acme(settings) => {
                let (issuer, stored) = start_acme(settings, &provider)?;
                acme = Some(issuer);
                if let Some(loaded) = stored {
                    let next = acme_due(&loaded.info, settings);
                    (loaded, Some(next))
                } else {
                    temporary = true;
                    let loaded = crate::acme::temporary(&settings.domains, &provider)?;
                    (loaded, Some(SystemTime::now()))
                }
            }
        };
        let status = TlsStatus {
            mode: mode.name(),
            cert: loaded.info.clone(),
            temporary,
            next_renewal,
            last_error: None,
        };
        let inner = Arc::new(Inner {
            mode,
            provider,
            current: RwLock::new(loaded.key),
            status: Mutex::new(status),
            on_event: Box::new(on_event),
            ca,
            acme,
            acme_failures: AtomicU32::new(0),
            listening: watch::Sender::new(false),
            renewing: tokio::sync::Mutex::new(()),
            rescheduled: Notify::new(),
        });
        let weak = Arc::downgrade(&inner);
        let task = match &inner.mode {
            Mode::Files { .. } => tokio::spawn(watch_files(weak)),
            Mode::SelfSigned(_) => tokio::spawn(renew_on_time(weak)),
            Mode::Acme(_) => tokio::spawn(order_on_time(weak)),
        };
        Ok(Tls {
            inner,
            _task: Arc::new(TaskGuard(task)),
        })
    }

    /// The served certificate and the renewal schedule.
    pub fn status(&self) -> TlsStatus {
        self.inner.status.lock().expect("tls status lock").clone()
    }

    /// The CA certificate (`self-signed` mode).
    pub fn ca_pem(&self) -> Option<&str> {
        self.inner.ca.as_ref().map(|ca| ca.pem.as_str())
    }

    /// SHA-256 fingerprint of the CA certificate (`self-signed` mode).
    pub fn ca_fingerprint(&self) -> Option<String> {
        self.inner.ca.as_ref().map(Ca::fingerprint)
    }

    /// Issues (`self-signed`) or orders (`acme`) a new certificate now and swaps it in.
    pub async fn renew(&self) -> Result<TlsStatus, RenewError> {
        let result = match self.inner.mode {
            Mode::SelfSigned(_) => renew(&self.inner).await,
            Mode::Acme(_) => order(&self.inner).await,
            Mode::Files { .. } => return Err(RenewError::NotSupported(self.inner.mode.name())),
        };
        // Success or failure, the next renewal (or attempt) moved.
        self.inner.rescheduled.notify_one();
        result.map_err(RenewError::Failed)?;
        Ok(self.status())
    }

    /// Tells the service that the listeners answering ACME challenges (the HTTPS listener,
    /// the HTTP-01 one) are up: `acme` mode places no order before.
    pub fn listeners_ready(&self) {
        self.inner.listening.send_replace(true);
    }

    /// The answer to an HTTP-01 challenge of the order in progress (`acme` mode).
    pub fn http01_answer(&self, token: &str) -> Option<String> {
        self.inner
            .acme
            .as_ref()
            .and_then(|issuer| issuer.answers.http01(token))
    }

    /// A rustls server configuration that reads the current certificate on every handshake
    /// (ALPN `http/1.1`, and `acme-tls/1` when TLS-ALPN-01 answers challenges).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::clone(&self.inner.provider))
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default protocol versions")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Resolver(Arc::clone(&self.inner))));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if let Mode::Acme(Acme {
            challenge: Challenge::TlsAlpn01,
            ..
        }) = &self.inner.mode
        {
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
        Arc::new(config)
    }
}

/// Reads the served pair on every handshake.
struct Resolver(Arc<Inner>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // A TLS-ALPN-01 validation offers only `acme-tls/1` and gets the challenge certificate
        // for its name, or no handshake at all.
        if let Some(issuer) = &self.0.acme
            && client_hello
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|protocol| protocol == ACME_TLS_ALPN))
        {
            return client_hello
                .server_name()
                .and_then(|name| issuer.answers.alpn(name));
        }
        Some(Arc::clone(&self.0.current.read().expect("tls cert lock")))
    }
}

impl Inner {
    fn swap(&self, loaded: Loaded, next_renewal: Option<SystemTime>) {
        *self.current.write().expect("tls cert lock") = loaded.key;
        let mut status = self.status.lock().expect("tls status lock");
        status.cert = loaded.info.clone();
        status.temporary = false;
        status.next_renewal = next_renewal;
        status.last_error = None;
        drop(status);
        tracing::info!(serial = %loaded.info.serial, not_after = %humantime_rfc3339(loaded.info.not_after), "serving a new TLS certificate");
        (self.on_event)(TlsEvent::Renewed {
            serial: loaded.info.serial,
            not_after: loaded.info.not_after,
        });
    }

    /// A new server certificate, in place and loaded back (`self-signed`).
    fn issue(&self) -> Result<Loaded, Error> {
        match (&self.mode, &self.ca) {
            (Mode::SelfSigned(settings), Some(ca)) => {
                issue_into_place(ca, settings, &Paths::new(&settings.dir), &self.provider)
            }
            _ => Err(Error::Issue("no CA in this mode".to_owned())),
        }
    }

    fn failed(&self, path: &Path, error: String) {
        tracing::warn!(path = %path.display(), %error, "TLS certificate not replaced; the old one keeps serving");
        self.status.lock().expect("tls status lock").last_error = Some(error.clone());
        (self.on_event)(TlsEvent::ReloadFailed {
            path: path.to_owned(),
            error,
        });
    }

    fn renewal_failed(&self, error: String, next_attempt: SystemTime) {
        tracing::warn!(%error, next_attempt = %humantime_rfc3339(next_attempt), "no certificate from the ACME CA; the current one keeps serving");
        let mut status = self.status.lock().expect("tls status lock");
        status.last_error = Some(error.clone());
        status.next_renewal = Some(next_attempt);
        drop(status);
        (self.on_event)(TlsEvent::RenewalFailed {
            error,
            next_attempt,
        });
    }
}

fn humantime_rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// When a certificate is to be renewed: `renew_before` ahead of its end.
fn renewal_due(info: &CertInfo, settings: &SelfSigned) -> SystemTime {
    info.not_after
        .checked_sub(settings.renew_before)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The CA (loaded or created) and a usable server certificate: the stored one when it is for
/// the configured names, signed by this CA and not due, otherwise a new one.
fn start_self_signed(
    settings: &SelfSigned,
    provider: &CryptoProvider,
) -> Result<(Ca, Loaded), Error> {
    fsio::private_dir(&settings.dir)
        .map_err(|err| Error::file(&settings.dir, format!("cannot create: {err}")))?;
    let paths = Paths::new(&settings.dir);
    let (ca, created) = Ca::load_or_create(&paths)?;
    if created {
        tracing::info!(path = %paths.ca_cert.display(), "created the daemon's TLS certificate authority");
    }
    tracing::info!(fingerprint = %ca.fingerprint(), path = %paths.ca_cert.display(), "TLS CA (SHA-256)");
    let stored = if paths.server_cert.exists() || paths.server_key.exists() {
        match load_pair(&paths.server_cert, &paths.server_key, provider) {
            Ok(loaded) => Some(loaded),
            Err(err) => {
                tracing::warn!(%err, "stored server certificate unusable; issuing a new one");
                None
            }
        }
    } else {
        None
    };
    let wanted: Vec<String> = settings.names.iter().map(ToString::to_string).collect();
    let reuse = stored.filter(|loaded| {
        let same_names = loaded.info.sans == wanted;
        let same_ca = loaded
            .key
            .end_entity_cert()
            .is_ok_and(|leaf| crate::certs::signed_by(leaf, &ca.der));
        if !same_ca {
            tracing::info!("the stored server certificate is not from this CA; issuing a new one");
        }
        let now = SystemTime::now();
        let fresh = now < renewal_due(&loaded.info, settings);
        // A certificate that outlives the configured lifetime (it was shortened) is replaced.
        let within_lifetime = loaded.info.not_after <= now + settings.lifetime;
        if !same_names {
            tracing::info!(old = ?loaded.info.sans, new = ?wanted, "tls.names changed; issuing a new server certificate");
        }
        same_names && same_ca && fresh && within_lifetime
    });
    let loaded = match reuse {
        Some(loaded) => loaded,
        None => issue_into_place(&ca, settings, &paths, provider)?,
    };
    Ok((ca, loaded))
}

/// Issues a server certificate into temporary files, renames them into place and loads the
/// pair back from there.
fn issue_into_place(
    ca: &Ca,
    settings: &SelfSigned,
    paths: &Paths,
    provider: &CryptoProvider,
) -> Result<Loaded, Error> {
    let (cert_pem, key_pem) = ca.issue(&settings.names, settings.lifetime)?;
    let write = |path: &Path, contents: &str, mode| {
        fsio::write_atomic(path, contents.as_bytes(), mode)
            .map_err(|err| Error::file(path, format!("cannot write: {err}")))
    };
    write(&paths.server_key, &key_pem, KEY_MODE)?;
    write(&paths.server_cert, &cert_pem, CERT_MODE)?;
    load_pair(&paths.server_cert, &paths.server_key, provider)
}

async fn renew(inner: &Arc<Inner>) -> Result<(), Error> {
    let Mode::SelfSigned(settings) = &inner.mode else {
        return Ok(());
    };
    let _renewing = inner.renewing.lock().await;
    let worker = Arc::clone(inner);
    let result = tokio::task::spawn_blocking(move || worker.issue())
        .await
        .unwrap_or_else(|err| Err(Error::Issue(format!("renewal task failed: {err}"))));
    match result {
        Ok(loaded) => {
            let next = renewal_due(&loaded.info, settings);
            inner.swap(loaded, Some(next));
            Ok(())
        }
        Err(err) => {
            inner.failed(&Paths::new(&settings.dir).server_cert, err.to_string());
            Err(err)
        }
    }
}

/// Sleeps until the certificate's next renewal (or retry) is due, looking again when it is
/// rescheduled and at least once a minute (suspend, clock changes); `None` once the service is
/// gone.
async fn until_due(inner: &std::sync::Weak<Inner>) -> Option<std::sync::Arc<Inner>> {
    loop {
        let strong = inner.upgrade()?;
        let due = strong
            .status
            .lock()
            .expect("tls status lock")
            .next_renewal
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let wait = due
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(RETRY_MAX);
        let woken = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = strong.rescheduled.notified() => true,
        };
        if !woken && SystemTime::now() >= due {
            return Some(strong);
        }
    }
}

/// `self-signed`: sleeps until the renewal is due, renews, repeats; a failed renewal is tried
/// again after a pause that grows up to a minute.
async fn renew_on_time(inner: std::sync::Weak<Inner>) {
    let mut retry = Duration::from_secs(1);
    while let Some(strong) = until_due(&inner).await {
        if renew(&strong).await.is_ok() {
            retry = Duration::from_secs(1);
        } else {
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
        }
    }
}

/// `acme`: the issuer (its `ca_roots` read) and the stored certificate when it is usable and
/// for the configured domains.
fn start_acme(
    settings: &Acme,
    provider: &Arc<CryptoProvider>,
) -> Result<(Issuer, Option<Loaded>), Error> {
    for dir in settings
        .dir
        .parent()
        .into_iter()
        .chain([settings.dir.as_path()])
    {
        fsio::private_dir(dir).map_err(|err| Error::file(dir, format!("cannot create: {err}")))?;
    }
    let issuer = Issuer::new(settings, Arc::clone(provider))?;
    let paths = issuer.paths();
    paths.restrict()?;
    if !(paths.cert.exists() && paths.key.exists()) {
        tracing::info!(domains = ?settings.domains, "no ACME certificate yet; serving a temporary self-signed one until the CA issues one");
        return Ok((issuer, None));
    }
    let stored = match load_pair(&paths.cert, &paths.key, provider) {
        Ok(loaded) => loaded,
        Err(err) => {
            tracing::warn!(%err, "stored ACME certificate unusable; ordering a new one");
            return Ok((issuer, None));
        }
    };
    let mut served: Vec<&str> = stored.info.sans.iter().map(String::as_str).collect();
    let mut wanted: Vec<&str> = settings.domains.iter().map(String::as_str).collect();
    served.sort_unstable();
    wanted.sort_unstable();
    if served != wanted {
        tracing::info!(old = ?stored.info.sans, new = ?settings.domains, "acme.domains changed; ordering a new certificate");
        return Ok((issuer, None));
    }
    Ok((issuer, Some(stored)))
}

/// When an ACME certificate is to be renewed: `renew_before` ahead of its end, or half-way
/// through its validity when `renew_before` is not shorter than the validity (else every new
/// certificate would be due at once, and the CA asked again and again).
fn acme_due(info: &CertInfo, settings: &Acme) -> SystemTime {
    let lifetime = validity(info);
    if settings.renew_before < lifetime {
        info.not_after - settings.renew_before
    } else {
        info.not_before + lifetime / 2
    }
}

fn validity(info: &CertInfo) -> Duration {
    info.not_after
        .duration_since(info.not_before)
        .unwrap_or_default()
}

/// `acme`: one attempt to order a certificate and swap it in; a failure schedules the next
/// attempt with backoff and is reported.
async fn order(inner: &Arc<Inner>) -> Result<(), Error> {
    let (Mode::Acme(settings), Some(issuer)) = (&inner.mode, &inner.acme) else {
        return Ok(());
    };
    let _renewing = inner.renewing.lock().await;
    let result = match issuer.order().await {
        Ok(issued) => {
            let paths = issuer.paths();
            paths
                .store_pair(&issued.chain_pem, &issued.key_pem)
                .map_err(|err| err.to_string())
                .and_then(|()| {
                    load_pair(&paths.cert, &paths.key, &inner.provider)
                        .map_err(|err| format!("the CA's certificate is unusable: {err}"))
                })
        }
        Err(error) => Err(error),
    };
    match result {
        Ok(loaded) => {
            inner.acme_failures.store(0, Ordering::Relaxed);
            if settings.renew_before >= validity(&loaded.info) {
                tracing::warn!(renew_before = ?settings.renew_before, "acme.renew_before is not shorter than the validity of the CA's certificates; renewing half-way through instead");
            }
            let next = acme_due(&loaded.info, settings);
            inner.swap(loaded, Some(next));
            Ok(())
        }
        Err(error) => {
            let n_failures = inner.acme_failures.fetch_add(1, Ordering::Relaxed) + 1;
            let next_attempt =
                SystemTime::now() + crate::acme::retry_pause(settings.retry, n_failures);
            inner.renewal_failed(error.clone(), next_attempt);
            Err(Error::Acme(error))
        }
    }
}

/// `acme`: once the listeners are up, orders whenever the certificate (or the next attempt
/// after a failure) is due.
async fn order_on_time(inner: std::sync::Weak<Inner>) {
    let Some(mut listening) = inner.upgrade().map(|inner| inner.listening.subscribe()) else {
        return;
    };
    if listening.wait_for(|up| *up).await.is_err() {
        return;
    }
    while let Some(strong) = until_due(&inner).await {
        let _ = order(&strong).await;
    }
}

/// A key file placed by another tool is left as it is, but one that others can read is worth
/// a warning.
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the TLS key file is readable by other users; make it 0600"
        );
    }
}

/// Identity of a file as seen by `stat`: changes when the file is replaced or rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(u64, u64, i64, i64, u64)>);

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(std::fs::metadata(path).ok().map(|meta| {
        (
            meta.dev(),
            meta.ino(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.size(),
        )
    }))
}

/// `files`: looks at both files every `WATCH_INTERVAL`. A change is loaded as soon as the pair
/// is usable; a pair still unusable `SETTLE` after the last change is reported once.
async fn watch_files(inner: std::sync::Weak<Inner>) {
    let (cert_path, key_path) = match inner.upgrade().as_deref().map(|inner| &inner.mode) {
        Some(Mode::Files {
            cert_path,
            key_path,
        }) => (cert_path.clone(), key_path.clone()),
        _ => return,
    };
    let mut applied = (stamp(&cert_path), stamp(&key_path));
    let mut seen = applied.clone();
    let mut changed_at = tokio::time::Instant::now();
    let mut reported = false;
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let now = (stamp(&cert_path), stamp(&key_path));
        if now != seen {
            seen = now.clone();
            changed_at = tokio::time::Instant::now();
            reported = false;
        }
        if now == applied || reported {
            continue;
        }
        let (cert, key, provider) = (
            cert_path.clone(),
            key_path.clone(),
            Arc::clone(&inner.provider),
        );
        let result = tokio::task::spawn_blocking(move || load_pair(&cert, &key, &provider))
            .await
            .unwrap_or_else(|err| Err(Error::Issue(format!("reload task failed: {err}"))));
        match result {
            Ok(loaded) => {
                applied = now;
                inner.swap(loaded, None);
            }
            Err(err) if changed_at.elapsed() >= SETTLE => {
                reported = true;
                let path = match &err {
                    Error::File { path, .. } => path.clone(),
                    Error::Issue(_) | Error::Acme(_) => cert_path.clone(),
                };
                inner.failed(&path, err.to_string());
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::San;

    fn settings(dir: &Path) -> SelfSigned {
        SelfSigned {
            dir: dir.join("tls"),
            names: vec![San::Dns("localhost".into())],
            lifetime: Duration::from_secs(3600),
            renew_before: Duration::from_secs(1200),
        }
    }

    fn acme_settings(dir: &Path) -> Acme {
        Acme {
            dir: dir.join("tls/acme"),
            // Nothing listens there; no order is placed before `listeners_ready` anyway.
            directory: "https://127.0.0.1:9/dir".to_owned(),
            email: None,
            domains: vec!["a.example.org".to_owned()],
            challenge: Challenge::Http01,
            renew_before: Duration::from_secs(1200),
            ca_roots: None,
            retry: Duration::from_secs(1),
        }
    }

    #[tokio::test]
    async fn acme_serves_a_temporary_certificate_until_one_is_stored_for_its_domains() {
        let dir = tempfile::tempdir().unwrap();
        let settings = acme_settings(dir.path());
        let tls = Tls::start(Mode::Acme(settings.clone()), |_| {}).unwrap();
        let status = tls.status();
        assert!(status.temporary);
        assert_eq!(status.mode, "acme");
        assert_eq!(status.cert.sans, ["a.example.org"]);
        assert!(
            status.next_renewal.unwrap() <= SystemTime::now(),
            "ordered at once"
        );
        assert!(settings.dir.is_dir());
        drop(tls);

        // A stored pair for the domains (as an issued one would be) is served, not due yet.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(settings.domains.clone()).unwrap();
        let now = SystemTime::now();
        params.not_before = now.into();
        params.not_after = (now + Duration::from_secs(3600)).into();
        let cert = params.self_signed(&key).unwrap();
        let paths = crate::acme::Paths::new(&settings.dir);
        paths.store_pair(&cert.pem(), &key.serialize_pem()).unwrap();
        let tls = Tls::start(Mode::Acme(settings.clone()), |_| {}).unwrap();
        let status = tls.status();
        assert!(!status.temporary);
        let next = status.next_renewal.unwrap();
        assert_eq!(
            status.cert.not_after.duration_since(next).unwrap(),
            settings.renew_before
        );
        drop(tls);

        // Other domains: the stored certificate does not fit, a temporary one serves.
        let other = Acme {
            domains: vec!["b.example.org".to_owned()],
            ..settings.clone()
        };
        let tls = Tls::start(Mode::Acme(other), |_| {}).unwrap();
        assert!(tls.status().temporary);
        assert_eq!(tls.status().cert.sans, ["b.example.org"]);
        drop(tls);

        // A renew_before longer than the validity: half-way through instead.
        let long = Acme {
            renew_before: Duration::from_secs(7200),
            ..settings.clone()
        };
        let info = load_pair(&paths.cert, &paths.key, &crate::provider())
            .unwrap()
            .info;
        assert_eq!(
            acme_due(&info, &long),
            info.not_before + Duration::from_secs(1800)
        );

        // ca_roots that cannot be read stop the start, naming the file.
        let roots = dir.path().join("missing-roots.pem");
        let err = Tls::start(
            Mode::Acme(Acme {
                ca_roots: Some(roots.clone()),
                ..settings
            }),
            |_| {},
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read", roots.display())),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_ca_half_gone_is_an_error_not_a_new_ca() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let tls = Tls::start(Mode::SelfSigned(settings.clone()), |_| {}).unwrap();
        let fingerprint = tls.ca_fingerprint().unwrap();
        drop(tls);
        let again = Tls::start(Mode::SelfSigned(settings.clone()), |_| {}).unwrap();
        assert_eq!(again.ca_fingerprint().unwrap(), fingerprint);
        drop(again);
        std::fs::remove_file(settings.dir.join("ca.key")).unwrap();
        let err = Tls::start(Mode::SelfSigned(settings.clone()), |_| {}).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "{}: missing",
                settings.dir.join("ca.key").display()
            )),
            "{message}"
        );
        assert!(
            settings.dir.join("ca.pem").exists(),
            "the CA certificate is left alone"
        );
    }

    #[tokio::test]
    async fn a_renewal_is_announced_and_a_leaf_of_another_ca_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let (tx, rx) = std::sync::mpsc::channel();
        let tls = Tls::start(Mode::SelfSigned(settings.clone()), move |event| {
            let _ = tx.send(event);
        })
        .unwrap();
        let before = tls.status();
        let after = tls.renew().await.unwrap();
        assert_ne!(after.cert.serial, before.cert.serial);
        assert_eq!(
            rx.try_recv().unwrap(),
            TlsEvent::Renewed {
                serial: after.cert.serial.clone(),
                not_after: after.cert.not_after,
            }
        );
        drop(tls);
        // A new CA (old one removed): the stored leaf is not its own, so a new one is issued.
        std::fs::remove_file(settings.dir.join("ca.key")).unwrap();
        std::fs::remove_file(settings.dir.join("ca.pem")).unwrap();
        let tls = Tls::start(Mode::SelfSigned(settings.clone()), |_| {}).unwrap();
        let from_new_ca = tls.status();
        assert_ne!(from_new_ca.cert.serial, after.cert.serial);
        drop(tls);
        // A shorter lifetime than the stored certificate has left: reissued too.
        let shorter = SelfSigned {
            lifetime: Duration::from_secs(600),
            renew_before: Duration::from_secs(200),
            ..settings
        };
        let tls = Tls::start(Mode::SelfSigned(shorter), |_| {}).unwrap();
        let status = tls.status();
        assert_ne!(status.cert.serial, from_new_ca.cert.serial);
        assert!(status.cert.not_after <= SystemTime::now() + Duration::from_secs(600));
    }
}
