//! Durable state across daemon restarts, with the real `tendhost` binary and its SQLite file:
//! a graceful restart keeps jobs (with logs), host state, runtime hosts and the event `seq`;
//! `kill -9` mid-upgrade on a fleet host never leaves a job `running` or a host `updating`
//! (the job ends `interrupted` or is completed from the host's exit-code file); a second
//! daemon on the same data dir is refused, naming the holder's pid.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tendhost_tests::daemon::{DaemonProcess, daemon_binary};
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json, wait_job, wait_rollout};

const LOCAL_HOST: &str = "[daemon]\ncheck_on_start = false\n[daemon.api_hosts]\nallow = [\"127.0.0.1/32\"]\n\n[[host]]\nname = \"me\"\naddr = \"local\"\ntags = [\"local\"]\n[host.policy]\nupdates = \"check-only\"\nrefresh_lists = false\n";

/// The highest seq the daemon has handed out, read over the WebSocket replay.
async fn last_seq(daemon: &DaemonProcess) -> u64 {
    use futures_util::StreamExt;
    let url = format!("ws://{}/ws/events?since=0", daemon.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut last = 0;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_millis(500), ws.next()).await
    {
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            let event: Value = serde_json::from_str(&text).unwrap();
            if let Some(seq) = event["seq"].as_u64() {
                assert!(seq > last, "replayed seqs increase: {seq} after {last}");
                last = seq;
            }
        }
    }
    last
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
    let seq_before = last_seq(&daemon).await;
    assert!(seq_before > 0);

    daemon.signal("TERM");
    let exit = daemon
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(exit.success(), "{}", daemon.log.join("\n"));

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
    // seq continues: new events get higher numbers than any before the restart.
    let (_, body) = post_json(&daemon.base_url, "/hosts/me/check", json!({})).await;
    wait_job(&daemon.base_url, body["job_id"].as_str().unwrap()).await;
    let seq_after = last_seq(&daemon).await;
    assert!(seq_after > seq_before, "{seq_after} > {seq_before}");
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
    let config = write_config(
        dir.path(),
        &format!(
            "[daemon]\ncheck_on_start = false\n\n[defaults]\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\n\
             [[host]]\nname = \"{}\"\naddr = \"{}\"\n",
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
    let log = format!("/var/lib/tendhost/jobs/{job_id}/log");
    let mut configuring = false;
    for _ in 0..600 {
        let out = host
            .sh(&format!(
                "grep -q 'Setting up th-crash' {log} && echo yes || true"
            ))
            .await;
        if out.stdout.trim() == "yes" {
            configuring = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(configuring, "dpkg never reached the postinst on the host");
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10)).expect("killed");

    // The upgrade goes on on the host without the daemon.
    for _ in 0..300 {
        if installed_version(host, "th-crash").await == "1.1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(installed_version(host, "th-crash").await, "1.1");

    let daemon = DaemonProcess::start(&config, &data);
    // The job is never left `running`: right after the start it is `interrupted`, and the
    // re-check collects the real outcome from the host's job directory.
    let job = get_json(&daemon.base_url, &format!("/jobs/{job_id}")).await;
    assert!(
        matches!(job["state"].as_str(), Some("interrupted" | "succeeded")),
        "{job:#}"
    );
    let mut job = job;
    for _ in 0..600 {
        if job["state"] == "succeeded" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        job = get_json(&daemon.base_url, &format!("/jobs/{job_id}")).await;
    }
    assert_eq!(
        job["state"], "succeeded",
        "completed from the exit-code file: {job:#}"
    );
    // Once the re-check is done, the host is not left `updating`: it is idle, with nothing
    // pending.
    let mut view = get_json(&daemon.base_url, &format!("/hosts/{}", host.name())).await;
    for _ in 0..600 {
        if view["current_job"].is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        view = get_json(&daemon.base_url, &format!("/hosts/{}", host.name())).await;
    }
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
    let mut configuring = false;
    for _ in 0..600 {
        let out = first
            .sh("grep -qs 'Setting up th-resume' /var/lib/tendhost/jobs/*/log && echo yes || true")
            .await;
        if out.stdout.trim() == "yes" {
            configuring = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        configuring,
        "dpkg never reached the postinst on {}",
        names[0]
    );
    daemon.signal("KILL");
    daemon.wait_exit(Duration::from_secs(10)).expect("killed");

    let daemon = DaemonProcess::start(&config, &data);
    let rollout = get_json(&daemon.base_url, &format!("/rollouts/{rollout_id}")).await;
    assert_eq!(
        rollout["state"], "interrupted",
        "never resumed silently: {rollout:#}"
    );
    // Still interrupted a moment later, and the untouched hosts were not upgraded.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        get_json(&daemon.base_url, &format!("/rollouts/{rollout_id}")).await["state"],
        "interrupted"
    );
    assert_eq!(
        installed_version(fleet.host(names[2]), "th-resume").await,
        "1.0"
    );

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
