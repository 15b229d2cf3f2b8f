//! The upgrade as a detached job on the host: [`upgrade`] launches it and collects it;
//! [`collect`] follows a job's log from a byte offset through dropped connections (for up to
//! the reconnect window) and reads its outcome from the job directory. The same `collect`
//! serves a live upgrade, a reconnect, a daemon restart and a retry.

use std::sync::Mutex;
use std::time::Duration;

use tendhost_exec::{ExecError, Executor, NoSink, OutputSink, Stream};
use tokio::time::Instant;

use crate::command::job as job_cmd;
use crate::error::PkgError;
use crate::ops::{command_failed, is_retryable, run_ok};
use crate::options::{JobId, PkgOptions};
use crate::parse::job::{self, JobState};
use crate::selection::Target;
use crate::types::{PackageManager, UpgradeOutcome, UpgradeState};

/// Launches the upgrade as job `job_id` on the host, detached from the connection, and
/// collects it (streaming its log lines to `sink`).
///
/// Launching is idempotent: if a job directory with this id exists, nothing new starts and the
/// existing job is collected. A host that cannot be reached at all is an error; a connection
/// lost while launching is retried within the reconnect window.
pub async fn upgrade(
    exec: &dyn Executor,
    manager: PackageManager,
    job_id: &JobId,
    opts: &PkgOptions,
    sink: &dyn OutputSink,
) -> Result<UpgradeOutcome, PkgError> {
    upgrade_selected(exec, manager, job_id, opts, &Target::everything(), sink).await
}

/// [`upgrade`] of a resolved selection ([`Target::resolve`] over the host's last check).
pub async fn upgrade_selected(
    exec: &dyn Executor,
    manager: PackageManager,
    job_id: &JobId,
    opts: &PkgOptions,
    target: &Target,
    sink: &dyn OutputSink,
) -> Result<UpgradeOutcome, PkgError> {
    opts.validate()?;
    let script = job_cmd::run_script_for(manager, job_id, opts, target);
    let launch = job_cmd::launch(job_id, opts, &script);
    let started = Instant::now();
    let mut maybe_started = false;
    loop {
        match exec.run(&launch, &NoSink).await {
            Ok(output) if output.success() => {
                tracing::info!(host = exec.host(), %job_id, how = output.stdout.trim(), "upgrade job launched");
                break;
            }
            Ok(output) => return Err(command_failed(&output)),
            // Nothing can have started: the host is simply not reachable.
            Err(err) if !maybe_started && err.is_connection_failure() && !is_ambiguous(&err) => {
                return Err(err.into());
            }
            Err(err) if is_retryable(&err) => {
                maybe_started |= is_ambiguous(&err);
                if started.elapsed() >= opts.reconnect_window {
                    return Ok(lost(String::new(), 0, started.elapsed()));
                }
                tracing::warn!(host = exec.host(), %job_id, error = %err, "launch not confirmed; retrying");
                tokio::time::sleep(opts.retry_interval).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    collect(exec, manager, job_id, 0, opts, sink).await
}

/// Follows job `job_id` from byte `from_offset` of its log (lines go to `sink`) until it has
/// finished, then reads its outcome. While the host is unreachable it keeps retrying for
/// `opts.reconnect_window`; past that the outcome is [`UpgradeState::Lost`] with the offset
/// reached, and a later `collect` picks up from there.
pub async fn collect(
    exec: &dyn Executor,
    manager: PackageManager,
    job_id: &JobId,
    from_offset: u64,
    opts: &PkgOptions,
    sink: &dyn OutputSink,
) -> Result<UpgradeOutcome, PkgError> {
    opts.validate()?;
    let host = exec.host();
    let began = Instant::now();
    let mut offset = from_offset;
    let mut seen = String::new();
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let pass = job_cmd::stream(job_id, opts, offset);
        let follower = LogFollower::new(sink);
        match exec.run(&pass, &follower).await {
            Ok(output) => {
                unreachable_since = None;
                if !output.success() {
                    return Err(command_failed(&output));
                }
                let status = job::parse_stream_status(&output.stderr)
                    .map_err(|e| PkgError::parse(host, e))?;
                seen.push_str(&follower.into_text());
                offset = status.offset;
                match status.state {
                    JobState::Missing => {
                        return Err(PkgError::JobNotFound {
                            host: host.to_owned(),
                            job_id: job_id.to_string(),
                            dir: opts.job_dir(job_id),
                        });
                    }
                    JobState::Running => {}
                    JobState::Finished | JobState::Died => break,
                }
            }
            Err(err) if is_retryable(&err) => {
                let (bytes, text) = follower.into_parts();
                offset += bytes;
                seen.push_str(&text);
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= opts.reconnect_window {
                    tracing::warn!(host, %job_id, error = %err, "host unreachable past the reconnect window; job lost");
                    return Ok(lost(seen, offset, began.elapsed()));
                }
                tracing::info!(host, %job_id, error = %err, offset, "connection lost while following the job; reconnecting");
                tokio::time::sleep(opts.retry_interval).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    let summary_cmd = job_cmd::summary(job_id, opts);
    let summary = loop {
        match run_ok(exec, &summary_cmd).await {
            Ok(output) => break output,
            Err(PkgError::Exec(err)) if is_retryable(&err) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= opts.reconnect_window {
                    return Ok(lost(seen, offset, began.elapsed()));
                }
                tokio::time::sleep(opts.retry_interval).await;
            }
            Err(err) => return Err(err),
        }
    };
    let summary = job::parse_summary(&summary.stdout).map_err(|e| PkgError::parse(host, e))?;
    let mut log = summary.log.clone();
    let upgraded = job::upgraded_packages(&summary.before, &summary.after);
    let failed = job::failed_packages(manager, &log, &summary.before, &summary.after);
    let state = if let Some(code) = summary.exit_code {
        job::classify(manager, code, &log, &upgraded, &failed)
    } else {
        log.push_str(
            "tendhost: the job's process ended without writing an exit code \
             (the host rebooted or the job was killed)\n",
        );
        UpgradeState::Failed
    };
    Ok(UpgradeOutcome {
        state,
        upgraded,
        failed,
        exit_code: summary.exit_code,
        duration: summary.duration().unwrap_or_else(|| began.elapsed()),
        repaired_dpkg: job::repaired_dpkg(&log),
        log_offset: summary.log.len() as u64,
        log,
    })
}

/// Removes job `job_id`'s directory from the host (once its outcome is stored).
pub async fn remove_job(
    exec: &dyn Executor,
    job_id: &JobId,
    opts: &PkgOptions,
) -> Result<(), PkgError> {
    opts.validate()?;
    run_ok(exec, &job_cmd::remove(job_id, opts)).await?;
    Ok(())
}

/// The command may have reached the host before the connection broke.
fn is_ambiguous(err: &ExecError) -> bool {
    matches!(
        err,
        ExecError::ConnectionLost { .. } | ExecError::CommandTimedOut { .. }
    )
}

fn lost(log: String, offset: u64, waited: Duration) -> UpgradeOutcome {
    UpgradeOutcome {
        state: UpgradeState::Lost,
        upgraded: Vec::new(),
        failed: Vec::new(),
        exit_code: None,
        duration: waited,
        log,
        log_offset: offset,
        repaired_dpkg: false,
    }
}

/// Forwards log lines to the caller's sink and counts the bytes they stand for, so a pass cut
/// short by a dropped connection still tells where to resume. The stream script makes the log
/// ASCII with `\n` line ends, so a line of `n` bytes stands for `n + 1` bytes of the file.
struct LogFollower<'a> {
    sink: &'a dyn OutputSink,
    seen: Mutex<(u64, String)>,
}

impl<'a> LogFollower<'a> {
    fn new(sink: &'a dyn OutputSink) -> Self {
        Self {
            sink,
            seen: Mutex::new((0, String::new())),
        }
    }

    fn into_parts(self) -> (u64, String) {
        self.seen
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn into_text(self) -> String {
        self.into_parts().1
    }
}

impl OutputSink for LogFollower<'_> {
    fn line(&self, stream: Stream, line: &str) {
        // stderr carries only the pass's status line.
        if stream != Stream::Stdout {
            return;
        }
        {
            let mut seen = self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.0 += line.len() as u64 + 1;
            seen.1.push_str(line);
            seen.1.push('\n');
        }
        self.sink.line(Stream::Stdout, line);
    }
}

#[cfg(test)]
mod tests {
    //! Unit tests of the launch/follow/summary loop on this machine through `LocalExecutor` (a
    //! real shell, real files, a real detached process). The job scripts here are stand-ins:
    //! they print made-up lines and write the job files themselves; no package manager runs.
    //! The real path, real apt on a test-fleet host over SSH, is tested by
    //! `tests/it/pkg_job.rs` `apt_job_streams_while_running_and_a_second_launch_starts_nothing`
    //! (streaming while it runs, short passes, quoting of the job root, a failed postinst,
    //! collecting again from an offset, a second launch of the same id) and the upgrade tests
    //! of `tests/it/pkg_apt.rs` and `tests/it/pkg_dnf.rs`.

    use std::sync::Mutex;
    use std::time::Duration;

    use tendhost_exec::{LocalExecutor, LocalTarget, NoSink, Stream};

    use crate::command::job::{JobScript, launch};
    use crate::error::PkgError;
    use crate::ops::job::collect;
    use crate::options::{JobId, PkgOptions};
    use crate::types::{PackageManager, UpgradeState, UpgradedPackage};

    fn setup() -> (LocalExecutor, tempfile::TempDir, PkgOptions) {
        let exec = LocalExecutor::new(LocalTarget::new("local"));
        let dir = tempfile::tempdir().unwrap();
        let opts = PkgOptions {
            // A job root that needs quoting everywhere it appears.
            job_root: format!("{}/it's $(touch pwned) jobs", dir.path().display()),
            stream_pass: Duration::from_secs(1),
            retry_interval: Duration::from_millis(100),
            ..PkgOptions::default()
        };
        (exec, dir, opts)
    }

    fn script(body: &str, opts: &PkgOptions, job_id: &JobId) -> JobScript {
        JobScript {
            script: format!(
                "d={}\necho $$ > \"$d/pid\"\nexec >>\"$d/log\" 2>&1 </dev/null\n{body}",
                tendhost_exec::quote(opts.job_dir(job_id))
            ),
            repair: None,
            commands: Vec::new(),
        }
    }

    async fn start(exec: &LocalExecutor, opts: &PkgOptions, job_id: &JobId, body: &str) -> String {
        let output = tendhost_exec::Executor::run(
            exec,
            &launch(job_id, opts, &script(body, opts, job_id)),
            &NoSink,
        )
        .await
        .unwrap();
        assert!(output.success(), "{output:?}");
        output.stdout.trim().to_owned()
    }

    /// A stand-in job, not apt's output: made-up lines (one with non-ASCII bytes and a CR) and
    /// hand-made snapshots in the job-file format, ending with exit code 1.
    const STAND_IN_JOB: &str = "\
echo 1000 > \"$d/started\"
printf 'x\\tall\\t1\\tii \\n' > \"$d/before\"
echo 'line 1'
printf 'caf\\303\\251 \\r\\n'
sleep 2
echo 'Errors were encountered while processing:'
echo ' broken'
printf 'x\\tall\\t2\\tii \\nbroken\\tall\\t5\\tiF \\n' > \"$d/after\"
echo 3500 > \"$d/ended\"
echo 1 > \"$d/exit.tmp\"; mv \"$d/exit.tmp\" \"$d/exit\"
";

    #[tokio::test]
    async fn follow_loop_streams_across_passes_and_collects_the_outcome() {
        let (exec, dir, opts) = setup();
        let job_id = JobId::new("job-1").unwrap();
        assert_eq!(
            start(&exec, &opts, &job_id, STAND_IN_JOB).await,
            "tendhost-launch setsid"
        );
        let lines = Mutex::new(Vec::new());
        let sink = |stream: Stream, line: &str| {
            assert_eq!(stream, Stream::Stdout);
            lines.lock().unwrap().push(line.to_owned());
        };
        let outcome = collect(&exec, PackageManager::Apt, &job_id, 0, &opts, &sink)
            .await
            .unwrap();
        let expected_log = "line 1\ncaf?? \n\nErrors were encountered while processing:\n broken\n";
        assert_eq!(
            *lines.lock().unwrap(),
            [
                "line 1",
                "caf?? ",
                "",
                "Errors were encountered while processing:",
                " broken"
            ]
        );
        assert_eq!(outcome.log, expected_log);
        assert_eq!(outcome.log_offset, expected_log.len() as u64);
        assert_eq!(outcome.state, UpgradeState::Failed);
        assert_eq!(outcome.exit_code, Some(1));
        assert_eq!(outcome.failed, ["broken"]);
        assert_eq!(
            outcome.upgraded,
            [UpgradedPackage {
                name: "x".into(),
                from: Some("1".into()),
                to: "2".into()
            }]
        );
        assert_eq!(outcome.duration, Duration::from_millis(2500));
        assert!(!outcome.repaired_dpkg);

        // Collecting again (restart recovery, retry) resumes from an offset and finds the same
        // outcome; a second launch of the same id starts nothing.
        assert_eq!(
            start(&exec, &opts, &job_id, "echo 9 > \"$d/exit\"\n").await,
            "tendhost-launch existing"
        );
        let resumed = Mutex::new(Vec::new());
        let sink = |_: Stream, line: &str| resumed.lock().unwrap().push(line.to_owned());
        let again = collect(&exec, PackageManager::Apt, &job_id, 7, &opts, &sink)
            .await
            .unwrap();
        assert_eq!(resumed.lock().unwrap()[0], "caf?? ");
        assert_eq!(again, outcome);
        assert!(!dir.path().join("pwned").exists());
        assert!(!std::path::Path::new("pwned").exists());
    }

    #[tokio::test]
    async fn a_job_that_dies_without_exit_code_fails() {
        let (exec, _dir, opts) = setup();
        let job_id = JobId::new("dies").unwrap();
        start(&exec, &opts, &job_id, "echo 'working'\nsleep 1\nexit 0\n").await;
        let outcome = collect(&exec, PackageManager::Dnf, &job_id, 0, &opts, &NoSink)
            .await
            .unwrap();
        assert_eq!(outcome.state, UpgradeState::Failed);
        assert_eq!(outcome.exit_code, None);
        assert!(outcome.log.starts_with("working\n"), "{}", outcome.log);
        assert!(
            outcome.log.contains("without writing an exit code"),
            "{}",
            outcome.log
        );
    }

    #[tokio::test]
    async fn a_missing_job_is_a_clear_error() {
        let (exec, _dir, opts) = setup();
        let err = collect(
            &exec,
            PackageManager::Apt,
            &JobId::new("nope").unwrap(),
            0,
            &opts,
            &NoSink,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, PkgError::JobNotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("no upgrade job nope on local"),
            "{err}"
        );
    }
}
