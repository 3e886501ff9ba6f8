//! Tamper events: what laptops reported (or the console found) that
//! suggests monitoring was stopped, blinded or interfered with. Silence
//! from a laptop can mean "nothing happened" or "the pupil switched it
//! off"; these events are how staff tell the two apart.
//!
//! `GET /tamper` lists them, open ones first; `POST /tamper/{id}/acknowledge`
//! records that a member of staff has dealt with one (audited, the first
//! acknowledgement stands). The inbox shows the open ones above everything
//! else, and the live feed announces each as it arrives.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::UnixMillis;
use serde::Deserialize;
use uuid::Uuid;

use super::form::Form;
use super::layout::{WebError, csrf, local_time, shell};
use super::roles::CaptureStaff;
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::{TamperQuery, TamperRow};

/// Longest acknowledgement note.
const MAX_NOTE: usize = 2000;
/// Events on one page of the list.
const PAGE: u32 = 200;

/// What a kind of tamper event means, for staff.
pub fn label(kind: &str) -> &'static str {
    match kind {
        "AgentKilled" => "Monitoring stopped while the user was logged in",
        "ClockJump" => "The laptop's clock was moved",
        "SpoolDamaged" => "The laptop's record store was damaged",
        "SpoolOverflow" => "Records were dropped: the laptop's store was full",
        "SourceUnavailable" => "Monitoring could not read the keyboard or screen",
        "BrowserUnmonitored" => "A browser was used without the page reader",
        "SessionUnmonitored" => "A user was logged in with no working monitor",
        "MonitorRestarted" => "Monitoring stopped and was restarted",
        "DeviceSilent" => "The laptop went silent while a user was logged in",
        _ => "Monitoring was interfered with",
    }
}

/// The open tamper events for the inbox, newest first: at most `limit`.
pub fn open_section(events: &[TamperRow], limit: usize) -> Markup {
    html! {
        @if !events.is_empty() {
            section.tamper #tamper {
                h2 { "Monitoring interfered with (" (events.len()) @if events.len() == limit { "+" } ")" }
                p.muted {
                    "A laptop reported that monitoring stopped or could not see. Until it is "
                    "dealt with, that laptop's silence does not mean nothing happened. "
                    a href="/tamper" { "All tamper events" }
                }
                ul {
                    @for t in events {
                        li {
                            a href={ "/tamper#t-" (t.id) } { (local_time(&t.time)) " — " (device_name(t)) }
                            @if let Some(u) = &t.user { " (" (u) ")" }
                            ": " strong { (label(&t.kind)) }
                        }
                    }
                }
            }
        }
    }
}

fn device_name(t: &TamperRow) -> String {
    if t.hostname.is_empty() {
        t.device.to_string()
    } else {
        t.hostname.clone()
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct ListParams {
    /// `open`: only events nobody has acknowledged.
    show: Option<String>,
    device: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    staff: CaptureStaff,
    Query(p): Query<ListParams>,
) -> Result<Response, WebError> {
    let device = match p.device.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => Some(
            Uuid::parse_str(d)
                .map_err(|_| WebError::BadRequest(format!("{d:?} is not a device id")))?,
        ),
        None => None,
    };
    let open_only = p.show.as_deref() == Some("open");
    let query = TamperQuery {
        open_only,
        device,
        limit: PAGE,
        scope: staff.scope.clone(),
    };
    let events = blocking(&state, move |s| s.tamper_events(&query)).await?;
    staff
        .audit(
            &state,
            AuditAction::ViewTamper,
            device.map(|d| d.to_string()).unwrap_or_default(),
            String::new(),
        )
        .await?;
    let body = html! {
        h1 { "Tamper events" }
        p.muted {
            "What laptops reported, or the console found, that suggests monitoring was "
            "stopped, blinded or interfered with. Acknowledge one once it has been dealt "
            "with (for example, after speaking to the pupil or checking the laptop)."
        }
        p {
            @if open_only { a href="/tamper" { "Show all" } } @else { a href="/tamper?show=open" { "Show only open ones" } }
        }
        @if events.is_empty() {
            p #no-tamper.muted { "No tamper events." }
        } @else {
            table #tamper-events {
                thead { tr {
                    th { "Time" } th { "Device" } th { "User" } th { "What" } th { "Detail" } th { "Dealt with" }
                } }
                tbody {
                    @for t in &events {
                        tr id={ "t-" (t.id) } class=(if t.acknowledged_time.is_none() { "open" } else { "done" }) {
                            td { (local_time(&t.time)) }
                            td { a href={ "/tamper?device=" (t.device) } { (device_name(t)) } }
                            td { (t.user.as_deref().unwrap_or("")) }
                            td { strong { (label(&t.kind)) } br; span.muted { (t.kind) } }
                            td.detail { (t.detail) }
                            td {
                                @if let (Some(by), Some(at)) = (&t.acknowledged_by, &t.acknowledged_time) {
                                    (by) ", " (local_time(at))
                                    @if let Some(n) = t.acknowledged_note.as_deref().filter(|n| !n.is_empty()) { br; span.muted { (n) } }
                                } @else {
                                    form.inline method="post" action={ "/tamper/" (t.id) "/acknowledge" } {
                                        (csrf(&staff))
                                        input name="note" placeholder="what was done" size="18" aria-label="note";
                                        " "
                                        button type="submit" { "Acknowledge" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(&staff, "Tamper events", "Inbox", body).into_response())
}

pub async fn acknowledge(
    State(state): State<AppState>,
    staff: CaptureStaff,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| WebError::NotFound(format!("{id:?} is not a tamper event id")))?;
    let note = form.get("note").unwrap_or_default().trim().to_owned();
    if note.len() > MAX_NOTE {
        return Err(WebError::BadRequest(format!(
            "the note is over {MAX_NOTE} bytes"
        )));
    }
    let scope = staff.scope.clone();
    if !blocking(&state, move |s| {
        Ok(s.tamper_event(id)?.is_some() && (scope.is_all() || s.tamper_in_scope(id, &scope)?))
    })
    .await?
    {
        return Err(WebError::NotFound(format!("there is no tamper event {id}")));
    }
    staff
        .audit(
            &state,
            AuditAction::AcknowledgeTamper,
            id.to_string(),
            format!("{note:?}"),
        )
        .await?;
    let by = staff.name.clone();
    let done = blocking(&state, move |s| {
        s.acknowledge_tamper(id, &by, &note, UnixMillis::now())
    })
    .await?;
    if !done {
        tracing::info!("tamper event {id} was already acknowledged; the first word stands");
    }
    Ok(Redirect::to(&format!("/tamper#t-{id}")).into_response())
}

#[cfg(test)]
mod tests {
    use super::label;
    use protocol::TamperKind;

    #[test]
    fn every_kind_a_laptop_or_the_console_raises_has_its_own_words() {
        use TamperKind::*;
        let kinds = [
            AgentKilled,
            ClockJump,
            SpoolDamaged,
            SpoolOverflow,
            SourceUnavailable,
            BrowserUnmonitored,
            SessionUnmonitored,
            MonitorRestarted,
        ];
        for kind in kinds {
            // A kind added to the protocol fails to build here until it is
            // listed above (and given words in `label`).
            match kind {
                AgentKilled | ClockJump | SpoolDamaged | SpoolOverflow | SourceUnavailable
                | BrowserUnmonitored | SessionUnmonitored | MonitorRestarted | Other => {}
            }
            assert_ne!(label(&format!("{kind:?}")), label("Other"), "{kind:?}");
        }
        assert_ne!(label("DeviceSilent"), label("Other"));
    }
}
