//! The control plane at scale, measured against the real `tendhost` binary in a child process
//! (so its `/proc/<pid>/status` is the daemon's alone: the bench's HTTP and WebSocket clients
//! and the `ssh` processes the daemon starts are not counted).
//!
//! [`control_plane`]: N `[[host]]` tables at loopback addresses (`127.x.y.z`) on a closed port,
//! so every check fails fast at connect and background checks keep running. Measured: time from
//! spawn until `GET /health` answers and until `GET /hosts` lists every host, RSS, and the
//! latency of `GET /hosts?per_page=200` (pages in turn), `GET /hosts/{name}` and
//! `GET /fleet/summary`, interleaved with `GET /health` (the same-run baseline), while the
//! start-up checks run. Every answer is checked (status, page size, total, the host's name),
//! and the full host list is walked once (names in order, none missing).
//!
//! [`ws_fanout`]: C WebSocket clients on `GET /ws/events`, the daemon's RSS before and after
//! they connect (idle), then a fleet check of H loopback hosts while every client reads:
//! events lost (a seq missing between a client's `rollout_started` and `rollout_finished`,
//! or fewer events than the most any client got), `lagged` messages, RSS while it runs.
//!
//! The bench binaries (`tests/benches/plane.rs`, `ws_fanout.rs`) run them at full size; the
//! smoke test `it::smoke_plane_bench` runs them tiny in the debug build and asserts the
//! outcomes only.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

use crate::bench::loadavg;
use crate::wait::{self, WAIT_DEADLINE};

/// The `tendhost` binary running in a child process with a private data dir.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub base_url: String,
    pub addr: SocketAddr,
    /// From spawn until `GET /health` first answered 200.
    pub until_health: Duration,
    pub client: reqwest::Client,
    dir: TempDir,
}

impl Daemon {
    /// Spawns `binary` with `config_text` (auth off: loopback only) and waits until
    /// `GET /health` answers, polling every 2 ms.
    pub async fn start(binary: &Path, config_text: &str) -> Daemon {
        crate::tls::install_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("tendhost.toml");
        let text = crate::daemon::auth_off_unless_configured(config_text);
        std::fs::write(&config_path, text).expect("write config");
        let data_dir = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("daemon.log")).expect("log file");
        // A free port: bound and released (the daemon binds it a moment later).
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port");
        // Everything that may panic before the child is owned by `Daemon` (whose drop kills
        // it) comes first.
        let client = reqwest::Client::builder()
            .timeout(WAIT_DEADLINE)
            .pool_max_idle_per_host(4)
            .build()
            .expect("HTTP client");
        let probe = reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .expect("HTTP client");
        let started = Instant::now();
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config_path)
            .env("TENDHOST_BIND", addr.to_string())
            .env("TENDHOST_DATA_DIR", &data_dir)
            .env("TENDHOST_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot spawn {}: {err}", binary.display()));
        let pid = child.id();
        let mut daemon = Daemon {
            child,
            pid,
            base_url: format!("http://{addr}"),
            addr,
            until_health: Duration::ZERO,
            client,
            dir,
        };
        let health = daemon.url("/health");
        loop {
            if let Ok(response) = probe.get(&health).send().await
                && response.status().is_success()
            {
                daemon.until_health = started.elapsed();
                return daemon;
            }
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!(
                    "the daemon exited ({status}) before answering; its log:\n{}",
                    daemon.log()
                );
            }
            assert!(
                started.elapsed() < WAIT_DEADLINE,
                "the daemon did not answer /health within {WAIT_DEADLINE:?}; its log:\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// What the daemon wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    pub fn status_kib(&self, field: &str) -> u64 {
        proc_status_kib(self.pid, field)
    }

    /// `GET path` as JSON, with its status.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// `POST path` with a JSON body, as JSON with its status.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/<pid>/status` in KiB; 0 when unreadable.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of process `pid` so far (`/proc/<pid>/stat`, in clock ticks of
/// 10 ms on Linux); 0 when unreadable.
pub fn cpu_ticks(pid: u32) -> u64 {
    stat_ticks(pid, 11)
}

/// User + system CPU time of the children process `pid` has waited for (its `ssh`
/// processes), in clock ticks; 0 when unreadable.
pub fn children_cpu_ticks(pid: u32) -> u64 {
    stat_ticks(pid, 13)
}

/// The sum of two `/proc/<pid>/stat` fields from `first` on (counted after the command).
fn stat_ticks(pid: u32, first: usize) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime, stime, cutime, cstime are fields 14 to 17 of stat; here (after pid and comm)
    // at 11 to 14.
    let field = |idx: usize| {
        fields
            .get(idx)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(first) + field(first + 1)
}

fn mib(kib: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let kib = kib as f64;
    kib / 1024.0
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The daemon binary a bench runs: `TENDHOST_BENCH_BINARY`, else `tendhost` beside the bench
/// executable's directory (`<target>/release/tendhost`: build it with
/// `cargo build --release -p tendhost`).
pub fn bench_binary() -> PathBuf {
    if let Some(binary) = std::env::var_os("TENDHOST_BENCH_BINARY") {
        return PathBuf::from(binary);
    }
    let exe = std::env::current_exe().expect("current exe");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("the bench runs from <target>/<profile>/deps")
        .join("tendhost");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build --release -p tendhost` first, or set TENDHOST_BENCH_BINARY",
        binary.display()
    );
    binary
}

/// Config with `n_hosts` hosts at loopback addresses on closed port 1 (connect refused at
/// once), tagged in turn `web`, `db`, `cache`, `batch`; `daemon_extra` goes into `[daemon]`.
pub fn loopback_fleet(n_hosts: usize, daemon_extra: &str, defaults: &str) -> String {
    let mut config =
        format!("[daemon]\nlog_level = \"warn\"\n{daemon_extra}\n[defaults]\n{defaults}\n");
    for idx in 0..n_hosts {
        let _ = write!(
            config,
            "\n[[host]]\nname = \"{}\"\naddr = \"127.{}.{}.{}\"\nport = 1\ntags = [\"{}\"]\n",
            host_name(idx),
            idx / 62_500 + 1,
            idx / 250 % 250 + 1,
            idx % 250 + 1,
            ["web", "db", "cache", "batch"][idx % 4]
        );
    }
    config
}

fn host_name(idx: usize) -> String {
    format!("host-{idx:05}")
}

/// Latency samples of one request.
pub struct Latency {
    pub request: String,
    pub samples: Vec<Duration>,
}

impl Latency {
    fn new(request: &str) -> Self {
        Self {
            request: request.to_owned(),
            samples: Vec::new(),
        }
    }

    /// Nearest-rank percentile.
    pub fn percentile(&self, percent: usize) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        sorted
            .get((sorted.len().saturating_sub(1)) * percent / 100)
            .copied()
            .unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.samples.iter().max().copied().unwrap_or_default()
    }
}

/// How [`control_plane`] runs.
#[derive(Debug, Clone)]
pub struct PlaneOptions {
    pub binary: PathBuf,
    pub hosts: usize,
    /// Rounds of the four requests, interleaved.
    pub rounds: usize,
    /// `false` sets `check_on_start = false` (no background checks at start).
    pub check_on_start: bool,
    /// `[daemon] max_parallel` (`None`: the default).
    pub max_parallel: Option<usize>,
}

/// What [`control_plane`] measured.
pub struct PlaneReport {
    pub options: PlaneOptions,
    pub load_before: String,
    pub load_after: String,
    pub until_health: Duration,
    /// From spawn until `GET /hosts` counted every host.
    pub until_listed: Duration,
    pub rss_listed_kib: u64,
    /// Highest `VmRSS` sampled while the requests ran.
    pub rss_max_kib: u64,
    /// `VmHWM` at the end.
    pub hwm_kib: u64,
    pub latencies: Vec<Latency>,
    /// Checks that ended while the requests ran (hosts newly `unreachable`/`failed`).
    pub checks_during: u64,
    /// Most hosts seen `querying` at one summary during the requests.
    pub querying_max: u64,
    /// Wall time of the requests, and the daemon's CPU time meanwhile (threads of the
    /// daemon only; its `ssh` children are not counted).
    pub sampling: Duration,
    pub daemon_cpu: Duration,
    /// CPU time of the daemon's children (the checks' `ssh` processes) that ended meanwhile.
    pub children_cpu: Duration,
    /// Every request answered as expected; the names of mismatches otherwise.
    pub errors: Vec<String>,
}

fn state_count(summary: &Value, state: &str) -> u64 {
    summary["by_state"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["state"] == state)
        .and_then(|entry| entry["hosts"].as_u64())
        .unwrap_or(0)
}

fn settled(summary: &Value) -> u64 {
    state_count(summary, "unreachable") + state_count(summary, "failed")
}

/// Runs the control-plane measurement (see the module docs).
pub async fn control_plane(options: PlaneOptions) -> PlaneReport {
    let load_before = loadavg();
    let mut daemon_extra = format!("check_on_start = {}\n", options.check_on_start);
    if let Some(max_parallel) = options.max_parallel {
        let _ = writeln!(daemon_extra, "max_parallel = {max_parallel}");
    }
    let config = loopback_fleet(options.hosts, &daemon_extra, "");
    let spawned = Instant::now();
    let daemon = Daemon::start(&options.binary, &config).await;
    let n_hosts = options.hosts as u64;
    // Listed: every host registered (the actors are spawned after the listener is up).
    wait::until("every host listed", || async {
        let (status, body) = daemon.get("/hosts?per_page=1").await;
        let total = body["pagination"]["total_items"].as_u64().unwrap_or(0);
        if status == 200 && total == n_hosts {
            Ok(())
        } else {
            Err(format!("{status}, {total} of {n_hosts} hosts"))
        }
    })
    .await;
    let until_listed = spawned.elapsed();
    let rss_listed_kib = daemon.status_kib("VmRSS");
    let mut errors = Vec::new();

    let n_pages = options.hosts.div_ceil(200).max(1);
    let mut health = Latency::new("`GET /health` (baseline)");
    let mut page = Latency::new("`GET /hosts?per_page=200&page=K`");
    let mut host = Latency::new("`GET /hosts/{name}`");
    let mut summary = Latency::new("`GET /fleet/summary`");
    let (_, first_summary) = daemon.get("/fleet/summary").await;
    let settled_before = settled(&first_summary);
    let mut querying_max = state_count(&first_summary, "querying");
    let mut rss_max_kib = rss_listed_kib;
    let cpu_before = cpu_ticks(daemon.pid);
    let children_before = children_cpu_ticks(daemon.pid);
    let sampling_started = Instant::now();
    for round in 0..options.rounds {
        let started = Instant::now();
        let (status, _) = daemon.get("/health").await;
        health.samples.push(started.elapsed());
        if status != 200 {
            errors.push(format!("/health answered {status}"));
        }

        let page_no = round % n_pages + 1;
        let path = format!("/hosts?per_page=200&page={page_no}");
        let started = Instant::now();
        let (status, body) = daemon.get(&path).await;
        page.samples.push(started.elapsed());
        let want = (options.hosts - (page_no - 1) * 200).min(200);
        let data = body["data"].as_array().map_or(0, Vec::len);
        let first = body["data"][0]["name"].as_str().unwrap_or("");
        if status != 200
            || data != want
            || body["pagination"]["total_items"] != n_hosts
            || first != host_name((page_no - 1) * 200)
        {
            errors.push(format!(
                "{path}: {status}, {data} hosts (want {want}), first {first:?}"
            ));
        }

        let name = host_name(round * 7919 % options.hosts);
        let path = format!("/hosts/{name}");
        let started = Instant::now();
        let (status, body) = daemon.get(&path).await;
        host.samples.push(started.elapsed());
        if status != 200 || body["name"] != name.as_str() {
            errors.push(format!("{path}: {status}, name {}", body["name"]));
        }

        let started = Instant::now();
        let (status, body) = daemon.get("/fleet/summary").await;
        summary.samples.push(started.elapsed());
        if status != 200 || body["n_hosts"] != n_hosts {
            errors.push(format!(
                "/fleet/summary: {status}, n_hosts {}",
                body["n_hosts"]
            ));
        }
        querying_max = querying_max.max(state_count(&body, "querying"));
        rss_max_kib = rss_max_kib.max(daemon.status_kib("VmRSS"));
    }
    let sampling = sampling_started.elapsed();
    let daemon_cpu = Duration::from_millis(cpu_ticks(daemon.pid).saturating_sub(cpu_before) * 10);
    let children_cpu =
        Duration::from_millis(children_cpu_ticks(daemon.pid).saturating_sub(children_before) * 10);
    let (_, last_summary) = daemon.get("/fleet/summary").await;
    let checks_during = settled(&last_summary).saturating_sub(settled_before);

    // Every host once, in name order, over all pages.
    let mut names = Vec::new();
    for page_no in 1..=n_pages {
        let (_, body) = daemon
            .get(&format!("/hosts?per_page=200&page={page_no}"))
            .await;
        names.extend(
            body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|host| host["name"].as_str().map(str::to_owned)),
        );
    }
    let expected: Vec<String> = (0..options.hosts).map(host_name).collect();
    if names != expected {
        errors.push(format!(
            "walking every page gave {} names, not the {} hosts in order",
            names.len(),
            options.hosts
        ));
    }
    PlaneReport {
        hwm_kib: daemon.status_kib("VmHWM"),
        options,
        load_before,
        load_after: loadavg(),
        until_health: daemon.until_health,
        until_listed,
        rss_listed_kib,
        rss_max_kib,
        latencies: vec![health, page, host, summary],
        checks_during,
        querying_max,
        sampling,
        daemon_cpu,
        children_cpu,
        errors,
    }
}

impl PlaneReport {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let o = &self.options;
        let _ = writeln!(
            out,
            "Control plane: {} hosts on loopback (closed port), check_on_start = {}, \
             max_parallel = {}, {} rounds. Load before: {}; after: {}.\n",
            o.hosts,
            o.check_on_start,
            o.max_parallel
                .map_or_else(|| "default".to_owned(), |n| n.to_string()),
            o.rounds,
            self.load_before,
            self.load_after
        );
        let _ = writeln!(out, "| measure | value |\n| --- | ---: |");
        let _ = writeln!(
            out,
            "| start until `/health` answers | {:.0} ms |",
            ms(self.until_health)
        );
        let _ = writeln!(
            out,
            "| start until `/hosts` lists every host | {:.0} ms |",
            ms(self.until_listed)
        );
        let _ = writeln!(
            out,
            "| RSS once listed | {:.1} MiB |",
            mib(self.rss_listed_kib)
        );
        let _ = writeln!(
            out,
            "| RSS, most while requests ran | {:.1} MiB |",
            mib(self.rss_max_kib)
        );
        let _ = writeln!(out, "| VmHWM at the end | {:.1} MiB |", mib(self.hwm_kib));
        let _ = writeln!(
            out,
            "| checks ended while requests ran | {} (up to {} hosts `querying` at once) |",
            self.checks_during, self.querying_max
        );
        let _ = writeln!(
            out,
            "| daemon CPU while requests ran | {:.0} ms in {:.0} ms ({:.0} % of one core) |",
            ms(self.daemon_cpu),
            ms(self.sampling),
            100.0 * self.daemon_cpu.as_secs_f64() / self.sampling.as_secs_f64().max(1e-9)
        );
        let _ = writeln!(
            out,
            "| CPU of the daemon's ended children (`ssh`) meanwhile | {:.0} ms ({:.0} % of one core) |\n",
            ms(self.children_cpu),
            100.0 * self.children_cpu.as_secs_f64() / self.sampling.as_secs_f64().max(1e-9)
        );
        let base = self.latencies[0]
            .percentile(99)
            .max(Duration::from_micros(1));
        let _ = writeln!(
            out,
            "| request | n | p50 | p99 | max | p99 / health p99 |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for latency in &self.latencies {
            let p99 = latency.percentile(99);
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} |",
                latency.request,
                latency.samples.len(),
                ms(latency.percentile(50)),
                ms(p99),
                ms(latency.max()),
                p99.as_secs_f64() / base.as_secs_f64()
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(
                out,
                "\n{} wrong answers; first: {}",
                self.errors.len(),
                self.errors[0]
            );
        }
        out
    }
}

/// How [`ws_fanout`] runs.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    pub binary: PathBuf,
    /// Hosts checked while the clients read.
    pub hosts: usize,
    pub clients: usize,
}

/// What one client received between `rollout_started` and `rollout_finished`.
#[derive(Debug, Default)]
struct Received {
    seqs: Vec<u64>,
    lagged: u64,
    started: bool,
    finished: bool,
    error: Option<String>,
}

/// What [`ws_fanout`] measured.
pub struct FanoutReport {
    pub options: FanoutOptions,
    pub load_before: String,
    pub load_after: String,
    pub rss_before_kib: u64,
    pub rss_idle_kib: u64,
    pub rss_check_max_kib: u64,
    pub check_time: Duration,
    /// Events of the rollout (`rollout_started` to `rollout_finished`, every seq between).
    pub events: u64,
    /// Over all clients: seqs missing from what they should have received.
    pub lost: u64,
    pub lagged: u64,
    /// Clients that saw the rollout start and finish.
    pub complete: usize,
    pub errors: Vec<String>,
}

impl FanoutReport {
    /// (RSS idle - RSS before) / clients, in KiB.
    pub fn per_client_kib(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let delta = self.rss_idle_kib.saturating_sub(self.rss_before_kib) as f64;
        #[allow(clippy::cast_precision_loss)]
        let clients = self.options.clients.max(1) as f64;
        delta / clients
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let o = &self.options;
        let _ = writeln!(
            out,
            "WebSocket fan-out: {} clients, a fleet check of {} loopback hosts. Load before: {}; \
             after: {}.\n",
            o.clients, o.hosts, self.load_before, self.load_after
        );
        let _ = writeln!(out, "| measure | value |\n| --- | ---: |");
        let _ = writeln!(
            out,
            "| RSS before the clients | {:.1} MiB |",
            mib(self.rss_before_kib)
        );
        let _ = writeln!(
            out,
            "| RSS, clients connected and idle | {:.1} MiB |",
            mib(self.rss_idle_kib)
        );
        let _ = writeln!(
            out,
            "| per idle client (RSS delta / clients) | {:.1} KiB |",
            self.per_client_kib()
        );
        let _ = writeln!(
            out,
            "| RSS, most during the check | {:.1} MiB |",
            mib(self.rss_check_max_kib)
        );
        let _ = writeln!(
            out,
            "| check, POST to every client's `rollout_finished` | {:.0} ms |",
            ms(self.check_time)
        );
        let _ = writeln!(out, "| events of the check, per client | {} |", self.events);
        let _ = writeln!(
            out,
            "| clients that saw it start and finish | {} of {} |",
            self.complete, o.clients
        );
        let _ = writeln!(out, "| events lost (all clients) | {} |", self.lost);
        let _ = writeln!(out, "| `lagged` messages | {} |", self.lagged);
        if !self.errors.is_empty() {
            let _ = writeln!(
                out,
                "\n{} errors; first: {}",
                self.errors.len(),
                self.errors[0]
            );
        }
        out
    }
}

/// Reads events until `rollout_finished` (or the deadline), noting seqs from
/// `rollout_started` on.
async fn read_client(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Received {
    let mut received = Received::default();
    let deadline = tokio::time::Instant::now() + WAIT_DEADLINE;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        let message = match next {
            Err(_) => {
                received.error = Some("no rollout_finished before the deadline".to_owned());
                break;
            }
            Ok(None) => {
                received.error = Some("the stream ended".to_owned());
                break;
            }
            Ok(Some(Err(err))) => {
                received.error = Some(format!("WebSocket error: {err}"));
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else {
            received.error = Some(format!("not JSON: {text}"));
            break;
        };
        match value["type"].as_str() {
            Some("lagged") => received.lagged += value["missed"].as_u64().unwrap_or(1),
            Some("rollout_started") => received.started = true,
            _ => {}
        }
        if received.started
            && let Some(seq) = value["seq"].as_u64()
        {
            received.seqs.push(seq);
        }
        if received.started && value["type"] == "rollout_finished" {
            received.finished = true;
            break;
        }
    }
    let _ = ws.close(None).await;
    received
}

/// Runs the WebSocket fan-out measurement (see the module docs).
pub async fn ws_fanout(options: FanoutOptions) -> FanoutReport {
    let load_before = loadavg();
    let daemon_extra = format!(
        "check_on_start = false\nmax_ws_clients = {}\n",
        options.clients + 8
    );
    let config = loopback_fleet(options.hosts, &daemon_extra, "check_interval = \"30d\"\n");
    let daemon = Daemon::start(&options.binary, &config).await;
    let url = format!("ws://{}/ws/events", daemon.addr);
    // Warm up: one client through a whole check, so lazily made state is not counted per
    // client.
    {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("warm-up WebSocket");
        let reader = tokio::spawn(read_client(ws));
        let (status, body) = daemon.post("/fleet/check", &serde_json::json!({})).await;
        assert_eq!(status, 202, "warm-up fleet check: {body}");
        let _ = reader.await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before_kib = daemon.status_kib("VmRSS");
    let mut readers = Vec::with_capacity(options.clients);
    let mut errors = Vec::new();
    for _ in 0..options.clients {
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Ok((ws, _)) => readers.push(tokio::spawn(read_client(ws))),
            Err(err) => errors.push(format!("connect: {err}")),
        }
    }
    // Idle: let the sessions settle (each has sent nothing yet).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_idle_kib = daemon.status_kib("VmRSS");

    let started = Instant::now();
    let (status, body) = daemon.post("/fleet/check", &serde_json::json!({})).await;
    assert_eq!(status, 202, "fleet check: {body}");
    let mut rss_check_max_kib = rss_idle_kib;
    let all = futures_util::future::join_all(readers);
    tokio::pin!(all);
    let results = loop {
        tokio::select! {
            results = &mut all => break results,
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                rss_check_max_kib = rss_check_max_kib.max(daemon.status_kib("VmRSS"));
            }
        }
    };
    let check_time = started.elapsed();
    rss_check_max_kib = rss_check_max_kib.max(daemon.status_kib("VmRSS"));

    let received: Vec<Received> = results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|err| Received {
                error: Some(format!("client task failed: {err}")),
                ..Received::default()
            })
        })
        .collect();
    // What every client should have: each seq from the first `rollout_started` to the last
    // `rollout_finished` any client saw.
    let first = received
        .iter()
        .filter_map(|r| r.seqs.first())
        .min()
        .copied();
    let last = received.iter().filter_map(|r| r.seqs.last()).max().copied();
    let events = match (first, last) {
        (Some(first), Some(last)) => last - first + 1,
        _ => 0,
    };
    let mut lost = 0;
    let mut lagged = 0;
    let mut complete = 0;
    for client in &received {
        lagged += client.lagged;
        if client.started && client.finished {
            complete += 1;
        }
        if let Some(error) = &client.error {
            errors.push(error.clone());
        }
        let mut distinct = client.seqs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() != client.seqs.len() {
            errors.push("a client received a seq twice".to_owned());
        }
        lost += events.saturating_sub(distinct.len() as u64);
    }
    if events == 0 {
        errors.push("no client saw the check's events".to_owned());
    }
    FanoutReport {
        load_after: loadavg(),
        options,
        load_before,
        rss_before_kib,
        rss_idle_kib,
        rss_check_max_kib,
        check_time,
        events,
        lost,
        lagged,
        complete,
        errors,
    }
}
