//! `POST /hosts` validation: turns a `NewHost` body into a `HostSpec` with the same rules as a
//! `[[host]]` table in the config file (name, address, port, user, key, durations, window),
//! `[defaults]` filling what the body leaves out. Every problem is a 422 naming the field.
//! A host registered here is never `local` and never has a `reboot_command` (the body has no
//! such field; `deny_unknown_fields` refuses it).

use std::path::PathBuf;
use std::time::Duration;

use tendhost_api::hosts::{
    AptUpgrade, KnownHostsPolicy, MaintenanceWindow, NewHost, PackageManager, UpdatePolicy, Weekday,
};
use tendhost_core::spec::{self, HostOrigin, HostPolicy, HostSpec, HostTarget, Timing};

use crate::config::{HostDefaults, check_addr, check_user};
use crate::http::error::ApiError;
use crate::persist::RuntimeHost;

/// A runtime host as stored: the request body it was registered with, kept whole in `definition`
/// so a restart rebuilds it with the same rules (and the `[defaults]` of that time).
pub fn host_record(new: &NewHost) -> RuntimeHost {
    RuntimeHost {
        name: new.name.clone(),
        addr: new.addr.clone(),
        port: new.port.unwrap_or(0),
        user: new.user.clone(),
        ssh_key: new.ssh_key.clone(),
        tags: new.tags.clone(),
        sudo: new.sudo,
        definition: serde_json::to_value(new).unwrap_or_default(),
        added_at: jiff::Timestamp::now(),
    }
}

/// The spec of a stored runtime host (see [`host_record`]).
pub fn host_spec_from_record(
    record: &RuntimeHost,
    defaults: &HostDefaults,
) -> Result<HostSpec, String> {
    let new: NewHost = serde_json::from_value(record.definition.clone())
        .map_err(|err| format!("stored host definition does not parse: {err}"))?;
    host_spec(new, defaults).map_err(|err| err.message)
}

/// The validated spec of a runtime host.
pub fn host_spec(new: NewHost, defaults: &HostDefaults) -> Result<HostSpec, ApiError> {
    if !spec::is_valid_host_name(&new.name) {
        return Err(ApiError::invalid_value(
            "name",
            format!(
                "host name {:?} is invalid: use 1 to 64 characters from A-Z a-z 0-9 . _ -",
                new.name
            ),
        ));
    }
    let addr = new.addr.trim().to_owned();
    if addr.eq_ignore_ascii_case("local") {
        return Err(ApiError::invalid_value(
            "addr",
            "hosts added through the API cannot be local; define local hosts in the config file",
        ));
    }
    check_addr(&addr).map_err(|message| ApiError::invalid_value("addr", message))?;
    let port = match new.port {
        Some(0) => {
            return Err(ApiError::invalid_value(
                "port",
                "must be between 1 and 65535, not 0",
            ));
        }
        Some(port) => port,
        None => defaults.port,
    };
    let user = match new.user {
        Some(user) => {
            check_user(&user).map_err(|message| ApiError::invalid_value("user", message))?;
            user
        }
        None => defaults.user.clone(),
    };
    let ssh_key = match new.ssh_key {
        Some(key) => Some(ssh_key(&key)?),
        None => defaults.ssh_key.clone(),
    };
    for tag in &new.tags {
        if !spec::is_valid_host_name(tag) {
            return Err(ApiError::invalid_value(
                "tags",
                format!("tag {tag:?} is invalid: use 1 to 64 characters from A-Z a-z 0-9 . _ -"),
            ));
        }
    }
    let base = defaults.timing;
    let timing = Timing {
        connect_timeout: duration(
            "connect_timeout",
            new.connect_timeout.as_deref(),
            base.connect_timeout,
        )?,
        command_timeout: duration(
            "command_timeout",
            new.command_timeout.as_deref(),
            base.command_timeout,
        )?,
        check_interval: duration(
            "check_interval",
            new.check_interval.as_deref(),
            base.check_interval,
        )?,
        ..base
    };
    let policy = new.policy;
    let maintenance_window = policy
        .maintenance_window
        .as_ref()
        .map(maintenance_window)
        .transpose()?;
    Ok(HostSpec {
        name: new.name,
        target: HostTarget::Ssh { addr, port },
        user,
        ssh_key,
        sudo: new.sudo.unwrap_or(defaults.sudo),
        known_hosts: new
            .known_hosts
            .map_or(defaults.known_hosts, |policy| match policy {
                KnownHostsPolicy::Strict => spec::KnownHostsPolicy::Strict,
                KnownHostsPolicy::AcceptNew => spec::KnownHostsPolicy::AcceptNew,
            }),
        timing,
        tags: new.tags,
        compose_paths: Vec::new(),
        reboot_command: None,
        package_manager: new.package_manager.map(|manager| match manager {
            PackageManager::Apt => spec::PinnedManager::Apt,
            PackageManager::Dnf => spec::PinnedManager::Dnf,
            PackageManager::Yum => spec::PinnedManager::Yum,
        }),
        policy: HostPolicy {
            updates: match policy.updates.unwrap_or_default() {
                UpdatePolicy::Allowed => spec::UpdatePolicy::Allowed,
                UpdatePolicy::CheckOnly => spec::UpdatePolicy::CheckOnly,
            },
            auto_reboot: policy.auto_reboot.unwrap_or(false),
            maintenance_window,
            refresh_lists: policy.refresh_lists.unwrap_or(true),
            apt_upgrade: match policy.apt_upgrade {
                None | Some(AptUpgrade::DistUpgrade) => spec::AptUpgrade::DistUpgrade,
                Some(AptUpgrade::Upgrade) => spec::AptUpgrade::Upgrade,
            },
        },
        docker: spec::DockerSettings::default(),
        origin: HostOrigin::Runtime,
    })
}

/// An existing key file, by absolute path (there is no config file to be relative to).
fn ssh_key(key: &str) -> Result<PathBuf, ApiError> {
    let path = PathBuf::from(key);
    if !path.is_absolute() {
        return Err(ApiError::invalid_value(
            "ssh_key",
            format!("{key:?} is not an absolute path"),
        ));
    }
    if !path.is_file() {
        return Err(ApiError::invalid_value(
            "ssh_key",
            format!("{} does not exist or is not a file", path.display()),
        ));
    }
    Ok(path)
}

/// A humantime duration greater than zero (as in the config file).
fn duration(field: &str, value: Option<&str>, default: Duration) -> Result<Duration, ApiError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match humantime::parse_duration(value) {
        Ok(duration) if duration.is_zero() => Err(ApiError::invalid_value(
            field,
            "duration must be greater than zero",
        )),
        Ok(duration) => Ok(duration),
        Err(err) => Err(ApiError::invalid_value(
            field,
            format!("{value:?} is not a duration ({err}); write e.g. \"30s\", \"5m\", \"1h 30m\""),
        )),
    }
}

fn maintenance_window(window: &MaintenanceWindow) -> Result<spec::MaintenanceWindow, ApiError> {
    let hhmm = |value: &str, field: &str| {
        spec::MaintenanceWindow::parse_hhmm(value).ok_or_else(|| {
            ApiError::invalid_value(
                field,
                format!("{value:?} is not a time: use \"HH:MM\" (24-hour)"),
            )
        })
    };
    Ok(spec::MaintenanceWindow {
        start_minute: hhmm(&window.start, "policy.maintenance_window.start")?,
        end_minute: hhmm(&window.end, "policy.maintenance_window.end")?,
        days: window
            .days
            .iter()
            .map(|day| match day {
                Weekday::Mon => spec::Weekday::Mon,
                Weekday::Tue => spec::Weekday::Tue,
                Weekday::Wed => spec::Weekday::Wed,
                Weekday::Thu => spec::Weekday::Thu,
                Weekday::Fri => spec::Weekday::Fri,
                Weekday::Sat => spec::Weekday::Sat,
                Weekday::Sun => spec::Weekday::Sun,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;
    use serde_json::{Value, json};
    use tendhost_api::hosts::NewHost;
    use tendhost_core::spec::{HostOrigin, HostTarget, UpdatePolicy, Weekday};

    use crate::config::HostDefaults;
    use crate::http::new_host::host_spec;

    fn defaults() -> HostDefaults {
        HostDefaults {
            user: "ops".to_owned(),
            port: 2222,
            ..HostDefaults::default()
        }
    }

    fn spec_of(body: Value) -> Result<tendhost_core::spec::HostSpec, (StatusCode, String)> {
        let new: NewHost = serde_json::from_value(body).unwrap();
        host_spec(new, &defaults()).map_err(|err| {
            let field = err
                .details
                .as_ref()
                .and_then(|d| d["field"].as_str())
                .unwrap_or_default()
                .to_owned();
            (err.status, field)
        })
    }

    #[test]
    fn defaults_fill_what_the_body_leaves_out() {
        let spec = spec_of(json!({"name": "web-1", "addr": "192.0.2.7"})).unwrap();
        assert_eq!(
            spec.target,
            HostTarget::Ssh {
                addr: "192.0.2.7".into(),
                port: 2222
            }
        );
        assert_eq!(spec.user, "ops");
        assert_eq!(spec.origin, HostOrigin::Runtime);
        assert_eq!(spec.reboot_command, None);
        assert!(spec.policy.refresh_lists);
        assert_eq!(spec.policy.updates, UpdatePolicy::Allowed);
    }

    #[test]
    fn the_body_overrides_defaults() {
        let spec = spec_of(json!({
            "name": "db.1", "addr": "db1.example.internal", "port": 22, "user": "deploy",
            "tags": ["db"], "check_interval": "1h", "sudo": true,
            "policy": {"updates": "check-only", "auto_reboot": true, "refresh_lists": false,
                       "maintenance_window": {"start": "23:00", "end": "01:30", "days": ["fri"]}}
        }))
        .unwrap();
        assert_eq!(
            spec.target,
            HostTarget::Ssh {
                addr: "db1.example.internal".into(),
                port: 22
            }
        );
        assert_eq!(spec.user, "deploy");
        assert!(spec.sudo);
        assert_eq!(spec.timing.check_interval, Duration::from_secs(3600));
        assert_eq!(spec.policy.updates, UpdatePolicy::CheckOnly);
        let window = spec.policy.maintenance_window.unwrap();
        assert_eq!((window.start_minute, window.end_minute), (23 * 60, 90));
        assert_eq!(window.days, [Weekday::Fri]);
    }

    #[test]
    fn every_bad_value_is_422_naming_its_field() {
        for (body, field) in [
            (json!({"name": "bad name", "addr": "10.0.0.1"}), "name"),
            (json!({"name": "", "addr": "10.0.0.1"}), "name"),
            (json!({"name": "a", "addr": "local"}), "addr"),
            (json!({"name": "a", "addr": "LOCAL"}), "addr"),
            (json!({"name": "a", "addr": "not an address"}), "addr"),
            (json!({"name": "a", "addr": "-x.example"}), "addr"),
            (json!({"name": "a", "addr": "10.0.0.1", "port": 0}), "port"),
            (
                json!({"name": "a", "addr": "10.0.0.1", "user": "-oProxy"}),
                "user",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1", "user": "a b"}),
                "user",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1", "ssh_key": "relative/key"}),
                "ssh_key",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1", "ssh_key": "/nonexistent/key"}),
                "ssh_key",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1", "tags": ["ok", "not ok"]}),
                "tags",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1", "check_interval": "soon"}),
                "check_interval",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1", "connect_timeout": "0s"}),
                "connect_timeout",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1",
                       "policy": {"maintenance_window": {"start": "25:00", "end": "01:00"}}}),
                "policy.maintenance_window.start",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1",
                       "policy": {"maintenance_window": {"start": "01:00", "end": "1:00"}}}),
                "policy.maintenance_window.end",
            ),
        ] {
            let err = spec_of(body.clone()).unwrap_err();
            assert_eq!(
                err,
                (StatusCode::UNPROCESSABLE_ENTITY, field.to_owned()),
                "{body}"
            );
        }
    }
}
