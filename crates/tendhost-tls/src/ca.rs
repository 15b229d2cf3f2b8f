//! The daemon's own CA (`self-signed` mode): created once under `<data_dir>/tls/` (key 0600,
//! valid ten years), loaded on later starts, and used to issue short-lived server
//! certificates. Serial numbers are random.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use ring::rand::SecureRandom;

use crate::fsio::{self, CERT_MODE, KEY_MODE};
use crate::{Error, San};

/// How long the CA is valid.
pub(crate) const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How far back a certificate's `not_before` is set, for clients whose clock is a bit behind.
const BACKDATE: Duration = Duration::from_secs(60);

/// Files under the TLS directory.
pub(crate) struct Paths {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl Paths {
    pub(crate) fn new(dir: &Path) -> Paths {
        Paths {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca.key"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// A loaded CA.
pub(crate) struct Ca {
    pub pem: String,
    pub der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Loads the CA from `paths`, or creates it when neither file exists. One file without
    /// the other is an error: a CA is never replaced silently.
    pub(crate) fn load_or_create(paths: &Paths) -> Result<(Ca, bool), Error> {
        match (paths.ca_cert.exists(), paths.ca_key.exists()) {
            (true, true) => Ca::load(paths).map(|ca| (ca, false)),
            (false, false) => Ca::create(paths).map(|ca| (ca, true)),
            (true, false) => Err(Error::file(
                &paths.ca_key,
                format!(
                    "missing, but the CA certificate {} exists; restore the key or remove both to make a new CA",
                    paths.ca_cert.display()
                ),
            )),
            (false, true) => Err(Error::file(
                &paths.ca_cert,
                format!(
                    "missing, but the CA key {} exists; restore the certificate or remove both to make a new CA",
                    paths.ca_key.display()
                ),
            )),
        }
    }

    fn load(paths: &Paths) -> Result<Ca, Error> {
        let read = |path: &Path| {
            std::fs::read_to_string(path)
                .map_err(|err| Error::file(path, format!("cannot read: {err}")))
        };
        fsio::restrict_key(&paths.ca_key)
            .map_err(|err| Error::file(&paths.ca_key, format!("cannot make it 0600: {err}")))?;
        let pem = read(&paths.ca_cert)?;
        let key = KeyPair::from_pem(&read(&paths.ca_key)?)
            .map_err(|err| Error::file(&paths.ca_key, format!("not a usable PEM key: {err}")))?;
        let der = pem_der(&pem)
            .ok_or_else(|| Error::file(&paths.ca_cert, "no CERTIFICATE block in the file"))?;
        if crate::certs::public_key_bits(&der).as_deref() != Some(key.public_key_raw()) {
            return Err(Error::file(
                &paths.ca_key,
                format!(
                    "does not match the CA certificate {}",
                    paths.ca_cert.display()
                ),
            ));
        }
        let issuer = Issuer::from_ca_cert_pem(&pem, key).map_err(|err| {
            Error::file(
                &paths.ca_cert,
                format!("not a usable CA certificate: {err}"),
            )
        })?;
        Ok(Ca { pem, der, issuer })
    }

    fn create(paths: &Paths) -> Result<Ca, Error> {
        let key = KeyPair::generate().map_err(issue_error)?;
        let mut params = CertificateParams::default();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("tendhost CA ({})", host.trim()));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "tendhost");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + CA_VALIDITY).into();
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key).map_err(issue_error)?;
        let write = |path: &Path, contents: &str, mode| {
            fsio::write_atomic(path, contents.as_bytes(), mode)
                .map_err(|err| Error::file(path, format!("cannot write: {err}")))
        };
        // The key first: a crash in between leaves a key without a certificate, which the
        // next start reports instead of making a second CA.
        write(&paths.ca_key, &key.serialize_pem(), KEY_MODE)?;
        write(&paths.ca_cert, &cert.pem(), CERT_MODE)?;
        Ok(Ca {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// SHA-256 of the CA certificate, as upper-case hex pairs joined by `:`.
    pub(crate) fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.der);
        digest
            .as_ref()
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Issues a server certificate for `names`, valid `lifetime` from now: `(cert_pem,
    /// key_pem)`.
    pub(crate) fn issue(
        &self,
        names: &[San],
        lifetime: Duration,
    ) -> Result<(String, String), Error> {
        let key = KeyPair::generate().map_err(issue_error)?;
        let mut params = CertificateParams::default();
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.to_string());
        }
        params.subject_alt_names = names
            .iter()
            .map(|name| match name {
                San::Dns(dns) => dns
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(issue_error),
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            })
            .collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = SystemTime::now();
        params.not_before = (now - BACKDATE).into();
        params.not_after = (now + lifetime).into();
        params.serial_number = Some(random_serial()?);
        let cert = params.signed_by(&key, &self.issuer).map_err(issue_error)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()?
        .ok()
        .map(|der| der.to_vec())
}

/// 16 random bytes, the top bit clear so the DER integer stays positive.
fn random_serial() -> Result<SerialNumber, Error> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Issue("no randomness for a serial number".to_owned()))?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn issue_error(err: impl std::fmt::Display) -> Error {
    Error::Issue(err.to_string())
}
