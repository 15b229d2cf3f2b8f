//! Wire types of access control: the audit trail (`GET /audit`) and WebSocket tickets
//! (`POST /ws/ticket`). Tokens themselves never cross the wire in a body.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::pagination::Pagination;

/// One audited request: a change, or a refused request (401/403/429).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 42, "time": "2026-12-01T21:00:00.000Z", "token": "ci", "role": "operate",
    "source": "192.0.2.10", "method": "POST", "path": "/hosts/web-01/update",
    "host": "web-01", "job_id": "job-0195e4a0-7b3c-7d2e-9a41-3c2b1f0e9d8a", "rollout_id": null,
    "status": 202, "body": null
}))]
pub struct AuditEntry {
    pub id: i64,
    /// When the request arrived (RFC 3339, UTC, milliseconds).
    pub time: String,
    /// The token's name; `null` when no valid token was sent (or auth is disabled).
    pub token: Option<String>,
    /// The token's role.
    pub role: Option<String>,
    /// The client address (from `X-Forwarded-For` only behind a trusted proxy).
    pub source: String,
    pub method: String,
    /// The request path as sent (without the query string).
    pub path: String,
    pub host: Option<String>,
    pub job_id: Option<String>,
    pub rollout_id: Option<String>,
    /// The answer's status; `null` if the daemon stopped before it answered.
    pub status: Option<u16>,
    /// The JSON request body, with secrets redacted.
    pub body: Option<serde_json::Value>,
}

/// `GET /audit`: one page of audit rows, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditEntry>,
    pub pagination: Pagination,
}

/// Query parameters of `GET /audit`. Unknown parameters are refused (422).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditListQuery {
    /// Page number, from 1.
    #[param(minimum = 1, default = 1, example = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 200.
    #[param(minimum = 1, maximum = 200, default = 50, example = 50)]
    pub per_page: Option<u32>,
    /// Only requests made with this token (by name).
    #[param(example = "ci")]
    pub token: Option<String>,
    /// Only requests about this host.
    #[param(example = "web-01")]
    pub host: Option<String>,
    /// Only requests whose path starts with this.
    #[param(example = "/hosts/")]
    pub path_prefix: Option<String>,
    /// Only requests at or after this time (RFC 3339).
    #[param(example = "2026-12-01T00:00:00Z", format = DateTime)]
    pub since: Option<String>,
}

/// `POST /ws/ticket`: a single-use ticket for `GET /ws/events?ticket=...`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"ticket": "tht_3q2-7wY...", "expires_in": 30}))]
pub struct WsTicket {
    pub ticket: String,
    /// Seconds the ticket stays valid.
    pub expires_in: u64,
}
