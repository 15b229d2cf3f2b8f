//! Reading a PEM certificate chain and key into a `rustls` `CertifiedKey`, refusing what does
//! not parse or does not match, and describing a certificate (`CertInfo`) for `GET /tls`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::Error;

/// What a served certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    /// DNS names and IP addresses, as written.
    pub sans: Vec<String>,
    pub issuer: String,
    /// Upper-case hex, as `openssl x509 -serial` prints it.
    pub serial: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

/// A usable pair and its description.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// Reads `cert_path` (PEM chain, leaf first) and `key_path` (PEM key) and checks that the key
/// belongs to the leaf. Errors name the file at fault.
pub(crate) fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Loaded, Error> {
    let cert_pem = std::fs::read(cert_path)
        .map_err(|err| Error::file(cert_path, format!("cannot read: {err}")))?;
    let key_pem = std::fs::read(key_path)
        .map_err(|err| Error::file(key_path, format!("cannot read: {err}")))?;
    pair_from_pem(&cert_pem, &key_pem, provider).map_err(|(which, reason)| match which {
        Which::Cert => Error::file(cert_path, reason),
        Which::Key => Error::file(key_path, reason),
        Which::Mismatch => Error::file(
            key_path,
            format!("{reason} (the certificate is {})", cert_path.display()),
        ),
    })
}

/// A PEM chain and key held in memory, the reason in words when they are not a usable pair.
pub(crate) fn pair_from_pem_text(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Loaded, String> {
    pair_from_pem(cert_pem, key_pem, provider).map_err(|(_, reason)| reason)
}

enum Which {
    Cert,
    Key,
    Mismatch,
}

fn pair_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Loaded, (Which, String)> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| (Which::Cert, format!("not a PEM certificate chain: {err}")))?;
    let Some(leaf) = chain.first() else {
        return Err((Which::Cert, "no CERTIFICATE block in the file".to_owned()));
    };
    let info = describe(leaf).map_err(|reason| (Which::Cert, reason))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|err| (Which::Key, format!("no usable PEM private key: {err}")))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| (Which::Key, format!("unsupported private key: {err}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err((
                Which::Mismatch,
                "the private key does not match the certificate".to_owned(),
            ));
        }
    }
    Ok(Loaded {
        key: Arc::new(certified),
        info,
    })
}

/// Describes a DER certificate.
pub(crate) fn describe(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|err| format!("not an X.509 certificate: {err}"))?;
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(dns) => sans.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        sans.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        sans,
        issuer: cert.issuer().to_string(),
        serial: cert
            .raw_serial()
            .iter()
            .fold(String::new(), |mut hex, byte| {
                use std::fmt::Write;
                let _ = write!(hex, "{byte:02X}");
                hex
            }),
        not_before: system_time(cert.validity().not_before.timestamp()),
        not_after: system_time(cert.validity().not_after.timestamp()),
    })
}

/// Describes the certificate a server presented (the leaf of `chain`), for clients and tests.
pub fn peer_info(chain: &[CertificateDer<'_>]) -> Result<CertInfo, String> {
    describe(chain.first().ok_or("the server presented no certificate")?)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

fn system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => SystemTime::UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs()),
    }
}

/// Whether `leaf_der` carries a valid signature by the key of `ca_der`.
pub(crate) fn signed_by(leaf_der: &[u8], ca_der: &[u8]) -> bool {
    let (Ok((_, leaf)), Ok((_, ca))) = (
        X509Certificate::from_der(leaf_der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// Public key bits of a DER certificate (to check a CA key against its certificate).
pub(crate) fn public_key_bits(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_matching_pair_loads_and_is_described() {
        let (cert, key) = pair(&["web.example.org", "10.0.0.7"]);
        let loaded = pair_from_pem(cert.as_bytes(), key.as_bytes(), &crate::provider())
            .unwrap_or_else(|_| panic!("pair loads"));
        assert_eq!(loaded.info.sans, ["web.example.org", "10.0.0.7"]);
        assert!(!loaded.info.serial.is_empty());
        assert!(loaded.info.not_after > loaded.info.not_before);
    }

    #[test]
    fn a_foreign_key_is_refused() {
        let (cert, _) = pair(&["a.example"]);
        let (_, other_key) = pair(&["a.example"]);
        let Err((Which::Mismatch, reason)) =
            pair_from_pem(cert.as_bytes(), other_key.as_bytes(), &crate::provider())
        else {
            panic!("a mismatched key must be refused");
        };
        assert!(reason.contains("does not match"), "{reason}");
    }

    #[test]
    fn garbage_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(&["a.example"]);
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, "not pem at all").unwrap();
        std::fs::write(&key_path, key).unwrap();
        let err = load_pair(&cert_path, &key_path, &crate::provider()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: ", cert_path.display())),
            "{err}"
        );
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(
            &key_path,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = load_pair(&cert_path, &key_path, &crate::provider()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: ", key_path.display())),
            "{err}"
        );
        let missing = dir.path().join("missing.pem");
        let err = load_pair(&missing, &key_path, &crate::provider()).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
