//! The daemon's certificates and its TLS listener, with no fleet knowledge.
//!
//! Three ways to get a certificate ([`Mode`]): PEM files placed by an outside tool, watched and
//! reloaded when they change (`files`), the daemon's own CA under `<data_dir>/tls/` that
//! issues short-lived server certificates and renews them before they expire (`self-signed`),
//! or an ACME CA (`acme`, through instant-acme: HTTP-01 or TLS-ALPN-01, the account and the
//! certificate kept under `<data_dir>/tls/acme/`). Whichever, the served pair sits behind a
//! `rustls` certificate resolver read on every
//! handshake, so a new pair applies to new connections without a restart while open ones
//! (WebSockets included) stay up. [`Tls`] is the running service (status, renew now, events);
//! [`TlsListener`] turns a TCP listener into an `axum::serve` listener of TLS streams.
//!
//! One crypto provider for the workspace: `ring` ([`provider`]).

mod acme;
mod ca;
mod certs;
mod fsio;
mod listener;
mod san;
mod service;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::acme::{
    ACME_TLS_ALPN, Acme, Challenge, DEFAULT_RENEW_BEFORE as DEFAULT_ACME_RENEW_BEFORE,
    DEFAULT_RETRY as DEFAULT_ACME_RETRY, MAX_RETRY_FACTOR as ACME_MAX_RETRY_FACTOR,
};
pub use crate::certs::{CertInfo, peer_info};
pub use crate::listener::TlsListener;
pub use crate::san::{San, default_names};
pub use crate::service::{RenewError, Tls, TlsEvent, TlsStatus};

/// How the daemon gets its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A PEM chain and a PEM key placed by an outside tool; both are watched.
    Files {
        cert_path: PathBuf,
        key_path: PathBuf,
    },
    /// The daemon's own CA.
    SelfSigned(SelfSigned),
    /// A certificate ordered from an ACME CA and renewed before it expires.
    Acme(Acme),
}

impl Mode {
    /// `"files"`, `"self-signed"` or `"acme"`, as in the config file and `GET /tls`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Files { .. } => "files",
            Mode::SelfSigned(_) => "self-signed",
            Mode::Acme(_) => "acme",
        }
    }
}

/// Settings of the daemon's own CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    /// Where the CA and the server certificate live (`<data_dir>/tls`).
    pub dir: PathBuf,
    /// What the server certificate is issued for.
    pub names: Vec<San>,
    /// Validity of each server certificate.
    pub lifetime: Duration,
    /// Renew when less than this is left.
    pub renew_before: Duration,
}

/// Where the CA certificate of `settings` is (`<dir>/ca.pem`).
pub fn ca_path(settings: &SelfSigned) -> PathBuf {
    ca::Paths::new(&settings.dir).ca_cert
}

/// Shortest accepted server certificate lifetime (for tests).
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);

/// Default server certificate lifetime.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why TLS cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key file that cannot be read or used: `path: reason`.
    #[error("{}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    /// Generating or signing a certificate failed.
    #[error("cannot issue a certificate: {0}")]
    Issue(String),
    /// The ACME CA did not issue a certificate (unreachable, refused, a failed validation).
    #[error("{0}")]
    Acme(String),
}

impl Error {
    pub(crate) fn file(path: &std::path::Path, reason: impl Into<String>) -> Error {
        Error::File {
            path: path.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The workspace's one rustls crypto provider: `ring`.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client configuration whose only roots are `ca_pem`'s certificates (for clients of
/// a daemon: tests, benches, the CLI with `TENDHOST_CACERT`).
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|err| format!("not a PEM certificate: {err}"))?;
        roots
            .add(cert)
            .map_err(|err| format!("not a usable CA certificate: {err}"))?;
    }
    if roots.is_empty() {
        return Err("no CERTIFICATE block in the PEM".to_owned());
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
