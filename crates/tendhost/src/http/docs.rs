//! `GET /docs`: the Scalar API reference UI, served entirely by the daemon.
//!
//! The page embeds the OpenAPI document and loads Scalar's standalone browser bundle from
//! `/docs/scalar.js`. The bundle is vendored in `crates/tendhost/assets/scalar/` by
//! `scripts/fetch-scalar` (never edited by hand) and compiled into the binary, so `/docs` renders
//! with no internet: on air-gapped networks and in the test suite alike. Scalar's CDN fonts and
//! its hosted extras (AI agent, MCP, telemetry, developer tools) are switched off, and a
//! Content-Security-Policy keeps the page on the daemon's own origin.
//!
//! Building the OpenAPI document and serving `/openapi.json` live elsewhere (`http`).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::openapi::OpenApi;

/// Version of the vendored `@scalar/api-reference` bundle.
pub const SCALAR_VERSION: &str = include_str!("../../assets/scalar/VERSION").trim_ascii();

/// Path of the HTML page.
pub const PAGE_PATH: &str = "/docs";

/// Path of the embedded Scalar bundle.
pub const SCRIPT_PATH: &str = "/docs/scalar.js";

/// `dist/browser/standalone.js` of `@scalar/api-reference`, unmodified (defines `window.Scalar`).
const SCALAR_JS: &[u8] = include_bytes!("../../assets/scalar/standalone.js");

/// The page links the bundle with `?v=<version>`, so a new bundle is a new URL and the old one
/// may be cached for good.
const SCRIPT_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Everything the page needs comes from the daemon; inline script and styles are Scalar's own
/// (its init call, injected CSS), `data:`/`blob:` cover icons and workers it creates itself.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; \
    connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'self'";

/// Starts Scalar on the embedded document (`openapi`). No option may make the page call out:
/// no CDN fonts, no scalar.com agent/MCP/telemetry. A document without `servers` means "this
/// server" (OpenAPI's default); naming the origin makes the examples complete URLs.
const INIT_SCRIPT: &str = "
      const openapi = JSON.parse(document.getElementById('openapi-document').textContent);
      Scalar.createApiReference('#app', {
        content: openapi,
        servers: openapi.servers ?? [{ url: window.location.origin }],
        withDefaultFonts: false,
        telemetry: false,
        showDeveloperTools: 'never',
        agent: { disabled: true },
        mcp: { disabled: true },
      });
";

/// Routes `GET /docs` (the page, with `openapi` embedded) and `GET /docs/scalar.js` (the bundle).
///
/// The page is rendered once, here: the document does not change while the daemon runs.
#[expect(
    clippy::needless_pass_by_value,
    reason = "takes the Arc the daemon shares with /openapi.json, like its other routers"
)]
pub fn router<S: Clone + Send + Sync + 'static>(openapi: Arc<OpenApi>) -> Router<S> {
    let page = Page::render(&openapi);
    Router::new()
        .route(PAGE_PATH, get(move || std::future::ready(page.clone())))
        .route(SCRIPT_PATH, get(scalar_js))
}

/// The rendered `/docs` response, cheap to clone.
#[derive(Clone)]
struct Page {
    status: StatusCode,
    html: Bytes,
}

impl Page {
    fn render(openapi: &OpenApi) -> Page {
        match openapi.to_json() {
            Ok(json) => Page {
                status: StatusCode::OK,
                html: Bytes::from(page_html(openapi, &json)),
            },
            Err(err) => {
                tracing::error!(%err, "the OpenAPI document does not serialize; /docs shows the error");
                let html = format!(
                    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
                     <title>API reference unavailable</title></head><body>\
                     <p>The OpenAPI document could not be serialized: {}</p></body></html>\n",
                    escape_html(&err.to_string())
                );
                Page {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    html: Bytes::from(html),
                }
            }
        }
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> axum::response::Response {
        (
            self.status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            self.html,
        )
            .into_response()
    }
}

async fn scalar_js() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            ),
            (header::CACHE_CONTROL, SCRIPT_CACHE_CONTROL),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Bytes::from_static(SCALAR_JS),
    )
}

/// The page: the document as inert JSON data, the bundle from the daemon, one init call.
fn page_html(openapi: &OpenApi, openapi_json: &str) -> String {
    let title = escape_html(&openapi.info.title);
    let mut html = String::with_capacity(openapi_json.len() + 1024);
    let _ = write!(
        html,
        r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="generator" content="@scalar/api-reference {SCALAR_VERSION}">
    <title>{title} - API reference</title>
  </head>
  <body>
    <div id="app"></div>
    <script id="openapi-document" type="application/json">{json}</script>
    <script src="{SCRIPT_PATH}?v={SCALAR_VERSION}"></script>
    <script>{INIT_SCRIPT}    </script>
  </body>
</html>
"#,
        json = escape_script_json(openapi_json),
    );
    html
}

/// JSON made safe inside a `<script>` element: with no `<` left, neither `</script>` nor `<!--`
/// can occur. `\u003c` is the same string to `JSON.parse`, and `<` only appears inside strings.
fn escape_script_json(json: &str) -> String {
    json.replace('<', "\\u003c")
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::Request;
    use tower::ServiceExt;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
    use utoipa::openapi::{InfoBuilder, OpenApiBuilder, PathsBuilder};

    use super::*;

    fn openapi(title: &str, summary: &str) -> Arc<OpenApi> {
        let operation = OperationBuilder::new().summary(Some(summary)).build();
        let paths = PathsBuilder::new()
            .path("/health", PathItem::new(HttpMethod::Get, operation))
            .build();
        let info = InfoBuilder::new().title(title).version("1.2.3").build();
        Arc::new(OpenApiBuilder::new().info(info).paths(paths).build())
    }

    async fn get(openapi: Arc<OpenApi>, uri: &str) -> (StatusCode, axum::http::HeaderMap, String) {
        let request = Request::builder().uri(uri).body(Body::empty()).unwrap();
        let response = router::<()>(openapi).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    /// Values of every `src=` and `href=` attribute in `html`.
    fn links(html: &str) -> Vec<&str> {
        let mut links = Vec::new();
        for attr in ["src=\"", "href=\""] {
            for (start, _) in html.match_indices(attr) {
                let rest = &html[start + attr.len()..];
                links.push(&rest[..rest.find('"').unwrap()]);
            }
        }
        links
    }

    #[tokio::test]
    async fn page_loads_the_bundle_from_the_daemon_and_embeds_the_document() {
        let (status, headers, html) = get(openapi("tendhost", "Report health"), "/docs").await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(html.starts_with("<!doctype html>"), "{html}");
        assert_eq!(
            links(&html),
            [format!("/docs/scalar.js?v={SCALAR_VERSION}")]
        );
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
        assert!(
            html.contains(r#""/health""#) && html.contains("Report health"),
            "{html}"
        );
        assert!(html.contains("withDefaultFonts: false"), "{html}");
        assert!(
            html.contains("<title>tendhost - API reference</title>"),
            "{html}"
        );
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            csp.contains("connect-src 'self'") && !csp.contains("http"),
            "{csp}"
        );
    }

    #[tokio::test]
    async fn document_text_cannot_break_out_of_the_page() {
        let hostile = "</script><script>alert(1)</script><!--";
        let (status, _, html) = get(openapi(hostile, hostile), "/docs").await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(html.matches("<script").count(), 3, "{html}");
        assert_eq!(html.matches("</script>").count(), 3, "{html}");
        assert!(!html.contains("<!--"), "{html}");
        assert!(
            html.contains("<title>&lt;/script&gt;&lt;script&gt;alert(1)"),
            "{html}"
        );
        assert!(
            html.contains(r"\u003c/script>\u003cscript>alert(1)"),
            "{html}"
        );
    }

    #[tokio::test]
    async fn bundle_is_served_as_cacheable_javascript() {
        let (status, headers, js) = get(openapi("t", "s"), "/docs/scalar.js").await;

        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/javascript; charset=utf-8"
        );
        assert_eq!(headers[header::CACHE_CONTROL], SCRIPT_CACHE_CONTROL);
        assert_eq!(js.len(), SCALAR_JS.len());
        assert!(js.contains("window.Scalar={createApiReference"));
    }

    #[test]
    fn version_is_the_vendored_one() {
        let parts: Vec<&str> = SCALAR_VERSION.split('.').collect();
        assert_eq!(parts.len(), 3, "{SCALAR_VERSION:?}");
        assert!(
            parts.iter().all(|p| p.parse::<u32>().is_ok()),
            "{SCALAR_VERSION:?}"
        );
        let readme = include_str!("../../assets/scalar/README.md");
        assert!(
            readme.contains(&format!("| version | `{SCALAR_VERSION}` |")),
            "{readme}"
        );
    }
}
