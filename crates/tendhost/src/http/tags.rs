//! `/tags`: the tags in use, with how many hosts carry each. Groups are in `http::groups`.

use axum::Json;
use axum::extract::State;
use tendhost_api::ErrorResponse;
use tendhost_api::groups::{Tag, TagList};

use crate::http::AppState;
use crate::http::error::ApiError;

/// Lists tags.
#[utoipa::path(
    get,
    path = "/tags",
    operation_id = "list_tags",
    tag = "groups",
    summary = "List tags",
    description = "Every tag carried by at least one host, in name order, with its host count.",
    responses(
        (status = 200, description = "The tags", body = TagList),
        (status = 503, description = "The daemon is shutting down", body = ErrorResponse,
            example = json!({"error": {"code": "shutting_down", "message": "the daemon is shutting down"}})),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<TagList>, ApiError> {
    let tags = state.fleet().tags().await?;
    Ok(Json(TagList {
        data: tags
            .into_iter()
            .map(|(name, n_hosts)| Tag { name, n_hosts })
            .collect(),
    }))
}
