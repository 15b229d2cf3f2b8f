//! System probes and the reboot: package-manager detection, boot identity, inventory (plain
//! commands, plus `osqueryi --json` when the host has it), and the detached reboot command.

use std::time::Duration;

use tendhost_exec::{Cmd, quote_line};

use crate::command::{apt, dnf};
use crate::types::PackageManager;

/// Prints sections `os-release` and `tools` (which of apt-get, dnf, yum are on `PATH`).
pub fn detect() -> Cmd {
    Cmd::shell(
        "echo @@tendhost:os-release@@; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true; \
         echo @@tendhost:tools@@; for t in apt-get dnf yum; do command -v \"$t\" >/dev/null 2>&1 && echo \"$t\"; done; true",
    )
}

const BOOT_IDENTITY: &str = "echo @@tendhost:boot-id@@; cat /proc/sys/kernel/random/boot_id; \
     echo @@tendhost:pid1-stat@@; cat /proc/1/stat";

/// Prints sections `boot-id` and `pid1-stat`.
pub fn boot_identity() -> Cmd {
    Cmd::shell(BOOT_IDENTITY).timeout(Duration::from_secs(30))
}

/// The osquery query behind the inventory; one row with our column names.
pub const OSQUERY_INVENTORY: &str = "SELECT o.name AS os_name, o.version AS os_version, \
k.version AS kernel, s.cpu_type AS arch, u.total_seconds AS uptime_seconds, \
(SELECT blocks_available * blocks_size FROM mounts WHERE path = '/') AS disk_free_root, \
(SELECT count(*) FROM deb_packages) AS deb_packages, \
(SELECT count(*) FROM rpm_packages) AS rpm_packages \
FROM os_version o, kernel_info k, system_info s, uptime u;";

/// Prints the inventory sections (see `parse::system::parse_inventory`). The installed package
/// count comes from the manager's own database (dpkg's fully installed packages, or rpm's).
pub fn inventory(manager: Option<PackageManager>) -> Cmd {
    let apt_count = format!("{} | grep -c '^.i'", apt_status_listing());
    let rpm_count = "rpm -qa 2>/dev/null | wc -l".to_owned();
    let count = match manager {
        Some(PackageManager::Apt) => apt_count,
        Some(PackageManager::Dnf | PackageManager::Yum) => rpm_count,
        None => format!(
            "if command -v dpkg-query >/dev/null 2>&1; then {apt_count}; else {rpm_count}; fi"
        ),
    };
    Cmd::shell(format!(
        "echo @@tendhost:os-release@@; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null || true\n\
         echo @@tendhost:kernel@@; uname -r\n\
         echo @@tendhost:arch@@; uname -m\n\
         echo @@tendhost:uptime@@; cat /proc/uptime\n\
         {BOOT_IDENTITY}\n\
         echo @@tendhost:packages@@; {count} || true\n\
         echo @@tendhost:df@@; df -Pk /\n\
         if command -v osqueryi >/dev/null 2>&1; then echo @@tendhost:osquery@@; osqueryi --json {query} 2>/dev/null || true; fi\n",
        query = tendhost_exec::quote(OSQUERY_INVENTORY),
    ))
    .env("LC_ALL", "C")
    .timeout(Duration::from_secs(120))
}

fn apt_status_listing() -> String {
    let mut listing = apt::installed().display();
    listing.push_str(" 2>/dev/null | cut -f4");
    listing
}

/// Which `needs-restarting`/reboot-required probe serves `manager`.
pub fn reboot_state(manager: PackageManager) -> Cmd {
    match manager {
        PackageManager::Apt => apt::reboot_probe(),
        PackageManager::Dnf | PackageManager::Yum => dnf::needs_restarting(manager),
    }
}

/// The reboot, issued detached (after a 1 s pause, so this command returns before the host goes
/// down): `reboot_command` as argv when given, else `systemctl reboot` when systemd runs the
/// host, else `shutdown -r now`. Prints `tendhost-reboot issued`.
pub fn reboot(reboot_command: Option<&[String]>) -> Cmd {
    let action = match reboot_command {
        Some(argv) => format!("exec {}", quote_line(argv)),
        None => "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; \
                 then exec systemctl reboot; else exec shutdown -r now; fi"
            .to_owned(),
    };
    let detached = format!("sleep 1; {action}");
    Cmd::shell(format!(
        "setsid nohup sh -c {inner} >/dev/null 2>&1 </dev/null &\necho 'tendhost-reboot issued'\n",
        inner = tendhost_exec::quote(detached),
    ))
    .privileged()
    .timeout(Duration::from_secs(30))
}
