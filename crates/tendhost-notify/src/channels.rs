//! Sending one message through one channel, once: the webhook POST (JSON `NotificationV1`,
//! `X-Tendhost-Signature: sha256=<hex HMAC-SHA256 of the body>`), the ntfy POST (`Title`,
//! `Priority`, `Tags` headers, plain-text body) and the email (lettre over SMTP with rustls).
//! Retries and timeouts are the caller's (`delivery`). Errors never carry a secret nor the
//! URL (which may hold one): reqwest's errors are stripped of it.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::notice::Notice;
use crate::spec::{Channel, EmailSpec, NtfySpec, SmtpTls, WebhookSpec};

/// The signature header of webhook deliveries.
pub const SIGNATURE_HEADER: &str = "X-Tendhost-Signature";

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, body);
    let mut hex = String::with_capacity(7 + 64);
    hex.push_str("sha256=");
    for byte in tag.as_ref() {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

/// A channel ready to send: the spec plus what is built once (the SMTP transport).
pub(crate) struct Sender {
    channel: Channel,
    http: reqwest::Client,
    smtp: Option<Arc<AsyncSmtpTransport<Tokio1Executor>>>,
}

impl Sender {
    pub(crate) fn new(
        channel: Channel,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Result<Self, String> {
        let smtp = match &channel {
            Channel::Email(email) => Some(Arc::new(smtp_transport(email, timeout)?)),
            _ => None,
        };
        Ok(Self {
            channel,
            http,
            smtp,
        })
    }

    pub(crate) fn kind(&self) -> &'static str {
        self.channel.kind()
    }

    /// One attempt (its deadline is the caller's: the future is dropped at the timeout).
    pub(crate) async fn send(&self, notifier: &str, notice: &Notice) -> Result<(), String> {
        match &self.channel {
            Channel::Webhook(webhook) => self.webhook(webhook, notifier, notice).await,
            Channel::Ntfy(ntfy) => self.ntfy(ntfy, notice).await,
            Channel::Email(email) => {
                let smtp = self.smtp.as_ref().expect("built for email");
                send_email(smtp, email, notice).await
            }
        }
    }

    async fn webhook(
        &self,
        webhook: &WebhookSpec,
        notifier: &str,
        notice: &Notice,
    ) -> Result<(), String> {
        let body = serde_json::to_vec(&notice.to_wire(notifier))
            .map_err(|err| format!("cannot encode the message: {err}"))?;
        let request = self
            .http
            .post(&webhook.url)
            .header("Content-Type", "application/json")
            .header("X-Tendhost-Event", notice.event)
            .header(
                SIGNATURE_HEADER,
                signature(webhook.secret.expose().as_bytes(), &body),
            )
            .body(body);
        answer(request.send().await).await
    }

    async fn ntfy(&self, ntfy: &NtfySpec, notice: &Notice) -> Result<(), String> {
        let url = format!("{}/{}", ntfy.url.trim_end_matches('/'), ntfy.topic);
        let priority = ntfy.priority.unwrap_or(if notice.urgent { 4 } else { 3 });
        let tags = if notice.urgent {
            format!("warning,{}", notice.event)
        } else {
            format!("tendhost,{}", notice.event)
        };
        let mut request = self
            .http
            .post(url)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("Title", header_text(&notice.title))
            .header("Priority", priority.to_string())
            .header("Tags", tags);
        if let Some(url) = &notice.url {
            request = request.header("Click", header_text(url));
        }
        if let Some(token) = &ntfy.token {
            request = request.bearer_auth(token.expose());
        }
        answer(request.body(notice.text()).send().await).await
    }
}

/// Header values are visible ASCII: anything else becomes `?`.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// A 2xx answer is a delivery; anything else says what came back.
async fn answer(result: reqwest::Result<reqwest::Response>) -> Result<(), String> {
    let response = result.map_err(|err| describe(&err.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    Err(format!("the receiver answered {status}: {}", body.trim()))
}

/// The error and its causes (reqwest's own text is only the outermost).
fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn smtp_transport(
    email: &EmailSpec,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls_parameters = || {
        let mut builder = TlsParameters::builder(email.smtp_host.clone());
        if let Some(pem) = &email.ca_pem {
            let cert = Certificate::from_pem(pem)
                .map_err(|err| format!("ca_file is not a PEM certificate: {err}"))?;
            builder = builder.add_root_certificate(cert);
        }
        builder
            .build_rustls()
            .map_err(|err| format!("cannot set up TLS: {err}"))
    };
    let tls = match email.tls {
        SmtpTls::StartTls => Tls::Required(tls_parameters()?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters()?),
        SmtpTls::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&email.smtp_host)
        .port(email.smtp_port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((user, password)) = &email.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

async fn send_email(
    smtp: &AsyncSmtpTransport<Tokio1Executor>,
    email: &EmailSpec,
    notice: &Notice,
) -> Result<(), String> {
    let from: Mailbox = email
        .from
        .parse()
        .map_err(|err| format!("from is not an address: {err}"))?;
    let mut message = Message::builder().from(from).subject(notice.title.clone());
    for to in &email.to {
        let to: Mailbox = to
            .parse()
            .map_err(|err| format!("to is not an address: {err}"))?;
        message = message.to(to);
    }
    let message = message
        .header(ContentType::TEXT_PLAIN)
        .body(notice.text())
        .map_err(|err| format!("cannot build the message: {err}"))?;
    smtp.send(message)
        .await
        .map(|_| ())
        .map_err(|err| describe(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn header_values_stay_ascii() {
        assert_eq!(header_text("web-01 ✓ done\n"), "web-01 ? done?");
    }
}
