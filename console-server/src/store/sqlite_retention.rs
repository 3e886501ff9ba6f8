//! [`super::retention::RecordRetention`] on SQLite.

use super::retention::*;
use super::sqlite::{SqliteStore, db, img, insert_audit};
use super::{AuditAction, AuditEntry, Retention, StoreError};
use protocol::UnixMillis;
use std::time::SystemTime;

impl RecordRetention for SqliteStore {
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
        let mut done = Vec::new();
        let mut conn = self.sqlite_writer()?;
        let tx = conn.transaction().map_err(db("applying retention"))?;
        for (what, days, sql, with_them) in kinds {
            let Some(days) = days else { continue };
            let cutoff = now.days_before(days).0;
            let n = tx
                .execute(sql, [cutoff])
                .map_err(db("applying retention"))? as u64;
            if let Some(sql) = with_them {
                tx.execute(sql, [cutoff])
                    .map_err(db("applying retention"))?;
            }
            if n > 0 {
                let detail = format!("{n} {what} older than {days} days");
                insert_audit(
                    &tx,
                    &AuditEntry {
                        time: now,
                        actor: "retention",
                        action: AuditAction::ExpireRecords,
                        target: what,
                        detail: &detail,
                        origin: "system",
                    },
                )
                .map_err(db("applying retention"))?;
                done.push((what, n));
            }
        }
        tx.commit().map_err(db("committing retention"))?;
        Ok(done)
    }

    fn sweep_images(&self, before: SystemTime, now: UnixMillis) -> Result<u64, StoreError> {
        let keys = self
            .images
            .keys_written_before(before)
            .map_err(img("listing screenshot files"))?;
        let mut removed = 0u64;
        for chunk in keys.chunks(500) {
            let named: std::collections::HashSet<String> = {
                let conn = self.sqlite_reader()?;
                let sql = format!(
                    "SELECT image FROM captures WHERE image IN ({})",
                    vec!["?"; chunk.len()].join(", ")
                );
                let mut stmt = conn.prepare(&sql).map_err(db("sweeping screenshots"))?;
                stmt.query_map(rusqlite::params_from_iter(chunk.iter()), |r| r.get(0))
                    .map_err(db("sweeping screenshots"))?
                    .collect::<Result<_, _>>()
                    .map_err(db("sweeping screenshots"))?
            };
            for key in chunk.iter().filter(|k| !named.contains(*k)) {
                self.images
                    .delete(key)
                    .map_err(img("removing an orphaned screenshot"))?;
                removed += 1;
            }
        }
        if removed > 0 {
            let detail = format!("{removed} screenshot files no capture names");
            insert_audit(
                &*self.sqlite_writer()?,
                &AuditEntry {
                    time: now,
                    actor: "retention",
                    action: AuditAction::SweepImages,
                    target: "",
                    detail: &detail,
                    origin: "system",
                },
            )
            .map_err(db("auditing the screenshot sweep"))?;
        }
        Ok(removed)
    }
}
