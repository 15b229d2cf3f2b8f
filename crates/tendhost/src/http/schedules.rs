//! `/schedules` routes: the `[[schedule]]` entries of the config with their next and last run
//! (read), a run started at once, and pause/resume, which persist across restarts (operate).
//! A run is an ordinary rollout (`GET /rollouts/{id}`) with `trigger: {"schedule": NAME}`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tendhost_api::ErrorResponse;
use tendhost_api::schedules::{Schedule, ScheduleAction, ScheduleList, ScheduleRunAccepted};
use tendhost_core::model::{FleetError, RolloutKind};
use tendhost_core::schedule::{ScheduleStatus, Schedules};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::ApiPath;
use crate::http::mapping;

fn schedules(state: &AppState) -> Result<&Schedules, ApiError> {
    state
        .schedules()
        .ok_or_else(|| ApiError::from(FleetError::Unavailable("schedules are not running".into())))
}

fn schedule(status: &ScheduleStatus) -> Schedule {
    let spec = &status.spec;
    Schedule {
        name: spec.name.clone(),
        cron: spec.cron_text.clone(),
        timezone: spec.timezone_name.clone(),
        action: match spec.action {
            RolloutKind::Check => ScheduleAction::Check,
            RolloutKind::Update => ScheduleAction::Update,
        },
        packages: mapping::packages(&spec.request.packages),
        reboot: spec.request.reboot.map(mapping::reboot_choice),
        enabled: spec.enabled,
        paused: status.state.paused,
        random_delay_secs: spec.random_delay.as_secs(),
        next_run: mapping::opt_time(status.next_run),
        last_run: mapping::opt_time(status.state.last_run),
        last_rollout_id: status.state.last_rollout_id.clone(),
    }
}

/// Lists the schedules.
#[utoipa::path(
    get,
    path = "/schedules",
    operation_id = "list_schedules",
    tag = "schedules",
    summary = "List schedules",
    description = "Every `[[schedule]]` of the config, in file order, with its next run (null \
        when disabled or paused), last run and the rollout it last started.",
    responses((status = 200, description = "The schedules", body = ScheduleList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let data = schedules(&state)?.list().iter().map(schedule).collect();
    Ok(Json(ScheduleList { data }))
}

/// Shows one schedule.
#[utoipa::path(
    get,
    path = "/schedules/{name}",
    operation_id = "get_schedule",
    tag = "schedules",
    summary = "Show a schedule",
    params(("name" = String, Path, description = "Schedule name", example = "nightly-security")),
    responses(
        (status = 200, description = "The schedule", body = Schedule),
        (status = 404, description = "No such schedule", body = ErrorResponse),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(schedule(&schedules(&state)?.get(&name)?)))
}

/// Runs a schedule now.
#[utoipa::path(
    post,
    path = "/schedules/{name}/run",
    operation_id = "run_schedule",
    tag = "schedules",
    summary = "Run a schedule now",
    description = "Starts the schedule's rollout at once (also when it is disabled or paused) \
        and answers with its id; the rollout carries `trigger: {\"schedule\": NAME}`.",
    params(("name" = String, Path, description = "Schedule name", example = "nightly-security")),
    responses(
        (status = 202, description = "The rollout started", body = ScheduleRunAccepted,
            headers(("Location" = String, description = "`/rollouts/{id}`"))),
        (status = 404, description = "No such schedule", body = ErrorResponse),
        (status = 415, description = "A body that is not `application/json`", body = ErrorResponse),
        (status = 422, description = "The schedule's filter matches no host", body = ErrorResponse),
    )
)]
pub async fn run(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let rollout = schedules(&state)?.run_now(&name).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/rollouts/{}", rollout.id))],
        Json(ScheduleRunAccepted {
            schedule: name,
            rollout_id: rollout.id,
        }),
    ))
}

/// Pauses a schedule.
#[utoipa::path(
    post,
    path = "/schedules/{name}/pause",
    operation_id = "pause_schedule",
    tag = "schedules",
    summary = "Pause a schedule",
    description = "The schedule stops running by itself until resumed, across restarts too. \
        Rollouts it already started go on.",
    params(("name" = String, Path, description = "Schedule name", example = "nightly-security")),
    responses(
        (status = 200, description = "The schedule, paused", body = Schedule),
        (status = 404, description = "No such schedule", body = ErrorResponse),
        (status = 415, description = "A body that is not `application/json`", body = ErrorResponse),
    )
)]
pub async fn pause(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(schedule(&schedules(&state)?.pause(&name)?)))
}

/// Resumes a paused schedule.
#[utoipa::path(
    post,
    path = "/schedules/{name}/resume",
    operation_id = "resume_schedule",
    tag = "schedules",
    summary = "Resume a schedule",
    description = "The schedule runs again from its next occurrence; runs missed while paused \
        are not made up.",
    params(("name" = String, Path, description = "Schedule name", example = "nightly-security")),
    responses(
        (status = 200, description = "The schedule, running", body = Schedule),
        (status = 404, description = "No such schedule", body = ErrorResponse),
        (status = 415, description = "A body that is not `application/json`", body = ErrorResponse),
    )
)]
pub async fn resume(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Schedule>, ApiError> {
    Ok(Json(schedule(&schedules(&state)?.resume(&name)?)))
}
