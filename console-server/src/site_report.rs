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
use crate::store::visits::VisitTotal;

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
    pub pairs: Vec<PairLine>,
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

/// What [`WeeklyReport::build`] folds.
pub struct Inputs<'a> {
    pub week: Week,
    pub start: UnixMillis,
    pub end: UnixMillis,
    pub totals: &'a [VisitTotal],
    pub previous: &'a HashMap<String, u64>,
    pub new_domains: &'a HashSet<String>,
    pub hostnames: &'a HashMap<Uuid, String>,
}

impl WeeklyReport {
    /// Folds a week's totals.
    pub fn build(input: &Inputs<'_>, categories: &Categories<'_>) -> WeeklyReport {
        #[derive(Default)]
        struct Acc {
            visits: u64,
            active: u64,
            users: HashSet<String>,
        }
        let mut domains: HashMap<&str, Acc> = HashMap::new();
        let mut users: HashMap<&str, (HashSet<&str>, u64, u64)> = HashMap::new();
        let mut devices: HashMap<Uuid, Acc> = HashMap::new();
        let mut pairs: BTreeMap<(&str, &str), (u64, u64, i64, i64)> = BTreeMap::new();
        let (mut visits, mut active) = (0u64, 0u64);
        for t in input.totals {
            visits += t.visits;
            active += t.active_seconds;
            let d = domains.entry(&t.domain).or_default();
            d.visits += t.visits;
            d.active += t.active_seconds;
            if !d.users.contains(&t.user) {
                d.users.insert(t.user.clone());
            }
            let u = users.entry(&t.user).or_default();
            u.0.insert(&t.domain);
            u.1 += t.visits;
            u.2 += t.active_seconds;
            let dev = devices.entry(t.device).or_default();
            dev.visits += t.visits;
            dev.active += t.active_seconds;
            if !dev.users.contains(&t.user) {
                dev.users.insert(t.user.clone());
            }
            let p = pairs
                .entry((&t.domain, &t.user))
                .or_insert((0, 0, i64::MAX, i64::MIN));
            p.0 += t.visits;
            p.1 += t.active_seconds;
            p.2 = p.2.min(t.first.0);
            p.3 = p.3.max(t.last.0);
        }
        let flags: HashMap<&str, Vec<Flag>> = domains
            .keys()
            .map(|d| (*d, categories.flags(d)))
            .filter(|(_, f)| !f.is_empty())
            .collect();

        let mut domain_lines: Vec<DomainLine> = domains
            .iter()
            .map(|(d, a)| DomainLine {
                domain: (*d).to_owned(),
                visits: a.visits,
                users: a.users.len() as u64,
                active_seconds: a.active,
                previous_seconds: input.previous.get(*d).copied().unwrap_or(0),
                flags: flags.get(d).cloned().unwrap_or_default(),
                new: input.new_domains.contains(*d),
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

        let mut user_lines: Vec<UserLine> = users
            .into_iter()
            .map(|(u, (sites, v, a))| {
                let mut flagged_sites: Vec<String> = sites
                    .iter()
                    .filter(|d| flags.contains_key(*d))
                    .map(|d| (*d).to_owned())
                    .collect();
                flagged_sites.sort();
                UserLine {
                    user: u.to_owned(),
                    sites: sites.len() as u64,
                    visits: v,
                    active_seconds: a,
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

        let mut device_lines: Vec<DeviceLine> = devices
            .into_iter()
            .map(|(id, a)| DeviceLine {
                device: id,
                hostname: input.hostnames.get(&id).cloned().unwrap_or_default(),
                visits: a.visits,
                users: a.users.len() as u64,
                active_seconds: a.active,
            })
            .collect();
        device_lines.sort_by(|a, b| {
            b.active_seconds
                .cmp(&a.active_seconds)
                .then(a.hostname.cmp(&b.hostname))
        });

        let pair_lines = pairs
            .into_iter()
            .map(|((d, u), (v, a, first, last))| PairLine {
                domain: d.to_owned(),
                user: u.to_owned(),
                visits: v,
                active_seconds: a,
                first: crate::store::rfc3339(UnixMillis(first)),
                last: crate::store::rfc3339(UnixMillis(last)),
                flags: flags
                    .get(d)
                    .map(|f| f.iter().map(|f| f.category.clone()).collect())
                    .unwrap_or_default(),
            })
            .collect();

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
            pairs: pair_lines,
        }
    }

    /// Reads and folds one week from the store, in the school's zone.
    ///
    /// # Errors
    /// A storage failure.
    pub fn load(
        store: &dyn Store,
        builtin: &DomainCategories,
        week: Week,
    ) -> Result<WeeklyReport, StoreError> {
        let tz = crate::school_week::zone();
        let (start, end) = week.bounds(&tz);
        let (prev_start, prev_end) = week.previous().bounds(&tz);
        let totals = store.visit_totals(start, end)?;
        let previous = store.domain_seconds(prev_start, prev_end)?;
        let new_domains: HashSet<String> =
            store.domains_first_seen(start, end)?.into_iter().collect();
        let hosts: Vec<&str> = {
            let set: HashSet<&str> = totals.iter().map(|t| t.domain.as_str()).collect();
            set.into_iter().filter(|d| !d.is_empty()).collect()
        };
        let imported = store.imported_categories(&hosts)?;
        let imported_info = store
            .domain_lists()?
            .into_iter()
            .map(|l| (l.category, (l.severity, l.definition)))
            .collect();
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
                previous: &previous,
                new_domains: &new_domains,
                hostnames: &hostnames,
            },
            &Categories {
                builtin,
                imported,
                imported_info,
            },
        ))
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
            for p in &report.pairs {
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

    fn total(domain: &str, user: &str, device: u128, visits: u64, active: u64) -> VisitTotal {
        VisitTotal {
            domain: domain.into(),
            user: user.into(),
            device: Uuid::from_u128(device),
            visits,
            active_seconds: active,
            first: UnixMillis(1_000),
            last: UnixMillis(2_000),
        }
    }

    #[test]
    fn folds_domains_users_devices_flags_and_change() {
        let week = Week::parse("2026-W47").unwrap();
        let totals = vec![
            total("bbc.co.uk", "amy", 1, 3, 600),
            total("bbc.co.uk", "ben", 2, 1, 60),
            total("m.bet365.com", "ben", 2, 2, 300),
            total("newsite.example", "amy", 1, 1, 30),
            total("", "amy", 1, 0, 15),
        ];
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
        let r = WeeklyReport::build(
            &Inputs {
                week,
                start: UnixMillis(0),
                end: UnixMillis(1),
                totals: &totals,
                previous: &previous,
                new_domains: &new_domains,
                hostnames: &hostnames,
            },
            &cats,
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
