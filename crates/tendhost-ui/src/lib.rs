//! `tendhost-ui`: the web dashboard's assets, embedded in the binary, and the routes that serve
//! them: `GET /` redirects to `/ui/`, `GET /ui/` is the page, `GET /ui/<file>` its scripts and
//! styles. The source is the repository's `ui/` folder, plain ES modules and CSS that browsers
//! run as written: there is no build step, so what is committed is what is served.
//!
//! Everything the page shows comes from the API on the same origin; nothing here knows the
//! fleet. A strict Content-Security-Policy keeps the page on the daemon's own origin: no inline
//! script or style, no other host, no frames. Access control does not apply here (the assets
//! are open, as `/docs` is); the API routes the page calls enforce it.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the dashboard lives.
pub const UI_PATH: &str = "/ui/";

/// The page's policy: scripts, styles, images and connections (fetch and the WebSocket) from
/// the daemon's origin only; no inline code, no plugins, no framing, no form posts.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset {
            name: $name,
            content_type: $ct,
            bytes: include_bytes!(concat!("../../../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of `ui/` the page loads (`index.html` is the page itself).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("live.js", JS),
    asset!("dom.js", JS),
    asset!("pages.js", JS),
    asset!("rollouts.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The routes: `/` and `/ui` redirect to `/ui/`, which serves the page and its files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to(UI_PATH) }))
        .route("/ui", get(|| async { Redirect::to(UI_PATH) }))
        .route(UI_PATH, get(|| async { serve("index.html") }))
        .route(
            "/ui/{file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            format!(
                r#"{{"error":{{"code":"not_found","message":"no dashboard file {:?}","details":null}}}}"#,
                name.escape_default().to_string()
            ),
        )
            .into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            // Small files, re-validated on every load, so a new daemon's page is never mixed
            // with an old one's scripts.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Bytes::from_static(asset.bytes),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let response = router::<()>().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn root_redirects_to_the_dashboard() {
        for uri in ["/", "/ui"] {
            let (status, headers, _) = get(uri).await;
            assert!(status.is_redirection(), "{uri}: {status}");
            assert_eq!(headers[header::LOCATION], UI_PATH, "{uri}");
        }
    }

    #[tokio::test]
    async fn every_file_the_page_names_is_served_under_the_policy() {
        let (status, headers, html) = get(UI_PATH).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_SECURITY_POLICY], CSP);
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
        assert!(!html.contains("style="), "inline style: {html}");
        let mut names = Vec::new();
        for attr in ["src=\"", "href=\""] {
            for (start, _) in html.match_indices(attr) {
                let rest = &html[start + attr.len()..];
                names.push(rest[..rest.find('"').unwrap()].to_owned());
            }
        }
        assert!(names.iter().any(|n| n == "/ui/app.js"), "{names:?}");
        // Page links stay in the fragment (or go to the API reference); files come from /ui/.
        let (files, links): (Vec<_>, Vec<_>) = names.iter().partition(|n| n.starts_with("/ui/"));
        assert!(
            links.iter().all(|n| n.starts_with('#') || *n == "/docs"),
            "{links:?}"
        );
        for name in files {
            let (status, headers, _) = get(name).await;
            assert_eq!(status, StatusCode::OK, "{name}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        // Every module a script imports is embedded too.
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for (start, _) in text.match_indices("from './") {
                let rest = &text[start + 8..];
                let module = &rest[..rest.find('\'').unwrap()];
                assert!(
                    ASSETS.iter().any(|a| a.name == module),
                    "{} imports {module}, which is not embedded",
                    asset.name
                );
            }
            assert!(!text.contains("innerHTML"), "{}: innerHTML", asset.name);
        }
        let (status, _, body) = get("/ui/nothing.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("not_found"), "{body}");
    }
}
