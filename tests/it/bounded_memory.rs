//! Bounded memory on a real apt host of the Docker fleet, through the in-process daemon: an
//! upgrade whose postinst prints far more than `daemon.job_log_max` leaves a stored log that
//! stops at the cap with one visible marker line (served by `GET /jobs/{id}` from the state
//! database), the upgrade itself succeeds, and a job the registry has since forgotten
//! (`keep_finished_jobs`) is answered from the store as it was while it was held. Rollouts the
//! fleet forgot (`keep_finished_rollouts`, on a host at a closed loopback port: no container
//! needed) are shown, listed and refused (cancel, resume) from the store as before.

use serde_json::{Value, json};
use tendhost_tests::daemon::spawn_app;
use tendhost_tests::fleet::{Fleet, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json};

use crate::claims::{fleet_config, job_done, rollout_done};

/// The marker the store puts in place of output past `job_log_max`.
const TRUNCATED: &str = "[tendhost: log truncated:";

const JOB_LOG_MAX: usize = 64 * 1024;

async fn start_job(base_url: &str, host: &str, action: &str) -> String {
    let (status, body) = post_json(base_url, &format!("/hosts/{host}/{action}"), json!({})).await;
    assert_eq!(status, 202, "{action} {host}: {body}");
    body["job_id"].as_str().unwrap().to_owned()
}

fn log_lines(job: &Value) -> Vec<String> {
    job["log"]
        .as_array()
        .unwrap_or_else(|| panic!("no log: {job:#}"))
        .iter()
        .map(|line| line["line"].as_str().unwrap().to_owned())
        .collect()
}

/// What a job shows besides its times (in memory they have microseconds, stored ones
/// milliseconds).
fn without_times(job: &Value) -> Value {
    let mut job = job.clone();
    let fields = job.as_object_mut().unwrap();
    for key in ["created_at", "started_at", "finished_at"] {
        fields.remove(key);
    }
    for line in fields["log"].as_array_mut().unwrap() {
        line.as_object_mut().unwrap().remove("time");
    }
    job
}

#[tokio::test]
async fn bounded_job_log_is_capped_in_the_store_and_forgotten_jobs_come_from_it() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("th-chatty", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let name = host.name();
    let config = fleet_config(&fleet, &[host], |_| String::new()).replace(
        "[daemon]\n",
        &format!(
            "[daemon]\njob_log_memory = 8192\njob_log_max = {JOB_LOG_MAX}\nkeep_finished_jobs = 1\n"
        ),
    );
    let app = spawn_app(&config).await;
    // 20,000 lines of ~40 bytes: about 800 KB of output, far past the 64 KiB cap.
    fleet
        .publish(&Pkg::new("th-chatty", "1.1").postinst(
            "i=0; while [ $i -lt 20000 ]; do echo \"chatty postinst line $i of 20000\"; i=$((i + 1)); done",
        ))
        .await;
    let check = start_job(&app.base_url, name, "check").await;
    assert_eq!(job_done(&app.base_url, &check).await["state"], "succeeded");

    let update = start_job(&app.base_url, name, "update").await;
    let held = job_done(&app.base_url, &update).await;
    assert_eq!(held["state"], "succeeded", "{held:#}");
    assert_eq!(installed_version(host, "th-chatty").await, "1.1");
    let lines = log_lines(&held);
    let (marker, kept) = lines.split_last().unwrap();
    assert!(
        marker.starts_with(TRUNCATED),
        "the stored log ends in the marker: {:?}",
        &lines[lines.len().saturating_sub(3)..]
    );
    assert!(marker.contains("daemon.job_log_max"), "{marker}");
    let n_bytes: usize = kept.iter().map(String::len).sum();
    assert!(n_bytes <= JOB_LOG_MAX, "{n_bytes} bytes stored");
    assert!(
        n_bytes > JOB_LOG_MAX - 1024,
        "the log is stored up to the cap: {n_bytes} bytes"
    );
    assert!(
        kept.iter()
            .any(|line| line.contains("chatty postinst line 0 of")),
        "the log starts from the beginning"
    );
    assert!(
        !lines
            .iter()
            .any(|line| line.contains("chatty postinst line 19999")),
        "nothing past the cap is stored"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.starts_with(TRUNCATED))
            .count(),
        1
    );

    // Two more finished jobs: with keep_finished_jobs = 1 the registry forgets the update;
    // the state database answers for it with the same job.
    for _ in 0..2 {
        let check = start_job(&app.base_url, name, "check").await;
        assert_eq!(job_done(&app.base_url, &check).await["state"], "succeeded");
    }
    let stored = get_json(&app.base_url, &format!("/jobs/{update}")).await;
    assert_eq!(without_times(&stored), without_times(&held));
    let list = get_json(&app.base_url, "/jobs?per_page=10").await;
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "every job is listed: {list:#}");
    assert!(ids.contains(&update.as_str()), "{ids:?}");
    app.stop().await.unwrap();
}

/// `value` without the times (`*_at`, `time`) anywhere in it.
fn timeless(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(key, _)| !key.ends_with("_at") && key.as_str() != "time")
                .map(|(key, value)| (key.clone(), timeless(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(timeless).collect()),
        other => other.clone(),
    }
}

#[tokio::test]
async fn bounded_forgotten_rollouts_are_answered_from_the_store_as_before() {
    let app = spawn_app(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\nkeep_finished_rollouts = 1\n\n\
         [[host]]\nname = \"gone\"\naddr = \"127.0.0.1\"\nport = 1\n",
    )
    .await;
    let mut done = Vec::new();
    for _ in 0..3 {
        let (status, body) = post_json(&app.base_url, "/fleet/check", json!({})).await;
        assert_eq!(status, 202, "{body}");
        let id = body["rollout_id"].as_str().unwrap().to_owned();
        let rollout = rollout_done(&app.base_url, &id).await;
        done.push((id, rollout));
    }
    let (first, held) = &done[0];
    let stored = get_json(&app.base_url, &format!("/rollouts/{first}")).await;
    assert_eq!(timeless(&stored), timeless(held));

    let list = get_json(&app.base_url, "/rollouts?per_page=2").await;
    assert_eq!(list["pagination"]["total_items"], 3, "{list:#}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rollout| rollout["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [done[2].0.as_str(), done[1].0.as_str()], "{list:#}");
    let last_page = get_json(&app.base_url, "/rollouts?per_page=2&page=2").await;
    assert_eq!(last_page["data"][0]["id"], first.as_str(), "{last_page:#}");

    for (action, code) in [
        ("cancel", "rollout_finished"),
        ("resume", "invalid_rollout_state"),
    ] {
        let (status, body) = post_json(
            &app.base_url,
            &format!("/rollouts/{first}/{action}"),
            json!({}),
        )
        .await;
        assert_eq!(status, 409, "{action}: {body}");
        assert_eq!(body["error"]["code"], code, "{action}: {body}");
    }
    app.stop().await.unwrap();
}
