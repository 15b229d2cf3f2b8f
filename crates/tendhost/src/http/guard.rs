//! What web pages in the operator's browser may not do, checked on every request before
//! routing (health, docs and the WebSocket included):
//!
//! - **Host** (DNS rebinding): the `Host` header must name the daemon itself (its bind address,
//!   `localhost`, `127.0.0.1`, `[::1]`, the machine's hostname, `daemon.public_names`);
//!   otherwise 403 `forbidden_host`.
//! - **Origin**: when a request (or WebSocket upgrade) carries `Origin`, it must be the daemon's
//!   own origin (same authority as `Host`) or one of `daemon.cors_origins`; otherwise 403
//!   `forbidden_origin`. Only allowed `cors_origins` get CORS headers, and their preflights are
//!   answered here.
//!
//! The CSRF rule (a state change without a bearer token must be `application/json`) needs the
//! matched route, so it is checked in `http::auth::enforce`; its header tests live here.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::AppState;
use crate::http::error::ApiError;

/// The names and origins a request may use.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Lower-case host names and IP literals (IPv6 in brackets), without ports.
    own_hosts: Vec<String>,
    /// Allowed foreign origins, lower-case, `scheme://host[:port]`.
    cors_origins: Vec<String>,
}

/// How long a browser may cache an allowed preflight.
const PREFLIGHT_MAX_AGE: &str = "600";

impl Guard {
    /// The daemon's own names: its bind address, loopback names, the machine's hostname and
    /// `public_names`.
    pub fn new(
        bind: std::net::SocketAddr,
        public_names: &[String],
        cors_origins: &[String],
    ) -> Self {
        let mut own_hosts: Vec<String> = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "[::1]".to_owned(),
        ];
        own_hosts.push(match bind.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        });
        if let Ok(hostname) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let hostname = hostname.trim();
            if !hostname.is_empty() {
                own_hosts.push(hostname.to_ascii_lowercase());
            }
        }
        own_hosts.extend(public_names.iter().map(|name| normalise_host(name)));
        own_hosts.sort();
        own_hosts.dedup();
        Self {
            own_hosts,
            cors_origins: cors_origins
                .iter()
                .map(|origin| origin.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    /// No checks at all (unit tests of handlers through `oneshot`).
    pub fn permissive() -> Self {
        Self::default()
    }

    fn host_allowed(&self, authority: &str) -> bool {
        self.own_hosts.is_empty()
            || self
                .own_hosts
                .contains(&normalise_host(host_part(authority)))
    }
}

/// `Host` or origin authority without its port, e.g. `[::1]:8080` -> `[::1]`.
fn host_part(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

fn normalise_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The authority of an `Origin` value (`scheme://authority`), lower-case.
fn origin_authority(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('/') {
        return None;
    }
    Some(rest.to_ascii_lowercase())
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    ApiError::new(status, code, message).into_response()
}

fn single_header<'a>(headers: &'a HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

pub(crate) fn has_bearer(headers: &HeaderMap) -> bool {
    single_header(headers, &header::AUTHORIZATION).is_some_and(|value| {
        value
            .get(..7)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer "))
    })
}

pub(crate) fn is_json(headers: &HeaderMap) -> bool {
    single_header(headers, &header::CONTENT_TYPE).is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
    })
}

/// Whether the request's `Origin` is present and is the daemon's own (the authority its
/// `Host` names). Browsers send `Origin` on every state change and WebSocket upgrade.
pub(crate) fn is_own_origin(headers: &HeaderMap) -> bool {
    let host = single_header(headers, &header::HOST);
    let origin = single_header(headers, &header::ORIGIN).and_then(origin_authority);
    matches!((origin, host), (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host))
}

/// The checks, before routing.
pub async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let guard = state.guard();
    let headers = request.headers();
    let host = single_header(headers, &header::HOST)
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(ToString::to_string));
    if let Some(host) = &host
        && !guard.host_allowed(host)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!(
                "Host {host:?} is not a name of this daemon; add it to daemon.public_names if \
                 clients reach the daemon by it"
            ),
        );
    }
    let mut cors_origin: Option<HeaderValue> = None;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let text = origin.to_str().unwrap_or_default();
        let authority = origin_authority(text);
        let same_origin = match (&authority, &host) {
            (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host),
            _ => false,
        };
        let listed = guard
            .cors_origins
            .contains(&text.trim_end_matches('/').to_ascii_lowercase());
        if !same_origin && !listed {
            return refuse(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!(
                    "Origin {text:?} may not use this API; list it in daemon.cors_origins to allow it"
                ),
            );
        }
        if listed && !same_origin {
            cors_origin = Some(origin.clone());
        }
    }
    if let Some(origin) = &cors_origin
        && request.method() == Method::OPTIONS
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        out.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE"),
        );
        out.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        out.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
        out.insert(header::VARY, HeaderValue::from_static("Origin"));
        return response;
    }
    let mut response = next.run(request).await;
    if let Some(origin) = cors_origin {
        let out = response.headers_mut();
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        out.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_compared_without_port_or_case() {
        let guard = Guard::new(
            "127.0.0.1:8080".parse().unwrap(),
            &["Tendhost.LAN".to_owned()],
            &[],
        );
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST:1",
            "[::1]:8080",
            "tendhost.lan.",
            "tendhost.lan:443",
        ] {
            assert!(guard.host_allowed(host), "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.2",
            "tendhost.lan.evil.example",
            "[::2]",
        ] {
            assert!(!guard.host_allowed(host), "{host}");
        }
    }

    #[test]
    fn origins_parse_to_their_authority() {
        assert_eq!(
            origin_authority("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            origin_authority("https://Dash.LAN").as_deref(),
            Some("dash.lan")
        );
        assert_eq!(origin_authority("null"), None);
        assert_eq!(origin_authority("file://"), None);
        assert_eq!(origin_authority("http://a/b"), None);
    }
}
