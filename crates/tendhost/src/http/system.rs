//! Daemon-level routes: `GET /health`. (`/openapi.json` and `/docs` are mounted in `http::router`.)

use axum::Json;
use tendhost_api::Health;

/// Liveness. Open without a token, so it says nothing about the fleet.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    summary = "Daemon health",
    description = "Answers 200 while the daemon runs, with its version. Open without a token: the fleet's size and state are behind auth.",
    responses((status = 200, description = "The daemon is up", body = Health))
)]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    })
}
