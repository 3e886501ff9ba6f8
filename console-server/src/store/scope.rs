//! Whose records a reviewer sees: the whole school, or the accounts and
//! laptops of some groups (a head of year and her year groups). A scope
//! is the groups of [`protocol::layers`]: `year:NAME` and `role:pupil`
//! from the register, `accounts:NAME` and `devices:NAME` lists. A record
//! is in scope when its account is in one of the groups, or it was made
//! on a laptop of one of the `devices:` groups.
//!
//! Only reviewers are scoped: admins and auditors oversee the whole
//! school. Every page and API route that shows, counts or changes a
//! pupil's record filters by the signed-in staff's scope, in the query
//! itself, so counts and pages agree with what is listed.

use std::collections::{HashMap, HashSet};

use protocol::UnixMillis;
use protocol::layers::GroupKind;
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;
use super::alerts::Alert;

/// The records a member of staff sees: those of one school of a trust
/// (or every school), and within it those of some groups (or all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope {
    /// The school, for a school's own staff; `None` for the trust's staff
    /// and on a console of one school.
    school: Option<String>,
    /// The groups, for a scoped reviewer; empty for all (never a list of
    /// blanks).
    groups: Vec<String>,
}

impl Scope {
    /// Everything: the safeguarding lead, admins, auditors of a console of
    /// one school, and the trust's own staff.
    pub fn all() -> Scope {
        Scope::default()
    }

    /// A scope of `groups`, each checked; none means the whole school.
    ///
    /// # Errors
    /// A name that is not a group, said with the kinds there are.
    pub fn of(groups: &[String]) -> Result<Scope, String> {
        let mut checked = Vec::new();
        for g in groups {
            let g = g.trim();
            if g.is_empty() {
                continue;
            }
            if GroupKind::of(g)? == GroupKind::School {
                return Err(format!(
                    "{g:?}: a reviewer's school is her account's (user add --school), not one of her groups"
                ));
            }
            if !checked.iter().any(|c| c == g) {
                checked.push(g.to_owned());
            }
        }
        checked.sort();
        Ok(Scope {
            school: None,
            groups: checked,
        })
    }

    /// This scope within `school` (`None`: every school).
    pub fn in_school(mut self, school: Option<String>) -> Scope {
        self.school = school;
        self
    }

    /// This scope narrowed to `school` (a report of one school of the
    /// trust); `None` leaves it as it is.
    ///
    /// # Errors
    /// A school other than the one this scope is already limited to.
    pub fn narrowed_to(&self, school: Option<&str>) -> Result<Scope, String> {
        match (school, self.school()) {
            (None, _) => Ok(self.clone()),
            (Some(asked), None) => Ok(self.clone().in_school(Some(asked.to_owned()))),
            (Some(asked), Some(mine)) if asked == mine => Ok(self.clone()),
            (Some(_), Some(mine)) => Err(format!(
                "you see the school {mine} only; leave the school out of the address"
            )),
        }
    }

    /// Whether nothing is left out: no school and no groups.
    pub fn is_all(&self) -> bool {
        self.school.is_none() && self.groups.is_empty()
    }

    /// Whether the scope is some groups (a reviewer limited to them).
    pub fn has_groups(&self) -> bool {
        !self.groups.is_empty()
    }

    /// The school, `None` for every school.
    pub fn school(&self) -> Option<&str> {
        self.school.as_deref()
    }

    /// The groups, none for the whole school.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// "the whole school", or the groups joined, and the school if any.
    pub fn describe(&self) -> String {
        match (&self.school, self.groups.is_empty()) {
            (None, true) => "the whole school".to_owned(),
            (None, false) => self.groups.join(", "),
            (Some(school), true) => format!("the school {school}"),
            (Some(school), false) => format!("{} at the school {school}", self.groups.join(", ")),
        }
    }

    /// The groups as a JSON array, for SQL's `json_each`.
    pub(crate) fn groups_json(&self) -> String {
        serde_json::to_string(self.groups()).unwrap_or_else(|_| "[]".into())
    }
}

/// What the console keeps of reviewers' scopes, and whether a record is
/// in one.
pub trait ScopeStore {
    /// A staff account's scope: the whole school unless a reviewer's
    /// groups were set.
    ///
    /// # Errors
    /// A storage failure.
    fn staff_scope(&self, name: &str) -> Result<Scope, StoreError>;
    /// Every scoped reviewer's scope, by name.
    ///
    /// # Errors
    /// A storage failure.
    fn staff_scopes(&self) -> Result<HashMap<String, Scope>, StoreError>;
    /// Sets a reviewer's scope, with its audit line naming `who` (the
    /// actor and where from). Refused for an account that is not a
    /// reviewer (admins and auditors see the whole school) or does not
    /// exist.
    ///
    /// # Errors
    /// [`StoreError::Refused`], or a storage failure.
    fn set_staff_scope(
        &self,
        name: &str,
        scope: &Scope,
        who: (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Whether a capture (or concern) is in `scope`; false if there is
    /// no such capture.
    ///
    /// # Errors
    /// A storage failure.
    fn capture_in_scope(&self, id: Uuid, scope: &Scope) -> Result<bool, StoreError>;
    /// Whether a tamper event is in `scope`; false if there is none.
    ///
    /// # Errors
    /// A storage failure.
    fn tamper_in_scope(&self, id: Uuid, scope: &Scope) -> Result<bool, StoreError>;
    /// Whether an alert's record (a capture, a tamper event or a laptop)
    /// is in `scope`.
    ///
    /// # Errors
    /// A storage failure.
    fn alert_in_scope(&self, alert: &Alert, scope: &Scope) -> Result<bool, StoreError>;
    /// The accounts `scope` covers: those of its account groups, and
    /// those seen on its laptops. `None` for the whole school.
    ///
    /// # Errors
    /// A storage failure.
    fn scope_accounts(&self, scope: &Scope) -> Result<Option<HashSet<String>>, StoreError>;
}

/// The scope of `name` signed in as `role`: their school if they belong
/// to one, and within it a reviewer's groups (any other role sees the
/// whole school).
///
/// # Errors
/// A storage failure.
pub fn scope_of(
    store: &dyn super::Store,
    name: &str,
    role: super::Role,
) -> Result<Scope, StoreError> {
    let school = store.staff_school(name)?;
    let groups = if role == super::Role::Reviewer {
        store.staff_scope(name)?
    } else {
        Scope::all()
    };
    Ok(groups.in_school(school))
}

/// The newest `limit` alerts whose records are in `scope`.
///
/// # Errors
/// A storage failure.
pub fn alerts_in_scope(
    store: &dyn super::Store,
    limit: u32,
    scope: &Scope,
) -> Result<Vec<Alert>, StoreError> {
    let all = store.alerts(if scope.is_all() { limit } else { 10_000 })?;
    let mut kept = Vec::new();
    for a in all {
        if kept.len() == limit as usize {
            break;
        }
        if store.alert_in_scope(&a, scope)? {
            kept.push(a);
        }
    }
    Ok(kept)
}

/// The register's accounts `scope` covers.
///
/// # Errors
/// A storage failure.
pub fn accounts_in_scope(
    store: &dyn super::Store,
    scope: &Scope,
) -> Result<Vec<super::register::AccountRow>, StoreError> {
    let mut accounts = store.accounts()?;
    if let Some(only) = store.scope_accounts(scope)? {
        accounts.retain(|a| only.contains(&a.account));
    }
    Ok(accounts)
}

/// The laptops of the scope's school (all of them for the trust's
/// staff), each naming who is logged in only if that account is in
/// `scope` (a laptop is the school's; who uses it is the pupil's).
///
/// # Errors
/// A storage failure.
pub fn devices_in_scope(
    store: &dyn super::Store,
    online_since: UnixMillis,
    scope: &Scope,
) -> Result<Vec<super::Device>, StoreError> {
    let mut devices = store.devices(online_since)?;
    if let Some(school) = scope.school() {
        devices.retain(|d| d.school.as_deref() == Some(school));
    }
    if let Some(only) = store.scope_accounts(scope)? {
        for d in &mut devices {
            if d.user.as_ref().is_some_and(|u| !only.contains(u)) {
                d.user = None;
            }
        }
    }
    Ok(devices)
}

/// Whether the laptop `id` is one of the scope's school's (every laptop
/// for the trust's staff); false if there is none.
///
/// # Errors
/// A storage failure.
pub fn device_in_scope(
    store: &dyn super::Store,
    id: Uuid,
    scope: &Scope,
) -> Result<bool, StoreError> {
    Ok(devices_in_scope(store, UnixMillis(0), scope)?
        .iter()
        .any(|d| d.id == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_is_checked_groups_and_none_is_the_whole_school() {
        assert_eq!(Scope::of(&[]).unwrap(), Scope::all());
        assert_eq!(Scope::of(&[" ".into()]).unwrap(), Scope::all());
        let s = Scope::of(&[
            "year:Year 9".into(),
            "year:Year 7".into(),
            "year:Year 7".into(),
        ])
        .unwrap();
        assert_eq!(s.groups(), ["year:Year 7", "year:Year 9"]);
        assert_eq!(s.describe(), "year:Year 7, year:Year 9");
        let s = s.in_school(Some("north".into()));
        assert!(!s.is_all());
        assert_eq!(s.describe(), "year:Year 7, year:Year 9 at the school north");
        assert!(!Scope::all().in_school(Some("north".into())).is_all());
        assert_eq!(s.groups_json(), r#"["year:Year 7","year:Year 9"]"#);
        let e = Scope::of(&["Year 7".into()]).unwrap_err();
        assert!(e.contains("year:NAME"), "{e}");
    }
}
