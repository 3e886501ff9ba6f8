//! Alerts waiting to be sent and what became of each. An alert is written
//! in the same transaction as the record that raised it (a capture, a
//! pupil's concern, a tamper event), so a console that stops between the
//! commit and the send sends it after its restart; it is marked sent only
//! once delivered, and each attempt is audited.

use protocol::UnixMillis;
use serde::Serialize;

use super::StoreError;
use crate::alerts::rules::{AlertRule, Channel, RuleSet};

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Not delivered yet; tried again at `next_attempt`.
    Pending,
    Sent,
    /// Given up after [`MAX_ATTEMPTS`].
    Failed,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Pending => "pending",
            AlertStatus::Sent => "sent",
            AlertStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Result<AlertStatus, StoreError> {
        match s {
            "pending" => Ok(AlertStatus::Pending),
            "sent" => Ok(AlertStatus::Sent),
            "failed" => Ok(AlertStatus::Failed),
            other => Err(StoreError::Corrupt(format!(
                "an alert has the status {other:?}, which is not pending, sent or failed"
            ))),
        }
    }
}

/// Tries before an alert is given up (about a day with [`backoff`]).
pub const MAX_ATTEMPTS: u32 = 12;

/// How long after its `attempts`-th failure an alert is tried again:
/// 30 s, doubling, at most 30 minutes.
pub fn backoff(attempts: u32) -> i64 {
    (30_000i64 << (attempts.clamp(1, 8) - 1)).min(30 * UnixMillis::MINUTE)
}

/// One alert to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub id: i64,
    pub rule: String,
    /// `capture`, `concern`, `tamper`, `offline`, or `escalation`.
    pub event: String,
    /// The capture's or tamper event's id, or the laptop's.
    pub record: String,
    #[serde(serialize_with = "channel_name")]
    pub channel: Channel,
    /// An address, or a webhook URL (shown by [`Alert::shown_target`]
    /// only: a webhook's URL is its password).
    #[serde(rename = "target", serialize_with = "shown")]
    pub target: String,
    pub status: AlertStatus,
    pub attempts: u32,
    pub next_attempt: UnixMillis,
    pub last_error: Option<String>,
    pub created: UnixMillis,
    pub sent: Option<UnixMillis>,
    /// Raised outside school hours for a rule that waits for them: held
    /// until then, and sent in one digest with the others held for the
    /// same recipient.
    pub held_until: Option<UnixMillis>,
}

fn channel_name<S: serde::Serializer>(c: &Channel, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(c.as_str())
}

fn shown<S: serde::Serializer>(target: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&shown_target(target))
}

/// A recipient as staff may see it: an address whole, a webhook URL as
/// its scheme and host only (the rest is the secret that lets anyone post
/// to it).
pub fn shown_target(target: &str) -> String {
    match target.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            format!("{scheme}://{host}/…")
        }
        None => target.to_owned(),
    }
}

/// What the alert sender needs from storage.
pub trait AlertStore {
    /// The rules new records are matched against: `console.toml`'s and
    /// the Settings page's.
    fn set_alert_rules(&self, rules: RuleSet);
    /// The rules in force.
    fn alert_rules(&self) -> std::sync::Arc<RuleSet>;
    /// Pending alerts whose time has come, oldest first.
    ///
    /// # Errors
    /// A storage failure.
    fn due_alerts(&self, now: UnixMillis, limit: u32) -> Result<Vec<Alert>, StoreError>;
    /// Records one delivery of `alerts` (one alert, or a digest of
    /// several), with an audit line each, in one transaction.
    ///
    /// # Errors
    /// A storage failure.
    fn alert_sent(&self, alerts: &[Alert], now: UnixMillis) -> Result<(), StoreError>;
    /// Records one failed attempt to deliver `alerts`, with an audit line
    /// each: tried again after [`backoff`], or given up after
    /// [`MAX_ATTEMPTS`].
    ///
    /// # Errors
    /// A storage failure.
    fn alert_failed(
        &self,
        alerts: &[Alert],
        error: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Alerts given up, or refused at least once and still waiting.
    ///
    /// # Errors
    /// A storage failure.
    fn failing_alert_count(&self) -> Result<u64, StoreError>;
    /// The latest alerts, newest first.
    ///
    /// # Errors
    /// A storage failure.
    fn alerts(&self, limit: u32) -> Result<Vec<Alert>, StoreError>;
    /// Writes the escalations that are due: for each rule with
    /// `escalate_after_minutes`, a capture or concern it alerted on that is
    /// still untriaged that long after it arrived, once per recipient.
    /// Returns how many were written.
    ///
    /// # Errors
    /// A storage failure.
    fn plan_escalations(&self, now: UnixMillis) -> Result<u64, StoreError>;
    /// The rules made on the Settings page, by name.
    ///
    /// # Errors
    /// A storage failure, or a saved rule that no longer reads.
    fn saved_alert_rules(&self) -> Result<Vec<AlertRule>, StoreError>;
    /// Saves a rule made or changed on the Settings page (replacing the
    /// one named `replacing`, if any), with its audit line naming `who`
    /// (the staff member and where they signed in from).
    ///
    /// # Errors
    /// A storage failure.
    fn save_alert_rule(
        &self,
        rule: &AlertRule,
        replacing: Option<&str>,
        who: (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Deletes a rule made on the Settings page, with its audit line;
    /// whether there was one.
    ///
    /// # Errors
    /// A storage failure.
    fn delete_alert_rule(
        &self,
        name: &str,
        who: (&str, &str),
        now: UnixMillis,
    ) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_webhook_is_shown_without_its_secret() {
        assert_eq!(
            super::shown_target("https://hooks.slack.com/services/T0/B0/XYZ?x=1"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            super::shown_target("http://user:pw@127.0.0.1:8080/hook"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(
            super::shown_target("dsl@school.example"),
            "dsl@school.example"
        );
        assert_eq!(super::backoff(1), 30_000);
        assert_eq!(super::backoff(2), 60_000);
        assert_eq!(super::backoff(20), 30 * 60_000);
    }
}
