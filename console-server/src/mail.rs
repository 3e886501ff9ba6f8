//! Mail through the school's relay (`[report.smtp]` in `console.toml`):
//! the weekly report and alerts.

use std::time::Duration;

use lettre::SmtpTransport;
use lettre::transport::smtp::authentication::Credentials;

use crate::settings::Smtp;

/// A transport to the relay, as the settings describe it.
///
/// # Errors
/// The relay's name cannot be used for TLS.
pub fn transport(smtp: &Smtp) -> anyhow::Result<SmtpTransport> {
    let builder = match smtp.security.as_str() {
        "tls" => SmtpTransport::relay(&smtp.host)?,
        "none" => SmtpTransport::builder_dangerous(&smtp.host),
        _ => SmtpTransport::starttls_relay(&smtp.host)?,
    };
    let mut builder = builder
        .port(smtp.port)
        .timeout(Some(Duration::from_secs(60)));
    if !smtp.username.is_empty() {
        builder = builder.credentials(Credentials::new(
            smtp.username.clone(),
            smtp.password.clone(),
        ));
    }
    Ok(builder.build())
}
