//! Job wire types: `GET /jobs/{id}` (with the full log), the items of `GET /jobs`, and its
//! query parameters. How a job is started lives with the host actions (`hosts`); the package
//! lists a job carries are in `packages`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::packages::{PackageChange, PendingUpdate};
use crate::pagination::Pagination;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Check,
    Update,
    Reboot,
}

/// Job lifecycle. `busy`: the package database was locked (retryable, nothing changed);
/// `lost`: the host stayed unreachable for the whole reconnect window (the next check
/// collects the real outcome); `interrupted`: the daemon stopped while it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Busy,
    Lost,
    Cancelled,
    Interrupted,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One line of a job's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"time": "2026-05-02T03:14:02.118Z", "stream": "stdout",
                          "line": "Setting up openssl (3.0.13-1~deb12u1) ..."}))]
pub struct LogLine {
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub time: String,
    pub stream: LogStream,
    pub line: String,
}

/// A job in `GET /jobs` (without its log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "job-18f3a2b4c5d-17",
    "host": "web-01",
    "kind": "update",
    "state": "succeeded",
    "dry_run": false,
    "force": false,
    "rollout_id": null,
    "created_at": "2026-05-02T03:14:00Z",
    "started_at": "2026-05-02T03:14:00.2Z",
    "finished_at": "2026-05-02T03:14:41Z",
    "summary": "3 package(s) upgraded, exit code 0",
    "exit_code": 0
}))]
pub struct JobSummary {
    pub id: String,
    pub host: String,
    pub kind: JobKind,
    pub state: JobState,
    /// An update that only showed what it would do.
    pub dry_run: bool,
    /// Ran regardless of the maintenance window.
    pub force: bool,
    /// The fleet rollout that started it, if any.
    pub rollout_id: Option<String>,
    /// RFC 3339.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// RFC 3339; null while queued.
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// RFC 3339; null until finished.
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Outcome in a sentence (the error for failures); null until finished.
    pub summary: Option<String>,
    /// Exit code of the upgrade, when one ran and was collected.
    pub exit_code: Option<i32>,
}

/// `GET /jobs/{id}`: a job with its outcome and full log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "job-18f3a2b4c5d-17",
    "host": "web-01",
    "kind": "update",
    "state": "succeeded",
    "dry_run": false,
    "force": false,
    "rollout_id": null,
    "created_at": "2026-05-02T03:14:00Z",
    "started_at": "2026-05-02T03:14:00.2Z",
    "finished_at": "2026-05-02T03:14:41Z",
    "summary": "1 package(s) upgraded, exit code 0",
    "exit_code": 0,
    "packages_changed": [{"name": "openssl", "from": "3.0.11-1~deb12u2", "to": "3.0.13-1~deb12u1"}],
    "also_installed": [],
    "packages_failed": [],
    "pending": [],
    "commands": [],
    "log": [{"time": "2026-05-02T03:14:02.118Z", "stream": "stdout",
             "line": "Setting up openssl (3.0.13-1~deb12u1) ..."}]
}))]
pub struct Job {
    /// Every field of the job's list entry.
    #[serde(flatten)]
    pub summary: JobSummary,
    /// Packages whose version the upgrade changed.
    pub packages_changed: Vec<PackageChange>,
    /// Of `packages_changed`, those the request's `packages` did not name: what the package
    /// manager installed or upgraded for the selected ones.
    pub also_installed: Vec<PackageChange>,
    /// Packages the package manager reported as failed.
    pub packages_failed: Vec<String>,
    /// Checks and dry runs: what would be upgraded.
    pub pending: Vec<PendingUpdate>,
    /// Dry runs: the exact commands the update would run.
    pub commands: Vec<String>,
    /// The job's output, oldest first (the newest 50 000 lines).
    pub log: Vec<LogLine>,
}

/// `GET /jobs`: one page of jobs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub data: Vec<JobSummary>,
    pub pagination: Pagination,
}

/// Query parameters of `GET /jobs`. Unknown parameters are refused (422).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// Page number, from 1.
    #[param(minimum = 1, default = 1, example = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 200.
    #[param(minimum = 1, maximum = 200, default = 50, example = 50)]
    pub per_page: Option<u32>,
    /// Only jobs of this host (also hosts removed since).
    #[param(example = "web-01")]
    pub host: Option<String>,
    /// Only jobs in this state.
    #[param(inline)]
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    #[param(inline)]
    pub kind: Option<JobKind>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;
    use utoipa::PartialSchema;

    use crate::jobs::{Job, JobKind, JobState, JobSummary};

    fn job() -> Job {
        Job {
            summary: JobSummary {
                id: "job-1".to_owned(),
                host: "web-01".to_owned(),
                kind: JobKind::Check,
                state: JobState::Succeeded,
                dry_run: false,
                force: false,
                rollout_id: None,
                created_at: "2026-05-02T03:14:00Z".to_owned(),
                started_at: None,
                finished_at: None,
                summary: None,
                exit_code: None,
            },
            packages_changed: Vec::new(),
            also_installed: Vec::new(),
            packages_failed: Vec::new(),
            pending: Vec::new(),
            commands: Vec::new(),
            log: Vec::new(),
        }
    }

    /// The properties and required fields of a schema, through `allOf` parts and references
    /// (resolved in `doc`, a map of schema names).
    fn fields(
        schema: &Value,
        doc: &Value,
        properties: &mut BTreeSet<String>,
        required: &mut BTreeSet<String>,
    ) {
        if let Some(reference) = schema["$ref"].as_str() {
            let name = reference.rsplit('/').next().unwrap();
            return fields(&doc[name], doc, properties, required);
        }
        for part in schema["allOf"].as_array().into_iter().flatten() {
            fields(part, doc, properties, required);
        }
        properties.extend(
            schema["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone()),
        );
        required.extend(
            schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
    }

    #[test]
    fn job_is_one_flat_object_and_its_schema_names_every_field() {
        let value = serde_json::to_value(job()).unwrap();
        let keys: BTreeSet<String> = value.as_object().unwrap().keys().cloned().collect();
        let back: Job = serde_json::from_value(value).unwrap();
        assert_eq!(back, job());

        let doc = serde_json::json!({ "JobSummary": serde_json::to_value(JobSummary::schema()).unwrap() });
        let schema = serde_json::to_value(Job::schema()).unwrap();
        let (mut properties, mut required) = (BTreeSet::new(), BTreeSet::new());
        fields(&schema, &doc, &mut properties, &mut required);
        assert_eq!(properties, keys, "{schema:#}");
        // What is never null is required, as when `Job` spelled out every field.
        let never_null: BTreeSet<String> = serde_json::to_value(job())
            .unwrap()
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, _)| key.clone())
            .collect();
        assert_eq!(required, never_null, "{schema:#}");
    }
}
