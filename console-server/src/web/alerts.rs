//! `GET /alerts`: the alerts the console sent or tried to send (see
//! [`crate::alerts`]): when, under which rule, about what, to whom (a
//! webhook by its host only), and what became of each.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;
use protocol::UnixMillis;

use super::layout::{WebError, shell};
use super::roles::AnyStaff;
use super::{AppState, blocking};
use crate::store::alerts::{AlertStatus, shown_target};

/// Alerts listed, newest first.
const LISTED: u32 = 200;

fn when(t: UnixMillis) -> String {
    super::layout::local_time(&crate::store::rfc3339(t))
}

pub async fn page(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    let scope = staff.scope.clone();
    let alerts = blocking(&state, move |s| {
        crate::store::scope::alerts_in_scope(s, LISTED, &scope)
    })
    .await?;
    let body = html! {
        h1 { "Alerts" }
        p.muted {
            "Alerts go by mail and webhook under the alert rules (on the Settings page, and in console.toml). "
            "They name the category, severity, laptop and a link, never the captured words unless a rule allows it."
        }
        @if alerts.is_empty() {
            p #no-alerts.muted { "No alert has been raised yet." }
        } @else {
            table #alerts {
                thead { tr {
                    th { "Raised" } th { "Rule" } th { "About" } th { "To" }
                    th { "Status" } th { "Tries" } th { "Sent" } th { "Last error" }
                } }
                tbody {
                    @for a in &alerts {
                        tr id={ "a-" (a.id) } class=(a.status.as_str()) {
                            td { (when(a.created)) }
                            td { (a.rule) }
                            td {
                                @if matches!(a.event.as_str(), "capture" | "concern" | "escalation") {
                                    a href={ "/captures/" (a.record) } { (a.event) }
                                } @else if a.event == "tamper" {
                                    a href="/tamper" { (a.event) }
                                } @else {
                                    a href="/devices" { (a.event) }
                                }
                            }
                            td { (a.channel.as_str()) ": " (shown_target(&a.target)) }
                            td {
                                @match a.status {
                                    AlertStatus::Sent => span.status.false_positive { "sent" },
                                    AlertStatus::Pending => @match a.held_until {
                                        Some(t) if a.attempts == 0 => span.status.new.held { "held for school hours, until " (when(t)) },
                                        _ => span.status.new { "waiting" },
                                    },
                                    AlertStatus::Failed => span.status.violation { "given up" },
                                }
                            }
                            td { (a.attempts) }
                            td { @if let Some(t) = a.sent { (when(t)) } }
                            td { (a.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(&staff, "Alerts", "Alerts", body).into_response())
}
