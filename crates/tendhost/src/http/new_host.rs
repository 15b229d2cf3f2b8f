//! `POST /hosts` validation: turns a `NewHost` body into a `HostSpec` with the rules of a
//! `[[host]]` table in the config file (`host_rules`: name, address, port, user, pinned key
//! fingerprint, durations, window), `[defaults]` filling what the body leaves out. Every problem
//! is a 422 naming the field's JSON path.
//! A host registered here is never `local` and never has a `reboot_command`; its key and
//! host-key policy come from `[daemon.api_hosts]` (else `[defaults]`'s key), never from the body
//! (`deny_unknown_fields` refuses `reboot_command`, `ssh_key` and `known_hosts`). Where it may
//! point is decided by `api_hosts`.

use std::time::Duration;

use tendhost_api::hosts::{
    AptUpgrade, MaintenanceWindow, NewHost, PackageManager, UpdatePolicy, Weekday,
};
use tendhost_core::spec::{self, HostOrigin, HostPolicy, HostSpec, HostTarget, Timing};

use crate::config::{ApiHostsConfig, HostDefaults};
use crate::host_rules::{self, Field, RuleError};
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
        ssh_key: None,
        tags: new.tags.clone(),
        sudo: new.sudo,
        definition: serde_json::to_value(new).unwrap_or_default(),
        added_at: jiff::Timestamp::now(),
    }
}

/// Fields stored bodies had before `[daemon.api_hosts]` took them over: dropped on reading.
const RETIRED_FIELDS: [&str; 2] = ["ssh_key", "known_hosts"];

/// The spec of a stored runtime host (see [`host_record`]). A body stored with a retired
/// field (`ssh_key`, `known_hosts`) gets `[daemon.api_hosts]`'s instead, with a warning.
pub fn host_spec_from_record(
    record: &RuntimeHost,
    defaults: &HostDefaults,
    api_hosts: &ApiHostsConfig,
) -> Result<HostSpec, String> {
    let mut extra = record.definition.clone();
    if let Some(body) = extra.as_object_mut() {
        for field in RETIRED_FIELDS {
            if let Some(value) = body.remove(field)
                && !value.is_null()
            {
                tracing::warn!(
                    host = %record.name,
                    field,
                    "stored host sets a field the API no longer takes; [daemon.api_hosts] applies"
                );
            }
        }
    }
    let new: NewHost = serde_json::from_value(extra)
        .map_err(|err| format!("stored host definition does not parse: {err}"))?;
    host_spec(new, defaults, api_hosts).map_err(|err| err.message)
}

/// The validated spec of a runtime host.
pub fn host_spec(
    new: NewHost,
    defaults: &HostDefaults,
    api_hosts: &ApiHostsConfig,
) -> Result<HostSpec, ApiError> {
    host_rules::host_name(&new.name).map_err(invalid)?;
    let addr = new.addr.trim().to_owned();
    if addr.eq_ignore_ascii_case("local") {
        return Err(ApiError::invalid_value(
            "addr",
            "hosts added through the API cannot be local; define local hosts in the config file",
        ));
    }
    host_rules::addr(&addr).map_err(invalid)?;
    let port = match new.port {
        Some(port) => host_rules::port(i64::from(port)).map_err(invalid)?,
        None => defaults.port,
    };
    let user = match new.user {
        Some(user) => {
            host_rules::user(&user).map_err(invalid)?;
            user
        }
        None => defaults.user.clone(),
    };
    let host_key_sha256 = new
        .host_key_sha256
        .as_deref()
        .map(host_rules::host_key_sha256)
        .transpose()
        .map_err(invalid)?;
    for tag in &new.tags {
        host_rules::tag(tag).map_err(invalid)?;
    }
    let base = defaults.timing;
    let duration = |field: Field, value: Option<&str>, default: Duration| {
        value.map_or(Ok(default), |value| {
            host_rules::duration(field, value).map_err(invalid)
        })
    };
    let timing = Timing {
        connect_timeout: duration(
            Field::ConnectTimeout,
            new.connect_timeout.as_deref(),
            base.connect_timeout,
        )?,
        command_timeout: duration(
            Field::CommandTimeout,
            new.command_timeout.as_deref(),
            base.command_timeout,
        )?,
        check_interval: duration(
            Field::CheckInterval,
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
        ssh_key: api_hosts
            .ssh_key
            .clone()
            .or_else(|| defaults.ssh_key.clone()),
        sudo: new.sudo.unwrap_or(defaults.sudo),
        known_hosts: api_hosts.known_hosts,
        host_key_sha256,
        timing,
        tags: new.tags,
        compose_paths: Vec::new(),
        reboot_command: None,
        package_manager: new.package_manager.map(spec_package_manager),
        policy: HostPolicy {
            updates: spec_updates(policy.updates.unwrap_or_default()),
            auto_reboot: policy.auto_reboot.unwrap_or(false),
            maintenance_window,
            refresh_lists: policy.refresh_lists.unwrap_or(true),
            apt_upgrade: policy
                .apt_upgrade
                .map_or(spec::AptUpgrade::DistUpgrade, spec_apt_upgrade),
            exclude: defaults.exclude.clone(),
        },
        docker: spec::DockerSettings::default(),
        origin: HostOrigin::Runtime,
    })
}

/// A host rule's refusal as a 422 naming the field's JSON path in the body.
fn invalid(err: RuleError) -> ApiError {
    ApiError::invalid_value(json_path(err.field), err.reason)
}

/// Where a host field sits in a `NewHost` body.
fn json_path(field: Field) -> &'static str {
    match field {
        Field::Name => "name",
        Field::Addr => "addr",
        Field::Port => "port",
        Field::User => "user",
        Field::SshKey => "ssh_key",
        Field::KnownHosts => "known_hosts",
        Field::HostKeySha256 => "host_key_sha256",
        Field::ConnectTimeout => "connect_timeout",
        Field::CommandTimeout => "command_timeout",
        Field::CheckInterval => "check_interval",
        Field::SshIdleTimeout => "ssh_idle_timeout",
        Field::ReconnectWindow => "reconnect_window",
        Field::DpkgLockTimeout => "dpkg_lock_timeout",
        Field::Tag => "tags",
        Field::RebootCommand => "reboot_command",
        Field::PackageManager => "package_manager",
        Field::Updates => "policy.updates",
        Field::AptUpgrade => "policy.apt_upgrade",
        Field::WindowStart => "policy.maintenance_window.start",
        Field::WindowEnd => "policy.maintenance_window.end",
        Field::WindowDay => "policy.maintenance_window.days",
    }
}

fn maintenance_window(window: &MaintenanceWindow) -> Result<spec::MaintenanceWindow, ApiError> {
    Ok(spec::MaintenanceWindow {
        start_minute: host_rules::window_time(Field::WindowStart, &window.start)
            .map_err(invalid)?,
        end_minute: host_rules::window_time(Field::WindowEnd, &window.end).map_err(invalid)?,
        days: window.days.iter().copied().map(spec_weekday).collect(),
    })
}

// The wire enums below carry the words `host_rules` parses from the config file
// (`host_rules::tests` checks each wire name means the same there).

pub(crate) fn spec_package_manager(manager: PackageManager) -> spec::PinnedManager {
    match manager {
        PackageManager::Apt => spec::PinnedManager::Apt,
        PackageManager::Dnf => spec::PinnedManager::Dnf,
        PackageManager::Yum => spec::PinnedManager::Yum,
    }
}

pub(crate) fn spec_updates(updates: UpdatePolicy) -> spec::UpdatePolicy {
    match updates {
        UpdatePolicy::Allowed => spec::UpdatePolicy::Allowed,
        UpdatePolicy::CheckOnly => spec::UpdatePolicy::CheckOnly,
    }
}

pub(crate) fn spec_apt_upgrade(mode: AptUpgrade) -> spec::AptUpgrade {
    match mode {
        AptUpgrade::DistUpgrade => spec::AptUpgrade::DistUpgrade,
        AptUpgrade::Upgrade => spec::AptUpgrade::Upgrade,
    }
}

pub(crate) fn spec_weekday(day: Weekday) -> spec::Weekday {
    match day {
        Weekday::Mon => spec::Weekday::Mon,
        Weekday::Tue => spec::Weekday::Tue,
        Weekday::Wed => spec::Weekday::Wed,
        Weekday::Thu => spec::Weekday::Thu,
        Weekday::Fri => spec::Weekday::Fri,
        Weekday::Sat => spec::Weekday::Sat,
        Weekday::Sun => spec::Weekday::Sun,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::StatusCode;
    use serde_json::{Value, json};
    use tendhost_api::hosts::NewHost;
    use tendhost_core::spec::{HostOrigin, HostTarget, UpdatePolicy, Weekday};

    use std::path::PathBuf;

    use tendhost_core::spec::KnownHostsPolicy;

    use crate::config::{ApiHostsConfig, HostDefaults};
    use crate::http::new_host::{host_spec, host_spec_from_record};

    fn defaults() -> HostDefaults {
        HostDefaults {
            user: "ops".to_owned(),
            port: 2222,
            ..HostDefaults::default()
        }
    }

    fn spec_of(body: Value) -> Result<tendhost_core::spec::HostSpec, (StatusCode, String)> {
        let new: NewHost = serde_json::from_value(body).unwrap();
        host_spec(new, &defaults(), &ApiHostsConfig::default()).map_err(|err| {
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
                json!({"name": "a", "addr": "10.0.0.1", "host_key_sha256": "abc"}),
                "host_key_sha256",
            ),
            (
                json!({"name": "a", "addr": "10.0.0.1", "host_key_sha256": "SHA256:short"}),
                "host_key_sha256",
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

    #[test]
    fn key_and_policy_come_from_api_hosts_and_the_pin_from_the_body() {
        let pin = format!("SHA256:{}", "a".repeat(43));
        let new: NewHost = serde_json::from_value(
            json!({"name": "p", "addr": "10.0.0.1", "host_key_sha256": pin}),
        )
        .unwrap();
        let mut base = defaults();
        base.ssh_key = Some(PathBuf::from("/defaults/key"));
        base.known_hosts = KnownHostsPolicy::AcceptNew;
        let spec = host_spec(new.clone(), &base, &ApiHostsConfig::default()).unwrap();
        assert_eq!(spec.ssh_key, Some(PathBuf::from("/defaults/key")));
        assert_eq!(spec.known_hosts, KnownHostsPolicy::Strict);
        assert_eq!(spec.host_key_sha256.as_deref(), Some(pin.as_str()));
        let api_hosts = ApiHostsConfig {
            ssh_key: Some(PathBuf::from("/api/key")),
            known_hosts: KnownHostsPolicy::AcceptNew,
            ..ApiHostsConfig::default()
        };
        let spec = host_spec(new, &base, &api_hosts).unwrap();
        assert_eq!(spec.ssh_key, Some(PathBuf::from("/api/key")));
        assert_eq!(spec.known_hosts, KnownHostsPolicy::AcceptNew);
    }

    #[test]
    fn the_body_cannot_name_a_key_or_a_policy() {
        for field in ["ssh_key", "known_hosts"] {
            let mut body = json!({"name": "a", "addr": "10.0.0.1"});
            body[field] = json!("x");
            let err = serde_json::from_value::<NewHost>(body).unwrap_err();
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn stored_bodies_with_retired_fields_still_load() {
        let record = crate::persist::RuntimeHost {
            name: "old".into(),
            addr: "10.0.0.1".into(),
            port: 0,
            user: None,
            ssh_key: None,
            tags: Vec::new(),
            sudo: None,
            definition: json!({"name": "old", "addr": "10.0.0.1", "ssh_key": "/root/.ssh/id",
                               "known_hosts": "accept-new", "tags": [], "policy": {}}),
            added_at: jiff::Timestamp::UNIX_EPOCH,
        };
        let spec = host_spec_from_record(&record, &defaults(), &ApiHostsConfig::default()).unwrap();
        assert_eq!(spec.ssh_key, None);
        assert_eq!(spec.known_hosts, KnownHostsPolicy::Strict);
    }
}
