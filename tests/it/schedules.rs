//! Schedules on real hosts, through the in-process daemon: runs started by a driven wall clock
//! (`tendhost_core::clock::testing::set`, this process's clock; the daemon reads it), the
//! security-only selection on the hosts a filter matches with `reboot = "if_required"`, and a
//! named-package run with `reboot = "always"` (both verified by the host's boot identity), hosts deferred until their maintenance window
//! opens or skipped past `window_grace`, two schedules in the same minute (one job per host),
//! a pause kept across a restart, a missed run made up once (`catch_up`), `run` at once, and
//! one schedule on the real clock.
//! Versions are read out of band (`docker exec`).

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde_json::{Value, json};
use tendhost_core::clock::testing as clock;
use tendhost_tests::daemon::{TestApp, spawn_app, spawn_app_in};
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, post_json, wait_rollout};
use tendhost_tests::wait;

/// Sets the daemon's clock to `civil` in the system's time zone (what maintenance windows and
/// schedules without a `timezone` are read in), a date before the real one.
fn set_clock(civil: &str) {
    let civil: DateTime = civil.parse().unwrap();
    let at = civil.to_zoned(TimeZone::system()).unwrap().timestamp();
    clock::set(at);
}

/// A daemon managing `hosts`: `(host, extra TOML lines of its [[host]] table)`, then `tail`.
fn config_for(fleet: &Fleet, hosts: &[(&Host, &str)], tail: &str) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n\
         connect_timeout = \"10s\"\n",
        fleet.ssh_key().display()
    );
    for (host, extra) in hosts {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\npackage_manager = \"apt\"\n\
             reboot_command = [\"reboot\"]\n{extra}\n",
            host.name(),
            host.addr()
        ));
    }
    config.push('\n');
    config.push_str(tail);
    config
}

async fn version(host: &Host, name: &str) -> String {
    host.exec_ok(&["cat", &format!("/usr/share/tendhost-test/{name}/version")])
        .await
        .trim()
        .to_owned()
}

/// Waits until schedule `name` has started a rollout other than `before`; its id.
async fn next_rollout_of(app: &TestApp, name: &str, before: Option<&str>) -> String {
    wait::until(&format!("schedule {name} starting a rollout"), || async {
        let schedule = get_json(&app.base_url, &format!("/schedules/{name}")).await;
        match schedule["last_rollout_id"].as_str() {
            Some(id) if Some(id) != before => Ok(id.to_owned()),
            _ => Err(format!("{schedule:#}")),
        }
    })
    .await
}

fn host_entry<'a>(rollout: &'a Value, host: &str) -> &'a Value {
    rollout["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["host"] == host)
        .unwrap_or_else(|| panic!("{host} in {rollout:#}"))
}

#[tokio::test]
async fn nightly_security_schedule_updates_matched_hosts_and_reboots_if_required() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new("tendhost-sec", "1.0"))
        .install(Pkg::new("tendhost-main", "1.0"))
        .start()
        .await
    else {
        return;
    };
    // The security fix asks for a reboot, as Debian's kernel and libc updates do.
    fleet
        .publish_all(&[
            Pkg::new("tendhost-sec", "1.1")
                .security()
                .postinst("touch /var/run/reboot-required"),
            Pkg::new("tendhost-main", "1.1"),
        ])
        .await;
    let [web, db] = fleet.hosts() else {
        panic!("two hosts");
    };
    let schedule = "[[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\naction = \"update\"\n\
                    packages = \"security\"\nreboot = \"if_required\"\nfilter = { tags = [\"web\"] }\n\n\
                    [[schedule]]\nname = \"monthly\"\ncron = \"0 4 1 * *\"\naction = \"update\"\n\
                    packages = [\"tendhost-main\"]\nreboot = \"always\"\nfilter = { tags = [\"db\"] }\n\
                    random_delay = \"2h\"\n";
    let app = spawn_app(&config_for(
        &fleet,
        &[(web, "tags = [\"web\"]"), (db, "tags = [\"db\"]")],
        schedule,
    ))
    .await;
    let listed = get_json(&app.base_url, "/schedules").await;
    assert_eq!(listed["data"][0]["name"], "nightly", "{listed:#}");
    assert_eq!(listed["data"][0]["packages"], "security", "{listed:#}");
    assert!(listed["data"][0]["last_rollout_id"].is_null(), "{listed:#}");
    // `random_delay`: the next run starts within two hours after 04:00 on the 1st.
    let monthly = &listed["data"][1];
    assert_eq!(monthly["random_delay_secs"], 7200, "{listed:#}");
    let next_run: jiff::Timestamp = monthly["next_run"].as_str().unwrap().parse().unwrap();
    let local = next_run.to_zoned(TimeZone::system());
    assert!(
        local.day() == 1 && (4..6).contains(&local.hour()),
        "next_run {local} is not within 2h after 04:00 on the 1st: {monthly:#}"
    );

    let boot_before = web.boot_identity().await;
    set_clock("2026-11-21T02:59:57");
    let rollout_id = next_rollout_of(&app, "nightly", None).await;
    let rollout = wait_rollout(&app.base_url, &rollout_id).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    assert_eq!(
        rollout["trigger"],
        json!({"schedule": "nightly"}),
        "{rollout:#}"
    );
    assert_eq!(rollout["packages"], "security", "{rollout:#}");
    assert_eq!(
        host_entry(&rollout, web.name())["state"],
        "succeeded",
        "{rollout:#}"
    );
    assert_eq!(
        rollout["hosts"].as_array().unwrap().len(),
        1,
        "only the filter's hosts"
    );

    // Out of band: only the security update, only on the matched host, and it rebooted.
    assert_eq!(version(web, "tendhost-sec").await, "1.1");
    assert_eq!(version(web, "tendhost-main").await, "1.0");
    assert_eq!(version(db, "tendhost-sec").await, "1.0");
    assert_eq!(version(db, "tendhost-main").await, "1.0");
    assert_ne!(
        web.boot_identity().await,
        boot_before,
        "reboot = \"if_required\" rebooted the host that needed it"
    );
    let job_id = host_entry(&rollout, web.name())["job_id"].as_str().unwrap();
    let job = get_json(&app.base_url, &format!("/jobs/{job_id}")).await;
    assert!(
        job["summary"]
            .as_str()
            .unwrap()
            .contains("rebooted and verified"),
        "{job:#}"
    );
    let listed = get_json(&app.base_url, "/rollouts").await;
    assert_eq!(
        listed["data"][0]["trigger"],
        json!({"schedule": "nightly"}),
        "{listed:#}"
    );

    // `reboot = "always"` reboots a host whose update asked for none (tendhost-main's
    // postinst leaves no /var/run/reboot-required), verified by its boot identity.
    let db_boot_before = db.boot_identity().await;
    let (status, body) = post_json(&app.base_url, "/schedules/monthly/run", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let monthly_id = body["rollout_id"].as_str().unwrap().to_owned();
    let monthly = wait_rollout(&app.base_url, &monthly_id).await;
    assert_eq!(monthly["state"], "completed", "{monthly:#}");
    assert_eq!(
        host_entry(&monthly, db.name())["state"],
        "succeeded",
        "{monthly:#}"
    );
    assert_eq!(version(db, "tendhost-main").await, "1.1");
    assert_eq!(
        version(db, "tendhost-sec").await,
        "1.0",
        "only the named package"
    );
    assert_ne!(
        db.boot_identity().await,
        db_boot_before,
        "reboot = \"always\" rebooted a host that needed no reboot"
    );
    let db_job_id = host_entry(&monthly, db.name())["job_id"].as_str().unwrap();
    let db_job = get_json(&app.base_url, &format!("/jobs/{db_job_id}")).await;
    assert!(
        db_job["summary"]
            .as_str()
            .unwrap()
            .contains("rebooted and verified"),
        "{db_job:#}"
    );
    let audit = get_json(&app.base_url, "/audit").await;
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| { row["rollout_id"] == rollout_id.as_str() && row["method"] == "SCHEDULE" }),
        "the run is in the audit trail: {audit:#}"
    );
    app.stop().await.unwrap();
    clock::reset();
}

#[tokio::test]
async fn deferred_host_waits_for_its_window_and_one_past_the_grace_is_skipped() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new("tendhost-demo", "1.0"))
        .start()
        .await
    else {
        return;
    };
    fleet.publish(&Pkg::new("tendhost-demo", "1.1")).await;
    let [soon, late] = fleet.hosts() else {
        panic!("two hosts");
    };
    let window = |start: &str, end: &str| {
        format!("[host.policy]\nmaintenance_window = {{ start = \"{start}\", end = \"{end}\" }}")
    };
    let schedule = "[[schedule]]\nname = \"early\"\ncron = \"0 2 * * *\"\naction = \"update\"\n\
                    window_grace = \"2h\"\n";
    let app = spawn_app(&config_for(
        &fleet,
        &[
            (soon, &window("03:00", "04:00")),
            (late, &window("05:00", "06:00")),
        ],
        schedule,
    ))
    .await;
    set_clock("2026-11-21T01:59:57");
    let rollout_id = next_rollout_of(&app, "early", None).await;
    let rollout = wait::until(
        "the late host skipped and the soon one deferred",
        || async {
            let rollout = get_json(&app.base_url, &format!("/rollouts/{rollout_id}")).await;
            let deferred = host_entry(&rollout, soon.name())["state"] == "deferred";
            let skipped = host_entry(&rollout, late.name())["state"] == "skipped";
            if deferred && skipped {
                Ok(rollout)
            } else {
                Err(format!("{rollout:#}"))
            }
        },
    )
    .await;
    assert_eq!(
        rollout["state"], "running",
        "deferred hosts keep it running: {rollout:#}"
    );
    assert_eq!(rollout["counts"]["deferred"], 1, "{rollout:#}");
    let reason = host_entry(&rollout, late.name())["reason"]
        .as_str()
        .unwrap();
    assert!(reason.starts_with("window_not_open"), "{reason}");
    assert_eq!(
        version(soon, "tendhost-demo").await,
        "1.0",
        "nothing before the window"
    );

    set_clock("2026-11-21T02:59:58");
    let rollout = wait_rollout(&app.base_url, &rollout_id).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    assert_eq!(
        host_entry(&rollout, soon.name())["state"],
        "succeeded",
        "{rollout:#}"
    );
    assert_eq!(version(soon, "tendhost-demo").await, "1.1");
    assert_eq!(version(late, "tendhost-demo").await, "1.0");
    app.stop().await.unwrap();
    clock::reset();
}

#[tokio::test]
async fn same_minute_schedules_one_job_pause_survives_restart_and_run_starts_at_once() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-demo", "1.0"))
        .start()
        .await
    else {
        return;
    };
    // A slow upgrade: the first run's job still holds the host when the second reaches it.
    fleet
        .publish(&Pkg::new("tendhost-demo", "1.1").postinst("sleep 5"))
        .await;
    let host = &fleet.hosts()[0];
    let schedules = "[[schedule]]\nname = \"first\"\ncron = \"0 3 * * *\"\n\n\
                     [[schedule]]\nname = \"second\"\ncron = \"0 3 * * *\"\n\n\
                     [[schedule]]\nname = \"nightly-check\"\ncron = \"0 3 * * *\"\n\
                     action = \"check\"\ncatch_up = true\n";
    let app = spawn_app(&config_for(&fleet, &[(host, "")], schedules)).await;
    set_clock("2026-11-21T02:59:58");
    let first = next_rollout_of(&app, "first", None).await;
    let second = next_rollout_of(&app, "second", None).await;
    let check_before = next_rollout_of(&app, "nightly-check", None).await;
    wait_rollout(&app.base_url, &check_before).await;
    let first = wait_rollout(&app.base_url, &first).await;
    let second = wait_rollout(&app.base_url, &second).await;
    let entries = [
        host_entry(&first, host.name()),
        host_entry(&second, host.name()),
    ];
    let n_jobs = entries.iter().filter(|e| e["job_id"].is_string()).count();
    assert_eq!(n_jobs, 1, "one job on the host: {first:#} {second:#}");
    let skipped = entries
        .iter()
        .find(|e| e["state"] == "skipped")
        .unwrap_or_else(|| panic!("{first:#} {second:#}"));
    assert!(
        skipped["reason"].as_str().unwrap().starts_with("busy"),
        "{skipped}"
    );
    let jobs = get_json(&app.base_url, &format!("/jobs?host={}", host.name())).await;
    let n_updates = jobs["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|job| job["kind"] == "update")
        .count();
    assert_eq!(n_updates, 1, "{jobs:#}");
    assert_eq!(version(host, "tendhost-demo").await, "1.1");

    // Pause, restart: still paused, no next run; `run` starts a rollout at once anyway.
    let (status, paused) = post_json(&app.base_url, "/schedules/first/pause", json!({})).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["paused"], true, "{paused}");
    let dir = app.into_dir().await;
    let app = spawn_app_in(dir).await;
    let after = get_json(&app.base_url, "/schedules/first").await;
    assert_eq!(
        after["paused"], true,
        "the pause survived the restart: {after:#}"
    );
    assert!(after["next_run"].is_null(), "{after:#}");
    assert_eq!(after["last_rollout_id"], first["id"], "{after:#}");
    let resumed = get_json(&app.base_url, "/schedules/second").await;
    assert!(resumed["next_run"].is_string(), "{resumed:#}");
    let (status, accepted) = post_json(&app.base_url, "/schedules/first/run", json!({})).await;
    assert_eq!(status, 202, "{accepted}");
    let rollout_id = accepted["rollout_id"].as_str().unwrap();
    let rollout = get_json(&app.base_url, &format!("/rollouts/{rollout_id}")).await;
    assert_eq!(
        rollout["trigger"],
        json!({"schedule": "first"}),
        "{rollout:#}"
    );
    let rollout = wait_rollout(&app.base_url, rollout_id).await;
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    let (status, missing) = post_json(&app.base_url, "/schedules/nope/run", json!({})).await;
    assert_eq!(status, 404, "{missing}");
    app.stop().await.unwrap();
    clock::reset();
}

/// The one test on the real clock: a `* * * * *` check schedule starts within about 70 s.
#[tokio::test]
async fn every_minute_schedule_fires_on_the_real_clock() {
    let Some(fleet) = Fleet::builder().apt(1).start().await else {
        return;
    };
    let host = &fleet.hosts()[0];
    let schedule =
        "[[schedule]]\nname = \"every-minute\"\ncron = \"* * * * *\"\naction = \"check\"\n";
    let app = spawn_app(&config_for(&fleet, &[(host, "")], schedule)).await;
    let listed = get_json(&app.base_url, "/schedules/every-minute").await;
    let next_run: jiff::Timestamp = listed["next_run"].as_str().unwrap().parse().unwrap();
    let left = next_run.duration_since(jiff::Timestamp::now());
    assert!(
        left <= jiff::SignedDuration::from_secs(61),
        "the next run is within a minute: {listed:#}"
    );
    let rollout_id = next_rollout_of(&app, "every-minute", None).await;
    let rollout = wait_rollout(&app.base_url, &rollout_id).await;
    assert_eq!(rollout["kind"], "check", "{rollout:#}");
    assert_eq!(rollout["state"], "completed", "{rollout:#}");
    assert_eq!(rollout["trigger"], json!({"schedule": "every-minute"}));
    app.stop().await.unwrap();
}

/// Manual rollouts carry the caller's token name; schedule routes need `operate` to act and
/// `read` to look. A check of a `check-only` local host changes nothing.
#[tokio::test]
async fn manual_rollouts_carry_the_token_name_and_schedules_need_operate() {
    let (reader, reader_hash) = tendhost_auth::new_token().unwrap();
    let (operator, operator_hash) = tendhost_auth::new_token().unwrap();
    let config = format!(
        "[daemon]\nlog_level = \"warn\"\ncheck_on_start = false\n\n[daemon.auth]\ntokens = [\n\
         {{ name = \"reader\", token_hash = \"{reader_hash}\", role = \"read\" }},\n\
         {{ name = \"ops-bot\", token_hash = \"{operator_hash}\", role = \"operate\" }}\n]\n\n\
         [[host]]\nname = \"me\"\naddr = \"local\"\n[host.policy]\nupdates = \"check-only\"\n\
         refresh_lists = false\n\n\
         [[schedule]]\nname = \"hourly\"\ncron = \"@hourly\"\naction = \"check\"\n"
    );
    let app = spawn_app(&config).await;
    let client = wait::http_client();
    let post = |path: &str, token: &str| {
        client
            .post(app.url(path))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
    };
    let resp = post("/fleet/check", &operator).await.unwrap();
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    let rollout_id = accepted["rollout_id"].as_str().unwrap();
    let rollout: Value = client
        .get(app.url(&format!("/rollouts/{rollout_id}")))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rollout["trigger"], json!({"api": "ops-bot"}), "{rollout:#}");

    assert_eq!(
        post("/schedules/hourly/pause", &reader)
            .await
            .unwrap()
            .status(),
        403
    );
    let listed = client
        .get(app.url("/schedules"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let resp = post("/schedules/hourly/run", &operator).await.unwrap();
    assert_eq!(resp.status(), 202);
    let run: Value = resp.json().await.unwrap();
    assert_eq!(run["schedule"], "hourly", "{run}");
    app.stop().await.unwrap();
}
