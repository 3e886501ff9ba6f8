//! The SQLite store's captures: lists, one capture with its history,
//! screenshots, triage, counts and trends, retention and deletion.

use protocol::UnixMillis;
use rusqlite::{OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::scope::Scope;
use super::sqlite::*;
use super::sqlite_scope::scope_filter;
use super::*;

const SUMMARY_COLUMNS: &str = "c.id, c.device, COALESCE(d.hostname, ''), c.user, c.time, c.source,
    c.app, c.window_title, c.url, c.term, c.category, c.severity, c.context, c.match_start,
    c.match_end, c.image IS NOT NULL, c.image_missing, c.status";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaptureSummary> {
    let status: String = r.get(17)?;
    Ok(CaptureSummary {
        id: parse_id(&r.get::<_, String>(0)?)?,
        device: parse_id(&r.get::<_, String>(1)?)?,
        hostname: r.get(2)?,
        user: r.get(3)?,
        time: rfc3339(UnixMillis(r.get(4)?)),
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
        status: stored(&status)?,
    })
}

impl SqliteStore {
    fn delete_capture_in(
        tx: &Transaction<'_>,
        id: Uuid,
        entry: &AuditEntry<'_>,
    ) -> rusqlite::Result<Option<(Option<String>, Deleted)>> {
        let row: Option<(Option<String>, String, i64)> = tx
            .query_row(
                "SELECT image, status, time FROM captures WHERE id = ?1",
                [id_str(id)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((image, status, time)) = row else {
            return Ok(None);
        };
        tx.execute("DELETE FROM triage WHERE capture = ?1", [id_str(id)])?;
        tx.execute("DELETE FROM captures WHERE id = ?1", [id_str(id)])?;
        insert_audit(tx, entry)?;
        Ok(Some((
            image,
            Deleted {
                id,
                status: stored(&status)?,
                time: UnixMillis(time),
            },
        )))
    }
}

impl CaptureStore for SqliteStore {
    fn captures(&self, q: &CaptureQuery) -> Result<Vec<CaptureSummary>, StoreError> {
        let mut sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM captures c LEFT JOIN devices d ON d.id = c.device WHERE 1"
        );
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(s) = q.status {
            sql.push_str(" AND c.status = ?");
            args.push(Box::new(s.as_str()));
        }
        if let Some(d) = q.device {
            sql.push_str(" AND c.device = ?");
            args.push(Box::new(id_str(d)));
        }
        if let Some(cat) = &q.category {
            sql.push_str(" AND c.category = ?");
            args.push(Box::new(cat.clone()));
        }
        if let Some(min) = q.min_severity {
            sql.push_str(" AND c.severity >= ?");
            args.push(Box::new(min));
        }
        if let Some(sev) = q.severity {
            sql.push_str(" AND c.severity = ?");
            args.push(Box::new(sev));
        }
        if let Some(user) = &q.user {
            sql.push_str(" AND c.user = ?");
            args.push(Box::new(user.clone()));
        }
        if !q.sources.is_empty() {
            sql.push_str(" AND c.source IN (");
            for (i, source) in q.sources.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(Box::new(source.clone()));
            }
            sql.push(')');
        }
        if let Some(from) = q.from {
            sql.push_str(" AND c.time >= ?");
            args.push(Box::new(from.0));
        }
        if let Some(to) = q.to {
            sql.push_str(" AND c.time < ?");
            args.push(Box::new(to.0));
        }
        if let Some(text) = q.text.as_deref().filter(|t| !t.is_empty()) {
            // instr on lower() rather than LIKE, so `%` and `_` in the
            // search are plain characters.
            sql.push_str(
                " AND (instr(lower(c.context), ?) OR instr(lower(c.window_title), ?)
                 OR instr(lower(c.term), ?) OR instr(lower(COALESCE(c.url, '')), ?))",
            );
            for _ in 0..4 {
                args.push(Box::new(text.to_lowercase()));
            }
        }
        sql.push_str(&scope_filter(&q.scope, "c.user", "c.device", &mut args));
        if let Some(before) = q.before {
            sql.push_str(" AND c.id < ?");
            args.push(Box::new(id_str(before)));
        }
        if let Some(after) = q.after {
            sql.push_str(" AND c.id > ?");
            args.push(Box::new(id_str(after)));
        }
        if q.after.is_some() && q.before.is_none() {
            sql.push_str(" ORDER BY c.id ASC LIMIT ?");
        } else {
            sql.push_str(" ORDER BY c.id DESC LIMIT ?");
        }
        args.push(Box::new(q.limit));
        let conn = self.sqlite_reader()?;
        let mut stmt = conn.prepare(&sql).map_err(db("listing captures"))?;
        let rows = stmt
            .query_map(
                rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
                summary_row,
            )
            .map_err(db("listing captures"))?;
        rows.collect::<Result<_, _>>()
            .map_err(db("reading the capture list"))
    }

    fn capture(&self, id: Uuid) -> Result<Option<CaptureDetail>, StoreError> {
        let conn = self.sqlite_reader()?;
        let found = conn
            .query_row(
                &format!(
                    "SELECT {SUMMARY_COLUMNS}, c.received FROM captures c
                     LEFT JOIN devices d ON d.id = c.device WHERE c.id = ?1"
                ),
                [id_str(id)],
                |r| Ok((summary_row(r)?, r.get::<_, i64>(18)?)),
            )
            .optional()
            .map_err(db("reading a capture"))?;
        let Some((summary, received)) = found else {
            return Ok(None);
        };
        let mut stmt = conn
            .prepare(
                "SELECT time, actor, status, note, action FROM triage WHERE capture = ?1 ORDER BY seq",
            )
            .map_err(db("reading triage history"))?;
        let history = stmt
            .query_map([id_str(id)], |r| {
                let status: String = r.get(2)?;
                Ok(TriageEntry {
                    time: rfc3339(UnixMillis(r.get(0)?)),
                    actor: r.get(1)?,
                    status: stored(&status)?,
                    note: r.get(3)?,
                    action: r.get(4)?,
                })
            })
            .map_err(db("reading triage history"))?
            .collect::<Result<_, _>>()
            .map_err(db("reading triage history"))?;
        Ok(Some(CaptureDetail {
            summary,
            received: rfc3339(UnixMillis(received)),
            history,
        }))
    }

    fn capture_image(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let key: Option<Option<String>> = self
            .sqlite_reader()?
            .query_row(
                "SELECT image FROM captures WHERE id = ?1",
                [id_str(id)],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("reading a capture"))?;
        match key.flatten() {
            Some(key) => self.images.get(&key).map_err(img("reading a screenshot")),
            None => Ok(None),
        }
    }

    fn triage_many(&self, ids: &[Uuid], t: &Triage) -> Result<usize, StoreError> {
        let mut conn = self.sqlite_writer()?;
        let tx = conn.transaction().map_err(db("starting triage"))?;
        let mut found = 0;
        for &id in ids {
            let changed = tx
                .execute(
                    "UPDATE captures SET status = ?2, status_time = ?3 WHERE id = ?1",
                    params![id_str(id), t.status.as_str(), t.time.0],
                )
                .map_err(db("recording triage"))?;
            if changed == 0 {
                continue;
            }
            found += 1;
            tx.execute(
                "INSERT INTO triage (capture, time, actor, status, note, action)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id_str(id),
                    t.time.0,
                    t.actor,
                    t.status.as_str(),
                    t.note,
                    t.action
                ],
            )
            .map_err(db("recording triage"))?;
        }
        tx.commit().map_err(db("committing triage"))?;
        Ok(found)
    }

    fn capture_buckets(
        &self,
        from: UnixMillis,
        to: UnixMillis,
        scope: &Scope,
    ) -> Result<Vec<CaptureBucket>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut args: Vec<Box<dyn rusqlite::ToSql>> =
            vec![Box::new(UnixMillis::HOUR), Box::new(from.0), Box::new(to.0)];
        let filter = scope_filter(scope, "c.user", "c.device", &mut args);
        let mut stmt = conn
            .prepare(&format!(
                "SELECT (c.time / ?1) * ?1 AS hour, c.category, c.severity, c.status,
                        COALESCE(d.hostname, ''), COUNT(*)
                 FROM captures c LEFT JOIN devices d ON d.id = c.device
                 WHERE c.time >= ?2 AND c.time < ?3{filter}
                 GROUP BY hour, c.category, c.severity, c.status, c.device"
            ))
            .map_err(db("reading trends"))?;
        stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let status: String = r.get(3)?;
            Ok(CaptureBucket {
                hour: UnixMillis(r.get(0)?),
                category: r.get(1)?,
                severity: r.get(2)?,
                status: stored(&status)?,
                hostname: r.get(4)?,
                count: r.get::<_, i64>(5)? as u64,
            })
        })
        .map_err(db("reading trends"))?
        .collect::<Result<_, _>>()
        .map_err(db("reading trends"))
    }

    fn capture_counts(&self, scope: &Scope) -> Result<Vec<(Status, u64)>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        let filter = scope_filter(scope, "c.user", "c.device", &mut args);
        let mut stmt = conn
            .prepare(&format!(
                "SELECT c.status, COUNT(*) FROM captures c WHERE 1{filter} GROUP BY c.status"
            ))
            .map_err(db("counting captures"))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(db("counting captures"))?;
        let mut out = Vec::new();
        for row in rows {
            let (status, n) = row.map_err(db("counting captures"))?;
            let s: Status = stored(&status).map_err(db("counting captures"))?;
            out.push((s, n as u64));
        }
        Ok(out)
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
            let cutoff = now.days_before(days).0;
            loop {
                // In slices, so a big first sweep never holds the writer long.
                let ids: Vec<String> = {
                    let conn = self.sqlite_reader()?;
                    let mut stmt = conn
                        .prepare(
                            "SELECT id FROM captures WHERE status = ?1 AND time < ?2 LIMIT 500",
                        )
                        .map_err(db("finding expired captures"))?;
                    stmt.query_map(params![status.as_str(), cutoff], |r| r.get(0))
                        .map_err(db("finding expired captures"))?
                        .collect::<Result<_, _>>()
                        .map_err(db("finding expired captures"))?
                };
                if ids.is_empty() {
                    break;
                }
                let mut images = Vec::new();
                {
                    let mut conn = self.sqlite_writer()?;
                    let tx = conn.transaction().map_err(db("starting retention"))?;
                    for id in &ids {
                        let id = Uuid::parse_str(id)
                            .map_err(|e| StoreError::Corrupt(format!("capture id {id}: {e}")))?;
                        let detail = format!(
                            "retention: {} capture older than {days} days",
                            status.as_str()
                        );
                        let entry = AuditEntry {
                            time: now,
                            actor: "retention",
                            action: AuditAction::DeleteCapture,
                            target: &id_str(id),
                            detail: &detail,
                            origin: "system",
                        };
                        if let Some((image, d)) = Self::delete_capture_in(&tx, id, &entry)
                            .map_err(db("deleting an expired capture"))?
                        {
                            images.extend(image);
                            deleted.push(d);
                        }
                    }
                    tx.commit().map_err(db("committing retention"))?;
                }
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
        let image = {
            let mut conn = self.sqlite_writer()?;
            let tx = conn.transaction().map_err(db("starting a deletion"))?;
            let entry = AuditEntry {
                time: UnixMillis::now(),
                actor,
                action: AuditAction::DeleteCapture,
                target: &id_str(id),
                detail: "deleted by an admin",
                origin,
            };
            let Some((image, _)) =
                Self::delete_capture_in(&tx, id, &entry).map_err(db("deleting a capture"))?
            else {
                return Ok(false);
            };
            tx.commit().map_err(db("committing a deletion"))?;
            image
        };
        if let Some(key) = image {
            self.images
                .delete(&key)
                .map_err(img("deleting a screenshot"))?;
        }
        Ok(true)
    }
}
