//! Domain types of the package layer: what a check found, how an upgrade ended, whether a
//! host needs a reboot, what a host is. Plain data with no I/O and no serde: the api crate owns
//! the wire shapes and the daemon maps these onto them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// The package manager that drives a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PackageManager {
    /// Debian and Ubuntu: `apt-get` over dpkg.
    Apt,
    /// Fedora and RHEL 8+: `dnf` over rpm.
    Dnf,
    /// Older RHEL/CentOS: `yum`, which takes dnf's commands and prints dnf's output shape.
    Yum,
}

impl PackageManager {
    /// The name used in config and logs: `apt`, `dnf` or `yum`.
    pub fn as_str(self) -> &'static str {
        match self {
            PackageManager::Apt => "apt",
            PackageManager::Dnf => "dnf",
            PackageManager::Yum => "yum",
        }
    }

    /// The rpm-based managers share one code path; this is its binary name.
    pub(crate) fn rpm_binary(self) -> &'static str {
        match self {
            PackageManager::Yum => "yum",
            PackageManager::Apt | PackageManager::Dnf => "dnf",
        }
    }
}

impl fmt::Display for PackageManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error from [`PackageManager::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown package manager {0:?}: expected one of apt, dnf, yum")]
pub struct UnknownPackageManager(pub String);

impl FromStr for PackageManager {
    type Err = UnknownPackageManager;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "apt" | "apt-get" => Ok(PackageManager::Apt),
            "dnf" => Ok(PackageManager::Dnf),
            "yum" => Ok(PackageManager::Yum),
            other => Err(UnknownPackageManager(other.to_owned())),
        }
    }
}

/// One package a check says would be upgraded (or newly installed, when `current_version` is
/// `None`: a dist-upgrade can pull in new dependencies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpdate {
    pub name: String,
    pub current_version: Option<String>,
    pub new_version: String,
    /// Where the new version comes from: apt's release string(s) (`Debian:12.5/stable`,
    /// several joined by `, `), dnf's repository id.
    pub origin: String,
    pub arch: String,
    /// The new version comes from a security suite (apt) or has a security advisory (dnf).
    pub security: bool,
    /// An exclude pattern of the host matches it: listed, never installed.
    pub excluded: bool,
}

/// One package a check says would be removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub name: String,
    pub version: String,
}

/// What a check found on a host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckReport {
    pub pending: Vec<PendingUpdate>,
    /// Packages pinned at their version (`apt-mark showhold`, `dnf versionlock`).
    pub held: Vec<String>,
    /// Packages with a newer version that the upgrade will not take (apt's "kept back").
    pub kept_back: Vec<String>,
    pub removals: Vec<Removal>,
    /// `dpkg --audit` reports unfinished packages (an interrupted dpkg, a failed configure, or
    /// another dpkg run in progress). When apt then refuses with "dpkg was interrupted", the
    /// upgrade job repairs it (`dpkg --configure -a`) before upgrading.
    pub dpkg_interrupted: bool,
}

impl CheckReport {
    /// Number of pending updates that carry the security flag.
    pub fn n_security(&self) -> usize {
        self.pending.iter().filter(|p| p.security).count()
    }
}

/// A dry run: what a check found and the exact command line the upgrade would run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRun {
    pub report: CheckReport,
    /// The commands, in order, as they would run on the host (inside the job script).
    pub commands: Vec<String>,
}

/// Whether a host needs a reboot. Wire names: `required`, `not_required`, `unknown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebootState {
    /// Reboot needed; `packages` names the packages that asked for it when the host says.
    Required {
        packages: Vec<String>,
    },
    NotRequired,
    /// The host cannot tell (e.g. dnf without the `needs-restarting` plugin).
    Unknown,
}

impl RebootState {
    /// `required`, `not_required` or `unknown`.
    pub fn wire_name(&self) -> &'static str {
        match self {
            RebootState::Required { .. } => "required",
            RebootState::NotRequired => "not_required",
            RebootState::Unknown => "unknown",
        }
    }
}

/// How an upgrade job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeState {
    Succeeded,
    /// The package manager failed, or a package's maintainer script did.
    Failed,
    /// The package database stayed locked past the lock timeout; retryable, nothing changed.
    Busy,
    /// The host stayed unreachable for the whole reconnect window; the job may still be
    /// running there and a later [`collect`](crate::collect) finds its real outcome.
    Lost,
}

impl UpgradeState {
    /// `succeeded`, `failed`, `busy` or `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeState::Succeeded => "succeeded",
            UpgradeState::Failed => "failed",
            UpgradeState::Busy => "busy",
            UpgradeState::Lost => "lost",
        }
    }
}

/// A package whose installed version changed in an upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradedPackage {
    pub name: String,
    /// `None` for a package the upgrade newly installed.
    pub from: Option<String>,
    pub to: String,
}

/// The result of an upgrade job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeOutcome {
    pub state: UpgradeState,
    pub upgraded: Vec<UpgradedPackage>,
    /// Packages the package manager reported as failed (maintainer script errors and the like).
    pub failed: Vec<String>,
    /// The job's exit code; `None` when it was not collected (`Lost`).
    pub exit_code: Option<i32>,
    /// Wall time of the job on the host (start to exit code), or the time spent waiting when
    /// the job was lost.
    pub duration: Duration,
    /// The job's output (stdout and stderr interleaved) as read in this collection, from the
    /// offset collection started at.
    pub log: String,
    /// Byte offset in the host-side log that this collection reached; resume from here.
    pub log_offset: u64,
    /// The job repaired an interrupted dpkg (`dpkg --configure -a`) before upgrading.
    pub repaired_dpkg: bool,
    /// What an apt job's closing look printed (pending updates, reboot state and inventory
    /// after the upgrade, see `command::job::closing_look`); read it with
    /// [`crate::closing_look`]. `None` when the job did not run one.
    pub closing_look: Option<String>,
}

/// Identity of one boot of a host: changes on every reboot, including a container restart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BootIdentity {
    /// `/proc/sys/kernel/random/boot_id` (the kernel's; unchanged by a container restart).
    pub boot_id: String,
    /// Start time of PID 1 in clock ticks after kernel boot (field 22 of `/proc/1/stat`); this
    /// is what changes when a container restarts.
    pub pid1_start_ticks: u64,
}

/// Where an inventory's fields came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventorySource {
    /// `/etc/os-release`, `uname`, `/proc`, `df`, `dpkg-query`/`rpm`.
    Commands,
    /// `osqueryi --json` (boot identity still from `/proc`).
    Osquery,
}

/// What a host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub uptime: Duration,
    pub boot_id: String,
    pub pid1_start_ticks: u64,
    pub package_manager: Option<PackageManager>,
    pub installed_packages: u64,
    /// Bytes available to unprivileged users on the filesystem holding `/`.
    pub disk_free_root: u64,
    pub source: InventorySource,
}

impl Inventory {
    pub fn boot_identity(&self) -> BootIdentity {
        BootIdentity {
            boot_id: self.boot_id.clone(),
            pid1_start_ticks: self.pid1_start_ticks,
        }
    }
}

/// A process that still maps a deleted or replaced binary or library after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceToRestart {
    pub pid: u32,
    /// `/proc/PID/comm`.
    pub command: String,
    /// Its systemd unit or init script, when known.
    pub unit: Option<String>,
}
