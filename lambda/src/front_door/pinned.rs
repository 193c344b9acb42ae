//! HTTPS to relays that present exactly the certificate `ivsctl deploy` made for them. Relays
//! are reached by IP and their certificate is self-signed, so no CA or name check could say
//! anything; the pin is the whole trust: a relay presenting any other certificate is never
//! talked to (the handshake fails before a byte of the request is sent).

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("the relay certificate (RELAY_CERT) is not one PEM certificate: {0}")]
    Pem(String),
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client setup: {0}")]
    Client(#[from] reqwest::Error),
}

#[derive(Debug)]
struct PinnedCertificate {
    pinned: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.pinned.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    // The handshake's signatures are still checked: presenting the pinned certificate proves
    // nothing without its private key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Timeouts of a call to a relay: connecting (a dead relay is skipped quickly), and the whole
/// exchange (a session start gathers ICE candidates first).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub connect: Duration,
    pub total: Duration,
}

/// An HTTP client that talks only to relays presenting `cert_pem`.
pub fn client(cert_pem: &str, deadlines: Deadlines) -> Result<reqwest::Client, PinError> {
    let mut certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes());
    let pinned = match (certs.next(), certs.next()) {
        (Some(Ok(cert)), None) => cert,
        (Some(Err(e)), _) => return Err(PinError::Pem(e.to_string())),
        (None, _) => return Err(PinError::Pem("no certificate found".to_owned())),
        (Some(Ok(_)), Some(_)) => return Err(PinError::Pem("more than one certificate".to_owned())),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = PinnedCertificate { pinned, algorithms: provider.signature_verification_algorithms };
    let config = rustls::ClientConfig::builder_with_provider(provider as Arc<CryptoProvider>)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .connect_timeout(deadlines.connect)
        .timeout(deadlines.total)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}
