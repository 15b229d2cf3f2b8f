//! The hostile-host profile of the test fleet: real sshd hosts whose every SSH session runs a
//! hostile "shell" (`tests/fleet/hostile/shell.sh`: endless output, one 100 MB line, binary
//! garbage, never exiting, dying mid-line, one byte a second, nonsense for the reboot probe),
//! all in one fleet with two ordinary apt hosts. The ordinary hosts' check and rollout
//! complete; every hostile host ends `failed` or `unreachable` with a short reason and no job
//! of it stays running; the daemon answers `/health` while the hostile jobs run. Outcomes, not
//! timings: short `command_timeout` and `job_timeout` make the hostile jobs end.

use serde_json::{Value, json};
use tendhost_tests::daemon::spawn_app;
use tendhost_tests::fleet::{Fleet, Hostile, Pkg, hostile_config};
use tendhost_tests::http::{get_json, installed_version, post_json, wait_rollout};

/// The longest reason a hostile host may leave in its job's summary: a reason, not its output.
const MAX_REASON: usize = 1000;

/// Every job of `host` (newest first).
async fn jobs_of(base: &str, host: &str) -> Vec<Value> {
    get_json(base, &format!("/jobs?host={host}&per_page=100")).await["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn hostile_hosts_fail_clearly_while_the_rest_of_the_fleet_is_checked_and_updated() {
    let mut builder = Fleet::builder()
        .apt(2)
        .install(Pkg::new("th-hostile", "1.0"));
    for profile in Hostile::ALL {
        builder = builder.hostile(profile);
    }
    let Some(fleet) = builder.start().await else {
        return;
    };
    fleet.publish(&Pkg::new("th-hostile", "1.1")).await;
    let app = spawn_app(&hostile_config(&fleet, "info,tendhost_exec=warn")).await;
    let base = app.url("");

    let (status, accepted) = post_json(&base, "/fleet/check", json!({})).await;
    assert_eq!(status, 202, "{accepted}");
    let rollout_id = accepted["rollout_id"].as_str().unwrap().to_owned();
    // The daemon answers while hostile jobs are still running.
    let health = tendhost_tests::wait::http_client()
        .get(app.url("/health"))
        .send()
        .await
        .expect("/health answers during the check");
    assert_eq!(health.status(), 200);
    let running = get_json(&base, "/jobs?state=running&per_page=100").await;
    let rollout = wait_rollout(&base, &rollout_id).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    assert!(
        running["pagination"]["total"].as_u64().unwrap_or(0) > 0
            || rollout["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["state"] != "pending"),
        "health was asked while the check ran: {running:#}"
    );

    for host in fleet.apt_hosts() {
        let entry = get_json(&base, &format!("/hosts/{}", host.name())).await;
        assert_eq!(entry["state"], "pending_updates", "{entry:#}");
    }
    let mut reasons = Vec::new();
    for host in fleet.hostile_hosts() {
        let profile = host.hostile().unwrap().as_str();
        let entry = get_json(&base, &format!("/hosts/{}", host.name())).await;
        let state = entry["state"].as_str().unwrap_or_default().to_owned();
        assert!(
            state == "failed" || state == "unreachable",
            "{profile}: host state {state}: {entry:#}"
        );
        assert_eq!(entry["current_job"], Value::Null, "{profile}: {entry:#}");
        let jobs = jobs_of(&base, host.name()).await;
        assert_eq!(jobs.len(), 1, "{profile}: one check: {jobs:#?}");
        let job = &jobs[0];
        assert_eq!(job["state"], "failed", "{profile}: {job:#}");
        let summary = job["summary"].as_str().unwrap_or_default();
        assert!(
            !summary.trim().is_empty() && summary.len() <= MAX_REASON,
            "{profile}: the reason is a short sentence, not the host's output ({} bytes): {}",
            summary.len(),
            summary.chars().take(2 * MAX_REASON).collect::<String>()
        );
        reasons.push(format!("{profile}: {state}: {summary}"));
    }
    eprintln!("hostile reasons:\n{}", reasons.join("\n"));

    // A rolling update of the whole fleet: the ordinary hosts are upgraded, the hostile ones
    // fail (tolerated), and nothing is left running.
    let (status, accepted) = post_json(
        &base,
        "/fleet/update",
        json!({"batch_size": 3, "max_failures": "100%"}),
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let rollout = wait_rollout(&base, accepted["rollout_id"].as_str().unwrap()).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    for entry in rollout["hosts"].as_array().unwrap() {
        let name = entry["host"].as_str().unwrap();
        let host = fleet.host(name);
        if host.hostile().is_some() {
            assert_ne!(entry["state"], "succeeded", "{entry:#}");
        } else {
            assert_eq!(entry["state"], "succeeded", "{entry:#}");
            assert_eq!(installed_version(host, "th-hostile").await, "1.1");
        }
    }
    let running = get_json(&base, "/jobs?state=running&per_page=100").await;
    assert_eq!(running["data"], json!([]), "{running:#}");
    for host in fleet.hostile_hosts() {
        let entry = get_json(&base, &format!("/hosts/{}", host.name())).await;
        assert_eq!(entry["current_job"], Value::Null, "{entry:#}");
        assert!(
            matches!(entry["state"].as_str(), Some("failed" | "unreachable")),
            "{entry:#}"
        );
    }
    app.stop().await.unwrap();
}
