//! Durability claims of the daemon that need no fleet, on the real binary or the in-process
//! daemon and its real SQLite file: an event a WebSocket client saw survives a `kill -9`
//! right after it (events are committed before they are broadcast), and the retention task
//! prunes old jobs and events at start while `seq` never goes back, across restarts.
//!
//! The jobs are checks of a `local` host (this machine, `check-only`, package lists never
//! refreshed: `apt-get -s` only).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use tendhost_store::{NewEvent, Store};
use tendhost_tests::daemon::{DaemonProcess, spawn_app, spawn_app_in};
use tendhost_tests::http::{get_json, post_json};

use crate::claims::{is_job_finished, job_done, next_json, until, wait_for, ws_connect};

const LOCAL_HOST: &str = "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n\
    [[host]]\nname = \"me\"\naddr = \"local\"\n[host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n";

/// Every event the daemon at `addr` replays from `?since=0` up to `last_seq`, by seq.
async fn replayed(addr: std::net::SocketAddr, last_seq: u64) -> BTreeMap<u64, Value> {
    let mut ws = ws_connect(addr, "?since=0").await;
    let messages = until(&mut ws, &format!("the replay of seq {last_seq}"), |m| {
        m["seq"].as_u64() >= Some(last_seq)
    })
    .await;
    messages
        .into_iter()
        .filter_map(|m| Some((m["seq"].as_u64()?, m)))
        .collect()
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("tendhost.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_an_event_a_client_saw_survives_kill_9_right_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), LOCAL_HOST);
    let data = dir.path().join("data");
    // Every event a client received, over three rounds of check + kill -9.
    let mut seen: Vec<Value> = Vec::new();
    for round in 0..3 {
        let mut daemon = DaemonProcess::start(&config, &data);
        let mut ws = ws_connect(daemon.addr, "").await;
        let (status, body) = post_json(&daemon.base_url, "/hosts/me/check", json!({})).await;
        assert_eq!(status, 202, "round {round}: {body}");
        let job_id = body["job_id"].as_str().unwrap().to_owned();
        let events = until(
            &mut ws,
            &format!("job_finished of {job_id}"),
            is_job_finished(&job_id),
        )
        .await;
        // The moment the client has the event, the daemon dies without any cleanup.
        daemon.child.kill().expect("SIGKILL the daemon");
        daemon.wait_exit("the daemon exits on SIGKILL");
        seen.extend(events);
    }

    let daemon = DaemonProcess::start(&config, &data);
    let last_seq = seen.last().unwrap()["seq"].as_u64().unwrap();
    let stored = replayed(daemon.addr, last_seq).await;
    for event in &seen {
        let seq = event["seq"].as_u64().unwrap();
        assert_eq!(
            stored.get(&seq),
            Some(event),
            "an event a client saw before kill -9 is not in the store as it was sent"
        );
        if event["type"] == "job_finished" {
            // The job's end was committed before the event that announced it.
            let job_id = event["job_id"].as_str().unwrap();
            let job = get_json(&daemon.base_url, &format!("/jobs/{job_id}")).await;
            assert_eq!(job["state"], event["outcome"], "{job:#}");
            assert!(job["finished_at"].is_string(), "{job:#}");
            assert!(!job["log"].as_array().unwrap().is_empty(), "{job:#}");
        }
    }
    assert_eq!(
        seen.iter().filter(|e| e["type"] == "job_finished").count(),
        3
    );
}

/// How many days before now the planted rows are.
const OLD_DAYS: i64 = 2;

fn retention_config(days: u32) -> String {
    // The second run registers a host through the API (at an address nothing answers).
    let config = LOCAL_HOST.replace(
        "check_on_start = false\n",
        &format!("check_on_start = false\nretention_days = {days}\n"),
    );
    format!("{config}\n[daemon.api_hosts]\nallow = [\"127.0.0.1/32\"]\n")
}

#[tokio::test]
async fn claims_retention_prunes_old_jobs_and_events_and_seq_never_goes_back() {
    // A first run leaves a recent job (and its events).
    let app = spawn_app(&retention_config(90)).await;
    let (status, body) = post_json(&app.base_url, "/hosts/me/check", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let recent_id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        job_done(&app.base_url, &recent_id).await["state"],
        "succeeded"
    );
    let dir = app.into_dir().await;

    // Plant rows from two days ago: a finished job with a log line, and the three newest
    // events (so pruning them removes the highest seq the store ever handed out).
    let old_id = "job-old-planted-1";
    let old_ms = jiff::Timestamp::now().as_millisecond() - OLD_DAYS * 24 * 60 * 60 * 1000;
    let store = Store::open(dir.path().join("data")).unwrap();
    let mut old_job = store
        .job(&recent_id)
        .await
        .unwrap()
        .expect("recent job stored");
    old_job.id = old_id.to_owned();
    old_job.created_at_ms = old_ms;
    old_job.started_at_ms = Some(old_ms);
    old_job.finished_at_ms = Some(old_ms + 1000);
    if let Some(outcome) = old_job.outcome.as_mut() {
        outcome["id"] = json!(old_id);
    }
    store.insert_job(old_job).await.unwrap();
    store
        .log_line(old_id, "stdout", old_ms, "a line from two days ago")
        .unwrap();
    let mut old_seqs = Vec::new();
    for idx in 0..3 {
        let record = store
            .append_event(NewEvent {
                time_ms: old_ms,
                kind: "host_added".to_owned(),
                host: Some(format!("old-{idx}")),
                body: json!({"host": format!("old-{idx}")}),
                correlation: 0,
            })
            .await
            .unwrap();
        old_seqs.push(u64::try_from(record.seq).unwrap());
    }
    let top_seq = *old_seqs.last().unwrap();
    store.close().await.unwrap();

    // Kept for 3 days, they are served: the rows are real, readable data.
    std::fs::write(dir.path().join("tendhost.toml"), retention_config(3)).unwrap();
    let app = spawn_app_in(dir).await;
    let old = get_json(&app.base_url, &format!("/jobs/{old_id}")).await;
    assert_eq!(old["id"], old_id, "{old:#}");
    assert_eq!(old["log"][0]["line"], "a line from two days ago", "{old:#}");
    let stored = replayed(app.addr, top_seq).await;
    for seq in &old_seqs {
        assert!(stored.contains_key(seq), "planted event {seq} not replayed");
    }
    let dir = app.into_dir().await;

    // With retention_days = 1 the start-up pruning removes them; the recent job stays.
    std::fs::write(dir.path().join("tendhost.toml"), retention_config(1)).unwrap();
    let app = spawn_app_in(dir).await;
    wait_for("the retention task pruning the two-day-old job", || async {
        let job = get_json(&app.base_url, &format!("/jobs/{old_id}")).await;
        if job["error"]["code"] == "not_found" {
            Ok(())
        } else {
            Err(job.to_string())
        }
    })
    .await;
    let recent = get_json(&app.base_url, &format!("/jobs/{recent_id}")).await;
    assert_eq!(recent["state"], "succeeded", "{recent:#}");

    // Stopped right after pruning (no event since): the next run continues after the
    // highest seq ever used, pruned ones included, though the table's own maximum is lower.
    let dir = app.into_dir().await;
    let app = spawn_app_in(dir).await;
    let mut ws = ws_connect(app.addr, "?since=0").await;
    let (status, body) = post_json(
        &app.base_url,
        "/hosts",
        json!({"name": "after-prune", "addr": "127.0.0.1", "port": 1}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let replay = until(&mut ws, "host_added of after-prune", |m| {
        m["type"] == "host_added" && m["host"] == "after-prune"
    })
    .await;
    let seqs: Vec<u64> = replay.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "replayed seqs increase: {seqs:?}"
    );
    assert!(
        !seqs.iter().any(|seq| old_seqs.contains(seq)),
        "pruned events are replayed: {seqs:?}"
    );
    assert_eq!(
        seqs.last(),
        Some(&(top_seq + 1)),
        "the first event after pruning reuses no seq: {seqs:?}"
    );
    let resp = app
        .client
        .delete(app.url("/hosts/after-prune"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let removed = next_json(&mut ws).await;
    assert_eq!(removed["type"], "host_removed", "{removed}");
    assert_eq!(removed["seq"], top_seq + 2, "{removed}");
    app.stop().await.unwrap();
}
