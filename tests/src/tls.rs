//! TLS clients for the tests and benches: rustls with the workspace's one provider (ring) and
//! only the roots a test names. `TENDHOST_CACERT` (a PEM file) adds a CA to the shared HTTP
//! client (`wait::http_client`), so the suite and the benches can run against an HTTPS daemon.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use tendhost_tls::CertInfo;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Makes ring the process's default rustls provider, so that even a client built without the
/// harness (`reqwest::Client::new()`) has one; called by the harness's entry points. The
/// workspace builds no other provider, so nothing else could be installed.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client whose only root is `ca_pem`.
pub fn client_with_ca(ca_pem: &[u8]) -> reqwest::Client {
    let config = tendhost_tls::client_config(ca_pem)
        .unwrap_or_else(|err| panic!("the test CA does not load: {err}"));
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .timeout(crate::wait::WAIT_DEADLINE)
        .build()
        .expect("build the HTTPS client")
}

/// The roots the shared client trusts: the CA in `TENDHOST_CACERT`, else none (plain HTTP only).
pub(crate) fn default_client_config() -> rustls::ClientConfig {
    install_provider();
    match std::env::var_os("TENDHOST_CACERT") {
        Some(path) => {
            let pem = std::fs::read(&path).unwrap_or_else(|err| {
                panic!(
                    "TENDHOST_CACERT={}: cannot read: {err}",
                    path.to_string_lossy()
                )
            });
            tendhost_tls::client_config(&pem)
                .unwrap_or_else(|err| panic!("TENDHOST_CACERT={}: {err}", path.to_string_lossy()))
        }
        None => rustls::ClientConfig::builder_with_provider(tendhost_tls::provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    }
}

/// A TLS connection to `addr` verifying the server as `name` against `ca_pem` only.
pub async fn connect(
    addr: SocketAddr,
    name: &str,
    ca_pem: &[u8],
) -> Result<TlsStream<TcpStream>, String> {
    let config = tendhost_tls::client_config(ca_pem)?;
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|err| format!("bad server name: {err}"))?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|err| format!("connect {addr}: {err}"))?;
    TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|err| err.to_string())
}

/// A client configuration that accepts any server certificate: only to look at what a server
/// presents before anything can verify it (the temporary certificate of ACME mode).
pub fn unverified_config() -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(tendhost_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// Handshakes as `name` without verifying, and describes the certificate presented.
pub async fn unverified_cert(addr: SocketAddr, name: &str) -> Result<CertInfo, String> {
    let server_name =
        ServerName::try_from(name.to_owned()).map_err(|err| format!("bad server name: {err}"))?;
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|err| format!("connect {addr}: {err}"))?;
    let stream = TlsConnector::from(Arc::new(unverified_config()))
        .connect(server_name, tcp)
        .await
        .map_err(|err| err.to_string())?;
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no peer certificate")?;
    tendhost_tls::peer_info(chain)
}

#[derive(Debug)]
struct AcceptAnything;

impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &tendhost_tls::provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &tendhost_tls::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        tendhost_tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Handshakes as `name` and describes the certificate the server presented.
pub async fn served_cert(addr: SocketAddr, name: &str, ca_pem: &[u8]) -> Result<CertInfo, String> {
    let stream = connect(addr, name, ca_pem).await?;
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no peer certificate")?;
    tendhost_tls::peer_info(chain)
}
