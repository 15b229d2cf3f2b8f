//! Benchmark: the daemon managing 20 apt hosts of the Docker test fleet, driven as a user
//! drives it: real HTTP (`POST /fleet/check`, `POST /fleet/update`, `GET /rollouts/{id}`) and
//! a real WebSocket (`/ws/events?types=rollout_finished`) on the daemon started in-process
//! (`tendhost_tests::daemon::spawn_app`). Times a fleet check cold (SSH masters opened) and
//! warm (masters reused), and a real rolling update of 2 packages on all 20 hosts (verified
//! out of band with `docker exec ... dpkg-query`; the bench panics when a host did not get
//! the new versions). Also the process's memory (`VmRSS`, `VmHWM`) and that of the `ssh`
//! master processes it spawned. Prints Markdown for docs/benchmarks.md. Skipped with
//! `TENDHOST_SKIP_FLEET=1`. No fleet faults here: those are `tests/it/fleet_e2e.rs`.
//!
//! Run: `cargo bench -p tendhost-tests --bench fleet_throughput` (optional arguments: warm
//! check rounds, default 5; update rounds, default 3).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, spawn_app};
use tendhost_tests::fleet::{Fleet, Pkg};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const N_HOSTS: usize = 20;
/// Installed at 1.0 on every host; update round `r` publishes and installs `1.r`.
const PACKAGES: [&str; 2] = ["th-bench-a", "th-bench-b"];
/// A rollout that takes longer than this is a broken run, not a figure.
const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(300);

fn main() {
    let mut numbers = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .filter_map(|arg| arg.parse::<usize>().ok());
    let warm_rounds = numbers.next().unwrap_or(5).max(1);
    let update_rounds = numbers.next().unwrap_or(3).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(warm_rounds, update_rounds));
}

/// One timed rollout: POST to `rollout_finished` on the WebSocket, and the per-host job
/// durations the daemon recorded (`started_at` to `finished_at`).
struct Timed {
    wall: Duration,
    accepted: Duration,
    jobs: Vec<Duration>,
}

async fn bench(warm_rounds: usize, update_rounds: usize) {
    println!("load at start: {}", uptime());
    let mut builder = Fleet::builder().apt(N_HOSTS);
    for name in PACKAGES {
        builder = builder.install(Pkg::new(name, "1.0"));
    }
    let Some(fleet) = builder.start().await else {
        return;
    };
    let mut memory = vec![("fleet started, no daemon yet", Memory::read(None))];
    let app = spawn_app(&config_for(&fleet)).await;
    let control_dir = app.dir.path().join("data/ssh/c").display().to_string();
    let control_dir = Some(control_dir.as_str());
    memory.push((
        "daemon started (20 hosts configured, none contacted)",
        Memory::read(control_dir),
    ));
    let mut ws = ws_connect(&app).await;

    let cold = rollout(&app, &mut ws, "/fleet/check", json!({})).await;
    memory.push((
        "after the cold check (20 SSH masters open)",
        Memory::read(control_dir),
    ));
    let mut warm = Vec::with_capacity(warm_rounds);
    for _ in 0..warm_rounds {
        warm.push(rollout(&app, &mut ws, "/fleet/check", json!({})).await);
    }

    let mut checks = Vec::with_capacity(update_rounds);
    let mut updates = Vec::with_capacity(update_rounds);
    for round in 1..=update_rounds {
        let version = format!("1.{round}");
        let pkgs: Vec<Pkg> = PACKAGES.iter().map(|n| Pkg::new(*n, &version)).collect();
        fleet.publish_all(&pkgs).await;
        checks.push(rollout(&app, &mut ws, "/fleet/check", json!({})).await);
        expect_pending(&app, &fleet).await;
        let body = json!({"batch_size": N_HOSTS, "max_failures": 0});
        updates.push(rollout(&app, &mut ws, "/fleet/update", body).await);
        expect_versions(&fleet, &version).await;
    }
    memory.push(("after all rounds", Memory::read(control_dir)));
    println!("load at end: {}", uptime());
    println!();

    report(&cold, &warm, &checks, &updates);
    println!();
    memory_table(&memory);
    drop(ws);
    app.stop().await.expect("daemon stops cleanly");
}

/// A daemon config managing every host of `fleet` as root by the fleet's key, as
/// `tests/it/fleet_e2e.rs` does; no background checks.
fn config_for(fleet: &Fleet) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n\
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
    config
}

async fn ws_connect(app: &TestApp) -> Ws {
    let url = format!("ws://{}/ws/events?types=rollout_finished", app.addr);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    ws
}

/// POSTs `path` (a fleet operation), waits for its `rollout_finished` event, and checks
/// that every host succeeded.
async fn rollout(app: &TestApp, ws: &mut Ws, path: &str, body: Value) -> Timed {
    let started = Instant::now();
    let response = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("POST reaches the daemon");
    let accepted = started.elapsed();
    let status = response.status();
    let answer: Value = response.json().await.expect("JSON answer");
    assert_eq!(status.as_u16(), 202, "POST {path}: {answer}");
    let id = answer["rollout_id"]
        .as_str()
        .expect("rollout_id")
        .to_owned();
    let finished = wait_finished(ws, &id).await;
    let wall = started.elapsed();
    assert_eq!(finished["state"], "completed", "rollout {id}: {finished}");

    let rollout = get(app, &format!("/rollouts/{id}")).await;
    assert_eq!(
        rollout["counts"]["succeeded"].as_u64(),
        Some(N_HOSTS as u64),
        "every host succeeds: {rollout:#}"
    );
    let mut jobs = Vec::with_capacity(N_HOSTS);
    for host in rollout["hosts"].as_array().expect("hosts") {
        let job_id = host["job_id"].as_str().expect("job_id");
        let job = get(app, &format!("/jobs/{job_id}")).await;
        jobs.push(span(&job["started_at"], &job["finished_at"]));
    }
    Timed {
        wall,
        accepted,
        jobs,
    }
}

async fn wait_finished(ws: &mut Ws, rollout_id: &str) -> Value {
    let deadline = Instant::now() + ROLLOUT_TIMEOUT;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| {
                panic!("rollout {rollout_id} did not finish in {ROLLOUT_TIMEOUT:?}")
            });
        let message = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!("rollout {rollout_id} did not finish in {ROLLOUT_TIMEOUT:?}")
            })
            .expect("websocket open")
            .expect("websocket message");
        let Message::Text(text) = message else {
            continue;
        };
        let event: Value = serde_json::from_str(&text).expect("event is JSON");
        if event["type"] == "rollout_finished" && event["rollout_id"] == rollout_id {
            return event;
        }
    }
}

async fn get(app: &TestApp, path: &str) -> Value {
    let response = app
        .client
        .get(app.url(path))
        .send()
        .await
        .expect("GET reaches the daemon");
    assert!(response.status().is_success(), "GET {path}: {response:?}");
    response.json().await.expect("JSON answer")
}

fn span(started: &Value, finished: &Value) -> Duration {
    let parse = |value: &Value| -> jiff::Timestamp {
        value
            .as_str()
            .and_then(|text| text.parse().ok())
            .unwrap_or_else(|| panic!("job timestamp {value} is not RFC 3339"))
    };
    let span = parse(finished).duration_since(parse(started));
    Duration::try_from(span).expect("a job finishes after it starts")
}

/// After a check that followed a publish, every host reports the update as pending.
async fn expect_pending(app: &TestApp, fleet: &Fleet) {
    for host in fleet.hosts() {
        let view = get(app, &format!("/hosts/{}", host.name())).await;
        assert_eq!(view["state"], "pending_updates", "{view:#}");
    }
}

/// Out of band (`docker exec`): every host has `version` of both packages.
async fn expect_versions(fleet: &Fleet, version: &str) {
    for host in fleet.hosts() {
        for package in PACKAGES {
            let installed = host
                .exec_ok(&["dpkg-query", "-W", "-f=${Version}", package])
                .await;
            assert_eq!(
                installed,
                version,
                "{package} on {} after the update",
                host.name()
            );
        }
    }
}

fn report(cold: &Timed, warm: &[Timed], checks: &[Timed], updates: &[Timed]) {
    println!(
        "| case ({N_HOSTS} hosts) | runs | median | min | max | per-host job median / max | POST answered in |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    row(
        "fleet check, cold (new SSH masters)",
        std::slice::from_ref(cold),
    );
    row("fleet check, warm (masters reused)", warm);
    row("fleet check after publishing 2 new versions", checks);
    row("fleet update of 2 packages, batch_size 20", updates);
    let sums: Vec<Duration> = checks
        .iter()
        .zip(updates)
        .map(|(check, update)| check.wall + update.wall)
        .collect();
    let mut sorted = sums.clone();
    sorted.sort_unstable();
    println!(
        "| check + update (lists refreshed, then upgraded) | {} | {} | {} | {} | | |",
        sorted.len(),
        secs(median(&sorted)),
        secs(sorted[0]),
        secs(sorted[sorted.len() - 1]),
    );
}

fn row(name: &str, runs: &[Timed]) {
    let mut walls: Vec<Duration> = runs.iter().map(|run| run.wall).collect();
    walls.sort_unstable();
    let mut jobs: Vec<Duration> = runs.iter().flat_map(|run| run.jobs.clone()).collect();
    jobs.sort_unstable();
    let mut accepted: Vec<Duration> = runs.iter().map(|run| run.accepted).collect();
    accepted.sort_unstable();
    println!(
        "| {name} | {} | {} | {} | {} | {} / {} | {:.1} ms |",
        walls.len(),
        secs(median(&walls)),
        secs(walls[0]),
        secs(walls[walls.len() - 1]),
        secs(median(&jobs)),
        secs(jobs[jobs.len() - 1]),
        median(&accepted).as_secs_f64() * 1000.0,
    );
}

/// Median of sorted, non-empty samples (the lower middle for an even count).
fn median(sorted: &[Duration]) -> Duration {
    sorted[(sorted.len() - 1) / 2]
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn uptime() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |err| format!("unknown ({err})"),
        |load| {
            let fields: Vec<&str> = load.split_whitespace().take(3).collect();
            format!("load average {}", fields.join(", "))
        },
    )
}

/// Memory of this process (the daemon runs in it) and of the daemon's SSH master connections
/// (one `ssh -M -f` process per host; daemonized, so found by their control socket path).
#[derive(Clone, Copy)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
    ssh_count: usize,
    ssh_rss_kib: u64,
}

impl Memory {
    /// `control_dir`: the daemon's `ssh/c` directory, when it runs.
    fn read(control_dir: Option<&str>) -> Memory {
        let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
        let (mut ssh_count, mut ssh_rss_kib) = (0, 0);
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Some(control_dir) = control_dir else {
                break;
            };
            let (Ok(process), Ok(cmdline)) = (
                std::fs::read_to_string(entry.path().join("status")),
                std::fs::read(entry.path().join("cmdline")),
            ) else {
                continue;
            };
            if status_field(&process, "Name:").as_deref() == Some("ssh")
                && String::from_utf8_lossy(&cmdline).contains(control_dir)
            {
                ssh_count += 1;
                ssh_rss_kib += kib(&process, "VmRSS:");
            }
        }
        Memory {
            rss_kib: kib(&status, "VmRSS:"),
            hwm_kib: kib(&status, "VmHWM:"),
            ssh_count,
            ssh_rss_kib,
        }
    }
}

fn status_field(status: &str, field: &str) -> Option<String> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .map(|value| value.trim().to_owned())
}

/// A `/proc/PID/status` size line (`VmRSS:   1234 kB`) in KiB; 0 when absent.
fn kib(status: &str, field: &str) -> u64 {
    status_field(status, field)
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn memory_table(memory: &[(&str, Memory)]) {
    let mib = |kib: u64| {
        let kib = f64::from(u32::try_from(kib).unwrap_or(u32::MAX));
        format!("{:.1} MiB", kib / 1024.0)
    };
    println!(
        "| moment | bench process VmRSS (daemon in-process) | VmHWM | ssh masters (child processes) |"
    );
    println!("| --- | --- | --- | --- |");
    for (moment, m) in memory {
        println!(
            "| {moment} | {} | {} | {} processes, {} |",
            mib(m.rss_kib),
            mib(m.hwm_kib),
            m.ssh_count,
            mib(m.ssh_rss_kib)
        );
    }
}
