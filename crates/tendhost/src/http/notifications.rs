//! `/notifications` routes: the recent deliveries (`GET /notifications`, read) and a test
//! message through one notifier (`POST /notifications/{name}/test`, admin). The notifiers
//! themselves live in `tendhost-notify`; no secret is part of any answer.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use tendhost_api::ErrorResponse;
use tendhost_api::notifications::{NotificationDelivery, NotificationList};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, Query};
use crate::http::mapping::time;
use crate::persist::Delivery;

/// Deliveries listed when the request does not say, and at most.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// Lists recent deliveries.
#[utoipa::path(
    get,
    path = "/notifications",
    operation_id = "list_notifications",
    tag = "notifications",
    summary = "List recent notification deliveries",
    description = "The most recent messages to the `[[notify]]` notifiers, newest first: \
        notifier, kind, event, title, when, attempts, status (`pending`, `delivered`, \
        `failed`) and the last attempt's error. `limit` is 1 to 500 (default 50). Secrets \
        never appear here.",
    params(("limit" = Option<u32>, Query, description = "How many (1 to 500, default 50)")),
    responses(
        (status = 200, description = "Recent deliveries", body = NotificationList),
        (status = 422, description = "A bad or unknown query parameter", body = ErrorResponse),
        (status = 503, description = "The state database cannot answer", body = ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<NotificationList>, ApiError> {
    let query = Query::parse(raw.as_deref(), &["limit"])?;
    let limit = query
        .parsed("limit", |value| match value.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(format!(
                "must be a number from 1 to {MAX_LIMIT}, not {value:?}"
            )),
        })?
        .unwrap_or(DEFAULT_LIMIT);
    let Some(records) = state.records() else {
        return Ok(Json(NotificationList { data: Vec::new() }));
    };
    let deliveries = records.deliveries(limit).await.map_err(unavailable)?;
    Ok(Json(NotificationList {
        data: deliveries.into_iter().map(delivery).collect(),
    }))
}

/// Sends a test message.
#[utoipa::path(
    post,
    path = "/notifications/{name}/test",
    operation_id = "test_notification",
    tag = "notifications",
    summary = "Send a test notification",
    description = "Sends a `test` message through the notifier now (one attempt, within its \
        `timeout`), records it like any delivery, and answers its outcome: `delivered`, or \
        `failed` with the reason in `last_error`.",
    params(("name" = String, Path, description = "The notifier's name", example = "ops-webhook")),
    responses(
        (status = 200, description = "The delivery, delivered or failed", body = NotificationDelivery),
        (status = 404, description = "No notifier of that name", body = ErrorResponse),
        (status = 503, description = "The state database cannot record it", body = ErrorResponse),
    )
)]
pub async fn test(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<NotificationDelivery>, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("notifier {name:?} not found"),
        )
    };
    let service = state.notify().ok_or_else(not_found)?;
    let kind = service
        .notifiers()
        .into_iter()
        .find(|(known, _)| *known == name)
        .map(|(_, kind)| kind)
        .ok_or_else(not_found)?;
    let outcome = service
        .test(&name)
        .await
        .ok_or_else(not_found)?
        .map_err(unavailable)?;
    Ok(Json(NotificationDelivery {
        id: outcome.id,
        notifier: name.clone(),
        kind: kind.to_owned(),
        event: "test".to_owned(),
        title: format!("tendhost test notification ({name})"),
        rollout_id: None,
        created_at: time(outcome.updated_at),
        updated_at: time(outcome.updated_at),
        attempts: outcome.attempts,
        status: outcome.status.as_str().to_owned(),
        last_error: outcome.last_error,
    }))
}

fn unavailable(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "store_unavailable",
        format!("the state database cannot answer: {err}"),
    )
}

fn delivery(delivery: Delivery) -> NotificationDelivery {
    NotificationDelivery {
        id: delivery.id,
        notifier: delivery.notifier,
        kind: delivery.kind,
        event: delivery.event,
        title: delivery.title,
        rollout_id: delivery.rollout_id,
        created_at: time(delivery.created_at),
        updated_at: time(delivery.updated_at),
        attempts: delivery.attempts,
        status: delivery.status,
        last_error: delivery.last_error,
    }
}
