//! [`PkgOptions`]: the knobs of the package layer (list refresh, apt's upgrade flavour, lock
//! timeout, reconnect window, job directory) and [`JobId`], the validated name of an upgrade
//! job. Values only; the daemon fills them from host config.

use std::fmt;
use std::time::Duration;

use crate::error::PkgError;
use crate::selection::ExcludeGlob;

/// Whether a check refreshes the package lists first (`apt-get update`, `dnf --refresh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListRefresh {
    #[default]
    Refresh,
    /// Use the lists the host already has.
    Skip,
}

/// apt's upgrade flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AptUpgrade {
    /// `apt-get dist-upgrade`: may install new dependencies and remove packages.
    #[default]
    DistUpgrade,
    /// `apt-get upgrade`: never installs or removes.
    Upgrade,
}

impl AptUpgrade {
    pub(crate) fn verb(self) -> &'static str {
        match self {
            AptUpgrade::DistUpgrade => "dist-upgrade",
            AptUpgrade::Upgrade => "upgrade",
        }
    }
}

/// Options for checks and upgrades on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkgOptions {
    pub refresh: ListRefresh,
    pub apt_upgrade: AptUpgrade,
    /// How long apt waits for the dpkg lock (`-o DPkg::Lock::Timeout=`) before the job ends
    /// `busy`. Whole seconds.
    pub lock_timeout: Duration,
    /// How long to keep reconnecting to a host that dropped mid-upgrade before the job is `lost`.
    pub reconnect_window: Duration,
    /// Pause between reconnect attempts.
    pub retry_interval: Duration,
    /// How long one streaming command follows the job log before returning (and being re-run).
    pub stream_pass: Duration,
    /// Directory on the host holding one directory per job (`<job_root>/<job_id>/`).
    pub job_root: String,
    /// Packages never upgraded; a check marks the pending updates they match `excluded`.
    pub exclude: Vec<ExcludeGlob>,
}

impl Default for PkgOptions {
    fn default() -> Self {
        Self {
            refresh: ListRefresh::Refresh,
            apt_upgrade: AptUpgrade::DistUpgrade,
            lock_timeout: Duration::from_secs(60),
            reconnect_window: Duration::from_secs(10 * 60),
            retry_interval: Duration::from_secs(2),
            stream_pass: Duration::from_secs(30),
            job_root: "/var/lib/tendhost/jobs".to_owned(),
            exclude: Vec::new(),
        }
    }
}

impl PkgOptions {
    /// Checks the values that end up on a host's command line.
    pub fn validate(&self) -> Result<(), PkgError> {
        let invalid = |name: &'static str, reason: &str| PkgError::InvalidOption {
            name,
            reason: reason.to_owned(),
        };
        let root = &self.job_root;
        if !root.starts_with('/') || root.len() < 2 {
            return Err(invalid("job_root", "must be an absolute path other than /"));
        }
        if root.contains(['\n', '\r', '\0']) || root.split('/').any(|part| part == "..") {
            return Err(invalid(
                "job_root",
                "must not contain newlines, NUL bytes or `..` components",
            ));
        }
        if self.stream_pass < Duration::from_secs(1) {
            return Err(invalid("stream_pass", "must be at least 1 second"));
        }
        if self.lock_timeout > Duration::from_secs(24 * 3600) {
            return Err(invalid("lock_timeout", "must be at most 24 hours"));
        }
        Ok(())
    }

    pub(crate) fn lock_timeout_secs(&self) -> u64 {
        self.lock_timeout.as_secs()
    }

    pub(crate) fn job_dir(&self, job_id: &JobId) -> String {
        format!(
            "{}/{}",
            self.job_root.trim_end_matches('/'),
            job_id.as_str()
        )
    }
}

/// The name of an upgrade job: 1 to 64 characters from `[A-Za-z0-9_-]`, not starting with `-`.
/// It names the job's directory and systemd unit on the host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId(String);

impl JobId {
    pub fn new(id: impl Into<String>) -> Result<Self, PkgError> {
        let id = id.into();
        let valid = (1..=64).contains(&id.len())
            && !id.starts_with('-')
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(id))
        } else {
            Err(PkgError::InvalidJobId(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use crate::options::{JobId, PkgOptions};

    #[test]
    fn job_ids() {
        for ok in ["a", "job-1_B", &"x".repeat(64)] {
            assert!(JobId::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a/b",
            "a b",
            "../x",
            "é",
            &"x".repeat(65),
            "a;reboot",
        ] {
            let err = JobId::new(bad).unwrap_err().to_string();
            assert!(err.contains("invalid job id"), "{bad}: {err}");
        }
    }

    #[test]
    fn option_validation() {
        assert!(PkgOptions::default().validate().is_ok());
        for (root, ok) in [
            ("/var/tmp/tendhost jobs", true),
            ("relative", false),
            ("/", false),
            ("/a/../b", false),
            ("/a\nb", false),
        ] {
            let opts = PkgOptions {
                job_root: root.into(),
                ..PkgOptions::default()
            };
            assert_eq!(opts.validate().is_ok(), ok, "{root:?}");
        }
        let opts = PkgOptions {
            job_root: "/x/".into(),
            ..PkgOptions::default()
        };
        assert_eq!(opts.job_dir(&JobId::new("j1").unwrap()), "/x/j1");
    }
}
