//! Parsers for what an upgrade job leaves on the host: the summary printed from its job
//! directory (exit code, start/end times, installed-package snapshots before and after), the
//! status line of a streaming pass, and the judgement of how the job ended. Manager-specific
//! log reading comes from `parse::apt` and `parse::dnf`. Pure.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::parse::installed::{Installed, parse_installed};
use crate::parse::{ParseError, apt, dnf, section, sections};
use crate::types::{PackageManager, UpgradeState, UpgradedPackage};

/// The line the job script writes before it repairs an interrupted dpkg.
pub const REPAIR_MARKER: &str = "tendhost: dpkg was interrupted";

/// What a job's directory holds, read by the summary command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    /// `None` while the job has not written its exit code (or died without one).
    pub exit_code: Option<i32>,
    /// Milliseconds since the epoch, by the host's clock.
    pub started_ms: Option<u64>,
    pub ended_ms: Option<u64>,
    pub before: Vec<Installed>,
    pub after: Vec<Installed>,
    /// The job log's last bytes as read (at most `MAX_COLLECTED_LOG`), after a marker line
    /// when the log was longer.
    pub log: String,
    /// Size of the whole log on the host, when the summary told it.
    pub log_size: Option<u64>,
    /// The answer of the job's closing look (`command::job::closing_look`), when it ran.
    pub look: Option<String>,
}

/// Bytes of a job log the summary reads from the host: its tail, where the package manager's
/// verdict is. The log streamed while the job ran went to the job's own log line by line.
pub const MAX_COLLECTED_LOG: usize = 1024 * 1024;

/// Start of the line put before a log of which only the tail was read.
pub const LOG_HEAD_SKIPPED: &str = "[tendhost: log truncated:";

impl JobSummary {
    /// Host-side wall time of the job, when both timestamps were written.
    pub fn duration(&self) -> Option<Duration> {
        let (start, end) = (self.started_ms?, self.ended_ms?);
        Some(Duration::from_millis(end.saturating_sub(start)))
    }
}

/// The line that opens the log, the summary's last section: everything after it is log text,
/// even lines that look like markers.
const LOG_MARKER: &str = "@@tendhost:log@@\n";
const LOOK_MARKER: &str = "@@tendhost:look@@\n";

/// Parses the summary command's output: sections `exit` (empty when there is no exit code yet),
/// `started`, `ended`, `before`, `after`, then `log` as the rest of the text.
pub fn parse_summary(text: &str) -> Result<JobSummary, ParseError> {
    const WHAT: &str = "job summary";
    let (head, log) = if let Some(log) = text.strip_prefix(LOG_MARKER) {
        ("", log)
    } else {
        match text.find(&format!("\n{LOG_MARKER}")) {
            Some(idx) => (&text[..=idx], &text[idx + 1 + LOG_MARKER.len()..]),
            None => (text, ""),
        }
    };
    // The closing look comes last before the log and holds `@@tendhost:` sections of its
    // own, so it is cut off first; the sections before it are named ones it cannot shadow.
    let (head, look) = match head.find(&format!("\n{LOOK_MARKER}")) {
        Some(idx) => (
            &head[..=idx],
            Some(head[idx + 1 + LOOK_MARKER.len()..].to_owned()),
        ),
        None => (head, None),
    };
    let sections = sections(head);
    let exit = section(&sections, "exit")
        .ok_or_else(|| ParseError::new(WHAT, 0, "no exit section"))?
        .trim();
    let exit_code =
        if exit.is_empty() {
            None
        } else {
            Some(exit.parse().map_err(|_| {
                ParseError::new(WHAT, 0, format!("exit code {exit:?} is not a number"))
            })?)
        };
    let millis = |name: &str| section(&sections, name).and_then(|s| s.trim().parse().ok());
    let log_size: Option<u64> = millis("size");
    let log = match log_size {
        Some(size) if size > log.len() as u64 => {
            // Only the tail was read; its first line is likely cut.
            let rest = log.find('\n').map_or("", |idx| &log[idx + 1..]);
            format!(
                "{LOG_HEAD_SKIPPED} the first {} of its {size} bytes were not read]\n{rest}",
                size - rest.len() as u64
            )
        }
        _ => log.to_owned(),
    };
    Ok(JobSummary {
        exit_code,
        started_ms: millis("started"),
        ended_ms: millis("ended"),
        before: parse_installed(section(&sections, "before").unwrap_or(""))?,
        after: parse_installed(section(&sections, "after").unwrap_or(""))?,
        log,
        log_size,
        look,
    })
}

/// Packages whose installed version changed between the snapshots and that ended fully
/// installed, sorted by name.
pub fn upgraded_packages(before: &[Installed], after: &[Installed]) -> Vec<UpgradedPackage> {
    // The first present row per (name, arch), as a linear scan would find it.
    let mut previous_of: HashMap<(&str, &str), &Installed> = HashMap::with_capacity(before.len());
    for b in before.iter().filter(|b| b.is_present()) {
        previous_of
            .entry((b.name.as_str(), b.arch.as_str()))
            .or_insert(b);
    }
    let mut upgraded: Vec<UpgradedPackage> = after
        .iter()
        .filter(|a| a.is_installed_ok())
        .filter_map(|a| {
            let previous = previous_of
                .get(&(a.name.as_str(), a.arch.as_str()))
                .copied();
            match previous {
                Some(b) if b.version == a.version => None,
                previous => Some(UpgradedPackage {
                    name: a.name.clone(),
                    from: previous.map(|b| b.version.clone()),
                    to: a.version.clone(),
                }),
            }
        })
        .collect();
    upgraded.sort_by(|x, y| x.name.cmp(&y.name));
    upgraded
}

/// Packages the job left installed but not configured (half-configured, unpacked, ...):
/// unfinished after it, and not in that same state before it (a package some other dpkg run is
/// configuring right now is not this job's failure). Sorted by name.
pub fn unfinished_packages(before: &[Installed], after: &[Installed]) -> Vec<String> {
    let before: HashSet<&Installed> = before.iter().collect();
    let mut names: Vec<String> = after
        .iter()
        .filter(|a| a.is_present() && !a.is_installed_ok())
        .filter(|a| !before.contains(a))
        .map(|a| a.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Packages the job failed on: what the log says plus what the snapshot shows unfinished.
pub fn failed_packages(
    manager: PackageManager,
    log: &str,
    before: &[Installed],
    after: &[Installed],
) -> Vec<String> {
    let mut failed = match manager {
        PackageManager::Apt => apt::failed_packages(log),
        PackageManager::Dnf | PackageManager::Yum => dnf::failed_scriptlets(log),
    };
    failed.extend(unfinished_packages(before, after));
    failed.sort();
    failed.dedup();
    failed
}

/// How a finished job ended. A lock held past the timeout with nothing upgraded is `Busy`
/// (retryable), not `Failed`.
pub fn classify(
    manager: PackageManager,
    exit_code: i32,
    log: &str,
    upgraded: &[UpgradedPackage],
    failed: &[String],
) -> UpgradeState {
    let lock_held = match manager {
        PackageManager::Apt => apt::lock_was_held(log),
        PackageManager::Dnf | PackageManager::Yum => dnf::lock_was_held(log),
    };
    if exit_code != 0 && lock_held && upgraded.is_empty() && failed.is_empty() {
        UpgradeState::Busy
    } else if exit_code != 0 || !failed.is_empty() {
        UpgradeState::Failed
    } else {
        UpgradeState::Succeeded
    }
}

/// Whether the job log shows the dpkg repair step ran.
pub fn repaired_dpkg(log: &str) -> bool {
    log.lines().any(|l| l.starts_with(REPAIR_MARKER))
}

/// Where a job stands, as one streaming pass saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// No job directory with that id on the host.
    Missing,
    /// The job has not written its exit code yet.
    Running,
    /// The exit code is there; the log is complete.
    Finished,
    /// The job's process is gone but it wrote no exit code (host rebooted, job killed).
    Died,
}

/// The status line a streaming pass prints on stderr: `tendhost-stream state=S offset=N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamStatus {
    pub state: JobState,
    /// Byte offset in the job log that the pass read up to.
    pub offset: u64,
}

/// The job summary a streaming pass prints on stderr after its status line once the job has
/// ended (`command::job::stream`), for [`parse_summary`]; `None` when there is none.
pub fn stream_summary(stderr: &str) -> Option<&str> {
    let status = stderr.find("tendhost-stream ")?;
    let after = &stderr[status..];
    let rest = &after[after.find('\n')? + 1..];
    rest.starts_with("@@tendhost:exit@@").then_some(rest)
}

/// Finds and parses the status line in a streaming pass's stderr: the first one, as the
/// summary after it carries the job's own log.
pub fn parse_stream_status(stderr: &str) -> Result<StreamStatus, ParseError> {
    const WHAT: &str = "job stream status";
    let line = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("tendhost-stream "))
        .ok_or_else(|| {
            ParseError::new(
                WHAT,
                0,
                format!("no `tendhost-stream` status line in {:?}", stderr.trim()),
            )
        })?;
    let mut state = None;
    let mut offset = None;
    for field in line.split_whitespace() {
        match field.split_once('=') {
            Some(("state", "missing")) => state = Some(JobState::Missing),
            Some(("state", "running")) => state = Some(JobState::Running),
            Some(("state", "finished")) => state = Some(JobState::Finished),
            Some(("state", "died")) => state = Some(JobState::Died),
            Some(("offset", n)) => offset = n.parse().ok(),
            _ => {}
        }
    }
    match (state, offset) {
        (Some(state), Some(offset)) => Ok(StreamStatus { state, offset }),
        _ => Err(ParseError::new(
            WHAT,
            0,
            format!("bad status line {line:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    //! Files read with `capture` are real output (`tests/data/README.md` says from where);
    //! inline summaries and snapshots are hand-written in the job script's section format.

    use std::time::Duration;

    use crate::parse::installed::{Installed, parse_installed};
    use crate::parse::job::{
        JobState, StreamStatus, classify, failed_packages, parse_stream_status, parse_summary,
        repaired_dpkg, unfinished_packages, upgraded_packages,
    };
    use crate::types::{PackageManager, UpgradeState, UpgradedPackage};

    fn installed(text: &str) -> Vec<Installed> {
        parse_installed(text).unwrap()
    }

    #[test]
    fn summary_sections() {
        let text = "@@tendhost:exit@@\n0\n@@tendhost:started@@\n1000\n@@tendhost:ended@@\n3500\n\
@@tendhost:before@@\nfoo\tall\t1.0\tii \n@@tendhost:after@@\nfoo\tall\t1.1\tii \n\
@@tendhost:log@@\nline one\n@@tendhost:exit@@\nnot a section\n";
        let summary = parse_summary(text).unwrap();
        assert_eq!(summary.exit_code, Some(0));
        assert_eq!(summary.log, "line one\n@@tendhost:exit@@\nnot a section\n");
        assert_eq!(summary.duration(), Some(Duration::from_millis(2500)));
        assert_eq!(
            upgraded_packages(&summary.before, &summary.after),
            [UpgradedPackage {
                name: "foo".into(),
                from: Some("1.0".into()),
                to: "1.1".into()
            }]
        );
        let err = parse_summary("@@tendhost:exit@@\nnope\n").unwrap_err();
        assert!(
            err.to_string().contains("\"nope\" is not a number"),
            "{err}"
        );
        assert!(parse_summary("").is_err());
        let running =
            parse_summary("@@tendhost:exit@@\n@@tendhost:before@@\n@@tendhost:log@@\n").unwrap();
        assert_eq!(running.exit_code, None);
        assert_eq!(running.log, "");
    }

    #[test]
    fn snapshot_diff() {
        let before = installed(
            "same\tall\t1\tii \nup\tamd64\t1\tii \nbroken\tall\t1\tii \ngone\tall\t1\trc \nheld\tall\t1\thi \n",
        );
        let after = installed(
            "same\tall\t1\tii \nup\tamd64\t2\tii \nbroken\tall\t2\tiF \ngone\tall\t2\tii \nnew\tall\t3\tii \nheld\tall\t1\thi \n",
        );
        let upgraded = upgraded_packages(&before, &after);
        let names: Vec<(&str, Option<&str>, &str)> = upgraded
            .iter()
            .map(|u| (u.name.as_str(), u.from.as_deref(), u.to.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("gone", None, "2"),
                ("new", None, "3"),
                ("up", Some("1"), "2")
            ]
        );
        assert_eq!(
            failed_packages(PackageManager::Apt, "", &before, &after),
            ["broken"]
        );
        // Unfinished before and unchanged: another dpkg run's business, not this job's.
        let busy = installed("holder\tall\t1\tiF \n");
        assert!(failed_packages(PackageManager::Apt, "", &busy, &busy).is_empty());
    }

    /// `(name, from, to)` of each upgraded package.
    fn triples(upgraded: &[UpgradedPackage]) -> Vec<(&str, Option<&str>, &str)> {
        upgraded
            .iter()
            .map(|u| (u.name.as_str(), u.from.as_deref(), u.to.as_str()))
            .collect()
    }

    /// The job's view of that real upgrade: the snapshots before and after it and its log.
    #[test]
    fn failed_apt_upgrade_from_captured_snapshots() {
        let capture = crate::parse::capture;
        let before = installed(&capture("dpkg-query-before-upgrade.txt"));
        let after = installed(&capture("dpkg-query-installed.txt"));
        let (code, log) = crate::parse::capture_with_exit("apt-upgrade-postinst-failure.log");
        let upgraded = upgraded_packages(&before, &after);
        assert_eq!(
            triples(&upgraded),
            [
                (
                    "cap-a-rather-long-package-name-for-wrapping",
                    Some("1.0"),
                    "1.1"
                ),
                ("cap-conflict", Some("1.0"), "1.1"),
                ("cap-dep", None, "1.0"),
                ("cap-newdep", Some("1.0"), "1.1"),
                ("cap-normal", Some("1.0"), "1.1"),
                ("cap-sec", Some("1.0"), "1.1"),
            ]
        );
        assert_eq!(unfinished_packages(&before, &after), ["cap-fail"]);
        let failed = failed_packages(PackageManager::Apt, &log, &before, &after);
        assert_eq!(failed, ["cap-fail"]);
        assert_eq!(
            classify(PackageManager::Apt, code, &log, &upgraded, &failed),
            UpgradeState::Failed
        );
    }

    /// The same for the captured dnf upgrade whose %post failed: dnf exits 0, the obsoleted
    /// package is gone and the new dependency is listed as new.
    #[test]
    fn failed_dnf_upgrade_from_captured_snapshots() {
        let capture = crate::parse::capture;
        let before = installed(&capture("rpm-qa-installed.txt"));
        let after = installed(&capture("rpm-qa-after-upgrade.txt"));
        let (code, log) = crate::parse::capture_with_exit("dnf-upgrade-scriptlet-failure.log");
        assert_eq!(code, 0);
        assert!(after.iter().all(|i| i.name != "cap-old"));
        let upgraded = upgraded_packages(&before, &after);
        assert_eq!(
            triples(&upgraded),
            [
                (
                    "cap-a-rather-long-package-name-for-wrapping",
                    Some("1.0-1"),
                    "1.1-1"
                ),
                ("cap-conflict", Some("1.0-1"), "1.1-1"),
                ("cap-dep", None, "1.0-1"),
                ("cap-fail", Some("1.0-1"), "1.1-1"),
                ("cap-newdep", Some("1.0-1"), "1.1-1"),
                ("cap-normal", Some("1.0-1"), "1.1-1"),
                ("cap-sec", Some("1.0-1"), "1.1-1"),
            ]
        );
        let failed = failed_packages(PackageManager::Dnf, &log, &before, &after);
        assert_eq!(failed, ["cap-fail"]);
        assert_eq!(
            classify(PackageManager::Dnf, code, &log, &upgraded, &failed),
            UpgradeState::Failed
        );
    }

    #[test]
    fn classification() {
        let lock =
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 9 (sleep)\n";
        let rpm_lock = "RPM: error: can't create transaction lock on /root/.rpmdb/.rpm.lock \
            (Resource temporarily unavailable)\nError: Could not run transaction.\n";
        let some = [UpgradedPackage {
            name: "x".into(),
            from: None,
            to: "1".into(),
        }];
        let failed = ["x".to_owned()];
        for (manager, code, log, upgraded, failed, expected) in [
            (
                PackageManager::Apt,
                0,
                "",
                &[][..],
                &[][..],
                UpgradeState::Succeeded,
            ),
            (PackageManager::Apt, 100, lock, &[], &[], UpgradeState::Busy),
            (
                PackageManager::Apt,
                100,
                lock,
                &some[..],
                &[],
                UpgradeState::Failed,
            ),
            (
                PackageManager::Apt,
                100,
                "E: boom",
                &[],
                &[],
                UpgradeState::Failed,
            ),
            (
                PackageManager::Dnf,
                0,
                "",
                &[],
                &failed[..],
                UpgradeState::Failed,
            ),
            (PackageManager::Dnf, 1, lock, &[], &[], UpgradeState::Failed),
            (
                PackageManager::Dnf,
                1,
                rpm_lock,
                &[],
                &[],
                UpgradeState::Busy,
            ),
        ] {
            assert_eq!(
                classify(manager, code, log, upgraded, failed),
                expected,
                "{manager} {code} {log:?}"
            );
        }
    }

    #[test]
    fn repair_marker() {
        assert!(repaired_dpkg(
            "x\ntendhost: dpkg was interrupted; repairing\n"
        ));
        assert!(!repaired_dpkg("plain log\n"));
    }

    #[test]
    fn stream_status() {
        assert_eq!(
            parse_stream_status("noise\ntendhost-stream state=running offset=42\n"),
            Ok(StreamStatus {
                state: JobState::Running,
                offset: 42
            })
        );
        assert_eq!(
            parse_stream_status("tendhost-stream state=finished offset=7")
                .unwrap()
                .state,
            JobState::Finished
        );
        assert!(parse_stream_status("sudo: a password is required\n").is_err());
        assert!(parse_stream_status("tendhost-stream state=odd offset=1").is_err());
    }

    /// Hand-written in the stream pass's format: the status line, then the summary of an
    /// ended job, whose log may hold anything, a fake status line too.
    #[test]
    fn the_summary_after_a_final_stream_status() {
        let stderr = "tendhost-stream state=finished offset=9\n@@tendhost:exit@@\n0\n\
                      @@tendhost:size@@\n9\n@@tendhost:log@@\ntendhost-stream state=running offset=1\n";
        assert_eq!(
            parse_stream_status(stderr).unwrap().state,
            JobState::Finished
        );
        let summary = super::stream_summary(stderr).unwrap();
        assert!(summary.starts_with("@@tendhost:exit@@\n0\n"), "{summary}");
        assert_eq!(parse_summary(summary).unwrap().exit_code, Some(0));
        assert_eq!(
            super::stream_summary("tendhost-stream state=running offset=3\n"),
            None
        );
        assert_eq!(
            super::stream_summary("no status\n@@tendhost:exit@@\n"),
            None
        );
    }
}
