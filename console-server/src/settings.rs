//! The console's settings: `DIR/console.toml`, written with its defaults
//! and comments at first run, read at every start. Command-line flags
//! override the listen addresses.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::store::Retention;
use crate::web_certificate::WebCertificateSettings;

/// Everything an operator may tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where laptops connect.
    pub agent_listen: SocketAddr,
    /// The web console and the JSON API.
    pub web_listen: SocketAddr,
    /// The `HOST:PORT` laptops use to reach the agent listener, written
    /// into enrollment tokens. Empty: this machine's hostname and the agent
    /// listener's port.
    pub public_address: String,
    /// A device not heard from for this long raises an offline alert.
    pub offline_after_minutes: u32,
    /// A device that was monitoring a logged-in session and then sends
    /// nothing for this long is shown as silent, with a tamper event (the
    /// network cut, the power pulled, the lid shut). Laptops send a
    /// heartbeat every minute, so keep it above 60.
    pub silent_after_seconds: u32,
    /// The school's time zone, an IANA name such as `Europe/London`; empty
    /// for this machine's. Weeks and the Monday report follow it.
    pub time_zone: String,
    /// Reverse proxies in front of the web console (their addresses): from
    /// them, the client's address is taken from `X-Forwarded-For`, for the
    /// sign-in throttle and the audit log. Empty: the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    pub retention: Retention,
    pub limits: Limits,
    /// Where the weekly site-visit report is mailed on Monday at 07:00.
    pub report: ReportMail,
    /// The school's own certificate for the web console, if any.
    pub web_certificate: WebCertificateSettings,
    /// The web console's address as staff reach it (`https://host:port`),
    /// for the links in alerts. Empty: this machine's hostname and the
    /// web listener's port.
    pub console_url: String,
    /// When staff are in school, for alert rules with
    /// `when = "school_hours"`: see [`crate::alerts::hours`].
    pub school_hours: crate::alerts::hours::SchoolHours,
    /// Alert rules (`[[alerts]]`): see [`crate::alerts::rules`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<crate::alerts::rules::AlertRule>,
    /// Where the store is kept: empty for SQLite in the data directory
    /// (one school), or `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`
    /// for a trust's database, which several console instances may share.
    /// `--database` on the command line overrides it. A password here is
    /// kept out of the process list, which a command line is not.
    pub database: String,
    /// Connections one console instance keeps open to PostgreSQL, at most.
    pub database_connections: u32,
}

/// The weekly report's mail: nobody and no server by default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportMail {
    /// Addresses the report goes to; empty: it is made and kept, not mailed.
    pub email_to: Vec<String>,
    pub smtp: Smtp,
    /// On a trust's console, each school's own report (its laptops only)
    /// and who it goes to: `[[report.schools]]`, `school` and `email_to`.
    pub schools: Vec<SchoolReportMail>,
}

/// One school's Monday report, mailed to its own staff.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchoolReportMail {
    /// The school's id (`console-server school list`).
    pub school: String,
    pub email_to: Vec<String>,
}

/// An SMTP relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    /// `starttls` (the default), `tls`, or `none` (a relay on this machine
    /// or a trusted network only).
    pub security: String,
    /// Empty: no login.
    pub username: String,
    pub password: String,
    pub from: String,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            host: String::new(),
            port: 587,
            security: "starttls".into(),
            username: String::new(),
            password: String::new(),
            from: String::new(),
        }
    }
}

/// What one agent, or all of them, may cost the console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Agent connections open at once; a laptop connecting beyond it is
    /// told `Busy` (come back in about 30 s) and closed.
    pub max_connections: u32,
    /// The largest frame an agent may send (a capture with its PNG).
    pub max_frame_bytes: u32,
    /// Bytes of agent frames held in memory at once, over all connections;
    /// a connection waits for room before reading a frame's body.
    pub memory_budget_bytes: u64,
    /// A connection with nothing received for this long is closed (agents
    /// send a heartbeat every minute).
    pub idle_timeout_seconds: u32,
    /// Time allowed for the TLS handshake and the Hello.
    pub handshake_timeout_seconds: u32,
    /// Per-connection sustained message rate; beyond it the console reads
    /// more slowly (TCP backpressure), it does not drop.
    pub messages_per_second: u32,
    /// Per-connection sustained byte rate, same rule.
    pub bytes_per_second: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 5_000,
            max_frame_bytes: protocol::frame::DEFAULT_MAX_FRAME,
            memory_budget_bytes: 256 * 1024 * 1024,
            idle_timeout_seconds: 180,
            handshake_timeout_seconds: 15,
            messages_per_second: 50,
            bytes_per_second: 8 * 1024 * 1024,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            agent_listen: "0.0.0.0:9443".parse().expect("a valid address"),
            web_listen: "0.0.0.0:8443".parse().expect("a valid address"),
            public_address: String::new(),
            offline_after_minutes: 15,
            silent_after_seconds: 180,
            time_zone: String::new(),
            retention: Retention::default(),
            limits: Limits::default(),
            report: ReportMail::default(),
            trusted_proxies: Vec::new(),
            console_url: String::new(),
            school_hours: crate::alerts::hours::SchoolHours::default(),
            alerts: Vec::new(),
            web_certificate: WebCertificateSettings::default(),
            database: String::new(),
            database_connections: 16,
        }
    }
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SettingsError {
    pub path: String,
    pub reason: String,
}

impl Settings {
    /// Reads `path`, or writes the defaults there if it does not exist.
    ///
    /// # Errors
    /// If the file cannot be read or written, does not parse, or holds a
    /// value that cannot work.
    pub fn load_or_create(path: &Path) -> Result<Settings, SettingsError> {
        let err = |reason: String| SettingsError {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            let settings = Settings::default();
            let text = format!(
                "# console-server settings. Delete a line to get its default back.\n\
                 # Retention: days before captures are deleted; leave violation_days\n\
                 # out to keep violations until an admin deletes them.\n\
                 # Alerts by mail and webhook: add [[alerts]] tables at the end (see the\n\
                 # README, \"Alerts\"); mail goes through [report.smtp].\n\n{}",
                toml::to_string(&settings).expect("settings serialise")
            );
            std::fs::write(path, text).map_err(|e| err(format!("cannot write: {e}")))?;
            return Ok(settings);
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let settings: Settings =
            toml::from_str(&text).map_err(|e| err(format!("does not parse: {e}")))?;
        settings.check().map_err(err)?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), String> {
        let l = &self.limits;
        if l.max_connections == 0 {
            return Err("limits.max_connections must be at least 1".into());
        }
        if l.max_frame_bytes < 64 * 1024 {
            return Err(
                "limits.max_frame_bytes must be at least 65536 (a screenshot must fit)".into(),
            );
        }
        if l.memory_budget_bytes < u64::from(l.max_frame_bytes) {
            return Err(format!(
                "limits.memory_budget_bytes ({}) must be at least limits.max_frame_bytes ({})",
                l.memory_budget_bytes, l.max_frame_bytes
            ));
        }
        if l.messages_per_second == 0 || l.bytes_per_second == 0 {
            return Err(
                "limits.messages_per_second and limits.bytes_per_second must be above 0".into(),
            );
        }
        if l.idle_timeout_seconds == 0 || l.handshake_timeout_seconds == 0 {
            return Err("timeouts must be at least 1 second".into());
        }
        if self.offline_after_minutes == 0 {
            return Err("offline_after_minutes must be at least 1".into());
        }
        if self.silent_after_seconds < 2 {
            return Err("silent_after_seconds must be at least 2".into());
        }
        crate::school_week::parse_zone(&self.time_zone)?;
        self.web_certificate.check()?;
        let url = &self.console_url;
        if !(url.is_empty() || url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "console_url is {:?}; give the address staff open, such as https://console.school.lan:8443",
                self.console_url
            ));
        }
        let smtp_ready = !self.report.smtp.host.is_empty() && !self.report.smtp.from.is_empty();
        self.school_hours.parse()?;
        crate::alerts::rules::check(&self.alerts, smtp_ready)?;
        let mail = &self.report;
        for s in &mail.schools {
            if s.school.trim().is_empty() || s.email_to.is_empty() {
                return Err(
                    "each [[report.schools]] needs its school's id (school = \"ID\") and email_to"
                        .into(),
                );
            }
        }
        if !mail.email_to.is_empty() || !mail.schools.is_empty() {
            if mail.smtp.host.is_empty() || mail.smtp.from.is_empty() {
                return Err(
                    "report.email_to (or report.schools) is set, so report.smtp.host and report.smtp.from are needed too"
                        .into(),
                );
            }
            if !["starttls", "tls", "none"].contains(&mail.smtp.security.as_str()) {
                return Err(format!(
                    "report.smtp.security is {:?}; use starttls, tls or none",
                    mail.smtp.security
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_writes_defaults_that_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.toml");
        let written = Settings::load_or_create(&path).unwrap();
        assert_eq!(written, Settings::default());
        assert_eq!(Settings::load_or_create(&path).unwrap(), written);
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.toml");
        std::fs::write(&path, "offline_after_minute = 3\n").unwrap();
        let err = Settings::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("offline_after_minute"), "{err}");
        std::fs::write(&path, "[limits]\nmemory_budget_bytes = 10\n").unwrap();
        let err = Settings::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("memory_budget_bytes"), "{err}");
    }
}
