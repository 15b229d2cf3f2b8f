//! `/tls` routes: the served certificate (`GET /tls`), renewing it now (`POST /tls/renew`,
//! `self-signed` and `acme` modes), and the HSTS header every answer carries when TLS is on.
//! The certificate lifecycle itself lives in `tendhost-tls`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tendhost_api::ErrorResponse;
use tendhost_api::tls::TlsStatus;

use crate::http::AppState;
use crate::http::error::ApiError;

/// `Strict-Transport-Security` when TLS is on: a year, as browsers expect.
const HSTS: &str = "max-age=31536000";

/// Shows the served certificate.
#[utoipa::path(
    get,
    path = "/tls",
    operation_id = "get_tls",
    tag = "tls",
    summary = "Show the served TLS certificate",
    description = "The mode (`off`, `files`, `self-signed`, `acme`) and, when TLS is on, the \
        served certificate: subject, names, issuer, serial, validity, the next renewal \
        (`self-signed`, `acme`: after a failure the next attempt), why the last reload or \
        renewal failed, if it did, and in `acme` mode whether the certificate is the temporary \
        self-signed one served until the CA issues the first.",
    responses((status = 200, description = "The TLS status", body = TlsStatus))
)]
pub async fn get(State(state): State<AppState>) -> Json<TlsStatus> {
    Json(state.tls().map_or_else(off, |tls| status(&tls.status())))
}

/// Renews the certificate now.
#[utoipa::path(
    post,
    path = "/tls/renew",
    operation_id = "renew_tls",
    tag = "tls",
    summary = "Renew the TLS certificate now",
    description = "In `self-signed` mode, issues a new server certificate from the daemon's CA; \
        in `acme` mode, orders one from the ACME CA now. The new certificate serves from the \
        next handshake on; open connections stay up. Answers the new status. In `off` and \
        `files` mode answers 409 `renew_not_supported`.",
    responses(
        (status = 200, description = "Renewed; the new status", body = TlsStatus),
        (status = 409, description = "Not in self-signed or acme mode", body = ErrorResponse),
        (status = 500, description = "Issuing failed; the old certificate keeps serving", body = ErrorResponse),
        (status = 502, description = "The ACME CA did not issue a certificate; the old one keeps serving and the next attempt is scheduled", body = ErrorResponse),
    )
)]
pub async fn renew(State(state): State<AppState>) -> Result<Json<TlsStatus>, ApiError> {
    let Some(tls) = state.tls() else {
        return Err(not_supported("off"));
    };
    match tls.renew().await {
        Ok(status) => Ok(Json(self::status(&status))),
        Err(tendhost_tls::RenewError::NotSupported(mode)) => Err(not_supported(mode)),
        Err(tendhost_tls::RenewError::Failed(tendhost_tls::Error::Acme(err))) => {
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "renew_failed",
                format!(
                    "the ACME CA did not issue a certificate, the old one keeps serving: {err}"
                ),
            ))
        }
        Err(tendhost_tls::RenewError::Failed(err)) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "renew_failed",
            format!("renewal failed, the old certificate keeps serving: {err}"),
        )),
    }
}

fn not_supported(mode: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "renew_not_supported",
        format!(
            "renewing on request needs mode = \"self-signed\" or \"acme\"; this daemon runs with mode = \"{mode}\""
        ),
    )
}

fn off() -> TlsStatus {
    TlsStatus {
        mode: "off".to_owned(),
        subject: None,
        sans: None,
        issuer: None,
        serial: None,
        not_before: None,
        not_after: None,
        next_renewal: None,
        last_error: None,
        temporary: None,
    }
}

fn status(status: &tendhost_tls::TlsStatus) -> TlsStatus {
    let cert = &status.cert;
    TlsStatus {
        mode: status.mode.to_owned(),
        subject: Some(cert.subject.clone()),
        sans: Some(cert.sans.clone()),
        issuer: Some(cert.issuer.clone()),
        serial: Some(cert.serial.clone()),
        not_before: Some(time(cert.not_before)),
        not_after: Some(time(cert.not_after)),
        next_renewal: status.next_renewal.map(time),
        last_error: status.last_error.clone(),
        temporary: (status.mode == "acme").then_some(status.temporary),
    }
}

/// RFC 3339, UTC, as every other time on the wire.
pub fn time(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time).map_or_else(|_| String::new(), crate::http::mapping::time)
}

/// Adds HSTS to an answer.
pub async fn hsts(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static(HSTS),
    );
    response
}
