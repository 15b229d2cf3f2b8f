//! The dashboard's server side over real HTTP and WebSocket, without a browser: the
//! `tendhost_session` cookie (its attributes, where it works, and the browser rules: own
//! `Origin` for state changes and the event stream, JSON, logout, a restart keeps it),
//! `GET /fleet/summary` and the sorted, paginated host list, `/` and `/ui/` served open.
//! The real browser drives the same endpoints in `it/dashboard.rs`.

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, HOST, ORIGIN, SET_COOKIE};
use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, spawn_app, spawn_app_in};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Hosts that are never reached (TEST-NET addresses, no check at start): the daemon knows
/// them, nothing runs on them.
fn hosts(n: usize) -> String {
    let mut text = String::new();
    for idx in 0..n {
        let tag = if idx % 2 == 0 { "even" } else { "odd" };
        text.push_str(&format!(
            "[[host]]\nname = \"h{idx:02}\"\naddr = \"192.0.2.{}\"\ntags = [\"{tag}\"]\ncheck_interval = \"30d\"\n",
            idx + 1
        ));
    }
    text
}

struct Tokens {
    operate: String,
    read: String,
    admin: String,
}

fn config(n_hosts: usize) -> (String, Tokens) {
    let (operate, operate_hash) = tendhost_auth::new_token().unwrap();
    let (read, read_hash) = tendhost_auth::new_token().unwrap();
    let (admin, admin_hash) = tendhost_auth::new_token().unwrap();
    let config = format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n[daemon.auth]\ntokens = [\n\
         {{ name = \"ops\", token_hash = \"{operate_hash}\", role = \"operate\" }},\n\
         {{ name = \"viewer\", token_hash = \"{read_hash}\", role = \"read\" }},\n\
         {{ name = \"boss\", token_hash = \"{admin_hash}\", role = \"admin\" }},\n]\n\n{}",
        hosts(n_hosts)
    );
    (
        config,
        Tokens {
            operate,
            read,
            admin,
        },
    )
}

/// Logs in with `token` and returns the cookie pair (`tendhost_session=...`) and the whole
/// `Set-Cookie` line.
async fn login(app: &TestApp, token: &str) -> (String, String) {
    let response = app
        .client
        .post(app.url("/session"))
        .header(ORIGIN, &app.base_url)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    let pair = set_cookie.split(';').next().unwrap().to_owned();
    (pair, set_cookie)
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    headers: &[(reqwest::header::HeaderName, &str)],
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = app.client.request(method, app.url(path));
    for (name, value) in headers {
        request = request.header(name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_session_cookie_follows_the_browser_rules() {
    let (config, tokens) = config(2);
    let app = spawn_app(&config).await;
    let origin = app.base_url.clone();

    // Open without a token: the redirect, the page, its files and the login; the API is not.
    let (status, _) = send(&app, reqwest::Method::GET, "/ui/", &[], None).await;
    assert_eq!(status, StatusCode::OK);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = no_redirects.get(app.url("/")).send().await.unwrap();
    assert!(root.status().is_redirection(), "{}", root.status());
    assert_eq!(root.headers()["location"], "/ui/");
    let (status, body) = send(&app, reqwest::Method::GET, "/hosts", &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A wrong token is refused as the API words it (and audited, like a wrong bearer).
    let json_type = (CONTENT_TYPE, "application/json");
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/session",
        &[json_type.clone(), (ORIGIN, &origin)],
        Some(r#"{"token": "th_wrong"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    // A login that is not JSON (a cross-site form) is refused.
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/session",
        &[(CONTENT_TYPE, "application/x-www-form-urlencoded")],
        Some(&format!("token={}", tokens.operate)),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (cookie, set_cookie) = login(&app, &tokens.operate).await;
    assert!(cookie.starts_with("tendhost_session="), "{set_cookie}");
    assert!(
        !set_cookie.contains(&tokens.operate),
        "the cookie holds no token"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{attribute}: {set_cookie}");
    }
    assert!(
        !set_cookie.contains("Secure"),
        "no TLS, no Secure: {set_cookie}"
    );

    // Reads work with the cookie alone; GET /session says who the page is.
    let with_cookie = (COOKIE, cookie.as_str());
    let (status, me) = send(
        &app,
        reqwest::Method::GET,
        "/session",
        std::slice::from_ref(&with_cookie),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "ops");
    assert_eq!(me["role"], "operate");
    assert_eq!(me["auth_enabled"], true);
    assert!(me["expires_at"].as_str().is_some(), "{me}");
    let (status, _) = send(
        &app,
        reqwest::Method::GET,
        "/hosts",
        std::slice::from_ref(&with_cookie),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A state change by cookie: needs the daemon's own Origin, and JSON.
    let check = "/hosts/h00/acknowledge";
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        check,
        &[with_cookie.clone(), json_type.clone()],
        Some("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no Origin: {body}");
    assert_eq!(body["error"]["code"], "forbidden_origin");
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        check,
        &[with_cookie.clone(), (ORIGIN, "http://evil.example")],
        Some("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "foreign Origin: {body}");
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        check,
        &[
            with_cookie.clone(),
            (ORIGIN, &origin),
            (CONTENT_TYPE, "text/plain"),
        ],
        Some("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        check,
        &[with_cookie.clone(), (ORIGIN, &origin), json_type.clone()],
        Some("{}"),
    )
    .await;
    // Authenticated and allowed: the host has nothing to acknowledge, as the API says.
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The role still comes from the token: a read session cannot act.
    let (read_cookie, _) = login(&app, &tokens.read).await;
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/hosts/h00/check",
        &[
            (COOKIE, read_cookie.as_str()),
            (ORIGIN, &origin),
            json_type.clone(),
        ],
        Some("{}"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["details"]["required_role"], "operate");

    // The event stream by cookie needs the daemon's own Origin.
    let ws_url = format!("ws://{}/ws/events", app.addr);
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert(COOKIE, cookie.parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request.clone()).await;
    assert!(refused.is_err(), "a cookie WebSocket without Origin opened");
    request
        .headers_mut()
        .insert(ORIGIN, origin.parse().unwrap());
    request
        .headers_mut()
        .insert(HOST, app.addr.to_string().parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the page's own WebSocket opens with the cookie");
    drop(ws);

    // A forged cookie is not a session.
    let (status, _) = send(
        &app,
        reqwest::Method::GET,
        "/hosts",
        &[(COOKIE, "tendhost_session=ths1.AAAA.BBBB")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A restart keeps the session (the key is in the data dir, 0600).
    let dir = app.into_dir().await;
    let key = dir.path().join("data/session.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let app = spawn_app_in(dir).await;
    let with_cookie = (COOKIE, cookie.as_str());
    let (status, _) = send(
        &app,
        reqwest::Method::GET,
        "/session",
        std::slice::from_ref(&with_cookie),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the session survived the restart");

    // Logout ends it.
    let response = app
        .client
        .delete(app.url("/session"))
        .header(COOKIE, &cookie)
        .header(ORIGIN, &app.base_url)
        .header(CONTENT_TYPE, "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(
        response.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, body) = send(&app, reqwest::Method::GET, "/hosts", &[with_cookie], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{body}"
    );
    // ... and a restart does not bring it back (the revoked set is in the data dir, 0600).
    let dir = app.into_dir().await;
    let revoked = dir.path().join("data/session.revoked");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&revoked).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let app = spawn_app_in(dir).await;
    let with_cookie = (COOKIE, cookie.as_str());
    let (status, body) = send(&app, reqwest::Method::GET, "/hosts", &[with_cookie], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "after a restart: {body}");

    // Logins and refused logins are audited, with the token's name and never the token.
    let audit: Value = app
        .client
        .get(app.url("/audit?path_prefix=/session"))
        .bearer_auth(&tokens.admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<(Value, Value)> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (row["token"].clone(), row["status"].clone()))
        .collect();
    assert!(rows.contains(&(json!("ops"), json!(200))), "{audit}");
    assert!(rows.contains(&(json!("viewer"), json!(200))), "{audit}");
    assert!(rows.contains(&(Value::Null, json!(401))), "{audit}");
    assert!(!audit.to_string().contains(&tokens.operate), "{audit}");

    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_summary_and_the_sorted_host_pages_are_computed_by_the_daemon() {
    let (config, tokens) = config(25);
    let app = spawn_app(&config).await;
    let bearer = format!("Bearer {}", tokens.read);
    let get = |path: &str| {
        let request = app
            .client
            .get(app.url(path))
            .header(reqwest::header::AUTHORIZATION, &bearer);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    let (status, summary) = get("/fleet/summary").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["n_hosts"], 25);
    let by_state = summary["by_state"].as_array().unwrap();
    assert_eq!(by_state.len(), 9, "every state is listed: {summary}");
    assert_eq!(by_state[0], json!({"state": "idle", "hosts": 25}));
    assert_eq!(summary["up_to_date"], 25);
    assert_eq!(summary["with_security"], 0);
    assert_eq!(summary["needs_attention"], 0);
    assert_eq!(summary["os"], json!([{"os": "unknown", "hosts": 25}]));

    // Server-side pages, in the order asked for, ties by name.
    let (_, page) = get("/hosts?sort=-name&per_page=10&page=1").await;
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "h24");
    assert_eq!(names[9], "h15");
    assert_eq!(page["pagination"]["total_pages"], 3);
    let (_, page) = get("/hosts?sort=-pending&tag=odd&per_page=5&page=2").await;
    let names: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["h11", "h13", "h15", "h17", "h19"], "{page}");
    assert_eq!(page["pagination"]["total_items"], 12);
    let (status, error) = get("/hosts?sort=size").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["details"]["field"], "sort", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown sort key \"size\""),
        "{error}"
    );
    app.stop().await.unwrap();
}
