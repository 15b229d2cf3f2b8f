//! Every REST endpoint's error answers over real HTTP, all in the one JSON error shape: 404 for
//! unknown hosts, jobs, rollouts and groups; 409 for busy hosts, invalid transitions, disabled
//! updates, closed maintenance windows, config hosts, duplicates and finished rollouts; 422
//! naming the field or query parameter; 400 malformed JSON; 415 wrong content type; 405 wrong
//! method. Also: `/openapi.json` documents every REST route with its error responses.
//!
//! Jobs only ever run on `me` (this machine, `check-only`, no list refresh) or on loopback
//! ports (closed, or a listener that never answers). Happy paths are in `api_flows`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, spawn_app};

use crate::api_support::{
    BASE_CONFIG, add_loopback_host, assert_error, call, call_raw, closed_port, silent_listener,
    wait_host_state, wait_job, wait_rollout,
};

/// The WebSocket event stream: in the document, but not a REST route (its refusals are
/// tested in `ws_events`).
const WS_PATH: &str = "/ws/events";

/// Every REST route as `(method, path template)`, read from the daemon's `/openapi.json`. The
/// router and the document are built from the same `routes!` list, so no route can be left
/// out of this list or the document.
async fn rest_routes(app: &TestApp) -> Vec<(Method, String)> {
    let (status, doc) = call(app, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK, "{doc:#}");
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths in the document") {
        if path == WS_PATH {
            continue;
        }
        for key in item.as_object().expect("a path item").keys() {
            let method = Method::from_bytes(key.to_uppercase().as_bytes())
                .unwrap_or_else(|_| panic!("{path}: {key} is not an HTTP method"));
            routes.push((method, path.clone()));
        }
    }
    assert!(
        routes.iter().any(|(_, path)| path.contains('{')),
        "no route with a path parameter in the document: {routes:?}"
    );
    routes
}

#[tokio::test]
async fn api_unknown_resources_are_404() {
    let app = spawn_app(BASE_CONFIG).await;
    for (method, path) in rest_routes(&app).await {
        if !path.contains('{') {
            continue;
        }
        let path = path
            .replace("{name}", "no-such-host")
            .replace("{id}", "no-such-id");
        assert!(!path.contains('{'), "unknown path parameter in {path}");
        let answer = call(&app, method.clone(), &path, None).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("no-such-host") || message.contains("no-such-id"),
            "{method} {path}: {message}"
        );
    }
    // Path values that do not decode name no resource either.
    for path in ["/hosts/%FF", "/hosts/%FF/check", "/jobs/%C3%28"] {
        let method = if path.ends_with("check") {
            Method::POST
        } else {
            Method::GET
        };
        let answer = call(&app, method, path, None).await;
        assert_error(&answer, StatusCode::NOT_FOUND, "not_found");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_a_second_job_on_a_busy_host_is_409_host_busy() {
    let app = spawn_app(BASE_CONFIG).await;
    // SSH to this listener waits for a banner that never comes: the check stays running.
    let listener = silent_listener();
    let port = listener.local_addr().unwrap().port();
    add_loopback_host(&app, "slow", port, json!({"connect_timeout": "10m"})).await;

    let (status, first) = call(&app, Method::POST, "/hosts/slow/check", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first:#}");
    let job_id = first["job_id"].as_str().unwrap().to_owned();
    wait_host_state(&app, "slow", "querying").await;

    for (method, path, body) in [
        (Method::POST, "/hosts/slow/check", None),
        (
            Method::POST,
            "/hosts/slow/update",
            Some(json!({"dry_run": true})),
        ),
        (Method::POST, "/hosts/slow/reboot", None),
        (Method::DELETE, "/hosts/slow", None),
    ] {
        let answer = call(&app, method.clone(), path, body).await;
        let details = assert_error(&answer, StatusCode::CONFLICT, "host_busy");
        assert_eq!(details["job_id"], job_id.as_str(), "{method} {path}");
        assert_eq!(details["current_state"], "querying", "{method} {path}");
    }
    let (_, host) = call(&app, Method::GET, "/hosts/slow", None).await;
    assert_eq!(host["current_job"], job_id.as_str());

    // Closing the listener refuses the waiting connection: the check ends, the host is free.
    drop(listener);
    let job = wait_job(&app, &job_id).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let (_, host) = call(&app, Method::GET, "/hosts/slow", None).await;
    assert_eq!(host["state"], "unreachable", "{host:#}");
    let (status, _) = call(&app, Method::DELETE, "/hosts/slow", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_retry_and_acknowledge_need_a_failed_host() {
    let app = spawn_app(BASE_CONFIG).await;
    for action in ["retry", "acknowledge"] {
        let answer = call(&app, Method::POST, &format!("/hosts/me/{action}"), None).await;
        let details = assert_error(&answer, StatusCode::CONFLICT, "invalid_transition");
        assert_eq!(details["current_state"], "idle", "{action}");
        assert_eq!(details["action"], action);
    }
    // An unreachable host is not failed either.
    add_loopback_host(&app, "down", closed_port(), json!({})).await;
    let (_, accepted) = call(&app, Method::POST, "/hosts/down/check", None).await;
    wait_job(&app, accepted["job_id"].as_str().unwrap()).await;
    let answer = call(&app, Method::POST, "/hosts/down/retry", None).await;
    let details = assert_error(&answer, StatusCode::CONFLICT, "invalid_transition");
    assert_eq!(details["current_state"], "unreachable");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_update_on_a_check_only_host_is_409_updates_disabled() {
    let app = spawn_app(BASE_CONFIG).await;
    // An empty JSON body, `{}` and `{"force": true}` all reach the policy check; with no
    // token, a state change must say it is JSON (CSRF), so no content type at all is a 415.
    let answer = call_raw(&app, Method::POST, "/hosts/me/update", None, "").await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    for (content_type, body) in [
        (Some("application/json"), ""),
        (Some("application/json"), "{}"),
        (Some("application/json"), "{\"force\": true}"),
    ] {
        let answer = call_raw(&app, Method::POST, "/hosts/me/update", content_type, body).await;
        assert_error(&answer, StatusCode::CONFLICT, "updates_disabled");
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("updates = \"allowed\""), "{message}");
    }
    // Nothing ran.
    let (_, jobs) = call(&app, Method::GET, "/jobs", None).await;
    assert_eq!(jobs["pagination"]["total_items"], 0, "{jobs:#}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_update_outside_the_maintenance_window_is_409_unless_forced() {
    let app = spawn_app(BASE_CONFIG).await;
    // A one-minute window twelve hours from now (daemon local time) is closed now.
    let opens = jiff::Zoned::now() + jiff::SignedDuration::from_hours(12);
    let start = format!("{:02}:{:02}", opens.hour(), opens.minute());
    let closes = opens + jiff::SignedDuration::from_mins(1);
    let end = format!("{:02}:{:02}", closes.hour(), closes.minute());
    add_loopback_host(
        &app,
        "windowed",
        closed_port(),
        json!({"policy": {"maintenance_window": {"start": start, "end": end}}}),
    )
    .await;

    let answer = call(&app, Method::POST, "/hosts/windowed/update", None).await;
    let details = assert_error(&answer, StatusCode::CONFLICT, "outside_maintenance_window");
    assert!(
        details["window"].as_str().unwrap().contains(&start),
        "{details}"
    );
    let answer = call(&app, Method::POST, "/hosts/windowed/reboot", None).await;
    assert_error(&answer, StatusCode::CONFLICT, "outside_maintenance_window");

    // `force` overrides the window (the update checks first, and the closed port refuses).
    let (status, accepted) = call(
        &app,
        Method::POST,
        "/hosts/windowed/update",
        Some(json!({"force": true})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted:#}");
    let job = wait_job(&app, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["kind"], &job["force"]),
        (&json!("update"), &json!(true))
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_config_hosts_duplicates_and_finished_rollouts_are_409() {
    let app = spawn_app(BASE_CONFIG).await;
    let answer = call(&app, Method::DELETE, "/hosts/me", None).await;
    assert_error(&answer, StatusCode::CONFLICT, "config_host");

    let port = closed_port();
    add_loopback_host(&app, "twin", port, json!({})).await;
    for name in ["twin", "me"] {
        let answer = call(
            &app,
            Method::POST,
            "/hosts",
            Some(json!({"name": name, "addr": "127.0.0.1", "port": port})),
        )
        .await;
        let details = assert_error(&answer, StatusCode::CONFLICT, "duplicate");
        assert_eq!(details["field"], "name");
    }

    let (status, accepted) = call(
        &app,
        Method::POST,
        "/fleet/check",
        Some(json!({"filter": {"hosts": ["twin"]}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted:#}");
    let rollout_id = accepted["rollout_id"].as_str().unwrap();
    let rollout = wait_rollout(&app, rollout_id).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    let answer = call(
        &app,
        Method::POST,
        &format!("/rollouts/{rollout_id}/cancel"),
        None,
    )
    .await;
    let details = assert_error(&answer, StatusCode::CONFLICT, "rollout_finished");
    assert_eq!(details["current_state"], "completed");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_invalid_bodies_are_422_naming_the_field() {
    let app = spawn_app(BASE_CONFIG).await;
    let port = closed_port();
    add_loopback_host(&app, "target", port, json!({})).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/hosts", json!({"name": "x", "addr": "local"}), "addr"),
        ("/hosts", json!({"name": "x", "addr": "Local "}), "addr"),
        ("/hosts", json!({"name": "x", "addr": "not a host"}), "addr"),
        (
            "/hosts",
            json!({"name": "bad name", "addr": "127.0.0.1"}),
            "name",
        ),
        ("/hosts", json!({"addr": "127.0.0.1"}), "name"),
        ("/hosts", json!({"name": "x"}), "addr"),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "port": 0}),
            "port",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "port": 70000}),
            "port",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "user": "-oProxyCommand=x"}),
            "user",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "reboot_command": ["reboot"]}),
            "reboot_command",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "local": true}),
            "local",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "ssh_key": "/nonexistent/id"}),
            "ssh_key",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "check_interval": "often"}),
            "check_interval",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "known_hosts": "trusting"}),
            "known_hosts",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "policy": {"updates": "sometimes"}}),
            "policy.updates",
        ),
        (
            "/hosts",
            json!({"name": "x", "addr": "127.0.0.1", "policy": {"maintenance_window": {"start": "24:00", "end": "01:00"}}}),
            "policy.maintenance_window.start",
        ),
        ("/hosts/target/update", json!({"dry_run": "yes"}), "dry_run"),
        ("/hosts/target/update", json!({"dryrun": true}), "dryrun"),
        (
            "/fleet/check",
            json!({"filter": {"hosts": ["nobody"]}}),
            "filter.hosts",
        ),
        (
            "/fleet/check",
            json!({"filter": {"tag": ["x"]}}),
            "filter.tag",
        ),
        (
            "/fleet/check",
            json!({"filter": {"groups": ["nogroup"]}}),
            "filter.groups",
        ),
        (
            "/fleet/check",
            json!({"filter": {"tags": ["no-such-tag"]}}),
            "filter",
        ),
        ("/fleet/update", json!({"batch_size": 0}), "batch_size"),
        ("/fleet/update", json!({"batch_size": -2}), "batch_size"),
        ("/fleet/update", json!({"delay_ms": 86_400_001}), "delay_ms"),
        (
            "/fleet/update",
            json!({"max_failures": "150%"}),
            "max_failures",
        ),
        (
            "/fleet/update",
            json!({"max_failures": "ten"}),
            "max_failures",
        ),
        ("/fleet/update", json!({"max_failures": -1}), "max_failures"),
        (
            "/fleet/update",
            json!({"max_failures": true}),
            "max_failures",
        ),
        (
            "/fleet/update",
            json!({"canary": ["me"], "filter": {"hosts": ["target"]}}),
            "canary",
        ),
        (
            "/fleet/update",
            json!({"filter": {"exclude_hosts": ["nobody"]}}),
            "filter.exclude_hosts",
        ),
        ("/fleet/update", json!({"serial": 2}), "serial"),
    ];
    for (path, body, field) in cases {
        let answer = call(&app, Method::POST, path, Some(body.clone())).await;
        let details = assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value");
        assert_eq!(
            details["field"], field,
            "POST {path} {body}: {:#}",
            answer.1
        );
    }
    // None of that registered a host or started anything.
    let (_, hosts) = call(&app, Method::GET, "/hosts", None).await;
    assert_eq!(hosts["pagination"]["total_items"], 2, "{hosts:#}");
    let (_, rollouts) = call(&app, Method::GET, "/rollouts", None).await;
    assert_eq!(rollouts["pagination"]["total_items"], 0, "{rollouts:#}");
    let (_, jobs) = call(&app, Method::GET, "/jobs", None).await;
    assert_eq!(jobs["pagination"]["total_items"], 0, "{jobs:#}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_bad_query_parameters_are_422_naming_the_parameter() {
    let app = spawn_app(BASE_CONFIG).await;
    for (path, field) in [
        ("/hosts?page=0", "page"),
        ("/hosts?page=-1", "page"),
        ("/hosts?page=two", "page"),
        ("/hosts?per_page=0", "per_page"),
        ("/hosts?per_page=201", "per_page"),
        ("/hosts?state=sleeping", "state"),
        ("/hosts?state=idle&state=failed", "state"),
        ("/hosts?group=nogroup", "group"),
        ("/hosts?tags=self", "tags"),
        ("/jobs?state=done", "state"),
        ("/jobs?kind=upgrade", "kind"),
        ("/jobs?per_page=1000", "per_page"),
        ("/jobs?hosts=me", "hosts"),
        ("/rollouts?state=finished", "state"),
        ("/rollouts?page=1.5", "page"),
    ] {
        let answer = call(&app, Method::GET, path, None).await;
        let details = assert_error(&answer, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value");
        assert_eq!(details["field"], field, "GET {path}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_malformed_json_is_400_and_wrong_content_type_415() {
    let app = spawn_app(BASE_CONFIG).await;
    for path in [
        "/hosts",
        "/hosts/me/update",
        "/fleet/check",
        "/fleet/update",
    ] {
        for body in ["{", "not json", "{,}"] {
            let answer = call_raw(&app, Method::POST, path, Some("application/json"), body).await;
            assert_error(&answer, StatusCode::BAD_REQUEST, "malformed_json");
        }
        for content_type in [
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            None,
        ] {
            let answer = call_raw(&app, Method::POST, path, content_type, "{}").await;
            assert_error(
                &answer,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            );
        }
    }
    // Bodies that must be there: no body is a 415 too.
    for path in ["/hosts", "/fleet/update"] {
        let answer = call_raw(&app, Method::POST, path, None, "").await;
        assert_error(
            &answer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_wrong_method_is_405() {
    let app = spawn_app(BASE_CONFIG).await;
    let routes = rest_routes(&app).await;
    let mut n_checked = 0;
    for (_, path) in &routes {
        let concrete = path.replace("{name}", "me").replace("{id}", "some-id");
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if routes.iter().any(|(m, p)| *m == method && p == path) {
                continue;
            }
            let answer = call(&app, method.clone(), &concrete, None).await;
            assert_eq!(
                answer.0,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {concrete}: {:#}",
                answer.1
            );
            assert_error(
                &answer,
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
            );
            n_checked += 1;
        }
    }
    assert!(n_checked > routes.len(), "{n_checked} wrong methods tried");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_openapi_documents_every_rest_route() {
    let app = spawn_app(BASE_CONFIG).await;
    let (status, doc) = call(&app, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let error_ref = "#/components/schemas/ErrorResponse";
    let routes = rest_routes(&app).await;
    for (method, path) in &routes {
        let operation = &doc["paths"][path][method.as_str().to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not documented");
        for key in ["summary", "description", "tags"] {
            assert!(
                !operation[key].is_null(),
                "{method} {path} has no {key}: {operation:#}"
            );
        }
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|code| code.starts_with('2')),
            "{method} {path}: {responses:#?}"
        );
        for (code, response) in responses {
            if code.starts_with('4') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"], error_ref,
                    "{method} {path} {code}"
                );
            }
        }
        if path.contains('{') {
            assert!(
                responses.contains_key("404"),
                "{method} {path} documents no 404"
            );
        }
        if *method == Method::POST && operation.get("requestBody").is_some() {
            assert!(responses.contains_key("400") && responses.contains_key("415"));
        }
    }
    // Operation ids name each operation once across the document (validators insist).
    let mut operation_ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let n_operations = operation_ids.len();
    operation_ids.sort_unstable();
    operation_ids.dedup();
    assert_eq!(operation_ids.len(), n_operations, "{operation_ids:?}");
    assert!(n_operations >= routes.len());

    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "HostList",
        "HostSummary",
        "HostDetail",
        "HostInventory",
        "NewHost",
        "UpdateRequest",
        "JobAccepted",
        "Job",
        "JobList",
        "FleetCheckRequest",
        "FleetUpdateRequest",
        "MaxFailures",
        "RolloutAccepted",
        "Rollout",
        "RolloutList",
        "GroupList",
        "Group",
        "TagList",
        "Pagination",
        "ErrorResponse",
    ] {
        let schema = &schemas[name];
        assert!(schema.is_object(), "schema {name} missing");
        if !name.ends_with("List") {
            assert!(
                schema.get("example").is_some() || schema.get("examples").is_some(),
                "schema {name} has no example: {schema:#}"
            );
        }
    }
    let host_states = &schemas["HostState"]["enum"];
    assert_eq!(
        host_states,
        &json!([
            "idle",
            "querying",
            "pending_updates",
            "updating",
            "waiting_reboot",
            "rebooting",
            "verifying",
            "failed",
            "unreachable"
        ])
    );
    app.stop().await.unwrap();
}
