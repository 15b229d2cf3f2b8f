//! Subject alternative names: what `tls.names` may hold (DNS names, wildcards, IP addresses)
//! and the default set (hostname, `localhost`, `127.0.0.1`, the bind address).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One name a server certificate is issued for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum San {
    /// A DNS name, lowercase, possibly `*.`-prefixed.
    Dns(String),
    Ip(IpAddr),
}

impl San {
    /// Parses an IP address or a DNS name; the error says why it is neither.
    pub fn parse(value: &str) -> Result<San, String> {
        if let Ok(ip) = value.parse::<IpAddr>() {
            return Ok(San::Ip(ip));
        }
        let name = value.to_ascii_lowercase();
        dns_problem(&name)
            .map(|why| format!("{value:?} is not a DNS name or an IP address: {why}"))
            .map_or(Ok(San::Dns(name)), Err)
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            San::Dns(name) => f.write_str(name),
            San::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

fn dns_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".to_owned());
    }
    if name.len() > 253 {
        return Some("it is longer than 253 characters".to_owned());
    }
    let rest = name.strip_prefix("*.").unwrap_or(name);
    for label in rest.split('.') {
        if label.is_empty() {
            return Some("it has an empty label (two dots, or a dot at an end)".to_owned());
        }
        if label.len() > 63 {
            return Some(format!("label {label:?} is longer than 63 characters"));
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Some(format!(
                "{bad:?} is not allowed (letters, digits, '-' and a leading \"*.\" only)"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some(format!("label {label:?} starts or ends with '-'"));
        }
    }
    None
}

/// The names used when `tls.names` is not set: the machine's hostname, `localhost`,
/// `127.0.0.1` and the bind address (unless it is a wildcard such as `0.0.0.0`).
pub fn default_names(bind: SocketAddr) -> Vec<San> {
    let mut names = Vec::new();
    if let Some(host) = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .and_then(|host| San::parse(host.trim()).ok())
    {
        names.push(host);
    }
    names.push(San::Dns("localhost".to_owned()));
    names.push(San::Ip(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    if !bind.ip().is_unspecified() {
        names.push(San::Ip(bind.ip()));
    }
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_parse() {
        assert_eq!(
            San::parse("Web-01.Example.org"),
            Ok(San::Dns("web-01.example.org".into()))
        );
        assert_eq!(
            San::parse("*.example.org"),
            Ok(San::Dns("*.example.org".into()))
        );
        assert_eq!(San::parse("::1"), Ok(San::Ip("::1".parse().unwrap())));
        assert_eq!(
            San::parse("10.0.0.1"),
            Ok(San::Ip("10.0.0.1".parse().unwrap()))
        );
    }

    #[test]
    fn bad_names_say_why() {
        for (value, why) in [
            ("", "empty"),
            ("a..b", "empty label"),
            ("exa mple.org", "' ' is not allowed"),
            ("host_1", "'_' is not allowed"),
            ("-web", "starts or ends with '-'"),
            ("10.0.0.1:443", "':' is not allowed"),
            ("a.*.b", "'*' is not allowed"),
        ] {
            let err = San::parse(value).unwrap_err();
            assert!(err.contains(why), "{value:?}: {err}");
        }
    }

    #[test]
    fn defaults_hold_loopback_and_a_specific_bind() {
        let names = default_names("10.1.2.3:8443".parse().unwrap());
        assert!(names.contains(&San::Dns("localhost".into())));
        assert!(names.contains(&San::Ip("127.0.0.1".parse().unwrap())));
        assert!(names.contains(&San::Ip("10.1.2.3".parse().unwrap())));
        let wildcard = default_names("0.0.0.0:8443".parse().unwrap());
        assert!(!wildcard.contains(&San::Ip("0.0.0.0".parse().unwrap())));
        let loopback = default_names("127.0.0.1:8443".parse().unwrap());
        assert_eq!(loopback.len(), names.len() - 1, "127.0.0.1 listed once");
    }
}
