//! Certificates the daemon makes for itself in ACME mode: the temporary self-signed one it
//! serves until the CA has issued the first (so the API is up meanwhile), and the TLS-ALPN-01
//! challenge certificates (RFC 8737: the name, and the digest of the key authorization in a
//! critical `acmeIdentifier` extension).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;
use crate::certs::{Loaded, pair_from_pem_text};

/// Validity of the temporary certificate (a new one is made at each start without an issued
/// certificate).
const TEMPORARY_VALIDITY: Duration = Duration::from_secs(90 * 24 * 3600);

/// Organization of the temporary certificate, so a client that shows it says what it is.
pub(crate) const TEMPORARY_ORGANIZATION: &str = "tendhost temporary certificate (ACME pending)";

/// A self-signed certificate for `domains`, held in memory only.
pub(crate) fn temporary(domains: &[String], provider: &CryptoProvider) -> Result<Loaded, Error> {
    let issue = |err: rcgen::Error| Error::Issue(err.to_string());
    let key = KeyPair::generate().map_err(issue)?;
    let mut params = CertificateParams::new(domains.to_vec()).map_err(issue)?;
    if let Some(first) = domains.first() {
        params
            .distinguished_name
            .push(DnType::CommonName, first.clone());
    }
    params
        .distinguished_name
        .push(DnType::OrganizationName, TEMPORARY_ORGANIZATION);
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + TEMPORARY_VALIDITY).into();
    let cert = params.self_signed(&key).map_err(issue)?;
    pair_from_pem_text(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        provider,
    )
    .map_err(Error::Issue)
}

/// The TLS-ALPN-01 certificate proving control of `name` for `digest` (SHA-256 of the key
/// authorization).
pub(crate) fn alpn_challenge(
    name: &str,
    digest: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, String> {
    let problem = |err: rcgen::Error| format!("cannot make the tls-alpn-01 certificate: {err}");
    let key = KeyPair::generate().map_err(problem)?;
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(problem)?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(problem)?;
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .map_err(|err| format!("cannot load the tls-alpn-01 key: {err}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing_key,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_temporary_certificate_names_the_domains_and_says_what_it_is() {
        let loaded = temporary(
            &["a.example.org".to_owned(), "b.example.org".to_owned()],
            &crate::provider(),
        )
        .unwrap();
        assert_eq!(loaded.info.sans, ["a.example.org", "b.example.org"]);
        assert!(
            loaded.info.issuer.contains(TEMPORARY_ORGANIZATION),
            "{}",
            loaded.info.issuer
        );
        assert_eq!(loaded.info.issuer, loaded.info.subject, "self-signed");
    }

    #[test]
    fn the_alpn_certificate_carries_the_digest_in_a_critical_extension() {
        let digest = [7u8; 32];
        let cert = alpn_challenge("a.example.org", &digest, &crate::provider()).unwrap();
        let der = cert.end_entity_cert().unwrap();
        let (_, parsed) =
            <x509_parser::certificate::X509Certificate<'_> as x509_parser::prelude::FromDer<
                '_,
                _,
            >>::from_der(der)
            .unwrap();
        let ext = parsed
            .extensions()
            .iter()
            .find(|ext| ext.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("acmeIdentifier extension");
        assert!(ext.critical);
        // DER OCTET STRING of 32 bytes: tag 0x04, length 0x20, the digest.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &digest);
    }
}
