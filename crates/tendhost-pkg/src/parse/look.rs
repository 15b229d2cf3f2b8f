//! Cuts the answer of the one-command look (`command::look`) into its parts and their exit
//! codes. What each part holds is parsed by the parser of the command it ran (`parse::apt`,
//! `parse::system`).

use crate::command::look::{END, PART_PREFIX};
use crate::parse::{ParseError, sections_marked};

const WHAT: &str = "the check script's answer";
/// The suffix of the part holding a part's exit code.
const RC: &str = ".rc";

/// One part: what its command printed and its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part<'a> {
    pub text: &'a str,
    pub code: i32,
}

/// The parts of a complete answer (one that reached the `end` marker), by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    parts: Vec<(&'a str, Part<'a>)>,
}

impl<'a> Parts<'a> {
    /// Part `name`, when the script ran it.
    pub fn get(&self, name: &str) -> Option<Part<'a>> {
        self.parts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, part)| *part)
    }

    /// Part `name`, which a complete answer must hold.
    pub fn require(&self, name: &str) -> Result<Part<'a>, ParseError> {
        self.get(name)
            .ok_or_else(|| ParseError::new(WHAT, 0, format!("it has no `{name}` part")))
    }
}

/// Splits `stdout` of the look script. An answer without the `end` marker (cut short, or not
/// our script's) is an error, as is a part without a numeric exit code.
pub fn parse_parts(stdout: &str) -> Result<Parts<'_>, ParseError> {
    let raw: Vec<(&str, &str)> = sections_marked(stdout, PART_PREFIX)
        .into_iter()
        // The newline printed before the next marker is the script's, not the command's.
        .map(|(name, body)| (name, body.strip_suffix('\n').unwrap_or(body)))
        .collect();
    if raw.last().map(|(name, _)| *name) != Some(END) {
        return Err(ParseError::new(
            WHAT,
            0,
            "it ended before the script's `end` marker (cut short, or not tendhost's script)",
        ));
    }
    let mut parts = Vec::new();
    for (idx, (name, text)) in raw.iter().enumerate() {
        // `NAME.rc` parts are read with their part below.
        if *name == END || name.strip_suffix(RC).is_some() {
            continue;
        }
        let rc_name = format!("{name}{RC}");
        let code = match raw.get(idx + 1) {
            Some((next, rc)) if *next == rc_name => rc.trim().parse::<i32>().map_err(|_| {
                ParseError::new(
                    WHAT,
                    0,
                    format!(
                        "part `{name}` has exit code {:?}, not a number",
                        rc.chars().take(40).collect::<String>()
                    ),
                )
            })?,
            _ => {
                return Err(ParseError::new(
                    WHAT,
                    0,
                    format!("part `{name}` is not followed by its exit code"),
                ));
            }
        };
        if parts.iter().any(|(n, _)| n == name) {
            return Err(ParseError::new(
                WHAT,
                0,
                format!("part `{name}` appears twice"),
            ));
        }
        parts.push((*name, Part { text, code }));
    }
    Ok(Parts { parts })
}

#[cfg(test)]
mod tests {
    use crate::parse::look::parse_parts;
    use crate::parse::{apt, capture, system};
    use crate::types::{PackageManager, RebootState};

    /// Captured: the look script (`command::look::apt` with refresh and the inventory) run
    /// as root on an apt host with 1.1 of two packages published, one of them held (see
    /// tests/data/README.md).
    #[test]
    fn a_captured_look_splits_into_parts_each_parser_accepts() {
        let text = capture("apt-look-pending.txt");
        let parts = parse_parts(&text).unwrap();
        let refresh = parts.require("refresh").unwrap();
        assert_eq!(refresh.code, 0);
        assert!(
            refresh.text.contains("Reading package lists"),
            "{refresh:?}"
        );
        let simulate = parts.require("simulate").unwrap();
        assert_eq!(simulate.code, 0);
        let simulation = apt::parse_simulation(simulate.text).unwrap();
        let names: Vec<&str> = simulation
            .installs
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, ["th-bench-a"]);
        assert_eq!(simulation.kept_back, ["th-bench-b"]);
        let held = parts.require("showhold").unwrap();
        assert_eq!(apt::parse_showhold(held.text), ["th-bench-b"]);
        assert!(!apt::audit_reports_problems(
            parts.require("audit").unwrap().text
        ));
        assert_eq!(
            system::parse_apt_reboot(parts.require("reboot").unwrap().text).unwrap(),
            RebootState::NotRequired
        );
        assert_eq!(parts.get("uptime"), None);
        let inventory = parts.require("inventory").unwrap();
        let inventory = system::parse_inventory(inventory.text, Some(PackageManager::Apt)).unwrap();
        assert_eq!(inventory.os_name, "Debian GNU/Linux");
        assert!(inventory.installed_packages > 50, "{inventory:?}");
    }

    /// Captured: the same host, the script told the host's own boot id (`InventoryRead::
    /// UnlessBoot`): the inventory is skipped, the uptime read by the shell comes instead.
    #[test]
    fn a_captured_look_with_the_known_boot_id_skips_the_inventory() {
        let text = capture("apt-look-known-boot.txt");
        let parts = parse_parts(&text).unwrap();
        assert_eq!(parts.get("inventory"), None);
        let uptime = parts.require("uptime").unwrap();
        assert_eq!(
            system::parse_uptime(uptime.text).unwrap(),
            std::time::Duration::from_secs_f64(2578.94)
        );
        assert_eq!(parts.require("simulate").unwrap().code, 0);
        let fingerprint = parts.require("fingerprint").unwrap().text.trim();
        assert!(fingerprint.starts_with("dist-upgrade "), "{fingerprint}");
    }

    /// Captured: the look without a refresh, told the fingerprint its previous run printed:
    /// nothing the simulation reads changed, so it did not run (nor holds and audit).
    #[test]
    fn a_captured_unchanged_look_skips_the_simulation() {
        let text = capture("apt-look-unchanged.txt");
        let parts = parse_parts(&text).unwrap();
        let fingerprint = parts.require("fingerprint").unwrap().text;
        assert_eq!(parts.require("unchanged").unwrap().text, fingerprint);
        for skipped in ["refresh", "simulate", "showhold", "audit", "inventory"] {
            assert_eq!(parts.get(skipped), None, "{skipped}");
        }
        assert_eq!(parts.require("reboot").unwrap().code, 0);
    }

    /// Captured: the look script on a host whose dpkg lock another process held (the refresh
    /// failed; the script stopped there).
    #[test]
    fn a_captured_failed_refresh_ends_the_answer() {
        let text = capture("apt-look-locked.txt");
        let parts = parse_parts(&text).unwrap();
        let refresh = parts.require("refresh").unwrap();
        assert_ne!(refresh.code, 0);
        assert!(apt::lock_was_held(refresh.text), "{refresh:?}");
        assert_eq!(parts.get("simulate"), None);
    }

    #[test]
    fn answers_cut_short_or_malformed_are_errors() {
        let complete = "\n@@tendhost-part:simulate@@\nInst x\n\n@@tendhost-part:simulate.rc@@\n0\n\n@@tendhost-part:end@@\n";
        let parts = parse_parts(complete).unwrap();
        assert_eq!(parts.require("simulate").unwrap().text, "Inst x\n");
        assert_eq!(parts.require("simulate").unwrap().code, 0);
        // A part without a final newline keeps its text whole.
        let unterminated = "\n@@tendhost-part:reboot@@\nabc\n@@tendhost-part:reboot.rc@@\n1\n\n@@tendhost-part:end@@\n";
        assert_eq!(
            parse_parts(unterminated)
                .unwrap()
                .require("reboot")
                .unwrap(),
            super::Part {
                text: "abc",
                code: 1
            }
        );
        for bad in [
            "",
            "garbage\n",
            &complete[..complete.len() - 22],
            "\n@@tendhost-part:simulate@@\nx\n\n@@tendhost-part:end@@\n",
            "\n@@tendhost-part:simulate@@\n\n@@tendhost-part:simulate.rc@@\nzero\n\n@@tendhost-part:end@@\n",
            "\n@@tendhost-part:a@@\n\n@@tendhost-part:a.rc@@\n0\n\n@@tendhost-part:a@@\n\n@@tendhost-part:a.rc@@\n0\n\n@@tendhost-part:end@@\n",
        ] {
            let err = parse_parts(bad).unwrap_err().to_string();
            assert!(err.contains("check script's answer"), "{bad:?}: {err}");
        }
        assert!(parse_parts(complete).unwrap().require("audit").is_err());
    }
}
