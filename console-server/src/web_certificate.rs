//! The certificate the web console and API present.
//!
//! By default it is the console's own, issued by the built-in CA (staff
//! browsers must be told to trust `ca.pem`). A school may name its own
//! instead in `console.toml`, one issued by its domain CA or a public one,
//! so browsers trust the console with nothing installed:
//!
//! ```toml
//! [web_certificate]
//! chain = "/etc/safeguard/console.school.lan.pem"   # the certificate, then any intermediates
//! key = "/etc/safeguard/console.school.lan.key"
//! ```
//!
//! Laptops are not affected: the agent listener always presents the
//! built-in CA's certificate, which laptops pin at enrollment.
//!
//! At start the files are read and checked: both PEM, the key fits the
//! certificate, and the certificate is valid now. A certificate that will
//! expire within [`WARN_DAYS`] is logged as a warning. A renewed certificate
//! is read at the next start.

use std::path::Path;
use std::sync::Arc;

use protocol::UnixMillis;
use protocol::pki::Issued;
use serde::{Deserialize, Serialize};

/// Days of validity left below which the log warns at start.
pub const WARN_DAYS: i64 = 30;

/// `[web_certificate]` in `console.toml`; both empty: the built-in one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebCertificateSettings {
    /// A PEM file: the certificate first, then its intermediates.
    pub chain: String,
    /// A PEM file holding the private key (PKCS #8, PKCS #1 or SEC1).
    pub key: String,
}

impl WebCertificateSettings {
    /// # Errors
    /// Only one of the two files is named.
    pub fn check(&self) -> Result<(), String> {
        if self.chain.is_empty() != self.key.is_empty() {
            return Err(
                "web_certificate needs both chain and key (or neither, for the built-in certificate)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// The certificate chosen, with the TLS setup built from it.
#[derive(Debug)]
pub struct WebCertificate {
    pub chain_pem: String,
    /// The web listener's TLS setup (built once, here).
    pub config: Arc<rustls::ServerConfig>,
    /// Where it came from, for the log.
    pub source: String,
}

/// The school's certificate if `settings` names one, checked; else the
/// built-in one.
///
/// # Errors
/// A file cannot be read, is not PEM, the key does not fit, or the
/// certificate is not valid now; the message names the file and what to do.
pub fn choose(
    settings: &WebCertificateSettings,
    builtin: &Issued,
    now: UnixMillis,
) -> Result<WebCertificate, String> {
    if settings.chain.is_empty() {
        return Ok(WebCertificate {
            config: protocol::tls::server_config(&builtin.cert_pem, builtin.key_pem.expose())
                .map_err(|e| e.to_string())?,
            chain_pem: builtin.cert_pem.clone(),
            source: "the console's own, from its built-in CA".into(),
        });
    }
    let read = |path: &str, what: &str| {
        std::fs::read_to_string(Path::new(path)).map_err(|e| {
            format!("cannot read the web certificate's {what} {path}: {e}; fix [web_certificate] in console.toml")
        })
    };
    let chain_pem = read(&settings.chain, "chain")?;
    let key_pem = read(&settings.key, "key")?;
    let fix = "; fix the files named in [web_certificate] in console.toml, or remove that section to use the built-in certificate";
    let chain = protocol::tls::certs_from_pem(&chain_pem, &settings.chain)
        .map_err(|e| format!("{e}{fix}"))?;
    let config = protocol::tls::server_config(&chain_pem, &key_pem)
        .map_err(|e| format!("{e} ({} and {}){fix}", settings.chain, settings.key))?;
    let (not_before, not_after) = protocol::pki::validity_of(&chain[0])
        .map_err(|e| format!("{}: {e}{fix}", settings.chain))?;
    let now_s = now.0 / 1000;
    let date = |t: i64| {
        jiff::Timestamp::from_second(t)
            .map(|ts| ts.strftime("%Y-%m-%d").to_string())
            .unwrap_or_else(|_| t.to_string())
    };
    if now_s < not_before {
        return Err(format!(
            "the web certificate {} is not valid until {}{fix}",
            settings.chain,
            date(not_before)
        ));
    }
    if now_s > not_after {
        return Err(format!(
            "the web certificate {} expired on {}; renew it{fix}",
            settings.chain,
            date(not_after)
        ));
    }
    let days_left = (not_after - now_s) / 86_400;
    if days_left < WARN_DAYS {
        tracing::warn!(
            "the web certificate {} expires on {} ({days_left} days); renew it and restart the console",
            settings.chain,
            date(not_after)
        );
    }
    Ok(WebCertificate {
        chain_pem,
        config,
        source: format!("the school's, from {}", settings.chain),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::pki::Authority;

    const YEAR_MS: i64 = 365 * 86_400 * 1000;

    /// A school CA's certificate for `localhost`, written to files.
    fn school_files(dir: &Path) -> (WebCertificateSettings, Issued) {
        let school = Authority::generate("Test School Domain CA").unwrap();
        let issued = school.issue_server(&["localhost"]).unwrap();
        let chain = dir.join("console.pem");
        let key = dir.join("console.key");
        std::fs::write(&chain, &issued.cert_pem).unwrap();
        std::fs::write(&key, issued.key_pem.expose()).unwrap();
        let settings = WebCertificateSettings {
            chain: chain.display().to_string(),
            key: key.display().to_string(),
        };
        (settings, issued)
    }

    fn builtin() -> Issued {
        Authority::generate("built-in")
            .unwrap()
            .issue_server(&[])
            .unwrap()
    }

    #[test]
    fn none_named_is_the_built_in_one() {
        let own = builtin();
        let chosen = choose(&WebCertificateSettings::default(), &own, UnixMillis::now()).unwrap();
        assert_eq!(chosen.chain_pem, own.cert_pem);
        assert!(chosen.source.contains("built-in"));
    }

    #[test]
    fn the_schools_certificate_is_used_when_sound() {
        let dir = tempfile::tempdir().unwrap();
        let (settings, issued) = school_files(dir.path());
        let chosen = choose(&settings, &builtin(), UnixMillis::now()).unwrap();
        assert_eq!(chosen.chain_pem, issued.cert_pem);
        assert!(chosen.source.contains(&settings.chain));
    }

    #[test]
    fn a_wrong_key_an_expired_or_early_certificate_or_a_missing_file_is_refused_with_the_file_named()
     {
        let dir = tempfile::tempdir().unwrap();
        let (settings, _) = school_files(dir.path());
        let own = builtin();

        let now = UnixMillis::now().0;
        let err = choose(&settings, &own, UnixMillis(now + 30 * YEAR_MS)).unwrap_err();
        assert!(
            err.contains("expired on") && err.contains(&settings.chain),
            "{err}"
        );
        let err = choose(&settings, &own, UnixMillis(now - YEAR_MS)).unwrap_err();
        assert!(err.contains("is not valid until"), "{err}");

        let other = dir.path().join("other.key");
        std::fs::write(&other, own.key_pem.expose()).unwrap();
        let wrong_key = WebCertificateSettings {
            key: other.display().to_string(),
            ..settings.clone()
        };
        let err = choose(&wrong_key, &own, UnixMillis(now)).unwrap_err();
        assert!(err.contains("do not fit together"), "{err}");
        assert!(err.contains("other.key"), "{err}");

        let missing = WebCertificateSettings {
            chain: dir.path().join("nope.pem").display().to_string(),
            ..settings.clone()
        };
        let err = choose(&missing, &own, UnixMillis(now)).unwrap_err();
        assert!(
            err.contains("nope.pem") && err.contains("[web_certificate]"),
            "{err}"
        );

        let not_pem = dir.path().join("garbage.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let garbage = WebCertificateSettings {
            chain: not_pem.display().to_string(),
            ..settings
        };
        let err = choose(&garbage, &own, UnixMillis(now)).unwrap_err();
        assert!(err.contains("garbage.pem"), "{err}");
    }

    #[test]
    fn both_files_or_neither() {
        let half = WebCertificateSettings {
            chain: "/etc/safeguard/console.pem".into(),
            key: String::new(),
        };
        assert!(half.check().unwrap_err().contains("both chain and key"));
        assert!(WebCertificateSettings::default().check().is_ok());
    }
}
