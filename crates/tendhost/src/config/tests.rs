//! Config parsing and validation tests: every error names file:line:col, and the env > file >
//! default precedence is pinned.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use tendhost_core::spec::{HostTarget, KnownHostsPolicy, UpdatePolicy, Weekday};

use crate::config::{Config, ConfigError, EXAMPLE, LogFormat, parse};

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse_ok(text: &str) -> Config {
    match parse(text, Path::new("/etc/tendhost/t.toml"), &no_env) {
        Ok(config) => config,
        Err(err) => panic!("expected a valid config, got:\n{err}"),
    }
}

/// Asserts `text` fails with a diagnostic at `line:col` whose message contains `needle`.
#[track_caller]
fn check_err(text: &str, line: usize, col: usize, needle: &str) {
    let err = parse(text, Path::new("/etc/tendhost/t.toml"), &no_env)
        .expect_err("config should be rejected");
    let rendered = err.to_string();
    let expected_prefix = format!("/etc/tendhost/t.toml:{line}:{col}: ");
    assert!(
        rendered
            .lines()
            .any(|l| l.starts_with(&expected_prefix) && l.contains(needle)),
        "expected a line starting {expected_prefix:?} containing {needle:?}, got:\n{rendered}"
    );
}

#[test]
fn example_config_is_valid_and_local_check_only() {
    let config = parse(EXAMPLE, Path::new("/srv/tendhost.toml"), &no_env).unwrap();
    assert_eq!(config.hosts.len(), 1);
    let host = &config.hosts[0];
    assert_eq!(host.name, "localhost");
    assert_eq!(host.target, HostTarget::Local);
    assert_eq!(host.policy.updates, UpdatePolicy::CheckOnly);
    assert!(!host.policy.refresh_lists);
    assert_eq!(config.daemon.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(config.daemon.data_dir, Path::new("/srv/.tendhost-data"));
    assert_eq!(config.groups["this-machine"], vec!["localhost".to_owned()]);
}

#[test]
fn empty_config_takes_defaults() {
    let config = parse("", Path::new("/x/t.toml"), &|var| match var {
        "HOME" => Some("/home/ann".to_owned()),
        _ => None,
    })
    .unwrap();
    assert_eq!(config.daemon.bind.to_string(), "127.0.0.1:8080");
    assert_eq!(config.daemon.log_level, "info");
    assert_eq!(config.daemon.log_format, LogFormat::Pretty);
    assert_eq!(
        config.daemon.data_dir,
        Path::new("/home/ann/.local/share/tendhost")
    );
    assert_eq!(config.daemon.max_parallel, 32);
    assert_eq!(config.daemon.retention_days, 90);
    assert_eq!(config.defaults.user, "root");
    assert_eq!(config.defaults.port, 22);
    assert_eq!(config.defaults.known_hosts, KnownHostsPolicy::Strict);
    assert_eq!(
        config.defaults.timing.ssh_idle_timeout,
        Duration::from_secs(300)
    );
    assert_eq!(
        config.defaults.timing.job_timeout,
        Duration::from_secs(2 * 3600)
    );
    assert_eq!(config.defaults.keep_job_dirs, 5);
    assert!(config.hosts.is_empty());
}

#[test]
fn host_inherits_defaults_and_overrides_them() {
    let config = parse_ok(
        r#"
[defaults]
user = "deploy"
port = 2222
sudo = true
known_hosts = "accept-new"
connect_timeout = "3s"
job_timeout = "30m"
keep_job_dirs = 2

[[host]]
name = "a"
addr = "10.0.0.1"

[[host]]
name = "b"
addr = "b.example.org"
port = 22
user = "root"
connect_timeout = "1m"
job_timeout = "3h"
keep_job_dirs = 0
tags = ["web", "prod"]
reboot_command = ["/sbin/reboot", "-f"]
[host.policy]
updates = "check-only"
auto_reboot = true
maintenance_window = { start = "23:00", end = "02:00", days = ["fri", "SAT"] }
"#,
    );
    let a = &config.hosts[0];
    assert_eq!(
        a.target,
        HostTarget::Ssh {
            addr: "10.0.0.1".into(),
            port: 2222
        }
    );
    assert_eq!(a.user, "deploy");
    assert!(a.sudo);
    assert_eq!(a.known_hosts, KnownHostsPolicy::AcceptNew);
    assert_eq!(a.timing.connect_timeout, Duration::from_secs(3));
    assert_eq!(a.timing.job_timeout, Duration::from_secs(30 * 60));
    assert_eq!(a.keep_job_dirs, 2);
    let b = &config.hosts[1];
    assert_eq!(
        b.target,
        HostTarget::Ssh {
            addr: "b.example.org".into(),
            port: 22
        }
    );
    assert_eq!(b.user, "root");
    assert_eq!(b.timing.connect_timeout, Duration::from_secs(60));
    assert_eq!(b.timing.job_timeout, Duration::from_secs(3 * 3600));
    assert_eq!(b.keep_job_dirs, 0);
    assert_eq!(b.tags, ["web", "prod"]);
    assert_eq!(
        b.reboot_command.as_deref(),
        Some(&["/sbin/reboot".to_owned(), "-f".to_owned()][..])
    );
    assert_eq!(b.policy.updates, UpdatePolicy::CheckOnly);
    assert!(b.policy.auto_reboot);
    let window = b.policy.maintenance_window.as_ref().unwrap();
    assert_eq!((window.start_minute, window.end_minute), (23 * 60, 2 * 60));
    assert_eq!(window.days, [Weekday::Fri, Weekday::Sat]);
}

#[test]
fn localhost_with_local_flag_is_local() {
    let config = parse_ok("[[host]]\nname = \"me\"\naddr = \"localhost\"\nlocal = true\n");
    assert_eq!(config.hosts[0].target, HostTarget::Local);
}

#[test]
fn toml_syntax_error_has_position() {
    check_err("[daemon]\nbind = \n", 2, 8, "");
}

#[test]
fn unknown_key_is_rejected_where_it_is() {
    check_err(
        "[daemon]\nbind = \"127.0.0.1:1\"\nbnid = 3\n",
        3,
        1,
        "unknown field `bnid`",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"local\"\n[host.policy]\nupdate = \"allowed\"\n",
        5,
        1,
        "unknown field `update`",
    );
}

#[test]
fn duplicate_host_names() {
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"local\"\n\n[[host]]\nname = \"a\"\naddr = \"10.0.0.2\"\n",
        6,
        8,
        "duplicate host name \"a\" (first defined on line 2)",
    );
}

#[test]
fn group_naming_unknown_host() {
    check_err(
        "[groups]\nweb = [\"a\", \"ghost\"]\n\n[[host]]\nname = \"a\"\naddr = \"local\"\n",
        2,
        13,
        "group \"web\" names unknown host \"ghost\"",
    );
}

#[test]
fn bad_addresses_and_ports() {
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"bad host!\"\n",
        3,
        8,
        "is not an IP address or DNS name",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"10.0.0.1\"\nport = 70000\n",
        4,
        8,
        "port must be between 1 and 65535, not 70000",
    );
    check_err(
        "[defaults]\nport = 0\n",
        2,
        8,
        "port must be between 1 and 65535",
    );
    check_err(
        "[daemon]\nbind = \"localhost\"\n",
        2,
        8,
        "bind \"localhost\" is not an address",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"10.0.0.1\"\nlocal = true\n",
        3,
        8,
        "local = true needs addr = \"localhost\"",
    );
}

#[test]
fn invalid_host_names() {
    for (name, col) in [("web 01", 8), ("", 8), ("a;rm -rf", 8)] {
        check_err(
            &format!("[[host]]\nname = {name:?}\naddr = \"local\"\n"),
            2,
            col,
            "is invalid: use 1 to 64 characters",
        );
    }
    let long = "x".repeat(65);
    check_err(
        &format!("[[host]]\nname = \"{long}\"\naddr = \"local\"\n"),
        2,
        8,
        "is invalid",
    );
}

#[test]
fn maintenance_window_that_does_not_parse() {
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"local\"\n[host.policy]\nmaintenance_window = { start = \"25:00\", end = \"04:00\" }\n",
        5,
        32,
        "maintenance_window.start \"25:00\" is not a time",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"local\"\n[host.policy]\nmaintenance_window = { start = \"01:00\", end = \"04:00\", days = [\"funday\"] }\n",
        5,
        64,
        "day \"funday\" is not one of",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"local\"\n[host.policy]\nmaintenance_window = { start = \"01:00\" }\n",
        5,
        22,
        "missing field `end`",
    );
}

#[test]
fn ssh_key_that_does_not_exist() {
    check_err(
        "[defaults]\nssh_key = \"/nonexistent/key\"\n",
        2,
        11,
        "ssh_key /nonexistent/key does not exist",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"10.0.0.1\"\nssh_key = \"keys/a\"\n",
        4,
        11,
        "ssh_key /etc/tendhost/keys/a does not exist",
    );
}

#[test]
fn existing_ssh_key_resolves_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(dir.path().join("keys/a"), "key").unwrap();
    let config = parse(
        "[[host]]\nname = \"a\"\naddr = \"10.0.0.1\"\nssh_key = \"keys/a\"\n",
        &dir.path().join("t.toml"),
        &no_env,
    )
    .unwrap();
    assert_eq!(
        config.hosts[0].ssh_key.as_deref(),
        Some(dir.path().join("keys/a").as_path())
    );
}

#[test]
fn bad_durations_and_enums() {
    check_err(
        "[defaults]\nconnect_timeout = \"soon\"\n",
        2,
        19,
        "\"soon\" is not a duration",
    );
    check_err(
        "[defaults]\ncommand_timeout = \"0s\"\n",
        2,
        19,
        "greater than zero",
    );
    check_err(
        "[defaults]\ncheck_interval = \"18446744073709551615s\"\n",
        2,
        18,
        "check_interval \"18446744073709551615s\" is too long: at most 30days",
    );
    check_err(
        "[defaults]\nkeep_job_dirs = -1\n",
        2,
        17,
        "keep_job_dirs must be between 0 and 1000, not -1",
    );
    check_err(
        "[defaults]\njob_timeout = \"2d\"\n",
        2,
        15,
        "job_timeout \"2d\" is too long: at most 1day",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"10.0.0.1\"\njob_timeout = \"0s\"\n",
        4,
        15,
        "job_timeout must be greater than zero",
    );
    check_err(
        "[defaults]\nconnect_timeout = \"11m\"\n",
        2,
        19,
        "is too long: at most 10m",
    );
    check_err(
        "[daemon]\nws_ping_interval = \"2h\"\n",
        2,
        20,
        "ws_ping_interval \"2h\" is too long: at most 1h",
    );
    check_err(
        "[defaults]\nknown_hosts = \"yes\"\n",
        2,
        15,
        "known_hosts must be \"strict\" or \"accept-new\"",
    );
    check_err(
        "[daemon]\nlog_format = \"xml\"\n",
        2,
        14,
        "log_format must be \"pretty\" or \"json\"",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"local\"\n[host.policy]\nupdates = \"sometimes\"\n",
        5,
        11,
        "updates must be \"allowed\" or \"check-only\"",
    );
    check_err(
        "[daemon]\nmax_parallel = 0\n",
        2,
        16,
        "max_parallel must be between",
    );
}

#[test]
fn auth_and_tls_are_checked() {
    check_err(
        "[daemon.auth]\nenabled = true\ntokens = [{ name = \"ci\", token_hash = \"md5:abc\", role = \"read\" }]\n",
        3,
        39,
        "token_hash must be \"sha256:\"",
    );
    let hash = format!("sha256:{}", "ab".repeat(32));
    check_err(
        &format!(
            "[daemon.auth]\ntokens = [{{ name = \"ci\", token_hash = \"{hash}\", role = \"root\" }}]\n"
        ),
        2,
        121,
        "unknown role \"root\"",
    );
    check_err(
        &format!("[daemon.auth]\ntokens = [{{ name = \"ci\", token_hash = \"{hash}\" }}]\n"),
        2,
        11,
        "missing field `role`",
    );
    let config = parse_ok(&format!(
        "[daemon.auth]\ntokens = [{{ name = \"ci\", token_hash = \"{hash}\", role = \"operate\" }}]\n"
    ));
    assert!(config.daemon.auth.enabled, "auth is on by default");
    assert_eq!(config.daemon.auth.tokens[0].hash.as_bytes(), &[0xab; 32]);
    assert_eq!(
        config.daemon.auth.tokens[0].role,
        tendhost_auth::Role::Operate
    );
    assert!(
        !format!("{:?}", config.daemon.auth).contains("abab"),
        "token hash must be redacted in Debug"
    );
}

#[test]
fn tls_modes_are_checked() {
    use tendhost_tls::{Mode, San};
    check_err(
        "[daemon.tls]\nenabled = true\n",
        2,
        11,
        "`enabled` is replaced by `mode`",
    );
    check_err(
        "[daemon.tls]\nmode = \"letsencrypt\"\n",
        2,
        8,
        "mode must be \"off\", \"files\", \"self-signed\" or \"acme\"",
    );
    check_err(
        "[daemon.tls]\nmode = \"files\"\ncert_path = \"c.pem\"\n",
        1,
        1,
        "mode = \"files\" needs key_path",
    );
    check_err(
        "[daemon.tls]\nmode = \"self-signed\"\ncert_path = \"c.pem\"\n",
        3,
        13,
        "cert_path is only used with mode = \"files\"",
    );
    check_err(
        "[daemon.tls]\nmode = \"files\"\ncert_path = \"c\"\nkey_path = \"k\"\nlifetime = \"1d\"\n",
        5,
        12,
        "lifetime is only used with mode = \"self-signed\"",
    );
    check_err(
        "[daemon.tls]\nmode = \"self-signed\"\nnames = [\"ok.example\", \"bad_name.example\"]\n",
        3,
        24,
        "names: \"bad_name.example\" is not a DNS name or an IP address",
    );
    check_err(
        "[daemon.tls]\nmode = \"self-signed\"\nlifetime = \"30s\"\n",
        3,
        12,
        "lifetime must be at least 60s",
    );
    check_err(
        "[daemon.tls]\nmode = \"self-signed\"\nlifetime = \"60s\"\nrenew_before = \"2m\"\n",
        4,
        16,
        "renew_before must be shorter than lifetime",
    );
    check_err(
        "[daemon.tls]\nredirect_http = \"0.0.0.0:80\"\n",
        2,
        17,
        "redirect_http needs TLS",
    );

    let config =
        parse_ok("[daemon]\nbind = \"10.9.8.7:8443\"\n[daemon.tls]\nmode = \"self-signed\"\n");
    let Some(Mode::SelfSigned(settings)) = config.daemon.tls.mode else {
        panic!("self-signed mode expected");
    };
    assert_eq!(settings.lifetime, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(settings.renew_before, Duration::from_secs(10 * 24 * 3600));
    assert!(settings.names.contains(&San::Dns("localhost".into())));
    assert!(
        settings
            .names
            .contains(&San::Ip("10.9.8.7".parse().unwrap()))
    );
    assert!(settings.dir.ends_with("tls"));

    let config = parse_ok(
        "[daemon.tls]\nmode = \"files\"\ncert_path = \"certs/c.pem\"\nkey_path = \"/k.pem\"\nredirect_http = \"0.0.0.0:80\"\n",
    );
    assert_eq!(
        config.daemon.tls.mode,
        Some(Mode::Files {
            cert_path: "/etc/tendhost/certs/c.pem".into(),
            key_path: "/k.pem".into()
        })
    );
    assert_eq!(
        config.daemon.tls.redirect_http,
        Some("0.0.0.0:80".parse().unwrap())
    );
    assert!(
        parse_ok("[daemon.tls]\nmode = \"off\"\n")
            .daemon
            .tls
            .mode
            .is_none()
    );
}

#[test]
fn acme_settings_are_checked() {
    use tendhost_tls::{Challenge, Mode};
    const HEAD: &str = "[daemon.tls]\nmode = \"acme\"\n[daemon.tls.acme]\n";
    let acme = |lines: &str| format!("{HEAD}{lines}");
    let good = "directory = \"https://acme.example/dir\"\ndomains = [\"a.example.org\"]\n";
    check_err(
        "[daemon.tls]\nmode = \"acme\"\n",
        1,
        1,
        "mode = \"acme\" needs a [daemon.tls.acme] table",
    );
    check_err(
        &acme("domains = [\"a.example.org\"]\n"),
        3,
        1,
        "needs directory",
    );
    check_err(
        &acme("directory = \"http://acme.example/dir\"\ndomains = [\"a.example.org\"]\n"),
        4,
        13,
        "directory \"http://acme.example/dir\" is not an https:// URL",
    );
    check_err(
        &acme("directory = \"https://acme.example/dir\"\n"),
        3,
        1,
        "needs domains",
    );
    check_err(
        &acme(
            "directory = \"https://a.example/d\"\ndomains = [\"ok.example.org\", \"*.example.org\", \"10.0.0.1\"]\n",
        ),
        5,
        30,
        "*.example.org is a wildcard, which needs the dns-01 challenge",
    );
    check_err(
        &acme(
            "directory = \"https://a.example/d\"\ndomains = [\"ok.example.org\", \"*.example.org\", \"10.0.0.1\"]\n",
        ),
        5,
        47,
        "10.0.0.1 is an IP address",
    );
    check_err(
        &acme(&format!("{good}email = \"mailto:ops@example.org\"\n")),
        6,
        9,
        "starts with mailto:",
    );
    check_err(
        &acme(&format!("{good}challenge = \"dns-01\"\n")),
        6,
        13,
        "challenge must be \"http-01\" or \"tls-alpn-01\", not \"dns-01\"",
    );
    check_err(
        &acme(&format!(
            "{good}challenge = \"tls-alpn-01\"\nhttp_port = 8080\n"
        )),
        7,
        13,
        "http_port is only used with challenge = \"http-01\"",
    );
    check_err(
        &acme(&format!("{good}http_port = 70000\n")),
        6,
        13,
        "http_port must be between 1 and 65535",
    );
    check_err(
        &format!("[daemon]\nbind = \"0.0.0.0:8443\"\n{HEAD}{good}http_port = 8443\n"),
        8,
        13,
        "http_port 8443 is the bind port",
    );
    check_err(
        &format!(
            "[daemon.tls]\nmode = \"acme\"\nredirect_http = \"0.0.0.0:80\"\n[daemon.tls.acme]\n{good}http_port = 8080\n"
        ),
        7,
        13,
        "http_port 8080 differs from the port of redirect_http 0.0.0.0:80",
    );
    check_err(
        &acme(&format!("{good}renew_before = \"soon\"\nretry = \"0s\"\n")),
        6,
        16,
        "renew_before \"soon\" is not a duration",
    );
    check_err(
        &acme(&format!("{good}retry = \"0s\"\n")),
        6,
        9,
        "retry must be greater than zero",
    );
    check_err(
        &format!("[daemon.tls]\nmode = \"self-signed\"\n[daemon.tls.acme]\n{good}"),
        3,
        1,
        "[daemon.tls.acme] is only used with mode = \"acme\"",
    );

    // Defaults: http-01 on port 80 of the bind address, 30 days ahead, 10 minutes' retry.
    let config = parse_ok(&format!("[daemon]\nbind = \"10.9.8.7:443\"\n{HEAD}{good}"));
    let Some(Mode::Acme(settings)) = &config.daemon.tls.mode else {
        panic!("acme mode expected");
    };
    assert_eq!(settings.challenge, Challenge::Http01);
    assert_eq!(settings.domains, ["a.example.org"]);
    assert_eq!(settings.renew_before, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(settings.retry, Duration::from_secs(600));
    assert!(settings.dir.ends_with("tls/acme"));
    assert_eq!(
        config.daemon.tls.acme_http,
        Some("10.9.8.7:80".parse().unwrap())
    );
    // With redirect_http, one listener answers the challenges and redirects the rest.
    let config = parse_ok(&format!(
        "[daemon.tls]\nmode = \"acme\"\nredirect_http = \"0.0.0.0:80\"\n[daemon.tls.acme]\n{good}ca_roots = \"roots.pem\"\n"
    ));
    assert_eq!(config.daemon.tls.acme_http, config.daemon.tls.redirect_http);
    let Some(Mode::Acme(settings)) = &config.daemon.tls.mode else {
        panic!("acme mode expected");
    };
    assert_eq!(
        settings.ca_roots.as_deref(),
        Some(std::path::Path::new("/etc/tendhost/roots.pem"))
    );
    // TLS-ALPN-01 needs no plain listener.
    let config = parse_ok(&acme(&format!("{good}challenge = \"tls-alpn-01\"\n")));
    assert_eq!(config.daemon.tls.acme_http, None);
}

/// A whole-table problem points at the table however it is written; a header in a comment or
/// a string is not the table.
#[test]
fn table_problems_point_at_the_table_as_written() {
    let tls = "mode = \"files\" needs cert_path and key_path";
    // Auth has no whole-table problem any more (no tokens means a bootstrap token); its
    // loopback rule points at the key, however the table is written.
    let auth = "daemon.auth.enabled = false is allowed only with a loopback bind";
    check_err(
        "[daemon]\nbind = \"127.0.0.1:1\"\n\n[daemon.tls]\nmode = \"files\"\n",
        4,
        1,
        tls,
    );
    check_err(
        "# [daemon.tls] goes below\n[daemon]\nlog_level = \"info\"\n[daemon.tls]\nmode = \"files\"\n",
        4,
        1,
        tls,
    );
    check_err(
        "[daemon]\nlog_level = \"info\"\ntls = { mode = \"files\" }\n",
        3,
        7,
        tls,
    );
    check_err(
        "[daemon]\nbind = \"127.0.0.1:1\"\ntls.mode = \"files\"\n",
        3,
        1,
        tls,
    );
    check_err(
        "[daemon]\nbind = \"0.0.0.0:1\" # not [daemon.auth]\nauth.enabled = false\n",
        3,
        16,
        auth,
    );
    check_err(
        "[daemon]\nbind = \"0.0.0.0:1\"\nauth = { enabled = false, tokens = [] }\n",
        3,
        20,
        auth,
    );
}

#[test]
fn auth_can_be_off_only_on_a_loopback_bind() {
    let config = parse_ok("[daemon]\nbind = \"127.0.0.1:8080\"\n[daemon.auth]\nenabled = false\n");
    assert!(!config.daemon.auth.enabled);
    check_err(
        "[daemon]\nbind = \"0.0.0.0:8080\"\n[daemon.auth]\nenabled = false\n",
        4,
        11,
        "daemon.auth.enabled = false is allowed only with a loopback bind",
    );
    check_err(
        "[daemon]\ntrusted_proxies = [\"10.0.0.1\", \"proxy\"]\n",
        2,
        32,
        "trusted_proxies entries must be IP addresses",
    );
}

#[test]
fn reboot_command_must_be_a_nonempty_argv() {
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"local\"\nreboot_command = []\n",
        4,
        18,
        "reboot_command must be a non-empty argv array",
    );
    check_err(
        "[[host]]\nname = \"a\"\naddr = \"local\"\nreboot_command = \"reboot now\"\n",
        4,
        18,
        "invalid type",
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let err = parse(
        "[[host]]\nname = \"bad name\"\naddr = \"local\"\n[[host]]\nname = \"b\"\naddr = \"10.0.0.1\"\nport = -1\n",
        Path::new("t.toml"),
        &no_env,
    )
    .unwrap_err();
    let ConfigError::Invalid { diagnostics, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(diagnostics.len(), 2, "{err}");
}

#[test]
fn env_overrides_file_which_overrides_defaults() {
    let file =
        "[daemon]\nbind = \"127.0.0.1:9000\"\nlog_level = \"debug\"\ndata_dir = \"/var/lib/th\"\n";
    // file > default
    let config = parse_ok(file);
    assert_eq!(config.daemon.bind.to_string(), "127.0.0.1:9000");
    assert_eq!(config.daemon.log_level, "debug");
    assert_eq!(config.daemon.data_dir, Path::new("/var/lib/th"));
    // env > file
    let env: HashMap<&str, &str> = HashMap::from([
        ("TENDHOST_BIND", "0.0.0.0:7000"),
        ("TENDHOST_LOG_LEVEL", "warn"),
        ("TENDHOST_DATA_DIR", "/tmp/th-env"),
    ]);
    let lookup = |var: &str| env.get(var).map(|v| (*v).to_owned());
    let config = parse(file, Path::new("/x/t.toml"), &lookup).unwrap();
    assert_eq!(config.daemon.bind.to_string(), "0.0.0.0:7000");
    assert_eq!(config.daemon.log_level, "warn");
    assert_eq!(config.daemon.data_dir, Path::new("/tmp/th-env"));
    // env > default (no file value)
    let config = parse("", Path::new("/x/t.toml"), &lookup).unwrap();
    assert_eq!(config.daemon.bind.to_string(), "0.0.0.0:7000");
}

#[test]
fn bad_env_override_names_the_variable() {
    let err = parse("", Path::new("/x/t.toml"), &|var| {
        (var == "TENDHOST_BIND").then(|| "nope".to_owned())
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("TENDHOST_BIND: bind \"nope\" is not an address"),
        "{err}"
    );
}

#[test]
fn event_stream_settings_have_defaults_and_bounds() {
    let config = parse_ok("");
    assert_eq!(config.daemon.event_buffer, 10_000);
    assert_eq!(config.daemon.event_channel, 4_096);
    assert_eq!(config.daemon.ws_ping_interval, Duration::from_secs(20));
    let config =
        parse_ok("[daemon]\nevent_buffer = 5\nevent_channel = 8\nws_ping_interval = \"500ms\"\n");
    assert_eq!(config.daemon.event_buffer, 5);
    assert_eq!(config.daemon.event_channel, 8);
    assert_eq!(config.daemon.ws_ping_interval, Duration::from_millis(500));
    check_err(
        "[daemon]\nevent_buffer = 0\n",
        2,
        16,
        "event_buffer must be between 1 and 1000000",
    );
    check_err(
        "[daemon]\nevent_channel = -3\n",
        2,
        17,
        "event_channel must be between 1 and 1000000",
    );
    check_err(
        "[daemon]\nws_ping_interval = \"soon\"\n",
        2,
        20,
        "is not a duration",
    );
}

#[test]
fn memory_limits_have_defaults_and_bounds() {
    let config = parse_ok("");
    assert_eq!(config.daemon.limits, crate::config::Limits::default());
    assert_eq!(config.daemon.limits.job_log_memory, 1024 * 1024);
    assert_eq!(config.daemon.limits.job_log_max, 64 * 1024 * 1024);
    assert_eq!(config.daemon.limits.max_ws_clients, 1000);
    let config = parse_ok(
        "[daemon]\njob_log_memory = 8192\njob_log_max = 65536\nkeep_finished_jobs = 3\n\
         keep_finished_rollouts = 2\nstore_queue = 64\nmax_ws_clients = 5\n",
    );
    assert_eq!(
        config.daemon.limits,
        crate::config::Limits {
            job_log_memory: 8192,
            job_log_max: 65536,
            keep_finished_jobs: 3,
            keep_finished_rollouts: 2,
            store_queue: 64,
            max_ws_clients: 5,
        }
    );
    check_err(
        "[daemon]\nmax_ws_clients = 0\n",
        2,
        18,
        "max_ws_clients must be between 1 and 1000000",
    );
    check_err(
        "[daemon]\njob_log_memory = 1\n",
        2,
        18,
        "job_log_memory must be between 4096 and 268435456",
    );
    check_err(
        "[daemon]\nstore_queue = 99999999999\n",
        2,
        15,
        "store_queue must be between 16 and 1000000",
    );
}

#[test]
fn api_hosts_table() {
    let config = parse_ok("");
    assert!(!config.daemon.api_hosts.enabled());
    let config = parse_ok(
        "[daemon.api_hosts]\nallow = [\"10.0.0.0/8\", \"*.lan\"]\nknown_hosts = \"accept-new\"\n\
         resolve_timeout = \"2s\"\n\n[[host]]\nname = \"p\"\naddr = \"10.0.0.1\"\n\
         host_key_sha256 = \"SHA256:fhPVowUHV9FNz47RWK4VrGZuDmlmuMoh9f1FF2C0Uqk\"\n",
    );
    let api_hosts = &config.daemon.api_hosts;
    assert!(api_hosts.enabled());
    let rules: Vec<String> = api_hosts.allow.iter().map(ToString::to_string).collect();
    assert_eq!(rules, ["10.0.0.0/8", "*.lan"]);
    assert_eq!(api_hosts.known_hosts, KnownHostsPolicy::AcceptNew);
    assert_eq!(api_hosts.resolve_timeout, Duration::from_secs(2));
    assert_eq!(
        config.hosts[0].host_key_sha256.as_deref(),
        Some("SHA256:fhPVowUHV9FNz47RWK4VrGZuDmlmuMoh9f1FF2C0Uqk")
    );
    check_err(
        "[daemon.api_hosts]\nallow = [\"10.0.0.0/33\"]\n",
        2,
        10,
        "daemon.api_hosts.allow entry \"10.0.0.0/33\" is not a CIDR",
    );
    check_err(
        "[[host]]\nname = \"p\"\naddr = \"10.0.0.1\"\nhost_key_sha256 = \"md5\"\n",
        4,
        19,
        "host_key_sha256 \"md5\" is not a SHA256 fingerprint",
    );
}

#[test]
fn schedules_and_excludes() {
    let config = parse_ok(
        "[defaults]\nexclude = [\"linux-image-*\"]\n\n\
         [[host]]\nname = \"a\"\naddr = \"10.0.0.1\"\nexclude = [\"docker-ce\", \"linux-image-*\"]\n\n\
         [[schedule]]\nname = \"nightly\"\ncron = \"0 3 * * *\"\ntimezone = \"Europe/Berlin\"\n\
         packages = \"security\"\nreboot = \"if_required\"\nwindow_grace = \"6h\"\n\
         approve_after = \"canary\"\napproval_timeout = \"12h\"\n\
         max_failures = \"10%\"\ncanary = [\"a\"]\nfilter = { hosts = [\"a\"] }\n\n\
         [[schedule]]\nname = \"named\"\ncron = \"@weekly\"\naction = \"check\"\n\
         packages = [\"openssl\"]\nenabled = false\ncatch_up = true\nrandom_delay = \"45m\"\n",
    );
    let globs: Vec<&str> = config.hosts[0]
        .policy
        .exclude
        .iter()
        .map(tendhost_pkg::ExcludeGlob::as_str)
        .collect();
    assert_eq!(globs, ["linux-image-*", "docker-ce"]);
    let [nightly, named] = config.schedules.as_slice() else {
        panic!("two schedules");
    };
    assert_eq!(nightly.timezone_name, "Europe/Berlin");
    assert_eq!(
        nightly.request.packages,
        tendhost_core::model::Packages::Security
    );
    assert_eq!(
        nightly.request.reboot,
        Some(tendhost_core::model::RebootChoice::IfRequired)
    );
    assert_eq!(nightly.request.window_grace, Duration::from_secs(6 * 3600));
    assert!(nightly.request.defer_outside_window);
    assert_eq!(
        nightly.request.approve_after,
        Some(tendhost_core::model::ApproveAfter::Canary)
    );
    assert_eq!(
        nightly.request.approval_timeout,
        Some(Duration::from_secs(12 * 3600))
    );
    assert_eq!(named.request.approve_after, None);
    assert_eq!(
        nightly.request.trigger,
        tendhost_core::model::Trigger::Schedule("nightly".to_owned())
    );
    assert!(!named.enabled && named.catch_up);
    assert_eq!(named.random_delay, Duration::from_secs(45 * 60));
    assert_eq!(nightly.random_delay, Duration::ZERO);
    assert_eq!(named.action, tendhost_core::model::RolloutKind::Check);

    let base = "[[host]]\nname = \"a\"\naddr = \"10.0.0.1\"\n\n[[schedule]]\nname = \"s\"\n";
    for (extra, line, col, needle) in [
        ("cron = \"0 3 * *\"\n", 7, 8, "must have 5 fields"),
        ("cron = \"99 * * * *\"\n", 7, 8, "is not valid"),
        (
            "cron = \"@daily\"\ntimezone = \"Mars/Base\"\n",
            8,
            12,
            "not an IANA time zone",
        ),
        (
            "cron = \"@daily\"\naction = \"reboot\"\n",
            8,
            10,
            "must be \"check\" or \"update\"",
        ),
        (
            "cron = \"@daily\"\npackages = \"some\"\n",
            8,
            12,
            "must be \"all\", \"security\"",
        ),
        (
            "cron = \"@daily\"\npackages = [\"-rf\"]\n",
            8,
            12,
            "must start with a letter",
        ),
        (
            "cron = \"@daily\"\nreboot = \"maybe\"\n",
            8,
            10,
            "\"never\", \"if_required\" or \"always\"",
        ),
        (
            "cron = \"@daily\"\nwindow_grace = \"30d\"\n",
            8,
            16,
            "window_grace",
        ),
        (
            "cron = \"@daily\"\nrandom_delay = \"2d\"\n",
            8,
            16,
            "random_delay",
        ),
        (
            "cron = \"@daily\"\nrandom_delay = \"soon\"\n",
            8,
            16,
            "random_delay",
        ),
        (
            "cron = \"@daily\"\nfilter = { hosts = [\"zz\"] }\n",
            8,
            21,
            "unknown host \"zz\"",
        ),
        (
            "cron = \"@daily\"\ncanary = [\"zz\"]\n",
            8,
            11,
            "canary names unknown host",
        ),
        (
            "cron = \"@daily\"\nbatch_size = 0\n",
            8,
            14,
            "batch_size must be between",
        ),
        (
            "cron = \"@daily\"\napprove_after = \"canary\"\n",
            8,
            17,
            "approve_after \"canary\" needs canary hosts",
        ),
        (
            "cron = \"@daily\"\naction = \"check\"\napprove_after = 0\n",
            9,
            17,
            "approve_after is for action \"update\" only",
        ),
        (
            "cron = \"@daily\"\napprove_after = \"first\"\n",
            8,
            17,
            "\"canary\" or a batch index",
        ),
        (
            "cron = \"@daily\"\napprove_after = 0\napproval_timeout = \"31d\"\n",
            9,
            20,
            "approval_timeout",
        ),
        (
            "cron = \"@daily\"\napproval_timeout = \"1h\"\n",
            8,
            20,
            "approval_timeout needs approve_after",
        ),
    ] {
        check_err(&format!("{base}{extra}"), line, col, needle);
    }
    check_err(
        "[defaults]\nexclude = [\"a b\"]\n",
        2,
        12,
        "exclude: exclude pattern",
    );
    check_err(
        &format!("{base}cron = \"@daily\"\n\n[[schedule]]\nname = \"s\"\ncron = \"@daily\"\n"),
        10,
        8,
        "schedule \"s\" is defined twice",
    );
}
