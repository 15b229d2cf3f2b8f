//! `/hosts` routes: list (filters, pagination), register, show, delete, inventory, and the host
//! actions (check, update, reboot, retry, acknowledge). Long actions answer `202` with a job id
//! at once; the job runs in the host actor's task. Validation of a new host lives in
//! `http::new_host`, domain -> wire mapping in `http::mapping`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::Value;
use tendhost_api::ErrorResponse;
use tendhost_api::hosts::{
    HostDetail, HostInventory, HostList, HostListQuery, JobAccepted, NewHost, RebootRequest,
    UpdateRequest,
};
use tendhost_core::IndexedHost;
use tendhost_core::model::{FleetError, HostStatus, UpdateOptions};
use tendhost_core::state::{HostState, JobKind};

use crate::api_hosts;
use crate::http::AppState;
use crate::http::error::{ApiError, ApiJson};
use crate::http::extract::{ApiPath, OptionalJson, Query};
use crate::http::mapping;
use crate::http::new_host::host_spec;
use crate::http::selection;

/// The query parameters `GET /hosts` knows.
const LIST_PARAMS: &[&str] = &[
    "page", "per_page", "tag", "state", "group", "search", "sort",
];

/// Lists hosts.
#[utoipa::path(
    get,
    path = "/hosts",
    operation_id = "list_hosts",
    tag = "hosts",
    summary = "List hosts",
    description = "Hosts in name order (or `sort`'s), one page at a time. Filters combine: `tag` \
        (repeatable; a host must carry every tag given), `state`, `group` and `search` (name \
        prefix). `sort` is `name`, `state`, `pending`, `security`, `reboot` or `last_check`, \
        `-` first for the reverse order; ties go by name. Unknown parameters and bad values \
        answer 422 naming the parameter.",
    params(HostListQuery),
    responses(
        (status = 200, description = "One page of hosts", body = HostList),
        (status = 422, description = "A bad or unknown query parameter (`details.field` names it)", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_value", "message": "state: unknown host state \"sleeping\"; use one of idle, querying, pending_updates, updating, waiting_reboot, rebooting, verifying, failed, unreachable", "details": {"field": "state"}}})),
        (status = 503, description = "The daemon is shutting down (`shutting_down`)", body = ErrorResponse),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<HostList>, ApiError> {
    let query = Query::parse(raw.as_deref(), LIST_PARAMS)?;
    let page = query.page()?;
    let tags = query.all("tag");
    let host_state = query.parsed("state", parse_host_state)?;
    let search = query.single("search")?.unwrap_or_default().to_owned();
    let group = query.single("group")?.map(str::to_owned);
    let sort = query.parsed("sort", HostSort::parse)?.unwrap_or_default();
    // The index, not a snapshot of every host: each host's state is read once, under its own
    // lock, for the filter and the sort key; only the page's hosts are cloned and mapped.
    let index = state.fleet().index()?;
    if let Some(group) = &group
        && !index.groups().contains_key(group)
    {
        return Err(ApiError::invalid_value(
            "group",
            format!("unknown group {group:?}"),
        ));
    }
    let mut hosts: Vec<(SortValue, IndexedHost<'_>)> = index
        .iter()
        .filter(|host| tags.iter().all(|tag| host.spec().tags.contains(tag)))
        .filter(|host| group.as_ref().is_none_or(|g| host.groups().contains(g)))
        .filter(|host| host.name().starts_with(&search))
        .filter_map(|host| {
            host.read(|status| {
                host_state
                    .is_none_or(|wanted| status.state == wanted)
                    .then(|| (sort.value(status), host))
            })
        })
        .collect();
    sort.apply(&mut hosts);
    let (hosts, pagination) = page.slice(hosts);
    Ok(Json(HostList {
        data: hosts
            .iter()
            .map(|(_, host)| mapping::host_summary(&host.snapshot()))
            .collect(),
        pagination,
    }))
}

/// A host's sort key, read from its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    /// Name order: the index's own.
    Name,
    State(&'static str),
    Count(usize),
    Flag(bool),
    Time(Option<jiff::Timestamp>),
}

/// The order of `GET /hosts`: a key and a direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct HostSort {
    key: SortKey,
    descending: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum SortKey {
    #[default]
    Name,
    State,
    Pending,
    Security,
    Reboot,
    LastCheck,
}

impl HostSort {
    const KEYS: [(&'static str, SortKey); 6] = [
        ("name", SortKey::Name),
        ("state", SortKey::State),
        ("pending", SortKey::Pending),
        ("security", SortKey::Security),
        ("reboot", SortKey::Reboot),
        ("last_check", SortKey::LastCheck),
    ];

    fn parse(value: &str) -> Result<HostSort, String> {
        let (descending, name) = match value.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, value),
        };
        Self::KEYS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, key)| HostSort {
                key: *key,
                descending,
            })
            .ok_or_else(|| {
                let names: Vec<&str> = Self::KEYS.iter().map(|(name, _)| *name).collect();
                format!(
                    "unknown sort key {value:?}; use one of {} (a leading - reverses it)",
                    names.join(", ")
                )
            })
    }

    /// The key of a host with `status`.
    fn value(self, status: &HostStatus) -> SortValue {
        match self.key {
            SortKey::Name => SortValue::Name,
            SortKey::State => SortValue::State(status.state.as_str()),
            SortKey::Pending => SortValue::Count(status.report.pending.len()),
            SortKey::Security => {
                SortValue::Count(status.report.pending.iter().filter(|p| p.security).count())
            }
            SortKey::Reboot => SortValue::Flag(
                mapping::reboot_state(&status.reboot) == tendhost_api::hosts::RebootState::Required,
            ),
            SortKey::LastCheck => SortValue::Time(status.last_check),
        }
    }

    /// Sorts `hosts` by the key; ties go by name, ascending whatever the direction.
    fn apply(self, hosts: &mut [(SortValue, IndexedHost<'_>)]) {
        let compare = |a: &(SortValue, IndexedHost<'_>), b: &(SortValue, IndexedHost<'_>)| {
            let by_key = match self.key {
                SortKey::Name => a.1.name().cmp(b.1.name()),
                _ => a.0.cmp(&b.0),
            };
            let by_key = if self.descending {
                by_key.reverse()
            } else {
                by_key
            };
            by_key.then_with(|| a.1.name().cmp(b.1.name()))
        };
        if self.key == SortKey::Name && !self.descending {
            // The index is in name order already.
            return;
        }
        hosts.sort_by(|a, b| compare(a, b));
    }
}

fn parse_host_state(value: &str) -> Result<HostState, String> {
    HostState::parse(value).ok_or_else(|| {
        let names: Vec<&str> = HostState::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown host state {value:?}; use one of {}",
            names.join(", ")
        )
    })
}

/// Registers a host at runtime.
#[utoipa::path(
    post,
    path = "/hosts",
    operation_id = "create_host",
    tag = "hosts",
    summary = "Register a host",
    description = "Adds an SSH host while the daemon runs, with `[defaults]` from the config file \
        for what the body leaves out. Refused (403 `api_hosts_disabled`) unless the config file \
        has `[daemon.api_hosts] allow`; the address, or every address a name resolves to, must \
        be allowed there (403 `address_not_allowed` names the rule; loopback and link-local \
        only when listed explicitly). Validated like a `[[host]]` table. The key and the \
        host-key policy come from `[daemon.api_hosts]` (default `strict`); `host_key_sha256` \
        pins the expected key. A host registered here cannot be `local` and has no \
        `reboot_command` (both only in the config file), and its connection failures all read \
        `cannot connect` (the cause is in the daemon's log). It is checked on its \
        `check_interval`, or at once with `POST /hosts/{name}/check`.",
    request_body(content = NewHost, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered; `Location` is its URL", body = HostDetail,
            headers(("Location" = String, description = "`/hosts/{name}`"))),
        (status = 400, description = "The body is not valid JSON", body = ErrorResponse),
        (status = 403, description = "Registration is disabled (`api_hosts_disabled`) or the address is not allowed (`address_not_allowed`)", body = ErrorResponse,
            example = json!({"error": {"code": "address_not_allowed", "message": "192.168.1.9 is not allowed by daemon.api_hosts.allow = [\"10.0.0.0/8\"]", "details": {"field": "addr", "rule": "daemon.api_hosts.allow"}}})),
        (status = 409, description = "A host with this name exists (`duplicate`)", body = ErrorResponse,
            example = json!({"error": {"code": "duplicate", "message": "host \"web-03\" already exists", "details": {"field": "name"}}})),
        (status = 415, description = "The body is not `application/json`", body = ErrorResponse),
        (status = 422, description = "A bad or unknown field (`details.field` names it)", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_value", "message": "addr: hosts added through the API cannot be local; define local hosts in the config file", "details": {"field": "addr"}}})),
    )
)]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewHost>,
) -> Result<impl IntoResponse, ApiError> {
    let api_hosts = state.api_hosts();
    if !api_hosts.enabled() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "api_hosts_disabled",
            format!(
                "registering hosts through the API is disabled: list the addresses it may \
                 register in {} (e.g. allow = [\"10.0.0.0/8\", \"*.lan\"] under \
                 [daemon.api_hosts]) in the config file",
                api_hosts::ALLOW_KEY
            ),
        )
        .with_details(serde_json::json!({"config_key": api_hosts::ALLOW_KEY})));
    }
    let record = crate::http::new_host::host_record(&new);
    let spec = host_spec(new, state.defaults(), api_hosts)?;
    if let tendhost_core::spec::HostTarget::Ssh { addr, port } = &spec.target {
        match api_hosts::check(&api_hosts.allow, addr, *port, api_hosts.resolve_timeout).await {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "address_not_allowed",
                    refusal.message,
                )
                .with_details(serde_json::json!({
                    "field": "addr",
                    "rule": api_hosts::ALLOW_KEY,
                    "addr": refusal.addr.map(|ip| ip.to_string()),
                })));
            }
            Err(api_hosts::ResolveError(reason)) => {
                return Err(ApiError::invalid_value("addr", reason));
            }
        }
    }
    let host = state.fleet().add_host(spec).await?;
    if let Some(records) = state.records()
        && let Err(err) = records.add_runtime_host(record).await
    {
        // Not durable means not registered: a host that vanishes at the next restart lies.
        let _ = state.fleet().remove_host(&host.name).await;
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            format!("cannot store host {}: {err}", host.name),
        ));
    }
    let location = format!("/hosts/{}", host.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(mapping::host_detail(&host)),
    ))
}

/// Shows one host.
#[utoipa::path(
    get,
    path = "/hosts/{name}",
    operation_id = "get_host",
    tag = "hosts",
    summary = "Show a host",
    description = "State, failure record, pending updates, reboot state, inventory summary, last \
        check and current job of one host.",
    params(("name" = String, Path, description = "Host name", example = "web-01")),
    responses(
        (status = 200, description = "The host", body = HostDetail),
        (status = 404, description = "No such host", body = ErrorResponse,
            example = json!({"error": {"code": "not_found", "message": "host \"web-99\" not found"}})),
    )
)]
pub async fn get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<HostDetail>, ApiError> {
    let host = state.fleet().host(&name).await?;
    Ok(Json(mapping::host_detail(&host)))
}

/// Removes a runtime host.
#[utoipa::path(
    delete,
    path = "/hosts/{name}",
    operation_id = "delete_host",
    tag = "hosts",
    summary = "Remove a host",
    description = "Removes a host registered through the API. Hosts from the config file are \
        removed there (409 `config_host`); a host with a running job cannot be removed \
        (409 `host_busy`). Its past jobs stay readable under `/jobs`.",
    params(("name" = String, Path, description = "Host name", example = "web-03")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such host", body = ErrorResponse),
        (status = 409, description = "Defined in the config file (`config_host`) or a job runs (`host_busy`, with `details.job_id`)", body = ErrorResponse,
            example = json!({"error": {"code": "config_host", "message": "host \"web-01\" is defined in the config file; remove it there"}})),
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    match state.fleet().remove_host(&name).await {
        Ok(()) => {
            if let Some(records) = state.records()
                && let Err(err) = records.remove_runtime_host(&name).await
            {
                tracing::error!(host = %name, %err, "removed host is still in the state database");
            }
            Ok(StatusCode::NO_CONTENT)
        }
        Err(err) => Err(action_error(&state, &name, err).await),
    }
}

/// Shows a host's inventory.
#[utoipa::path(
    get,
    path = "/hosts/{name}/inventory",
    operation_id = "get_host_inventory",
    tag = "hosts",
    summary = "Show a host's inventory",
    description = "What the host is (OS, kernel, architecture, uptime, boot identity, package \
        manager, installed packages, free disk), as collected by its last check. `inventory` is \
        null until a check has run.",
    params(("name" = String, Path, description = "Host name", example = "web-01")),
    responses(
        (status = 200, description = "The inventory", body = HostInventory),
        (status = 404, description = "No such host", body = ErrorResponse),
    )
)]
pub async fn inventory(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<HostInventory>, ApiError> {
    let host = state.fleet().host(&name).await?;
    Ok(Json(mapping::host_inventory(&host)))
}

/// Starts a check.
#[utoipa::path(
    post,
    path = "/hosts/{name}/check",
    operation_id = "check_host",
    tag = "hosts",
    summary = "Check a host for updates",
    description = "Starts a check (package lists, pending updates, reboot state, inventory) and \
        answers at once with its job id. Allowed whenever no job runs on the host. An \
        unreachable host becomes `unreachable`, not `failed`.",
    params(("name" = String, Path, description = "Host name", example = "web-01")),
    responses(
        (status = 202, description = "The check started", body = JobAccepted,
            headers(("Location" = String, description = "`/jobs/{id}`"))),
        (status = 404, description = "No such host", body = ErrorResponse),
        (status = 409, description = "A job runs on the host (`host_busy`, with `details.job_id` and `details.current_state`)", body = ErrorResponse,
            example = json!({"error": {"code": "host_busy", "message": "host web-01 is busy with job job-18f3a2b4c5d-17", "details": {"job_id": "job-18f3a2b4c5d-17", "current_state": "querying"}}})),
    )
)]
pub async fn check(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let result = state.fleet().check(&name).await;
    accepted(&state, &name, JobKind::Check, result).await
}

/// Starts an update.
#[utoipa::path(
    post,
    path = "/hosts/{name}/update",
    operation_id = "update_host",
    tag = "hosts",
    summary = "Update a host",
    description = "Starts an upgrade (checking first if the host was never checked) and answers \
        at once with its job id. `packages` picks what to install (`\"all\"`, `\"security\"` \
        or package names, with what they need: `also_installed` in the job); packages the \
        host's `exclude` patterns match are never installed. With `dry_run` nothing changes: \
        the job lists what would be upgraded and the exact commands. The body is optional (no body means `{}`). Refused \
        with 409 on a `failed` host (use retry), a host waiting for a reboot, a `check-only` \
        host (`updates_disabled`) and outside the maintenance window unless `force`.",
    params(("name" = String, Path, description = "Host name", example = "web-01")),
    request_body(content = Option<UpdateRequest>, content_type = "application/json",
        description = "Optional"),
    responses(
        (status = 202, description = "The update started", body = JobAccepted,
            headers(("Location" = String, description = "`/jobs/{id}`"))),
        (status = 400, description = "The body is not valid JSON", body = ErrorResponse),
        (status = 404, description = "No such host", body = ErrorResponse),
        (status = 409, description = "`host_busy`, `invalid_transition` (with `details.current_state`), `updates_disabled` or `outside_maintenance_window`", body = ErrorResponse,
            example = json!({"error": {"code": "updates_disabled", "message": "updates are disabled for host localhost (policy updates = \"check-only\"); set `updates = \"allowed\"` in its [host.policy] to allow them"}})),
        (status = 415, description = "A body that is not `application/json`", body = ErrorResponse),
        (status = 422, description = "A bad or unknown field", body = ErrorResponse),
    )
)]
pub async fn update(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    OptionalJson(body): OptionalJson<UpdateRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let body = body.unwrap_or_default();
    let options = UpdateOptions {
        packages: selection::packages(body.packages)?,
        ..UpdateOptions::new(body.dry_run, body.force)
    };
    let result = state.fleet().update(&name, options).await;
    accepted(&state, &name, JobKind::Update, result).await
}

/// Starts a reboot.
#[utoipa::path(
    post,
    path = "/hosts/{name}/reboot",
    operation_id = "reboot_host",
    tag = "hosts",
    summary = "Reboot a host",
    description = "Reboots the host (its `reboot_command`, or the system's), waits for a new boot \
        identity, then checks it again (`rebooting` -> `verifying` -> `idle`). Answers at once \
        with the job id. Refused on a `check-only` host (`updates_disabled`) and outside the \
        maintenance window unless `force`. The body is optional (no body means `{}`).",
    params(("name" = String, Path, description = "Host name", example = "web-01")),
    request_body(content = Option<RebootRequest>, content_type = "application/json",
        description = "Optional"),
    responses(
        (status = 202, description = "The reboot started", body = JobAccepted,
            headers(("Location" = String, description = "`/jobs/{id}`"))),
        (status = 400, description = "The body is not valid JSON", body = ErrorResponse),
        (status = 404, description = "No such host", body = ErrorResponse),
        (status = 409, description = "`host_busy`, `updates_disabled` or `outside_maintenance_window`", body = ErrorResponse),
        (status = 415, description = "A body that is not `application/json`", body = ErrorResponse),
        (status = 422, description = "A bad or unknown field", body = ErrorResponse),
    )
)]
pub async fn reboot(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    OptionalJson(body): OptionalJson<RebootRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let options = UpdateOptions::new(false, body.unwrap_or_default().force);
    let result = state.fleet().reboot(&name, options).await;
    accepted(&state, &name, JobKind::Reboot, result).await
}

/// Re-runs what failed.
#[utoipa::path(
    post,
    path = "/hosts/{name}/retry",
    operation_id = "retry_host",
    tag = "hosts",
    summary = "Retry a failed host",
    description = "Runs the failed action again (the failure record's `action`) from the state it \
        started in, ignoring the maintenance window. Only a `failed` host can be retried.",
    params(("name" = String, Path, description = "Host name", example = "web-01")),
    responses(
        (status = 202, description = "The retry started", body = JobAccepted,
            headers(("Location" = String, description = "`/jobs/{id}`"))),
        (status = 404, description = "No such host", body = ErrorResponse),
        (status = 409, description = "The host is not `failed` (`invalid_transition`, with `details.current_state`) or busy", body = ErrorResponse,
            example = json!({"error": {"code": "invalid_transition", "message": "cannot retry host web-01 while it is idle: only a failed host can be retried or acknowledged", "details": {"current_state": "idle", "action": "retry"}}})),
    )
)]
pub async fn retry(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let result = state.fleet().retry(&name).await;
    let kind = result
        .as_ref()
        .ok()
        .and_then(|id| state.fleet().job(id).ok())
        .map_or(JobKind::Check, |job| job.kind);
    accepted(&state, &name, kind, result).await
}

/// Marks a failure as seen.
#[utoipa::path(
    post,
    path = "/hosts/{name}/acknowledge",
    operation_id = "acknowledge_host",
    tag = "hosts",
    summary = "Acknowledge a failure",
    description = "Marks the failure of a `failed` host as seen (`failure.acknowledged`); the host \
        stays `failed` until a retry or check succeeds.",
    params(("name" = String, Path, description = "Host name", example = "web-01")),
    responses(
        (status = 200, description = "The host, with its failure acknowledged", body = HostDetail),
        (status = 404, description = "No such host", body = ErrorResponse),
        (status = 409, description = "The host is not `failed` (`invalid_transition`, with `details.current_state`)", body = ErrorResponse),
    )
)]
pub async fn acknowledge(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<HostDetail>, ApiError> {
    match state.fleet().acknowledge(&name).await {
        Ok(host) => Ok(Json(mapping::host_detail(&host))),
        Err(err) => Err(action_error(&state, &name, err).await),
    }
}

/// `202 {job_id}` with `Location: /jobs/{id}`, or the error.
async fn accepted(
    state: &AppState,
    name: &str,
    kind: JobKind,
    result: Result<String, FleetError>,
) -> Result<impl IntoResponse + use<>, ApiError> {
    let job_id = match result {
        Ok(job_id) => job_id,
        Err(err) => return Err(action_error(state, name, err).await),
    };
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/jobs/{job_id}"))],
        Json(JobAccepted {
            job_id,
            host: name.to_owned(),
            kind: mapping::job_kind(kind),
        }),
    ))
}

/// `ApiError` for a refused host action; a `host_busy` also says which state the host is in.
async fn action_error(state: &AppState, name: &str, err: FleetError) -> ApiError {
    let busy = matches!(err, FleetError::HostBusy { .. });
    let mut error = ApiError::from(err);
    if busy
        && let Ok(host) = state.fleet().host(name).await
        && let Some(details) = error.details.as_mut().and_then(Value::as_object_mut)
    {
        details.insert("current_state".to_owned(), Value::from(host.state.as_str()));
    }
    error
}
