//! [`super::alerts::AlertStore`], on either database, and the planning of
//! alerts inside the transaction that stores the record raising them.

use std::sync::Arc;

use protocol::UnixMillis;

use super::alerts::*;
use super::sql::{Db, Row, SqlError, Value, params};
use super::sql_audit::write_audit;
use super::sql_store::SqlStore;
use super::{AuditAction, AuditEntry, StoreError};
use crate::alerts::rules::{AlertRule, Channel, Happening, RuleSet};

/// Writes the alerts `what` raises under `rules`, one per rule and
/// recipient, due at once (or, for a rule that waits for school hours,
/// when they next begin), in the caller's transaction; a record stored
/// again raises nothing new.
pub(super) fn plan_in(
    db: &mut Db<'_, '_>,
    rules: &RuleSet,
    what: Happening<'_>,
    event: &str,
    record: &str,
    device: &str,
    now: UnixMillis,
) -> Result<(), SqlError> {
    // The laptop's school, asked for only when a rule is for some schools.
    let school: Option<String> = if rules.rules.iter().any(|r| !r.schools.is_empty()) {
        db.query_opt(
            "SELECT school FROM devices WHERE id = ?1",
            &params![device],
            |r| r.get::<Option<String>>(0),
        )?
        .flatten()
    } else {
        None
    };
    for rule in rules
        .rules
        .iter()
        .filter(|r| r.matches(what) && r.covers(school.as_deref()))
    {
        let held = rules.held_until(rule, now);
        for (channel, target) in rule.recipients() {
            insert(db, &rule.name, event, record, (channel, target), now, held)?;
        }
    }
    Ok(())
}

fn insert(
    db: &mut Db<'_, '_>,
    rule: &str,
    event: &str,
    record: &str,
    (channel, target): (Channel, &str),
    now: UnixMillis,
    held_until: Option<UnixMillis>,
) -> Result<u64, SqlError> {
    db.execute(
        "INSERT INTO alerts (rule, event, record, channel, target, status, next_attempt, created, held_until)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?8) ON CONFLICT DO NOTHING",
        &params![
            rule,
            event,
            record,
            channel.as_str(),
            target,
            held_until.unwrap_or(now),
            now,
            held_until
        ],
    )
}

const COLUMNS: &str = "id, rule, event, record, channel, target, status, attempts, next_attempt, last_error, created, sent, held_until";

fn row(r: &Row) -> Result<(Alert, String, String), SqlError> {
    Ok((
        Alert {
            id: r.get(0)?,
            rule: r.get(1)?,
            event: r.get(2)?,
            record: r.get(3)?,
            channel: Channel::Email,
            target: r.get(5)?,
            status: AlertStatus::Pending,
            attempts: r.get::<i64>(7)?.max(0) as u32,
            next_attempt: r.get(8)?,
            last_error: r.get(9)?,
            created: r.get(10)?,
            sent: r.get(11)?,
            held_until: r.get(12)?,
        },
        r.get(4)?,
        r.get(6)?,
    ))
}

fn decoded((mut a, channel, status): (Alert, String, String)) -> Result<Alert, StoreError> {
    a.channel = Channel::parse(&channel).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "an alert has the channel {channel:?}, which is not email or webhook"
        ))
    })?;
    a.status = AlertStatus::parse(&status)?;
    Ok(a)
}

/// A rule as the audit log holds it: webhooks by their host only.
fn described(rule: &AlertRule) -> String {
    let mut shown = rule.clone();
    for u in shown
        .webhook_urls
        .iter_mut()
        .chain(shown.escalate_to.iter_mut())
    {
        *u = shown_target(u);
    }
    serde_json::to_string(&shown).unwrap_or_default()
}

impl SqlStore {
    fn query_alerts(&self, sql: &str, p: &[Value]) -> Result<Vec<Alert>, StoreError> {
        let rows = self.read("reading alerts", |db| db.query_map(sql, p, row))?;
        rows.into_iter().map(decoded).collect()
    }
}

impl AlertStore for SqlStore {
    fn set_alert_rules(&self, rules: RuleSet) {
        *self
            .alert_rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(rules);
    }

    fn alert_rules(&self) -> Arc<RuleSet> {
        self.alert_rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn due_alerts(&self, now: UnixMillis, limit: u32) -> Result<Vec<Alert>, StoreError> {
        self.query_alerts(
            &format!(
                "SELECT {COLUMNS} FROM alerts WHERE status = 'pending' AND next_attempt <= ?1
                 ORDER BY next_attempt, id LIMIT ?2"
            ),
            &params![now, limit],
        )
    }

    fn alert_sent(&self, alerts: &[Alert], now: UnixMillis) -> Result<(), StoreError> {
        let digest = if alerts.len() > 1 {
            format!(", in a digest of {}", alerts.len())
        } else {
            String::new()
        };
        self.write("recording an alert sent", |db| {
            for alert in alerts {
                db.execute(
                    "UPDATE alerts SET status = 'sent', sent = ?2, attempts = attempts + 1, last_error = NULL
                     WHERE id = ?1",
                    &params![alert.id, now],
                )?;
                write_audit(
                    db,
                    &AuditEntry {
                        actor: "console",
                        action: AuditAction::AlertSent,
                        target: &alert.record,
                        detail: &format!(
                            "rule {:?}, {} to {} ({}){digest}",
                            alert.rule,
                            alert.channel.as_str(),
                            shown_target(&alert.target),
                            alert.event
                        ),
                        origin: "",
                        time: now,
                    },
                )?;
            }
            Ok(())
        })
    }

    fn alert_failed(
        &self,
        alerts: &[Alert],
        error: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.write("recording an alert not sent", |db| {
            for alert in alerts {
                let attempts = alert.attempts + 1;
                let give_up = attempts >= MAX_ATTEMPTS;
                db.execute(
                    "UPDATE alerts SET status = ?2, attempts = ?3, next_attempt = ?4, last_error = ?5
                     WHERE id = ?1",
                    &params![
                        alert.id,
                        if give_up { "failed" } else { "pending" },
                        attempts,
                        now.0 + backoff(attempts),
                        error
                    ],
                )?;
                write_audit(
                    db,
                    &AuditEntry {
                        actor: "console",
                        action: AuditAction::AlertFailed,
                        target: &alert.record,
                        detail: &format!(
                            "rule {:?}, {} to {}: attempt {attempts}{}: {error}",
                            alert.rule,
                            alert.channel.as_str(),
                            shown_target(&alert.target),
                            if give_up { ", given up" } else { "" }
                        ),
                        origin: "",
                        time: now,
                    },
                )?;
            }
            Ok(())
        })
    }

    fn failing_alert_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self.read("counting alerts not delivered", |db| {
            db.query_row(
                "SELECT COUNT(*) FROM alerts
                 WHERE status = 'failed' OR (status = 'pending' AND attempts > 0)",
                &[],
                |r| r.get(0),
            )
        })?;
        Ok(n.max(0) as u64)
    }

    fn alerts(&self, limit: u32) -> Result<Vec<Alert>, StoreError> {
        self.query_alerts(
            &format!("SELECT {COLUMNS} FROM alerts ORDER BY id DESC LIMIT ?1"),
            &params![limit],
        )
    }

    fn plan_escalations(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let rules = AlertStore::alert_rules(self);
        if rules
            .rules
            .iter()
            .all(|r| r.escalate_after_minutes.is_none())
        {
            return Ok(0);
        }
        self.write("planning escalations", |db| {
            let mut written = 0;
            for rule in &rules.rules {
                let Some(minutes) = rule.escalate_after_minutes else {
                    continue;
                };
                let due = now.0 - i64::from(minutes) * UnixMillis::MINUTE;
                let records: Vec<String> = db.query_map(
                    "SELECT DISTINCT a.record FROM alerts a JOIN captures c ON c.id = a.record
                     WHERE a.rule = ?1 AND a.event IN ('capture', 'concern')
                       AND c.status = 'new' AND COALESCE(a.held_until, c.received) <= ?2
                       AND NOT EXISTS (SELECT 1 FROM alerts e
                                       WHERE e.rule = ?1 AND e.event = 'escalation' AND e.record = a.record)",
                    &params![rule.name, due],
                    |r| r.get(0),
                )?;
                // An escalation of a rule that waits for school hours waits
                // for them too.
                let held = rules.held_until(rule, now);
                for record in records {
                    for recipient in rule.escalation() {
                        written += insert(db, &rule.name, "escalation", &record, recipient, now, held)?;
                    }
                }
            }
            Ok(written)
        })
    }

    fn saved_alert_rules(&self) -> Result<Vec<AlertRule>, StoreError> {
        let rows: Vec<(String, String)> =
            self.read("reading the alert rules made on the Settings page", |db| {
                db.query_map(
                    "SELECT name, rule FROM alert_rules ORDER BY name",
                    &[],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })?;
        rows.into_iter()
            .map(|(name, json)| {
                serde_json::from_str(&json).map_err(|e| {
                    StoreError::Corrupt(format!("the saved alert rule {name:?} does not read: {e}"))
                })
            })
            .collect()
    }

    fn save_alert_rule(
        &self,
        rule: &AlertRule,
        replacing: Option<&str>,
        (actor, origin): (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(rule)
            .map_err(|e| StoreError::Corrupt(format!("an alert rule does not serialise: {e}")))?;
        let detail = match replacing {
            Some(old) if old != rule.name => format!("renamed from {old:?}: {}", described(rule)),
            _ => described(rule),
        };
        self.write("saving an alert rule", |db| {
            if let Some(old) = replacing {
                db.execute("DELETE FROM alert_rules WHERE name = ?1", &params![old])?;
            }
            db.execute(
                "INSERT INTO alert_rules (name, rule, changed, changed_by) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET rule = ?2, changed = ?3, changed_by = ?4",
                &params![rule.name, json, now, actor],
            )?;
            write_audit(
                db,
                &AuditEntry {
                    actor,
                    action: AuditAction::SetAlertRule,
                    target: &rule.name,
                    detail: &detail,
                    origin,
                    time: now,
                },
            )
        })
    }

    fn delete_alert_rule(
        &self,
        name: &str,
        (actor, origin): (&str, &str),
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.write("deleting an alert rule", |db| {
            let gone = db.execute("DELETE FROM alert_rules WHERE name = ?1", &params![name])?;
            if gone > 0 {
                write_audit(
                    db,
                    &AuditEntry {
                        actor,
                        action: AuditAction::DeleteAlertRule,
                        target: name,
                        detail: "",
                        origin,
                        time: now,
                    },
                )?;
            }
            Ok(gone > 0)
        })
    }
}

#[cfg(test)]
mod tests {

    use protocol::{AgentMessage, Policy, Screenshot};
    use uuid::Uuid;

    use super::*;
    use crate::alerts::rules::AlertEvent;
    use crate::store::{CaptureStore, DeviceStore, Incoming, IngestStore, Status, Triage};

    fn capture(severity: u8, at: i64) -> protocol::Capture {
        protocol::Capture {
            id: Uuid::now_v7(),
            time: UnixMillis(at),
            user: "amy".into(),
            source: protocol::Source::Typed,
            app: "chat".into(),
            window_title: "Chat".into(),
            url: None,
            term: "kms".into(),
            category: "self-harm".into(),
            severity,
            context: "kms".into(),
            context_match: (0, 3),
            screenshot: Screenshot::Missing("test".into()),
        }
    }

    fn rules(rules: Vec<AlertRule>) -> RuleSet {
        RuleSet {
            rules,
            ..RuleSet::default()
        }
    }

    /// A moment in the school's zone.
    fn at(s: &str) -> i64 {
        s.parse::<jiff::civil::DateTime>()
            .unwrap()
            .to_zoned(crate::school_week::zone())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn an_evening_alert_waits_for_school_hours_and_escalates_from_then() {
        crate::store::testing::on_each(Policy::baseline, |store| {
            store.set_alert_rules(rules(vec![
                AlertRule {
                    name: "daytime".into(),
                    min_severity: 4,
                    email_to: vec!["dsl@school.example".into()],
                    escalate_after_minutes: Some(15),
                    escalate_to: vec!["head@school.example".into()],
                    when: crate::alerts::rules::Delivery::SchoolHours,
                    ..AlertRule::default()
                },
                AlertRule {
                    name: "urgent".into(),
                    min_severity: 5,
                    webhook_urls: vec!["https://hooks.example/a".into()],
                    ..AlertRule::default()
                },
            ]));
            // Monday 2026-12-07, 22:00: school hours (08:00–16:30) are over.
            let evening = at("2026-12-07T22:00");
            let opening = at("2026-12-08T08:00");
            let (grave, mild) = (capture(5, evening), capture(4, evening));
            store_one(store, &grave, evening);
            store_one(store, &mild, evening);
            let now = store.due_alerts(UnixMillis(evening), 100).unwrap();
            assert_eq!(now.len(), 1, "only the at-once rule goes now: {now:?}");
            assert_eq!((now[0].rule.as_str(), now[0].held_until), ("urgent", None));
            assert!(
                store
                    .due_alerts(UnixMillis(opening - 1), 100)
                    .unwrap()
                    .iter()
                    .all(|a| a.rule == "urgent"),
                "nothing of the daytime rule before the opening"
            );
            // Not escalated overnight: the 15 minutes count from the opening.
            assert_eq!(
                store
                    .plan_escalations(UnixMillis(evening + 60 * 60_000))
                    .unwrap(),
                0
            );
            let morning: Vec<Alert> = store
                .due_alerts(UnixMillis(opening), 100)
                .unwrap()
                .into_iter()
                .filter(|a| a.rule == "daytime")
                .collect();
            assert_eq!(morning.len(), 2, "both captures, held: {morning:?}");
            assert!(
                morning
                    .iter()
                    .all(|a| a.held_until == Some(UnixMillis(opening)))
            );
            store.alert_sent(&morning, UnixMillis(opening + 1)).unwrap();
            assert_eq!(
                store
                    .plan_escalations(UnixMillis(opening + 14 * 60_000))
                    .unwrap(),
                0
            );
            assert_eq!(
                store
                    .plan_escalations(UnixMillis(opening + 16 * 60_000))
                    .unwrap(),
                2,
                "each untriaged capture escalated once, in school hours at once"
            );
            let escalations: Vec<Alert> = store
                .due_alerts(UnixMillis(opening + 16 * 60_000), 100)
                .unwrap()
                .into_iter()
                .filter(|a| a.event == "escalation")
                .collect();
            assert_eq!(escalations.len(), 2);
            assert!(escalations.iter().all(|a| a.held_until.is_none()));
        });
    }

    fn store_one(store: &SqlStore, c: &protocol::Capture, at: i64) {
        store
            .store_batch(&[Incoming {
                device: Uuid::now_v7(),
                received: UnixMillis(at),
                message: AgentMessage::Capture(c.clone()),
            }])
            .unwrap();
    }

    #[test]
    fn alerts_are_planned_once_sent_retried_and_escalated_once() {
        crate::store::testing::on_each(Policy::baseline, |store| {
            store.set_alert_rules(rules(vec![AlertRule {
                name: "urgent".into(),
                min_severity: 5,
                events: vec![AlertEvent::Capture],
                email_to: vec!["dsl@school.example".into()],
                webhook_urls: vec!["https://hooks.example/a".into()],
                escalate_after_minutes: Some(15),
                escalate_to: vec!["head@school.example".into()],
                ..AlertRule::default()
            }]));
            let t0 = 1_800_000_000_000;
            let (grave, mild, triaged) = (capture(5, t0), capture(4, t0), capture(5, t0));
            for c in [&grave, &mild, &triaged, &grave] {
                store_one(store, c, t0);
            }
            let due = store.due_alerts(UnixMillis(t0), 100).unwrap();
            assert_eq!(
                due.len(),
                4,
                "two recipients for each grave capture, once: {due:?}"
            );
            assert!(
                due.iter()
                    .all(|a| a.event == "capture" && a.status == AlertStatus::Pending)
            );

            // Sent, failed and retried after the backoff, given up in the end.
            let (first, second) = (&due[0], &due[1]);
            store
                .alert_sent(std::slice::from_ref(first), UnixMillis(t0 + 1))
                .unwrap();
            store
                .alert_failed(std::slice::from_ref(second), "refused", UnixMillis(t0 + 1))
                .unwrap();
            let due = store.due_alerts(UnixMillis(t0 + 2), 100).unwrap();
            assert_eq!(due.len(), 2, "one sent, one waiting for its retry");
            let retry = store
                .due_alerts(UnixMillis(t0 + 1 + backoff(1)), 100)
                .unwrap();
            let again = retry.iter().find(|a| a.id == second.id).unwrap();
            assert_eq!(
                (again.attempts, again.last_error.as_deref()),
                (1, Some("refused"))
            );
            let mut a = again.clone();
            for n in 2..=MAX_ATTEMPTS {
                store
                    .alert_failed(
                        std::slice::from_ref(&a),
                        "still refused",
                        UnixMillis(t0 + 10),
                    )
                    .unwrap();
                a.attempts = n;
            }
            let listed = store.alerts(100).unwrap();
            let given_up = listed.iter().find(|x| x.id == second.id).unwrap();
            assert_eq!(given_up.status, AlertStatus::Failed);
            assert_eq!(
                listed.iter().find(|x| x.id == first.id).unwrap().status,
                AlertStatus::Sent
            );

            // Escalation: not before 15 minutes; a triaged capture never; once.
            store
                .triage(
                    triaged.id,
                    &Triage {
                        actor: "lead".into(),
                        status: Status::Violation,
                        note: String::new(),
                        time: UnixMillis(t0 + 60_000),
                        action: None,
                    },
                )
                .unwrap();
            assert_eq!(
                store
                    .plan_escalations(UnixMillis(t0 + 14 * 60_000))
                    .unwrap(),
                0
            );
            assert_eq!(
                store
                    .plan_escalations(UnixMillis(t0 + 16 * 60_000))
                    .unwrap(),
                1
            );
            assert_eq!(
                store
                    .plan_escalations(UnixMillis(t0 + 30 * 60_000))
                    .unwrap(),
                0
            );
            let escalated: Vec<Alert> = store
                .alerts(100)
                .unwrap()
                .into_iter()
                .filter(|a| a.event == "escalation")
                .collect();
            assert_eq!(escalated.len(), 1);
            assert_eq!(
                (escalated[0].record.as_str(), escalated[0].target.as_str()),
                (grave.id.to_string().as_str(), "head@school.example")
            );
        });
    }

    #[test]
    fn a_laptop_going_offline_raises_one_alert_each_time() {
        crate::store::testing::on_each(Policy::baseline, |store| {
            store.set_alert_rules(rules(vec![AlertRule {
                name: "laptops".into(),
                events: vec![AlertEvent::Offline],
                webhook_urls: vec!["https://hooks.example/a".into()],
                ..AlertRule::default()
            }]));
            let lab = Uuid::now_v7();
            let t0 = 1_800_000_000_000;
            store
                .add_device(lab, "lab-1", "Debian", "1", UnixMillis(t0))
                .unwrap();
            store.device_connected(lab, "1", UnixMillis(t0)).unwrap();
            store
                .update_presence(UnixMillis(t0 - 1), UnixMillis(t0))
                .unwrap();
            store
                .update_presence(UnixMillis(t0 + 1), UnixMillis(t0 + 2))
                .unwrap();
            store
                .device_connected(lab, "1", UnixMillis(t0 + 3))
                .unwrap();
            store
                .update_presence(UnixMillis(t0 + 2), UnixMillis(t0 + 4))
                .unwrap();
            store
                .update_presence(UnixMillis(t0 + 5), UnixMillis(t0 + 6))
                .unwrap();
            let alerts = store.alerts(10).unwrap();
            assert_eq!(
                alerts.len(),
                2,
                "offline twice, back online between: {alerts:?}"
            );
            assert!(
                alerts
                    .iter()
                    .all(|a| a.event == "offline" && a.record.starts_with(&lab.to_string()))
            );
        });
    }
}
