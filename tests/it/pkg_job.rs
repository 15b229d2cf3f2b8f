//! The detached upgrade job of `tendhost_pkg` (`upgrade` and `collect`, `ops/job.rs`) driven by
//! real apt on a test-fleet host over SSH: the log streamed while the job runs, in short
//! passes; a job root that needs quoting; the outcome of an upgrade where one postinst fails;
//! collecting again from an offset; and a second launch of the same job id starting nothing.
//! The unit tests in `ops/job.rs` cover the same loop on this machine with stand-in scripts.

use std::sync::Mutex;
use std::time::Duration;

use tendhost_exec::{NoSink, Stream};
use tendhost_pkg::{JobId, PackageManager, PkgOptions, UpgradeState};
use tendhost_tests::fleet::{Fleet, Pkg};

use crate::pkg_apt::{Conn, installed_version, options, triple, upgraded};

const APT: PackageManager = PackageManager::Apt;
const WAITING: &str = "tendhost-steady: waiting to be streamed";
const GO_FILE: &str = "/run/tendhost-steady.go";

#[tokio::test]
async fn apt_job_streams_while_running_and_a_second_launch_starts_nothing() {
    let Some(fleet) = Fleet::builder()
        .apt(1)
        .install(Pkg::new("tendhost-steady", "1.0"))
        .install(Pkg::new("tendhost-breaks", "1.0"))
        .start()
        .await
    else {
        return;
    };
    let host = &fleet.hosts()[0];
    let conn = Conn::new(&fleet).await;
    let exec = conn.executor(host, "root");
    let opts = PkgOptions {
        // A job root that needs quoting everywhere it appears.
        job_root: "/var/tmp/it's $(touch pwned) jobs".to_owned(),
        stream_pass: Duration::from_secs(1),
        ..options()
    };
    // The postinst only succeeds once the test has seen its line: that happens only if the
    // job's log reaches the sink while apt is still running.
    fleet
        .publish_all(&[
            Pkg::new("tendhost-steady", "1.1").postinst(format!(
                "echo '{WAITING}'\nn=0\n\
                 while [ ! -e {GO_FILE} ] && [ $n -lt 1200 ]; do sleep 0.1; n=$((n+1)); done\n\
                 [ -e {GO_FILE} ] || {{ echo 'tendhost-steady: never streamed' >&2; exit 1; }}"
            )),
            Pkg::new("tendhost-breaks", "1.1")
                .postinst("echo 'tendhost-breaks: failing on purpose' >&2\nexit 1"),
        ])
        .await;

    let lines = Mutex::new(Vec::new());
    let sink = |_: Stream, line: &str| {
        if line == WAITING {
            // Out of band, blocking for a moment: the sink is synchronous.
            let status = std::process::Command::new("docker")
                .args(["exec", host.name(), "touch", GO_FILE])
                .status()
                .expect("docker exec");
            assert!(status.success(), "touching {GO_FILE}: {status}");
        }
        lines.lock().unwrap().push(line.to_owned());
    };
    let job_id = JobId::new("apt-streamed").unwrap();
    let outcome = tendhost_pkg::upgrade(&exec, APT, &job_id, &opts, &sink)
        .await
        .unwrap();
    assert_eq!(outcome.state, UpgradeState::Failed, "{}", outcome.log);
    assert_eq!(outcome.exit_code, Some(100));
    assert_eq!(outcome.failed, ["tendhost-breaks"]);
    assert_eq!(
        upgraded(&outcome),
        [triple("tendhost-steady", "1.0", "1.1")]
    );
    assert!(
        outcome.log.contains("tendhost-breaks: failing on purpose"),
        "{}",
        outcome.log
    );
    // Every line of the job's log reached the sink once, in order, over the passes.
    let streamed = lines.into_inner().unwrap();
    assert_eq!(streamed, outcome.log.lines().collect::<Vec<_>>());
    assert_eq!(outcome.log_offset, outcome.log.len() as u64);
    assert_eq!(installed_version(host, "tendhost-steady").await, "1.1");

    // Collecting again from a line boundary resumes there and finds the same outcome.
    let offset = outcome
        .log
        .find("Setting up tendhost-steady (1.1)")
        .expect("apt configured tendhost-steady");
    let resumed = Mutex::new(Vec::new());
    let sink = |_: Stream, line: &str| resumed.lock().unwrap().push(line.to_owned());
    let again = tendhost_pkg::collect(&exec, APT, &job_id, offset as u64, &opts, &sink)
        .await
        .unwrap();
    assert_eq!(again, outcome);
    let resumed = resumed.into_inner().unwrap();
    assert_eq!(resumed, outcome.log[offset..].lines().collect::<Vec<_>>());

    // A second launch of the same id starts nothing: with 1.2 published, the answer is the
    // finished job's outcome and 1.1 stays installed.
    fleet.publish(&Pkg::new("tendhost-steady", "1.2")).await;
    let second = tendhost_pkg::upgrade(&exec, APT, &job_id, &opts, &NoSink)
        .await
        .unwrap();
    assert_eq!(second, outcome);
    assert_eq!(installed_version(host, "tendhost-steady").await, "1.1");

    // The job directory is under the literal root; the `$(...)` in it never ran.
    host.exec_ok(&["test", "-d", &format!("{}/apt-streamed", opts.job_root)])
        .await;
    let pwned = host
        .sh("ls -d /pwned /root/pwned /var/tmp/pwned /tmp/pwned 2>/dev/null")
        .await;
    assert!(pwned.stdout.trim().is_empty(), "{}", pwned.stdout);
}
