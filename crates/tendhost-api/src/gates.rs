//! Wire types of a rollout's stop conditions: `approve_after` (`"canary"` or a batch index) and
//! the approval gate a waiting rollout shows, a host's last health check, and the processes
//! still running replaced code after an update (`services_to_restart`).

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

/// After which batch a rollout waits for approval: `"canary"` (the canary batch, so the
/// rollout needs `canary` hosts) or a batch index from 0 (as in `batches[].index`), which must
/// not be the last batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproveAfter {
    Canary,
    Batch(u64),
}

impl Serialize for ApproveAfter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ApproveAfter::Canary => serializer.serialize_str("canary"),
            ApproveAfter::Batch(index) => serializer.serialize_u64(*index),
        }
    }
}

impl<'de> Deserialize<'de> for ApproveAfter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ApproveAfterVisitor)
    }
}

struct ApproveAfterVisitor;

impl Visitor<'_> for ApproveAfterVisitor {
    type Value = ApproveAfter;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"canary\" or a batch index (a non-negative integer)")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ApproveAfter, E> {
        Ok(ApproveAfter::Batch(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ApproveAfter, E> {
        u64::try_from(value)
            .map(ApproveAfter::Batch)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<ApproveAfter, E> {
        if value == "canary" {
            Ok(ApproveAfter::Canary)
        } else {
            Err(E::invalid_value(de::Unexpected::Str(value), &self))
        }
    }
}

impl utoipa::PartialSchema for ApproveAfter {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["canary"]))
                    .description(Some("After the canary batch")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0))
                    .description(Some("After the batch with this index (from 0)")),
            )
            .description(Some(
                "After which batch the rollout waits in `awaiting_approval` for \
                 `POST /rollouts/{id}/approve`: `\"canary\"` or a batch index from 0 that is \
                 not the last batch.",
            ))
            .examples([serde_json::json!("canary"), serde_json::json!(1)])
            .into()
    }
}

impl ToSchema for ApproveAfter {}

/// A rollout waiting at its approval gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"after_batch": 0, "since": "2026-05-02T03:04:00Z", "deadline": "2026-05-03T03:04:00Z"}))]
pub struct ApprovalGate {
    /// The batch that finished before the gate.
    pub after_batch: usize,
    /// When the rollout started waiting (RFC 3339).
    #[schema(format = DateTime)]
    pub since: String,
    /// When it is cancelled unless approved (`approval_timeout`), RFC 3339; null: never.
    #[schema(format = DateTime)]
    pub deadline: Option<String>,
}

/// The last health check of a host (`health_check` in its config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"ok": false, "at": "2026-05-02T03:05:10Z", "job_id": "job-18f3a2b4c61-19",
    "output": "http http://127.0.0.1:8080/health: status 503 (expected 200)", "attempts": 3}))]
pub struct HealthCheck {
    pub ok: bool,
    /// When it ended (RFC 3339).
    #[schema(format = DateTime)]
    pub at: String,
    /// The job it ran in; null for a `pre_check` before an update.
    pub job_id: Option<String>,
    /// What the last attempt said (the command's output, or the HTTP status or error).
    pub output: String,
    /// Attempts made (at most `retries` + 1).
    pub attempts: u32,
}

/// A process that still maps a deleted or replaced library or binary after an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"pid": 812, "command": "nginx", "unit": "nginx.service"}))]
pub struct ServiceToRestart {
    pub pid: u32,
    /// The process name (`/proc/PID/comm`).
    pub command: String,
    /// Its systemd unit or init script, when needrestart could tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

#[cfg(test)]
mod tests {
    use crate::gates::ApproveAfter;

    #[test]
    fn approve_after_is_canary_or_a_batch_index() {
        let parse =
            |json: &str| serde_json::from_str::<ApproveAfter>(json).map_err(|e| e.to_string());
        assert_eq!(parse("\"canary\""), Ok(ApproveAfter::Canary));
        assert_eq!(parse("2"), Ok(ApproveAfter::Batch(2)));
        for bad in ["-1", "\"first\"", "1.5", "null", "[0]"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("\"canary\" or a batch index"), "{bad}: {err}");
        }
        assert_eq!(
            serde_json::to_string(&ApproveAfter::Canary).unwrap(),
            "\"canary\""
        );
        assert_eq!(serde_json::to_string(&ApproveAfter::Batch(3)).unwrap(), "3");
    }
}
