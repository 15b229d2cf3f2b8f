//! Notifications end to end, with real receivers the tests start: an HTTP receiver (axum, in
//! the test) that checks the webhook's signature with an independent HMAC (Python's `hmac`) and
//! sees the ntfy request's path, headers and body; a real SMTP server (aiosmtpd with STARTTLS and
//! AUTH, `tests/data/smtp_server.py`) whose messages parse as mail; a 6-host fleet rollout that
//! gives one `rollout_finished` per notifier; digests at `digest_at` by the notifier's test
//! clock, only with something to say; `host_unreachable` after `unreachable_after` by the same
//! clock; a down receiver and a hanging one, retried and recorded, while the rollout's finish
//! never waits on a delivery; and the configs of `docs/notifications.md` through
//! `tendhost check-config`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tendhost_notify::testing;
use tendhost_tests::daemon::{EMPTY_CONFIG, TestApp, daemon_binary, spawn_app};
use tendhost_tests::fleet::{Fleet, Pkg};
use tendhost_tests::http::{get_json, post_json, wait_job, wait_rollout};
use tendhost_tests::wait;
use tokio::sync::watch;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map_or("", |value| value.to_str().unwrap_or(""))
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the webhook body is JSON")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// 200 at once.
    Answer,
    /// 200 once the test calls `release`.
    Hold,
    /// Never.
    Hang,
}

/// An HTTP server started by the test, recording every request.
pub(crate) struct Receiver {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    release: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub(crate) async fn start(mode: Mode) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = watch::channel(false);
        let recorded = Arc::clone(&seen);
        let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let recorded = Arc::clone(&recorded);
            let mut released = released.clone();
            async move {
                recorded.lock().unwrap().push(Seen {
                    path: uri.path().to_owned(),
                    headers,
                    body: body.to_vec(),
                });
                match mode {
                    Mode::Answer => {}
                    Mode::Hold => {
                        let _ = released.wait_for(|released| *released).await;
                    }
                    Mode::Hang => std::future::pending::<()>().await,
                }
                StatusCode::OK
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url,
            seen,
            release,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// Waits until `n` requests reached `path`.
    pub(crate) async fn wait_for(&self, path: &str, n: usize) -> Vec<Seen> {
        wait::until(
            &format!("{n} request(s) at {path} of {}", self.url),
            || async {
                let seen = self.seen_at(path);
                if seen.len() >= n {
                    Ok(seen)
                } else {
                    Err(format!("{} so far: {:?}", seen.len(), self.seen()))
                }
            },
        )
        .await
    }

    fn release(&self) {
        self.release.send_replace(true);
    }
}

pub(crate) fn webhook(name: &str, url: &str, secret: &str, extra: &str) -> String {
    format!(
        "\n[[notify]]\nname = \"{name}\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{secret}\"\n{extra}"
    )
}

/// The recorded deliveries, newest first.
async fn deliveries(app: &TestApp) -> Vec<Value> {
    get_json(&app.base_url, "/notifications?limit=500").await["data"]
        .as_array()
        .expect("data is a list")
        .clone()
}

async fn until_deliveries(
    app: &TestApp,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    wait::until(what, || async {
        let rows = deliveries(app).await;
        if done(&rows) {
            Ok(rows)
        } else {
            Err(format!("{rows:#?}"))
        }
    })
    .await
}

fn rows_of<'a>(rows: &'a [Value], notifier: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|row| row["notifier"] == notifier)
        .collect()
}

/// HMAC-SHA256 of `body` under `secret`, by Python's `hmac` (not the daemon's code).
fn python_hmac(secret: &str, body: &[u8]) -> String {
    let mut child = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import hashlib, hmac, sys; print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())",
            secret,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python hmac failed");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

async fn send_test(app: &TestApp, name: &str) -> (u16, Value) {
    post_json(
        &app.base_url,
        &format!("/notifications/{name}/test"),
        json!({}),
    )
    .await
}

#[tokio::test]
async fn webhook_is_signed_and_ntfy_request_has_its_path_headers_and_body() {
    let receiver = Receiver::start(Mode::Answer).await;
    let secret = "whsec-4f1d2a9c";
    let token = "tk_ntfy_9b7e";
    let config = format!(
        "{EMPTY_CONFIG}public_url = \"https://tendhost.example:8443/\"\n{}\
         \n[[notify]]\nname = \"push\"\nkind = \"ntfy\"\nurl = \"{}/\"\ntopic = \"fleet-alerts\"\ntoken = \"{token}\"\n",
        webhook("hook", &format!("{}/hook", receiver.url), secret, ""),
        receiver.url
    );
    let app = spawn_app(&config).await;

    let (status, answer) = send_test(&app, "hook").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "delivered", "{answer}");
    assert_eq!(answer["attempts"], 1);
    let [hook] = receiver.wait_for("/hook", 1).await.try_into().unwrap();
    assert_eq!(hook.header("content-type"), "application/json");
    assert_eq!(hook.header("x-tendhost-event"), "test");
    assert_eq!(
        hook.header("x-tendhost-signature"),
        format!("sha256={}", python_hmac(secret, &hook.body)),
        "the signature verifies with the configured secret"
    );
    assert_ne!(
        hook.header("x-tendhost-signature"),
        format!("sha256={}", python_hmac("another secret", &hook.body))
    );
    let body = hook.json();
    assert_eq!(body["version"], 1, "{body}");
    assert_eq!(body["event"], "test");
    assert_eq!(body["notifier"], "hook");
    assert!(
        body["title"]
            .as_str()
            .unwrap()
            .contains("test notification")
    );

    let (status, answer) = send_test(&app, "push").await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("delivered")),
        "{answer}"
    );
    let [push] = receiver
        .wait_for("/fleet-alerts", 1)
        .await
        .try_into()
        .unwrap();
    assert_eq!(push.header("title"), "tendhost test notification (push)");
    assert_eq!(push.header("priority"), "3");
    assert_eq!(push.header("tags"), "tendhost,test");
    assert_eq!(push.header("authorization"), format!("Bearer {token}"));
    assert!(push.header("content-type").starts_with("text/plain"));
    assert_eq!(push.text(), "The ntfy notifier \"push\" works.");

    let (status, answer) = send_test(&app, "nobody").await;
    assert_eq!(status, 404, "{answer}");

    let listed = get_json(&app.base_url, "/notifications").await;
    let rows = listed["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{listed:#}");
    assert_eq!(rows[0]["notifier"], "push", "newest first");
    assert_eq!(rows[0]["kind"], "ntfy");
    assert_eq!(rows[1]["status"], "delivered");
    let text = listed.to_string();
    assert!(!text.contains(secret) && !text.contains(token), "{text}");

    let openapi = get_json(&app.base_url, "/openapi.json").await;
    let schema = &openapi["components"]["schemas"]["NotificationV1"];
    assert!(schema["properties"]["version"].is_object(), "{schema:#}");
    assert!(openapi["paths"]["/notifications/{name}/test"]["post"].is_object());
    app.stop().await.unwrap();
}

/// A free TCP port on loopback (nothing listens on it once this returns).
fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// aiosmtpd with STARTTLS and AUTH, writing what it accepts to `out_dir`.
struct SmtpServer {
    child: Child,
    port: u16,
    out_dir: tempfile::TempDir,
    ca_path: std::path::PathBuf,
    _certs: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpServer {
    async fn start(user: &str, password: &str) -> SmtpServer {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let certs = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "smtp test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let ca_path = certs.path().join("ca.pem");
        std::fs::write(&ca_path, ca_cert.pem()).unwrap();
        std::fs::write(certs.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(certs.path().join("key.pem"), key.serialize_pem()).unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/data/smtp_server.py");
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .arg(certs.path().join("cert.pem"))
            .arg(certs.path().join("key.pem"))
            .args([user, password])
            .arg(out_dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/data/smtp_server.py (Debian's python3-aiosmtpd; scripts/test installs it)");
        let stdout = child.stdout.take().unwrap();
        let ready = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            line
        });
        let line = wait::within("the SMTP server printing READY", ready)
            .await
            .unwrap();
        assert_eq!(
            line.trim(),
            "READY",
            "the SMTP server did not start (is python3-aiosmtpd installed?)"
        );
        SmtpServer {
            child,
            port,
            out_dir,
            ca_path,
            _certs: certs,
        }
    }

    /// The messages accepted so far, in order.
    fn messages(&self) -> Vec<Value> {
        let mut messages = Vec::new();
        for idx in 0.. {
            let path = self.out_dir.path().join(format!("{idx}.json"));
            let Ok(text) = std::fs::read_to_string(&path) else {
                break;
            };
            messages.push(serde_json::from_str(&text).unwrap());
        }
        messages
    }
}

#[tokio::test]
async fn email_goes_through_starttls_and_auth_and_parses_as_mail() {
    let smtp = SmtpServer::start("tendhost", "smtp-pw-71c3").await;
    let email = |name: &str, password: &str| {
        format!(
            "\n[[notify]]\nname = \"{name}\"\nkind = \"email\"\nsmtp_host = \"127.0.0.1\"\n\
             smtp_port = {}\ntls = \"starttls\"\nusername = \"tendhost\"\npassword = \"{password}\"\n\
             from = \"tendhost <tendhost@example.org>\"\nto = [\"ops@example.org\", \"oncall@example.org\"]\n\
             ca_file = \"{}\"\ntimeout = \"20s\"\n",
            smtp.port,
            smtp.ca_path.display()
        )
    };
    let config = format!(
        "{EMPTY_CONFIG}{}{}",
        email("mail", "smtp-pw-71c3"),
        email("wrong-password", "not-the-password")
    );
    let app = spawn_app(&config).await;

    let (status, answer) = send_test(&app, "mail").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "delivered", "{answer}");
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let mail = &messages[0];
    assert_eq!(mail["tls"], true, "sent after STARTTLS: {mail}");
    assert_eq!(mail["login"], "tendhost", "{mail}");
    assert_eq!(mail["mail_from"], "tendhost@example.org");
    assert_eq!(
        mail["rcpt_tos"],
        json!(["ops@example.org", "oncall@example.org"])
    );
    assert_eq!(mail["subject"], "tendhost test notification (mail)");
    assert_eq!(mail["from"], "tendhost <tendhost@example.org>");
    assert_eq!(mail["to"], "ops@example.org, oncall@example.org");
    assert_eq!(mail["content_type"], "text/plain");
    assert_eq!(
        mail["body"].as_str().unwrap().trim_end(),
        "The email notifier \"mail\" works."
    );

    let (status, answer) = send_test(&app, "wrong-password").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "failed", "{answer}");
    let error = answer["last_error"].as_str().unwrap();
    assert!(
        error.contains("535") || error.to_lowercase().contains("auth"),
        "{error}"
    );
    assert!(!error.contains("not-the-password"), "{error}");
    assert_eq!(smtp.messages().len(), 1, "nothing accepted without AUTH");
    let listed = get_json(&app.base_url, "/notifications").await.to_string();
    assert!(!listed.contains("smtp-pw-71c3") && !listed.contains("not-the-password"));
    app.stop().await.unwrap();
}

/// Starts `action` (`check`, `update`) on `host` and waits for the job's end.
async fn run_job(app: &TestApp, host: &str, action: &str) -> Value {
    let (status, body) =
        post_json(&app.base_url, &format!("/hosts/{host}/{action}"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    wait_job(&app.base_url, body["job_id"].as_str().unwrap()).await
}

/// A daemon config managing the fleet's hosts as root by its key; `tagged` hosts get tag `web`.
fn fleet_config(fleet: &Fleet, tagged: usize) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\
         public_url = \"https://tendhost.example:8443\"\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n",
        fleet.ssh_key().display()
    );
    for (idx, host) in fleet.hosts().iter().enumerate() {
        let tags = if idx < tagged { "[\"web\"]" } else { "[]" };
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\ntags = {tags}\n",
            host.name(),
            host.addr()
        ));
    }
    config
}

#[tokio::test]
async fn six_host_rollout_gives_one_rollout_finished_per_notifier() {
    let Some(fleet) = Fleet::builder()
        .apt(6)
        .install(Pkg::new("th-notify", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let receiver = Receiver::start(Mode::Answer).await;
    let config = format!(
        "{}{}{}\n[[notify]]\nname = \"push\"\nkind = \"ntfy\"\nurl = \"{}\"\ntopic = \"push\"\n",
        fleet_config(&fleet, 3),
        webhook("hook", &format!("{}/hook", receiver.url), "s1", ""),
        webhook(
            "web-only",
            &format!("{}/web", receiver.url),
            "s2",
            "filter = { tags = [\"web\"] }\n"
        ),
        receiver.url
    );
    let app = spawn_app(&config).await;
    fleet.publish(&Pkg::new("th-notify", "1.1")).await;
    let (status, body) = post_json(
        &app.base_url,
        "/fleet/update",
        json!({"batch_size": 2, "delay_ms": 0, "max_failures": 0}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let update_id = body["rollout_id"].as_str().unwrap().to_owned();
    let rollout = wait_rollout(&app.base_url, &update_id).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    // A later rollout: everything the first one caused is queued before its messages.
    let (status, body) = post_json(&app.base_url, "/fleet/check", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let check_id = body["rollout_id"].as_str().unwrap().to_owned();
    wait_rollout(&app.base_url, &check_id).await;
    for path in ["/hook", "/web", "/push"] {
        wait::until(
            &format!("the check rollout's message at {path}"),
            || async {
                let seen = receiver.seen_at(path);
                if seen.iter().any(|s| s.text().contains(&check_id)) {
                    Ok(())
                } else {
                    Err(format!("{} request(s)", seen.len()))
                }
            },
        )
        .await;
    }

    let about_update = |path: &str| -> Vec<Seen> {
        receiver
            .seen_at(path)
            .into_iter()
            .filter(|s| s.text().contains(&update_id))
            .collect()
    };
    let names: Vec<String> = fleet.hosts().iter().map(|h| h.name().to_owned()).collect();
    let [hook] = about_update("/hook")
        .try_into()
        .expect("one message to hook");
    let hook = hook.json();
    assert_eq!(hook["event"], "rollout_finished", "{hook:#}");
    assert_eq!(hook["rollout_id"], update_id.as_str());
    assert_eq!(hook["state"], "completed");
    assert_eq!(
        hook["counts"],
        json!({"total": 6, "succeeded": 6, "failed": 0, "skipped": 0, "cancelled": 0})
    );
    assert!(hook["duration_seconds"].as_u64().is_some(), "{hook:#}");
    let mut hosts: Vec<String> = serde_json::from_value(hook["hosts"].clone()).unwrap();
    hosts.sort();
    assert_eq!(hosts, names);
    assert_eq!(
        hook["url"],
        format!("https://tendhost.example:8443/rollouts/{update_id}")
    );
    let [web] = about_update("/web")
        .try_into()
        .expect("one message to web-only");
    let web = web.json();
    assert_eq!(
        web["counts"]["total"], 3,
        "the filter keeps the web hosts: {web:#}"
    );
    let mut web_hosts: Vec<String> = serde_json::from_value(web["hosts"].clone()).unwrap();
    web_hosts.sort();
    assert_eq!(web_hosts, names[..3]);
    let [push] = about_update("/push")
        .try_into()
        .expect("one message to push");
    assert!(
        push.header("title")
            .starts_with("Update rollout finished: 6 succeeded"),
        "{:?}",
        push.header("title")
    );

    let rows = deliveries(&app).await;
    let finished: Vec<&Value> = rows
        .iter()
        .filter(|row| row["rollout_id"] == update_id.as_str())
        .collect();
    assert_eq!(finished.len(), 3, "one row per notifier: {finished:#?}");
    assert!(
        finished
            .iter()
            .all(|row| row["event"] == "rollout_finished")
    );

    // A host failing on its own (not in a rollout) is told by itself, to the notifiers whose
    // filter lets it through.
    let failing = &fleet.hosts()[0];
    fleet
        .publish(&Pkg::new("th-notify", "1.2").postinst("exit 1"))
        .await;
    let job = run_job(&app, failing.name(), "update").await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let failed = wait::until("a host_failed message to hook", || async {
        let failed: Vec<Value> = receiver
            .seen_at("/hook")
            .iter()
            .map(Seen::json)
            .filter(|body| body["event"] == "host_failed")
            .collect();
        match failed.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(format!("{failed:?}")),
        }
    })
    .await;
    assert_eq!(failed["hosts"], json!([failing.name()]), "{failed:#}");
    assert_eq!(
        failed["url"],
        format!("https://tendhost.example:8443/hosts/{}", failing.name())
    );
    receiver.wait_for("/web", 3).await;
    app.stop().await.unwrap();
}

/// `h:m` of `date` in the daemon's timezone.
fn local(date: jiff::civil::Date, hour: i8, minute: i8) -> Timestamp {
    date.at(hour, minute, 0, 0)
        .to_zoned(TimeZone::system())
        .unwrap()
        .timestamp()
}

/// Moves the notifier's clock and waits until the service has acted on it.
/// Sets the notifier's clock and the fleet's (what `pending_since` is stamped with) to `time`.
async fn set_clock(time: Timestamp) {
    tendhost_core::clock::testing::set(time);
    testing::set_now(time);
    wait::within(
        "the notifier acting on the new time",
        testing::settled(time),
    )
    .await;
}

#[tokio::test]
async fn digests_are_sent_at_digest_at_and_only_with_something_to_report() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new("th-digest", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let day1 = jiff::civil::date(2031, 3, 3);
    let day2 = jiff::civil::date(2031, 3, 4);
    tendhost_core::clock::testing::set(local(day1, 7, 0));
    testing::set_now(local(day1, 7, 0));
    let receiver = Receiver::start(Mode::Answer).await;
    let config = format!(
        "{}{}",
        fleet_config(&fleet, 0),
        webhook(
            "daily",
            &format!("{}/daily", receiver.url),
            "s",
            "digest_at = \"08:00\"\nevents = [\"reboot_required_digest\", \"security_updates_digest\"]\n"
        )
    );
    let app = spawn_app(&config).await;
    let check_all = || async {
        for host in fleet.hosts() {
            let job = run_job(&app, host.name(), "check").await;
            assert_eq!(job["state"], "succeeded", "{job:#}");
        }
    };
    check_all().await;

    // 08:00, nothing pending, no reboot needed: nothing is sent.
    set_clock(local(day1, 8, 0)).await;
    let rows = deliveries(&app).await;
    assert!(
        rows.is_empty(),
        "nothing to report, nothing sent: {rows:#?}"
    );

    let needy = &fleet.hosts()[0];
    fleet
        .publish(&Pkg::new("th-digest", "1.1").security())
        .await;
    needy.require_reboot().await;
    check_all().await;
    let view = get_json(&app.base_url, &format!("/hosts/{}", needy.name())).await;
    assert_eq!(view["reboot"]["state"], "required", "{view:#}");
    assert_eq!(view["n_security"], 1, "{view:#}");

    // Not digest time yet.
    set_clock(local(day1, 12, 0)).await;
    assert!(deliveries(&app).await.is_empty());

    // The next 08:00: both digests, about the host that needs them.
    set_clock(local(day2, 8, 0)).await;
    let seen = receiver.wait_for("/daily", 2).await;
    let mut by_event: Vec<(String, Value)> = seen
        .iter()
        .map(|s| (s.json()["event"].as_str().unwrap().to_owned(), s.json()))
        .collect();
    by_event.sort_by(|a, b| a.0.cmp(&b.0));
    let events: Vec<&str> = by_event.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        events,
        ["reboot_required_digest", "security_updates_digest"]
    );
    let needy_name = needy.name();
    assert_eq!(
        by_event[0].1["hosts"],
        json!([needy_name]),
        "{:#}",
        by_event[0].1
    );
    // The security update is published for every host; only one needs a reboot.
    let mut all: Vec<&str> = fleet
        .hosts()
        .iter()
        .map(tendhost_tests::fleet::Host::name)
        .collect();
    all.sort_unstable();
    assert_eq!(by_event[1].1["hosts"], json!(all), "{:#}", by_event[1].1);
    assert_eq!(by_event[1].1["items"][0]["count"], 1);
    assert_eq!(by_event[1].1["items"][1]["count"], 1);
    assert_eq!(
        by_event[1].1["title"],
        "2 security update(s) pending on 2 host(s)"
    );
    let rows = until_deliveries(&app, "both digests delivered", |rows| {
        rows.len() == 2 && rows.iter().all(|row| row["status"] == "delivered")
    })
    .await;
    assert_eq!(rows.len(), 2);

    // The host says since when the update is pending; ten days on, the digest says how long.
    let view = get_json(&app.base_url, &format!("/hosts/{needy_name}")).await;
    let since: Timestamp = view["pending"][0]["pending_since"]
        .as_str()
        .unwrap_or_else(|| panic!("no pending_since: {view:#}"))
        .parse()
        .unwrap();
    assert!(
        since >= local(day1, 8, 0) && since < local(day2, 8, 0),
        "{since} {view:#}"
    );
    set_clock(local(jiff::civil::date(2031, 3, 14), 8, 0)).await;
    let seen = receiver.wait_for("/daily", 4).await;
    let security = seen
        .iter()
        .skip(2)
        .map(Seen::json)
        .find(|body| body["event"] == "security_updates_digest")
        .unwrap_or_else(|| panic!("{seen:?}"));
    assert_eq!(
        security["title"], "2 security update(s) pending on 2 host(s), the oldest for 10 day(s)",
        "{security:#}"
    );
    assert_eq!(
        security["items"][0]["detail"], "pending for 10 day(s)",
        "{security:#}"
    );
    app.stop().await.unwrap();
}

/// A host whose SSH port refuses connections (nothing listens on port 1).
const UNREACHABLE_HOSTS: &str = "\n[[host]]\nname = \"gone-1\"\naddr = \"127.0.0.1\"\nport = 1\nknown_hosts = \"accept-new\"\n\
     \n[[host]]\nname = \"gone-2\"\naddr = \"127.0.0.1\"\nport = 1\nknown_hosts = \"accept-new\"\n";

#[tokio::test]
async fn host_unreachable_is_told_once_after_unreachable_after_by_the_clock() {
    let start = Timestamp::from_second(1_900_000_000).unwrap();
    testing::set_now(start);
    let receiver = Receiver::start(Mode::Answer).await;
    let config = format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n{UNREACHABLE_HOSTS}{}",
        webhook(
            "down-hosts",
            &format!("{}/down", receiver.url),
            "s",
            "events = [\"host_unreachable\"]\nunreachable_after = \"30m\"\n"
        )
    );
    let app = spawn_app(&config).await;
    for host in ["gone-1", "gone-2"] {
        run_job(&app, host, "check").await;
        let view = get_json(&app.base_url, &format!("/hosts/{host}")).await;
        assert_eq!(view["state"], "unreachable", "{view:#}");
    }
    set_clock(start + Duration::from_secs(60)).await;
    assert!(deliveries(&app).await.is_empty(), "not yet 30 minutes");
    set_clock(start + Duration::from_secs(40 * 60)).await;
    let [told] = receiver.wait_for("/down", 1).await.try_into().unwrap();
    let told = told.json();
    assert_eq!(told["event"], "host_unreachable", "{told:#}");
    assert_eq!(
        told["hosts"],
        json!(["gone-1", "gone-2"]),
        "one message for both"
    );
    assert_eq!(told["title"], "2 hosts unreachable");
    set_clock(start + Duration::from_secs(90 * 60)).await;
    let rows = until_deliveries(&app, "the report delivered", |rows| {
        rows.first().is_some_and(|row| row["status"] == "delivered")
    })
    .await;
    assert_eq!(
        rows.len(),
        1,
        "told once while they stay unreachable: {rows:#?}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn down_and_hanging_receivers_are_retried_and_recorded_and_the_rollout_does_not_wait() {
    let held = Receiver::start(Mode::Hold).await;
    let hanging = Receiver::start(Mode::Hang).await;
    let down_url = format!("http://127.0.0.1:{}/down", free_port());
    let only_finished = "events = [\"rollout_finished\"]\n";
    let config = format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n{UNREACHABLE_HOSTS}{}{}{}",
        webhook(
            "held",
            &format!("{}/held", held.url),
            "s",
            &format!("{only_finished}attempts = 1\ntimeout = \"2m\"\n")
        ),
        webhook(
            "down",
            &down_url,
            "s",
            &format!("{only_finished}attempts = 3\ntimeout = \"5s\"\n")
        ),
        webhook(
            "hanging",
            &format!("{}/hang", hanging.url),
            "s",
            &format!("{only_finished}attempts = 2\ntimeout = \"1s\"\n")
        ),
    );
    let app = spawn_app(&config).await;
    let (status, body) = post_json(&app.base_url, "/fleet/check", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let rollout_id = body["rollout_id"].as_str().unwrap().to_owned();

    // The held receiver has the first attempt's request and has not answered it: by then the
    // rollout has finished and its event is out.
    held.wait_for("/held", 1).await;
    let rollout = get_json(&app.base_url, &format!("/rollouts/{rollout_id}")).await;
    assert_ne!(rollout["state"], "running", "{rollout:#}");
    let rows = deliveries(&app).await;
    let held_row = rows_of(&rows, "held")[0].clone();
    assert_eq!(held_row["status"], "pending", "{held_row:#}");
    assert_eq!(
        held_row["attempts"], 0,
        "the first attempt has not completed"
    );
    held.release();

    let rows = until_deliveries(&app, "every delivery ending", |rows| {
        rows.len() == 3 && rows.iter().all(|row| row["status"] != "pending")
    })
    .await;
    let held_row = rows_of(&rows, "held")[0];
    assert_eq!(
        (held_row["status"].as_str(), held_row["attempts"].as_u64()),
        (Some("delivered"), Some(1)),
        "{held_row:#}"
    );
    let down = rows_of(&rows, "down")[0];
    assert_eq!(down["status"], "failed", "{down:#}");
    assert_eq!(down["attempts"], 3, "{down:#}");
    let error = down["last_error"].as_str().unwrap().to_lowercase();
    assert!(
        error.contains("connect") || error.contains("refused"),
        "{error}"
    );
    let hang = rows_of(&rows, "hanging")[0];
    assert_eq!(hang["status"], "failed", "{hang:#}");
    assert_eq!(hang["attempts"], 2, "{hang:#}");
    assert!(
        hang["last_error"].as_str().unwrap().contains("timeout"),
        "{hang:#}"
    );
    assert_eq!(
        hanging.seen_at("/hang").len(),
        2,
        "each attempt reached the receiver"
    );
    for row in &rows {
        assert_eq!(row["event"], "rollout_finished");
        assert_eq!(row["rollout_id"], rollout_id.as_str());
    }
    app.stop().await.unwrap();
}

#[test]
fn the_configs_of_docs_notifications_md_pass_check_config() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/notifications.md"
    ))
    .unwrap();
    let mut blocks = Vec::new();
    let mut block: Option<String> = None;
    for line in doc.lines() {
        match (&mut block, line.trim_end()) {
            (None, "```toml") => block = Some(String::new()),
            (Some(_), "```") => blocks.push(block.take().unwrap()),
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(
        blocks.len() >= 3,
        "a config per kind: {} blocks",
        blocks.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut kinds = Vec::new();
    for (idx, block) in blocks.iter().enumerate() {
        let path = dir.path().join(format!("notify-{idx}.toml"));
        std::fs::write(&path, block).unwrap();
        let out = Command::new(daemon_binary())
            .args(["check-config", "--config"])
            .arg(&path)
            .env("TENDHOST_DATA_DIR", dir.path().join("data"))
            .env("NTFY_TOKEN", "tk_example")
            .env("WEBHOOK_SECRET", "example-secret")
            .env("SMTP_PASSWORD", "example-password")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "block {idx}:\n{block}\n{stderr}"
        );
        for kind in ["webhook", "ntfy", "email"] {
            if stdout.contains(&format!("({kind}):")) {
                kinds.push(kind);
            }
        }
        for secret in ["tk_example", "example-secret", "example-password"] {
            assert!(!stdout.contains(secret) && !stderr.contains(secret));
        }
    }
    for kind in ["webhook", "ntfy", "email"] {
        assert!(kinds.contains(&kind), "no ready config of kind {kind}");
    }
}
