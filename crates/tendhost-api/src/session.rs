//! Wire types of browser sessions (`POST /session`, `GET /session`, `DELETE /session`): the
//! login body and what the dashboard learns about its caller. The session itself travels only
//! in the `tendhost_session` cookie (HttpOnly), never in a body.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /session`: log in with an API token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "th_..."}))]
pub struct SessionRequest {
    /// An API token (`th_...`); it is checked once and never stored in the cookie.
    pub token: String,
}

impl std::fmt::Debug for SessionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRequest").finish_non_exhaustive()
    }
}

/// Who the dashboard is acting as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "ops", "role": "operate", "auth_enabled": true,
                          "expires_at": "2026-12-02T12:00:00Z"}))]
pub struct SessionInfo {
    /// The token's name (`anonymous` with auth disabled).
    pub name: String,
    /// `read`, `operate` or `admin`: what the dashboard offers (the API enforces it anyway).
    pub role: String,
    /// `false` when the daemon runs with `daemon.auth.enabled = false` (loopback only).
    pub auth_enabled: bool,
    /// When the session cookie expires (RFC 3339, UTC); `null` without a session cookie.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}
