//! What a managed host *is*: its address, credentials and policy, as validated from the config
//! file or the API. Plain data plus the maintenance-window arithmetic; no I/O, no parsing of
//! TOML (the daemon's config module does that and hands these types over).

use std::path::PathBuf;
use std::time::Duration;

/// Where a host's commands run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostTarget {
    /// This machine, without SSH.
    Local,
    /// A remote machine reached over SSH.
    Ssh { addr: String, port: u16 },
}

/// Host-key trust policy for SSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KnownHostsPolicy {
    /// Unknown or changed host key is an error.
    #[default]
    Strict,
    /// Trust on first use, strict afterwards.
    AcceptNew,
}

/// Whether tendhost may change the host or only look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpdatePolicy {
    #[default]
    Allowed,
    CheckOnly,
}

/// Package manager pinned in config (otherwise detected per host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinnedManager {
    Apt,
    Dnf,
    Yum,
}

/// apt's upgrade flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AptUpgrade {
    #[default]
    DistUpgrade,
    Upgrade,
}

/// Per-host policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPolicy {
    pub updates: UpdatePolicy,
    pub auto_reboot: bool,
    pub maintenance_window: Option<MaintenanceWindow>,
    /// Refresh package lists (`apt-get update`, `dnf makecache`) before a check.
    pub refresh_lists: bool,
    pub apt_upgrade: AptUpgrade,
    /// Packages never upgraded (`[defaults]`'s and the host's own `exclude` globs).
    pub exclude: Vec<tendhost_pkg::ExcludeGlob>,
}

/// Docker compose settings (used by the compose issue; parsed now).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerSettings {
    pub compose_version: Option<String>,
    pub pull_before_update: bool,
}

/// Timeouts and intervals for one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub check_interval: Duration,
    pub ssh_idle_timeout: Duration,
    pub reconnect_window: Duration,
    pub dpkg_lock_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(10 * 60),
            check_interval: Duration::from_secs(6 * 60 * 60),
            ssh_idle_timeout: Duration::from_secs(5 * 60),
            reconnect_window: Duration::from_secs(10 * 60),
            dpkg_lock_timeout: Duration::from_secs(60),
        }
    }
}

/// Where a host definition came from; config hosts cannot be deleted through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOrigin {
    Config,
    Runtime,
}

/// A fully resolved host definition (defaults already applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub target: HostTarget,
    pub user: String,
    pub ssh_key: Option<PathBuf>,
    pub sudo: bool,
    pub known_hosts: KnownHostsPolicy,
    /// The pinned host key fingerprint (`SHA256:...`): only that key is trusted.
    pub host_key_sha256: Option<String>,
    pub timing: Timing,
    pub tags: Vec<String>,
    pub compose_paths: Vec<PathBuf>,
    /// argv, run without a shell; only ever set from the config file.
    pub reboot_command: Option<Vec<String>>,
    pub package_manager: Option<PinnedManager>,
    pub policy: HostPolicy,
    pub docker: DockerSettings,
    pub origin: HostOrigin,
}

/// True when `name` is a valid host name: `[A-Za-z0-9._-]{1,64}`.
pub fn is_valid_host_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Day of the week, Monday first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Weekday {
    pub const ALL: [Weekday; 7] = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ];

    /// Parses `mon`..`sun` (case-insensitive).
    pub fn parse(s: &str) -> Option<Weekday> {
        let day = match s.to_ascii_lowercase().as_str() {
            "mon" => Weekday::Mon,
            "tue" => Weekday::Tue,
            "wed" => Weekday::Wed,
            "thu" => Weekday::Thu,
            "fri" => Weekday::Fri,
            "sat" => Weekday::Sat,
            "sun" => Weekday::Sun,
            _ => return None,
        };
        Some(day)
    }

    /// Monday = 0 .. Sunday = 6.
    pub fn index(self) -> usize {
        self as usize
    }

    fn previous(self) -> Weekday {
        Weekday::ALL[(self.index() + 6) % 7]
    }
}

/// A daily window in the daemon's local time, `start..end` minutes after midnight. When
/// `end <= start` the window crosses midnight and belongs to the day it *starts* on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub start_minute: u16,
    pub end_minute: u16,
    /// Days the window starts on; empty means every day.
    pub days: Vec<Weekday>,
}

impl MaintenanceWindow {
    /// Parses `HH:MM` into minutes after midnight.
    pub fn parse_hhmm(s: &str) -> Option<u16> {
        let (h, m) = s.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let h: u16 = h.parse().ok()?;
        let m: u16 = m.parse().ok()?;
        (h < 24 && m < 60).then_some(h * 60 + m)
    }

    fn starts_on(&self, day: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&day)
    }

    /// Whether local time `day` + `minute` (0..1440) lies inside the window.
    pub fn contains(&self, day: Weekday, minute: u16) -> bool {
        let (start, end) = (self.start_minute, self.end_minute);
        if start < end {
            self.starts_on(day) && (start..end).contains(&minute)
        } else {
            // Crosses midnight (or spans a whole day when start == end).
            (minute >= start && self.starts_on(day))
                || (minute < end && self.starts_on(day.previous()))
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::{MaintenanceWindow, Weekday, is_valid_host_name};

    fn window(start: &str, end: &str, days: &[Weekday]) -> MaintenanceWindow {
        MaintenanceWindow {
            start_minute: MaintenanceWindow::parse_hhmm(start).unwrap(),
            end_minute: MaintenanceWindow::parse_hhmm(end).unwrap(),
            days: days.to_vec(),
        }
    }

    #[test]
    fn hhmm_parsing() {
        assert_eq!(MaintenanceWindow::parse_hhmm("00:00"), Some(0));
        assert_eq!(MaintenanceWindow::parse_hhmm("23:59"), Some(1439));
        for bad in ["24:00", "12:60", "1:00", "12-00", "", "ab:cd", "12:000"] {
            assert_eq!(MaintenanceWindow::parse_hhmm(bad), None, "{bad}");
        }
    }

    #[test]
    fn same_day_window() {
        let w = window("02:00", "04:00", &[Weekday::Sat]);
        assert!(w.contains(Weekday::Sat, 120));
        assert!(w.contains(Weekday::Sat, 239));
        assert!(!w.contains(Weekday::Sat, 240));
        assert!(!w.contains(Weekday::Sat, 119));
        assert!(!w.contains(Weekday::Sun, 150));
    }

    #[test]
    fn window_crossing_midnight_belongs_to_its_start_day() {
        let w = window("23:00", "02:00", &[Weekday::Fri]);
        assert!(w.contains(Weekday::Fri, 23 * 60 + 30));
        assert!(w.contains(Weekday::Sat, 60));
        assert!(!w.contains(Weekday::Fri, 60));
        assert!(!w.contains(Weekday::Sat, 23 * 60 + 30));
        assert!(!w.contains(Weekday::Sat, 120));
    }

    #[test]
    fn empty_days_means_every_day() {
        let w = window("22:00", "06:00", &[]);
        for day in Weekday::ALL {
            assert!(w.contains(day, 23 * 60));
            assert!(w.contains(day, 5 * 60));
            assert!(!w.contains(day, 12 * 60));
        }
    }

    #[test]
    fn host_names() {
        assert!(is_valid_host_name("web-01.example_a"));
        assert!(is_valid_host_name(&"a".repeat(64)));
        assert!(!is_valid_host_name(&"a".repeat(65)));
        assert!(!is_valid_host_name(""));
        assert!(!is_valid_host_name("web 01"));
        assert!(!is_valid_host_name("web;rm"));
        assert!(!is_valid_host_name("wéb"));
    }
}
