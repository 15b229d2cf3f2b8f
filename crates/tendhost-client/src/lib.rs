//! `tendhost-client`: an async client of the tendhost daemon over the `tendhost-api` wire
//! types, used by the command line (`tendhost-cli`) and the end-to-end tests.
//!
//! `Client` has one method per operation of the daemon's OpenAPI document (`routes.rs`, with
//! `OPERATIONS` naming them) and the WebSocket event stream (`stream.rs`: reconnects with
//! `?since=` and yields typed events). It takes a bearer token, a custom CA (otherwise the
//! system's roots) and timeouts (`ClientBuilder`). Errors are `Error`: the API's code and
//! message, or the URL and cause of a network failure; nothing here panics on a bad answer.

mod error;
mod routes;
mod stream;
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tendhost_api::ErrorResponse;

pub use crate::error::Error;
pub use crate::routes::{OPERATIONS, Operation};
pub use crate::stream::{EventStream, Received, StreamOptions};

/// The default time to connect (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default time for one whole request and its answer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A bearer token; never shown by `Debug`.
#[derive(Clone)]
struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// How to reach a daemon: base URL, token, CA, timeouts.
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    token: Option<Token>,
    ca_pem: Option<Vec<u8>>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl ClientBuilder {
    /// A client of the daemon at `base_url` (`http://HOST:PORT` or `https://...`).
    pub fn new(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            token: None,
            ca_pem: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Sends `Authorization: Bearer <token>` on every request and on the WebSocket.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> ClientBuilder {
        self.token = Some(Token(token.into()));
        self
    }

    /// Trusts only these PEM CA certificates for HTTPS (else the system's roots).
    #[must_use]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> ClientBuilder {
        self.ca_pem = Some(pem.into());
        self
    }

    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.connect_timeout = timeout;
        self
    }

    /// Limit for one request and its whole answer (the event stream has none).
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> ClientBuilder {
        self.request_timeout = timeout;
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let trimmed = self.base_url.trim_end_matches('/');
        let base = Url::parse(trimmed)
            .map_err(|err| Error::Setting(format!("URL {:?}: {err}", self.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::Setting(format!(
                "URL {:?}: must be http://HOST[:PORT] or https://HOST[:PORT]",
                self.base_url
            )));
        }
        let tls = Arc::new(tls::client_config(self.ca_pem.as_deref())?);
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .build()
            .map_err(|err| Error::Setting(format!("HTTP client: {}", error::causes(&err))))?;
        Ok(Client {
            http,
            base_url: trimmed.to_owned(),
            token: self.token,
            tls,
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
        })
    }
}

/// A client of one daemon. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Without a trailing slash.
    base_url: String,
    token: Option<Token>,
    tls: Arc<rustls::ClientConfig>,
    connect_timeout: Duration,
    request_timeout: Duration,
}

impl Client {
    /// The daemon's base URL as given (without a trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url` + `path` (+ `?query`).
    fn url(&self, path: &str, query: &[(String, String)]) -> String {
        let mut url = format!("{}{path}", self.base_url);
        if !query.is_empty() {
            let mut encoder = form_urlencoded::Serializer::new(String::new());
            for (key, value) in query {
                encoder.append_pair(key, value);
            }
            url.push('?');
            url.push_str(&encoder.finish());
        }
        url
    }

    /// One request; the answer's status and body, or the network error naming the URL.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<Answer, Error> {
        let url = self.url(path, query);
        let state_change = !matches!(method, Method::GET | Method::HEAD);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(&token.0);
        }
        if let Some(json) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json);
        } else if state_change {
            // Without a token, a state change must still say it is JSON (the CSRF rule).
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.network(&url, &err))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| self.network(&url, &err))?;
        Ok(Answer { status, url, text })
    }

    fn network(&self, url: &str, err: &reqwest::Error) -> Error {
        if err.is_timeout() {
            let timeout = if err.is_connect() {
                self.connect_timeout
            } else {
                self.request_timeout
            };
            return Error::Timeout {
                url: url.to_owned(),
                timeout,
            };
        }
        Error::Connect {
            url: url.to_owned(),
            cause: error::causes(err),
        }
    }

    /// A JSON request whose success answer is `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let answer = self.send(method, path, query, body).await?;
        decode(answer.status, &answer.url, &answer.text)
    }

    /// A request whose success answer is text (`/metrics`).
    async fn call_text(&self, path: &str) -> Result<String, Error> {
        let answer = self.send(Method::GET, path, &[], None).await?;
        if answer.status.is_success() {
            Ok(answer.text)
        } else {
            Err(api_error(answer.status, &answer.url, &answer.text))
        }
    }

    /// A request whose success answer has no body (`204`).
    async fn call_empty(&self, method: Method, path: &str) -> Result<(), Error> {
        let answer = self.send(method, path, &[], None).await?;
        if answer.status.is_success() {
            Ok(())
        } else {
            Err(api_error(answer.status, &answer.url, &answer.text))
        }
    }
}

/// The success body as `T`, or the error the answer carries.
fn decode<T: DeserializeOwned>(status: StatusCode, url: &str, text: &str) -> Result<T, Error> {
    if !status.is_success() {
        return Err(api_error(status, url, text));
    }
    serde_json::from_str(text).map_err(|err| Error::Decode {
        url: url.to_owned(),
        status: status.as_u16(),
        cause: format!("{err}; the answer began {:?}", preview(text)),
    })
}

/// An error answer: the API's error shape, or what came instead.
fn api_error(status: StatusCode, url: &str, text: &str) -> Error {
    match serde_json::from_str::<ErrorResponse>(text) {
        Ok(ErrorResponse { error }) => Error::Api {
            status: status.as_u16(),
            body: error,
        },
        Err(_) => Error::Decode {
            url: url.to_owned(),
            status: status.as_u16(),
            cause: format!("not the API's error shape: {:?}", preview(text)),
        },
    }
}

/// The first 200 characters of an answer, for messages.
fn preview(text: &str) -> String {
    text.chars().take(200).collect()
}

/// A request body as JSON.
fn json<B: Serialize>(body: &B) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body).map_err(|err| Error::Setting(format!("request body: {err}")))
}

/// An answer as it came: status, the URL asked, the body text.
struct Answer {
    status: StatusCode,
    url: String,
    text: String,
}

/// `value` as a path segment (percent-encoded).
fn segment(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// A query struct of `tendhost-api` (`HostListQuery`, ...) as pairs: null fields left out,
/// lists as repeated keys.
fn query_pairs<T: Serialize>(query: &T) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(query) else {
        return pairs;
    };
    for (key, value) in fields {
        let values = match value {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        for value in values {
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::String(text) => pairs.push((key.clone(), text)),
                other => pairs.push((key.clone(), other.to_string())),
            }
        }
    }
    pairs
}
