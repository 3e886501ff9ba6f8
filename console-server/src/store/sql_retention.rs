//! [`super::retention::RecordRetention`], on either database.

use super::retention::*;
use super::sql::{ToValue, Value, params};
use super::sql_audit::write_audit;
use super::sql_store::{SqlStore, img};
use super::{AuditAction, AuditEntry, Retention, StoreError};
use protocol::UnixMillis;
use std::time::SystemTime;

impl RecordRetention for SqlStore {
    fn expire_records(
        &self,
        r: &Retention,
        now: UnixMillis,
    ) -> Result<Vec<(&'static str, u64)>, StoreError> {
        // What, its setting, the rows it deletes (counted), and the rows
        // that go with them (not counted).
        let kinds: [(&'static str, Option<u32>, &str, Option<&str>); 4] = [
            (
                "tamper events",
                r.tamper_days,
                "DELETE FROM tamper_events WHERE time < ?1
                   AND id NOT IN (SELECT silent_event FROM devices WHERE silent_event IS NOT NULL)",
                None,
            ),
            (
                "AUP answers",
                r.aup_decision_days,
                "DELETE FROM aup_decisions WHERE time < ?1",
                None,
            ),
            (
                "console events",
                r.event_days,
                "DELETE FROM events WHERE time < ?1",
                None,
            ),
            (
                "register entries never imported",
                r.account_days,
                "DELETE FROM accounts WHERE imported IS NULL AND COALESCE(last_seen, 0) < ?1",
                Some(
                    "DELETE FROM account_devices
                     WHERE account NOT IN (SELECT account FROM accounts) AND last_seen < ?1",
                ),
            ),
        ];
        self.write("applying retention", |db| {
            let mut done = Vec::new();
            for (what, days, sql, with_them) in kinds {
                let Some(days) = days else { continue };
                let cutoff = now.days_before(days);
                let n = db.execute(sql, &params![cutoff])?;
                if let Some(sql) = with_them {
                    db.execute(sql, &params![cutoff])?;
                }
                if n > 0 {
                    let detail = format!("{n} {what} older than {days} days");
                    write_audit(
                        db,
                        &AuditEntry {
                            time: now,
                            actor: "retention",
                            action: AuditAction::ExpireRecords,
                            target: what,
                            detail: &detail,
                            origin: "system",
                        },
                    )?;
                    done.push((what, n));
                }
            }
            Ok(done)
        })
    }

    fn sweep_images(&self, before: SystemTime, now: UnixMillis) -> Result<u64, StoreError> {
        let keys = self
            .images
            .keys_written_before(before)
            .map_err(img("listing screenshot files"))?;
        let mut removed = 0u64;
        for chunk in keys.chunks(500) {
            let sql = format!(
                "SELECT image FROM captures WHERE image IN ({})",
                vec!["?"; chunk.len()].join(", ")
            );
            let args: Vec<Value> = chunk.iter().map(ToValue::to_value).collect();
            let named: Vec<String> = self.read("sweeping screenshots", |db| {
                db.query_map(&sql, &args, |r| r.get(0))
            })?;
            let named: std::collections::HashSet<String> = named.into_iter().collect();
            for key in chunk.iter().filter(|k| !named.contains(*k)) {
                self.images
                    .delete(key)
                    .map_err(img("removing an orphaned screenshot"))?;
                removed += 1;
            }
        }
        if removed > 0 {
            let detail = format!("{removed} screenshot files no capture names");
            self.write("auditing the screenshot sweep", |db| {
                write_audit(
                    db,
                    &AuditEntry {
                        time: now,
                        actor: "retention",
                        action: AuditAction::SweepImages,
                        target: "",
                        detail: &detail,
                        origin: "system",
                    },
                )
            })?;
        }
        Ok(removed)
    }
}
