//! The answers to the challenges of the order in progress: HTTP-01 key authorizations by
//! token (served by the daemon's HTTP-01 listener) and TLS-ALPN-01 certificates by name (served
//! by the resolver to handshakes offering `acme-tls/1`). Cleared after each attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::sign::CertifiedKey;

#[derive(Default)]
pub(crate) struct Answers {
    http01: Mutex<HashMap<String, String>>,
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl Answers {
    pub(crate) fn add_http01(&self, token: &str, key_authorization: &str) {
        self.http01
            .lock()
            .expect("acme answers lock")
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    pub(crate) fn add_alpn(&self, name: &str, cert: Arc<CertifiedKey>) {
        self.alpn
            .lock()
            .expect("acme answers lock")
            .insert(name.to_ascii_lowercase(), cert);
    }

    /// The key authorization for an HTTP-01 token, while its order is in progress.
    pub(crate) fn http01(&self, token: &str) -> Option<String> {
        self.http01
            .lock()
            .expect("acme answers lock")
            .get(token)
            .cloned()
    }

    /// The TLS-ALPN-01 certificate for `name`, while its order is in progress.
    pub(crate) fn alpn(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.alpn
            .lock()
            .expect("acme answers lock")
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    pub(crate) fn clear(&self) {
        self.http01.lock().expect("acme answers lock").clear();
        self.alpn.lock().expect("acme answers lock").clear();
    }
}
