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
use crate::output::{Output, OutputSink};

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

    /// Releases what the executor holds (the SSH master connection). Later `run` calls
    /// reconnect, so this is also safe to call while idle; tendhost calls it at shutdown.
    fn close(&self) -> BoxFuture<'_, ()>;

    /// The exact line `cmd` runs as on this host (for dry runs and logs).
    fn display(&self, cmd: &Cmd) -> String {
        cmd.display_as(self.privilege())
    }
}
