//! Parsers for dnf/yum and rpm output: `dnf check-update` (with its exit code), `dnf updateinfo
//! list --security`, `rpm -qa` in our tab-separated format, `dnf versionlock list`,
//! `needs-restarting -r`, and what an upgrade log says about failed scriptlets. Pure.

use std::collections::{HashMap, HashSet};

use crate::parse::ParseError;
use crate::parse::installed::Installed;
use crate::types::{PendingUpdate, RebootState};

/// One line of `dnf check-update`: a package with a newer version available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    pub name: String,
    pub arch: String,
    /// `[EPOCH:]VERSION-RELEASE`, as dnf prints it.
    pub version: String,
    pub repo: String,
}

/// Parses `dnf -q check-update` given its exit code: 0 = nothing to upgrade, 100 = the listed
/// updates, anything else is an error (reported with dnf's own message).
///
/// dnf wraps a long package name onto its own line, so the list is read as a stream of words
/// taken three at a time (`NAME.ARCH VERSION REPO`) until the "Obsoleting Packages" block.
pub fn parse_check_update(
    exit_code: i32,
    stdout: &str,
    stderr: &str,
) -> Result<Vec<Available>, ParseError> {
    const WHAT: &str = "dnf check-update output";
    match exit_code {
        0 | 100 => {}
        code => {
            let message = first_error_line(stderr)
                .or_else(|| first_error_line(stdout))
                .unwrap_or("no error message");
            return Err(ParseError::new(
                WHAT,
                0,
                format!("dnf check-update exited with {code}: {message}"),
            ));
        }
    }
    let mut words: Vec<(usize, &str)> = Vec::new();
    for (idx, line) in stdout.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("Obsoleting Packages") {
            break;
        }
        if trimmed.is_empty()
            || trimmed.starts_with("Last metadata expiration check")
            || trimmed.starts_with("Security:")
        {
            continue;
        }
        words.extend(trimmed.split_whitespace().map(|w| (idx + 1, w)));
    }
    if !words.len().is_multiple_of(3) {
        let (line, _) = words[words.len() - words.len() % 3];
        return Err(ParseError::new(
            WHAT,
            line,
            "expected `NAME.ARCH VERSION REPO` triples",
        ));
    }
    let available = words
        .chunks(3)
        .map(|chunk| {
            let (line, name_arch) = chunk[0];
            let (name, arch) = name_arch.rsplit_once('.').ok_or_else(|| {
                ParseError::new(WHAT, line, format!("{name_arch:?} is not NAME.ARCH"))
            })?;
            Ok(Available {
                name: name.to_owned(),
                arch: arch.to_owned(),
                version: chunk[1].1.to_owned(),
                repo: chunk[2].1.to_owned(),
            })
        })
        .collect::<Result<Vec<_>, ParseError>>()?;
    if exit_code == 100 && available.is_empty() {
        return Err(ParseError::new(
            WHAT,
            0,
            "exit code 100 (updates available) but no package listed",
        ));
    }
    Ok(available)
}

fn first_error_line(text: &str) -> Option<&str> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let all: Vec<&str> = lines.by_ref().collect();
    all.iter()
        .find(|l| l.starts_with("Error") || l.starts_with("error"))
        .or(all.first())
        .copied()
}

/// A package name split from an rpm NEVRA (`name-[epoch:]version-release.arch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nevra {
    pub name: String,
    /// `[EPOCH:]VERSION-RELEASE`
    pub version: String,
    pub arch: String,
}

/// Splits `name-[epoch:]version-release.arch`. The name may itself contain dashes.
pub fn parse_nevra(nevra: &str) -> Option<Nevra> {
    let (nevr, arch) = nevra.rsplit_once('.')?;
    let (nev, release) = nevr.rsplit_once('-')?;
    let (name, version) = nev.rsplit_once('-')?;
    if name.is_empty() || version.is_empty() || release.is_empty() || arch.is_empty() {
        return None;
    }
    Some(Nevra {
        name: name.to_owned(),
        version: format!("{version}-{release}"),
        arch: arch.to_owned(),
    })
}

/// Parses `dnf -q updateinfo list --security`: lines `ADVISORY SEVERITY/Sec. NEVRA`; returns
/// the packages (with the version that fixes the advisory).
pub fn parse_updateinfo_security(text: &str) -> Vec<Nevra> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() < 3 || words[0].starts_with("Last") {
                return None;
            }
            parse_nevra(words[words.len() - 1])
        })
        .collect()
}

/// Joins `check-update` results with the installed versions and the security advisories.
pub fn pending_updates(
    available: &[Available],
    installed: &[Installed],
    security: &[Nevra],
) -> Vec<PendingUpdate> {
    // The last installed row per (name, arch) and per name (a `noarch` update replaces any
    // arch), as a linear scan from the end would find them; security keys as a set.
    let mut by_name_arch: HashMap<(&str, &str), &str> = HashMap::with_capacity(installed.len());
    let mut by_name: HashMap<&str, &str> = HashMap::with_capacity(installed.len());
    for i in installed {
        by_name_arch.insert((i.name.as_str(), i.arch.as_str()), i.version.as_str());
        by_name.insert(i.name.as_str(), i.version.as_str());
    }
    let security: HashSet<(&str, &str)> = security
        .iter()
        .map(|s| (s.name.as_str(), s.arch.as_str()))
        .collect();
    available
        .iter()
        .map(|a| {
            let current_version = if a.arch == "noarch" {
                by_name.get(a.name.as_str())
            } else {
                by_name_arch.get(&(a.name.as_str(), a.arch.as_str()))
            }
            .map(|v| (*v).to_owned());
            PendingUpdate {
                name: a.name.clone(),
                current_version,
                new_version: a.version.clone(),
                origin: a.repo.clone(),
                arch: a.arch.clone(),
                security: security.contains(&(a.name.as_str(), a.arch.as_str())),
                excluded: false,
            }
        })
        .collect()
}

/// Parses `dnf -q versionlock list`: `name-[epoch:]version-release.*` per line (`!`-prefixed
/// lines are exclusions, which hold nothing). Returns the locked package names.
pub fn parse_versionlock(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('!') && !l.starts_with("Last metadata"))
        .filter_map(|l| {
            let spec = l.strip_suffix(".*").unwrap_or(l);
            let (nev, _release) = spec.rsplit_once('-')?;
            let (name, _version) = nev.rsplit_once('-')?;
            Some(name.to_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Interprets `needs-restarting -r`: exit 0 = not required, exit 1 with the "Reboot is required"
/// report = required (with the listed packages); a missing plugin or command is `Unknown`.
pub fn parse_needs_restarting(exit_code: i32, stdout: &str, stderr: &str) -> RebootState {
    let missing = stderr.contains("No such command")
        || stdout.contains("No such command")
        || stderr.contains("command not found")
        || exit_code == 127;
    if missing {
        return RebootState::Unknown;
    }
    match exit_code {
        0 => RebootState::NotRequired,
        1 if stdout.contains("Reboot is required")
            || stdout.contains("have been updated since boot-up:") =>
        {
            let packages = stdout
                .lines()
                .filter_map(|l| l.trim().strip_prefix("* "))
                .map(|p| p.trim().to_owned())
                .collect();
            RebootState::Required { packages }
        }
        _ => RebootState::Unknown,
    }
}

/// Whether a dnf/yum log shows the rpm database was locked by another process, so the
/// transaction did not run. rpm does not wait for its transaction lock: dnf stops with
/// `RPM: error: can't create transaction lock on …` and `Error: Could not run transaction.`
/// (exit 1). With `exit_on_lock` dnf reports its own lock as `… already locked by PID`.
pub fn lock_was_held(log: &str) -> bool {
    log.lines().map(str::trim).any(|line| {
        line.contains("can't create transaction lock on ")
            || (line.starts_with("Error: ") && line.contains(" already locked by "))
    })
}

/// Packages whose scriptlets failed in a dnf/yum transaction log. dnf finishes the transaction
/// (often with exit code 0) and only reports `Error in POSTIN scriptlet in rpm package NAME` and
/// `warning: %post(NEVRA) scriptlet failed, exit status N`. Sorted, without duplicates.
pub fn failed_scriptlets(log: &str) -> Vec<String> {
    let mut failed: Vec<String> = Vec::new();
    for line in log.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Error in ")
            && let Some((_, name)) = rest.split_once(" scriptlet in rpm package ")
        {
            failed.push(name.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("warning: %")
            && rest.contains(") scriptlet failed")
            && let Some((_, after)) = rest.split_once('(')
            && let Some((nevra, _)) = after.split_once(')')
        {
            match parse_nevra(nevra) {
                Some(n) => failed.push(n.name),
                None => failed.push(nevra.to_owned()),
            }
        }
    }
    failed.sort();
    failed.dedup();
    failed
}

#[cfg(test)]
mod tests {
    //! Files read with `capture` are real output (`tests/data/README.md` says from where);
    //! inline strings are hand-written in dnf's formats, for shapes the captures lack.

    use crate::parse::dnf::{
        Available, Nevra, failed_scriptlets, lock_was_held, parse_check_update,
        parse_needs_restarting, parse_nevra, parse_updateinfo_security, parse_versionlock,
        pending_updates,
    };
    use crate::parse::installed::{Installed, parse_installed};
    use crate::parse::{capture, capture_with_exit};
    use crate::types::RebootState;

    #[test]
    fn check_update_captures() {
        let (code, text) = capture_with_exit("dnf-check-update-100.txt");
        assert_eq!(code, 100);
        let found = parse_check_update(code, &text, "").unwrap();
        assert_eq!(
            found,
            [
                available(
                    "cap-a-rather-long-package-name-for-wrapping",
                    "noarch",
                    "1.1-1",
                    "tendhost"
                ),
                // 1.1 obsoletes cap-old: listed here and again under "Obsoleting Packages".
                available("cap-conflict", "noarch", "1.1-1", "tendhost"),
                available("cap-fail", "noarch", "1.1-1", "tendhost"),
                // 1.1 requires the new cap-dep, which dnf installs without listing it here.
                available("cap-newdep", "noarch", "1.1-1", "tendhost"),
                available("cap-normal", "noarch", "1.1-1", "tendhost"),
                available("cap-sec", "noarch", "1.1-1", "tendhost"),
            ]
        );
        assert!(text.contains("Obsoleting Packages\n"), "{text}");
        let (code, text) = capture_with_exit("dnf-check-update-0.txt");
        assert_eq!(parse_check_update(code, &text, ""), Ok(vec![]));

        let (code, text) = capture_with_exit("dnf-updateinfo-security.txt");
        assert_eq!(code, 0);
        let security = parse_updateinfo_security(&text);
        assert_eq!(
            security,
            [Nevra {
                name: "cap-sec".into(),
                version: "1.1-1".into(),
                arch: "noarch".into()
            }]
        );
        let installed = parse_installed(&capture("rpm-qa-installed.txt")).unwrap();
        assert_eq!(installed.len(), 9);
        let pending = pending_updates(&found, &installed, &security);
        let summary: Vec<(&str, Option<&str>, bool)> = pending
            .iter()
            .map(|p| (p.name.as_str(), p.current_version.as_deref(), p.security))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "cap-a-rather-long-package-name-for-wrapping",
                    Some("1.0-1"),
                    false
                ),
                ("cap-conflict", Some("1.0-1"), false),
                ("cap-fail", Some("1.0-1"), false),
                ("cap-newdep", Some("1.0-1"), false),
                ("cap-normal", Some("1.0-1"), false),
                ("cap-sec", Some("1.0-1"), true),
            ]
        );
        let (_, locks) = capture_with_exit("dnf-versionlock-list.txt");
        assert_eq!(parse_versionlock(&locks), ["cap-held"]);
    }

    #[test]
    fn needs_restarting_captures() {
        let (code, out) = capture_with_exit("dnf-needs-restarting-not-required.txt");
        assert_eq!(
            parse_needs_restarting(code, &out, ""),
            RebootState::NotRequired
        );
        let (code, out) = capture_with_exit("dnf-needs-restarting-required.txt");
        assert_eq!(
            parse_needs_restarting(code, &out, ""),
            RebootState::Required {
                packages: vec!["tendhost-reboot-required".into()]
            }
        );
        let (code, out) = capture_with_exit("dnf-needs-restarting-missing.stdout");
        assert_eq!(code, 1);
        let err = capture("dnf-needs-restarting-missing.stderr");
        assert_eq!(
            parse_needs_restarting(code, &out, &err),
            RebootState::Unknown
        );
    }

    #[test]
    fn upgrade_log_capture() {
        let (code, log) = capture_with_exit("dnf-upgrade-scriptlet-failure.log");
        // dnf finishes the transaction and exits 0 although a %post failed.
        assert_eq!(code, 0);
        assert_eq!(failed_scriptlets(&log), ["cap-fail"]);
    }

    fn available(name: &str, arch: &str, version: &str, repo: &str) -> Available {
        Available {
            name: name.into(),
            arch: arch.into(),
            version: version.into(),
            repo: repo.into(),
        }
    }

    #[test]
    fn check_update_exit_codes() {
        assert_eq!(parse_check_update(0, "\n", ""), Ok(vec![]));
        let err = parse_check_update(1, "", "Error: Failed to download metadata for repo 'x'")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited with 1"), "{err}");
        assert!(err.contains("Failed to download metadata"), "{err}");
        let err = parse_check_update(100, "\n", "").unwrap_err().to_string();
        assert!(err.contains("no package listed"), "{err}");
    }

    /// Hand-written in dnf's layout: a name so long that dnf wraps it (the captured long name
    /// fits), an epoch, and an obsoletes block (the captured one is in `check_update_captures`).
    #[test]
    fn check_update_wrapped_and_obsoletes() {
        let text = "\n\
a-very-long-package-name-that-wraps.x86_64\n\
                                   2:1.0-1.fc39                updates\n\
small.noarch   1.1-1   tendhost-fleet\n\
Obsoleting Packages\n\
new.noarch  2-1  updates\n    old.noarch  1-1  @System\n";
        assert_eq!(
            parse_check_update(100, text, ""),
            Ok(vec![
                available(
                    "a-very-long-package-name-that-wraps",
                    "x86_64",
                    "2:1.0-1.fc39",
                    "updates"
                ),
                available("small", "noarch", "1.1-1", "tendhost-fleet"),
            ])
        );
        let err = parse_check_update(100, "foo.noarch 1.0\n", "").unwrap_err();
        assert_eq!(err.line, 1);
        let err = parse_check_update(100, "foo 1.0 repo\n", "").unwrap_err();
        assert!(err.to_string().contains("NAME.ARCH"), "{err}");
    }

    #[test]
    fn nevras() {
        assert_eq!(
            parse_nevra("python3-dnf-4.14.0-1.fc37.noarch"),
            Some(Nevra {
                name: "python3-dnf".into(),
                version: "4.14.0-1.fc37".into(),
                arch: "noarch".into()
            })
        );
        assert_eq!(
            parse_nevra("bash-1:5.2-1.x86_64").unwrap().version,
            "1:5.2-1"
        );
        assert_eq!(parse_nevra("nodash.noarch"), None);
        assert_eq!(parse_nevra("x"), None);
    }

    #[test]
    fn updateinfo_security() {
        let text = "FEDORA-2023-1a2b3c  Important/Sec.  openssl-libs-1:3.0.9-2.fc38.x86_64\n\
                    FLEET-2026-0001     Moderate/Sec.   tendhost-sec-1.1-1.noarch\n\n";
        let names: Vec<String> = parse_updateinfo_security(text)
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, ["openssl-libs", "tendhost-sec"]);
    }

    #[test]
    fn installed_and_pending() {
        let installed = parse_installed("small\tnoarch\t1.0-1\nbash\tx86_64\t5.2-1\tii\n").unwrap();
        assert_eq!(
            installed[0],
            Installed {
                name: "small".into(),
                arch: "noarch".into(),
                version: "1.0-1".into(),
                status: "ii".into()
            }
        );
        let err = parse_installed("ok\tnoarch\t1\tii\nbroken line\n").unwrap_err();
        assert_eq!(err.line, 2);
        let security = parse_updateinfo_security("ADV-1 Important/Sec. small-1.1-1.noarch\n");
        let pending = pending_updates(
            &[
                available("small", "noarch", "1.1-1", "fleet"),
                available("fresh", "noarch", "1-1", "fleet"),
            ],
            &installed,
            &security,
        );
        assert_eq!(pending[0].current_version.as_deref(), Some("1.0-1"));
        assert!(pending[0].security);
        assert_eq!(pending[1].current_version, None);
        assert!(!pending[1].security);
    }

    #[test]
    fn lock_detection() {
        // Captured on a dnf fleet host (dnf 4.14, rpm 4.18) while another process held
        // rpm's transaction lock with fcntl; dnf exited 1.
        let captured = "Running transaction\n\
            RPM: error: can't create transaction lock on /root/.rpmdb/.rpm.lock \
            (Resource temporarily unavailable)\n\
            Error: Could not run transaction.\n";
        assert!(lock_was_held(captured));
        assert!(lock_was_held("Error: RPMDB already locked by 812\n"));
        assert!(!lock_was_held("Error: Could not run transaction.\n"));
        assert!(!lock_was_held(""));
    }

    #[test]
    fn versionlock() {
        assert_eq!(
            parse_versionlock("tendhost-held-0:1.0-1.*\n!excluded-0:2-1.*\nbash-0:5.2-1.fc38.*\n"),
            ["bash", "tendhost-held"]
        );
    }

    #[test]
    fn needs_restarting() {
        assert_eq!(
            parse_needs_restarting(
                0,
                "No core libraries or services have been updated since boot-up.\nReboot should not be necessary.\n",
                ""
            ),
            RebootState::NotRequired
        );
        assert_eq!(
            parse_needs_restarting(
                1,
                "Core libraries or services have been updated since boot-up:\n  * kernel\n  * systemd\n\nReboot is required to fully utilize these updates.\nMore information: https://access.redhat.com/solutions/27943\n",
                ""
            ),
            RebootState::Required {
                packages: vec!["kernel".into(), "systemd".into()]
            }
        );
        assert_eq!(
            parse_needs_restarting(
                1,
                "",
                "No such command: needs-restarting. Please use /usr/bin/dnf --help\n"
            ),
            RebootState::Unknown
        );
        assert_eq!(
            parse_needs_restarting(127, "", "sh: needs-restarting: not found"),
            RebootState::Unknown
        );
    }

    #[test]
    fn scriptlet_failures() {
        let log = "  Running scriptlet: broken-1.1-1.noarch\n\
warning: %post(broken-1.1-1.noarch) scriptlet failed, exit status 1\n\
\n\
Error in POSTIN scriptlet in rpm package broken\n\
  Verifying        : broken-1.1-1.noarch\n";
        assert_eq!(failed_scriptlets(log), ["broken"]);
        assert!(failed_scriptlets("Complete!\n").is_empty());
    }
}
