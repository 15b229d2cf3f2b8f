//! `mode = "acme"` against Debian's pebble, started here, validating for real (no
//! `PEBBLE_VA_ALWAYS_VALID`): the test name resolves to 127.0.0.1 through `/etc/hosts`, and
//! pebble dials the daemon's fixed challenge ports. Checked with clients whose only root is
//! pebble's (`/roots/0` of its management listener): HTTP-01 from a temporary certificate to
//! issuance, renewal on request with a WebSocket open, a restart that orders nothing, a stopped
//! CA (the old certificate keeps serving; event and `last_error`) and a new CA instance that
//! has forgotten the account; TLS-ALPN-01 on the HTTPS port with a renewal by `renew_before`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tendhost_tests::daemon::{spawn_app, spawn_app_in, spawn_app_in_at};
use tendhost_tests::etc_hosts::HostsEntry;
use tendhost_tests::pebble::{Pebble, free_port};
use tendhost_tests::tls::{served_cert, unverified_cert, unverified_config};
use tendhost_tests::wait::{self, WAIT_DEADLINE};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// A test name that resolves to 127.0.0.1 while the entry lives.
fn test_name(tag: &str) -> (String, HostsEntry) {
    let name = format!("{tag}-{}.acme.tendhost.test", std::process::id());
    let entry = HostsEntry::add("127.0.0.1", &name);
    (name, entry)
}

fn acme_config(pebble: &Pebble, name: &str, acme_lines: &str) -> String {
    format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n[daemon.tls]\nmode = \"acme\"\n\n\
         [daemon.tls.acme]\ndirectory = \"{}\"\nemail = \"ops@example.org\"\ndomains = [\"{name}\"]\n\
         ca_roots = \"{}\"\nretry = \"1s\"\n{acme_lines}",
        pebble.directory(),
        pebble.listener_ca_path().display(),
    )
}

/// An HTTPS client for `name` at `addr`, with `config` (a root, or none verified).
fn client(config: rustls::ClientConfig, name: &str, addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .resolve(name, addr)
        .timeout(WAIT_DEADLINE)
        .build()
        .expect("build the HTTPS client")
}

fn trusting(root: &[u8], name: &str, addr: SocketAddr) -> reqwest::Client {
    client(tendhost_tls::client_config(root).unwrap(), name, addr)
}

async fn get_tls(client: &reqwest::Client, name: &str, addr: SocketAddr) -> Value {
    let url = format!("https://{name}:{}/tls", addr.port());
    let response = client.get(&url).send().await.expect("GET /tls");
    assert_eq!(response.status(), 200);
    response.json().await.expect("GET /tls is JSON")
}

async fn renew(client: &reqwest::Client, name: &str, addr: SocketAddr) -> reqwest::Response {
    client
        .post(format!("https://{name}:{}/tls/renew", addr.port()))
        .json(&json!({}))
        .send()
        .await
        .expect("POST /tls/renew")
}

/// A WebSocket on the event stream over TLS with `config`.
async fn open_ws(config: rustls::ClientConfig, name: &str, addr: SocketAddr) -> Ws {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .expect("TLS to the daemon");
    let url = format!("wss://{name}:{}/ws/events", addr.port());
    let (ws, response) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .expect("WebSocket handshake over TLS");
    assert_eq!(response.status(), 101);
    ws
}

/// Reads the stream until an event of `type_name` that `wanted` accepts (others pass by).
async fn next_event(ws: &mut Ws, type_name: &str, wanted: impl Fn(&Value) -> bool) -> Value {
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

/// The serial served once a client trusting `root` (only) verifies the daemon as `name`.
async fn verified_serial(addr: SocketAddr, name: &str, root: &[u8], not: Option<&str>) -> String {
    wait::until("a certificate from pebble verified by its root", || async {
        let serial = served_cert(addr, name, root).await?.serial;
        if Some(serial.as_str()) == not {
            Err(format!("still serial {serial}"))
        } else {
            Ok(serial)
        }
    })
    .await
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn time_of(value: &Value) -> SystemTime {
    let timestamp: jiff::Timestamp = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .parse()
        .unwrap();
    SystemTime::from(timestamp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_http01_issues_renews_keeps_serving_without_the_ca_and_registers_again() {
    let (name, _hosts) = test_name("http01");
    let http_port = free_port();
    let mut pebble = Pebble::new(http_port, free_port(), Duration::from_secs(3600));
    let config = acme_config(
        &pebble,
        &name,
        &format!("challenge = \"http-01\"\nhttp_port = {http_port}\n"),
    );

    // The CA is not up yet: the API serves a temporary self-signed certificate meanwhile.
    let app = spawn_app(&config).await;
    let addr = app.addr;
    let unverified = client(unverified_config(), &name, addr);
    wait::until("the daemon answers TLS", || async {
        unverified_cert(addr, &name).await.map(drop)
    })
    .await;
    let mut ws = open_ws(unverified_config(), &name, addr).await;
    let status = wait::until("the first attempt fails while the CA is down", || async {
        let status = get_tls(&unverified, &name, addr).await;
        if status["last_error"].is_string() {
            Ok(status)
        } else {
            Err(status.to_string())
        }
    })
    .await;
    assert_eq!(status["mode"], "acme");
    assert_eq!(status["temporary"], true, "{status}");
    assert!(
        status["issuer"]
            .as_str()
            .unwrap()
            .contains("tendhost temporary certificate"),
        "{status}"
    );
    assert_eq!(status["sans"], json!([name]));
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains(&pebble.directory()), "{error}");
    let failed = next_event(&mut ws, "certificate_renewal_failed", |_| true).await;
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains(&pebble.directory()),
        "{failed}"
    );
    assert!(time_of(&failed["next_attempt"]) > SystemTime::now() - Duration::from_secs(60));

    // The CA comes up: the next attempt registers, validates over HTTP-01 and is served.
    pebble.start();
    let root = pebble.root().await;
    let first = verified_serial(addr, &name, &root, None).await;
    assert!(
        pebble.n_logged("POST /sign-me-up") >= 1,
        "an account was registered"
    );
    let renewed = next_event(&mut ws, "certificate_renewed", |event| {
        event["serial"] == first.as_str()
    })
    .await;
    assert!(renewed["not_after"].is_string());
    let verified = trusting(&root, &name, addr);
    let status = get_tls(&verified, &name, addr).await;
    assert_eq!(status["temporary"], false, "{status}");
    assert!(status["last_error"].is_null(), "{status}");
    assert_eq!(status["serial"], first.as_str());
    assert!(
        status["issuer"]
            .as_str()
            .unwrap()
            .contains("Pebble Intermediate"),
        "{status}"
    );
    // Not due for a long time (3600 s certificates, renew_before defaults to 30 days, which is
    // longer: half-way through then).
    assert!(time_of(&status["next_renewal"]) > SystemTime::now() + Duration::from_secs(600));

    // The HTTP-01 port answers challenges only, and none is pending now.
    let plain = wait::http_client();
    for path in ["/.well-known/acme-challenge/no-such-token", "/health"] {
        let response = plain
            .get(format!("http://127.0.0.1:{http_port}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{path}");
    }

    // Stored 0600 under data_dir/tls/acme (0700).
    let acme_dir = app.dir.path().join("data/tls/acme");
    assert_eq!(mode_of(&acme_dir), 0o700);
    for file in ["account.json", "cert.pem", "key.pem"] {
        assert_eq!(mode_of(&acme_dir.join(file)), 0o600, "{file}");
    }

    // Renew on request: a new order, a new serial, and the WebSocket opened before it all
    // (on the temporary certificate) is still open and sees it.
    let n_orders = pebble.n_logged("POST /order-plz");
    let response = renew(&verified, &name, addr).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let second = body["serial"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(
        served_cert(addr, &name, &root).await.unwrap().serial,
        second
    );
    assert_eq!(pebble.n_logged("POST /order-plz"), n_orders + 1);
    next_event(&mut ws, "certificate_renewed", |event| {
        event["serial"] == second.as_str()
    })
    .await;
    drop(ws);

    // A restart serves the stored certificate and places no order.
    let n_orders = pebble.n_logged("POST /order-plz");
    let dir = app.into_dir().await;
    let app = spawn_app_in(dir).await;
    let addr = app.addr;
    let verified = trusting(&root, &name, addr);
    assert_eq!(verified_serial(addr, &name, &root, None).await, second);
    let status = get_tls(&verified, &name, addr).await;
    assert_eq!(status["temporary"], false, "{status}");
    assert!(time_of(&status["next_renewal"]) > SystemTime::now() + Duration::from_secs(600));
    assert_eq!(pebble.n_logged("POST /order-plz"), n_orders, "no new order");

    // The CA is gone: renewal fails, the old certificate keeps serving, and both the event and
    // last_error say so.
    let mut ws = open_ws(tendhost_tls::client_config(&root).unwrap(), &name, addr).await;
    let account_before = std::fs::read(app.dir.path().join("data/tls/acme/account.json")).unwrap();
    pebble.stop();
    let response = renew(&verified, &name, addr).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "renew_failed");
    let failed = next_event(&mut ws, "certificate_renewal_failed", |_| true).await;
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains(&pebble.directory()), "{failed}");
    assert!(failed["next_attempt"].is_string(), "{failed}");
    let status = get_tls(&verified, &name, addr).await;
    assert!(status["last_error"].is_string(), "{status}");
    assert_eq!(status["serial"], second.as_str());
    assert_eq!(
        served_cert(addr, &name, &root).await.unwrap().serial,
        second
    );

    // A new CA instance (new root, no accounts): a later attempt registers again and succeeds.
    pebble.start();
    let new_root = pebble.root().await;
    assert_ne!(new_root, root, "a restarted pebble has a new root");
    let third = verified_serial(addr, &name, &new_root, None).await;
    assert_ne!(third, second);
    assert!(pebble.n_logged("POST /sign-me-up") >= 1, "registered again");
    let account_after = std::fs::read(app.dir.path().join("data/tls/acme/account.json")).unwrap();
    assert_ne!(account_after, account_before, "the new account is stored");
    let status = get_tls(&trusting(&new_root, &name, addr), &name, addr).await;
    assert!(status["last_error"].is_null(), "{status}");
    assert_eq!(status["serial"], third.as_str());
    next_event(&mut ws, "certificate_renewed", |event| {
        event["serial"] == third.as_str()
    })
    .await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_tls_alpn01_on_the_https_port_renews_by_renew_before_with_a_websocket_open() {
    let (name, _hosts) = test_name("alpn");
    let https_port = free_port();
    // 60 s certificates renewed 45 s before their end: a renewal about 15 s after each one.
    let mut pebble = Pebble::new(free_port(), https_port, Duration::from_secs(60));
    pebble.start();
    let root = pebble.root().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tendhost.toml"),
        acme_config(
            &pebble,
            &name,
            "challenge = \"tls-alpn-01\"\nrenew_before = \"45s\"\n",
        ),
    )
    .unwrap();
    let app = spawn_app_in_at(dir, SocketAddr::from(([127, 0, 0, 1], https_port))).await;
    let addr = app.addr;
    let first = verified_serial(addr, &name, &root, None).await;
    let verified = trusting(&root, &name, addr);
    let status = get_tls(&verified, &name, addr).await;
    assert_eq!(status["temporary"], false, "{status}");
    let not_after = time_of(&status["not_after"]);
    let next_renewal = time_of(&status["next_renewal"]);
    assert_eq!(
        not_after.duration_since(next_renewal).unwrap(),
        Duration::from_secs(45),
        "{status}"
    );

    let mut ws = open_ws(tendhost_tls::client_config(&root).unwrap(), &name, addr).await;
    let second = verified_serial(addr, &name, &root, Some(&first)).await;
    next_event(&mut ws, "certificate_renewed", |event| {
        event["serial"] == second.as_str()
    })
    .await;
    // The WebSocket is still open: it gets a renewal asked for now as well.
    let response = renew(&verified, &name, addr).await;
    assert_eq!(response.status(), 200);
    let third: Value = response.json().await.unwrap();
    next_event(&mut ws, "certificate_renewed", |event| {
        event["serial"] == third["serial"]
    })
    .await;
    app.stop().await.unwrap();
}
