//! Notifications: `NotificationV1`, the JSON body a `webhook` notifier POSTs (signed with
//! `X-Tendhost-Signature`), and `GET /notifications` / `POST /notifications/{name}/test`, the
//! deliveries the daemon recorded. No secret (webhook secret, ntfy token, SMTP password) is
//! part of any of these shapes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The webhook body, version 1. Fields are only ever added within a version; `version` changes
/// when one changes meaning or goes away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "version": 1,
    "event": "rollout_finished",
    "time": "2026-12-01T08:00:00Z",
    "notifier": "ops-webhook",
    "title": "Rollout finished: 5 succeeded, 1 failed",
    "message": "update rollout r-0193... completed in 2m 10s\nfailed: web-03 (apt-get exited 100)",
    "rollout_id": "r-01938c3e-6c1a-7b40-9a51-2f0d1f3a9b10",
    "state": "completed",
    "hosts": ["web-01", "web-02", "web-03", "web-04", "web-05", "web-06"],
    "counts": {"total": 6, "succeeded": 5, "failed": 1, "skipped": 0, "cancelled": 0},
    "duration_seconds": 130,
    "items": [{"host": "web-03", "count": null, "detail": "apt-get exited 100"}],
    "url": "https://tendhost.lan:8443/rollouts/r-01938c3e-6c1a-7b40-9a51-2f0d1f3a9b10"
}))]
pub struct NotificationV1 {
    /// Always 1 for this shape.
    pub version: u32,
    /// `rollout_finished`, `rollout_stopped`, `host_failed`, `host_unreachable`,
    /// `rollout_awaiting_approval`, `certificate_renewal_failed`, `reboot_required_digest`,
    /// `security_updates_digest`, or `test` (`POST /notifications/{name}/test`).
    pub event: String,
    /// When the daemon made the message (RFC 3339, UTC).
    pub time: String,
    /// The notifier's `name`.
    pub notifier: String,
    /// One line saying what happened.
    pub title: String,
    /// Plain text: what happened to which hosts.
    pub message: String,
    pub rollout_id: Option<String>,
    /// The rollout's state wire name, for rollout events.
    pub state: Option<String>,
    /// The hosts the message is about (only those the notifier's filter lets through).
    pub hosts: Vec<String>,
    /// Per-host outcome counts, for rollout events.
    pub counts: Option<NotificationCounts>,
    /// Rollout duration, for `rollout_finished` and `rollout_stopped`.
    pub duration_seconds: Option<u64>,
    /// Per-host lines: failures of a rollout, digest counts.
    pub items: Vec<NotificationItem>,
    /// Link to the rollout or host, when `daemon.public_url` is set.
    pub url: Option<String>,
}

/// How the hosts of a rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationCounts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
}

/// One host line of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationItem {
    pub host: String,
    /// Security updates pending (`security_updates_digest`).
    pub count: Option<u64>,
    /// Why it failed, how long it has been unreachable, which packages want a reboot.
    pub detail: Option<String>,
}

/// One recorded delivery: a message to one notifier, its attempts and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 42,
    "notifier": "ops-webhook",
    "kind": "webhook",
    "event": "rollout_finished",
    "title": "Rollout finished: 6 succeeded",
    "rollout_id": "r-01938c3e-6c1a-7b40-9a51-2f0d1f3a9b10",
    "created_at": "2026-12-01T08:00:00Z",
    "updated_at": "2026-12-01T08:00:01Z",
    "attempts": 1,
    "status": "delivered",
    "last_error": null
}))]
pub struct NotificationDelivery {
    pub id: i64,
    pub notifier: String,
    /// `webhook`, `ntfy` or `email`.
    pub kind: String,
    pub event: String,
    pub title: String,
    pub rollout_id: Option<String>,
    pub created_at: String,
    /// The last attempt's end (or `created_at` before the first).
    pub updated_at: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// `pending` (queued or between attempts), `delivered` or `failed` (every attempt failed).
    pub status: String,
    /// Why the last attempt failed (never a secret).
    pub last_error: Option<String>,
}

/// `GET /notifications`: the most recent deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationList {
    pub data: Vec<NotificationDelivery>,
}
