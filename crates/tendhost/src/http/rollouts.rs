//! `/rollouts` routes: one rollout with per-batch and per-host status, the paginated list
//! (newest first), and cancellation (running hosts finish, no new ones start). Rollouts are
//! started by the `/fleet` routes. Finished rollouts the fleet no longer holds in memory
//! (`keep_finished_rollouts`) are answered from the state database, the same way.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use tendhost_api::ErrorResponse;
use tendhost_api::rollouts::{Rollout, RolloutList, RolloutListQuery};
use tendhost_core::model::{FleetError, RolloutSnapshot, RolloutState};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, Query};
use crate::http::jobs::records_error;
use crate::http::mapping;

/// The query parameters `GET /rollouts` knows.
const LIST_PARAMS: &[&str] = &["page", "per_page", "state"];

const STATES: [RolloutState; 5] = [
    RolloutState::Running,
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
    Ok(Json(mapping::rollout(&rollout(&state, &id).await?)))
}

/// Rollout `id`: from memory, else (finished long ago, or of an earlier run the daemon no
/// longer holds) from the state database.
async fn rollout(state: &AppState, id: &str) -> Result<RolloutSnapshot, ApiError> {
    match state.fleet().rollout(id).await {
        Err(FleetError::NotFound { kind, name }) => {
            let not_found = || FleetError::NotFound { kind, name };
            let Some(records) = state.records() else {
                return Err(not_found().into());
            };
            match records.rollout(id).await.map_err(records_error)? {
                Some(rollout) => Ok(rollout),
                None => Err(not_found().into()),
            }
        }
        other => Ok(other?),
    }
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
    if let Some(records) = state.records() {
        let offset = (page.page - 1).saturating_mul(page.per_page);
        let (stored, total) = records
            .rollouts(wanted, offset, page.per_page)
            .await
            .map_err(records_error)?;
        if total > rollouts.len() as u64 {
            // Some are only in the state database now: page over it, preferring the
            // snapshot in memory (the same, or newer) where there is one.
            let data = stored
                .iter()
                .map(|rollout| {
                    rollouts
                        .iter()
                        .find(|held| held.id == rollout.id)
                        .unwrap_or(rollout)
                })
                .map(mapping::rollout_summary)
                .collect();
            return Ok(Json(RolloutList {
                data,
                pagination: page.pagination(total),
            }));
        }
    }
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
    let rollout = match state.fleet().cancel_rollout(&id).await {
        // Only finished rollouts leave memory: refused as a finished one held would be.
        Err(FleetError::NotFound { .. }) => {
            let stored = rollout(&state, &id).await?;
            return Err(FleetError::RolloutFinished {
                id: stored.id,
                state: stored.state.as_str(),
            }
            .into());
        }
        other => other?,
    };
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
    let rollout = match state.fleet().resume_rollout(&id).await {
        // Only finished rollouts leave memory: refused as a finished one held would be.
        Err(FleetError::NotFound { .. }) => {
            let stored = rollout(&state, &id).await?;
            return Err(FleetError::InvalidRollout {
                id: stored.id,
                state: stored.state.as_str(),
                hint: "only an interrupted rollout can be resumed",
            }
            .into());
        }
        other => other?,
    };
    Ok((StatusCode::ACCEPTED, Json(mapping::rollout(&rollout))))
}
