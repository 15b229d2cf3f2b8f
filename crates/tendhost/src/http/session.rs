//! `/session`: the web dashboard's login. `POST /session {"token"}` checks the token once and
//! sets the `tendhost_session` cookie (HttpOnly, SameSite=Strict, Secure with TLS on, expiring
//! with the session); `DELETE /session` ends it; `GET /session` says who the page acts as, so
//! it can show what the role may press (the API enforces it either way). Signing and checking
//! cookies is `tendhost_auth::session`; using them on other routes is `http::auth`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tendhost_api::ErrorResponse;
use tendhost_api::session::{SessionInfo, SessionRequest};
use tendhost_auth::session::SESSION_TTL;
use tendhost_auth::{Caller, Role, SESSION_COOKIE, TokenHash};

use crate::audit::AuditStart;
use crate::http::AppState;
use crate::http::auth::{Refusal, client_addr_of, refuse, session_cookie, unix_now};
use crate::http::error::{ApiError, ApiJson};

/// Logs in.
#[utoipa::path(
    post,
    path = "/session",
    operation_id = "create_session",
    tag = "access",
    summary = "Log in (web dashboard)",
    description = "Checks an API token and answers with a `tendhost_session` cookie standing \
        for it (HttpOnly, SameSite=Strict, Secure when TLS is on, valid for 12 hours). The cookie \
        holds no token; the session ends with its token (removed or replaced), and it always \
        carries the token's current role. A request authenticated by the cookie that changes \
        something, or opens `/ws/events`, must come from the daemon's own page (its `Origin`) \
        and state changes must be `application/json`. Wrong tokens count towards the \
        per-address limit like wrong bearer tokens; every login and refusal is audited.",
    request_body(content = SessionRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Logged in; `Set-Cookie` carries the session", body = SessionInfo,
            headers(("Set-Cookie" = String, description = "`tendhost_session=...; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200` (and `Secure` with TLS)"))),
        (status = 400, description = "The body is not valid JSON", body = ErrorResponse),
        (status = 401, description = "Unknown token", body = ErrorResponse),
        (status = 415, description = "The body is not `application/json`", body = ErrorResponse),
        (status = 422, description = "A missing or unknown field", body = ErrorResponse),
        (status = 429, description = "Too many wrong tokens from this address", body = ErrorResponse),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SessionRequest>,
) -> Response {
    let access = state.access();
    let source = client_addr_of(peer, &headers, &access.trusted_proxies);
    let start = AuditStart {
        source: source.to_string(),
        method: "POST".to_owned(),
        path: "/session".to_owned(),
        ..AuditStart::default()
    };
    let Some(sessions) = access.sessions.as_ref().filter(|_| access.enabled) else {
        return Json(anonymous()).into_response();
    };
    let now = Instant::now();
    if let Err(limited) = access.limiter.check(source, now) {
        let refusal = Refusal::Limited {
            retry_after_secs: limited.retry_after_secs(),
        };
        return refuse(access, start, refusal).await;
    }
    let Some(caller) = access.keyring.authenticate(&body.token) else {
        access.limiter.record_failure(source, now);
        let refusal = Refusal::Unauthorized {
            message: "unknown or expired token",
            counted: true,
        };
        return refuse(access, start, refusal).await;
    };
    let issued = sessions.issue(&caller.name, &TokenHash::of(&body.token), unix_now());
    if let Some(audit) = &access.audit {
        let row = AuditStart {
            token: Some(caller.name.clone()),
            role: Some(caller.role.as_str().to_owned()),
            status: Some(200),
            ..start
        };
        if let Err(err) = audit.begin(row).await {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the audit trail cannot be written: {err}"),
            )
            .into_response();
        }
    }
    let secure = if state.tls().is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        issued.value,
        SESSION_TTL.as_secs()
    );
    let info = info(&caller, true, Some(issued.expires_unix));
    let mut response = Json(info).into_response();
    match HeaderValue::from_str(&cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(err) => ApiError::internal(format!("the session cookie is not a header value: {err}"))
            .into_response(),
    }
}

/// The connection's peer address, when the server recorded one.
pub struct Peer(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0),
        ))
    }
}

/// Logs out.
#[utoipa::path(
    delete,
    path = "/session",
    operation_id = "delete_session",
    tag = "access",
    summary = "Log out (web dashboard)",
    description = "Ends the session of the `tendhost_session` cookie (it is refused from now on) \
        and tells the browser to drop it. Answers 204 with or without a session.",
    responses(
        (status = 204, description = "Logged out; `Set-Cookie` expires the cookie"),
    )
)]
pub async fn delete(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let (Some(sessions), Some(value)) = (&state.access().sessions, session_cookie(&headers)) {
        // Refused from now on either way; only a restart could bring it back if the file
        // cannot be written, so that is worth an error in the log.
        if let Err(err) = sessions.revoke(value, unix_now()) {
            tracing::error!(%err, "the logout is not kept across a restart");
        }
    }
    let secure = if state.tls().is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Who the caller is.
#[utoipa::path(
    get,
    path = "/session",
    operation_id = "get_session",
    tag = "access",
    summary = "Who am I",
    description = "The token name and role the request is authenticated as (session cookie or \
        bearer token), and when the session cookie expires. With auth disabled: `anonymous`, \
        `admin`, `auth_enabled: false`. The dashboard shows only what the role may do.",
    responses(
        (status = 200, description = "The caller", body = SessionInfo),
        (status = 401, description = "No valid token or session", body = ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Option<axum::Extension<Caller>>,
) -> Json<SessionInfo> {
    let access = state.access();
    let Some(axum::Extension(caller)) = caller.filter(|_| access.enabled) else {
        return Json(anonymous());
    };
    let expires = session_cookie(&headers).and_then(|value| {
        access
            .sessions
            .as_ref()
            .and_then(|sessions| sessions.expires_unix(value))
    });
    Json(info(&caller, true, expires))
}

fn anonymous() -> SessionInfo {
    let caller = Caller {
        name: "anonymous".to_owned(),
        role: Role::Admin,
    };
    info(&caller, false, None)
}

fn info(caller: &Caller, auth_enabled: bool, expires_unix: Option<u64>) -> SessionInfo {
    SessionInfo {
        name: caller.name.clone(),
        role: caller.role.as_str().to_owned(),
        auth_enabled,
        expires_at: expires_unix
            .and_then(|secs| i64::try_from(secs).ok())
            .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
            .map(|time| time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
    }
}
