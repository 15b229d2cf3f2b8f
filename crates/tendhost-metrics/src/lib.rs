//! Prometheus metrics for tendhost: one prometheus-client registry whose host gauges are set
//! from a fleet snapshot at each scrape ([`Metrics::scrape`]) and whose job and rollout
//! counters are fed from the event bus ([`Metrics::follow`]). Metric names are a contract
//! (dashboards and alert rules use them; `docs/monitoring.md` lists them). Host names are
//! labels; job and rollout ids never are, so the series count stays bounded by the fleet.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tendhost_core::Fleet;
use tendhost_core::events::{Event, EventKind};
use tendhost_core::model::{HostSnapshot, JobState, RolloutState};
use tendhost_core::state::{HostState, JobKind};
use tendhost_pkg::RebootState;
use tokio::sync::broadcast::error::RecvError;

/// The OpenMetrics text content type, which Prometheus asks for first.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The classic Prometheus text content type, for every other client (and promtool).
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

const JOB_KINDS: [JobKind; 3] = [JobKind::Check, JobKind::Update, JobKind::Reboot];

/// Rollout outcomes (every finished rollout state).
const ROLLOUT_OUTCOMES: [RolloutState; 4] = [
    RolloutState::Completed,
    RolloutState::Stopped,
    RolloutState::Cancelled,
    RolloutState::Interrupted,
];

/// Started jobs remembered for their duration; past this many (jobs whose end was never
/// seen), the memory is dropped rather than grown.
const MAX_STARTED: usize = 10_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostLabel {
    host: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HostStateLabels {
    host: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: &'static str,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

type TimeGauge = Gauge<f64, AtomicU64>;

/// 0.5 s to about 17 minutes: a check takes seconds, an upgrade minutes.
fn job_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.5, 2.0, 12))
}

/// What the event follower remembers between events.
#[derive(Default)]
struct Memory {
    /// Running jobs: kind and start time, by job id (never a label).
    started: HashMap<String, (JobKind, Timestamp)>,
    /// Last successful update per host.
    last_update: HashMap<String, Timestamp>,
}

/// The registry and its metrics. Share it in an `Arc`.
pub struct Metrics {
    registry: Registry,
    host_up: Family<HostLabel, Gauge>,
    host_pending: Family<HostLabel, Gauge>,
    host_security: Family<HostLabel, Gauge>,
    host_reboot: Family<HostLabel, Gauge>,
    host_state: Family<HostStateLabels, Gauge>,
    host_last_check: Family<HostLabel, TimeGauge>,
    host_last_update: Family<HostLabel, TimeGauge>,
    hosts: Family<StateLabel, Gauge>,
    jobs: Family<JobLabels, Counter>,
    job_duration: Family<KindLabel, Histogram, fn() -> Histogram>,
    rollouts: Family<OutcomeLabel, Counter>,
    websocket_clients: Gauge,
    ssh_connect: Histogram,
    store_commit: Histogram,
    /// Registered only when TLS is on ([`Metrics::with_certificate`]).
    certificate_not_after: Option<Gauge>,
    memory: Mutex<Memory>,
    /// Serialises scrapes: each sets the host gauges from its snapshot, then encodes.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered; counters of every kind and outcome start at 0
    /// (so `increase()` sees the first one).
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let host_up = Family::default();
        let host_pending = Family::default();
        let host_security = Family::default();
        let host_reboot = Family::default();
        let host_state = Family::default();
        let host_last_check = Family::default();
        let host_last_update = Family::default();
        let hosts = Family::default();
        let jobs = Family::default();
        let job_duration =
            Family::<KindLabel, Histogram, fn() -> Histogram>::new_with_constructor(job_histogram);
        let rollouts = Family::default();
        let websocket_clients = Gauge::default();
        let build_info = Family::<VersionLabel, Gauge>::default();
        build_info
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);

        registry.register(
            "tendhost_host_up",
            "1 when the last contact with the host worked, 0 when it is unreachable; absent before the first contact",
            host_up.clone(),
        );
        registry.register(
            "tendhost_host_pending_updates",
            "Updates pending on the host, as of its last check",
            host_pending.clone(),
        );
        registry.register(
            "tendhost_host_security_updates",
            "Security updates pending on the host, as of its last check",
            host_security.clone(),
        );
        registry.register(
            "tendhost_host_reboot_required",
            "1 when the host needs a reboot, 0 when not; absent when the host cannot tell",
            host_reboot.clone(),
        );
        registry.register(
            "tendhost_host_state",
            "1 for the host's current state, 0 for the others",
            host_state.clone(),
        );
        registry.register(
            "tendhost_host_last_check_timestamp_seconds",
            "Unix time of the host's last finished check",
            host_last_check.clone(),
        );
        registry.register(
            "tendhost_host_last_update_timestamp_seconds",
            "Unix time of the host's last successful update seen by this daemon run",
            host_last_update.clone(),
        );
        registry.register("tendhost_hosts", "Hosts in each state", hosts.clone());
        registry.register(
            "tendhost_jobs",
            "Finished jobs by kind and outcome",
            jobs.clone(),
        );
        registry.register(
            "tendhost_job_duration_seconds",
            "Duration of finished jobs, from start to end",
            job_duration.clone(),
        );
        registry.register(
            "tendhost_rollouts",
            "Finished rollouts by outcome",
            rollouts.clone(),
        );
        registry.register(
            "tendhost_websocket_clients",
            "Open WebSocket event streams",
            websocket_clients.clone(),
        );
        let ssh_connect = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register(
            "tendhost_ssh_connect_duration_seconds",
            "Time to open an SSH master connection (TCP, key exchange, authentication)",
            ssh_connect.clone(),
        );
        let store_commit = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "tendhost_store_commit_duration_seconds",
            "Time of one group commit of the state database, fsync included",
            store_commit.clone(),
        );
        registry.register(
            "tendhost_build_info",
            "The daemon's version (always 1)",
            build_info,
        );

        for kind in JOB_KINDS {
            for outcome in JobState::ALL
                .into_iter()
                .filter(|state| state.is_finished())
            {
                let _ = jobs.get_or_create(&JobLabels {
                    kind: kind.as_str(),
                    outcome: outcome.as_str().to_owned(),
                });
            }
        }
        for outcome in ROLLOUT_OUTCOMES {
            let _ = rollouts.get_or_create(&OutcomeLabel {
                outcome: outcome.as_str().to_owned(),
            });
        }
        Self {
            registry,
            host_up,
            host_pending,
            host_security,
            host_reboot,
            host_state,
            host_last_check,
            host_last_update,
            hosts,
            jobs,
            job_duration,
            rollouts,
            websocket_clients,
            ssh_connect,
            store_commit,
            certificate_not_after: None,
            memory: Mutex::new(Memory::default()),
            scrape: Mutex::new(()),
        }
    }

    /// Follows the fleet's event bus from now on (jobs, rollouts, updates), and seeds the last
    /// update per host from the jobs the fleet still knows. Ends when the bus closes.
    pub fn follow(self: &Arc<Self>, fleet: &Fleet) -> tokio::task::JoinHandle<()> {
        let (_, receiver) = fleet.events().subscribe_since(None);
        {
            let mut memory = self.memory();
            for job in fleet.jobs(None, Some(JobState::Succeeded)) {
                if let (JobKind::Update, Some(at)) = (job.kind, job.finished_at) {
                    remember_update(&mut memory.last_update, &job.host, at);
                }
            }
        }
        let metrics = Arc::clone(self);
        let lookup = fleet.clone();
        tokio::spawn(metrics.run(receiver, move |id| lookup.job(id).ok().map(|job| job.kind)))
    }

    async fn run(
        self: Arc<Self>,
        mut receiver: tokio::sync::broadcast::Receiver<Arc<Event>>,
        kind_of: impl Fn(&str) -> Option<JobKind> + Send + 'static,
    ) {
        loop {
            match receiver.recv().await {
                Ok(event) => self.observe(&event, &kind_of),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "metrics fell behind the event bus; job and rollout counters miss those events"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Counts one event. `kind_of` names the kind of a job whose start was not seen.
    pub fn observe(&self, event: &Event, kind_of: &dyn Fn(&str) -> Option<JobKind>) {
        match &event.kind {
            EventKind::JobStarted { job_id, kind, .. } => {
                let mut memory = self.memory();
                if memory.started.len() >= MAX_STARTED {
                    memory.started.clear();
                }
                memory.started.insert(job_id.clone(), (*kind, event.time));
            }
            EventKind::JobFinished {
                job_id,
                host,
                outcome,
            } => {
                let started = self.memory().started.remove(job_id);
                let Some(kind) = started.map(|(kind, _)| kind).or_else(|| kind_of(job_id)) else {
                    return;
                };
                // Outcomes are job state wire names, a closed set: bounded as a label.
                let outcome = match JobState::parse(outcome) {
                    Some(state) => state.as_str().to_owned(),
                    None => "other".to_owned(),
                };
                if let Some((_, at)) = started {
                    let seconds = event.time.duration_since(at).as_secs_f64();
                    self.job_duration
                        .get_or_create(&KindLabel {
                            kind: kind.as_str(),
                        })
                        .observe(seconds.max(0.0));
                }
                if kind == JobKind::Update && outcome == JobState::Succeeded.as_str() {
                    remember_update(&mut self.memory().last_update, host, event.time);
                }
                self.jobs
                    .get_or_create(&JobLabels {
                        kind: kind.as_str(),
                        outcome,
                    })
                    .inc();
            }
            EventKind::RolloutFinished { state, .. } => {
                let outcome = ROLLOUT_OUTCOMES
                    .into_iter()
                    .find(|known| known.as_str() == state)
                    .map_or("other", RolloutState::as_str);
                self.rollouts
                    .get_or_create(&OutcomeLabel {
                        outcome: outcome.to_owned(),
                    })
                    .inc();
            }
            EventKind::HostRemoved { host } => {
                self.memory().last_update.remove(host);
            }
            _ => {}
        }
    }

    /// Counts one SSH master connection that took `elapsed`.
    pub fn observe_ssh_connect(&self, elapsed: std::time::Duration) {
        self.ssh_connect.observe(elapsed.as_secs_f64());
    }

    /// Counts one store group commit that took `elapsed`.
    pub fn observe_store_commit(&self, elapsed: std::time::Duration) {
        self.store_commit.observe(elapsed.as_secs_f64());
    }

    /// Adds `tendhost_certificate_not_after_timestamp_seconds` (the daemon serves TLS).
    #[must_use]
    pub fn with_certificate(mut self) -> Self {
        let gauge = Gauge::default();
        self.registry.register(
            "tendhost_certificate_not_after_timestamp_seconds",
            "When the served TLS certificate expires (Unix seconds)",
            gauge.clone(),
        );
        self.certificate_not_after = Some(gauge);
        self
    }

    /// Records when the served certificate expires (no-op without [`Metrics::with_certificate`]).
    pub fn set_certificate_not_after(&self, unix_seconds: i64) {
        if let Some(gauge) = &self.certificate_not_after {
            gauge.set(unix_seconds);
        }
    }

    /// The exposition for the fleet as it is now; an error once the fleet is shutting down.
    pub async fn scrape(&self, fleet: &Fleet) -> Result<String, tendhost_core::model::FleetError> {
        let hosts = fleet.hosts().await?;
        Ok(self.render(&hosts))
    }

    /// The exposition with the host gauges set from `hosts` (hosts not in it disappear).
    pub fn render(&self, hosts: &[HostSnapshot]) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.set_hosts(hosts);
        let mut text = String::new();
        // Writing into a String cannot fail, and every metric here encodes.
        if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%err, "cannot encode the metrics");
        }
        text
    }

    fn set_hosts(&self, hosts: &[HostSnapshot]) {
        for family in [
            &self.host_up,
            &self.host_pending,
            &self.host_security,
            &self.host_reboot,
        ] {
            family.clear();
        }
        self.host_state.clear();
        self.host_last_check.clear();
        self.host_last_update.clear();
        let mut by_state: HashMap<HostState, i64> = HashMap::new();
        let last_update = self.memory().last_update.clone();
        for host in hosts {
            let label = HostLabel {
                host: host.name.clone(),
            };
            *by_state.entry(host.state).or_default() += 1;
            if host.state == HostState::Unreachable {
                self.host_up.get_or_create(&label).set(0);
            } else if host.last_check.is_some() {
                self.host_up.get_or_create(&label).set(1);
            }
            self.host_pending
                .get_or_create(&label)
                .set(gauge_count(host.pending.len()));
            self.host_security.get_or_create(&label).set(gauge_count(
                host.pending.iter().filter(|update| update.security).count(),
            ));
            let reboot = match host.reboot {
                RebootState::Required { .. } => Some(1),
                RebootState::NotRequired => Some(0),
                RebootState::Unknown => None,
            };
            if let Some(reboot) = reboot {
                self.host_reboot.get_or_create(&label).set(reboot);
            }
            for state in HostState::ALL {
                self.host_state
                    .get_or_create(&HostStateLabels {
                        host: host.name.clone(),
                        state: state.as_str(),
                    })
                    .set(i64::from(state == host.state));
            }
            if let Some(at) = host.last_check {
                self.host_last_check.get_or_create(&label).set(unix(at));
            }
            if let Some(at) = last_update.get(&host.name) {
                self.host_last_update.get_or_create(&label).set(unix(*at));
            }
        }
        for state in HostState::ALL {
            self.hosts
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(by_state.get(&state).copied().unwrap_or(0));
        }
    }

    /// Counts an open WebSocket stream until the guard drops.
    pub fn websocket_opened(&self) -> WebSocketClient {
        self.websocket_clients.inc();
        WebSocketClient {
            gauge: self.websocket_clients.clone(),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One open WebSocket stream in `tendhost_websocket_clients`; dropping it counts it out.
pub struct WebSocketClient {
    gauge: Gauge,
}

impl Drop for WebSocketClient {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The classic Prometheus text format of an OpenMetrics exposition from [`Metrics::render`]:
/// a counter family is named with its `_total` suffix in `# HELP` and `# TYPE` (OpenMetrics
/// names the family without it), and the `# EOF` marker goes. Samples are unchanged.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let mut text = String::with_capacity(openmetrics.len());
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match header {
            Some((prefix, rest)) => {
                let name = rest.split(' ').next().unwrap_or_default();
                if counters.contains(&name) && !name.ends_with("_total") {
                    text.push_str(prefix);
                    text.push_str(name);
                    text.push_str("_total");
                    text.push_str(&rest[name.len()..]);
                } else {
                    text.push_str(line);
                }
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

fn remember_update(last: &mut HashMap<String, Timestamp>, host: &str, at: Timestamp) {
    let entry = last.entry(host.to_owned()).or_insert(at);
    if *entry < at {
        *entry = at;
    }
}

fn gauge_count(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

#[allow(clippy::cast_precision_loss)]
fn unix(at: Timestamp) -> f64 {
    at.as_millisecond() as f64 / 1000.0
}

#[cfg(test)]
mod tests;
