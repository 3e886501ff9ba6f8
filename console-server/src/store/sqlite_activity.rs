//! The SQLite store's activity: AUP answers and tamper events (listed,
//! acknowledged once).

use protocol::UnixMillis;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use super::scope::Scope;
use super::sqlite::*;
use super::sqlite_scope::scope_filter;
use super::*;

impl ActivityStore for SqliteStore {
    fn aup_decisions(&self, limit: u32, scope: &Scope) -> Result<Vec<AupDecisionRow>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        let filter = scope_filter(scope, "a.user", "a.device", &mut args);
        args.push(Box::new(limit));
        let mut stmt = conn
            .prepare(&format!(
                "SELECT a.user, a.device, COALESCE(d.hostname, ''), a.audience, a.version,
                     a.decision, a.time
                 FROM aup_decisions a LEFT JOIN devices d ON d.id = a.device
                 WHERE 1{filter}
                 ORDER BY a.time DESC, a.id DESC LIMIT ?"
            ))
            .map_err(db("listing AUP decisions"))?;
        stmt.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            Ok(AupDecisionRow {
                user: r.get(0)?,
                device: parse_id(&r.get::<_, String>(1)?)?,
                hostname: r.get(2)?,
                audience: r.get(3)?,
                version: r.get(4)?,
                decision: r.get(5)?,
                time: rfc3339(UnixMillis(r.get(6)?)),
            })
        })
        .map_err(db("listing AUP decisions"))?
        .collect::<Result<_, _>>()
        .map_err(db("listing AUP decisions"))
    }

    fn tamper_events(&self, q: &TamperQuery) -> Result<Vec<TamperRow>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut sql = format!("SELECT {TAMPER_COLUMNS} WHERE 1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if q.open_only {
            sql.push_str(" AND t.ack_time IS NULL");
        }
        if let Some(device) = q.device {
            sql.push_str(" AND t.device = ?");
            args.push(Box::new(id_str(device)));
        }
        sql.push_str(&scope_filter(&q.scope, "t.user", "t.device", &mut args));
        sql.push_str(" ORDER BY t.time DESC, t.id DESC LIMIT ?");
        args.push(Box::new(q.limit));
        let mut stmt = conn.prepare(&sql).map_err(db("listing tamper events"))?;
        stmt.query_map(rusqlite::params_from_iter(args.iter()), tamper_row)
            .map_err(db("listing tamper events"))?
            .collect::<Result<_, _>>()
            .map_err(db("listing tamper events"))
    }

    fn tamper_event(&self, id: Uuid) -> Result<Option<TamperRow>, StoreError> {
        let conn = self.sqlite_reader()?;
        conn.query_row(
            &format!("SELECT {TAMPER_COLUMNS} WHERE t.id = ?1"),
            [id_str(id)],
            tamper_row,
        )
        .optional()
        .map_err(db("reading a tamper event"))
    }

    fn acknowledge_tamper(
        &self,
        id: Uuid,
        staff: &str,
        note: &str,
        time: UnixMillis,
    ) -> Result<bool, StoreError> {
        let conn = self.sqlite_writer()?;
        let n = conn
            .execute(
                "UPDATE tamper_events SET ack_by = ?2, ack_time = ?3, ack_note = ?4
                 WHERE id = ?1 AND ack_time IS NULL",
                params![id_str(id), staff, time.0, note],
            )
            .map_err(db("acknowledging a tamper event"))?;
        Ok(n == 1)
    }
}

const TAMPER_COLUMNS: &str = "t.id, t.time, t.device, COALESCE(d.hostname, ''), t.user, t.kind,
     t.detail, t.ack_by, t.ack_time, t.ack_note
     FROM tamper_events t LEFT JOIN devices d ON d.id = t.device";

fn tamper_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TamperRow> {
    Ok(TamperRow {
        id: parse_id(&r.get::<_, String>(0)?)?,
        time: rfc3339(UnixMillis(r.get(1)?)),
        device: parse_id(&r.get::<_, String>(2)?)?,
        hostname: r.get(3)?,
        user: r.get(4)?,
        kind: r.get(5)?,
        detail: r.get(6)?,
        acknowledged_by: r.get(7)?,
        acknowledged_time: r.get::<_, Option<i64>>(8)?.map(|t| rfc3339(UnixMillis(t))),
        acknowledged_note: r.get(9)?,
    })
}
