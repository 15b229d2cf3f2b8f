//! `/fleet` routes: a check of every (or every matching) host, and a rolling update in batches
//! with canaries, a delay and a failure budget. Both answer `202` with the rollout id at once;
//! the rollout runs in the orchestrator (`GET /rollouts/{id}` follows it).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use tendhost_api::ErrorResponse;
use tendhost_api::rollouts::{
    FleetCheckRequest, FleetUpdateRequest, HostFilter, MaxFailures, RolloutAccepted,
};
use tendhost_auth::Caller;
use tendhost_core::model::{self, RolloutRequest, RolloutSnapshot};

use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson};
use crate::http::extract::OptionalJson;
use crate::http::mapping;
use crate::http::selection;

/// The longest `delay_ms` accepted: one day.
pub const MAX_DELAY_MS: u64 = 24 * 60 * 60 * 1000;

/// The largest `batch_size` accepted (more than any fleet this daemon serves).
pub const MAX_BATCH_SIZE: u32 = 100_000;

/// The largest `max_failures` count accepted.
pub const MAX_FAILURES: u64 = 1_000_000;

/// Most names in `canary` and in each list of `filter`.
pub const MAX_NAMES: usize = 10_000;

/// Checks many hosts.
#[utoipa::path(
    post,
    path = "/fleet/check",
    operation_id = "check_fleet",
    tag = "fleet",
    summary = "Check the fleet",
    description = "Checks every host matching `filter` (all hosts without a body) as one batch; \
        the daemon's `max_parallel` limit queues the excess. Answers at once with the rollout \
        id. Unknown hosts or groups in the filter, or a filter matching no host, answer 422.",
    request_body(content = Option<FleetCheckRequest>, content_type = "application/json",
        description = "Optional"),
    responses(
        (status = 202, description = "The check started", body = RolloutAccepted,
            headers(("Location" = String, description = "`/rollouts/{id}`"))),
        (status = 400, description = "The body is not valid JSON", body = ErrorResponse),
        (status = 415, description = "A body that is not `application/json`", body = ErrorResponse),
        (status = 422, description = "A bad or unknown field (`details.field` names it)", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_value", "message": "filter.groups: unknown group \"backend\"", "details": {"field": "filter.groups"}}})),
    )
)]
pub async fn check(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    OptionalJson(body): OptionalJson<FleetCheckRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let filter = host_filter(body.unwrap_or_default().filter)?;
    let trigger = selection::api_trigger(caller.as_ref().map(|axum::Extension(c)| c));
    let rollout = state.fleet().fleet_check_by(filter, trigger).await?;
    Ok(accepted(&rollout))
}

/// Starts a rolling update.
#[utoipa::path(
    post,
    path = "/fleet/update",
    operation_id = "update_fleet",
    tag = "fleet",
    summary = "Update the fleet, in batches",
    description = "Updates the hosts matching `filter`: the `canary` hosts first as their own \
        batch, then fixed batches of `batch_size`, `delay_ms` apart. The rollout stops when \
        failures (`unreachable` included) exceed `max_failures` and the remaining hosts are \
        reported `skipped`. Hosts outside their maintenance window are skipped unless `force` \
        (or wait as `deferred` for it to open, up to 24 hours, with `defer_outside_window`); \
        `packages` picks what each host installs; \
        `check-only` hosts are skipped unless `dry_run`. Answers at once with the rollout id \
        and its batches. The body is required (`{}` takes every default).",
    request_body(content = FleetUpdateRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "The rollout started", body = RolloutAccepted,
            headers(("Location" = String, description = "`/rollouts/{id}`"))),
        (status = 400, description = "The body is not valid JSON", body = ErrorResponse),
        (status = 415, description = "The body is missing or not `application/json`", body = ErrorResponse),
        (status = 422, description = "A bad or unknown field (`details.field` names it)", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_value", "message": "invalid request body: max_failures: invalid value: string \"150%\", expected a non-negative integer or a percentage from \"0%\" to \"100%\" at line 1 column 24", "details": {"field": "max_failures"}}})),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Option<axum::Extension<Caller>>,
    ApiJson(body): ApiJson<FleetUpdateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let mut request = rollout_request(body)?;
    request.trigger = selection::api_trigger(caller.as_ref().map(|axum::Extension(c)| c));
    let rollout = state.fleet().fleet_update(request).await?;
    Ok(accepted(&rollout))
}

/// Validates a `POST /fleet/update` body.
fn rollout_request(body: FleetUpdateRequest) -> Result<RolloutRequest, ApiError> {
    if body.batch_size == 0 {
        return Err(ApiError::invalid_value("batch_size", "must be at least 1"));
    }
    if body.batch_size > MAX_BATCH_SIZE {
        return Err(ApiError::invalid_value(
            "batch_size",
            format!("must be at most {MAX_BATCH_SIZE}, not {}", body.batch_size),
        ));
    }
    if let MaxFailures::Count(count) = body.max_failures
        && count > MAX_FAILURES
    {
        return Err(ApiError::invalid_value(
            "max_failures",
            format!("must be at most {MAX_FAILURES} (or a percentage), not {count}"),
        ));
    }
    names_within_bound("canary", &body.canary)?;
    if body.delay_ms > MAX_DELAY_MS {
        return Err(ApiError::invalid_value(
            "delay_ms",
            format!(
                "must be at most {MAX_DELAY_MS} (one day), not {}",
                body.delay_ms
            ),
        ));
    }
    Ok(RolloutRequest {
        batch_size: usize::try_from(body.batch_size).unwrap_or(usize::MAX),
        delay: Duration::from_millis(body.delay_ms),
        max_failures: match body.max_failures {
            MaxFailures::Count(count) => {
                model::MaxFailures::Count(usize::try_from(count).unwrap_or(usize::MAX))
            }
            MaxFailures::Percent(percent) => model::MaxFailures::Percent(percent),
        },
        canary: body.canary,
        filter: host_filter(body.filter)?,
        dry_run: body.dry_run,
        force: body.force,
        packages: selection::packages(body.packages)?,
        reboot: None,
        defer_outside_window: body.defer_outside_window,
        window_grace: model::DEFAULT_WINDOW_GRACE,
        trigger: model::Trigger::default(),
    })
}

fn host_filter(filter: HostFilter) -> Result<model::HostFilter, ApiError> {
    names_within_bound("filter.tags", &filter.tags)?;
    names_within_bound("filter.groups", &filter.groups)?;
    names_within_bound("filter.exclude_hosts", &filter.exclude_hosts)?;
    names_within_bound("filter.hosts", &filter.hosts)?;
    Ok(model::HostFilter {
        tags: filter.tags,
        groups: filter.groups,
        exclude_hosts: filter.exclude_hosts,
        hosts: filter.hosts,
    })
}

fn names_within_bound(field: &str, names: &[String]) -> Result<(), ApiError> {
    if names.len() > MAX_NAMES {
        return Err(ApiError::invalid_value(
            field,
            format!("at most {MAX_NAMES} names, not {}", names.len()),
        ));
    }
    Ok(())
}

fn accepted(rollout: &RolloutSnapshot) -> impl IntoResponse + use<> {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/rollouts/{}", rollout.id))],
        Json(mapping::rollout_accepted(rollout)),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tendhost_api::rollouts::FleetUpdateRequest;
    use tendhost_core::model::MaxFailures;

    use crate::http::fleet::{
        MAX_BATCH_SIZE, MAX_DELAY_MS, MAX_FAILURES, MAX_NAMES, rollout_request,
    };

    fn body(json: &str) -> FleetUpdateRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_full_body_maps_onto_the_request() {
        let request = rollout_request(body(
            r#"{"batch_size": 2, "delay_ms": 1500, "max_failures": "25%", "canary": ["a"],
                "filter": {"tags": ["web"], "groups": ["g"], "exclude_hosts": ["b"], "hosts": []},
                "dry_run": true, "force": true}"#,
        ))
        .unwrap();
        assert_eq!(request.batch_size, 2);
        assert_eq!(request.delay, Duration::from_millis(1500));
        assert_eq!(request.max_failures, MaxFailures::Percent(25));
        assert_eq!(request.canary, ["a"]);
        assert_eq!(request.filter.tags, ["web"]);
        assert_eq!(request.filter.groups, ["g"]);
        assert_eq!(request.filter.exclude_hosts, ["b"]);
        assert!(request.dry_run && request.force);
    }

    #[test]
    fn bad_values_name_the_field() {
        for (json, field) in [
            (r#"{"batch_size": 0}"#.to_owned(), "batch_size"),
            (
                format!(r#"{{"delay_ms": {}}}"#, MAX_DELAY_MS + 1),
                "delay_ms",
            ),
            (
                format!(r#"{{"batch_size": {}}}"#, MAX_BATCH_SIZE + 1),
                "batch_size",
            ),
            (
                format!(r#"{{"max_failures": {}}}"#, MAX_FAILURES + 1),
                "max_failures",
            ),
            (
                format!(r#"{{"canary": {:?}}}"#, vec!["a"; MAX_NAMES + 1]),
                "canary",
            ),
            (
                format!(
                    r#"{{"filter": {{"hosts": {:?}}}}}"#,
                    vec!["a"; MAX_NAMES + 1]
                ),
                "filter.hosts",
            ),
        ] {
            let err = rollout_request(body(&json)).unwrap_err();
            assert_eq!(err.details.unwrap()["field"], field, "{json}");
        }
    }
}
