//! Daemon-level routes: `GET /health`. (`/openapi.json` and `/docs` are mounted in `http::router`.)

use axum::Json;
use axum::extract::State;
use tendhost_api::Health;

use crate::http::AppState;

/// Liveness and a headline figure.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    summary = "Daemon health",
    description = "Answers 200 while the daemon runs, with its version and the number of managed hosts.",
    responses((status = 200, description = "The daemon is up", body = Health))
)]
pub async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        hosts: state.fleet().hosts().await.len(),
    })
}
