//! Rollout claims on real apt hosts of the Docker fleet, through the real daemon (real HTTP,
//! real WebSocket). Six hosts, the in-process daemon, three rollouts in a row:
//! - a percent `max_failures` ("25%" of 4 hosts allows 1) stops the rollout at the second
//!   failure, and the rest are skipped with the reason;
//! - a rollout skips failed hosts, `check-only` hosts and hosts outside their maintenance
//!   window, each with its reason, upgrades the others and streams `update_progress`;
//! - cancelling while upgrades are in flight lets the running hosts finish (recorded as
//!   succeeded) and starts no new host.
//!
//! Two hosts and the binary: SIGTERM mid-rollout leaves it `interrupted` after the restart
//! (not `stopped`), and it resumes to completion.
//!
//! Versions are read out of band (`docker exec`); upgrades that must be "in flight" wait in
//! their postinst for a file the test creates, so nothing depends on timing.

use serde_json::{Value, json};
use tendhost_tests::daemon::{DaemonProcess, spawn_app};
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json};

use crate::claims::{
    binary_dir, fleet_config, gated_postinst, host_settled, job_in_state, rollout_done,
    rollout_entry, sorted_hosts, stop_gracefully, until, ws_connect,
};

const PKG: &str = "th-claims";
/// Where the failing hosts keep their marker (the 1.1 postinst fails when it exists).
const FAIL_MARKER: &str = "/etc/th-claims-fail";
/// The file the 1.2 postinst waits for.
const GATE: &str = "/tmp/th-claims-gate";

/// A window on the day after tomorrow, one minute long: closed now and for the next day.
fn closed_window() -> String {
    let day = jiff::Zoned::now()
        .checked_add(jiff::Span::new().days(2))
        .expect("a date two days from now")
        .weekday();
    let day = match day {
        jiff::civil::Weekday::Monday => "mon",
        jiff::civil::Weekday::Tuesday => "tue",
        jiff::civil::Weekday::Wednesday => "wed",
        jiff::civil::Weekday::Thursday => "thu",
        jiff::civil::Weekday::Friday => "fri",
        jiff::civil::Weekday::Saturday => "sat",
        jiff::civil::Weekday::Sunday => "sun",
    };
    format!("{{ start = \"10:00\", end = \"10:01\", days = [\"{day}\"] }}")
}

fn reason<'a>(rollout: &'a Value, host: &str) -> &'a str {
    rollout_entry(rollout, host)["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("{host} has no reason: {rollout:#}"))
}

fn state<'a>(rollout: &'a Value, host: &str) -> &'a str {
    rollout_entry(rollout, host)["state"].as_str().unwrap()
}

async fn start_rollout(base_url: &str, body: Value) -> String {
    let (status, accepted) = post_json(base_url, "/fleet/update", body).await;
    assert_eq!(status, 202, "{accepted:#}");
    accepted["rollout_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn claims_rollouts_stop_at_percent_failures_skip_with_reasons_and_cancel_in_flight() {
    let Some(fleet) = Fleet::builder()
        .apt(6)
        .install(Pkg::new(PKG, "1.0"))
        .start()
        .await
    else {
        return;
    };
    let hosts = sorted_hosts(&fleet);
    let [fail_a, fail_b, ok_a, ok_b, check_only, windowed] = hosts[..] else {
        panic!("six hosts expected");
    };
    let names =
        |list: &[&Host]| -> Vec<String> { list.iter().map(|h| h.name().to_owned()).collect() };
    let window = closed_window();
    let config = fleet_config(&fleet, &hosts, |host| {
        if host.name() == check_only.name() {
            "[host.policy]\nupdates = \"check-only\"\n".to_owned()
        } else if host.name() == windowed.name() {
            format!("[host.policy]\nmaintenance_window = {window}\n")
        } else {
            String::new()
        }
    });
    let app = spawn_app(&config).await;
    for host in [fail_a, fail_b] {
        host.exec_ok(&["touch", FAIL_MARKER]).await;
    }
    fleet
        .publish_deb(&Pkg::new(PKG, "1.1").postinst(format!(
            "if [ -e {FAIL_MARKER} ]; then echo failing on purpose >&2; exit 1; fi"
        )))
        .await;

    // 1. "25%" of 4 hosts allows 1 failure: the second one stops the rollout.
    let first = start_rollout(
        &app.base_url,
        json!({"batch_size": 1, "max_failures": "25%",
               "filter": {"hosts": names(&[fail_a, fail_b, ok_a, ok_b])}}),
    )
    .await;
    let rollout = rollout_done(&app.base_url, &first).await;
    assert_eq!(rollout["state"], "stopped", "{rollout:#}");
    assert_eq!(rollout["max_failures"], "25%", "{rollout:#}");
    assert_eq!(rollout["n_failed"], 2, "{rollout:#}");
    for host in [fail_a, fail_b] {
        assert_eq!(state(&rollout, host.name()), "failed", "{rollout:#}");
    }
    for host in [ok_a, ok_b] {
        assert_eq!(state(&rollout, host.name()), "skipped", "{rollout:#}");
        assert_eq!(
            reason(&rollout, host.name()),
            "rollout stopped: 2 failures exceed max_failures (1)"
        );
        assert_eq!(installed_version(host, PKG).await, "1.0", "{}", host.name());
    }

    // 2. Everyone, failures allowed: failed, check-only and out-of-window hosts are skipped
    // with their reasons; the others are upgraded, with progress on the event stream.
    let mut ws = ws_connect(app.addr, "?types=update_progress,rollout_finished").await;
    let second = start_rollout(
        &app.base_url,
        json!({"batch_size": 6, "max_failures": "100%"}),
    )
    .await;
    let events = until(&mut ws, "rollout_finished of the second rollout", |e| {
        e["type"] == "rollout_finished" && e["rollout_id"] == second
    })
    .await;
    let rollout = rollout_done(&app.base_url, &second).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    for host in [fail_a, fail_b] {
        assert_eq!(state(&rollout, host.name()), "skipped", "{rollout:#}");
        assert_eq!(
            reason(&rollout, host.name()),
            "host is failed; retry or acknowledge it first"
        );
    }
    assert_eq!(state(&rollout, check_only.name()), "skipped");
    assert_eq!(
        reason(&rollout, check_only.name()),
        "updates are disabled (policy updates = \"check-only\")"
    );
    assert_eq!(state(&rollout, windowed.name()), "skipped");
    let window_reason = reason(&rollout, windowed.name());
    assert!(
        window_reason.starts_with("outside its maintenance window (10:00-10:01 on "),
        "{window_reason}"
    );
    for host in [check_only, windowed] {
        assert!(rollout_entry(&rollout, host.name())["job_id"].is_null());
        assert_eq!(installed_version(host, PKG).await, "1.0", "{}", host.name());
    }
    for host in [ok_a, ok_b] {
        assert_eq!(state(&rollout, host.name()), "succeeded", "{rollout:#}");
        assert_eq!(installed_version(host, PKG).await, "1.1", "{}", host.name());
        let progress: Vec<(u64, u64)> = events
            .iter()
            .filter(|e| e["type"] == "update_progress" && e["host"] == host.name())
            .map(|e| {
                assert_eq!(e["package"], PKG, "{e}");
                (e["done"].as_u64().unwrap(), e["total"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(progress, [(1, 1)], "{}: {events:#?}", host.name());
    }
    assert!(
        !events.iter().any(|e| e["type"] == "update_progress"
            && e["host"] != ok_a.name()
            && e["host"] != ok_b.name()),
        "progress from a host that was skipped: {events:#?}"
    );

    // 3. Cancel while two upgrades are in flight (batch 1: ok_a and ok_b, both waiting in
    // their postinst); batch 2 (the out-of-window host, forced) never starts.
    fleet
        .publish_deb(&Pkg::new(PKG, "1.2").postinst(gated_postinst(GATE)))
        .await;
    let (status, body) = post_json(
        &app.base_url,
        "/fleet/check",
        json!({"filter": {"hosts": names(&[ok_a, ok_b])}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let check = rollout_done(&app.base_url, body["rollout_id"].as_str().unwrap()).await;
    assert_eq!(check["state"], "completed", "{check:#}");
    let mut ws = ws_connect(app.addr, "?types=job_output").await;
    let third = start_rollout(
        &app.base_url,
        json!({"batch_size": 2, "max_failures": 0, "force": true,
               "filter": {"hosts": names(&[ok_a, ok_b, windowed])}}),
    )
    .await;
    let mut configuring: Vec<String> = Vec::new();
    while configuring.len() < 2 {
        let events = until(
            &mut ws,
            "dpkg configuring 1.2 on both hosts of batch 1",
            |e| {
                e["line"]
                    .as_str()
                    .is_some_and(|line| line.starts_with(&format!("Setting up {PKG} (1.2)")))
            },
        )
        .await;
        let host = events.last().unwrap()["host"].as_str().unwrap().to_owned();
        if !configuring.contains(&host) {
            configuring.push(host);
        }
    }
    let (status, cancelled) = post_json(
        &app.base_url,
        &format!("/rollouts/{third}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{cancelled:#}");
    assert_eq!(
        cancelled["state"], "running",
        "running hosts still finish: {cancelled:#}"
    );
    for host in [ok_a, ok_b] {
        assert_eq!(state(&cancelled, host.name()), "running", "{cancelled:#}");
        host.exec_ok(&["touch", GATE]).await;
    }
    let rollout = rollout_done(&app.base_url, &third).await;
    assert_eq!(rollout["state"], "cancelled", "{rollout:#}");
    for host in [ok_a, ok_b] {
        assert_eq!(state(&rollout, host.name()), "succeeded", "{rollout:#}");
        let job_id = rollout_entry(&rollout, host.name())["job_id"]
            .as_str()
            .unwrap();
        let job = get_json(&app.base_url, &format!("/jobs/{job_id}")).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
        assert_eq!(installed_version(host, PKG).await, "1.2", "{}", host.name());
    }
    assert_eq!(state(&rollout, windowed.name()), "cancelled", "{rollout:#}");
    assert_eq!(reason(&rollout, windowed.name()), "rollout cancelled");
    assert!(rollout_entry(&rollout, windowed.name())["job_id"].is_null());
    let jobs = get_json(&app.base_url, &format!("/jobs?host={}", windowed.name())).await;
    assert_eq!(
        jobs["data"],
        json!([]),
        "no job ever started there: {jobs:#}"
    );
    assert_eq!(installed_version(windowed, PKG).await, "1.0");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn claims_graceful_restart_mid_rollout_leaves_it_interrupted_until_resumed() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new(PKG, "1.0"))
        .start()
        .await
    else {
        return;
    };
    let hosts = sorted_hosts(&fleet);
    let [first, second] = hosts[..] else {
        panic!("two hosts expected");
    };
    let (_dir, config, data) = binary_dir(&fleet_config(&fleet, &hosts, |_| String::new()));
    let mut daemon = DaemonProcess::start(&config, &data);
    fleet
        .publish_deb(&Pkg::new(PKG, "1.1").postinst(gated_postinst(GATE)))
        .await;
    let mut ws = ws_connect(
        daemon.addr,
        &format!("?host={}&types=job_output", first.name()),
    )
    .await;
    let rollout_id = start_rollout(
        &daemon.base_url,
        json!({"batch_size": 1, "max_failures": 0}),
    )
    .await;
    until(&mut ws, "dpkg configuring 1.1 on the first host", |e| {
        e["line"]
            .as_str()
            .is_some_and(|line| line.starts_with(&format!("Setting up {PKG} (1.1)")))
    })
    .await;
    drop(ws);

    // SIGTERM while the first batch's upgrade runs (longer than the jobs' grace): a
    // shutdown is not the rollout's end.
    stop_gracefully(&mut daemon);
    let store = tendhost_store::Store::open(&data).unwrap();
    let row = store.rollout(&rollout_id).await.unwrap().expect("stored");
    store.close().await.unwrap();
    assert!(
        ["running", "interrupted"].contains(&row.state.as_str()),
        "after SIGTERM the rollout's row says {:?}, hosts {:#?}",
        row.state,
        row.hosts
    );
    let daemon = DaemonProcess::start(&config, &data);
    let rollout = get_json(&daemon.base_url, &format!("/rollouts/{rollout_id}")).await;
    assert_eq!(rollout["state"], "interrupted", "{rollout:#}");
    assert_eq!(
        installed_version(second, PKG).await,
        "1.0",
        "no new host started"
    );

    // The first host's upgrade goes on without the daemon; its re-check collects it.
    let job_id = rollout_entry(&rollout, first.name())["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for host in [first, second] {
        host.exec_ok(&["touch", GATE]).await;
    }
    job_in_state(&daemon.base_url, &job_id, "succeeded").await;
    host_settled(&daemon.base_url, first.name()).await;
    let (status, body) = post_json(
        &daemon.base_url,
        &format!("/rollouts/{rollout_id}/resume"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let rollout = rollout_done(&daemon.base_url, &rollout_id).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    for host in [first, second] {
        assert_eq!(installed_version(host, PKG).await, "1.1", "{}", host.name());
    }
}
