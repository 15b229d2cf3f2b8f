//! The daemon's plain HTTP listener, when it has one: `tls.redirect_http`, whose every answer
//! is a permanent redirect (308) to the same path over https on the daemon's TLS port, and in
//! `acme` mode with HTTP-01 the answers to the CA's challenges
//! (`/.well-known/acme-challenge/{token}`), on the same listener when both are configured.
//! Nothing else is served there.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

/// What the plain listener does.
pub struct Plain {
    /// Redirect to https (`redirect_http`); otherwise other requests get 404.
    pub redirect: bool,
    /// Answer HTTP-01 challenges from this certificate service.
    pub acme: Option<tendhost_tls::Tls>,
}

/// Binds `addr` and serves `plain` (redirects to https port `https_port`) until `stop` turns
/// `true`.
pub async fn spawn(
    addr: SocketAddr,
    https_port: u16,
    plain: Plain,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tracing::info!(
        addr = %bound,
        redirect = plain.redirect,
        acme_http01 = plain.acme.is_some(),
        "plain HTTP listener"
    );
    let mut app = Router::new();
    if let Some(tls) = plain.acme {
        app = app.route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(move |Path(token): Path<String>| {
                std::future::ready(http01(&tls, &token))
            }),
        );
    }
    let app = if plain.redirect {
        app.fallback(move |headers: HeaderMap, uri: Uri| {
            std::future::ready(redirect(&headers, &uri, https_port))
        })
    } else {
        app.fallback(|| {
            std::future::ready((
                StatusCode::NOT_FOUND,
                "only ACME HTTP-01 challenges are answered here; the API is served over https\n",
            ))
        })
    };
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        });
        if let Err(err) = served.await {
            tracing::warn!(%err, "the plain HTTP listener failed");
        }
    }))
}

/// The key authorization of a pending HTTP-01 challenge, or 404.
fn http01(tls: &tendhost_tls::Tls, token: &str) -> Response {
    match tls.http01_answer(token) {
        Some(answer) => {
            tracing::debug!(token, "answered an http-01 validation");
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/octet-stream")],
                answer,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such ACME challenge\n").into_response(),
    }
}

/// The redirect for one request: its host (without the port), the https port, its path and
/// query. A request without a usable `Host` gets 400.
fn redirect(headers: &HeaderMap, uri: &Uri, https_port: u16) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<axum::http::uri::Authority>().ok());
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "a Host header is needed to redirect to https\n",
        )
            .into_response();
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let location = format!("https://{}{port}{path}", host.host());
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, location)],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(host: Option<&str>, uri: &str, port: u16) -> (StatusCode, Option<String>) {
        let mut headers = HeaderMap::new();
        if let Some(host) = host {
            headers.insert(header::HOST, host.parse().unwrap());
        }
        let response = redirect(&headers, &uri.parse().unwrap(), port);
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|value| value.to_str().unwrap().to_owned());
        (response.status(), location)
    }

    #[test]
    fn same_host_and_path_on_the_https_port() {
        assert_eq!(
            location(Some("tendhost.lan"), "/hosts?page=2", 8443),
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://tendhost.lan:8443/hosts?page=2".into())
            )
        );
        assert_eq!(
            location(Some("10.0.0.5:80"), "/", 443),
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://10.0.0.5/".into())
            )
        );
        assert_eq!(
            location(Some("[::1]:8080"), "/health", 8443),
            (
                StatusCode::PERMANENT_REDIRECT,
                Some("https://[::1]:8443/health".into())
            )
        );
        assert_eq!(location(None, "/", 443).0, StatusCode::BAD_REQUEST);
        assert_eq!(
            location(Some("bad host/x"), "/", 443).0,
            StatusCode::BAD_REQUEST
        );
    }
}
