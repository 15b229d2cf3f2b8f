//! Access control on the HTTP side: the middleware that refuses cross-site state changes
//! (CSRF: no bearer token and not `application/json`: 415), authenticates every request on a
//! matched route (bearer token, the dashboard's `tendhost_session` cookie, or a WebSocket
//! ticket on `GET /ws/events`), checks the role
//! the route needs (`tendhost_auth::required_access`, the one table), slows down wrong-token
//! floods per source address, and writes the audit trail; plus `POST /ws/ticket` and
//! `GET /audit`. Refusals are the usual JSON errors: 401 `unauthorized` (with
//! `WWW-Authenticate: Bearer`), 403 `forbidden` (`details.required_role`), 429
//! `too_many_requests` (`Retry-After`).
//!
//! An audited request (anything but GET/HEAD, and every refusal) has its row committed before
//! its handler runs, so no effect of it can be announced before the row is on disk; the answer
//! (status, job or rollout id) is committed before the client sees it.
//!
//! A session cookie is a browser's credential, so a request it authenticates must come from
//! the daemon's own page: a state change or a WebSocket upgrade needs an `Origin` that is the
//! daemon's own (a listed `cors_origins` entry is not enough), besides the JSON rule above.
//! The cookie's `SameSite=Strict` keeps other sites from sending it at all.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tendhost_api::ErrorResponse;
use tendhost_api::auth::{AuditEntry, AuditList, AuditListQuery, WsTicket};
use tendhost_auth::session::Rejected;
use tendhost_auth::{
    Access, Caller, FailureLimiter, Keyring, Role, SESSION_COOKIE, Sessions, TicketBook,
    required_access, ticket::TICKET_TTL,
};

use crate::audit::{AuditLog, AuditStart};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::Query;

/// Largest request body an audited request may have (the API's bodies are far smaller).
const MAX_AUDITED_BODY: usize = 1024 * 1024;

/// Largest response body read back for its job or rollout id.
const MAX_AUDITED_ANSWER: usize = 1024 * 1024;

/// Longest `Authorization` header looked at.
const MAX_AUTHORIZATION_LEN: usize = 4096;

/// The access-control state shared by every request.
pub struct AccessControl {
    pub enabled: bool,
    pub keyring: Arc<Keyring>,
    pub limiter: FailureLimiter,
    pub tickets: TicketBook,
    /// Signs and checks `tendhost_session` cookies (`None` with auth off).
    pub sessions: Option<Sessions>,
    pub trusted_proxies: Vec<IpAddr>,
    pub audit: Option<AuditLog>,
}

impl AccessControl {
    /// No auth and no audit (tests of handlers that do not care).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            keyring: Arc::new(Keyring::fixed(Vec::new())),
            limiter: FailureLimiter::default(),
            tickets: TicketBook::default(),
            sessions: None,
            trusted_proxies: Vec::new(),
            audit: None,
        }
    }
}

/// The client address: the peer, or behind a trusted proxy the rightmost `X-Forwarded-For`
/// entry that is not itself a trusted proxy.
fn client_addr(request: &Request, trusted: &[IpAddr]) -> IpAddr {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    client_addr_of(peer, request.headers(), trusted)
}

/// [`client_addr`] from a peer address and the headers.
pub(crate) fn client_addr_of(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[IpAddr],
) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip());
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|item| item.trim().parse::<IpAddr>().ok())
        .collect();
    forwarded
        .into_iter()
        .rev()
        .find(|addr| !trusted.contains(addr))
        .unwrap_or(peer)
}

/// Why a request is refused before its handler.
pub(crate) enum Refusal {
    /// 401; `counted` when a wrong credential was presented (it feeds the limiter).
    Unauthorized {
        message: &'static str,
        counted: bool,
    },
    Forbidden {
        required: Role,
    },
    Limited {
        retry_after_secs: u64,
    },
    BadRequest(&'static str),
    /// 403 `forbidden_origin`: a session cookie used from somewhere else than the daemon's page.
    ForeignOrigin(&'static str),
}

impl Refusal {
    pub(crate) fn into_response(self) -> Response {
        match self {
            Refusal::Unauthorized { message, counted } => {
                let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
                    .into_response();
                let challenge = if counted {
                    "Bearer realm=\"tendhost\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"tendhost\""
                };
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
                response
            }
            Refusal::Forbidden { required } => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs a token with the {required} role"),
            )
            .with_details(json!({ "required_role": required.as_str() }))
            .into_response(),
            Refusal::Limited { retry_after_secs } => {
                let mut response = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "too many wrong tokens from this address; try again in {retry_after_secs} s"
                    ),
                )
                .with_details(json!({ "retry_after_seconds": retry_after_secs }))
                .into_response();
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_str(&retry_after_secs.to_string())
                        .unwrap_or(HeaderValue::from_static("60")),
                );
                response
            }
            Refusal::BadRequest(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message).into_response()
            }
            Refusal::ForeignOrigin(message) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden_origin", message).into_response()
            }
        }
    }
}

/// The bearer token of a request: `Ok(None)` when it sends none.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Refusal> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::BadRequest(
            "more than one Authorization header; send exactly one",
        ));
    }
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(Refusal::BadRequest("the Authorization header is too long"));
    }
    let text = value.to_str().map_err(|_| Refusal::Unauthorized {
        message: "the Authorization header is not a bearer token",
        counted: true,
    })?;
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(Refusal::Unauthorized {
            message: "the Authorization header is not `Bearer <token>`",
            counted: true,
        }),
    }
}

/// The `ticket` query parameter of a WebSocket request.
fn ticket_of(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "ticket")
        .map(|(_, value)| value.into_owned())
}

/// The value of the `tendhost_session` cookie, if the request sends one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Who is calling, or why they may not.
fn authenticate(
    access: &AccessControl,
    request: &Request,
    route: &str,
    source: IpAddr,
) -> Result<Caller, Refusal> {
    let token = bearer(request.headers())?;
    let ticket = (route == "/ws/events" && token.is_none())
        .then(|| ticket_of(request))
        .flatten();
    let session = (token.is_none() && ticket.is_none())
        .then(|| session_cookie(request.headers()))
        .flatten();
    if token.is_none() && ticket.is_none() && session.is_none() {
        return Err(Refusal::Unauthorized {
            message: "this needs a token: send `Authorization: Bearer <token>`",
            counted: false,
        });
    }
    let now = Instant::now();
    if let Err(limited) = access.limiter.check(source, now) {
        return Err(Refusal::Limited {
            retry_after_secs: limited.retry_after_secs(),
        });
    }
    if let Some(value) = session {
        return session_caller(access, request, route, value, source, now);
    }
    let caller = match (token, ticket) {
        (Some(token), _) => access.keyring.authenticate(token),
        (None, Some(ticket)) => access.tickets.redeem(&ticket, now),
        (None, None) => None,
    };
    caller.ok_or_else(|| {
        access.limiter.record_failure(source, now);
        Refusal::Unauthorized {
            message: "unknown or expired token",
            counted: true,
        }
    })
}

/// The caller a session cookie stands for, under the browser rules: a state change or a
/// WebSocket upgrade must carry the daemon's own `Origin`.
fn session_caller(
    access: &AccessControl,
    request: &Request,
    route: &str,
    value: &str,
    source: IpAddr,
    now: Instant,
) -> Result<Caller, Refusal> {
    let Some(sessions) = &access.sessions else {
        return Err(Refusal::Unauthorized {
            message: "this needs a token: send `Authorization: Bearer <token>`",
            counted: false,
        });
    };
    let reads = matches!(*request.method(), Method::GET | Method::HEAD) && route != "/ws/events";
    if !reads && !crate::http::guard::is_own_origin(request.headers()) {
        return Err(Refusal::ForeignOrigin(
            "a request authenticated by the session cookie that changes something (or opens the \
             event stream) must come from the daemon's own page: its Origin header must be the \
             daemon's own origin",
        ));
    }
    match sessions.verify(value, &access.keyring.current(), unix_now()) {
        Ok(caller) => Ok(caller),
        Err(Rejected::Ended) => Err(Refusal::Unauthorized {
            message: "the session has ended (expired, logged out, or its token was removed); log in again",
            counted: false,
        }),
        Err(Rejected::Invalid) => {
            access.limiter.record_failure(source, now);
            Err(Refusal::Unauthorized {
                message: "the session cookie is not one this daemon issued",
                counted: true,
            })
        }
    }
}

/// The host a request is about: the `{name}` segment of a host route, or a registration
/// body's `name`.
fn host_of(route: &str, path: &str, body: Option<&Value>) -> Option<String> {
    if route == "/hosts" {
        return body?.get("name")?.as_str().map(str::to_owned);
    }
    let idx = route.split('/').position(|segment| segment == "{name}")?;
    if !route.starts_with("/hosts/") {
        return None;
    }
    path.split('/').nth(idx).map(str::to_owned)
}

/// Enforces access on a matched route (installed with `route_layer`).
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let access = state.access();
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    let method = request.method().clone();
    let required = match required_access(method.as_str(), &route) {
        Access::Open => return next.run(request).await,
        Access::Role(role) => role,
    };
    // CSRF: a state change not authenticated by a bearer token (auth off on loopback, or a
    // cookie) must say it is JSON, which a cross-site form or `no-cors` fetch cannot; a
    // bearer header cannot be added cross-site without a preflight, which the guard refuses.
    let changes_state = !matches!(method, Method::GET | Method::HEAD);
    let headers = request.headers();
    let cookie_or_open = !access.enabled || headers.contains_key(header::COOKIE);
    if changes_state
        && cookie_or_open
        && !crate::http::guard::has_bearer(headers)
        && !crate::http::guard::is_json(headers)
    {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a request that changes something must say `Content-Type: application/json` \
             (an empty body included) unless it carries a bearer token",
        )
        .into_response();
    }
    let source = client_addr(&request, &access.trusted_proxies);
    let path = request.uri().path().to_owned();
    let start = AuditStart {
        source: source.to_string(),
        method: method.as_str().to_owned(),
        host: host_of(&route, &path, None),
        path,
        ..AuditStart::default()
    };

    let caller = if access.enabled {
        match authenticate(access, &request, &route, source) {
            Ok(caller) => Some(caller),
            Err(refusal) => return refuse(access, start, refusal).await,
        }
    } else {
        None
    };
    if let Some(caller) = &caller
        && !caller.role.allows(required)
    {
        let start = AuditStart {
            token: Some(caller.name.clone()),
            role: Some(caller.role.as_str().to_owned()),
            ..start
        };
        return refuse(access, start, Refusal::Forbidden { required }).await;
    }
    let start = AuditStart {
        token: caller.as_ref().map(|c| c.name.clone()),
        role: caller.as_ref().map(|c| c.role.as_str().to_owned()),
        ..start
    };
    let mut request = request;
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
    }
    if matches!(method, Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let Some(audit) = &access.audit else {
        return next.run(request).await;
    };

    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_AUDITED_BODY).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {MAX_AUDITED_BODY} bytes"),
        )
        .into_response();
    };
    let body_json = serde_json::from_slice::<Value>(&bytes).ok();
    let start = AuditStart {
        host: start
            .host
            .or_else(|| host_of(&route, &start.path, body_json.as_ref())),
        body: body_json,
        ..start
    };
    let id = match audit.begin(start).await {
        Ok(id) => id,
        Err(err) => {
            // Never act unaudited.
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the audit trail cannot be written: {err}"),
            )
            .into_response();
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    let answer = axum::body::to_bytes(body, MAX_AUDITED_ANSWER)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let ids = serde_json::from_slice::<Value>(&answer).ok();
    let id_of = |key: &str| {
        ids.as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let update = crate::audit::AuditUpdate {
        status: parts.status.as_u16(),
        job_id: id_of("job_id"),
        rollout_id: id_of("rollout_id"),
    };
    if let Err(err) = audit.finish(id, update).await {
        tracing::warn!(audit_id = id, %err, "audit row not completed");
    }
    Response::from_parts(parts, Body::from(answer))
}

/// Answers a refusal, after committing its audit row.
pub(crate) async fn refuse(
    access: &AccessControl,
    start: AuditStart,
    refusal: Refusal,
) -> Response {
    let response = refusal.into_response();
    if let Some(audit) = &access.audit {
        let start = AuditStart {
            status: Some(response.status().as_u16()),
            ..start
        };
        if let Err(err) = audit.begin(start).await {
            tracing::warn!(%err, "audit row of a refused request not stored");
        }
    }
    response
}

/// Issues a single-use WebSocket ticket.
#[utoipa::path(
    post,
    path = "/ws/ticket",
    operation_id = "ws_ticket",
    tag = "access",
    summary = "Get a WebSocket ticket",
    description = "A single-use ticket, valid for 30 s, for `GET /ws/events?ticket=...`: \
        browsers cannot send an `Authorization` header on a WebSocket, and a long-lived token \
        never goes in a URL. The ticket carries the caller's token name and role.",
    responses(
        (status = 200, description = "A new ticket", body = WsTicket),
        (status = 401, description = "No valid token", body = ErrorResponse),
    )
)]
pub async fn ws_ticket(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
) -> Result<Json<WsTicket>, ApiError> {
    let caller = caller.map_or_else(
        || Caller {
            name: "anonymous".to_owned(),
            role: Role::Read,
        },
        |axum::Extension(caller)| caller,
    );
    let ticket = state
        .access()
        .tickets
        .issue(caller, Instant::now())
        .map_err(|err| ApiError::internal(err.to_string()))?;
    Ok(Json(WsTicket {
        ticket,
        expires_in: TICKET_TTL.as_secs(),
    }))
}

/// The query parameters `GET /audit` knows.
const AUDIT_PARAMS: &[&str] = &["page", "per_page", "token", "host", "path_prefix", "since"];

/// Lists the audit trail.
#[utoipa::path(
    get,
    path = "/audit",
    operation_id = "list_audit",
    tag = "access",
    summary = "List the audit trail",
    description = "Every request that changed something and every refused request (401, 403, \
        429), newest first: token name and role, source address, method, path, host, job or \
        rollout id, status and the body with secrets redacted. Filter by `token`, `host`, \
        `path_prefix` and `since` (RFC 3339).",
    params(AuditListQuery),
    responses(
        (status = 200, description = "One page of audit rows", body = AuditList),
        (status = 422, description = "A bad or unknown query parameter", body = ErrorResponse),
    )
)]
pub async fn list_audit(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditList>, ApiError> {
    let query = Query::parse(raw.as_deref(), AUDIT_PARAMS)?;
    let page = query.page()?;
    let since_ms = query.parsed("since", |value| {
        value
            .parse::<jiff::Timestamp>()
            .map(jiff::Timestamp::as_millisecond)
            .map_err(|_| {
                format!("must be an RFC 3339 time such as 2026-12-01T00:00:00Z, not {value:?}")
            })
    })?;
    let filter = crate::audit::AuditFilter {
        token: query.single("token")?.map(str::to_owned),
        host: query.single("host")?.map(str::to_owned),
        path_prefix: query.single("path_prefix")?.map(str::to_owned),
        since_ms,
    };
    let Some(audit) = &state.access().audit else {
        return Ok(Json(AuditList {
            data: Vec::new(),
            pagination: page.pagination(0),
        }));
    };
    let (rows, total) = audit
        .list(
            filter,
            (page.page - 1).saturating_mul(page.per_page),
            page.per_page,
        )
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("the state database cannot answer: {err}"),
            )
        })?;
    Ok(Json(AuditList {
        data: rows
            .into_iter()
            .map(|row| AuditEntry {
                id: row.id,
                time: jiff::Timestamp::from_millisecond(row.time_ms)
                    .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                    .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
                token: row.token,
                role: row.role,
                source: row.source,
                method: row.method,
                path: row.path,
                host: row.host,
                job_id: row.job_id,
                rollout_id: row.rollout_id,
                status: row.status,
                body: row.body.and_then(|text| serde_json::from_str(&text).ok()),
            })
            .collect(),
        pagination: page.pagination(total),
    }))
}

/// Marks every operation of the OpenAPI document with the access it needs: a bearer
/// `security` requirement (none for open routes) and a sentence naming the role, both taken
/// from the one route table.
pub fn document_access(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API token (`th_...`): `Authorization: Bearer <token>`. See docs/security.md.",
                ))
                .build(),
        ),
    );
    for (path, item) in &mut doc.paths.paths {
        let operations = [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("DELETE", &mut item.delete),
            ("PATCH", &mut item.patch),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let sentence = match required_access(method, path) {
                Access::Open => {
                    operation.security = Some(Vec::new());
                    "Open: no token needed.".to_owned()
                }
                Access::Role(role) => {
                    operation.security = Some(vec![SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )]);
                    format!("Requires a token with the `{role}` role (or higher).")
                }
            };
            let description = operation.description.get_or_insert_with(String::new);
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&sentence);
        }
    }
}
