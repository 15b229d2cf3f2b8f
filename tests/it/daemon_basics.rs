//! The daemon as a user meets it: the CLI (`check-config`, `default-config`, exit codes), the
//! always-there routes (`/health`, `/openapi.json`), the JSON error shape over real HTTP, and
//! graceful shutdown of the real binary on SIGTERM/SIGINT.

use std::process::Command;

use serde_json::Value;
use tendhost_tests::daemon::{DaemonProcess, EMPTY_CONFIG, daemon_binary, spawn_app};

const LOCAL_HOST: &str = "\n[[host]]\nname = \"me\"\naddr = \"local\"\n[host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n";

#[tokio::test]
async fn health_reports_status_and_version_only() {
    let app = spawn_app(&format!("{EMPTY_CONFIG}{LOCAL_HOST}")).await;
    let resp = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // Open without a token, so it says nothing about the fleet (issue: tokens).
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn openapi_document_is_generated_from_handlers() {
    let app = spawn_app(EMPTY_CONFIG).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "tendhost");
    assert!(doc["paths"]["/health"]["get"].is_object(), "{doc:#}");
    assert!(doc["components"]["schemas"]["Health"].is_object());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn errors_have_one_json_shape_over_http() {
    let app = spawn_app(EMPTY_CONFIG).await;
    let resp = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/route")
    );

    let resp = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    app.stop().await.unwrap();
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("tendhost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_config_prints_file_line_col_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[[host]]\nname = \"a\"\naddr = \"local\"\n\n[[host]]\nname = \"a\"\naddr = \"10.1.1.1\"\nport = 99999\n",
    );
    let out = Command::new(daemon_binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = path.display().to_string();
    assert!(
        stderr.contains(&format!("{prefix}:6:8: duplicate host name \"a\"")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{prefix}:8:8: port must be between 1 and 65535")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn check_config_on_the_example_prints_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let example = Command::new(daemon_binary())
        .arg("default-config")
        .output()
        .unwrap();
    assert!(example.status.success());
    let path = write_config(&dir, &String::from_utf8(example.stdout).unwrap());
    let out = Command::new(daemon_binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(": OK"), "{stdout}");
    assert!(stdout.contains("localhost (local, check-only)"), "{stdout}");
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let out = Command::new(daemon_binary())
        .args(["--config", "/nonexistent/tendhost.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read config file /nonexistent/tendhost.toml"),
        "{stderr}"
    );
}

#[test]
fn sigterm_and_sigint_stop_the_daemon_with_exit_0() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, &format!("{EMPTY_CONFIG}{LOCAL_HOST}"));
        let mut daemon = DaemonProcess::start(&path, &dir.path().join("data"));
        // It serves before the signal.
        let health = raw_http::get_health_status(&daemon.base_url);
        assert_eq!(health, 200);
        daemon.signal(signal);
        let status = daemon.wait_exit(&format!("SIG{signal}"));
        assert!(
            status.success(),
            "exit status {status:?}; log:\n{}",
            daemon.log.join("\n")
        );
        assert!(
            daemon.log.iter().any(|l| l.contains("tendhost stopped")),
            "{}",
            daemon.log.join("\n")
        );
    }
}

/// Tiny blocking GET over a raw TCP socket (the suite's reqwest is async-only).
mod raw_http {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub fn get_health_status(base_url: &str) -> u16 {
        let addr = base_url.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(
            stream,
            "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
}
