//! Tokens on the admin pages: the JSON API's bearer tokens (on the Staff
//! page: name, role, owner, expiry, last use; revoke) and the enrollment
//! tokens not yet used (on the Devices page; revoke). Minting stays where
//! it was: enrollment tokens on the Devices page, API tokens on the command
//! line (`console-server api-token`), which prints the secret once.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::UnixMillis;

use super::auth::Staff;
use super::form::Form;
use super::layout::{WebError, csrf, local_time};
use super::roles::AdminStaff;
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::tokens::{ApiTokenInfo, EnrollTokenInfo};

/// The API tokens, live ones first, for the Staff page.
pub async fn api_tokens_section(state: &AppState, staff: &Staff) -> Result<Markup, WebError> {
    let mut tokens = school_api_tokens(state, staff).await?;
    tokens.sort_by_key(|t| !t.live);
    Ok(html! {
        section #api-tokens {
            h2 { "API tokens" }
            p.muted {
                "Bearer tokens for scripts and reports (" code { "console-server api-token --name NAME --role ROLE [--owner ACCOUNT]" } "). "
                "A token with an owner stops working when that account is disabled or loses the role."
            }
            @if tokens.is_empty() {
                p.muted { "None." }
            } @else {
                table #api-token-list {
                    thead { tr { th { "Id" } th { "Name" } th { "Role" } th { "Owner" } th { "Made" } th { "Expires" } th { "Last used" } th { "State" } th {} } }
                    tbody {
                        @for t in &tokens {
                            tr data-id=(t.id) {
                                td { code { (t.id) } }
                                td { (t.name) }
                                td { (t.role.as_str()) }
                                td { (t.owner.as_deref().unwrap_or("nobody (a script's)")) @if let Some(s) = &t.school { br; span.muted { (s) } } }
                                td { (local_time(&t.created)) }
                                td { (local_time(&t.expires)) }
                                td { (t.last_used.as_deref().map(local_time).unwrap_or_else(|| "never".into())) }
                                td {
                                    @if let Some(r) = &t.revoked { "revoked " (local_time(r)) }
                                    @else if t.live { "live" }
                                    @else { "expired" }
                                }
                                td {
                                    @if t.live {
                                        form method="post" action={ "/staff/api-tokens/" (t.id) "/revoke" } data-confirm="Revoke this token? Scripts using it are refused at once." {
                                            (csrf(staff))
                                            button type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The API tokens `staff` manages: their school's, or every one for the
/// trust's admins.
async fn school_api_tokens(state: &AppState, staff: &Staff) -> Result<Vec<ApiTokenInfo>, WebError> {
    let mut tokens: Vec<ApiTokenInfo> =
        blocking(state, |s| s.api_tokens(UnixMillis::now())).await?;
    if let Some(mine) = staff.scope.school() {
        tokens.retain(|t| t.school.as_deref() == Some(mine));
    }
    Ok(tokens)
}

/// The enrolment tokens `staff` manages: their school's, or every one
/// for the trust's admins.
async fn school_enroll_tokens(
    state: &AppState,
    staff: &Staff,
) -> Result<Vec<EnrollTokenInfo>, WebError> {
    let mut tokens: Vec<EnrollTokenInfo> =
        blocking(state, |s| s.enroll_tokens(UnixMillis::now())).await?;
    if let Some(mine) = staff.scope.school() {
        tokens.retain(|t| t.school.as_deref() == Some(mine));
    }
    Ok(tokens)
}

/// The enrollment tokens that could still enroll a laptop, for the
/// Devices page.
pub async fn enroll_tokens_section(state: &AppState, staff: &Staff) -> Result<Markup, WebError> {
    let tokens = school_enroll_tokens(state, staff).await?;
    Ok(html! {
        section #enroll-tokens {
            h2 { "Enrollment tokens not yet used" }
            @if tokens.is_empty() {
                p.muted { "None: no laptop can enroll until a token is minted." }
            } @else {
                table #enroll-token-list {
                    thead { tr { th { "Id" } th { "School" } th { "Made" } th { "Usable until" } th {} } }
                    tbody {
                        @for t in &tokens {
                            tr data-id=(t.id) {
                                td { code { (t.id) } }
                                td { (t.school.as_deref().unwrap_or("")) }
                                td { (local_time(&t.created)) }
                                td { (local_time(&t.expires)) }
                                td {
                                    form method="post" action={ "/devices/enroll-tokens/" (t.id) "/revoke" } {
                                        (csrf(staff))
                                        button type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// `POST /staff/api-tokens/{id}/revoke`.
pub async fn revoke_api_token(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    if staff.scope.school().is_some()
        && !school_api_tokens(&state, &staff)
            .await?
            .iter()
            .any(|t| t.live && t.id.eq_ignore_ascii_case(id.trim()))
    {
        return Err(WebError::NotFound(format!(
            "no live API token of your school has the id {id:?}"
        )));
    }
    staff
        .audit(
            &state,
            AuditAction::RevokeApiToken,
            id.clone(),
            String::new(),
        )
        .await?;
    let which = id.clone();
    let n = blocking(&state, move |s| {
        s.revoke_api_tokens(None, Some(&which), UnixMillis::now())
    })
    .await?;
    if n == 0 {
        return Err(WebError::NotFound(format!(
            "no live API token has the id {id:?}"
        )));
    }
    Ok(Redirect::to("/staff#api-tokens").into_response())
}

/// `POST /devices/enroll-tokens/{id}/revoke`.
pub async fn revoke_enroll_token(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    if staff.scope.school().is_some()
        && !school_enroll_tokens(&state, &staff)
            .await?
            .iter()
            .any(|t| t.id.eq_ignore_ascii_case(id.trim()))
    {
        return Err(WebError::NotFound(format!(
            "no usable enrollment token of your school has the id {id:?}"
        )));
    }
    staff
        .audit(
            &state,
            AuditAction::RevokeEnrollToken,
            id.clone(),
            String::new(),
        )
        .await?;
    let which = id.clone();
    if !blocking(&state, move |s| {
        s.revoke_enroll_token(&which, UnixMillis::now())
    })
    .await?
    {
        return Err(WebError::NotFound(format!(
            "no unused enrollment token has the id {id:?}"
        )));
    }
    Ok(Redirect::to("/devices#enroll-tokens").into_response())
}
