//! Enrollment: the one-time token an IT technician carries from the console
//! to a laptop, and the exchange that turns it into a device certificate.
//!
//! The token is self-contained: `SGE1.` then base64url (no padding) of a
//! JSON object `{"a": console address, "f": CA fingerprint (SHA-256, hex),
//! "s": secret, "e": expiry in Unix ms}`. The console stores only a hash of
//! the secret. The laptop connects with server-authenticated TLS, pinning
//! the CA by its fingerprint, sends its CSR and the secret, and receives a
//! certificate for a device id the console chose.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::pki::{SecretPem, device_key_and_csr};
use crate::{
    Connection, EnrollRequest, EnrollResponse, PROTOCOL_VERSION, ProtocolError, UnixMillis, tls,
};

const PREFIX: &str = "SGE1.";

/// What an enrollment token says.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollToken {
    /// The console's agent listener, `HOST:PORT`.
    #[serde(rename = "a")]
    pub address: String,
    /// SHA-256 of the console CA certificate (DER), lowercase hex.
    #[serde(rename = "f")]
    pub ca_fingerprint: String,
    /// The one-time secret.
    #[serde(rename = "s")]
    pub secret: String,
    /// When the console stops accepting it.
    #[serde(rename = "e")]
    pub expires: i64,
}

impl std::fmt::Debug for EnrollToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollToken")
            .field("address", &self.address)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("secret", &"[redacted]")
            .field("expires", &self.expires)
            .finish()
    }
}

impl EnrollToken {
    /// The printable token.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("a token serialises");
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(json))
    }

    /// Reads a token as printed by `console-server enroll-token`.
    ///
    /// # Errors
    /// [`ProtocolError::BadToken`] saying what is wrong with it.
    pub fn decode(text: &str) -> Result<Self, ProtocolError> {
        let text = text.trim();
        let body = text.strip_prefix(PREFIX).ok_or_else(|| {
            ProtocolError::BadToken(format!(
                "it does not start with {PREFIX:?}; copy the whole last line printed by `console-server enroll-token`"
            ))
        })?;
        let json = URL_SAFE_NO_PAD.decode(body).map_err(|e| {
            ProtocolError::BadToken(format!("it is damaged ({e}); copy it again, whole"))
        })?;
        let token: EnrollToken = serde_json::from_slice(&json).map_err(|e| {
            ProtocolError::BadToken(format!("it is damaged ({e}); copy it again, whole"))
        })?;
        if token.ca_fingerprint.len() != 64
            || !token.ca_fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(ProtocolError::BadToken(
                "its CA fingerprint is not 64 hexadecimal digits".into(),
            ));
        }
        Ok(token)
    }

    /// The hash the console stores instead of the secret.
    pub fn secret_hash(secret: &str) -> String {
        tls::fingerprint(secret.as_bytes())
    }

    /// Whether the token has expired at `now` (the console decides; this
    /// lets the agent say so before connecting).
    pub fn expired_at(&self, now: UnixMillis) -> bool {
        now.0 >= self.expires
    }
}

/// What a laptop holds after enrolling.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub device_id: uuid::Uuid,
    pub certificate_pem: String,
    pub key_pem: SecretPem,
    pub ca_pem: String,
}

/// What the laptop says about itself when enrolling.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
}

/// Enrolls with the console named in `token`: makes a device key and CSR,
/// connects pinning the token's CA fingerprint, and returns the signed
/// certificate.
///
/// # Errors
/// [`ProtocolError::Refused`] with the console's reason (expired, used or
/// unknown token), [`ProtocolError::Tls`] if the console is not the one the
/// token names, or a network error.
pub async fn enroll(token: &EnrollToken, facts: &DeviceFacts) -> Result<Enrolled, ProtocolError> {
    let (key_pem, csr_pem) = device_key_and_csr()?;
    let connector = TlsConnector::from(tls::client_config_pinned(&token.ca_fingerprint)?);
    let tcp = TcpStream::connect(&token.address).await?;
    let stream = connector
        .connect(tls::console_server_name(), tcp)
        .await
        .map_err(|e| {
            ProtocolError::Tls(format!(
                "cannot establish a trusted connection to the console at {}: {e}",
                token.address
            ))
        })?;
    let mut conn = Connection::new(stream);
    conn.send(&EnrollRequest {
        protocol_version: PROTOCOL_VERSION,
        token_secret: token.secret.clone(),
        csr_pem,
        hostname: facts.hostname.clone(),
        os: facts.os.clone(),
        agent_version: facts.agent_version.clone(),
    })
    .await?;
    match conn
        .recv::<EnrollResponse>("waiting for the console's enrollment answer")
        .await?
    {
        EnrollResponse::Enrolled {
            device_id,
            certificate_pem,
            ca_pem,
        } => {
            if tls::pem_fingerprint(&ca_pem)? != token.ca_fingerprint.to_ascii_lowercase() {
                return Err(ProtocolError::Tls(
                    "the console sent a CA other than the one the token pins".into(),
                ));
            }
            let _ = conn.shutdown().await;
            Ok(Enrolled {
                device_id,
                certificate_pem,
                key_pem,
                ca_pem,
            })
        }
        EnrollResponse::Refused { reason } => Err(ProtocolError::Refused(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> EnrollToken {
        EnrollToken {
            address: "console.school.example:9443".into(),
            ca_fingerprint: "ab".repeat(32),
            secret: "s3cret".into(),
            expires: 1_900_000_000_000,
        }
    }

    #[test]
    fn round_trips() {
        let t = token();
        let text = t.encode();
        assert!(text.starts_with("SGE1."));
        assert_eq!(EnrollToken::decode(&format!("  {text}\n")).unwrap(), t);
        assert!(!format!("{t:?}").contains("s3cret"));
    }

    #[test]
    fn damaged_tokens_say_why() {
        let text = token().encode();
        for (bad, says) in [
            ("hello", "does not start"),
            (&text[..text.len() - 5], "damaged"),
            ("SGE1.!!!!", "damaged"),
        ] {
            let err = EnrollToken::decode(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let mut t = token();
        t.ca_fingerprint = "xyz".into();
        let err = EnrollToken::decode(&t.encode()).unwrap_err().to_string();
        assert!(err.contains("fingerprint"), "{err}");
    }
}
