//! The notification service: one task follows the event bus and the clock and turns what it
//! sees into messages (one per rollout per notifier, hosts gathered, digests once a day), which
//! it records and queues; one task per notifier delivers ([`crate::delivery`]). The fleet and
//! the bus never wait on either: a slow follower lags on its own subscription.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tendhost_core::Fleet;
use tendhost_core::events::Event;
use tendhost_core::model::{HostSnapshot, RolloutHostState, RolloutSnapshot, RolloutState};
use tendhost_core::state::HostState;
use tendhost_pkg::RebootState;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::channels::Sender;
use crate::clock;
use crate::delivery::{self, DeliveryLog, Notifier, Outcome, Queued};
use crate::notice::{Counts, Item, Notice, host_list, human_duration};
use crate::spec::{EventName, NotifierSpec};
use crate::triggers::{Trigger, trigger};

/// How often the follower looks at the clock (unreachable hosts, digests) without a test
/// moving it.
const TICK: Duration = Duration::from_secs(15);

/// The running service. Dropping it stops its tasks.
pub struct Service {
    notifiers: Vec<Arc<Notifier>>,
    log: Arc<dyn DeliveryLog>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
#[error("notifier {name:?}: {reason}")]
pub struct StartError {
    pub name: String,
    pub reason: String,
}

impl Service {
    /// Starts following `fleet`'s events for `specs`. `public_url` (without a trailing `/`)
    /// makes links to rollouts and hosts.
    pub fn start(
        fleet: &Fleet,
        specs: Vec<NotifierSpec>,
        log: Arc<dyn DeliveryLog>,
        public_url: Option<String>,
    ) -> Result<Service, StartError> {
        // The workspace's one rustls provider, for reqwest and lettre alike.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("tendhost/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| StartError {
                name: String::new(),
                reason: format!("cannot build the HTTP client: {err}"),
            })?;
        let mut notifiers = Vec::new();
        let mut tasks = Vec::new();
        for spec in specs {
            let sender = Sender::new(spec.channel.clone(), http.clone(), spec.timeout).map_err(
                |reason| StartError {
                    name: spec.name.clone(),
                    reason,
                },
            )?;
            let (queue, queued) = mpsc::unbounded_channel();
            let notifier = Arc::new(Notifier {
                spec,
                sender,
                queue,
            });
            tasks.push(tokio::spawn(delivery::work(
                Arc::clone(&notifier),
                Arc::clone(&log),
                queued,
            )));
            notifiers.push(notifier);
        }
        if !notifiers.is_empty() {
            let (_, receiver) = fleet.events().subscribe_since(None);
            let now = clock::now();
            let follower = Follower {
                fleet: fleet.clone(),
                next_digest: notifiers
                    .iter()
                    .map(|notifier| next_digest(now, notifier.spec.digest_at))
                    .collect(),
                notifiers: notifiers.clone(),
                log: Arc::clone(&log),
                public_url: public_url.map(|url| url.trim_end_matches('/').to_owned()),
                active: HashMap::new(),
                unreachable: HashMap::new(),
                told: HashSet::new(),
            };
            tasks.push(tokio::spawn(follower.run(receiver)));
        }
        Ok(Service {
            notifiers,
            log,
            tasks,
        })
    }

    /// The notifiers' names and kinds, in config order.
    pub fn notifiers(&self) -> Vec<(&str, &'static str)> {
        self.notifiers
            .iter()
            .map(|notifier| (notifier.spec.name.as_str(), notifier.sender.kind()))
            .collect()
    }

    /// Sends a test message through notifier `name` now (one attempt, recorded), and answers
    /// its outcome; `None` when there is no such notifier.
    pub async fn test(&self, name: &str) -> Option<Result<Outcome, String>> {
        let notifier = self.notifiers.iter().find(|n| n.spec.name == name)?;
        let mut notice = Notice::new(
            "test",
            Timestamp::now(),
            format!("tendhost test notification ({name})"),
        );
        notice.lines.push(format!(
            "The {} notifier {name:?} works.",
            notifier.sender.kind()
        ));
        let new = delivery::NewDelivery {
            notifier: name.to_owned(),
            kind: notifier.sender.kind(),
            event: notice.event,
            title: notice.title.clone(),
            rollout_id: None,
            created_at: notice.time,
        };
        let id = match self.log.insert(new).await {
            Ok(id) => id,
            Err(err) => return Some(Err(err)),
        };
        let queued = Queued { id, notice };
        Some(Ok(notifier.deliver(self.log.as_ref(), &queued, 1).await))
    }
}

/// The next `digest_at` (minute of the day, daemon's timezone) strictly after `now`.
pub fn next_digest(now: Timestamp, digest_at: u16) -> Timestamp {
    let tz = TimeZone::system();
    let zoned = now.to_zoned(tz.clone());
    let (hour, minute) = (
        i8::try_from(digest_at / 60).unwrap_or(8),
        i8::try_from(digest_at % 60).unwrap_or(0),
    );
    let mut date = zoned.date();
    for _ in 0..3 {
        if let Ok(at) = date.at(hour, minute, 0, 0).to_zoned(tz.clone())
            && at.timestamp() > now
        {
            return at.timestamp();
        }
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    now + Duration::from_secs(24 * 3600)
}

struct Follower {
    fleet: Fleet,
    notifiers: Vec<Arc<Notifier>>,
    log: Arc<dyn DeliveryLog>,
    public_url: Option<String>,
    /// Running rollouts and their hosts: a host failing in one is told by the rollout's message.
    active: HashMap<String, Vec<String>>,
    /// Unreachable hosts since (notifier clock).
    unreachable: HashMap<String, Timestamp>,
    /// (notifier index, host) already told unreachable.
    told: HashSet<(usize, String)>,
    next_digest: Vec<Timestamp>,
}

/// Tags and groups per host, for the notifiers' filters.
type Membership = BTreeMap<String, (Vec<String>, Vec<String>)>;

impl Follower {
    async fn run(mut self, mut receiver: tokio::sync::broadcast::Receiver<Arc<Event>>) {
        let mut watcher = clock::Watcher::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Unbiased: a flood of events (job output) never starves the clock.
            tokio::select! {
                received = receiver.recv() => match received {
                    Ok(event) => self.on_event(&event).await,
                    Err(RecvError::Lagged(missed)) => tracing::warn!(
                        missed,
                        "notifications fell behind the event bus; those events are not told"
                    ),
                    Err(RecvError::Closed) => return,
                },
                () = watcher.changed() => self.on_time().await,
                _ = tick.tick() => self.on_time().await,
            }
        }
    }

    fn hears(&self, event: EventName) -> bool {
        self.notifiers.iter().any(|n| n.spec.hears(event))
    }

    async fn membership(&self) -> Membership {
        self.fleet
            .hosts()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|host| (host.name, (host.tags, host.groups)))
            .collect()
    }

    fn link(&self, path: &str) -> Option<String> {
        self.public_url.as_ref().map(|url| format!("{url}{path}"))
    }

    async fn send(&self, notifier_idx: usize, notice: Notice) {
        self.notifiers[notifier_idx]
            .enqueue(self.log.as_ref(), notice)
            .await;
    }

    async fn on_event(&mut self, event: &Event) {
        if let tendhost_core::events::EventKind::RolloutStarted {
            rollout_id, hosts, ..
        } = &event.kind
        {
            self.active.insert(rollout_id.clone(), hosts.clone());
            return;
        }
        let Some(trigger) = trigger(&event.kind) else {
            return;
        };
        match trigger {
            Trigger::RolloutEnded { rollout_id } => {
                self.active.remove(&rollout_id);
                if self.hears(EventName::RolloutFinished) || self.hears(EventName::RolloutStopped) {
                    match self.fleet.rollout(&rollout_id).await {
                        Ok(rollout) => self.rollout_ended(&rollout).await,
                        Err(err) => {
                            tracing::warn!(%rollout_id, %err, "finished rollout not found; not told");
                        }
                    }
                }
            }
            Trigger::HostFailed { host } => {
                let in_rollout = self.active.values().any(|hosts| hosts.contains(&host));
                if !in_rollout && self.hears(EventName::HostFailed) {
                    self.host_failed(&host).await;
                }
            }
            Trigger::HostUnreachable { host } => {
                self.unreachable.entry(host).or_insert_with(clock::now);
            }
            Trigger::HostReachable { host } => {
                self.unreachable.remove(&host);
                self.told.retain(|(_, told)| *told != host);
            }
            Trigger::Plain {
                event,
                host,
                detail,
                rollout_id,
            } => self.plain(event, host, detail, rollout_id).await,
        }
    }

    async fn rollout_ended(&self, rollout: &RolloutSnapshot) {
        let event = if rollout.state == RolloutState::Stopped {
            EventName::RolloutStopped
        } else {
            EventName::RolloutFinished
        };
        let membership = self.membership().await;
        for (idx, notifier) in self.notifiers.iter().enumerate() {
            if !notifier.spec.hears(event) {
                continue;
            }
            let hosts: Vec<_> = rollout
                .hosts
                .iter()
                .filter(|host| allowed(&notifier.spec, &membership, &host.host))
                .collect();
            if hosts.is_empty() {
                continue;
            }
            let mut counts = Counts {
                total: hosts.len() as u64,
                ..Counts::default()
            };
            let mut items = Vec::new();
            for host in &hosts {
                match host.state {
                    RolloutHostState::Succeeded => counts.succeeded += 1,
                    RolloutHostState::Failed => counts.failed += 1,
                    RolloutHostState::Skipped => counts.skipped += 1,
                    RolloutHostState::Cancelled
                    | RolloutHostState::Pending
                    | RolloutHostState::Deferred
                    | RolloutHostState::Running => counts.cancelled += 1,
                }
                if matches!(
                    host.state,
                    RolloutHostState::Failed | RolloutHostState::Skipped
                ) {
                    items.push(Item {
                        host: host.host.clone(),
                        count: None,
                        detail: Some(format!(
                            "{}: {}",
                            host.state.as_str(),
                            host.reason.as_deref().unwrap_or("no reason given")
                        )),
                    });
                }
            }
            let duration = rollout
                .finished_at
                .map(|end| end.duration_since(rollout.created_at).as_secs().max(0))
                .map(|seconds| u64::try_from(seconds).unwrap_or(0));
            let mut summary = vec![format!("{} succeeded", counts.succeeded)];
            for (n, what) in [
                (counts.failed, "failed"),
                (counts.skipped, "skipped"),
                (counts.cancelled, "cancelled"),
            ] {
                if n > 0 {
                    summary.push(format!("{n} {what}"));
                }
            }
            let verb = match rollout.state {
                RolloutState::Stopped => "stopped",
                RolloutState::Cancelled => "cancelled",
                RolloutState::Interrupted => "interrupted",
                RolloutState::Completed
                | RolloutState::Running
                | RolloutState::AwaitingApproval => "finished",
            };
            let mut notice = Notice::new(
                event.as_str(),
                Timestamp::now(),
                format!(
                    "{} rollout {verb}: {}",
                    capitalised(rollout.kind.as_str()),
                    summary.join(", ")
                ),
            );
            let names: Vec<String> = hosts.iter().map(|host| host.host.clone()).collect();
            notice.lines.push(format!(
                "Rollout {} {} on {} host(s){}: {}",
                rollout.id,
                rollout.state.as_str(),
                names.len(),
                duration.map_or(String::new(), |s| format!(" in {}", human_duration(s))),
                host_list(&names)
            ));
            if rollout.state == RolloutState::Stopped {
                notice.lines.push(
                    "Stopped because failures exceeded max_failures; the remaining hosts were not updated."
                        .to_owned(),
                );
            }
            for item in &items {
                notice.lines.push(format!(
                    "{}: {}",
                    item.host,
                    item.detail.as_deref().unwrap_or("")
                ));
            }
            notice.rollout_id = Some(rollout.id.clone());
            notice.state = Some(rollout.state.as_str().to_owned());
            notice.hosts = names;
            notice.counts = Some(counts);
            notice.duration_seconds = duration;
            notice.items = items;
            notice.url = self.link(&format!("/rollouts/{}", rollout.id));
            notice.urgent = counts.failed > 0 || event == EventName::RolloutStopped;
            self.send(idx, notice).await;
        }
    }

    async fn host_failed(&self, host: &str) {
        let Ok(snapshot) = self.fleet.host(host).await else {
            return;
        };
        let error = snapshot
            .failure
            .as_ref()
            .map(|failure| format!("{} failed: {}", failure.action.as_str(), failure.error));
        for (idx, notifier) in self.notifiers.iter().enumerate() {
            if !notifier.spec.hears(EventName::HostFailed)
                || !notifier
                    .spec
                    .filter
                    .matches(&snapshot.tags, &snapshot.groups)
            {
                continue;
            }
            let mut notice = Notice::new(
                EventName::HostFailed.as_str(),
                Timestamp::now(),
                format!("Host {host} failed"),
            );
            notice.lines.push(match &error {
                Some(error) => format!("{host}: {error}"),
                None => format!("{host} is in state failed"),
            });
            notice.hosts = vec![host.to_owned()];
            notice.items = vec![Item {
                host: host.to_owned(),
                count: None,
                detail: error.clone(),
            }];
            notice.url = self.link(&format!("/hosts/{host}"));
            notice.urgent = true;
            self.send(idx, notice).await;
        }
    }

    async fn plain(
        &self,
        event: EventName,
        host: Option<String>,
        detail: Option<String>,
        rollout_id: Option<String>,
    ) {
        let membership = if host.is_some() {
            self.membership().await
        } else {
            Membership::new()
        };
        for (idx, notifier) in self.notifiers.iter().enumerate() {
            if !notifier.spec.hears(event)
                || host
                    .as_ref()
                    .is_some_and(|host| !allowed(&notifier.spec, &membership, host))
            {
                continue;
            }
            let title = match event {
                EventName::CertificateRenewalFailed => {
                    "TLS certificate renewal failed; the current certificate keeps serving"
                        .to_owned()
                }
                EventName::RolloutAwaitingApproval => "A rollout awaits approval".to_owned(),
                other => other.as_str().replace('_', " "),
            };
            let mut notice = Notice::new(event.as_str(), Timestamp::now(), title);
            if let Some(detail) = &detail {
                notice.lines.push(detail.clone());
            }
            if let Some(host) = &host {
                notice.hosts = vec![host.clone()];
                notice.url = self.link(&format!("/hosts/{host}"));
            }
            if let Some(rollout_id) = &rollout_id {
                notice.url = self.link(&format!("/rollouts/{rollout_id}"));
            }
            notice.rollout_id.clone_from(&rollout_id);
            notice.urgent = event == EventName::CertificateRenewalFailed;
            self.send(idx, notice).await;
        }
    }

    /// The clock moved: unreachable hosts past their notifier's `unreachable_after`, digests
    /// due. Reported settled to a test once all of it is queued.
    async fn on_time(&mut self) {
        let now = clock::now();
        let digest_due = self.next_digest.iter().any(|due| *due <= now);
        if (digest_due || self.hears(EventName::HostUnreachable))
            && let Ok(hosts) = self.fleet.hosts().await
        {
            self.track_unreachable(&hosts, now);
            self.unreachable_reports(&hosts, now).await;
            if digest_due {
                self.digests(&hosts, now).await;
            }
        }
        clock::settled(now);
    }

    fn track_unreachable(&mut self, hosts: &[HostSnapshot], now: Timestamp) {
        for host in hosts {
            if host.state == HostState::Unreachable {
                self.unreachable.entry(host.name.clone()).or_insert(now);
            } else if self.unreachable.remove(&host.name).is_some() {
                self.told.retain(|(_, told)| *told != host.name);
            }
        }
        self.unreachable
            .retain(|name, _| hosts.iter().any(|host| host.name == *name));
    }

    async fn unreachable_reports(&mut self, hosts: &[HostSnapshot], now: Timestamp) {
        for idx in 0..self.notifiers.len() {
            let spec = &self.notifiers[idx].spec;
            if !spec.hears(EventName::HostUnreachable) {
                continue;
            }
            let after = spec.unreachable_after;
            let mut due: Vec<(&HostSnapshot, Timestamp)> = hosts
                .iter()
                .filter(|host| spec.filter.matches(&host.tags, &host.groups))
                .filter(|host| !self.told.contains(&(idx, host.name.clone())))
                .filter_map(|host| {
                    let since = *self.unreachable.get(&host.name)?;
                    (now.duration_since(since).unsigned_abs() >= after && since <= now)
                        .then_some((host, since))
                })
                .collect();
            if due.is_empty() {
                continue;
            }
            due.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            let names: Vec<String> = due.iter().map(|(host, _)| host.name.clone()).collect();
            let mut notice = Notice::new(
                EventName::HostUnreachable.as_str(),
                Timestamp::now(),
                if names.len() == 1 {
                    format!("Host {} unreachable", names[0])
                } else {
                    format!("{} hosts unreachable", names.len())
                },
            );
            for (host, since) in &due {
                let seconds = u64::try_from(now.duration_since(*since).as_secs()).unwrap_or(0);
                let detail = format!(
                    "unreachable for {}{}",
                    human_duration(seconds),
                    host.last_error
                        .as_deref()
                        .map_or(String::new(), |error| format!(": {error}"))
                );
                notice.lines.push(format!("{}: {detail}", host.name));
                notice.items.push(Item {
                    host: host.name.clone(),
                    count: None,
                    detail: Some(detail),
                });
            }
            if let [one] = names.as_slice() {
                notice.url = self.link(&format!("/hosts/{one}"));
            }
            notice.hosts.clone_from(&names);
            notice.urgent = true;
            for name in names {
                self.told.insert((idx, name));
            }
            self.send(idx, notice).await;
        }
    }

    async fn digests(&mut self, hosts: &[HostSnapshot], now: Timestamp) {
        for idx in 0..self.notifiers.len() {
            if self.next_digest[idx] > now {
                continue;
            }
            let spec = self.notifiers[idx].spec.clone();
            self.next_digest[idx] = next_digest(now, spec.digest_at);
            let mine: Vec<&HostSnapshot> = hosts
                .iter()
                .filter(|host| spec.filter.matches(&host.tags, &host.groups))
                .collect();
            if spec.hears(EventName::RebootRequiredDigest) {
                let items: Vec<Item> = mine
                    .iter()
                    .filter_map(|host| match &host.reboot {
                        RebootState::Required { packages } => Some(Item {
                            host: host.name.clone(),
                            count: None,
                            detail: (!packages.is_empty())
                                .then(|| format!("asked by {}", packages.join(", "))),
                        }),
                        _ => None,
                    })
                    .collect();
                if let Some(notice) = self.digest(
                    EventName::RebootRequiredDigest,
                    format!("{} host(s) need a reboot", items.len()),
                    items,
                ) {
                    self.send(idx, notice).await;
                }
            }
            if spec.hears(EventName::SecurityUpdatesDigest) {
                let mut oldest_days = 0;
                let items: Vec<Item> = mine
                    .iter()
                    .filter_map(|host| {
                        let n = host.pending.iter().filter(|p| p.security).count() as u64;
                        let days = host
                            .security_pending_since()
                            .map_or(0, |since| whole_days(since, now));
                        oldest_days = oldest_days.max(days);
                        (n > 0).then(|| Item {
                            host: host.name.clone(),
                            count: Some(n),
                            detail: (days > 0).then(|| format!("pending for {days} day(s)")),
                        })
                    })
                    .collect();
                let total: u64 = items.iter().filter_map(|item| item.count).sum();
                let mut title = format!(
                    "{total} security update(s) pending on {} host(s)",
                    items.len()
                );
                if oldest_days > 0 {
                    title.push_str(&format!(", the oldest for {oldest_days} day(s)"));
                }
                if let Some(notice) = self.digest(EventName::SecurityUpdatesDigest, title, items) {
                    self.send(idx, notice).await;
                }
            }
        }
    }

    /// A digest notice, or none when there is nothing to say.
    fn digest(&self, event: EventName, title: String, items: Vec<Item>) -> Option<Notice> {
        if items.is_empty() {
            return None;
        }
        let mut notice = Notice::new(event.as_str(), Timestamp::now(), title);
        for item in &items {
            let what = match (item.count, &item.detail) {
                (Some(n), Some(detail)) => format!("{n} security update(s), {detail}"),
                (Some(n), None) => format!("{n} security update(s)"),
                (None, Some(detail)) => detail.clone(),
                (None, None) => "reboot required".to_owned(),
            };
            notice.lines.push(format!("{}: {what}", item.host));
        }
        notice.hosts = items.iter().map(|item| item.host.clone()).collect();
        notice.items = items;
        notice.url = self.link("/hosts");
        Some(notice)
    }
}

fn allowed(spec: &NotifierSpec, membership: &Membership, host: &str) -> bool {
    if spec.filter.is_empty() {
        return true;
    }
    membership
        .get(host)
        .is_some_and(|(tags, groups)| spec.filter.matches(tags, groups))
}

/// Whole days from `since` to `now` (0 when `now` is not later).
fn whole_days(since: Timestamp, now: Timestamp) -> u64 {
    u64::try_from(now.duration_since(since).as_secs()).unwrap_or(0) / 86_400
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or(String::new(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_digest_is_strictly_after_now_at_the_minute() {
        let tz = TimeZone::system();
        let at = |h, m| {
            jiff::civil::date(2026, 12, 1)
                .at(h, m, 0, 0)
                .to_zoned(tz.clone())
                .unwrap()
                .timestamp()
        };
        let next = next_digest(at(7, 59), 8 * 60);
        assert_eq!(next, at(8, 0));
        let after = next_digest(at(8, 0), 8 * 60);
        assert_eq!(
            after.to_zoned(tz.clone()).date(),
            jiff::civil::date(2026, 12, 2)
        );
        assert_eq!(after.to_zoned(tz).time(), jiff::civil::time(8, 0, 0, 0));
    }
}
