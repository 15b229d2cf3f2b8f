//! Package wire types shared by hosts and jobs: an update a check found pending, and a package
//! an upgrade changed. Leaf module: it names no other wire type.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One package a check says would be upgraded (or newly installed, when `current_version`
/// is null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "name": "openssl",
    "current_version": "3.0.11-1~deb12u2",
    "new_version": "3.0.13-1~deb12u1",
    "origin": "Debian-Security:12/stable-security",
    "arch": "amd64",
    "security": true,
    "excluded": false
}))]
pub struct PendingUpdate {
    pub name: String,
    pub current_version: Option<String>,
    pub new_version: String,
    /// apt's release string(s) or dnf's repository id.
    pub origin: String,
    pub arch: String,
    /// From a security suite (apt) or with a security advisory (dnf).
    pub security: bool,
    /// An `exclude` pattern of the host matches it: listed, never installed. Left out when
    /// false, so answers stay as they were before excludes existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub excluded: bool,
    /// RFC 3339: when tendhost first found this package pending on the host (kept while it
    /// stays pending, whatever newer version comes). Only in a host's pending list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub pending_since: Option<String>,
}

/// A package whose installed version an upgrade changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"name": "openssl", "from": "3.0.11-1~deb12u2", "to": "3.0.13-1~deb12u1"}))]
pub struct PackageChange {
    pub name: String,
    /// Null for a package the upgrade newly installed.
    pub from: Option<String>,
    pub to: String,
}
