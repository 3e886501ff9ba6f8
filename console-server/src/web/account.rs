//! One's own account: the browsers signed in as you (end any of them, or
//! all but this one), and changing your password (which ends the others).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::auth::{ABSOLUTE, IDLE, Staff};
use super::form::Form;
use super::layout::{WebError, csrf, local_time, shell};
use super::roles::AnyStaff;
use super::staff::new_password_hash;
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::rfc3339;

pub async fn page_handler(
    state: &AppState,
    staff: &Staff,
    notice: Option<&str>,
) -> Result<Response, WebError> {
    let name = staff.name.clone();
    let sessions = blocking(state, move |s| s.sessions_of(&name)).await?;
    let body = html! {
        h1 { "Your account" }
        @if let Some(n) = notice { p.notice.ok { (n) } }
        p { "Signed in as " strong { (staff.name) } ", role " (staff.role.as_str()) "." }
        h2 { "Where you are signed in" }
        p.muted { "A session ends after " (IDLE.as_secs() / 60) " minutes without activity, or " (ABSOLUTE.as_secs() / 3600) " hours after signing in." }
        table #sessions {
            thead { tr { th { "Signed in" } th { "Last active" } th { "From" } th { "Browser" } th {} } }
            tbody {
                @for s in &sessions {
                    @let this = s.id_hash == staff.session.id_hash;
                    tr {
                        td { (local_time(&rfc3339(s.created))) }
                        td { (local_time(&rfc3339(s.last_seen))) }
                        td { (s.origin) }
                        td.snippet { (s.agent) }
                        td {
                            @if this { strong { "this browser" } }
                            @else {
                                form method="post" action="/account/sessions/end" {
                                    (csrf(staff))
                                    input type="hidden" name="session" value=(s.id_hash);
                                    button type="submit" { "End" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if sessions.len() > 1 {
            form method="post" action="/account/sessions/end" {
                (csrf(staff))
                input type="hidden" name="session" value="others";
                button type="submit" { "End all other sessions" }
            }
        }
        h2 { "Change your password" }
        form.card method="post" action="/account/password" {
            (csrf(staff))
            label { "Current password " input type="password" name="password" required autocomplete="current-password"; }
            label { " New password (at least 12 characters) " input type="password" name="new_password" required minlength="12" autocomplete="new-password"; }
            button type="submit" { "Change password" }
        }
    };
    Ok(shell(staff, "Account", "", body).into_response())
}

pub async fn page(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    page_handler(&state, &staff, None).await
}

/// Ends one of the user's own sessions, or all but this one.
pub async fn end_session(
    State(state): State<AppState>,
    staff: AnyStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let which = form.get("session").unwrap_or_default().to_owned();
    let (name, this) = (staff.name.clone(), staff.session.id_hash.clone());
    let ended = blocking(&state, move |s| {
        let mut ended = 0;
        for session in s.sessions_of(&name)? {
            let pick = if which == "others" {
                session.id_hash != this
            } else {
                session.id_hash == which
            };
            // Only the user's own sessions are listed, so no one can end
            // another person's session by guessing.
            if pick && s.end_session(&session.id_hash)? {
                ended += 1;
            }
        }
        Ok(ended)
    })
    .await?;
    staff
        .audit(
            &state,
            AuditAction::EndSession,
            staff.name.clone(),
            format!("{ended} ended"),
        )
        .await?;
    Ok(Redirect::to("/account").into_response())
}

pub async fn change_password(
    State(state): State<AppState>,
    staff: AnyStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    staff.reauthenticate(&state, &form).await?;
    let hash = new_password_hash(&form).await?;
    staff
        .audit(
            &state,
            AuditAction::ChangePassword,
            staff.name.clone(),
            String::new(),
        )
        .await?;
    let (name, this) = (staff.name.clone(), staff.session.id_hash.clone());
    blocking(&state, move |s| {
        s.set_staff_password(&name, &hash)?;
        // A changed password ends every other session.
        for session in s.sessions_of(&name)? {
            if session.id_hash != this {
                s.end_session(&session.id_hash)?;
            }
        }
        Ok(())
    })
    .await?;
    page_handler(
        &state,
        &staff,
        Some("Your password is changed; your other sessions have ended."),
    )
    .await
}
