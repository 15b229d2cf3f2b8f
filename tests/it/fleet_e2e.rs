//! The product, end to end, on the Docker test fleet: the daemon (in-process, real HTTP) manages
//! real apt hosts over real SSH; a real WebSocket client watches. Rolling updates in batches
//! (concurrency read from the host actors' own `host_state_changed` events), `max_failures`,
//! a host cut off mid-rollout (`lost`, then collected), and the reboot flows. Versions are
//! verified out of band with `docker exec`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tendhost_tests::daemon::{TestApp, spawn_app};
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json, wait_job, wait_rollout};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How a test host is configured in the daemon.
#[derive(Default, Clone)]
struct HostOpts {
    tags: Vec<&'static str>,
    auto_reboot: bool,
    reconnect_window: Option<&'static str>,
}

/// A daemon config managing `hosts` of `fleet` as root by the fleet's key.
fn config_for(fleet: &Fleet, hosts: &[(&Host, HostOpts)]) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"10s\"\ndpkg_lock_timeout = \"5s\"\n",
        fleet.ssh_key().display()
    );
    for (host, opts) in hosts {
        let tags: Vec<String> = opts.tags.iter().map(|t| format!("{t:?}")).collect();
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\ntags = [{}]\nreboot_command = [\"reboot\"]\n",
            host.name(),
            host.addr(),
            tags.join(", ")
        ));
        if let Some(window) = opts.reconnect_window {
            config.push_str(&format!("reconnect_window = \"{window}\"\n"));
        }
        config.push_str(&format!(
            "[host.policy]\nauto_reboot = {}\n",
            opts.auto_reboot
        ));
    }
    config
}

async fn ws_connect(app: &TestApp, query: &str) -> Ws {
    let url = format!("ws://{}/ws/events{query}", app.addr);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    ws
}

/// Reads the next JSON event (skipping pings), failing after `timeout`.
async fn next_event(ws: &mut Ws, timeout: Duration) -> Value {
    loop {
        let message = tokio::time::timeout(timeout, ws.next())
            .await
            .expect("an event within the timeout")
            .expect("stream open")
            .expect("websocket message");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("event is JSON");
        }
    }
}

/// Collects events until one matches `done`. On an unfiltered stream (`contiguous`), checks
/// that seq grows by exactly 1 per event; filtered streams skip seqs by design.
async fn events_until(ws: &mut Ws, contiguous: bool, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next_event(ws, Duration::from_secs(240)).await;
        if !contiguous {
            if let (Some(prev), Some(seq)) = (
                events.last().and_then(|e: &Value| e["seq"].as_u64()),
                event["seq"].as_u64(),
            ) {
                assert!(seq > prev, "seq went backwards before {event}");
            }
        } else if let (Some(prev), Some(seq)) = (
            events.last().and_then(|e: &Value| e["seq"].as_u64()),
            event["seq"].as_u64(),
        ) {
            assert_eq!(seq, prev + 1, "seq gap or reorder before {event}");
        }
        let finished = done(&event);
        events.push(event);
        if finished {
            return events;
        }
    }
}

/// Max number of hosts in `updating` at once, from the host actors' state changes.
fn max_updating(events: &[Value]) -> usize {
    let mut updating: HashMap<String, bool> = HashMap::new();
    let mut max = 0;
    for event in events.iter().filter(|e| e["type"] == "host_state_changed") {
        let host = event["host"].as_str().unwrap().to_owned();
        updating.insert(host, event["to"] == "updating");
        max = max.max(updating.values().filter(|u| **u).count());
    }
    max
}

#[tokio::test]
async fn rolling_update_in_batches_of_two_on_six_apt_hosts() {
    let Some(fleet) = Fleet::builder()
        .apt(6)
        .install(Pkg::new("th-roll", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let hosts: Vec<(&Host, HostOpts)> = fleet
        .hosts()
        .iter()
        .map(|h| {
            (
                h,
                HostOpts {
                    tags: vec!["web"],
                    ..HostOpts::default()
                },
            )
        })
        .collect();
    let app = spawn_app(&config_for(&fleet, &hosts)).await;
    // A postinst that takes a moment, so batches really overlap in time.
    fleet
        .publish(&Pkg::new("th-roll", "1.1").postinst("sleep 1"))
        .await;
    let mut ws = ws_connect(&app, "").await;

    let (status, body) = post_json(
        &app.base_url,
        "/fleet/update",
        json!({"batch_size": 2, "delay_ms": 0, "max_failures": 0, "filter": {"tags": ["web"]}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let rollout_id = body["rollout_id"].as_str().unwrap().to_owned();
    let events = events_until(&mut ws, true, |e| e["type"] == "rollout_finished").await;

    assert_eq!(
        max_updating(&events),
        2,
        "batch_size 2 means at most (and here exactly) 2 hosts updating at once"
    );
    let batches: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "batch_started")
        .collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(events.last().unwrap()["state"], "completed");

    let rollout = get_json(&app.base_url, &format!("/rollouts/{rollout_id}")).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    for host in fleet.hosts() {
        assert_eq!(
            installed_version(host, "th-roll").await,
            "1.1",
            "{}",
            host.name()
        );
        let view = get_json(&app.base_url, &format!("/hosts/{}", host.name())).await;
        assert_eq!(view["state"], "idle", "{view:#}");
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn rollout_stops_when_failures_exceed_max_failures() {
    let Some(fleet) = Fleet::builder()
        .apt(4)
        .install(Pkg::new("th-stop", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let hosts: Vec<(&Host, HostOpts)> = fleet
        .hosts()
        .iter()
        .map(|h| (h, HostOpts::default()))
        .collect();
    let app = spawn_app(&config_for(&fleet, &hosts)).await;
    // The upgrade fails (postinst exits 1) on the two hosts that have the marker file; they
    // come first in name order, so with batch_size 1 the rollout stops after them.
    let mut names: Vec<&str> = fleet.hosts().iter().map(Host::name).collect();
    names.sort_unstable();
    for name in &names[..2] {
        fleet.host(name).exec_ok(&["touch", "/etc/th-fail"]).await;
    }
    fleet
        .publish(&Pkg::new("th-stop", "1.1").postinst("if [ -e /etc/th-fail ]; then exit 1; fi"))
        .await;

    let (status, body) = post_json(
        &app.base_url,
        "/fleet/update",
        json!({"batch_size": 1, "max_failures": 1}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let rollout_id = body["rollout_id"].as_str().unwrap().to_owned();
    let rollout = wait_rollout(&app.base_url, &rollout_id).await;
    assert_eq!(rollout["state"], "stopped", "{rollout:#}");
    let per_host: BTreeMap<String, String> = rollout["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap().to_owned(),
                h["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(per_host[names[0]], "failed", "{rollout:#}");
    assert_eq!(per_host[names[1]], "failed", "{rollout:#}");
    assert_eq!(per_host[names[2]], "skipped", "{rollout:#}");
    assert_eq!(per_host[names[3]], "skipped", "{rollout:#}");
    // The skipped hosts were not touched.
    assert_eq!(
        installed_version(fleet.host(names[3]), "th-stop").await,
        "1.0"
    );
    let failed = get_json(&app.base_url, &format!("/hosts/{}", names[0])).await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn host_cut_off_mid_rollout_ends_lost_and_is_collected_later() {
    let Some(fleet) = Fleet::builder()
        .apt(3)
        .install(Pkg::new("th-cut", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let mut names: Vec<&str> = fleet.hosts().iter().map(Host::name).collect();
    names.sort_unstable();
    let cut_name = names[0];
    let hosts: Vec<(&Host, HostOpts)> = fleet
        .hosts()
        .iter()
        .map(|h| {
            let reconnect_window = (h.name() == cut_name).then_some("8s");
            (
                h,
                HostOpts {
                    reconnect_window,
                    ..HostOpts::default()
                },
            )
        })
        .collect();
    let app = spawn_app(&config_for(&fleet, &hosts)).await;
    // dpkg runs the postinst for 20 s: the cut falls inside dpkg's run.
    fleet
        .publish(&Pkg::new("th-cut", "1.1").postinst("sleep 20"))
        .await;
    let cut_host = fleet.host(cut_name);
    let mut ws = ws_connect(&app, &format!("?host={cut_name}")).await;

    let (status, body) = post_json(
        &app.base_url,
        "/fleet/update",
        json!({"batch_size": 3, "max_failures": 3}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let rollout_id = body["rollout_id"].as_str().unwrap().to_owned();
    // Wait until dpkg is configuring the package on the host, then cut its network.
    events_until(&mut ws, false, |e| {
        e["type"] == "job_output"
            && e["line"]
                .as_str()
                .is_some_and(|l| l.starts_with("Setting up th-cut"))
    })
    .await;
    cut_host.cut_network().await;

    let rollout = wait_rollout(&app.base_url, &rollout_id).await;
    let entry = rollout["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == cut_name)
        .unwrap()
        .clone();
    let lost_job = entry["job_id"].as_str().unwrap().to_owned();
    let job = get_json(&app.base_url, &format!("/jobs/{lost_job}")).await;
    assert_eq!(job["state"], "lost", "{job:#}");
    let view = get_json(&app.base_url, &format!("/hosts/{cut_name}")).await;
    assert_eq!(view["state"], "unreachable", "{view:#}");
    for other in &names[1..] {
        assert_eq!(installed_version(fleet.host(other), "th-cut").await, "1.1");
        let job_state = rollout["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == *other)
            .unwrap()["state"]
            .clone();
        assert_eq!(job_state, "succeeded", "{rollout:#}");
    }

    // dpkg was not killed by the cut: it finished on the host (out of band).
    cut_host.restore_network().await;
    for _ in 0..60 {
        if installed_version(cut_host, "th-cut").await == "1.1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(installed_version(cut_host, "th-cut").await, "1.1");
    // The next check collects the real outcome from the host's job directory.
    let (status, body) = post_json(
        &app.base_url,
        &format!("/hosts/{cut_name}/check"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let check = wait_job(&app.base_url, body["job_id"].as_str().unwrap()).await;
    assert_eq!(check["state"], "succeeded", "{check:#}");
    let job = get_json(&app.base_url, &format!("/jobs/{lost_job}")).await;
    assert_eq!(job["state"], "succeeded", "collected outcome: {job:#}");
    let view = get_json(&app.base_url, &format!("/hosts/{cut_name}")).await;
    assert_eq!(view["state"], "idle", "{view:#}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn reboot_flows_auto_and_manual() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new("th-kernel", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let mut names: Vec<&str> = fleet.hosts().iter().map(Host::name).collect();
    names.sort_unstable();
    let (auto_name, manual_name) = (names[0], names[1]);
    let hosts: Vec<(&Host, HostOpts)> = fleet
        .hosts()
        .iter()
        .map(|h| {
            (
                h,
                HostOpts {
                    auto_reboot: h.name() == auto_name,
                    ..HostOpts::default()
                },
            )
        })
        .collect();
    let app = spawn_app(&config_for(&fleet, &hosts)).await;
    // The new version asks for a reboot, as Debian's kernel packages do.
    fleet
        .publish(&Pkg::new("th-kernel", "1.1").postinst(
            "touch /var/run/reboot-required && echo th-kernel >> /var/run/reboot-required.pkgs",
        ))
        .await;

    // auto_reboot = true: updating -> rebooting -> verifying -> idle, new boot identity.
    let auto_host = fleet.host(auto_name);
    let boot_before = auto_host.boot_identity().await;
    let mut ws = ws_connect(&app, &format!("?host={auto_name}&types=host_state_changed")).await;
    let (status, body) = post_json(
        &app.base_url,
        &format!("/hosts/{auto_name}/update"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job = wait_job(&app.base_url, body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let events = events_until(&mut ws, false, |e| {
        e["to"] == "idle" && e["from"] == "verifying"
    })
    .await;
    let path: Vec<&str> = events.iter().map(|e| e["to"].as_str().unwrap()).collect();
    let tail: Vec<&str> = path
        .iter()
        .copied()
        .skip_while(|s| *s != "updating")
        .collect();
    assert_eq!(
        tail,
        ["updating", "rebooting", "verifying", "idle"],
        "{path:?}"
    );
    assert_ne!(
        auto_host.boot_identity().await,
        boot_before,
        "the host really rebooted"
    );
    assert_eq!(installed_version(auto_host, "th-kernel").await, "1.1");
    let view = get_json(&app.base_url, &format!("/hosts/{auto_name}")).await;
    assert_eq!(view["reboot"]["state"], "not_required", "{view:#}");

    // auto_reboot = false: waiting_reboot until POST /hosts/{name}/reboot.
    let manual_host = fleet.host(manual_name);
    let (status, body) = post_json(
        &app.base_url,
        &format!("/hosts/{manual_name}/update"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job = wait_job(&app.base_url, body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let view = get_json(&app.base_url, &format!("/hosts/{manual_name}")).await;
    assert_eq!(view["state"], "waiting_reboot", "{view:#}");
    assert_eq!(view["reboot"]["state"], "required", "{view:#}");
    let boot_before = manual_host.boot_identity().await;
    let (status, body) = post_json(
        &app.base_url,
        &format!("/hosts/{manual_name}/reboot"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let job = wait_job(&app.base_url, body["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    assert_ne!(manual_host.boot_identity().await, boot_before);
    let view = get_json(&app.base_url, &format!("/hosts/{manual_name}")).await;
    assert_eq!(view["state"], "idle", "{view:#}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn max_parallel_bounds_remote_work_across_a_fleet_check() {
    let Some(fleet) = Fleet::builder().apt(4).start().await else {
        return;
    };
    let hosts: Vec<(&Host, HostOpts)> = fleet
        .hosts()
        .iter()
        .map(|h| (h, HostOpts::default()))
        .collect();
    let config = config_for(&fleet, &hosts).replace(
        "check_on_start = false\n",
        "check_on_start = false\nmax_parallel = 2\n",
    );
    let app = spawn_app(&config).await;
    let mut ws = ws_connect(&app, "").await;
    let (status, body) = post_json(&app.base_url, "/fleet/check", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let events = events_until(&mut ws, true, |e| e["type"] == "rollout_finished").await;
    // Hosts doing remote work are the ones `querying`, from the host actors' own events.
    let mut querying: HashMap<String, bool> = HashMap::new();
    let mut max = 0;
    for event in events.iter().filter(|e| e["type"] == "host_state_changed") {
        querying.insert(
            event["host"].as_str().unwrap().to_owned(),
            event["to"] == "querying",
        );
        max = max.max(querying.values().filter(|q| **q).count());
    }
    assert_eq!(max, 2, "max_parallel = 2 queues the other checks");
    assert_eq!(events.last().unwrap()["state"], "completed");
    app.stop().await.unwrap();
}
