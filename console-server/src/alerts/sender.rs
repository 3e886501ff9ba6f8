//! Delivers alerts: every few seconds it writes the escalations that are
//! due, then sends each pending alert whose time has come, by mail through
//! `[report.smtp]` or by a webhook POST. Alerts held for school hours go
//! to each recipient as one digest, recorded as sent (or not) together. A delivery is recorded (and
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

use super::message::{Composed, Subject, compose, digest, webhook_body, webhook_digest_body};
use super::rules::Channel;
use crate::settings::Smtp;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::alerts::Alert;

/// How often the sender looks for work.
const POLL: Duration = Duration::from_secs(2);
/// How long the lease on delivering alerts lasts unrenewed: the longest a
/// round may take (a slow mail server) before another instance may start
/// one, and the longest alerts wait when the instance delivering them dies.
const LEASE: Duration = Duration::from_secs(120);
/// How long one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);
/// Alerts sent in one round, at most.
const BATCH: u32 = 500;
/// Deliveries under way at once: a relay or webhook a few tens of
/// milliseconds away would otherwise cap a storm of alerts at a few dozen
/// a second.
const PARALLEL: usize = 8;

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
        let batches = deliveries(self.store.due_alerts(now, BATCH)?);
        // Most rounds have nothing to send: no threads for them.
        let workers = PARALLEL.min(batches.len());
        let queue = std::sync::Mutex::new(batches.into_iter());
        let delivered = std::sync::atomic::AtomicUsize::new(0);
        let next = || {
            queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .next()
        };
        let results: Vec<Result<(), StoreError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..workers)
                .map(|_| {
                    scope.spawn(|| {
                        while let Some(batch) = next() {
                            if self.send(&batch)? {
                                delivered
                                    .fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(StoreError::Corrupt(
                            "an alert delivery thread panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        self.health.set(self.store.failing_alert_count()?);
        Ok(delivered.into_inner())
    }

    /// Delivers one batch (an alert, or a digest) and records the outcome;
    /// whether it was delivered.
    fn send(&self, batch: &[Alert]) -> Result<bool, StoreError> {
        let result = match batch {
            [one] if one.held_until.is_none() => self.deliver(one),
            many => self.deliver_digest(many),
        };
        match result {
            Ok(()) => {
                self.store.alert_sent(batch, UnixMillis::now())?;
                Ok(true)
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::warn!(
                    alerts = batch.len(),
                    rule = %batch[0].rule,
                    target = %crate::store::alerts::shown_target(&batch[0].target),
                    "an alert was not delivered: {error}"
                );
                self.store.alert_failed(batch, &error, UnixMillis::now())?;
                Ok(false)
            }
        }
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

    fn composed(&self, alert: &Alert) -> anyhow::Result<Composed> {
        let subject = self.subject(alert)?;
        let rules = self.store.alert_rules();
        Ok(compose(
            alert,
            rules.rule(&alert.rule),
            &subject,
            self.definitions.as_ref(),
            &self.link_base,
        ))
    }

    fn deliver(&self, alert: &Alert) -> anyhow::Result<()> {
        let composed = self.composed(alert)?;
        match alert.channel {
            Channel::Email => self.email(
                alert,
                &composed,
                &format!("<alert-{}@safeguard.console>", alert.id),
            ),
            Channel::Webhook => {
                let body = webhook_body(alert, &composed, &alert.target);
                self.webhook(alert, &body, &format!("alert-{}", alert.id))
            }
        }
    }

    /// One message for `alerts` (same rule, channel and recipient), held
    /// for school hours. Its id names the first alert and how many, so a
    /// repeat after a crash carries the same id.
    fn deliver_digest(&self, alerts: &[Alert]) -> anyhow::Result<()> {
        let parts = alerts
            .iter()
            .map(|a| Ok((a, self.composed(a)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let c = digest(&parts, &self.link_base);
        let first = &alerts[0];
        let key = format!("alert-digest-{}-{}", first.id, alerts.len());
        match first.channel {
            Channel::Email => self.email(first, &c, &format!("<{key}@safeguard.console>")),
            Channel::Webhook => {
                let body = webhook_digest_body(&parts, &c, &first.target);
                self.webhook(first, &body, &key)
            }
        }
    }

    fn email(&self, alert: &Alert, c: &Composed, message_id: &str) -> anyhow::Result<()> {
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
            .message_id(Some(message_id.to_owned()))
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

    fn webhook(&self, alert: &Alert, body: &serde_json::Value, key: &str) -> anyhow::Result<()> {
        self.agent
            .post(&alert.target)
            .header("Idempotency-Key", key)
            .send_json(body)
            .map_err(|e| {
                anyhow::anyhow!(
                    "the webhook {} failed: {e}",
                    crate::store::alerts::shown_target(&alert.target)
                )
            })?;
        Ok(())
    }
}

/// Due alerts as deliveries: each alert sent at once alone; those held
/// for school hours together, one digest per rule, channel and recipient.
fn deliveries(due: Vec<Alert>) -> Vec<Vec<Alert>> {
    let mut out: Vec<Vec<Alert>> = Vec::new();
    let mut digests: std::collections::HashMap<(String, &'static str, String), usize> =
        std::collections::HashMap::new();
    for alert in due {
        if alert.held_until.is_none() {
            out.push(vec![alert]);
            continue;
        }
        let key = (
            alert.rule.clone(),
            alert.channel.as_str(),
            alert.target.clone(),
        );
        match digests.get(&key) {
            Some(&i) => out[i].push(alert),
            None => {
                digests.insert(key, out.len());
                out.push(vec![alert]);
            }
        }
    }
    out
}

/// Runs rounds until shutdown: every [`POLL`], and at once when `live`
/// announces a new capture, concern or tamper event (committed with the
/// alerts it raised), so an alert does not wait for the next poll.
pub async fn run(
    sender: Arc<Sender>,
    jobs: crate::store::jobs::JobGate,
    mut live: tokio::sync::broadcast::Receiver<crate::ingest::Live>,
    mut shutdown: watch::Receiver<bool>,
) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    loop {
        let s = sender.clone();
        let gate = jobs.clone();
        let round = tokio::task::spawn_blocking(move || {
            // One instance of those sharing the store delivers alerts, so
            // none is sent twice; another takes over within the lease if
            // it stops.
            if !gate.may_run("alerts", LEASE) {
                return Ok(0);
            }
            s.round(UnixMillis::now())
        });
        match round.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("alerts: {e}; trying again shortly"),
            Err(e) => tracing::error!("the alert sender failed: {e}"),
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            woken = live.recv() => {
                if let Err(RecvError::Closed) = woken {
                    // Nothing announces any more (the console is
                    // stopping): polling alone, until shutdown says so.
                    tokio::time::sleep(POLL).await;
                }
                // What else was announced meanwhile is in the same round.
                while !matches!(live.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
            }
            _ = shutdown.changed() => return,
        }
    }
}
