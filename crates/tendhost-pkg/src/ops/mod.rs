//! The async operations: build a command (`crate::command`), run it through the host's
//! `tendhost_exec::Executor`, parse its output (`crate::parse`). Check and dry run live in
//! `ops::check`, the detached upgrade and its collection in `ops::job`, reboot state, boot
//! identity, reboot, detection and inventory in `ops::host`.

pub mod check;
pub mod host;
pub mod job;
pub mod services;

use tendhost_exec::{Cmd, ExecError, Executor, NoSink, Output};

use crate::error::PkgError;

/// Runs `cmd` without streaming; any exit code is `Ok`.
pub(crate) async fn run(exec: &dyn Executor, cmd: &Cmd) -> Result<Output, PkgError> {
    Ok(exec.run(cmd, &NoSink).await?)
}

/// Runs `cmd` and requires exit code 0.
pub(crate) async fn run_ok(exec: &dyn Executor, cmd: &Cmd) -> Result<Output, PkgError> {
    let output = run(exec, cmd).await?;
    if output.success() {
        Ok(output)
    } else {
        Err(command_failed(&output))
    }
}

pub(crate) fn command_failed(output: &Output) -> PkgError {
    PkgError::CommandFailed {
        host: output.host.clone(),
        command: output.command.clone(),
        code: output.exit_code,
        detail: output.stderr_tail(),
    }
}

/// Errors after which the command's effect on the host is unknown or the host may come back:
/// worth retrying an idempotent command within the reconnect window.
pub(crate) fn is_retryable(err: &ExecError) -> bool {
    err.is_connection_failure() || matches!(err, ExecError::CommandTimedOut { .. })
}
