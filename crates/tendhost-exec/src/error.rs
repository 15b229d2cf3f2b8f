//! [`ExecError`]: every way running a command on a host can fail, one variant per cause the host
//! actor must tell apart. Every message names the host.
//!
//! Recognising these causes in `ssh`'s own messages lives in `ssh/diagnose.rs`.

use std::path::PathBuf;
use std::time::Duration;

use crate::cmd::{Cmd, CmdProblem};

/// Why a command could not be run, or did not finish, on a host.
///
/// `host` is always the host's tendhost name; `addr` is the address as `ssh` saw it
/// (`addr:port`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The host's address does not resolve.
    #[error("cannot resolve the address of {host} ({addr}): {detail}")]
    CannotResolve {
        host: String,
        addr: String,
        detail: String,
    },

    /// Nothing listens on the SSH port (or a firewall rejects it).
    #[error("connection to {host} ({addr}) refused")]
    ConnectionRefused { host: String, addr: String },

    /// No route to the host (network down, host address not on any network).
    #[error("{host} ({addr}) is unreachable: {detail}")]
    Unreachable {
        host: String,
        addr: String,
        detail: String,
    },

    /// Connecting (TCP, SSH handshake and authentication together) did not finish within the
    /// connect timeout: the host is down, paused, or a firewall drops packets.
    #[error("connecting to {host} ({addr}) timed out after {}", secs(*.after))]
    ConnectTimeout {
        host: String,
        addr: String,
        after: Duration,
    },

    /// The server refused every key offered.
    #[error("authentication as {user:?} failed on {host} ({addr}): {detail}")]
    AuthFailed {
        host: String,
        addr: String,
        user: String,
        detail: String,
    },

    /// The host's key is not in tendhost's known_hosts and the policy is `strict`.
    #[error(
        "the host key of {host} ({addr}) is not known{} and known_hosts policy is strict: \
         after checking the fingerprint, pin it (host_key_sha256), add the host's key to {} \
         or set the policy to accept-new",
        offered.as_ref().map(|fp| format!(" (it offers {fp})")).unwrap_or_default(),
        known_hosts.display()
    )]
    HostKeyUnknown {
        host: String,
        addr: String,
        /// The offered key's fingerprint, when it could be read (`ED25519 SHA256:...`).
        offered: Option<String>,
        known_hosts: PathBuf,
    },

    /// The host offered a different key than the one recorded for it. Never accepted silently.
    #[error(
        "the host key of {host} ({addr}) has CHANGED: known_hosts has {known}, the host offers \
         {offered}. If the change is expected (host reinstalled), remove the old entry from {} \
         (ssh-keygen -R); otherwise someone may be intercepting the connection",
        known_hosts.display()
    )]
    HostKeyChanged {
        host: String,
        addr: String,
        /// Fingerprint of the recorded key.
        known: String,
        /// Fingerprint of the key the host offered.
        offered: String,
        known_hosts: PathBuf,
    },

    /// The host offered no key with the pinned fingerprint (`host_key_sha256`).
    #[error(
        "the host key of {host} ({addr}) does not match its pinned host_key_sha256 {pinned}: the \
         host offers {offered}. If the host was reinstalled, pin the new fingerprint after \
         checking it; otherwise someone may be intercepting the connection"
    )]
    HostKeyMismatch {
        host: String,
        addr: String,
        pinned: String,
        /// Fingerprints of the keys the host offered (`ED25519 SHA256:...`, comma-separated).
        offered: String,
    },

    /// Connecting failed, cause withheld: refused, timed out, unreachable and unresolvable all
    /// read the same for hosts registered through the API (the cause is in the daemon's log).
    #[error("cannot connect to {host} ({addr})")]
    CannotConnect { host: String, addr: String },

    /// Connecting failed for another reason; `detail` is ssh's own message.
    #[error("cannot connect to {host} ({addr}): {detail}")]
    ConnectFailed {
        host: String,
        addr: String,
        detail: String,
    },

    /// The connection broke while a command ran (network cut, host died); the command's outcome
    /// is unknown.
    #[error(
        "connection to {host} lost while running `{}`: {detail}",
        brief(command)
    )]
    ConnectionLost {
        host: String,
        command: String,
        detail: String,
    },

    /// `sudo -n` wanted a password.
    #[error(
        "sudo requires a password on {host} (user {user:?}); allow the needed commands without a password (NOPASSWD) or log in as root"
    )]
    SudoPasswordRequired { host: String, user: String },

    /// sudo refused or is missing (not in sudoers, command not allowed, sudo not installed).
    #[error("sudo failed on {host} (user {user:?}): {detail}")]
    SudoFailed {
        host: String,
        user: String,
        detail: String,
    },

    /// A privileged command on a host whose user is not root and where sudo is disabled.
    #[error(
        "`{}` needs root on {host}, but user {user:?} is not root and sudo is disabled for this host",
        brief(command)
    )]
    PrivilegeUnavailable {
        host: String,
        user: String,
        command: String,
    },

    /// The command did not finish within its timeout. Over SSH the remote process may still run
    /// (the SSH multiplexing protocol cannot signal it); locally it is killed.
    #[error("`{}` timed out on {host} after {}", brief(command), secs(*.after))]
    CommandTimedOut {
        host: String,
        command: String,
        after: Duration,
    },

    /// The command ran and exited with a code other than 0 (only from
    /// [`crate::Output::ensure_success`]; `run` itself returns any exit code as `Ok`).
    #[error(
        "`{}` exited with code {code} on {host}: {stderr_tail}",
        brief(command)
    )]
    NonZeroExit {
        host: String,
        command: String,
        code: i32,
        /// The last lines of stderr (or stdout when stderr was empty).
        stderr_tail: String,
    },

    /// The command was killed by a signal (no exit code), while the connection stayed up.
    #[error("`{}` was killed by a signal on {host}", brief(command))]
    Killed { host: String, command: String },

    /// The command cannot be run faithfully (NUL byte, bad variable name, empty program).
    #[error("invalid command for {host}: {reason}")]
    InvalidCommand { host: String, reason: String },

    /// A local I/O failure (spawning `ssh`, reading pipes, files in the data directory).
    #[error("{context} for {host}: {source}")]
    Io {
        host: String,
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A health check's HTTP request got no answer (nothing listening, the forward refused,
    /// the timeout).
    #[error("GET {url} on {host}: {reason}")]
    Http {
        host: String,
        url: String,
        reason: String,
    },

    /// The executor environment (data directory, `TENDHOST_SSH_KEY`) could not be set up. Not
    /// about one host.
    #[error("cannot set up remote execution: {detail}")]
    Setup { detail: String },
}

impl ExecError {
    /// The error for a [`CmdProblem`] found while preparing `cmd` for `host`.
    pub(crate) fn from_cmd_problem(problem: CmdProblem, host: &str, user: &str, cmd: &Cmd) -> Self {
        match problem {
            CmdProblem::Invalid(reason) => Self::InvalidCommand {
                host: host.to_owned(),
                reason,
            },
            CmdProblem::NeedsRoot => Self::PrivilegeUnavailable {
                host: host.to_owned(),
                user: user.to_owned(),
                command: cmd.display(),
            },
        }
    }

    /// Whether the host could not be reached or the connection broke: the host actor reports
    /// the host as unreachable. Authentication and host key problems are not connection failures
    /// (the host answered; the configuration or the host is wrong), nor are command results.
    pub fn is_connection_failure(&self) -> bool {
        matches!(
            self,
            Self::CannotResolve { .. }
                | Self::ConnectionRefused { .. }
                | Self::Unreachable { .. }
                | Self::ConnectTimeout { .. }
                | Self::ConnectFailed { .. }
                | Self::CannotConnect { .. }
                | Self::ConnectionLost { .. }
        )
    }

    /// The host the error is about (`None` for [`ExecError::Setup`]).
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::CannotResolve { host, .. }
            | Self::ConnectionRefused { host, .. }
            | Self::Unreachable { host, .. }
            | Self::ConnectTimeout { host, .. }
            | Self::AuthFailed { host, .. }
            | Self::HostKeyUnknown { host, .. }
            | Self::HostKeyChanged { host, .. }
            | Self::HostKeyMismatch { host, .. }
            | Self::CannotConnect { host, .. }
            | Self::ConnectFailed { host, .. }
            | Self::ConnectionLost { host, .. }
            | Self::SudoPasswordRequired { host, .. }
            | Self::SudoFailed { host, .. }
            | Self::PrivilegeUnavailable { host, .. }
            | Self::CommandTimedOut { host, .. }
            | Self::NonZeroExit { host, .. }
            | Self::Killed { host, .. }
            | Self::InvalidCommand { host, .. }
            | Self::Io { host, .. }
            | Self::Http { host, .. } => Some(host),
            Self::Setup { .. } => None,
        }
    }
}

/// Longest command shown whole in an error message.
const BRIEF_COMMAND: usize = 120;

/// A command as an error message names it: whole when it is one short line, else its first
/// line cut to [`BRIEF_COMMAND`] characters and `…` (a multi-step remote script is kilobytes;
/// the `command` field keeps all of it).
fn brief(command: &str) -> String {
    let first_line = command.lines().next().unwrap_or_default();
    let cut: String = first_line.chars().take(BRIEF_COMMAND).collect();
    if cut.len() == command.len() {
        cut
    } else {
        format!("{} …", cut.trim_end())
    }
}

fn secs(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use crate::error::{BRIEF_COMMAND, ExecError};

    #[test]
    fn a_long_or_multi_line_command_is_named_by_its_beginning() {
        let error = |command: &str| ExecError::NonZeroExit {
            host: "web-1".to_owned(),
            command: command.to_owned(),
            code: 1,
            stderr_tail: "E: oops".to_owned(),
        };
        assert_eq!(
            error("apt-get update").to_string(),
            "`apt-get update` exited with code 1 on web-1: E: oops"
        );
        let script = format!("sh -c 'step one\n{}\nstep three'", "x".repeat(5000));
        let shown = error(&script).to_string();
        assert_eq!(
            shown,
            "`sh -c 'step one …` exited with code 1 on web-1: E: oops"
        );
        let long_line = "y".repeat(3 * BRIEF_COMMAND);
        let shown = error(&long_line).to_string();
        assert!(shown.len() < 2 * BRIEF_COMMAND, "{shown}");
        assert!(
            shown.starts_with(&format!("`{} …`", "y".repeat(BRIEF_COMMAND))),
            "{shown}"
        );
    }
}
