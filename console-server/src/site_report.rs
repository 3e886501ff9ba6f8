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
    /// By domain, then user; see [`WeeklyReport::pair_lines`].
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
    /// Folds a week's totals. Names are interned once, so the fold is a
    /// few hash lookups per row.
    pub fn build(input: &Inputs<'_>, categories: &Categories<'_>) -> WeeklyReport {
        let mut domain_ids: HashMap<&str, u32> = HashMap::new();
        let mut user_ids: HashMap<&str, u32> = HashMap::new();
        let mut domain_names: Vec<&str> = Vec::new();
        let mut user_names: Vec<&str> = Vec::new();
        // (domain, user) → visits, active, first, last.
        let mut pairs: HashMap<(u32, u32), (u64, u64, i64, i64)> = HashMap::new();
        // device → visits, active, users.
        let mut devices: HashMap<Uuid, (u64, u64, HashSet<u32>)> = HashMap::new();
        let (mut visits, mut active) = (0u64, 0u64);
        for t in input.totals {
            visits += t.visits;
            active += t.active_seconds;
            let d = *domain_ids.entry(&t.domain).or_insert_with(|| {
                domain_names.push(&t.domain);
                (domain_names.len() - 1) as u32
            });
            let u = *user_ids.entry(&t.user).or_insert_with(|| {
                user_names.push(&t.user);
                (user_names.len() - 1) as u32
            });
            let p = pairs.entry((d, u)).or_insert((0, 0, i64::MAX, i64::MIN));
            p.0 += t.visits;
            p.1 += t.active_seconds;
            p.2 = p.2.min(t.first.0);
            p.3 = p.3.max(t.last.0);
            let dev = devices.entry(t.device).or_default();
            dev.0 += t.visits;
            dev.1 += t.active_seconds;
            dev.2.insert(u);
        }
        let flags: Vec<Vec<Flag>> = domain_names.iter().map(|d| categories.flags(d)).collect();

        // Per domain and per user, from the pairs.
        let mut per_domain = vec![(0u64, 0u64, 0u64); domain_names.len()];
        let mut per_user = vec![(0u64, 0u64, 0u64, Vec::<u32>::new()); user_names.len()];
        for (&(d, u), &(v, a, _, _)) in &pairs {
            let pd = &mut per_domain[d as usize];
            pd.0 += v;
            pd.1 += a;
            pd.2 += 1;
            let pu = &mut per_user[u as usize];
            pu.0 += 1;
            pu.1 += v;
            pu.2 += a;
            if !flags[d as usize].is_empty() {
                pu.3.push(d);
            }
        }

        let mut order: Vec<usize> = (0..domain_names.len()).collect();
        order.sort_by(|&a, &b| {
            per_domain[b]
                .1
                .cmp(&per_domain[a].1)
                .then(per_domain[b].0.cmp(&per_domain[a].0))
                .then(domain_names[a].cmp(domain_names[b]))
        });
        let domain_lines: Vec<DomainLine> = order
            .iter()
            .map(|&i| DomainLine {
                domain: domain_names[i].to_owned(),
                visits: per_domain[i].0,
                users: per_domain[i].2,
                active_seconds: per_domain[i].1,
                previous_seconds: input.previous.get(domain_names[i]).copied().unwrap_or(0),
                flags: flags[i].clone(),
                new: input.new_domains.contains(domain_names[i]),
            })
            .collect();

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

        let mut user_lines: Vec<UserLine> = per_user
            .into_iter()
            .enumerate()
            .map(|(u, (sites, v, a, flagged))| {
                let mut flagged_sites: Vec<String> = flagged
                    .iter()
                    .map(|&d| domain_names[d as usize].to_owned())
                    .collect();
                flagged_sites.sort();
                UserLine {
                    user: user_names[u].to_owned(),
                    sites,
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
            .map(|(id, (v, a, users))| DeviceLine {
                device: id,
                hostname: input.hostnames.get(&id).cloned().unwrap_or_default(),
                visits: v,
                users: users.len() as u64,
                active_seconds: a,
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
        let mut pair_rows: Vec<Pair> = pairs
            .into_iter()
            .map(|((d, u), (v, a, first, last))| Pair {
                domain: domain_line_of[domain_names[d as usize]],
                user: user_line_of[user_names[u as usize]],
                visits: v,
                active_seconds: a,
                first,
                last,
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
