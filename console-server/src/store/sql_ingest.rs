//! The store's ingest: a batch of agents' records stored durably in one
//! transaction (screenshots first, durable, before the transaction
//! begins), idempotent by record id.

use std::collections::{BTreeMap, HashMap, HashSet};

use protocol::{AgentMessage, Decision, Screenshot};
use uuid::Uuid;

use super::register::audience_str;
use super::sql::{Db, SqlError, params};
use super::sql_alerts;
use super::sql_store::*;
use super::week_totals;
use super::*;
use crate::alerts::rules::{Happening, RuleSet};
use crate::school_week::Week;

fn record_exists(db: &mut Db<'_, '_>, table: &str, id: Uuid) -> Result<bool, SqlError> {
    db.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM {table} WHERE id = ?1)"),
        &params![id],
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

/// The accounts a batch saw, each once with its earliest and latest
/// time, for the register of users. Written after the batch's records, in
/// the order of their names: two console instances' batches then lock the
/// account rows they share in one order, and never deadlock on them (in
/// the order of the records they did, and PostgreSQL took a second to find
/// each deadlock).
#[derive(Default)]
struct AccountsSeen {
    accounts: BTreeMap<String, (i64, i64)>,
    on_devices: BTreeMap<(String, String), (i64, i64)>,
}

impl AccountsSeen {
    /// Notes that `user` was on `device` at `time`.
    fn note(&mut self, user: &str, device: &str, time: i64) {
        if user.is_empty() {
            return;
        }
        let widen = |span: &mut (i64, i64)| *span = (span.0.min(time), span.1.max(time));
        widen(self.accounts.entry(user.to_owned()).or_insert((time, time)));
        widen(
            self.on_devices
                .entry((user.to_owned(), device.to_owned()))
                .or_insert((time, time)),
        );
    }

    fn write(&self, db: &mut Db<'_, '_>) -> Result<(), SqlError> {
        for (account, (first, last)) in &self.accounts {
            db.execute(
                "INSERT INTO accounts (account, first_seen, last_seen) VALUES (?1, ?2, ?3)
                 ON CONFLICT (account) DO UPDATE SET
                     first_seen = CASE WHEN accounts.first_seen IS NULL
                         OR excluded.first_seen < accounts.first_seen
                         THEN excluded.first_seen ELSE accounts.first_seen END,
                     last_seen = CASE WHEN accounts.last_seen IS NULL
                         OR excluded.last_seen > accounts.last_seen
                         THEN excluded.last_seen ELSE accounts.last_seen END",
                &params![account, first, last],
            )?;
        }
        for ((account, device), (first, last)) in &self.on_devices {
            db.execute(
                "INSERT INTO account_devices (account, device, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (account, device) DO UPDATE SET
                     first_seen = CASE WHEN excluded.first_seen < account_devices.first_seen
                         THEN excluded.first_seen ELSE account_devices.first_seen END,
                     last_seen = CASE WHEN excluded.last_seen > account_devices.last_seen
                         THEN excluded.last_seen ELSE account_devices.last_seen END",
                &params![account, device, first, last],
            )?;
        }
        Ok(())
    }
}

/// A batch's site visits as they add to the totals other laptops share
/// (an hour's, a site's, a week's): written after the batch's records, each
/// table once, its rows in the order of their keys, so that two console
/// instances' batches never deadlock on them. The totals are those of
/// adding the visits one by one.
#[derive(Default)]
struct VisitTotals {
    hours: BTreeMap<HourKey, Tally>,
    /// Each domain's first visit.
    domains: BTreeMap<String, i64>,
    counted: Vec<Visited>,
}

/// A row of `visit_hours`: (hour, domain, user, laptop).
type HourKey = (i64, String, String, String);

/// Visits, active seconds, first and last.
type Tally = (i64, i64, i64, i64);

/// A visit as its week counts it.
struct Visited {
    week: String,
    domain: String,
    user: String,
    device: String,
    tally: Tally,
}

impl VisitTotals {
    fn add(
        &mut self,
        v: &protocol::SiteVisit,
        domain: String,
        device: &str,
        end: i64,
        zone: &jiff::tz::TimeZone,
    ) {
        let (visits, active) = (i64::from(v.visits), i64::from(v.active_seconds));
        let (first, last) = (v.start.0, end);
        let hour = self
            .hours
            .entry((
                v.start.hour_number(),
                domain.clone(),
                v.user.clone(),
                device.to_owned(),
            ))
            .or_insert((0, 0, first, last));
        *hour = (
            hour.0 + visits,
            hour.1 + active,
            hour.2.min(first),
            hour.3.max(last),
        );
        let seen = self.domains.entry(domain.clone()).or_insert(first);
        *seen = (*seen).min(first);
        // Each visit counts in the school week it started in.
        let week = Week::containing(v.start, zone).to_string();
        self.counted.push(Visited {
            week,
            domain,
            user: v.user.clone(),
            device: device.to_owned(),
            tally: (visits, active, first, last),
        });
    }

    fn write(&self, db: &mut Db<'_, '_>) -> Result<(), SqlError> {
        for ((hour, domain, user, device), (visits, active, first, last)) in &self.hours {
            db.execute(
                "INSERT INTO visit_hours (hour, domain, user, device, visits, active_seconds, first, last)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (hour, domain, user, device) DO UPDATE SET
                         visits = visit_hours.visits + excluded.visits,
                         active_seconds = visit_hours.active_seconds + excluded.active_seconds,
                         first = CASE WHEN excluded.first < visit_hours.first
                             THEN excluded.first ELSE visit_hours.first END,
                         last = CASE WHEN excluded.last > visit_hours.last
                             THEN excluded.last ELSE visit_hours.last END",
                &params![hour, domain, user, device, visits, active, first, last],
            )?;
        }
        for (domain, first) in &self.domains {
            db.execute(
                "INSERT INTO domains_seen (domain, first_seen) VALUES (?1, ?2)
                     ON CONFLICT (domain) DO UPDATE SET first_seen = CASE
                         WHEN excluded.first_seen < domains_seen.first_seen
                         THEN excluded.first_seen ELSE domains_seen.first_seen END",
                &params![domain, first],
            )?;
        }
        let counted: Vec<week_totals::Counted<'_>> = self
            .counted
            .iter()
            .map(|v| {
                let (visits, active_seconds, first, last) = v.tally;
                week_totals::Counted {
                    week: &v.week,
                    domain: &v.domain,
                    user: &v.user,
                    device: &v.device,
                    visits,
                    active_seconds,
                    first,
                    last,
                }
            })
            .collect();
        week_totals::add_all(db, &counted)
    }
}

/// What storing a batch needs besides the records: the zone its visits
/// are counted in, and the alert rules its records are matched against.
struct Context<'a> {
    zone: &'a jiff::tz::TimeZone,
    rules: &'a RuleSet,
}

fn insert_record(
    db: &mut Db<'_, '_>,
    item: &Incoming,
    image: Option<&str>,
    cx: &Context<'_>,
    seen: &mut AccountsSeen,
    totals: &mut VisitTotals,
) -> Result<Stored, SqlError> {
    let device = id_str(item.device);
    accounts_seen(seen, &item.message, &device);
    let received = item.received;
    let inserted = match &item.message {
        AgentMessage::Capture(c) => {
            let new = insert_capture(db, c, &device, received, image)?;
            if new {
                let what = Happening::Capture {
                    severity: c.severity,
                    category: &c.category,
                };
                sql_alerts::plan_in(
                    db,
                    cx.rules,
                    what,
                    "capture",
                    &id_str(c.id),
                    &device,
                    received,
                )?;
            }
            new
        }
        AgentMessage::Concern(c) => {
            let new = insert_concern(db, c, &device, received, image)?;
            if new {
                sql_alerts::plan_in(
                    db,
                    cx.rules,
                    Happening::Concern,
                    "concern",
                    &id_str(c.id),
                    &device,
                    received,
                )?;
            }
            new
        }
        AgentMessage::SiteVisits(batch) => {
            insert_site_visits(db, batch, &device, received, cx.zone, totals)?
        }
        AgentMessage::AupDecision(a) => {
            insert_aup_decision(db, a, audience_str(a.audience), &device)?
        }
        AgentMessage::GroupAupDecision(g) => {
            insert_aup_decision(db, &g.decision, &g.group, &device)?
        }
        AgentMessage::TamperEvent(t) => {
            let new = insert_tamper_event(db, t, &device)?;
            if new {
                sql_alerts::plan_in(
                    db,
                    cx.rules,
                    Happening::Tamper,
                    "tamper",
                    &id_str(t.id),
                    &device,
                    received,
                )?;
            }
            new
        }
        AgentMessage::Heartbeat(h) => {
            update_heartbeat(db, h, &device)?;
            return Ok(Stored::Applied);
        }
        AgentMessage::Health(h) | AgentMessage::HealthV7(h) => {
            update_health(db, h, &device)?;
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
fn accounts_seen(seen: &mut AccountsSeen, message: &AgentMessage, device: &str) {
    match message {
        AgentMessage::Capture(c) => seen.note(&c.user, device, c.time.0),
        AgentMessage::Concern(c) => seen.note(&c.user, device, c.time.0),
        AgentMessage::AupDecision(a) => seen.note(&a.user, device, a.time.0),
        AgentMessage::GroupAupDecision(g) => seen.note(&g.decision.user, device, g.decision.time.0),
        AgentMessage::Heartbeat(h) => {
            if let Some(user) = &h.user {
                seen.note(user, device, h.time.0);
            }
        }
        AgentMessage::SiteVisits(batch) => {
            // Each account as seen when its last visit in the batch ended.
            let mut last: HashMap<&str, i64> = HashMap::new();
            for v in &batch.visits {
                let t = last.entry(v.user.as_str()).or_insert(v.end.0);
                *t = (*t).max(v.end.0);
            }
            for (user, time) in last {
                seen.note(user, device, time);
            }
        }
        AgentMessage::TamperEvent(_)
        | AgentMessage::Hello(_)
        | AgentMessage::Health(_)
        | AgentMessage::HealthV7(_) => {}
    }
}

fn insert_capture(
    db: &mut Db<'_, '_>,
    c: &protocol::Capture,
    device: &str,
    received: UnixMillis,
    image: Option<&str>,
) -> Result<bool, SqlError> {
    let n = db.execute(
        "INSERT INTO captures (id, device, time, received, user, source, app,
                 window_title, url, term, category, severity, context, match_start, match_end,
                 image, image_missing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT DO NOTHING",
        &params![
            c.id,
            device,
            c.time,
            received,
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
    db: &mut Db<'_, '_>,
    c: &protocol::Concern,
    device: &str,
    received: UnixMillis,
    image: Option<&str>,
) -> Result<bool, SqlError> {
    let n = db.execute(
        "INSERT INTO captures (id, device, time, received, user, source, app,
                 window_title, url, term, category, severity, context, match_start, match_end,
                 image, image_missing)
             VALUES (?1, ?2, ?3, ?4, ?5, 'concern', ?6, ?7, ?8, ?9, ?10, 5, ?11, 0, 0, ?12, ?13)
         ON CONFLICT DO NOTHING",
        &params![
            c.id,
            device,
            c.time,
            received,
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
    db: &mut Db<'_, '_>,
    batch: &protocol::SiteVisits,
    device: &str,
    received: UnixMillis,
    zone: &jiff::tz::TimeZone,
    totals: &mut VisitTotals,
) -> Result<bool, SqlError> {
    let new = db.execute(
        "INSERT INTO visit_batches (id, device, received) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
        &params![batch.id, device, received],
    )?;
    if new == 0 {
        return Ok(false);
    }
    // Each visit counts in the school week it started in.
    for v in &batch.visits {
        // The console decides the domain from the address, the
        // same way for every agent.
        let domain = wordlists::domains::host_of(&v.url).unwrap_or_default();
        let end = v.end.0.max(v.start.0);
        db.execute(
            "INSERT INTO site_visits (batch, device, user, browser, url, domain, title,
                     start, end, active_seconds, visits)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            &params![
                batch.id,
                device,
                v.user,
                v.browser,
                v.url,
                domain,
                v.title,
                v.start,
                end,
                v.active_seconds,
                v.visits,
            ],
        )?;
        totals.add(v, domain, device, end, zone);
    }
    Ok(true)
}

/// An AUP answer; `audience` is the audience's name or, for a year
/// group's own AUP, the group's.
fn insert_aup_decision(
    db: &mut Db<'_, '_>,
    a: &protocol::AupDecision,
    audience: &str,
    device: &str,
) -> Result<bool, SqlError> {
    let n = db.execute(
        "INSERT INTO aup_decisions (id, device, time, user, audience, version, decision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
        &params![
            a.id,
            device,
            a.time,
            a.user,
            audience,
            a.aup_version,
            decision_str(a.decision),
        ],
    )?;
    Ok(n == 1)
}

fn insert_tamper_event(
    db: &mut Db<'_, '_>,
    t: &protocol::TamperEvent,
    device: &str,
) -> Result<bool, SqlError> {
    let n = db.execute(
        "INSERT INTO tamper_events (id, device, time, user, kind, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
        &params![
            t.id,
            device,
            t.time,
            t.user,
            format!("{:?}", t.kind),
            t.detail,
        ],
    )?;
    Ok(n == 1)
}

/// The laptop's latest figures, kept on its row.
fn update_heartbeat(
    db: &mut Db<'_, '_>,
    h: &protocol::Heartbeat,
    device: &str,
) -> Result<(), SqlError> {
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
    db.execute(
        "UPDATE devices SET hostname = ?2, os = ?3, agent_version = ?4, user = ?5,
             heartbeat = ?6
         WHERE id = ?1",
        &params![
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
    db: &mut Db<'_, '_>,
    h: &protocol::DeviceHealth,
    device: &str,
) -> Result<(), SqlError> {
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
    db.execute(
        "UPDATE devices SET health = ?2 WHERE id = ?1",
        &params![device, health.to_string()],
    )?;
    Ok(())
}

/// What the live feed announces of a new record.
fn live_event(message: &AgentMessage) -> Option<super::live::Live> {
    use super::live::Live;
    match message {
        // A pupil's concern is stored as a capture of its own.
        AgentMessage::Capture(c) => Some(Live::Capture(c.id)),
        AgentMessage::Concern(c) => Some(Live::Capture(c.id)),
        AgentMessage::TamperEvent(t) => Some(Live::Tamper(t.id)),
        _ => None,
    }
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

impl IngestStore for SqlStore {
    fn store_batch(&self, batch: &[Incoming]) -> Result<Vec<Stored>, StoreError> {
        // Images of records not stored yet are made durable first, before
        // the batch's transaction begins: a slow disk then holds up no page
        // that needs to write (a sign-in, a triage). A record found absent
        // here but stored meanwhile (by another console instance sharing
        // the database) rewrites the same bytes under the same key, and
        // its row is ignored as a duplicate.
        let candidates: Vec<(usize, &'static str, Uuid, &[u8])> = {
            let mut seen = HashSet::new();
            batch
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let table = table_of(&item.message)?;
                    let (id, bytes) = image_of(&item.message)?;
                    seen.insert(id).then_some((i, table, id, bytes))
                })
                .collect()
        };
        let pending: Vec<(usize, Uuid, &[u8])> = if candidates.is_empty() {
            Vec::new()
        } else {
            let absent = self.read("checking for a resend", |db| {
                let mut absent = Vec::new();
                for (k, (_, table, id, _)) in candidates.iter().enumerate() {
                    if !record_exists(db, table, *id)? {
                        absent.push(k);
                    }
                }
                Ok(absent)
            })?;
            absent
                .into_iter()
                .map(|k| {
                    let (i, _, id, bytes) = candidates[k];
                    (i, id, bytes)
                })
                .collect()
        };
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
        let mut key_of: BTreeMap<usize, &str> = BTreeMap::new();
        for ((i, _, _), key) in pending.iter().zip(&keys) {
            key_of.insert(*i, key);
        }
        let mut last_seen: BTreeMap<Uuid, i64> = BTreeMap::new();
        for item in batch {
            let seen = last_seen.entry(item.device).or_insert(item.received.0);
            *seen = (*seen).max(item.received.0);
        }
        // Every statement below is safe beside another instance's ingest
        // by itself (inserts keyed by the laptop's id that do nothing on a
        // conflict, upserts that add to totals).
        self.write_concurrent("storing a batch of records", |db| {
            // A resend whose first copy is in this same batch has no key;
            // its row is ignored as a duplicate anyway.
            let mut out = Vec::with_capacity(batch.len());
            let mut seen = AccountsSeen::default();
            let mut totals = VisitTotals::default();
            for (i, item) in batch.iter().enumerate() {
                let key = key_of.get(&i).copied();
                let stored = insert_record(db, item, key, &cx, &mut seen, &mut totals)?;
                if stored == Stored::New
                    && let Some(event) = live_event(&item.message)
                {
                    super::live::notify(db, event)?;
                }
                out.push(stored);
            }
            seen.write(db)?;
            totals.write(db)?;
            for (device, at) in &last_seen {
                db.execute(
                    "UPDATE devices SET last_seen = CASE
                         WHEN last_seen IS NULL OR last_seen < ?2 THEN ?2 ELSE last_seen END
                     WHERE id = ?1",
                    &params![device, at],
                )?;
            }
            Ok(out)
        })
    }
}
