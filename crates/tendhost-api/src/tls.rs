//! `GET /tls` and `POST /tls/renew`: the certificate the daemon serves.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The served certificate and its renewal schedule. With `mode = "off"` every other field is
/// null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "mode": "self-signed",
    "subject": "CN=tendhost.lan",
    "sans": ["tendhost.lan", "localhost", "127.0.0.1"],
    "issuer": "CN=tendhost CA (tendhost.lan), O=tendhost",
    "serial": "3A0F9C21D4E5B6A7081920A1B2C3D4E5",
    "not_before": "2026-12-01T21:00:00Z",
    "not_after": "2026-12-31T21:01:00Z",
    "next_renewal": "2026-12-21T21:01:00Z",
    "last_error": null,
    "temporary": null
}))]
pub struct TlsStatus {
    /// `off`, `files`, `self-signed` or `acme`.
    pub mode: String,
    pub subject: Option<String>,
    /// DNS names and IP addresses the certificate is valid for.
    pub sans: Option<Vec<String>>,
    pub issuer: Option<String>,
    /// Serial number, upper-case hex (as `openssl x509 -serial` prints it).
    pub serial: Option<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// When the daemon renews it (`self-signed`, `acme`); in `acme` mode after a failure,
    /// when it tries again.
    pub next_renewal: Option<String>,
    /// Why the last reload or renewal failed, until one succeeds (the old certificate keeps
    /// serving).
    pub last_error: Option<String>,
    /// `acme` only: `true` while the daemon serves its temporary self-signed certificate
    /// because the CA has not issued one yet, `false` once it has.
    pub temporary: Option<bool>,
}
