//! `/rollouts` routes: one rollout with per-batch and per-host status, the paginated list
//! (newest first), cancellation (running hosts finish, no new ones start), approval at a gate
//! and resuming an interrupted rollout. Rollouts are started by the `/fleet` routes.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use tendhost_api::ErrorResponse;
use tendhost_api::rollouts::{Rollout, RolloutList, RolloutListQuery};
use tendhost_auth::Caller;
use tendhost_core::model::RolloutState;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, Query};
use crate::http::mapping;

/// The query parameters `GET /rollouts` knows.
const LIST_PARAMS: &[&str] = &["page", "per_page", "state"];

const STATES: [RolloutState; 6] = [
    RolloutState::Running,
    RolloutState::AwaitingApproval,
    RolloutState::Completed,
    RolloutState::Stopped,
    RolloutState::Cancelled,
    RolloutState::Interrupted,
];

/// Shows one rollout.
#[utoipa::path(
    get,
    path = "/rollouts/{id}",
    operation_id = "get_rollout",
    tag = "rollouts",
    summary = "Show a rollout",
    description = "A fleet check or update: its settings, state, every batch and every host \
        (with its job id, and the reason when skipped or failed).",
    params(("id" = String, Path, description = "Rollout id", example = "rollout-18f3a2b4c60-18")),
    responses(
        (status = 200, description = "The rollout", body = Rollout),
        (status = 404, description = "No such rollout", body = ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Rollout>, ApiError> {
    let rollout = state.fleet().rollout(&id).await?;
    Ok(Json(mapping::rollout(&rollout)))
}

/// Lists rollouts.
#[utoipa::path(
    get,
    path = "/rollouts",
    operation_id = "list_rollouts",
    tag = "rollouts",
    summary = "List rollouts",
    description = "Rollouts of this daemon run, newest first, with counts of hosts by state. \
        Filter by `state`; unknown parameters and bad values answer 422 naming the parameter.",
    params(RolloutListQuery),
    responses(
        (status = 200, description = "One page of rollouts", body = RolloutList),
        (status = 422, description = "A bad or unknown query parameter (`details.field` names it)", body = ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RolloutList>, ApiError> {
    let query = Query::parse(raw.as_deref(), LIST_PARAMS)?;
    let page = query.page()?;
    let wanted = query.parsed("state", |value| {
        STATES
            .into_iter()
            .find(|state| state.as_str() == value)
            .ok_or_else(|| {
                let names: Vec<&str> = STATES.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown rollout state {value:?}; use one of {}",
                    names.join(", ")
                )
            })
    })?;
    let rollouts: Vec<_> = state
        .fleet()
        .rollouts()
        .await
        .into_iter()
        .filter(|rollout| wanted.is_none_or(|wanted| rollout.state == wanted))
        .collect();
    let (rollouts, pagination) = page.slice(rollouts);
    Ok(Json(RolloutList {
        data: rollouts.iter().map(mapping::rollout_summary).collect(),
        pagination,
    }))
}

/// Cancels a rollout.
#[utoipa::path(
    post,
    path = "/rollouts/{id}/cancel",
    operation_id = "cancel_rollout",
    tag = "rollouts",
    summary = "Cancel a rollout",
    description = "Starts no new host; hosts already running finish, the rest are reported \
        `cancelled`. Answers at once with the rollout as it is (still `running` until its \
        running hosts finish).",
    params(("id" = String, Path, description = "Rollout id", example = "rollout-18f3a2b4c60-18")),
    responses(
        (status = 202, description = "Cancellation requested", body = Rollout),
        (status = 404, description = "No such rollout", body = ErrorResponse),
        (status = 409, description = "The rollout already ended (`rollout_finished`, with `details.current_state`)", body = ErrorResponse,
            example = json!({"error": {"code": "rollout_finished", "message": "rollout rollout-18f3a2b4c60-18 is already completed", "details": {"current_state": "completed"}}})),
    )
)]
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Rollout>), ApiError> {
    let rollout = state.fleet().cancel_rollout(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping::rollout(&rollout))))
}

/// Approves a rollout waiting at its gate.
#[utoipa::path(
    post,
    path = "/rollouts/{id}/approve",
    operation_id = "approve_rollout",
    tag = "rollouts",
    summary = "Approve a rollout waiting at its gate",
    description = "A rollout started with `approve_after` waits in `awaiting_approval` after \
        that batch (also across a daemon restart). This lets it go on with the next batch, with \
        a `rollout_approved` event naming the token that approved it. `POST \
        /rollouts/{id}/cancel` stops it instead, updating no further host.",
    params(("id" = String, Path, description = "Rollout id", example = "rollout-18f3a2b4c60-18")),
    responses(
        (status = 202, description = "Approved: the rollout runs again", body = Rollout),
        (status = 404, description = "No such rollout", body = ErrorResponse),
        (status = 409, description = "The rollout is not `awaiting_approval` (`invalid_rollout_state`, with `details.current_state`)", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_rollout_state", "message": "rollout rollout-18f3a2b4c60-18 is running: only a rollout awaiting approval can be approved", "details": {"current_state": "running"}}})),
    )
)]
pub async fn approve(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Rollout>), ApiError> {
    let by = caller.map_or_else(|| "anonymous".to_owned(), |Extension(caller)| caller.name);
    let rollout = state.fleet().approve_rollout(&id, &by).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping::rollout(&rollout))))
}

/// Resumes an interrupted rollout.
#[utoipa::path(
    post,
    path = "/rollouts/{id}/resume",
    operation_id = "resume_rollout",
    tag = "rollouts",
    summary = "Resume an interrupted rollout",
    description = "A rollout that was running when the daemon stopped (crash, kill, power loss) \
        is `interrupted` after the restart, never resumed silently. This continues it with the \
        hosts not yet done (pending, or running when the daemon stopped), in their original \
        batches; failures counted before the interruption still count against `max_failures`.",
    params(("id" = String, Path, description = "Rollout id", example = "rollout-18f3a2b4c60-18")),
    responses(
        (status = 202, description = "The rollout runs again", body = Rollout),
        (status = 404, description = "No such rollout", body = ErrorResponse),
        (status = 409, description = "The rollout is not `interrupted` (`invalid_rollout_state`, with `details.current_state`)", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_rollout_state", "message": "rollout rollout-18f3a2b4c60-18 is completed: only an interrupted rollout can be resumed", "details": {"current_state": "completed"}}})),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<Rollout>), ApiError> {
    let rollout = state.fleet().resume_rollout(&id).await?;
    Ok((StatusCode::ACCEPTED, Json(mapping::rollout(&rollout))))
}
