//! The rustls configuration both sides share.
//!
//! Device connections are mutual TLS: the console presents a certificate
//! for [`CONSOLE_SERVER_NAME`] issued by its own CA, and accepts only client
//! certificates issued by that same CA. The agent verifies the console
//! against the CA it pinned at enrollment, never against the system's roots.
//!
//! Agents verify the fixed name [`CONSOLE_SERVER_NAME`] whatever address
//! they dial: the console CA is private to one school and issues only
//! certificates the console made, so the name carries no meaning beyond
//! "this CA's console", and laptops can reach it by IP, by DNS, or through
//! NAT without reissuing certificates.
//!
//! Enrollment happens before the agent has a certificate, so it runs over
//! server-authenticated TLS, the agent pinning the CA by the SHA-256
//! fingerprint carried in its one-time token ([`client_config_pinned`]).
//!
//! The crypto provider is `ring` throughout (fast to build, no cmake).

use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::ProtocolError;

/// The DNS name in the console's agent-listener certificate, and the name
/// agents verify.
pub const CONSOLE_SERVER_NAME: &str = "console.safeguard.internal";

/// The crypto provider both sides use.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server name agents check, as rustls wants it.
pub fn console_server_name() -> ServerName<'static> {
    ServerName::try_from(CONSOLE_SERVER_NAME).expect("CONSOLE_SERVER_NAME is a valid DNS name")
}

/// Every certificate in a PEM text, in order.
///
/// # Errors
/// [`ProtocolError::Tls`] when the text holds no certificate or a bad one.
pub fn certs_from_pem(
    pem: &str,
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, ProtocolError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ProtocolError::Tls(format!("{what} is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(ProtocolError::Tls(format!(
            "{what} holds no certificate (expected a -----BEGIN CERTIFICATE----- block)"
        )));
    }
    Ok(certs)
}

/// The private key in a PEM text (PKCS #8, PKCS #1 or SEC1).
///
/// # Errors
/// [`ProtocolError::Tls`] when the text holds no usable key.
pub fn key_from_pem(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, ProtocolError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| ProtocolError::Tls(format!("{what} holds no usable private key: {e}")))
}

/// SHA-256 of a DER certificate, as lowercase hex: how a CA is pinned.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of the first certificate in a PEM text.
///
/// # Errors
/// As [`certs_from_pem`].
pub fn pem_fingerprint(pem: &str) -> Result<String, ProtocolError> {
    Ok(fingerprint(&certs_from_pem(pem, "certificate")?[0]))
}

fn roots(ca_pem: &str) -> Result<RootCertStore, ProtocolError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_pem(ca_pem, "the CA certificate")? {
        roots
            .add(cert)
            .map_err(|e| ProtocolError::Tls(format!("the CA certificate is unusable: {e}")))?;
    }
    Ok(roots)
}

fn tls_err(what: &'static str) -> impl Fn(rustls::Error) -> ProtocolError {
    move |e| ProtocolError::Tls(format!("{what}: {e}"))
}

/// The console's agent listener: presents `chain_pem`/`key_pem` and demands
/// a client certificate issued by `ca_pem`.
///
/// # Errors
/// [`ProtocolError::Tls`] when any PEM is unusable or the key does not
/// match the certificate.
pub fn server_config_mtls(
    ca_pem: &str,
    chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, ProtocolError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider())
            .build()
            .map_err(|e| ProtocolError::Tls(format!("cannot build the client verifier: {e}")))?;
    server_config_verifying(verifier, chain_pem, key_pem)
}

/// A server configuration that checks client certificates with `verifier`.
fn server_config_verifying(
    verifier: Arc<dyn ClientCertVerifier>,
    chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, ProtocolError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs_from_pem(chain_pem, "the server certificate")?,
            key_from_pem(key_pem, "the server key")?,
        )
        .map_err(tls_err(
            "the server certificate and key do not fit together",
        ))?;
    Ok(Arc::new(config))
}

/// Decides whether a device certificate that chains to the console CA may
/// still connect: given the device id it names, `Some(reason)` refuses it
/// (revoked, say; the laptop gets a `certificate_revoked` alert, the reason
/// is for the console's log). Called during the TLS handshake, so it must
/// be quick.
pub type DeviceGate = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The console's agent listener: clients that present a certificate must
/// chain to `ca_pem` and pass `gate`, or the handshake fails; clients with no
/// certificate are let through the handshake so that they can enroll, and the
/// console must refuse them anything but an [`crate::EnrollRequest`] (check
/// the peer certificates after the handshake).
///
/// # Errors
/// [`ProtocolError::Tls`] if a PEM input is unusable or the key does not fit
/// the certificate.
pub fn server_config_devices(
    ca_pem: &str,
    chain_pem: &str,
    key_pem: &str,
    gate: DeviceGate,
) -> Result<Arc<ServerConfig>, ProtocolError> {
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_pem)?), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ProtocolError::Tls(format!("cannot build the client verifier: {e}")))?;
    let verifier = Arc::new(GatedClientVerifier { inner, gate });
    server_config_verifying(verifier, chain_pem, key_pem)
}

/// WebPKI client verification, then the console's own say on the device.
struct GatedClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    gate: DeviceGate,
}

impl std::fmt::Debug for GatedClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatedClientVerifier")
    }
}

impl ClientCertVerifier for GatedClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let device = crate::pki::device_id_of(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        if (self.gate)(&device).is_some() {
            // Sent to the laptop as a `certificate_revoked` alert; the gate
            // logs the console's reason.
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Revoked,
            ));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server-authenticated listener (enrollment): presents `chain_pem`/`key_pem`
/// and asks for no client certificate.
///
/// # Errors
/// As [`server_config_mtls`].
pub fn server_config(chain_pem: &str, key_pem: &str) -> Result<Arc<ServerConfig>, ProtocolError> {
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?
        .with_no_client_auth()
        .with_single_cert(
            certs_from_pem(chain_pem, "the server certificate")?,
            key_from_pem(key_pem, "the server key")?,
        )
        .map_err(tls_err(
            "the server certificate and key do not fit together",
        ))?;
    Ok(Arc::new(config))
}

/// The agent's device connection: trusts only `ca_pem` and presents the
/// device certificate `chain_pem`/`key_pem`.
///
/// # Errors
/// As [`server_config_mtls`].
pub fn client_config_mtls(
    ca_pem: &str,
    chain_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, ProtocolError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?
        .with_root_certificates(roots(ca_pem)?)
        .with_client_auth_cert(
            certs_from_pem(chain_pem, "the device certificate")?,
            key_from_pem(key_pem, "the device key")?,
        )
        .map_err(tls_err(
            "the device certificate and key do not fit together",
        ))?;
    Ok(Arc::new(config))
}

/// A client that trusts only `ca_pem` and presents no certificate (tools,
/// and tests of a listener's refusal of certificate-less clients).
///
/// # Errors
/// As [`server_config_mtls`].
pub fn client_config(ca_pem: &str) -> Result<Arc<ClientConfig>, ProtocolError> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The agent's enrollment connection: trusts a server whose chain includes a
/// CA with SHA-256 fingerprint `ca_fingerprint` (from the enrollment token)
/// and whose certificate that CA issued for [`CONSOLE_SERVER_NAME`].
///
/// # Errors
/// [`ProtocolError::Tls`] when the fingerprint is not 64 hex digits.
pub fn client_config_pinned(ca_fingerprint: &str) -> Result<Arc<ClientConfig>, ProtocolError> {
    let pin = ca_fingerprint.to_ascii_lowercase();
    if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ProtocolError::Tls(format!(
            "the CA fingerprint {ca_fingerprint:?} is not 64 hexadecimal digits; copy the enrollment token again"
        )));
    }
    let verifier = Arc::new(PinnedCaVerifier {
        pin,
        provider: provider(),
    });
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err("protocol versions"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Verifies a server chain against the one CA, sent in that chain, whose
/// fingerprint was pinned out of band. Everything after picking the root
/// is the ordinary WebPKI verification.
#[derive(Debug)]
struct PinnedCaVerifier {
    pin: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| fingerprint(c) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the console did not present the CA pinned in the enrollment token; \
                     the token is for another console, or the connection is intercepted"
                        .into(),
                )
            })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
