//! `/tags`: the tags in use, with how many hosts carry each. Groups are in `http::groups`.

use axum::Json;
use axum::extract::State;
use tendhost_api::groups::{Tag, TagList};

use crate::http::AppState;

/// Lists tags.
#[utoipa::path(
    get,
    path = "/tags",
    operation_id = "list_tags",
    tag = "groups",
    summary = "List tags",
    description = "Every tag carried by at least one host, in name order, with its host count.",
    responses((status = 200, description = "The tags", body = TagList))
)]
pub async fn list(State(state): State<AppState>) -> Json<TagList> {
    let tags = state.fleet().tags().await;
    Json(TagList {
        data: tags
            .into_iter()
            .map(|(name, n_hosts)| Tag { name, n_hosts })
            .collect(),
    })
}
