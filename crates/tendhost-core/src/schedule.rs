//! Schedules: `[[schedule]]` entries (a cron expression read in an IANA time zone, and the
//! rollout to start: a fleet check or a fleet update with the same fields as
//! `POST /fleet/update`), and [`Schedules`], the task that starts them when due through the
//! same `Fleet` calls the API uses. Runs carry `trigger = {"schedule": NAME}`; hosts outside
//! their maintenance window wait in the run as `deferred` (`rollout.rs`).
//!
//! Time comes from `clock` (settable in tests). The runner keeps a cursor (the last instant it
//! looked at); each occurrence after the cursor fires once when the clock reaches it. An
//! occurrence found more than [`LATE_LIMIT`] late (the clock jumped, the daemon was down)
//! counts as missed. At start, a schedule with `catch_up = true` whose last run is older than
//! an occurrence that has passed runs once. Pausing persists (`ScheduleStore`); paused and
//! disabled schedules never fire by themselves, and `run` starts one at once either way.
//!
//! Randomised start (`random_delay`, as Landscape's randomised delivery and systemd's
//! `RandomizedDelaySec`): each occurrence runs at its cron time plus its own delay in
//! `[0, random_delay)`, so daemons (or schedules) sharing a mirror do not all start at the same
//! second. The delay is a hash of the schedule's name and the occurrence, not a random draw:
//! `next_run` shows the instant the run will really start, and a restart keeps it.
//!
//! Overlap: a host has at most one job (its actor refuses a second), so a run that reaches a
//! host busy with another schedule's or a manual job records it `skipped` with reason
//! `busy: ...` and does not wait for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::clock;
use crate::fleet::Fleet;
use crate::model::{FleetError, RolloutKind, RolloutRequest, RolloutSnapshot};

/// An occurrence found later than this after its time is a missed run, not a late one.
pub const LATE_LIMIT: Duration = Duration::from_secs(5 * 60);

/// One `[[schedule]]`, validated.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub name: String,
    pub enabled: bool,
    /// As written (5 fields, or `@daily` and the like).
    pub cron_text: String,
    pub cron: Cron,
    pub timezone: TimeZone,
    /// IANA name of `timezone` (the system's when the config names none).
    pub timezone_name: String,
    pub action: RolloutKind,
    /// The rollout a run starts (`trigger` is this schedule).
    pub request: RolloutRequest,
    pub catch_up: bool,
    /// Each run starts up to this long after its cron time (zero: at it).
    pub random_delay: Duration,
}

impl ScheduleSpec {
    /// Whether `other` is the same schedule (`cron` is compared as written).
    fn same_as(&self, other: &ScheduleSpec) -> bool {
        self.name == other.name
            && self.enabled == other.enabled
            && self.cron_text == other.cron_text
            && self.timezone_name == other.timezone_name
            && self.action == other.action
            && self.request == other.request
            && self.catch_up == other.catch_up
            && self.random_delay == other.random_delay
    }
}

/// Parses a cron expression: 5 fields (minute hour day-of-month month day-of-week) or one of
/// `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    let trimmed = text.trim();
    if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
        return Err(format!(
            "cron {text:?} must have 5 fields (minute hour day-of-month month day-of-week) \
             or be one of @hourly, @daily, @weekly, @monthly, @yearly"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(trimmed)
        .map_err(|err| format!("cron {text:?} is not valid: {err}"))
}

/// Occurrences [`ScheduleSpec::next_due_after`] looks at, at most (a delay longer than many
/// intervals of a frequent schedule).
const MAX_LOOKAHEAD: usize = 1_024;

impl ScheduleSpec {
    /// The first occurrence strictly after `after`, in this schedule's time zone.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(self.timezone.clone());
        self.cron
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|next| next.timestamp())
    }

    /// How long after `occurrence` its run starts: in `[0, random_delay)`, the same for the
    /// same schedule and occurrence every time it is asked.
    pub fn delay_for(&self, occurrence: Timestamp) -> Duration {
        let Ok(span_ms) = u64::try_from(self.random_delay.as_millis()) else {
            return Duration::ZERO;
        };
        if span_ms == 0 {
            return Duration::ZERO;
        }
        // FNV-1a, spelled out: std's hasher may change between Rust releases, and a new
        // build must not move a run that `next_run` already announced.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self
            .name
            .bytes()
            .chain([0])
            .chain(occurrence.as_second().to_le_bytes())
        {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Duration::from_millis(hash % span_ms)
    }

    /// The run due first strictly after `after`: `(occurrence, start)` with `start` the
    /// occurrence plus its delay. With a delay, an occurrence before `after` may still be due
    /// after it, and (a delay longer than the interval) a later occurrence may start first.
    pub fn next_due_after(&self, after: Timestamp) -> Option<(Timestamp, Timestamp)> {
        let mut from = after
            .checked_sub(jiff::SignedDuration::try_from(self.random_delay).ok()?)
            .unwrap_or(after);
        let mut best: Option<(Timestamp, Timestamp)> = None;
        for _ in 0..MAX_LOOKAHEAD {
            let Some(occurrence) = self.next_after(from) else {
                break;
            };
            // Every later occurrence starts at or after itself: none can beat `best` now.
            if best.is_some_and(|(_, start)| occurrence >= start) {
                break;
            }
            let start = jiff::SignedDuration::try_from(self.delay_for(occurrence))
                .ok()
                .and_then(|delay| occurrence.checked_add(delay).ok())
                .unwrap_or(occurrence);
            if start > after && best.is_none_or(|(_, best_start)| start < best_start) {
                best = Some((occurrence, start));
            }
            from = occurrence;
        }
        best
    }
}

/// What a schedule keeps across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleState {
    pub paused: bool,
    pub last_run: Option<Timestamp>,
    pub last_rollout_id: Option<String>,
}

/// Where schedule states are kept (the daemon's data dir).
pub trait ScheduleStore: Send + Sync + 'static {
    /// Saves every schedule's state; called after each change, before it is reported.
    fn save(&self, states: &BTreeMap<String, ScheduleState>);
    /// A schedule started `rollout_id` (for the audit trail).
    fn triggered(&self, schedule: &str, rollout_id: &str);
}

/// What `Schedules::set_specs` changed, by schedule name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScheduleChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// A schedule as of now.
#[derive(Debug, Clone)]
pub struct ScheduleStatus {
    pub spec: Arc<ScheduleSpec>,
    pub state: ScheduleState,
    /// `None` when disabled or paused.
    pub next_run: Option<Timestamp>,
}

struct Inner {
    fleet: Fleet,
    /// Replaced whole by a config reload (`Schedules::set_specs`).
    specs: Mutex<Vec<Arc<ScheduleSpec>>>,
    states: Mutex<BTreeMap<String, ScheduleState>>,
    store: Arc<dyn ScheduleStore>,
    /// The runner looks again (pause, resume).
    wake: Notify,
    /// Where the runner has looked up to.
    cursor: Mutex<Timestamp>,
}

/// The schedules and their runner. Cheap to clone.
#[derive(Clone)]
pub struct Schedules {
    inner: Arc<Inner>,
    runner: Arc<Mutex<Option<JoinHandle<()>>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Schedules {
    /// Starts the runner over `specs` with the states an earlier run saved (`saved`); runs
    /// the catch-up of missed runs first.
    pub fn start(
        fleet: Fleet,
        specs: Vec<ScheduleSpec>,
        saved: BTreeMap<String, ScheduleState>,
        store: Arc<dyn ScheduleStore>,
    ) -> Schedules {
        let now = clock::now();
        let mut saved = saved;
        let states = specs
            .iter()
            .map(|spec| {
                let state = saved.remove(&spec.name).unwrap_or_default();
                (spec.name.clone(), state)
            })
            .collect();
        let inner = Arc::new(Inner {
            fleet,
            specs: Mutex::new(specs.into_iter().map(Arc::new).collect()),
            states: Mutex::new(states),
            store,
            wake: Notify::new(),
            cursor: Mutex::new(now),
        });
        let runner = tokio::spawn(Arc::clone(&inner).run(now));
        Schedules {
            inner,
            runner: Arc::new(Mutex::new(Some(runner))),
        }
    }

    /// Every schedule, in config order.
    pub fn list(&self) -> Vec<ScheduleStatus> {
        self.inner
            .specs()
            .iter()
            .map(|spec| self.inner.status(spec))
            .collect()
    }

    pub fn get(&self, name: &str) -> Result<ScheduleStatus, FleetError> {
        Ok(self.inner.status(&self.inner.spec(name)?))
    }

    /// Replaces the schedules (a config reload): ones that keep their name keep their state
    /// (paused, last run), new ones start unpaused, removed ones are forgotten; the runner
    /// looks again at once. A run already started is not touched. Returns the names added,
    /// removed and changed.
    pub fn set_specs(&self, specs: Vec<ScheduleSpec>) -> ScheduleChanges {
        let mut changes = ScheduleChanges::default();
        let new: Vec<Arc<ScheduleSpec>> = specs.into_iter().map(Arc::new).collect();
        {
            let mut current = lock(&self.inner.specs);
            for spec in &new {
                match current.iter().find(|old| old.name == spec.name) {
                    None => changes.added.push(spec.name.clone()),
                    Some(old) if !old.same_as(spec) => changes.changed.push(spec.name.clone()),
                    Some(_) => {}
                }
            }
            for old in current.iter() {
                if !new.iter().any(|spec| spec.name == old.name) {
                    changes.removed.push(old.name.clone());
                }
            }
            *current = new;
        }
        let states = {
            let specs = self.inner.specs();
            let mut states = lock(&self.inner.states);
            states.retain(|name, _| specs.iter().any(|spec| spec.name == *name));
            for spec in &specs {
                states.entry(spec.name.clone()).or_default();
            }
            states.clone()
        };
        self.inner.store.save(&states);
        self.inner.wake.notify_one();
        changes
    }

    /// Starts a run now, whether the schedule is enabled, paused or neither.
    pub async fn run_now(&self, name: &str) -> Result<RolloutSnapshot, FleetError> {
        let spec = self.inner.spec(name)?;
        self.inner.fire(&spec, clock::now()).await
    }

    /// Pauses the schedule (kept across restarts); its runs stop until resumed.
    pub fn pause(&self, name: &str) -> Result<ScheduleStatus, FleetError> {
        self.set_paused(name, true)
    }

    pub fn resume(&self, name: &str) -> Result<ScheduleStatus, FleetError> {
        self.set_paused(name, false)
    }

    fn set_paused(&self, name: &str, paused: bool) -> Result<ScheduleStatus, FleetError> {
        let spec = self.inner.spec(name)?;
        self.inner.change(name, |state| state.paused = paused);
        self.inner.wake.notify_one();
        Ok(self.inner.status(&spec))
    }

    /// Stops the runner (the daemon is shutting down).
    pub fn stop(&self) {
        if let Some(runner) = lock(&self.runner).take() {
            runner.abort();
        }
    }
}

impl Inner {
    /// The schedules as of now (a reload may replace them at any await).
    fn specs(&self) -> Vec<Arc<ScheduleSpec>> {
        lock(&self.specs).clone()
    }

    fn spec(&self, name: &str) -> Result<Arc<ScheduleSpec>, FleetError> {
        lock(&self.specs)
            .iter()
            .find(|spec| spec.name == name)
            .cloned()
            .ok_or_else(|| FleetError::NotFound {
                kind: "schedule",
                name: name.to_owned(),
            })
    }

    fn state(&self, name: &str) -> ScheduleState {
        lock(&self.states).get(name).cloned().unwrap_or_default()
    }

    fn active(&self, spec: &ScheduleSpec) -> bool {
        spec.enabled && !self.state(&spec.name).paused
    }

    fn status(&self, spec: &Arc<ScheduleSpec>) -> ScheduleStatus {
        let cursor = *lock(&self.cursor);
        let after = cursor.max(clock::now());
        ScheduleStatus {
            spec: Arc::clone(spec),
            state: self.state(&spec.name),
            next_run: if self.active(spec) {
                spec.next_due_after(after).map(|(_, start)| start)
            } else {
                None
            },
        }
    }

    /// Changes one state and saves them all.
    fn change(&self, name: &str, change: impl FnOnce(&mut ScheduleState)) {
        let states = {
            let mut states = lock(&self.states);
            change(states.entry(name.to_owned()).or_default());
            states.clone()
        };
        self.store.save(&states);
    }

    /// Starts `spec`'s rollout through the fleet, as the API would.
    async fn fire(
        &self,
        spec: &ScheduleSpec,
        at: Timestamp,
    ) -> Result<RolloutSnapshot, FleetError> {
        let result = match spec.action {
            RolloutKind::Check => {
                self.fleet
                    .fleet_check_by(spec.request.filter.clone(), spec.request.trigger.clone())
                    .await
            }
            RolloutKind::Update => self.fleet.fleet_update(spec.request.clone()).await,
        };
        let rollout_id = result.as_ref().ok().map(|rollout| rollout.id.clone());
        self.change(&spec.name, |state| {
            state.last_run = Some(at);
            if rollout_id.is_some() {
                state.last_rollout_id.clone_from(&rollout_id);
            }
        });
        match &result {
            Ok(rollout) => {
                tracing::info!(schedule = %spec.name, rollout_id = %rollout.id, "schedule started its rollout");
                self.store.triggered(&spec.name, &rollout.id);
            }
            Err(err) => {
                tracing::warn!(schedule = %spec.name, %err, "schedule could not start its rollout");
            }
        }
        result
    }

    /// Catch-up at start, then one look per occurrence.
    async fn run(self: Arc<Self>, started: Timestamp) {
        for spec in &self.specs() {
            let last_run = self.state(&spec.name).last_run;
            let missed = last_run
                .and_then(|last| spec.next_due_after(last))
                .is_some_and(|(_, start)| start <= started);
            if spec.catch_up && self.active(spec) && missed {
                tracing::info!(schedule = %spec.name, "running a run missed while the daemon was down (catch_up)");
                let _ = self.fire(spec, started).await;
            }
        }
        loop {
            let wake = self.wake.notified();
            let now = clock::now();
            let cursor = {
                let mut cursor = lock(&self.cursor);
                // The clock went back: look from the new time on.
                if now < *cursor {
                    *cursor = now;
                }
                *cursor
            };
            let next = self
                .specs()
                .iter()
                .filter(|spec| self.active(spec))
                .filter_map(|spec| spec.next_due_after(cursor).map(|(_, start)| start))
                .min();
            let Some(next) = next else {
                wake.await;
                continue;
            };
            tokio::select! {
                reached = clock::nap_until(next) => if !reached {
                    continue;
                },
                () = wake => continue,
            }
            let now = clock::now();
            for spec in &self.specs() {
                if !self.active(spec) {
                    continue;
                }
                let Some((_, due)) = spec.next_due_after(cursor).filter(|(_, due)| *due <= now)
                else {
                    continue;
                };
                let late = Duration::try_from(now.duration_since(due)).unwrap_or_default();
                if late > LATE_LIMIT {
                    tracing::warn!(schedule = %spec.name, due = %due, "run missed (the clock jumped past it)");
                    continue;
                }
                let _ = self.fire(spec, due).await;
            }
            *lock(&self.cursor) = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use jiff::Timestamp;
    use jiff::tz::TimeZone;

    use crate::model::{HostFilter, MaxFailures, Packages, RolloutKind, RolloutRequest, Trigger};
    use crate::schedule::{ScheduleSpec, parse_cron};

    fn spec(name: &str, cron: &str, random_delay: Duration) -> ScheduleSpec {
        ScheduleSpec {
            name: name.to_owned(),
            enabled: true,
            cron_text: cron.to_owned(),
            cron: parse_cron(cron).unwrap(),
            timezone: TimeZone::UTC,
            timezone_name: "UTC".to_owned(),
            action: RolloutKind::Check,
            request: RolloutRequest {
                batch_size: usize::MAX,
                delay: Duration::ZERO,
                max_failures: MaxFailures::Count(0),
                canary: Vec::new(),
                filter: HostFilter::default(),
                dry_run: false,
                force: false,
                approve_after: None,
                approval_timeout: None,
                packages: Packages::All,
                reboot: None,
                defer_outside_window: true,
                window_grace: Duration::from_secs(3600),
                trigger: Trigger::Schedule(name.to_owned()),
            },
            catch_up: false,
            random_delay,
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_random_delay_moves_each_run_within_it_and_stays_put_when_asked_again() {
        let hour = Duration::from_secs(3600);
        let nightly = spec("nightly", "0 3 * * *", hour);
        let mut delays = Vec::new();
        let mut after = at("2026-11-20T12:00:00Z");
        for _ in 0..30 {
            let (occurrence, start) = nightly.next_due_after(after).unwrap();
            assert_eq!(occurrence.to_string()[11..], *"03:00:00Z", "{occurrence}");
            let delay = Duration::try_from(start.duration_since(occurrence)).unwrap();
            assert!(delay < hour, "{delay:?}");
            assert_eq!(nightly.delay_for(occurrence), delay, "asked again");
            // Asked from inside the delay, the same run is still ahead.
            let inside = occurrence
                .checked_add(jiff::SignedDuration::from_secs(1))
                .unwrap();
            if start > inside {
                assert_eq!(nightly.next_due_after(inside), Some((occurrence, start)));
            }
            delays.push(delay);
            after = start;
        }
        delays.sort();
        delays.dedup();
        assert!(
            delays.len() > 20,
            "30 nights, {} distinct delays",
            delays.len()
        );
        // Another schedule at the same cron time starts at other instants.
        let other = spec("other", "0 3 * * *", hour);
        let first = nightly.next_due_after(at("2026-11-20T12:00:00Z")).unwrap();
        assert_ne!(
            other.next_due_after(at("2026-11-20T12:00:00Z")).unwrap(),
            first
        );
        // Without a delay, runs start at their cron time.
        let exact = spec("nightly", "0 3 * * *", Duration::ZERO);
        let (occurrence, start) = exact.next_due_after(at("2026-11-20T12:00:00Z")).unwrap();
        assert_eq!(
            (occurrence, start),
            (at("2026-11-21T03:00:00Z"), at("2026-11-21T03:00:00Z"))
        );
    }

    #[test]
    fn a_delay_longer_than_the_interval_still_gives_the_earliest_start() {
        let every_minute = spec("busy", "* * * * *", Duration::from_secs(600));
        let after = at("2026-11-20T12:00:30Z");
        let (_, start) = every_minute.next_due_after(after).unwrap();
        assert!(start > after);
        // No occurrence within ten minutes either way starts between `after` and `start`.
        let mut occurrence = at("2026-11-20T11:50:00Z");
        while occurrence < at("2026-11-20T12:10:00Z") {
            let delay = jiff::SignedDuration::try_from(every_minute.delay_for(occurrence)).unwrap();
            let its_start = occurrence.checked_add(delay).unwrap();
            assert!(
                its_start <= after || its_start >= start,
                "{occurrence} starts at {its_start}, before {start}"
            );
            occurrence = occurrence
                .checked_add(jiff::SignedDuration::from_secs(60))
                .unwrap();
        }
    }

    fn next(cron: &str, tz: &str, after: &str) -> String {
        let cron = parse_cron(cron).unwrap();
        let zoned = after
            .parse::<Timestamp>()
            .unwrap()
            .to_zoned(TimeZone::get(tz).unwrap());
        cron.find_next_occurrence(&zoned, false)
            .unwrap()
            .timestamp()
            .to_string()
    }

    #[test]
    fn five_fields_or_a_nickname_in_a_time_zone() {
        assert_eq!(
            next("0 3 * * *", "Europe/Berlin", "2026-11-20T12:00:00Z"),
            "2026-11-21T02:00:00Z"
        );
        assert_eq!(
            next("@daily", "UTC", "2026-11-20T12:00:00Z"),
            "2026-11-21T00:00:00Z"
        );
        assert_eq!(
            next("30 4 * * sun", "UTC", "2026-11-20T12:00:00Z"),
            "2026-11-22T04:30:00Z"
        );
        assert_eq!(
            next("* * * * *", "UTC", "2026-11-20T12:00:00Z"),
            "2026-11-20T12:01:00Z"
        );
        // DST: Berlin goes from +01 to +02 on 2027-03-28.
        assert_eq!(
            next("0 3 * * *", "Europe/Berlin", "2027-03-28T00:30:00Z"),
            "2027-03-28T01:00:00Z"
        );
        for bad in [
            "* * * *",
            "0 0 * * * *",
            "61 * * * *",
            "@sometimes",
            "x y z a b",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad}");
        }
    }
}
