//! The upgrade as a detached job on the host: [`upgrade`] launches it and collects it;
//! [`collect`] follows a job's log from a byte offset through dropped connections (for up to
//! the reconnect window) and reads its outcome from the job directory. The same `collect`
//! serves a live upgrade, a reconnect, a daemon restart and a retry. What is kept of the log
//! is bounded (`LogTail`, the summary's tail read): every line still reaches the sink.
//! [`retire_jobs`] removes job directories whose outcome is stored, keeping the newest few.

use std::sync::Mutex;
use std::time::Duration;

use tendhost_exec::{ExecError, Executor, NoSink, OutputSink, Stream};
use tokio::time::Instant;

use crate::command::job as job_cmd;
use crate::error::PkgError;
use crate::ops::{command_failed, is_retryable, run_ok};
use crate::options::{JobId, PkgOptions};
use crate::parse::job::{self, JobState, LOG_HEAD_SKIPPED, MAX_COLLECTED_LOG};
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
    let mut seen = LogTail::default();
    let mut unreachable_since: Option<Instant> = None;
    // The summary the last pass printed once the job had ended.
    let summary_text = loop {
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
                seen.append(&follower.into_parts().1);
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
                    JobState::Finished | JobState::Died => {
                        break job::stream_summary(&output.stderr).map(str::to_owned);
                    }
                }
            }
            Err(err) if is_retryable(&err) => {
                let (bytes, tail) = follower.into_parts();
                offset += bytes;
                seen.append(&tail);
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= opts.reconnect_window {
                    tracing::warn!(host, %job_id, error = %err, "host unreachable past the reconnect window; job lost");
                    return Ok(lost(seen.into_text(), offset, began.elapsed()));
                }
                tracing::info!(host, %job_id, error = %err, offset, "connection lost while following the job; reconnecting");
                tokio::time::sleep(opts.retry_interval).await;
            }
            Err(err) => return Err(err.into()),
        }
    };
    let summary_cmd = job_cmd::summary(job_id, opts);
    let summary = loop {
        if let Some(text) = &summary_text {
            break text.clone();
        }
        match run_ok(exec, &summary_cmd).await {
            Ok(output) => break output.stdout,
            Err(PkgError::Exec(err)) if is_retryable(&err) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= opts.reconnect_window {
                    return Ok(lost(seen.into_text(), offset, began.elapsed()));
                }
                tokio::time::sleep(opts.retry_interval).await;
            }
            Err(err) => return Err(err),
        }
    };
    let summary = job::parse_summary(&summary).map_err(|e| PkgError::parse(host, e))?;
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
        log_offset: summary.log_size.unwrap_or(summary.log.len() as u64),
        log,
        closing_look: summary.look,
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

/// What [`retire_jobs`] left on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retired {
    /// Collected job directories kept (at most `keep`).
    pub kept: usize,
    pub removed: usize,
}

/// Marks the directories of `collected` jobs (their outcome is stored) and removes all marked
/// job directories on the host but the newest `keep`. Directories of jobs whose outcome was
/// never collected stay, so a later `collect` still finds them.
pub async fn retire_jobs(
    exec: &dyn Executor,
    collected: &[JobId],
    opts: &PkgOptions,
    keep: usize,
) -> Result<Retired, PkgError> {
    opts.validate()?;
    let output = run_ok(exec, &job_cmd::retire(collected, opts, keep)).await?;
    let count = |key: &str| {
        output
            .stdout
            .split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.parse().ok())
    };
    match (count("kept="), count("removed=")) {
        (Some(kept), Some(removed)) => Ok(Retired { kept, removed }),
        _ => Err(PkgError::parse(
            exec.host(),
            crate::parse::ParseError::new(
                "the job directory cleanup's answer",
                0,
                format!(
                    "expected `tendhost-retire kept=K removed=R`, got {:?}",
                    output.stdout.chars().take(200).collect::<String>()
                ),
            ),
        )),
    }
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
        closing_look: None,
    }
}

/// The newest [`MAX_COLLECTED_LOG`] bytes of a log, whole lines, and how many bytes before
/// them were let go.
#[derive(Debug, Default)]
struct LogTail {
    text: String,
    n_dropped: u64,
}

impl LogTail {
    fn push_line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        // Trimmed in steps, so each byte is moved a bounded number of times.
        if self.text.len() > 2 * MAX_COLLECTED_LOG {
            self.trim();
        }
    }

    fn append(&mut self, other: &LogTail) {
        self.n_dropped += other.n_dropped;
        for line in other.text.lines() {
            self.push_line(line);
        }
    }

    fn trim(&mut self) {
        if self.text.len() <= MAX_COLLECTED_LOG {
            return;
        }
        let excess = self.text.len() - MAX_COLLECTED_LOG;
        let cut = self.text[excess..]
            .find('\n')
            .map_or(self.text.len(), |idx| excess + idx + 1);
        self.text.drain(..cut);
        self.n_dropped += cut as u64;
    }

    /// The tail, after a marker line when bytes were let go.
    fn into_text(mut self) -> String {
        self.trim();
        if self.n_dropped == 0 {
            return self.text;
        }
        format!(
            "{LOG_HEAD_SKIPPED} the first {} bytes seen were not kept]\n{}",
            self.n_dropped, self.text
        )
    }
}

/// Forwards log lines to the caller's sink and counts the bytes they stand for, so a pass cut
/// short by a dropped connection still tells where to resume. The stream script makes the log
/// ASCII with `\n` line ends, so a line of `n` bytes stands for `n + 1` bytes of the file.
struct LogFollower<'a> {
    sink: &'a dyn OutputSink,
    seen: Mutex<(u64, LogTail)>,
}

impl<'a> LogFollower<'a> {
    fn new(sink: &'a dyn OutputSink) -> Self {
        Self {
            sink,
            seen: Mutex::new((0, LogTail::default())),
        }
    }

    fn into_parts(self) -> (u64, LogTail) {
        self.seen
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            seen.1.push_line(line);
        }
        self.sink.line(Stream::Stdout, line);
    }

    fn ready(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.sink.ready()
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
    use crate::ops::job::{LogTail, collect};
    use crate::options::{JobId, PkgOptions};
    use crate::parse::job::{LOG_HEAD_SKIPPED, MAX_COLLECTED_LOG};
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

    /// Only directories marked collected are removed, oldest first, down to `keep`; the job
    /// root and a job directory are private.
    #[tokio::test]
    async fn retire_keeps_the_newest_collected_and_every_uncollected_directory() {
        use std::os::unix::fs::PermissionsExt as _;

        let (exec, dir, opts) = setup();
        let ids: Vec<JobId> = (1..=4)
            .map(|i| JobId::new(format!("job-{i}")).unwrap())
            .collect();
        for job_id in &ids {
            start(&exec, &opts, job_id, "echo 0 > \"$d/exit\"\n").await;
        }
        let root = std::path::Path::new(&opts.job_root);
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(root), 0o700);
        assert_eq!(mode(&root.join("job-1")), 0o700);
        assert_eq!(mode(&root.join("job-1/run.sh")), 0o600);
        // job-4 is not collected: it stays whatever `keep` says.
        let retired = super::retire_jobs(&exec, &ids[..3], &opts, 1)
            .await
            .unwrap();
        assert_eq!(
            retired,
            super::Retired {
                kept: 1,
                removed: 2
            }
        );
        let mut left: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["job-3", "job-4"]);
        let retired = super::retire_jobs(&exec, &ids[3..], &opts, 0)
            .await
            .unwrap();
        assert_eq!(
            retired,
            super::Retired {
                kept: 0,
                removed: 2
            }
        );
        assert_eq!(std::fs::read_dir(root).unwrap().count(), 0);
        // Nothing marked is fine too (job-1 is gone: marking it does nothing).
        let retired = super::retire_jobs(&exec, &ids[..1], &opts, 5)
            .await
            .unwrap();
        assert_eq!(
            retired,
            super::Retired {
                kept: 0,
                removed: 0
            }
        );
        assert!(!dir.path().join("pwned").exists());
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

    /// A job whose log is far bigger than what is kept: the outcome holds the log's tail
    /// after a marker line, its offset is the whole file's size, and every line still reached
    /// the sink.
    #[tokio::test]
    async fn a_huge_log_is_collected_as_a_marked_tail() {
        let (exec, _dir, opts) = setup();
        let job_id = JobId::new("huge").unwrap();
        let n_lines = 3 * MAX_COLLECTED_LOG / 10;
        start(
            &exec,
            &opts,
            &job_id,
            &format!(
                "seq -w 1 {n_lines} | sed 's/$/ xx/'\n\
                 echo 0 > \"$d/exit.tmp\"; mv \"$d/exit.tmp\" \"$d/exit\"\n"
            ),
        )
        .await;
        let n_seen = std::sync::atomic::AtomicUsize::new(0);
        let sink = |_: Stream, _: &str| {
            n_seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let outcome = collect(&exec, PackageManager::Apt, &job_id, 0, &opts, &sink)
            .await
            .unwrap();
        assert_eq!(n_seen.into_inner(), n_lines);
        let file_size = (n_lines * 10) as u64;
        assert_eq!(outcome.log_offset, file_size);
        assert!(
            outcome.log.len() <= MAX_COLLECTED_LOG + 200,
            "{} bytes kept",
            outcome.log.len()
        );
        let first = outcome.log.lines().next().unwrap();
        assert!(first.starts_with(LOG_HEAD_SKIPPED), "{first}");
        let second = outcome.log.lines().nth(1).unwrap();
        assert_eq!(
            second.len(),
            9,
            "the tail starts at a whole line: {second:?}"
        );
        assert_eq!(outcome.log.lines().last().unwrap(), format!("{n_lines} xx"));
        assert_eq!(outcome.state, UpgradeState::Succeeded);
    }

    /// The kept tail of what was followed stays within its bound, whole lines after a marker.
    #[test]
    fn the_followed_tail_is_bounded() {
        let mut tail = LogTail::default();
        for idx in 0..1_000_000 {
            tail.push_line(&format!("{idx:07} and some more text"));
            assert!(tail.text.len() <= 2 * MAX_COLLECTED_LOG + 64);
        }
        let text = tail.into_text();
        assert!(text.len() <= MAX_COLLECTED_LOG + 100);
        assert!(text.starts_with(LOG_HEAD_SKIPPED));
        assert!(text.ends_with("0999999 and some more text\n"));
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
