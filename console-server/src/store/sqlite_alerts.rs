//! [`super::alerts::AlertStore`] on SQLite, and the planning of alerts
//! inside the transaction that stores the record raising them.

use std::sync::Arc;

use protocol::UnixMillis;
use rusqlite::{Transaction, params};

use super::alerts::*;
use super::sqlite::{SqliteStore, db, insert_audit, lock};
use super::{AuditAction, AuditEntry, StoreError};
use crate::alerts::rules::{AlertRule, Channel, Happening};

/// Writes the alerts `what` raises under `rules`, one per rule and
/// recipient, due at once; a record stored again raises nothing new.
pub(super) fn plan(
    tx: &Transaction<'_>,
    rules: &[AlertRule],
    what: Happening<'_>,
    event: &str,
    record: &str,
    now: UnixMillis,
) -> rusqlite::Result<()> {
    for rule in rules.iter().filter(|r| r.matches(what)) {
        for (channel, target) in rule.recipients() {
            insert(tx, &rule.name, event, record, channel, target, now)?;
        }
    }
    Ok(())
}

fn insert(
    tx: &Transaction<'_>,
    rule: &str,
    event: &str,
    record: &str,
    channel: Channel,
    target: &str,
    now: UnixMillis,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO alerts (rule, event, record, channel, target, status, next_attempt, created)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)",
    )?
    .execute(params![rule, event, record, channel.as_str(), target, now.0])
}

const COLUMNS: &str = "id, rule, event, record, channel, target, status, attempts, next_attempt, last_error, created, sent";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Alert, String, String)> {
    Ok((
        Alert {
            id: r.get(0)?,
            rule: r.get(1)?,
            event: r.get(2)?,
            record: r.get(3)?,
            channel: Channel::Email,
            target: r.get(5)?,
            status: AlertStatus::Pending,
            attempts: r.get::<_, i64>(7)?.max(0) as u32,
            next_attempt: UnixMillis(r.get(8)?),
            last_error: r.get(9)?,
            created: UnixMillis(r.get(10)?),
            sent: r.get::<_, Option<i64>>(11)?.map(UnixMillis),
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

impl SqliteStore {
    /// The alert rules in force.
    pub(super) fn alert_rules(&self) -> Arc<Vec<AlertRule>> {
        self.alert_rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn query_alerts(&self, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Alert>, StoreError> {
        let what = "reading alerts";
        let conn = self.reader.get();
        let mut stmt = conn.prepare_cached(sql).map_err(db(what))?;
        let rows: Vec<_> = stmt
            .query_map(p, row)
            .map_err(db(what))?
            .collect::<Result<_, _>>()
            .map_err(db(what))?;
        rows.into_iter().map(decoded).collect()
    }
}

impl AlertStore for SqliteStore {
    fn set_alert_rules(&self, rules: Vec<AlertRule>) {
        *self
            .alert_rules
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(rules);
    }

    fn due_alerts(&self, now: UnixMillis, limit: u32) -> Result<Vec<Alert>, StoreError> {
        self.query_alerts(
            &format!(
                "SELECT {COLUMNS} FROM alerts WHERE status = 'pending' AND next_attempt <= ?1
                 ORDER BY next_attempt, id LIMIT ?2"
            ),
            params![now.0, limit],
        )
    }

    fn alert_sent(&self, alert: &Alert, now: UnixMillis) -> Result<(), StoreError> {
        let what = "recording an alert sent";
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db(what))?;
        tx.execute(
            "UPDATE alerts SET status = 'sent', sent = ?2, attempts = attempts + 1, last_error = NULL
             WHERE id = ?1",
            params![alert.id, now.0],
        )
        .map_err(db(what))?;
        insert_audit(
            &tx,
            &AuditEntry {
                actor: "console",
                action: AuditAction::AlertSent,
                target: &alert.record,
                detail: &format!(
                    "rule {:?}, {} to {} ({})",
                    alert.rule,
                    alert.channel.as_str(),
                    alert.target,
                    alert.event
                ),
                origin: "",
                time: now,
            },
        )
        .map_err(db(what))?;
        tx.commit().map_err(db(what))
    }

    fn alert_failed(&self, alert: &Alert, error: &str, now: UnixMillis) -> Result<(), StoreError> {
        let what = "recording an alert not sent";
        let attempts = alert.attempts + 1;
        let give_up = attempts >= MAX_ATTEMPTS;
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db(what))?;
        tx.execute(
            "UPDATE alerts SET status = ?2, attempts = ?3, next_attempt = ?4, last_error = ?5
             WHERE id = ?1",
            params![
                alert.id,
                if give_up { "failed" } else { "pending" },
                attempts,
                now.0 + backoff(attempts),
                error
            ],
        )
        .map_err(db(what))?;
        insert_audit(
            &tx,
            &AuditEntry {
                actor: "console",
                action: AuditAction::AlertFailed,
                target: &alert.record,
                detail: &format!(
                    "rule {:?}, {} to {}: attempt {attempts}{}: {error}",
                    alert.rule,
                    alert.channel.as_str(),
                    alert.target,
                    if give_up { ", given up" } else { "" }
                ),
                origin: "",
                time: now,
            },
        )
        .map_err(db(what))?;
        tx.commit().map_err(db(what))
    }

    fn failing_alert_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .reader
            .get()
            .query_row(
                "SELECT COUNT(*) FROM alerts
                 WHERE status = 'failed' OR (status = 'pending' AND attempts > 0)",
                [],
                |r| r.get(0),
            )
            .map_err(db("counting alerts not delivered"))?;
        Ok(n.max(0) as u64)
    }

    fn alerts(&self, limit: u32) -> Result<Vec<Alert>, StoreError> {
        self.query_alerts(
            &format!("SELECT {COLUMNS} FROM alerts ORDER BY id DESC LIMIT ?1"),
            params![limit],
        )
    }

    fn plan_escalations(&self, now: UnixMillis) -> Result<u64, StoreError> {
        let what = "planning escalations";
        let rules = self.alert_rules();
        if rules.iter().all(|r| r.escalate_after_minutes.is_none()) {
            return Ok(0);
        }
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db(what))?;
        let mut written = 0;
        for rule in rules.iter() {
            let Some(minutes) = rule.escalate_after_minutes else {
                continue;
            };
            let due = now.0 - i64::from(minutes) * UnixMillis::MINUTE;
            let records: Vec<String> = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT DISTINCT a.record FROM alerts a JOIN captures c ON c.id = a.record
                         WHERE a.rule = ?1 AND a.event IN ('capture', 'concern')
                           AND c.status = 'new' AND c.received <= ?2
                           AND NOT EXISTS (SELECT 1 FROM alerts e
                                           WHERE e.rule = ?1 AND e.event = 'escalation' AND e.record = a.record)",
                    )
                    .map_err(db(what))?;
                stmt.query_map(params![rule.name, due], |r| r.get(0))
                    .map_err(db(what))?
                    .collect::<Result<_, _>>()
                    .map_err(db(what))?
            };
            for record in records {
                for (channel, target) in rule.escalation() {
                    written += insert(&tx, &rule.name, "escalation", &record, channel, target, now)
                        .map_err(db(what))? as u64;
                }
            }
        }
        tx.commit().map_err(db(what))?;
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use protocol::{AgentMessage, Policy, Screenshot};
    use uuid::Uuid;

    use super::*;
    use crate::alerts::rules::AlertEvent;
    use crate::store::images::FsImageStore;
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

    fn store_one(store: &SqliteStore, c: &protocol::Capture, at: i64) {
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
        let dir = tempfile::tempdir().unwrap();
        let images = Arc::new(FsImageStore::open(&dir.path().join("images")).unwrap());
        let store = SqliteStore::open(&dir.path().join("c.db"), images, Policy::baseline).unwrap();
        store.set_alert_rules(vec![AlertRule {
            name: "urgent".into(),
            min_severity: 5,
            events: vec![AlertEvent::Capture],
            email_to: vec!["dsl@school.example".into()],
            webhook_urls: vec!["https://hooks.example/a".into()],
            escalate_after_minutes: Some(15),
            escalate_to: vec!["head@school.example".into()],
            ..AlertRule::default()
        }]);
        let t0 = 1_800_000_000_000;
        let (grave, mild, triaged) = (capture(5, t0), capture(4, t0), capture(5, t0));
        for c in [&grave, &mild, &triaged, &grave] {
            store_one(&store, c, t0);
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
        store.alert_sent(first, UnixMillis(t0 + 1)).unwrap();
        store
            .alert_failed(second, "refused", UnixMillis(t0 + 1))
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
                .alert_failed(&a, "still refused", UnixMillis(t0 + 10))
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
    }

    #[test]
    fn a_laptop_going_offline_raises_one_alert_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let images = Arc::new(FsImageStore::open(&dir.path().join("images")).unwrap());
        let store = SqliteStore::open(&dir.path().join("c.db"), images, Policy::baseline).unwrap();
        store.set_alert_rules(vec![AlertRule {
            name: "laptops".into(),
            events: vec![AlertEvent::Offline],
            webhook_urls: vec!["https://hooks.example/a".into()],
            ..AlertRule::default()
        }]);
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
    }
}
