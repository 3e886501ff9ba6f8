//! The weekly site-visit report pages: the list of weeks with their
//! sign-off, one week's report (charts, sortable and filterable tables), a
//! print-ready form of it, CSV and PDF downloads, and the sign-off itself.
//!
//! Admins, reviewers and auditors (senior leaders) may read reports; every
//! read is audited. Admins and reviewers sign weeks off.

use crate::web::auth::Staff;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::UnixMillis;
use serde::Deserialize;

use super::form::Form;
use super::layout::{WebError, csrf, download, shell};
use super::roles::{AnyStaff, CaptureStaff};
use super::{AppState, blocking};
use crate::school_week::{self, Week};
use crate::site_report::{self, Detail, WeeklyReport, change, duration};
use crate::store::AuditAction;
use crate::store::scope::Scope;
use crate::store::visits::WeekSignoff;

/// Longest sign-off note.
const MAX_NOTES: usize = 4000;
/// How far back the list of weeks (and the "not yet checked" count) goes.
const WEEKS_LISTED: usize = 12;

#[derive(Debug, Deserialize)]
pub struct Params {
    week: Option<String>,
    print: Option<String>,
    table: Option<String>,
    /// One school of a trust (the trust's staff see every school's by
    /// default, and may ask for one).
    school: Option<String>,
}

/// The scope a report is made for: the staff's own, narrowed to the
/// school asked for, which must exist.
///
/// # Errors
/// [`WebError::Forbidden`] for another school than the staff's own;
/// [`WebError::BadRequest`] for a school there is not.
async fn report_scope(state: &AppState, staff: &Staff, p: &Params) -> Result<Scope, WebError> {
    let asked = p.school.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let scope = staff
        .scope
        .narrowed_to(asked)
        .map_err(WebError::Forbidden)?;
    if let Some(school) = asked.map(str::to_owned) {
        blocking(state, move |s| {
            crate::store::schools::require_school(s, &school)
        })
        .await?;
    }
    Ok(scope)
}

/// `&school=ID` for the links of a report of one school, else nothing.
fn school_param(scope: &Scope, staff: &Staff) -> String {
    match (scope.school(), staff.scope.school()) {
        (Some(school), None) => format!("&school={}", super::auth::urlencode(school)),
        _ => String::new(),
    }
}

/// The last complete week.
pub fn last_week() -> Week {
    Week::containing(UnixMillis::now(), &school_week::zone()).previous()
}

fn chosen(p: &Params) -> Result<Week, WebError> {
    match p.week.as_deref() {
        None | Some("") => Ok(last_week()),
        Some(w) => Week::parse(w).map_err(WebError::BadRequest),
    }
}

/// Complete weeks with visits, from the last [`WEEKS_LISTED`], newest
/// first, each with its sign-off if any.
///
/// # Errors
/// A storage failure.
pub fn recent_weeks(
    store: &dyn crate::store::Store,
) -> Result<Vec<(Week, Option<WeekSignoff>)>, crate::store::StoreError> {
    let tz = school_week::zone();
    let Some(first) = store.first_visit()? else {
        return Ok(Vec::new());
    };
    let first = Week::containing(first, &tz);
    let mut signoffs = store.week_signoffs()?;
    let mut out = Vec::new();
    let mut w = last_week();
    while w >= first && out.len() < WEEKS_LISTED {
        out.push((w, signoffs.remove(&w.to_string())));
        w = w.previous();
    }
    Ok(out)
}

/// `GET /reports`: the weeks, checked or not.
pub async fn index(State(state): State<AppState>, staff: AnyStaff) -> Result<Response, WebError> {
    let weeks = blocking(&state, recent_weeks).await?;
    let body = html! {
        h1 { "Weekly site-visit reports" }
        p.muted { "Each week runs Monday to Sunday in the school's time zone. The report for last week is made every Monday at 07:00 and mailed if the console is set up to." }
        @if weeks.is_empty() {
            p { "No site visits have arrived yet." }
        } @else {
            table.grid {
                thead { tr { th { "Week" } th { "Dates" } th { "Checked" } } }
                tbody {
                    @for (w, s) in &weeks {
                        tr {
                            td { a href={ "/reports/weekly?week=" (w) } { (w) } }
                            td { (w.span_label()) }
                            td {
                                @match s {
                                    Some(s) => { "Signed off by " (s.staff) ", " (when(s.time)) }
                                    None => { strong.warn { "Not yet checked" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(shell(&staff, "Reports", "Reports", body).into_response())
}

/// A week's report and its sign-off, if any.
async fn load(
    state: &AppState,
    week: Week,
    scope: &Scope,
) -> Result<(WeeklyReport, Option<WeekSignoff>), WebError> {
    let scope = scope.clone();
    blocking(state, move |s| {
        let r = WeeklyReport::load_in_scope(s, week, Detail::Summary, &scope)?;
        let signoff = s.week_signoffs()?.remove(&week.to_string());
        Ok((r, signoff))
    })
    .await
}

fn when(t: UnixMillis) -> String {
    super::layout::local_time(&crate::store::rfc3339(t))
}

/// `GET /reports/weekly?week=YYYY-Www[&print=1]`.
pub async fn page(
    State(state): State<AppState>,
    staff: AnyStaff,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let week = chosen(&p)?;
    let print = p.print.is_some();
    let scope = report_scope(&state, &staff, &p).await?;
    let (report, signoff) = load(&state, week, &scope).await?;
    let schools = if staff.scope.school().is_none() {
        blocking(&state, |s| s.schools()).await?
    } else {
        Vec::new()
    };
    let one = school_param(&scope, &staff);
    staff
        .audit(
            &state,
            AuditAction::ViewWeeklyReport,
            week.to_string(),
            if print { "print".into() } else { String::new() },
        )
        .await?;
    let content = report_body(&report, week);
    if print {
        let body = html! {
            div.print-only-note { p { button type="button" data-print="1" { "Print" } " " a href={ "/reports/weekly?week=" (week) } { "Back" } } }
            (content)
            (signoff_line(signoff.as_ref()))
            p.muted { "Printed by " (staff.name) " on " (when(UnixMillis::now())) ". Contains personal data: keep it as the school's data-protection policy says." }
        };
        return Ok(
            super::layout::bare_page_with_script(&format!("Site visits {week}"), body)
                .into_response(),
        );
    }
    let can_sign = <super::roles::CaptureReaders as super::roles::Roles>::ROLES
        .contains(&staff.role)
        && scope.is_all();
    let body = html! {
        div.report-nav {
            a href={ "/reports/weekly?week=" (week.previous()) (one) } { "← " (week.previous()) }
            @if week < last_week() { a href={ "/reports/weekly?week=" (week.next()) (one) } { (week.next()) " →" } }
            a href="/reports" { "All weeks" }
        }
        @if !schools.is_empty() {
            nav.report-schools aria-label="school" {
                @if scope.school().is_none() { strong { "Every school" } } @else { a href={ "/reports/weekly?week=" (week) } { "Every school" } }
                @for s in &schools {
                    " · "
                    @if scope.school() == Some(s.id.as_str()) { strong { (s.name) } }
                    @else { a href={ "/reports/weekly?week=" (week) "&school=" (s.id) } { (s.name) } }
                }
            }
        }
        div.report-actions {
            a.button href={ "/reports/weekly?week=" (week) "&print=1" (one) } { "Print view" }
            a.button href={ "/reports/weekly.pdf?week=" (week) (one) } { "PDF" }
            @for t in ["domains", "users", "devices", "pairs"] {
                a.button href={ "/reports/weekly.csv?week=" (week) "&table=" (t) (one) } { "CSV: " (t) }
            }
        }
        @if !scope.is_all() {
            p.notice #scope {
                "Only the accounts of " (scope.describe()) ": their sites and "
                "time, counted from their own visits. Laptops are not listed, and the school's "
                "report is signed off by those who see the whole school."
            }
        }
        (content)
        section.signoff #signoff {
            h2 { "Weekly check" }
            @match &signoff {
                Some(_) => { (signoff_line(signoff.as_ref())) }
                None if can_sign => {
                    form method="post" action="/reports/weekly/signoff" {
                        (csrf(&staff))
                        input type="hidden" name="week" value=(week);
                        label { "Notes (what you looked at, what you followed up)"
                            textarea name="notes" rows="4" maxlength=(MAX_NOTES) required {} }
                        button type="submit" { "Sign off " (week) }
                    }
                }
                None => { p { strong.warn { "Not yet checked." } } }
            }
        }
    };
    Ok(shell(&staff, &format!("Site visits {week}"), "Reports", body).into_response())
}

fn signoff_line(s: Option<&WeekSignoff>) -> Markup {
    html! {
        @if let Some(s) = s {
            p.signed { "Checked and signed off by " strong { (s.staff) } " on " (when(s.time)) "." }
            @if !s.notes.is_empty() { blockquote.notes { (s.notes) } }
        } @else {
            p { strong.warn { "This week has not been signed off." } }
        }
    }
}

fn flags_cell(flags: &[site_report::Flag]) -> Markup {
    html! {
        @for f in flags {
            span class={ "flag sev" (f.severity) } title={ "severity " (f.severity) } { (f.category) }
            " "
        }
    }
}

fn domain_name(d: &str) -> Markup {
    html! {
        @if d.is_empty() { em { "(address unknown)" } } @else { (d) }
    }
}

/// The report itself, shared by the page and its print form.
pub fn report_body(r: &WeeklyReport, week: Week) -> Markup {
    let flagged_visits: u64 = r
        .domains
        .iter()
        .filter(|d| !d.flags.is_empty())
        .map(|d| d.visits)
        .sum();
    html! {
        h1 { "Site visits, week " (week) }
        p.muted { (week.span_label()) " · time zone " (school_week::zone().iana_name().unwrap_or("of this machine")) }
        div.kpis {
            div { strong { (r.visits) } span { "page visits" } }
            div { strong { (duration(r.active_seconds)) } span { "active time (" (change(r.active_seconds, r.previous_seconds)) " on last week)" } }
            div { strong { (r.users) } span { "users" } }
            div { strong { (r.domains.len()) } span { "sites" } }
            div { strong { (flagged_visits) } span { "visits to flagged sites" } }
        }
        @if r.domains.is_empty() {
            p { "No site visits were recorded this week." }
        } @else {
            h2 { "Where the time went (top 15 sites)" }
            div.chart { (time_bars(r)) }
            h2 #flagged { "Flagged sites by category" }
            @if r.flagged.is_empty() {
                p { "No visited site is in a flagged category." }
            }
            @for c in &r.flagged {
                h3 { span class={ "flag sev" (c.severity) } { (c.category) } " · severity " (c.severity) }
                @if !c.definition.is_empty() { p.definition { (c.definition) } }
                table.grid {
                    thead { tr { th { "Site" } th.num { "Visits" } th.num { "Users" } th.num { "Active time" } } }
                    tbody {
                        @for &i in &c.domains {
                            @let d = &r.domains[i];
                            tr { td { (domain_name(&d.domain)) } td.num { (d.visits) } td.num { (d.users) } td.num { (duration(d.active_seconds)) } }
                        }
                    }
                }
            }
            h2 #new { "Sites never seen before this week" }
            @let new: Vec<_> = r.new_domains().collect();
            @if new.is_empty() { p { "None." } } @else {
                ul.new-domains { @for d in &new { li { (domain_name(&d.domain)) " " span.muted { (d.users) " users, " (duration(d.active_seconds)) } " " (flags_cell(&d.flags)) } } }
            }
            h2 #domains { "By site" }
            input.table-filter type="search" data-table="t-domains" placeholder="Filter sites" aria-label="Filter sites";
            table.grid.sortable #t-domains {
                thead { tr {
                    th data-sort="text" { "Site" } th data-sort="text" { "Categories" }
                    th.num data-sort="num" { "Visits" } th.num data-sort="num" { "Users" }
                    th.num data-sort="num" { "Active time" } th.num data-sort="num" { "Last week" } th.num data-sort="num" { "Change" }
                } }
                tbody {
                    @for d in &r.domains {
                        tr {
                            td { (domain_name(&d.domain)) @if d.new { " " span.badge { "new" } } }
                            td { (flags_cell(&d.flags)) }
                            td.num data-v=(d.visits) { (d.visits) }
                            td.num data-v=(d.users) { (d.users) }
                            td.num data-v=(d.active_seconds) { (duration(d.active_seconds)) }
                            td.num data-v=(d.previous_seconds) { (duration(d.previous_seconds)) }
                            td.num data-v=(d.active_seconds as i64 - d.previous_seconds as i64) { (change(d.active_seconds, d.previous_seconds)) }
                        }
                    }
                }
            }
            h2 #users { "By user" }
            input.table-filter type="search" data-table="t-users" placeholder="Filter users" aria-label="Filter users";
            table.grid.sortable #t-users {
                thead { tr {
                    th data-sort="text" { "User" } th.num data-sort="num" { "Sites" } th.num data-sort="num" { "Visits" }
                    th.num data-sort="num" { "Active time" } th data-sort="text" { "Flagged sites" }
                } }
                tbody {
                    @for u in &r.users_lines {
                        tr {
                            td { (u.user) }
                            td.num data-v=(u.sites) { (u.sites) }
                            td.num data-v=(u.visits) { (u.visits) }
                            td.num data-v=(u.active_seconds) { (duration(u.active_seconds)) }
                            td { @for (i, d) in u.flagged_sites.iter().enumerate() { @if i > 0 { ", " } (d) } }
                        }
                    }
                }
            }
            h2 #devices { "By device" }
            table.grid.sortable #t-devices {
                thead { tr {
                    th data-sort="text" { "Device" } th.num data-sort="num" { "Visits" } th.num data-sort="num" { "Users" } th.num data-sort="num" { "Active time" }
                } }
                tbody {
                    @for d in &r.devices {
                        tr {
                            td { @if d.hostname.is_empty() { (d.device) } @else { (d.hostname) } }
                            td.num data-v=(d.visits) { (d.visits) }
                            td.num data-v=(d.users) { (d.users) }
                            td.num data-v=(d.active_seconds) { (duration(d.active_seconds)) }
                        }
                    }
                }
            }
        }
    }
}

/// Horizontal bars: this week's active time per site, with last week's as
/// a tick.
fn time_bars(r: &WeeklyReport) -> Markup {
    let top: Vec<_> = r.domains.iter().take(15).collect();
    let max = top
        .iter()
        .map(|d| d.active_seconds.max(d.previous_seconds))
        .max()
        .unwrap_or(0)
        .max(1);
    let (label_w, bar_w, row_h) = (220.0_f64, 420.0_f64, 20.0_f64);
    let h = row_h * top.len() as f64 + 10.0;
    let x = |v: u64| label_w + v as f64 / max as f64 * bar_w;
    html! {
        svg viewBox={ "0 0 " (label_w + bar_w + 110.0) " " (h) } role="img" aria-label="Active time per site" {
            @for (i, d) in top.iter().enumerate() {
                @let y = i as f64 * row_h + 4.0;
                g {
                    title { (if d.domain.is_empty() { "(address unknown)" } else { &d.domain }) ": " (duration(d.active_seconds)) ", last week " (duration(d.previous_seconds)) }
                    text x=(label_w - 6.0) y=(y + 12.0) text-anchor="end" { (if d.domain.is_empty() { "(address unknown)" } else { &d.domain }) }
                    rect class=(if d.flags.is_empty() { "bar-time" } else { "bar-flagged" }) x=(label_w) y=(y) width=(format!("{:.1}", x(d.active_seconds) - label_w)) height=(row_h - 6.0) {}
                    line.prev x1=(format!("{:.1}", x(d.previous_seconds))) x2=(format!("{:.1}", x(d.previous_seconds))) y1=(y - 1.0) y2=(y + row_h - 5.0) {}
                    text x=(format!("{:.1}", x(d.active_seconds) + 4.0)) y=(y + 12.0) { (duration(d.active_seconds)) }
                }
            }
        }
        p.legend { span { i.t {} "active time" } span { i.fl {} "flagged site" } span { i.p {} "last week" } }
    }
}

/// `GET /reports/weekly.csv?week=&table=domains|users|devices|pairs`.
pub async fn csv(
    State(state): State<AppState>,
    staff: AnyStaff,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let week = chosen(&p)?;
    let table = p.table.clone().unwrap_or_else(|| "domains".into());
    let detail = if table == "pairs" {
        Detail::Pairs
    } else {
        Detail::Summary
    };
    let scope = report_scope(&state, &staff, &p).await?;
    let report = blocking(&state, move |s| {
        WeeklyReport::load_in_scope(s, week, detail, &scope)
    })
    .await?;
    let body = site_report::csv(&report, &table).ok_or_else(|| {
        WebError::BadRequest(format!(
            "table {table:?} is not one of domains, users, devices, pairs"
        ))
    })?;
    staff
        .audit(
            &state,
            AuditAction::ExportWeeklyReport,
            week.to_string(),
            format!("csv {table}"),
        )
        .await?;
    Ok(download(
        "text/csv; charset=utf-8",
        &format!("site-visits-{week}-{table}.csv"),
        body,
    ))
}

/// `GET /reports/weekly.pdf?week=`.
pub async fn pdf(
    State(state): State<AppState>,
    staff: AnyStaff,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let week = chosen(&p)?;
    let scope = report_scope(&state, &staff, &p).await?;
    let (report, signoff) = load(&state, week, &scope).await?;
    let bytes = crate::report_pdf::render(&report, week, signoff.as_ref());
    staff
        .audit(
            &state,
            AuditAction::ExportWeeklyReport,
            week.to_string(),
            "pdf".into(),
        )
        .await?;
    Ok(download(
        "application/pdf",
        &format!("site-visits-{week}.pdf"),
        bytes,
    ))
}

/// `POST /reports/weekly/signoff`: week, notes.
pub async fn sign_off(
    State(state): State<AppState>,
    staff: CaptureStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    if !staff.scope.is_all() {
        return Err(WebError::Forbidden(format!(
            "the weekly report is the school's, signed off by those who see the whole school; you see {}",
            staff.scope.describe()
        )));
    }
    let week = Week::parse(form.get("week").unwrap_or_default()).map_err(WebError::BadRequest)?;
    if week > last_week() {
        return Err(WebError::BadRequest(format!(
            "{week} has not ended yet; a week is signed off once it is over"
        )));
    }
    let notes = form.get("notes").unwrap_or_default().trim().to_owned();
    if notes.len() > MAX_NOTES {
        return Err(WebError::BadRequest(format!(
            "the notes are {} bytes; at most {MAX_NOTES}",
            notes.len()
        )));
    }
    let signoff = WeekSignoff {
        week: week.to_string(),
        staff: staff.name.clone(),
        time: UnixMillis::now(),
        notes,
    };
    let origin = staff.origin.clone();
    let new = blocking(&state, move |s| s.sign_off_week(&signoff, &origin)).await?;
    if !new {
        return Err(WebError::BadRequest(format!(
            "{week} was already signed off; see the report for who and when"
        )));
    }
    Ok(Redirect::to(&format!("/reports/weekly?week={week}#signoff")).into_response())
}
