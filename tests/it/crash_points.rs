//! Crash at random points: the real `tendhost` binary is killed with SIGKILL at a random
//! moment of a rolling update of several fleet hosts, again and again (sometimes a second time
//! while it recovers), and restarted on the same data dir. After each recovery (its re-checks done): no job is `running`, no host
//! `updating`; every interrupted update job whose upgrade reached the host was collected to its
//! real outcome from the host's job directory (one that never reached it has no directory and
//! stays `interrupted`); and each host's installed version, read out of band, is what its
//! last collected update job says. The moments come from a seed printed at the start
//! (`TENDHOST_CRASH_SEED` replays a run).

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tendhost_tests::daemon::DaemonProcess;
use tendhost_tests::fleet::{Fleet, Host, Pkg};
use tendhost_tests::http::{get_json, installed_version, post_json};
use tendhost_tests::wait;

const PACKAGE: &str = "th-crash-points";
const ITERATIONS: u32 = 6;

/// A small xorshift generator: the test's moments, reproducible from the printed seed.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn seed() -> u64 {
    std::env::var("TENDHOST_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| (u64::from(d.subsec_nanos()) ^ d.as_secs()) | 1)
        })
}

/// Every update job of `host`, oldest first.
async fn update_jobs(base: &str, host: &str) -> Vec<Value> {
    let mut jobs =
        get_json(base, &format!("/jobs?host={host}&kind=update&per_page=200")).await["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
    jobs.reverse();
    jobs
}

/// Waits until recovery is over: no job queued or running, no host busy.
async fn recovered(base: &str) {
    wait::until("recovery's re-checks to finish", || async {
        let running = get_json(base, "/jobs?state=running&per_page=200").await;
        let queued = get_json(base, "/jobs?state=queued&per_page=200").await;
        let hosts = get_json(base, "/hosts?per_page=200").await;
        let busy: Vec<&Value> = hosts["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| {
                matches!(
                    h["state"].as_str(),
                    Some("querying" | "updating" | "rebooting" | "verifying")
                ) || !h["current_job"].is_null()
            })
            .collect();
        if running["data"] == json!([]) && queued["data"] == json!([]) && busy.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "running {:#}\nqueued {:#}\nbusy hosts {busy:#?}",
                running["data"], queued["data"]
            ))
        }
    })
    .await;
}

/// The version a collected update job leaves `PACKAGE` at, if it changed it.
fn after_version(job: &Value) -> Option<String> {
    job["packages_changed"]
        .as_array()?
        .iter()
        .find(|change| change["name"] == PACKAGE)
        .and_then(|change| change["to"].as_str())
        .map(str::to_owned)
}

async fn job_dir_exists(host: &Host, job_id: &str) -> bool {
    host.sh(&format!("test -d /var/lib/tendhost/jobs/{job_id}"))
        .await
        .success()
}

/// The checks after one recovery, for one host.
async fn check_host(base: &str, host: &Host) {
    let view = get_json(base, &format!("/hosts/{}", host.name())).await;
    assert_ne!(view["state"], "updating", "{view:#}");
    let mut expected = "1.0".to_owned();
    for summary in update_jobs(base, host.name()).await {
        let id = summary["id"].as_str().unwrap();
        let job = get_json(base, &format!("/jobs/{id}")).await;
        match job["state"].as_str().unwrap() {
            "succeeded" => {
                if let Some(after) = after_version(&job) {
                    expected = after;
                }
            }
            "failed" | "busy" => {
                // Not contradicted: what it changed (if anything) is what the host has.
                if let Some(after) = after_version(&job) {
                    expected = after;
                }
            }
            // Never reached the host: nothing to collect, nothing changed.
            "interrupted" => {
                if job_dir_exists(host, id).await {
                    let all =
                        get_json(base, &format!("/jobs?host={}&per_page=200", host.name())).await;
                    let log = host.sh_ok(&format!("ls -la /var/lib/tendhost/jobs/{id}; cat /var/lib/tendhost/jobs/{id}/exit")).await;
                    panic!(
                        "{}: interrupted job {id} has a job directory but was not collected: {job:#}\n\
                         every job of the host: {all:#}\njob dir: {log}",
                        host.name()
                    );
                }
            }
            other => panic!("{}: update job {id} left {other}: {job:#}", host.name()),
        }
    }
    let installed = installed_version(host, PACKAGE).await;
    assert_eq!(
        installed,
        expected,
        "{}: installed version against its last collected update job",
        host.name()
    );
}

fn write_config(dir: &Path, fleet: &Fleet) -> std::path::PathBuf {
    let mut text = format!(
        "[daemon]\ncheck_on_start = false\n\n[defaults]\nssh_key = \"{}\"\n\
         known_hosts = \"accept-new\"\nconnect_timeout = \"10s\"\n",
        fleet.ssh_key().display()
    );
    for host in fleet.hosts() {
        text.push_str(&format!(
            "\n[[host]]\nname = \"{}\"\naddr = \"{}\"\n",
            host.name(),
            host.addr()
        ));
    }
    let path = dir.join("tendhost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn sigkill_at_random_moments_of_rollouts_loses_no_outcome() {
    let Some(fleet) = Fleet::builder()
        .apt(3)
        .install(Pkg::new(PACKAGE, "1.0"))
        .start()
        .await
    else {
        return;
    };
    let seed = seed();
    eprintln!("crash moments from seed {seed} (TENDHOST_CRASH_SEED={seed} replays them)");
    let mut moments = Moments(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fleet);
    let data = dir.path().join("data");
    let mut daemon = DaemonProcess::start(&config, &data);
    for iteration in 1..=ITERATIONS {
        // Each upgrade's postinst takes a moment, so kills fall before, inside and after dpkg.
        fleet
            .publish(&Pkg::new(PACKAGE, format!("1.{iteration}")).postinst("sleep 2"))
            .await;
        let (status, body) = post_json(
            &daemon.base_url,
            "/fleet/update",
            json!({"batch_size": 1, "max_failures": "100%"}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let after = Duration::from_millis(moments.next_ms(9000));
        eprintln!(
            "iteration {iteration}: SIGKILL {} ms into the rollout",
            after.as_millis()
        );
        tokio::time::sleep(after).await;
        daemon.signal("KILL");
        daemon.wait_exit("kill -9");

        daemon = DaemonProcess::start(&config, &data);
        // Every other time on average, kill it again while it recovers (its re-checks are
        // collecting the interrupted upgrades).
        if moments.next_ms(2) == 0 {
            let after = Duration::from_millis(moments.next_ms(3000));
            eprintln!(
                "iteration {iteration}: SIGKILL again {} ms into the recovery",
                after.as_millis()
            );
            tokio::time::sleep(after).await;
            daemon.signal("KILL");
            daemon.wait_exit("kill -9 during recovery");
            daemon = DaemonProcess::start(&config, &data);
        }
        recovered(&daemon.base_url).await;
        for host in fleet.hosts() {
            check_host(&daemon.base_url, host).await;
        }
    }
    daemon.signal("TERM");
    daemon.wait_exit("SIGTERM at the end");
}
