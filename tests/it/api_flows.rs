//! The REST API's happy paths over real HTTP: listing with filters and pagination, registering
//! and removing hosts, groups and tags, a real check and dry run of this machine (`me`,
//! `check-only`, no list refresh: `apt-get -s`, nothing changes), a failed host acknowledged
//! and retried, and fleet rollouts (canary, batches, `max_failures`, skipped hosts, cancel).
//!
//! Remote hosts here are loopback ports nothing listens on, so their jobs end `unreachable`
//! without contacting anything. Error answers are in `api_errors`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tendhost_tests::daemon::spawn_app;

use crate::api_support::{
    BASE_CONFIG, add_loopback_host, assert_time, call, closed_port, wait_job, wait_rollout,
};

fn names(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|host| host["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn api_hosts_are_listed_filtered_and_paginated() {
    let app = spawn_app(BASE_CONFIG).await;
    let port = closed_port();
    for (name, tags) in [
        ("web-1", json!(["web", "prod"])),
        ("web-2", json!(["web"])),
        ("web-3", json!(["web", "prod"])),
        ("db-1", json!(["db", "prod"])),
        ("db-2", json!(["db"])),
    ] {
        let created = add_loopback_host(&app, name, port, json!({"tags": tags})).await;
        assert_eq!(created["origin"], "runtime");
        assert_eq!(created["state"], "idle");
        assert_eq!(created["port"], port);
    }

    let (status, all) = call(&app, Method::GET, "/hosts", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        names(&all),
        ["db-1", "db-2", "me", "web-1", "web-2", "web-3"]
    );
    assert_eq!(
        all["pagination"],
        json!({"page": 1, "per_page": 50, "total_items": 6, "total_pages": 1})
    );
    let me = &all["data"][2];
    assert_eq!(
        (&me["addr"], &me["port"], &me["origin"], &me["updates"]),
        (
            &json!("local"),
            &Value::Null,
            &json!("config"),
            &json!("check-only")
        )
    );
    assert_eq!(me["groups"], json!(["mine"]));
    assert_eq!(me["reboot"], "unknown");

    for (query, expected, total_pages) in [
        ("?per_page=4", vec!["db-1", "db-2", "me", "web-1"], 2),
        ("?per_page=4&page=2", vec!["web-2", "web-3"], 2),
        ("?per_page=4&page=3", vec![], 2),
        ("?tag=web", vec!["web-1", "web-2", "web-3"], 1),
        ("?tag=prod&tag=web", vec!["web-1", "web-3"], 1),
        ("?tag=prod&tag=db&tag=web", vec![], 0),
        ("?search=db-", vec!["db-1", "db-2"], 1),
        ("?search=web&tag=prod&per_page=1&page=2", vec!["web-3"], 2),
        ("?group=mine", vec!["me"], 1),
        ("?state=idle&tag=db", vec!["db-1", "db-2"], 1),
        ("?state=unreachable", vec![], 0),
    ] {
        let (status, page) = call(&app, Method::GET, &format!("/hosts{query}"), None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page:#}");
        assert_eq!(names(&page), expected, "{query}");
        assert_eq!(page["pagination"]["total_pages"], total_pages, "{query}");
    }

    let (_, tags) = call(&app, Method::GET, "/tags", None).await;
    assert_eq!(
        tags["data"],
        json!([
            {"name": "db", "n_hosts": 2},
            {"name": "local", "n_hosts": 1},
            {"name": "prod", "n_hosts": 3},
            {"name": "self", "n_hosts": 1},
            {"name": "web", "n_hosts": 3}
        ])
    );
    let (_, groups) = call(&app, Method::GET, "/groups", None).await;
    assert_eq!(groups["data"], json!([{"name": "mine", "hosts": ["me"]}]));
    let (status, group) = call(&app, Method::GET, "/groups/mine", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(group["name"], "mine");
    assert_eq!(group["hosts"][0]["name"], "me");

    let (status, _) = call(&app, Method::DELETE, "/hosts/web-2", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, Method::GET, "/hosts/web-2", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, web) = call(&app, Method::GET, "/hosts?tag=web", None).await;
    assert_eq!(names(&web), ["web-1", "web-3"]);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_registered_host_takes_defaults_and_its_own_settings() {
    let app = spawn_app(&format!(
        "[defaults]\nuser = \"ops\"\nport = 2222\n{BASE_CONFIG}"
    ))
    .await;
    let response = app
        .client
        .post(app.url("/hosts"))
        .json(&json!({
            "name": "db-9", "addr": "127.0.0.1",
            "policy": {"updates": "check-only", "auto_reboot": true,
                       "maintenance_window": {"start": "23:30", "end": "01:00", "days": ["sat", "sun"]}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["location"], "/hosts/db-9");
    let (_, host) = call(&app, Method::GET, "/hosts/db-9", None).await;
    assert_eq!(
        (&host["user"], &host["port"]),
        (&json!("ops"), &json!(2222))
    );
    assert_eq!(
        host["policy"],
        json!({"updates": "check-only", "auto_reboot": true,
               "maintenance_window": {"start": "23:30", "end": "01:00", "days": ["sat", "sun"]}})
    );
    let (_, inventory) = call(&app, Method::GET, "/hosts/db-9/inventory", None).await;
    assert_eq!(
        inventory,
        json!({"host": "db-9", "last_check": null, "inventory": null})
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_check_and_dry_run_of_this_machine() {
    let app = spawn_app(BASE_CONFIG).await;
    let response = app
        .client
        .post(app.url("/hosts/me/check"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(
        (&accepted["host"], &accepted["kind"]),
        (&json!("me"), &json!("check"))
    );
    let job_id = accepted["job_id"].as_str().unwrap();
    assert_eq!(location, format!("/jobs/{job_id}"));

    let job = wait_job(&app, job_id).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    for key in ["created_at", "started_at", "finished_at"] {
        assert_time(&job[key]);
    }
    assert!(
        job["summary"].as_str().unwrap().contains("pending update"),
        "{job:#}"
    );

    let (_, host) = call(&app, Method::GET, "/hosts/me", None).await;
    let n_pending = host["pending"].as_array().unwrap().len();
    let expected_state = if n_pending > 0 {
        "pending_updates"
    } else {
        "idle"
    };
    assert!(
        host["state"] == expected_state || host["state"] == "waiting_reboot",
        "{host:#}"
    );
    assert_eq!(job["pending"].as_array().unwrap().len(), n_pending);
    assert_time(&host["last_check"]);
    assert_eq!(host["current_job"], Value::Null);
    assert!(
        ["required", "not_required", "unknown"]
            .contains(&host["reboot"]["state"].as_str().unwrap()),
        "{host:#}"
    );
    assert_eq!(host["inventory"]["package_manager"], "apt", "{host:#}");
    for update in host["pending"].as_array().unwrap() {
        assert!(
            update["new_version"]
                .as_str()
                .is_some_and(|v| !v.is_empty())
        );
    }
    let (_, inventory) = call(&app, Method::GET, "/hosts/me/inventory", None).await;
    assert_eq!(inventory["host"], "me");
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap();
    let os_name = inventory["inventory"]["os_name"].as_str().unwrap();
    assert!(
        os_release.contains(os_name),
        "{os_name} not in /etc/os-release"
    );
    assert!(
        inventory["inventory"]["installed_packages"]
            .as_u64()
            .unwrap()
            > 0
    );

    // A dry run is allowed on a check-only host: it only shows what it would do.
    let (status, accepted) = call(
        &app,
        Method::POST,
        "/hosts/me/update",
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted:#}");
    let dry_run = wait_job(&app, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(dry_run["state"], "succeeded", "{dry_run:#}");
    assert_eq!(
        (&dry_run["kind"], &dry_run["dry_run"]),
        (&json!("update"), &json!(true))
    );
    let commands = dry_run["commands"].as_array().unwrap();
    assert!(
        commands
            .iter()
            .any(|c| c.as_str().unwrap().contains("apt-get")),
        "{dry_run:#}"
    );
    assert_eq!(dry_run["packages_changed"], json!([]));

    let (_, jobs) = call(&app, Method::GET, "/jobs?host=me&state=succeeded", None).await;
    let ids: Vec<&str> = jobs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [dry_run["id"].as_str().unwrap(), job_id],
        "newest first"
    );
    let (_, checks) = call(&app, Method::GET, "/jobs?kind=check&per_page=1", None).await;
    assert_eq!(checks["data"][0]["id"], job_id);
    assert_eq!(checks["pagination"]["total_items"], 1);
    assert!(
        checks["data"][0].get("log").is_none(),
        "list items carry no log"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_failed_host_is_acknowledged_then_retried() {
    // `dnf` pinned on this Debian machine: the check fails (no dnf here) and the host is
    // `failed`, without changing anything.
    assert!(
        !std::path::Path::new("/usr/bin/dnf").exists(),
        "this test needs a machine without dnf (it makes a check fail by pinning dnf)"
    );
    let config = format!(
        "{BASE_CONFIG}\n[[host]]\nname = \"broken\"\naddr = \"local\"\npackage_manager = \"dnf\"\n\
         [host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n"
    );
    let app = spawn_app(&config).await;
    let (_, accepted) = call(&app, Method::POST, "/hosts/broken/check", None).await;
    let first_job = accepted["job_id"].as_str().unwrap().to_owned();
    let job = wait_job(&app, &first_job).await;
    assert_eq!(job["state"], "failed", "{job:#}");

    let (_, host) = call(&app, Method::GET, "/hosts/broken", None).await;
    assert_eq!(host["state"], "failed", "{host:#}");
    let failure = &host["failure"];
    assert_eq!(
        (
            &failure["action"],
            &failure["previous_state"],
            &failure["job_id"]
        ),
        (&json!("check"), &json!("idle"), &json!(first_job))
    );
    assert_eq!(
        (&failure["retry_count"], &failure["acknowledged"]),
        (&json!(0), &json!(false))
    );
    assert_time(&failure["failed_at"]);
    let (_, failed) = call(&app, Method::GET, "/hosts?state=failed", None).await;
    assert_eq!(names(&failed), ["broken"]);

    let (status, host) = call(&app, Method::POST, "/hosts/broken/acknowledge", None).await;
    assert_eq!(status, StatusCode::OK, "{host:#}");
    assert_eq!(host["failure"]["acknowledged"], true);
    assert_eq!(host["state"], "failed");

    let (status, accepted) = call(&app, Method::POST, "/hosts/broken/retry", None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted:#}");
    assert_eq!(accepted["kind"], "check", "retry re-runs the failed check");
    let retry = wait_job(&app, accepted["job_id"].as_str().unwrap()).await;
    assert_eq!(
        (&retry["state"], &retry["force"]),
        (&json!("failed"), &json!(true))
    );
    let (_, host) = call(&app, Method::GET, "/hosts/broken", None).await;
    assert_eq!(host["failure"]["retry_count"], 1, "{host:#}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn api_fleet_check_and_update_rollouts() {
    let app = spawn_app(BASE_CONFIG).await;
    let port = closed_port();
    for name in ["u1", "u2", "u3"] {
        add_loopback_host(&app, name, port, json!({"tags": ["loop"]})).await;
    }

    // A fleet check of the tagged hosts: one batch; every host ends unreachable.
    let response = app
        .client
        .post(app.url("/fleet/check"))
        .json(&json!({"filter": {"tags": ["loop"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let check_id = accepted["rollout_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/rollouts/{check_id}"));
    assert_eq!(accepted["kind"], "check");
    assert_eq!(accepted["hosts"], json!(["u1", "u2", "u3"]));
    assert_eq!(accepted["batches"].as_array().unwrap().len(), 1);
    let check = wait_rollout(&app, &check_id).await;
    assert_eq!(check["state"], "completed", "{check:#}");
    assert_eq!(check["batch_size"], 3);
    assert_eq!(check["counts"]["failed"], 3, "{check:#}");
    // Hosts registered through the API do not say why (refused here): no port scanner.
    for host in check["hosts"].as_array().unwrap() {
        assert!(host["job_id"].is_string(), "{host:#}");
        let reason = host["reason"].as_str().unwrap();
        assert!(reason.contains("cannot connect"), "{host:#}");
        assert!(!reason.contains("refused"), "{host:#}");
    }
    let (_, unreachable) = call(&app, Method::GET, "/hosts?state=unreachable", None).await;
    assert_eq!(names(&unreachable), ["u1", "u2", "u3"]);
    let (_, u1) = call(&app, Method::GET, "/hosts/u1", None).await;
    let last_error = u1["last_error"].as_str().unwrap();
    assert!(last_error.contains("cannot connect"), "{u1:#}");
    assert!(!last_error.contains("refused"), "{u1:#}");

    // A rolling update, canary first: the canary fails, max_failures 0 stops the rollout and
    // the rest are skipped.
    let (status, accepted) = call(
        &app,
        Method::POST,
        "/fleet/update",
        Some(json!({"batch_size": 1, "max_failures": 0, "canary": ["u3"],
                    "filter": {"tags": ["loop"]}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted:#}");
    assert_eq!(accepted["hosts"], json!(["u3", "u1", "u2"]));
    assert_eq!(
        accepted["batches"],
        json!([
            {"index": 0, "hosts": ["u3"], "canary": true, "state": "pending"},
            {"index": 1, "hosts": ["u1"], "canary": false, "state": "pending"},
            {"index": 2, "hosts": ["u2"], "canary": false, "state": "pending"}
        ])
    );
    let update_id = accepted["rollout_id"].as_str().unwrap().to_owned();
    let update = wait_rollout(&app, &update_id).await;
    assert_eq!(update["state"], "stopped", "{update:#}");
    assert_eq!(
        (
            &update["kind"],
            &update["max_failures"],
            &update["batch_size"]
        ),
        (&json!("update"), &json!(0), &json!(1))
    );
    assert_eq!(update["n_failed"], 1);
    assert_eq!(
        update["counts"],
        json!({"pending": 0, "running": 0, "succeeded": 0, "failed": 1, "skipped": 2, "cancelled": 0, "deferred": 0})
    );
    let states: Vec<(&str, &str)> = update["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["host"].as_str().unwrap(), h["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("u3", "failed"), ("u1", "skipped"), ("u2", "skipped")]
    );
    assert_time(&update["finished_at"]);

    // Cancelling during the delay between batches: the second batch never starts.
    let (status, accepted) = call(
        &app,
        Method::POST,
        "/fleet/update",
        Some(
            json!({"batch_size": 2, "delay_ms": 3_600_000, "max_failures": "100%",
                    "filter": {"hosts": ["u1", "u2", "u3"]}, "force": true}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted:#}");
    let slow_id = accepted["rollout_id"].as_str().unwrap().to_owned();
    let (status, cancelled) = call(
        &app,
        Method::POST,
        &format!("/rollouts/{slow_id}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{cancelled:#}");
    assert_eq!(cancelled["max_failures"], "100%");
    let slow = wait_rollout(&app, &slow_id).await;
    assert_eq!(slow["state"], "cancelled", "{slow:#}");
    assert_eq!(slow["hosts"][2]["state"], "cancelled", "{slow:#}");

    let (_, list) = call(&app, Method::GET, "/rollouts", None).await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [&slow_id, &update_id, &check_id], "newest first");
    let (_, stopped) = call(&app, Method::GET, "/rollouts?state=stopped", None).await;
    assert_eq!(stopped["data"][0]["id"], update_id.as_str());
    assert_eq!(stopped["data"][0]["n_hosts"], 3);
    let (_, page) = call(&app, Method::GET, "/rollouts?per_page=2&page=2", None).await;
    assert_eq!(page["data"][0]["id"], check_id.as_str());
    assert_eq!(page["pagination"]["total_pages"], 2);
    let (_, jobs) = call(&app, Method::GET, "/jobs?host=u3&kind=update", None).await;
    assert_eq!(
        jobs["data"][0]["rollout_id"],
        update_id.as_str(),
        "{jobs:#}"
    );
    app.stop().await.unwrap();
}
