//! Parsers for plain system facts: `/etc/os-release`, `/proc/1/stat`, `/proc/uptime`,
//! `df -Pk /`, apt's reboot-required files, and the marked-section outputs of our detection,
//! boot-identity and inventory commands; plus the choice of package manager from those facts.
//! Pure; the osquery JSON lives in `parse::osquery`.

use std::time::Duration;

use crate::parse::{ParseError, osquery, section, sections};
use crate::types::{BootIdentity, Inventory, InventorySource, PackageManager, RebootState};

/// Key/value pairs of an os-release file, values unquoted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsRelease {
    pub pairs: Vec<(String, String)>,
}

impl OsRelease {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `ID` followed by the words of `ID_LIKE`, lowercased.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .get("ID")
            .map(str::to_ascii_lowercase)
            .into_iter()
            .collect();
        if let Some(like) = self.get("ID_LIKE") {
            ids.extend(like.split_whitespace().map(str::to_ascii_lowercase));
        }
        ids
    }
}

/// Parses os-release(5): `KEY=value` lines, values optionally in single or double quotes (with
/// backslash escapes inside double quotes); comments and malformed lines are skipped, as the
/// format's readers are told to.
pub fn parse_os_release(text: &str) -> OsRelease {
    let pairs = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, raw) = l.split_once('=')?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return None;
            }
            Some((key.to_owned(), unquote(raw)))
        })
        .collect();
    OsRelease { pairs }
}

fn unquote(raw: &str) -> String {
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let Some(inner) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return raw.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

const DEBIAN_FAMILY: &[&str] = &["debian", "ubuntu", "raspbian", "linuxmint", "pop"];
const RPM_FAMILY: &[&str] = &[
    "fedora",
    "rhel",
    "centos",
    "rocky",
    "almalinux",
    "ol",
    "amzn",
    "redhat",
];

/// Chooses the package manager from os-release and the tools found on the host (`apt-get`,
/// `dnf`, `yum`). The distribution family decides when its tool is present; otherwise the one
/// tool present decides; anything else is an error asking for a pin in the config.
pub fn choose_manager(os_release: &OsRelease, tools: &[&str]) -> Result<PackageManager, String> {
    let has = |t: &str| tools.contains(&t);
    let ids = os_release.ids();
    let in_family = |family: &[&str]| ids.iter().any(|id| family.contains(&id.as_str()));
    if in_family(DEBIAN_FAMILY) && has("apt-get") {
        return Ok(PackageManager::Apt);
    }
    if in_family(RPM_FAMILY) {
        if has("dnf") {
            return Ok(PackageManager::Dnf);
        }
        if has("yum") {
            return Ok(PackageManager::Yum);
        }
    }
    let rpm_tool = if has("dnf") {
        Some(PackageManager::Dnf)
    } else if has("yum") {
        Some(PackageManager::Yum)
    } else {
        None
    };
    match (has("apt-get"), rpm_tool) {
        (true, None) => Ok(PackageManager::Apt),
        (false, Some(manager)) => Ok(manager),
        (apt, rpm) => {
            let found = if apt || rpm.is_some() {
                format!("found {}", tools.join(", "))
            } else {
                "found none of apt-get, dnf, yum".to_owned()
            };
            Err(format!(
                "cannot tell the package manager (os-release ID={:?} ID_LIKE={:?}; {found}); \
                 pin it with `package_manager` in the host's config",
                os_release.get("ID").unwrap_or(""),
                os_release.get("ID_LIKE").unwrap_or(""),
            ))
        }
    }
}

/// Parses the detection command's output: sections `os-release` and `tools`.
pub fn parse_detection(text: &str) -> Result<PackageManager, String> {
    let sections = sections(text);
    let os_release = parse_os_release(section(&sections, "os-release").unwrap_or(""));
    let tools: Vec<&str> = section(&sections, "tools")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    choose_manager(&os_release, &tools)
}

/// Start time of the process whose `/proc/PID/stat` this is (field 22, clock ticks after boot).
/// The command name (field 2) may contain spaces and parentheses, so fields are counted after
/// the last `)`.
pub fn parse_proc_stat_start(text: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "/proc/1/stat";
    let (_, after) = text
        .rsplit_once(')')
        .ok_or_else(|| ParseError::new(WHAT, 1, "no `(comm)` field"))?;
    // After `)`: field 3 (state) is index 0, so field 22 is index 19.
    let field = after
        .split_whitespace()
        .nth(19)
        .ok_or_else(|| ParseError::new(WHAT, 1, "fewer than 22 fields"))?;
    field
        .parse()
        .map_err(|_| ParseError::new(WHAT, 1, format!("start time {field:?} is not a number")))
}

/// Seconds since boot from `/proc/uptime` (`"546.75 562.57"`).
pub fn parse_uptime(text: &str) -> Result<Duration, ParseError> {
    let first = text.split_whitespace().next().unwrap_or("");
    first
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            ParseError::new(
                "/proc/uptime",
                1,
                format!("{first:?} is not a number of seconds"),
            )
        })
}

/// Bytes available on `/` from `df -Pk /` (POSIX format: header, then one line whose last
/// three fields are available KiB, capacity and the mount point).
pub fn parse_df_available(text: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "df -Pk / output";
    let (idx, line) = text
        .lines()
        .enumerate()
        .skip(1)
        .find(|(_, l)| !l.trim().is_empty())
        .ok_or_else(|| ParseError::new(WHAT, 0, "no filesystem line"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 6 {
        return Err(ParseError::new(
            WHAT,
            idx + 1,
            format!("expected 6 fields in {line:?}"),
        ));
    }
    let available = fields[fields.len() - 3];
    let kib = available.parse::<u64>().map_err(|_| {
        ParseError::new(
            WHAT,
            idx + 1,
            format!("available {available:?} is not a number"),
        )
    })?;
    kib.checked_mul(1024).ok_or_else(|| {
        ParseError::new(
            WHAT,
            idx + 1,
            format!("available {available:?} KiB is more bytes than fit in 64 bits"),
        )
    })
}

/// Parses our apt reboot probe: sections `flag` (`required` or `not_required`) and `pkgs` (the
/// contents of `/var/run/reboot-required.pkgs`, one package per line, possibly repeated).
pub fn parse_apt_reboot(text: &str) -> Result<RebootState, ParseError> {
    let sections = sections(text);
    match section(&sections, "flag").map(str::trim) {
        Some("required") => {
            let mut packages: Vec<String> = Vec::new();
            for line in section(&sections, "pkgs").unwrap_or("").lines() {
                let name = line.trim();
                if !name.is_empty() && !packages.iter().any(|p| p == name) {
                    packages.push(name.to_owned());
                }
            }
            Ok(RebootState::Required { packages })
        }
        Some("not_required") => Ok(RebootState::NotRequired),
        other => Err(ParseError::new(
            "reboot-required probe",
            0,
            format!("unexpected flag {other:?}"),
        )),
    }
}

/// Parses the boot identity command's output: sections `boot-id` and `pid1-stat`.
pub fn parse_boot_identity(text: &str) -> Result<BootIdentity, ParseError> {
    let sections = sections(text);
    boot_identity_from(&sections)
}

fn boot_identity_from(sections: &[(&str, &str)]) -> Result<BootIdentity, ParseError> {
    let boot_id = section(sections, "boot-id").map_or("", str::trim);
    if boot_id.is_empty() {
        return Err(ParseError::new(
            "boot identity",
            0,
            "/proc/sys/kernel/random/boot_id was empty or missing",
        ));
    }
    Ok(BootIdentity {
        boot_id: boot_id.to_owned(),
        pid1_start_ticks: parse_proc_stat_start(section(sections, "pid1-stat").unwrap_or(""))?,
    })
}

/// Parses the inventory command's output. Sections: `os-release`, `kernel`, `arch`, `uptime`,
/// `boot-id`, `pid1-stat`, `packages` (a count), `df`, and `osquery` when `osqueryi` ran; the
/// osquery row wins for the fields it has, the boot identity always comes from `/proc`.
pub fn parse_inventory(
    text: &str,
    package_manager: Option<PackageManager>,
) -> Result<Inventory, ParseError> {
    const WHAT: &str = "inventory";
    let sections = sections(text);
    let get = |name: &str| section(&sections, name).map_or("", str::trim);
    let identity = boot_identity_from(&sections)?;
    let osquery_row = match section(&sections, "osquery").map(str::trim) {
        Some(json) if !json.is_empty() => Some(osquery::parse_inventory_row(json)?),
        _ => None,
    };
    let os_release = parse_os_release(get("os-release"));
    let mut inventory = Inventory {
        os_name: os_release.get("NAME").unwrap_or("Linux").to_owned(),
        os_version: os_release
            .get("VERSION")
            .or_else(|| os_release.get("VERSION_ID"))
            .unwrap_or("")
            .to_owned(),
        kernel: get("kernel").to_owned(),
        arch: get("arch").to_owned(),
        uptime: parse_uptime(get("uptime"))?,
        boot_id: identity.boot_id,
        pid1_start_ticks: identity.pid1_start_ticks,
        package_manager,
        installed_packages: get("packages").parse().map_err(|_| {
            ParseError::new(
                WHAT,
                0,
                format!(
                    "installed package count {:?} is not a number",
                    get("packages")
                ),
            )
        })?,
        disk_free_root: parse_df_available(get("df"))?,
        source: InventorySource::Commands,
    };
    if let Some(row) = osquery_row {
        row.apply(&mut inventory, package_manager);
    }
    Ok(inventory)
}

#[cfg(test)]
mod tests {
    //! The `df` sample is captured (`tests/data/README.md`); the other inline strings are
    //! hand-written in the formats of os-release, /proc and the inventory script's sections.

    use std::time::Duration;

    use crate::parse::system::{
        choose_manager, parse_apt_reboot, parse_boot_identity, parse_detection, parse_df_available,
        parse_inventory, parse_os_release, parse_proc_stat_start, parse_uptime,
    };
    use crate::types::{InventorySource, PackageManager, RebootState};

    const BOOKWORM: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n";

    #[test]
    fn os_release() {
        let os = parse_os_release(&format!(
            "# comment\n{BOOKWORM}ID_LIKE='rhel fedora'\nX=\"a \\\"q\\\" b\"\nbad line\n"
        ));
        assert_eq!(os.get("NAME"), Some("Debian GNU/Linux"));
        assert_eq!(os.get("VERSION_CODENAME"), Some("bookworm"));
        assert_eq!(os.get("X"), Some("a \"q\" b"));
        assert_eq!(os.ids(), ["debian", "rhel", "fedora"]);
    }

    fn check_choice(os_release: &str, tools: &[&str], expected: Result<PackageManager, &str>) {
        let os = parse_os_release(os_release);
        match (choose_manager(&os, tools), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{os_release} {tools:?}"),
            (Err(got), Err(needle)) => assert!(got.contains(needle), "{got}"),
            (got, want) => panic!("{os_release} {tools:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn manager_choice() {
        check_choice(BOOKWORM, &["apt-get", "dpkg"], Ok(PackageManager::Apt));
        check_choice(
            "ID=ubuntu\nID_LIKE=debian\n",
            &["apt-get"],
            Ok(PackageManager::Apt),
        );
        check_choice("ID=fedora\n", &["dnf", "rpm"], Ok(PackageManager::Dnf));
        check_choice(
            "ID=\"centos\"\nID_LIKE=\"rhel fedora\"\n",
            &["yum"],
            Ok(PackageManager::Yum),
        );
        check_choice(
            "ID=rocky\nID_LIKE=\"rhel centos fedora\"\n",
            &["dnf", "yum"],
            Ok(PackageManager::Dnf),
        );
        // A Debian with dnf installed but no apt-get: the one tool decides.
        check_choice(BOOKWORM, &["dnf"], Ok(PackageManager::Dnf));
        check_choice("ID=tendhost-dnf\n", &["dnf"], Ok(PackageManager::Dnf));
        check_choice(
            "ID=weird\n",
            &["apt-get", "dnf"],
            Err("pin it with `package_manager`"),
        );
        check_choice("ID=weird\n", &[], Err("found none of apt-get, dnf, yum"));
    }

    #[test]
    fn detection_output() {
        let text = format!("@@tendhost:os-release@@\n{BOOKWORM}@@tendhost:tools@@\napt-get\n");
        assert_eq!(parse_detection(&text), Ok(PackageManager::Apt));
    }

    #[test]
    fn proc_stat() {
        // Captured on the dev machine, 2026-11-22.
        let stat = "1 (process_api) S 0 0 0 0 -1 4194560 52526 9414542 0 1412 77 224 22313 6207 20 0 13 0 20 46039040 3731 18446744073709551615 1 1 0 0 0 0 0 4096 1256 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert_eq!(parse_proc_stat_start(stat), Ok(20));
        let tricky = "1 (a) b (c) S 0 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0\n";
        assert_eq!(parse_proc_stat_start(tricky), Ok(777));
        assert!(parse_proc_stat_start("1 (x) S 0").is_err());
        assert!(parse_proc_stat_start("").is_err());
    }

    #[test]
    fn uptime_and_df() {
        assert_eq!(
            parse_uptime("546.75 562.57\n"),
            Ok(Duration::from_millis(546_750))
        );
        assert!(parse_uptime("x").is_err());
        assert!(parse_uptime("-1 2").is_err());
        // Captured `df -Pk /` of a test-fleet host (tests/data/README.md).
        let df = crate::parse::capture("df-root.txt");
        assert_eq!(parse_df_available(&df), Ok(79_977_084 * 1024));
        // Hostile values: an uptime beyond `Duration`, KiB beyond u64 bytes.
        assert!(parse_uptime("1e300 1.0").is_err());
        assert!(parse_uptime("-1 1.0").is_err());
        assert!(parse_uptime("NaN 1.0").is_err());
        let huge = format!("h\n/dev/sda1 1 1 {} 1% /", u64::MAX);
        assert!(parse_df_available(&huge).is_err());
        // Hand-written broken shapes.
        assert!(parse_df_available("Filesystem\n").is_err());
        assert!(parse_df_available("h\nx 1 2 three 4% /\n").is_err());
    }

    #[test]
    fn apt_reboot() {
        assert_eq!(
            parse_apt_reboot(
                "@@tendhost:flag@@\nrequired\n@@tendhost:pkgs@@\nlinux-image\nlibc6\nlinux-image\n"
            ),
            Ok(RebootState::Required {
                packages: vec!["linux-image".into(), "libc6".into()]
            })
        );
        assert_eq!(
            parse_apt_reboot("@@tendhost:flag@@\nrequired\n@@tendhost:pkgs@@\n"),
            Ok(RebootState::Required { packages: vec![] })
        );
        assert_eq!(
            parse_apt_reboot("@@tendhost:flag@@\nnot_required\n"),
            Ok(RebootState::NotRequired)
        );
        assert!(parse_apt_reboot("garbage").is_err());
    }

    #[test]
    fn boot_identity() {
        let text = "@@tendhost:boot-id@@\n0f1e2d3c-aaaa-bbbb-cccc-123456789abc\n@@tendhost:pid1-stat@@\n1 (sshd) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 4242 0 0\n";
        let identity = parse_boot_identity(text).unwrap();
        assert_eq!(identity.boot_id, "0f1e2d3c-aaaa-bbbb-cccc-123456789abc");
        assert_eq!(identity.pid1_start_ticks, 4242);
        assert!(parse_boot_identity("@@tendhost:boot-id@@\n\n").is_err());
    }

    #[test]
    fn inventory_from_commands() {
        let text = format!(
            "@@tendhost:os-release@@\n{BOOKWORM}@@tendhost:kernel@@\n6.1.0-18-amd64\n@@tendhost:arch@@\nx86_64\n\
@@tendhost:uptime@@\n100.5 3.0\n@@tendhost:boot-id@@\nabc\n@@tendhost:pid1-stat@@\n1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0\n\
@@tendhost:packages@@\n312\n@@tendhost:df@@\nFilesystem 1024-blocks Used Available Capacity Mounted on\noverlay 100 50 40 55% /\n"
        );
        let inventory = parse_inventory(&text, Some(PackageManager::Apt)).unwrap();
        assert_eq!(inventory.os_name, "Debian GNU/Linux");
        assert_eq!(inventory.os_version, "12 (bookworm)");
        assert_eq!(inventory.kernel, "6.1.0-18-amd64");
        assert_eq!(inventory.arch, "x86_64");
        assert_eq!(inventory.uptime, Duration::from_millis(100_500));
        assert_eq!(inventory.pid1_start_ticks, 99);
        assert_eq!(inventory.installed_packages, 312);
        assert_eq!(inventory.disk_free_root, 40 * 1024);
        assert_eq!(inventory.source, InventorySource::Commands);
        let broken = text.replace("312", "many");
        let err = parse_inventory(&broken, None).unwrap_err().to_string();
        assert!(err.contains("\"many\" is not a number"), "{err}");
    }
}
