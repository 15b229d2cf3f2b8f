//! One look at an apt host in one command: the list refresh (when asked), the upgrade
//! simulation, holds, `dpkg --audit`, the reboot-required probe and the inventory (always,
//! never, or only when the host's boot id is not the one last seen: see [`InventoryRead`]),
//! run in sequence by one shell script whose output is cut into parts by marker
//! lines (`parse::look`). Each part's line is the same `Cmd` the step-by-step check runs
//! (`command::apt`, `command::system`), shown with `Cmd::display` (every word quoted), so the
//! script runs exactly those commands; only the round trips between them are gone.
//!
//! Part layout: every marker line `@@tendhost-part:NAME@@` is printed after a newline of its
//! own (so a part whose output lacks a final newline cannot swallow it; the parser takes that
//! newline back off), and each part `NAME` is followed by `NAME.rc` holding its exit code. A
//! failed refresh ends the script there (nothing else is worth reading); the last part is
//! always `end`, so an answer cut short is told from a complete one.

use std::fmt::Write as _;
use std::time::Duration;

use tendhost_exec::{Cmd, quote};

use crate::command::{apt, system};
use crate::options::{ListRefresh, PkgOptions};
use crate::types::PackageManager;

/// The prefix of the script's part markers (`@@tendhost-part:NAME@@`); distinct from the
/// `@@tendhost:` sections inside the reboot probe's and the inventory's own output.
pub const PART_PREFIX: &str = "@@tendhost-part:";

/// Part names, in the order the script prints them.
pub const REFRESH: &str = "refresh";
pub const SIMULATE: &str = "simulate";
pub const SHOWHOLD: &str = "showhold";
pub const AUDIT: &str = "audit";
pub const REBOOT: &str = "reboot";
pub const INVENTORY: &str = "inventory";
/// A fingerprint of what the simulation, holds and audit read (dpkg's status, the package
/// lists, apt's sources, pins and settings: name, inode, size and mtime of each, and the
/// upgrade verb), printed after the refresh.
pub const FINGERPRINT: &str = "fingerprint";
/// Printed instead of the simulation, holds and audit when the fingerprint is the caller's:
/// nothing they read has changed since the look that printed it.
pub const UNCHANGED: &str = "unchanged";
/// Printed instead of the simulation by a job's closing look when the upgrade that just ran
/// succeeded and apt's own last summary line says `... and 0 not upgraded.`: nothing is left
/// to upgrade. Holds the line.
pub const NOTHING_PENDING: &str = "nothing-pending";
/// Seconds since boot (`/proc/uptime`'s first field, read by the shell itself), printed when
/// the inventory may be skipped.
pub const UPTIME: &str = "uptime";
pub const END: &str = "end";

/// Appends part `name` running `line`, then its exit code as part `name.rc`.
fn part(script: &mut String, name: &str, line: &str) {
    let _ = write!(
        script,
        "printf '\\n{PART_PREFIX}{name}@@\\n'\n\
         {line}\n\
         rc=$?\n\
         printf '\\n{PART_PREFIX}{name}.rc@@\\n%s\\n' \"$rc\"\n"
    );
}

/// Whether a look reads the inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InventoryRead<'a> {
    Always,
    Never,
    /// Only when the host's boot id differs from this one (it rebooted since, or this is not
    /// the host last seen); the part `uptime` keeps the last inventory's uptime current.
    UnlessBoot(&'a str),
}

/// The apt look: refresh (its stderr joined to its part, where apt reports a held lock) when
/// `opts.refresh` says so, the fingerprint, then simulation, holds and audit (skipped, part
/// [`UNCHANGED`] instead, when the fingerprint is `unchanged_since`), reboot probe and the
/// inventory as `inventory` says. Runs as root when it refreshes (as `apt::refresh` does); the
/// rest needs no root.
pub fn apt(opts: &PkgOptions, inventory: InventoryRead<'_>, unchanged_since: Option<&str>) -> Cmd {
    build(opts, inventory, unchanged_since, false)
}

/// [`apt`] for a job's closing look after an upgrade whose apt summary line (the script's
/// `$1`) says nothing was left unupgraded: part [`NOTHING_PENDING`] holds that line instead of
/// the simulation; holds, audit, reboot probe and inventory run as ever.
pub fn apt_settled(opts: &PkgOptions) -> Cmd {
    build(opts, InventoryRead::Always, None, true)
}

fn build(
    opts: &PkgOptions,
    inventory: InventoryRead<'_>,
    unchanged_since: Option<&str>,
    settled: bool,
) -> Cmd {
    let mut script = String::new();
    let refresh = opts.refresh == ListRefresh::Refresh;
    if refresh {
        part(
            &mut script,
            REFRESH,
            &format!("{} 2>&1", apt::refresh(opts).display()),
        );
        script.push_str("[ \"$rc\" -eq 0 ] || { printf '\\n@@tendhost-part:end@@\\n'; exit 0; }\n");
    }
    let _ = writeln!(
        script,
        "fp=$(stat -c '%n %i %s %Y' /var/lib/dpkg/status /var/lib/apt/lists/*_* \
         /etc/apt/sources.list /etc/apt/sources.list.d/* /etc/apt/preferences \
         /etc/apt/preferences.d/* /etc/apt/apt.conf.d/* 2>/dev/null | cksum)\n\
         fp=\"{verb} $fp\"",
        verb = opts.apt_upgrade.verb(),
    );
    part(&mut script, FINGERPRINT, "echo \"$fp\"");
    let mut steps = String::new();
    if settled {
        part(&mut steps, NOTHING_PENDING, "printf '%s\\n' \"$1\"");
    } else {
        part(&mut steps, SIMULATE, &apt::simulate(opts).display());
    }
    part(&mut steps, SHOWHOLD, &apt::showhold().display());
    part(&mut steps, AUDIT, &apt::audit().display());
    match unchanged_since {
        Some(known) => {
            let mut unchanged = String::new();
            part(&mut unchanged, UNCHANGED, "echo \"$fp\"");
            let _ = write!(
                script,
                "if [ \"$fp\" = {known} ]; then\n{unchanged}else\n{steps}fi\n",
                known = quote(known),
            );
        }
        None => script.push_str(&steps),
    }
    part(&mut script, REBOOT, &apt::reboot_probe().display());
    let read_inventory = || {
        let mut text = String::new();
        part(
            &mut text,
            INVENTORY,
            &system::inventory(Some(PackageManager::Apt)).display(),
        );
        text
    };
    match inventory {
        InventoryRead::Always => script.push_str(&read_inventory()),
        InventoryRead::Never => {}
        InventoryRead::UnlessBoot(boot_id) => {
            // `read` is the shell's own: no process is started for these two facts.
            part(
                &mut script,
                UPTIME,
                "read up rest < /proc/uptime && echo \"$up\"",
            );
            let _ = write!(
                script,
                "boot=''; read boot < /proc/sys/kernel/random/boot_id\n\
                 if [ \"$boot\" != {known} ]; then\n{inventory}fi\n",
                known = quote(boot_id),
                inventory = read_inventory(),
            );
        }
    }
    let _ = writeln!(script, "printf '\\n{PART_PREFIX}{END}@@\\n'");
    let cmd = Cmd::shell(script).timeout(
        opts.lock_timeout
            .saturating_add(Duration::from_secs(10 * 60)),
    );
    if refresh { cmd.privileged() } else { cmd }
}

#[cfg(test)]
mod tests {
    use crate::command::look::{InventoryRead, apt};
    use crate::options::{ListRefresh, PkgOptions};

    #[test]
    fn the_look_runs_the_step_commands_quoted_and_needs_root_only_to_refresh() {
        let opts = PkgOptions::default();
        let cmd = apt(&opts, InventoryRead::Always, None);
        assert!(cmd.is_privileged());
        let line = cmd.display();
        for expected in [
            "apt-get -q -o DPkg::Lock::Timeout=60 update 2>&1",
            "apt-get -s dist-upgrade",
            "db:Status-Want",
            "dpkg --audit",
            "reboot-required",
            "@@tendhost:df@@",
            "@@tendhost-part:end@@",
        ] {
            assert!(line.contains(expected), "{expected} in {line}");
        }
        let skip = PkgOptions {
            refresh: ListRefresh::Skip,
            ..PkgOptions::default()
        };
        let cmd = apt(&skip, InventoryRead::Never, Some("dist-upgrade 1 2"));
        assert!(!cmd.is_privileged());
        let line = cmd.display();
        assert!(
            !line.contains(" update") && !line.contains("@@tendhost:df@@"),
            "{line}"
        );
        let boot = "0f1e-'$(touch pwned)'";
        let cmd = apt(&skip, InventoryRead::UnlessBoot(boot), None);
        let script = cmd.arguments()[1].to_str().unwrap();
        assert!(
            script.contains("@@tendhost:df@@") && script.contains("/proc/uptime"),
            "{script}"
        );
        assert!(
            script.contains(&format!("!= {} ]", tendhost_exec::quote(boot))),
            "{script}"
        );
    }
}
