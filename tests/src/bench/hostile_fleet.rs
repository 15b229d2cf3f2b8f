//! The `hostile_fleet` bench's core: the daemon's responsiveness and memory while hostile
//! hosts of the test fleet answer its commands (`copies` hosts of each given profile of
//! `crate::fleet::Hostile`, beside ordinary apt hosts). The daemon runs in this process
//! (`spawn_app`); a prober asks `GET /health` every 20 ms and a sampler reads this process's
//! `VmRSS` every 100 ms, first while idle (the baseline), then during a fleet check and a fleet
//! update of every host. Prints Markdown for docs/benchmarks.md and the targets (p99 <= 100 ms,
//! RSS <= 256 MiB) next to the figures. It checks outcomes only (the ordinary hosts are
//! checked and updated, the hostile ones fail) and returns them ([`Outcome`]). Every call to
//! the daemon goes through the typed client. `None` without the fleet (`TENDHOST_SKIP_FLEET=1`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tendhost_api::rollouts::{
    FleetCheckRequest, FleetUpdateRequest, Rollout, RolloutHostState, RolloutState,
};
use tendhost_client::Client;

use crate::bench::{loadavg, rss_kib};
use crate::daemon::spawn_app;
use crate::fleet::{Fleet, Hostile, Pkg, hostile_config};
use crate::http::api;

const PROBE_EVERY: Duration = Duration::from_millis(20);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const P99_TARGET: Duration = Duration::from_millis(100);
const RSS_TARGET_MIB: f64 = 256.0;
/// How long one fleet operation may run before the bench gives up on it.
const ROLLOUT_DEADLINE: Duration = Duration::from_secs(600);

/// Which hosts the bench runs against, and how long it watches the idle daemon.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Hosts of each profile.
    pub copies: usize,
    pub profiles: Vec<Hostile>,
    /// Ordinary apt hosts beside them.
    pub n_ordinary: usize,
    pub idle_for: Duration,
}

impl Sizes {
    /// What `cargo bench` runs: `copies` of every profile, 2 ordinary hosts, 10 s idle.
    pub fn full(copies: usize) -> Sizes {
        Sizes {
            copies: copies.max(1),
            profiles: Hostile::ALL.to_vec(),
            n_ordinary: 2,
            idle_for: Duration::from_secs(10),
        }
    }
}

/// What the prober saw over one phase (counts only; the timings are printed).
#[derive(Debug)]
pub struct PhaseCounts {
    pub name: &'static str,
    pub probes: usize,
    pub failures: usize,
}

/// What one run did.
#[derive(Debug)]
pub struct Outcome {
    /// Idle, fleet check, fleet update.
    pub phases: Vec<PhaseCounts>,
    pub check: Rollout,
    pub update: Rollout,
    /// `th-hostile`'s installed version on each ordinary host after the update.
    pub versions: Vec<(String, String)>,
}

/// What the prober and the sampler saw over one phase.
struct Phase {
    name: &'static str,
    latencies: Vec<Duration>,
    failures: usize,
    max_rss_kib: u64,
}

/// Probes `/health` and samples RSS until `done` is set.
async fn watch(client: &Client, name: &'static str, done: Arc<AtomicBool>) -> Phase {
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
        match client.health().await {
            Ok(_) => latencies.push(started.elapsed()),
            Err(_) => failures += 1,
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

/// A fleet operation the bench times.
enum FleetOp {
    Check,
    Update(Box<FleetUpdateRequest>),
}

/// Runs the bench at `sizes`; `None` when the fleet is not available.
pub async fn run(sizes: &Sizes) -> Option<Outcome> {
    let load_before = loadavg();
    let mut builder = Fleet::builder()
        .apt(sizes.n_ordinary)
        .install(Pkg::new("th-hostile", "1.0"));
    for _ in 0..sizes.copies {
        for profile in &sizes.profiles {
            builder = builder.hostile(*profile);
        }
    }
    let fleet = builder.start().await?;
    fleet.publish(&Pkg::new("th-hostile", "1.1")).await;
    let app = spawn_app(&hostile_config(&fleet, "warn")).await;
    let client = api(&app.base_url);
    let n_hostile = fleet.hostile_hosts().count();
    let rss_start = rss_kib();

    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let idle = tokio::join!(
        watch(&client, "idle (baseline)", Arc::clone(&done)),
        async move {
            tokio::time::sleep(sizes.idle_for).await;
            stop.store(true, Ordering::Relaxed);
        }
    )
    .0;

    let update: FleetUpdateRequest =
        serde_json::from_value(json!({"batch_size": 1 + n_hostile, "max_failures": "100%"}))
            .expect("a valid fleet update request");
    let mut phases = vec![idle];
    let mut walls = Vec::new();
    let mut rollouts = Vec::new();
    for (name, op) in [
        ("fleet check", FleetOp::Check),
        ("fleet update", FleetOp::Update(Box::new(update))),
    ] {
        let done = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let (phase, rollout) = tokio::join!(watch(&client, name, Arc::clone(&done)), async {
            let rollout = run_rollout(&client, &op).await;
            done.store(true, Ordering::Relaxed);
            rollout
        });
        walls.push((name, started.elapsed()));
        expect_outcomes(&fleet, &rollout, name);
        phases.push(phase);
        rollouts.push(rollout);
    }
    let load_after = loadavg();
    let mut versions = Vec::new();
    for host in fleet.apt_hosts() {
        let version = host
            .exec_ok(&["dpkg-query", "-W", "-f=${Version}", "th-hostile"])
            .await;
        assert_eq!(version, "1.1", "{} after the update", host.name());
        versions.push((host.name().to_owned(), version));
    }

    println!(
        "{n_hostile} hostile hosts ({} of each of {} profiles) + {} ordinary apt hosts; \
         /health every {} ms, RSS every {} ms",
        sizes.copies,
        sizes.profiles.len(),
        sizes.n_ordinary,
        PROBE_EVERY.as_millis(),
        SAMPLE_EVERY.as_millis()
    );
    println!("load average before: {load_before}; after: {load_after}");
    println!(
        "RSS after start, before any check: {:.1} MiB",
        mib(rss_start)
    );
    for (name, wall) in &walls {
        println!("{name}: {:.1} s", wall.as_secs_f64());
    }
    print_phases(&phases);
    app.stop().await.expect("daemon stops cleanly");
    let update = rollouts.pop().expect("two rollouts");
    let check = rollouts.pop().expect("two rollouts");
    Some(Outcome {
        phases: phases
            .iter()
            .map(|phase| PhaseCounts {
                name: phase.name,
                probes: phase.latencies.len(),
                failures: phase.failures,
            })
            .collect(),
        check,
        update,
        versions,
    })
}

/// The table of phases and the targets.
fn print_phases(phases: &[Phase]) {
    println!();
    println!("| phase | probes | failed | p50 | p99 | max | p99 / idle p99 | max RSS |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let idle_p99 = percentile(&phases[0].latencies, 99.0);
    for phase in phases {
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
}

/// Starts a fleet operation and polls it to its end (at most [`ROLLOUT_DEADLINE`]).
async fn run_rollout(client: &Client, op: &FleetOp) -> Rollout {
    let accepted = match op {
        FleetOp::Check => client.check_fleet(&FleetCheckRequest::default()).await,
        FleetOp::Update(request) => client.update_fleet(request).await,
    }
    .expect("the daemon accepts the fleet operation");
    let id = accepted.rollout_id;
    let deadline = Instant::now() + ROLLOUT_DEADLINE;
    loop {
        let rollout = client
            .get_rollout(&id)
            .await
            .expect("GET /rollouts/{id} answers");
        if rollout.state != RolloutState::Running {
            return rollout;
        }
        assert!(
            Instant::now() < deadline,
            "rollout {id} did not end: {rollout:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Ordinary hosts succeeded, hostile ones did not.
fn expect_outcomes(fleet: &Fleet, rollout: &Rollout, name: &str) {
    assert_eq!(
        rollout.state,
        RolloutState::Completed,
        "{name}: {rollout:#?}"
    );
    for entry in &rollout.hosts {
        let host = fleet.host(&entry.host);
        let succeeded = entry.state == RolloutHostState::Succeeded;
        assert_eq!(succeeded, host.hostile().is_none(), "{name}: {entry:#?}");
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
