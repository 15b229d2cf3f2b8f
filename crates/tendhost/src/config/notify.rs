//! `[[notify]]`: the notifiers, as written (`RawNotify`) and validated into
//! `tendhost_notify::NotifierSpec`; and `daemon.public_url`, the base of the links they send.
//! Every problem is reported at its `file:line:col`; a key of another kind is refused by name.
//! Secrets (`secret`, `token`, `password`, or the variable `*_env` names) never reach a
//! message.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use tendhost_core::spec::MaintenanceWindow;
use tendhost_notify::{
    Channel, EmailSpec, EventName, Filter, NotifierSpec, NtfySpec, Secret, SmtpTls, WebhookSpec,
};
use toml::Spanned;

use crate::config::Validator;
use crate::host_rules;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    pub name: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
    pub filter: Option<Spanned<RawFilter>>,
    pub unreachable_after: Option<Spanned<String>>,
    pub digest_at: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub attempts: Option<Spanned<i64>>,
    // webhook, ntfy
    pub url: Option<Spanned<String>>,
    // webhook
    pub secret: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    // ntfy
    pub topic: Option<Spanned<String>>,
    pub token: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub priority: Option<Spanned<i64>>,
    // email
    pub smtp_host: Option<Spanned<String>>,
    pub smtp_port: Option<Spanned<i64>>,
    pub tls: Option<Spanned<String>>,
    pub username: Option<Spanned<String>>,
    pub password: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<Vec<Spanned<String>>>>,
    pub ca_file: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
}

/// Upper bounds (listed in docs/configuration.md).
const MAX_UNREACHABLE_AFTER: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_TIMEOUT: Duration = Duration::from_secs(5 * 60);
const MAX_ATTEMPTS: i64 = 20;

/// The keys only some kinds use, with those kinds.
const KIND_KEYS: &[(&str, &[&str])] = &[
    ("url", &["webhook", "ntfy"]),
    ("secret", &["webhook"]),
    ("secret_env", &["webhook"]),
    ("topic", &["ntfy"]),
    ("token", &["ntfy"]),
    ("token_env", &["ntfy"]),
    ("priority", &["ntfy"]),
    ("smtp_host", &["email"]),
    ("smtp_port", &["email"]),
    ("tls", &["email"]),
    ("username", &["email"]),
    ("password", &["email"]),
    ("password_env", &["email"]),
    ("from", &["email"]),
    ("to", &["email"]),
    ("ca_file", &["email"]),
];

impl RawNotify {
    /// The span of each kind-specific key that is set.
    fn kind_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        let string = |value: &Option<Spanned<String>>| value.as_ref().map(Spanned::span);
        let spans = [
            ("url", string(&self.url)),
            ("secret", string(&self.secret)),
            ("secret_env", string(&self.secret_env)),
            ("topic", string(&self.topic)),
            ("token", string(&self.token)),
            ("token_env", string(&self.token_env)),
            ("priority", self.priority.as_ref().map(Spanned::span)),
            ("smtp_host", string(&self.smtp_host)),
            ("smtp_port", self.smtp_port.as_ref().map(Spanned::span)),
            ("tls", string(&self.tls)),
            ("username", string(&self.username)),
            ("password", string(&self.password)),
            ("password_env", string(&self.password_env)),
            ("from", string(&self.from)),
            ("to", self.to.as_ref().map(Spanned::span)),
            ("ca_file", string(&self.ca_file)),
        ];
        spans
            .into_iter()
            .filter_map(|(key, span)| span.map(|span| (key, span)))
            .collect()
    }
}

impl Validator<'_> {
    /// `daemon.public_url`: an http(s) URL, kept without its trailing `/`.
    pub(crate) fn public_url(&mut self, raw: Option<&Spanned<String>>) -> Option<String> {
        let raw = raw?;
        match tendhost_notify::check_http_url(raw.get_ref()) {
            Ok(()) => Some(raw.get_ref().trim_end_matches('/').to_owned()),
            Err(reason) => {
                self.error(&raw.span(), format!("public_url {reason}"));
                None
            }
        }
    }

    pub(crate) fn notifiers(
        &mut self,
        raw: Vec<Spanned<RawNotify>>,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Vec<NotifierSpec> {
        let mut specs: Vec<NotifierSpec> = Vec::new();
        for raw in raw {
            let table = raw.span();
            let raw = raw.into_inner();
            if let Some(spec) = self.notifier(&raw, &table, groups) {
                if specs.iter().any(|other| other.name == spec.name) {
                    let span = raw.name.as_ref().map_or(table.clone(), Spanned::span);
                    self.error(
                        &span,
                        format!("notifier name {:?} is used twice", spec.name),
                    );
                }
                specs.push(spec);
            }
        }
        specs
    }

    fn notifier(
        &mut self,
        raw: &RawNotify,
        table: &Range<usize>,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Option<NotifierSpec> {
        let name = match &raw.name {
            None => {
                self.error(table, "[[notify]] needs a name".to_owned());
                None
            }
            Some(name) => match host_rules::name_problem(name.get_ref()) {
                Some(reason) => {
                    self.error(&name.span(), format!("notifier name {reason}"));
                    None
                }
                None => Some(name.get_ref().clone()),
            },
        };
        let label = name.clone().unwrap_or_else(|| "[[notify]]".to_owned());
        let Some(kind) = &raw.kind else {
            self.error(
                table,
                format!("notifier {label:?} needs a kind: \"webhook\", \"ntfy\" or \"email\""),
            );
            return None;
        };
        let kind_name = kind.get_ref().as_str();
        if !matches!(kind_name, "webhook" | "ntfy" | "email") {
            self.error(
                &kind.span(),
                format!("kind must be \"webhook\", \"ntfy\" or \"email\", not {kind_name:?}"),
            );
            return None;
        }
        for (key, span) in raw.kind_keys() {
            let kinds = KIND_KEYS
                .iter()
                .find(|(known, _)| *known == key)
                .map_or(&[][..], |(_, kinds)| *kinds);
            if !kinds.contains(&kind_name) {
                self.error(
                    &span,
                    format!(
                        "{key} is not a setting of kind {kind_name:?} (it belongs to {})",
                        kinds.join(", ")
                    ),
                );
            }
        }
        let events = self.events(raw.events.as_ref());
        let filter = self.filter(raw.filter.as_ref(), groups);
        let unreachable_after = self.bounded(
            raw.unreachable_after.as_ref(),
            "unreachable_after",
            MAX_UNREACHABLE_AFTER,
            tendhost_notify::DEFAULT_UNREACHABLE_AFTER,
        );
        let timeout = self.bounded(
            raw.timeout.as_ref(),
            "timeout",
            MAX_TIMEOUT,
            tendhost_notify::DEFAULT_TIMEOUT,
        );
        let attempts =
            raw.attempts
                .as_ref()
                .map_or(i64::from(tendhost_notify::DEFAULT_ATTEMPTS), |value| {
                    self.int_in_range(value, 1, MAX_ATTEMPTS, "attempts")
                        .unwrap_or(1)
                });
        let digest_at = match &raw.digest_at {
            None => Some(tendhost_notify::DEFAULT_DIGEST_AT),
            Some(value) => {
                let minute = MaintenanceWindow::parse_hhmm(value.get_ref());
                if minute.is_none() {
                    self.error(
                        &value.span(),
                        format!(
                            "digest_at {:?} is not a time: use \"HH:MM\", e.g. \"08:00\"",
                            value.get_ref()
                        ),
                    );
                }
                minute
            }
        };
        let channel = match kind_name {
            "webhook" => self.webhook(raw, table, &label).map(Channel::Webhook),
            "ntfy" => self.ntfy(raw, table, &label).map(Channel::Ntfy),
            _ => self.email(raw, table, &label).map(Channel::Email),
        };
        Some(NotifierSpec {
            name: name?,
            channel: channel?,
            events,
            filter,
            unreachable_after,
            digest_at: digest_at?,
            timeout,
            attempts: u32::try_from(attempts).unwrap_or(1),
        })
    }

    fn events(&mut self, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<EventName> {
        let Some(raw) = raw else {
            return EventName::ALL.to_vec();
        };
        if raw.get_ref().is_empty() {
            self.error(
                &raw.span(),
                "events must not be empty (leave it out to hear every event)".to_owned(),
            );
        }
        let mut events = Vec::new();
        for name in raw.get_ref() {
            match EventName::parse(name.get_ref()) {
                Some(event) if !events.contains(&event) => events.push(event),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = EventName::ALL.iter().map(|e| e.as_str()).collect();
                    self.error(
                        &name.span(),
                        format!(
                            "unknown event {:?}; events are {}",
                            name.get_ref(),
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        events
    }

    fn filter(
        &mut self,
        raw: Option<&Spanned<RawFilter>>,
        groups: &BTreeMap<String, Vec<String>>,
    ) -> Filter {
        let Some(raw) = raw else {
            return Filter::default();
        };
        let raw = raw.get_ref();
        for tag in &raw.tags {
            if let Some(reason) = host_rules::name_problem(tag.get_ref()) {
                self.error(&tag.span(), format!("filter tag {reason}"));
            }
        }
        for group in &raw.groups {
            if !groups.contains_key(group.get_ref()) {
                self.error(
                    &group.span(),
                    format!(
                        "filter names unknown group {:?} (not in [groups])",
                        group.get_ref()
                    ),
                );
            }
        }
        Filter {
            tags: raw.tags.iter().map(|t| t.get_ref().clone()).collect(),
            groups: raw.groups.iter().map(|g| g.get_ref().clone()).collect(),
        }
    }

    fn bounded(
        &mut self,
        raw: Option<&Spanned<String>>,
        key: &str,
        max: Duration,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else {
            return default;
        };
        host_rules::duration_reason(raw.get_ref(), max).unwrap_or_else(|reason| {
            self.error(&raw.span(), format!("{key} {reason}"));
            default
        })
    }

    /// A required string key of the table.
    fn required<'r>(
        &mut self,
        value: Option<&'r Spanned<String>>,
        key: &str,
        table: &Range<usize>,
        label: &str,
    ) -> Option<&'r Spanned<String>> {
        match value {
            Some(value) if !value.get_ref().is_empty() => Some(value),
            Some(value) => {
                self.error(&value.span(), format!("{key} must not be empty"));
                None
            }
            None => {
                self.error(table, format!("notifier {label:?} needs {key}"));
                None
            }
        }
    }

    /// A secret written in the file (`key`) or read from a variable (`key_env`): one of them.
    fn secret(
        &mut self,
        inline: Option<&Spanned<String>>,
        env: Option<&Spanned<String>>,
        key: &str,
    ) -> Result<Option<Secret>, ()> {
        match (inline, env) {
            (Some(_), Some(env)) => {
                self.error(&env.span(), format!("set {key} or {key}_env, not both"));
                Err(())
            }
            (Some(inline), None) if inline.get_ref().is_empty() => {
                self.error(&inline.span(), format!("{key} must not be empty"));
                Err(())
            }
            (Some(inline), None) => Ok(Some(Secret::new(inline.get_ref().clone()))),
            (None, Some(env)) => match (self.env)(env.get_ref()) {
                Some(value) if !value.is_empty() => Ok(Some(Secret::new(value))),
                _ => {
                    self.error(
                        &env.span(),
                        format!(
                            "{key}_env names {:?}, which is not set (or empty) in the environment",
                            env.get_ref()
                        ),
                    );
                    Err(())
                }
            },
            (None, None) => Ok(None),
        }
    }

    fn http_url(&mut self, value: &Spanned<String>) -> Option<String> {
        match tendhost_notify::check_http_url(value.get_ref()) {
            Ok(()) => Some(value.get_ref().clone()),
            Err(reason) => {
                self.error(&value.span(), format!("url {reason}"));
                None
            }
        }
    }

    fn webhook(
        &mut self,
        raw: &RawNotify,
        table: &Range<usize>,
        label: &str,
    ) -> Option<WebhookSpec> {
        let url = self
            .required(raw.url.as_ref(), "url", table, label)
            .and_then(|url| self.http_url(url));
        let secret = self.secret(raw.secret.as_ref(), raw.secret_env.as_ref(), "secret");
        let secret = match secret {
            Ok(Some(secret)) => Some(secret),
            Ok(None) => {
                self.error(
                    table,
                    format!("notifier {label:?} needs secret or secret_env (the key of X-Tendhost-Signature)"),
                );
                None
            }
            Err(()) => None,
        };
        Some(WebhookSpec {
            url: url?,
            secret: secret?,
        })
    }

    fn ntfy(&mut self, raw: &RawNotify, table: &Range<usize>, label: &str) -> Option<NtfySpec> {
        let url = self
            .required(raw.url.as_ref(), "url", table, label)
            .and_then(|url| self.http_url(url));
        let topic = self
            .required(raw.topic.as_ref(), "topic", table, label)
            .and_then(|topic| {
                let text = topic.get_ref();
                let valid = text.len() <= 64
                    && text
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if valid {
                    Some(text.clone())
                } else {
                    self.error(
                        &topic.span(),
                        format!(
                            "topic {text:?} is invalid: use 1 to 64 characters from A-Z a-z 0-9 _ -"
                        ),
                    );
                    None
                }
            });
        let token = self.secret(raw.token.as_ref(), raw.token_env.as_ref(), "token");
        let priority = raw
            .priority
            .as_ref()
            .map(|value| self.int_in_range(value, 1, 5, "priority"));
        let priority = match priority {
            None => None,
            Some(Some(value)) => Some(u8::try_from(value).ok()?),
            Some(None) => return None,
        };
        Some(NtfySpec {
            url: url?,
            topic: topic?,
            token: token.ok()?,
            priority,
        })
    }

    fn email(&mut self, raw: &RawNotify, table: &Range<usize>, label: &str) -> Option<EmailSpec> {
        let smtp_host = self
            .required(raw.smtp_host.as_ref(), "smtp_host", table, label)
            .map(|host| host.get_ref().clone());
        let tls = match &raw.tls {
            None => Some(SmtpTls::StartTls),
            Some(value) => {
                let tls = SmtpTls::parse(value.get_ref());
                if tls.is_none() {
                    self.error(
                        &value.span(),
                        format!(
                            "tls must be \"starttls\", \"tls\" or \"none\", not {:?}",
                            value.get_ref()
                        ),
                    );
                }
                tls
            }
        };
        let default_port = match tls {
            Some(SmtpTls::Tls) => 465,
            Some(SmtpTls::None) => 25,
            _ => 587,
        };
        let smtp_port = match &raw.smtp_port {
            None => Some(default_port),
            Some(port) => self
                .int_in_range(port, 1, 65_535, "smtp_port")
                .and_then(|port| u16::try_from(port).ok()),
        };
        let password = self.secret(raw.password.as_ref(), raw.password_env.as_ref(), "password");
        let credentials = match (&raw.username, password) {
            (Some(user), Ok(Some(password))) => Some(Some((user.get_ref().clone(), password))),
            (None, Ok(None)) => Some(None),
            (Some(user), Ok(None)) => {
                self.error(
                    &user.span(),
                    "username needs password or password_env".to_owned(),
                );
                None
            }
            (None, Ok(Some(_))) => {
                self.error(
                    table,
                    format!("notifier {label:?} has a password but no username"),
                );
                None
            }
            (_, Err(())) => None,
        };
        let from = self
            .required(raw.from.as_ref(), "from", table, label)
            .and_then(|from| self.mailbox(from, "from"));
        let to = match &raw.to {
            None => {
                self.error(
                    table,
                    format!("notifier {label:?} needs to (a list of addresses)"),
                );
                None
            }
            Some(list) if list.get_ref().is_empty() => {
                self.error(&list.span(), "to must name at least one address".to_owned());
                None
            }
            Some(list) => {
                let mut to = Some(Vec::new());
                for address in list.get_ref() {
                    match self.mailbox(address, "to") {
                        Some(address) => {
                            if let Some(to) = &mut to {
                                to.push(address);
                            }
                        }
                        None => to = None,
                    }
                }
                to
            }
        };
        let ca_pem = match &raw.ca_file {
            None => Some(None),
            Some(path) => {
                let file = self.expand_path(path.get_ref());
                match std::fs::read(&file)
                    .map_err(|err| format!("cannot read {}: {err}", file.display()))
                    .and_then(|pem| tendhost_notify::check_ca_pem(&pem).map(|()| pem))
                {
                    Ok(pem) => Some(Some(pem)),
                    Err(reason) => {
                        self.error(&path.span(), format!("ca_file {reason}"));
                        None
                    }
                }
            }
        };
        Some(EmailSpec {
            smtp_host: smtp_host?,
            smtp_port: smtp_port?,
            tls: tls?,
            credentials: credentials?,
            from: from?,
            to: to?,
            ca_pem: ca_pem?,
        })
    }

    fn mailbox(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        match tendhost_notify::check_mailbox(value.get_ref()) {
            Ok(()) => Some(value.get_ref().clone()),
            Err(reason) => {
                self.error(&value.span(), format!("{key} {reason}"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use tendhost_notify::{Channel, EventName, SmtpTls};

    use crate::config::parse;

    const PATH: &str = "/etc/tendhost/t.toml";

    fn env(var: &str) -> Option<String> {
        (var == "HOOK_SECRET").then(|| "from-env".to_owned())
    }

    /// The rendered errors of `text`.
    fn errors(text: &str) -> String {
        parse(text, Path::new(PATH), &env)
            .expect_err("config should be rejected")
            .to_string()
    }

    #[track_caller]
    fn has(rendered: &str, line: usize, col: usize, needle: &str) {
        let prefix = format!("{PATH}:{line}:{col}: ");
        assert!(
            rendered
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(needle)),
            "expected {prefix:?} with {needle:?} in:\n{rendered}"
        );
    }

    #[test]
    fn every_kind_with_its_defaults() {
        let text = "[daemon]\npublic_url = \"https://t.example:8443/\"\n\
            [[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://h.example/x\"\nsecret_env = \"HOOK_SECRET\"\n\
            [[notify]]\nname = \"push\"\nkind = \"ntfy\"\nurl = \"https://ntfy.sh\"\ntopic = \"t_1\"\npriority = 5\n\
            events = [\"host_failed\", \"host_failed\"]\nfilter = { tags = [\"web\"] }\n\
            [[notify]]\nname = \"mail\"\nkind = \"email\"\nsmtp_host = \"smtp.example\"\ntls = \"tls\"\n\
            from = \"t@example.org\"\nto = [\"a@example.org\"]\nunreachable_after = \"2h\"\ndigest_at = \"07:15\"\n";
        let config = parse(text, Path::new(PATH), &env).unwrap();
        assert_eq!(
            config.daemon.public_url.as_deref(),
            Some("https://t.example:8443")
        );
        let [hook, push, mail] = config.notify.as_slice() else {
            panic!("{:?}", config.notify)
        };
        assert_eq!(hook.events, EventName::ALL);
        assert_eq!(hook.unreachable_after, Duration::from_secs(1800));
        assert_eq!(hook.digest_at, 8 * 60);
        assert_eq!((hook.attempts, hook.timeout), (5, Duration::from_secs(10)));
        let Channel::Webhook(webhook) = &hook.channel else {
            panic!()
        };
        assert_eq!(webhook.secret.expose(), "from-env");
        assert_eq!(push.events, [EventName::HostFailed]);
        assert_eq!(push.filter.tags, ["web"]);
        let Channel::Ntfy(ntfy) = &push.channel else {
            panic!()
        };
        assert_eq!((ntfy.priority, ntfy.token.is_none()), (Some(5), true));
        let Channel::Email(email) = &mail.channel else {
            panic!()
        };
        assert_eq!((email.tls, email.smtp_port), (SmtpTls::Tls, 465));
        assert_eq!(email.credentials, None);
        assert_eq!(mail.digest_at, 7 * 60 + 15);
        assert_eq!(mail.unreachable_after, Duration::from_secs(7200));
        let summary = config.summary();
        assert!(summary.contains("notifiers: 3"), "{summary}");
        assert!(summary.contains("push (ntfy): host_failed"), "{summary}");
        assert!(!format!("{config:?}").contains("from-env"));
    }

    #[test]
    fn problems_are_reported_at_their_place() {
        let rendered = errors(
            "[daemon]\npublic_url = \"ftp://x\"\n\
             [[notify]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"not a url\"\nsecret_env = \"UNSET\"\ntopic = \"t\"\n\
             events = [\"rollout_finished\", \"rollout_started\"]\ndigest_at = \"25:00\"\nattempts = 0\n\
             [[notify]]\nname = \"a\"\nkind = \"pager\"\n\
             [[notify]]\nname = \"m\"\nkind = \"email\"\nsmtp_host = \"s\"\nusername = \"u\"\nfrom = \"nobody\"\nto = []\n\
             filter = { groups = [\"nope\"] }\ntimeout = \"1h\"\n\
             [[notify]]\nname = \"n\"\nkind = \"ntfy\"\nurl = \"https://ntfy.sh\"\ntopic = \"a/b\"\ntoken = \"x\"\ntoken_env = \"Y\"\n",
        );
        has(&rendered, 2, 14, "public_url \"ftp://x\" must be an http");
        has(&rendered, 6, 7, "url \"not a url\" is not a URL");
        has(
            &rendered,
            7,
            14,
            "secret_env names \"UNSET\", which is not set",
        );
        has(
            &rendered,
            8,
            9,
            "topic is not a setting of kind \"webhook\" (it belongs to ntfy)",
        );
        has(&rendered, 9, 31, "unknown event \"rollout_started\"");
        has(&rendered, 10, 13, "digest_at \"25:00\" is not a time");
        has(&rendered, 11, 12, "attempts must be between 1 and 20");
        has(
            &rendered,
            14,
            8,
            "kind must be \"webhook\", \"ntfy\" or \"email\", not \"pager\"",
        );
        has(&rendered, 19, 12, "username needs password or password_env");
        has(&rendered, 20, 8, "from \"nobody\" is not an email address");
        has(&rendered, 21, 6, "to must name at least one address");
        has(&rendered, 22, 22, "filter names unknown group \"nope\"");
        has(&rendered, 23, 11, "timeout \"1h\" is too long");
        has(&rendered, 28, 9, "topic \"a/b\" is invalid");
        has(&rendered, 30, 13, "set token or token_env, not both");
        assert!(!rendered.contains("panicked"));
    }

    #[test]
    fn names_are_required_valid_and_unique_and_secrets_stay_out_of_messages() {
        let rendered = errors(
            "[[notify]]\nkind = \"webhook\"\nurl = \"http://h\"\nsecret = \"s3cr3t-value\"\n\
             [[notify]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h\"\nsecret = \"s3cr3t-value\"\n\
             [[notify]]\nname = \"x\"\nkind = \"webhook\"\nurl = \"http://h\"\n",
        );
        has(&rendered, 1, 1, "[[notify]] needs a name");
        has(
            &rendered,
            10,
            1,
            "notifier \"x\" needs secret or secret_env",
        );
        assert!(!rendered.contains("s3cr3t-value"), "{rendered}");
        let rendered = errors(
            "[[notify]]\nname = \"x\"\nkind = \"ntfy\"\nurl = \"http://h\"\ntopic = \"t\"\n\
             [[notify]]\nname = \"x\"\nkind = \"ntfy\"\nurl = \"http://h\"\ntopic = \"t\"\n",
        );
        has(&rendered, 7, 8, "notifier name \"x\" is used twice");
    }
}
