//! The fleet bench's body (`tests/benches/fleet_throughput.rs` prints it; the CI smoke
//! `tests/it/smoke_fleet_bench.rs` runs it tiny): the daemon managing apt hosts of the Docker
//! test fleet, driven as a user drives it (real HTTP `POST /fleet/check`, `POST
//! /fleet/update`, `GET /rollouts/{id}` and a real WebSocket for `rollout_finished` on the
//! daemon started in-process), and in the same run, on the same hosts, the two baselines:
//!
//! - **raw OpenSSH**: one `ssh` per host, all in parallel, over ControlMaster sockets opened
//!   before anything is timed (`ControlMaster=yes`, `ControlPersist`), running the same apt
//!   commands by hand;
//! - **Ansible** (`ansible-core` from PyPI in its own virtual environment, installed when
//!   missing): ad-hoc runs with `forks` = hosts, pipelining on, its own ControlPersist
//!   sockets warmed by a `ping` first; the `shell` module for the check, the `apt` module for
//!   the upgrade. The hosts then run the bench image (python3 and python3-apt).
//!
//! Every upgrade is verified out of band (`docker exec ... dpkg-query`): a host without the
//! new versions panics the run. Interleaved rounds (tendhost, raw, Ansible, again) keep the
//! machine's noise comparable between the three.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::daemon::{TestApp, spawn_app};
use crate::fleet::{Fleet, Pkg};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Installed at 1.0 on every host; each refresh-and-upgrade run publishes and installs the
/// next `1.N`.
pub const PACKAGES: [&str; 2] = ["th-bench-a", "th-bench-b"];
/// A rollout or baseline run that takes longer than this is a broken run, not a figure.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Where the bench keeps its Ansible (created when missing, reused afterwards).
pub const ANSIBLE_VENV: &str = "/var/tmp/tendhost-ansible-venv";

/// The check every contender runs: refresh the lists, simulate the upgrade.
pub const CHECK_COMMAND: &str = "apt-get -q update && LC_ALL=C apt-get -s dist-upgrade";
/// The refresh and upgrade the baselines run.
pub const UPGRADE_COMMAND: &str =
    "apt-get -q update && DEBIAN_FRONTEND=noninteractive apt-get -y -q dist-upgrade";

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetBench {
    pub hosts: usize,
    /// Warm fleet checks per contender.
    pub check_rounds: usize,
    /// Refresh-and-upgrade runs per contender.
    pub update_rounds: usize,
    /// Run the Ansible baseline (installs ansible-core when missing; the hosts run the bench
    /// image with python3).
    pub ansible: bool,
}

impl Default for FleetBench {
    fn default() -> Self {
        Self {
            hosts: 20,
            check_rounds: 5,
            update_rounds: 3,
            ansible: true,
        }
    }
}

/// One timed rollout: POST to `rollout_finished` on the WebSocket, and the per-host job
/// durations the daemon recorded (`started_at` to `finished_at`).
#[derive(Debug, Clone)]
pub struct Timed {
    pub wall: Duration,
    pub accepted: Duration,
    pub jobs: Vec<Duration>,
    pub cpu: CpuSpent,
}

/// A baseline run: its wall time and the CPU it cost.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub wall: Duration,
    pub cpu: CpuSpent,
}

/// CPU time spent during one run: by this process (the daemon runs in it; the bench's own
/// HTTP client is a small share), by its reaped children (the `ssh` mux clients the daemon or
/// the raw baseline spawn per command, Ansible's processes), and by all fleet hosts
/// together (their containers' cgroup CPU accounting: sshd, shells, apt, dpkg).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSpent {
    pub process: Duration,
    pub children: Duration,
    pub hosts: Duration,
}

/// What a run measured. Every upgrade it counts was verified on the host.
#[derive(Debug, Clone)]
pub struct FleetBenchReport {
    pub hosts: usize,
    pub load_start: String,
    pub load_end: String,
    pub tendhost_cold: Timed,
    pub tendhost_checks: Vec<Timed>,
    pub raw_checks: Vec<Run>,
    pub ansible_checks: Vec<Run>,
    /// tendhost's check after a publish, and the update after it.
    pub tendhost_refresh: Vec<Timed>,
    pub tendhost_updates: Vec<Timed>,
    pub raw_upgrades: Vec<Run>,
    pub ansible_upgrades: Vec<Run>,
    /// Host upgrades verified out of band (hosts x upgrade runs of all contenders).
    pub verified_upgrades: usize,
    pub memory: Vec<(&'static str, Memory)>,
}

/// Runs the bench; `None` when fleet tests are skipped (`TENDHOST_SKIP_FLEET=1`).
///
/// # Panics
/// When the fleet, a baseline or the daemon fails: a rollout that does not complete on every
/// host, a baseline command that fails on a host, a host without the new versions after an
/// upgrade.
pub async fn run(bench: &FleetBench) -> Option<FleetBenchReport> {
    let load_start = load();
    let mut builder = Fleet::builder().apt(bench.hosts);
    if bench.ansible {
        builder = builder.python();
    }
    for name in PACKAGES {
        builder = builder.install(Pkg::new(name, "1.0"));
    }
    let fleet = builder.start().await?;
    let mut memory = vec![("fleet started, no daemon yet", Memory::read(None))];
    let app = spawn_app(&config_for(&fleet)).await;
    let control_dir = app.dir.path().join("data/ssh/c").display().to_string();
    let control_dir = Some(control_dir.as_str());
    memory.push((
        "daemon started (hosts configured, none contacted)",
        Memory::read(control_dir),
    ));
    let meter = CpuMeter::new(&fleet).await;
    let raw = RawSsh::open(&fleet).await;
    let ansible = if bench.ansible {
        Some(Ansible::prepare(&fleet).await)
    } else {
        None
    };

    let tendhost_cold = rollout(&app, &meter, bench.hosts, "/fleet/check", json!({})).await;
    memory.push((
        "after the cold check (SSH masters open)",
        Memory::read(control_dir),
    ));
    let mut report = FleetBenchReport {
        hosts: bench.hosts,
        load_start,
        load_end: String::new(),
        tendhost_cold,
        tendhost_checks: Vec::new(),
        raw_checks: Vec::new(),
        ansible_checks: Vec::new(),
        tendhost_refresh: Vec::new(),
        tendhost_updates: Vec::new(),
        raw_upgrades: Vec::new(),
        ansible_upgrades: Vec::new(),
        verified_upgrades: 0,
        memory: Vec::new(),
    };
    for _ in 0..bench.check_rounds.max(1) {
        let check = fleet_check(&app, &meter, bench.hosts).await;
        report.tendhost_checks.push(check);
        report
            .raw_checks
            .push(meter.run(raw.run_all(CHECK_COMMAND)).await);
        if let Some(ansible) = &ansible {
            let args = ["-m", "shell", "-a", CHECK_COMMAND];
            report
                .ansible_checks
                .push(meter.run(ansible.run(&args)).await);
        }
    }

    let mut published = 0;
    for _ in 0..bench.update_rounds.max(1) {
        let version = publish_next(&fleet, &mut published).await;
        let check = fleet_check(&app, &meter, bench.hosts).await;
        expect_pending(&app, &fleet).await;
        let body = json!({"batch_size": bench.hosts, "max_failures": 0});
        let update = rollout(&app, &meter, bench.hosts, "/fleet/update", body).await;
        report.verified_upgrades += expect_versions(&fleet, &version).await;
        report.tendhost_refresh.push(check);
        report.tendhost_updates.push(update);

        let version = publish_next(&fleet, &mut published).await;
        report
            .raw_upgrades
            .push(meter.run(raw.run_all(UPGRADE_COMMAND)).await);
        report.verified_upgrades += expect_versions(&fleet, &version).await;

        if let Some(ansible) = &ansible {
            let version = publish_next(&fleet, &mut published).await;
            let args = ["-m", "apt", "-a", "update_cache=yes upgrade=dist"];
            report
                .ansible_upgrades
                .push(meter.run(ansible.run(&args)).await);
            report.verified_upgrades += expect_versions(&fleet, &version).await;
        }
    }
    memory.push(("after all rounds", Memory::read(control_dir)));
    report.memory = memory;
    report.load_end = load();
    raw.close().await;
    app.stop().await.expect("daemon stops cleanly");
    Some(report)
}

/// Publishes version `1.N` (the next `N`) of both [`PACKAGES`]; returns it.
async fn publish_next(fleet: &Fleet, published: &mut u32) -> String {
    *published += 1;
    let version = format!("1.{published}");
    let pkgs: Vec<Pkg> = PACKAGES.iter().map(|n| Pkg::new(*n, &version)).collect();
    fleet.publish_all(&pkgs).await;
    version
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
/// that all `n_hosts` hosts succeeded. The WebSocket is opened just before, as the baselines
/// between rollouts leave it unread long enough for the daemon to drop it.
async fn rollout(
    app: &TestApp,
    meter: &CpuMeter,
    n_hosts: usize,
    path: &str,
    body: Value,
) -> Timed {
    let mut ws = ws_connect(app).await;
    let cpu_before = meter.read();
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
    let finished = wait_finished(&mut ws, &id).await;
    let wall = started.elapsed();
    let cpu = meter.read().since(&cpu_before);
    assert_eq!(finished["state"], "completed", "rollout {id}: {finished}");

    let rollout = get(app, &format!("/rollouts/{id}")).await;
    assert_eq!(
        rollout["counts"]["succeeded"].as_u64(),
        Some(n_hosts as u64),
        "every host succeeds: {rollout:#}"
    );
    let mut jobs = Vec::with_capacity(n_hosts);
    for host in rollout["hosts"].as_array().expect("hosts") {
        let job_id = host["job_id"].as_str().expect("job_id");
        let job = get(app, &format!("/jobs/{job_id}")).await;
        jobs.push(span(&job["started_at"], &job["finished_at"]));
    }
    Timed {
        wall,
        accepted,
        jobs,
        cpu,
    }
}

/// Reads the CPU time of this process, its reaped children and the fleet's containers.
struct CpuMeter {
    /// Each host's cgroup CPU usage file and how to read it.
    hosts: Vec<(PathBuf, CgroupFile)>,
}

#[derive(Debug, Clone, Copy)]
enum CgroupFile {
    /// cgroup v1 `cpuacct.usage`: nanoseconds.
    UsageNs,
    /// cgroup v2 `cpu.stat`: a `usage_usec` line.
    StatUsec,
}

/// A reading of [`CpuMeter`], all in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct CpuReading {
    process: u64,
    children: u64,
    hosts: u64,
}

impl CpuReading {
    fn since(&self, before: &CpuReading) -> CpuSpent {
        let ns = |now: u64, then: u64| Duration::from_nanos(now.saturating_sub(then));
        CpuSpent {
            process: ns(self.process, before.process),
            children: ns(self.children, before.children),
            hosts: ns(self.hosts, before.hosts),
        }
    }
}

impl CpuMeter {
    async fn new(fleet: &Fleet) -> CpuMeter {
        let mut hosts = Vec::new();
        for host in fleet.hosts() {
            let output = run_ok(
                "docker inspect",
                Command::new("docker").args(["inspect", "-f", "{{.Id}}", host.name()]),
            )
            .await;
            let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            let v1 = PathBuf::from(format!("/sys/fs/cgroup/cpuacct/docker/{id}/cpuacct.usage"));
            let v2 = PathBuf::from(format!(
                "/sys/fs/cgroup/system.slice/docker-{id}.scope/cpu.stat"
            ));
            if v1.exists() {
                hosts.push((v1, CgroupFile::UsageNs));
            } else if v2.exists() {
                hosts.push((v2, CgroupFile::StatUsec));
            }
        }
        CpuMeter { hosts }
    }

    fn read(&self) -> CpuReading {
        // utime, stime, cutime, cstime: fields 14-17 of /proc/self/stat, in USER_HZ (100 on
        // Linux), after the command name in parentheses.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default()
            .split_whitespace()
            .skip(11)
            .take(4)
            .map(|field| field.parse().unwrap_or(0))
            .collect();
        let tick = |idx: usize| fields.get(idx).copied().unwrap_or(0) * 10_000_000;
        let hosts = self
            .hosts
            .iter()
            .map(|(path, kind)| {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                match kind {
                    CgroupFile::UsageNs => text.trim().parse().unwrap_or(0),
                    CgroupFile::StatUsec => text
                        .lines()
                        .find_map(|line| line.strip_prefix("usage_usec "))
                        .and_then(|usec| usec.trim().parse::<u64>().ok())
                        .map_or(0, |usec| usec * 1000),
                }
            })
            .sum();
        CpuReading {
            process: tick(0) + tick(1),
            children: tick(2) + tick(3),
            hosts,
        }
    }

    /// Runs a baseline, metered.
    async fn run(&self, work: impl std::future::Future<Output = Duration>) -> Run {
        let before = self.read();
        let wall = work.await;
        Run {
            wall,
            cpu: self.read().since(&before),
        }
    }
}

async fn fleet_check(app: &TestApp, meter: &CpuMeter, n_hosts: usize) -> Timed {
    rollout(app, meter, n_hosts, "/fleet/check", json!({})).await
}

async fn wait_finished(ws: &mut Ws, rollout_id: &str) -> Value {
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| late(rollout_id));
        let message = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| late(rollout_id))
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

fn late<T>(rollout_id: &str) -> T {
    panic!("rollout {rollout_id} did not finish in {RUN_TIMEOUT:?}")
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

/// Out of band (`docker exec`): every host has `version` of both packages. Returns the
/// number of hosts verified.
async fn expect_versions(fleet: &Fleet, version: &str) -> usize {
    for host in fleet.hosts() {
        for package in PACKAGES {
            let installed = host
                .exec_ok(&["dpkg-query", "-W", "-f=${Version}", package])
                .await;
            assert_eq!(
                installed,
                version,
                "{package} on {} after the upgrade",
                host.name()
            );
        }
    }
    fleet.hosts().len()
}

/// Runs `command` to its end within [`RUN_TIMEOUT`]; panics unless it exits 0.
async fn run_ok(what: &str, command: &mut Command) -> std::process::Output {
    let output = tokio::time::timeout(
        RUN_TIMEOUT,
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{what}: still running after {RUN_TIMEOUT:?}"))
    .unwrap_or_else(|err| panic!("{what}: cannot run: {err}"));
    assert!(
        output.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The raw OpenSSH baseline: one ControlMaster per host, opened before anything is timed.
struct RawSsh {
    dir: TempDir,
    targets: Vec<String>,
    key: PathBuf,
}

impl RawSsh {
    async fn open(fleet: &Fleet) -> RawSsh {
        let dir = tempfile::Builder::new()
            .prefix("th-raw")
            .tempdir_in("/tmp")
            .expect("temp dir for control sockets");
        std::fs::write(dir.path().join("known_hosts"), fleet.known_hosts().await)
            .expect("write known_hosts");
        let raw = RawSsh {
            targets: fleet
                .hosts()
                .iter()
                .map(|host| format!("root@{}", host.addr()))
                .collect(),
            key: fleet.ssh_key().to_owned(),
            dir,
        };
        let mut opening = tokio::task::JoinSet::new();
        for target in &raw.targets {
            let mut command = raw.ssh(&["-o", "ControlMaster=yes", "-o", "ControlPersist=900"]);
            command.args(["-N", "-f", target]);
            let what = format!("opening the ControlMaster to {target}");
            opening.spawn(async move { run_ok(&what, &mut command).await });
        }
        opening.join_all().await;
        raw
    }

    /// `ssh` with the key, the fleet's host keys and this bench's control sockets.
    fn ssh(&self, extra: &[&str]) -> Command {
        let mut command = Command::new("ssh");
        command
            .arg("-i")
            .arg(&self.key)
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                self.dir.path().join("known_hosts").display()
            ))
            .arg("-o")
            .arg(format!("ControlPath={}/%C", self.dir.path().display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(extra);
        command
    }

    /// Runs `script` on every host at once over the masters; the time until the last ends.
    async fn run_all(&self, script: &str) -> Duration {
        let started = Instant::now();
        let mut runs = tokio::task::JoinSet::new();
        for target in &self.targets {
            let mut command = self.ssh(&["-o", "ControlMaster=no"]);
            command.args([target.as_str(), script]);
            let what = format!("raw ssh {target} {script:?}");
            runs.spawn(async move { run_ok(&what, &mut command).await });
        }
        runs.join_all().await;
        started.elapsed()
    }

    async fn close(&self) {
        for target in &self.targets {
            let mut command = self.ssh(&["-O", "exit"]);
            command.arg(target);
            let _ = command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        }
    }
}

/// The Ansible baseline: an inventory of the fleet, a config with forks = hosts and
/// pipelining, and warm ControlPersist sockets (a `ping` before anything is timed).
struct Ansible {
    dir: TempDir,
    bin: PathBuf,
}

impl Ansible {
    async fn prepare(fleet: &Fleet) -> Ansible {
        let bin = ensure_ansible().await;
        let dir = tempfile::Builder::new()
            .prefix("th-ans")
            .tempdir_in("/tmp")
            .expect("temp dir for ansible");
        let path = dir.path();
        std::fs::write(path.join("known_hosts"), fleet.known_hosts().await)
            .expect("write known_hosts");
        let mut inventory = String::from("[fleet]\n");
        for (idx, host) in fleet.hosts().iter().enumerate() {
            inventory.push_str(&format!(
                "h{idx} ansible_host={} ansible_user=root ansible_ssh_private_key_file={}\n",
                host.addr(),
                fleet.ssh_key().display()
            ));
        }
        std::fs::write(path.join("hosts"), inventory).expect("write inventory");
        std::fs::create_dir(path.join("cp")).expect("control path dir");
        std::fs::write(
            path.join("ansible.cfg"),
            format!(
                "[defaults]\ninventory = {dir}/hosts\nforks = {forks}\ngathering = explicit\n\
                 interpreter_python = /usr/bin/python3\nlocal_tmp = {dir}/tmp\n\
                 host_key_checking = True\n\n\
                 [ssh_connection]\npipelining = True\ncontrol_path_dir = {dir}/cp\n\
                 ssh_args = -o ControlMaster=auto -o ControlPersist=900s \
                 -o UserKnownHostsFile={dir}/known_hosts -o BatchMode=yes\n",
                dir = path.display(),
                forks = fleet.hosts().len(),
            ),
        )
        .expect("write ansible.cfg");
        let ansible = Ansible { dir, bin };
        ansible.run(&["-m", "ping"]).await;
        ansible
    }

    /// One ad-hoc run over the whole fleet; its wall time.
    async fn run(&self, args: &[&str]) -> Duration {
        let mut command = Command::new(self.bin.join("ansible"));
        command
            .arg("fleet")
            .args(args)
            .env("ANSIBLE_CONFIG", self.dir.path().join("ansible.cfg"))
            .env("ANSIBLE_HOME", self.dir.path().join("home"))
            .current_dir(self.dir.path());
        let started = Instant::now();
        run_ok(&format!("ansible {args:?}"), &mut command).await;
        started.elapsed()
    }
}

/// The `bin` directory of [`ANSIBLE_VENV`], with ansible-core installed from PyPI when it is
/// missing.
async fn ensure_ansible() -> PathBuf {
    let venv = Path::new(ANSIBLE_VENV);
    let bin = venv.join("bin");
    if bin.join("ansible").exists() {
        return bin;
    }
    run_ok(
        "python3 -m venv",
        Command::new("python3").args(["-m", "venv"]).arg(venv),
    )
    .await;
    run_ok(
        "pip install ansible-core",
        Command::new(bin.join("pip")).args(["install", "-q", "ansible-core"]),
    )
    .await;
    bin
}

impl FleetBenchReport {
    /// The figures as Markdown (for docs/benchmarks.md).
    pub fn markdown(&self) -> String {
        let n = self.hosts;
        let mut out = format!(
            "load at start: {}; at end: {}\n\n",
            self.load_start, self.load_end
        );
        let sums: Vec<Duration> = self
            .tendhost_refresh
            .iter()
            .zip(&self.tendhost_updates)
            .map(|(check, update)| check.wall + update.wall)
            .collect();
        let checks: Vec<Duration> = self.tendhost_checks.iter().map(|t| t.wall).collect();
        let walls = |runs: &[Run]| -> Vec<Duration> { runs.iter().map(|run| run.wall).collect() };
        out.push_str(&format!(
            "| work ({n} hosts, medians) | raw OpenSSH, warm mux | Ansible | tendhost | tendhost / raw | Ansible / raw |\n\
             | --- | --- | --- | --- | --- | --- |\n"
        ));
        for (work, raw, ansible, tendhost) in [
            (
                "fleet check: `apt-get update` + simulate",
                walls(&self.raw_checks),
                walls(&self.ansible_checks),
                &checks,
            ),
            (
                "refresh + upgrade 2 packages (tendhost: check, then update)",
                walls(&self.raw_upgrades),
                walls(&self.ansible_upgrades),
                &sums,
            ),
        ] {
            let raw = median(&raw);
            let ansible = median(&ansible);
            let tendhost = median(tendhost);
            out.push_str(&format!(
                "| {work} | {} | {} | {} | **{}** | {} |\n",
                opt_secs(raw),
                opt_secs(ansible),
                opt_secs(tendhost),
                ratio(tendhost, raw),
                ratio(ansible, raw),
            ));
        }
        out.push('\n');
        out.push_str(&format!(
            "| case ({n} hosts) | runs | median | min | max | per-host job median / max | POST answered in |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n"
        ));
        out.push_str(&row(
            "fleet check, cold (new SSH masters)",
            std::slice::from_ref(&self.tendhost_cold),
        ));
        out.push_str(&row(
            "fleet check, warm (masters reused)",
            &self.tendhost_checks,
        ));
        out.push_str(&row(
            "fleet check after publishing 2 new versions",
            &self.tendhost_refresh,
        ));
        out.push_str(&row(
            &format!("fleet update of 2 packages, batch_size {n}"),
            &self.tendhost_updates,
        ));
        out.push_str(&plain_row("raw OpenSSH check", &self.raw_checks));
        out.push_str(&plain_row(
            "raw OpenSSH refresh + upgrade",
            &self.raw_upgrades,
        ));
        out.push_str(&plain_row("Ansible `shell` check", &self.ansible_checks));
        out.push_str(&plain_row(
            "Ansible `apt` refresh + upgrade",
            &self.ansible_upgrades,
        ));
        out.push('\n');
        out.push_str(&format!(
            "| CPU per run, medians ({n} hosts) | this process (daemon) | its children (ssh clients, ansible) | all hosts | per host |\n\
             | --- | --- | --- | --- | --- |\n"
        ));
        let timed_cpu = |runs: &[Timed]| -> Vec<CpuSpent> { runs.iter().map(|t| t.cpu).collect() };
        let run_cpu = |runs: &[Run]| -> Vec<CpuSpent> { runs.iter().map(|r| r.cpu).collect() };
        for (name, cpu) in [
            (
                "tendhost fleet check, warm",
                timed_cpu(&self.tendhost_checks),
            ),
            (
                "tendhost check after a publish",
                timed_cpu(&self.tendhost_refresh),
            ),
            ("tendhost update", timed_cpu(&self.tendhost_updates)),
            ("raw OpenSSH check", run_cpu(&self.raw_checks)),
            ("raw OpenSSH refresh + upgrade", run_cpu(&self.raw_upgrades)),
            ("Ansible check", run_cpu(&self.ansible_checks)),
            ("Ansible refresh + upgrade", run_cpu(&self.ansible_upgrades)),
        ] {
            out.push_str(&cpu_row(name, &cpu, n));
        }
        out.push('\n');
        out.push_str(
            "| moment | bench process VmRSS (daemon in-process) | VmHWM | ssh masters (child processes) |\n\
             | --- | --- | --- | --- |\n",
        );
        for (moment, m) in &self.memory {
            out.push_str(&format!(
                "| {moment} | {} | {} | {} processes, {} |\n",
                mib(m.rss_kib),
                mib(m.hwm_kib),
                m.ssh_count,
                mib(m.ssh_rss_kib)
            ));
        }
        out
    }
}

fn row(name: &str, runs: &[Timed]) -> String {
    let walls: Vec<Duration> = runs.iter().map(|run| run.wall).collect();
    let (walls, jobs, accepted) = (
        sorted(walls),
        sorted(runs.iter().flat_map(|run| run.jobs.clone()).collect()),
        sorted(runs.iter().map(|run| run.accepted).collect()),
    );
    let (Some(first), Some(last)) = (walls.first(), walls.last()) else {
        return String::new();
    };
    format!(
        "| {name} | {} | {} | {} | {} | {} / {} | {:.1} ms |\n",
        walls.len(),
        opt_secs(median(&walls)),
        secs(*first),
        secs(*last),
        opt_secs(median(&jobs)),
        opt_secs(jobs.last().copied()),
        median(&accepted).unwrap_or_default().as_secs_f64() * 1000.0,
    )
}

fn cpu_row(name: &str, cpu: &[CpuSpent], n_hosts: usize) -> String {
    let pick = |f: fn(&CpuSpent) -> Duration| median(&cpu.iter().map(f).collect::<Vec<_>>());
    let (Some(process), Some(children), Some(hosts)) =
        (pick(|c| c.process), pick(|c| c.children), pick(|c| c.hosts))
    else {
        return String::new();
    };
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let per_host = hosts / u32::try_from(n_hosts.max(1)).unwrap_or(u32::MAX);
    format!(
        "| {name} | {} | {} | {} | {:.1} ms |\n",
        ms(process),
        ms(children),
        ms(hosts),
        per_host.as_secs_f64() * 1000.0
    )
}

fn plain_row(name: &str, runs: &[Run]) -> String {
    let runs = sorted(runs.iter().map(|run| run.wall).collect());
    let (Some(first), Some(last)) = (runs.first(), runs.last()) else {
        return String::new();
    };
    format!(
        "| {name} | {} | {} | {} | {} | | |\n",
        runs.len(),
        opt_secs(median(&runs)),
        secs(*first),
        secs(*last)
    )
}

fn sorted(mut samples: Vec<Duration>) -> Vec<Duration> {
    samples.sort_unstable();
    samples
}

/// Median of the samples (the lower middle for an even count); `None` when there are none.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    let samples = sorted(samples.to_vec());
    samples.get(samples.len().checked_sub(1)? / 2).copied()
}

fn ratio(value: Option<Duration>, base: Option<Duration>) -> String {
    match (value, base) {
        (Some(value), Some(base)) if !base.is_zero() => {
            format!("{:.2}x", value.as_secs_f64() / base.as_secs_f64())
        }
        _ => "-".to_owned(),
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn opt_secs(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_owned(), secs)
}

fn mib(kib: u64) -> String {
    let kib = f64::from(u32::try_from(kib).unwrap_or(u32::MAX));
    format!("{:.1} MiB", kib / 1024.0)
}

fn load() -> String {
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
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub ssh_count: usize,
    pub ssh_rss_kib: u64,
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
