//! The store's captures: lists, one capture with its history, screenshots,
//! triage, counts and trends, retention and deletion.

use protocol::UnixMillis;
use uuid::Uuid;

use super::scope::Scope;
use super::sql::{Db, Row, SqlError, ToValue, Value, params};
use super::sql_audit::write_audit;
use super::sql_scope::scope_filter;
use super::sql_store::*;
use super::*;

const SUMMARY_COLUMNS: &str = "c.id, c.device, COALESCE(d.hostname, ''), c.user, c.time, c.source,
    c.app, c.window_title, c.url, c.term, c.category, c.severity, c.context, c.match_start,
    c.match_end, c.image IS NOT NULL, c.image_missing, c.status";

fn summary_row(r: &Row) -> Result<CaptureSummary, SqlError> {
    let status: String = r.get(17)?;
    Ok(CaptureSummary {
        id: r.get(0)?,
        device: r.get(1)?,
        hostname: r.get(2)?,
        user: r.get(3)?,
        time: rfc3339(r.get(4)?),
        source: r.get(5)?,
        app: r.get(6)?,
        window_title: r.get(7)?,
        url: r.get(8)?,
        term: r.get(9)?,
        category: r.get(10)?,
        severity: r.get(11)?,
        context: r.get(12)?,
        context_match: [r.get(13)?, r.get(14)?],
        has_image: r.get(15)?,
        image_missing: r.get(16)?,
        status: stored_as(&status)?,
    })
}

impl SqlStore {
    fn delete_capture_in(
        db: &mut Db<'_, '_>,
        id: Uuid,
        entry: &AuditEntry<'_>,
    ) -> Result<Option<(Option<String>, Deleted)>, SqlError> {
        let row: Option<(Option<String>, String, i64)> = db.query_opt(
            "SELECT image, status, time FROM captures WHERE id = ?1",
            &params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let Some((image, status, time)) = row else {
            return Ok(None);
        };
        db.execute("DELETE FROM triage WHERE capture = ?1", &params![id])?;
        db.execute("DELETE FROM captures WHERE id = ?1", &params![id])?;
        write_audit(db, entry)?;
        Ok(Some((
            image,
            Deleted {
                id,
                status: stored_as(&status)?,
                time: UnixMillis(time),
            },
        )))
    }
}

impl CaptureStore for SqlStore {
    fn captures(&self, q: &CaptureQuery) -> Result<Vec<CaptureSummary>, StoreError> {
        let mut sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM captures c LEFT JOIN devices d ON d.id = c.device WHERE TRUE"
        );
        let mut args: Vec<Value> = Vec::new();
        if let Some(s) = q.status {
            sql.push_str(" AND c.status = ?");
            args.push(s.as_str().to_value());
        }
        if let Some(d) = q.device {
            sql.push_str(" AND c.device = ?");
            args.push(d.to_value());
        }
        if let Some(cat) = &q.category {
            sql.push_str(" AND c.category = ?");
            args.push(cat.to_value());
        }
        if let Some(min) = q.min_severity {
            sql.push_str(" AND c.severity >= ?");
            args.push(min.to_value());
        }
        if let Some(sev) = q.severity {
            sql.push_str(" AND c.severity = ?");
            args.push(sev.to_value());
        }
        if let Some(user) = &q.user {
            sql.push_str(" AND c.user = ?");
            args.push(user.to_value());
        }
        if !q.sources.is_empty() {
            sql.push_str(" AND c.source IN (");
            for (i, source) in q.sources.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(source.to_value());
            }
            sql.push(')');
        }
        if let Some(from) = q.from {
            sql.push_str(" AND c.time >= ?");
            args.push(from.to_value());
        }
        if let Some(to) = q.to {
            sql.push_str(" AND c.time < ?");
            args.push(to.to_value());
        }
        if let Some(text) = q.text.as_deref().filter(|t| !t.is_empty()) {
            // instr on lower() rather than LIKE, so `%` and `_` in the
            // search are plain characters.
            sql.push_str(
                " AND (instr(lower(c.context), ?) > 0 OR instr(lower(c.window_title), ?) > 0
                 OR instr(lower(c.term), ?) > 0 OR instr(lower(COALESCE(c.url, '')), ?) > 0)",
            );
            for _ in 0..4 {
                args.push(text.to_lowercase().to_value());
            }
        }
        sql.push_str(&scope_filter(
            &q.scope,
            "c.user",
            "c.device",
            &mut args,
            self.dialect(),
        ));
        if let Some(before) = q.before {
            sql.push_str(" AND c.id < ?");
            args.push(before.to_value());
        }
        if let Some(after) = q.after {
            sql.push_str(" AND c.id > ?");
            args.push(after.to_value());
        }
        if q.after.is_some() && q.before.is_none() {
            sql.push_str(" ORDER BY c.id ASC LIMIT ?");
        } else {
            sql.push_str(" ORDER BY c.id DESC LIMIT ?");
        }
        args.push(q.limit.to_value());
        self.read("listing captures", |db| {
            db.query_map(&sql, &args, summary_row)
        })
    }

    fn capture(&self, id: Uuid) -> Result<Option<CaptureDetail>, StoreError> {
        self.read("reading a capture", |db| {
            let found = db.query_opt(
                &format!(
                    "SELECT {SUMMARY_COLUMNS}, c.received FROM captures c
                     LEFT JOIN devices d ON d.id = c.device WHERE c.id = ?1"
                ),
                &params![id],
                |r| Ok((summary_row(r)?, r.get::<UnixMillis>(18)?)),
            )?;
            let Some((summary, received)) = found else {
                return Ok(None);
            };
            let history = db.query_map(
                "SELECT time, actor, status, note, action FROM triage WHERE capture = ?1 ORDER BY seq",
                &params![id],
                |r| {
                    Ok(TriageEntry {
                        time: rfc3339(r.get(0)?),
                        actor: r.get(1)?,
                        status: stored_as(&r.get::<String>(2)?)?,
                        note: r.get(3)?,
                        action: r.get(4)?,
                    })
                },
            )?;
            Ok(Some(CaptureDetail {
                summary,
                received: rfc3339(received),
                history,
            }))
        })
    }

    fn capture_image(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let key: Option<Option<String>> = self.read("reading a capture", |db| {
            db.query_opt(
                "SELECT image FROM captures WHERE id = ?1",
                &params![id],
                |r| r.get(0),
            )
        })?;
        match key.flatten() {
            Some(key) => self.images.get(&key).map_err(img("reading a screenshot")),
            None => Ok(None),
        }
    }

    fn triage_many(&self, ids: &[Uuid], t: &Triage) -> Result<usize, StoreError> {
        self.write("recording triage", |db| {
            let mut found = 0;
            for &id in ids {
                let changed = db.execute(
                    "UPDATE captures SET status = ?2, status_time = ?3 WHERE id = ?1",
                    &params![id, t.status.as_str(), t.time],
                )?;
                if changed == 0 {
                    continue;
                }
                found += 1;
                db.execute(
                    "INSERT INTO triage (capture, time, actor, status, note, action)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    &params![id, t.time, t.actor, t.status.as_str(), t.note, t.action],
                )?;
            }
            Ok(found)
        })
    }

    fn capture_buckets(
        &self,
        from: UnixMillis,
        to: UnixMillis,
        scope: &Scope,
    ) -> Result<Vec<CaptureBucket>, StoreError> {
        let mut args: Vec<Value> =
            vec![UnixMillis::HOUR.to_value(), from.to_value(), to.to_value()];
        let filter = scope_filter(scope, "c.user", "c.device", &mut args, self.dialect());
        let sql = format!(
            "SELECT (c.time / ?1) * ?1 AS hour, c.category, c.severity, c.status,
                    COALESCE(d.hostname, ''), COUNT(*)
             FROM captures c LEFT JOIN devices d ON d.id = c.device
             WHERE c.time >= ?2 AND c.time < ?3{filter}
             GROUP BY hour, c.category, c.severity, c.status, c.device, d.hostname"
        );
        self.read("reading trends", |db| {
            db.query_map(&sql, &args, |r| {
                Ok(CaptureBucket {
                    hour: r.get(0)?,
                    category: r.get(1)?,
                    severity: r.get(2)?,
                    status: stored_as(&r.get::<String>(3)?)?,
                    hostname: r.get(4)?,
                    count: r.get(5)?,
                })
            })
        })
    }

    fn capture_counts(&self, scope: &Scope) -> Result<Vec<(Status, u64)>, StoreError> {
        let mut args: Vec<Value> = Vec::new();
        let filter = scope_filter(scope, "c.user", "c.device", &mut args, self.dialect());
        let sql = format!(
            "SELECT c.status, COUNT(*) FROM captures c WHERE TRUE{filter} GROUP BY c.status"
        );
        self.read("counting captures", |db| {
            db.query_map(&sql, &args, |r| {
                Ok((stored_as(&r.get::<String>(0)?)?, r.get(1)?))
            })
        })
    }

    fn expire(&self, retention: &Retention, now: UnixMillis) -> Result<Vec<Deleted>, StoreError> {
        let rules = [
            (Status::FalsePositive, retention.false_positive_days),
            (Status::New, retention.unreviewed_days),
            (Status::Violation, retention.violation_days),
        ];
        let mut deleted = Vec::new();
        for (status, days) in rules {
            let Some(days) = days else { continue };
            let cutoff = now.days_before(days);
            loop {
                // In slices, so a big first sweep never holds the writer long.
                let ids: Vec<Uuid> = self.read("finding expired captures", |db| {
                    db.query_map(
                        "SELECT id FROM captures WHERE status = ?1 AND time < ?2 LIMIT 500",
                        &params![status.as_str(), cutoff],
                        |r| r.get(0),
                    )
                })?;
                if ids.is_empty() {
                    break;
                }
                let detail = format!(
                    "retention: {} capture older than {days} days",
                    status.as_str()
                );
                let (images, gone) = self.write("deleting expired captures", |db| {
                    let mut images = Vec::new();
                    let mut gone = Vec::new();
                    for &id in &ids {
                        let entry = AuditEntry {
                            time: now,
                            actor: "retention",
                            action: AuditAction::DeleteCapture,
                            target: &id_str(id),
                            detail: &detail,
                            origin: "system",
                        };
                        if let Some((image, d)) = Self::delete_capture_in(db, id, &entry)? {
                            images.extend(image);
                            gone.push(d);
                        }
                    }
                    Ok((images, gone))
                })?;
                deleted.extend(gone);
                // Rows first, then files: a crash in between leaves an
                // unnamed file, never a row naming a missing file.
                for key in images {
                    self.images
                        .delete(&key)
                        .map_err(img("deleting an expired screenshot"))?;
                }
            }
        }
        Ok(deleted)
    }

    fn delete_capture(&self, id: Uuid, actor: &str, origin: &str) -> Result<bool, StoreError> {
        let time = UnixMillis::now();
        let found = self.write("deleting a capture", |db| {
            let entry = AuditEntry {
                time,
                actor,
                action: AuditAction::DeleteCapture,
                target: &id_str(id),
                detail: "deleted by an admin",
                origin,
            };
            Self::delete_capture_in(db, id, &entry)
        })?;
        let Some((image, _)) = found else {
            return Ok(false);
        };
        if let Some(key) = image {
            self.images
                .delete(&key)
                .map_err(img("deleting a screenshot"))?;
        }
        Ok(true)
    }
}
