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
use uuid::Uuid;

use super::sql::{Db, Row, SqlError, params};
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
pub fn add(db: &mut Db<'_, '_>, c: &Counted<'_>) -> Result<(), SqlError> {
    add_all(db, std::slice::from_ref(c))
}

/// Adds many visits to their weeks' totals, inside the caller's
/// transaction: each table's rows once, one table after another, each in
/// the order of its keys. Two console instances adding batches that share
/// rows (a popular site's week, a pupil's week) then lock them in one
/// order and never deadlock. The totals are those of adding the visits
/// one by one: sums, earliest and latest, and a user or site counted once,
/// when its pair is new.
///
/// # Errors
/// A storage failure.
pub fn add_all(db: &mut Db<'_, '_>, counted: &[Counted<'_>]) -> Result<(), SqlError> {
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Clone, Copy)]
    struct Sum {
        visits: i64,
        active_seconds: i64,
        first: i64,
        last: i64,
    }
    impl Sum {
        fn of(c: &Counted<'_>) -> Sum {
            Sum {
                visits: c.visits,
                active_seconds: c.active_seconds,
                first: c.first,
                last: c.last,
            }
        }
        fn add(&mut self, c: &Counted<'_>) {
            self.visits += c.visits;
            self.active_seconds += c.active_seconds;
            self.first = self.first.min(c.first);
            self.last = self.last.max(c.last);
        }
    }
    let mut pairs: BTreeMap<(&str, &str, &str), Sum> = BTreeMap::new();
    for c in counted {
        pairs
            .entry((c.week, c.domain, c.user))
            .and_modify(|s| s.add(c))
            .or_insert_with(|| Sum::of(c));
    }
    let mut new_pairs = BTreeSet::new();
    for (&(week, domain, user), s) in &pairs {
        let new_pair = db.execute(
            "INSERT INTO week_pairs (week, domain, user, visits, active_seconds, first, last)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
            &params![
                week,
                domain,
                user,
                s.visits,
                s.active_seconds,
                s.first,
                s.last
            ],
        )? == 1;
        if new_pair {
            new_pairs.insert((week, domain, user));
        } else {
            db.execute(
                "UPDATE week_pairs SET visits = visits + ?4, active_seconds = active_seconds + ?5,
                     first = CASE WHEN ?6 < first THEN ?6 ELSE first END,
                     last = CASE WHEN ?7 > last THEN ?7 ELSE last END
                 WHERE week = ?1 AND domain = ?2 AND user = ?3",
                &params![
                    week,
                    domain,
                    user,
                    s.visits,
                    s.active_seconds,
                    s.first,
                    s.last
                ],
            )?;
        }
    }
    // (visits, active seconds, new pairs) per week and domain, and per
    // week and user.
    let mut domains: BTreeMap<(&str, &str), (i64, i64, i64)> = BTreeMap::new();
    let mut users: BTreeMap<(&str, &str), (i64, i64, i64)> = BTreeMap::new();
    for (&(week, domain, user), s) in &pairs {
        let new = i64::from(new_pairs.contains(&(week, domain, user)));
        for (total, key) in [(&mut domains, (week, domain)), (&mut users, (week, user))] {
            let t = total.entry(key).or_default();
            *t = (t.0 + s.visits, t.1 + s.active_seconds, t.2 + new);
        }
    }
    for (&(week, domain), &(visits, active_seconds, new)) in &domains {
        db.execute(
            "INSERT INTO week_domains (week, domain, visits, active_seconds, users) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (week, domain) DO UPDATE SET visits = week_domains.visits + excluded.visits,
                 active_seconds = week_domains.active_seconds + excluded.active_seconds,
                 users = week_domains.users + excluded.users",
            &params![week, domain, visits, active_seconds, new],
        )?;
    }
    for (&(week, user), &(visits, active_seconds, new)) in &users {
        db.execute(
            "INSERT INTO week_users (week, user, visits, active_seconds, sites) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (week, user) DO UPDATE SET visits = week_users.visits + excluded.visits,
                 active_seconds = week_users.active_seconds + excluded.active_seconds,
                 sites = week_users.sites + excluded.sites",
            &params![week, user, visits, active_seconds, new],
        )?;
    }
    // Per week and laptop: its visits and the users new to it.
    let mut device_users: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
    let mut devices: BTreeMap<(&str, &str), (i64, i64, i64)> = BTreeMap::new();
    for c in counted {
        device_users.insert((c.week, c.device, c.user));
        let t = devices.entry((c.week, c.device)).or_default();
        *t = (t.0 + c.visits, t.1 + c.active_seconds, t.2);
    }
    for &(week, device, user) in &device_users {
        let new = db.execute(
            "INSERT INTO week_device_users (week, device, user) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            &params![week, device, user],
        )?;
        if let Some(t) = devices.get_mut(&(week, device)) {
            t.2 += new as i64;
        }
    }
    for (&(week, device), &(visits, active_seconds, new)) in &devices {
        db.execute(
            "INSERT INTO week_devices (week, device, visits, active_seconds, users) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (week, device) DO UPDATE SET visits = week_devices.visits + excluded.visits,
                 active_seconds = week_devices.active_seconds + excluded.active_seconds,
                 users = week_devices.users + excluded.users",
            &params![week, device, visits, active_seconds, new],
        )?;
    }
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
pub fn recorded_zone(db: &mut Db<'_, '_>) -> Result<Option<TimeZone>, SqlError> {
    let name: Option<String> =
        db.query_opt("SELECT zone FROM week_zone WHERE id = 1", &[], |r| r.get(0))?;
    Ok(name.and_then(|n| TimeZone::get(&n).ok()))
}

/// Counts the totals again from the hourly totals, in the caller's
/// transaction, if they were counted in another zone (or never); returns
/// whether it did.
///
/// # Errors
/// A storage failure.
pub fn rebuild(db: &mut Db<'_, '_>, tz: &TimeZone) -> Result<bool, SqlError> {
    let name = zone_name(tz);
    let counted: Option<String> =
        db.query_opt("SELECT zone FROM week_zone WHERE id = 1", &[], |r| r.get(0))?;
    if counted.as_deref() == Some(name.as_str()) {
        return Ok(false);
    }
    for table in TABLES {
        db.execute(&format!("DELETE FROM {table}"), &[])?;
    }
    type Hour = (String, String, String, i64, i64, i64, i64);
    let hours: Vec<Hour> = db.query_map(
        "SELECT domain, user, device, visits, active_seconds, first, last FROM visit_hours",
        &[],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        },
    )?;
    for (domain, user, device, visits, active_seconds, first, last) in hours {
        let week = Week::containing(UnixMillis(first), tz).to_string();
        add(
            db,
            &Counted {
                week: &week,
                domain: &domain,
                user: &user,
                device: &device,
                visits,
                active_seconds,
                first,
                last,
            },
        )?;
    }
    db.execute(
        "INSERT INTO week_zone (id, zone) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET zone = excluded.zone",
        &params![name],
    )?;
    Ok(true)
}

/// Deletes the totals of weeks before `week`.
///
/// # Errors
/// A storage failure.
pub fn expire_before(db: &mut Db<'_, '_>, week: &str) -> Result<(), SqlError> {
    for table in TABLES {
        db.execute(
            &format!("DELETE FROM {table} WHERE week < ?1"),
            &params![week],
        )?;
    }
    Ok(())
}

fn count(r: &Row, i: usize) -> Result<u64, SqlError> {
    Ok(r.get::<i64>(i)?.max(0) as u64)
}

/// A week's totals per domain, user and laptop.
///
/// # Errors
/// A storage failure.
pub fn read(db: &mut Db<'_, '_>, week: &str) -> Result<WeekTotals, SqlError> {
    Ok(WeekTotals {
        domains: db.query_map(
            "SELECT domain, visits, active_seconds, users FROM week_domains WHERE week = ?1",
            &params![week],
            |r| {
                Ok(DomainTotal {
                    domain: r.get(0)?,
                    visits: count(r, 1)?,
                    active_seconds: count(r, 2)?,
                    users: count(r, 3)?,
                })
            },
        )?,
        users: db.query_map(
            "SELECT user, visits, active_seconds, sites FROM week_users WHERE week = ?1",
            &params![week],
            |r| {
                Ok(UserTotal {
                    user: r.get(0)?,
                    visits: count(r, 1)?,
                    active_seconds: count(r, 2)?,
                    sites: count(r, 3)?,
                })
            },
        )?,
        devices: db.query_map(
            "SELECT device, visits, active_seconds, users FROM week_devices WHERE week = ?1",
            &params![week],
            |r| {
                let device: String = r.get(0)?;
                Ok(DeviceTotal {
                    device: Uuid::parse_str(&device).unwrap_or_default(),
                    visits: count(r, 1)?,
                    active_seconds: count(r, 2)?,
                    users: count(r, 3)?,
                })
            },
        )?,
    })
}

/// A week's totals per domain and user: of the domains in `only`, or of
/// every domain.
///
/// # Errors
/// A storage failure.
pub fn pairs(
    db: &mut Db<'_, '_>,
    week: &str,
    only: Option<&[&str]>,
) -> Result<Vec<PairTotal>, SqlError> {
    let row = |r: &Row| {
        Ok(PairTotal {
            domain: r.get(0)?,
            user: r.get(1)?,
            visits: count(r, 2)?,
            active_seconds: count(r, 3)?,
            first: r.get(4)?,
            last: r.get(5)?,
        })
    };
    let columns = "SELECT domain, user, visits, active_seconds, first, last FROM week_pairs";
    match only {
        None => db.query_map(&format!("{columns} WHERE week = ?1"), &params![week], row),
        Some(domains) => {
            let sql = format!("{columns} WHERE week = ?1 AND domain = ?2");
            let mut out = Vec::new();
            for d in domains {
                out.extend(db.query_map(&sql, &params![week, d], row)?);
            }
            Ok(out)
        }
    }
}
