//! `GET /metrics` with real components: the daemon's exposition behind a `read` token, checked
//! by `promtool check metrics`; Debian's `prometheus`, started here on its own ports, scraping a
//! real apt fleet with a bearer token until its query API agrees with `GET /hosts`; the alert
//! rules of `docs/monitoring.md` through `promtool check rules` and `promtool test rules`; and
//! the Grafana dashboard's metrics against the fleet's exposition after a check and an update. promtool and prometheus come with
//! the fleet's packages (`scripts/test`), so these tests are fleet tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tendhost_tests::daemon::{TestApp, spawn_app};
use tendhost_tests::fleet::{Fleet, Pkg};
use tendhost_tests::wait;

const LOCAL_HOST: &str = "[[host]]\nname = \"me\"\naddr = \"local\"\n\
    [host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n";

struct Tokens {
    read: String,
    operate: String,
}

/// A `[daemon.auth]` section with a `read` and an `operate` token.
fn auth_section() -> (String, Tokens) {
    let (read, read_hash) = tendhost_auth::new_token().expect("random token");
    let (operate, operate_hash) = tendhost_auth::new_token().expect("random token");
    let section = format!(
        "[daemon.auth]\ntokens = [\n\
         {{ name = \"prometheus\", token_hash = \"{read_hash}\", role = \"read\" }},\n\
         {{ name = \"ops\", token_hash = \"{operate_hash}\", role = \"operate\" }},\n]\n"
    );
    (section, Tokens { read, operate })
}

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `GET path` with `token` and `accept`: status, content type, body.
async fn get(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    accept: &str,
) -> (u16, String, String) {
    let mut request = wait::http_client()
        .get(app.url(path))
        .header("accept", accept);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {path}: {err}"));
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.expect("a body");
    (status, content_type, body)
}

async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    let (status, _, body) = get(app, path, Some(token), "application/json").await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body)
        .unwrap_or_else(|err| panic!("GET {path} is not JSON ({err}): {body}"))
}

async fn post_json(app: &TestApp, path: &str, token: &str) -> Value {
    let response = wait::http_client()
        .post(app.url(path))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap_or_else(|err| panic!("POST {path}: {err}"));
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 202, "POST {path}: {body}");
    body
}

/// The exposition in the classic text format, as promtool and a plain client get it.
async fn exposition(app: &TestApp, token: &str) -> String {
    let (status, content_type, body) = get(app, "/metrics", Some(token), "text/plain").await;
    assert_eq!(status, 200, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    body
}

/// Runs promtool with `args`, `stdin` on its standard input; panics with its output on failure.
fn promtool(args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writing to promtool");
    let output = child.wait_with_output().expect("promtool ends");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed: {text}");
    text
}

/// Metric family names an exposition declares (`# TYPE` lines; a family without series yet,
/// like the last update time before any update, is not there).
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Every `tendhost_*` name in the dashboard's queries.
fn dashboard_metrics() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(repo_file("docs/grafana-dashboard.json")).expect("dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(at) = rest.find("tendhost_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let name = &tail[..end];
                names.insert(name.strip_suffix("_bucket").unwrap_or(name).to_owned());
                rest = &tail[end..];
            }
        }
    }
    names
}

/// Polls `GET /jobs/{id}` with `token` until the job ended.
async fn wait_job(app: &TestApp, job_id: &str, token: &str) -> Value {
    wait::until(&format!("job {job_id} ending"), || async {
        let job = get_json(app, &format!("/jobs/{job_id}"), token).await;
        if matches!(job["state"].as_str(), Some("queued" | "running")) {
            Err(format!("state {}", job["state"]))
        } else {
            Ok(job)
        }
    })
    .await
}

#[tokio::test]
async fn metrics_need_a_read_token_and_pass_promtool() {
    if !tendhost_tests::require_fleet() {
        return;
    }
    let (auth, tokens) = auth_section();
    let app = spawn_app(&format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n{auth}\n{LOCAL_HOST}"
    ))
    .await;
    let (status, _, body) = get(&app, "/metrics", None, "text/plain").await;
    assert_eq!(status, 401, "no token: {body}");

    let job = post_json(&app, "/hosts/me/check", &tokens.operate).await;
    let job = wait_job(&app, job["job_id"].as_str().expect("job_id"), &tokens.read).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");

    let text = exposition(&app, &tokens.read).await;
    let lint = promtool(&["check", "metrics"], &text);
    assert!(lint.trim().is_empty(), "promtool check metrics: {lint}");
    let pending = job["pending"].as_array().expect("pending").len();
    assert!(
        text.contains(&format!(
            "tendhost_host_pending_updates{{host=\"me\"}} {pending}\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("tendhost_jobs_total{kind=\"check\",outcome=\"succeeded\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("tendhost_host_state{host=\"me\",state=\"querying\"} 0\n"),
        "{text}"
    );
    assert!(
        !text.contains(job["id"].as_str().expect("id")),
        "a job id is a label: {text}"
    );

    // Prometheus asks for OpenMetrics first and gets it.
    let (status, content_type, om) = get(
        &app,
        "/metrics",
        Some(&tokens.read),
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
}

#[test]
fn the_rules_in_the_doc_are_the_rules_file() {
    let doc = std::fs::read_to_string(repo_file("docs/monitoring.md")).expect("docs/monitoring.md");
    let rules = std::fs::read_to_string(repo_file("docs/monitoring-rules.yml")).expect("rules");
    let marker = "<!-- rules: docs/monitoring-rules.yml -->\n```yaml\n";
    let start = doc.find(marker).expect("the doc marks its rules block") + marker.len();
    let end = start + doc[start..].find("```").expect("the rules block ends");
    assert_eq!(
        &doc[start..end],
        rules,
        "docs/monitoring.md does not show docs/monitoring-rules.yml"
    );
}

#[test]
fn the_alert_rules_pass_promtool_check_and_test() {
    if !tendhost_tests::require_fleet() {
        return;
    }
    let rules = repo_file("docs/monitoring-rules.yml");
    let out = promtool(&["check", "rules", rules.to_str().expect("path")], "");
    assert!(out.contains("SUCCESS: 4 rules found"), "{out}");
    let unit = repo_file("docs/monitoring-rules.test.yml");
    let out = promtool(&["test", "rules", unit.to_str().expect("path")], "");
    assert!(out.contains("SUCCESS"), "{out}");
}

/// A free TCP port on the loopback (bound, then released for prometheus).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// One instant query of Prometheus's HTTP API: `metric label -> value` of the result vector.
async fn query(
    prometheus: &str,
    expr: &str,
    label: &str,
) -> Result<BTreeMap<String, String>, String> {
    let url = format!("{prometheus}/api/v1/query?query={expr}");
    let answer: Value = wait::http_client()
        .get(&url)
        .send()
        .await
        .map_err(|err| format!("GET {url}: {err}"))?
        .json()
        .await
        .map_err(|err| format!("GET {url}: not JSON: {err}"))?;
    let result = answer["data"]["result"]
        .as_array()
        .ok_or_else(|| format!("{answer}"))?;
    Ok(result
        .iter()
        .map(|sample| {
            (
                sample["metric"][label]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                sample["value"][1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

#[tokio::test]
async fn prometheus_scrapes_the_fleet_with_a_read_token() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new("th-metrics", "1.0"))
        .start()
        .await
    else {
        return;
    };
    fleet.publish(&Pkg::new("th-metrics", "1.1")).await;
    let (auth, tokens) = auth_section();
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\n{auth}\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"10s\"\n",
        fleet.ssh_key().display()
    );
    for host in fleet.hosts() {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\n",
            host.name(),
            host.addr()
        ));
    }
    let app = spawn_app(&config).await;
    let rollout = post_json(&app, "/fleet/check", &tokens.operate).await;
    let rollout_id = rollout["rollout_id"]
        .as_str()
        .expect("rollout_id")
        .to_owned();
    wait::until(&format!("rollout {rollout_id} ending"), || async {
        let rollout = get_json(&app, &format!("/rollouts/{rollout_id}"), &tokens.read).await;
        if rollout["state"] == "running" {
            Err(format!("{rollout:#}"))
        } else {
            Ok(())
        }
    })
    .await;
    let hosts = get_json(&app, "/hosts", &tokens.read).await;
    let expected: BTreeMap<String, String> = hosts["data"]
        .as_array()
        .unwrap_or_else(|| panic!("GET /hosts: {hosts:#}"))
        .iter()
        .map(|host| {
            (
                host["name"].as_str().expect("name").to_owned(),
                host["n_pending"].to_string(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 2, "{hosts:#}");
    assert!(
        expected.values().all(|n| n != "0"),
        "every host sees th-metrics 1.1 pending: {hosts:#}"
    );

    let dir = tempfile::tempdir().expect("a temp dir");
    let port = free_port();
    let prometheus_config = dir.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: tendhost\n    authorization:\n      type: Bearer\n      \
             credentials: \"{}\"\n    static_configs:\n      - targets: [\"{}\"]\n",
            tokens.read, app.addr
        ),
    )
    .expect("writing prometheus.yml");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
    let mut prometheus = tokio::process::Command::new("prometheus")
        .arg(format!("--config.file={}", prometheus_config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("prometheus runs (Debian package prometheus; scripts/test installs it)");
    let api = format!("http://127.0.0.1:{port}");

    let up = wait::until("prometheus scraping /metrics with up == 1", || async {
        let up = query(&api, "up", "job").await?;
        if up.get("tendhost").map(String::as_str) == Some("1") {
            Ok(up)
        } else {
            let log =
                std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
            Err(format!("up: {up:?}; prometheus log tail: {}", tail(&log)))
        }
    })
    .await;
    assert_eq!(up.len(), 1, "{up:?}");
    let seen = wait::until(
        "prometheus showing each host's n_pending as tendhost_host_pending_updates",
        || async {
            let seen = query(&api, "tendhost_host_pending_updates", "host").await?;
            if seen == expected {
                Ok(seen)
            } else {
                Err(format!("prometheus: {seen:?}, GET /hosts: {expected:?}"))
            }
        },
    )
    .await;
    assert_eq!(seen, expected);
    prometheus.kill().await.expect("stopping prometheus");

    // After an update every metric the dashboard shows has series.
    let host = fleet.hosts()[0].name();
    let job = post_json(&app, &format!("/hosts/{host}/update"), &tokens.operate).await;
    let job = wait_job(&app, job["job_id"].as_str().expect("job_id"), &tokens.read).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    // The metrics follow the event bus, which may deliver `job_finished` to them a moment
    // after the API already shows the job finished: wait for the series.
    let last_update = format!("tendhost_host_last_update_timestamp_seconds{{host=\"{host}\"}} ");
    let text = tendhost_tests::wait::until("the update's last_update series", || async {
        let text = exposition(&app, &tokens.read).await;
        if text.contains(&last_update) {
            Ok(text)
        } else {
            Err(format!("no {last_update:?} in the exposition"))
        }
    })
    .await;
    let lint = promtool(&["check", "metrics"], &text);
    assert!(lint.trim().is_empty(), "promtool check metrics: {lint}");
    // The fleet's SSH masters and the store's commits were timed.
    let count = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}_count ")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name}_count in:\n{text}"))
    };
    assert!(
        count("tendhost_ssh_connect_duration_seconds") >= 2,
        "one master per fleet host"
    );
    assert!(count("tendhost_store_commit_duration_seconds") > 0);
    let exposed = families(&text);
    let used = dashboard_metrics();
    assert!(used.len() >= 10, "the dashboard uses {used:?}");
    let missing: Vec<&String> = used.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics that are not exposed: {missing:?}"
    );
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
