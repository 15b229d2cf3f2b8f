//! Helpers for the `claims_*` tests, which each exercise one behaviour the docs promise
//! (README, ARCHITECTURE.md, the OpenAPI descriptions) on the real daemon, and on the real
//! fleet where hosts are involved: bounded waits (a condition polled until a deadline below
//! the runner's kill, failing with what did not happen), a WebSocket client reading JSON
//! events, and a daemon config for fleet hosts. No tests here.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tendhost_tests::daemon::DaemonProcess;
use tendhost_tests::fleet::{Fleet, Host};
use tendhost_tests::http::get_json;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// The longest any wait here lasts: well below nextest's 300 s kill, so the failure message
/// is what a test run shows.
pub const DEADLINE: Duration = Duration::from_secs(120);

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Calls `probe` every 100 ms until it gives `Some`, at most [`DEADLINE`]; panics with
/// "`what` did not happen" and the last thing seen.
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {DEADLINE:?}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `GET /jobs/{id}` is neither queued nor running; returns it.
pub async fn job_done(base_url: &str, job_id: &str) -> Value {
    wait_for(&format!("job {job_id} finishing"), || async {
        let job = get_json(base_url, &format!("/jobs/{job_id}")).await;
        match job["state"].as_str() {
            Some("queued" | "running") => Err(job.to_string()),
            _ => Ok(job),
        }
    })
    .await
}

/// Waits until `GET /jobs/{id}` has `state`; returns it.
pub async fn job_in_state(base_url: &str, job_id: &str, state: &str) -> Value {
    wait_for(&format!("job {job_id} becoming {state}"), || async {
        let job = get_json(base_url, &format!("/jobs/{job_id}")).await;
        if job["state"] == state {
            Ok(job)
        } else {
            Err(job.to_string())
        }
    })
    .await
}

/// Waits until `GET /rollouts/{id}` is no longer running; returns it.
pub async fn rollout_done(base_url: &str, rollout_id: &str) -> Value {
    wait_for(&format!("rollout {rollout_id} ending"), || async {
        let rollout = get_json(base_url, &format!("/rollouts/{rollout_id}")).await;
        if rollout["state"] == "running" {
            Err(rollout.to_string())
        } else {
            Ok(rollout)
        }
    })
    .await
}

/// Waits until `GET /hosts/{name}` has no current job; returns the host.
pub async fn host_settled(base_url: &str, name: &str) -> Value {
    wait_for(&format!("host {name} without a running job"), || async {
        let host = get_json(base_url, &format!("/hosts/{name}")).await;
        if host["current_job"].is_null() {
            Ok(host)
        } else {
            Err(host.to_string())
        }
    })
    .await
}

/// A postinst that waits (at most 100 s) until the test creates `gate` on the host, so a
/// test decides when dpkg finishes instead of guessing how long it takes.
pub fn gated_postinst(gate: &str) -> String {
    format!(
        "i=0\nwhile [ ! -e {gate} ] && [ $i -lt 500 ]; do sleep 0.2; i=$((i + 1)); done\n\
         rm -f {gate}"
    )
}

/// Opens `GET /ws/events{query}` on the daemon at `addr`.
pub async fn ws_connect(addr: SocketAddr, query: &str) -> Ws {
    let url = format!("ws://{addr}/ws/events{query}");
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap_or_else(|err| panic!("WebSocket {url}: {err}"));
    ws
}

/// The next JSON message (pings skipped).
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no WebSocket message within {DEADLINE:?}"))
            .expect("the event stream ended")
            .expect("WebSocket error");
        if let Message::Text(text) = frame {
            return serde_json::from_str(text.as_str())
                .unwrap_or_else(|err| panic!("not JSON ({err}): {text}"));
        }
    }
}

/// Messages up to and including the first that satisfies `last`.
pub async fn until(ws: &mut Ws, what: &str, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(message) = tokio::time::timeout(left, next_json(ws)).await else {
            panic!(
                "{what} did not arrive within {DEADLINE:?}; got {} other messages, the last: {:?}",
                seen.len(),
                seen.last()
            );
        };
        let done = last(&message);
        seen.push(message);
        if done {
            return seen;
        }
    }
}

/// `job_finished` for `job_id`.
pub fn is_job_finished(job_id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |event| event["type"] == "job_finished" && event["job_id"] == job_id
}

/// A daemon config managing `hosts` of `fleet` as root by the fleet's key (no checks at
/// start, a 5 s dpkg lock timeout); `extra(host)` adds lines to a host's table, and may open
/// its `[host.policy]` table last.
pub fn fleet_config(fleet: &Fleet, hosts: &[&Host], extra: impl Fn(&Host) -> String) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"10s\"\ndpkg_lock_timeout = \"5s\"\n",
        fleet.ssh_key().display()
    );
    for host in hosts {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\n{}",
            host.name(),
            host.addr(),
            extra(host)
        ));
    }
    config
}

/// The fleet's hosts sorted by name (rollouts go in name order).
pub fn sorted_hosts(fleet: &Fleet) -> Vec<&Host> {
    let mut hosts: Vec<&Host> = fleet.hosts().iter().collect();
    hosts.sort_unstable_by_key(|host| host.name().to_owned());
    hosts
}

/// `hosts[]` of a rollout as `host -> entry`.
pub fn rollout_entry<'a>(rollout: &'a Value, host: &str) -> &'a Value {
    rollout["hosts"]
        .as_array()
        .and_then(|hosts| hosts.iter().find(|entry| entry["host"] == host))
        .unwrap_or_else(|| panic!("{host} is not in the rollout: {rollout:#}"))
}

/// A temp dir holding `tendhost.toml` (with `config`) and the data dir for the real binary
/// ([`DaemonProcess`]); returns the dir, the config path and the data dir.
pub fn binary_dir(config: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("tendhost.toml");
    std::fs::write(&config_path, config).expect("write config");
    let data = dir.path().join("data");
    (dir, config_path, data)
}

/// SIGTERM, then waits for a clean exit (the daemon's whole process ends: no task of it
/// lives on, unlike an in-process daemon).
pub fn stop_gracefully(daemon: &mut DaemonProcess) {
    daemon.signal("TERM");
    let status = daemon.wait_exit("the daemon exits on SIGTERM");
    assert!(
        status.success(),
        "exit {status:?}:\n{}",
        daemon.log.join("\n")
    );
}
