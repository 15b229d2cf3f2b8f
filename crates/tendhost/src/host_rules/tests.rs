//! Host-rule tests: the same bad values through the config file and through `POST /hosts` give
//! the same reason (each rendered its own way), and every word the API spells as an enum means
//! the same as in the config file.

use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};
use tendhost_api::hosts::{AptUpgrade, NewHost, PackageManager, UpdatePolicy, Weekday};

use crate::config::{ApiHostsConfig, ConfigError, HostDefaults, parse};
use crate::host_rules::{self, Field, RuleError};
use crate::http::new_host::{
    host_spec, spec_apt_upgrade, spec_package_manager, spec_updates, spec_weekday,
};

/// The one message the config file gets for a `[[host]]` table of `lines`.
#[track_caller]
fn config_message(lines: &str) -> String {
    let text = format!("[[host]]\n{lines}");
    match parse(&text, Path::new("/etc/tendhost/t.toml"), &|_| None) {
        Err(ConfigError::Invalid { diagnostics, .. }) if diagnostics.len() == 1 => {
            diagnostics[0].message.clone()
        }
        other => panic!("expected one diagnostic for\n{text}\ngot {other:?}"),
    }
}

/// `details.field` and the reason (the message after `field: `) the API answers `body` with.
#[track_caller]
fn api_field_and_reason(body: &Value) -> (String, String) {
    let new: NewHost = serde_json::from_value(body.clone()).unwrap();
    let err = host_spec(new, &HostDefaults::default(), &ApiHostsConfig::default())
        .expect_err("body should be refused");
    let field = err.details.as_ref().unwrap()["field"]
        .as_str()
        .unwrap()
        .to_owned();
    let reason = err
        .message
        .strip_prefix(&format!("{field}: "))
        .unwrap_or_else(|| panic!("{:?} does not start with the field {field:?}", err.message))
        .to_owned();
    (field, reason)
}

/// A good host (`name = "a"`, `addr = "10.0.0.1"`) with `field` set to a bad value, as a
/// `POST /hosts` body and as the lines of a `[[host]]` table.
fn with_field(field: &str, value: &Value, toml_value: &str) -> (Value, String) {
    let mut body = json!({"name": "a", "addr": "10.0.0.1"});
    body[field] = value.clone();
    let mut lines = String::new();
    for key in ["name", "addr"].into_iter().filter(|key| *key != field) {
        lines.push_str(&format!("{key} = {}\n", body[key]));
    }
    lines.push_str(&format!("{field} = {toml_value}\n"));
    (body, lines)
}

/// A good host with a maintenance window from `start` to `end`.
fn with_window(start: &str, end: &str) -> (Value, String) {
    let body = json!({"name": "a", "addr": "10.0.0.1",
                      "policy": {"maintenance_window": {"start": start, "end": end}}});
    let lines = format!(
        "name = \"a\"\naddr = \"10.0.0.1\"\n[host.policy]\n\
         maintenance_window = {{ start = \"{start}\", end = \"{end}\" }}\n"
    );
    (body, lines)
}

#[test]
fn config_and_api_refuse_the_same_values_for_the_same_reason() {
    let mut cases: Vec<(&str, (Value, String))> = [
        ("name", json!("bad name"), "\"bad name\""),
        ("name", json!(""), "\"\""),
        ("addr", json!("not an address"), "\"not an address\""),
        ("addr", json!("-x.example"), "\"-x.example\""),
        ("port", json!(0), "0"),
        ("user", json!("-oProxy"), "\"-oProxy\""),
        ("user", json!("a b"), "\"a b\""),
        ("host_key_sha256", json!("MD5:ab:cd"), "\"MD5:ab:cd\""),
        ("tags", json!(["ok", "not ok"]), "[\"ok\", \"not ok\"]"),
        ("connect_timeout", json!("0s"), "\"0s\""),
        ("command_timeout", json!("soon"), "\"soon\""),
        ("check_interval", json!("5 fortnights"), "\"5 fortnights\""),
    ]
    .into_iter()
    .map(|(field, value, toml_value)| (field, with_field(field, &value, toml_value)))
    .collect();
    cases.push((
        "policy.maintenance_window.start",
        with_window("25:00", "01:00"),
    ));
    cases.push((
        "policy.maintenance_window.end",
        with_window("01:00", "1:00"),
    ));
    for (field, (body, lines)) in cases {
        let (api_field, reason) = api_field_and_reason(&body);
        assert_eq!(api_field, field, "{body}");
        let config = config_message(&lines);
        assert!(
            config.ends_with(&format!(" {reason}")),
            "config and API disagree on {field}:\n  config: {config}\n  api reason: {reason}"
        );
    }
}

/// Each value of an API enum, its wire name (as JSON), and what the config rule makes of that
/// word compared with what `POST /hosts` makes of the enum.
fn same_meaning<W: Serialize + Copy, T: PartialEq + std::fmt::Debug>(
    variants: &[W],
    rule: fn(&str) -> Result<T, RuleError>,
    to_spec: fn(W) -> T,
) {
    for &variant in variants {
        let word = serde_json::to_value(variant).unwrap();
        let word = word.as_str().unwrap();
        assert_eq!(rule(word), Ok(to_spec(variant)), "{word}");
    }
}

#[test]
fn every_wire_word_means_the_same_in_the_config_file() {
    same_meaning(
        &[
            PackageManager::Apt,
            PackageManager::Dnf,
            PackageManager::Yum,
        ],
        host_rules::package_manager,
        spec_package_manager,
    );
    same_meaning(
        &[UpdatePolicy::Allowed, UpdatePolicy::CheckOnly],
        host_rules::updates,
        spec_updates,
    );
    same_meaning(
        &[AptUpgrade::DistUpgrade, AptUpgrade::Upgrade],
        host_rules::apt_upgrade,
        spec_apt_upgrade,
    );
    same_meaning(
        &[
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ],
        host_rules::window_day,
        spec_weekday,
    );
}

#[test]
fn refusals_name_the_field_and_the_choices() {
    assert_eq!(
        host_rules::package_manager("zypper"),
        Err(RuleError {
            field: Field::PackageManager,
            reason: "must be \"apt\", \"dnf\" or \"yum\", not \"zypper\"".to_owned(),
        })
    );
    assert_eq!(
        host_rules::known_hosts("yes").unwrap_err().reason,
        "must be \"strict\" or \"accept-new\", not \"yes\""
    );
    for port in [0, -1, 65_536] {
        assert_eq!(
            host_rules::port(port),
            Err(RuleError {
                field: Field::Port,
                reason: format!("must be between 1 and 65535, not {port}"),
            })
        );
    }
    assert_eq!(host_rules::port(65_535), Ok(65_535));
    assert_eq!(
        host_rules::duration(Field::CheckInterval, "0s").unwrap_err(),
        RuleError {
            field: Field::CheckInterval,
            reason: "must be greater than zero".to_owned(),
        }
    );
}
