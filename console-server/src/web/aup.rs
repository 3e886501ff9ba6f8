//! The Acceptable Use Policy in the console: the text in force for each
//! audience (admins edit and publish it: each publication is a new version
//! that every agent receives with the policy), its history, the log of
//! every accept and decline, and who has not accepted the version in force.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, PreEscaped, html};
use protocol::{Audience, AupText, UnixMillis};
use serde::Deserialize;

use super::form::Form;
use super::layout::{WebError, csrf, local_time, shell};
use super::register::{AupStatus, account_cells, audience_label, current_versions};
use super::roles::{AdminStaff, AnyStaff};
use super::{AppState, blocking};
use crate::policy::MAX_AUP;
use crate::store::AuditAction;
use crate::store::Role;
use crate::store::register::audience_str;
use crate::store::scope::accounts_in_scope;

const AUDIENCES: [Audience; 2] = [Audience::Pupils, Audience::Staff];
/// Most decisions listed on the log page.
const LOG_ROWS: u32 = 2000;

/// The school's Markdown as HTML for staff: raw HTML in it is shown as
/// text, and links and images are reduced to their text, so nothing in it
/// runs or loads.
pub fn markdown_html(markdown: &str) -> Markup {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let events = Parser::new(markdown).filter_map(|e| match e {
        Event::Html(t) | Event::InlineHtml(t) => Some(Event::Text(t)),
        Event::Start(Tag::Link { .. } | Tag::Image { .. })
        | Event::End(TagEnd::Link | TagEnd::Image) => None,
        other => Some(other),
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    PreEscaped(out)
}

/// A year group's own AUP published (or, with `withdraw`, withdrawn):
/// kept with the layers, so laptops have it within seconds.
async fn publish_year(
    state: &AppState,
    staff: &AdminStaff,
    group: &str,
    form: &Form,
) -> Result<Response, WebError> {
    let withdraw = form.get("withdraw") == Some("1");
    let markdown = if withdraw {
        String::new()
    } else {
        form.get("markdown")
            .unwrap_or_default()
            .replace("\r\n", "\n")
    };
    if !withdraw && markdown.trim().is_empty() {
        return Err(WebError::BadRequest(
            "the text is empty; to show the year the pupils' AUP again, withdraw its own".into(),
        ));
    }
    if markdown.len() > MAX_AUP {
        return Err(WebError::BadRequest(format!(
            "the text is {} bytes; at most {MAX_AUP}",
            markdown.len()
        )));
    }
    let (group, who) = (group.to_owned(), (staff.name.clone(), staff.origin.clone()));
    blocking(state, move |s| {
        s.publish_group_aup(&group, &markdown, (&who.0, &who.1), UnixMillis::now())
    })
    .await?;
    Ok(Redirect::to("/aup#aup-years").into_response())
}

fn parse_audience(s: Option<&str>) -> Result<Audience, WebError> {
    match s {
        Some("pupils") => Ok(Audience::Pupils),
        Some("staff") => Ok(Audience::Staff),
        other => Err(WebError::BadRequest(format!(
            "the audience {other:?} is neither pupils nor staff"
        ))),
    }
}

/// `GET /aup`
pub async fn page(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    let scope = staff.scope.clone();
    let (history, accounts, years, groups) = blocking(&state, move |s| {
        Ok((
            s.aup_versions()?,
            accounts_in_scope(s, &scope)?,
            s.group_aups()?,
            s.known_groups()?,
        ))
    })
    .await?;
    staff
        .audit(&state, AuditAction::ViewAup, String::new(), String::new())
        .await?;
    let policy = state.policy.borrow().clone();
    let current = current_versions(&state, &years);
    let year_groups: Vec<&String> = groups
        .iter()
        .map(|(g, _)| g)
        .filter(|g| g.starts_with("year:"))
        .collect();
    let body = html! {
        h1 { "Acceptable Use Policy" }
        p.muted {
            "Every user sees the text for their audience full screen at each login, and must accept it "
            "before using the laptop; declining logs them out. Publishing an edit makes a new version, "
            "which every laptop shows again at once. Staff are the accounts the MIS import names as staff."
        }
        p {
            a href="/aup/decisions" { "Decision log" } " · "
            a href="/aup/pending" { "Who has not accepted" } " · "
            a href="/register" { "Users" }
        }
        @for audience in AUDIENCES {
            @let text = policy.aup_for(audience);
            @let version = text.map_or(0, |t| t.version);
            @let of_audience: Vec<_> = accounts.iter().filter(|a| a.audience() == audience).collect();
            @let accepted = of_audience.iter().filter(|a| AupStatus::of(a, &current).accepted()).count();
            section id={ "aup-" (audience_str(audience)) } {
                h2 { (audience_label(audience)) ": version " (version) }
                p.muted {
                    (accepted) " of " (of_audience.len()) " known " (audience_str(audience))
                    " accounts have accepted this version."
                }
                @if let Some(t) = text {
                    div.aup-text { (markdown_html(&t.markdown)) }
                    @if staff.role == Role::Admin {
                        details.aup-edit {
                            summary { "Edit and publish a new version" }
                            form method="post" action="/aup/publish" {
                                (csrf(&staff))
                                input type="hidden" name="audience" value=(audience_str(audience));
                                textarea name="markdown" rows="18" { (t.markdown) }
                                p.muted { "Markdown: # headings, - lists, **bold**, blank lines between paragraphs." }
                                button type="submit" { "Publish version " (version + 1) }
                            }
                        }
                    }
                }
            }
        }
        section #aup-years {
            h2 { "Year groups' own AUPs" }
            p.muted {
                "A year group may have an AUP of its own (an age-appropriate text for the youngest, say): "
                "its pupils are shown it at login in place of the pupils' AUP, and their answers are kept against it. "
                "Staff always see the staff AUP."
            }
            @if years.is_empty() {
                p #no-year-aups { "No year group has its own AUP: every pupil is shown the pupils' AUP." }
            }
            @for y in &years {
                @let of_year: Vec<_> = accounts.iter().filter(|a| current.for_account(a).is_some_and(|(g, _)| g == y.group)).collect();
                @let accepted = of_year.iter().filter(|a| AupStatus::of(a, &current).accepted()).count();
                section.year-aup data-group=(y.group) {
                    h3 { (y.group) ": version " (y.version) }
                    p.muted { (accepted) " of " (of_year.len()) " known accounts of the year have accepted this version." }
                    div.aup-text { (markdown_html(&y.markdown)) }
                    @if staff.role == Role::Admin {
                        form.inline method="post" action="/aup/publish" {
                            (csrf(&staff))
                            input type="hidden" name="audience" value=(y.group);
                            input type="hidden" name="withdraw" value="1";
                            button type="submit" { "Withdraw (its pupils see the pupils' AUP)" }
                        }
                    }
                }
            }
            @if staff.role == Role::Admin {
                details.aup-edit #year-aup-form {
                    summary { "Publish a year group's own AUP" }
                    @if year_groups.is_empty() {
                        p.muted { "Year groups come from the register: import it on the Users page first." }
                    } @else {
                        form method="post" action="/aup/publish" {
                            (csrf(&staff))
                            label { "Year group "
                                select name="audience" {
                                    @for g in &year_groups { option value=(g) { (g) } }
                                }
                            }
                            textarea name="markdown" rows="14" {}
                            p.muted { "Markdown: # headings, - lists, **bold**, blank lines between paragraphs. A year group that has one gets a new version." }
                            button type="submit" { "Publish" }
                        }
                    }
                }
            }
        }
        h2 { "History" }
        table #aup-history {
            thead { tr { th { "Audience" } th { "Version" } th { "Published" } th { "By" } th { "Text" } } }
            tbody {
                @for v in &history {
                    tr {
                        td { (v.audience) } td { (v.version) }
                        td { (local_time(&crate::store::rfc3339(v.published))) }
                        td { (v.staff) }
                        td { details { summary { "Show" } div.aup-text { (markdown_html(&v.markdown)) } } }
                    }
                }
            }
        }
    };
    Ok(shell(&staff, "Acceptable Use Policy", "AUP", body).into_response())
}

/// `POST /aup/publish`
pub async fn publish(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    if let Some(group) = form.get("audience").filter(|a| a.starts_with("year:")) {
        return publish_year(&state, &staff, group, &form).await;
    }
    let audience = parse_audience(form.get("audience"))?;
    let markdown = form
        .get("markdown")
        .unwrap_or_default()
        .replace("\r\n", "\n");
    if markdown.trim().is_empty() {
        return Err(WebError::BadRequest(
            "the text is empty; every user must be shown a policy to accept".into(),
        ));
    }
    if markdown.len() > MAX_AUP {
        return Err(WebError::BadRequest(format!(
            "the text is {} bytes; at most {MAX_AUP}",
            markdown.len()
        )));
    }
    let history = blocking(&state, |s| s.aup_versions()).await?;
    let highest = history
        .iter()
        .filter(|v| v.audience == audience_str(audience))
        .map(|v| v.version)
        .max()
        .unwrap_or(0);
    let text = markdown.clone();
    // Saved with the policy, the new text is noted in the AUP's history.
    super::policy::update_policy(
        &state,
        &staff,
        AuditAction::PublishAup,
        audience_str(audience).into(),
        format!("{} bytes", markdown.len()),
        move |p| {
            let current = p.aup_for(audience).map(|a| (a.version, a.markdown.clone()));
            if current.as_ref().is_some_and(|(_, m)| *m == text) {
                return Err(WebError::BadRequest(
                    "this is the text already in force; nothing was published".into(),
                ));
            }
            let version = highest.max(current.map_or(0, |(v, _)| v)) + 1;
            p.aup.retain(|a| a.audience != audience);
            p.aup.push(AupText {
                audience,
                version,
                markdown: text.clone(),
            });
            Ok(())
        },
    )
    .await?;
    Ok(Redirect::to(&format!("/aup#aup-{}", audience_str(audience))).into_response())
}

#[derive(Debug, Deserialize)]
pub struct LogFilter {
    user: Option<String>,
}

/// `GET /aup/decisions`
pub async fn decisions(
    State(state): State<AppState>,
    staff: AnyStaff,
    Query(filter): Query<LogFilter>,
) -> Result<Response, WebError> {
    let user = filter.user.filter(|u| !u.trim().is_empty());
    let scope = staff.scope.clone();
    let (rows, accounts) = blocking(&state, move |s| {
        Ok((
            s.aup_decisions(LOG_ROWS, &scope)?,
            accounts_in_scope(s, &scope)?,
        ))
    })
    .await?;
    staff
        .audit(
            &state,
            AuditAction::ViewAupDecisions,
            user.clone().unwrap_or_default(),
            String::new(),
        )
        .await?;
    let names: std::collections::HashMap<&str, &str> = accounts
        .iter()
        .filter_map(|a| Some((a.account.as_str(), a.name.as_deref()?)))
        .collect();
    let body = html! {
        h1 { "AUP decisions" }
        p.muted { "Every accept and decline, newest first (the last " (LOG_ROWS) "), as the laptops reported them." }
        form.filters method="get" action="/aup/decisions" {
            label { "Account " input name="user" value=(user.as_deref().unwrap_or("")); }
            button type="submit" { "Filter" }
        }
        table.sortable #aup-decisions {
            thead { tr {
                th { "Time" } th { "Account" } th { "Name" } th { "Device" }
                th { "AUP" } th { "Version" } th { "Decision" }
            } }
            tbody {
                @for d in rows.iter().filter(|d| user.as_deref().is_none_or(|u| d.user == u)) {
                    tr {
                        td { (local_time(&d.time)) }
                        td { code { (d.user) } }
                        td { (names.get(d.user.as_str()).copied().unwrap_or("")) }
                        td { @if d.hostname.is_empty() { (d.device) } @else { (d.hostname) } }
                        td { (d.audience) }
                        td { (d.version) }
                        td {
                            @if d.decision == "accept" { span.ok { "Accepted" } }
                            @else { span.bad { "Declined" } }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(&staff, "AUP decisions", "AUP", body).into_response())
}

/// `GET /aup/pending`
pub async fn pending(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    let scope = staff.scope.clone();
    let (accounts, years) = blocking(&state, move |s| {
        Ok((accounts_in_scope(s, &scope)?, s.group_aups()?))
    })
    .await?;
    staff
        .audit(
            &state,
            AuditAction::ViewAupPending,
            String::new(),
            String::new(),
        )
        .await?;
    let current = current_versions(&state, &years);
    let waiting: Vec<_> = accounts
        .iter()
        .map(|a| (a, AupStatus::of(a, &current)))
        .filter(|(_, s)| !s.accepted())
        .collect();
    let body = html! {
        h1 { "Not yet accepted" }
        p.muted {
            "Accounts that have not accepted the version in force for their audience "
            @for (i, a) in AUDIENCES.iter().enumerate() {
                @if i > 0 { ", " }
                (audience_label(*a).to_lowercase()) " version " (current.audiences.get(a).copied().unwrap_or(0))
            }
            ". " (waiting.len()) " of " (accounts.len()) "."
        }
        input.table-filter type="search" data-table="aup-pending" placeholder="Filter…" aria-label="filter the list";
        table.sortable #aup-pending {
            thead { tr {
                th { "Account" } th { "Name" } th { "Year group" } th { "AUP" }
                th { "Status" } th { "Last seen" } th { "Devices" }
            } }
            tbody {
                @for (a, s) in &waiting {
                    tr { (account_cells(a, s)) }
                }
            }
        }
    };
    Ok(shell(&staff, "Not yet accepted", "AUP", body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_from_the_school_cannot_run_or_load_anything() {
        let html = markdown_html(
            "# Rules\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1)) ![x](http://evil/x.png) **bold** <img src=x onerror=alert(1)>",
        )
        .into_string();
        assert!(html.contains("<h1>Rules</h1>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("href"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("click"), "{html}");
    }
}
