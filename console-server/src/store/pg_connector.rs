//! How a console reaches its PostgreSQL database: the URL parsed, and TLS
//! when the URL asks for it.
//!
//! The URL follows libpq's: `sslmode=require` (in the query of a
//! `postgres://` URL, or as a `key=value` pair) asks for TLS, and
//! `sslrootcert=/path/ca.pem` names the CA that signed the database's
//! certificate. The certificate is always verified, against that CA and the
//! host's name: a console never sends its password over TLS to a server it
//! cannot tell from an impostor, so `sslmode=require` without `sslrootcert`
//! is refused.

use std::path::PathBuf;
use std::sync::Arc;

use postgres::Client;
use postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What it takes to open one connection.
#[derive(Clone)]
pub struct Connector {
    config: postgres::Config,
    tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// `url` without its `sslrootcert` (which the client library does not
/// take), and that path.
fn split_root_cert(url: &str) -> (String, Option<PathBuf>) {
    if let Some((base, query)) = url.split_once('?') {
        let mut root = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| match pair.strip_prefix("sslrootcert=") {
                Some(path) => {
                    root = Some(PathBuf::from(path));
                    false
                }
                None => true,
            })
            .collect();
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (url, root);
    }
    if url.contains("://") {
        return (url.to_owned(), None);
    }
    // key=value form.
    let mut root = None;
    let kept: Vec<&str> = url
        .split_whitespace()
        .filter(|pair| match pair.strip_prefix("sslrootcert=") {
            Some(path) => {
                root = Some(PathBuf::from(path));
                false
            }
            None => true,
        })
        .collect();
    (kept.join(" "), root)
}

impl Connector {
    /// # Errors
    /// A message saying what is wrong with `url` (`shown` is it without a
    /// password) and what to write instead.
    pub fn new(url: &str, shown: &str) -> Result<Connector, String> {
        let (url, root) = split_root_cert(url);
        let mut config: postgres::Config = url.parse().map_err(|e| {
            format!(
                "{shown} is not a PostgreSQL URL ({e}); write postgres://USER@HOST:PORT/DATABASE"
            )
        })?;
        // A database host that drops packets must not hold every store
        // call for the system's TCP timeout (minutes): give up on a
        // connection after 10 s unless the URL says otherwise
        // (`connect_timeout=`), and notice a dead peer on an idle one.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        config.keepalives(true);
        let tls = match (config.get_ssl_mode(), root) {
            (SslMode::Require, None) => {
                return Err(format!(
                    "{shown} asks for TLS to the database (sslmode=require) but names no CA to check the database's certificate against: add sslrootcert=/path/to/ca.pem (the CA that signed it)"
                ));
            }
            (SslMode::Disable, _) | (_, None) => None,
            (_, Some(path)) => Some(MakeRustlsConnect::new(client_config(&path, shown)?)),
        };
        Ok(Connector { config, tls })
    }

    /// Whether connections use TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// One new connection.
    ///
    /// # Errors
    /// The server cannot be reached, refuses the login, or (with TLS) its
    /// certificate is not one the CA signed for its name.
    pub fn connect(&self) -> Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(postgres::NoTls),
        }
    }
}

fn client_config(path: &std::path::Path, shown: &str) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read sslrootcert {} for {shown}: {e}",
            path.display()
        )
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            format!(
                "sslrootcert {} for {shown} is not PEM certificates: {e}",
                path.display()
            )
        })?;
        roots.add(cert).map_err(|e| {
            format!(
                "sslrootcert {} for {shown} holds a certificate that cannot be a root: {e}",
                path.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {} for {shown} holds no certificate",
            path.display()
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up for {shown}: {e}"))
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_certificate_is_taken_out_of_the_url() {
        assert_eq!(
            split_root_cert("postgres://u@h/db?sslmode=require&sslrootcert=/etc/ca.pem"),
            (
                "postgres://u@h/db?sslmode=require".to_owned(),
                Some(PathBuf::from("/etc/ca.pem"))
            )
        );
        assert_eq!(
            split_root_cert("postgres://u@h/db?sslrootcert=/c.pem"),
            (
                "postgres://u@h/db".to_owned(),
                Some(PathBuf::from("/c.pem"))
            )
        );
        assert_eq!(
            split_root_cert("host=h sslmode=require sslrootcert=/c.pem user=u"),
            (
                "host=h sslmode=require user=u".to_owned(),
                Some(PathBuf::from("/c.pem"))
            )
        );
        assert_eq!(
            split_root_cert("postgres://u@h/db"),
            ("postgres://u@h/db".to_owned(), None)
        );
    }

    #[test]
    fn tls_without_a_ca_to_check_against_is_refused() {
        let err = Connector::new("postgres://u@h/db?sslmode=require", "shown").unwrap_err();
        assert!(err.contains("sslrootcert"), "{err}");
    }
}
