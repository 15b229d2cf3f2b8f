//! Limits on a job, on the Docker test fleet: `job_timeout` ends a job whose host never says it
//! is done (a detached upgrade whose postinst sleeps far past the deadline) as `failed`, frees
//! the host and gives the fleet-wide `max_parallel` slot back, so the next host's job runs; and
//! job directories on the hosts are private (0700) and pruned to the last `keep_job_dirs`
//! once their outcome is stored, read out of band with `docker exec`.

use serde_json::{Value, json};
use tendhost_tests::daemon::spawn_app;
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, post_json, wait_job};

/// A daemon config managing `hosts` of `fleet` as root, with `extra` appended to each
/// `[[host]]` table and `daemon` to `[daemon]`.
fn config(fleet: &Fleet, daemon: &str, hosts: &[(&Host, &str)]) -> String {
    let mut config = format!(
        "[daemon]\nlog_level = \"info,tendhost_exec=warn\"\ncheck_on_start = false\n{daemon}\n\
         [defaults]\nuser = \"root\"\nssh_key = \"{}\"\nknown_hosts = \"accept-new\"\n",
        fleet.ssh_key().display()
    );
    for (host, extra) in hosts {
        config.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\n{extra}\n",
            host.name(),
            host.addr(),
        ));
    }
    config
}

async fn start_job(base_url: &str, host: &str, action: &str) -> String {
    let (status, body) = post_json(base_url, &format!("/hosts/{host}/{action}"), json!({})).await;
    assert_eq!(status, 202, "{action} on {host}: {body}");
    body["job_id"].as_str().unwrap().to_owned()
}

fn time_of(job: &Value, field: &str) -> jiff::Timestamp {
    job[field]
        .as_str()
        .unwrap_or_else(|| panic!("job has no {field}: {job}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn job_timeout_fails_a_job_that_never_ends_and_frees_the_fleet_slot() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new("th-slow", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let [tarpit, neighbour] = fleet.hosts() else {
        unreachable!()
    };
    // One fleet-wide slot: while the tarpit's job holds it, the neighbour's job cannot run.
    let app = spawn_app(&config(
        &fleet,
        "max_parallel = 1",
        &[(tarpit, "job_timeout = \"20s\""), (neighbour, "")],
    ))
    .await;
    let base = app.url("");
    let check = wait_job(&base, &start_job(&base, tarpit.name(), "check").await).await;
    assert_eq!(check["state"], "succeeded", "{check:#}");

    // The upgrade runs detached and its postinst outlives any test: the host keeps answering
    // "running" to every streaming pass.
    fleet
        .publish(&Pkg::new("th-slow", "1.1").postinst("sleep 3600"))
        .await;
    let update_id = start_job(&base, tarpit.name(), "update").await;
    tendhost_tests::wait::until("the tarpit's upgrade running on the host", || async {
        let out = tarpit.sh("pgrep -f 'sleep 3600'").await;
        out.success()
            .then_some(())
            .ok_or_else(|| "no postinst yet".to_owned())
    })
    .await;
    let neighbour_check = start_job(&base, neighbour.name(), "check").await;

    let update = wait_job(&base, &update_id).await;
    assert_eq!(update["state"], "failed", "{update:#}");
    let summary = update["summary"].as_str().unwrap();
    assert!(
        summary.contains("job timed out") && summary.contains("job_timeout (20s)"),
        "{summary}"
    );
    assert!(
        update["log"].to_string().contains("job timed out"),
        "the job log says why it ended: {update:#}"
    );
    // The neighbour's check ran once the slot was free, after the tarpit's job had ended.
    let neighbour_check = wait_job(&base, &neighbour_check).await;
    assert_eq!(neighbour_check["state"], "succeeded", "{neighbour_check:#}");
    assert!(
        time_of(&neighbour_check, "started_at") >= time_of(&update, "finished_at"),
        "the neighbour's check waited for the slot: {neighbour_check:#} {update:#}"
    );
    // The host is free: failed with the reason, no current job, and it takes a new job.
    let host = get_json(&base, &format!("/hosts/{}", tarpit.name())).await;
    assert_eq!(host["state"], "failed", "{host:#}");
    assert_eq!(host["current_job"], Value::Null, "{host:#}");
    assert!(
        host["failure"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("job_timeout")),
        "{host:#}"
    );
    let again = wait_job(&base, &start_job(&base, tarpit.name(), "check").await).await;
    assert_eq!(
        again["state"], "succeeded",
        "a new job runs on the freed host: {again:#}"
    );
    app.stop().await.unwrap();
}

/// The job directories under the host's job root, by name, with their mode (`stat -c`).
async fn job_dirs(host: &Host) -> Vec<(String, String)> {
    let out = host
        .sh("cd /var/lib/tendhost/jobs 2>/dev/null && for d in *; do [ -d \"$d\" ] && stat -c '%n %a' \"$d\"; done; true")
        .await;
    out.stdout
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(name, mode)| (name.to_owned(), mode.to_owned()))
        .collect()
}

#[tokio::test]
async fn job_directories_are_private_and_pruned_to_keep_job_dirs_once_stored() {
    let Some(fleet) = Fleet::builder()
        .apt(2)
        .install(Pkg::new("th-dirs", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let [keeps_two, keeps_none] = fleet.hosts() else {
        unreachable!()
    };
    let app = spawn_app(&config(
        &fleet,
        "",
        &[
            (keeps_two, "keep_job_dirs = 2"),
            (keeps_none, "keep_job_dirs = 0"),
        ],
    ))
    .await;
    let base = app.url("");
    let mut update_ids = Vec::new();
    for (i, version) in ["1.1", "1.2", "1.3", "1.4"].into_iter().enumerate() {
        // The third upgrade fails (its postinst exits 1): a failed outcome is collected too.
        let pkg = Pkg::new("th-dirs", version);
        let pkg = if i == 2 { pkg.postinst("exit 1") } else { pkg };
        fleet.publish(&pkg).await;
        let id = start_job(
            &base,
            keeps_two.name(),
            if i == 3 { "retry" } else { "update" },
        )
        .await;
        let job = wait_job(&base, &id).await;
        let expected = if i == 2 { "failed" } else { "succeeded" };
        assert_eq!(job["state"], expected, "{job:#}");
        // While the outcome is being stored and the directory retired, it is private.
        if let Some((_, mode)) = job_dirs(keeps_two)
            .await
            .iter()
            .find(|(name, _)| *name == id)
        {
            assert_eq!(mode, "700", "job dir {id}");
        }
        update_ids.push(id);
    }
    // The files inside are private too (the newest directory stays).
    let newest = update_ids.last().unwrap();
    let modes = keeps_two
        .sh_ok(&format!(
            "stat -c '%n %a' /var/lib/tendhost/jobs /var/lib/tendhost/jobs/{newest}/*"
        ))
        .await;
    for line in modes.lines() {
        let (name, mode) = line.split_once(' ').unwrap();
        let private = if name.ends_with("/jobs") {
            "700"
        } else {
            "600"
        };
        assert_eq!(mode, private, "{modes}");
    }
    let newest_two: Vec<String> = update_ids[2..].to_vec();
    tendhost_tests::wait::until("the host keeping only the newest two job dirs", || async {
        let names: Vec<String> = job_dirs(keeps_two)
            .await
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        if names == newest_two {
            Ok(())
        } else {
            Err(format!("job dirs {names:?}, updates {update_ids:?}"))
        }
    })
    .await;
    // Their outcome is still served by the daemon.
    for id in &update_ids[..2] {
        let job = get_json(&base, &format!("/jobs/{id}")).await;
        assert_eq!(job["state"], "succeeded", "{job:#}");
    }

    let id = start_job(&base, keeps_none.name(), "update").await;
    assert_eq!(wait_job(&base, &id).await["state"], "succeeded");
    tendhost_tests::wait::until("keep_job_dirs = 0 removing the job dir", || async {
        let dirs = job_dirs(keeps_none).await;
        dirs.is_empty()
            .then_some(())
            .ok_or_else(|| format!("{dirs:?}"))
    })
    .await;
    assert!(
        keeps_none
            .sh("test -d /var/lib/tendhost/jobs")
            .await
            .success(),
        "the job root itself stays"
    );
    app.stop().await.unwrap();
}
