//! `[[schedule]]` tables: the raw TOML shape and its validation into the core's
//! `ScheduleSpec` (cron through `tendhost_core::schedule::parse_cron`, an IANA time zone,
//! the `POST /fleet/update` fields with the same names, `reboot`, `window_grace`,
//! `catch_up`, `random_delay`, `enabled`, the approval gate `approve_after`/`approval_timeout`).
//! Every problem is reported at its `file:line:col`.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use tendhost_core::model::{
    self, DEFAULT_WINDOW_GRACE, HostFilter, MaxFailures, Packages, RebootChoice, RolloutKind,
    RolloutRequest, Trigger,
};
use tendhost_core::schedule::{ScheduleSpec, parse_cron};
use tendhost_core::spec::HostSpec;
use toml::Spanned;

use crate::config::Validator;
use crate::host_rules;

/// The longest `delay_ms`: one day (as `POST /fleet/update`).
const MAX_DELAY_MS: u64 = 24 * 60 * 60 * 1000;
/// The longest `window_grace`: a week.
const MAX_WINDOW_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest `random_delay`: a day.
const MAX_RANDOM_DELAY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub name: Spanned<String>,
    pub enabled: Option<bool>,
    pub cron: Spanned<String>,
    pub timezone: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    #[serde(default)]
    pub filter: RawFilter,
    pub packages: Option<Spanned<RawPackages>>,
    pub batch_size: Option<Spanned<i64>>,
    #[serde(default)]
    pub canary: Vec<Spanned<String>>,
    pub max_failures: Option<Spanned<RawMaxFailures>>,
    pub delay_ms: Option<Spanned<i64>>,
    pub reboot: Option<Spanned<String>>,
    pub window_grace: Option<Spanned<String>>,
    pub approve_after: Option<Spanned<tendhost_api::gates::ApproveAfter>>,
    pub approval_timeout: Option<Spanned<String>>,
    pub catch_up: Option<bool>,
    pub random_delay: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub exclude_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawPackages {
    Word(String),
    Names(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawMaxFailures {
    Count(i64),
    Percent(String),
}

fn names(list: &[Spanned<String>]) -> Vec<String> {
    list.iter().map(|item| item.get_ref().clone()).collect()
}

impl Validator<'_> {
    pub(crate) fn schedules(
        &mut self,
        raw: Vec<RawSchedule>,
        hosts: &[HostSpec],
        groups: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Vec<ScheduleSpec> {
        let mut seen = HashSet::new();
        let mut schedules = Vec::new();
        for raw in raw {
            let name = raw.name.get_ref().clone();
            if !tendhost_core::spec::is_valid_host_name(&name) {
                self.error(
                    &raw.name.span(),
                    format!(
                        "schedule name {name:?} must be 1-63 characters of letters, digits, \
                         '-', '_' or '.'"
                    ),
                );
                continue;
            }
            if !seen.insert(name.clone()) {
                self.error(
                    &raw.name.span(),
                    format!("schedule {name:?} is defined twice"),
                );
                continue;
            }
            if let Some(spec) = self.schedule(&raw, name, hosts, groups) {
                schedules.push(spec);
            }
        }
        schedules
    }

    fn schedule(
        &mut self,
        raw: &RawSchedule,
        name: String,
        hosts: &[HostSpec],
        groups: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Option<ScheduleSpec> {
        let n_errors = self.diagnostics.len();
        let cron = parse_cron(raw.cron.get_ref())
            .map_err(|message| self.error(&raw.cron.span(), message))
            .ok();
        let (timezone, timezone_name) = self.schedule_timezone(raw.timezone.as_ref());
        let action = match raw.action.as_ref().map(|a| a.get_ref().as_str()) {
            None | Some("update") => RolloutKind::Update,
            Some("check") => RolloutKind::Check,
            Some(other) => {
                let span = raw.action.as_ref().map(Spanned::span).unwrap_or_default();
                self.error(
                    &span,
                    format!("action {other:?} must be \"check\" or \"update\""),
                );
                RolloutKind::Update
            }
        };
        let filter = self.schedule_filter(&raw.filter, hosts, groups);
        let packages = raw
            .packages
            .as_ref()
            .map_or(Packages::All, |packages| self.schedule_packages(packages));
        let batch_size = raw
            .batch_size
            .as_ref()
            .and_then(|size| self.int_in_range(size, 1, 100_000, "batch_size"))
            .map_or(1, |size| usize::try_from(size).unwrap_or(1));
        let delay_ms = raw
            .delay_ms
            .as_ref()
            .and_then(|delay| {
                let max = i64::try_from(MAX_DELAY_MS).unwrap_or(i64::MAX);
                self.int_in_range(delay, 0, max, "delay_ms")
            })
            .map_or(0, |delay| u64::try_from(delay).unwrap_or(0));
        let max_failures = match &raw.max_failures {
            None => MaxFailures::Count(0),
            Some(value) => match value.get_ref() {
                RawMaxFailures::Count(count) if *count >= 0 => {
                    MaxFailures::Count(usize::try_from(*count).unwrap_or(usize::MAX))
                }
                RawMaxFailures::Percent(text) if MaxFailures::parse_percent(text).is_some() => {
                    MaxFailures::parse_percent(text).unwrap_or(MaxFailures::Count(0))
                }
                _ => {
                    self.error(
                        &value.span(),
                        "max_failures must be a non-negative integer or a percentage from \"0%\" to \"100%\"".to_owned(),
                    );
                    MaxFailures::Count(0)
                }
            },
        };
        let reboot = raw.reboot.as_ref().and_then(|reboot| {
            let choice = RebootChoice::parse(reboot.get_ref());
            if choice.is_none() {
                self.error(
                    &reboot.span(),
                    format!(
                        "reboot {:?} must be \"never\", \"if_required\" or \"always\"",
                        reboot.get_ref()
                    ),
                );
            }
            choice
        });
        let window_grace = raw
            .window_grace
            .as_ref()
            .map_or(DEFAULT_WINDOW_GRACE, |grace| {
                host_rules::duration_reason(grace.get_ref(), MAX_WINDOW_GRACE)
                    .map_err(|reason| self.error(&grace.span(), format!("window_grace {reason}")))
                    .unwrap_or(DEFAULT_WINDOW_GRACE)
            });
        let random_delay = raw.random_delay.as_ref().map_or(Duration::ZERO, |delay| {
            host_rules::duration_reason(delay.get_ref(), MAX_RANDOM_DELAY)
                .map_err(|reason| self.error(&delay.span(), format!("random_delay {reason}")))
                .unwrap_or(Duration::ZERO)
        });
        let canary = names(&raw.canary);
        for (canary_name, item) in canary.iter().zip(&raw.canary) {
            if !hosts.iter().any(|host| host.name == *canary_name) {
                self.error(
                    &item.span(),
                    format!("canary names unknown host {canary_name:?}"),
                );
            }
        }
        let (approve_after, approval_timeout) = self.schedule_gate(raw, action, &canary);
        if self.diagnostics.len() > n_errors {
            return None;
        }
        Some(ScheduleSpec {
            request: RolloutRequest {
                batch_size,
                delay: Duration::from_millis(delay_ms),
                max_failures,
                canary,
                filter,
                dry_run: false,
                force: false,
                packages,
                reboot,
                defer_outside_window: true,
                window_grace,
                trigger: Trigger::Schedule(name.clone()),
                approve_after,
                approval_timeout,
            },
            name,
            enabled: raw.enabled.unwrap_or(true),
            cron_text: raw.cron.get_ref().clone(),
            cron: cron?,
            timezone,
            timezone_name,
            action,
            catch_up: raw.catch_up.unwrap_or(false),
            random_delay,
        })
    }

    /// `approve_after` and `approval_timeout`, as in `POST /fleet/update`: only for updates,
    /// `"canary"` only with `canary` hosts. Whether a batch index is not the last batch is
    /// known when the run plans its batches (a run that does not fit is logged, not started).
    fn schedule_gate(
        &mut self,
        raw: &RawSchedule,
        action: RolloutKind,
        canary: &[String],
    ) -> (Option<model::ApproveAfter>, Option<Duration>) {
        let approve_after = raw.approve_after.as_ref().map(|gate| {
            let wrong = match (action, gate.get_ref()) {
                (RolloutKind::Check, _) => Some("is for action \"update\" only"),
                (_, tendhost_api::gates::ApproveAfter::Canary) if canary.is_empty() => {
                    Some("\"canary\" needs canary hosts")
                }
                _ => None,
            };
            if let Some(wrong) = wrong {
                self.error(&gate.span(), format!("approve_after {wrong}"));
            }
            host_rules::approve_after(*gate.get_ref())
        });
        let approval_timeout = raw.approval_timeout.as_ref().and_then(|timeout| {
            if approve_after.is_none() {
                self.error(
                    &timeout.span(),
                    "approval_timeout needs approve_after".to_owned(),
                );
            }
            host_rules::duration_reason(timeout.get_ref(), host_rules::MAX_APPROVAL_TIMEOUT)
                .map_err(|reason| {
                    self.error(&timeout.span(), format!("approval_timeout {reason}"));
                })
                .ok()
        });
        (approve_after, approval_timeout)
    }

    /// The IANA zone named, or the system's (UTC when it has no IANA name).
    fn schedule_timezone(&mut self, raw: Option<&Spanned<String>>) -> (jiff::tz::TimeZone, String) {
        let Some(tz) = raw else {
            let zone = jiff::tz::TimeZone::system();
            let zone_name = zone.iana_name().unwrap_or("UTC").to_owned();
            return (zone, zone_name);
        };
        if let Ok(zone) = jiff::tz::TimeZone::get(tz.get_ref()) {
            return (zone, tz.get_ref().clone());
        }
        self.error(
            &tz.span(),
            format!(
                "timezone {:?} is not an IANA time zone name (like \"Europe/Berlin\" or \"UTC\")",
                tz.get_ref()
            ),
        );
        (jiff::tz::TimeZone::UTC, String::new())
    }

    fn schedule_filter(
        &mut self,
        raw: &RawFilter,
        hosts: &[HostSpec],
        groups: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> HostFilter {
        for item in raw.hosts.iter().chain(&raw.exclude_hosts) {
            if !hosts.iter().any(|host| host.name == *item.get_ref()) {
                self.error(
                    &item.span(),
                    format!("filter names unknown host {:?}", item.get_ref()),
                );
            }
        }
        for item in &raw.groups {
            if !groups.contains_key(item.get_ref()) {
                self.error(
                    &item.span(),
                    format!("filter names unknown group {:?}", item.get_ref()),
                );
            }
        }
        model::HostFilter {
            tags: names(&raw.tags),
            groups: names(&raw.groups),
            exclude_hosts: names(&raw.exclude_hosts),
            hosts: names(&raw.hosts),
        }
    }

    fn schedule_packages(&mut self, raw: &Spanned<RawPackages>) -> Packages {
        match raw.get_ref() {
            RawPackages::Word(word) if word == "all" => Packages::All,
            RawPackages::Word(word) if word == "security" => Packages::Security,
            RawPackages::Word(word) => {
                self.error(
                    &raw.span(),
                    format!(
                        "packages {word:?} must be \"all\", \"security\" or a list of package names"
                    ),
                );
                Packages::All
            }
            RawPackages::Names(list) if list.is_empty() => {
                self.error(
                    &raw.span(),
                    "packages must not be an empty list (leave it out for all)".to_owned(),
                );
                Packages::All
            }
            RawPackages::Names(list) => {
                for name in list {
                    if let Err(message) = tendhost_pkg::selection::validate_name(name) {
                        self.error(&raw.span(), format!("packages: {message}"));
                    }
                }
                Packages::Names(list.clone())
            }
        }
    }
}
