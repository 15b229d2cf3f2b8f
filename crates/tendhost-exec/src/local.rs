//! [`LocalExecutor`]: runs commands on this machine with the same interface and rules as SSH
//! (output streaming, timeouts, the sudo rule).
//!
//! SSH lives in `ssh/`. Both run exactly the argument vector [`Cmd::argv`] builds.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt as _;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use crate::cmd::{Cmd, Privilege};
use crate::error::ExecError;
use crate::executor::{BoxFuture, DEFAULT_COMMAND_TIMEOUT, Executor, Run, http_error};
use crate::http::{HttpAnswer, HttpUrl};
use crate::output::{Capture, Output, OutputSink, Stream, pump};

/// What [`LocalExecutor`] needs to know about the local host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalTarget {
    /// The host's tendhost name.
    pub host_name: String,
    /// Whether privileged commands may run through `sudo -n` when tendhost is not root.
    pub sudo: bool,
    /// Default per-command timeout.
    pub command_timeout: Duration,
}

impl LocalTarget {
    /// A target named `host_name` with sudo allowed and the default timeout.
    pub fn new(host_name: impl Into<String>) -> Self {
        Self {
            host_name: host_name.into(),
            sudo: true,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }
}

/// Runs commands on this machine as the user tendhost runs as.
///
/// On timeout the command's whole process group is killed (`SIGKILL`); a command run through
/// sudo as a non-root tendhost cannot be killed that way and is left to sudo.
#[derive(Debug)]
pub struct LocalExecutor {
    target: LocalTarget,
    user: String,
    is_root: bool,
}

impl LocalExecutor {
    /// An executor for `target`; finds out whether this process runs as root.
    pub fn new(target: LocalTarget) -> Self {
        let uid = std::fs::metadata("/proc/self").map(|meta| meta.uid()).ok();
        let is_root = uid == Some(0);
        let user = if is_root {
            "root".to_owned()
        } else {
            std::env::var("USER").unwrap_or_else(|_| match uid {
                Some(uid) => format!("uid {uid}"),
                None => "unknown".to_owned(),
            })
        };
        Self {
            target,
            user,
            is_root,
        }
    }

    async fn run_inner(&self, cmd: &Cmd, sink: &dyn OutputSink) -> Result<Output, ExecError> {
        let run = Run::prepare(
            cmd,
            self.privilege(),
            &self.target.host_name,
            &self.user,
            self.target.command_timeout,
        )?;
        let started = Instant::now();
        let mut child = match spawn(&run.argv) {
            Ok(child) => child,
            Err(err) => {
                // Mirror what a shell (and so the SSH executor) reports.
                let exit_code = match err.kind() {
                    std::io::ErrorKind::NotFound => 127,
                    std::io::ErrorKind::PermissionDenied => 126,
                    _ => {
                        return Err(ExecError::Io {
                            host: run.host.to_owned(),
                            context: format!("cannot start `{}`", run.command_line),
                            source: err,
                        });
                    }
                };
                let stderr = format!("{}: {err}\n", run.argv[0].to_string_lossy());
                sink.line(Stream::Stderr, stderr.trim_end());
                let stderr = Capture::from_text(stderr);
                return run.finish(exit_code, Capture::default(), stderr, started.elapsed());
            }
        };

        let finished = tokio::time::timeout(run.timeout, wait_with_output(&mut child, sink)).await;
        let Ok(finished) = finished else {
            kill_group(&mut child).await;
            return Err(run.timed_out());
        };
        let (status, stdout, stderr) = finished.map_err(|source| ExecError::Io {
            host: run.host.to_owned(),
            context: format!("waiting for `{}`", run.command_line),
            source,
        })?;
        let duration = started.elapsed();
        match status.code() {
            Some(exit_code) => run.finish(exit_code, stdout, stderr, duration),
            None => Err(run.killed()),
        }
    }
}

impl Executor for LocalExecutor {
    fn host(&self) -> &str {
        &self.target.host_name
    }

    fn privilege(&self) -> Privilege {
        Privilege::of_login(self.is_root, self.target.sudo)
    }

    fn run<'a>(
        &'a self,
        cmd: &'a Cmd,
        sink: &'a dyn OutputSink,
    ) -> BoxFuture<'a, Result<Output, ExecError>> {
        Box::pin(self.run_inner(cmd, sink))
    }

    fn http_get<'a>(
        &'a self,
        url: &'a HttpUrl,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpAnswer, ExecError>> {
        Box::pin(async move {
            let host = &self.target.host_name;
            let exchange = async {
                let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
                    .await
                    .map_err(|err| format!("cannot connect: {err}"))?;
                crate::http::get(stream, url).await
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(reason)) => Err(http_error(host, url, reason)),
                Err(_) => Err(http_error(
                    host,
                    url,
                    format!("no answer within {}s", timeout.as_secs()),
                )),
            }
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

fn spawn(argv: &[OsString]) -> std::io::Result<Child> {
    Command::new(&argv[0])
        .args(&argv[1..])
        // Maintainer scripts run as root here: they never see the daemon's SSH key.
        .env_remove(crate::ssh::SSH_KEY_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
}

async fn wait_with_output(
    child: &mut Child,
    sink: &dyn OutputSink,
) -> std::io::Result<(ExitStatus, Capture, Capture)> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (stdout, stderr) = tokio::join!(
        pump(stdout, Stream::Stdout, sink),
        pump(stderr, Stream::Stderr, sink)
    );
    let status = child.wait().await?;
    Ok((status, stdout, stderr))
}

/// Kills the child's process group (the child leads it, see `process_group(0)`), then reaps it.
async fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
}
