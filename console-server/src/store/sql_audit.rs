//! The store's audit log: append-only (enforced by the database itself),
//! filtered newest first.

use super::sql::{Db, SqlError, ToValue, Value, params};
use super::sql_store::*;
use super::*;

/// Writes one line of the audit log, in the caller's transaction.
///
/// # Errors
/// The database's.
pub(super) fn write_audit(db: &mut Db<'_, '_>, e: &AuditEntry<'_>) -> Result<(), SqlError> {
    // The school the line concerns: the actor's if they are a school's
    // staff (or its token), else that of the capture or laptop it names.
    db.execute(
        "INSERT INTO audit (time, actor, action, target, detail, origin, school)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, COALESCE(
             (SELECT school FROM users WHERE name = ?2),
             (SELECT CASE WHEN t.owner IS NULL THEN t.school ELSE u.school END
              FROM api_tokens t LEFT JOIN users u ON u.name = t.owner
              WHERE t.name = ?2 AND t.revoked IS NULL ORDER BY t.created DESC LIMIT 1),
             (SELECT d.school FROM captures c JOIN devices d ON d.id = c.device
              WHERE c.id = ?4),
             (SELECT school FROM devices WHERE id = ?4)))",
        &params![
            e.time,
            e.actor,
            e.action.as_str(),
            e.target,
            e.detail,
            e.origin
        ],
    )?;
    Ok(())
}

impl AuditStore for SqlStore {
    fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), StoreError> {
        self.write("writing the audit log", |db| write_audit(db, entry))
    }

    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let mut sql = String::from(
            "SELECT seq, time, actor, action, target, detail, origin FROM audit WHERE TRUE",
        );
        let mut args: Vec<Value> = Vec::new();
        if let Some(actor) = &q.actor {
            sql.push_str(" AND actor = ?");
            args.push(actor.to_value());
        }
        if let Some(action) = q.action {
            // Its older names too, so lines written before a rename are found.
            let spellings = action.spellings();
            sql.push_str(" AND action IN (");
            sql.push_str(&vec!["?"; spellings.len()].join(", "));
            sql.push(')');
            for name in spellings {
                args.push(name.to_value());
            }
        }
        if let Some(text) = q.text.as_deref().filter(|t| !t.is_empty()) {
            sql.push_str(" AND (instr(lower(target), ?) > 0 OR instr(lower(detail), ?) > 0)");
            args.push(text.to_lowercase().to_value());
            args.push(text.to_lowercase().to_value());
        }
        if let Some(from) = q.from {
            sql.push_str(" AND time >= ?");
            args.push(from.to_value());
        }
        if let Some(to) = q.to {
            sql.push_str(" AND time < ?");
            args.push(to.to_value());
        }
        if let Some(before) = q.before {
            sql.push_str(" AND seq < ?");
            args.push(before.to_value());
        }
        if let Some(school) = &q.school {
            sql.push_str(" AND school = ?");
            args.push(school.to_value());
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        args.push(q.limit.to_value());
        self.read("reading the audit log", |db| {
            db.query_map(&sql, &args, |r| {
                Ok(AuditEvent {
                    seq: r.get(0)?,
                    time: rfc3339(r.get(1)?),
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                    origin: r.get(6)?,
                })
            })
        })
    }
}
