//! Services still running replaced code, on real apt hosts of the Docker fleet: each host runs
//! a test service (an `/etc/init.d` script starting a copy of `sleep` that loads its own copy
//! of libc from `/opt/th-lib`); the new version of a test package replaces that library under
//! it. With `restart_services = "report"` the host detail and the job list the process (pid
//! from the service's pid file, unit from its init script); with `"restart"` the service is
//! restarted (a new pid, nothing stale), the list is empty, and the health check ran after.
//! Read out of band with `docker exec`.

use serde_json::{Value, json};
use tendhost_tests::daemon::{spawn_app, spawn_app_in};
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json};

use crate::claims::{fleet_config, rollout_done, rollout_entry, sorted_hosts};

const PKG: &str = "th-lib";
const PID_FILE: &str = "/run/th-sleeper.pid";

const INIT_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
  start) LD_LIBRARY_PATH=/opt/th-lib start-stop-daemon --start --background --make-pidfile \
           --pidfile /run/th-sleeper.pid --exec /usr/local/bin/th-sleeper -- 100000 ;;
  stop) start-stop-daemon --stop --pidfile /run/th-sleeper.pid --retry 5; rm -f /run/th-sleeper.pid ;;
  restart) "$0" stop; "$0" start ;;
  *) echo "usage: $0 start|stop|restart" >&2; exit 3 ;;
esac
"#;

/// The test service runs, with its own libc mapped; returns its pid.
async fn start_service(host: &Host) -> String {
    host.exec_ok(&[
        "sh",
        "-c",
        "mkdir -p /opt/th-lib && cp -L /lib/*-linux-gnu/libc.so.6 /opt/th-lib/ \
         && cp /bin/sleep /usr/local/bin/th-sleeper && printf '%s' \"$0\" > /etc/init.d/th-sleeper \
         && chmod 755 /etc/init.d/th-sleeper && service th-sleeper start",
        INIT_SCRIPT,
    ])
    .await;
    let pid = service_pid(host).await;
    let maps = host.exec_ok(&["cat", &format!("/proc/{pid}/maps")]).await;
    assert!(maps.contains("/opt/th-lib/libc.so.6"), "{maps}");
    pid
}

async fn service_pid(host: &Host) -> String {
    host.exec_ok(&["cat", PID_FILE]).await.trim().to_owned()
}

fn listed(services: &Value) -> Vec<(u64, String, Option<String>)> {
    services
        .as_array()
        .map(|list| {
            list.iter()
                .map(|s| {
                    (
                        s["pid"].as_u64().unwrap(),
                        s["command"].as_str().unwrap().to_owned(),
                        s["unit"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn gates_services_still_running_replaced_code_are_listed_or_restarted() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new(PKG, "1.0"))
        .start()
        .await
    else {
        return;
    };
    let hosts = sorted_hosts(&fleet);
    let [reporting, restarting] = hosts[..] else {
        panic!("two hosts expected");
    };
    let config = fleet_config(&fleet, &hosts, |host| {
        if host.name() == restarting.name() {
            format!(
                "health_check = {{ command = [\"test\", \"-s\", \"{PID_FILE}\"] }}\n\
                 [host.policy]\nrestart_services = \"restart\"\n"
            )
        } else {
            String::new()
        }
    });
    let app = spawn_app(&config).await;
    let reporting_pid = start_service(reporting).await;
    let restarting_pid = start_service(restarting).await;
    fleet
        .publish_deb(&Pkg::new(PKG, "1.1").postinst(
            "cp /opt/th-lib/libc.so.6 /opt/th-lib/.new && mv /opt/th-lib/.new /opt/th-lib/libc.so.6",
        ))
        .await;
    let (status, accepted) = post_json(
        &app.base_url,
        "/fleet/update",
        json!({"batch_size": 2, "max_failures": 0}),
    )
    .await;
    assert_eq!(status, 202, "{accepted:#}");
    let rollout = rollout_done(&app.base_url, accepted["rollout_id"].as_str().unwrap()).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    for host in [reporting, restarting] {
        assert_eq!(installed_version(host, PKG).await, "1.1", "{}", host.name());
    }

    // "report": the process is listed, with its pid and init script, in the host and the job.
    let expected = (
        reporting_pid.parse::<u64>().unwrap(),
        "th-sleeper".to_owned(),
        Some("th-sleeper".to_owned()),
    );
    let detail = get_json(&app.base_url, &format!("/hosts/{}", reporting.name())).await;
    assert!(
        listed(&detail["services_to_restart"]).contains(&expected),
        "{detail:#}"
    );
    let job_id = rollout_entry(&rollout, reporting.name())["job_id"]
        .as_str()
        .unwrap();
    let job = get_json(&app.base_url, &format!("/jobs/{job_id}")).await;
    assert!(
        listed(&job["services_to_restart"]).contains(&expected),
        "{job:#}"
    );
    assert!(
        job["summary"]
            .as_str()
            .unwrap()
            .contains("process(es) still run replaced code"),
        "{job:#}"
    );
    assert_eq!(service_pid(reporting).await, reporting_pid, "not restarted");
    let maps = reporting
        .exec_ok(&["cat", &format!("/proc/{reporting_pid}/maps")])
        .await;
    assert!(
        maps.contains("/opt/th-lib/libc.so.6 (deleted)"),
        "the old library is still mapped: {maps}"
    );

    // "restart": the service was restarted, nothing stale is left, the check ran after.
    let detail = get_json(&app.base_url, &format!("/hosts/{}", restarting.name())).await;
    assert_eq!(
        listed(&detail["services_to_restart"]),
        [],
        "the list is empty after the restart: {detail:#}"
    );
    assert_eq!(detail["last_health_check"]["ok"], true, "{detail:#}");
    let new_pid = service_pid(restarting).await;
    assert_ne!(new_pid, restarting_pid, "the service has a new process");
    let maps = restarting
        .exec_ok(&["cat", &format!("/proc/{new_pid}/maps")])
        .await;
    assert!(
        maps.contains("/opt/th-lib/libc.so.6") && !maps.contains("(deleted)"),
        "{maps}"
    );
    let job_id = rollout_entry(&rollout, restarting.name())["job_id"]
        .as_str()
        .unwrap();
    let job = get_json(&app.base_url, &format!("/jobs/{job_id}")).await;
    let log: Vec<&str> = job["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|line| line["line"].as_str())
        .collect();
    let restarted = log
        .iter()
        .position(|line| *line == "restarted th-sleeper (restart_services = \"restart\")");
    let checked = log
        .iter()
        .position(|line| line.starts_with("health check passed"));
    assert!(
        matches!((restarted, checked), (Some(r), Some(c)) if r < c),
        "restart, then the health check: {log:#?}"
    );

    // A restart of the daemon keeps both: the list of stale processes and the last health
    // check come back from the state database as they were (no check ran since).
    let mut before: Vec<Value> = Vec::new();
    for host in [reporting, restarting] {
        before.push(get_json(&app.base_url, &format!("/hosts/{}", host.name())).await);
    }
    let app = spawn_app_in(app.into_dir().await).await;
    for (host, before) in [reporting, restarting].iter().zip(&before) {
        let after = get_json(&app.base_url, &format!("/hosts/{}", host.name())).await;
        for field in ["services_to_restart", "last_health_check"] {
            assert_eq!(
                after[field],
                before[field],
                "{field} of {}: {after:#}",
                host.name()
            );
        }
    }
    assert!(
        listed(&before[0]["services_to_restart"]).contains(&expected),
        "{:#}",
        before[0]
    );
    assert_eq!(
        before[1]["last_health_check"]["ok"], true,
        "{:#}",
        before[1]
    );
    app.stop().await.unwrap();
}
