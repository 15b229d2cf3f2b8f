//! Progress of a running upgrade, one output line at a time: which package a line says was
//! just finished (dpkg's `Setting up NAME (VERSION) ...`, dnf's `  Upgrading : NVRA  i/n`).
//! The core counts these lines into `update_progress` events while the upgrade streams. Pure;
//! tested on captured upgrade logs (`tests/data/`).

/// The package a progress line finished: dpkg's `Setting up NAME (VERSION) ...` (an arch
/// qualifier `NAME:ARCH` is dropped) or dnf's `  Upgrading        : NAME-VERSION 1/4` (dnf's
/// column, cut where dnf cuts long names). `None` for every other line.
pub fn progress_package(line: &str) -> Option<&str> {
    if let Some(rest) = line.strip_prefix("Setting up ") {
        return rest
            .split_whitespace()
            .next()
            .map(|p| p.split(':').next().unwrap_or(p));
    }
    let trimmed = line.trim_start();
    let rest = trimmed
        .strip_prefix("Upgrading")?
        .trim_start()
        .strip_prefix(':')?;
    rest.split_whitespace().next()
}

#[cfg(test)]
mod tests {
    use crate::parse::capture;
    use crate::parse::progress::progress_package;

    fn progress_of(log: &str) -> Vec<&str> {
        log.lines().filter_map(progress_package).collect()
    }

    #[test]
    fn apt_upgrade_capture() {
        let log = capture("apt-upgrade-postinst-failure.log");
        assert_eq!(
            progress_of(&log),
            [
                "cap-normal",
                "cap-a-rather-long-package-name-for-wrapping",
                // Its postinst failed, but dpkg did reach it.
                "cap-fail",
                "cap-sec",
                "cap-conflict",
                "cap-dep",
                "cap-newdep",
            ]
        );
    }

    #[test]
    fn dnf_upgrade_capture() {
        let log = capture("dnf-upgrade-scriptlet-failure.log");
        // The `Upgrading:` header of the transaction table, `Cleanup` and `Verifying` lines
        // are not progress.
        assert_eq!(
            progress_of(&log),
            [
                "cap-newdep-1.1-1.noarch",
                "cap-sec-1.1-1.noarch",
                "cap-normal-1.1-1.noarch",
                "cap-fail-1.1-1.noarch",
                "cap-conflict-1.1-1.noarch",
                // dnf cuts the long name to its column width in the captured log.
                "cap-a-rather-long-package-name-for-wrapping-1.1-1.",
            ]
        );
    }

    #[test]
    fn logs_without_progress() {
        for name in ["apt-upgrade-lock-held.log", "apt-upgrade-interrupted.log"] {
            assert_eq!(progress_of(&capture(name)), Vec::<&str>::new(), "{name}");
        }
    }

    #[test]
    fn single_lines() {
        assert_eq!(
            progress_package("Setting up libc6:amd64 (2.36) ..."),
            Some("libc6")
        );
        assert_eq!(progress_package("Unpacking x (1) ..."), None);
        assert_eq!(progress_package("Upgrading:"), None);
        assert_eq!(progress_package(""), None);
    }
}
