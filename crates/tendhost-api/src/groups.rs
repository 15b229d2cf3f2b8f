//! Group and tag wire types: `GET /groups`, `GET /groups/{name}`, `GET /tags`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::hosts::HostSummary;

/// A group and its member names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "frontend", "hosts": ["web-01", "web-02"]}))]
pub struct GroupSummary {
    pub name: String,
    /// Member host names, as listed in the config file.
    pub hosts: Vec<String>,
}

/// `GET /groups`: every group, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub data: Vec<GroupSummary>,
}

/// `GET /groups/{name}`: a group with its members' status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "frontend",
    "hosts": [{
        "name": "web-01", "addr": "10.0.0.11", "port": 22, "user": "root",
        "tags": ["web"], "groups": ["frontend"], "origin": "config", "updates": "allowed",
        "state": "idle", "n_pending": 0, "n_security": 0, "reboot": "not_required",
        "last_check": "2026-05-02T03:10:00Z", "current_job": null, "failure": null
    }]
}))]
pub struct Group {
    pub name: String,
    /// Members in name order (members removed since are left out).
    pub hosts: Vec<HostSummary>,
}

/// A tag and how many hosts carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "web", "n_hosts": 2}))]
pub struct Tag {
    pub name: String,
    pub n_hosts: usize,
}

/// `GET /tags`: every tag in use, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TagList {
    pub data: Vec<Tag>,
}
