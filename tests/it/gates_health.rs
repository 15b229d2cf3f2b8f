//! Health checks on real apt hosts of the Docker fleet, through the in-process daemon:
//! - `command`: the new version of a test package removes the file the check tests; the
//!   canary's check fails with its output, the host is `failed` with reason
//!   `health_check_failed`, the rollout stops, and the other host keeps the old version;
//! - `pre_check`: a host unhealthy before its update is refused (409
//!   `unhealthy_before_update`) alone and skipped (not failed) by a rollout;
//! - `http`: a small HTTP server (perl, which every Debian host has) answers the check through
//!   the SSH connection until the new version of another package stops it; the canary fails
//!   with the request's error and no other host is upgraded.
//!
//! Versions and files are read out of band (`docker exec`).

use serde_json::{Value, json};
use tendhost_tests::daemon::spawn_app;
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json};

use crate::claims::{fleet_config, rollout_done, rollout_entry, sorted_hosts, until, ws_connect};

const CMD_PKG: &str = "th-health";
const WEB_PKG: &str = "th-web";
const OK_FILE: &str = "/etc/th-health-ok";
const PID_FILE: &str = "/run/th-web.pid";

/// A one-connection-at-a-time HTTP server on 127.0.0.1:8080 answering 200 to anything.
const SERVER: &str = r#"use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:8080", Listen => 5, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
    while (defined(my $l = <$c>)) { last if $l =~ /^\r?\n$/ }
    print $c "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhealthy\n";
    close $c;
}"#;

async fn start_server(host: &Host) {
    host.exec_ok(&[
        "sh",
        "-c",
        &format!("nohup perl -e \"$0\" >/dev/null 2>&1 & echo $! > {PID_FILE}"),
        SERVER,
    ])
    .await;
    // Serving before the test goes on (a connection is accepted once it listens).
    host.exec_ok(&[
        "sh",
        "-c",
        "i=0; until perl -MIO::Socket::INET -e 'IO::Socket::INET->new(\"127.0.0.1:8080\") or exit 1'; \
         do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done",
    ])
    .await;
}

async fn start_rollout(base_url: &str, body: Value) -> String {
    let (status, accepted) = post_json(base_url, "/fleet/update", body).await;
    assert_eq!(status, 202, "{accepted:#}");
    accepted["rollout_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn gates_health_checks_stop_the_rollout_at_the_canary_and_pre_check_skips() {
    let Some(fleet) = Fleet::builder()
        .apt(4)
        .install(Pkg::new(CMD_PKG, "1.0"))
        .install(Pkg::new(WEB_PKG, "1.0"))
        .start()
        .await
    else {
        return;
    };
    let hosts = sorted_hosts(&fleet);
    let [cmd_canary, cmd_other, web_canary, web_other] = hosts[..] else {
        panic!("four hosts expected");
    };
    let config = fleet_config(&fleet, &hosts, |host| {
        if [cmd_canary.name(), cmd_other.name()].contains(&host.name()) {
            format!(
                "health_check = {{ command = [\"test\", \"-e\", \"{OK_FILE}\"], retries = 1, \
                 interval = \"1s\", pre_check = true }}\n"
            )
        } else {
            "health_check = { http = \"http://127.0.0.1:8080/health\", retries = 1, \
             interval = \"1s\", timeout = \"5s\", pre_check = true }\n"
                .to_owned()
        }
    });
    let app = spawn_app(&config).await;
    for host in [cmd_canary, cmd_other] {
        host.exec_ok(&["touch", OK_FILE]).await;
    }
    for host in [web_canary, web_other] {
        start_server(host).await;
    }

    // 1. `command`: 1.1 removes the file; the canary fails its check and the rollout stops.
    fleet
        .publish_deb(&Pkg::new(CMD_PKG, "1.1").postinst(format!("rm -f {OK_FILE}")))
        .await;
    let mut ws = ws_connect(app.addr, "?types=health_check_finished,rollout_finished").await;
    let first = start_rollout(
        &app.base_url,
        json!({"canary": [cmd_canary.name()], "max_failures": 0,
               "filter": {"hosts": [cmd_canary.name(), cmd_other.name()]}}),
    )
    .await;
    let events = until(&mut ws, "the first rollout's end", |e| {
        e["type"] == "rollout_finished" && e["rollout_id"] == first
    })
    .await;
    let checks: Vec<(&str, bool)> = events
        .iter()
        .filter(|e| e["type"] == "health_check_finished")
        .map(|e| (e["host"].as_str().unwrap(), e["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        checks,
        [(cmd_canary.name(), true), (cmd_canary.name(), false)],
        "the canary's pre-check passed, its check after the update failed: {events:#?}"
    );
    let after = events
        .iter()
        .find(|e| e["type"] == "health_check_finished" && e["ok"] == false)
        .unwrap();
    assert!(after["job_id"].is_string(), "{after}");
    let rollout = rollout_done(&app.base_url, &first).await;
    assert_eq!(rollout["state"], "stopped", "{rollout:#}");
    let canary_entry = rollout_entry(&rollout, cmd_canary.name());
    assert_eq!(canary_entry["state"], "failed", "{rollout:#}");
    let expected_output = format!("test -e {OK_FILE}: exit 1");
    assert!(
        canary_entry["reason"]
            .as_str()
            .unwrap()
            .contains(&expected_output),
        "{rollout:#}"
    );
    assert_eq!(
        rollout_entry(&rollout, cmd_other.name())["state"],
        "skipped"
    );
    let host = get_json(&app.base_url, &format!("/hosts/{}", cmd_canary.name())).await;
    assert_eq!(host["state"], "failed", "{host:#}");
    assert_eq!(host["failure"]["reason"], "health_check_failed", "{host:#}");
    assert!(
        host["failure"]["error"]
            .as_str()
            .unwrap()
            .contains(&expected_output),
        "{host:#}"
    );
    assert_eq!(host["last_health_check"]["ok"], false, "{host:#}");
    assert_eq!(host["last_health_check"]["attempts"], 2, "{host:#}");
    assert_eq!(installed_version(cmd_canary, CMD_PKG).await, "1.1");
    assert_eq!(installed_version(cmd_other, CMD_PKG).await, "1.0");

    // 2. `pre_check`: a host unhealthy before its update is refused alone, skipped by a
    // rollout (not failed), and left as it was.
    cmd_other.exec_ok(&["rm", OK_FILE]).await;
    let (status, refused) = post_json(
        &app.base_url,
        &format!("/hosts/{}/update", cmd_other.name()),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{refused:#}");
    assert_eq!(
        refused["error"]["code"], "unhealthy_before_update",
        "{refused:#}"
    );
    assert!(
        refused["error"]["details"]["output"]
            .as_str()
            .unwrap()
            .contains(&expected_output),
        "{refused:#}"
    );
    let skipped = start_rollout(
        &app.base_url,
        json!({"filter": {"hosts": [cmd_other.name()]}}),
    )
    .await;
    let rollout = rollout_done(&app.base_url, &skipped).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    let entry = rollout_entry(&rollout, cmd_other.name());
    assert_eq!(entry["state"], "skipped", "{rollout:#}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .starts_with("unhealthy_before_update: "),
        "{rollout:#}"
    );
    assert_eq!(rollout["n_failed"], 0, "not blamed: {rollout:#}");
    let host = get_json(&app.base_url, &format!("/hosts/{}", cmd_other.name())).await;
    assert_ne!(host["state"], "failed", "{host:#}");
    assert_eq!(installed_version(cmd_other, CMD_PKG).await, "1.0");

    // 3. `http`: 1.1 of the web package stops the server; the canary fails with the GET's
    // error, the rollout stops, the other web host keeps 1.0.
    fleet
        .publish_deb(&Pkg::new(WEB_PKG, "1.1").postinst(format!("kill $(cat {PID_FILE}) || true")))
        .await;
    let (status, body) = post_json(&app.base_url, "/fleet/check", json!({})).await;
    assert_eq!(status, 202, "{body}");
    rollout_done(&app.base_url, body["rollout_id"].as_str().unwrap()).await;
    let third = start_rollout(
        &app.base_url,
        json!({"canary": [web_canary.name()], "max_failures": 0,
               "filter": {"hosts": [web_canary.name(), web_other.name()]}}),
    )
    .await;
    let rollout = rollout_done(&app.base_url, &third).await;
    assert_eq!(rollout["state"], "stopped", "{rollout:#}");
    let reason = rollout_entry(&rollout, web_canary.name())["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        reason.contains("GET http://127.0.0.1:8080/health on "),
        "{rollout:#}"
    );
    assert_eq!(
        rollout_entry(&rollout, web_other.name())["state"],
        "skipped"
    );
    let host = get_json(&app.base_url, &format!("/hosts/{}", web_canary.name())).await;
    assert_eq!(host["failure"]["reason"], "health_check_failed", "{host:#}");
    assert_eq!(installed_version(web_canary, WEB_PKG).await, "1.1");
    assert_eq!(installed_version(web_other, WEB_PKG).await, "1.0");
    // The other host still serves: its pre-check passed through the forward before.
    let other = get_json(&app.base_url, &format!("/hosts/{}", web_other.name())).await;
    assert!(
        other["last_health_check"].is_null(),
        "never reached: {other:#}"
    );
    app.stop().await.unwrap();
}
