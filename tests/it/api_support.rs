//! Helpers shared by the REST API tests (`api_errors`, `api_flows`): the daemon config they
//! start from, hosts that are safe to run jobs on from this machine, JSON calls that return
//! status and body, and waiting for a job or rollout to end (within the suite's one
//! `WAIT_DEADLINE`). No tests here.

use std::net::TcpListener;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tendhost_tests::daemon::TestApp;
use tendhost_tests::wait;

/// A daemon that never checks on its own (`check_on_start = false`, and the default 6 h
/// interval), with `me`: this machine as a `check-only` local host that never refreshes
/// package lists (its checks run `apt-get -s` here, nothing else), in group `mine`. The API
/// may register hosts at 127.0.0.1 only (listed explicitly, as loopback must be).
pub const BASE_CONFIG: &str = r#"
[daemon]
log_level = "warn"
check_on_start = false

[daemon.api_hosts]
allow = ["127.0.0.1/32"]

[[host]]
name = "me"
addr = "local"
tags = ["self", "local"]
[host.policy]
updates = "check-only"
refresh_lists = false

[groups]
mine = ["me"]
"#;

/// A loopback port with nothing listening: SSH to it is refused at once, so a host there
/// checks `unreachable` without contacting anything.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// A loopback listener that accepts TCP connections (the kernel's backlog) but never says a
/// word: SSH to it waits for the server banner until its connect timeout, so a job there
/// keeps running while the listener lives.
pub fn silent_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
}

/// Registers a runtime SSH host on loopback `port` and checks the answer is 201.
pub async fn add_loopback_host(app: &TestApp, name: &str, port: u16, extra: Value) -> Value {
    let mut body = json!({"name": name, "addr": "127.0.0.1", "port": port});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (status, created) = call(app, Method::POST, "/hosts", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");
    created
}

/// Sends `method path` with an optional JSON body; returns the status and the JSON answer
/// (`Value::Null` for an empty body).
pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let changes_state = method != Method::GET;
    let mut request = app.client.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    } else if changes_state {
        // What a JSON client sends with no body (auth is off here, so the CSRF rule applies).
        request = request.header("content-type", "application/json");
    }
    let response = request.send().await.expect("request reaches the daemon");
    read(response).await
}

/// Sends `method path` with a raw body and content type (or none).
pub async fn call_raw(
    app: &TestApp,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut request = app.client.request(method, app.url(path));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request
        .body(body.to_owned())
        .send()
        .await
        .expect("request reaches the daemon");
    read(response).await
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("response body");
    if bytes.is_empty() {
        return (status, Value::Null);
    }
    let value = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
        panic!(
            "{status}: answer is not JSON ({err}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, value)
}

/// Asserts the one error shape with `status` and `code`; returns `error.details` (or Null).
pub fn assert_error(answer: &(StatusCode, Value), status: StatusCode, code: &str) -> Value {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body:#}");
    assert_eq!(body["error"]["code"], code, "{body:#}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body:#}"
    );
    body["error"]["details"].clone()
}

/// Polls `GET /jobs/{id}` until the job is neither queued nor running; returns it. Gives up
/// after [`wait::WAIT_DEADLINE`] (a hang guard, not a speed assertion: a check of this machine
/// takes seconds).
pub async fn wait_job(app: &TestApp, job_id: &str) -> Value {
    wait::until(&format!("job {job_id} ending"), || async {
        let (status, job) = call(app, Method::GET, &format!("/jobs/{job_id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{job:#}");
        if job["state"] == "queued" || job["state"] == "running" {
            Err(format!("state {}", job["state"]))
        } else {
            Ok(job)
        }
    })
    .await
}

/// Polls `GET /hosts/{name}` until the host is in `state` (at most [`wait::WAIT_DEADLINE`]).
pub async fn wait_host_state(app: &TestApp, name: &str, state: &str) {
    wait::until(&format!("host {name} becoming {state}"), || async {
        let (status, host) = call(app, Method::GET, &format!("/hosts/{name}"), None).await;
        assert_eq!(status, StatusCode::OK, "{host:#}");
        if host["state"] == state {
            Ok(())
        } else {
            Err(format!("state {}", host["state"]))
        }
    })
    .await;
}

/// Polls `GET /rollouts/{id}` until the rollout is no longer running; returns it (at most
/// [`wait::WAIT_DEADLINE`]).
pub async fn wait_rollout(app: &TestApp, rollout_id: &str) -> Value {
    wait::until(&format!("rollout {rollout_id} ending"), || async {
        let (status, rollout) =
            call(app, Method::GET, &format!("/rollouts/{rollout_id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{rollout:#}");
        if rollout["state"] == "running" {
            Err(format!("{rollout:#}"))
        } else {
            Ok(rollout)
        }
    })
    .await
}

/// Asserts `value` is an RFC 3339 timestamp.
pub fn assert_time(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"));
    assert!(
        text.parse::<jiff::Timestamp>().is_ok(),
        "not RFC 3339: {text}"
    );
}
