//! The SQLite store's ingest: a batch of agents' records stored durably
//! in one transaction (screenshots first, synced, before the writer is
//! taken), idempotent by record id.

use std::collections::{BTreeMap, HashMap, HashSet};

use protocol::{AgentMessage, Decision, Screenshot};
use rusqlite::{Connection, Transaction, params};
use uuid::Uuid;

use super::register::audience_str;
use super::sqlite::*;
use super::sqlite_alerts;
use super::week_totals;
use super::*;
use crate::alerts::rules::{Happening, RuleSet};
use crate::school_week::Week;

fn record_exists(tx: &Connection, table: &str, id: Uuid) -> rusqlite::Result<bool> {
    tx.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"),
        [id_str(id)],
        |r| r.get(0),
    )
}

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

/// What storing a batch needs besides the records: the zone its visits
/// are counted in, and the alert rules its records are matched against.
struct Context<'a> {
    zone: &'a jiff::tz::TimeZone,
    rules: &'a RuleSet,
}

fn insert_record(
    tx: &Transaction<'_>,
    item: &Incoming,
    image: Option<&str>,
    cx: &Context<'_>,
) -> rusqlite::Result<Stored> {
    let device = id_str(item.device);
    accounts_seen(tx, &item.message, &device)?;
    let received = item.received;
    let inserted = match &item.message {
        AgentMessage::Capture(c) => {
            let new = insert_capture(tx, c, &device, received, image)?;
            if new {
                let what = Happening::Capture {
                    severity: c.severity,
                    category: &c.category,
                };
                sqlite_alerts::plan(tx, cx.rules, what, "capture", &id_str(c.id), received)?;
            }
            new
        }
        AgentMessage::Concern(c) => {
            let new = insert_concern(tx, c, &device, received, image)?;
            if new {
                sqlite_alerts::plan(
                    tx,
                    cx.rules,
                    Happening::Concern,
                    "concern",
                    &id_str(c.id),
                    received,
                )?;
            }
            new
        }
        AgentMessage::SiteVisits(batch) => {
            insert_site_visits(tx, batch, &device, received, cx.zone)?
        }
        AgentMessage::AupDecision(a) => {
            insert_aup_decision(tx, a, audience_str(a.audience), &device)?
        }
        AgentMessage::GroupAupDecision(g) => {
            insert_aup_decision(tx, &g.decision, &g.group, &device)?
        }
        AgentMessage::TamperEvent(t) => {
            let new = insert_tamper_event(tx, t, &device)?;
            if new {
                sqlite_alerts::plan(
                    tx,
                    cx.rules,
                    Happening::Tamper,
                    "tamper",
                    &id_str(t.id),
                    received,
                )?;
            }
            new
        }
        AgentMessage::Heartbeat(h) => {
            update_heartbeat(tx, h, &device)?;
            return Ok(Stored::Applied);
        }
        AgentMessage::Health(h) | AgentMessage::HealthV7(h) => {
            update_health(tx, h, &device)?;
            return Ok(Stored::Applied);
        }
        AgentMessage::Hello(_) => return Ok(Stored::Applied),
    };
    Ok(if inserted {
        Stored::New
    } else {
        Stored::Duplicate
    })
}

/// The register of users: each account seen on the laptop, and when.
fn accounts_seen(
    tx: &Transaction<'_>,
    message: &AgentMessage,
    device: &str,
) -> rusqlite::Result<()> {
    match message {
        AgentMessage::Capture(c) => account_seen(tx, &c.user, device, c.time.0),
        AgentMessage::Concern(c) => account_seen(tx, &c.user, device, c.time.0),
        AgentMessage::AupDecision(a) => account_seen(tx, &a.user, device, a.time.0),
        AgentMessage::GroupAupDecision(g) => {
            account_seen(tx, &g.decision.user, device, g.decision.time.0)
        }
        AgentMessage::Heartbeat(h) => match &h.user {
            Some(user) => account_seen(tx, user, device, h.time.0),
            None => Ok(()),
        },
        AgentMessage::SiteVisits(batch) => {
            let mut last: HashMap<&str, i64> = HashMap::new();
            for v in &batch.visits {
                let t = last.entry(v.user.as_str()).or_insert(v.end.0);
                *t = (*t).max(v.end.0);
            }
            for (user, time) in last {
                account_seen(tx, user, device, time)?;
            }
            Ok(())
        }
        AgentMessage::TamperEvent(_)
        | AgentMessage::Hello(_)
        | AgentMessage::Health(_)
        | AgentMessage::HealthV7(_) => Ok(()),
    }
}

fn insert_capture(
    tx: &Transaction<'_>,
    c: &protocol::Capture,
    device: &str,
    received: UnixMillis,
    image: Option<&str>,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO captures (id, device, time, received, user, source, app,
                 window_title, url, term, category, severity, context, match_start, match_end,
                 image, image_missing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            id_str(c.id),
            device,
            c.time.0,
            received.0,
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
    )?;
    Ok(n == 1)
}

/// A pupil's own report: a capture of source `concern`, top severity, its
/// text as the context.
fn insert_concern(
    tx: &Transaction<'_>,
    c: &protocol::Concern,
    device: &str,
    received: UnixMillis,
    image: Option<&str>,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO captures (id, device, time, received, user, source, app,
                 window_title, url, term, category, severity, context, match_start, match_end,
                 image, image_missing)
             VALUES (?1, ?2, ?3, ?4, ?5, 'concern', ?6, ?7, ?8, ?9, ?10, 5, ?11, 0, 0, ?12, ?13)",
        params![
            id_str(c.id),
            device,
            c.time.0,
            received.0,
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
    )?;
    Ok(n == 1)
}

/// A batch of visits, once: the rows, their hourly and weekly totals and
/// the first sighting of each domain.
fn insert_site_visits(
    tx: &Transaction<'_>,
    batch: &protocol::SiteVisits,
    device: &str,
    received: UnixMillis,
    zone: &jiff::tz::TimeZone,
) -> rusqlite::Result<bool> {
    let new = tx.execute(
        "INSERT OR IGNORE INTO visit_batches (id, device, received) VALUES (?1, ?2, ?3)",
        params![id_str(batch.id), device, received.0],
    )?;
    if new == 0 {
        return Ok(false);
    }
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
    // Each visit counts in the school week it started in.
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
        let week = Week::containing(v.start, zone).to_string();
        week_totals::add(
            tx,
            &week_totals::Counted {
                week: &week,
                domain: &domain,
                user: &v.user,
                device,
                visits: i64::from(v.visits),
                active_seconds: i64::from(v.active_seconds),
                first: v.start.0,
                last: end,
            },
        )?;
    }
    Ok(true)
}

/// An AUP answer; `audience` is the audience's name or, for a year
/// group's own AUP, the group's.
fn insert_aup_decision(
    tx: &Transaction<'_>,
    a: &protocol::AupDecision,
    audience: &str,
    device: &str,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
        "INSERT OR IGNORE INTO aup_decisions (id, device, time, user, audience, version, decision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id_str(a.id),
            device,
            a.time.0,
            a.user,
            audience,
            a.aup_version,
            decision_str(a.decision),
        ],
    )?;
    Ok(n == 1)
}

fn insert_tamper_event(
    tx: &Transaction<'_>,
    t: &protocol::TamperEvent,
    device: &str,
) -> rusqlite::Result<bool> {
    let n = tx.execute(
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
    )?;
    Ok(n == 1)
}

/// The laptop's latest figures, kept on its row.
fn update_heartbeat(
    tx: &Transaction<'_>,
    h: &protocol::Heartbeat,
    device: &str,
) -> rusqlite::Result<()> {
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
    Ok(())
}

/// What watches the laptop's sessions, kept as its latest, like the
/// heartbeat's figures.
fn update_health(
    tx: &Transaction<'_>,
    h: &protocol::DeviceHealth,
    device: &str,
) -> rusqlite::Result<()> {
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
        "semantic": h.semantic,
    });
    tx.execute(
        "UPDATE devices SET health = ?2 WHERE id = ?1",
        params![device, health.to_string()],
    )?;
    Ok(())
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
            let conn = self.sqlite_reader()?;
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
        let zone = self.week_zone();
        let rules = super::alerts::AlertStore::alert_rules(self);
        let cx = Context {
            zone: &zone,
            rules: &rules,
        };
        let mut conn = self.sqlite_writer()?;
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
            out.push(insert_record(&tx, item, key, &cx).map_err(db("storing a record"))?);
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
