//! [`super::groups::GroupStore`], on either database.

use protocol::UnixMillis;
use protocol::layers::{GroupAup, GroupKind, GroupLayers, Layer, Overrides, Term};

use super::groups::GroupStore;
use super::sql::{Db, SqlError, params};
use super::sql_audit::write_audit;
use super::sql_store::SqlStore;
use super::{AuditAction, AuditEntry, StoreError};

fn abort(e: StoreError) -> SqlError {
    SqlError::Abort(Box::new(e))
}

fn read_layers(db: &mut Db<'_, '_>) -> Result<Vec<Layer>, SqlError> {
    let rows: Vec<(String, String)> = db.query_map(
        "SELECT grp, overrides FROM policy_layers ORDER BY grp",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    rows.into_iter()
        .map(|(group, json)| {
            let overrides = serde_json::from_str(&json).map_err(|e| {
                abort(StoreError::Corrupt(format!(
                    "the policy layer of {group} does not read: {e}"
                )))
            })?;
            Ok(Layer { group, overrides })
        })
        .collect()
}

/// Members of every `accounts:` and `devices:` group.
fn all_members(db: &mut Db<'_, '_>) -> Result<Vec<(String, Vec<String>)>, SqlError> {
    let rows: Vec<(String, String)> = db.query_map(
        "SELECT grp, member FROM group_members ORDER BY grp, member",
        &[],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (g, m) in rows {
        match out.last_mut() {
            Some((last, members)) if *last == g => members.push(m),
            _ => out.push((g, vec![m])),
        }
    }
    Ok(out)
}

/// Refuses (rolling back) the change just made in `db` if it leaves a tie.
fn refuse_ties(db: &mut Db<'_, '_>) -> Result<(), SqlError> {
    let layers = GroupLayers {
        layers: read_layers(db)?,
        ..GroupLayers::default()
    };
    let ties = layers.ties(&all_members(db)?);
    if ties.is_empty() {
        Ok(())
    } else {
        Err(abort(StoreError::Refused(format!(
            "not saved: {}",
            ties.join("; ")
        ))))
    }
}

/// The groups the register gives an account: its role and year group.
fn read_group_aups(db: &mut Db<'_, '_>) -> Result<Vec<GroupAup>, SqlError> {
    db.query_map(
        "SELECT v.audience, v.version, v.markdown FROM aup_versions v
         WHERE v.audience LIKE 'year:%'
           AND v.version = (SELECT MAX(version) FROM aup_versions w WHERE w.audience = v.audience)
           AND trim(v.markdown) != ''
         ORDER BY v.audience",
        &[],
        |r| {
            Ok(GroupAup {
                group: r.get(0)?,
                version: r.get(1)?,
                markdown: r.get(2)?,
            })
        },
    )
}

fn read_terms(db: &mut Db<'_, '_>) -> Result<Vec<Term>, SqlError> {
    db.query_map(
        "SELECT first, last FROM school_terms ORDER BY first",
        &[],
        |r| {
            Ok(Term {
                first: r.get(0)?,
                last: r.get(1)?,
            })
        },
    )
}

fn register_groups(role: Option<String>, year: Option<String>) -> Vec<String> {
    let mut groups = Vec::new();
    groups.extend(role.filter(|r| !r.is_empty()).map(|r| format!("role:{r}")));
    groups.extend(year.filter(|y| !y.is_empty()).map(|y| format!("year:{y}")));
    groups
}

/// Ends a change to layers or groups made in `db`: refused if it leaves a
/// tie; otherwise the version raised and the audit line written.
fn finish_change(db: &mut Db<'_, '_>, audit: &AuditEntry<'_>) -> Result<(), SqlError> {
    refuse_ties(db)?;
    db.execute("UPDATE layers_version SET version = version + 1", &[])?;
    write_audit(db, audit)
}

/// `school:ID` for a laptop of a school of a trust, for that school's
/// policy layer.
fn school_group(db: &mut Db<'_, '_>, device: &str) -> Result<Option<String>, SqlError> {
    let school: Option<Option<String>> = db.query_opt(
        "SELECT school FROM devices WHERE id = ?1",
        &params![device],
        |r| r.get(0),
    )?;
    Ok(school.flatten().map(|s| format!("school:{s}")))
}

impl GroupStore for SqlStore {
    fn layers(&self) -> Result<Vec<Layer>, StoreError> {
        self.read("reading the policy layers", read_layers)
    }

    fn layers_version(&self) -> Result<u64, StoreError> {
        let v: i64 = self.read("reading the layers' version", |db| {
            db.query_row("SELECT version FROM layers_version", &[], |r| r.get(0))
        })?;
        Ok(v.max(0) as u64)
    }

    fn set_layer(
        &self,
        group: &str,
        overrides: Option<&Overrides>,
        (actor, origin): (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        if GroupKind::of(group).map_err(StoreError::Refused)? == GroupKind::School {
            let id = group.trim_start_matches("school:");
            super::schools::require_school(self, id)?;
        }
        let json = overrides
            .map(|o| {
                serde_json::to_string(o).map_err(|e| {
                    StoreError::Corrupt(format!("a policy layer does not serialise: {e}"))
                })
            })
            .transpose()?;
        self.write("saving a policy layer", |db| {
            let detail = match &json {
                Some(json) => {
                    db.execute(
                        "INSERT INTO policy_layers (grp, overrides, changed, changed_by) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (grp) DO UPDATE SET overrides = ?2, changed = ?3, changed_by = ?4",
                        &params![group, json, now, actor],
                    )?;
                    json.clone()
                }
                None => {
                    db.execute("DELETE FROM policy_layers WHERE grp = ?1", &params![group])?;
                    "removed".to_owned()
                }
            };
            finish_change(
                db,
                &AuditEntry {
                    actor,
                    action: AuditAction::SetPolicyLayer,
                    target: group,
                    detail: &detail,
                    origin,
                    time: now,
                },
            )
        })
    }

    fn group_members(&self, group: &str) -> Result<Vec<String>, StoreError> {
        self.read("reading a group's members", |db| {
            db.query_map(
                "SELECT member FROM group_members WHERE grp = ?1 ORDER BY member",
                &params![group],
                |r| r.get(0),
            )
        })
    }

    fn set_group_members(
        &self,
        group: &str,
        members: &[String],
        (actor, origin): (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        match GroupKind::of(group).map_err(StoreError::Refused)? {
            GroupKind::Accounts | GroupKind::Devices => {}
            _ => {
                return Err(StoreError::Refused(format!(
                    "{group} comes from the register (the MIS import) or the laptops' enrolment; only accounts: and devices: groups have members set here"
                )));
            }
        }
        let detail = format!("{} members: {}", members.len(), members.join(", "));
        self.write("saving a group's members", |db| {
            db.execute("DELETE FROM group_members WHERE grp = ?1", &params![group])?;
            for m in members {
                db.execute(
                    "INSERT INTO group_members (grp, member) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    &params![group, m.trim()],
                )?;
            }
            finish_change(
                db,
                &AuditEntry {
                    actor,
                    action: AuditAction::SetGroupMembers,
                    target: group,
                    detail: &detail,
                    origin,
                    time: now,
                },
            )
        })
    }

    fn group_aups(&self) -> Result<Vec<GroupAup>, StoreError> {
        self.read("reading the year groups' AUPs", read_group_aups)
    }

    fn publish_group_aup(
        &self,
        group: &str,
        markdown: &str,
        (actor, origin): (&str, &str),
        now: UnixMillis,
    ) -> Result<u32, StoreError> {
        if GroupKind::of(group).map_err(StoreError::Refused)? != GroupKind::Year {
            return Err(StoreError::Refused(format!(
                "{group} is not a year group: an AUP of its own is for a year group (year:NAME); roles have the pupils' and staff AUPs"
            )));
        }
        self.write("publishing a year group's AUP", |db| {
            let version: u32 = db.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM aup_versions WHERE audience = ?1",
                &params![group],
                |r| r.get(0),
            )?;
            db.execute(
                "INSERT INTO aup_versions (audience, version, markdown, published, staff)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                &params![group, version, markdown, now, actor],
            )?;
            finish_change(
                db,
                &AuditEntry {
                    actor,
                    action: AuditAction::PublishAup,
                    target: group,
                    detail: &if markdown.trim().is_empty() {
                        format!("version {version}: withdrawn (the pupils' AUP again)")
                    } else {
                        format!("version {version}, {} bytes", markdown.len())
                    },
                    origin,
                    time: now,
                },
            )?;
            Ok(version)
        })
    }

    fn terms(&self) -> Result<Vec<Term>, StoreError> {
        self.read("reading the school's terms", read_terms)
    }

    fn set_terms(
        &self,
        terms: &[Term],
        (actor, origin): (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut sorted = terms.to_vec();
        sorted.sort();
        if let Some(w) = sorted.windows(2).find(|w| w[1].first <= w[0].last) {
            return Err(StoreError::Refused(format!(
                "the terms {} and {} overlap: give each day to one term",
                w[0], w[1]
            )));
        }
        let said: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        let detail = if said.is_empty() {
            "none (every day is term time)".to_owned()
        } else {
            said.join(", ")
        };
        self.write("saving the school's terms", |db| {
            db.execute("DELETE FROM school_terms", &[])?;
            for t in &sorted {
                db.execute(
                    "INSERT INTO school_terms (first, last) VALUES (?1, ?2)",
                    &params![t.first, t.last],
                )?;
            }
            finish_change(
                db,
                &AuditEntry {
                    actor,
                    action: AuditAction::SetTermDates,
                    target: "",
                    detail: &detail,
                    origin,
                    time: now,
                },
            )
        })
    }

    fn known_groups(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read("listing the groups", |db| {
            db.query_map(
                "SELECT 'year:' || year_group, COUNT(*) FROM accounts
                   WHERE year_group IS NOT NULL AND year_group != '' GROUP BY year_group
                 UNION ALL SELECT 'role:' || role, COUNT(*) FROM accounts
                   WHERE role IN ('pupil', 'staff') GROUP BY role
                 UNION ALL SELECT grp, COUNT(*) FROM group_members GROUP BY grp
                 ORDER BY 1",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
    }

    fn account_groups(&self, account: &str) -> Result<Vec<String>, StoreError> {
        self.read("reading an account's groups", |db| {
            let found: Option<(Option<String>, Option<String>)> = db.query_opt(
                "SELECT role, year_group FROM accounts WHERE account = ?1",
                &params![account],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut groups =
                found.map_or_else(Vec::new, |(role, year)| register_groups(role, year));
            let named: Vec<String> = db.query_map(
                "SELECT grp FROM group_members WHERE member = ?1 AND grp LIKE 'accounts:%' ORDER BY grp",
                &params![account],
                |r| r.get(0),
            )?;
            groups.extend(named);
            Ok(groups)
        })
    }

    fn device_groups(&self, device: &str) -> Result<Vec<String>, StoreError> {
        self.read("reading a laptop's groups", |db| {
            let mut groups: Vec<String> = db.query_map(
                "SELECT grp FROM group_members WHERE member = ?1 AND grp LIKE 'devices:%' ORDER BY grp",
                &params![device],
                |r| r.get(0),
            )?;
            groups.extend(school_group(db, device)?);
            Ok(groups)
        })
    }

    fn layers_for_device(&self, device: &str) -> Result<GroupLayers, StoreError> {
        self.read("reading the layers for a laptop", |db| {
            let version: i64 =
                db.query_row("SELECT version FROM layers_version", &[], |r| r.get(0))?;
            let layers = read_layers(db)?;
            // A laptop of a school of a trust is sent that school's
            // register only (and the accounts no school's register names).
            let mut accounts: Vec<(String, Vec<String>)> = db
                .query_map(
                    "SELECT account, role, year_group FROM accounts
                     WHERE (COALESCE(role, '') != '' OR COALESCE(year_group, '') != '')
                       AND (school IS NULL
                            OR school = (SELECT d.school FROM devices d WHERE d.id = ?1))
                     ORDER BY account",
                    &params![device],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?
                .into_iter()
                .map(
                    |(account, role, year): (String, Option<String>, Option<String>)| {
                        (account, register_groups(role, year))
                    },
                )
                .collect();
            let mut device_groups = Vec::new();
            for (group, members) in all_members(db)? {
                if group.starts_with("devices:") {
                    if members.iter().any(|m| m == device) {
                        device_groups.push(group);
                    }
                    continue;
                }
                for m in members {
                    match accounts.binary_search_by(|(a, _)| a.as_str().cmp(&m)) {
                        Ok(i) => accounts[i].1.push(group.clone()),
                        Err(i) => accounts.insert(i, (m, vec![group.clone()])),
                    }
                }
            }
            device_groups.extend(school_group(db, device)?);
            Ok(GroupLayers {
                version: version.max(0) as u64,
                layers,
                accounts,
                device_groups,
                terms: read_terms(db)?,
                aups: read_group_aups(db)?,
            })
        })
    }
}

#[cfg(test)]
mod tests {

    use protocol::Policy;
    use protocol::layers::MonitoringHours;

    use super::*;
    use crate::store::register::{PersonRecord, PersonRole, RegisterStore};

    #[test]
    fn layers_and_groups_reach_a_laptop_and_a_tie_is_refused() {
        crate::store::testing::on_each(Policy::baseline, |s| {
            let now = UnixMillis(1_800_000_000_000);
            let who = ("it", "cli");
            s.import_people(
                &[
                    PersonRecord {
                        account: "amy".into(),
                        name: "Amy".into(),
                        year_group: "Year 7".into(),
                        role: PersonRole::Pupil,
                    },
                    PersonRecord {
                        account: "mr.b".into(),
                        name: "Mr B".into(),
                        year_group: String::new(),
                        role: PersonRole::Staff,
                    },
                ],
                None,
                &AuditEntry {
                    actor: "it",
                    action: AuditAction::ImportRegister,
                    target: "",
                    detail: "",
                    origin: "",
                    time: now,
                },
            )
            .unwrap();
            let seven = Overrides {
                categories: vec![("gambling".into(), false)],
                hours: Some(MonitoringHours::parse("Mon-Fri 08:00-16:00").unwrap()),
                ..Overrides::default()
            };
            s.set_layer("year:Year 7", Some(&seven), who, now).unwrap();
            assert!(s.set_layer("Year 7", Some(&seven), who, now).is_err());
            s.set_group_members("devices:library", &["d1".into()], who, now)
                .unwrap();
            s.set_group_members("accounts:art club", &["amy".into(), "zed".into()], who, now)
                .unwrap();
            assert!(
                s.set_group_members("year:Year 7", &["amy".into()], who, now)
                    .is_err(),
                "a year group's members come from the register"
            );
            let v = s.layers_version().unwrap();
            assert_eq!(
                s.account_groups("amy").unwrap(),
                vec!["role:pupil", "year:Year 7", "accounts:art club"]
            );
            let on_d1 = s.layers_for_device("d1").unwrap();
            assert_eq!(on_d1.device_groups, vec!["devices:library"]);
            assert_eq!(
                on_d1.groups_of("zed"),
                vec!["accounts:art club", "devices:library"]
            );
            assert_eq!(
                on_d1.groups_of("mr.b"),
                vec!["role:staff", "devices:library"]
            );
            assert!(s.layers_for_device("d2").unwrap().device_groups.is_empty());

            // Two device layers that both set the minimum severity, and a
            // laptop in both: the second is refused, nothing changes.
            let four = Overrides {
                min_severity: Some(4),
                ..Overrides::default()
            };
            let two = Overrides {
                min_severity: Some(2),
                ..Overrides::default()
            };
            s.set_layer("devices:library", Some(&four), who, now)
                .unwrap();
            s.set_group_members("devices:trolley", &["d1".into()], who, now)
                .unwrap();
            let e = s
                .set_layer("devices:trolley", Some(&two), who, now)
                .unwrap_err()
                .to_string();
            assert!(e.contains("minimum severity") && e.contains("d1"), "{e}");
            assert_eq!(s.layers().unwrap().len(), 2);
            assert!(s.layers_version().unwrap() > v);
        });
    }

    #[test]
    fn terms_and_year_groups_aups_reach_a_laptop_with_the_layers() {
        crate::store::testing::on_each(Policy::baseline, |s| {
            let now = UnixMillis(1_800_000_000_000);
            let who = ("it", "cli");
            let v0 = s.layers_version().unwrap();

            // Terms: kept in order, overlapping ones refused, audited.
            let autumn = Term::parse("2026-09-03..2026-12-18").unwrap();
            let spring = Term::parse("2027-01-05..2027-03-26").unwrap();
            s.set_terms(&[spring, autumn], who, now).unwrap();
            assert_eq!(s.terms().unwrap(), vec![autumn, spring]);
            let clash = Term::parse("2026-12-01..2027-01-10").unwrap();
            let e = s.set_terms(&[autumn, clash], who, now).unwrap_err();
            assert!(e.to_string().contains("overlap"), "{e}");
            assert_eq!(s.terms().unwrap().len(), 2, "nothing changed");
            let v1 = s.layers_version().unwrap();
            assert!(v1 > v0, "laptops are sent the terms");
            assert_eq!(
                s.layers_for_device("d1").unwrap().terms,
                vec![autumn, spring]
            );

            // A year group's own AUP: versions count up, an empty text
            // withdraws it, and only year groups have one.
            assert_eq!(
                s.publish_group_aup("year:Year 7", "# Year 7 v1", who, now)
                    .unwrap(),
                1
            );
            assert_eq!(
                s.publish_group_aup("year:Year 7", "# Year 7 v2", who, now)
                    .unwrap(),
                2
            );
            s.publish_group_aup("year:Year 9", "# Year 9", who, now)
                .unwrap();
            let sent = s.layers_for_device("d1").unwrap().aups;
            assert_eq!(
                sent.iter()
                    .map(|a| (a.group.as_str(), a.version, a.markdown.as_str()))
                    .collect::<Vec<_>>(),
                vec![
                    ("year:Year 7", 2, "# Year 7 v2"),
                    ("year:Year 9", 1, "# Year 9")
                ]
            );
            assert!(s.layers_version().unwrap() > v1);
            assert_eq!(s.publish_group_aup("year:Year 9", "", who, now).unwrap(), 2);
            assert_eq!(s.group_aups().unwrap().len(), 1, "Year 9's withdrawn");
            for not_a_year in ["role:pupil", "accounts:club", "Year 7"] {
                assert!(
                    s.publish_group_aup(not_a_year, "# x", who, now).is_err(),
                    "{not_a_year}"
                );
            }
            let audit = crate::store::AuditStore::audit_events(s, 20).unwrap();
            let count = |a: &str| audit.iter().filter(|e| e.action == a).count();
            assert_eq!((count("set_term_dates"), count("publish_aup")), (1, 4));
        });
    }
}
