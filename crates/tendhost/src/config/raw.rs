//! The TOML file exactly as written: serde structs that reject unknown keys and keep the byte
//! span of every value that validation may complain about. Nothing here is checked beyond
//! types; `config::validate` turns these into the daemon's `Config`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub defaults: RawDefaults,
    #[serde(default)]
    pub groups: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    #[serde(default)]
    pub host: Vec<RawHost>,
    #[serde(default)]
    pub schedule: Vec<crate::config::schedule::RawSchedule>,
    #[serde(default)]
    pub notify: Vec<Spanned<crate::config::notify::RawNotify>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub bind: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub log_format: Option<Spanned<String>>,
    pub data_dir: Option<Spanned<String>>,
    pub max_parallel: Option<Spanned<i64>>,
    pub retention_days: Option<Spanned<i64>>,
    pub check_on_start: Option<bool>,
    pub event_buffer: Option<Spanned<i64>>,
    pub event_channel: Option<Spanned<i64>>,
    pub ws_ping_interval: Option<Spanned<String>>,
    pub job_log_memory: Option<Spanned<i64>>,
    pub job_log_max: Option<Spanned<i64>>,
    pub keep_finished_jobs: Option<Spanned<i64>>,
    pub keep_finished_rollouts: Option<Spanned<i64>>,
    pub store_queue: Option<Spanned<i64>>,
    pub max_ws_clients: Option<Spanned<i64>>,
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<String>>,
    #[serde(default)]
    pub public_names: Vec<Spanned<String>>,
    #[serde(default)]
    pub cors_origins: Vec<Spanned<String>>,
    pub public_url: Option<Spanned<String>>,
    /// Spanned so a problem of the whole table points at it, however it is written
    /// (`[daemon.tls]`, `tls = { ... }`, `tls.mode = "files"`).
    pub tls: Option<Spanned<RawTls>>,
    pub auth: Option<Spanned<RawAuth>>,
    pub api_hosts: Option<Spanned<RawApiHosts>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiHosts {
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    pub ssh_key: Option<Spanned<String>>,
    pub known_hosts: Option<Spanned<String>>,
    pub resolve_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub mode: Option<Spanned<String>>,
    /// The key `mode` replaced: kept only to refuse it by name.
    pub enabled: Option<Spanned<bool>>,
    pub cert_path: Option<Spanned<String>>,
    pub key_path: Option<Spanned<String>>,
    pub names: Option<Spanned<Vec<Spanned<String>>>>,
    pub lifetime: Option<Spanned<String>>,
    pub renew_before: Option<Spanned<String>>,
    pub redirect_http: Option<Spanned<String>>,
    /// `[daemon.tls.acme]` (`mode = "acme"`).
    pub acme: Option<Spanned<RawAcme>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAcme {
    pub directory: Option<Spanned<String>>,
    pub email: Option<Spanned<String>>,
    pub domains: Option<Spanned<Vec<Spanned<String>>>>,
    pub challenge: Option<Spanned<String>>,
    pub http_port: Option<Spanned<i64>>,
    pub renew_before: Option<Spanned<String>>,
    pub ca_roots: Option<Spanned<String>>,
    pub retry: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuth {
    pub enabled: Option<Spanned<bool>>,
    #[serde(default)]
    pub tokens: Vec<RawToken>,
    pub tokens_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawToken {
    pub name: Spanned<String>,
    pub token_hash: Spanned<String>,
    pub role: Spanned<String>,
}

/// Settings shared by `[defaults]` and `[[host]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub user: Option<Spanned<String>>,
    pub ssh_key: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub sudo: Option<bool>,
    pub known_hosts: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub command_timeout: Option<Spanned<String>>,
    pub check_interval: Option<Spanned<String>>,
    pub ssh_idle_timeout: Option<Spanned<String>>,
    pub reconnect_window: Option<Spanned<String>>,
    pub dpkg_lock_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHost {
    pub name: Spanned<String>,
    pub addr: Spanned<String>,
    #[serde(default)]
    pub local: bool,
    pub port: Option<Spanned<i64>>,
    pub user: Option<Spanned<String>>,
    pub ssh_key: Option<Spanned<String>>,
    pub sudo: Option<bool>,
    pub known_hosts: Option<Spanned<String>>,
    pub host_key_sha256: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub command_timeout: Option<Spanned<String>>,
    pub check_interval: Option<Spanned<String>>,
    pub ssh_idle_timeout: Option<Spanned<String>>,
    pub reconnect_window: Option<Spanned<String>>,
    pub dpkg_lock_timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub compose_paths: Vec<Spanned<String>>,
    pub reboot_command: Option<Spanned<Vec<String>>>,
    pub package_manager: Option<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    #[serde(default)]
    pub policy: RawPolicy,
    #[serde(default)]
    pub docker: RawDocker,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    pub updates: Option<Spanned<String>>,
    #[serde(default)]
    pub auto_reboot: bool,
    pub maintenance_window: Option<Spanned<RawWindow>>,
    pub refresh_lists: Option<bool>,
    pub apt_upgrade: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWindow {
    pub start: Spanned<String>,
    pub end: Spanned<String>,
    #[serde(default)]
    pub days: Vec<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDocker {
    pub compose_version: Option<String>,
    #[serde(default)]
    pub pull_before_update: bool,
}
