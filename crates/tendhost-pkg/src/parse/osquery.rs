//! Parser for `osqueryi --json` output of our inventory query (see `command::system`): an array
//! holding one object whose values osquery prints as strings (`"flags":"2098181"`), or as
//! numbers in some versions; both are accepted. Pure.

use serde_json::Value;

use crate::parse::ParseError;
use crate::types::{Inventory, InventorySource, PackageManager};

const WHAT: &str = "osqueryi --json output";

/// The fields our osquery inventory query selects; any may be missing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsqueryRow {
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    pub uptime_seconds: Option<u64>,
    pub disk_free_root: Option<u64>,
    pub deb_packages: Option<u64>,
    pub rpm_packages: Option<u64>,
}

impl OsqueryRow {
    /// Overwrites the inventory's fields with the ones osquery answered.
    pub fn apply(&self, inventory: &mut Inventory, manager: Option<PackageManager>) {
        let set = |field: &mut String, value: &Option<String>| {
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                field.clone_from(v);
            }
        };
        set(&mut inventory.os_name, &self.os_name);
        set(&mut inventory.os_version, &self.os_version);
        set(&mut inventory.kernel, &self.kernel);
        set(&mut inventory.arch, &self.arch);
        if let Some(seconds) = self.uptime_seconds {
            inventory.uptime = std::time::Duration::from_secs(seconds);
        }
        if let Some(bytes) = self.disk_free_root {
            inventory.disk_free_root = bytes;
        }
        let count = match manager {
            Some(PackageManager::Apt) => self.deb_packages,
            Some(PackageManager::Dnf | PackageManager::Yum) => self.rpm_packages,
            None => self.deb_packages.max(self.rpm_packages),
        };
        if let Some(n) = count {
            inventory.installed_packages = n;
        }
        inventory.source = InventorySource::Osquery;
    }
}

/// Parses `[{"os_name": "...", ...}]`; an empty array or a non-array is an error.
pub fn parse_inventory_row(json: &str) -> Result<OsqueryRow, ParseError> {
    let value: Value = serde_json::from_str(json)
        .map_err(|e| ParseError::new(WHAT, e.line(), format!("invalid JSON: {e}")))?;
    let rows = value
        .as_array()
        .ok_or_else(|| ParseError::new(WHAT, 0, "expected a JSON array of rows"))?;
    let row = rows
        .first()
        .and_then(Value::as_object)
        .ok_or_else(|| ParseError::new(WHAT, 0, "expected one row object, got none"))?;
    let text = |key: &str| match row.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let number = |key: &str| -> Result<Option<u64>, ParseError> {
        match row.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(float_to_u64))
                .map(Some)
                .ok_or_else(|| bad_number(key, &n.to_string())),
            Some(Value::String(s)) => s
                .parse::<u64>()
                .ok()
                .or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| *f >= 0.0)
                        .map(float_to_u64)
                })
                .map(Some)
                .ok_or_else(|| bad_number(key, s)),
            Some(other) => Err(bad_number(key, &other.to_string())),
        }
    };
    Ok(OsqueryRow {
        os_name: text("os_name"),
        os_version: text("os_version"),
        kernel: text("kernel"),
        arch: text("arch"),
        uptime_seconds: number("uptime_seconds")?,
        disk_free_root: number("disk_free_root")?,
        deb_packages: number("deb_packages")?,
        rpm_packages: number("rpm_packages")?,
    })
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn float_to_u64(f: f64) -> u64 {
    f as u64
}

fn bad_number(key: &str, value: &str) -> ParseError {
    ParseError::new(
        WHAT,
        0,
        format!("{key} = {value} is not a non-negative number"),
    )
}

#[cfg(test)]
mod tests {
    use crate::parse::osquery::{OsqueryRow, parse_inventory_row};

    #[test]
    fn documented_string_shape() {
        // osquery's docs show `osqueryi --json` printing every column as a string:
        // [{"destination":"::1","flags":"2098181",...,"mtu":"16384",...}]. Our query's row:
        let json = r#"[
  {"arch":"x86_64","deb_packages":"312","disk_free_root":"45191270400","kernel":"6.1.0-18-amd64","os_name":"Debian GNU/Linux","os_version":"12 (bookworm)","rpm_packages":"0","uptime_seconds":"86399"}
]"#;
        assert_eq!(
            parse_inventory_row(json),
            Ok(OsqueryRow {
                os_name: Some("Debian GNU/Linux".into()),
                os_version: Some("12 (bookworm)".into()),
                kernel: Some("6.1.0-18-amd64".into()),
                arch: Some("x86_64".into()),
                uptime_seconds: Some(86_399),
                disk_free_root: Some(45_191_270_400),
                deb_packages: Some(312),
                rpm_packages: Some(0),
            })
        );
    }

    #[test]
    fn numeric_and_missing_values() {
        let json = r#"[{"os_name":"Fedora Linux","uptime_seconds":12,"rpm_packages":501,"disk_free_root":null}]"#;
        let row = parse_inventory_row(json).unwrap();
        assert_eq!(row.uptime_seconds, Some(12));
        assert_eq!(row.rpm_packages, Some(501));
        assert_eq!(row.disk_free_root, None);
        assert_eq!(row.kernel, None);
    }

    #[test]
    fn bad_shapes_are_clear_errors() {
        for (json, needle) in [
            ("", "invalid JSON"),
            ("{\"a\":1}", "expected a JSON array"),
            ("[]", "expected one row object"),
            (r#"[{"uptime_seconds":"soon"}]"#, "uptime_seconds = soon"),
            (r#"[{"disk_free_root":-5}]"#, "disk_free_root = -5"),
        ] {
            let err = parse_inventory_row(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json:?}: {err}");
        }
    }
}
