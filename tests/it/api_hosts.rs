//! Registering hosts through `POST /hosts` against the real daemon: refused unless
//! `[daemon.api_hosts]` allows it, every address (or every address a name resolves to, names
//! from `/etc/hosts`) checked against the allow-list with loopback and link-local only when
//! listed, no `ssh_key`/`known_hosts` in the body, and strict host keys: no pin fails naming
//! the fingerprint, the right pin connects (a loopback sshd as the host).
//! The fleet case (a pinned config host next to an `accept-new` API host) is in `fleet_hosts`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, spawn_app};
use tendhost_tests::etc_hosts::HostsEntry;
use tendhost_tests::sshd::TestSshd;

use crate::api_support::{assert_error, call, wait_job};

const DAEMON: &str = "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n";

async fn host_names(app: &TestApp) -> Vec<String> {
    let (_, hosts) = call(app, Method::GET, "/hosts", None).await;
    hosts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|host| host["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn register(app: &TestApp, body: Value) -> (StatusCode, Value) {
    call(app, Method::POST, "/hosts", Some(body)).await
}

#[tokio::test]
async fn api_hosts_registration_is_refused_by_default() {
    for extra in ["", "[daemon.api_hosts]\nallow = []\n"] {
        let app = spawn_app(&format!("{DAEMON}{extra}")).await;
        let answer = register(&app, json!({"name": "x", "addr": "10.1.2.3"})).await;
        let details = assert_error(&answer, StatusCode::FORBIDDEN, "api_hosts_disabled");
        assert_eq!(
            details["config_key"], "daemon.api_hosts.allow",
            "{answer:?}"
        );
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("daemon.api_hosts.allow"), "{message}");
        assert!(host_names(&app).await.is_empty());
        app.stop().await.unwrap();
    }
}

#[tokio::test]
async fn api_hosts_every_resolved_address_must_be_allowed() {
    let pid = std::process::id();
    let good = format!("good-{pid}.lan");
    let looped = format!("loop-{pid}.lan");
    let outside = format!("outside-{pid}.example");
    let _entries = [
        HostsEntry::add("192.0.2.7", &good),
        HostsEntry::add("127.0.0.1", &looped),
        HostsEntry::add("192.0.2.8", &outside),
    ];
    let app = spawn_app(&format!(
        "{DAEMON}[daemon.api_hosts]\nallow = [\"10.213.0.0/16\", \"*.lan\"]\nresolve_timeout = \"1s\"\n"
    ))
    .await;
    let rule = "daemon.api_hosts.allow = [\"10.213.0.0/16\", \"*.lan\"]";

    for (name, addr) in [("in-range", "10.213.9.9"), ("by-suffix", good.as_str())] {
        let (status, body) = register(&app, json!({"name": name, "addr": addr})).await;
        assert_eq!(status, StatusCode::CREATED, "{addr}: {body:#}");
    }
    for (name, addr, needle) in [
        ("outside", "192.168.77.1", rule),
        ("outside-name", outside.as_str(), rule),
        ("loopback", "127.0.0.1", "loopback address"),
        ("loopback-name", looped.as_str(), "loopback address"),
        ("v6-loopback", "::1", "loopback address"),
        ("link-local", "169.254.1.1", "link-local address"),
        ("unspecified", "0.0.0.0", "unspecified address"),
    ] {
        let answer = register(&app, json!({"name": name, "addr": addr})).await;
        let details = assert_error(&answer, StatusCode::FORBIDDEN, "address_not_allowed");
        assert_eq!(details["rule"], "daemon.api_hosts.allow", "{addr}");
        assert_eq!(details["field"], "addr", "{addr}");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{addr}: {message}");
        assert!(
            message.contains("daemon.api_hosts.allow"),
            "{addr}: {message}"
        );
    }
    // A name resolving to loopback says so, naming the address it found.
    let answer = register(&app, json!({"name": "again", "addr": looped})).await;
    let message = answer.1["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{looped} resolves to 127.0.0.1")),
        "{message}"
    );
    // A name that does not resolve (the machine's resolver is unreachable) ends within the
    // deadline as a 422 on `addr`, not a hang.
    let answer = register(
        &app,
        json!({"name": "nowhere", "addr": format!("nowhere-{pid}.lan")}),
    )
    .await;
    let details = assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value");
    assert_eq!(details["field"], "addr");

    assert_eq!(host_names(&app).await, ["by-suffix", "in-range"]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_hosts_durations_beyond_their_bounds_are_422() {
    let app = spawn_app(&format!(
        "{DAEMON}[daemon.api_hosts]\nallow = [\"10.0.0.0/8\"]\n"
    ))
    .await;
    // `u64::MAX` seconds overflowed the periodic-check scheduler's `Instant` once stored.
    for (field, value, bound) in [
        ("check_interval", "18446744073709551615s", "at most 30days"),
        ("check_interval", "31d", "at most 30days"),
        ("connect_timeout", "1h", "at most 10m"),
        ("command_timeout", "2d", "at most 1day"),
    ] {
        let mut body = json!({"name": "t", "addr": "10.0.0.9"});
        body[field] = json!(value);
        let answer = register(&app, body).await;
        let details = assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value");
        assert_eq!(details["field"], field, "{answer:?}");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains(bound), "{field}={value}: {message}");
    }
    assert!(host_names(&app).await.is_empty());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_hosts_body_cannot_set_a_key_or_a_policy() {
    let app = spawn_app(&format!(
        "{DAEMON}[daemon.api_hosts]\nallow = [\"10.0.0.0/8\"]\n"
    ))
    .await;
    for (field, value) in [
        ("ssh_key", json!("/root/.ssh/id_ed25519")),
        ("known_hosts", json!("accept-new")),
        ("host_key_sha256", json!("MD5:00:11")),
    ] {
        let mut body = json!({"name": "k", "addr": "10.0.0.9"});
        body[field] = value;
        let answer = register(&app, body).await;
        let details = assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value");
        assert_eq!(details["field"], field, "{answer:?}");
    }
    assert!(host_names(&app).await.is_empty());
    app.stop().await.unwrap();
}

/// Registers `name` at the loopback sshd (check-only, no list refresh: its checks run
/// `apt-get -s` on this machine and change nothing), checks it, returns the job and the host.
async fn register_and_check(
    app: &TestApp,
    sshd: &TestSshd,
    name: &str,
    pin: Option<&str>,
) -> (Value, Value) {
    let mut body = json!({
        "name": name, "addr": sshd.addr(), "port": sshd.port(), "user": sshd.user(),
        "policy": {"updates": "check-only", "refresh_lists": false}
    });
    if let Some(pin) = pin {
        body["host_key_sha256"] = json!(pin);
    }
    let (status, created) = register(app, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created:#}");
    let (status, accepted) = call(app, Method::POST, &format!("/hosts/{name}/check"), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted:#}");
    let job = wait_job(app, accepted["job_id"].as_str().unwrap()).await;
    let (_, host) = call(app, Method::GET, &format!("/hosts/{name}"), None).await;
    (job, host)
}

#[tokio::test]
async fn api_hosts_strict_without_a_pin_names_the_fingerprint_and_the_pin_connects() {
    let sshd = TestSshd::start();
    let app = spawn_app(&format!(
        "{DAEMON}[daemon.api_hosts]\nallow = [\"127.0.0.1/32\"]\nssh_key = \"{}\"\n",
        sshd.client_key().display()
    ))
    .await;
    let typed = sshd.host_key_fingerprint(); // "ED25519 SHA256:..."
    let pin = typed.split_whitespace().nth(1).unwrap().to_owned();

    let (job, host) = register_and_check(&app, &sshd, "unpinned", None).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let last_error = host["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains(&typed), "{host:#}");
    assert!(last_error.contains("host_key_sha256"), "{host:#}");
    assert_eq!(sshd.accepted_logins(), 0, "an unknown key must not be used");

    let (job, host) = register_and_check(&app, &sshd, "pinned", Some(&pin)).await;
    assert_eq!(job["state"], "succeeded", "{job:#} {host:#}");
    assert_eq!(sshd.accepted_logins(), 1);
    // Pinning one host trusts nothing for the other.
    let (status, accepted) = call(&app, Method::POST, "/hosts/unpinned/check", None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job = wait_job(&app, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(sshd.accepted_logins(), 1);
    app.stop().await.unwrap();
}
