//! `[daemon.tls.acme]`: the ACME directory, the contact, the domains, the challenge and where
//! it is answered, the renewal and retry timing, and the roots trusted for a private ACME CA.
//! Problems are reported at their `file:line:col` like the rest of `[daemon.tls]`.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use crate::config::Validator;
use crate::config::raw::RawAcme;
use crate::host_rules;

/// Default port of the HTTP-01 listener (what public CAs dial).
pub const DEFAULT_HTTP_PORT: u16 = 80;

/// Longest accepted `renew_before` (certificates of public CAs last 90 days or less).
const MAX_RENEW_BEFORE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Longest accepted `retry`.
const MAX_RETRY: Duration = Duration::from_secs(24 * 3600);

impl Validator<'_> {
    /// The ACME settings and, for HTTP-01, the address its answers are served on.
    pub(super) fn acme(
        &mut self,
        raw: &Spanned<RawAcme>,
        bind: SocketAddr,
        redirect_http: Option<SocketAddr>,
        data_dir: &Path,
    ) -> Option<(tendhost_tls::Acme, Option<SocketAddr>)> {
        let table = raw.span();
        let raw = raw.get_ref();
        let directory = match &raw.directory {
            None => {
                self.error(
                    &table,
                    "[daemon.tls.acme] needs directory (the ACME directory URL, e.g. \
                     \"https://acme-v02.api.letsencrypt.org/directory\")"
                        .to_owned(),
                );
                None
            }
            Some(value) => {
                let url = value.get_ref();
                let host = url.strip_prefix("https://").unwrap_or_default();
                if host.is_empty() || host.starts_with('/') || url.contains(char::is_whitespace) {
                    self.error(
                        &value.span(),
                        format!("directory {url:?} is not an https:// URL"),
                    );
                    None
                } else {
                    Some(url.clone())
                }
            }
        };
        let email = raw.email.as_ref().and_then(|value| {
            let email = value.get_ref();
            match email_problem(email) {
                Some(why) => {
                    self.error(&value.span(), format!("email {email:?} {why}"));
                    None
                }
                None => Some(email.clone()),
            }
        });
        let domains = self.acme_domains(raw, &table);
        let challenge = match raw.challenge.as_ref().map(|value| value.get_ref().as_str()) {
            None | Some("http-01") => Some(tendhost_tls::Challenge::Http01),
            Some("tls-alpn-01") => Some(tendhost_tls::Challenge::TlsAlpn01),
            Some(other) => {
                let span = raw
                    .challenge
                    .as_ref()
                    .map(Spanned::span)
                    .unwrap_or(table.clone());
                self.error(
                    &span,
                    format!("challenge must be \"http-01\" or \"tls-alpn-01\", not {other:?}"),
                );
                None
            }
        };
        let http = match challenge {
            Some(tendhost_tls::Challenge::Http01) => {
                self.http01_addr(raw, &table, bind, redirect_http)
            }
            Some(tendhost_tls::Challenge::TlsAlpn01) => {
                if let Some(port) = &raw.http_port {
                    self.error(
                        &port.span(),
                        "http_port is only used with challenge = \"http-01\" (tls-alpn-01 is \
                         answered on the HTTPS port, the bind address)"
                            .to_owned(),
                    );
                }
                None
            }
            None => None,
        };
        let mut duration = |key: &str, value: Option<&Spanned<String>>, max, default| match value {
            None => Some(default),
            Some(value) => host_rules::duration_reason(value.get_ref(), max)
                .map_err(|reason| self.error(&value.span(), format!("{key} {reason}")))
                .ok(),
        };
        let renew_before = duration(
            "renew_before",
            raw.renew_before.as_ref(),
            MAX_RENEW_BEFORE,
            tendhost_tls::DEFAULT_ACME_RENEW_BEFORE,
        );
        let retry = duration(
            "retry",
            raw.retry.as_ref(),
            MAX_RETRY,
            tendhost_tls::DEFAULT_ACME_RETRY,
        );
        let ca_roots = raw
            .ca_roots
            .as_ref()
            .map(|path| self.expand_path(path.get_ref()));
        let settings = tendhost_tls::Acme {
            dir: data_dir.join("tls").join("acme"),
            directory: directory?,
            email,
            domains: domains?,
            challenge: challenge?,
            renew_before: renew_before?,
            ca_roots,
            retry: retry?,
        };
        Some((settings, http))
    }

    fn acme_domains(&mut self, raw: &RawAcme, table: &Range<usize>) -> Option<Vec<String>> {
        let Some(list) = &raw.domains else {
            self.error(
                table,
                "[daemon.tls.acme] needs domains (the DNS names to order the certificate for)"
                    .to_owned(),
            );
            return None;
        };
        if list.get_ref().is_empty() {
            self.error(&list.span(), "domains must not be empty".to_owned());
            return None;
        }
        let mut domains: Vec<String> = Vec::new();
        let mut ok = true;
        for name in list.get_ref() {
            let problem = match tendhost_tls::San::parse(name.get_ref()) {
                Ok(tendhost_tls::San::Ip(ip)) => Some(format!(
                    "domains: {ip} is an IP address; ACME orders here are for DNS names"
                )),
                Ok(tendhost_tls::San::Dns(dns)) if dns.starts_with("*.") => Some(format!(
                    "domains: {dns} is a wildcard, which needs the dns-01 challenge; tendhost \
                     answers http-01 and tls-alpn-01 only"
                )),
                Ok(tendhost_tls::San::Dns(dns)) if domains.contains(&dns) => {
                    Some(format!("domains lists {dns} twice"))
                }
                Ok(tendhost_tls::San::Dns(dns)) => {
                    domains.push(dns);
                    None
                }
                Err(reason) => Some(format!("domains: {reason}")),
            };
            if let Some(problem) = problem {
                self.error(&name.span(), problem);
                ok = false;
            }
        }
        ok.then_some(domains)
    }

    /// Where HTTP-01 is answered: the `redirect_http` listener when there is one (which then
    /// also answers the challenges), else the bind address's IP on `http_port` (default 80).
    fn http01_addr(
        &mut self,
        raw: &RawAcme,
        table: &Range<usize>,
        bind: SocketAddr,
        redirect_http: Option<SocketAddr>,
    ) -> Option<SocketAddr> {
        let port = match &raw.http_port {
            None => None,
            Some(value) => {
                let port = self.int_in_range(value, 1, 65_535, "http_port")?;
                Some((u16::try_from(port).ok()?, value.span()))
            }
        };
        match (redirect_http, port) {
            (Some(redirect), Some((port, span))) if redirect.port() != port => {
                self.error(
                    &span,
                    format!(
                        "http_port {port} differs from the port of redirect_http {redirect}: the \
                         HTTP-01 answers are served by the redirect listener; leave http_port out \
                         or make them the same"
                    ),
                );
                None
            }
            (Some(redirect), _) => Some(redirect),
            (None, port) => {
                let (port, span) =
                    port.map_or((DEFAULT_HTTP_PORT, None), |(port, span)| (port, Some(span)));
                if port == bind.port() {
                    let message = format!(
                        "http_port {port} is the bind port; HTTP-01 needs a plain HTTP port of its own"
                    );
                    self.error(span.as_ref().unwrap_or(table), message);
                    return None;
                }
                Some(SocketAddr::new(bind.ip(), port))
            }
        }
    }
}

/// Why `email` is not a usable contact address, if it is not.
fn email_problem(email: &str) -> Option<&'static str> {
    if email.starts_with("mailto:") {
        return Some("starts with mailto:; write the address alone");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.contains(|c: char| c.is_whitespace() || c == ',' || c.is_control()) =>
        {
            None
        }
        _ => Some("is not an e-mail address (name@domain)"),
    }
}
