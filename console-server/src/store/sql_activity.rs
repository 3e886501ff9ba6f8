//! The store's activity: AUP answers and tamper events (listed,
//! acknowledged once).

use protocol::UnixMillis;
use uuid::Uuid;

use super::scope::Scope;
use super::sql::{Row, SqlError, ToValue, Value, params};
use super::sql_scope::scope_filter;
use super::sql_store::*;
use super::*;

impl ActivityStore for SqlStore {
    fn aup_decisions(&self, limit: u32, scope: &Scope) -> Result<Vec<AupDecisionRow>, StoreError> {
        let mut args: Vec<Value> = Vec::new();
        let filter = scope_filter(scope, "a.user", "a.device", &mut args, self.dialect());
        args.push(limit.to_value());
        let sql = format!(
            "SELECT a.user, a.device, COALESCE(d.hostname, ''), a.audience, a.version,
                 a.decision, a.time
             FROM aup_decisions a LEFT JOIN devices d ON d.id = a.device
             WHERE TRUE{filter}
             ORDER BY a.time DESC, a.id DESC LIMIT ?"
        );
        self.read("listing AUP decisions", |db| {
            db.query_map(&sql, &args, |r| {
                Ok(AupDecisionRow {
                    user: r.get(0)?,
                    device: r.get(1)?,
                    hostname: r.get(2)?,
                    audience: r.get(3)?,
                    version: r.get(4)?,
                    decision: r.get(5)?,
                    time: rfc3339(r.get(6)?),
                })
            })
        })
    }

    fn tamper_events(&self, q: &TamperQuery) -> Result<Vec<TamperRow>, StoreError> {
        let mut sql = format!("SELECT {TAMPER_COLUMNS} WHERE TRUE");
        let mut args: Vec<Value> = Vec::new();
        if q.open_only {
            sql.push_str(" AND t.ack_time IS NULL");
        }
        if let Some(device) = q.device {
            sql.push_str(" AND t.device = ?");
            args.push(device.to_value());
        }
        sql.push_str(&scope_filter(
            &q.scope,
            "t.user",
            "t.device",
            &mut args,
            self.dialect(),
        ));
        sql.push_str(" ORDER BY t.time DESC, t.id DESC LIMIT ?");
        args.push(q.limit.to_value());
        self.read("listing tamper events", |db| {
            db.query_map(&sql, &args, tamper_row)
        })
    }

    fn tamper_event(&self, id: Uuid) -> Result<Option<TamperRow>, StoreError> {
        self.read("reading a tamper event", |db| {
            db.query_opt(
                &format!("SELECT {TAMPER_COLUMNS} WHERE t.id = ?1"),
                &params![id],
                tamper_row,
            )
        })
    }

    fn acknowledge_tamper(
        &self,
        id: Uuid,
        staff: &str,
        note: &str,
        time: UnixMillis,
    ) -> Result<bool, StoreError> {
        let n = self.write("acknowledging a tamper event", |db| {
            db.execute(
                "UPDATE tamper_events SET ack_by = ?2, ack_time = ?3, ack_note = ?4
                 WHERE id = ?1 AND ack_time IS NULL",
                &params![id, staff, time, note],
            )
        })?;
        Ok(n == 1)
    }
}

const TAMPER_COLUMNS: &str = "t.id, t.time, t.device, COALESCE(d.hostname, ''), t.user, t.kind,
     t.detail, t.ack_by, t.ack_time, t.ack_note
     FROM tamper_events t LEFT JOIN devices d ON d.id = t.device";

fn tamper_row(r: &Row) -> Result<TamperRow, SqlError> {
    Ok(TamperRow {
        id: r.get(0)?,
        time: rfc3339(r.get(1)?),
        device: r.get(2)?,
        hostname: r.get(3)?,
        user: r.get(4)?,
        kind: r.get(5)?,
        detail: r.get(6)?,
        acknowledged_by: r.get(7)?,
        acknowledged_time: r.get::<Option<UnixMillis>>(8)?.map(rfc3339),
        acknowledged_note: r.get(9)?,
    })
}
