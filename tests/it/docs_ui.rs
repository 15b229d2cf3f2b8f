//! `/docs` rendered by a real browser: headless Chromium loads the page from a server on
//! loopback, with every other host unresolvable (an air-gapped network), and the DOM it
//! renders must show the API's routes.
//!
//! The HTML, headers and escaping of the page are unit-tested in `tendhost::http::docs`; this
//! module checks only that the page really renders, served by the real daemon, listing every
//! operation of the daemon's own OpenAPI document.

use std::time::Duration;

use serde_json::Value;
use tendhost::http::docs;
use tendhost_tests::browser;
use tendhost_tests::daemon::{EMPTY_CONFIG, spawn_app};

#[tokio::test]
async fn docs_page_renders_the_routes_offline() {
    let app = spawn_app(EMPTY_CONFIG).await;
    let base_url = app.base_url.clone();
    let openapi: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let rendered = render(&format!("{base_url}{}", docs::PAGE_PATH)).await;
    let text = visible_text(&rendered.dom);
    let context = || {
        format!(
            "visible text:\n{text}\n\nconsole:\n{}",
            rendered.console.join("\n")
        )
    };

    // Scalar mounted and announced itself: the bundle came from the daemon and ran.
    assert!(
        rendered.dom.contains("scalar-app"),
        "Scalar did not mount; {}",
        context()
    );
    let banner = format!("@scalar/api-reference@{}", docs::SCALAR_VERSION);
    assert!(
        rendered.console.iter().any(|line| line.contains(&banner)),
        "{}",
        context()
    );
    // Nothing was attempted outside the daemon (the page's CSP blocks and reports it).
    let blocked: Vec<&String> = rendered
        .console
        .iter()
        .filter(|line| line.contains("Content Security Policy"))
        .collect();
    assert!(
        blocked.is_empty(),
        "the page tried to load from elsewhere: {blocked:#?}"
    );

    assert!(text.contains("tendhost"), "{}", context());
    // Every group (tag) of the daemon's own document is in the sidebar; Scalar renders the
    // first groups' operations right away (method and path), the rest when opened.
    let compact: String = text.split_whitespace().collect();
    let mut tags: Vec<&str> = Vec::new();
    for item in openapi["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            for tag in operation["tags"].as_array().into_iter().flatten() {
                let tag = tag.as_str().unwrap();
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
        }
    }
    assert!(tags.len() >= 6, "{tags:?}");
    for tag in &tags {
        assert!(text.contains(tag), "group {tag} not shown; {}", context());
    }
    for (path, item) in openapi["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let first_groups = operation["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "system" || t == "hosts"));
            if first_groups {
                assert!(
                    compact.contains(&format!("{method}{path}")),
                    "{method} {path} not shown; {}",
                    context()
                );
            }
        }
    }
    // The first operation is open, with a curl example naming this very server.
    assert!(text.contains("Daemon health"), "{}", context());
    assert!(
        compact.contains(&format!("curl{base_url}/health")),
        "{}",
        context()
    );
    app.stop().await.unwrap();
}

pub(crate) struct Rendered {
    /// `document.documentElement.outerHTML` after the page's scripts ran.
    pub(crate) dom: String,
    /// The page's console messages, as Chromium logged them.
    pub(crate) console: Vec<String>,
}

/// Loads `url` in headless Chromium that can resolve nothing but 127.0.0.1 and dumps the DOM
/// once the page is idle (virtual time stands still while requests are in flight).
pub(crate) async fn render(url: &str) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let child = browser::chromium_command(profile.path())
        .args(["--virtual-time-budget=30000", "--dump-dom"])
        .arg(url)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", browser::chromium().display()));
    // A guard against a wedged browser, not a speed check.
    let output = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("chromium did not exit within 180 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "chromium failed ({}):\n{stderr}",
        output.status
    );
    Rendered {
        dom: String::from_utf8(output.stdout).expect("chromium dumped a DOM that is not UTF-8"),
        console: stderr
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
    }
}

/// The text a reader sees: `dom` without tags, comments, scripts and styles, entities decoded.
/// Tags are dropped without a space, so text split over inline elements reads as one.
fn visible_text(dom: &str) -> String {
    let mut text = String::with_capacity(dom.len() / 4);
    let mut rest = dom;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        rest = &rest[open..];
        let raw_end = ["<script", "<style"]
            .iter()
            .find(|tag| rest.starts_with(*tag))
            .map(|tag| format!("</{}>", &tag[1..]));
        let skip = match raw_end {
            Some(end) => rest.find(&end).map_or(rest.len(), |at| at + end.len()),
            None => tag_len(rest),
        };
        rest = &rest[skip..];
    }
    text.push_str(rest);
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Length of the tag or comment `markup` starts with (quoted attribute values may hold `>`).
fn tag_len(markup: &str) -> usize {
    if markup.starts_with("<!--") {
        return markup.find("-->").map_or(markup.len(), |at| at + 3);
    }
    let mut quote = None;
    for (idx, c) in markup.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return idx + 1,
            _ => {}
        }
    }
    markup.len()
}
