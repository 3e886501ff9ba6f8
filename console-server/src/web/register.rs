//! The register of users: everyone who has used a school laptop, with
//! what the MIS says of them, their devices and their AUP status; and the
//! MIS import (admins), all or nothing.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use protocol::{Audience, UnixMillis};

use super::auth::Staff;
use super::form::LargeForm;
use super::layout::{WebError, csrf, local_time, shell};
use super::roles::{AdminStaff, AnyStaff};
use super::{AppState, blocking};
use crate::mis_import;
use crate::store::AuditAction;
use crate::store::register::{AccountRow, audience_str};
use crate::store::{AuditEntry, Role, rfc3339};

/// Where an account stands with the AUP version in force for its audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AupStatus {
    Accepted {
        time: UnixMillis,
    },
    Declined {
        time: UnixMillis,
    },
    /// Accepted an earlier version only.
    Outdated {
        version: u32,
    },
    NeverAnswered,
    /// Imported from the MIS, never seen on a laptop.
    NotSeen,
}

impl AupStatus {
    pub fn of(account: &AccountRow, current: &CurrentAups) -> AupStatus {
        let Some((aup, version)) = current.for_account(account) else {
            return AupStatus::NeverAnswered;
        };
        match account.answer_to(&aup, version) {
            Some(d) if d.decision == "accept" => return AupStatus::Accepted { time: d.time },
            Some(d) => return AupStatus::Declined { time: d.time },
            None => {}
        }
        let older = account
            .decisions
            .iter()
            .filter(|d| d.audience == aup && d.decision == "accept")
            .map(|d| d.version)
            .max();
        match older {
            Some(version) => AupStatus::Outdated { version },
            None if account.last_seen.is_none() => AupStatus::NotSeen,
            None => AupStatus::NeverAnswered,
        }
    }

    pub fn accepted(&self) -> bool {
        matches!(self, AupStatus::Accepted { .. })
    }

    pub fn cell(&self) -> Markup {
        match self {
            AupStatus::Accepted { time } => {
                html! { span.ok { "Accepted " } span.muted { (local_time(&rfc3339(*time))) } }
            }
            AupStatus::Declined { time } => {
                html! { span.bad { "Declined " } span.muted { (local_time(&rfc3339(*time))) } }
            }
            AupStatus::Outdated { version } => {
                html! { span.warn { "Accepted version " (version) " only" } }
            }
            AupStatus::NeverAnswered => html! { span.warn { "Never answered" } },
            AupStatus::NotSeen => html! { span.muted { "Not seen on a laptop yet" } },
        }
    }
}

/// The AUP versions in force: each audience's, and year groups' own.
#[derive(Debug, Clone, Default)]
pub struct CurrentAups {
    pub audiences: HashMap<Audience, u32>,
    /// By group (`year:NAME`).
    pub years: HashMap<String, u32>,
}

impl CurrentAups {
    /// The AUP an account is to accept, by name (an audience's, or its
    /// year group's if that has its own), and its version in force.
    pub fn for_account(&self, a: &AccountRow) -> Option<(String, u32)> {
        if a.audience() == Audience::Pupils
            && let Some(year) = a.year_group.as_deref().filter(|y| !y.is_empty())
        {
            let group = format!("year:{year}");
            if let Some(&v) = self.years.get(&group) {
                return Some((group, v));
            }
        }
        self.audiences
            .get(&a.audience())
            .map(|&v| (audience_str(a.audience()).to_owned(), v))
    }
}

/// The AUP versions in force, with `years` (the year groups' own AUPs).
pub fn current_versions(state: &AppState, years: &[protocol::layers::GroupAup]) -> CurrentAups {
    CurrentAups {
        audiences: state
            .policy
            .borrow()
            .aup
            .iter()
            .map(|a| (a.audience, a.version))
            .collect(),
        years: years.iter().map(|a| (a.group.clone(), a.version)).collect(),
    }
}

pub fn audience_label(a: Audience) -> &'static str {
    match a {
        Audience::Pupils => "Pupils",
        Audience::Staff => "Staff",
    }
}

fn when(t: Option<UnixMillis>) -> String {
    t.map_or_else(String::new, |t| local_time(&rfc3339(t)))
}

/// One row of an account, shared with the AUP's "not yet accepted" list.
pub fn account_cells(a: &AccountRow, status: &AupStatus) -> Markup {
    html! {
        td { code { (a.account) } }
        td { (a.name.as_deref().unwrap_or("")) }
        td { (a.year_group.as_deref().unwrap_or("")) }
        td { (audience_label(a.audience())) }
        td { (status.cell()) }
        td { (when(a.last_seen)) }
        td { (a.devices.join(", ")) }
    }
}

/// `GET /register`
pub async fn page(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    // Every role reads the register (auditors oversee it); admins change it.
    let scope = staff.scope.clone();
    let (accounts, years, schools) = blocking(&state, move |s| {
        Ok((
            crate::store::scope::accounts_in_scope(s, &scope)?,
            s.group_aups()?,
            s.schools()?,
        ))
    })
    .await?;
    staff
        .audit(
            &state,
            AuditAction::ViewRegister,
            String::new(),
            String::new(),
        )
        .await?;
    let current = current_versions(&state, &years);
    let imported = accounts.iter().filter(|a| a.imported.is_some()).count();
    let unknown = accounts.iter().filter(|a| a.imported.is_none()).count();
    let body = html! {
        h1 { "Users" }
        p.muted {
            (accounts.len()) " accounts: " (imported) " from the school's MIS, "
            (unknown) " seen on a laptop but not in the MIS (shown the pupils' AUP until the MIS names them staff)."
        }
        p { a href="/aup/pending" { "Who has not accepted the AUP in force" } }
        input.table-filter type="search" data-table="register" placeholder="Filter by account, name, year…" aria-label="filter the register";
        table.sortable #register {
            thead { tr {
                th { "Account" } th { "Name" } th { "Year group" } th { "AUP" }
                th { "AUP status" } th { "Last seen" } th { "Devices" } th { "First seen" }
            } }
            tbody {
                @for a in &accounts {
                    tr {
                        (account_cells(a, &AupStatus::of(a, &current)))
                        td { (when(a.first_seen)) }
                    }
                }
            }
        }
        @if staff.role == Role::Admin {
            (import_form(&staff, "", &schools))
        }
    };
    Ok(shell(&staff, "Users", "Users", body).into_response())
}

/// The import form; the trust's admins choose whose register it is (a
/// school's admin imports her own school's).
fn import_form(staff: &Staff, text: &str, schools: &[crate::store::schools::School]) -> Markup {
    html! {
        section #import {
            h2 { "Import from the MIS" }
            p.muted {
                "A CSV export with a header line naming the columns: account (or username), "
                "name (or first name and last name), year group, and role (pupil or student; "
                "staff or teacher). Other columns are ignored. A file with any bad line is "
                "refused whole, and every bad line is listed. People already in the register "
                "keep their history; an import only sets names, year groups and roles."
            }
            form method="post" action="/register/import" {
                (csrf(staff))
                label { "CSV file " input #csv-file type="file" accept=".csv,text/csv"; }
                textarea #csv-text name="csv" rows="10" cols="90" placeholder="name,account,year group,role" { (text) }
                @if !schools.is_empty() && staff.scope.school().is_none() {
                    label { "The register of "
                        select name="school" required {
                            @for s in schools { option value=(s.id) { (s.name) } }
                        }
                    }
                }
                button type="submit" { "Import" }
            }
        }
    }
}

/// `POST /register/import`
pub async fn import(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    LargeForm(form): LargeForm,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let text = form.get("csv").unwrap_or_default().to_owned();
    let people = match mis_import::parse(text.as_bytes()) {
        Ok(p) => p,
        Err(refused) => {
            staff
                .audit(
                    &state,
                    AuditAction::ImportRegisterRefused,
                    String::new(),
                    format!("{} problem(s)", refused.problems.len()),
                )
                .await?;
            let schools = blocking(&state, |s| s.schools()).await?;
            let body = html! {
                h1 { "Users: import refused" }
                p.error #import-refused { "Nothing was imported. Fix these lines and import the file again:" }
                ul #problems {
                    @for p in &refused.problems {
                        li { @if p.line > 0 { "Line " (p.line) ": " } (p.reason) }
                    }
                    @if refused.more { li { "… and more." } }
                }
                (import_form(&staff, &text, &schools))
            };
            return Ok((
                StatusCode::BAD_REQUEST,
                shell(&staff, "Import refused", "Users", body),
            )
                .into_response());
        }
    };
    let n = people.len();
    let school = super::staff::school_for(&staff, &form)?;
    let (actor, origin) = (staff.name.clone(), staff.origin.clone());
    let counts = blocking(&state, move |s| {
        s.import_people(
            &people,
            school.as_deref(),
            &AuditEntry {
                time: UnixMillis::now(),
                actor: &actor,
                action: AuditAction::ImportRegister,
                target: "",
                detail: &format!("{n} people"),
                origin: &origin,
            },
        )
    })
    .await?;
    // Staff see the staff AUP: the policy carries their accounts.
    let staff_accounts = blocking(&state, |s| s.mis_staff_accounts()).await?;
    let current = state.policy.borrow().clone();
    let pushed = if let Some(changed) =
        crate::policy::with_staff_accounts(&current, staff_accounts.clone())
    {
        let count = changed.staff_accounts.len();
        super::policy::update_policy(
            &state,
            &staff,
            AuditAction::SetStaffAccounts,
            String::new(),
            format!("{count} staff accounts from the MIS import"),
            move |p| {
                p.staff_accounts = changed.staff_accounts.clone();
                Ok(())
            },
        )
        .await?;
        true
    } else {
        false
    };
    let body = html! {
        h1 { "Users: imported" }
        p #import-result {
            (n) " people read: " (counts.added) " new, " (counts.updated) " updated, "
            (counts.unchanged) " unchanged."
        }
        @if pushed {
            p { (staff_accounts.len()) " staff accounts were sent to the laptops, which now show them the staff AUP." }
        }
        p { a href="/register" { "Back to the register" } }
    };
    Ok(shell(&staff, "Users imported", "Users", body).into_response())
}
