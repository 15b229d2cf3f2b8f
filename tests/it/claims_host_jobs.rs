//! Single-host job claims on real apt hosts of the Docker fleet, through the real daemon
//! (the binary where it restarts, so nothing of the stopped run lives on; else in-process):
//! - a dpkg lock held on the host makes an update end `busy`, and the host goes back to the
//!   state it was in (not `failed`); once released, the update runs;
//! - a real upgrade of two packages streams `update_progress` (`done` of `total`);
//! - a graceful shutdown with an upgrade still running leaves the job `interrupted`, and the
//!   next start collects its real outcome from the host;
//! - a `check-only` host refuses a reboot (409 `updates_disabled`) and is not touched;
//! - a reboot after which the host still requires one fails the job and the host;
//!   `RebootTimedOut` when no new boot comes (through `tendhost-pkg`: the daemon's own wait is
//!   a fixed 10 minutes, `driver::REBOOT_TIMEOUT`).

use std::time::Duration;

use serde_json::{Value, json};
use tendhost_pkg::PkgError;
use tendhost_tests::daemon::{DaemonProcess, spawn_app};
use tendhost_tests::fleet::{Fleet, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json};

use crate::claims::{
    binary_dir, fleet_config, gated_postinst, host_settled, is_job_finished, job_done,
    job_in_state, stop_gracefully, until, ws_connect,
};
use crate::pkg_apt::Conn;

/// `POST /hosts/{host}/{action}`; the job id.
async fn start_job(base_url: &str, host: &str, action: &str) -> String {
    let (status, body) = post_json(base_url, &format!("/hosts/{host}/{action}"), json!({})).await;
    assert_eq!(status, 202, "{action} {host}: {body}");
    body["job_id"].as_str().unwrap().to_owned()
}

async fn host_view(base_url: &str, host: &str) -> Value {
    get_json(base_url, &format!("/hosts/{host}")).await
}

#[tokio::test]
async fn claims_busy_progress_and_shutdown_interrupted_on_one_host() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("th-alpha", "1.0"))
        .install(Pkg::new("th-beta", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let name = host.name();
    let (_dir, config, data) = binary_dir(&fleet_config(&fleet, &[host], |_| String::new()));
    let mut app = DaemonProcess::start(&config, &data);
    fleet
        .publish_all(&[Pkg::new("th-alpha", "1.1"), Pkg::new("th-beta", "1.1")])
        .await;
    let check = start_job(&app.base_url, name, "check").await;
    assert_eq!(job_done(&app.base_url, &check).await["state"], "succeeded");
    let before = host_view(&app.base_url, name).await;
    assert_eq!(before["state"], "pending_updates", "{before:#}");

    // A held dpkg lock: `busy` after the lock timeout, the host back to pending_updates.
    let lock = host.hold_dpkg_lock().await;
    let busy = start_job(&app.base_url, name, "update").await;
    let job = job_done(&app.base_url, &busy).await;
    assert_eq!(job["state"], "busy", "{job:#}");
    let summary = job["summary"].as_str().unwrap();
    assert!(summary.contains("lock"), "{summary}");
    let after = host_view(&app.base_url, name).await;
    assert_eq!(after["state"], "pending_updates", "{after:#}");
    assert!(
        after["failure"].is_null(),
        "busy is not a failure: {after:#}"
    );
    assert_eq!(after["pending"], before["pending"], "{after:#}");
    assert_eq!(installed_version(host, "th-alpha").await, "1.0");
    lock.release().await;

    // The retry upgrades both packages, reporting progress per package.
    let mut ws = ws_connect(
        app.addr,
        &format!("?host={name}&types=update_progress,job_finished"),
    )
    .await;
    let update = start_job(&app.base_url, name, "update").await;
    let events = until(
        &mut ws,
        "job_finished of the retry",
        is_job_finished(&update),
    )
    .await;
    assert_eq!(
        events.last().unwrap()["outcome"],
        "succeeded",
        "{events:#?}"
    );
    let progress: Vec<(&str, u64, u64)> = events
        .iter()
        .filter(|e| e["type"] == "update_progress")
        .map(|e| {
            (
                e["package"].as_str().unwrap(),
                e["done"].as_u64().unwrap(),
                e["total"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut packages: Vec<&str> = progress.iter().map(|p| p.0).collect();
    packages.sort_unstable();
    assert_eq!(packages, ["th-alpha", "th-beta"], "{progress:?}");
    let counts: Vec<(u64, u64)> = progress.iter().map(|p| (p.1, p.2)).collect();
    assert_eq!(counts, [(1, 2), (2, 2)], "{progress:?}");
    for package in ["th-alpha", "th-beta"] {
        assert_eq!(installed_version(host, package).await, "1.1", "{package}");
    }

    // Shutdown while an upgrade runs (its postinst waits for the gate): the job is
    // `interrupted` when the daemon comes back, and the re-check collects the real outcome.
    let gate = "/tmp/th-claims-shutdown-gate";
    fleet
        .publish_deb(&Pkg::new("th-alpha", "1.2").postinst(gated_postinst(gate)))
        .await;
    let check = start_job(&app.base_url, name, "check").await;
    assert_eq!(job_done(&app.base_url, &check).await["state"], "succeeded");
    let mut ws = ws_connect(app.addr, &format!("?host={name}&types=job_output")).await;
    let running = start_job(&app.base_url, name, "update").await;
    until(&mut ws, "dpkg configuring th-alpha 1.2", |e| {
        e["line"]
            .as_str()
            .is_some_and(|line| line.starts_with("Setting up th-alpha (1.2)"))
    })
    .await;
    drop(ws);
    stop_gracefully(&mut app);
    let store = tendhost_store::Store::open(&data).unwrap();
    let row = store
        .job(&running)
        .await
        .unwrap()
        .expect("the job is stored");
    // Left for the next start's recovery, never a finished state the job did not reach.
    assert!(
        ["running", "interrupted"].contains(&row.state.as_str()),
        "after shutdown the job's row says {:?}",
        row.state
    );
    store.close().await.unwrap();
    let status = host
        .exec_ok(&["dpkg-query", "-W", "-f=${Status}", "th-alpha"])
        .await;
    assert_eq!(
        status, "install ok half-configured",
        "dpkg still waits in the postinst"
    );

    let app = DaemonProcess::start(&config, &data);
    let job = get_json(&app.base_url, &format!("/jobs/{running}")).await;
    assert_eq!(job["state"], "interrupted", "{job:#}");
    assert_eq!(
        job["summary"], "the daemon stopped while the job ran",
        "{job:#}"
    );
    host.exec_ok(&["touch", gate]).await;
    let job = job_in_state(&app.base_url, &running, "succeeded").await;
    let summary = job["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("collected after the host came back"),
        "{summary}"
    );
    assert_eq!(installed_version(host, "th-alpha").await, "1.2");
    let view = host_settled(&app.base_url, name).await;
    assert_eq!(view["state"], "idle", "{view:#}");
}

#[tokio::test]
async fn claims_a_check_only_host_refuses_a_reboot_409_updates_disabled() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    let name = host.name();
    // The start time of the container's pid 1: a reboot (a restart) changes it.
    let pid1_start = ["sh", "-c", "cut -d' ' -f22 /proc/1/stat"];
    let boot_before = host.exec(&pid1_start).await;
    let config = fleet_config(&fleet, &[host], |_| {
        "[host.policy]\nupdates = \"check-only\"\n".to_owned()
    });
    let app = spawn_app(&config).await;
    let (status, body) =
        post_json(&app.base_url, &format!("/hosts/{name}/reboot"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "updates_disabled", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("reboots are disabled"), "{message}");
    // Nothing ran and nothing changed on the host.
    let jobs = get_json(&app.base_url, "/jobs").await;
    assert_eq!(jobs["pagination"]["total_items"], 0, "{jobs:#}");
    let view = host_view(&app.base_url, name).await;
    assert!(view["current_job"].is_null(), "{view:#}");
    let boot_after = host.exec(&pid1_start).await;
    assert_eq!(boot_before.stdout, boot_after.stdout);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn claims_reboot_still_required_after_the_reboot_and_reboot_timed_out() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];

    // No new boot comes: a "reboot" command that reboots nothing, then a host that is down.
    let conn = Conn::new(&fleet).await;
    let exec = conn.executor(host, "root");
    let before = tendhost_pkg::reboot(&exec, Some(&["true".to_owned()]))
        .await
        .unwrap();
    // Waits of 3 s: what is tested is the error, not how long the wait is.
    let wait_briefly = || {
        tendhost_pkg::wait_for_new_boot(
            &exec,
            &before,
            Duration::from_secs(3),
            Duration::from_millis(500),
        )
    };
    let timed_out = wait_briefly().await;
    assert!(
        matches!(&timed_out, Err(PkgError::RebootTimedOut { host: h, .. }) if h == host.name()),
        "{timed_out:?}"
    );
    host.stop().await;
    let down = wait_briefly().await;
    assert!(
        matches!(&down, Err(PkgError::RebootTimedOut { .. })),
        "an unreachable host is not back yet: {down:?}"
    );
    host.start().await;
    drop(exec);

    // A host whose reboot does not clear the need: something re-creates the flag at every
    // login (as when the same old kernel boots again). sshd runs ~/.ssh/rc before each
    // session's command. A plain `touch` makes the flag without `.pkgs`, as admins and
    // some tools do.
    host.sh_ok(
        "mkdir -p /root/.ssh && \
         echo 'touch /var/run/reboot-required' > /root/.ssh/rc",
    )
    .await;
    let app = spawn_app(&fleet_config(&fleet, &[host], |_| {
        "reboot_command = [\"reboot\"]\n".to_owned()
    }))
    .await;
    let name = host.name();
    let check = start_job(&app.base_url, name, "check").await;
    let job = job_done(&app.base_url, &check).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let view = host_view(&app.base_url, name).await;
    assert_eq!(view["state"], "waiting_reboot", "{view:#}");
    let boot_before = host.boot_identity().await;
    let reboot = start_job(&app.base_url, name, "reboot").await;
    let job = job_done(&app.base_url, &reboot).await;
    assert_ne!(
        host.boot_identity().await,
        boot_before,
        "the host really rebooted"
    );
    assert_eq!(job["state"], "failed", "{job:#}");
    assert_eq!(
        job["summary"], "the host still requires a reboot after rebooting",
        "{job:#}"
    );
    let lines: Vec<&str> = job["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["line"].as_str())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("host is back with a new boot identity")),
        "{lines:#?}"
    );
    let view = host_view(&app.base_url, name).await;
    assert_eq!(view["state"], "failed", "{view:#}");
    assert_eq!(view["failure"]["action"], "reboot", "{view:#}");
    app.stop().await.unwrap();
}
