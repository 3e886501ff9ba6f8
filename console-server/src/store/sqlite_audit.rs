//! The SQLite store's audit log: append-only, filtered newest first.

use protocol::UnixMillis;

use super::sqlite::*;
use super::*;

impl AuditStore for SqliteStore {
    fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), StoreError> {
        insert_audit(&lock(&self.writer), entry).map_err(db("writing the audit log"))
    }

    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError> {
        let mut sql = String::from(
            "SELECT seq, time, actor, action, target, detail, origin FROM audit WHERE 1",
        );
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(actor) = &q.actor {
            sql.push_str(" AND actor = ?");
            args.push(Box::new(actor.clone()));
        }
        if let Some(action) = q.action {
            // Its older names too, so lines written before a rename are found.
            let spellings = action.spellings();
            sql.push_str(" AND action IN (");
            sql.push_str(&vec!["?"; spellings.len()].join(", "));
            sql.push(')');
            for name in spellings {
                args.push(Box::new(*name));
            }
        }
        if let Some(text) = q.text.as_deref().filter(|t| !t.is_empty()) {
            sql.push_str(" AND (instr(lower(target), ?) OR instr(lower(detail), ?))");
            args.push(Box::new(text.to_lowercase()));
            args.push(Box::new(text.to_lowercase()));
        }
        if let Some(from) = q.from {
            sql.push_str(" AND time >= ?");
            args.push(Box::new(from.0));
        }
        if let Some(to) = q.to {
            sql.push_str(" AND time < ?");
            args.push(Box::new(to.0));
        }
        if let Some(before) = q.before {
            sql.push_str(" AND seq < ?");
            args.push(Box::new(before));
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        args.push(Box::new(q.limit));
        let conn = self.reader.get();
        let mut stmt = conn.prepare(&sql).map_err(db("reading the audit log"))?;
        stmt.query_map(
            rusqlite::params_from_iter(args.iter().map(|a| a.as_ref())),
            |r| {
                Ok(AuditEvent {
                    seq: r.get(0)?,
                    time: rfc3339(UnixMillis(r.get(1)?)),
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    target: r.get(4)?,
                    detail: r.get(5)?,
                    origin: r.get(6)?,
                })
            },
        )
        .map_err(db("reading the audit log"))?
        .collect::<Result<_, _>>()
        .map_err(db("reading the audit log"))
    }
}
