//! Fleet operation wire types: the bodies of `POST /fleet/check` and `POST /fleet/update`
//! (with `max_failures`, an integer or `"N%"`), their `202` answer, `GET /rollouts/{id}`, the
//! items and query parameters of `GET /rollouts`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{IntoParams, ToSchema};

use crate::pagination::Pagination;

/// Which hosts a fleet operation targets. Every field is optional; empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tags": ["web"], "groups": ["frontend"], "exclude_hosts": ["web-09"], "hosts": []}))]
pub struct HostFilter {
    /// Hosts must carry all these tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Hosts must be in at least one of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Never these hosts.
    #[serde(default)]
    pub exclude_hosts: Vec<String>,
    /// Only these hosts.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// How many failed hosts a rollout tolerates: a count (`2`) or a percentage of the targeted
/// hosts (`"10%"`, rounded down). The rollout stops when failures are strictly greater;
/// `unreachable` counts as a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxFailures {
    Count(u64),
    /// 0 to 100.
    Percent(u8),
}

impl Default for MaxFailures {
    fn default() -> Self {
        MaxFailures::Count(0)
    }
}

impl Serialize for MaxFailures {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxFailures::Count(count) => serializer.serialize_u64(*count),
            MaxFailures::Percent(percent) => serializer.collect_str(&format_args!("{percent}%")),
        }
    }
}

impl<'de> Deserialize<'de> for MaxFailures {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(MaxFailuresVisitor)
    }
}

struct MaxFailuresVisitor;

impl Visitor<'_> for MaxFailuresVisitor {
    type Value = MaxFailures;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a percentage from \"0%\" to \"100%\"")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<MaxFailures, E> {
        Ok(MaxFailures::Count(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<MaxFailures, E> {
        u64::try_from(value)
            .map(MaxFailures::Count)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<MaxFailures, E> {
        value
            .strip_suffix('%')
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u8>().ok())
            .filter(|percent| *percent <= 100)
            .map(MaxFailures::Percent)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(value), &self))
    }
}

impl utoipa::PartialSchema for MaxFailures {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .description(Some("Failed hosts tolerated")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^(100|[1-9]?[0-9])%$"))
                    .description(Some(
                        "Percentage of the targeted hosts tolerated, rounded down",
                    )),
            )
            .description(Some(
                "How many failed hosts a rollout tolerates: a count or a percentage of the \
                 targeted hosts. The rollout stops when failures are strictly greater; \
                 `unreachable` counts as a failure.",
            ))
            .examples([serde_json::json!(1), serde_json::json!("10%")])
            .into()
    }
}

impl ToSchema for MaxFailures {}

/// `POST /fleet/check` (the body is optional: no body checks every host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"filter": {"tags": ["web"]}}))]
pub struct FleetCheckRequest {
    #[serde(default)]
    pub filter: HostFilter,
}

/// `POST /fleet/update`: a rolling update. Omitted fields take the defaults shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "batch_size": 2,
    "delay_ms": 30000,
    "max_failures": "10%",
    "canary": ["web-01"],
    "filter": {"tags": ["web"], "exclude_hosts": ["web-09"]},
    "dry_run": false,
    "force": false
}))]
pub struct FleetUpdateRequest {
    /// Hosts updated at once, after the canary batch (like Ansible's `serial`). Default 1.
    #[serde(default = "default_batch_size")]
    #[schema(minimum = 1, default = 1)]
    pub batch_size: u32,
    /// Pause between batches, in milliseconds (at most one day). Default 0.
    #[serde(default)]
    #[schema(maximum = 86_400_000, default = 0)]
    pub delay_ms: u64,
    /// Default 0: stop at the first failure.
    #[serde(default)]
    pub max_failures: MaxFailures,
    /// Hosts updated first, as their own batch; each must be among the targets.
    #[serde(default)]
    pub canary: Vec<String>,
    #[serde(default)]
    pub filter: HostFilter,
    /// Only show what each host would upgrade; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Update hosts outside their maintenance window too (otherwise they are skipped).
    #[serde(default)]
    pub force: bool,
    /// What each host installs. Default `"all"`.
    #[serde(default)]
    pub packages: crate::schedules::Packages,
    /// Hosts outside their maintenance window wait (`deferred`) until it opens, for at most
    /// 24 hours, instead of being skipped.
    #[serde(default)]
    pub defer_outside_window: bool,
}

fn default_batch_size() -> u32 {
    1
}

/// What a rollout runs on each host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutKind {
    Check,
    Update,
}

/// Rollout lifecycle: `stopped` means failures exceeded `max_failures`; `interrupted` that the
/// daemon stopped while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Running,
    Completed,
    Stopped,
    Cancelled,
    Interrupted,
}

/// A host's place in a rollout (`skipped` and `failed` come with a `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RolloutHostState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
    /// Outside its maintenance window; updated when it opens (within the run's
    /// `window_grace`), else `skipped` with reason `window_not_open`.
    Deferred,
}

/// A batch's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    Pending,
    Running,
    Finished,
    Skipped,
}

/// One batch of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"index": 0, "hosts": ["web-01"], "canary": true, "state": "finished"}))]
pub struct RolloutBatch {
    /// From 0, in the order the batches run.
    pub index: usize,
    pub hosts: Vec<String>,
    /// The canary batch (always first).
    pub canary: bool,
    pub state: BatchState,
}

/// One host of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"host": "web-02", "batch": 1, "state": "skipped", "job_id": null,
                          "reason": "outside its maintenance window (02:00-04:00 on sat)"}))]
pub struct RolloutHost {
    pub host: String,
    /// Index of its batch.
    pub batch: usize,
    pub state: RolloutHostState,
    /// The host's job, once started.
    pub job_id: Option<String>,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
}

/// Hosts of a rollout by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"pending": 0, "running": 2, "succeeded": 3, "failed": 0, "skipped": 1, "cancelled": 0, "deferred": 0}))]
pub struct RolloutCounts {
    pub pending: usize,
    pub running: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
    pub cancelled: usize,
    pub deferred: usize,
}

/// `202` answer of `POST /fleet/check` and `POST /fleet/update`: the rollout runs in the
/// background (`GET /rollouts/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "rollout_id": "rollout-18f3a2b4c60-18",
    "kind": "update",
    "hosts": ["web-01", "web-02", "web-03"],
    "batches": [
        {"index": 0, "hosts": ["web-01"], "canary": true, "state": "pending"},
        {"index": 1, "hosts": ["web-02", "web-03"], "canary": false, "state": "pending"}
    ]
}))]
pub struct RolloutAccepted {
    pub rollout_id: String,
    pub kind: RolloutKind,
    /// The targeted hosts, in the order they run.
    pub hosts: Vec<String>,
    pub batches: Vec<RolloutBatch>,
}

/// `GET /rollouts/{id}`: a rollout with its settings and per-batch, per-host status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "rollout-18f3a2b4c60-18",
    "kind": "update",
    "state": "running",
    "created_at": "2026-05-02T03:00:00Z",
    "finished_at": null,
    "batch_size": 2,
    "delay_ms": 30000,
    "max_failures": "10%",
    "canary": ["web-01"],
    "filter": {"tags": ["web"], "groups": [], "exclude_hosts": [], "hosts": []},
    "dry_run": false,
    "force": false,
    "packages": "all",
    "reboot": null,
    "trigger": {"api": "ops"},
    "n_failed": 0,
    "counts": {"pending": 0, "running": 2, "succeeded": 1, "failed": 0, "skipped": 0, "cancelled": 0, "deferred": 0},
    "batches": [
        {"index": 0, "hosts": ["web-01"], "canary": true, "state": "finished"},
        {"index": 1, "hosts": ["web-02", "web-03"], "canary": false, "state": "running"}
    ],
    "hosts": [
        {"host": "web-01", "batch": 0, "state": "succeeded", "job_id": "job-18f3a2b4c61-19", "reason": null},
        {"host": "web-02", "batch": 1, "state": "running", "job_id": "job-18f3a2b4c99-20", "reason": null},
        {"host": "web-03", "batch": 1, "state": "running", "job_id": "job-18f3a2b4c99-21", "reason": null}
    ]
}))]
pub struct Rollout {
    pub id: String,
    pub kind: RolloutKind,
    pub state: RolloutState,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339; null while running.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// For a fleet check: the number of targeted hosts (one batch).
    pub batch_size: u64,
    pub delay_ms: u64,
    pub max_failures: MaxFailures,
    pub canary: Vec<String>,
    pub filter: HostFilter,
    pub dry_run: bool,
    pub force: bool,
    /// What each host installs.
    pub packages: crate::schedules::Packages,
    /// For this run, instead of each host's `auto_reboot`; null keeps it.
    pub reboot: Option<crate::schedules::RebootChoice>,
    /// Who started it.
    pub trigger: crate::schedules::Trigger,
    /// Failures counted against `max_failures`.
    pub n_failed: usize,
    pub counts: RolloutCounts,
    pub batches: Vec<RolloutBatch>,
    pub hosts: Vec<RolloutHost>,
}

/// A rollout in `GET /rollouts` (without per-host detail).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "rollout-18f3a2b4c60-18",
    "kind": "update",
    "state": "completed",
    "created_at": "2026-05-02T03:00:00Z",
    "finished_at": "2026-05-02T03:09:12Z",
    "dry_run": false,
    "trigger": {"schedule": "weekly"},
    "n_hosts": 3,
    "n_batches": 2,
    "n_failed": 0,
    "counts": {"pending": 0, "running": 0, "succeeded": 3, "failed": 0, "skipped": 0, "cancelled": 0, "deferred": 0}
}))]
pub struct RolloutSummary {
    pub id: String,
    pub kind: RolloutKind,
    pub state: RolloutState,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339; null while running.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub dry_run: bool,
    /// Who started it.
    pub trigger: crate::schedules::Trigger,
    pub n_hosts: usize,
    pub n_batches: usize,
    /// Failures counted against `max_failures`.
    pub n_failed: usize,
    pub counts: RolloutCounts,
}

/// `GET /rollouts`: one page of rollouts, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RolloutList {
    pub data: Vec<RolloutSummary>,
    pub pagination: Pagination,
}

/// Query parameters of `GET /rollouts`. Unknown parameters are refused (422).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RolloutListQuery {
    /// Page number, from 1.
    #[param(minimum = 1, default = 1, example = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 200.
    #[param(minimum = 1, maximum = 200, default = 50, example = 50)]
    pub per_page: Option<u32>,
    /// Only rollouts in this state.
    #[param(inline)]
    pub state: Option<RolloutState>,
}

#[cfg(test)]
mod tests {
    use crate::rollouts::{FleetUpdateRequest, MaxFailures};

    fn max_failures(json: &str) -> Result<MaxFailures, String> {
        serde_json::from_str(json).map_err(|err| err.to_string())
    }

    #[test]
    fn max_failures_is_a_count_or_a_percentage() {
        assert_eq!(max_failures("0"), Ok(MaxFailures::Count(0)));
        assert_eq!(max_failures("3"), Ok(MaxFailures::Count(3)));
        assert_eq!(max_failures("\"0%\""), Ok(MaxFailures::Percent(0)));
        assert_eq!(max_failures("\"25%\""), Ok(MaxFailures::Percent(25)));
        assert_eq!(max_failures("\"100%\""), Ok(MaxFailures::Percent(100)));
        for bad in [
            "-1", "1.5", "true", "null", "\"101%\"", "\"%\"", "\"5\"", "\"-5%\"", "\" 5%\"",
            "\"5 %\"", "\"256%\"", "[1]",
        ] {
            let err = max_failures(bad).expect_err(bad);
            assert!(
                err.contains("a non-negative integer or a percentage"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn max_failures_serializes_as_written() {
        assert_eq!(serde_json::to_string(&MaxFailures::Count(2)).unwrap(), "2");
        assert_eq!(
            serde_json::to_string(&MaxFailures::Percent(10)).unwrap(),
            "\"10%\""
        );
    }

    #[test]
    fn fleet_update_defaults() {
        let request: FleetUpdateRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(request.batch_size, 1);
        assert_eq!(request.delay_ms, 0);
        assert_eq!(request.max_failures, MaxFailures::Count(0));
        assert!(!request.dry_run && !request.force && request.canary.is_empty());
        let err = serde_json::from_str::<FleetUpdateRequest>("{\"filter\": {\"tag\": []}}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `tag`"), "{err}");
    }
}
