//! Durable state across daemon restarts, with the real `tendhost` binary and its SQLite file:
//! a graceful restart keeps jobs (with logs), host state, runtime hosts and the event `seq`;
//! `kill -9` mid-upgrade on a fleet host never leaves a job `running` or a host `updating`
//! (recovery makes the job `interrupted`, then the re-check completes it from the host's
//! exit-code file); an interrupted rollout does not move until resumed; a second daemon on the
//! same data dir is refused, naming the holder's pid. No sleeps or durations: what must not
//! happen is shown by an ordering (events up to a later job's end), seq comes from the store.

use std::path::Path;
use std::process::Command;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tendhost_store::Store;
use tendhost_tests::daemon::{DaemonProcess, daemon_binary};
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json, wait_job, wait_rollout};
use tendhost_tests::wait;
use tokio_tungstenite::tungstenite::Message;

const LOCAL_HOST: &str = "[daemon]\ncheck_on_start = false\n[daemon.api_hosts]\nallow = [\"127.0.0.1/32\"]\n\n[[host]]\nname = \"me\"\naddr = \"local\"\ntags = [\"local\"]\n[host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n";

/// The seq of the last event the daemon handed out, from its store: the daemon has stopped
/// (gracefully or killed), so nothing else holds the data dir and every committed event is
/// there. Deterministic, unlike listening to a stream until it falls silent.
async fn stored_last_seq(data: &Path) -> u64 {
    let store =
        Store::open(data).unwrap_or_else(|err| panic!("open the stopped daemon's store: {err}"));
    let next_seq = store.next_seq().await.unwrap();
    store.close().await.unwrap();
    u64::try_from(next_seq - 1).unwrap()
}

/// The state of job `job_id` in the store of a stopped daemon (before any recovery).
async fn stored_job_state(data: &Path, job_id: &str) -> String {
    let store =
        Store::open(data).unwrap_or_else(|err| panic!("open the stopped daemon's store: {err}"));
    let record = store.job(job_id).await.unwrap();
    store.close().await.unwrap();
    record
        .unwrap_or_else(|| panic!("job {job_id} is not in the store"))
        .state
}

/// The events `GET /ws/events?since={since}` replays and streams, up to and including the
/// `job_finished` of `job_id` (which must come: the caller waited for that job to end).
async fn events_until_job_finished(daemon: &DaemonProcess, since: u64, job_id: &str) -> Vec<Value> {
    let url = format!("ws://{}/ws/events?since={since}", daemon.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    wait::within(
        &format!("job_finished of {job_id} on the event stream"),
        async {
            let mut events = Vec::new();
            loop {
                let message = ws
                    .next()
                    .await
                    .expect("the event stream ended")
                    .expect("WebSocket error");
                let Message::Text(text) = message else {
                    continue;
                };
                let event: Value = serde_json::from_str(&text).unwrap();
                let done = event["type"] == "job_finished" && event["job_id"] == job_id;
                events.push(event);
                if done {
                    return events;
                }
            }
        },
    )
    .await
}

/// `seq` of every event in `events` (all must have one: no control messages expected).
fn seqs(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|event| {
            event["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("no seq: {event}"))
        })
        .collect()
}

/// Waits until the job log on `host` shows dpkg setting up `package` (its postinst runs).
async fn wait_for_postinst(host: &Host, log_glob: &str, package: &str) {
    wait::until(
        &format!("dpkg reaching the postinst of {package} on {}", host.name()),
        || async {
            let out = host
                .sh(&format!(
                    "grep -qs 'Setting up {package}' {log_glob} && echo yes || true"
                ))
                .await;
            if out.stdout.trim() == "yes" {
                Ok(())
            } else {
                Err(format!("no 'Setting up {package}' in {log_glob}"))
            }
        },
    )
    .await;
}

/// Waits until `package` is at `version` on `host` (read out of band).
async fn wait_for_version(host: &Host, package: &str, version: &str) {
    wait::until(
        &format!("{package} {version} installed on {}", host.name()),
        || async {
            let installed = installed_version(host, package).await;
            if installed == version {
                Ok(())
            } else {
                Err(format!("version {installed}"))
            }
        },
    )
    .await;
}

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("tendhost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn graceful_restart_keeps_jobs_hosts_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), LOCAL_HOST);
    let data = dir.path().join("data");

    let mut daemon = DaemonProcess::start(&config, &data);
    let (status, body) = post_json(&daemon.base_url, "/hosts/me/check", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let check_id = body["job_id"].as_str().unwrap().to_owned();
    let check = wait_job(&daemon.base_url, &check_id).await;
    assert_eq!(check["state"], "succeeded", "{check:#}");
    assert!(!check["log"].as_array().unwrap().is_empty(), "{check:#}");
    // A runtime host (its checks fail: nothing listens there), and a job on it.
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (status, body) = post_json(
        &daemon.base_url,
        "/hosts",
        json!({"name": "rt-1", "addr": "127.0.0.1", "port": closed_port, "tags": ["runtime"]}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = post_json(&daemon.base_url, "/hosts/rt-1/check", json!({})).await;
    let rt_job = wait_job(&daemon.base_url, body["job_id"].as_str().unwrap()).await;
    let host_before = get_json(&daemon.base_url, "/hosts/me").await;
    let jobs_before = get_json(&daemon.base_url, "/jobs").await;

    daemon.signal("TERM");
    let exit = daemon.wait_exit("SIGTERM");
    assert!(exit.success(), "{}", daemon.log.join("\n"));
    let seq_before = stored_last_seq(&data).await;
    assert!(seq_before > 0);

    let daemon = DaemonProcess::start(&config, &data);
    // Jobs (with their logs), runtime hosts and host state are as before.
    let check_after = get_json(&daemon.base_url, &format!("/jobs/{check_id}")).await;
    assert_eq!(check_after["state"], "succeeded");
    assert_eq!(check_after["log"], check["log"], "the full log survives");
    assert_eq!(check_after["pending"], check["pending"]);
    let rt_after = get_json(
        &daemon.base_url,
        &format!("/jobs/{}", rt_job["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(rt_after["state"], rt_job["state"]);
    assert_eq!(
        get_json(&daemon.base_url, "/jobs").await["data"],
        jobs_before["data"]
    );
    let host_after = get_json(&daemon.base_url, "/hosts/me").await;
    for field in ["state", "pending", "reboot", "last_check", "inventory"] {
        assert_eq!(host_after[field], host_before[field], "{field}");
    }
    let runtime = get_json(&daemon.base_url, "/hosts/rt-1").await;
    assert_eq!(runtime["name"], "rt-1", "{runtime:#}");
    assert_eq!(runtime["origin"], "runtime");
    assert_eq!(runtime["tags"], json!(["runtime"]));
    // seq continues: the replay holds every event from before the restart, and the new job's
    // events come after all of them.
    let (_, body) = post_json(&daemon.base_url, "/hosts/me/check", json!({})).await;
    let new_job = body["job_id"].as_str().unwrap().to_owned();
    wait_job(&daemon.base_url, &new_job).await;
    let events = events_until_job_finished(&daemon, 0, &new_job).await;
    let seqs = seqs(&events);
    assert!(
        seqs.windows(2).all(|pair| pair[1] > pair[0]),
        "replayed seqs increase: {seqs:?}"
    );
    assert!(
        seqs.contains(&seq_before),
        "the last event before the restart ({seq_before}) is replayed: {seqs:?}"
    );
    let first_new = events
        .iter()
        .position(|event| event["job_id"] == new_job.as_str())
        .unwrap();
    assert!(
        seqs[first_new] > seq_before,
        "the new job's first event {} comes after {seq_before}: {seqs:?}",
        events[first_new]
    );
}

#[tokio::test]
async fn second_daemon_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), LOCAL_HOST);
    let data = dir.path().join("data");
    let daemon = DaemonProcess::start(&config, &data);
    let out = Command::new(daemon_binary())
        .arg("--config")
        .arg(&config)
        .env("TENDHOST_BIND", "127.0.0.1:0")
        .env("TENDHOST_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&daemon.child.id().to_string()),
        "the message names the pid holding the lock: {stderr}"
    );
    assert!(stderr.contains("tendhost.lock"), "{stderr}");
    // The first one still serves.
    assert_eq!(get_json(&daemon.base_url, "/health").await["status"], "ok");
}

#[tokio::test]
async fn unusable_database_stops_startup_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), LOCAL_HOST);
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("tendhost.db"),
        b"this is not a database, just bytes".repeat(200),
    )
    .unwrap();
    let out = Command::new(daemon_binary())
        .arg("--config")
        .arg(&config)
        .env("TENDHOST_BIND", "127.0.0.1:0")
        .env("TENDHOST_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tendhost.db"), "names the file: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn kill_9_mid_upgrade_never_leaves_a_job_running() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("th-crash", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    // The postinst runs long enough for the kill to fall inside dpkg's run.
    fleet
        .publish(&Pkg::new("th-crash", "1.1").postinst("sleep 8"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    // A connect timeout far longer than the host stays paused below: the re-check waits
    // for the frozen host instead of giving up on it.
    let config = write_config(
        dir.path(),
        &format!(
            "[daemon]\ncheck_on_start = false\n\n[defaults]\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
             connect_timeout = \"100s\"\n\n[[host]]\nname = \"{}\"\naddr = \"{}\"\n",
            fleet.ssh_key().display(),
            host.name(),
            host.addr()
        ),
    );
    let data = dir.path().join("data");
    let mut daemon = DaemonProcess::start(&config, &data);
    let (status, body) = post_json(
        &daemon.base_url,
        &format!("/hosts/{}/update", host.name()),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    // Wait until dpkg is configuring the package on the host, then kill -9 the daemon.
    wait_for_postinst(
        host,
        &format!("/var/lib/tendhost/jobs/{job_id}/log"),
        "th-crash",
    )
    .await;
    daemon.signal("KILL");
    daemon.wait_exit("kill -9");
    // Nothing marked the job on the way out: the store still says `running`.
    assert_eq!(stored_job_state(&data, &job_id).await, "running");

    // The upgrade goes on on the host without the daemon.
    wait_for_version(host, "th-crash", "1.1").await;
    // Frozen, the host keeps the re-check at start from collecting the outcome until it is
    // unpaused, so the state recovery gives the job can be seen first.
    host.pause().await;

    let daemon = DaemonProcess::start(&config, &data);
    // Recovery made the job `interrupted` before serving, never left it `running`.
    let job = get_json(&daemon.base_url, &format!("/jobs/{job_id}")).await;
    assert_eq!(job["state"], "interrupted", "{job:#}");
    assert_eq!(
        job["summary"], "the daemon stopped while the job ran",
        "{job:#}"
    );
    // The re-check at start is under way (stuck on the frozen host), the job still interrupted.
    let recheck = wait::until(
        &format!("a re-check of {} after the restart", host.name()),
        || async {
            let view = get_json(&daemon.base_url, &format!("/hosts/{}", host.name())).await;
            match view["current_job"].as_str() {
                Some(recheck) if view["state"] == "querying" => Ok(recheck.to_owned()),
                _ => Err(format!("{view:#}")),
            }
        },
    )
    .await;
    assert_ne!(recheck, job_id);
    let job = get_json(&daemon.base_url, &format!("/jobs/{job_id}")).await;
    assert_eq!(job["state"], "interrupted", "{job:#}");

    // Unfrozen, the same re-check collects the real outcome from the host's job directory.
    host.unpause().await;
    let check = wait_job(&daemon.base_url, &recheck).await;
    assert_eq!(check["state"], "succeeded", "{check:#}");
    let job = get_json(&daemon.base_url, &format!("/jobs/{job_id}")).await;
    assert_eq!(
        job["state"], "succeeded",
        "completed from the exit-code file: {job:#}"
    );
    assert!(
        job["summary"]
            .as_str()
            .is_some_and(|summary| summary.starts_with("collected after the host came back")),
        "{job:#}"
    );
    // Once the re-check is done, the host is not left `updating`: it is idle, with nothing
    // pending.
    let view = get_json(&daemon.base_url, &format!("/hosts/{}", host.name())).await;
    assert!(view["current_job"].is_null(), "{view:#}");
    assert_eq!(view["state"], "idle", "{view:#}");
    assert_eq!(view["pending"], json!([]), "{view:#}");
}

#[tokio::test]
async fn interrupted_rollout_stays_interrupted_until_resumed() {
    let Some(fleet) = Fleet::builder()
        .apt(3)
        .install(Pkg::new("th-resume", "1.0"))
        .start()
        .await
    else {
        return;
    };
    fleet
        .publish(&Pkg::new("th-resume", "1.1").postinst("sleep 6"))
        .await;
    let mut names: Vec<&str> = fleet.hosts().iter().map(Host::name).collect();
    names.sort_unstable();
    let dir = tempfile::tempdir().unwrap();
    let mut config = format!(
        "[daemon]\ncheck_on_start = false\n\n[defaults]\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n",
        fleet.ssh_key().display()
    );
    for host in fleet.hosts() {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\n",
            host.name(),
            host.addr()
        ));
    }
    let config = write_config(dir.path(), &config);
    let data = dir.path().join("data");
    let mut daemon = DaemonProcess::start(&config, &data);
    let (status, body) =
        post_json(&daemon.base_url, "/fleet/update", json!({"batch_size": 1})).await;
    assert_eq!(status, 202, "{body}");
    let rollout_id = body["rollout_id"].as_str().unwrap().to_owned();
    // The first batch's host is inside dpkg: kill -9 the daemon.
    let first = fleet.host(names[0]);
    wait_for_postinst(first, "/var/lib/tendhost/jobs/*/log", "th-resume").await;
    daemon.signal("KILL");
    daemon.wait_exit("kill -9");
    let seq_at_kill = stored_last_seq(&data).await;

    let daemon = DaemonProcess::start(&config, &data);
    let rollout = get_json(&daemon.base_url, &format!("/rollouts/{rollout_id}")).await;
    assert_eq!(
        rollout["state"], "interrupted",
        "never resumed silently: {rollout:#}"
    );
    // Nor later: the next batch's host, checked after the restart, is free (not updating for
    // the rollout) and still has the update pending; and up to that check's end, nothing
    // after the restart moved the rollout on: no batch or rollout event, no update started.
    let (status, body) = post_json(
        &daemon.base_url,
        &format!("/hosts/{}/check", names[1]),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{} is free: {body}", names[1]);
    let check_id = body["job_id"].as_str().unwrap().to_owned();
    let check = wait_job(&daemon.base_url, &check_id).await;
    assert_eq!(check["state"], "succeeded", "{check:#}");
    assert!(
        check["pending"]
            .as_array()
            .unwrap()
            .iter()
            .any(|update| update["name"] == "th-resume" && update["new_version"] == "1.1"),
        "{check:#}"
    );
    let after_restart = events_until_job_finished(&daemon, seq_at_kill, &check_id).await;
    for event in &after_restart {
        let kind = event["type"].as_str().unwrap_or_default();
        assert!(
            !kind.starts_with("rollout_") && !kind.starts_with("batch_"),
            "the rollout moved after the restart: {event}\n{after_restart:#?}"
        );
        assert!(
            !(kind == "job_started" && event["kind"] == "update"),
            "an update started after the restart: {event}\n{after_restart:#?}"
        );
    }
    assert_eq!(
        get_json(&daemon.base_url, &format!("/rollouts/{rollout_id}")).await["state"],
        "interrupted"
    );
    for name in &names[1..] {
        assert_eq!(
            installed_version(fleet.host(name), "th-resume").await,
            "1.0",
            "{name}"
        );
    }

    let (status, body) = post_json(
        &daemon.base_url,
        &format!("/rollouts/{rollout_id}/resume"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let rollout = wait_rollout(&daemon.base_url, &rollout_id).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    for name in &names {
        assert_eq!(
            installed_version(fleet.host(name), "th-resume").await,
            "1.1",
            "{name}"
        );
    }
    // Resuming a finished rollout is a conflict.
    let (status, body) = post_json(
        &daemon.base_url,
        &format!("/rollouts/{rollout_id}/resume"),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "invalid_rollout_state");
}
