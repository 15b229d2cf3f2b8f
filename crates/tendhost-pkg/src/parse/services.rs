//! Processes still running replaced code, from the scan of `/proc/*/maps`
//! (`command::services::scan`): a process counts when it has an executable mapping of a file
//! that was deleted or replaced since it was mapped (`... r-xp ... /usr/lib/libssl.so.3
//! (deleted)`), which is what an upgrade leaves behind for every running program whose binary
//! or library it replaced. And the unit names `needrestart -b` adds. Pure and panic-free.

use crate::types::ServiceToRestart;

/// What the scan printed: per process a `@@proc PID` line, then `comm NAME`, `unit NAME`
/// (from its cgroup, or an `/etc/init.d` script whose pid file names it) and `map LINE`
/// lines. Processes without an executable mapping of a deleted file are left out, and so is
/// anything malformed.
pub fn parse_stale_processes(text: &str) -> Vec<ServiceToRestart> {
    let mut found: Vec<ServiceToRestart> = Vec::new();
    let mut current: Option<(ServiceToRestart, bool)> = None;
    let mut close = |current: &mut Option<(ServiceToRestart, bool)>| {
        if let Some((process, stale)) = current.take()
            && stale
            && !found.iter().any(|p| p.pid == process.pid)
        {
            found.push(process);
        }
    };
    for line in text.lines() {
        if let Some(pid) = line.strip_prefix("@@proc ") {
            close(&mut current);
            current = pid
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|pid| *pid > 0)
                .map(|pid| {
                    (
                        ServiceToRestart {
                            pid,
                            command: String::new(),
                            unit: None,
                        },
                        false,
                    )
                });
            continue;
        }
        let Some((process, stale)) = current.as_mut() else {
            continue;
        };
        if let Some(comm) = line.strip_prefix("comm ") {
            process.command = comm.trim().chars().take(64).collect();
        } else if let Some(unit) = line.strip_prefix("unit ") {
            let unit = unit.trim();
            if process.unit.is_none() && is_unit_name(unit) {
                process.unit = Some(unit.to_owned());
            }
        } else if let Some(map) = line.strip_prefix("map ") {
            *stale |= runs_deleted_code(map);
        }
    }
    close(&mut current);
    found
}

/// Whether a `/proc/PID/maps` line is an executable mapping of a deleted regular file.
fn runs_deleted_code(line: &str) -> bool {
    let mut fields = line.split_ascii_whitespace();
    let (Some(_range), Some(perms)) = (fields.next(), fields.next()) else {
        return false;
    };
    // offset, device, inode, then the path (which may hold spaces).
    if fields.by_ref().take(3).count() != 3 || !perms.contains('x') {
        return false;
    }
    let path = fields.collect::<Vec<_>>().join(" ");
    let Some(path) = path.strip_suffix(" (deleted)") else {
        return false;
    };
    path.starts_with('/')
        && !["/dev/", "/memfd:", "/SYSV", "/[", "/proc/"]
            .iter()
            .any(|prefix| path.starts_with(prefix))
}

/// A systemd unit or init script name: `[A-Za-z0-9@._:-]`, 1-128 characters, not starting
/// with `-` (it becomes an argument of `systemctl` or `service`).
pub fn is_unit_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'_' | b':' | b'-'))
}

/// The services `needrestart -b` (batch mode) names: its `NEEDRESTART-SVC: UNIT` lines.
pub fn parse_needrestart_batch(text: &str) -> Vec<String> {
    let mut units: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(unit) = line.strip_prefix("NEEDRESTART-SVC:") {
            let unit = unit.trim();
            if is_unit_name(unit) && !units.iter().any(|u| u == unit) {
                units.push(unit.to_owned());
            }
        }
    }
    units
}

/// Gives processes without a unit the needrestart unit named after their command
/// (`nginx` -> `nginx.service`).
pub fn add_needrestart_units(processes: &mut [ServiceToRestart], units: &[String]) {
    for process in processes.iter_mut().filter(|p| p.unit.is_none()) {
        process.unit = units
            .iter()
            .find(|unit| {
                unit.strip_suffix(".service").unwrap_or(unit) == process.command
                    && !process.command.is_empty()
            })
            .cloned();
    }
}

#[cfg(test)]
mod tests {
    use crate::parse::services::{
        add_needrestart_units, parse_needrestart_batch, parse_stale_processes,
    };
    use crate::types::ServiceToRestart;

    fn process(pid: u32, command: &str, unit: Option<&str>) -> ServiceToRestart {
        ServiceToRestart {
            pid,
            command: command.to_owned(),
            unit: unit.map(str::to_owned),
        }
    }

    /// Lines in the layout of `/proc/PID/maps` (written for this test; the fleet test
    /// `it/gates_services.rs` runs the parser on a real host's scan).
    #[test]
    fn executable_mappings_of_deleted_files_count() {
        let scan = "@@proc 212\ncomm th-sleeper\nunit th-sleeper\n\
            map 7f1c2a828000-7f1c2a84e000 r--p 00000000 00:2e 1061834                    /opt/th-lib/libc.so.6 (deleted)\n\
            map 7f1c2a84e000-7f1c2a9a3000 r-xp 00026000 00:2e 1061834                    /opt/th-lib/libc.so.6 (deleted)\n\
            @@proc 213\ncomm cat\n\
            map 7f00-7f10 rw-s 00000000 00:01 1024 /dev/zero (deleted)\n\
            map 7f00-7f10 r-xp 00000000 00:01 1024 /memfd:jit (deleted)\n\
            map 7f00-7f10 r--p 00000000 00:2e 99 /usr/share/locale/x.mo (deleted)\n\
            @@proc 214\ncomm my app\n\
            map 5600-5700 r-xp 00000000 00:2e 5 /opt/my app/bin (deleted)\n\
            @@proc nope\ncomm x\nmap 1-2 r-xp 0 0:0 1 /bin/x (deleted)\n\
            @@proc 215\ncomm y\nunit -rf\nmap 1-2 r-xp 0 0:0 1 /bin/y (deleted)\n";
        assert_eq!(
            parse_stale_processes(scan),
            [
                process(212, "th-sleeper", Some("th-sleeper")),
                process(214, "my app", None),
                process(215, "y", None),
            ]
        );
        assert!(parse_stale_processes("").is_empty());
        assert!(parse_stale_processes("map 1-2 r-xp 0 0:0 1 /bin/x (deleted)\n").is_empty());
    }

    #[test]
    fn needrestart_names_units_of_processes_without_one() {
        let batch = "NEEDRESTART-VER: 3.6\nNEEDRESTART-KCUR: 6.1.0-28-amd64\n\
            NEEDRESTART-KEXP: 6.1.0-28-amd64\nNEEDRESTART-KSTA: 1\n\
            NEEDRESTART-SVC: nginx.service\nNEEDRESTART-SVC: cron.service\n\
            NEEDRESTART-SVC: $(reboot)\nNEEDRESTART-SESS: root @ session #3\n";
        let units = parse_needrestart_batch(batch);
        assert_eq!(units, ["nginx.service", "cron.service"]);
        let mut processes = vec![process(1, "nginx", None), process(2, "cron", Some("x"))];
        add_needrestart_units(&mut processes, &units);
        assert_eq!(
            processes,
            [
                process(1, "nginx", Some("nginx.service")),
                process(2, "cron", Some("x"))
            ]
        );
    }
}
