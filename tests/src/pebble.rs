//! Debian's `pebble` (an ACME test server) as a real process on loopback, for the ACME tests.
//!
//! Its listener certificate is made here (pebble ships none): a small CA whose certificate is
//! what the daemon trusts as `ca_roots`. Real validation (no `PEBBLE_VA_ALWAYS_VALID`), no
//! sleeps, no rejected nonces, no reused authorizations. Its validation authority dials the
//! `http_port` / `tls_port` given here at the first address the test name resolves to
//! (`etc_hosts`). Its state is in memory: [`Pebble::start`] after [`Pebble::stop`] is a new CA
//! (a new root at the management `/roots/0`) that has forgotten every account. Every line it
//! prints is kept ([`Pebble::n_logged`]).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tempfile::TempDir;

use crate::wait;

/// A pebble instance's settings and, while it runs, its process.
pub struct Pebble {
    dir: TempDir,
    /// The ACME listener (`https://{acme}/dir`).
    pub acme: SocketAddr,
    /// The management listener (`/roots/0`).
    pub management: SocketAddr,
    child: Option<Child>,
    /// Lines of the current instance.
    log: Arc<Mutex<Vec<String>>>,
    listener_ca: Vec<u8>,
}

/// A port that was free a moment ago (bound to port 0 and released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

impl Pebble {
    /// Prepares an instance (ports, listener certificate, config) whose validation dials
    /// `http_port` (HTTP-01) and `tls_port` (TLS-ALPN-01), issuing certificates valid
    /// `validity`. Not started yet.
    pub fn new(http_port: u16, tls_port: u16, validity: Duration) -> Pebble {
        let dir = tempfile::tempdir().expect("temp dir");
        let acme = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let (ca_pem, cert_pem, key_pem) = listener_certificate();
        std::fs::write(dir.path().join("listener-ca.pem"), &ca_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), key_pem).unwrap();
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": acme.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": dir.path().join("cert.pem"),
                "privateKey": dir.path().join("key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity.as_secs(),
            }
        });
        std::fs::write(dir.path().join("pebble.json"), config.to_string()).unwrap();
        Pebble {
            dir,
            acme,
            management,
            child: None,
            log: Arc::default(),
            listener_ca: ca_pem.into_bytes(),
        }
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://{}/dir", self.acme)
    }

    /// The PEM file the daemon trusts for pebble's HTTPS (`ca_roots`).
    pub fn listener_ca_path(&self) -> PathBuf {
        self.dir.path().join("listener-ca.pem")
    }

    /// Starts a new instance and waits until its directory is served.
    ///
    /// # Panics
    /// When `pebble` is missing (Debian package `pebble`; `scripts/test` installs it) or does
    /// not come up within [`wait::WAIT_DEADLINE`].
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "pebble is already running");
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(self.dir.path().join("pebble.json"))
            .current_dir(self.dir.path())
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pebble runs (Debian package pebble; scripts/test installs it)");
        self.log = Arc::default();
        for out in [
            child
                .stdout
                .take()
                .map(|out| Box::new(out) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|err| Box::new(err) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = Arc::clone(&self.log);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    log.lock().unwrap().push(line);
                }
            });
        }
        self.child = Some(child);
        wait::until_blocking("pebble serving its ACME directory", || {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("pebble exited ({status}); its log:\n{}", self.log_text());
            }
            if self.n_logged("ACME directory available") > 0 {
                Ok(())
            } else {
                Err(self.log_text())
            }
        });
    }

    /// Stops the instance (its accounts, orders and CA are gone with it).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many lines of the current instance contain `needle` (e.g. `"POST /order-plz"`).
    pub fn n_logged(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|line| line.contains(needle))
            .count()
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The current instance's root (PEM): what a client trusts for the certificates it issues.
    pub async fn root(&self) -> Vec<u8> {
        let client = crate::tls::client_with_ca(&self.listener_ca);
        let url = format!("https://{}/roots/0", self.management);
        let response = client
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: {err}"));
        assert_eq!(response.status(), 200, "GET {url}");
        response.bytes().await.expect("pebble's root").to_vec()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `(ca_pem, cert_pem, key_pem)`: a CA and, signed by it, pebble's listener certificate for
/// `127.0.0.1` and `localhost`, valid a day.
fn listener_certificate() -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "pebble listener test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let now = std::time::SystemTime::now();
    ca_params.not_before = (now - Duration::from_secs(60)).into();
    ca_params.not_after = (now + Duration::from_secs(24 * 3600)).into();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + Duration::from_secs(24 * 3600)).into();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
