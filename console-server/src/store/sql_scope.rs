//! The store's reviewer scopes, and the filter every query of a pupil's
//! records adds for a scope.

use std::collections::{HashMap, HashSet};

use protocol::UnixMillis;

use super::scope::{Scope, ScopeStore};
use super::sql::{Dialect, ToValue, Value, params};
use super::sql_audit::write_audit;
use super::sql_store::*;
use super::*;

/// `" AND (…)"` keeping only rows in `scope`, where `user` and `device`
/// are the SQL expressions of a row's account and laptop id, with its
/// arguments pushed after those already in `args`; empty for everything.
/// A row is in a school when its laptop is.
pub(super) fn scope_filter(
    scope: &Scope,
    user: &str,
    device: &str,
    args: &mut Vec<Value>,
    dialect: Dialect,
) -> String {
    let school = format!("{device} IN (SELECT id FROM devices WHERE school = ?)");
    filter_with(scope, (user, device, &school), args, dialect)
}

/// [`scope_filter`] with `school` the SQL condition that a row is the
/// school's (each `?` in it the school's id).
fn filter_with(
    scope: &Scope,
    (user, device, school): (&str, &str, &str),
    args: &mut Vec<Value>,
    dialect: Dialect,
) -> String {
    let mut out = String::new();
    if let Some(id) = scope.school() {
        for _ in 0..school.matches('?').count() {
            args.push(id.to_value());
        }
        out.push_str(&format!(" AND ({school})"));
    }
    if !scope.has_groups() {
        return out;
    }
    for _ in 0..4 {
        args.push(scope.groups_json().to_value());
    }
    let values = dialect.json_text_values();
    out.push_str(&format!(
        " AND ({user} IN (SELECT account FROM accounts
               WHERE 'year:' || year_group IN ({values})
                  OR 'role:' || role IN ({values}))
           OR {user} IN (SELECT member FROM group_members
               WHERE grp LIKE 'accounts:%' AND grp IN ({values}))
           OR {device} IN (SELECT member FROM group_members
               WHERE grp LIKE 'devices:%' AND grp IN ({values})))"
    ));
    out
}

impl SqlStore {
    /// Whether the row of `table` with `id` is in `scope`; `user` and
    /// `device` are its columns (or SQL expressions) for the account and
    /// the laptop.
    fn row_in_scope(
        &self,
        (table, user, device): (&str, &str, &str),
        id: &str,
        scope: &Scope,
    ) -> Result<bool, StoreError> {
        let mut args: Vec<Value> = vec![id.to_value()];
        let filter = scope_filter(scope, user, device, &mut args, self.dialect());
        let sql = format!("SELECT 1 FROM {table} t WHERE t.id = ?{filter}");
        self.read("checking a record against a reviewer's groups", |db| {
            db.query_opt(&sql, &args, |_| Ok(()))
                .map(|found| found.is_some())
        })
    }
}

/// Tables whose rows are a pupil's, with their account and laptop columns.
const CAPTURES: (&str, &str, &str) = ("captures", "t.user", "t.device");
const TAMPER: (&str, &str, &str) = ("tamper_events", "t.user", "t.device");
/// A laptop is in scope through a `devices:` group only.
const DEVICES: (&str, &str, &str) = ("devices", "''", "t.id");

impl ScopeStore for SqlStore {
    fn staff_scope(&self, name: &str) -> Result<Scope, StoreError> {
        let groups: Vec<String> = self.read("reading a reviewer's groups", |db| {
            db.query_map(
                "SELECT s.grp FROM staff_scopes s JOIN users u ON u.name = s.staff
                 WHERE s.staff = ?1 AND u.role = 'reviewer' ORDER BY s.grp",
                &params![name],
                |r| r.get(0),
            )
        })?;
        Scope::of(&groups).map_err(StoreError::Corrupt)
    }

    fn staff_scopes(&self) -> Result<HashMap<String, Scope>, StoreError> {
        let rows: Vec<(String, String)> = self.read("reading reviewers' groups", |db| {
            db.query_map(
                "SELECT s.staff, s.grp FROM staff_scopes s JOIN users u ON u.name = s.staff
                 WHERE u.role = 'reviewer' ORDER BY s.staff, s.grp",
                &[],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })?;
        let mut by_staff: HashMap<String, Vec<String>> = HashMap::new();
        for (staff, grp) in rows {
            by_staff.entry(staff).or_default().push(grp);
        }
        by_staff
            .into_iter()
            .map(|(staff, groups)| Ok((staff, Scope::of(&groups).map_err(StoreError::Corrupt)?)))
            .collect()
    }

    fn set_staff_scope(
        &self,
        name: &str,
        scope: &Scope,
        (actor, origin): (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let refused = self.write("saving a reviewer's groups", |db| {
            let role: Option<String> = db.query_opt(
                "SELECT role FROM users WHERE name = ?1",
                &params![name],
                |r| r.get(0),
            )?;
            match role.as_deref() {
                None => return Ok(Some(format!("there is no staff account {name:?}"))),
                Some("reviewer") => {}
                Some(role) if scope.has_groups() => {
                    return Ok(Some(format!(
                        "{name} is an {role}, who sees the whole school; only reviewers are limited to groups (make them a reviewer first)"
                    )));
                }
                Some(_) => {}
            }
            db.execute("DELETE FROM staff_scopes WHERE staff = ?1", &params![name])?;
            for g in scope.groups() {
                db.execute(
                    "INSERT INTO staff_scopes (staff, grp) VALUES (?1, ?2)",
                    &params![name, g],
                )?;
            }
            write_audit(
                db,
                &AuditEntry {
                    actor,
                    action: AuditAction::SetStaffScope,
                    target: name,
                    detail: &scope.describe(),
                    origin,
                    time: now,
                },
            )?;
            Ok(None)
        })?;
        match refused {
            Some(why) => Err(StoreError::Refused(why)),
            None => Ok(()),
        }
    }

    fn capture_in_scope(&self, id: Uuid, scope: &Scope) -> Result<bool, StoreError> {
        self.row_in_scope(CAPTURES, &id_str(id), scope)
    }

    fn tamper_in_scope(&self, id: Uuid, scope: &Scope) -> Result<bool, StoreError> {
        self.row_in_scope(TAMPER, &id_str(id), scope)
    }

    fn alert_in_scope(&self, alert: &alerts::Alert, scope: &Scope) -> Result<bool, StoreError> {
        if scope.is_all() {
            return Ok(true);
        }
        let table = match alert.event.as_str() {
            "tamper" => TAMPER,
            // A laptop gone quiet.
            "offline" => DEVICES,
            // A capture, a concern, or a capture's escalation.
            _ => CAPTURES,
        };
        self.row_in_scope(table, &alert.record, scope)
    }

    fn scope_accounts(&self, scope: &Scope) -> Result<Option<HashSet<String>>, StoreError> {
        if scope.is_all() {
            return Ok(None);
        }
        let mut args: Vec<Value> = Vec::new();
        // An account is a school's when its register names it, or it was
        // seen on one of the school's laptops.
        let filter = filter_with(
            scope,
            (
                "a.account",
                "a.device",
                "a.school = ? OR a.device IN (SELECT id FROM devices WHERE school = ?)",
            ),
            &mut args,
            self.dialect(),
        );
        // Every account known, with each laptop it was seen on (or none).
        let sql = format!(
            "SELECT DISTINCT a.account FROM (
                 SELECT account, CAST(NULL AS TEXT) AS device, school FROM accounts
                 UNION ALL SELECT account, device, CAST(NULL AS TEXT) FROM account_devices
             ) a WHERE TRUE{filter}"
        );
        let accounts: Vec<String> = self
            .read("listing the accounts of a reviewer's groups", |db| {
                db.query_map(&sql, &args, |r| r.get(0))
            })?;
        Ok(Some(accounts.into_iter().collect()))
    }
}

#[cfg(test)]
mod tests {

    use protocol::{AgentMessage, Policy, Screenshot, TamperEvent, TamperKind};
    use uuid::Uuid;

    use super::*;
    use crate::store::groups::GroupStore;
    use crate::store::register::{PersonRecord, PersonRole, RegisterStore};

    const T0: i64 = 1_800_000_000_000;

    fn capture(user: &str, at: i64) -> protocol::Capture {
        protocol::Capture {
            id: Uuid::now_v7(),
            time: UnixMillis(at),
            user: user.into(),
            source: protocol::Source::Typed,
            app: "chat".into(),
            window_title: "Chat".into(),
            url: None,
            term: "kms".into(),
            category: "self-harm".into(),
            severity: 5,
            context: "kms".into(),
            context_match: (0, 3),
            screenshot: Screenshot::Missing("test".into()),
        }
    }

    fn person(account: &str, year: &str) -> PersonRecord {
        PersonRecord {
            account: account.into(),
            name: account.to_uppercase(),
            year_group: year.into(),
            role: PersonRole::Pupil,
        }
    }

    #[test]
    fn a_scope_limits_lists_counts_trends_and_single_records_to_its_groups() {
        crate::store::testing::on_each(Policy::baseline, |s| {
            let now = UnixMillis(T0);
            let who = ("it", "cli");
            s.import_people(
                &[person("amy", "Year 7"), person("bob", "Year 9")],
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
            let (laptop, library) = (Uuid::now_v7(), Uuid::now_v7());
            s.set_group_members("devices:library", &[id_str(library)], who, now)
                .unwrap();
            let (amy, bob, bob_in_library) = (
                capture("amy", T0),
                capture("bob", T0 + 1),
                capture("bob", T0 + 2),
            );
            let tamper = TamperEvent {
                id: Uuid::now_v7(),
                time: UnixMillis(T0),
                user: Some("bob".into()),
                kind: TamperKind::AgentKilled,
                detail: String::new(),
            };
            for (device, message) in [
                (laptop, AgentMessage::Capture(amy.clone())),
                (laptop, AgentMessage::Capture(bob.clone())),
                (library, AgentMessage::Capture(bob_in_library.clone())),
                (laptop, AgentMessage::TamperEvent(tamper.clone())),
            ] {
                s.store_batch(&[crate::store::Incoming {
                    device,
                    received: now,
                    message,
                }])
                .unwrap();
            }
            s.add_user("head7", Role::Reviewer, "x", None, now).unwrap();
            s.add_user("lead", Role::Admin, "x", None, now).unwrap();

            let year7 = Scope::of(&["year:Year 7".into()]).unwrap();
            let library_scope = Scope::of(&["devices:library".into()]).unwrap();
            let listed = |scope: &Scope| -> Vec<Uuid> {
                let mut ids: Vec<Uuid> = s
                    .captures(&CaptureQuery {
                        limit: 100,
                        scope: scope.clone(),
                        ..CaptureQuery::default()
                    })
                    .unwrap()
                    .into_iter()
                    .map(|c| c.id)
                    .collect();
                ids.sort();
                ids
            };
            assert_eq!(listed(&Scope::all()).len(), 3);
            assert_eq!(listed(&year7), vec![amy.id]);
            assert_eq!(listed(&library_scope), vec![bob_in_library.id]);
            let count = |scope: &Scope| -> u64 {
                s.capture_counts(scope).unwrap().iter().map(|c| c.1).sum()
            };
            assert_eq!((count(&Scope::all()), count(&year7)), (3, 1));
            let buckets = s
                .capture_buckets(UnixMillis(T0 - 1), UnixMillis(T0 + 10), &year7)
                .unwrap();
            assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 1);
            assert!(s.capture_in_scope(amy.id, &year7).unwrap());
            assert!(!s.capture_in_scope(bob.id, &year7).unwrap());
            assert!(!s.capture_in_scope(Uuid::now_v7(), &year7).unwrap());
            assert!(s.capture_in_scope(bob.id, &Scope::all()).unwrap());
            assert!(!s.tamper_in_scope(tamper.id, &year7).unwrap());
            assert!(
                s.tamper_in_scope(tamper.id, &Scope::of(&["year:Year 9".into()]).unwrap())
                    .unwrap()
            );
            let tamper_listed = s
                .tamper_events(&TamperQuery {
                    limit: 10,
                    scope: year7.clone(),
                    ..TamperQuery::default()
                })
                .unwrap();
            assert!(tamper_listed.is_empty());
            assert_eq!(
                s.scope_accounts(&year7).unwrap(),
                Some(["amy".to_owned()].into())
            );
            assert_eq!(
                s.scope_accounts(&library_scope).unwrap(),
                Some(["bob".to_owned()].into())
            );
            assert_eq!(s.scope_accounts(&Scope::all()).unwrap(), None);

            // An alert is in scope through its record: a capture, a tamper
            // event, or a laptop.
            let alert = |event: &str, record: String| alerts::Alert {
                id: 1,
                rule: "r".into(),
                event: event.into(),
                record,
                channel: crate::alerts::rules::Channel::Email,
                target: "dsl@school.example".into(),
                status: alerts::AlertStatus::Pending,
                attempts: 0,
                next_attempt: now,
                last_error: None,
                created: now,
                sent: None,
                held_until: None,
            };
            let in_scope = |a: &alerts::Alert, scope: &Scope| s.alert_in_scope(a, scope).unwrap();
            assert!(in_scope(&alert("capture", id_str(amy.id)), &year7));
            assert!(!in_scope(&alert("escalation", id_str(bob.id)), &year7));
            assert!(!in_scope(&alert("tamper", id_str(tamper.id)), &year7));
            s.add_device(library, "lib-1", "Debian", "0.1", now)
                .unwrap();
            assert!(in_scope(&alert("offline", id_str(library)), &library_scope));
            assert!(!in_scope(&alert("offline", id_str(library)), &year7));
            assert!(in_scope(&alert("tamper", id_str(tamper.id)), &Scope::all()));

            // Scopes are kept for reviewers only, audited, and dropped when
            // the role changes.
            s.set_staff_scope("head7", &year7, who, now).unwrap();
            assert_eq!(s.staff_scope("head7").unwrap(), year7);
            let refused = s.set_staff_scope("lead", &year7, who, now).unwrap_err();
            assert!(refused.to_string().contains("whole school"), "{refused}");
            assert!(s.set_staff_scope("nobody", &year7, who, now).is_err());
            let audit = s.audit_events(10).unwrap();
            assert!(
                audit
                    .iter()
                    .any(|e| e.action == "set_staff_scope" && e.target == "head7"),
                "{audit:?}"
            );
            s.set_staff_role("head7", Role::Admin).unwrap();
            s.set_staff_role("head7", Role::Reviewer).unwrap();
            assert_eq!(s.staff_scope("head7").unwrap(), Scope::all());
        });
    }
}
