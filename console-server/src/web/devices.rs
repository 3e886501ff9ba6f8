//! The Devices page: every laptop with its state and what watches its
//! sessions; an admin revokes a laptop or mints an enrollment token. Every
//! change is audited.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::UnixMillis;
use uuid::Uuid;

use super::auth::Staff;
use super::form::Form;
use super::layout::{WebError, csrf, local_time, shell};
use super::roles::{AdminStaff, AnyStaff};
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::Role;

/// What watches a device's sessions, as its agent last said: each
/// session monitored or not, the browsers' page readers, its spool and
/// the refusals on its local socket.
fn health(d: &crate::store::Device) -> Markup {
    let Some(h) = &d.health else {
        return html! { span.muted { "not reported (an agent before version 4)" } };
    };
    let empty = Vec::new();
    let sessions = h["sessions"].as_array().unwrap_or(&empty);
    let readers = h["page_readers"].as_array().unwrap_or(&empty);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    html! {
        ul.health {
            @if sessions.is_empty() { li.muted { "no one logged in" } }
            @for s in sessions {
                li.session {
                    (text(&s["user"])) " on " (if text(&s["display"]).is_empty() { "no display".to_owned() } else { text(&s["display"]) }) ": "
                    @if s["monitored"].as_bool() == Some(true) {
                        span.status.false_positive { "monitored" }
                        @if s["supervised"].as_bool() == Some(true) { " (by the service)" }
                    } @else {
                        span.status.violation { "NOT MONITORED" }
                    }
                }
            }
            @for r in readers {
                li.reader { "page reader: " (text(&r["browser"])) " (" (text(&r["user"])) ")" }
            }
            @if let Some(hb) = &d.heartbeat {
                li.muted {
                    "spool " (hb["spool_depth"].as_u64().unwrap_or(0))
                    ", dropped " (hb["spool_dropped"].as_u64().unwrap_or(0))
                }
            }
            @if let Some(n) = h["refused"].as_u64().filter(|n| *n > 0) {
                li { "refused on its socket " (n) " (forged or flooding messages)" }
            }
            @if h["supervising"].as_bool() == Some(false) {
                li.muted { "helpers started by the users (not out of their reach)" }
            }
            @let semantic = text(&h["semantic"]);
            @if semantic.starts_with("model in") {
                li.muted { "semantic layer: on (" (semantic) ")" }
            } @else if semantic == "off in the policy" {
                li.muted { "semantic layer: off in the policy" }
            } @else if !semantic.is_empty() {
                li { "semantic layer: " span.status.violation { (semantic) } }
            }
        }
    }
}

pub async fn page(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    devices_page(&state, &staff, None).await
}

async fn devices_page(
    state: &AppState,
    staff: &Staff,
    minted: Option<String>,
) -> Result<Response, WebError> {
    let since = UnixMillis(UnixMillis::now().0 - state.offline_after_ms);
    let scope = staff.scope.clone();
    let (devices, schools) = blocking(state, move |s| {
        Ok((
            crate::store::scope::devices_in_scope(s, since, &scope)?,
            s.schools()?,
        ))
    })
    .await?;
    let trust = !schools.is_empty();
    let online = devices.iter().filter(|d| d.online).count();
    let tokens = if staff.role == Role::Admin {
        Some(super::tokens::enroll_tokens_section(state, staff).await?)
    } else {
        None
    };
    let body = html! {
        h1 { "Devices" }
        p.muted { (devices.len()) " enrolled, " (online) " online now." }
        @if let Some(token) = &minted {
            div.notice.ok {
                p { "A one-time enrollment token (shown once; it enrolls one laptop):" }
                pre.context { (token) }
                p {
                    "On the laptop, as root, save it to a file and run "
                    code { "agent enroll --token-file FILE --state-dir /var/lib/safeguard-agent" }
                    " (or pipe it in: " code { "agent enroll --state-dir /var/lib/safeguard-agent < FILE" }
                    "). A token typed on the command line shows in the laptop's process list."
                }
            }
        }
        @if staff.role == Role::Admin {
            form.toolbar method="post" action="/devices/enroll-token" {
                (csrf(staff))
                "Enroll a laptop: "
                select name="ttl" aria-label="valid for" {
                    option value="1" { "valid 1 hour" }
                    option value="24" selected { "valid 24 hours" }
                    option value="168" { "valid 7 days" }
                }
                @if trust && staff.scope.school().is_none() {
                    " for "
                    select name="school" aria-label="school" {
                        @for s in &schools { option value=(s.id) { (s.name) } }
                    }
                }
                button type="submit" { "Mint an enrollment token" }
            }
        }
        @if let Some(tokens) = tokens { (tokens) }
        table #devices {
            thead { tr {
                th { "Device" } @if trust { th { "School" } } th { "Status" } th { "Last seen" } th { "User" } th { "Monitoring" } th { "Tamper" } th { "OS" } th { "Agent" }
                @if staff.role == Role::Admin { th {} }
            } }
            tbody {
                @for d in &devices {
                    tr {
                        td { @if d.hostname.is_empty() { (d.id) } @else { (d.hostname) } br; span.muted { (d.id) } }
                        @if trust { td { (d.school.as_deref().unwrap_or("")) } }
                        td {
                            @if let Some(r) = &d.revoked { span.status.violation { "Revoked" } " " (local_time(r)) }
                            @else if let Some(since) = &d.silent_since {
                                span.status.violation.silent { "Silent" }
                                br; span.muted { "nothing since " (local_time(since)) " while a user was logged in" }
                            }
                            @else if d.online { span.status.false_positive { "Online" } }
                            @else { span.status.new { "Offline" } }
                        }
                        td { (d.last_seen.as_deref().map(local_time).unwrap_or_default()) }
                        td { (d.user.as_deref().unwrap_or("")) }
                        td.health { (health(d)) }
                        td {
                            @if d.open_tamper_events > 0 {
                                @if staff.role.sees_captures() {
                                    a.status.violation href={ "/tamper?device=" (d.id) } { (d.open_tamper_events) " open" }
                                } @else {
                                    span.status.violation { (d.open_tamper_events) " open" }
                                }
                            } @else { span.muted { "none open" } }
                        }
                        td { (d.os) }
                        td { (d.agent_version) }
                        @if staff.role == Role::Admin {
                            td {
                                @if d.revoked.is_none() {
                                    form method="post" action={ "/devices/" (d.id) "/revoke" } data-confirm="Revoke this device? Its agent will be refused until it is enrolled again." {
                                        (csrf(staff))
                                        input name="reason" placeholder="reason" size="14";
                                        " "
                                        button type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(staff, "Devices", "Devices", body).into_response())
}

pub async fn revoke(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let id = Uuid::parse_str(&id)
        .map_err(|_| WebError::NotFound(format!("{id:?} is not a device id")))?;
    let scope = staff.scope.clone();
    let in_school = blocking(&state, move |s| {
        crate::store::scope::device_in_scope(s, id, &scope)
    })
    .await?;
    if !in_school {
        return Err(WebError::NotFound(format!("there is no device {id}")));
    }
    let reason = form.get("reason").unwrap_or_default().trim().to_owned();
    let reason = if reason.is_empty() {
        format!("revoked by {}", staff.name)
    } else {
        reason.chars().take(500).collect()
    };
    staff
        .audit(
            &state,
            AuditAction::RevokeDevice,
            id.to_string(),
            reason.clone(),
        )
        .await?;
    if !blocking(&state, move |s| {
        s.revoke_device(id, &reason, UnixMillis::now())
    })
    .await?
    {
        return Err(WebError::NotFound(format!("there is no device {id}")));
    }
    Ok(Redirect::to("/devices").into_response())
}

pub async fn enroll_token(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let school = super::staff::school_for(&staff, &form)?;
    let hours: u64 = match form.get("ttl").unwrap_or("24") {
        "1" => 1,
        "24" => 24,
        "168" => 168,
        other => {
            return Err(WebError::BadRequest(format!(
                "{other:?} is not a choice of validity"
            )));
        }
    };
    staff
        .audit(
            &state,
            AuditAction::MintEnrollToken,
            String::new(),
            match &school {
                Some(school) => format!("valid {hours} h, for {school}"),
                None => format!("valid {hours} h"),
            },
        )
        .await?;
    let (address, fingerprint) = (state.enroll_address.clone(), state.ca_fingerprint.clone());
    let (token, _) = blocking(&state, move |s| {
        crate::enrollment::record_enroll_token(
            s,
            &fingerprint,
            Duration::from_secs(hours * 3600),
            address,
            school.as_deref(),
        )
    })
    .await?;
    devices_page(&state, &staff, Some(token)).await
}
