//! One capture: the screenshot, the context with the match marked, the
//! term's definition, where and when it was made, the same user's earlier
//! captures, and the triage forms with the capture's whole history.
//! Viewing it, and viewing its screenshot, are each written to the audit
//! log before anything is sent.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::UnixMillis;
use uuid::Uuid;

use super::auth::Staff;
use super::form::Form;
use super::inbox::{MAX_NOTE, decision};
use super::layout::{
    WebError, confirm_password, context, csrf, local_time, severity_badge, shell, source_label,
    status_label,
};
use super::roles::{AdminStaff, CaptureStaff};
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::scope::Scope;
use crate::store::{CaptureQuery, CaptureSummary, Role, Status, Triage};

/// What staff can record as the action taken on a violation.
pub const ACTIONS: &[(&str, &str)] = &[
    ("spoke_to_pupil", "Spoke to the pupil"),
    ("contacted_parents", "Contacted parents or carers"),
    ("referred_dsl", "Referred to the safeguarding lead"),
    ("other", "Other (see note)"),
];

fn action_label(a: &str) -> &str {
    ACTIONS
        .iter()
        .find(|(k, _)| *k == a)
        .map_or(a, |(_, label)| label)
}

fn parse_id(id: &str) -> Result<Uuid, WebError> {
    Uuid::parse_str(id).map_err(|_| WebError::NotFound(format!("{id:?} is not a capture id")))
}

/// The next unreviewed capture after this one in inbox order (older), and
/// the previous (newer).
async fn neighbours(
    state: &AppState,
    id: Uuid,
    scope: &Scope,
) -> Result<(Option<Uuid>, Option<Uuid>), WebError> {
    let scope = scope.clone();
    blocking(state, move |s| {
        let q = |before, after| CaptureQuery {
            status: Some(Status::New),
            before,
            after,
            limit: 1,
            scope: scope.clone(),
            ..CaptureQuery::default()
        };
        let older = s.captures(&q(Some(id), None))?.first().map(|c| c.id);
        let newer = s.captures(&q(None, Some(id)))?.first().map(|c| c.id);
        Ok((older, newer))
    })
    .await
}

pub async fn page(
    State(state): State<AppState>,
    staff: CaptureStaff,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    super::capture_in_scope(&state.store, &staff.scope, id).await?;
    staff
        .audit(
            &state,
            AuditAction::ViewCapture,
            id.to_string(),
            String::new(),
        )
        .await?;
    let Some(detail) = blocking(&state, move |s| s.capture(id)).await? else {
        return Err(WebError::NotFound(format!(
            "there is no capture {id}; it may have been deleted by retention"
        )));
    };
    let c = &detail.summary;
    let user = c.user.clone();
    let scope = staff.scope.clone();
    let earlier = blocking(&state, move |s| {
        s.captures(&CaptureQuery {
            user: Some(user),
            limit: 60,
            scope,
            ..CaptureQuery::default()
        })
    })
    .await?;
    let (older, newer) = neighbours(&state, id, &staff.scope).await?;
    let defs = state.definitions();
    let title = defs.title(&c.category);
    let definition = defs.definition(&c.category, &c.term);
    let body = html! {
        div.toolbar {
            a href="/inbox" { "← Inbox" }
            @if let Some(n) = newer { a rel="prev" href={ "/captures/" (n) } { "← Newer unreviewed (k)" } }
            @if let Some(o) = older { a rel="next" href={ "/captures/" (o) } { "Older unreviewed (j) →" } }
            span.muted { "Keys: " span.kbd { "v" } " violation, " span.kbd { "f" } " false positive" }
        }
        h1 {
            (severity_badge(c.severity)) " " (c.term) " "
            span.muted { "· " (title) " · " }
            span class={ "status " (c.status.as_str()) } { (status_label(c.status)) }
        }
        div.grid {
            div {
                div.card {
                    h2 { "Context" }
                    p { (context(c)) }
                }
                div.card {
                    h2 { "Screenshot" }
                    @if c.has_image {
                        div.shotbox title="Click to zoom" {
                            img.shot src={ "/captures/" (c.id) "/image" } alt="Screenshot at the moment of capture";
                        }
                    } @else {
                        p.muted { "No screenshot: " (c.image_missing.as_deref().unwrap_or("none was sent")) }
                    }
                }
                div.card.timeline {
                    h2 { (c.user) "'s captures" }
                    (timeline(&earlier, c))
                    ul {
                        @for e in earlier.iter().filter(|e| e.id != c.id).take(10) {
                            li {
                                a href={ "/captures/" (e.id) } { (e.term) }
                                " · " (defs.title(&e.category)) " · " (local_time(&e.time)) " · "
                                span class={ "status " (e.status.as_str()) } { (status_label(e.status)) }
                            }
                        }
                    }
                }
            }
            div {
                div.card.triage {
                    h2 { "Decision" }
                    (triage_forms(&staff, c))
                }
                div.card {
                    h2 { "What this term means" }
                    p { (definition.unwrap_or("No definition: the term is no longer in the libraries.")) }
                    p.muted { "Category: " (title) ". Severity " (c.severity) " of 5." }
                }
                div.card {
                    dl.meta {
                        dt { "User" } dd { a href={ "/inbox?status=all&user=" (super::auth::urlencode(&c.user)) } { (c.user) } }
                        dt { "Device" } dd { (c.hostname) }
                        dt { "Application" } dd { (c.app) }
                        dt { "Window" } dd { (c.window_title) }
                        @if let Some(url) = &c.url { dt { "Address" } dd { (url) } }
                        dt { "Source" } dd { (super::layout::seen_badge(&c.source)) " " (source_label(&c.source)) }
                        dt { "Captured" } dd { (local_time(&c.time)) }
                        dt { "Received" } dd { (local_time(&detail.received)) }
                    }
                }
                div.card {
                    h2 { "History" }
                    @if detail.history.is_empty() {
                        p.muted { "No decision yet." }
                    } @else {
                        ol.history {
                            @for h in &detail.history {
                                li {
                                    strong { (status_label(h.status)) } " by " (h.actor) ", " (local_time(&h.time))
                                    @if let Some(a) = &h.action { br; "Action: " (action_label(a)) }
                                    @if !h.note.is_empty() { br; "Note: " (h.note) }
                                }
                            }
                        }
                    }
                }
                @if staff.role == Role::Admin {
                    div.card {
                        h2 { "Delete" }
                        form method="post" action={ "/captures/" (c.id) "/delete" } data-confirm="Delete this capture and its screenshot for good?" {
                            (csrf(&staff))
                            p.muted { "Deletes the capture and its screenshot. The audit log keeps a record that you did." }
                            (confirm_password())
                            button type="submit" { "Delete capture" }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(&staff, &format!("Capture: {}", c.term), "Inbox", body).into_response())
}

fn triage_forms(staff: &Staff, c: &CaptureSummary) -> Markup {
    let action = format!("/captures/{}/triage", c.id);
    html! {
        form #violation-form method="post" action=(action) {
            (csrf(staff))
            input type="hidden" name="status" value="violation";
            label { "Action taken"
                select name="action" {
                    @for (k, label) in ACTIONS { option value=(k) { (label) } }
                }
            }
            label { "Note" textarea #violation-note name="note" maxlength="8192" {} }
            button.violation type="submit" { "Violation" }
        }
        form #fp-form method="post" action=(action) {
            (csrf(staff))
            input type="hidden" name="status" value="false_positive";
            label { "Note" input name="note" maxlength="8192" size="30"; }
            label {
                input type="checkbox" name="add_exception" value="1";
                @if staff.role == Role::Admin {
                    " Add an exception so this is not captured again: "
                } @else {
                    " Suggest an exception (an admin approves it before it reaches the laptops): "
                }
                input name="exception" value=(c.term) size="24" aria-label="exception phrase";
            }
            button.fp type="submit" { "False positive" }
        }
        @if c.status != Status::New {
            form #reopen-form method="post" action=(action) {
                (csrf(staff))
                input type="hidden" name="status" value="new";
                input type="hidden" name="note" value="";
                button type="submit" { "Reopen" }
            }
        }
    }
}

/// The user's captures over the last 30 days as dots on a line.
fn timeline(captures: &[CaptureSummary], here: &CaptureSummary) -> Markup {
    const W: f64 = 600.0;
    let now = UnixMillis::now().0 as f64;
    let span = 30.0 * UnixMillis::DAY as f64;
    let x = |time: &str| {
        let t = time
            .parse::<jiff::Timestamp>()
            .map_or(now, |t| t.as_millisecond() as f64);
        (W - (now - t) / span * W).clamp(4.0, W - 4.0)
    };
    html! {
        svg viewBox="0 0 600 50" role="img" aria-label="captures over the last 30 days" {
            line x1="0" y1="30" x2="600" y2="30" stroke="#ccd" {}
            text x="0" y="48" { "30 days ago" }
            text x="560" y="48" { "now" }
            @for c in captures {
                circle class={ "dot " (c.status.as_str()) @if c.id == here.id { " here" } }
                    cx=(format!("{:.1}", x(&c.time))) cy="30" r=(if c.id == here.id { "7" } else { "4" }) {
                    title { (c.term) " · " (local_time(&c.time)) }
                }
            }
        }
    }
}

pub async fn image(
    State(state): State<AppState>,
    staff: CaptureStaff,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let id = parse_id(&id)?;
    super::capture_in_scope(&state.store, &staff.scope, id).await?;
    staff
        .audit(
            &state,
            AuditAction::ViewScreenshot,
            id.to_string(),
            String::new(),
        )
        .await?;
    match blocking(&state, move |s| s.capture_image(id)).await? {
        Some(png) => Ok(crate::api::png_response(png)),
        None => Err(WebError::NotFound(format!(
            "capture {id} has no screenshot"
        ))),
    }
}

pub async fn triage(
    State(state): State<AppState>,
    staff: CaptureStaff,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let id = parse_id(&id)?;
    let status = decision(&form)?;
    let note = form.get("note").unwrap_or_default().trim().to_owned();
    if note.len() > MAX_NOTE {
        return Err(WebError::BadRequest(format!(
            "the note is over {MAX_NOTE} bytes"
        )));
    }
    let action = match status {
        Status::Violation => {
            let a = form.get("action").unwrap_or_default();
            if !ACTIONS.iter().any(|(k, _)| *k == a) {
                return Err(WebError::BadRequest(
                    "choose the action taken for a violation".into(),
                ));
            }
            Some(a.to_owned())
        }
        _ => None,
    };
    // Checked before anything is recorded, so a bad phrase changes nothing.
    let exception = (status == Status::FalsePositive && form.get("add_exception") == Some("1"))
        .then(|| super::libraries::phrase(form.get("exception").unwrap_or_default(), "exception"))
        .transpose()?;
    super::capture_in_scope(&state.store, &staff.scope, id).await?;
    let Some(capture) = blocking(&state, move |s| s.capture(id)).await? else {
        return Err(WebError::NotFound(format!("there is no capture {id}")));
    };
    staff
        .audit(
            &state,
            AuditAction::Triage,
            id.to_string(),
            format!(
                "{}{}, {}",
                status.as_str(),
                action
                    .as_deref()
                    .map(|a| format!(" ({a})"))
                    .unwrap_or_default(),
                crate::store::audit_action::note_summary(&note)
            ),
        )
        .await?;
    let decision = Triage {
        status,
        note,
        action,
        actor: staff.name.clone(),
        time: UnixMillis::now(),
    };
    blocking(&state, move |s| s.triage(id, &decision)).await?;
    if let Some(phrase) = exception {
        super::libraries::suggest_exception(&state, &staff, &capture.summary.category, &phrase, id)
            .await?;
    }
    if status == Status::New {
        return Ok(Redirect::to(&format!("/captures/{id}")).into_response());
    }
    // On to the next unreviewed capture, as a reviewer working down the
    // inbox wants.
    let (older, newer) = neighbours(&state, id, &staff.scope).await?;
    Ok(match older.or(newer) {
        Some(next) => Redirect::to(&format!("/captures/{next}")),
        None => Redirect::to("/inbox"),
    }
    .into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    staff.reauthenticate(&state, &form).await?;
    let id = parse_id(&id)?;
    super::capture_in_scope(&state.store, &staff.scope, id).await?;
    let (actor, origin) = (staff.name.clone(), staff.origin.clone());
    // The store writes the audit event in the same transaction.
    if blocking(&state, move |s| s.delete_capture(id, &actor, &origin)).await? {
        Ok(Redirect::to("/inbox").into_response())
    } else {
        Err(WebError::NotFound(format!("there is no capture {id}")))
    }
}
