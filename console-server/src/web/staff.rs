//! The Staff page: accounts added, their role changed, disabled, a
//! reviewer limited to groups (each confirmed with the admin's password),
//! and the API tokens. Every change is audited.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use protocol::UnixMillis;

use super::auth::urlencode;
use super::form::Form;
use super::layout::{WebError, confirm_password, csrf, local_time, shell};
use super::roles::AdminStaff;
use super::{AppState, blocking};
use crate::secret::hash_password;
use crate::store::AuditAction;
use crate::store::Role;
use crate::store::scope::Scope;

/// Treats an account of another school as one that does not exist, for a
/// school's own admin (the trust's admins manage every school's staff).
///
/// # Errors
/// [`WebError::NotFound`]; a storage failure.
async fn require_in_school(
    state: &AppState,
    staff: &AdminStaff,
    name: &str,
) -> Result<(), WebError> {
    let Some(mine) = staff.scope.school().map(str::to_owned) else {
        return Ok(());
    };
    let n = name.to_owned();
    let theirs = blocking(state, move |s| s.staff_account(&n)).await?;
    match theirs {
        Some(a) if a.school.as_deref() == Some(mine.as_str()) => Ok(()),
        _ => Err(WebError::NotFound(format!("there is no account {name:?}"))),
    }
}

/// The school a new account (or token) is for: a school's admin adds to
/// her own school only; the trust's admins choose one, or none for the
/// trust.
///
/// # Errors
/// [`WebError::Forbidden`] for a school admin naming another school.
pub fn school_for(staff: &AdminStaff, form: &Form) -> Result<Option<String>, WebError> {
    let asked = form
        .get("school")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    match (staff.scope.school(), asked) {
        (None, asked) => Ok(asked),
        (Some(mine), None) => Ok(Some(mine.to_owned())),
        (Some(mine), Some(asked)) if asked == mine => Ok(Some(asked)),
        (Some(mine), Some(_)) => Err(WebError::Forbidden(format!(
            "you are an admin of {mine}, so you add accounts to {mine} only"
        ))),
    }
}

pub async fn page(State(state): State<AppState>, staff: AdminStaff) -> Result<Response, WebError> {
    let mine = staff.scope.school().map(str::to_owned);
    let (accounts, scopes, schools) = blocking(&state, move |s| {
        let scopes = s.staff_scopes()?;
        // How many accounts each scope covers, so a mistyped group (none)
        // shows at once.
        let mut covered = std::collections::HashMap::new();
        for (name, scope) in scopes {
            let n = s.scope_accounts(&scope)?.map_or(0, |a| a.len());
            covered.insert(name, (scope, n));
        }
        let mut accounts = s.staff_accounts()?;
        if let Some(mine) = &mine {
            accounts.retain(|a| a.school.as_deref() == Some(mine.as_str()));
        }
        Ok((accounts, covered, s.schools()?))
    })
    .await?;
    let tokens = super::tokens::api_tokens_section(&state, &staff).await?;
    let roles = [Role::Admin, Role::Reviewer, Role::Auditor];
    let body = html! {
        h1 { "Staff accounts" }
        p.muted {
            "Admins manage accounts, devices, libraries and settings. Reviewers see and triage captures. "
            "Auditors read the audit log and reports and never see captured text or screenshots. "
            "A reviewer may be limited to groups (a head of year to hers): she then sees, counts and triages "
            "only the captures of their accounts and laptops, on every page and through the API."
        }
        table #staff {
            thead { tr {
                th { "Name" } th { "Role" }
                @if !schools.is_empty() { th { "School" } }
                th { "Created" } th { "Status" } th { "Change role" } th { "Access" } th { "Sees" }
            } }
            tbody {
                @for a in &accounts {
                    tr {
                        td { (a.name) }
                        @if !schools.is_empty() { td { (a.school.as_deref().unwrap_or("the trust: every school")) } }
                        td { (a.role.as_str()) }
                        td { (local_time(&crate::store::rfc3339(a.created))) }
                        td { @if a.disabled { "disabled" } @else { "enabled" } }
                        td {
                            @if a.name != staff.name {
                                form method="post" action={ "/staff/" (urlencode(&a.name)) "/role" } {
                                    (csrf(&staff))
                                    select name="role" aria-label="role" {
                                        @for r in roles { option value=(r.as_str()) selected[r == a.role] { (r.as_str()) } }
                                    }
                                    (confirm_password())
                                    button type="submit" { "Change role" }
                                }
                            }
                        }
                        td {
                            @if a.name != staff.name {
                                form method="post" action={ "/staff/" (urlencode(&a.name)) "/disabled" } {
                                    (csrf(&staff))
                                    input type="hidden" name="disabled" value=(if a.disabled { "0" } else { "1" });
                                    (confirm_password())
                                    button type="submit" { @if a.disabled { "Enable" } @else { "Disable" } }
                                }
                            }
                        }
                        td.scope {
                            @if a.role == Role::Reviewer {
                                @let (groups, covered) = scopes.get(&a.name).map_or((String::new(), None), |(s, n)| (s.groups().join(", "), Some(*n)));
                                @match covered {
                                    Some(n) => { strong { (groups) } " (" (n) " account" @if n != 1 { "s" } ")" }
                                    None => { "the whole school" }
                                }
                                form method="post" action={ "/staff/" (urlencode(&a.name)) "/scope" } {
                                    (csrf(&staff))
                                    input name="groups" value=(groups) size="28" placeholder="year:Year 7, year:Year 8" aria-label="groups";
                                    (confirm_password())
                                    button type="submit" { "Set groups" }
                                }
                            } @else {
                                "the whole school"
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add an account" }
        form.card method="post" action="/staff" {
            (csrf(&staff))
            label { "Name " input name="name" required maxlength="64" autocomplete="off"; }
            label { " Role "
                select name="role" { @for r in roles { option value=(r.as_str()) selected[r == Role::Reviewer] { (r.as_str()) } } }
            }
            label { " Their first password (at least 12 characters) " input type="password" name="new_password" required minlength="12" autocomplete="new-password"; }
            label { " Groups (a reviewer only; empty for the whole school) " input name="groups" placeholder="year:Year 7, year:Year 8" size="28"; }
            @if !schools.is_empty() && staff.scope.school().is_none() {
                label { " School "
                    select name="school" {
                        option value="" { "the trust (every school)" }
                        @for s in &schools { option value=(s.id) { (s.name) " (" (s.id) ")" } }
                    }
                }
            }
            (confirm_password())
            button type="submit" { "Add account" }
        }
        (tokens)
    };
    Ok(shell(&staff, "Staff", "Staff", body).into_response())
}

fn role_of(form: &Form) -> Result<Role, WebError> {
    let r = form.get("role").unwrap_or_default();
    Role::parse(r)
        .ok_or_else(|| WebError::BadRequest(format!("{r:?} is not admin, reviewer or auditor")))
}

pub const MIN_PASSWORD: usize = 12;

/// The form's `new_password`, checked for length and hashed (Argon2id).
///
/// # Errors
/// [`WebError::BadRequest`] if it is too short.
pub async fn new_password_hash(form: &Form) -> Result<String, WebError> {
    let password = form.get("new_password").unwrap_or_default().to_owned();
    if password.chars().count() < MIN_PASSWORD {
        return Err(WebError::BadRequest(format!(
            "the new password must be at least {MIN_PASSWORD} characters"
        )));
    }
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| WebError::Internal(e.to_string()))
}

pub async fn add(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    staff.reauthenticate(&state, &form).await?;
    let name = form.get("name").unwrap_or_default().trim().to_owned();
    if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c == '/') {
        return Err(WebError::BadRequest(
            "a name is 1 to 64 characters, without control characters or '/'".into(),
        ));
    }
    let role = role_of(&form)?;
    let scope = groups_of(&form)?;
    let school = school_for(&staff, &form)?;
    if role != Role::Reviewer && scope.has_groups() {
        return Err(WebError::BadRequest(format!(
            "only reviewers are limited to groups; an {} sees the whole school",
            role.as_str()
        )));
    }
    let hash = new_password_hash(&form).await?;
    staff
        .audit(
            &state,
            AuditAction::AddStaff,
            name.clone(),
            role.as_str().into(),
        )
        .await?;
    let n = name.clone();
    let who = (staff.name.clone(), staff.origin.clone());
    blocking(&state, move |s| {
        s.add_user(&n, role, &hash, school.as_deref(), UnixMillis::now())?;
        if scope.has_groups() {
            s.set_staff_scope(&n, &scope, (&who.0, &who.1), UnixMillis::now())?;
        }
        Ok(())
    })
    .await?;
    Ok(Redirect::to("/staff").into_response())
}

/// The form's `groups`: comma-separated group names, none for the whole
/// school.
fn groups_of(form: &Form) -> Result<Scope, WebError> {
    let groups: Vec<String> = form
        .get("groups")
        .unwrap_or_default()
        .split(',')
        .map(|g| g.trim().to_owned())
        .collect();
    Scope::of(&groups).map_err(WebError::BadRequest)
}

/// `POST /staff/{name}/scope`: the groups a reviewer is limited to.
pub async fn set_scope(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    staff.reauthenticate(&state, &form).await?;
    require_in_school(&state, &staff, &name).await?;
    let scope = groups_of(&form)?;
    let who = (staff.name.clone(), staff.origin.clone());
    // The store writes the audit line in the same transaction.
    blocking(&state, move |s| {
        s.set_staff_scope(&name, &scope, (&who.0, &who.1), UnixMillis::now())
    })
    .await?;
    Ok(Redirect::to("/staff").into_response())
}

pub async fn set_role(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    staff.reauthenticate(&state, &form).await?;
    require_in_school(&state, &staff, &name).await?;
    if name == staff.name {
        return Err(WebError::BadRequest(
            "you cannot change your own role; ask another admin".into(),
        ));
    }
    let role = role_of(&form)?;
    staff
        .audit(
            &state,
            AuditAction::SetRole,
            name.clone(),
            role.as_str().into(),
        )
        .await?;
    let n = name.clone();
    if !blocking(&state, move |s| s.set_staff_role(&n, role)).await? {
        return Err(WebError::NotFound(format!("there is no account {name:?}")));
    }
    Ok(Redirect::to("/staff").into_response())
}

pub async fn set_disabled(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    staff.reauthenticate(&state, &form).await?;
    require_in_school(&state, &staff, &name).await?;
    if name == staff.name {
        return Err(WebError::BadRequest(
            "you cannot disable your own account; ask another admin".into(),
        ));
    }
    let disabled = form.get("disabled") == Some("1");
    let action = if disabled {
        AuditAction::DisableStaff
    } else {
        AuditAction::EnableStaff
    };
    staff
        .audit(&state, action, name.clone(), String::new())
        .await?;
    let n = name.clone();
    if !blocking(&state, move |s| {
        s.set_staff_disabled(&n, disabled, UnixMillis::now())
    })
    .await?
    {
        return Err(WebError::NotFound(format!("there is no account {name:?}")));
    }
    Ok(Redirect::to("/staff").into_response())
}
