//! The one error shape every 4xx/5xx answer uses: `{"error": {"code", "message", "details"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"error": {"code": "invalid_value", "message": "batch_size: must be at least 1", "details": {"field": "batch_size"}}}))]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code in snake_case, e.g. `not_found`, `host_busy`,
    /// `invalid_transition`, `malformed_json`, `unsupported_media_type`, `invalid_value`.
    pub code: String,
    /// Human-readable explanation naming the problem.
    pub message: String,
    /// Extra context, e.g. `field` for invalid input or `current_state` for conflicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}
