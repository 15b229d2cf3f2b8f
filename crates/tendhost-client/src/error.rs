//! The client's one error type: an API error answer (its code and message), a daemon that
//! cannot be reached (naming the URL and the cause), a timeout, an answer that is not what the
//! route promises, or a client setting that cannot be used.

use std::time::Duration;

use tendhost_api::ErrorBody;

/// What went wrong with a request or the event stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon answered with its error shape (`{"error": {code, message, details}}`).
    #[error("{} ({status}): {}", body.code, body.message)]
    Api { status: u16, body: ErrorBody },
    /// No connection: refused, no route, DNS, TLS handshake.
    #[error("cannot reach {url}: {cause}")]
    Connect { url: String, cause: String },
    /// Connected, but no (complete) answer in time.
    #[error("{url}: no answer within {}s", timeout.as_secs())]
    Timeout { url: String, timeout: Duration },
    /// The answer is not what the route answers (not JSON, another shape, an unexpected status).
    #[error("{url}: unexpected answer (HTTP {status}): {cause}")]
    Decode {
        url: String,
        status: u16,
        cause: String,
    },
    /// A client setting cannot be used (a bad URL, a CA file without a certificate).
    #[error("{0}")]
    Setting(String),
}

impl Error {
    /// The daemon refused the credentials (401, 403, 429 from the limiter).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::Api {
                status: 401 | 403 | 429,
                ..
            }
        )
    }

    /// The daemon could not be reached or did not answer.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Connect { .. } | Error::Timeout { .. })
    }

    /// The API error code, when the daemon answered one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }

    /// The HTTP status of an API error or an unexpected answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::Decode { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Every message in an error's source chain, joined: reqwest's own message alone ("error
/// sending request") does not say why.
pub(crate) fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut messages = vec![err.to_string()];
    let mut source = err.source();
    while let Some(next) = source {
        let message = next.to_string();
        if !messages.iter().any(|seen| seen.contains(&message)) {
            messages.push(message);
        }
        source = next.source();
    }
    messages.join(": ")
}
