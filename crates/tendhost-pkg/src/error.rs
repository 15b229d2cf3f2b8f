//! [`PkgError`]: every way a package operation can fail, each message naming the host and the
//! problem. How an upgrade *ended* (failed, busy, lost) is not an error but an
//! [`UpgradeOutcome`](crate::UpgradeOutcome).

use std::time::Duration;

use tendhost_exec::ExecError;

use crate::parse::ParseError;

/// Why a package operation could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkgError {
    /// Running a command failed (unreachable host, sudo wants a password, timeout...).
    #[error(transparent)]
    Exec(#[from] ExecError),

    /// A command's output did not have the expected shape.
    #[error("{host}: {source}")]
    Parse {
        host: String,
        #[source]
        source: ParseError,
    },

    /// A command exited with an error code.
    #[error("`{command}` failed on {host} with exit code {code}: {detail}")]
    CommandFailed {
        host: String,
        command: String,
        code: i32,
        detail: String,
    },

    /// The package database stayed locked by another process past the lock timeout.
    #[error("the package database on {host} is locked by another process (waited {}s): {detail}", .waited.as_secs())]
    Locked {
        host: String,
        waited: Duration,
        detail: String,
    },

    /// Neither os-release nor the installed tools say which package manager to use.
    #[error("{host}: {detail}")]
    UnknownManager { host: String, detail: String },

    #[error("invalid job id {0:?}: use 1-64 characters from [A-Za-z0-9_-], not starting with '-'")]
    InvalidJobId(String),

    #[error("invalid option {name}: {reason}")]
    InvalidOption { name: &'static str, reason: String },

    /// `collect` found no job directory with that id.
    #[error("no upgrade job {job_id} on {host} (looked for {dir})")]
    JobNotFound {
        host: String,
        job_id: String,
        dir: String,
    },

    /// The host did not show a new boot identity in time after a reboot was issued.
    #[error("{host} did not come back with a new boot identity within {}s after the reboot command", .waited.as_secs())]
    RebootTimedOut { host: String, waited: Duration },
}

impl PkgError {
    pub(crate) fn parse(host: &str, source: ParseError) -> Self {
        PkgError::Parse {
            host: host.to_owned(),
            source,
        }
    }

    /// Whether the host could not be reached (see [`ExecError::is_connection_failure`]).
    pub fn is_connection_failure(&self) -> bool {
        matches!(self, PkgError::Exec(e) if e.is_connection_failure())
    }
}
