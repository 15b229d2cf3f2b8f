//! The running TLS service: the certificate resolver read on every handshake, the status
//! behind `GET /tls`, and the background task that keeps the certificate fresh (renewal in
//! `self-signed` mode, watching the files in `files` mode).
//!
//! A new pair is always complete and checked before it is swapped in; a refused one leaves
//! the old pair serving and is reported as a [`TlsEvent::ReloadFailed`] and in `last_error`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;

use crate::ca::{Ca, Paths};
use crate::certs::{CertInfo, Loaded, load_pair};
use crate::fsio::{self, CERT_MODE, KEY_MODE};
use crate::{Error, Mode, SelfSigned};

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
}

/// The served certificate and what happens next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsStatus {
    /// `"files"` or `"self-signed"`.
    pub mode: &'static str,
    pub cert: CertInfo,
    /// When the next renewal is due (`self-signed` only).
    pub next_renewal: Option<SystemTime>,
    /// Why the last reload or renewal failed, until one succeeds.
    pub last_error: Option<String>,
}

/// Why `renew` did not renew.
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    #[error("renewal is only possible in self-signed mode; this daemon runs in {0} mode")]
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
        let (loaded, ca, next_renewal) = match &mode {
            Mode::Files {
                cert_path,
                key_path,
            } => {
                warn_if_readable_by_others(key_path);
                (load_pair(cert_path, key_path, &provider)?, None, None)
            }
            Mode::SelfSigned(settings) => {
                let (ca, loaded) = start_self_signed(settings, &provider)?;
                let next = renewal_due(&loaded.info, settings);
                (loaded, Some(ca), Some(next))
            }
        };
        let status = TlsStatus {
            mode: mode.name(),
            cert: loaded.info.clone(),
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
            renewing: tokio::sync::Mutex::new(()),
            rescheduled: Notify::new(),
        });
        let weak = Arc::downgrade(&inner);
        let task = match &inner.mode {
            Mode::Files { .. } => tokio::spawn(watch_files(weak)),
            Mode::SelfSigned(_) => tokio::spawn(renew_on_time(weak)),
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

    /// Issues and swaps in a new server certificate now (`self-signed` mode only).
    pub async fn renew(&self) -> Result<TlsStatus, RenewError> {
        if !matches!(self.inner.mode, Mode::SelfSigned(_)) {
            return Err(RenewError::NotSupported(self.inner.mode.name()));
        }
        renew(&self.inner).await.map_err(RenewError::Failed)?;
        self.inner.rescheduled.notify_one();
        Ok(self.status())
    }

    /// A rustls server configuration that reads the current certificate on every handshake
    /// (ALPN `http/1.1`).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::clone(&self.inner.provider))
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default protocol versions")
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(Resolver(Arc::clone(&self.inner))));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
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
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0.current.read().expect("tls cert lock")))
    }
}

impl Inner {
    fn swap(&self, loaded: Loaded, next_renewal: Option<SystemTime>) {
        *self.current.write().expect("tls cert lock") = loaded.key;
        let mut status = self.status.lock().expect("tls status lock");
        status.cert = loaded.info.clone();
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

/// `self-signed`: sleeps until the renewal is due, renews, repeats; a failed renewal is tried
/// again after a pause that grows up to a minute.
async fn renew_on_time(inner: std::sync::Weak<Inner>) {
    let mut retry = Duration::from_secs(1);
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let due = strong
            .status
            .lock()
            .expect("tls status lock")
            .next_renewal
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let wait = due
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            // Re-read the clock at least once a minute (suspend, clock changes).
            .min(RETRY_MAX);
        let woken = tokio::select! {
            () = tokio::time::sleep(wait) => false,
            () = strong.rescheduled.notified() => true,
        };
        if woken || SystemTime::now() < due {
            continue;
        }
        if renew(&strong).await.is_ok() {
            retry = Duration::from_secs(1);
        } else {
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(RETRY_MAX);
        }
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
                    Error::Issue(_) => cert_path.clone(),
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
