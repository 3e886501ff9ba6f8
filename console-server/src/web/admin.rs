//! Administration: devices (revoke, mint an enrollment token), staff accounts
//! (add, change role, disable: each confirmed with the admin's password)
//! and the capture settings of the policy. Every change is audited and a
//! policy change is pushed to every connected agent at once.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::{Policy, UnixMillis};
use uuid::Uuid;

use super::auth::{Staff, urlencode};
use super::form::Form;
use super::layout::{WebError, confirm_password, csrf, local_time, shell};
use super::roles::{AdminStaff, AnyStaff};
use super::{AppState, blocking};
use crate::secret::hash_password;
use crate::store::AuditAction;
use crate::store::Role;

/// Changes the policy through the one policy service (see
/// [`crate::policy_service`]): from the newest stored version, checked,
/// saved with its audit line, pushed to the laptops.
///
/// # Errors
/// The change's own [`WebError`]; [`WebError::BadRequest`] if the changed
/// policy would not build on the agents; a storage failure.
pub async fn update_policy(
    state: &AppState,
    staff: &Staff,
    action: AuditAction,
    target: String,
    detail: String,
    change: impl FnMut(&mut Policy) -> Result<(), WebError> + Send + 'static,
) -> Result<std::sync::Arc<Policy>, WebError> {
    use crate::policy_service::{Author, ChangeNote, PolicyChangeError};
    let author = Author {
        name: staff.name.clone(),
        origin: staff.origin.clone(),
        aup_label: staff.name.clone(),
    };
    let note = ChangeNote {
        action,
        target,
        detail,
    };
    state
        .editor
        .change(author, note, change)
        .await
        .map_err(|e| match e {
            PolicyChangeError::Refused(e) => e,
            PolicyChangeError::Invalid(m) => WebError::BadRequest(m),
            PolicyChangeError::Busy => WebError::Unavailable(e.to_string()),
            PolicyChangeError::Store(e) => WebError::from(e),
        })
}

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
        }
    }
}

pub async fn devices(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    devices_page(&state, &staff, None).await
}

async fn devices_page(
    state: &AppState,
    staff: &Staff,
    minted: Option<String>,
) -> Result<Response, WebError> {
    let since = UnixMillis(UnixMillis::now().0 - state.offline_after_ms);
    let devices = blocking(state, move |s| s.devices(since)).await?;
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
                button type="submit" { "Mint an enrollment token" }
            }
        }
        @if let Some(tokens) = tokens { (tokens) }
        table #devices {
            thead { tr {
                th { "Device" } th { "Status" } th { "Last seen" } th { "User" } th { "Monitoring" } th { "Tamper" } th { "OS" } th { "Agent" }
                @if staff.role == Role::Admin { th {} }
            } }
            tbody {
                @for d in &devices {
                    tr {
                        td { @if d.hostname.is_empty() { (d.id) } @else { (d.hostname) } br; span.muted { (d.id) } }
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
            format!("valid {hours} h"),
        )
        .await?;
    let (address, fingerprint) = (state.enroll_address.clone(), state.ca_fingerprint.clone());
    let (token, _) = blocking(&state, move |s| {
        crate::enrollment::record_enroll_token(
            s,
            &fingerprint,
            Duration::from_secs(hours * 3600),
            address,
        )
    })
    .await?;
    devices_page(&state, &staff, Some(token)).await
}

pub async fn staff(State(state): State<AppState>, staff: AdminStaff) -> Result<Response, WebError> {
    let accounts = blocking(&state, |s| s.staff_accounts()).await?;
    let tokens = super::tokens::api_tokens_section(&state, &staff).await?;
    let roles = [Role::Admin, Role::Reviewer, Role::Auditor];
    let body = html! {
        h1 { "Staff accounts" }
        p.muted {
            "Admins manage accounts, devices, libraries and settings. Reviewers see and triage captures. "
            "Auditors read the audit log and reports and never see captured text or screenshots."
        }
        table #staff {
            thead { tr { th { "Name" } th { "Role" } th { "Created" } th { "Status" } th { "Change role" } th { "Access" } } }
            tbody {
                @for a in &accounts {
                    tr {
                        td { (a.name) }
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

pub async fn add_staff(
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
    blocking(&state, move |s| {
        s.add_user(&n, role, &hash, UnixMillis::now())
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

pub async fn settings(
    State(state): State<AppState>,
    staff: AdminStaff,
) -> Result<Response, WebError> {
    let p = state.policy.borrow().clone();
    let defs = state.definitions();
    let src = &p.sources;
    let body = html! {
        h1 { "Settings" }
        p.muted { "What the laptops capture (policy version " (p.version) "). Saving makes a new version that every connected laptop receives within seconds." }
        form.card method="post" action="/settings" {
            (csrf(&staff))
            h2 { "Capturing" }
            label { "Minimum severity captured "
                select name="min_severity" { @for n in 1..=5u8 { option value=(n) selected[n == p.min_severity] { (n) } } }
            }
            label { "The same term in the same window counts once per "
                input type="number" name="debounce_seconds" min="0" max="86400" value=(p.debounce_seconds); " seconds"
            }
            label { input type="checkbox" name="screenshots" value="1" checked[p.screenshots]; " Take a screenshot with each capture" }
            label { "Screenshot width at most "
                input type="number" name="screenshot_max_width" min="320" max="7680" value=(p.screenshot_max_width); " pixels"
            }
            h2 { "Sources" }
            label { input type="checkbox" name="typed" value="1" checked[src.typed]; " Typed text" }
            label { input type="checkbox" name="window_title" value="1" checked[src.window_title]; " Window titles" }
            label { input type="checkbox" name="browser" value="1" checked[src.browser]; " Browser addresses and searches" }
            label { input type="checkbox" name="clipboard" value="1" checked[src.clipboard]; " Clipboard" }
            label { input type="checkbox" name="site_visits" value="1" checked[src.site_visits]; " Site visits" }
            label { input type="checkbox" name="screen_text" value="1" checked[src.screen_text]; " Text on screen (pages read by the browser extension)" }
            label { "Sites whose pages are never read (one domain a line; covers subdomains; their addresses and titles are still seen)"
                textarea name="page_reading_excluded" rows="4" cols="50" { (p.page_reading_excluded.join("\n")) }
            }
            h2 { "Categories captured" }
            @for (name, title) in &defs.categories {
                label { input type="checkbox" name="category" value=(name) checked[!p.disabled_categories.contains(name)]; " " (title) }
            }
            h2 { "Alerts" }
            p.muted { "Live alerts reach every open inbox. Desktop notifications and the alert sound (by severity) are chosen in each browser, on the inbox." }
            button.primary type="submit" { "Save and push to laptops" }
        }
        div.card {
            h2 { "Retention" }
            p.muted { "Set in console.toml in the data directory ([retention]); applied hourly." }
        }
    };
    Ok(shell(&staff, "Settings", "Settings", body).into_response())
}

pub async fn save_settings(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let num = |name: &str| -> Result<u32, WebError> {
        form.get(name)
            .unwrap_or_default()
            .trim()
            .parse()
            .map_err(|_| WebError::BadRequest(format!("{name} must be a whole number")))
    };
    let min_severity = u8::try_from(num("min_severity")?)
        .map_err(|_| WebError::BadRequest("min_severity must be 1 to 5".into()))?;
    let debounce = num("debounce_seconds")?.min(86_400);
    let width = num("screenshot_max_width")?;
    let on = |name: &str| form.get(name) == Some("1");
    let defs = state.definitions();
    let kept: Vec<&str> = form.all("category").collect();
    let disabled: Vec<String> = defs
        .categories
        .iter()
        .filter(|(name, _)| !kept.contains(&name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    let sources = protocol::SourceSwitches {
        typed: on("typed"),
        window_title: on("window_title"),
        browser: on("browser"),
        clipboard: on("clipboard"),
        site_visits: on("site_visits"),
        screen_text: on("screen_text"),
    };
    let excluded = excluded_sites(form.get("page_reading_excluded").unwrap_or_default())?;
    let screenshots = on("screenshots");
    let detail = format!(
        "min severity {min_severity}, debounce {debounce}s, screenshots {screenshots} (≤{width}px), {sources:?}, off: {disabled:?}, pages not read: {excluded:?}"
    );
    update_policy(
        &state,
        &staff,
        AuditAction::SetPolicy,
        String::new(),
        detail,
        move |p| {
            p.min_severity = min_severity;
            p.debounce_seconds = debounce;
            p.screenshots = screenshots;
            p.screenshot_max_width = width;
            p.sources = sources;
            p.disabled_categories = disabled.clone();
            p.page_reading_excluded = excluded.clone();
            Ok(())
        },
    )
    .await?;
    Ok(Redirect::to("/settings").into_response())
}

/// The sites excluded from page reading, one domain a line: lower-cased,
/// without a scheme, path or `*.`; a line that is not a domain is refused.
fn excluded_sites(text: &str) -> Result<Vec<String>, WebError> {
    let mut out: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let host = line
            .split_once("://")
            .map_or(line, |(_, rest)| rest)
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .trim_start_matches("*.")
            .trim_end_matches('.')
            .to_ascii_lowercase();
        let host = host.rsplit_once(':').map_or(host.as_str(), |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                &host
            }
        });
        let ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !ok {
            return Err(WebError::BadRequest(format!(
                "line {} of the sites whose pages are not read, {line:?}, is not a domain (write one like mis.school.example)",
                n + 1
            )));
        }
        if !out.iter().any(|d| d == host) {
            out.push(host.to_owned());
        }
    }
    if out.len() > 500 {
        return Err(WebError::BadRequest(
            "at most 500 sites may be excluded from page reading".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_sites_are_domains() {
        let got = excluded_sites(
            "https://MIS.school.example/login?x=1\n\n*.arbor.example:443\nmis.school.example\n",
        )
        .unwrap();
        assert_eq!(got, ["mis.school.example", "arbor.example"]);
        for bad in [
            "not a domain",
            "a..b",
            "<script>",
            "x .example/y",
            "https://",
        ] {
            assert!(excluded_sites(bad).is_err(), "{bad}");
        }
        let mut p = Policy::baseline();
        p.page_reading_excluded = got;
        assert!(p.page_reading_excluded("mis.school.example"));
        assert!(p.page_reading_excluded("www.arbor.example."));
        assert!(p.page_reading_excluded("ARBOR.example"));
        assert!(!p.page_reading_excluded("notarbor.example"));
        assert!(!p.page_reading_excluded("school.example"));
    }
}
