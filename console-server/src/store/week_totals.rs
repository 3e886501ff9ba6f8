//! The weekly report's totals, kept per school week at ingest: per domain,
//! per user, per laptop, and per domain and user. A week's report page
//! reads a few thousand rows however many visits the week holds; only the
//! list of every user on every site (the CSV and the API) reads one row a
//! pair.
//!
//! A visit counts in the school week (in the school's zone) it started in.
//! The zone the totals were counted in is recorded; when the console
//! starts in another zone, [`rebuild`] counts them again from the hourly
//! totals (`visit_hours`), each hour by its first visit.

use jiff::tz::TimeZone;
use protocol::UnixMillis;
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::StoreError;
use super::sqlite::db;
use crate::school_week::Week;

/// A week's totals on one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainTotal {
    /// Empty for time on pages whose address the agent could not tell.
    pub domain: String,
    pub visits: u64,
    pub active_seconds: u64,
    /// Distinct users.
    pub users: u64,
}

/// A week's totals of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTotal {
    pub user: String,
    pub visits: u64,
    pub active_seconds: u64,
    /// Distinct domains.
    pub sites: u64,
}

/// A week's totals on one laptop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTotal {
    pub device: Uuid,
    pub visits: u64,
    pub active_seconds: u64,
    /// Distinct users.
    pub users: u64,
}

/// A week's totals of one user on one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairTotal {
    pub domain: String,
    pub user: String,
    pub visits: u64,
    pub active_seconds: u64,
    pub first: UnixMillis,
    pub last: UnixMillis,
}

/// Everything a week's report page reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeekTotals {
    pub domains: Vec<DomainTotal>,
    pub users: Vec<UserTotal>,
    pub devices: Vec<DeviceTotal>,
}

/// Visits of one user on one domain and laptop, to be counted in a week.
pub struct Counted<'a> {
    pub week: &'a str,
    pub domain: &'a str,
    pub user: &'a str,
    pub device: &'a str,
    pub visits: i64,
    pub active_seconds: i64,
    pub first: i64,
    pub last: i64,
}

/// Adds visits to their week's totals, inside the caller's transaction.
///
/// # Errors
/// A storage failure.
pub fn add(conn: &Connection, c: &Counted<'_>) -> rusqlite::Result<()> {
    let new_pair = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO week_pairs (week, domain, user, visits, active_seconds, first, last)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![c.week, c.domain, c.user, c.visits, c.active_seconds, c.first, c.last])?
        == 1;
    if !new_pair {
        conn.prepare_cached(
            "UPDATE week_pairs SET visits = visits + ?4, active_seconds = active_seconds + ?5,
                 first = min(first, ?6), last = max(last, ?7)
             WHERE week = ?1 AND domain = ?2 AND user = ?3",
        )?
        .execute(params![
            c.week,
            c.domain,
            c.user,
            c.visits,
            c.active_seconds,
            c.first,
            c.last
        ])?;
    }
    let pair = i64::from(new_pair);
    conn.prepare_cached(
        "INSERT INTO week_domains (week, domain, visits, active_seconds, users) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (week, domain) DO UPDATE SET visits = visits + excluded.visits,
             active_seconds = active_seconds + excluded.active_seconds, users = users + excluded.users",
    )?
    .execute(params![c.week, c.domain, c.visits, c.active_seconds, pair])?;
    conn.prepare_cached(
        "INSERT INTO week_users (week, user, visits, active_seconds, sites) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (week, user) DO UPDATE SET visits = visits + excluded.visits,
             active_seconds = active_seconds + excluded.active_seconds, sites = sites + excluded.sites",
    )?
    .execute(params![c.week, c.user, c.visits, c.active_seconds, pair])?;
    let new_device_user = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO week_device_users (week, device, user) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![c.week, c.device, c.user])?;
    conn.prepare_cached(
        "INSERT INTO week_devices (week, device, visits, active_seconds, users) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (week, device) DO UPDATE SET visits = visits + excluded.visits,
             active_seconds = active_seconds + excluded.active_seconds, users = users + excluded.users",
    )?
    .execute(params![c.week, c.device, c.visits, c.active_seconds, new_device_user as i64])?;
    Ok(())
}

/// The name the totals' zone is recorded by.
pub fn zone_name(tz: &TimeZone) -> String {
    tz.iana_name()
        .map_or_else(|| format!("{tz:?}"), str::to_owned)
}

const TABLES: [&str; 5] = [
    "week_pairs",
    "week_domains",
    "week_users",
    "week_device_users",
    "week_devices",
];

/// The zone the totals were counted in, if it is one this machine knows.
///
/// # Errors
/// A storage failure.
pub fn recorded_zone(
    db: &mut super::sql::Db<'_, '_>,
) -> Result<Option<TimeZone>, super::sql::SqlError> {
    let name: Option<String> =
        db.query_opt("SELECT zone FROM week_zone WHERE id = 1", &[], |r| r.get(0))?;
    Ok(name.and_then(|n| TimeZone::get(&n).ok()))
}

/// Counts the totals again from the hourly totals if they were counted in
/// another zone (or never); returns whether it did.
///
/// # Errors
/// A storage failure.
pub fn rebuild(conn: &mut Connection, tz: &TimeZone) -> Result<bool, StoreError> {
    let name = zone_name(tz);
    let counted: Option<String> = conn
        .query_row("SELECT zone FROM week_zone WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(db("reading the weekly totals' zone"))?;
    if counted.as_deref() == Some(name.as_str()) {
        return Ok(false);
    }
    let what = "counting the weekly report's totals";
    let tx = conn.transaction().map_err(db(what))?;
    for table in TABLES {
        tx.execute(&format!("DELETE FROM {table}"), [])
            .map_err(db(what))?;
    }
    {
        let mut rows = tx
            .prepare(
                "SELECT domain, user, device, visits, active_seconds, first, last FROM visit_hours",
            )
            .map_err(db(what))?;
        let mut rows = rows.query([]).map_err(db(what))?;
        while let Some(r) = rows.next().map_err(db(what))? {
            let (domain, user, device): (String, String, String) = (
                r.get(0).map_err(db(what))?,
                r.get(1).map_err(db(what))?,
                r.get(2).map_err(db(what))?,
            );
            let first: i64 = r.get(5).map_err(db(what))?;
            let week = Week::containing(UnixMillis(first), tz).to_string();
            add(
                &tx,
                &Counted {
                    week: &week,
                    domain: &domain,
                    user: &user,
                    device: &device,
                    visits: r.get(3).map_err(db(what))?,
                    active_seconds: r.get(4).map_err(db(what))?,
                    first,
                    last: r.get(6).map_err(db(what))?,
                },
            )
            .map_err(db(what))?;
        }
    }
    tx.execute(
        "INSERT INTO week_zone (id, zone) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET zone = excluded.zone",
        [&name],
    )
    .map_err(db(what))?;
    tx.commit().map_err(db(what))?;
    Ok(true)
}

/// Deletes the totals of weeks before `week`.
///
/// # Errors
/// A storage failure.
pub fn expire_before(conn: &Connection, week: &str) -> rusqlite::Result<()> {
    for table in TABLES {
        conn.execute(&format!("DELETE FROM {table} WHERE week < ?1"), [week])?;
    }
    Ok(())
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

/// A week's totals per domain, user and laptop.
///
/// # Errors
/// A storage failure.
pub fn read(conn: &Connection, week: &str) -> Result<WeekTotals, StoreError> {
    Ok(WeekTotals {
        domains: rows(
            conn,
            "SELECT domain, visits, active_seconds, users FROM week_domains WHERE week = ?1",
            week,
            |r| {
                Ok(DomainTotal {
                    domain: r.get(0)?,
                    visits: count(r.get(1)?),
                    active_seconds: count(r.get(2)?),
                    users: count(r.get(3)?),
                })
            },
        )?,
        users: rows(
            conn,
            "SELECT user, visits, active_seconds, sites FROM week_users WHERE week = ?1",
            week,
            |r| {
                Ok(UserTotal {
                    user: r.get(0)?,
                    visits: count(r.get(1)?),
                    active_seconds: count(r.get(2)?),
                    sites: count(r.get(3)?),
                })
            },
        )?,
        devices: rows(
            conn,
            "SELECT device, visits, active_seconds, users FROM week_devices WHERE week = ?1",
            week,
            |r| {
                let device: String = r.get(0)?;
                Ok(DeviceTotal {
                    device: Uuid::parse_str(&device).unwrap_or_default(),
                    visits: count(r.get(1)?),
                    active_seconds: count(r.get(2)?),
                    users: count(r.get(3)?),
                })
            },
        )?,
    })
}

/// The rows `sql` gives for one week, each made by `row`.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    week: &str,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let what = "reading the week's totals";
    conn.prepare_cached(sql)
        .map_err(db(what))?
        .query_map([week], row)
        .map_err(db(what))?
        .collect::<Result<_, _>>()
        .map_err(db(what))
}

/// A week's totals per domain and user: of the domains in `only`, or of
/// every domain.
///
/// # Errors
/// A storage failure.
pub fn pairs(
    conn: &Connection,
    week: &str,
    only: Option<&[&str]>,
) -> Result<Vec<PairTotal>, StoreError> {
    let what = "reading the week's users per site";
    let row = |r: &rusqlite::Row<'_>| {
        Ok(PairTotal {
            domain: r.get(0)?,
            user: r.get(1)?,
            visits: count(r.get(2)?),
            active_seconds: count(r.get(3)?),
            first: UnixMillis(r.get(4)?),
            last: UnixMillis(r.get(5)?),
        })
    };
    let columns = "SELECT domain, user, visits, active_seconds, first, last FROM week_pairs";
    match only {
        None => conn
            .prepare_cached(&format!("{columns} WHERE week = ?1"))
            .map_err(db(what))?
            .query_map([week], row)
            .map_err(db(what))?
            .collect::<Result<_, _>>()
            .map_err(db(what)),
        Some(domains) => {
            let mut stmt = conn
                .prepare_cached(&format!("{columns} WHERE week = ?1 AND domain = ?2"))
                .map_err(db(what))?;
            let mut out = Vec::new();
            for d in domains {
                for p in stmt.query_map(params![week, d], row).map_err(db(what))? {
                    out.push(p.map_err(db(what))?);
                }
            }
            Ok(out)
        }
    }
}
