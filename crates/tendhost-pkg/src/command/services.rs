//! The commands behind `services_to_restart`: the `/proc/*/maps` scan (as root: other users'
//! maps are private), `needrestart -b` where it is installed, and the restart of one unit
//! (`systemctl` under systemd, else `service`). Unit names are argv elements, never pasted
//! into a shell line.

use std::time::Duration;

use tendhost_exec::Cmd;

/// Prints, for every process with a mapping of a deleted file, `@@proc PID`, `comm NAME`,
/// `unit NAME` (its systemd unit from the cgroup; an `/etc/init.d` script whose `/run/*.pid`
/// holds the pid) and its deleted mappings as `map LINE` (parsed by
/// `parse::services::parse_stale_processes`).
pub fn scan() -> Cmd {
    Cmd::shell(
        "for d in /proc/[0-9]*; do p=${d#/proc/}; \
         m=$(grep ' (deleted)$' \"$d/maps\" 2>/dev/null) || continue; \
         echo \"@@proc $p\"; echo \"comm $(cat \"$d/comm\" 2>/dev/null)\"; \
         u=$(sed -n 's|.*/\\([^/]*\\.service\\)$|\\1|p' \"$d/cgroup\" 2>/dev/null | head -n 1); \
         [ -n \"$u\" ] && echo \"unit $u\"; \
         for f in /run/*.pid; do [ -r \"$f\" ] || continue; n=$(basename \"$f\" .pid); \
         [ \"$(head -n 1 \"$f\" 2>/dev/null)\" = \"$p\" ] && [ -x \"/etc/init.d/$n\" ] && echo \"unit $n\"; done; \
         printf '%s\\n' \"$m\" | sed 's/^/map /'; done; true",
    )
    .privileged()
    .timeout(Duration::from_secs(120))
}

/// `needrestart -b` when it is installed (prints nothing otherwise); `-r l` lists only.
pub fn needrestart() -> Cmd {
    Cmd::shell(
        "command -v needrestart >/dev/null 2>&1 || exit 0; \
         needrestart -r l -b 2>/dev/null; true",
    )
    .privileged()
    .timeout(Duration::from_secs(120))
}

/// Exits 0 when the host runs systemd.
pub fn has_systemd() -> Cmd {
    Cmd::new("test").args(["-d", "/run/systemd/system"])
}

/// Restarts `unit`: `systemctl restart UNIT`, or `service NAME restart` without systemd.
pub fn restart(unit: &str, systemd: bool) -> Cmd {
    let cmd = if systemd {
        Cmd::new("systemctl").args(["restart", unit])
    } else {
        Cmd::new("service").args([unit.strip_suffix(".service").unwrap_or(unit), "restart"])
    };
    cmd.privileged().timeout(Duration::from_secs(300))
}

#[cfg(test)]
mod tests {
    use crate::command::services::restart;

    #[test]
    fn units_are_arguments() {
        assert_eq!(
            restart("nginx.service", true).display(),
            "systemctl restart nginx.service"
        );
        assert_eq!(
            restart("nginx.service", false).display(),
            "service nginx restart"
        );
        assert_eq!(
            restart("th-sleeper", false).display(),
            "service th-sleeper restart"
        );
    }
}
