//! The weekly site-visit report: where pupils spent their time in one ISO
//! week, what was flagged, what was new, and how it moved against the week
//! before. [`WeeklyReport::build`] is a plain function of the store's
//! totals and the category lists; the web page, the CSV, the PDF, the JSON
//! API and the Monday mail all show the same value.

use std::collections::{BTreeMap, HashMap, HashSet};

use protocol::UnixMillis;
use serde::Serialize;
use uuid::Uuid;
use wordlists::domains::DomainCategories;

use crate::school_week::Week;
use crate::store::Store;
use crate::store::StoreError;
use crate::store::week_totals::{PairTotal, WeekTotals};

/// Site and user totals counted from (site, user) rows; no laptops.
fn totals_of(pairs: &[PairTotal]) -> WeekTotals {
    use crate::store::week_totals::{DomainTotal, UserTotal};
    let mut domains: BTreeMap<&str, DomainTotal> = BTreeMap::new();
    let mut users: BTreeMap<&str, UserTotal> = BTreeMap::new();
    for p in pairs {
        let d = domains.entry(&p.domain).or_insert_with(|| DomainTotal {
            domain: p.domain.clone(),
            visits: 0,
            active_seconds: 0,
            users: 0,
        });
        d.visits += p.visits;
        d.active_seconds += p.active_seconds;
        d.users += 1;
        let u = users.entry(&p.user).or_insert_with(|| UserTotal {
            user: p.user.clone(),
            visits: 0,
            active_seconds: 0,
            sites: 0,
        });
        u.visits += p.visits;
        u.active_seconds += p.active_seconds;
        u.sites += 1;
    }
    WeekTotals {
        domains: domains.into_values().collect(),
        users: users.into_values().collect(),
        devices: Vec::new(),
    }
}

/// The built-in domain lists, parsed once.
pub fn builtin_categories() -> &'static DomainCategories {
    static BUILTIN: std::sync::LazyLock<DomainCategories> = std::sync::LazyLock::new(|| {
        DomainCategories::builtin().unwrap_or_else(|e| {
            tracing::error!("a built-in domain list is broken ({e}); it is left out");
            DomainCategories::default()
        })
    });
    &BUILTIN
}

/// A category a domain is listed in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Flag {
    pub category: String,
    pub severity: u8,
}

/// One domain's week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainLine {
    /// Empty for time on pages whose address the agent could not tell.
    pub domain: String,
    pub visits: u64,
    pub users: u64,
    pub active_seconds: u64,
    pub previous_seconds: u64,
    pub flags: Vec<Flag>,
    /// First seen this week.
    pub new: bool,
}

/// One user's week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserLine {
    pub user: String,
    pub sites: u64,
    pub visits: u64,
    pub active_seconds: u64,
    pub flagged_sites: Vec<String>,
}

/// One laptop's week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceLine {
    pub device: Uuid,
    pub hostname: String,
    pub visits: u64,
    pub users: u64,
    pub active_seconds: u64,
}

/// One domain and user, as the JSON API lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairLine {
    pub domain: String,
    pub user: String,
    pub visits: u64,
    pub active_seconds: u64,
    pub first: String,
    pub last: String,
    pub flags: Vec<String>,
}

/// Flagged domains of one category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlaggedCategory {
    pub category: String,
    pub severity: u8,
    pub definition: String,
    /// Indexes into [`WeeklyReport::domains`].
    pub domains: Vec<usize>,
}

/// Everything the report shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeeklyReport {
    pub week: String,
    pub start: UnixMillis,
    pub end: UnixMillis,
    pub visits: u64,
    pub active_seconds: u64,
    pub previous_seconds: u64,
    pub users: u64,
    /// By active time, most first.
    pub domains: Vec<DomainLine>,
    pub users_lines: Vec<UserLine>,
    pub devices: Vec<DeviceLine>,
    /// Gravest first.
    pub flagged: Vec<FlaggedCategory>,
    /// By domain, then user; see [`WeeklyReport::pair_lines`]. Empty unless
    /// loaded with [`Detail::Pairs`].
    #[serde(skip)]
    pub pairs: Vec<Pair>,
}

/// One domain and user, by index into [`WeeklyReport::domains`] and
/// [`WeeklyReport::users_lines`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    pub domain: usize,
    pub user: usize,
    pub visits: u64,
    pub active_seconds: u64,
    pub first: i64,
    pub last: i64,
}

/// Where a domain's categories come from: the built-in lists and the
/// school's imported ones (already looked up per domain).
pub struct Categories<'a> {
    pub builtin: &'a DomainCategories,
    pub imported: HashMap<String, Vec<String>>,
    /// Severity and definition of each imported category.
    pub imported_info: HashMap<String, (u8, String)>,
}

impl Categories<'_> {
    fn flags(&self, domain: &str) -> Vec<Flag> {
        let mut flags: Vec<Flag> = self
            .builtin
            .lookup(domain)
            .into_iter()
            .map(|c| Flag {
                category: c.name.clone(),
                severity: c.severity,
            })
            .collect();
        for c in self.imported.get(domain).into_iter().flatten() {
            if !flags.iter().any(|f| &f.category == c) {
                let severity = self.imported_info.get(c).map_or(3, |i| i.0);
                flags.push(Flag {
                    category: c.clone(),
                    severity,
                });
            }
        }
        flags.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.category.cmp(&b.category))
        });
        flags
    }

    fn definition(&self, category: &str) -> String {
        self.builtin
            .category(category)
            .map(|c| c.definition.clone())
            .or_else(|| self.imported_info.get(category).map(|i| i.1.clone()))
            .unwrap_or_default()
    }
}

/// What [`WeeklyReport::build`] puts together.
pub struct Inputs<'a> {
    pub week: Week,
    pub start: UnixMillis,
    pub end: UnixMillis,
    pub totals: &'a WeekTotals,
    /// Every user on every site, or `None` for the report without them
    /// (see [`Detail`]).
    pub pairs: Option<&'a [PairTotal]>,
    /// The users of each flagged domain (the pairs of those domains only).
    pub flagged_pairs: &'a [PairTotal],
    pub previous: &'a HashMap<String, u64>,
    pub new_domains: &'a HashSet<String>,
    pub hostnames: &'a HashMap<Uuid, String>,
}

/// How much of a week [`WeeklyReport::load`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Sites, users, laptops and flags: what the page, the PDF and the
    /// mail show. A few thousand rows however big the week.
    Summary,
    /// Also every user on every site ([`WeeklyReport::pairs`]): the CSV of
    /// pairs and the API. One row a pair.
    Pairs,
}

impl WeeklyReport {
    /// Puts a week's totals together: sorts, flags, and gives each user
    /// their flagged sites.
    pub fn build(input: &Inputs<'_>, categories: &Categories<'_>) -> WeeklyReport {
        let totals = input.totals;
        let visits = totals.domains.iter().map(|d| d.visits).sum();
        let active = totals.domains.iter().map(|d| d.active_seconds).sum();

        let mut domain_lines: Vec<DomainLine> = totals
            .domains
            .iter()
            .map(|d| DomainLine {
                domain: d.domain.clone(),
                visits: d.visits,
                users: d.users,
                active_seconds: d.active_seconds,
                previous_seconds: input.previous.get(&d.domain).copied().unwrap_or(0),
                flags: categories.flags(&d.domain),
                new: input.new_domains.contains(&d.domain),
            })
            .collect();
        domain_lines.sort_by(|a, b| {
            b.active_seconds
                .cmp(&a.active_seconds)
                .then(b.visits.cmp(&a.visits))
                .then(a.domain.cmp(&b.domain))
        });

        let mut by_category: BTreeMap<&str, (u8, Vec<usize>)> = BTreeMap::new();
        for (i, line) in domain_lines.iter().enumerate() {
            for f in &line.flags {
                let e = by_category
                    .entry(&f.category)
                    .or_insert((f.severity, Vec::new()));
                e.1.push(i);
            }
        }
        let mut flagged: Vec<FlaggedCategory> = by_category
            .into_iter()
            .map(|(c, (severity, domains))| FlaggedCategory {
                category: c.to_owned(),
                severity,
                definition: categories.definition(c),
                domains,
            })
            .collect();
        flagged.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.category.cmp(&b.category))
        });

        // Each user's flagged sites, from the pairs of flagged domains.
        let flagged_domains: HashSet<&str> = domain_lines
            .iter()
            .filter(|d| !d.flags.is_empty())
            .map(|d| d.domain.as_str())
            .collect();
        let mut flagged_of: HashMap<&str, Vec<String>> = HashMap::new();
        for p in input.flagged_pairs {
            if flagged_domains.contains(p.domain.as_str()) {
                flagged_of
                    .entry(p.user.as_str())
                    .or_default()
                    .push(p.domain.clone());
            }
        }
        let mut user_lines: Vec<UserLine> = totals
            .users
            .iter()
            .map(|u| {
                let mut flagged_sites = flagged_of.remove(u.user.as_str()).unwrap_or_default();
                flagged_sites.sort();
                flagged_sites.dedup();
                UserLine {
                    user: u.user.clone(),
                    sites: u.sites,
                    visits: u.visits,
                    active_seconds: u.active_seconds,
                    flagged_sites,
                }
            })
            .collect();
        user_lines.sort_by(|a, b| {
            b.flagged_sites
                .len()
                .cmp(&a.flagged_sites.len())
                .then(b.active_seconds.cmp(&a.active_seconds))
                .then(a.user.cmp(&b.user))
        });

        let mut device_lines: Vec<DeviceLine> = totals
            .devices
            .iter()
            .map(|d| DeviceLine {
                device: d.device,
                hostname: input.hostnames.get(&d.device).cloned().unwrap_or_default(),
                visits: d.visits,
                users: d.users,
                active_seconds: d.active_seconds,
            })
            .collect();
        device_lines.sort_by(|a, b| {
            b.active_seconds
                .cmp(&a.active_seconds)
                .then(a.hostname.cmp(&b.hostname))
        });

        // Pairs keep indexes into the domain and user lines; their text
        // form is made only for the API and the CSV.
        let domain_line_of: HashMap<&str, usize> = domain_lines
            .iter()
            .enumerate()
            .map(|(i, d)| (d.domain.as_str(), i))
            .collect();
        let user_line_of: HashMap<&str, usize> = user_lines
            .iter()
            .enumerate()
            .map(|(i, u)| (u.user.as_str(), i))
            .collect();
        let mut pair_rows: Vec<Pair> = input
            .pairs
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                Some(Pair {
                    domain: *domain_line_of.get(p.domain.as_str())?,
                    user: *user_line_of.get(p.user.as_str())?,
                    visits: p.visits,
                    active_seconds: p.active_seconds,
                    first: p.first.0,
                    last: p.last.0,
                })
            })
            .collect();
        pair_rows.sort_by(|a, b| {
            domain_lines[a.domain]
                .domain
                .cmp(&domain_lines[b.domain].domain)
                .then(user_lines[a.user].user.cmp(&user_lines[b.user].user))
        });

        WeeklyReport {
            week: input.week.to_string(),
            start: input.start,
            end: input.end,
            visits,
            active_seconds: active,
            previous_seconds: input.previous.values().sum(),
            users: user_lines.len() as u64,
            domains: domain_lines,
            users_lines: user_lines,
            devices: device_lines,
            flagged,
            pairs: pair_rows,
        }
    }

    /// The (domain, user) rows as the JSON API and the CSV list them.
    pub fn pair_lines(&self) -> impl Iterator<Item = PairLine> + '_ {
        self.pairs.iter().map(|p| {
            let d = &self.domains[p.domain];
            PairLine {
                domain: d.domain.clone(),
                user: self.users_lines[p.user].user.clone(),
                visits: p.visits,
                active_seconds: p.active_seconds,
                first: crate::store::rfc3339(UnixMillis(p.first)),
                last: crate::store::rfc3339(UnixMillis(p.last)),
                flags: d.flags.iter().map(|f| f.category.clone()).collect(),
            }
        })
    }

    /// Reads one week from the store, in the school's zone, and puts it
    /// together; with [`Detail::Pairs`], every user on every site too.
    ///
    /// # Errors
    /// A storage failure.
    pub fn load(
        store: &dyn Store,
        builtin: &DomainCategories,
        week: Week,
        detail: Detail,
    ) -> Result<WeeklyReport, StoreError> {
        Self::load_for(store, builtin, week, detail, None)
    }

    /// [`WeeklyReport::load`] for the accounts in `only` (a reviewer's
    /// groups, see [`crate::store::scope`]), or for everyone with `None`.
    /// A report for some accounts is counted from their (site, user)
    /// rows; it has no laptop table (a laptop's totals are not split by
    /// user).
    ///
    /// # Errors
    /// A storage failure.
    pub fn load_for(
        store: &dyn Store,
        builtin: &DomainCategories,
        week: Week,
        detail: Detail,
        only: Option<&HashSet<String>>,
    ) -> Result<WeeklyReport, StoreError> {
        let tz = crate::school_week::zone();
        let (start, end) = week.bounds(&tz);
        let name = week.to_string();
        // The accounts' own rows, and the totals counted from them.
        let theirs = |week: &str| -> Result<Option<Vec<PairTotal>>, StoreError> {
            let Some(only) = only else { return Ok(None) };
            let mut pairs = store.week_pairs(week, None)?;
            pairs.retain(|p| only.contains(&p.user));
            Ok(Some(pairs))
        };
        let own_pairs = theirs(&name)?;
        let totals = match &own_pairs {
            Some(pairs) => totals_of(pairs),
            None => store.week_totals(&name)?,
        };
        let previous_totals = match theirs(&week.previous().to_string())? {
            Some(pairs) => totals_of(&pairs),
            None => store.week_totals(&week.previous().to_string())?,
        };
        let previous: HashMap<String, u64> = previous_totals
            .domains
            .into_iter()
            .map(|d| (d.domain, d.active_seconds))
            .collect();
        let new_domains: HashSet<String> =
            store.domains_first_seen(start, end)?.into_iter().collect();
        let hosts: Vec<&str> = totals
            .domains
            .iter()
            .map(|d| d.domain.as_str())
            .filter(|d| !d.is_empty())
            .collect();
        let imported = store.imported_categories(&hosts)?;
        let imported_info = store
            .domain_lists()?
            .into_iter()
            .map(|l| (l.category, (l.severity, l.definition)))
            .collect();
        let categories = Categories {
            builtin,
            imported,
            imported_info,
        };
        let flagged_hosts: Vec<&str> = hosts
            .iter()
            .copied()
            .filter(|d| !categories.flags(d).is_empty())
            .collect();
        let (pairs, flagged_pairs) = match (own_pairs, detail) {
            (Some(own), Detail::Pairs) => (Some(own.clone()), own),
            (Some(own), Detail::Summary) => (None, own),
            (None, Detail::Pairs) => {
                let all = store.week_pairs(&name, None)?;
                (Some(all.clone()), all)
            }
            (None, Detail::Summary) => (None, store.week_pairs(&name, Some(&flagged_hosts))?),
        };
        let hostnames = store
            .devices(UnixMillis(i64::MAX))?
            .into_iter()
            .map(|d| (d.id, d.hostname))
            .collect();
        Ok(WeeklyReport::build(
            &Inputs {
                week,
                start,
                end,
                totals: &totals,
                pairs: pairs.as_deref(),
                flagged_pairs: &flagged_pairs,
                previous: &previous,
                new_domains: &new_domains,
                hostnames: &hostnames,
            },
            &categories,
        ))
    }

    /// [`WeeklyReport::load_for`] the records a scope covers.
    ///
    /// # Errors
    /// A storage failure.
    pub fn load_in_scope(
        store: &dyn Store,
        week: Week,
        detail: Detail,
        scope: &crate::store::scope::Scope,
    ) -> Result<WeeklyReport, StoreError> {
        let only = store.scope_accounts(scope)?;
        Self::load_for(store, builtin_categories(), week, detail, only.as_ref())
    }

    /// The domains first seen this week.
    pub fn new_domains(&self) -> impl Iterator<Item = &DomainLine> {
        self.domains.iter().filter(|d| d.new)
    }
}

/// `1 h 05 min`, `4 min 10 s`, `12 s`.
pub fn duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    if h > 0 {
        format!("{h} h {m:02} min")
    } else if m > 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{s} s")
    }
}

/// The change against last week, as `+25%`, `−40%`, `new` or `=`.
pub fn change(now: u64, before: u64) -> String {
    if before == 0 {
        return if now == 0 { "=".into() } else { "new".into() };
    }
    let pct = (now as f64 - before as f64) / before as f64 * 100.0;
    if pct.abs() < 0.5 {
        "=".into()
    } else if pct > 0.0 {
        format!("+{pct:.0}%")
    } else {
        format!("−{:.0}%", -pct)
    }
}

/// The report as CSV: one table (`domains`, `users`, `devices` or
/// `pairs`), every text cell quoted and defused.
pub fn csv(report: &WeeklyReport, table: &str) -> Option<String> {
    use crate::csv::cell;
    let flags = |f: &[Flag]| {
        f.iter()
            .map(|f| f.category.as_str())
            .collect::<Vec<_>>()
            .join(";")
    };
    let mut out = String::new();
    match table {
        "domains" => {
            out.push_str(
                "week,domain,visits,users,active_seconds,previous_week_seconds,new,flags\n",
            );
            for d in &report.domains {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{},{}\n",
                    cell(&report.week),
                    cell(&d.domain),
                    d.visits,
                    d.users,
                    d.active_seconds,
                    d.previous_seconds,
                    d.new,
                    cell(&flags(&d.flags))
                ));
            }
        }
        "users" => {
            out.push_str("week,user,sites,visits,active_seconds,flagged_sites\n");
            for u in &report.users_lines {
                out.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    cell(&report.week),
                    cell(&u.user),
                    u.sites,
                    u.visits,
                    u.active_seconds,
                    cell(&u.flagged_sites.join(";"))
                ));
            }
        }
        "devices" => {
            out.push_str("week,device,hostname,visits,users,active_seconds\n");
            for d in &report.devices {
                out.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    cell(&report.week),
                    d.device,
                    cell(&d.hostname),
                    d.visits,
                    d.users,
                    d.active_seconds
                ));
            }
        }
        "pairs" => {
            out.push_str("domain,user,visits,active_seconds,first,last,flags\n");
            for p in report.pair_lines() {
                out.push_str(&format!(
                    "{},{},{},{},{},{},{}\n",
                    cell(&p.domain),
                    cell(&p.user),
                    p.visits,
                    p.active_seconds,
                    p.first,
                    p.last,
                    cell(&p.flags.join(";"))
                ));
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::week_totals::{DeviceTotal, DomainTotal, UserTotal};

    /// What the store keeps at ingest for these visits (domain, user,
    /// laptop, visits, active seconds), summed the plain way.
    fn week_of(rows: &[(&str, &str, u128, u64, u64)]) -> (WeekTotals, Vec<PairTotal>) {
        let mut t = WeekTotals::default();
        let mut pairs: Vec<PairTotal> = Vec::new();
        let mut device_users: HashSet<(u128, &str)> = HashSet::new();
        for &(domain, user, device, visits, active) in rows {
            let new_pair = !pairs.iter().any(|p| p.domain == domain && p.user == user);
            if new_pair {
                pairs.push(PairTotal {
                    domain: domain.into(),
                    user: user.into(),
                    visits: 0,
                    active_seconds: 0,
                    first: UnixMillis(1_000),
                    last: UnixMillis(2_000),
                });
            }
            let p = pairs
                .iter_mut()
                .find(|p| p.domain == domain && p.user == user)
                .unwrap();
            p.visits += visits;
            p.active_seconds += active;
            match t.domains.iter_mut().find(|d| d.domain == domain) {
                Some(d) => {
                    d.visits += visits;
                    d.active_seconds += active;
                    d.users += u64::from(new_pair);
                }
                None => t.domains.push(DomainTotal {
                    domain: domain.into(),
                    visits,
                    active_seconds: active,
                    users: 1,
                }),
            }
            match t.users.iter_mut().find(|u| u.user == user) {
                Some(u) => {
                    u.visits += visits;
                    u.active_seconds += active;
                    u.sites += u64::from(new_pair);
                }
                None => t.users.push(UserTotal {
                    user: user.into(),
                    visits,
                    active_seconds: active,
                    sites: 1,
                }),
            }
            let new_device_user = device_users.insert((device, user));
            match t
                .devices
                .iter_mut()
                .find(|d| d.device == Uuid::from_u128(device))
            {
                Some(d) => {
                    d.visits += visits;
                    d.active_seconds += active;
                    d.users += u64::from(new_device_user);
                }
                None => t.devices.push(DeviceTotal {
                    device: Uuid::from_u128(device),
                    visits,
                    active_seconds: active,
                    users: 1,
                }),
            }
        }
        (t, pairs)
    }

    #[test]
    fn folds_domains_users_devices_flags_and_change() {
        let week = Week::parse("2026-W47").unwrap();
        let (totals, pairs) = week_of(&[
            ("bbc.co.uk", "amy", 1, 3, 600),
            ("bbc.co.uk", "ben", 2, 1, 60),
            ("m.bet365.com", "ben", 2, 2, 300),
            ("newsite.example", "amy", 1, 1, 30),
            ("", "amy", 1, 0, 15),
        ]);
        let previous = HashMap::from([("bbc.co.uk".to_owned(), 300u64)]);
        let new_domains = HashSet::from(["newsite.example".to_owned()]);
        let hostnames = HashMap::from([(Uuid::from_u128(1), "lab-01".to_owned())]);
        let builtin = DomainCategories::builtin().unwrap();
        let cats = Categories {
            builtin: &builtin,
            imported: HashMap::from([(
                "newsite.example".to_owned(),
                vec!["school-watch".to_owned()],
            )]),
            imported_info: HashMap::from([("school-watch".to_owned(), (2, "Ours.".to_owned()))]),
        };
        let inputs = |pairs: Option<&[PairTotal]>, flagged: &[PairTotal]| {
            WeeklyReport::build(
                &Inputs {
                    week,
                    start: UnixMillis(0),
                    end: UnixMillis(1),
                    totals: &totals,
                    pairs,
                    flagged_pairs: flagged,
                    previous: &previous,
                    new_domains: &new_domains,
                    hostnames: &hostnames,
                },
                &cats,
            )
        };
        let r = inputs(Some(&pairs), &pairs);
        // The summary reads only the pairs of flagged sites, and gives the
        // same report but for the list of pairs.
        let flagged: Vec<PairTotal> = pairs
            .iter()
            .filter(|p| p.domain != "bbc.co.uk" && !p.domain.is_empty())
            .cloned()
            .collect();
        let summary = inputs(None, &flagged);
        assert!(summary.pairs.is_empty());
        assert_eq!(
            WeeklyReport {
                pairs: Vec::new(),
                ..r.clone()
            },
            summary
        );
        assert_eq!((r.visits, r.active_seconds, r.users), (7, 1005, 2));
        assert_eq!(r.domains[0].domain, "bbc.co.uk");
        assert_eq!((r.domains[0].users, r.domains[0].active_seconds), (2, 660));
        assert_eq!(
            change(r.domains[0].active_seconds, r.domains[0].previous_seconds),
            "+120%"
        );
        let bet = r
            .domains
            .iter()
            .find(|d| d.domain == "m.bet365.com")
            .unwrap();
        assert_eq!(bet.flags[0].category, "gambling", "a subdomain inherits");
        assert_eq!(r.flagged[0].category, "gambling");
        assert_eq!(r.flagged[1].category, "school-watch");
        assert_eq!(r.flagged[1].definition, "Ours.");
        assert_eq!(
            r.new_domains()
                .map(|d| d.domain.as_str())
                .collect::<Vec<_>>(),
            ["newsite.example"]
        );
        assert_eq!(
            r.users_lines[0].user, "amy",
            "one flagged site each; amy has more time"
        );
        assert_eq!(r.users_lines[1].flagged_sites, ["m.bet365.com"]);
        assert_eq!(r.devices[0].hostname, "lab-01");
        assert_eq!(r.pairs.len(), 5);
        let csv = csv(&r, "domains").unwrap();
        assert!(
            csv.contains("\"m.bet365.com\",2,1,300,0,false,\"gambling\""),
            "{csv}"
        );
        assert!(super::csv(&r, "nope").is_none());
    }

    #[test]
    fn durations_and_changes_read_plainly() {
        assert_eq!(duration(3900), "1 h 05 min");
        assert_eq!(duration(250), "4 min 10 s");
        assert_eq!(duration(12), "12 s");
        assert_eq!(change(50, 100), "−50%");
        assert_eq!(change(5, 0), "new");
        assert_eq!(change(0, 0), "=");
        assert_eq!(change(100, 100), "=");
    }
}
