//! HTTPS the daemon serves itself, checked with real rustls clients whose only root is the
//! expected CA: the daemon's own CA (`self-signed`: issuance, renewal before expiry with open
//! WebSockets, the CA kept across restarts, renew on request) and an outside CA's files
//! (`files`: replaced pairs served without a restart, broken ones refused). Start-up errors
//! go through the real binary (exit 2, `path: reason`); the snippets of `docs/tls.md` through
//! `tendhost check-config`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, daemon_binary, spawn_app, spawn_app_in};
use tendhost_tests::tls::{client_with_ca, connect, served_cert};
use tendhost_tests::wait::{self, WAIT_DEADLINE};
use tokio_tungstenite::tungstenite::Message;

const SELF_SIGNED: &str = "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n[daemon.tls]\nmode = \"self-signed\"\n";

/// The daemon's CA, once `run` has created it.
async fn daemon_ca(app: &TestApp) -> Vec<u8> {
    let path = app.dir.path().join("data/tls/ca.pem");
    wait::until("the daemon writes its CA", || {
        let path = path.clone();
        async move {
            match std::fs::read(&path) {
                Ok(pem) if !pem.is_empty() => Ok(pem),
                Ok(_) => Err(format!("{} is empty", path.display())),
                Err(err) => Err(format!("{}: {err}", path.display())),
            }
        }
    })
    .await
}

/// The serial the daemon serves, once it answers TLS handshakes.
async fn serving_serial(addr: SocketAddr, name: &str, ca: &[u8]) -> String {
    wait::until("the daemon answers a TLS handshake", || async {
        served_cert(addr, name, ca).await.map(|info| info.serial)
    })
    .await
}

/// `POST /tls/renew` (JSON, as a request without a token must be).
async fn renew(client: &reqwest::Client, app: &TestApp) -> reqwest::Response {
    client
        .post(app.url("/tls/renew"))
        .json(&json!({}))
        .send()
        .await
        .expect("POST /tls/renew")
}

async fn get_tls(client: &reqwest::Client, app: &TestApp) -> Value {
    let response = client.get(app.url("/tls")).send().await.expect("GET /tls");
    assert_eq!(response.status(), 200);
    response.json().await.expect("GET /tls is JSON")
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn tls_self_signed_chain_and_names_verify_against_the_daemon_ca_only() {
    let app = spawn_app(SELF_SIGNED).await;
    let ca = daemon_ca(&app).await;
    let serial = serving_serial(app.addr, "localhost", &ca).await;

    // The default names: localhost, 127.0.0.1 (an IP SAN) and the machine's hostname.
    let by_ip = served_cert(app.addr, "127.0.0.1", &ca)
        .await
        .expect("127.0.0.1 is a SAN");
    assert_eq!(by_ip.serial, serial);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    served_cert(app.addr, hostname.trim(), &ca)
        .await
        .expect("the machine's hostname is a SAN");
    let err = served_cert(app.addr, "not-in-the-sans.example", &ca)
        .await
        .expect_err("a name outside the SANs must fail verification");
    assert!(err.contains("not valid for name"), "{err}");

    // Another CA (here: an unrelated one) does not verify the chain.
    let (other_ca, _) = outside_ca();
    let err = served_cert(app.addr, "localhost", other_ca.as_bytes())
        .await
        .expect_err("an unrelated CA must not verify the daemon's certificate");
    assert!(err.contains("UnknownIssuer"), "{err}");

    // HTTPS with that CA as the only root; HSTS on every answer.
    let client = client_with_ca(&ca);
    let response = client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let status = get_tls(&client, &app).await;
    assert_eq!(status["mode"], "self-signed");
    assert_eq!(status["serial"], serial.as_str());
    let sans: Vec<&str> = status["sans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|san| san.as_str().unwrap())
        .collect();
    assert!(
        sans.contains(&"localhost") && sans.contains(&"127.0.0.1"),
        "{sans:?}"
    );
    assert!(
        status["issuer"].as_str().unwrap().contains("tendhost CA"),
        "{status}"
    );
    assert!(status["next_renewal"].is_string(), "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    // Prometheus sees the same expiry.
    let not_after: jiff::Timestamp = status["not_after"].as_str().unwrap().parse().unwrap();
    let exposition = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expected = format!(
        "tendhost_certificate_not_after_timestamp_seconds {}",
        not_after.as_second()
    );
    assert!(
        exposition.lines().any(|line| line == expected),
        "{expected} not in:\n{exposition}"
    );

    // Plain HTTP on the TLS port gets no answer that a client could take for the API.
    let plain = reqwest::Client::builder()
        .tls_backend_preconfigured(tendhost_tls::client_config(&ca).unwrap())
        .build()
        .unwrap()
        .get(format!("http://{}/health", app.addr))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // Keys 0600, the directory 0700.
    let tls_dir = app.dir.path().join("data/tls");
    assert_eq!(mode_of(&tls_dir.join("ca.key")), 0o600);
    assert_eq!(mode_of(&tls_dir.join("server.key")), 0o600);
    assert_eq!(mode_of(&tls_dir), 0o700);

    // Renew on request: a new serial on the next handshake, from the same CA.
    let response = renew(&client, &app).await;
    assert_eq!(response.status(), 200);
    let renewed: Value = response.json().await.unwrap();
    assert_ne!(renewed["serial"], serial.as_str());
    let now_served = served_cert(app.addr, "localhost", &ca).await.unwrap();
    assert_eq!(renewed["serial"], now_served.serial.as_str());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_self_signed_renews_before_expiry_while_a_websocket_stays_open() {
    let app = spawn_app(&format!(
        "{SELF_SIGNED}lifetime = \"60s\"\nrenew_before = \"40s\"\n"
    ))
    .await;
    let ca = daemon_ca(&app).await;
    let first = serving_serial(app.addr, "localhost", &ca).await;
    let client = client_with_ca(&ca);

    // A WebSocket over TLS, opened before the renewal.
    let stream = connect(app.addr, "localhost", &ca).await.unwrap();
    let url = format!("wss://localhost:{}/ws/events", app.addr.port());
    let (mut ws, response) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .expect("WebSocket handshake over TLS");
    assert_eq!(response.status(), 101);

    // 60 s certificates renewed 40 s before their end: a new one about 20 s after the first.
    let second = wait::until("a renewed certificate is served", || async {
        let serial = served_cert(app.addr, "localhost", &ca).await?.serial;
        if serial == first {
            Err(format!("still serial {serial}"))
        } else {
            Ok(serial)
        }
    })
    .await;
    let status = get_tls(&client, &app).await;
    assert_ne!(status["serial"], first.as_str());
    assert!(status["last_error"].is_null(), "{status}");

    // The WebSocket opened before is still up: it gets the renewal's own event, then others.
    let renewed = next_event(&mut ws, "certificate_renewed", |event| {
        event["serial"] == second.as_str()
    })
    .await;
    assert!(renewed["not_after"].is_string(), "{renewed}");
    // And what comes after: a renewal asked for now.
    let response = renew(&client, &app).await;
    assert_eq!(response.status(), 200);
    let third: Value = response.json().await.unwrap();
    next_event(&mut ws, "certificate_renewed", |event| {
        event["serial"] == third["serial"]
    })
    .await;
    app.stop().await.unwrap();
}

/// Reads the stream until an event of `type_name` that `wanted` accepts (others pass by).
async fn next_event<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    type_name: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut seen = Vec::new();
    loop {
        let frame = tokio::time::timeout(WAIT_DEADLINE, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no matching {type_name} on the WebSocket; seen: {seen:?}"))
            .expect("the WebSocket ended")
            .expect("WebSocket error");
        if let Message::Text(text) = frame {
            let event: Value = serde_json::from_str(text.as_str()).unwrap();
            if event["type"] == type_name && wanted(&event) {
                return event;
            }
            seen.push(event);
        }
    }
}

#[tokio::test]
async fn tls_self_signed_ca_is_kept_across_restarts_and_names_changes_reissue() {
    let app = spawn_app(SELF_SIGNED).await;
    let ca = daemon_ca(&app).await;
    let serial = serving_serial(app.addr, "localhost", &ca).await;
    let dir = app.into_dir().await;

    // Same config: same CA, same server certificate (not due yet).
    let app = spawn_app_in(dir).await;
    assert_eq!(daemon_ca(&app).await, ca, "the CA changed across a restart");
    assert_eq!(serving_serial(app.addr, "localhost", &ca).await, serial);
    let dir = app.into_dir().await;

    // New names: a new server certificate from the same CA.
    let config = dir.path().join("tendhost.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "mode = \"self-signed\"\n",
        "mode = \"self-signed\"\nnames = [\"tendhost.test\", \"127.0.0.1\"]\n",
    );
    std::fs::write(&config, text).unwrap();
    let app = spawn_app_in(dir).await;
    assert_eq!(daemon_ca(&app).await, ca);
    let info = wait::until("the daemon serves for the new names", || async {
        served_cert(app.addr, "tendhost.test", &ca).await
    })
    .await;
    assert_ne!(info.serial, serial);
    assert_eq!(info.sans, ["tendhost.test", "127.0.0.1"]);
    let err = served_cert(app.addr, "localhost", &ca)
        .await
        .expect_err("localhost is no longer a SAN");
    assert!(err.contains("not valid for name"), "{err}");
    app.stop().await.unwrap();
}

/// An outside CA (what an operator's own PKI would be): `(ca_pem, issuer)`.
fn outside_ca() -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "outside test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// A server pair for `names` from `issuer`: `(cert_pem, key_pem)`.
fn server_pair(issuer: &Issuer<'static, KeyPair>, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, issuer)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Replaces `path` the way certificate tools do: a new file renamed over the old one.
fn replace(path: &Path, contents: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn files_config(cert: &Path, key: &Path) -> String {
    format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\npublic_names = [\"tendhost.test\"]\n\n[daemon.tls]\nmode = \"files\"\ncert_path = \"{}\"\nkey_path = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_are_reloaded_when_replaced_and_a_broken_pair_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, issuer) = outside_ca();
    let ca = ca.into_bytes();
    let cert_path = certs.path().join("cert.pem");
    let key_path = certs.path().join("key.pem");
    let (cert, key) = server_pair(&issuer, &["tendhost.test", "127.0.0.1"]);
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let app = spawn_app(&files_config(&cert_path, &key_path)).await;
    let first = serving_serial(app.addr, "tendhost.test", &ca).await;
    let err = served_cert(app.addr, "localhost", &ca)
        .await
        .expect_err("localhost is not a SAN");
    assert!(err.contains("not valid for name"), "{err}");

    // A connection opened before the replacement (keep-alive) and a WebSocket.
    let client = client_with_ca(&ca);
    let status = get_tls(&client, &app).await;
    assert_eq!(status["mode"], "files");
    assert_eq!(status["serial"], first.as_str());
    assert!(status["next_renewal"].is_null());
    let stream = connect(app.addr, "tendhost.test", &ca).await.unwrap();
    let url = format!("wss://tendhost.test:{}/ws/events", app.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .unwrap();

    // Replaced one after the other, as a renewal tool may do: the new pair is served.
    let (cert, key) = server_pair(&issuer, &["tendhost.test", "127.0.0.1"]);
    replace(&cert_path, &cert);
    tokio::time::sleep(Duration::from_millis(700)).await;
    replace(&key_path, &key);
    let second = wait::until("the replaced pair is served", || async {
        let serial = served_cert(app.addr, "tendhost.test", &ca).await?.serial;
        if serial == first {
            Err(format!("still serial {serial}"))
        } else {
            Ok(serial)
        }
    })
    .await;
    let status = get_tls(&client, &app).await;
    assert_eq!(status["serial"], second.as_str());
    assert!(
        status["last_error"].is_null(),
        "a pair replaced file by file is no error: {status}"
    );
    next_event(&mut ws, "certificate_renewed", |event| {
        event["serial"] == second.as_str()
    })
    .await;

    // A broken certificate: refused, the old pair keeps serving, last_error says why.
    replace(
        &cert_path,
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    );
    let status = wait::until("the broken replacement is reported", || async {
        let status = get_tls(&client, &app).await;
        if status["last_error"].is_null() {
            Err(status.to_string())
        } else {
            Ok(status)
        }
    })
    .await;
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.starts_with(&cert_path.display().to_string()),
        "{error}"
    );
    let failed = next_event(&mut ws, "certificate_reload_failed", |_| true).await;
    assert_eq!(failed["path"], cert_path.display().to_string().as_str());
    assert_eq!(failed["error"], error);
    assert_eq!(status["serial"], second.as_str());
    assert_eq!(
        served_cert(app.addr, "tendhost.test", &ca)
            .await
            .unwrap()
            .serial,
        second
    );

    // A key that belongs to another certificate: refused the same way.
    let (good_cert, _) = server_pair(&issuer, &["tendhost.test", "127.0.0.1"]);
    replace(&cert_path, &good_cert);
    let status = wait::until("the mismatched pair is reported", || async {
        let status = get_tls(&client, &app).await;
        if status["last_error"]
            .as_str()
            .is_some_and(|error| error.contains("does not match"))
        {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
    .await;
    assert_eq!(status["serial"], second.as_str());
    assert_eq!(
        served_cert(app.addr, "tendhost.test", &ca)
            .await
            .unwrap()
            .serial,
        second
    );

    // Renewal on request is for the daemon's own CA only.
    let response = renew(&client, &app).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "renew_not_supported");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn tls_off_answers_plain_http_and_refuses_renew() {
    let app = spawn_app("[daemon]\nlog_level = \"warn\"\n").await;
    let client = wait::http_client();
    let status = get_tls(&client, &app).await;
    assert_eq!(status["mode"], "off");
    assert!(status["serial"].is_null());
    let response = client.get(app.url("/health")).send().await.unwrap();
    assert!(
        response
            .headers()
            .get("strict-transport-security")
            .is_none()
    );
    let response = renew(&client, &app).await;
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "renew_not_supported");
    let exposition = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(exposition.contains("tendhost_build_info"), "{exposition}");
    assert!(
        !exposition.contains("tendhost_certificate_not_after"),
        "no certificate metric without TLS"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn tls_redirect_http_points_at_the_https_port() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let redirect_addr = free.local_addr().unwrap();
    drop(free);
    let app = spawn_app(&format!(
        "{SELF_SIGNED}redirect_http = \"{redirect_addr}\"\n"
    ))
    .await;
    let ca = daemon_ca(&app).await;
    serving_serial(app.addr, "localhost", &ca).await;
    let plain = reqwest::Client::builder()
        .tls_backend_preconfigured(tendhost_tls::client_config(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = wait::until("the redirect listener answers", || async {
        plain
            .get(format!(
                "http://localhost:{}/hosts?page=2",
                redirect_addr.port()
            ))
            .send()
            .await
            .map_err(|err| err.to_string())
    })
    .await;
    assert_eq!(response.status(), 308);
    assert_eq!(
        response.headers()["location"],
        format!("https://localhost:{}/hosts?page=2", app.addr.port()).as_str()
    );
    app.stop().await.unwrap();
}

/// Runs the real binary on `config` (data dir in `dir`) and expects it to refuse to start.
fn start_refused(dir: &Path, config: &str) -> String {
    let path = dir.join("tendhost.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(daemon_binary())
        .arg("--config")
        .arg(&path)
        .env("TENDHOST_BIND", "127.0.0.1:0")
        .env("TENDHOST_DATA_DIR", dir.join("data"))
        .output()
        .expect("run tendhost");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit code; stderr:\n{stderr}"
    );
    stderr
}

#[test]
fn tls_start_up_errors_name_the_file_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (_, issuer) = outside_ca();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    let missing = dir.path().join("missing.pem");

    let (cert, key) = server_pair(&issuer, &["tendhost.test"]);
    std::fs::write(&key_path, &key).unwrap();
    let stderr = start_refused(dir.path(), &files_config(&missing, &key_path));
    assert!(
        stderr.contains(&format!("{}: cannot read", missing.display())),
        "{stderr}"
    );

    let (_, other_key) = server_pair(&issuer, &["tendhost.test"]);
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &other_key).unwrap();
    let stderr = start_refused(dir.path(), &files_config(&cert_path, &key_path));
    assert!(
        stderr.contains(&format!(
            "{}: the private key does not match",
            key_path.display()
        )),
        "{stderr}"
    );

    std::fs::write(&cert_path, "garbage").unwrap();
    let stderr = start_refused(dir.path(), &files_config(&cert_path, &key_path));
    assert!(
        stderr.contains(&format!("{}: no CERTIFICATE block", cert_path.display())),
        "{stderr}"
    );

    let stderr = start_refused(
        dir.path(),
        "[daemon.tls]\nmode = \"self-signed\"\nnames = [\"bad name\"]\n",
    );
    assert!(
        stderr
            .contains("tendhost.toml:3:10: names: \"bad name\" is not a DNS name or an IP address"),
        "{stderr}"
    );

    let acme = "[daemon.tls]\nmode = \"acme\"\n[daemon.tls.acme]\ndirectory = \"https://127.0.0.1:9/dir\"\nchallenge = \"tls-alpn-01\"\n";
    let stderr = start_refused(
        dir.path(),
        &format!(
            "{acme}domains = [\"tendhost.test\"]\nca_roots = \"{}\"\n",
            missing.display()
        ),
    );
    assert!(
        stderr.contains(&format!("{}: cannot read", missing.display())),
        "{stderr}"
    );
    let stderr = start_refused(
        dir.path(),
        &format!("{acme}domains = [\"*.tendhost.test\"]\n"),
    );
    assert!(
        stderr.contains("tendhost.toml:6:12: domains: *.tendhost.test is a wildcard"),
        "{stderr}"
    );

    let stderr = start_refused(dir.path(), "[daemon.tls]\nenabled = true\n");
    assert!(
        stderr.contains("tendhost.toml:2:11: `enabled` is replaced by `mode`"),
        "{stderr}"
    );
}

#[test]
fn tls_ca_command_prints_the_ca_the_daemon_made() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tendhost.toml");
    std::fs::write(&path, SELF_SIGNED).unwrap();
    let run = |args: &[&str]| {
        Command::new(daemon_binary())
            .args(args)
            .arg("--config")
            .arg(&path)
            .env("TENDHOST_DATA_DIR", dir.path().join("data"))
            .output()
            .expect("run tendhost")
    };
    let before = run(&["tls", "ca"]);
    assert_eq!(before.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&before.stderr).contains("no CA yet"));

    let mut daemon = tendhost_tests::daemon::DaemonProcess::start(&path, &dir.path().join("data"));
    assert!(
        daemon.base_url.starts_with("https://"),
        "{}",
        daemon.base_url
    );
    let fingerprint_line = daemon
        .wait_for_log("TLS CA (SHA-256)")
        .expect("the CA fingerprint is logged at start");
    daemon.signal("TERM");
    daemon.wait_exit("SIGTERM");

    let printed = run(&["tls", "ca"]);
    assert!(printed.status.success());
    let stored = std::fs::read(dir.path().join("data/tls/ca.pem")).unwrap();
    assert_eq!(printed.stdout, stored);
    let der = rustls_pki_types::pem::PemObject::from_pem_slice(&stored)
        .map(|der: rustls_pki_types::CertificateDer<'_>| der.to_vec())
        .unwrap();
    let digest = sha256_fingerprint(&der);
    assert!(
        fingerprint_line.contains(&digest),
        "{fingerprint_line} lacks {digest}"
    );
}

/// The fingerprint as `openssl x509 -fingerprint -sha256` prints it, computed by sha256sum.
fn sha256_fingerprint(der: &[u8]) -> String {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), der).unwrap();
    let out = Command::new("sha256sum").arg(tmp.path()).output().unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    let hex = hex.split_whitespace().next().unwrap().to_uppercase();
    hex.as_bytes()
        .chunks(2)
        .map(|pair| std::str::from_utf8(pair).unwrap())
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn tls_docs_snippets_pass_check_config() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/tls.md"))
        .expect("docs/tls.md");
    let dir = tempfile::tempdir().unwrap();
    let (mut n_snippets, mut n_acme) = (0, 0);
    for (idx, snippet) in doc.split("```toml\n").skip(1).enumerate() {
        let snippet = snippet.split("```").next().unwrap();
        let path = dir.path().join(format!("snippet-{idx}.toml"));
        std::fs::write(&path, snippet).unwrap();
        let output = Command::new(daemon_binary())
            .arg("check-config")
            .arg("--config")
            .arg(&path)
            .env("TENDHOST_DATA_DIR", dir.path().join("data"))
            .output()
            .expect("run tendhost check-config");
        assert!(
            output.status.success(),
            "docs/tls.md snippet {idx} is refused:\n{snippet}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("tls: "));
        n_acme += usize::from(stdout.contains("tls: acme"));
        n_snippets += 1;
    }
    assert!(n_snippets >= 4, "docs/tls.md has a TOML snippet per mode");
    assert!(n_acme >= 2, "docs/tls.md's ACME section has its snippets");
}
