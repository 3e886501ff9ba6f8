//! The term libraries: browse the built-in and the school's own; admins add
//! the school's terms and exceptions; an exception a reviewer suggests in
//! triage waits here until an admin approves or rejects it. Every change is
//! audited and reaches the laptops as a new policy version.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use protocol::{Policy, UnixMillis};
use serde::{Deserialize, Serialize};

use super::auth::{Staff, urlencode};
use super::form::Form;
use super::layout::{WebError, csrf, local_time, shell};
use super::policy::update_policy;
use super::roles::{AdminStaff, CaptureStaff};
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::Role;
use crate::store::suggestions::{Suggestion, SuggestionStatus};

/// The school's own additions to one category, as the console keeps them:
/// the policy library file `school-<category>`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchoolFile {
    category: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exceptions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    group: Vec<SchoolGroup>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SchoolGroup {
    severity: u8,
    definition: String,
    terms: Vec<String>,
}

fn edit_school_file(
    policy: &mut Policy,
    category: &str,
    edit: impl FnOnce(&mut SchoolFile) -> Result<(), WebError>,
) -> Result<(), WebError> {
    let name = format!("school-{category}");
    let pos = policy.libraries.iter().position(|f| f.name == name);
    let mut file = match pos {
        Some(i) => toml::from_str::<SchoolFile>(&policy.libraries[i].toml).map_err(|e| {
            WebError::BadRequest(format!(
                "the school's library {name:?} was written by hand and the console cannot edit it ({e}); change it through the API"
            ))
        })?,
        None => SchoolFile {
            category: category.to_owned(),
            ..SchoolFile::default()
        },
    };
    edit(&mut file)?;
    let text = toml::to_string(&file).map_err(|e| WebError::Internal(e.to_string()))?;
    match pos {
        Some(i) => policy.libraries[i].toml = text,
        None => policy
            .libraries
            .push(protocol::LibraryFile { name, toml: text }),
    }
    Ok(())
}

/// A term, phrase or definition typed by staff, with its spaces tidied.
///
/// # Errors
/// [`WebError::BadRequest`] if it is empty or over 200 bytes.
pub fn phrase(text: &str, what: &str) -> Result<String, WebError> {
    let t = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.is_empty() || t.len() > 200 {
        return Err(WebError::BadRequest(format!(
            "the {what} must be 1 to 200 characters"
        )));
    }
    Ok(t)
}

/// Adds an exception (an innocent word or phrase) to the school's
/// exceptions for `category`, and pushes it to the agents.
///
/// # Errors
/// As [`update_policy`].
pub async fn add_exception_to_policy(
    state: &AppState,
    staff: &Staff,
    category: &str,
    text: &str,
) -> Result<(), WebError> {
    let text = phrase(text, "exception")?;
    let (cat, t) = (category.to_owned(), text.clone());
    update_policy(
        state,
        staff,
        AuditAction::AddException,
        category.to_owned(),
        text.clone(),
        move |p| {
            edit_school_file(p, &cat, |f| {
                if !f.exceptions.contains(&t) {
                    f.exceptions.push(t.clone());
                }
                Ok(())
            })
        },
    )
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
pub struct LibraryParams {
    category: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    staff: CaptureStaff,
    Query(p): Query<LibraryParams>,
) -> Result<Response, WebError> {
    let defs = state.definitions();
    let policy = state.policy.borrow().clone();
    let libs = &defs.libraries;
    let chosen = p
        .category
        .as_deref()
        .and_then(|c| libs.categories.iter().find(|cat| cat.name == c));
    let (scope, me) = (staff.scope.clone(), staff.name.clone());
    let suggestions = blocking(&state, move |s| {
        let mut all = s.exception_suggestions(20)?;
        if !scope.is_all() {
            // A reviewer limited to groups sees her own suggestions and
            // those made on her groups' captures.
            let mut kept = Vec::new();
            for g in all {
                let mine = g.suggested_by == me;
                if mine
                    || g.capture
                        .map_or(Ok(false), |c| s.capture_in_scope(c, &scope))?
                {
                    kept.push(g);
                }
            }
            all = kept;
        }
        Ok(all)
    })
    .await?;
    let body = html! {
        h1 { "Term libraries" }
        p.muted { "Policy version " (policy.version) ". The built-in libraries plus the school's own terms and exceptions; changes reach every laptop within seconds." }
        (suggestions_section(&staff, &suggestions))
        table {
            thead { tr { th { "Category" } th { "Terms" } th { "Exceptions" } th { "Captured?" } } }
            tbody {
                @for c in &libs.categories {
                    tr {
                        td { a href={ "/libraries?category=" (urlencode(&c.name)) } { (c.title) } }
                        td { (c.entries.len()) }
                        td { (c.exceptions.len()) }
                        td { @if policy.disabled_categories.contains(&c.name) { "switched off" } @else { "yes" } }
                    }
                }
            }
        }
        @if let Some(c) = chosen {
            h2 { (c.title) }
            @if staff.role == Role::Admin {
                div.grid {
                    form.card method="post" action="/libraries/terms" {
                        (csrf(&staff))
                        input type="hidden" name="category" value=(c.name);
                        h2 { "Add a term" }
                        label { "Term or phrase " input name="term" required maxlength="200"; }
                        label { "Severity "
                            select name="severity" { @for n in 1..=5 { option value=(n) selected[n == 3] { (n) } } }
                        }
                        label { "Definition for staff " input name="definition" required maxlength="500" size="40"; }
                        button type="submit" { "Add term" }
                    }
                    form.card method="post" action="/libraries/exceptions" {
                        (csrf(&staff))
                        input type="hidden" name="category" value=(c.name);
                        h2 { "Add an exception" }
                        p.muted { "An innocent word or phrase that contains a term (\"kill time\")." }
                        label { "Phrase " input name="exception" required maxlength="200"; }
                        button type="submit" { "Add exception" }
                    }
                }
            }
            h2 { "Exceptions" }
            p { @for (i, e) in c.exceptions.iter().enumerate() { @if i > 0 { ", " } (e) } }
            h2 { "Terms" }
            table #terms {
                thead { tr { th { "Term" } th { "Severity" } th { "Rule" } th { "Definition" } } }
                tbody {
                    @for e in &c.entries {
                        tr { td { (e.term) } td { (e.severity) } td { (e.rule.as_str()) } td { (e.definition) } }
                    }
                    @for d in &c.detectors {
                        tr { td { (d.kind.as_str()) } td { (d.severity) } td { "detector" } td { (d.definition) } }
                    }
                }
            }
            @if !c.rules.is_empty() {
                h2 { "Context rules" }
                p.muted { "Concepts (sets of words that mean one thing) found within a few words of each other; cues nearby raise or lower the severity." }
                table #rules {
                    thead { tr { th { "Rule" } th { "Severity" } th { "Concepts, within" } th { "Raised by / lowered by" } th { "Definition" } } }
                    tbody {
                        @for r in &c.rules {
                            tr {
                                td { (r.name) } td { (r.severity) }
                                td { (r.all.join(" + ")) ", " (r.within) " words" @if r.ordered { ", in order" } }
                                td { (r.raise.join(", ")) " / " (r.lower.iter().chain(&c.lower).cloned().collect::<Vec<_>>().join(", ")) }
                                td { (r.definition) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(&staff, "Libraries", "Libraries", body).into_response())
}

fn category_of(state: &AppState, form: &Form) -> Result<String, WebError> {
    let c = form.get("category").unwrap_or_default();
    let defs = state.definitions();
    if defs.categories.iter().any(|(name, _)| name == c) {
        Ok(c.to_owned())
    } else {
        Err(WebError::BadRequest(format!("{c:?} is not a category")))
    }
}

pub async fn add_term(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let category = category_of(&state, &form)?;
    let term = phrase(form.get("term").unwrap_or_default(), "term")?;
    let definition = phrase(form.get("definition").unwrap_or_default(), "definition")?;
    let severity: u8 = form
        .get("severity")
        .and_then(|s| s.parse().ok())
        .filter(|n| (1..=5).contains(n))
        .ok_or_else(|| WebError::BadRequest("severity must be 1 to 5".into()))?;
    let cat = category.clone();
    update_policy(
        &state,
        &staff,
        AuditAction::AddTerm,
        category.clone(),
        format!("{term:?} severity {severity}"),
        move |p| {
            edit_school_file(p, &cat, |f| {
                f.group.push(SchoolGroup {
                    severity,
                    definition: definition.clone(),
                    terms: vec![term.clone()],
                });
                Ok(())
            })
        },
    )
    .await?;
    Ok(Redirect::to(&format!("/libraries?category={}", urlencode(&category))).into_response())
}

pub async fn add_exception(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let category = category_of(&state, &form)?;
    add_exception_to_policy(
        &state,
        &staff,
        &category,
        form.get("exception").unwrap_or_default(),
    )
    .await?;
    Ok(Redirect::to(&format!("/libraries?category={}", urlencode(&category))).into_response())
}

/// Records an exception asked for while triaging `capture`: an admin's
/// joins the school's library at once; anyone else's waits for an admin.
/// Returns whether it was applied.
///
/// # Errors
/// As [`add_exception_to_policy`]; a storage failure.
pub async fn suggest_exception(
    state: &AppState,
    staff: &Staff,
    category: &str,
    text: &str,
    capture: uuid::Uuid,
) -> Result<bool, WebError> {
    if staff.role == Role::Admin {
        add_exception_to_policy(state, staff, category, text).await?;
        return Ok(true);
    }
    let text = phrase(text, "exception")?;
    staff
        .audit(
            state,
            AuditAction::SuggestException,
            category.to_owned(),
            format!("{text:?} (capture {capture})"),
        )
        .await?;
    let (cat, by) = (category.to_owned(), staff.name.clone());
    blocking(state, move |s| {
        s.suggest_exception(&cat, &text, &by, Some(capture), UnixMillis::now())
    })
    .await?;
    Ok(false)
}

/// The exceptions waiting for an admin, and the last ones decided.
fn suggestions_section(staff: &Staff, suggestions: &[Suggestion]) -> maud::Markup {
    let pending: Vec<&Suggestion> = suggestions
        .iter()
        .filter(|s| s.status == SuggestionStatus::Pending)
        .collect();
    let decided: Vec<&Suggestion> = suggestions
        .iter()
        .filter(|s| s.status != SuggestionStatus::Pending)
        .collect();
    html! {
        section #suggestions {
            h2 { "Exceptions suggested in triage" }
            @if pending.is_empty() {
                p.muted { "None waiting." }
            } @else {
                p.muted { "A reviewer's suggested exception reaches the laptops only once an admin approves it." }
                table #pending-suggestions {
                    thead { tr { th { "Category" } th { "Phrase" } th { "Suggested by" } th { "When" } th { "Capture" } @if staff.role == Role::Admin { th {} } } }
                    tbody {
                        @for s in &pending {
                            tr data-id=(s.id) {
                                td { (s.category) }
                                td.phrase { (s.phrase) }
                                td { (s.suggested_by) }
                                td { (local_time(&s.time)) }
                                td { @if let Some(c) = s.capture { a href={ "/captures/" (c) } { "open" } } }
                                @if staff.role == Role::Admin {
                                    td {
                                        form.inline method="post" action={ "/libraries/suggestions/" (s.id) "/approve" } {
                                            (csrf(staff))
                                            button type="submit" { "Approve" }
                                        }
                                        " "
                                        form.inline method="post" action={ "/libraries/suggestions/" (s.id) "/reject" } {
                                            (csrf(staff))
                                            button type="submit" { "Reject" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !decided.is_empty() {
                details {
                    summary { "Recently decided (" (decided.len()) ")" }
                    ul {
                        @for s in &decided {
                            li {
                                (s.phrase) " (" (s.category) "), suggested by " (s.suggested_by) ": "
                                strong { (s.status.as_str()) }
                                @if let Some(by) = &s.decided_by { " by " (by) }
                                @if let Some(t) = &s.decided_time { ", " (local_time(t)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /libraries/suggestions/{id}/approve`: the phrase joins the
/// school's exceptions and reaches every laptop.
pub async fn approve_suggestion(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    decide(&state, &staff, &headers, id, &form, true).await
}

/// `POST /libraries/suggestions/{id}/reject`.
pub async fn reject_suggestion(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    decide(&state, &staff, &headers, id, &form, false).await
}

async fn decide(
    state: &AppState,
    staff: &AdminStaff,
    headers: &HeaderMap,
    id: String,
    form: &Form,
    approve: bool,
) -> Result<Response, WebError> {
    staff.check_post(headers, form)?;
    let id: i64 = id
        .parse()
        .map_err(|_| WebError::NotFound(format!("there is no suggested exception {id:?}")))?;
    let Some(suggestion) = blocking(state, move |s| s.exception_suggestion(id)).await? else {
        return Err(WebError::NotFound(format!(
            "there is no suggested exception {id}"
        )));
    };
    if suggestion.status != SuggestionStatus::Pending {
        return Err(WebError::BadRequest(format!(
            "that suggestion was already {} by {}",
            suggestion.status.as_str(),
            suggestion.decided_by.as_deref().unwrap_or("someone")
        )));
    }
    if approve {
        // Into the policy first: if the library will not take it, the
        // suggestion stays pending.
        add_exception_to_policy(state, staff, &suggestion.category, &suggestion.phrase).await?;
    } else {
        staff
            .audit(
                state,
                AuditAction::RejectException,
                suggestion.category.clone(),
                format!(
                    "{:?} suggested by {}",
                    suggestion.phrase, suggestion.suggested_by
                ),
            )
            .await?;
    }
    let by = staff.name.clone();
    blocking(state, move |s| {
        s.decide_exception(id, approve, &by, UnixMillis::now())
    })
    .await?;
    Ok(Redirect::to("/libraries#suggestions").into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn school_files_gain_exceptions_and_terms_and_still_parse() {
        let mut p = Policy::baseline();
        edit_school_file(&mut p, "weapons", |f| {
            f.exceptions.push("knife skills club".into());
            Ok(())
        })
        .unwrap();
        edit_school_file(&mut p, "weapons", |f| {
            f.group.push(SchoolGroup {
                severity: 4,
                definition: "Local slang for a blade.".into(),
                terms: vec!["a wrongun blade".into()],
            });
            Ok(())
        })
        .unwrap();
        assert_eq!(p.libraries.len(), 1);
        let cat = wordlists::library::parse(&p.libraries[0].name, &p.libraries[0].toml).unwrap();
        assert_eq!(cat.exceptions, ["knife skills club"]);
        assert_eq!(cat.entries[0].term, "a wrongun blade");
        crate::policy::check(&p).unwrap();
    }

    #[test]
    fn a_hand_written_school_file_is_not_overwritten() {
        let mut p = Policy::baseline();
        p.libraries.push(protocol::LibraryFile {
            name: "school-weapons".into(),
            toml: "category = \"weapons\"\ntitle = \"Ours\"\n".into(),
        });
        assert!(edit_school_file(&mut p, "weapons", |_| Ok(())).is_err());
    }
}
