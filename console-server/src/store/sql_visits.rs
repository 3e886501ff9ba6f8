//! [`super::visits::VisitStore`], on either database.

use super::sql::params;
use super::sql_audit::write_audit;
use super::sql_store::SqlStore;
use super::visits::*;
use super::week_totals::{self, PairTotal, WeekTotals};
use super::{AuditEntry, StoreError};
use crate::school_week::Week;
use crate::store::AuditAction;
use protocol::UnixMillis;
use std::collections::HashMap;

const HOUR_MS: i64 = UnixMillis::HOUR;

impl VisitStore for SqlStore {
    fn week_totals(&self, week: &str) -> Result<WeekTotals, StoreError> {
        self.read("reading the week's totals", |db| {
            week_totals::read(db, week)
        })
    }

    fn week_pairs(&self, week: &str, only: Option<&[&str]>) -> Result<Vec<PairTotal>, StoreError> {
        self.read("reading the week's users per site", |db| {
            week_totals::pairs(db, week, only)
        })
    }

    fn ensure_week_totals(&self, zone: &jiff::tz::TimeZone) -> Result<bool, StoreError> {
        // One transaction (on SQLite, the one writer), so no batch is
        // counted in the old zone after the recount.
        let counted = self.write("counting the weekly report's totals", |db| {
            week_totals::rebuild(db, zone)
        })?;
        *self
            .week_zone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = zone.clone();
        Ok(counted)
    }

    fn domains_first_seen(
        &self,
        start: UnixMillis,
        end: UnixMillis,
    ) -> Result<Vec<String>, StoreError> {
        self.read("reading new domains", |db| {
            db.query_map(
                "SELECT domain FROM domains_seen WHERE first_seen >= ?1 AND first_seen < ?2
                 ORDER BY domain",
                &params![start, end],
                |r| r.get(0),
            )
        })
    }

    fn imported_categories(
        &self,
        hosts: &[&str],
    ) -> Result<HashMap<String, Vec<String>>, StoreError> {
        self.read("reading domain lists", |db| {
            let any: bool = db.query_row(
                "SELECT EXISTS (SELECT 1 FROM domain_categories)",
                &[],
                |r| r.get(0),
            )?;
            let mut out = HashMap::new();
            if !any {
                return Ok(out);
            }
            for host in hosts {
                let mut cats: Vec<String> = Vec::new();
                for parent in wordlists::domains::parents(host) {
                    let found: Vec<String> = db.query_map(
                        "SELECT category FROM domain_categories WHERE domain = ?1",
                        &params![parent],
                        |r| r.get(0),
                    )?;
                    for c in found {
                        if !cats.contains(&c) {
                            cats.push(c);
                        }
                    }
                }
                if !cats.is_empty() {
                    out.insert((*host).to_owned(), cats);
                }
            }
            Ok(out)
        })
    }

    fn import_domain_list(
        &self,
        info: &DomainListInfo,
        domains: &[String],
    ) -> Result<u64, StoreError> {
        let n: i64 = self.write("importing a domain list", |db| {
            db.execute(
                "DELETE FROM domain_lists WHERE category = ?1",
                &params![info.category],
            )?;
            db.execute(
                "INSERT INTO domain_lists (category, severity, definition, imported, source)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                &params![
                    info.category,
                    info.severity,
                    info.definition,
                    info.imported,
                    info.source
                ],
            )?;
            for d in domains {
                db.execute(
                    "INSERT INTO domain_categories (domain, category) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                    &params![d, info.category],
                )?;
            }
            db.query_row(
                "SELECT COUNT(*) FROM domain_categories WHERE category = ?1",
                &params![info.category],
                |r| r.get(0),
            )
        })?;
        Ok(n.max(0) as u64)
    }

    fn domain_lists(&self) -> Result<Vec<DomainListInfo>, StoreError> {
        self.read("listing domain lists", |db| {
            db.query_map(
                "SELECT l.category, l.severity, l.definition, l.imported, l.source,
                        (SELECT COUNT(*) FROM domain_categories c WHERE c.category = l.category)
                 FROM domain_lists l ORDER BY l.category",
                &[],
                |r| {
                    Ok(DomainListInfo {
                        category: r.get(0)?,
                        severity: r.get(1)?,
                        definition: r.get(2)?,
                        imported: r.get(3)?,
                        source: r.get(4)?,
                        domains: r.get::<i64>(5)?.max(0) as u64,
                    })
                },
            )
        })
    }

    fn sign_off_week(&self, s: &WeekSignoff, origin: &str) -> Result<bool, StoreError> {
        self.write("signing off a week", |db| {
            let n = db.execute(
                "INSERT INTO week_signoffs (week, staff, time, notes) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                &params![s.week, s.staff, s.time, s.notes],
            )?;
            if n == 1 {
                write_audit(
                    db,
                    &AuditEntry {
                        time: s.time,
                        actor: &s.staff,
                        action: AuditAction::SignOffWeek,
                        target: &s.week,
                        detail: &s.notes,
                        origin,
                    },
                )?;
            }
            Ok(n == 1)
        })
    }

    fn week_signoffs(&self) -> Result<HashMap<String, WeekSignoff>, StoreError> {
        let rows: Vec<WeekSignoff> = self.read("reading sign-offs", |db| {
            db.query_map(
                "SELECT week, staff, time, notes FROM week_signoffs",
                &[],
                |r| {
                    Ok(WeekSignoff {
                        week: r.get(0)?,
                        staff: r.get(1)?,
                        time: r.get(2)?,
                        notes: r.get(3)?,
                    })
                },
            )
        })?;
        Ok(rows.into_iter().map(|s| (s.week.clone(), s)).collect())
    }

    fn first_visit(&self) -> Result<Option<UnixMillis>, StoreError> {
        let hour: Option<i64> = self.read("reading the first visit", |db| {
            db.query_row("SELECT MIN(hour) FROM visit_hours", &[], |r| r.get(0))
        })?;
        Ok(hour.map(|h| UnixMillis(h * HOUR_MS)))
    }

    fn record_scheduled_report(&self, r: &ScheduledReport) -> Result<(), StoreError> {
        self.write("recording a scheduled report", |db| {
            db.execute(
                "INSERT INTO weekly_reports (week, generated, emailed, email_error) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (week) DO UPDATE SET generated = excluded.generated,
                     emailed = excluded.emailed, email_error = excluded.email_error",
                &params![r.week, r.generated, r.emailed, r.email_error],
            )
        })?;
        Ok(())
    }

    fn scheduled_report(&self, week: &str) -> Result<Option<ScheduledReport>, StoreError> {
        self.read("reading a scheduled report", |db| {
            db.query_opt(
                "SELECT week, generated, emailed, email_error FROM weekly_reports WHERE week = ?1",
                &params![week],
                |r| {
                    Ok(ScheduledReport {
                        week: r.get(0)?,
                        generated: r.get(1)?,
                        emailed: r.get(2)?,
                        email_error: r.get(3)?,
                    })
                },
            )
        })
    }

    fn expire_visits(&self, cutoff: UnixMillis) -> Result<u64, StoreError> {
        // A week's totals go with the week the cutoff falls in.
        let week = Week::containing(cutoff, &self.week_zone()).to_string();
        let rows = self.write("expiring site visits", |db| {
            let rows = db.execute("DELETE FROM site_visits WHERE start < ?1", &params![cutoff])?;
            db.execute(
                "DELETE FROM visit_hours WHERE hour < ?1",
                &params![cutoff.0.div_euclid(HOUR_MS)],
            )?;
            db.execute(
                "DELETE FROM visit_batches WHERE received < ?1",
                &params![cutoff],
            )?;
            week_totals::expire_before(db, &week)?;
            Ok(rows)
        })?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {

    use protocol::{AgentMessage, Policy, SiteVisit, SiteVisits};
    use uuid::Uuid;

    use super::*;
    use crate::store::{Incoming, IngestStore};

    fn visit(url: &str, user: &str, start: i64, active: u32) -> SiteVisit {
        SiteVisit {
            user: user.into(),
            browser: "Firefox".into(),
            url: url.into(),
            domain: "whatever the agent said".into(),
            title: "t".into(),
            start: UnixMillis(start),
            end: UnixMillis(start + 1000),
            active_seconds: active,
            visits: 1,
        }
    }

    #[test]
    fn totals_first_sightings_duplicates_and_retention() {
        crate::store::testing::on_each(Policy::baseline, |store| {
            let device = Uuid::now_v7();
            let day = 86_400_000;
            let t0 = 1_800_000_000_000;
            let batch = Incoming {
                device,
                received: UnixMillis(t0),
                message: AgentMessage::SiteVisits(SiteVisits {
                    id: Uuid::now_v7(),
                    visits: vec![
                        visit("https://www.bbc.co.uk/a", "amy", t0, 30),
                        visit("https://bbc.co.uk/b", "amy", t0 + 60_000, 20),
                        visit("https://old.example/", "ben", t0 - 30 * day, 5),
                    ],
                }),
            };
            store.store_batch(std::slice::from_ref(&batch)).unwrap();
            store.store_batch(&[batch]).unwrap();
            let zone = crate::school_week::zone();
            let this_week = Week::containing(UnixMillis(t0), &zone).to_string();
            let old_week = Week::containing(UnixMillis(t0 - 30 * day), &zone).to_string();
            let week = store.week_totals(&this_week).unwrap();
            assert_eq!(week.domains.len(), 1, "one domain: {week:?}");
            assert_eq!(
                (
                    week.domains[0].domain.as_str(),
                    week.domains[0].visits,
                    week.domains[0].active_seconds,
                    week.domains[0].users
                ),
                ("bbc.co.uk", 2, 50, 1),
                "the console's domain, and a batch sent twice counts once"
            );
            assert_eq!(
                (week.users[0].user.as_str(), week.users[0].sites),
                ("amy", 1)
            );
            assert_eq!((week.devices[0].device, week.devices[0].users), (device, 1));
            let new = store
                .domains_first_seen(UnixMillis(t0 - day), UnixMillis(t0 + day))
                .unwrap();
            assert_eq!(new, ["bbc.co.uk"]);
            assert_eq!(
                store.first_visit().unwrap().unwrap().0 / 3_600_000,
                (t0 - 30 * day) / 3_600_000
            );

            let signoff = WeekSignoff {
                week: "2027-W02".into(),
                staff: "lead".into(),
                time: UnixMillis(t0),
                notes: "checked".into(),
            };
            assert!(store.sign_off_week(&signoff, "10.0.0.5").unwrap());
            assert!(
                !store.sign_off_week(&signoff, "10.0.0.5").unwrap(),
                "once only"
            );
            let audited: Vec<_> = crate::store::AuditStore::audit_query(
                store,
                &crate::store::AuditQuery {
                    limit: 100,
                    ..Default::default()
                },
            )
            .unwrap()
            .into_iter()
            .filter(|e| e.action == "sign_off_week")
            .map(|e| (e.actor, e.target, e.origin))
            .collect();
            assert_eq!(
                audited,
                [(
                    "lead".to_owned(),
                    "2027-W02".to_owned(),
                    "10.0.0.5".to_owned()
                )],
                "one audit entry, written with the sign-off"
            );

            assert_eq!(store.week_totals(&old_week).unwrap().domains.len(), 1);
            let deleted = store.expire_visits(UnixMillis(t0 - day)).unwrap();
            assert_eq!(deleted, 1, "only the old visit");
            assert_eq!(
                store.week_totals(&old_week).unwrap(),
                WeekTotals::default(),
                "its week's totals went with it"
            );
            assert_eq!(store.week_totals(&this_week).unwrap().domains.len(), 1);
        });
    }

    /// Distinct users per site and per laptop and sites per user are
    /// counted as visits arrive, in any order and batch; counted again in
    /// another zone, a visit near midnight on Sunday moves week.
    #[test]
    fn week_totals_count_distinct_people_and_follow_the_zone() {
        crate::store::testing::on_each(Policy::baseline, |store| {
            let utc = jiff::tz::TimeZone::UTC;
            assert!(store.ensure_week_totals(&utc).unwrap(), "counted at first");
            assert!(!store.ensure_week_totals(&utc).unwrap(), "once per zone");
            let (lab1, lab2) = (Uuid::now_v7(), Uuid::now_v7());
            // Monday 2027-01-11 00:30 UTC: in New York, still Sunday (week 1).
            let monday = 1_799_627_400_000;
            let batch = |device, visits| Incoming {
                device,
                received: UnixMillis(monday),
                message: AgentMessage::SiteVisits(SiteVisits {
                    id: Uuid::now_v7(),
                    visits,
                }),
            };
            store
                .store_batch(&[
                    batch(
                        lab1,
                        vec![
                            visit("https://bbc.co.uk/", "amy", monday, 10),
                            visit("https://bbc.co.uk/x", "ben", monday + 1000, 20),
                            visit("https://a.example/", "amy", monday + 2000, 5),
                        ],
                    ),
                    batch(
                        lab2,
                        vec![visit("https://bbc.co.uk/", "ben", monday + 3000, 40)],
                    ),
                ])
                .unwrap();
            let w = store.week_totals("2027-W02").unwrap();
            let bbc = w.domains.iter().find(|d| d.domain == "bbc.co.uk").unwrap();
            assert_eq!((bbc.visits, bbc.active_seconds, bbc.users), (3, 70, 2));
            let ben = w.users.iter().find(|u| u.user == "ben").unwrap();
            assert_eq!((ben.sites, ben.visits, ben.active_seconds), (1, 2, 60));
            let amy = w.users.iter().find(|u| u.user == "amy").unwrap();
            assert_eq!(amy.sites, 2);
            let l1 = w.devices.iter().find(|d| d.device == lab1).unwrap();
            assert_eq!((l1.users, l1.visits), (2, 3));
            let pairs = store.week_pairs("2027-W02", Some(&["bbc.co.uk"])).unwrap();
            assert_eq!(pairs.len(), 2, "amy and ben on the BBC: {pairs:?}");
            assert_eq!(store.week_pairs("2027-W02", None).unwrap().len(), 3);

            let new_york = jiff::tz::TimeZone::get("America/New_York").unwrap();
            assert!(store.ensure_week_totals(&new_york).unwrap());
            assert_eq!(
                store.week_totals("2027-W02").unwrap(),
                WeekTotals::default()
            );
            let moved = store.week_totals("2027-W01").unwrap();
            assert_eq!(moved.users.len(), 2, "{moved:?}");
            assert_eq!(
                moved
                    .domains
                    .iter()
                    .find(|d| d.domain == "bbc.co.uk")
                    .unwrap()
                    .users,
                2
            );
        });
    }
}
