//! Tokens, roles, the limiter, WebSocket tickets and the audit trail, against the real daemon
//! over real HTTP and WebSocket. The only host is this machine as a check-only `local` host
//! whose checks do not refresh the package lists; nothing here changes it (every mutating call
//! on it is either refused by auth or refused by its check-only policy).

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tendhost_tests::daemon::{DaemonProcess, TestApp, spawn_app};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Tokens of each role, and the config that holds their hashes.
struct Tokens {
    read: String,
    operate: String,
    admin: String,
}

const LOCAL_HOST: &str = "[[host]]\nname = \"me\"\naddr = \"local\"\n\
    [host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n";

fn config_with_tokens() -> (String, Tokens) {
    let mut lines = Vec::new();
    let mut token_of = |name: &str, role: &str| {
        let (token, hash) = tendhost_auth::new_token().expect("random token");
        lines.push(format!(
            "{{ name = \"{name}\", token_hash = \"{hash}\", role = \"{role}\" }}"
        ));
        token
    };
    let tokens = Tokens {
        read: token_of("reader", "read"),
        operate: token_of("operator", "operate"),
        admin: token_of("boss", "admin"),
    };
    let config = format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n[daemon.auth]\ntokens = [\n{}\n]\n\n{LOCAL_HOST}",
        lines.join(",\n")
    );
    (config, tokens)
}

/// A client whose connections come from `source` (any 127/8 address reaches the daemon).
fn client_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(source))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("reqwest client")
}

async fn call(
    client: &reqwest::Client,
    app_url: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client.request(method.clone(), format!("{app_url}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// The role an operation needs, read from the daemon's own OpenAPI document (`None`: open).
fn role_of(operation: &Value) -> Option<&'static str> {
    let security = operation["security"]
        .as_array()
        .expect("every operation has security");
    if security.is_empty() {
        return None;
    }
    let description = operation["description"].as_str().unwrap_or_default();
    ["read", "operate", "admin"]
        .into_iter()
        .find(|role| description.contains(&format!("the `{role}` role")))
        .or_else(|| panic!("operation without its role in the description: {operation:#}"))
}

fn concrete(path: &str) -> String {
    path.replace("{name}", "no-such-host")
        .replace("{id}", "no-such-id")
}

#[tokio::test]
async fn every_operation_needs_its_token_and_role() {
    let (config, tokens) = config_with_tokens();
    let app = spawn_app(&config).await;
    let client = client_from([127, 0, 0, 1]);
    let doc = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "{:#}",
        doc["components"]
    );
    let mut n_checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let method: Method = method.to_uppercase().parse().expect("method");
            let url_path = concrete(path);
            let body = (method == Method::POST).then(|| json!({}));
            let (status, headers, answer) = call(
                &client,
                &app.base_url,
                method.clone(),
                &url_path,
                None,
                body.clone(),
            )
            .await;
            let Some(role) = role_of(operation) else {
                assert_ne!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} is documented open"
                );
                continue;
            };
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token: {answer}"
            );
            assert_eq!(answer["error"]["code"], "unauthorized");
            assert!(
                headers
                    .get("www-authenticate")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
                "{method} {path}: {headers:?}"
            );
            let lower: &[&str] = match role {
                "read" => &[],
                "operate" => &[&tokens.read],
                _ => &[&tokens.read, &tokens.operate],
            };
            for token in lower {
                let (status, _, answer) = call(
                    &client,
                    &app.base_url,
                    method.clone(),
                    &url_path,
                    Some(token),
                    body.clone(),
                )
                .await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
                assert_eq!(answer["error"]["details"]["required_role"], role);
            }
            n_checked += 1;
        }
    }
    assert!(n_checked >= 20, "only {n_checked} operations walked");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn roles_allow_what_they_promise() {
    let (config, tokens) = config_with_tokens();
    let app = spawn_app(&config).await;
    let client = client_from([127, 0, 0, 1]);
    let url = &app.base_url;
    let cases: &[(&str, Method, &str, Option<Value>, StatusCode)] = &[
        (&tokens.read, Method::GET, "/hosts", None, StatusCode::OK),
        (&tokens.read, Method::GET, "/hosts/me", None, StatusCode::OK),
        (&tokens.read, Method::GET, "/jobs", None, StatusCode::OK),
        (
            &tokens.read,
            Method::POST,
            "/ws/ticket",
            None,
            StatusCode::OK,
        ),
        (
            &tokens.read,
            Method::GET,
            "/audit",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &tokens.read,
            Method::POST,
            "/hosts/me/check",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &tokens.operate,
            Method::POST,
            "/hosts/me/check",
            None,
            StatusCode::ACCEPTED,
        ),
        // Past auth, the host's own policy answers.
        (
            &tokens.operate,
            Method::POST,
            "/hosts/me/update",
            None,
            StatusCode::CONFLICT,
        ),
        (
            &tokens.operate,
            Method::POST,
            "/hosts",
            Some(json!({})),
            StatusCode::FORBIDDEN,
        ),
        (
            &tokens.operate,
            Method::DELETE,
            "/hosts/me",
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &tokens.operate,
            Method::GET,
            "/audit",
            None,
            StatusCode::FORBIDDEN,
        ),
        (&tokens.admin, Method::GET, "/audit", None, StatusCode::OK),
        // Past auth, body validation answers.
        (
            &tokens.admin,
            Method::POST,
            "/hosts",
            Some(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (token, method, path, body, expected) in cases {
        let (status, _, answer) = call(
            &client,
            url,
            method.clone(),
            path,
            Some(token),
            body.clone(),
        )
        .await;
        assert_eq!(status, *expected, "{method} {path}: {answer}");
    }
    // Health is open and says nothing about the fleet.
    let (status, _, health) = call(&client, url, Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        health.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["status", "version"]
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_token_floods_are_held_back_per_address() {
    let (config, tokens) = config_with_tokens();
    let app = spawn_app(&config).await;
    let url = &app.base_url;
    let guesser = client_from([127, 0, 0, 1]);
    let mut first_limited = None;
    for attempt in 0..30 {
        let (status, headers, _) =
            call(&guesser, url, Method::GET, "/hosts", Some("th_guess"), None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!(retry_after >= 1, "{retry_after}");
            first_limited = Some(attempt);
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let first_limited = first_limited.expect("30 wrong tokens were never held back");
    assert!(
        first_limited >= 5,
        "held back after only {first_limited} wrong tokens"
    );
    // Held back even with the right token: that is what stops guessing.
    let (status, _, _) = call(
        &guesser,
        url,
        Method::GET,
        "/hosts",
        Some(&tokens.read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    // Another address is not slowed.
    let other = client_from([127, 0, 0, 2]);
    let (status, _, _) = call(&other, url, Method::GET, "/hosts", Some(&tokens.read), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = call(&other, url, Method::GET, "/hosts", Some("th_x"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Requests with no token at all do not count.
    let tokenless = client_from([127, 0, 0, 3]);
    for _ in 0..30 {
        let (status, _, _) = call(&tokenless, url, Method::GET, "/hosts", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = call(
        &tokenless,
        url,
        Method::GET,
        "/hosts",
        Some(&tokens.read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn odd_authorization_headers_get_a_4xx() {
    let (config, tokens) = config_with_tokens();
    let app = spawn_app(&config).await;
    let client = client_from([127, 0, 0, 4]);
    let bearer = format!("Bearer {}", tokens.read);
    let cases = [
        vec![bearer.clone(), bearer.clone()],
        vec![format!("Bearer {}", "a".repeat(20_000))],
        vec!["Basic dXNlcjpwYXNz".to_owned()],
        vec!["Bearer".to_owned()],
        vec![format!("bearer {}", tokens.read)],
    ];
    for (idx, values) in cases.iter().enumerate() {
        let mut request = client.get(app.url("/hosts"));
        for value in values {
            request = request.header("authorization", value);
        }
        let status = request.send().await.unwrap().status();
        if idx == 4 {
            assert_eq!(status, StatusCode::OK, "the scheme is case-insensitive");
        } else {
            assert!(status.is_client_error(), "case {idx}: {status}");
        }
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn websocket_needs_a_token_or_a_single_use_ticket() {
    let (config, tokens) = config_with_tokens();
    let app = spawn_app(&config).await;
    let ws_url = format!("ws://{}/ws/events", app.addr);
    let refused = |result: Result<_, tokio_tungstenite::tungstenite::Error>| match result {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => 101,
    };
    assert_eq!(
        refused(tokio_tungstenite::connect_async(&ws_url).await),
        401
    );
    let mut wrong = ws_url.as_str().into_client_request().unwrap();
    wrong
        .headers_mut()
        .insert("authorization", "Bearer th_wrong".parse().unwrap());
    assert_eq!(refused(tokio_tungstenite::connect_async(wrong).await), 401);
    let mut right = ws_url.as_str().into_client_request().unwrap();
    right.headers_mut().insert(
        "authorization",
        format!("Bearer {}", tokens.read).parse().unwrap(),
    );
    assert_eq!(refused(tokio_tungstenite::connect_async(right).await), 101);

    let client = client_from([127, 0, 0, 1]);
    let (status, _, ticket) = call(
        &client,
        &app.base_url,
        Method::POST,
        "/ws/ticket",
        Some(&tokens.read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ticket}");
    assert_eq!(ticket["expires_in"], 30);
    let ticket = ticket["ticket"].as_str().unwrap();
    assert!(!ticket.starts_with("th_"), "a ticket is not a token");
    let with_ticket = format!("{ws_url}?ticket={ticket}");
    assert_eq!(
        refused(tokio_tungstenite::connect_async(&with_ticket).await),
        101
    );
    assert_eq!(
        refused(tokio_tungstenite::connect_async(&with_ticket).await),
        401,
        "a ticket works once"
    );
    app.stop().await.unwrap();
}

async fn audit_rows(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let client = client_from([127, 0, 0, 1]);
    let (status, _, page) = call(
        &client,
        &app.base_url,
        Method::GET,
        &format!("/audit?per_page=200{query}"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn changes_and_refusals_each_leave_one_audit_row() {
    let (config, tokens) = config_with_tokens();
    let app = spawn_app(&config).await;
    let client = client_from([127, 0, 0, 5]);
    let url = &app.base_url;
    let (status, _, check) = call(
        &client,
        url,
        Method::POST,
        "/hosts/me/check",
        Some(&tokens.operate),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _, _) = call(
        &client,
        url,
        Method::POST,
        "/hosts/me/update",
        Some(&tokens.operate),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = call(
        &client,
        url,
        Method::POST,
        "/hosts/me/reboot",
        Some(&tokens.read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let registration = json!({"name": "reg-1", "addr": "127.0.0.1", "port": 1, "token": "s3cret"});
    let (status, _, registered) = call(
        &client,
        url,
        Method::POST,
        "/hosts",
        Some(&tokens.admin),
        Some(registration),
    )
    .await;
    assert!(
        status.is_success() || status.is_client_error(),
        "{status} {registered}"
    );
    let registration_status = status.as_u16();
    // Reads are not audited.
    call(
        &client,
        url,
        Method::GET,
        "/hosts",
        Some(&tokens.read),
        None,
    )
    .await;

    let rows = audit_rows(&app, &tokens.admin, "").await;
    let mine: Vec<&Value> = rows.iter().filter(|r| r["source"] == "127.0.0.5").collect();
    assert_eq!(mine.len(), 4, "{mine:#?}");
    let row = |path: &str| {
        let matching: Vec<&&Value> = mine.iter().filter(|r| r["path"] == path).collect();
        assert_eq!(matching.len(), 1, "{path}: {mine:#?}");
        (*matching[0]).clone()
    };
    let checked = row("/hosts/me/check");
    assert_eq!(checked["token"], "operator");
    assert_eq!(checked["role"], "operate");
    assert_eq!(checked["status"], 202);
    assert_eq!(checked["host"], "me");
    assert_eq!(checked["job_id"], check["job_id"]);
    assert_eq!(row("/hosts/me/update")["status"], 409);
    let refused = row("/hosts/me/reboot");
    assert_eq!(
        (refused["token"].clone(), refused["status"].clone()),
        (json!("reader"), json!(403))
    );
    let registered_row = row("/hosts");
    assert_eq!(registered_row["host"], "reg-1");
    assert_eq!(registered_row["status"], registration_status);
    assert_eq!(registered_row["body"]["token"], "<redacted>");
    assert!(!registered_row.to_string().contains("s3cret"));
    // Filters.
    let by_token = audit_rows(&app, &tokens.admin, "&token=reader").await;
    assert!(by_token.iter().all(|r| r["token"] == "reader") && !by_token.is_empty());
    let by_host = audit_rows(&app, &tokens.admin, "&host=reg-1").await;
    assert_eq!(by_host.len(), 1);
    let later = audit_rows(&app, &tokens.admin, "&since=2999-01-01T00:00:00Z").await;
    assert!(later.is_empty());
    let client = client_from([127, 0, 0, 1]);
    let (status, _, bad) = call(
        &client,
        url,
        Method::GET,
        "/audit?since=yesterday",
        Some(&tokens.admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["error"]["details"]["field"], "since");
    app.stop().await.unwrap();
}

/// Writes `config` into a new temp dir for a daemon process.
fn process_dir(config: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tendhost.toml");
    std::fs::write(&config_path, config).unwrap();
    let data_dir = dir.path().join("data");
    (dir, config_path, data_dir)
}

#[tokio::test]
async fn an_audit_row_survives_kill_9_right_after_the_202() {
    let (config, tokens) = config_with_tokens();
    let (_dir, config_path, data_dir) = process_dir(&config);
    let daemon = DaemonProcess::start(&config_path, &data_dir);
    let client = client_from([127, 0, 0, 6]);
    let (status, _, check) = call(
        &client,
        &daemon.base_url,
        Method::POST,
        "/hosts/me/check",
        Some(&tokens.operate),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    daemon.signal("KILL");
    drop(daemon);

    let daemon = DaemonProcess::start(&config_path, &data_dir);
    let (status, _, page) = call(
        &client,
        &daemon.base_url,
        Method::GET,
        "/audit?path_prefix=/hosts/me/check",
        Some(&tokens.admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rows = page["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{page:#}");
    assert_eq!(rows[0]["status"], 202);
    assert_eq!(rows[0]["job_id"], check["job_id"]);
    assert_eq!(rows[0]["token"], "operator");
}

#[tokio::test]
async fn bootstrap_token_is_private_works_and_is_never_logged() {
    let config = format!("[daemon]\ncheck_on_start = false\n[daemon.auth]\n\n{LOCAL_HOST}");
    let (_dir, config_path, data_dir) = process_dir(&config);
    let mut daemon = DaemonProcess::start(&config_path, &data_dir);
    let token_path = data_dir.join("admin.token");
    let mode = std::fs::metadata(&token_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "admin.token mode {mode:o}");
    let data_mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
    assert_eq!(data_mode & 0o777, 0o700, "data_dir mode {data_mode:o}");
    let db_mode = std::fs::metadata(data_dir.join("tendhost.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(db_mode & 0o777, 0o600, "database mode {db_mode:o}");
    let token = std::fs::read_to_string(&token_path)
        .unwrap()
        .trim()
        .to_owned();
    assert!(token.starts_with("th_"), "{token}");
    let client = client_from([127, 0, 0, 1]);
    let (status, _, _) = call(
        &client,
        &daemon.base_url,
        Method::GET,
        "/audit",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the bootstrap token is an admin token"
    );
    let (status, _, _) = call(
        &client,
        &daemon.base_url,
        Method::POST,
        "/hosts/me/check",
        Some("th_nope"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    daemon.signal("TERM");
    daemon.wait_exit("the daemon exits on SIGTERM");
    let log = daemon.log.join("\n");
    assert!(
        log.contains("admin.token"),
        "the log names the file:\n{log}"
    );
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert!(
        !log.contains(&token[3..20]),
        "part of the token is in the log"
    );

    // A restart reuses it.
    let daemon = DaemonProcess::start(&config_path, &data_dir);
    let (status, _, _) = call(
        &client,
        &daemon.base_url,
        Method::GET,
        "/hosts",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_tokens_file_is_reloaded_and_a_bad_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tokens_path = dir.path().join("tokens.toml");
    let (first, first_hash) = tendhost_auth::new_token().unwrap();
    let (second, second_hash) = tendhost_auth::new_token().unwrap();
    let file_with = |hash: &tendhost_auth::TokenHash| {
        format!("tokens = [{{ name = \"ci\", token_hash = \"{hash}\", role = \"read\" }}]\n")
    };
    std::fs::write(&tokens_path, file_with(&first_hash)).unwrap();
    let config = format!(
        "[daemon]\ncheck_on_start = false\n[daemon.auth]\ntokens_file = \"{}\"\n\n{LOCAL_HOST}",
        tokens_path.display()
    );
    let config_path = dir.path().join("tendhost.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut daemon = DaemonProcess::start(&config_path, &dir.path().join("data"));
    let client = client_from([127, 0, 0, 7]);
    let base_url = daemon.base_url.clone();
    let status_with = |token: String| {
        let client = client.clone();
        let url = base_url.clone();
        async move {
            call(&client, &url, Method::GET, "/hosts", Some(&token), None)
                .await
                .0
        }
    };
    assert_eq!(status_with(first.clone()).await, StatusCode::OK);

    // A bad file: reported with its place, the old token stays in force.
    std::fs::write(
        &tokens_path,
        "tokens = [{ name = \"ci\", token_hash = \"md5:1\", role = \"read\" }]\n",
    )
    .unwrap();
    daemon.signal("HUP");
    let problem = daemon
        .wait_for_log("tokens_file not applied")
        .expect("the bad tokens file is reported");
    assert!(
        problem.contains(&format!("{}:1:", tokens_path.display())),
        "{problem}"
    );
    assert_eq!(status_with(first.clone()).await, StatusCode::OK);

    // A good file replaces the set, without a signal.
    std::fs::write(&tokens_path, file_with(&second_hash)).unwrap();
    daemon
        .wait_for_log("tokens reloaded")
        .expect("the changed tokens file is picked up");
    assert_eq!(status_with(second).await, StatusCode::OK);
    assert_eq!(status_with(first).await, StatusCode::UNAUTHORIZED);
}
