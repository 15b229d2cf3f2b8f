//! `/jobs` routes: one job with its outcome and full log, and the paginated job list (newest
//! first) filtered by host, state and kind. Jobs are started by the host and fleet routes.

use axum::Json;
use axum::extract::{RawQuery, State};
use tendhost_api::ErrorResponse;
use tendhost_api::jobs::{Job, JobList, JobListQuery};
use tendhost_core::model::{FleetError, JobState};
use tendhost_core::state::JobKind;

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, Query};
use crate::http::mapping;
use crate::persist::{JobQuery, RecordsError};

/// The query parameters `GET /jobs` knows.
const LIST_PARAMS: &[&str] = &["page", "per_page", "host", "state", "kind"];

/// Shows one job.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    summary = "Show a job",
    description = "Kind, host, state, start and finish times, outcome summary, exit code, \
        packages changed and failed, what a check or dry run found (with a dry run's exact \
        commands) and the full output log with times and streams.",
    params(("id" = String, Path, description = "Job id", example = "job-18f3a2b4c5d-17")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "No such job", body = ErrorResponse,
            example = json!({"error": {"code": "not_found", "message": "job \"job-0\" not found"}})),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Job>, ApiError> {
    let fleet = state.fleet();
    let Some(records) = state.records() else {
        return Ok(Json(mapping::job(&fleet.job(&id)?)));
    };
    // A job this run still holds: its state from memory, its whole log from the state
    // database (memory keeps only a tail).
    if let Ok(mut job) = fleet.job_without_log(&id) {
        job.log = records.job_log(&id).await.map_err(records_error)?;
        return Ok(Json(mapping::job(&job)));
    }
    // A job of an earlier run, or one this run no longer holds: from the state database.
    match records.job(&id).await.map_err(records_error)? {
        Some(job) => Ok(Json(mapping::job(&job))),
        None => Err(FleetError::NotFound {
            kind: "job",
            name: id,
        }
        .into()),
    }
}

/// Lists jobs.
#[utoipa::path(
    get,
    path = "/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    summary = "List jobs",
    description = "Jobs of this daemon run, newest first, without their logs (see \
        `GET /jobs/{id}`). Filter by `host`, `state` and `kind`; unknown parameters and bad \
        values answer 422 naming the parameter.",
    params(JobListQuery),
    responses(
        (status = 200, description = "One page of jobs", body = JobList),
        (status = 422, description = "A bad or unknown query parameter (`details.field` names it)", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_value", "message": "per_page: must be an integer from 1 to 200, not \"500\"", "details": {"field": "per_page"}}})),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<JobList>, ApiError> {
    let query = Query::parse(raw.as_deref(), LIST_PARAMS)?;
    let page = query.page()?;
    let host = query.single("host")?;
    let job_state = query.parsed("state", parse_job_state)?;
    let kind = query.parsed("kind", parse_job_kind)?;
    if let Some(records) = state.records() {
        // Every job, this run's and earlier ones', from the state database.
        let query = JobQuery {
            host: host.map(str::to_owned),
            state: job_state,
            kind,
        };
        let offset = (page.page - 1).saturating_mul(page.per_page);
        let (jobs, total) = records
            .jobs(query, offset, page.per_page)
            .await
            .map_err(records_error)?;
        return Ok(Json(JobList {
            data: jobs.iter().map(mapping::job_summary).collect(),
            pagination: page.pagination(total),
        }));
    }
    let jobs: Vec<_> = state
        .fleet()
        .jobs(host, job_state)
        .into_iter()
        .filter(|job| kind.is_none_or(|kind| job.kind == kind))
        .collect();
    let (jobs, pagination) = page.slice(jobs);
    Ok(Json(JobList {
        data: jobs.iter().map(mapping::job_summary).collect(),
        pagination,
    }))
}

/// The state database's failure as an answer (503 when it cannot answer).
pub(crate) fn records_error(err: RecordsError) -> ApiError {
    match err {
        RecordsError::Unavailable(message) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("the state database cannot answer: {message}"),
        ),
        RecordsError::Corrupt(message) => ApiError::internal(message),
    }
}

fn parse_job_state(value: &str) -> Result<JobState, String> {
    JobState::parse(value).ok_or_else(|| {
        let names: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown job state {value:?}; use one of {}",
            names.join(", ")
        )
    })
}

fn parse_job_kind(value: &str) -> Result<JobKind, String> {
    JobKind::parse(value)
        .ok_or_else(|| format!("unknown job kind {value:?}; use one of check, update, reboot"))
}
