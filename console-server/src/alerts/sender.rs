//! Delivers alerts: every few seconds it writes the escalations that are
//! due, then sends each pending alert whose time has come, by mail through
//! `[report.smtp]` or by a webhook POST. A delivery is recorded (and
//! audited) only after the relay or the webhook accepted it; a failure is
//! audited and tried again later ([`crate::store::alerts::backoff`]), and
//! given up after [`crate::store::alerts::MAX_ATTEMPTS`].
//!
//! An alert carries its id (a mail's `Message-ID`, a webhook's
//! `Idempotency-Key` header and body), so a receiver can drop the one
//! repeat a console killed between a delivery and its record would send.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use protocol::UnixMillis;
use tokio::sync::watch;
use uuid::Uuid;

use super::message::{Composed, Subject, compose, webhook_body};
use super::rules::{AlertRule, Channel};
use crate::settings::Smtp;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::alerts::Alert;

/// How often the sender looks for work.
const POLL: Duration = Duration::from_secs(2);
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// Alerts sent in one round, at most.
const BATCH: u32 = 50;

/// How many alerts are not delivered (given up, or refused and waiting),
/// as the sender last counted them: for the web console's banner.
#[derive(Debug, Default)]
pub struct AlertHealth(std::sync::atomic::AtomicU64);

impl AlertHealth {
    pub fn set(&self, failing: u64) {
        self.0.store(failing, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn failing(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What staff are told, if anything.
    pub fn message(&self) -> Option<String> {
        match self.failing() {
            0 => None,
            1 => Some("1 alert could not be delivered: check the mail relay and the webhooks (GET /api/v1/alerts).".into()),
            n => Some(format!("{n} alerts could not be delivered: check the mail relay and the webhooks (GET /api/v1/alerts).")),
        }
    }
}

/// A term's meaning for staff, by category and term.
pub type Definitions = Arc<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// Everything delivery needs.
pub struct Sender {
    pub store: Arc<dyn Store>,
    pub smtp: Smtp,
    pub rules: Arc<Vec<AlertRule>>,
    /// The console's address for links, `https://host:port`.
    pub link_base: String,
    pub definitions: Definitions,
    pub health: Arc<AlertHealth>,
    agent: ureq::Agent,
}

impl Sender {
    pub fn new(
        store: Arc<dyn Store>,
        smtp: Smtp,
        rules: Vec<AlertRule>,
        link_base: String,
        definitions: Definitions,
        health: Arc<AlertHealth>,
    ) -> Sender {
        // Alerts are few: a fresh connection each, never one the
        // receiver may have closed while it sat idle.
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(DELIVERY_TIMEOUT))
            .max_idle_connections(0)
            .build()
            .new_agent();
        Sender {
            store,
            smtp,
            rules: Arc::new(rules),
            link_base,
            definitions,
            health,
            agent,
        }
    }

    /// One round at `now`: the escalations due, then every alert due.
    /// Returns how many were delivered.
    ///
    /// # Errors
    /// A storage failure (a delivery's own failure is recorded instead).
    pub fn round(&self, now: UnixMillis) -> Result<usize, StoreError> {
        self.store.plan_escalations(now)?;
        let mut delivered = 0;
        for alert in self.store.due_alerts(now, BATCH)? {
            match self.deliver(&alert) {
                Ok(()) => {
                    self.store.alert_sent(&alert, UnixMillis::now())?;
                    delivered += 1;
                }
                Err(e) => {
                    let error = format!("{e:#}");
                    tracing::warn!(
                        alert = alert.id,
                        rule = %alert.rule,
                        target = %alert.target,
                        "an alert was not delivered: {error}"
                    );
                    self.store.alert_failed(&alert, &error, UnixMillis::now())?;
                }
            }
        }
        self.health.set(self.store.failing_alert_count()?);
        Ok(delivered)
    }

    fn subject(&self, alert: &Alert) -> anyhow::Result<Subject> {
        if alert.event == "offline" {
            // `DEVICE/EVENT`: one alert a time the laptop goes offline.
            let device = alert.record.split('/').next().unwrap_or_default();
            let device = Uuid::parse_str(device).with_context(|| {
                format!("alert {} names {:?}, not a laptop", alert.id, alert.record)
            })?;
            let found = self
                .store
                .devices(UnixMillis(0))?
                .into_iter()
                .find(|d| d.id == device);
            return Ok(found.map_or(Subject::Gone, |d| Subject::Offline {
                device,
                hostname: d.hostname,
                last_seen: d.last_seen,
            }));
        }
        let id = Uuid::parse_str(&alert.record).with_context(|| {
            format!(
                "alert {} names {:?}, not a record id",
                alert.id, alert.record
            )
        })?;
        Ok(match alert.event.as_str() {
            "tamper" => self
                .store
                .tamper_event(id)?
                .map_or(Subject::Gone, |t| Subject::Tamper(Box::new(t))),
            _ => self
                .store
                .capture(id)?
                .map_or(Subject::Gone, |c| Subject::Capture(Box::new(c.summary))),
        })
    }

    fn deliver(&self, alert: &Alert) -> anyhow::Result<()> {
        let subject = self.subject(alert)?;
        let rule = self.rules.iter().find(|r| r.name == alert.rule);
        let composed = compose(
            alert,
            rule,
            &subject,
            self.definitions.as_ref(),
            &self.link_base,
        );
        match alert.channel {
            Channel::Email => self.email(alert, &composed),
            Channel::Webhook => self.webhook(alert, &composed),
        }
    }

    fn email(&self, alert: &Alert, c: &Composed) -> anyhow::Result<()> {
        use lettre::message::Mailbox;
        use lettre::{Message, Transport};
        let from: Mailbox =
            self.smtp.from.parse().with_context(|| {
                format!("report.smtp.from {:?} is not an address", self.smtp.from)
            })?;
        let to: Mailbox = alert
            .target
            .parse()
            .with_context(|| format!("{:?} is not an address", alert.target))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(format!("[Safeguarding] {}", c.title))
            .message_id(Some(format!("<alert-{}@safeguard.console>", alert.id)))
            .body(c.text.clone())
            .context("cannot build the mail")?;
        crate::mail::transport(&self.smtp)?
            .send(&message)
            .with_context(|| {
                format!(
                    "the relay {}:{} refused or failed",
                    self.smtp.host, self.smtp.port
                )
            })?;
        Ok(())
    }

    fn webhook(&self, alert: &Alert, c: &Composed) -> anyhow::Result<()> {
        let body = webhook_body(alert, c, &alert.target);
        self.agent
            .post(&alert.target)
            .header("Idempotency-Key", format!("alert-{}", alert.id))
            .send_json(&body)
            .map_err(|e| anyhow::anyhow!("the webhook {} failed: {e}", alert.target))?;
        Ok(())
    }
}

/// Runs rounds until shutdown.
pub async fn run(sender: Arc<Sender>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let s = sender.clone();
        match tokio::task::spawn_blocking(move || s.round(UnixMillis::now())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("alerts: {e}; trying again shortly"),
            Err(e) => tracing::error!("the alert sender failed: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}
