//! The embedded store: SQLite in WAL mode with `synchronous = FULL` (a
//! commit is on disk when it returns, which is what lets the console ack),
//! and screenshots in an [`ImageStore`].
//!
//! Two connections: a writer (ingest batches, triage, audit, retention) and
//! a reader for the API, so a long report never holds up ingest; WAL lets
//! them run at once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::{AgentMessage, Decision, Policy, Screenshot, UnixMillis};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use uuid::Uuid;

use super::images::ImageStore;
use super::migrations::MIGRATIONS;
use super::*;

/// SQLite plus image files.
pub struct SqliteStore {
    pub(super) writer: Mutex<Connection>,
    pub(super) reader: Readers,
    pub(super) images: Arc<dyn ImageStore>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqliteStore")
    }
}

pub(super) fn db(during: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| match source {
        // A stored value no version of the console wrote: the data is
        // damaged, and no default stands in for it.
        rusqlite::Error::FromSqlConversionFailure(column, _, e) => {
            StoreError::Corrupt(format!("while {during}: column {column}: {e}"))
        }
        source => StoreError::Database { during, source },
    }
}

pub(super) fn img(during: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |source| StoreError::Image { during, source }
}

/// Connections for reading. In WAL mode readers neither wait for the writer
/// nor for each other, so one slow report does not hold up every page.
pub(super) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Reading connections kept open.
const READERS: usize = 4;

impl Readers {
    /// A free reading connection, or, when all are busy, a wait for one.
    pub(super) fn get(&self) -> MutexGuard<'_, Connection> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            match self.conns[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.conns[start % n])
    }
}

pub(super) fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite inconsistent (an
    // open transaction rolls back when dropped), so a poisoned lock is safe
    // to reuse.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db("opening the database"))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db("setting the busy timeout"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(db("setting up the database connection"))?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db("reading the schema version"))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(db("starting a migration"))?;
        tx.execute_batch(sql).map_err(db("applying a migration"))?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(db("recording a migration"))?;
        tx.commit().map_err(db("committing a migration"))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database at `path`, and
    /// writes `default_policy` as version 1 if there is no policy yet.
    ///
    /// # Errors
    /// If the database cannot be opened or migrated.
    pub fn open(
        path: &Path,
        images: Arc<dyn ImageStore>,
        default_policy: impl FnOnce() -> Policy,
    ) -> Result<Self, StoreError> {
        let mut writer = open_connection(path)?;
        migrate(&mut writer)?;
        let has_policy: bool = writer
            .query_row("SELECT EXISTS (SELECT 1 FROM policies)", [], |r| r.get(0))
            .map_err(db("reading the policy"))?;
        if !has_policy {
            let mut policy = default_policy();
            policy.version = 1;
            let body = serde_json::to_string(&policy).expect("a policy serialises");
            writer
                .execute(
                    "INSERT INTO policies (version, created, body) VALUES (1, ?1, ?2)",
                    params![UnixMillis::now().0, body],
                )
                .map_err(db("writing the first policy"))?;
        }
        let readers = (0..READERS)
            .map(|_| open_connection(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(SqliteStore {
            writer: Mutex::new(writer),
            reader: Readers {
                conns: readers,
                next: std::sync::atomic::AtomicUsize::new(0),
            },
            images,
        })
    }
}

pub(super) fn id_str(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// A value read as text, as the type it is stored for; one no console
/// wrote is an error (and [`db`] makes it [`StoreError::Corrupt`]).
pub(super) fn stored<T: rusqlite::types::FromSql>(text: &str) -> rusqlite::Result<T> {
    T::column_result(rusqlite::types::ValueRef::Text(text.as_bytes())).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse_id(s: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn record_exists(tx: &Connection, table: &str, id: Uuid) -> rusqlite::Result<bool> {
    tx.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"),
        [id_str(id)],
        |r| r.get(0),
    )
}

use super::register::audience_str;

fn decision_str(d: Decision) -> &'static str {
    match d {
        Decision::Accept => "accept",
        Decision::Decline => "decline",
    }
}

fn png(shot: &Screenshot) -> Option<&[u8]> {
    match shot {
        Screenshot::Png(bytes) => Some(bytes),
        Screenshot::Missing(_) => None,
    }
}

fn missing(shot: &Screenshot) -> Option<&str> {
    match shot {
        Screenshot::Png(_) => None,
        Screenshot::Missing(why) => Some(why),
    }
}

/// The term and category a pupil's concern is stored under.
pub const CONCERN_TERM: &str = "Report a concern";
pub const CONCERN_CATEGORY: &str = "concern";

/// Notes that `user` was on `device` at `time`, for the register of users.
fn account_seen(tx: &Transaction<'_>, user: &str, device: &str, time: i64) -> rusqlite::Result<()> {
    if user.is_empty() {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT INTO accounts (account, first_seen, last_seen) VALUES (?1, ?2, ?2)
         ON CONFLICT (account) DO UPDATE SET
             first_seen = min(coalesce(first_seen, excluded.first_seen), excluded.first_seen),
             last_seen = max(coalesce(last_seen, excluded.last_seen), excluded.last_seen)",
    )?
    .execute(params![user, time])?;
    tx.prepare_cached(
        "INSERT INTO account_devices (account, device, first_seen, last_seen) VALUES (?1, ?2, ?3, ?3)
         ON CONFLICT (account, device) DO UPDATE SET
             first_seen = min(first_seen, excluded.first_seen),
             last_seen = max(last_seen, excluded.last_seen)",
    )?
    .execute(params![user, device, time])?;
    Ok(())
}

fn insert_record(
    tx: &Transaction<'_>,
    item: &Incoming,
    image: Option<&str>,
) -> rusqlite::Result<Stored> {
    let device = id_str(item.device);
    match &item.message {
        AgentMessage::Capture(c) => account_seen(tx, &c.user, &device, c.time.0)?,
        AgentMessage::Concern(c) => account_seen(tx, &c.user, &device, c.time.0)?,
        AgentMessage::AupDecision(a) => account_seen(tx, &a.user, &device, a.time.0)?,
        AgentMessage::Heartbeat(h) => {
            if let Some(user) = &h.user {
                account_seen(tx, user, &device, h.time.0)?;
            }
        }
        AgentMessage::SiteVisits(batch) => {
            let mut last: HashMap<&str, i64> = HashMap::new();
            for v in &batch.visits {
                let t = last.entry(v.user.as_str()).or_insert(v.end.0);
                *t = (*t).max(v.end.0);
            }
            for (user, time) in last {
                account_seen(tx, user, &device, time)?;
            }
        }
        AgentMessage::TamperEvent(_) | AgentMessage::Hello(_) | AgentMessage::Health(_) => {}
    }
    let changed = match &item.message {
        AgentMessage::Capture(c) => tx.execute(
            "INSERT OR IGNORE INTO captures (id, device, time, received, user, source, app,
                 window_title, url, term, category, severity, context, match_start, match_end,
                 image, image_missing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
            params![
                id_str(c.id),
                device,
                c.time.0,
                item.received.0,
                c.user,
                c.source.as_str(),
                c.app,
                c.window_title,
                c.url,
                c.term,
                c.category,
                c.severity,
                c.context,
                c.context_match.0,
                c.context_match.1,
                image,
                missing(&c.screenshot),
            ],
        )?,
        // A pupil's own report: a capture of source `concern`, top
        // severity, its text as the context.
        AgentMessage::Concern(c) => tx.execute(
            "INSERT OR IGNORE INTO captures (id, device, time, received, user, source, app,
                 window_title, url, term, category, severity, context, match_start, match_end,
                 image, image_missing)
             VALUES (?1, ?2, ?3, ?4, ?5, 'concern', ?6, ?7, ?8, ?9, ?10, 5, ?11, 0, 0, ?12, ?13)",
            params![
                id_str(c.id),
                device,
                c.time.0,
                item.received.0,
                c.user,
                c.app,
                c.window_title,
                c.url,
                CONCERN_TERM,
                CONCERN_CATEGORY,
                c.text,
                image,
                missing(&c.screenshot),
            ],
        )?,
        AgentMessage::SiteVisits(batch) => {
            let new = tx.execute(
                "INSERT OR IGNORE INTO visit_batches (id, device, received) VALUES (?1, ?2, ?3)",
                params![id_str(batch.id), device, item.received.0],
            )?;
            if new == 1 {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO site_visits (batch, device, user, browser, url, domain, title,
                         start, end, active_seconds, visits)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )?;
                let mut hours = tx.prepare_cached(
                    "INSERT INTO visit_hours (hour, domain, user, device, visits, active_seconds, first, last)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (hour, domain, user, device) DO UPDATE SET
                         visits = visits + excluded.visits,
                         active_seconds = active_seconds + excluded.active_seconds,
                         first = min(first, excluded.first),
                         last = max(last, excluded.last)",
                )?;
                let mut seen = tx.prepare_cached(
                    "INSERT INTO domains_seen (domain, first_seen) VALUES (?1, ?2)
                     ON CONFLICT (domain) DO UPDATE SET first_seen = min(first_seen, excluded.first_seen)",
                )?;
                for v in &batch.visits {
                    // The console decides the domain from the address, the
                    // same way for every agent.
                    let domain = wordlists::domains::host_of(&v.url).unwrap_or_default();
                    let end = v.end.0.max(v.start.0);
                    stmt.execute(params![
                        id_str(batch.id),
                        device,
                        v.user,
                        v.browser,
                        v.url,
                        domain,
                        v.title,
                        v.start.0,
                        end,
                        v.active_seconds,
                        v.visits,
                    ])?;
                    hours.execute(params![
                        v.start.hour_number(),
                        domain,
                        v.user,
                        device,
                        v.visits,
                        v.active_seconds,
                        v.start.0,
                        end,
                    ])?;
                    seen.execute(params![domain, v.start.0])?;
                }
            }
            new
        }
        AgentMessage::AupDecision(a) => tx.execute(
            "INSERT OR IGNORE INTO aup_decisions (id, device, time, user, audience, version, decision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id_str(a.id),
                device,
                a.time.0,
                a.user,
                audience_str(a.audience),
                a.aup_version,
                decision_str(a.decision),
            ],
        )?,
        AgentMessage::TamperEvent(t) => tx.execute(
            "INSERT OR IGNORE INTO tamper_events (id, device, time, user, kind, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id_str(t.id),
                device,
                t.time.0,
                t.user,
                format!("{:?}", t.kind),
                t.detail,
            ],
        )?,
        AgentMessage::Heartbeat(h) => {
            let figures = serde_json::json!({
                "time": rfc3339(h.time),
                "uptime_seconds": h.uptime_seconds,
                "load": h.load,
                "memory_total_bytes": h.memory_total_bytes,
                "memory_used_bytes": h.memory_used_bytes,
                "spool_depth": h.spool_depth,
                "spool_dropped": h.spool_dropped,
                "policy_version": h.policy_version,
            });
            tx.execute(
                "UPDATE devices SET hostname = ?2, os = ?3, agent_version = ?4, user = ?5,
                     heartbeat = ?6
                 WHERE id = ?1",
                params![
                    device,
                    h.hostname,
                    h.os,
                    h.agent_version,
                    h.user,
                    figures.to_string()
                ],
            )?;
            return Ok(Stored::Applied);
        }
        AgentMessage::Health(h) => {
            // Kept as the device's latest, like the heartbeat's figures.
            let health = serde_json::json!({
                "time": rfc3339(h.time),
                "supervising": h.supervising,
                "sessions": h.sessions.iter().map(|s| serde_json::json!({
                    "user": s.user,
                    "display": s.display,
                    "monitored": s.monitored,
                    "supervised": s.supervised,
                    "heard_seconds_ago": s.heard_seconds_ago,
                })).collect::<Vec<_>>(),
                "page_readers": h.page_readers.iter().map(|r| serde_json::json!({
                    "user": r.user,
                    "browser": r.browser,
                })).collect::<Vec<_>>(),
                "refused": h.refused,
            });
            tx.execute(
                "UPDATE devices SET health = ?2 WHERE id = ?1",
                params![device, health.to_string()],
            )?;
            return Ok(Stored::Applied);
        }
        AgentMessage::Hello(_) => return Ok(Stored::Applied),
    };
    Ok(if changed == 1 {
        Stored::New
    } else {
        Stored::Duplicate
    })
}

fn table_of(message: &AgentMessage) -> Option<&'static str> {
    match message {
        AgentMessage::Capture(_) => Some("captures"),
        AgentMessage::Concern(_) => Some("captures"),
        _ => None,
    }
}

fn image_of(message: &AgentMessage) -> Option<(Uuid, &[u8])> {
    match message {
        AgentMessage::Capture(c) => png(&c.screenshot).map(|b| (c.id, b)),
        AgentMessage::Concern(c) => png(&c.screenshot).map(|b| (c.id, b)),
        _ => None,
    }
}

impl IngestStore for SqliteStore {
    fn store_batch(&self, batch: &[Incoming]) -> Result<Vec<Stored>, StoreError> {
        // Images of records not stored yet go to disk (synced) first, before
        // the writer is taken: a slow disk then holds up no page that needs
        // to write (a sign-in, a triage). Only this ingest thread stores
        // records, so one found absent here is still absent below; a resend
        // whose first copy is stored meanwhile rewrites the same bytes and
        // its row is ignored.
        let mut pending: Vec<(usize, Uuid, &[u8])> = Vec::new();
        {
            let conn = self.reader.get();
            let mut seen = HashSet::new();
            for (i, item) in batch.iter().enumerate() {
                if let (Some(table), Some((id, bytes))) =
                    (table_of(&item.message), image_of(&item.message))
                    && seen.insert(id)
                    && !record_exists(&conn, table, id).map_err(db("checking for a resend"))?
                {
                    pending.push((i, id, bytes));
                }
            }
        }
        let to_write: Vec<(Uuid, &[u8])> = pending.iter().map(|(_, id, b)| (*id, *b)).collect();
        let keys = self
            .images
            .put_all(&to_write)
            .map_err(img("writing screenshots"))?;
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction()
            .map_err(db("starting an ingest transaction"))?;
        let mut key_of: BTreeMap<usize, &str> = BTreeMap::new();
        for ((i, _, _), key) in pending.iter().zip(&keys) {
            key_of.insert(*i, key);
        }
        // A resend whose first copy is in this same batch has no key; its
        // row is ignored as a duplicate anyway.
        let mut out = Vec::with_capacity(batch.len());
        let mut last_seen: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (i, item) in batch.iter().enumerate() {
            let key = key_of.get(&i).copied();
            out.push(insert_record(&tx, item, key).map_err(db("storing a record"))?);
            let seen = last_seen.entry(item.device).or_insert(item.received.0);
            *seen = (*seen).max(item.received.0);
        }
        for (device, at) in last_seen {
            tx.execute(
                "UPDATE devices SET last_seen = MAX(COALESCE(last_seen, 0), ?2) WHERE id = ?1",
                params![id_str(device), at],
            )
            .map_err(db("updating last seen"))?;
        }
        tx.commit().map_err(db("committing an ingest batch"))?;
        Ok(out)
    }
}

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

pub(super) fn insert_audit(conn: &Connection, e: &AuditEntry<'_>) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO audit (time, actor, action, target, detail, origin)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            e.time.0,
            e.actor,
            e.action.as_str(),
            e.target,
            e.detail,
            e.origin
        ],
    )?;
    Ok(())
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
        let conn = self.reader.get();
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
        let conn = self.reader.get();
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
            .reader
            .get()
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
        let mut conn = lock(&self.writer);
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
    ) -> Result<Vec<CaptureBucket>, StoreError> {
        let conn = self.reader.get();
        let mut stmt = conn
            .prepare(
                "SELECT (c.time / ?3) * ?3 AS hour, c.category, c.severity, c.status,
                        COALESCE(d.hostname, ''), COUNT(*)
                 FROM captures c LEFT JOIN devices d ON d.id = c.device
                 WHERE c.time >= ?1 AND c.time < ?2
                 GROUP BY hour, c.category, c.severity, c.status, c.device",
            )
            .map_err(db("reading trends"))?;
        stmt.query_map(params![from.0, to.0, UnixMillis::HOUR], |r| {
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

    fn capture_counts(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        let conn = self.reader.get();
        let mut stmt = conn
            .prepare("SELECT status, COUNT(*) FROM captures GROUP BY status")
            .map_err(db("counting captures"))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
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
                    let conn = self.reader.get();
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
                    let mut conn = lock(&self.writer);
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
            let mut conn = lock(&self.writer);
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

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    let heartbeat: Option<String> = r.get(9)?;
    Ok(Device {
        id: parse_id(&r.get::<_, String>(0)?)?,
        hostname: r.get(1)?,
        os: r.get(2)?,
        agent_version: r.get(3)?,
        user: r.get(4)?,
        enrolled: r.get::<_, Option<i64>>(5)?.map(|t| rfc3339(UnixMillis(t))),
        last_seen: r.get::<_, Option<i64>>(6)?.map(|t| rfc3339(UnixMillis(t))),
        online: r.get(7)?,
        revoked: r.get::<_, Option<i64>>(8)?.map(|t| rfc3339(UnixMillis(t))),
        heartbeat: heartbeat.and_then(|h| serde_json::from_str(&h).ok()),
        health: r
            .get::<_, Option<String>>(10)?
            .and_then(|h| serde_json::from_str(&h).ok()),
        open_tamper_events: r.get::<_, i64>(11)?.max(0) as u64,
        silent_since: r.get::<_, Option<i64>>(12)?.map(|t| rfc3339(UnixMillis(t))),
    })
}

/// Who a device last said was logged in: the users of its latest health's
/// sessions, or, with no health (an agent older than protocol version 4),
/// its heartbeat's user.
fn logged_in(user: Option<String>, health: Option<&str>) -> Vec<String> {
    let Some(health) = health else {
        return user.into_iter().filter(|u| !u.is_empty()).collect();
    };
    let health: serde_json::Value = serde_json::from_str(health).unwrap_or_default();
    let mut users: Vec<String> = health["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["user"].as_str())
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    users.sort();
    users.dedup();
    users
}

/// `14:05` (with the date when not today) in the school's zone.
fn clock_time(t: UnixMillis) -> String {
    let zone = crate::school_week::zone();
    match jiff::Timestamp::from_millisecond(t.0) {
        Ok(ts) => {
            let at = ts.to_zoned(zone.clone());
            if at.date() == jiff::Timestamp::now().to_zoned(zone).date() {
                at.strftime("%H:%M:%S").to_string()
            } else {
                at.strftime("%a %-d %b %H:%M:%S").to_string()
            }
        }
        Err(_) => format!("an invalid time ({} ms)", t.0),
    }
}

/// `3 min 20 s`, `2 h 5 min`.
fn gap_length(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

fn insert_event(
    conn: &Connection,
    now: UnixMillis,
    kind: &str,
    device: Option<&str>,
    detail: &str,
) -> rusqlite::Result<Event> {
    conn.execute(
        "INSERT INTO events (time, kind, device, detail) VALUES (?1, ?2, ?3, ?4)",
        params![now.0, kind, device, detail],
    )?;
    Ok(Event {
        id: conn.last_insert_rowid(),
        time: rfc3339(now),
        kind: kind.to_owned(),
        device: device.and_then(|d| Uuid::parse_str(d).ok()),
        detail: detail.to_owned(),
    })
}

impl DeviceStore for SqliteStore {
    fn add_device(
        &self,
        id: Uuid,
        hostname: &str,
        os: &str,
        agent_version: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO devices (id, hostname, os, agent_version, enrolled, first_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![id_str(id), hostname, os, agent_version, now.0],
            )
            .map_err(db("recording an enrolled device"))?;
        Ok(())
    }

    fn device_connected(
        &self,
        id: Uuid,
        agent_version: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO devices (id, agent_version, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (id) DO UPDATE SET agent_version = ?2, last_seen = ?3",
                params![id_str(id), agent_version, now.0],
            )
            .map_err(db("recording a device connection"))?;
        Ok(())
    }

    fn devices(&self, online_since: UnixMillis) -> Result<Vec<Device>, StoreError> {
        let conn = self.reader.get();
        let mut stmt = conn
            .prepare(
                "SELECT id, hostname, os, agent_version, user, enrolled, last_seen,
                     revoked IS NULL AND COALESCE(last_seen >= ?1, 0), revoked, heartbeat,
                     health,
                     (SELECT COUNT(*) FROM tamper_events t
                      WHERE t.device = devices.id AND t.ack_time IS NULL),
                     silent_since
                 FROM devices ORDER BY hostname, id",
            )
            .map_err(db("listing devices"))?;
        stmt.query_map([online_since.0], device_row)
            .map_err(db("listing devices"))?
            .collect::<Result<_, _>>()
            .map_err(db("listing devices"))
    }

    fn update_presence(
        &self,
        cutoff: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Event>, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db("updating presence"))?;
        let mut events = Vec::new();
        let changes: Vec<(String, String, bool)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, hostname, online FROM devices
                     WHERE revoked IS NULL AND last_seen IS NOT NULL
                       AND ((online = 1 AND last_seen < ?1) OR (online = 0 AND last_seen >= ?1))",
                )
                .map_err(db("updating presence"))?;
            stmt.query_map([cutoff.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(db("updating presence"))?
                .collect::<Result<_, _>>()
                .map_err(db("updating presence"))?
        };
        for (id, hostname, was_online) in changes {
            let name = if hostname.is_empty() { &id } else { &hostname };
            let (online, kind, detail) = if was_online {
                (
                    0,
                    "device_offline",
                    format!("{name} has not been heard from"),
                )
            } else {
                (1, "device_online", format!("{name} is back online"))
            };
            tx.execute(
                "UPDATE devices SET online = ?2 WHERE id = ?1",
                params![id, online],
            )
            .map_err(db("updating presence"))?;
            events.push(
                insert_event(&tx, now, kind, Some(&id), &detail)
                    .map_err(db("recording a presence event"))?,
            );
        }
        tx.commit().map_err(db("committing presence"))?;
        Ok(events)
    }

    fn update_silence(
        &self,
        cutoff: UnixMillis,
        heard_since: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction()
            .map_err(db("checking for silent devices"))?;
        // Gaps that have ended: the device was heard after the gap began.
        let ended: Vec<(String, i64, i64, String)> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, silent_since, last_seen, silent_event FROM devices
                     WHERE silent_event IS NOT NULL AND last_seen > silent_since",
                )
                .map_err(db("checking for silent devices"))?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(db("checking for silent devices"))?
                .collect::<Result<_, _>>()
                .map_err(db("checking for silent devices"))?
        };
        for (id, since, heard, event) in ended {
            let ended = format!(
                " It was heard again at {}, after {}.",
                clock_time(UnixMillis(heard)),
                gap_length(heard.saturating_sub(since))
            );
            tx.execute(
                "UPDATE tamper_events SET detail = detail || ?2 WHERE id = ?1",
                params![event, ended],
            )
            .map_err(db("closing a silent gap"))?;
            tx.execute(
                "UPDATE devices SET silent_since = NULL, silent_event = NULL WHERE id = ?1",
                [&id],
            )
            .map_err(db("closing a silent gap"))?;
        }
        // Devices gone silent while they should be on.
        // id, hostname, heartbeat user, health, last heard.
        type Quiet = (String, String, Option<String>, Option<String>, i64);
        let quiet: Vec<Quiet> = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, hostname, user, health, last_seen FROM devices
                     WHERE revoked IS NULL AND silent_event IS NULL
                       AND last_seen < ?1 AND last_seen >= ?2",
                )
                .map_err(db("checking for silent devices"))?;
            stmt.query_map([cutoff.0, heard_since.0], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .map_err(db("checking for silent devices"))?
            .collect::<Result<_, _>>()
            .map_err(db("checking for silent devices"))?
        };
        let mut opened = Vec::new();
        for (id, hostname, user, health, last_seen) in quiet {
            let users = logged_in(user, health.as_deref());
            if users.is_empty() {
                continue;
            }
            let event = Uuid::now_v7();
            let name = if hostname.is_empty() { &id } else { &hostname };
            let detail = format!(
                "{name} has sent nothing since {} while {} {} logged in: its network cut, \
                 its power pulled or its lid shut, or the agent's service stopped without a word.",
                clock_time(UnixMillis(last_seen)),
                users.join(", "),
                if users.len() == 1 { "was" } else { "were" },
            );
            tx.execute(
                "INSERT INTO tamper_events (id, device, time, user, kind, detail)
                 VALUES (?1, ?2, ?3, ?4, 'DeviceSilent', ?5)",
                params![id_str(event), id, last_seen, users.join(", "), detail],
            )
            .map_err(db("recording a silent device"))?;
            tx.execute(
                "UPDATE devices SET silent_since = ?2, silent_event = ?3 WHERE id = ?1",
                params![id, last_seen, id_str(event)],
            )
            .map_err(db("recording a silent device"))?;
            insert_event(&tx, now, "device_silent", Some(&id), &detail)
                .map_err(db("recording a silent device"))?;
            opened.push(event);
        }
        tx.commit().map_err(db("committing silent devices"))?;
        Ok(opened)
    }

    fn revoke_device(&self, id: Uuid, reason: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db("revoking a device"))?;
        let changed = tx
            .execute(
                "UPDATE devices SET revoked = ?2, revoked_reason = ?3, online = 0
                 WHERE id = ?1 AND revoked IS NULL",
                params![id_str(id), now.0, reason],
            )
            .map_err(db("revoking a device"))?;
        if changed == 1 {
            insert_event(&tx, now, "device_revoked", Some(&id_str(id)), reason)
                .map_err(db("recording a revocation"))?;
        }
        let exists: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM devices WHERE id = ?1)",
                [id_str(id)],
                |r| r.get(0),
            )
            .map_err(db("revoking a device"))?;
        tx.commit().map_err(db("committing a revocation"))?;
        Ok(exists)
    }

    fn revoked_devices(&self) -> Result<HashSet<String>, StoreError> {
        let conn = self.reader.get();
        let mut stmt = conn
            .prepare("SELECT id FROM devices WHERE revoked IS NOT NULL")
            .map_err(db("reading revocations"))?;
        stmt.query_map([], |r| r.get(0))
            .map_err(db("reading revocations"))?
            .collect::<Result<_, _>>()
            .map_err(db("reading revocations"))
    }

    fn events(&self, limit: u32) -> Result<Vec<Event>, StoreError> {
        let conn = self.reader.get();
        let mut stmt = conn
            .prepare("SELECT id, time, kind, device, detail FROM events ORDER BY id DESC LIMIT ?1")
            .map_err(db("listing events"))?;
        stmt.query_map([limit], |r| {
            let device: Option<String> = r.get(3)?;
            Ok(Event {
                id: r.get(0)?,
                time: rfc3339(UnixMillis(r.get(1)?)),
                kind: r.get(2)?,
                device: device.and_then(|d| Uuid::parse_str(&d).ok()),
                detail: r.get(4)?,
            })
        })
        .map_err(db("listing events"))?
        .collect::<Result<_, _>>()
        .map_err(db("listing events"))
    }
}

impl ActivityStore for SqliteStore {
    fn aup_decisions(&self, limit: u32) -> Result<Vec<AupDecisionRow>, StoreError> {
        let conn = self.reader.get();
        let mut stmt = conn
            .prepare(
                "SELECT a.user, a.device, COALESCE(d.hostname, ''), a.audience, a.version,
                     a.decision, a.time
                 FROM aup_decisions a LEFT JOIN devices d ON d.id = a.device
                 ORDER BY a.time DESC, a.id DESC LIMIT ?1",
            )
            .map_err(db("listing AUP decisions"))?;
        stmt.query_map([limit], |r| {
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
        let conn = self.reader.get();
        let mut sql = format!("SELECT {TAMPER_COLUMNS} WHERE 1");
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if q.open_only {
            sql.push_str(" AND t.ack_time IS NULL");
        }
        if let Some(device) = q.device {
            sql.push_str(" AND t.device = ?");
            args.push(Box::new(id_str(device)));
        }
        sql.push_str(" ORDER BY t.time DESC, t.id DESC LIMIT ?");
        args.push(Box::new(q.limit));
        let mut stmt = conn.prepare(&sql).map_err(db("listing tamper events"))?;
        stmt.query_map(rusqlite::params_from_iter(args.iter()), tamper_row)
            .map_err(db("listing tamper events"))?
            .collect::<Result<_, _>>()
            .map_err(db("listing tamper events"))
    }

    fn tamper_event(&self, id: Uuid) -> Result<Option<TamperRow>, StoreError> {
        let conn = self.reader.get();
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
        let conn = lock(&self.writer);
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

impl UserStore for SqliteStore {
    fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let changed = lock(&self.writer)
            .execute(
                "INSERT OR IGNORE INTO users (name, role, password_hash, created)
                 VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), password_hash, now.0],
            )
            .map_err(db("adding a user"))?;
        if changed == 0 {
            return Err(StoreError::Refused(format!(
                "a user named {name:?} already exists; choose another name"
            )));
        }
        Ok(())
    }
}

impl PolicyStore for SqliteStore {
    fn policy(&self) -> Result<Policy, StoreError> {
        let body: String = self
            .reader
            .get()
            .query_row(
                "SELECT body FROM policies ORDER BY version DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .map_err(db("reading the policy"))?;
        serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("the stored policy does not parse: {e}")))
    }

    fn set_policy(&self, mut policy: Policy, now: UnixMillis) -> Result<Policy, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db("saving the policy"))?;
        let version: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM policies",
                [],
                |r| r.get(0),
            )
            .map_err(db("saving the policy"))?;
        policy.version = version as u64;
        let body = serde_json::to_string(&policy).expect("a policy serialises");
        tx.execute(
            "INSERT INTO policies (version, created, body) VALUES (?1, ?2, ?3)",
            params![version, now.0, body],
        )
        .map_err(db("saving the policy"))?;
        tx.commit().map_err(db("saving the policy"))?;
        Ok(policy)
    }

    fn publish_policy(
        &self,
        based_on: u64,
        mut policy: Policy,
        audit: &AuditEntry<'_>,
        aup_by: &str,
    ) -> Result<Option<Policy>, StoreError> {
        let during = "publishing the policy";
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db(during))?;
        let newest: i64 = tx
            .query_row("SELECT COALESCE(MAX(version), 0) FROM policies", [], |r| {
                r.get(0)
            })
            .map_err(db(during))?;
        if newest as u64 != based_on {
            return Ok(None);
        }
        policy.version = based_on + 1;
        let body = serde_json::to_string(&policy).expect("a policy serialises");
        tx.execute(
            "INSERT INTO policies (version, created, body) VALUES (?1, ?2, ?3)",
            params![policy.version as i64, audit.time.0, body],
        )
        .map_err(db(during))?;
        for a in &policy.aup {
            tx.execute(
                "INSERT OR IGNORE INTO aup_versions (audience, version, markdown, published, staff)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    super::register::audience_str(a.audience),
                    a.version,
                    a.markdown,
                    audit.time.0,
                    aup_by
                ],
            )
            .map_err(db(during))?;
        }
        insert_audit(&tx, audit).map_err(db(during))?;
        tx.commit().map_err(db(during))?;
        Ok(Some(policy))
    }
}

fn staff_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StaffAccount> {
    let role: String = r.get(1)?;
    Ok(StaffAccount {
        name: r.get(0)?,
        role: stored(&role)?,
        created: UnixMillis(r.get(2)?),
        disabled: r.get::<_, Option<i64>>(3)?.is_some(),
        password_hash: r.get(4)?,
    })
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebSession> {
    let role: String = r.get(2)?;
    Ok(WebSession {
        id_hash: r.get(0)?,
        user: r.get(1)?,
        role: stored(&role)?,
        csrf: r.get(3)?,
        created: UnixMillis(r.get(4)?),
        last_seen: UnixMillis(r.get(5)?),
        origin: r.get(6)?,
        agent: r.get(7)?,
    })
}

const SESSION_COLUMNS: &str =
    "s.id_hash, s.user, u.role, s.csrf, s.created, s.last_seen, s.origin, s.agent";

impl StaffStore for SqliteStore {
    fn staff_account(&self, name: &str) -> Result<Option<StaffAccount>, StoreError> {
        self.reader
            .get()
            .query_row(
                "SELECT name, role, created, disabled, password_hash FROM users WHERE name = ?1",
                [name],
                staff_row,
            )
            .optional()
            .map_err(db("reading a staff account"))
    }

    fn staff_accounts(&self) -> Result<Vec<StaffAccount>, StoreError> {
        let conn = self.reader.get();
        let mut stmt = conn
            .prepare("SELECT name, role, created, disabled, password_hash FROM users ORDER BY name")
            .map_err(db("listing staff accounts"))?;
        stmt.query_map([], staff_row)
            .map_err(db("listing staff accounts"))?
            .collect::<Result<_, _>>()
            .map_err(db("listing staff accounts"))
    }

    fn set_staff_role(&self, name: &str, role: Role) -> Result<bool, StoreError> {
        let changed = lock(&self.writer)
            .execute(
                "UPDATE users SET role = ?2 WHERE name = ?1",
                params![name, role.as_str()],
            )
            .map_err(db("changing a role"))?;
        Ok(changed == 1)
    }

    fn set_staff_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db("disabling an account"))?;
        let changed = tx
            .execute(
                "UPDATE users SET disabled = ?2 WHERE name = ?1",
                params![name, disabled.then_some(now.0)],
            )
            .map_err(db("disabling an account"))?;
        if disabled {
            tx.execute("DELETE FROM web_sessions WHERE user = ?1", [name])
                .map_err(db("ending a disabled account's sessions"))?;
        }
        tx.commit().map_err(db("disabling an account"))?;
        Ok(changed == 1)
    }

    fn set_staff_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let changed = lock(&self.writer)
            .execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, password_hash],
            )
            .map_err(db("changing a password"))?;
        Ok(changed == 1)
    }

    fn open_session(&self, s: &WebSession) -> Result<(), StoreError> {
        lock(&self.writer)
            .execute(
                "INSERT INTO web_sessions (id_hash, user, csrf, created, last_seen, origin, agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.id_hash,
                    s.user,
                    s.csrf,
                    s.created.0,
                    s.last_seen.0,
                    s.origin,
                    s.agent
                ],
            )
            .map_err(db("opening a session"))?;
        Ok(())
    }

    fn session(&self, id_hash: &str) -> Result<Option<WebSession>, StoreError> {
        self.reader
            .get()
            .query_row(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.name = s.user
                     WHERE s.id_hash = ?1 AND u.disabled IS NULL"
                ),
                [id_hash],
                session_row,
            )
            .optional()
            .map_err(db("reading a session"))
    }

    fn touch_session(&self, id_hash: &str, now: UnixMillis) -> Result<(), StoreError> {
        lock(&self.writer)
            .execute(
                "UPDATE web_sessions SET last_seen = ?2 WHERE id_hash = ?1",
                params![id_hash, now.0],
            )
            .map_err(db("recording session activity"))?;
        Ok(())
    }

    fn end_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let changed = lock(&self.writer)
            .execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])
            .map_err(db("ending a session"))?;
        Ok(changed == 1)
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<WebSession>, StoreError> {
        let conn = self.reader.get();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.name = s.user
                 WHERE s.user = ?1 ORDER BY s.created"
            ))
            .map_err(db("listing sessions"))?;
        stmt.query_map([user], session_row)
            .map_err(db("listing sessions"))?
            .collect::<Result<_, _>>()
            .map_err(db("listing sessions"))
    }

    fn purge_sessions(
        &self,
        idle_before: UnixMillis,
        opened_before: UnixMillis,
    ) -> Result<usize, StoreError> {
        lock(&self.writer)
            .execute(
                "DELETE FROM web_sessions WHERE last_seen < ?1 OR created < ?2",
                params![idle_before.0, opened_before.0],
            )
            .map_err(db("purging expired sessions"))
    }
}
