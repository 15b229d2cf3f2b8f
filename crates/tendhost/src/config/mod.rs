//! Configuration: `tendhost.toml` -> `raw` serde structs (with spans) -> validated `Config`.
//!
//! Every problem is reported as `file:line:col: reason`, all of them at once, never as a panic.
//! Environment overrides (`TENDHOST_BIND`, `TENDHOST_LOG_LEVEL`, `TENDHOST_DATA_DIR`) win over
//! the file, which wins over defaults. Reading the process environment happens in `main`; this
//! module takes a lookup function so tests can pin the precedence without mutating globals.

mod acme;
mod health;
mod limits;
mod notify;
mod raw;
mod schedule;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tendhost_core::spec::{
    AptUpgrade, DockerSettings, HealthCheckSpec, HostOrigin, HostPolicy, HostSpec, HostTarget,
    KnownHostsPolicy, MaintenanceWindow, Timing, UpdatePolicy,
};
use tendhost_pkg::ExcludeGlob;
use toml::Spanned;

pub use crate::config::limits::Limits;
use crate::config::limits::RawLimits;
use crate::config::raw::{RawConfig, RawDefaults, RawHost, RawWindow};
use crate::host_rules::{self, Field, RuleError};

/// The example configuration, shipped in the binary (`tendhost default-config`).
pub const EXAMPLE: &str = include_str!("../../../../tendhost.toml.example");

/// Default HTTP bind address.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages).
    pub source: PathBuf,
    pub daemon: DaemonConfig,
    /// Resolved `[defaults]`, applied to hosts registered at runtime too.
    pub defaults: HostDefaults,
    pub groups: BTreeMap<String, Vec<String>>,
    pub hosts: Vec<HostSpec>,
    /// `[[schedule]]`, in file order.
    pub schedules: Vec<tendhost_core::schedule::ScheduleSpec>,
    /// `[[notify]]`, in file order.
    pub notify: Vec<tendhost_notify::NotifierSpec>,
}

/// `[daemon]`.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub bind: SocketAddr,
    pub log_level: String,
    pub log_format: LogFormat,
    pub data_dir: PathBuf,
    /// Fleet-wide limit on hosts doing remote work at once.
    pub max_parallel: usize,
    pub retention_days: u32,
    /// Check every host soon after start (spread over 30 s).
    pub check_on_start: bool,
    /// Events kept in memory for WebSocket replay (`?since=`).
    pub event_buffer: usize,
    /// Events a WebSocket client may fall behind before it gets `lagged`.
    pub event_channel: usize,
    /// How often each WebSocket is pinged; a client that has not answered the previous ping
    /// by the next one is closed.
    pub ws_ping_interval: Duration,
    /// Memory bounds (`job_log_memory`, `job_log_max`, `max_ws_clients`, ...).
    pub limits: Limits,
    /// Reverse proxies whose `X-Forwarded-For` names the client (audit, rate limit).
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// More names clients use for the daemon (the `Host` check), besides its bind address,
    /// loopback names and the machine's hostname.
    pub public_names: Vec<String>,
    /// Foreign origins (`scheme://host[:port]`) whose pages may call the API (CORS).
    pub cors_origins: Vec<String>,
    /// The daemon's address as its users reach it (`https://tendhost.lan:8443`), without a
    /// trailing `/`: notifications link rollouts and hosts under it.
    pub public_url: Option<String>,
    pub tls: TlsConfig,
    pub auth: AuthConfig,
    pub api_hosts: ApiHostsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// `[daemon.tls]`.
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// `None` is `mode = "off"` (plain HTTP).
    pub mode: Option<tendhost_tls::Mode>,
    /// A plain listener that redirects to https.
    pub redirect_http: Option<SocketAddr>,
    /// `mode = "acme"` with `challenge = "http-01"`: where the HTTP-01 answers are served (the
    /// `redirect_http` listener when there is one).
    pub acme_http: Option<SocketAddr>,
}

/// `[daemon.api_hosts]`: registering hosts through `POST /hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiHostsConfig {
    /// Where API hosts may point; empty (the default) refuses every registration.
    pub allow: Vec<crate::api_hosts::AllowRule>,
    /// The key API hosts log in with (else `[defaults]`'s).
    pub ssh_key: Option<PathBuf>,
    /// Host-key policy of API hosts (default strict; a body may pin `host_key_sha256`).
    pub known_hosts: KnownHostsPolicy,
    /// Deadline for resolving a registered name (default 5 s).
    pub resolve_timeout: Duration,
}

impl Default for ApiHostsConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            ssh_key: None,
            known_hosts: KnownHostsPolicy::Strict,
            resolve_timeout: Duration::from_secs(5),
        }
    }
}

impl ApiHostsConfig {
    /// Whether `POST /hosts` may register anything.
    pub fn enabled(&self) -> bool {
        !self.allow.is_empty()
    }
}

/// `[daemon.auth]`.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// On by default; off only with a loopback bind.
    pub enabled: bool,
    /// Tokens written in the config file (hashes only; `Debug` redacts them).
    pub tokens: Vec<tendhost_auth::TokenEntry>,
    /// More tokens, in a file re-read when it changes and on SIGHUP.
    pub tokens_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tokens: Vec::new(),
            tokens_file: None,
        }
    }
}

/// `[defaults]`, resolved.
#[derive(Debug, Clone)]
pub struct HostDefaults {
    pub user: String,
    pub ssh_key: Option<PathBuf>,
    pub port: u16,
    pub sudo: bool,
    pub known_hosts: KnownHostsPolicy,
    pub timing: Timing,
    /// `[defaults.health_check]`: config-file hosts only (hosts registered through the API
    /// never get one).
    pub health_check: Option<HealthCheckSpec>,
    /// Packages never upgraded on any host (a host's own `exclude` adds to these).
    pub exclude: Vec<ExcludeGlob>,
    /// Job directories whose outcome is stored that stay on each host (the newest).
    pub keep_job_dirs: usize,
}

impl Default for HostDefaults {
    fn default() -> Self {
        Self {
            user: "root".to_owned(),
            ssh_key: None,
            port: 22,
            sudo: false,
            known_hosts: KnownHostsPolicy::Strict,
            timing: Timing::default(),
            health_check: None,
            exclude: Vec::new(),
            keep_job_dirs: tendhost_core::spec::DEFAULT_KEEP_JOB_DIRS,
        }
    }
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// 1-based line and column in the config file.
    File { line: usize, col: usize },
    /// An environment variable.
    Env(&'static str),
}

/// One problem found in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(path, diagnostics))]
    Invalid {
        path: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(path: &Path, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for (idx, diagnostic) in diagnostics.iter().enumerate() {
        if idx > 0 {
            out.push('\n');
        }
        match &diagnostic.location {
            Location::File { line, col } => {
                out.push_str(&format!("{}:{line}:{col}: ", path.display()));
            }
            Location::Env(var) => out.push_str(&format!("{var}: ")),
        }
        out.push_str(&diagnostic.message);
    }
    out
}

/// Reads and validates `path`, with environment overrides from `env`.
pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path, env)
}

/// Validates config text as if read from `path` (relative `ssh_key` paths resolve against the
/// file's directory).
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let mut validator = Validator {
        text,
        base_dir: path.parent().map(Path::to_owned).unwrap_or_default(),
        env,
        diagnostics: Vec::new(),
    };
    let config = match toml::from_str::<RawConfig>(text) {
        Ok(raw) => Some(validator.config(raw, path)),
        Err(err) => {
            let span = err.span().unwrap_or(0..0);
            validator.error(&span, err.message().trim_end().to_owned());
            None
        }
    };
    match config {
        Some(config) if validator.diagnostics.is_empty() => Ok(config),
        _ => Err(ConfigError::Invalid {
            path: path.to_owned(),
            diagnostics: validator.diagnostics,
        }),
    }
}

/// Converts a byte offset into a 1-based line and column (columns count characters).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |idx| idx + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

struct Validator<'a> {
    text: &'a str,
    base_dir: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
    diagnostics: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn error(&mut self, span: &Range<usize>, message: String) {
        let (line, col) = line_col(self.text, span.start);
        self.diagnostics.push(Diagnostic {
            location: Location::File { line, col },
            message,
        });
    }

    fn env_error(&mut self, var: &'static str, message: String) {
        self.diagnostics.push(Diagnostic {
            location: Location::Env(var),
            message,
        });
    }

    fn config(&mut self, raw: RawConfig, path: &Path) -> Config {
        let daemon = self.daemon(raw.daemon);
        let defaults = self.defaults(&raw.defaults);
        let hosts = self.hosts(raw.host, &defaults);
        let groups = self.groups(raw.groups, &hosts);
        let schedules = self.schedules(raw.schedule, &hosts, &groups);
        let notify = self.notifiers(raw.notify, &groups);
        Config {
            schedules,
            source: path.to_owned(),
            daemon,
            defaults,
            groups,
            hosts,
            notify,
        }
    }

    fn daemon(&mut self, raw: raw::RawDaemon) -> DaemonConfig {
        let bind = match (self.env)("TENDHOST_BIND") {
            Some(value) => parse_bind(&value).unwrap_or_else(|message| {
                self.env_error("TENDHOST_BIND", message);
                fallback_bind()
            }),
            None => match &raw.bind {
                Some(bind) => parse_bind(bind.get_ref()).unwrap_or_else(|message| {
                    self.error(&bind.span(), message);
                    fallback_bind()
                }),
                None => fallback_bind(),
            },
        };

        let log_level = match (self.env)("TENDHOST_LOG_LEVEL") {
            Some(value) => {
                if let Err(message) = check_log_level(&value) {
                    self.env_error("TENDHOST_LOG_LEVEL", message);
                }
                value
            }
            None => match &raw.log_level {
                Some(level) => {
                    if let Err(message) = check_log_level(level.get_ref()) {
                        self.error(&level.span(), message);
                    }
                    level.get_ref().clone()
                }
                None => "info".to_owned(),
            },
        };

        let log_format = match &raw.log_format {
            None => LogFormat::Pretty,
            Some(format) => match format.get_ref().as_str() {
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                other => {
                    self.error(
                        &format.span(),
                        format!("log_format must be \"pretty\" or \"json\", not {other:?}"),
                    );
                    LogFormat::Pretty
                }
            },
        };

        let data_dir = match (self.env)("TENDHOST_DATA_DIR") {
            Some(value) if value.is_empty() => {
                self.env_error("TENDHOST_DATA_DIR", "must not be empty".to_owned());
                PathBuf::new()
            }
            Some(value) => self.expand_path(&value),
            None => match &raw.data_dir {
                Some(dir) if dir.get_ref().is_empty() => {
                    self.error(&dir.span(), "data_dir must not be empty".to_owned());
                    PathBuf::new()
                }
                Some(dir) => self.expand_path(dir.get_ref()),
                None => self.default_data_dir(),
            },
        };

        let max_parallel = raw.max_parallel.as_ref().map_or(32, |value| {
            self.int_in_range(value, 1, 4096, "max_parallel")
                .unwrap_or(32)
        });
        let retention_days = raw.retention_days.as_ref().map_or(90, |value| {
            self.int_in_range(value, 1, 36_500, "retention_days")
                .unwrap_or(90)
        });

        let event_buffer = raw.event_buffer.as_ref().map_or(10_000, |value| {
            self.int_in_range(value, 1, 1_000_000, "event_buffer")
                .unwrap_or(10_000)
        });
        let event_channel = raw.event_channel.as_ref().map_or(4_096, |value| {
            self.int_in_range(value, 1, 1_000_000, "event_channel")
                .unwrap_or(4_096)
        });
        let ws_ping_interval = match &raw.ws_ping_interval {
            None => Duration::from_secs(20),
            Some(value) => {
                host_rules::duration_reason(value.get_ref(), host_rules::MAX_WS_PING_INTERVAL)
                    .unwrap_or_else(|reason| {
                        self.error(&value.span(), format!("ws_ping_interval {reason}"));
                        Duration::from_secs(20)
                    })
            }
        };

        let limits = self.limits(&RawLimits {
            job_log_memory: raw.job_log_memory.as_ref(),
            job_log_max: raw.job_log_max.as_ref(),
            keep_finished_jobs: raw.keep_finished_jobs.as_ref(),
            keep_finished_rollouts: raw.keep_finished_rollouts.as_ref(),
            store_queue: raw.store_queue.as_ref(),
            max_ws_clients: raw.max_ws_clients.as_ref(),
        });
        let tls = self.tls(raw.tls, bind, &data_dir);
        let auth = self.auth(raw.auth, bind);
        let api_hosts = self.api_hosts(raw.api_hosts);
        let trusted_proxies = self.trusted_proxies(&raw.trusted_proxies);
        let public_names = self.public_names(&raw.public_names);
        let cors_origins = self.cors_origins(&raw.cors_origins);
        let public_url = self.public_url(raw.public_url.as_ref());
        DaemonConfig {
            bind,
            log_level,
            log_format,
            data_dir,
            max_parallel: usize::try_from(max_parallel).unwrap_or(32),
            retention_days: u32::try_from(retention_days).unwrap_or(90),
            check_on_start: raw.check_on_start.unwrap_or(true),
            event_buffer: usize::try_from(event_buffer).unwrap_or(10_000),
            event_channel: usize::try_from(event_channel).unwrap_or(4_096),
            ws_ping_interval,
            limits,
            trusted_proxies,
            public_names,
            cors_origins,
            public_url,
            tls,
            auth,
            api_hosts,
        }
    }

    fn api_hosts(&mut self, raw: Option<Spanned<raw::RawApiHosts>>) -> ApiHostsConfig {
        let base = ApiHostsConfig::default();
        let Some(raw) = raw else {
            return base;
        };
        let raw = raw.into_inner();
        let allow = raw
            .allow
            .iter()
            .filter_map(|rule| {
                crate::api_hosts::AllowRule::parse(rule.get_ref())
                    .map_err(|reason| {
                        self.error(
                            &rule.span(),
                            format!("daemon.api_hosts.allow entry {reason}"),
                        );
                    })
                    .ok()
            })
            .collect();
        let resolve_timeout = match &raw.resolve_timeout {
            None => base.resolve_timeout,
            Some(value) => {
                host_rules::duration_reason(value.get_ref(), host_rules::MAX_RESOLVE_TIMEOUT)
                    .unwrap_or_else(|reason| {
                        self.error(&value.span(), format!("resolve_timeout {reason}"));
                        base.resolve_timeout
                    })
            }
        };
        ApiHostsConfig {
            allow,
            ssh_key: raw.ssh_key.as_ref().and_then(|key| self.ssh_key(key)),
            known_hosts: raw
                .known_hosts
                .as_ref()
                .map_or(base.known_hosts, |policy| self.known_hosts(policy)),
            resolve_timeout,
        }
    }

    fn tls(
        &mut self,
        raw: Option<Spanned<raw::RawTls>>,
        bind: SocketAddr,
        data_dir: &Path,
    ) -> TlsConfig {
        let Some(raw) = raw else {
            return TlsConfig::default();
        };
        let table = raw.span();
        let raw = raw.into_inner();
        if let Some(enabled) = &raw.enabled {
            self.error(
                &enabled.span(),
                "`enabled` is replaced by `mode`: write mode = \"off\", \"files\" (with cert_path \
                 and key_path) or \"self-signed\""
                    .to_owned(),
            );
        }
        let mode_name = raw
            .mode
            .as_ref()
            .map_or("off", |mode| mode.get_ref().as_str());
        if !matches!(mode_name, "off" | "files" | "self-signed" | "acme")
            && let Some(mode) = &raw.mode
        {
            self.error(
                &mode.span(),
                format!(
                    "mode must be \"off\", \"files\", \"self-signed\" or \"acme\", not {mode_name:?}"
                ),
            );
            return TlsConfig::default();
        }
        // Keys that belong to one mode are refused in the others rather than ignored.
        let only_in = |key: &str, mode: &str| format!("{key} is only used with mode = \"{mode}\"");
        for (key, span) in [
            ("cert_path", raw.cert_path.as_ref().map(Spanned::span)),
            ("key_path", raw.key_path.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span.filter(|_| mode_name != "files") {
                self.error(&span, only_in(key, "files"));
            }
        }
        for (key, span) in [
            ("names", raw.names.as_ref().map(Spanned::span)),
            ("lifetime", raw.lifetime.as_ref().map(Spanned::span)),
            ("renew_before", raw.renew_before.as_ref().map(Spanned::span)),
        ] {
            if let Some(span) = span.filter(|_| mode_name != "self-signed") {
                self.error(&span, only_in(key, "self-signed"));
            }
        }
        if let Some(acme) = raw.acme.as_ref().filter(|_| mode_name != "acme") {
            self.error(&acme.span(), only_in("[daemon.tls.acme]", "acme"));
        }
        let redirect_http = raw.redirect_http.as_ref().and_then(|value| {
            if mode_name == "off" {
                self.error(
                    &value.span(),
                    "redirect_http needs TLS: set mode = \"files\", \"self-signed\" or \"acme\""
                        .to_owned(),
                );
                return None;
            }
            match value.get_ref().parse::<SocketAddr>() {
                Ok(addr) if addr == bind => {
                    self.error(&value.span(), format!("redirect_http {addr} is the bind address"));
                    None
                }
                Ok(addr) => Some(addr),
                Err(_) => {
                    self.error(
                        &value.span(),
                        format!(
                            "redirect_http {:?} is not an address: use IP:PORT, e.g. \"0.0.0.0:80\"",
                            value.get_ref()
                        ),
                    );
                    None
                }
            }
        });
        let mut acme_http = None;
        let mode = match mode_name {
            "files" => match (&raw.cert_path, &raw.key_path) {
                (Some(cert), Some(key)) => Some(tendhost_tls::Mode::Files {
                    cert_path: self.expand_path(cert.get_ref()),
                    key_path: self.expand_path(key.get_ref()),
                }),
                (cert, key) => {
                    let missing = match (cert, key) {
                        (None, None) => "cert_path and key_path",
                        (None, Some(_)) => "cert_path",
                        _ => "key_path",
                    };
                    self.error(&table, format!("mode = \"files\" needs {missing}"));
                    None
                }
            },
            "self-signed" => self
                .self_signed(&raw, bind, data_dir)
                .map(tendhost_tls::Mode::SelfSigned),
            "acme" => {
                if let Some(acme) = &raw.acme {
                    self.acme(acme, bind, redirect_http, data_dir)
                        .map(|(settings, http)| {
                            acme_http = http;
                            tendhost_tls::Mode::Acme(settings)
                        })
                } else {
                    self.error(
                        &table,
                        "mode = \"acme\" needs a [daemon.tls.acme] table with directory and domains"
                            .to_owned(),
                    );
                    None
                }
            }
            _ => None,
        };
        TlsConfig {
            mode,
            redirect_http,
            acme_http,
        }
    }

    fn self_signed(
        &mut self,
        raw: &raw::RawTls,
        bind: SocketAddr,
        data_dir: &Path,
    ) -> Option<tendhost_tls::SelfSigned> {
        let names = match &raw.names {
            None => tendhost_tls::default_names(bind),
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    &list.span(),
                    "names must not be empty (leave it out for the defaults)".to_owned(),
                );
                Vec::new()
            }
            Some(list) => {
                let mut names = Vec::new();
                for name in list.get_ref() {
                    match tendhost_tls::San::parse(name.get_ref()) {
                        Ok(san) if names.contains(&san) => {
                            self.error(&name.span(), format!("names lists {san} twice"));
                        }
                        Ok(san) => names.push(san),
                        Err(reason) => self.error(&name.span(), format!("names: {reason}")),
                    }
                }
                names
            }
        };
        // A server certificate cannot outlive the CA that signs it (10 years).
        let max_lifetime = Duration::from_secs(10 * 365 * 24 * 60 * 60);
        let duration = |this: &mut Self, key: &str, value: &Spanned<String>| {
            host_rules::duration_reason(value.get_ref(), max_lifetime)
                .map_err(|reason| this.error(&value.span(), format!("{key} {reason}")))
                .ok()
        };
        let lifetime = match &raw.lifetime {
            None => Some(tendhost_tls::DEFAULT_LIFETIME),
            Some(value) => duration(self, "lifetime", value).and_then(|lifetime| {
                if lifetime < tendhost_tls::MIN_LIFETIME {
                    self.error(
                        &value.span(),
                        format!("lifetime must be at least 60s, not {:?}", value.get_ref()),
                    );
                    return None;
                }
                Some(lifetime)
            }),
        };
        let renew_before = match (&raw.renew_before, lifetime) {
            (None, Some(lifetime)) => Some(lifetime / 3),
            (None, None) => None,
            (Some(value), lifetime) => duration(self, "renew_before", value).and_then(|before| {
                if lifetime.is_some_and(|lifetime| before >= lifetime) {
                    self.error(
                        &value.span(),
                        "renew_before must be shorter than lifetime".to_owned(),
                    );
                    return None;
                }
                Some(before)
            }),
        };
        Some(tendhost_tls::SelfSigned {
            dir: data_dir.join("tls"),
            names,
            lifetime: lifetime?,
            renew_before: renew_before?,
        })
    }

    fn auth(&mut self, raw: Option<Spanned<raw::RawAuth>>, bind: SocketAddr) -> AuthConfig {
        let Some(raw) = raw else {
            return AuthConfig::default();
        };
        let raw = raw.into_inner();
        let mut tokens: Vec<tendhost_auth::TokenEntry> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for token in raw.tokens {
            let spans = [
                ("name", token.name.span()),
                ("token_hash", token.token_hash.span()),
                ("role", token.role.span()),
            ];
            match tendhost_auth::tokens_file::entry(
                token.name.get_ref(),
                token.token_hash.get_ref(),
                token.role.get_ref(),
            ) {
                Ok(entry) => {
                    let line = self.line_of(&token.name.span());
                    if let Some(first) = seen.insert(entry.name.clone(), line) {
                        self.error(
                            &token.name.span(),
                            format!(
                                "duplicate token name {:?} (first defined on line {first})",
                                entry.name
                            ),
                        );
                    } else {
                        tokens.push(entry);
                    }
                }
                Err(field_errors) => {
                    for field_error in field_errors {
                        let span = spans
                            .iter()
                            .find(|(field, _)| *field == field_error.field)
                            .map_or(token.name.span(), |(_, span)| span.clone());
                        self.error(&span, field_error.message);
                    }
                }
            }
        }
        let tokens_file = raw.tokens_file.map(|path| {
            if path.get_ref().is_empty() {
                self.error(&path.span(), "tokens_file must not be empty".to_owned());
            }
            self.expand_path(path.get_ref())
        });
        let enabled = raw.enabled.as_ref().is_none_or(|e| *e.get_ref());
        if let Some(flag) = &raw.enabled
            && !enabled
            && !bind.ip().is_loopback()
        {
            self.error(
                &flag.span(),
                format!(
                    "daemon.auth.enabled = false is allowed only with a loopback bind, not \
                     {bind}: anyone who reaches the port could update and reboot every host"
                ),
            );
        }
        AuthConfig {
            enabled,
            tokens,
            tokens_file,
        }
    }

    fn public_names(&mut self, raw: &[toml::Spanned<String>]) -> Vec<String> {
        let mut names = Vec::new();
        for name in raw {
            let text = name.get_ref();
            let valid = !text.is_empty()
                && text.len() <= 253
                && (text.parse::<std::net::IpAddr>().is_ok()
                    || text.split('.').all(|label| {
                        !label.is_empty()
                            && label.len() <= 63
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }));
            if valid {
                names.push(text.clone());
            } else {
                self.error(
                    &name.span(),
                    format!("public_names entries must be DNS names or IP addresses, not {text:?}"),
                );
            }
        }
        names
    }

    fn cors_origins(&mut self, raw: &[toml::Spanned<String>]) -> Vec<String> {
        let mut origins = Vec::new();
        for origin in raw {
            let text = origin.get_ref();
            let valid = text.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', '@', ' '])
            });
            if valid {
                origins.push(text.clone());
            } else {
                self.error(
                    &origin.span(),
                    format!(
                        "cors_origins entries must be origins like \"https://dash.example:8443\" \
                         (scheme, host, optional port; no path), not {text:?}"
                    ),
                );
            }
        }
        origins
    }

    fn trusted_proxies(&mut self, raw: &[toml::Spanned<String>]) -> Vec<std::net::IpAddr> {
        let mut proxies = Vec::new();
        for addr in raw {
            match addr.get_ref().parse::<std::net::IpAddr>() {
                Ok(ip) => proxies.push(ip),
                Err(_) => self.error(
                    &addr.span(),
                    format!(
                        "trusted_proxies entries must be IP addresses, not {:?}",
                        addr.get_ref()
                    ),
                ),
            }
        }
        proxies
    }

    fn defaults(&mut self, raw: &RawDefaults) -> HostDefaults {
        let base = HostDefaults::default();
        let timing = self.timing(
            [
                raw.connect_timeout.as_ref(),
                raw.command_timeout.as_ref(),
                raw.check_interval.as_ref(),
                raw.ssh_idle_timeout.as_ref(),
                raw.reconnect_window.as_ref(),
                raw.dpkg_lock_timeout.as_ref(),
                raw.job_timeout.as_ref(),
            ],
            base.timing,
        );
        HostDefaults {
            user: raw.user.as_ref().map_or(base.user, |user| self.user(user)),
            ssh_key: raw.ssh_key.as_ref().and_then(|key| self.ssh_key(key)),
            port: raw.port.as_ref().map_or(base.port, |port| self.port(port)),
            sudo: raw.sudo.unwrap_or(base.sudo),
            known_hosts: raw
                .known_hosts
                .as_ref()
                .map_or(base.known_hosts, |policy| self.known_hosts(policy)),
            timing,
            health_check: raw
                .health_check
                .as_ref()
                .and_then(|check| self.health_check(check)),
            exclude: self.exclude(&raw.exclude, &[]),
            keep_job_dirs: self.keep_job_dirs(raw.keep_job_dirs.as_ref(), base.keep_job_dirs),
        }
    }

    /// `exclude` globs, after `inherited` ones (each checked; a repeat is dropped).
    fn exclude(&mut self, raw: &[Spanned<String>], inherited: &[ExcludeGlob]) -> Vec<ExcludeGlob> {
        let mut globs = inherited.to_vec();
        for pattern in raw {
            match ExcludeGlob::new(pattern.get_ref()) {
                Ok(glob) if !globs.contains(&glob) => globs.push(glob),
                Ok(_) => {}
                Err(message) => self.error(&pattern.span(), format!("exclude: {message}")),
            }
        }
        globs
    }

    fn hosts(&mut self, raw_hosts: Vec<RawHost>, defaults: &HostDefaults) -> Vec<HostSpec> {
        // Where each name was first seen; the line is counted only for a duplicate (counting
        // lines for every host would scan the file once per host).
        let mut seen: HashMap<String, Range<usize>> = HashMap::new();
        let mut hosts = Vec::with_capacity(raw_hosts.len());
        for raw in raw_hosts {
            let name_span = raw.name.span();
            let name = raw.name.get_ref().clone();
            self.rule(&name_span, host_rules::host_name(&name));
            if let Some(first) = seen.get(&name) {
                let first_line = self.line_of(first);
                self.error(
                    &name_span,
                    format!("duplicate host name {name:?} (first defined on line {first_line})"),
                );
            } else {
                seen.insert(name.clone(), name_span);
            }
            hosts.push(self.host(raw, name, defaults));
        }
        hosts
    }

    fn host(&mut self, raw: RawHost, name: String, defaults: &HostDefaults) -> HostSpec {
        let addr = raw.addr.get_ref().trim().to_owned();
        let target = if addr == "local" || (raw.local && addr == "localhost") {
            HostTarget::Local
        } else {
            if raw.local {
                self.error(
                    &raw.addr.span(),
                    format!(
                        "local = true needs addr = \"localhost\" (or use addr = \"local\"), \
                         not {addr:?}"
                    ),
                );
            } else {
                self.rule(&raw.addr.span(), host_rules::addr(&addr));
            }
            let port = raw
                .port
                .as_ref()
                .map_or(defaults.port, |port| self.port(port));
            HostTarget::Ssh { addr, port }
        };
        let timing = self.timing(
            [
                raw.connect_timeout.as_ref(),
                raw.command_timeout.as_ref(),
                raw.check_interval.as_ref(),
                raw.ssh_idle_timeout.as_ref(),
                raw.reconnect_window.as_ref(),
                raw.dpkg_lock_timeout.as_ref(),
                raw.job_timeout.as_ref(),
            ],
            defaults.timing,
        );
        let tags = raw
            .tags
            .iter()
            .map(|tag| {
                self.rule(&tag.span(), host_rules::tag(tag.get_ref()));
                tag.get_ref().clone()
            })
            .collect();
        let reboot_command = raw.reboot_command.as_ref().map(|argv| {
            self.rule(&argv.span(), host_rules::reboot_command(argv.get_ref()));
            argv.get_ref().clone()
        });
        let package_manager =
            self.checked(raw.package_manager.as_ref(), host_rules::package_manager);
        HostSpec {
            name,
            target,
            user: raw
                .user
                .as_ref()
                .map_or_else(|| defaults.user.clone(), |user| self.user(user)),
            ssh_key: match &raw.ssh_key {
                Some(key) => self.ssh_key(key),
                None => defaults.ssh_key.clone(),
            },
            sudo: raw.sudo.unwrap_or(defaults.sudo),
            known_hosts: raw
                .known_hosts
                .as_ref()
                .map_or(defaults.known_hosts, |policy| self.known_hosts(policy)),
            host_key_sha256: self
                .checked(raw.host_key_sha256.as_ref(), host_rules::host_key_sha256),
            timing,
            tags,
            compose_paths: raw
                .compose_paths
                .iter()
                .map(|path| PathBuf::from(path.get_ref()))
                .collect(),
            reboot_command,
            health_check: match &raw.health_check {
                Some(check) => self.health_check(check),
                None => defaults.health_check.clone(),
            },
            package_manager,
            policy: HostPolicy {
                exclude: self.exclude(&raw.exclude, &defaults.exclude),
                ..self.policy(&raw.policy)
            },
            docker: DockerSettings {
                compose_version: raw.docker.compose_version,
                pull_before_update: raw.docker.pull_before_update,
            },
            origin: HostOrigin::Config,
            keep_job_dirs: self.keep_job_dirs(raw.keep_job_dirs.as_ref(), defaults.keep_job_dirs),
        }
    }

    fn policy(&mut self, raw: &raw::RawPolicy) -> HostPolicy {
        let updates = self
            .checked(raw.updates.as_ref(), host_rules::updates)
            .unwrap_or(UpdatePolicy::Allowed);
        let apt_upgrade = self
            .checked(raw.apt_upgrade.as_ref(), host_rules::apt_upgrade)
            .unwrap_or(AptUpgrade::DistUpgrade);
        HostPolicy {
            updates,
            auto_reboot: raw.auto_reboot,
            maintenance_window: raw
                .maintenance_window
                .as_ref()
                .and_then(|window| self.window(window)),
            refresh_lists: raw.refresh_lists.unwrap_or(true),
            apt_upgrade,
            restart_services: self.restart_services(raw.restart_services.as_ref()),
            exclude: Vec::new(),
        }
    }

    fn window(&mut self, window: &Spanned<RawWindow>) -> Option<MaintenanceWindow> {
        let raw = window.get_ref();
        let start = self.checked(Some(&raw.start), |value| {
            host_rules::window_time(Field::WindowStart, value)
        });
        let end = self.checked(Some(&raw.end), |value| {
            host_rules::window_time(Field::WindowEnd, value)
        });
        let days = raw
            .days
            .iter()
            .filter_map(|day| self.checked(Some(day), host_rules::window_day))
            .collect();
        Some(MaintenanceWindow {
            start_minute: start?,
            end_minute: end?,
            days,
        })
    }

    fn groups(
        &mut self,
        raw: BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
        hosts: &[HostSpec],
    ) -> BTreeMap<String, Vec<String>> {
        let mut groups = BTreeMap::new();
        let known: std::collections::HashSet<&str> =
            hosts.iter().map(|host| host.name.as_str()).collect();
        for (name, members) in raw {
            if let Some(reason) = host_rules::name_problem(name.get_ref()) {
                self.error(&name.span(), format!("group name {reason}"));
            }
            let mut list = Vec::with_capacity(members.len());
            for member in members {
                if !known.contains(member.get_ref().as_str()) {
                    self.error(
                        &member.span(),
                        format!(
                            "group {:?} names unknown host {:?}",
                            name.get_ref(),
                            member.get_ref()
                        ),
                    );
                }
                list.push(member.into_inner());
            }
            groups.insert(name.into_inner(), list);
        }
        groups
    }

    fn user(&mut self, user: &Spanned<String>) -> String {
        self.rule(&user.span(), host_rules::user(user.get_ref()));
        user.get_ref().clone()
    }

    fn ssh_key(&mut self, key: &Spanned<String>) -> Option<PathBuf> {
        let path = self.expand_path(key.get_ref());
        self.rule(&key.span(), host_rules::ssh_key(&path))
            .map(|()| path)
    }

    fn port(&mut self, port: &Spanned<i64>) -> u16 {
        self.rule(&port.span(), host_rules::port(*port.get_ref()))
            .unwrap_or(22)
    }

    fn known_hosts(&mut self, policy: &Spanned<String>) -> KnownHostsPolicy {
        self.checked(Some(policy), host_rules::known_hosts)
            .unwrap_or(KnownHostsPolicy::Strict)
    }

    /// The seven timing settings, in `Timing`'s order; each left out or refused keeps `base`'s.
    fn timing(&mut self, values: [Option<&Spanned<String>>; 7], base: Timing) -> Timing {
        let [
            connect_timeout,
            command_timeout,
            check_interval,
            ssh_idle_timeout,
            reconnect_window,
            dpkg_lock_timeout,
            job_timeout,
        ] = values;
        let mut duration = |field: Field, value: Option<&Spanned<String>>, default: Duration| {
            self.checked(value, |value| host_rules::duration(field, value))
                .unwrap_or(default)
        };
        Timing {
            connect_timeout: duration(Field::ConnectTimeout, connect_timeout, base.connect_timeout),
            command_timeout: duration(Field::CommandTimeout, command_timeout, base.command_timeout),
            check_interval: duration(Field::CheckInterval, check_interval, base.check_interval),
            ssh_idle_timeout: duration(
                Field::SshIdleTimeout,
                ssh_idle_timeout,
                base.ssh_idle_timeout,
            ),
            reconnect_window: duration(
                Field::ReconnectWindow,
                reconnect_window,
                base.reconnect_window,
            ),
            dpkg_lock_timeout: duration(
                Field::DpkgLockTimeout,
                dpkg_lock_timeout,
                base.dpkg_lock_timeout,
            ),
            job_timeout: duration(Field::JobTimeout, job_timeout, base.job_timeout),
        }
    }

    /// A host rule's answer; a refusal is reported at `span` as `{subject} {reason}`.
    fn rule<T>(&mut self, span: &Range<usize>, result: Result<T, RuleError>) -> Option<T> {
        result
            .map_err(|err| self.error(span, format!("{} {}", subject(err.field), err.reason)))
            .ok()
    }

    /// A host rule applied to a value that may be left out: `None` when absent or refused.
    fn checked<T>(
        &mut self,
        value: Option<&Spanned<String>>,
        rule: impl FnOnce(&str) -> Result<T, RuleError>,
    ) -> Option<T> {
        let value = value?;
        self.rule(&value.span(), rule(value.get_ref()))
    }

    fn keep_job_dirs(&mut self, value: Option<&Spanned<i64>>, default: usize) -> usize {
        value
            .and_then(|value| {
                self.int_in_range(
                    value,
                    0,
                    i64::try_from(host_rules::MAX_KEEP_JOB_DIRS).unwrap_or(i64::MAX),
                    "keep_job_dirs",
                )
            })
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(default)
    }

    fn int_in_range(
        &mut self,
        value: &Spanned<i64>,
        min: i64,
        max: i64,
        what: &str,
    ) -> Option<i64> {
        let number = *value.get_ref();
        if (min..=max).contains(&number) {
            Some(number)
        } else {
            self.error(
                &value.span(),
                format!("{what} must be between {min} and {max}, not {number}"),
            );
            None
        }
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }

    /// `~/x` -> `$HOME/x`; relative paths resolve against the config file's directory.
    fn expand_path(&self, value: &str) -> PathBuf {
        if let Some(rest) = value.strip_prefix("~/")
            && let Some(home) = (self.env)("HOME")
        {
            return Path::new(&home).join(rest);
        }
        let path = PathBuf::from(value);
        if path.is_absolute() {
            path
        } else {
            self.base_dir.join(path)
        }
    }

    fn default_data_dir(&self) -> PathBuf {
        if let Some(xdg) = (self.env)("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return Path::new(&xdg).join("tendhost");
        }
        if let Some(home) = (self.env)("HOME").filter(|v| !v.is_empty()) {
            return Path::new(&home).join(".local/share/tendhost");
        }
        PathBuf::from("/var/lib/tendhost")
    }
}

fn fallback_bind() -> SocketAddr {
    DEFAULT_BIND.parse().expect("default bind address parses")
}

fn parse_bind(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| {
        format!("bind {value:?} is not an address: use IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\"")
    })
}

fn check_log_level(value: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| ())
        .map_err(|err| {
            format!(
                "log_level {value:?} is not a level or filter ({err}); use trace, debug, info, warn or error"
            )
        })
}

/// How the config file's messages name a host field: `{subject} {reason}`.
fn subject(field: Field) -> &'static str {
    match field {
        Field::Name => "host name",
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
        Field::JobTimeout => "job_timeout",
        Field::Tag => "tag",
        Field::RebootCommand => "reboot_command",
        Field::PackageManager => "package_manager",
        Field::Updates => "updates",
        Field::AptUpgrade => "apt_upgrade",
        Field::WindowStart => "maintenance_window.start",
        Field::WindowEnd => "maintenance_window.end",
        Field::WindowDay => "maintenance_window day",
    }
}

impl Config {
    /// A short human summary, printed by `tendhost check-config`.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{}: OK\n  bind: {}\n  tls: {}\n  data_dir: {}\n  max_parallel: {}\n  hosts: {}\n",
            self.source.display(),
            self.daemon.bind,
            self.daemon
                .tls
                .mode
                .as_ref()
                .map_or("off", tendhost_tls::Mode::name),
            self.daemon.data_dir.display(),
            self.daemon.max_parallel,
            self.hosts.len(),
        );
        let auth = &self.daemon.auth;
        if auth.enabled {
            out.push_str(&format!(
                "  auth: on, {} token(s) in the config",
                auth.tokens.len()
            ));
            if let Some(file) = &auth.tokens_file {
                out.push_str(&format!(", tokens_file {}", file.display()));
            }
            out.push('\n');
        } else {
            out.push_str("  auth: OFF (loopback only)\n");
        }
        let api_hosts = &self.daemon.api_hosts;
        if api_hosts.enabled() {
            let rules: Vec<&str> = api_hosts.allow.iter().map(|r| r.text.as_str()).collect();
            out.push_str(&format!(
                "  POST /hosts: allowed for {}\n",
                rules.join(", ")
            ));
        } else {
            out.push_str("  POST /hosts: disabled (no [daemon.api_hosts] allow)\n");
        }
        for host in &self.hosts {
            let target = match &host.target {
                HostTarget::Local => "local".to_owned(),
                HostTarget::Ssh { addr, port } => format!("{}@{addr}:{port}", host.user),
            };
            let updates = match host.policy.updates {
                UpdatePolicy::Allowed => "updates allowed",
                UpdatePolicy::CheckOnly => "check-only",
            };
            let tags = if host.tags.is_empty() {
                String::new()
            } else {
                format!(" tags={}", host.tags.join(","))
            };
            out.push_str(&format!("    {} ({target}, {updates}){tags}\n", host.name));
        }
        out.push_str(&format!("  groups: {}\n", self.groups.len()));
        for (name, members) in &self.groups {
            out.push_str(&format!("    {name}: {}\n", members.join(", ")));
        }
        if !self.schedules.is_empty() {
            out.push_str(&format!("  schedules: {}\n", self.schedules.len()));
        }
        for schedule in &self.schedules {
            out.push_str(&format!(
                "    {} ({} {}, {}, packages {}{})\n",
                schedule.name,
                schedule.cron_text,
                schedule.timezone_name,
                schedule.action.as_str(),
                schedule.request.packages.describe(),
                if schedule.enabled { "" } else { ", disabled" },
            ));
        }
        out.push_str(&format!("  notifiers: {}\n", self.notify.len()));
        for notifier in &self.notify {
            let events: Vec<&str> = notifier.events.iter().map(|e| e.as_str()).collect();
            out.push_str(&format!(
                "    {} ({}): {}\n",
                notifier.name,
                notifier.channel.kind(),
                events.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
