//! The [`Executor`] trait: the one interface through which the rest of tendhost runs commands on
//! a host, whether over SSH or on this machine.
//!
//! The implementations live in `ssh/` ([`crate::SshExecutor`]) and `local.rs`
//! ([`crate::LocalExecutor`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::cmd::{Cmd, Privilege};
use crate::error::ExecError;
use crate::http::{HttpAnswer, HttpUrl};
use crate::output::{Capture, Output, OutputSink};
use crate::quote::quote_line;
use crate::sudo::sudo_failure;

/// The default per-command timeout of both executors.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A boxed, `Send` future, so [`Executor`] can be used as `Arc<dyn Executor>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs commands on one host.
///
/// Implementations are cheap to share (`Arc<dyn Executor>`) and safe to call concurrently; SSH
/// commands for one host share one connection.
pub trait Executor: Send + Sync {
    /// The host's tendhost name (used in every error message).
    fn host(&self) -> &str;

    /// How privileged commands run on this host (as root, through `sudo -n`, or refused).
    fn privilege(&self) -> Privilege;

    /// Runs `cmd` to its end, streaming output lines to `sink` while it runs.
    ///
    /// Returns `Ok` for any exit code (see [`Output::ensure_success`]). Errors are about not being
    /// able to run it or to see it finish: connecting, sudo wanting a password, the timeout
    /// (`cmd`'s own, else the executor's), the connection breaking mid-command.
    /// stdin is `/dev/null`; no TTY is allocated. `run` waits until stdout and stderr are closed,
    /// so a command that leaves a process in the background must redirect that process's
    /// output (`nohup job >/dev/null 2>&1 &`), or the run lasts as long as the process.
    fn run<'a>(
        &'a self,
        cmd: &'a Cmd,
        sink: &'a dyn OutputSink,
    ) -> BoxFuture<'a, Result<Output, ExecError>>;

    /// `GET url` (an `http://` URL as the host sees it): over SSH through a connection the
    /// host's master forwards to that address, so the host needs no HTTP client; locally
    /// directly. Any status is `Ok`; no answer within `timeout` is [`ExecError::Http`].
    fn http_get<'a>(
        &'a self,
        url: &'a HttpUrl,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<HttpAnswer, ExecError>>;

    /// Releases what the executor holds (the SSH master connection). Later `run` calls
    /// reconnect, so this is also safe to call while idle; tendhost calls it at shutdown.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// The exact line `cmd` runs as on this host (for dry runs and logs).
    fn display(&self, cmd: &Cmd) -> String {
        cmd.display_as(self.privilege())
    }
}

/// [`ExecError::Http`] for `url` on `host`.
pub(crate) fn http_error(host: &str, url: &HttpUrl, reason: impl Into<String>) -> ExecError {
    ExecError::Http {
        host: host.to_owned(),
        url: url.to_string(),
        reason: reason.into(),
    }
}

/// One command prepared for one host, shared by both executors: what runs, how it is shown,
/// and how its result becomes an [`Output`] (or a sudo error).
pub(crate) struct Run<'a> {
    pub(crate) host: &'a str,
    pub(crate) user: &'a str,
    /// The exact argument vector ([`Cmd::argv`]).
    pub(crate) argv: Vec<std::ffi::OsString>,
    /// `argv`, quoted: what SSH sends and what errors show.
    pub(crate) command_line: String,
    pub(crate) timeout: Duration,
}

impl<'a> Run<'a> {
    pub(crate) fn prepare(
        cmd: &Cmd,
        privilege: Privilege,
        host: &'a str,
        user: &'a str,
        default_timeout: Duration,
    ) -> Result<Self, ExecError> {
        let argv = cmd
            .argv(privilege)
            .map_err(|problem| ExecError::from_cmd_problem(problem, host, user, cmd))?;
        Ok(Self {
            host,
            user,
            command_line: quote_line(&argv),
            argv,
            timeout: cmd.timeout_override().unwrap_or(default_timeout),
        })
    }

    pub(crate) fn timed_out(self) -> ExecError {
        ExecError::CommandTimedOut {
            host: self.host.to_owned(),
            command: self.command_line,
            after: self.timeout,
        }
    }

    pub(crate) fn killed(self) -> ExecError {
        ExecError::Killed {
            host: self.host.to_owned(),
            command: self.command_line,
        }
    }

    /// The result of a command that exited with `exit_code`, unless sudo itself refused.
    pub(crate) fn finish(
        self,
        exit_code: i32,
        stdout: Capture,
        stderr: Capture,
        duration: Duration,
    ) -> Result<Output, ExecError> {
        let used_sudo = self.argv.first().is_some_and(|first| first == "sudo");
        if let Some(err) = sudo_failure(used_sudo, exit_code, &stderr.text, self.host, self.user) {
            return Err(err);
        }
        Ok(Output {
            host: self.host.to_owned(),
            command: self.command_line,
            exit_code,
            stdout: stdout.text,
            stderr: stderr.text,
            duration,
        })
    }
}
