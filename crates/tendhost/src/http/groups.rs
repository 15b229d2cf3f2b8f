//! `/groups` routes: the groups of the config file, with their members' names or status.
//! Tags are in `http::tags`.

use axum::Json;
use axum::extract::State;
use tendhost_api::ErrorResponse;
use tendhost_api::groups::{Group, GroupList, GroupSummary};

use crate::http::AppState;
use crate::http::error::ApiError;
use crate::http::extract::ApiPath;
use crate::http::mapping;

/// Lists groups.
#[utoipa::path(
    get,
    path = "/groups",
    operation_id = "list_groups",
    tag = "groups",
    summary = "List groups",
    description = "Every group of the config file with its member names, in name order.",
    responses((status = 200, description = "The groups", body = GroupList))
)]
pub async fn list(State(state): State<AppState>) -> Json<GroupList> {
    let groups = state.fleet().groups().await;
    Json(GroupList {
        data: groups
            .into_iter()
            .map(|(name, hosts)| GroupSummary { name, hosts })
            .collect(),
    })
}

/// Shows one group.
#[utoipa::path(
    get,
    path = "/groups/{name}",
    operation_id = "get_group",
    tag = "groups",
    summary = "Show a group",
    description = "A group with the status of each member host.",
    params(("name" = String, Path, description = "Group name", example = "frontend")),
    responses(
        (status = 200, description = "The group", body = Group),
        (status = 404, description = "No such group", body = ErrorResponse,
            example = json!({"error": {"code": "not_found", "message": "group \"backend\" not found"}})),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Group>, ApiError> {
    let groups = state.fleet().groups().await;
    let Some(members) = groups.get(&name) else {
        return Err(ApiError::not_found(format!("group {name:?} not found")));
    };
    let hosts = state
        .fleet()
        .hosts()
        .await?
        .iter()
        .filter(|host| members.contains(&host.name))
        .map(mapping::host_summary)
        .collect();
    Ok(Json(Group { name, hosts }))
}
