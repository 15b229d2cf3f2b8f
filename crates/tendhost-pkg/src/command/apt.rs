//! apt and dpkg commands: list refresh, the `-s` simulation, holds, `dpkg --audit`, the
//! non-interactive upgrade and the dpkg repair, the installed-package snapshot and the
//! reboot-required probe.

use std::time::Duration;

use tendhost_exec::Cmd;

use crate::options::PkgOptions;

/// Environment of every apt/dpkg call that may change the system: no prompts (debconf,
/// needrestart) and C-locale messages for the parsers. needrestart's apt hook only lists and
/// is suspended: it never restarts services by itself (tendhost reports them, and restarts
/// them only with `restart_services = "restart"`).
pub const NONINTERACTIVE_ENV: [(&str, &str); 4] = [
    ("DEBIAN_FRONTEND", "noninteractive"),
    ("NEEDRESTART_MODE", "l"),
    ("NEEDRESTART_SUSPEND", "1"),
    ("LC_ALL", "C"),
];

fn with_env(mut cmd: Cmd) -> Cmd {
    for (key, value) in NONINTERACTIVE_ENV {
        cmd = cmd.env(key, value);
    }
    cmd
}

fn lock_timeout(opts: &PkgOptions) -> String {
    format!("DPkg::Lock::Timeout={}", opts.lock_timeout_secs())
}

/// `apt-get -q -o DPkg::Lock::Timeout=N update` (as root).
pub fn refresh(opts: &PkgOptions) -> Cmd {
    with_env(Cmd::new("apt-get"))
        .args(["-q", "-o", &lock_timeout(opts), "update"])
        .privileged()
        .timeout(
            opts.lock_timeout
                .saturating_add(Duration::from_secs(10 * 60)),
        )
}

/// `LC_ALL=C apt-get -s dist-upgrade` (or `upgrade`): prints `Inst`/`Conf`/`Remv` lines and
/// needs no root.
pub fn simulate(opts: &PkgOptions) -> Cmd {
    Cmd::new("apt-get")
        .env("LC_ALL", "C")
        .args(["-s", opts.apt_upgrade.verb()])
}

/// The held packages, one name a line, as `apt-mark showhold` prints them: the packages
/// whose dpkg selection is `hold` (what `apt-mark hold` sets), read with `dpkg-query`, which
/// costs the host half the CPU of `apt-mark` (no apt cache is built).
pub fn showhold() -> Cmd {
    Cmd::shell("dpkg-query -W -f='${db:Status-Want} ${binary:Package}\\n' | sed -n 's/^hold //p'")
        .env("LC_ALL", "C")
}

/// `dpkg --audit`: prints packages left half-installed or half-configured (an interrupted dpkg).
pub fn audit() -> Cmd {
    Cmd::new("dpkg").env("LC_ALL", "C").arg("--audit")
}

/// The upgrade itself: `apt-get -y -q -o Dpkg::Options::=--force-confdef -o
/// Dpkg::Options::=--force-confold -o DPkg::Lock::Timeout=N dist-upgrade` with
/// [`NONINTERACTIVE_ENV`] (as root).
pub fn upgrade(opts: &PkgOptions) -> Cmd {
    with_env(Cmd::new("apt-get"))
        .args([
            "-y",
            "-q",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "-o",
            &lock_timeout(opts),
            opts.apt_upgrade.verb(),
        ])
        .privileged()
}

/// The upgrade of named packages only: `apt-get -y -q -o ... install --only-upgrade NAME...
/// [NAME=VERSION...]` with [`NONINTERACTIVE_ENV`] (as root). apt installs what the named
/// upgrades need; `keep` pins excluded packages at their installed version.
pub fn upgrade_only(opts: &PkgOptions, names: &[String], keep: &[(String, String)]) -> Cmd {
    with_env(Cmd::new("apt-get"))
        .args([
            "-y",
            "-q",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
            "-o",
            &lock_timeout(opts),
            "install",
            "--only-upgrade",
        ])
        .args(names.iter().map(String::as_str))
        .args(
            keep.iter()
                .map(|(name, version)| format!("{name}={version}")),
        )
        .privileged()
}

/// The repair of an interrupted dpkg: `dpkg --force-confdef --force-confold --configure -a`
/// with [`NONINTERACTIVE_ENV`] (as root).
pub fn repair() -> Cmd {
    with_env(Cmd::new("dpkg"))
        .args(["--force-confdef", "--force-confold", "--configure", "-a"])
        .privileged()
}

/// Installed packages as `NAME<TAB>ARCH<TAB>VERSION<TAB>STATUS` lines.
pub fn installed() -> Cmd {
    Cmd::new("dpkg-query").args([
        "-W",
        "-f=${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Abbrev}\\n",
    ])
}

/// Shell script printing sections `flag` (`required`/`not_required`) and `pkgs` from
/// `/var/run/reboot-required(.pkgs)`. The flag alone (no `.pkgs`, as a plain `touch` leaves
/// it) is a reboot required with no package named, not a failed probe.
pub const REBOOT_PROBE: &str = "if [ -e /var/run/reboot-required ]; then \
echo @@tendhost:flag@@; echo required; \
echo @@tendhost:pkgs@@; cat /var/run/reboot-required.pkgs 2>/dev/null || true; \
else echo @@tendhost:flag@@; echo not_required; fi";

/// The reboot-required probe as a command.
pub fn reboot_probe() -> Cmd {
    Cmd::shell(REBOOT_PROBE)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::command::apt::{repair, simulate, upgrade, upgrade_only};
    use crate::options::{AptUpgrade, PkgOptions};

    #[test]
    fn upgrade_line_is_exactly_non_interactive() {
        let opts = PkgOptions {
            lock_timeout: Duration::from_secs(7),
            ..PkgOptions::default()
        };
        assert_eq!(
            upgrade(&opts).display(),
            "env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1 LC_ALL=C apt-get -y -q \
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
             -o DPkg::Lock::Timeout=7 dist-upgrade"
        );
        assert_eq!(
            upgrade(&opts).display_as(tendhost_exec::Privilege::Sudo),
            format!("sudo -n -- {}", upgrade(&opts).display())
        );
        assert_eq!(
            repair().display(),
            "env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1 LC_ALL=C dpkg \
             --force-confdef --force-confold --configure -a"
        );
        let plain = PkgOptions {
            apt_upgrade: AptUpgrade::Upgrade,
            ..PkgOptions::default()
        };
        assert_eq!(
            simulate(&plain).display(),
            "env LC_ALL=C apt-get -s upgrade"
        );
        assert_eq!(
            upgrade_only(
                &opts,
                &["openssl".to_owned(), "libssl3".to_owned()],
                &[("linux-image-amd64".to_owned(), "6.1.0+1".to_owned())]
            )
            .display(),
            "env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l NEEDRESTART_SUSPEND=1 LC_ALL=C apt-get -y -q \
             -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
             -o DPkg::Lock::Timeout=7 install --only-upgrade openssl libssl3 \
             linux-image-amd64=6.1.0+1"
        );
    }
}
