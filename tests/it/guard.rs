//! What web pages and strangers cannot do (`http::guard`): a foreign `Host` (DNS rebinding), a
//! foreign `Origin`, and state changes without a JSON content type when no bearer token is
//! sent; CORS only for listed origins. Against the real daemon over real HTTP, and a real
//! headless Chromium loading an attacking page from another loopback port. Also: child
//! processes never inherit `TENDHOST_SSH_KEY`.

use reqwest::StatusCode;
use serde_json::Value;
use tendhost_exec::{Cmd, Executor, LocalExecutor, LocalTarget, NoSink};
use tendhost_tests::daemon::{TestApp, spawn_app};

/// This machine as a check-only host whose checks do not refresh the lists; auth off (loopback).
const AUTH_OFF: &str = "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\
    cors_origins = [\"http://dash.example:8443\"]\npublic_names = [\"tendhost.example\"]\n\
    [daemon.auth]\nenabled = false\n\n\
    [[host]]\nname = \"me\"\naddr = \"local\"\n[host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n";

async fn n_jobs(app: &TestApp) -> u64 {
    let jobs: Value = app
        .client
        .get(app.url("/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jobs["pagination"]["total_items"].as_u64().unwrap()
}

async fn code_of(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn a_foreign_host_header_is_refused_everywhere() {
    let (token, hash) = tendhost_auth::new_token().unwrap();
    let app = spawn_app(&format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\npublic_names = [\"tendhost.example\"]\n\
         [daemon.auth]\ntokens = [{{ name = \"ops\", token_hash = \"{hash}\", role = \"admin\" }}]\n"
    ))
    .await;
    for path in [
        "/health",
        "/hosts",
        "/ws/events",
        "/docs",
        "/openapi.json",
        "/nope",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&token)
            .header("host", "attacker.example:8080")
            .send()
            .await
            .unwrap();
        assert_eq!(
            code_of(response).await,
            (StatusCode::FORBIDDEN, "forbidden_host".to_owned()),
            "{path}"
        );
    }
    for host in [
        "localhost",
        "127.0.0.1",
        "tendhost.example:443",
        "TENDHOST.EXAMPLE.",
    ] {
        let response = app
            .client
            .get(app.url("/hosts"))
            .bearer_auth(&token)
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{host}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn origins_must_be_the_daemons_own_or_listed() {
    let app = spawn_app(AUTH_OFF).await;
    let own = format!("http://{}", app.addr);
    let foreign = app
        .client
        .get(app.url("/hosts"))
        .header("origin", "http://127.0.0.1:1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code_of(foreign).await,
        (StatusCode::FORBIDDEN, "forbidden_origin".to_owned())
    );
    let null_origin = app
        .client
        .get(app.url("/hosts"))
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_eq!(null_origin.status(), StatusCode::FORBIDDEN);
    let same = app
        .client
        .get(app.url("/hosts"))
        .header("origin", &own)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::OK);
    assert!(same.headers().get("access-control-allow-origin").is_none());

    // A listed origin gets CORS headers, and its preflight an answer.
    let listed = app
        .client
        .get(app.url("/hosts"))
        .header("origin", "http://dash.example:8443")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "http://dash.example:8443"
    );
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/hosts/me/check"))
        .header("origin", "http://dash.example:8443")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed.contains("authorization"), "{allowed}");
    let unlisted_preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/hosts/me/check"))
        .header("origin", "http://dash.example:9999")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(unlisted_preflight.status(), StatusCode::FORBIDDEN);

    // WebSocket upgrades carry Origin too.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/ws/events",
            app.addr
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://127.0.0.1:1".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
        }
        other => panic!(
            "a foreign-origin WebSocket was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn state_changes_without_a_token_need_a_json_content_type() {
    let app = spawn_app(AUTH_OFF).await;
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut request = app.client.post(app.url("/hosts/me/check"));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type).body("a=1");
        }
        let (status, code) = code_of(request.send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{content_type:?}"
        );
    }
    assert_eq!(n_jobs(&app).await, 0, "a refused request started a job");
    let accepted = app
        .client
        .post(app.url("/hosts/me/check"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    // A bearer header is proof enough that no cross-site page sent it.
    let with_bearer = app
        .client
        .post(app.url("/hosts/me/update"))
        .bearer_auth("th_anything")
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_bearer.status(),
        StatusCode::CONFLICT,
        "check-only host"
    );
    app.stop().await.unwrap();
}

/// Serves `page` at `/` on a loopback port of its own; the server stops with the returned task.
async fn serve_page(page: String) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/"), task)
}

#[tokio::test]
async fn a_page_from_another_origin_cannot_start_jobs() {
    let app = spawn_app(AUTH_OFF).await;
    let target = format!("http://{}", app.addr);
    let ws_target = format!("ws://{}", app.addr);
    let page = format!(
        r#"<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" action="{target}/hosts/me/check" target="sink"></form>
<pre id="out"></pre>
<script>
const out = document.getElementById("out");
const log = (line) => {{ out.textContent += line + "\n"; }};
document.getElementById("form").submit();
log("form submitted");
fetch("{target}/hosts/me/check", {{ mode: "no-cors", method: "POST" }})
  .then((r) => log("fetch1 answered " + r.type), (e) => log("fetch1 failed " + e));
fetch("{target}/hosts/me/check", {{ mode: "no-cors", method: "POST", body: "{{}}",
  headers: {{ "Content-Type": "text/plain" }} }})
  .then((r) => log("fetch2 answered " + r.type), (e) => log("fetch2 failed " + e));
const ws = new WebSocket("{ws_target}/ws/events");
ws.onopen = () => log("ws OPEN");
ws.onclose = (e) => log("ws closed " + e.code);
</script></body></html>"#
    );
    let (page_url, server) = serve_page(page).await;
    let dom = crate::docs_ui::render(&page_url).await.dom;
    server.abort();
    // Only what the script logged, not the page source (which holds the same words).
    let dom = dom
        .split_once("<pre id=\"out\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map_or_else(
            || panic!("no log in the page:\n{dom}"),
            |(log, _)| log.to_owned(),
        );
    assert!(
        dom.contains("form submitted"),
        "the page's script did not run:\n{dom}"
    );
    assert!(
        dom.contains("fetch1 answered opaque") && dom.contains("fetch2 answered opaque"),
        "the fetches did not reach the daemon:\n{dom}"
    );
    assert!(
        dom.contains("ws closed"),
        "the WebSocket attempt did not end:\n{dom}"
    );
    assert!(
        !dom.contains("ws OPEN"),
        "a foreign page opened the event stream:\n{dom}"
    );
    assert_eq!(n_jobs(&app).await, 0, "a foreign page started a job");
    app.stop().await.unwrap();
}

/// Set in the environment of the copy of this test binary that checks a child's environment.
const CHILD_MARK: &str = "TENDHOST_TEST_ENV_CHILD";

#[tokio::test]
async fn local_commands_never_inherit_the_ssh_key_variable() {
    if std::env::var_os(CHILD_MARK).is_some() {
        // The copy: TENDHOST_SSH_KEY is set here; `env` run through the executor must lack it.
        assert!(std::env::var_os(tendhost_exec::SSH_KEY_ENV).is_some());
        let executor = LocalExecutor::new(LocalTarget::new("local1"));
        let output = executor.run(&Cmd::new("env"), &NoSink).await.unwrap();
        assert!(
            output.stdout.contains(CHILD_MARK),
            "env did not run: {}",
            output.stdout
        );
        assert!(
            !output.stdout.contains(tendhost_exec::SSH_KEY_ENV),
            "a child process inherited the key variable"
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let output = tokio::process::Command::new(exe)
        .args([
            "--exact",
            "guard::local_commands_never_inherit_the_ssh_key_variable",
            "--nocapture",
        ])
        .env(CHILD_MARK, "1")
        .env(tendhost_exec::SSH_KEY_ENV, "bm90IGEga2V5")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the child's check failed or did not run:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
