//! Benchmark: the daemon's responsiveness and memory while hostile hosts of the test fleet
//! answer its commands (every profile of `tendhost_tests::fleet::Hostile` at once, `copies`
//! hosts of each, beside 2 ordinary apt hosts). The daemon runs in this process
//! (`spawn_app`, release build); a prober asks `GET /health` every 20 ms and a sampler reads
//! this process's `VmRSS` every 100 ms, first while idle (the baseline), then during a fleet
//! check and a fleet update of every host. Prints Markdown for docs/benchmarks.md and the
//! targets (p99 <= 100 ms, RSS <= 256 MiB) next to the figures; it asserts only outcomes (the
//! ordinary hosts are checked and updated, the hostile ones fail). Skipped with
//! `TENDHOST_SKIP_FLEET=1`.
//!
//! Run: `cargo bench -p tendhost-tests --bench hostile_fleet` (optional argument: copies of
//! each profile, default 2).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, spawn_app};
use tendhost_tests::fleet::{Fleet, Hostile, Pkg, hostile_config};

const PROBE_EVERY: Duration = Duration::from_millis(20);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const IDLE_FOR: Duration = Duration::from_secs(10);
const P99_TARGET: Duration = Duration::from_millis(100);
const RSS_TARGET_MIB: f64 = 256.0;

fn main() {
    let copies = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .find_map(|arg| arg.parse::<usize>().ok())
        .unwrap_or(2)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(bench(copies));
}

/// What the prober and the sampler saw over one phase.
struct Phase {
    name: &'static str,
    latencies: Vec<Duration>,
    failures: usize,
    max_rss_kib: u64,
}

/// Probes `/health` and samples RSS until `done` is set.
async fn watch(app: &TestApp, name: &'static str, done: Arc<AtomicBool>) -> Phase {
    let client = tendhost_tests::wait::http_client();
    let url = app.url("/health");
    let sampler_done = Arc::clone(&done);
    let sampler = tokio::spawn(async move {
        let mut max = rss_kib();
        while !sampler_done.load(Ordering::Relaxed) {
            tokio::time::sleep(SAMPLE_EVERY).await;
            max = max.max(rss_kib());
        }
        max
    });
    let mut latencies = Vec::new();
    let mut failures = 0;
    while !done.load(Ordering::Relaxed) {
        let started = Instant::now();
        match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => latencies.push(started.elapsed()),
            _ => failures += 1,
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
    Phase {
        name,
        latencies,
        failures,
        max_rss_kib: sampler.await.expect("sampler"),
    }
}

async fn bench(copies: usize) {
    let load_before = uptime();
    let mut builder = Fleet::builder()
        .apt(2)
        .install(Pkg::new("th-hostile", "1.0"));
    for _ in 0..copies {
        for profile in Hostile::ALL {
            builder = builder.hostile(profile);
        }
    }
    let Some(fleet) = builder.start().await else {
        return;
    };
    fleet.publish(&Pkg::new("th-hostile", "1.1")).await;
    let app = spawn_app(&hostile_config(&fleet, "warn")).await;
    let n_hostile = fleet.hostile_hosts().count();
    let rss_start = rss_kib();

    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let idle = tokio::join!(
        watch(&app, "idle (baseline)", Arc::clone(&done)),
        async move {
            tokio::time::sleep(IDLE_FOR).await;
            stop.store(true, Ordering::Relaxed);
        }
    )
    .0;

    let mut phases = vec![idle];
    let mut walls = Vec::new();
    for (name, path, body) in [
        ("fleet check", "/fleet/check", json!({})),
        (
            "fleet update",
            "/fleet/update",
            json!({"batch_size": 1 + n_hostile, "max_failures": "100%"}),
        ),
    ] {
        let done = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let (phase, rollout) = tokio::join!(watch(&app, name, Arc::clone(&done)), async {
            let rollout = run_rollout(&app, path, body).await;
            done.store(true, Ordering::Relaxed);
            rollout
        });
        walls.push((name, started.elapsed()));
        expect_outcomes(&fleet, &rollout, path);
        phases.push(phase);
    }
    let load_after = uptime();
    for host in fleet.apt_hosts() {
        let version = host
            .exec_ok(&["dpkg-query", "-W", "-f=${Version}", "th-hostile"])
            .await;
        assert_eq!(version, "1.1", "{} after the update", host.name());
    }

    println!(
        "{n_hostile} hostile hosts ({copies} of each of {} profiles) + 2 ordinary apt hosts; \
         /health every {} ms, RSS every {} ms",
        Hostile::ALL.len(),
        PROBE_EVERY.as_millis(),
        SAMPLE_EVERY.as_millis()
    );
    println!("load before: {load_before}; after: {load_after}");
    println!(
        "RSS after start, before any check: {:.1} MiB",
        mib(rss_start)
    );
    for (name, wall) in &walls {
        println!("{name}: {:.1} s", wall.as_secs_f64());
    }
    println!();
    println!("| phase | probes | failed | p50 | p99 | max | p99 / idle p99 | max RSS |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let idle_p99 = percentile(&phases[0].latencies, 99.0);
    for phase in &phases {
        let p99 = percentile(&phase.latencies, 99.0);
        println!(
            "| {} | {} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} | {:.1} MiB |",
            phase.name,
            phase.latencies.len(),
            phase.failures,
            ms(percentile(&phase.latencies, 50.0)),
            ms(p99),
            ms(phase.latencies.iter().max().copied().unwrap_or_default()),
            p99.as_secs_f64() / idle_p99.as_secs_f64().max(1e-9),
            mib(phase.max_rss_kib),
        );
    }
    let worst_p99 = phases
        .iter()
        .map(|p| percentile(&p.latencies, 99.0))
        .max()
        .unwrap_or_default();
    let worst_rss = phases.iter().map(|p| p.max_rss_kib).max().unwrap_or(0);
    println!();
    println!(
        "targets: /health p99 <= {} ms: {} ({:.1} ms); RSS <= {RSS_TARGET_MIB} MiB: {} ({:.1} MiB)",
        P99_TARGET.as_millis(),
        if worst_p99 <= P99_TARGET {
            "met"
        } else {
            "NOT met"
        },
        ms(worst_p99),
        if mib(worst_rss) <= RSS_TARGET_MIB {
            "met"
        } else {
            "NOT met"
        },
        mib(worst_rss),
    );
    app.stop().await.expect("daemon stops cleanly");
}

/// POSTs a fleet operation and polls it to its end (at most 10 minutes).
async fn run_rollout(app: &TestApp, path: &str, body: Value) -> Value {
    let response = app
        .client
        .post(app.url(path))
        .json(&body)
        .send()
        .await
        .expect("POST reaches the daemon");
    assert_eq!(response.status().as_u16(), 202, "POST {path}");
    let answer: Value = response.json().await.expect("JSON answer");
    let id = answer["rollout_id"]
        .as_str()
        .expect("rollout_id")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let rollout: Value = app
            .client
            .get(app.url(&format!("/rollouts/{id}")))
            .send()
            .await
            .expect("GET reaches the daemon")
            .json()
            .await
            .expect("JSON answer");
        if rollout["state"] != "running" {
            return rollout;
        }
        assert!(
            Instant::now() < deadline,
            "rollout {id} did not end: {rollout:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ordinary hosts succeeded, hostile ones did not.
fn expect_outcomes(fleet: &Fleet, rollout: &Value, path: &str) {
    assert_eq!(rollout["state"], "completed", "{path}: {rollout:#}");
    for entry in rollout["hosts"].as_array().expect("hosts") {
        let host = fleet.host(entry["host"].as_str().expect("host"));
        let succeeded = entry["state"] == "succeeded";
        assert_eq!(succeeded, host.hostile().is_none(), "{path}: {entry:#}");
    }
}

fn percentile(latencies: &[Duration], pct: f64) -> Duration {
    if latencies.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = latencies.to_vec();
    sorted.sort();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let idx = ((pct / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[allow(clippy::cast_precision_loss)]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
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
