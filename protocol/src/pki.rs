//! The console's own certificate authority: made on first run, then used to
//! issue the console's server certificate and every device certificate.
//! Also how tests get certificates without any fixture files.
//!
//! Keys are ECDSA P-256. Private keys travel as [`SecretPem`], whose `Debug`
//! never prints the key.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::ProtocolError;
use crate::tls::CONSOLE_SERVER_NAME;

/// How long the console CA is valid.
const CA_VALIDITY: Duration = Duration::days(20 * 365);
/// How long server and device certificates are valid. Devices are revoked
/// in the console's database, not by expiry, so this is generous.
const LEAF_VALIDITY: Duration = Duration::days(10 * 365);
/// Tolerance for laptops whose clock runs behind the console's.
const BACKDATE: Duration = Duration::days(1);

/// A PEM private key. Its `Debug` is redacted so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(String);

impl SecretPem {
    /// Wraps a PEM private key.
    pub fn new(pem: String) -> Self {
        SecretPem(pem)
    }

    /// The PEM text, for writing to a private file or building a TLS config.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretPem([redacted])")
    }
}

/// A certificate and its private key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: SecretPem,
}

fn pki_err(what: &'static str) -> impl Fn(rcgen::Error) -> ProtocolError {
    move |e| ProtocolError::Tls(format!("{what}: {e}"))
}

/// A certificate authority that can issue server and device certificates.
pub struct Authority {
    cert_pem: String,
    key_pem: SecretPem,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &self.key_pem)
            .finish_non_exhaustive()
    }
}

impl Authority {
    /// Makes a new self-signed CA called `name` (the school's name, say).
    ///
    /// # Errors
    /// [`ProtocolError::Tls`] if key generation or signing fails.
    pub fn generate(name: &str) -> Result<Self, ProtocolError> {
        let key = KeyPair::generate().map_err(pki_err("cannot generate the CA key"))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params
            .self_signed(&key)
            .map_err(pki_err("cannot self-sign the CA certificate"))?;
        let key_pem = SecretPem::new(key.serialize_pem());
        Ok(Authority {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA saved with [`Authority::cert_pem`] and [`Authority::key_pem`].
    ///
    /// # Errors
    /// [`ProtocolError::Tls`] when either PEM is unusable.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, ProtocolError> {
        let key = KeyPair::from_pem(key_pem).map_err(pki_err("the CA key is unusable"))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(pki_err("the CA certificate is unusable"))?;
        Ok(Authority {
            cert_pem: cert_pem.to_owned(),
            key_pem: SecretPem::new(key_pem.to_owned()),
            issuer,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PEM.
    pub fn key_pem(&self) -> &SecretPem {
        &self.key_pem
    }

    /// Issues a server certificate for [`CONSOLE_SERVER_NAME`] and the extra
    /// `names` (host names or IP addresses). The returned `cert_pem` is the
    /// chain: the server certificate followed by this CA, as enrolling agents
    /// need to see the CA they pin.
    ///
    /// # Errors
    /// [`ProtocolError::Tls`] when a name is invalid or signing fails.
    pub fn issue_server(&self, names: &[&str]) -> Result<Issued, ProtocolError> {
        let mut all = vec![CONSOLE_SERVER_NAME.to_owned()];
        all.extend(names.iter().map(|n| (*n).to_owned()));
        let mut params = CertificateParams::new(all).map_err(pki_err("invalid server name"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, CONSOLE_SERVER_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let mut issued = self.leaf(params, "server")?;
        issued.cert_pem.push_str(&self.cert_pem);
        Ok(issued)
    }

    /// Issues a device (client) certificate whose common name is `device_id`,
    /// with a fresh key. Used by tests and simulators; real agents send a CSR.
    ///
    /// # Errors
    /// [`ProtocolError::Tls`] when signing fails.
    pub fn issue_client(&self, device_id: &str) -> Result<Issued, ProtocolError> {
        self.leaf(client_params(device_id), "device")
    }

    /// Signs a device's certificate signing request. Whatever names and
    /// usages the request asks for are ignored: the certificate gets common
    /// name `device_id`, client authentication only, and this CA's validity.
    ///
    /// # Errors
    /// [`ProtocolError::Tls`] when the request is malformed, its signature
    /// does not verify, or signing fails.
    pub fn sign_csr(&self, csr_pem: &str, device_id: &str) -> Result<String, ProtocolError> {
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(pki_err("the certificate signing request is invalid"))?;
        csr.params = client_params(device_id);
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(pki_err("cannot sign the device certificate"))?;
        Ok(cert.pem())
    }

    fn leaf(
        &self,
        mut params: CertificateParams,
        what: &'static str,
    ) -> Result<Issued, ProtocolError> {
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_VALIDITY;
        let key = KeyPair::generate().map_err(pki_err("cannot generate a key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| ProtocolError::Tls(format!("cannot sign the {what} certificate: {e}")))?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: SecretPem::new(key.serialize_pem()),
        })
    }
}

fn client_params(device_id: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, device_id);
    params.subject_alt_names = Vec::<SanType>::new();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    params
}

/// A new device key and a certificate signing request for it (the agent's
/// half of enrollment).
///
/// # Errors
/// [`ProtocolError::Tls`] if key generation or encoding fails.
pub fn device_key_and_csr() -> Result<(SecretPem, String), ProtocolError> {
    let key = KeyPair::generate().map_err(pki_err("cannot generate the device key"))?;
    let csr = CertificateParams::default()
        .serialize_request(&key)
        .and_then(|r| r.pem())
        .map_err(pki_err("cannot build the certificate signing request"))?;
    Ok((SecretPem::new(key.serialize_pem()), csr))
}

/// The validity of a certificate: not before and not after, in seconds
/// since the Unix epoch.
///
/// # Errors
/// [`ProtocolError::Tls`] if the certificate cannot be parsed.
pub fn validity_of(cert_der: &[u8]) -> Result<(i64, i64), ProtocolError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| ProtocolError::Tls(format!("the certificate cannot be parsed: {e}")))?;
    let v = cert.validity();
    Ok((v.not_before.timestamp(), v.not_after.timestamp()))
}

/// The device id a device certificate was issued for: its subject's common
/// name, as [`Authority::issue_client`] and [`Authority::sign_csr`] write it.
///
/// # Errors
/// [`ProtocolError::Tls`] if the certificate cannot be parsed or names no
/// common name.
pub fn device_id_of(cert_der: &[u8]) -> Result<String, ProtocolError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| ProtocolError::Tls(format!("the device certificate cannot be parsed: {e}")))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| {
            ProtocolError::Tls("the device certificate names no device (no common name)".into())
        })?;
    Ok(cn.to_owned())
}
