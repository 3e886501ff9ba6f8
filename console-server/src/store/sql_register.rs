//! [`super::register::RegisterStore`], on either database.

use super::register::*;
use super::sql::params;
use super::sql_audit::write_audit;
use super::sql_store::SqlStore;
use super::{AuditEntry, StoreError};

impl RegisterStore for SqlStore {
    fn accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        self.read("listing the register of users", |db| {
            let mut rows: Vec<AccountRow> = db.query_map(
                "SELECT account, name, year_group, role, imported, first_seen, last_seen
                 FROM accounts ORDER BY account",
                &[],
                |r| {
                    Ok(AccountRow {
                        account: r.get(0)?,
                        name: r.get(1)?,
                        year_group: r.get(2)?,
                        role: r
                            .get::<Option<String>>(3)?
                            .map(|s| PersonRole::from_stored(&s))
                            .transpose()?,
                        imported: r.get(4)?,
                        first_seen: r.get(5)?,
                        last_seen: r.get(6)?,
                        devices: Vec::new(),
                        decisions: Vec::new(),
                    })
                },
            )?;
            let index: std::collections::HashMap<String, usize> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| (r.account.clone(), i))
                .collect();
            let pairs: Vec<(String, String)> = db.query_map(
                "SELECT a.account, COALESCE(NULLIF(d.hostname, ''), a.device)
                 FROM account_devices a LEFT JOIN devices d ON d.id = a.device
                 ORDER BY a.last_seen DESC",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            for (account, device) in pairs {
                if let Some(&i) = index.get(&account) {
                    rows[i].devices.push(device);
                }
            }
            // The latest answer per user, audience and version.
            let answers: Vec<(String, LastDecision)> = db.query_map(
                "SELECT user, audience, version, decision, time FROM (
                     SELECT user, audience, version, decision, time,
                         ROW_NUMBER() OVER (PARTITION BY user, audience, version
                                            ORDER BY time DESC, id DESC) AS n
                     FROM aup_decisions
                 ) latest WHERE n = 1 ORDER BY time DESC",
                &[],
                |r| {
                    Ok((
                        r.get(0)?,
                        LastDecision {
                            audience: r.get(1)?,
                            version: r.get(2)?,
                            decision: r.get(3)?,
                            time: r.get(4)?,
                        },
                    ))
                },
            )?;
            for (user, d) in answers {
                if let Some(&i) = index.get(&user) {
                    rows[i].decisions.push(d);
                }
            }
            Ok(rows)
        })
    }

    fn mis_staff_accounts(&self) -> Result<Vec<String>, StoreError> {
        self.read("listing staff accounts", |db| {
            db.query_map(
                "SELECT account FROM accounts WHERE role = 'staff' ORDER BY account",
                &[],
                |r| r.get(0),
            )
        })
    }

    fn import_people(
        &self,
        people: &[PersonRecord],
        school: Option<&str>,
        audit: &AuditEntry<'_>,
    ) -> Result<ImportCounts, StoreError> {
        if let Some(school) = school {
            super::schools::require_school(self, school)?;
        }
        self.write("importing the register of users", |db| {
            let mut counts = ImportCounts::default();
            for p in people {
                let theirs: Option<Option<String>> = db.query_opt(
                    "SELECT school FROM accounts WHERE account = ?1",
                    &params![p.account],
                    |r| r.get(0),
                )?;
                if let Some(Some(other)) = theirs
                    && Some(other.as_str()) != school
                {
                    return Err(super::sql::SqlError::Abort(Box::new(StoreError::Refused(
                        format!(
                            "the account {:?} is on the register of {other}; nothing was imported (a school imports its own pupils and staff only)",
                            p.account
                        ),
                    ))));
                }
                let before: Option<(String, String, String)> = db.query_opt(
                    "SELECT name, year_group, role FROM accounts
                     WHERE account = ?1 AND imported IS NOT NULL",
                    &params![p.account],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                let now = (
                    p.name.clone(),
                    p.year_group.clone(),
                    p.role.as_str().to_owned(),
                );
                match before {
                    Some(b) if b == now => counts.unchanged += 1,
                    Some(_) => counts.updated += 1,
                    None => {
                        let seen = db
                            .query_opt(
                                "SELECT 1 FROM accounts WHERE account = ?1",
                                &params![p.account],
                                |_| Ok(()),
                            )?
                            .is_some();
                        if seen {
                            counts.updated += 1;
                        } else {
                            counts.added += 1;
                        }
                    }
                }
                db.execute(
                    "INSERT INTO accounts (account, name, year_group, role, imported, school)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (account) DO UPDATE SET name = excluded.name,
                         year_group = excluded.year_group, role = excluded.role,
                         imported = excluded.imported, school = excluded.school",
                    &params![
                        p.account,
                        p.name,
                        p.year_group,
                        p.role.as_str(),
                        audit.time,
                        school
                    ],
                )?;
            }
            write_audit(db, audit)?;
            Ok(counts)
        })
    }

    fn aup_versions(&self) -> Result<Vec<AupVersion>, StoreError> {
        self.read("listing AUP versions", |db| {
            db.query_map(
                "SELECT audience, version, markdown, published, staff FROM aup_versions
                 ORDER BY published DESC, version DESC",
                &[],
                |r| {
                    Ok(AupVersion {
                        audience: r.get(0)?,
                        version: r.get(1)?,
                        markdown: r.get(2)?,
                        published: r.get(3)?,
                        staff: r.get(4)?,
                    })
                },
            )
        })
    }

    fn record_aup_version(&self, v: &AupVersion) -> Result<(), StoreError> {
        self.write("recording an AUP version", |db| {
            db.execute(
                "INSERT INTO aup_versions (audience, version, markdown, published, staff)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                &params![v.audience, v.version, v.markdown, v.published, v.staff],
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {

    use protocol::{
        AgentMessage, Audience, AupDecision, Concern, Decision, Heartbeat, Policy, Screenshot,
        UnixMillis,
    };
    use uuid::Uuid;

    use super::*;
    use crate::store::{CaptureQuery, CaptureStore, DeviceStore, Incoming, IngestStore};

    fn incoming(device: Uuid, message: AgentMessage) -> Incoming {
        Incoming {
            device,
            received: UnixMillis(1_800_000_100_000),
            message,
        }
    }

    #[test]
    fn accounts_are_seen_at_ingest_imported_and_concerns_are_captures() {
        crate::store::testing::on_each(Policy::baseline, |store| {
            let (laptop, other) = (Uuid::now_v7(), Uuid::now_v7());
            let t0 = 1_800_000_000_000;
            store
                .add_device(other, "lab-3", "Debian", "0.1.0", UnixMillis(t0))
                .unwrap();
            let decision = |user: &str, t: i64, d| {
                AgentMessage::AupDecision(AupDecision {
                    id: Uuid::now_v7(),
                    time: UnixMillis(t),
                    user: user.into(),
                    audience: Audience::Pupils,
                    aup_version: 1,
                    decision: d,
                })
            };
            let concern = AgentMessage::Concern(Concern {
                id: Uuid::now_v7(),
                time: UnixMillis(t0 + 5),
                user: "amy".into(),
                text: "someone keeps messaging me".into(),
                app: "Chromium".into(),
                window_title: "Forum - Chromium".into(),
                url: Some("https://forum.example/7".into()),
                page_title: Some("Forum".into()),
                screenshot: Screenshot::Missing("the pupil chose not to include a picture".into()),
            });
            let batch = vec![
                incoming(laptop, decision("amy", t0, Decision::Decline)),
                incoming(laptop, decision("amy", t0 + 10, Decision::Accept)),
                incoming(other, concern.clone()),
                incoming(
                    other,
                    AgentMessage::Heartbeat(Heartbeat {
                        time: UnixMillis(t0 + 20),
                        hostname: "lab-3".into(),
                        os: "Debian".into(),
                        agent_version: "0.1.0".into(),
                        user: Some("ben".into()),
                        uptime_seconds: 1,
                        load: [0.0; 3],
                        memory_total_bytes: 1,
                        memory_used_bytes: 1,
                        spool_depth: 0,
                        spool_dropped: 0,
                        policy_version: 1,
                    }),
                ),
            ];
            store.store_batch(&batch).unwrap();
            // The concern sent again is stored once.
            store.store_batch(&[incoming(other, concern)]).unwrap();

            let accounts = store.accounts().unwrap();
            let names: Vec<&str> = accounts.iter().map(|a| a.account.as_str()).collect();
            assert_eq!(names, ["amy", "ben"]);
            let amy = &accounts[0];
            assert_eq!(amy.first_seen, Some(UnixMillis(t0)));
            assert_eq!(amy.last_seen, Some(UnixMillis(t0 + 10)));
            assert_eq!(amy.devices.len(), 2, "{amy:?}");
            let answer = amy.answer_to("pupils", 1).unwrap();
            assert_eq!(answer.decision, "accept", "the latest answer wins");
            assert_eq!(accounts[1].devices, ["lab-3"]);

            let concerns = store
                .captures(&CaptureQuery {
                    category: Some(super::super::sql_store::CONCERN_CATEGORY.into()),
                    limit: 10,
                    ..CaptureQuery::default()
                })
                .unwrap();
            assert_eq!(concerns.len(), 1);
            assert_eq!(
                (
                    concerns[0].source.as_str(),
                    concerns[0].severity,
                    concerns[0].context.as_str(),
                    concerns[0].url.as_deref()
                ),
                (
                    "concern",
                    5,
                    "someone keeps messaging me",
                    Some("https://forum.example/7")
                )
            );

            let audit = AuditEntry {
                time: UnixMillis(t0 + 100),
                actor: "it",
                action: crate::store::AuditAction::ImportRegister,
                target: "",
                detail: "2 people",
                origin: "test",
            };
            let people = [
                PersonRecord {
                    account: "amy".into(),
                    name: "Amy Jones".into(),
                    year_group: "Year 9".into(),
                    role: PersonRole::Pupil,
                },
                PersonRecord {
                    account: "mrsmith".into(),
                    name: "John Smith".into(),
                    year_group: String::new(),
                    role: PersonRole::Staff,
                },
            ];
            let counts = store.import_people(&people, None, &audit).unwrap();
            assert_eq!((counts.added, counts.updated, counts.unchanged), (1, 1, 0));
            let again = store.import_people(&people, None, &audit).unwrap();
            assert_eq!(again.unchanged, 2);
            assert_eq!(store.mis_staff_accounts().unwrap(), ["mrsmith"]);
            let smith = store
                .accounts()
                .unwrap()
                .into_iter()
                .find(|a| a.account == "mrsmith")
                .unwrap();
            assert_eq!(smith.audience(), Audience::Staff);
            assert_eq!(smith.last_seen, None, "imported, never seen");
        });
    }
}
