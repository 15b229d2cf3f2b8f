//! ACME (`mode = "acme"`): the settings, and [`Issuer`], which orders a certificate from the
//! CA through instant-acme (the kept ACME client; no protocol code here) and answers its
//! challenges. The account is registered once and kept in `<dir>/account.json`; a CA that has
//! forgotten it (test CAs do, real ones can deactivate one) gets a new registration before the
//! order. When to order, and what happens with the result, is `service.rs`'s business.
//!
//! The ACME server's own HTTPS is verified against `ca_roots` when set (a private ACME CA),
//! otherwise against the system's roots; either way on the workspace's ring provider.

mod answers;
mod selfmade;
mod store;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use instant_acme::{
    Account, AuthorizationStatus, BodyWrapper, ChallengeType, Identifier, NewAccount, NewOrder,
    Order, OrderStatus, Problem, RetryPolicy,
};
use rustls::crypto::CryptoProvider;
use std::path::PathBuf;

use crate::Error;
pub(crate) use crate::acme::answers::Answers;
pub(crate) use crate::acme::selfmade::temporary;
pub(crate) use crate::acme::store::Paths;

/// The ALPN protocol of TLS-ALPN-01 validation handshakes (RFC 8737); such connections carry
/// no HTTP and are closed after the handshake.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Default `renew_before`: renew 30 days before the end.
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Default pause after a failed attempt.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(10 * 60);

/// The pause after a failure doubles with each further failure, up to this many times
/// `retry`.
pub const MAX_RETRY_FACTOR: u32 = 16;

/// How long one attempt (account, order, validation, certificate) may take before it is
/// abandoned and counted as a failure.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(180);

/// How long to connect to the ACME server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Polling the order while the CA validates and then signs.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(2.0)
    .timeout(Duration::from_secs(120));

/// Settings of `mode = "acme"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acme {
    /// Where the account and the certificate live (`<data_dir>/tls/acme`).
    pub dir: PathBuf,
    /// The ACME directory URL.
    pub directory: String,
    /// Contact address given at registration.
    pub email: Option<String>,
    /// DNS names the certificate is ordered for; the first is its subject.
    pub domains: Vec<String>,
    pub challenge: Challenge,
    /// Renew when less than this is left.
    pub renew_before: Duration,
    /// PEM certificates trusted for the ACME server's own HTTPS, instead of the system's.
    pub ca_roots: Option<PathBuf>,
    /// Pause after a failed attempt; doubled after each further one, up to
    /// [`MAX_RETRY_FACTOR`] times.
    pub retry: Duration,
}

/// How the CA checks that the daemon controls its names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A file over plain HTTP (the daemon's HTTP-01 listener, port 80 for public CAs).
    Http01,
    /// A special certificate in a TLS handshake on the HTTPS port.
    TlsAlpn01,
}

impl Challenge {
    /// `"http-01"` or `"tls-alpn-01"`, as in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }

    fn kind(self) -> ChallengeType {
        match self {
            Challenge::Http01 => ChallengeType::Http01,
            Challenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        }
    }
}

/// The pause before the next attempt after `n_failures` failures in a row.
pub(crate) fn retry_pause(retry: Duration, n_failures: u32) -> Duration {
    let factor = 1u32 << n_failures.saturating_sub(1).min(MAX_RETRY_FACTOR.ilog2());
    retry * factor.min(MAX_RETRY_FACTOR)
}

/// A certificate the CA issued: the PEM chain (leaf first) and its PEM key.
pub(crate) struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

type Https = HyperClient<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// Orders certificates for one [`Acme`] configuration and answers the challenges.
pub(crate) struct Issuer {
    settings: Acme,
    paths: Paths,
    http: Https,
    provider: Arc<CryptoProvider>,
    /// The account, once loaded or registered; dropped after a failed attempt, so the next
    /// one starts from the directory again.
    account: tokio::sync::Mutex<Option<Account>>,
    pub answers: Answers,
}

impl Issuer {
    /// Reads `ca_roots` (errors name the file) and prepares the HTTP client.
    pub(crate) fn new(settings: &Acme, provider: Arc<CryptoProvider>) -> Result<Issuer, Error> {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match &settings.ca_roots {
            Some(path) => builder.with_tls_config(client_config(path)?),
            None => builder
                .with_provider_and_platform_verifier(Arc::clone(&provider))
                .map_err(|err| Error::Acme(format!("cannot load the system's roots: {err}")))?,
        };
        let mut connector = HttpConnector::new();
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = builder
            .https_only()
            .enable_http1()
            .wrap_connector(connector);
        let http = HyperClient::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Issuer {
            settings: settings.clone(),
            paths: Paths::new(&settings.dir),
            http,
            provider,
            account: tokio::sync::Mutex::new(None),
            answers: Answers::default(),
        })
    }

    pub(crate) fn paths(&self) -> &Paths {
        &self.paths
    }

    /// One attempt: account, order, challenges, certificate. The error says what failed, in
    /// words fit for `last_error`.
    pub(crate) async fn order(&self) -> Result<Issued, String> {
        let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, self.order_once());
        let result = attempt.await.unwrap_or_else(|_| {
            Err(format!(
                "no certificate from {} within {}s; the attempt was abandoned",
                self.settings.directory,
                ATTEMPT_TIMEOUT.as_secs()
            ))
        });
        self.answers.clear();
        if result.is_err() {
            *self.account.lock().await = None;
        }
        result
    }

    async fn order_once(&self) -> Result<Issued, String> {
        let identifiers: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .map(|domain| Identifier::Dns(domain.clone()))
            .collect();
        let new_order = NewOrder::new(&identifiers);
        let account = self.account().await?;
        let order = match account.new_order(&new_order).await {
            Ok(order) => order,
            Err(err) if account_gone(&err) => {
                tracing::warn!(directory = %self.settings.directory, error = %text(&err), "the ACME server does not know the account (any more); registering again");
                let account = self.register().await?;
                account
                    .new_order(&new_order)
                    .await
                    .map_err(|err| format!("new order: {}", text(&err)))?
            }
            Err(err) => return Err(format!("new order: {}", text(&err))),
        };
        self.complete(order).await
    }

    /// The cached account, the stored one, or a new registration.
    async fn account(&self) -> Result<Account, String> {
        if let Some(account) = self.account.lock().await.clone() {
            return Ok(account);
        }
        let stored = self
            .paths
            .load_account(&self.settings.directory)
            .map_err(|err| err.to_string())?;
        match stored {
            Some(credentials) => {
                let account = Account::builder_with_http(Box::new(self.http.clone()))
                    .from_credentials(credentials)
                    .await
                    .map_err(|err| self.unreachable(&err))?;
                *self.account.lock().await = Some(account.clone());
                Ok(account)
            }
            None => self.register().await,
        }
    }

    /// Registers a new account (a new key) and stores it, replacing any stored one.
    async fn register(&self) -> Result<Account, String> {
        let contact = self
            .settings
            .email
            .as_ref()
            .map(|email| format!("mailto:{email}"));
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = Account::builder_with_http(Box::new(self.http.clone()))
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await
            .map_err(|err| match err {
                instant_acme::Error::Api(problem) => {
                    format!("account registration refused: {}", problem_text(&problem))
                }
                other => self.unreachable(&other),
            })?;
        self.paths
            .store_account(&self.settings.directory, &credentials)
            .map_err(|err| err.to_string())?;
        tracing::info!(directory = %self.settings.directory, account = %account.id(), "registered an ACME account");
        *self.account.lock().await = Some(account.clone());
        Ok(account)
    }

    fn unreachable(&self, err: &instant_acme::Error) -> String {
        format!(
            "cannot use the ACME directory {}: {}",
            self.settings.directory,
            text(err)
        )
    }

    /// Answers every pending authorization, waits for the CA, finalizes and downloads.
    async fn complete(&self, mut order: Order) -> Result<Issued, String> {
        let challenge = self.settings.challenge;
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|err| format!("authorization: {}", text(&err)))?;
            let domain = authz.identifier().to_string();
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                status => return Err(format!("the authorization of {domain} is {status:?}")),
            }
            let mut handle = authz.challenge(challenge.kind()).ok_or_else(|| {
                format!(
                    "the ACME server offers no {} challenge for {domain}",
                    challenge.name()
                )
            })?;
            let key_authorization = handle.key_authorization();
            match challenge {
                Challenge::Http01 => self
                    .answers
                    .add_http01(&handle.token, key_authorization.as_str()),
                Challenge::TlsAlpn01 => {
                    let cert = selfmade::alpn_challenge(
                        &domain,
                        key_authorization.digest().as_ref(),
                        &self.provider,
                    )?;
                    self.answers.add_alpn(&domain, cert);
                }
            }
            handle
                .set_ready()
                .await
                .map_err(|err| format!("{} for {domain}: {}", challenge.name(), text(&err)))?;
        }
        match order.poll_ready(&POLL).await {
            Ok(OrderStatus::Ready) => {}
            Ok(status) => {
                return Err(why_invalid(&mut order, challenge, &format!("{status:?}")).await);
            }
            Err(instant_acme::Error::Api(problem)) => {
                return Err(why_invalid(&mut order, challenge, &problem_text(&problem)).await);
            }
            Err(err) => return Err(format!("waiting for the validation: {}", text(&err))),
        }
        let key_pem = order
            .finalize()
            .await
            .map_err(|err| format!("finalizing the order: {}", text(&err)))?;
        let chain_pem = order
            .poll_certificate(&POLL)
            .await
            .map_err(|err| format!("downloading the certificate: {}", text(&err)))?;
        Ok(Issued { chain_pem, key_pem })
    }
}

/// Why an order went invalid: the errors of its challenges, or what the order said.
async fn why_invalid(order: &mut Order, challenge: Challenge, order_said: &str) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authz)) = authorizations.next().await {
        let domain = authz.identifier().to_string();
        if let Ok(state) = authz.refresh().await {
            for failed in &state.challenges {
                if let Some(problem) = &failed.error {
                    reasons.push(format!("{domain}: {}", problem_text(problem)));
                }
            }
        }
    }
    if reasons.is_empty() {
        format!("the order failed: {order_said}")
    } else {
        format!(
            "{} validation failed: {}",
            challenge.name(),
            reasons.join("; ")
        )
    }
}

/// Whether the server refused a request because it does not know (or no longer accepts) the
/// account.
fn account_gone(err: &instant_acme::Error) -> bool {
    matches!(err, instant_acme::Error::Api(problem) if matches!(
        problem.r#type.as_deref(),
        Some("urn:ietf:params:acme:error:accountDoesNotExist" | "urn:ietf:params:acme:error:unauthorized")
    ))
}

/// A problem document as one line: its detail and its short type.
fn problem_text(problem: &Problem) -> String {
    let kind = problem
        .r#type
        .as_deref()
        .map(|kind| kind.trim_start_matches("urn:ietf:params:acme:error:"));
    match (&problem.detail, kind) {
        (Some(detail), Some(kind)) => format!("{detail} ({kind})"),
        (Some(detail), None) => detail.clone(),
        (None, Some(kind)) => kind.to_owned(),
        (None, None) => "an error without details".to_owned(),
    }
}

/// An error with its causes, `outer: inner: ...` (hyper's own messages say little alone).
fn text(err: &instant_acme::Error) -> String {
    if let instant_acme::Error::Api(problem) = err {
        return problem_text(problem);
    }
    let mut out = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !out.contains(&cause_text) {
            out.push_str(": ");
            out.push_str(&cause_text);
        }
        source = cause.source();
    }
    out
}

/// A client configuration whose only roots are the certificates in `path`.
fn client_config(path: &std::path::Path) -> Result<rustls::ClientConfig, Error> {
    let pem =
        std::fs::read(path).map_err(|err| Error::file(path, format!("cannot read: {err}")))?;
    let mut config = crate::client_config(&pem).map_err(|reason| Error::file(path, reason))?;
    // hyper-rustls sets the ALPN protocols itself (and refuses a config that has some).
    config.alpn_protocols.clear();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_double_up_to_the_bound() {
        let retry = Duration::from_secs(10);
        let pauses: Vec<u64> = (1..=8).map(|n| retry_pause(retry, n).as_secs()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 160, 160, 160]);
        assert_eq!(retry_pause(retry, u32::MAX).as_secs(), 160);
    }

    #[test]
    fn ca_roots_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roots.pem");
        let err = client_config(&path).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read", path.display())),
            "{err}"
        );
        std::fs::write(&path, "nothing here").unwrap();
        let err = client_config(&path).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE block"), "{err}");
    }

    #[tokio::test]
    async fn an_issuer_trusts_usable_ca_roots() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = params.self_signed(&key).unwrap();
        let path = dir.path().join("roots.pem");
        std::fs::write(&path, root.pem()).unwrap();
        let settings = Acme {
            dir: dir.path().join("acme"),
            directory: "https://127.0.0.1:9/dir".to_owned(),
            email: None,
            domains: vec!["a.example.org".to_owned()],
            challenge: Challenge::TlsAlpn01,
            renew_before: DEFAULT_RENEW_BEFORE,
            ca_roots: Some(path),
            retry: DEFAULT_RETRY,
        };
        let issuer = Issuer::new(&settings, crate::provider()).unwrap();
        // Nothing listens on port 9: the attempt fails, saying where it went.
        let err = issuer.order().await.err().unwrap();
        assert!(err.contains("https://127.0.0.1:9/dir"), "{err}");
    }
}
