//! Following long work over the event stream, live and without polling: a set of jobs
//! (`update --follow`, `check --wait`, `reboot --follow`) or a rollout (`rollout --follow`),
//! with progress bars per rollout, per batch and per host (indicatif, on stderr when it is a
//! terminal) and each job's output as it arrives; with `--json`, every event that concerns the
//! work, one line each, exactly as the daemon sent it. The stream is opened before the work
//! starts, so nothing is missed. The outcome is read back from the API at the end.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tendhost_api::events::{EventPayload, StreamMessage};
use tendhost_client::{Client, EventStream, StreamOptions};

use crate::Failure;
use crate::output::Style;

/// Opens the event stream that following will read (before the work is started).
pub(crate) async fn open(client: &Client) -> Result<EventStream, Failure> {
    Ok(client.events(StreamOptions::default()).await?)
}

/// What is being followed.
pub(crate) enum Work {
    /// These jobs (id -> host), until each has finished.
    Jobs(BTreeMap<String, String>),
    /// This rollout (its hosts and batches), until it has finished.
    Rollout {
        id: String,
        hosts: Vec<String>,
        batches: Vec<Vec<String>>,
    },
}

/// The bars and what they stand for.
struct Display {
    multi: MultiProgress,
    /// Bars are drawn (stderr is a terminal); otherwise progress is printed as lines.
    bars: bool,
    json: bool,
    style: Style,
    rollout: Option<ProgressBar>,
    batches: HashMap<usize, ProgressBar>,
    hosts: HashMap<String, ProgressBar>,
}

impl Display {
    fn new(json: bool, style: Style) -> Display {
        let bars = !json && std::io::stderr().is_terminal();
        let target = if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Display {
            multi: MultiProgress::with_draw_target(target),
            bars,
            json,
            style,
            rollout: None,
            batches: HashMap::new(),
            hosts: HashMap::new(),
        }
    }

    fn bar(&self, length: u64, template: &str) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(length));
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }

    /// A line for people: above the bars on a terminal, else on stdout.
    fn say(&self, line: &str) {
        if self.json {
            return;
        }
        if self.bars {
            self.multi.suspend(|| crate::outln!("{line}"));
        } else {
            crate::outln!("{line}");
        }
    }

    fn host_bar(&mut self, host: &str) -> ProgressBar {
        if let Some(bar) = self.hosts.get(host) {
            return bar.clone();
        }
        let bar = self.bar(0, "  {prefix:<24} [{bar:30}] {pos}/{len} {msg}");
        bar.set_prefix(host.to_owned());
        self.hosts.insert(host.to_owned(), bar.clone());
        bar
    }

    fn finish(&self) {
        for bar in self.hosts.values().chain(self.batches.values()) {
            bar.finish();
        }
        if let Some(bar) = &self.rollout {
            bar.finish();
        }
        let _ = self.multi.clear();
    }
}

/// Follows `work` on `stream` until it has ended.
pub(crate) async fn follow(
    stream: &mut EventStream,
    work: &Work,
    json: bool,
    style: Style,
) -> Result<(), Failure> {
    let mut display = Display::new(json, style);
    let mut jobs: HashMap<String, String> = HashMap::new();
    let mut waiting: Vec<String> = Vec::new();
    let rollout_id = match work {
        Work::Jobs(started) => {
            for (job, host) in started {
                jobs.insert(job.clone(), host.clone());
                waiting.push(job.clone());
                display.host_bar(host).set_message("started");
            }
            None
        }
        Work::Rollout { id, hosts, batches } => {
            let bar = display.bar(
                hosts.len() as u64,
                "{prefix:<26} [{bar:30}] {pos}/{len} hosts {msg}",
            );
            bar.set_prefix(format!("rollout {id}"));
            display.rollout = Some(bar);
            display.say(&format!(
                "rollout {id}: {} host(s) in {} batch(es)",
                hosts.len(),
                batches.len()
            ));
            Some(id.clone())
        }
    };
    let rollout_hosts: Vec<String> = match work {
        Work::Rollout { hosts, .. } => hosts.clone(),
        Work::Jobs(_) => Vec::new(),
    };
    loop {
        if rollout_id.is_none() && waiting.is_empty() {
            break;
        }
        let received = stream.next().await?;
        let Some(StreamMessage::Event(message)) = &received.message else {
            continue;
        };
        let event = &message.event;
        if !concerns(event, &jobs, rollout_id.as_deref(), &rollout_hosts) {
            continue;
        }
        if json {
            crate::outln!("{}", received.text);
        }
        match event {
            EventPayload::JobStarted { job_id, host, kind } => {
                if rollout_id.is_some() && rollout_hosts.contains(host) {
                    jobs.insert(job_id.clone(), host.clone());
                }
                if jobs.contains_key(job_id) {
                    let bar = display.host_bar(host);
                    bar.set_message(crate::output::name(kind));
                    display.say(&format!(
                        "{host}: {} started ({job_id})",
                        crate::output::name(kind)
                    ));
                }
            }
            EventPayload::JobOutput {
                job_id, host, line, ..
            } if jobs.contains_key(job_id) => {
                display.say(&format!("{host} | {line}"));
            }
            EventPayload::UpdateProgress {
                host,
                package,
                done,
                total,
            } => {
                let bar = display.host_bar(host);
                bar.set_length(u64::from(*total));
                bar.set_position(u64::from(*done));
                bar.set_message(package.clone());
            }
            EventPayload::HostStateChanged { host, to, .. } => {
                if let Some(bar) = display.hosts.get(host) {
                    bar.set_message(crate::output::name(to));
                }
            }
            EventPayload::JobFinished {
                job_id,
                host,
                outcome,
            } if jobs.contains_key(job_id) => {
                let bar = display.host_bar(host);
                bar.set_message(outcome.clone());
                bar.finish();
                if let Some(rollout) = &display.rollout {
                    rollout.inc(1);
                }
                display.say(&format!("{host}: {}", display.style.state(outcome)));
                waiting.retain(|waited| waited != job_id);
            }
            EventPayload::BatchStarted { batch, hosts, .. } => {
                let bar = display.bar(
                    hosts.len() as u64,
                    "  {prefix:<24} [{bar:30}] {pos}/{len} {msg}",
                );
                bar.set_prefix(format!("batch {batch}"));
                bar.set_message(hosts.join(", "));
                display.batches.insert(*batch, bar);
                display.say(&format!("batch {batch}: {}", hosts.join(", ")));
            }
            EventPayload::BatchFinished {
                batch,
                succeeded,
                failed,
                ..
            } => {
                if let Some(bar) = display.batches.get(batch) {
                    bar.set_position(bar.length().unwrap_or(0));
                    bar.finish_with_message(format!("{succeeded} succeeded, {failed} failed"));
                }
                display.say(&format!(
                    "batch {batch}: {succeeded} succeeded, {failed} failed"
                ));
            }
            EventPayload::RolloutFinished { state, .. } => {
                display.say(&format!(
                    "rollout {}: {}",
                    rollout_id.as_deref().unwrap_or_default(),
                    display.style.state(state)
                ));
                break;
            }
            _ => {}
        }
    }
    display.finish();
    Ok(())
}

/// Whether an event is about the work followed.
fn concerns(
    event: &EventPayload,
    jobs: &HashMap<String, String>,
    rollout_id: Option<&str>,
    rollout_hosts: &[String],
) -> bool {
    match event {
        EventPayload::JobStarted { job_id, host, .. } => {
            jobs.contains_key(job_id) || (rollout_id.is_some() && rollout_hosts.contains(host))
        }
        EventPayload::JobOutput { job_id, .. } | EventPayload::JobFinished { job_id, .. } => {
            jobs.contains_key(job_id)
        }
        EventPayload::UpdateProgress { host, .. } | EventPayload::HostStateChanged { host, .. } => {
            jobs.values().any(|followed| followed == host)
        }
        EventPayload::BatchStarted { rollout_id: id, .. }
        | EventPayload::BatchFinished { rollout_id: id, .. }
        | EventPayload::RolloutFinished { rollout_id: id, .. }
        | EventPayload::RolloutStarted { rollout_id: id, .. } => Some(id.as_str()) == rollout_id,
        _ => false,
    }
}
