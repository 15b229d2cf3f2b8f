//! Parsers for apt and dpkg output: the simulation of `LC_ALL=C apt-get -s (dist-)upgrade`
//! (its `Inst`/`Conf`/`Remv` lines and the "kept back" block), `apt-mark showhold`, and what an
//! upgrade's log says about failed packages and a held lock. Pure; no commands here.

use crate::parse::ParseError;
use crate::types::{PendingUpdate, Removal};

const SIMULATION: &str = "apt-get -s output";

/// What `apt-get -s dist-upgrade` (or `upgrade`) would do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Simulation {
    /// Every `Inst` line: upgrades, and new packages (no current version).
    pub installs: Vec<PendingUpdate>,
    pub removals: Vec<Removal>,
    pub kept_back: Vec<String>,
}

/// Parses the simulation output of `LC_ALL=C apt-get -s dist-upgrade`.
///
/// `Inst NAME [CURRENT] (NEW RELEASE[, RELEASE..] [ARCH]) [notes..]` (the `[CURRENT]` is absent
/// for a new package), `Remv NAME [VERSION] [notes..]`, `Conf` lines are skipped, and the names
/// under "The following packages have been kept back:" are collected.
pub fn parse_simulation(text: &str) -> Result<Simulation, ParseError> {
    let mut simulation = Simulation::default();
    let mut in_kept_back = false;
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        if in_kept_back {
            if line.starts_with(' ') {
                simulation
                    .kept_back
                    .extend(line.split_whitespace().map(str::to_owned));
                continue;
            }
            in_kept_back = false;
        }
        if line.starts_with("The following packages have been kept back") {
            in_kept_back = true;
        } else if let Some(rest) = line.strip_prefix("Inst ") {
            simulation.installs.push(parse_inst(rest, line_no)?);
        } else if let Some(rest) = line.strip_prefix("Remv ") {
            simulation.removals.push(parse_remv(rest, line_no)?);
        }
    }
    Ok(simulation)
}

fn parse_inst(rest: &str, line_no: usize) -> Result<PendingUpdate, ParseError> {
    let err = |msg: &str| ParseError::new(SIMULATION, line_no, format!("{msg} in `Inst {rest}`"));
    let (name, mut rest) = rest
        .split_once(' ')
        .ok_or_else(|| err("no version after the package name"))?;
    let mut current_version = None;
    if let Some(after) = rest.strip_prefix('[') {
        let (current, after) = after
            .split_once(']')
            .filter(|(current, _)| !current.contains(' '))
            .ok_or_else(|| err("unclosed `[` around the current version"))?;
        current_version = Some(current.to_owned());
        rest = after.trim_start();
    }
    let candidate = rest
        .strip_prefix('(')
        .and_then(|after| after.split_once(')'))
        .map(|(inside, _notes)| inside)
        .ok_or_else(|| err("no `(NEW-VERSION ... [ARCH])` group"))?;
    let mut words: Vec<&str> = candidate.split(' ').filter(|w| !w.is_empty()).collect();
    let arch = words
        .pop()
        .and_then(|w| w.strip_prefix('[')?.strip_suffix(']'))
        .ok_or_else(|| err("no `[ARCH]` at the end of the candidate group"))?;
    if words.is_empty() {
        return Err(err("no new version in the candidate group"));
    }
    let new_version = words.remove(0);
    let origin = words.join(" ");
    Ok(PendingUpdate {
        name: name.to_owned(),
        current_version,
        new_version: new_version.to_owned(),
        security: is_security_origin(&origin),
        origin,
        arch: arch.to_owned(),
        excluded: false,
    })
}

fn parse_remv(rest: &str, line_no: usize) -> Result<Removal, ParseError> {
    let (name, after) = rest.split_once(' ').unwrap_or((rest, ""));
    if name.is_empty() {
        return Err(ParseError::new(
            SIMULATION,
            line_no,
            "`Remv` without a package name",
        ));
    }
    let version = after
        .trim_start()
        .strip_prefix('[')
        .and_then(|v| v.split_once(']'))
        .map(|(v, _)| v.to_owned())
        .unwrap_or_default();
    Ok(Removal {
        name: name.to_owned(),
        version,
    })
}

/// Whether an apt release string names a security suite: any of its comma-separated releases
/// (`Origin:Version/Archive`) has an archive that is `security` or ends in `-security`
/// (`bookworm-security`, `jammy-security`, `oldstable-security`), or a label ending in
/// `-Security` (Debian's `Debian-Security`).
pub fn is_security_origin(origin: &str) -> bool {
    origin.split(',').map(str::trim).any(|release| {
        let (label, rest) = release.split_once(':').unwrap_or(("", release));
        let archive = rest.rsplit('/').next().unwrap_or(rest);
        let archive = archive.to_ascii_lowercase();
        let label = label.to_ascii_lowercase();
        archive == "security" || archive.ends_with("-security") || label.ends_with("-security")
    })
}

/// Parses `apt-mark showhold`: one package name per line.
pub fn parse_showhold(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether an apt/dpkg log shows the package database was locked by another process, so the
/// run gave up (after `DPkg::Lock::Timeout`) without changing anything.
pub fn lock_was_held(log: &str) -> bool {
    log.lines().any(|line| {
        let line = line.trim_start();
        (line.starts_with("E: Could not get lock ") && line.contains("/var/lib/"))
            || line.starts_with("E: Unable to acquire the dpkg frontend lock")
            || line.starts_with("E: Unable to lock the administration directory")
            || line.starts_with("E: Unable to lock directory /var/lib/apt/lists")
            || line.contains("dpkg frontend lock was locked by another process")
            || line.contains("dpkg status database is locked by another process")
    })
}

/// Packages apt/dpkg reported as failed in an upgrade log: the names under "Errors were
/// encountered while processing:" and in `dpkg: error processing package NAME (...)` lines.
/// Sorted, without duplicates.
pub fn failed_packages(log: &str) -> Vec<String> {
    let mut failed = Vec::new();
    let mut in_errors = false;
    for line in log.lines() {
        if in_errors {
            if let Some(name) = line.strip_prefix(' ') {
                let name = name.trim();
                if !name.is_empty() {
                    failed.push(name.to_owned());
                }
                continue;
            }
            in_errors = false;
        }
        if line.starts_with("Errors were encountered while processing:") {
            in_errors = true;
        } else if let Some(rest) = line.strip_prefix("dpkg: error processing package ")
            && let Some(name) = rest.split_whitespace().next()
        {
            failed.push(name.to_owned());
        }
    }
    for name in &mut failed {
        // dpkg names a package `name:arch` in some messages and bare in others.
        if let Some((bare, _arch)) = name.split_once(':') {
            *name = bare.to_owned();
        }
    }
    failed.sort();
    failed.dedup();
    failed
}

/// Whether `dpkg --audit` output reports packages left in an unfinished state.
pub fn audit_reports_problems(text: &str) -> bool {
    text.lines().any(|l| !l.trim().is_empty())
}

#[cfg(test)]
mod tests {
    //! Files read with `capture` are real output (`tests/data/README.md` says from where);
    //! inline strings are hand-written in apt's formats, for shapes the captures lack.

    use crate::parse::apt::{
        audit_reports_problems, failed_packages, is_security_origin, lock_was_held, parse_showhold,
        parse_simulation,
    };
    use crate::parse::{capture, capture_with_exit};
    use crate::types::{PendingUpdate, Removal};

    fn pending(
        name: &str,
        current: Option<&str>,
        new: &str,
        origin: &str,
        arch: &str,
        security: bool,
    ) -> PendingUpdate {
        PendingUpdate {
            name: name.into(),
            current_version: current.map(Into::into),
            new_version: new.into(),
            origin: origin.into(),
            arch: arch.into(),
            security,
            excluded: false,
        }
    }

    fn check_inst(line: &str, expected: &PendingUpdate) {
        let simulation = parse_simulation(line).unwrap();
        assert_eq!(simulation.installs, vec![expected.clone()], "{line}");
    }

    #[test]
    fn inst_lines() {
        check_inst(
            "Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])",
            &pending(
                "bash",
                Some("5.2.15-2+b8"),
                "5.2.15-2+b13",
                "Debian:12.15/oldstable",
                "amd64",
                false,
            ),
        );
        check_inst(
            "Inst libpam-modules-bin [1.5.2-6+deb12u1] (1.5.2-6+deb12u2 Debian:12.15/oldstable [amd64]) [libpam-modules:amd64 on libpam-modules-bin:amd64] [libpam-modules:amd64 ]",
            &pending(
                "libpam-modules-bin",
                Some("1.5.2-6+deb12u1"),
                "1.5.2-6+deb12u2",
                "Debian:12.15/oldstable",
                "amd64",
                false,
            ),
        );
        check_inst(
            "Inst libssl3 [3.0.15-1~deb12u1] (3.0.17-1~deb12u3 Debian:12.15/oldstable, Debian-Security:12/oldstable-security [amd64])",
            &pending(
                "libssl3",
                Some("3.0.15-1~deb12u1"),
                "3.0.17-1~deb12u3",
                "Debian:12.15/oldstable, Debian-Security:12/oldstable-security",
                "amd64",
                true,
            ),
        );
        check_inst(
            "Inst linux-image-6.1.0-99-amd64 (6.1.999-1 Debian-Security:12/oldstable-security [amd64])",
            &pending(
                "linux-image-6.1.0-99-amd64",
                None,
                "6.1.999-1",
                "Debian-Security:12/oldstable-security",
                "amd64",
                true,
            ),
        );
        check_inst(
            "Inst login [1:4.13+dfsg1-1+deb12u1] (1:4.13+dfsg1-1+deb12u2 Debian:12.15/oldstable [amd64])",
            &pending(
                "login",
                Some("1:4.13+dfsg1-1+deb12u1"),
                "1:4.13+dfsg1-1+deb12u2",
                "Debian:12.15/oldstable",
                "amd64",
                false,
            ),
        );
    }

    #[test]
    fn malformed_inst_lines_name_the_line() {
        for (text, needle) in [
            ("Reading...\nInst bash", "line 2: no version"),
            ("Inst bash [1.0 (2.0 x [all])", "unclosed `[`"),
            ("Inst bash [1.0] 2.0 x [all]", "no `(NEW-VERSION"),
            ("Inst bash [1.0] (2.0 x all)", "no `[ARCH]`"),
            ("Inst bash [1.0] ([all])", "no new version"),
        ] {
            let err = parse_simulation(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(err.contains("apt-get -s output"), "{err}");
        }
    }

    #[test]
    fn removals_and_kept_back() {
        let text = "\
Reading package lists...
The following packages will be REMOVED:
  oldlib
The following packages have been kept back:
  foo bar
  baz
The following packages will be upgraded:
  qux
1 upgraded, 0 newly installed, 1 to remove and 3 not upgraded.
Remv oldlib [0.9-1] [qux:amd64 ]
Inst qux [1.0] (1.1 fleet:1/fleet [all])
Conf qux (1.1 fleet:1/fleet [all])
";
        let simulation = parse_simulation(text).unwrap();
        assert_eq!(simulation.kept_back, ["foo", "bar", "baz"]);
        assert_eq!(
            simulation.removals,
            [Removal {
                name: "oldlib".into(),
                version: "0.9-1".into()
            }]
        );
        assert_eq!(simulation.installs.len(), 1);
    }

    #[test]
    fn bookworm_capture() {
        let simulation =
            parse_simulation(&capture("apt-sim-dist-upgrade-bookworm-host.txt")).unwrap();
        // "110 upgraded, 0 newly installed, 0 to remove and 0 not upgraded."
        assert_eq!(simulation.installs.len(), 110);
        assert!(simulation.removals.is_empty());
        assert!(simulation.kept_back.is_empty());
        let by_name = |n: &str| simulation.installs.iter().find(|p| p.name == n).unwrap();
        assert_eq!(
            by_name("base-files"),
            &pending(
                "base-files",
                Some("12.4+deb12u11"),
                "12.4+deb12u15",
                "Debian:12.15/oldstable",
                "amd64",
                false
            )
        );
        assert_eq!(by_name("init-system-helpers").arch, "all");
        let n_security = simulation.installs.iter().filter(|p| p.security).count();
        // 54 lines carry only the security suite, 17 carry both.
        assert_eq!(n_security, 54 + 17);
    }

    #[test]
    fn fleet_dist_upgrade_capture() {
        let simulation = parse_simulation(&capture("apt-sim-dist-upgrade-fleet.txt")).unwrap();
        let summary: Vec<(&str, Option<&str>, &str, &str, bool)> = simulation
            .installs
            .iter()
            .map(|p| {
                assert_eq!(p.arch, "all");
                (
                    p.name.as_str(),
                    p.current_version.as_deref(),
                    p.new_version.as_str(),
                    p.origin.as_str(),
                    p.security,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "cap-a-rather-long-package-name-for-wrapping",
                    Some("1.0"),
                    "1.1",
                    "Tendhost:bookworm",
                    false
                ),
                (
                    "cap-conflict",
                    Some("1.0"),
                    "1.1",
                    "Tendhost:bookworm",
                    false
                ),
                ("cap-dep", None, "1.0", "Tendhost:bookworm", false),
                ("cap-fail", Some("1.0"), "1.1", "Tendhost:bookworm", false),
                ("cap-newdep", Some("1.0"), "1.1", "Tendhost:bookworm", false),
                ("cap-normal", Some("1.0"), "1.1", "Tendhost:bookworm", false),
                (
                    "cap-sec",
                    Some("1.0"),
                    "1.1",
                    "Tendhost-Security:bookworm-security",
                    true
                ),
            ]
        );
        assert_eq!(
            simulation.removals,
            [Removal {
                name: "cap-old".into(),
                version: "1.0".into()
            }]
        );
        assert_eq!(simulation.kept_back, ["cap-held"]);
    }

    #[test]
    fn fleet_upgrade_capture_keeps_back_new_dependencies() {
        let simulation = parse_simulation(&capture("apt-sim-upgrade-fleet.txt")).unwrap();
        assert_eq!(
            simulation.kept_back,
            ["cap-conflict", "cap-held", "cap-newdep"]
        );
        let names: Vec<&str> = simulation
            .installs
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "cap-a-rather-long-package-name-for-wrapping",
                "cap-fail",
                "cap-normal",
                "cap-sec"
            ]
        );
        assert!(simulation.removals.is_empty());
    }

    #[test]
    fn captures_with_nothing_to_install() {
        for name in ["apt-sim-fresh.txt", "apt-sim-half-configured.txt"] {
            let simulation = parse_simulation(&capture(name)).unwrap();
            assert!(simulation.installs.is_empty(), "{name}");
            assert!(simulation.removals.is_empty(), "{name}");
        }
        let (code, text) = capture_with_exit("apt-sim-interrupted.txt");
        assert_eq!(code, 0);
        assert_eq!(parse_simulation(&text).unwrap().kept_back, ["cap-held"]);
        assert_eq!(
            parse_showhold(&capture("apt-mark-showhold.txt")),
            ["cap-held"]
        );
    }

    #[test]
    fn upgrade_log_captures() {
        let (code, log) = capture_with_exit("apt-upgrade-postinst-failure.log");
        assert_eq!(code, 100);
        assert_eq!(failed_packages(&log), ["cap-fail"]);
        assert!(!lock_was_held(&log));

        let (code, log) = capture_with_exit("apt-upgrade-lock-held.log");
        assert_eq!(code, 100);
        assert!(lock_was_held(&log));
        assert!(failed_packages(&log).is_empty());
        let (code, log) = capture_with_exit("dpkg-configure-lock-held.log");
        assert_eq!(code, 2);
        assert!(lock_was_held(&log));

        let (code, log) = capture_with_exit("apt-upgrade-interrupted.log");
        assert_eq!(code, 100);
        assert!(!lock_was_held(&log));
        assert!(log.contains("dpkg was interrupted"));
    }

    #[test]
    fn audit_captures() {
        assert!(audit_reports_problems(&capture(
            "dpkg-audit-half-configured.txt"
        )));
        assert!(audit_reports_problems(&capture(
            "dpkg-audit-interrupted.txt"
        )));
        assert!(!audit_reports_problems("\n"));
    }

    #[test]
    fn security_origins() {
        for (origin, expected) in [
            ("Debian:12.15/oldstable", false),
            ("Debian-Security:12/oldstable-security", true),
            (
                "Debian:12.15/oldstable, Debian-Security:12/oldstable-security",
                true,
            ),
            ("Ubuntu:22.04/jammy-security", true),
            ("Ubuntu:22.04/jammy-updates", false),
            ("tendhost-fleet:1/fleet-security", true),
            ("Tendhost-Security:bookworm-security", true),
            ("Tendhost:bookworm", false),
            ("securityonion:1/stable", false),
            ("", false),
        ] {
            assert_eq!(is_security_origin(origin), expected, "{origin}");
        }
    }

    #[test]
    fn showhold() {
        assert_eq!(parse_showhold("foo\nbar:amd64\n\n"), ["foo", "bar:amd64"]);
        assert!(parse_showhold("").is_empty());
    }

    #[test]
    fn lock_detection() {
        assert!(lock_was_held(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 42 (sleep)\n\
             E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?"
        ));
        assert!(lock_was_held(
            "dpkg: error: dpkg frontend lock was locked by another process with pid 7"
        ));
        assert!(!lock_was_held(
            "E: Sub-process /usr/bin/dpkg returned an error code (1)"
        ));
    }

    #[test]
    fn failed_package_names() {
        let log = "\
Setting up broken (1.1) ...
dpkg: error processing package broken (--configure):
 installed broken package post-installation script subprocess returned error exit status 1
Errors were encountered while processing:
 broken
 other:amd64
E: Sub-process /usr/bin/dpkg returned an error code (1)
";
        assert_eq!(failed_packages(log), ["broken", "other"]);
        assert!(failed_packages("Setting up fine (1.1) ...\n").is_empty());
    }
}
