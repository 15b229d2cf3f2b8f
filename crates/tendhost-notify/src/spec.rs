//! What a notifier is, as the daemon's config hands it over: name, channel (webhook, ntfy,
//! email) with its secrets, the events it hears, the hosts it speaks about, and its timings.
//! Values are already validated; the checks the config needs from here (`check_*`) are here.

use std::time::Duration;

/// A secret (webhook key, ntfy token, SMTP password): never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The notification events, by the names the config's `events` list uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventName {
    RolloutFinished,
    RolloutStopped,
    HostFailed,
    HostUnreachable,
    RolloutAwaitingApproval,
    CertificateRenewalFailed,
    RebootRequiredDigest,
    SecurityUpdatesDigest,
}

impl EventName {
    pub const ALL: [EventName; 8] = [
        EventName::RolloutFinished,
        EventName::RolloutStopped,
        EventName::HostFailed,
        EventName::HostUnreachable,
        EventName::RolloutAwaitingApproval,
        EventName::CertificateRenewalFailed,
        EventName::RebootRequiredDigest,
        EventName::SecurityUpdatesDigest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventName::RolloutFinished => "rollout_finished",
            EventName::RolloutStopped => "rollout_stopped",
            EventName::HostFailed => "host_failed",
            EventName::HostUnreachable => "host_unreachable",
            EventName::RolloutAwaitingApproval => "rollout_awaiting_approval",
            EventName::CertificateRenewalFailed => "certificate_renewal_failed",
            EventName::RebootRequiredDigest => "reboot_required_digest",
            EventName::SecurityUpdatesDigest => "security_updates_digest",
        }
    }

    pub fn parse(name: &str) -> Option<EventName> {
        EventName::ALL
            .into_iter()
            .find(|event| event.as_str() == name)
    }
}

/// Which hosts a notifier speaks about: hosts carrying every tag of `tags` and in at least one
/// of `groups` (an empty list does not filter), as a rollout's filter means it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub tags: Vec<String>,
    pub groups: Vec<String>,
}

impl Filter {
    pub fn matches(&self, tags: &[String], groups: &[String]) -> bool {
        self.tags.iter().all(|tag| tags.contains(tag))
            && (self.groups.is_empty() || self.groups.iter().any(|group| groups.contains(group)))
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.groups.is_empty()
    }
}

/// How an email notifier talks to its SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (refused when the server does not offer it).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption (a relay on the same machine).
    None,
}

impl SmtpTls {
    pub fn parse(text: &str) -> Option<SmtpTls> {
        match text {
            "starttls" => Some(SmtpTls::StartTls),
            "tls" => Some(SmtpTls::Tls),
            "none" => Some(SmtpTls::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub url: String,
    /// Key of the `X-Tendhost-Signature` HMAC-SHA256.
    pub secret: Secret,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NtfySpec {
    /// The server, e.g. `https://ntfy.sh` (the topic is appended).
    pub url: String,
    pub topic: String,
    pub token: Option<Secret>,
    /// 1 (min) to 5 (max); without it, urgent events get 4 and the rest 3.
    pub priority: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSpec {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub tls: SmtpTls,
    /// Username and password; none means no AUTH.
    pub credentials: Option<(String, Secret)>,
    pub from: String,
    pub to: Vec<String>,
    /// Extra CA certificates (PEM) the server's certificate may chain to, besides the system's.
    pub ca_pem: Option<Vec<u8>>,
}

/// Where messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channel {
    Webhook(WebhookSpec),
    Ntfy(NtfySpec),
    Email(EmailSpec),
}

impl Channel {
    /// `webhook`, `ntfy` or `email`.
    pub fn kind(&self) -> &'static str {
        match self {
            Channel::Webhook(_) => "webhook",
            Channel::Ntfy(_) => "ntfy",
            Channel::Email(_) => "email",
        }
    }
}

/// One `[[notify]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierSpec {
    pub name: String,
    pub channel: Channel,
    /// The events it hears (every one by default).
    pub events: Vec<EventName>,
    pub filter: Filter,
    /// A host unreachable for longer than this is reported (`host_unreachable`).
    pub unreachable_after: Duration,
    /// Minute of the day (daemon's timezone) the digests are sent at.
    pub digest_at: u16,
    /// Deadline of one delivery attempt.
    pub timeout: Duration,
    /// Attempts per message (the first one included), with backoff in between.
    pub attempts: u32,
}

impl NotifierSpec {
    pub fn hears(&self, event: EventName) -> bool {
        self.events.contains(&event)
    }
}

/// Default `unreachable_after`.
pub const DEFAULT_UNREACHABLE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Default `digest_at`: 08:00.
pub const DEFAULT_DIGEST_AT: u16 = 8 * 60;
/// Default per-attempt `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `attempts`.
pub const DEFAULT_ATTEMPTS: u32 = 5;

/// An `http://` or `https://` URL with a host.
pub fn check_http_url(text: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(text).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "{text:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(())
}

/// An email address (`ops@example.org` or `Ops <ops@example.org>`).
pub fn check_mailbox(text: &str) -> Result<(), String> {
    text.parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|err| format!("{text:?} is not an email address: {err}"))
}

/// PEM text holding at least one certificate.
pub fn check_ca_pem(pem: &[u8]) -> Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut n_certs = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|err| format!("not a PEM certificate: {err}"))?;
        n_certs += 1;
    }
    if n_certs == 0 {
        return Err("no CERTIFICATE block in the file".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_secrets_stay_hidden() {
        for event in EventName::ALL {
            assert_eq!(EventName::parse(event.as_str()), Some(event));
        }
        assert_eq!(EventName::parse("rollout_started"), None);
        let spec = WebhookSpec {
            url: "http://x".to_owned(),
            secret: Secret::new("hunter2"),
        };
        assert!(!format!("{spec:?}").contains("hunter2"));
    }

    #[test]
    fn filters_need_every_tag_and_one_group() {
        let filter = Filter {
            tags: vec!["web".to_owned(), "prod".to_owned()],
            groups: vec!["eu".to_owned(), "us".to_owned()],
        };
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(filter.matches(&s(&["web", "prod", "x"]), &s(&["us"])));
        assert!(!filter.matches(&s(&["web"]), &s(&["us"])));
        assert!(!filter.matches(&s(&["web", "prod"]), &s(&["asia"])));
        assert!(Filter::default().matches(&[], &[]));
    }

    #[test]
    fn checks_name_the_problem() {
        assert!(check_http_url("https://ntfy.sh").is_ok());
        assert!(check_http_url("ftp://x").unwrap_err().contains("http"));
        assert!(
            check_http_url("not a url")
                .unwrap_err()
                .contains("not a URL")
        );
        assert!(check_mailbox("Ops <ops@example.org>").is_ok());
        assert!(check_mailbox("ops").is_err());
        assert!(check_ca_pem(b"nothing").is_err());
    }
}
