//! Where hosts registered through the API may point (`[daemon.api_hosts] allow`): the rules
//! (CIDRs and name suffixes), resolving a name with a deadline, and the decision for every
//! address it resolves to. Loopback, link-local and unspecified addresses are refused unless a
//! CIDR inside their own range lists them explicitly.
//!
//! Parsing the config table lives in `config`; the 403s in `http::hosts::create`.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// The config key every refusal names.
pub const ALLOW_KEY: &str = "daemon.api_hosts.allow";

/// One entry of `allow`, as written and as understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// The entry as written (`"10.0.0.0/8"`, `"*.lan"`).
    pub text: String,
    kind: RuleKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RuleKind {
    Net(Net),
    /// A name suffix with its leading dot, lowercase (`.lan`).
    Suffix(String),
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    fn contains(self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        net[full] & mask == ip[full] & mask
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AllowRule {
    /// An entry of `allow`: `ADDR/PREFIX`, a single address, or `*.SUFFIX`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let kind = if let Some(suffix) = text.strip_prefix("*.") {
            crate::host_rules::addr(suffix)
                .map_err(|_| format!("{text:?} is not a name suffix: write e.g. \"*.lan\""))?;
            if suffix.parse::<IpAddr>().is_ok() {
                return Err(format!(
                    "{text:?} is not a name suffix: write an address range as a CIDR"
                ));
            }
            RuleKind::Suffix(format!(".{}", suffix.to_ascii_lowercase()))
        } else {
            let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
            let bad = || {
                format!(
                    "{text:?} is not a CIDR or name suffix: write e.g. \"10.0.0.0/8\" or \"*.lan\""
                )
            };
            let addr: IpAddr = addr.parse().map_err(|_| bad())?;
            let addr = addr.to_canonical();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = if prefix.is_empty() {
                max
            } else {
                prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|p| *p <= max)
                    .ok_or_else(bad)?
            };
            RuleKind::Net(Net { addr, prefix })
        };
        Ok(Self {
            text: text.to_owned(),
            kind,
        })
    }
}

/// A refused registration: what was refused and the rule that refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    /// The address at fault, when one is.
    pub addr: Option<IpAddr>,
}

/// Why an address could not be checked (the name does not resolve in time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveError(pub String);

/// The range an address belongs to that needs an explicit rule (loopback, link-local,
/// unspecified), as (name, prefix length of that range).
fn special_range(ip: IpAddr) -> Option<(&'static str, u8)> {
    match ip {
        IpAddr::V4(v4) if v4.is_loopback() => Some(("loopback", 8)),
        IpAddr::V4(v4) if v4.is_link_local() => Some(("link-local", 16)),
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some(("unspecified", 8)),
        IpAddr::V6(v6) if v6.is_loopback() => Some(("loopback", 128)),
        IpAddr::V6(v6) if v6.is_unspecified() => Some(("unspecified", 128)),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some(("link-local", 10)),
        _ => None,
    }
}

/// Decides one address of `name` (`None` when the address was given as an IP): allowed when a
/// CIDR contains it, or when `name` matches a suffix; loopback, link-local and unspecified
/// addresses only by a CIDR at least as narrow as their range.
pub fn check_addr(rules: &[AllowRule], name: Option<&str>, ip: IpAddr) -> Result<(), Refusal> {
    let ip = ip.to_canonical();
    let what = match name {
        Some(name) => format!("{name} resolves to {ip}, which"),
        None => ip.to_string(),
    };
    if let Some((range, range_prefix)) = special_range(ip) {
        let explicit = rules.iter().any(|rule| match rule.kind {
            RuleKind::Net(net) => net.prefix >= range_prefix && net.contains(ip),
            RuleKind::Suffix(_) => false,
        });
        if explicit {
            return Ok(());
        }
        return Err(Refusal {
            message: format!(
                "{what} is a {range} address: refused unless {ALLOW_KEY} lists it explicitly \
                 (e.g. \"{ip}/{}\")",
                if ip.is_ipv4() { 32 } else { 128 }
            ),
            addr: Some(ip),
        });
    }
    let lower = name.map(str::to_ascii_lowercase);
    let allowed = rules.iter().any(|rule| match &rule.kind {
        RuleKind::Net(net) => net.contains(ip),
        RuleKind::Suffix(suffix) => lower.as_ref().is_some_and(|name| name.ends_with(suffix)),
    });
    if allowed {
        return Ok(());
    }
    let listed: Vec<String> = rules
        .iter()
        .map(|rule| format!("{:?}", rule.text))
        .collect();
    Err(Refusal {
        message: format!(
            "{what} is not allowed by {ALLOW_KEY} = [{}]",
            listed.join(", ")
        ),
        addr: Some(ip),
    })
}

/// Resolves `addr` (an IP or a DNS name) within `deadline` and checks every address it
/// resolves to. The outer error is a name that does not resolve in time.
pub async fn check(
    rules: &[AllowRule],
    addr: &str,
    port: u16,
    deadline: Duration,
) -> Result<Result<(), Refusal>, ResolveError> {
    if let Ok(ip) = addr.parse::<IpAddr>() {
        return Ok(check_addr(rules, None, ip));
    }
    let resolved = tokio::time::timeout(deadline, tokio::net::lookup_host((addr, port)))
        .await
        .map_err(|_| {
            ResolveError(format!(
                "{addr:?} did not resolve within {}",
                humantime::format_duration(deadline)
            ))
        })?
        .map_err(|err| ResolveError(format!("{addr:?} does not resolve: {err}")))?;
    let ips: Vec<IpAddr> = resolved.map(|socket| socket.ip()).collect();
    if ips.is_empty() {
        return Err(ResolveError(format!("{addr:?} resolves to no address")));
    }
    Ok(ips
        .into_iter()
        .try_for_each(|ip| check_addr(rules, Some(addr), ip)))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::api_hosts::{AllowRule, check_addr};

    fn rules(texts: &[&str]) -> Vec<AllowRule> {
        texts.iter().map(|t| AllowRule::parse(t).unwrap()).collect()
    }

    fn allowed(texts: &[&str], name: Option<&str>, ip: &str) -> bool {
        check_addr(&rules(texts), name, ip.parse::<IpAddr>().unwrap()).is_ok()
    }

    #[test]
    fn parses_cidrs_addresses_and_suffixes() {
        for good in [
            "10.0.0.0/8",
            "10.1.2.3",
            "fd00::/8",
            "::1",
            "*.lan",
            "*.Corp.example",
        ] {
            AllowRule::parse(good).unwrap();
        }
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "*.",
            "*.10.0.0.1",
            "lan",
            "",
            "::/129",
            "1.2.3.4/x",
        ] {
            let err = AllowRule::parse(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn cidrs_and_suffixes_decide() {
        let list = ["10.0.0.0/8", "*.lan"];
        assert!(allowed(&list, None, "10.200.3.4"));
        assert!(!allowed(&list, None, "192.168.1.1"));
        assert!(allowed(&list, Some("nas.lan"), "192.168.1.1"));
        assert!(allowed(&list, Some("NAS.LAN"), "192.168.1.1"));
        assert!(!allowed(&list, Some("nas.lan.evil.example"), "192.168.1.1"));
        assert!(!allowed(&list, Some("evillan"), "192.168.1.1"));
        assert!(allowed(&["10.1.2.0/23"], None, "10.1.3.255"));
        assert!(!allowed(&["10.1.2.0/23"], None, "10.1.4.0"));
        assert!(allowed(&["fd00::/8"], None, "fd12::1"));
        assert!(!allowed(&["fd00::/8"], None, "fe12::1"));
        let err = check_addr(&rules(&list), None, "192.168.1.1".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.message,
            "192.168.1.1 is not allowed by daemon.api_hosts.allow = [\"10.0.0.0/8\", \"*.lan\"]"
        );
    }

    #[test]
    fn loopback_and_link_local_need_an_explicit_rule() {
        let wide = ["0.0.0.0/0", "::/0", "*.lan"];
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "169.254.1.1",
            "0.0.0.0",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!allowed(&wide, None, ip), "{ip}");
            assert!(!allowed(&wide, Some("db.lan"), ip), "{ip}");
        }
        assert!(allowed(&["127.0.0.1/32"], None, "127.0.0.1"));
        assert!(allowed(&["127.0.0.0/8"], Some("x"), "127.0.0.1"));
        assert!(!allowed(&["127.0.0.1/32"], None, "127.0.0.2"));
        assert!(allowed(&["::1"], None, "::1"));
        assert!(allowed(&["169.254.0.0/16"], None, "169.254.3.3"));
        let err =
            check_addr(&rules(&wide), Some("db.lan"), "127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(
            err.message
                .starts_with("db.lan resolves to 127.0.0.1, which is a loopback address"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("daemon.api_hosts.allow"),
            "{}",
            err.message
        );
    }
}
