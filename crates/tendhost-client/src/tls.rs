//! The TLS settings of a client: rustls with the workspace's one provider (ring), trusting
//! only a CA the caller names (`--cacert`, the daemon's own CA) or, without one, the system's
//! roots through the platform verifier. The same configuration serves HTTPS and WSS.

use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::Error;

/// ring, the workspace's one rustls crypto provider.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration trusting `ca_pem`'s certificates only, or the system's roots.
pub(crate) fn client_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Setting(format!("TLS: {err}")))?;
    let mut config = if let Some(pem) = ca_pem {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert =
                cert.map_err(|err| Error::Setting(format!("CA: not a PEM certificate: {err}")))?;
            roots
                .add(cert)
                .map_err(|err| Error::Setting(format!("CA: not a usable CA certificate: {err}")))?;
        }
        if roots.is_empty() {
            return Err(Error::Setting(
                "CA: no CERTIFICATE block in the PEM".to_owned(),
            ));
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        use rustls_platform_verifier::BuilderVerifierExt;
        builder
            .with_platform_verifier()
            .map_err(|err| Error::Setting(format!("TLS: system roots: {err}")))?
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
