//! The audit log for oversight: who looked at which capture and screenshot,
//! who decided what, who signed in and who changed settings; filterable,
//! paged by sequence number, exportable as CSV. Reading it is audited too.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::auth::urlencode;
use super::inbox::day_start;
use super::layout::{WebError, local_time, shell};
use super::roles::OversightStaff;
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::AuditQuery;

const PAGE: u32 = 100;
const MAX_EXPORT: u32 = 200_000;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    actor: Option<String>,
    action: Option<String>,
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<i64>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

impl Filters {
    /// The query, limited to `school`'s lines for a school's own staff.
    fn query(&self, limit: u32, school: Option<&str>) -> Result<AuditQuery, WebError> {
        Ok(AuditQuery {
            actor: nonempty(&self.actor),
            action: nonempty(&self.action)
                .map(|a| {
                    AuditAction::parse(&a).ok_or_else(|| {
                        WebError::BadRequest(format!(
                            "{a:?} is not an action the audit log records"
                        ))
                    })
                })
                .transpose()?,
            text: nonempty(&self.q),
            from: nonempty(&self.from)
                .map(|d| day_start(&d, "from"))
                .transpose()?,
            to: nonempty(&self.to)
                .map(|d| day_start(&d, "to").map(|t| t.plus(protocol::UnixMillis::DAY)))
                .transpose()?,
            before: self.before,
            school: school.map(str::to_owned),
            limit,
        })
    }

    fn params(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("actor", &self.actor),
            ("action", &self.action),
            ("q", &self.q),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if let Some(v) = nonempty(v) {
                parts.push(format!("{k}={}", urlencode(&v)));
            }
        }
        parts.join("&")
    }
}

pub async fn page(
    State(state): State<AppState>,
    staff: OversightStaff,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    let query = filters.query(PAGE, staff.scope.school())?;
    let detail = format!("{query:?}");
    let events = blocking(&state, move |s| s.audit_query(&query)).await?;
    staff
        .audit(&state, AuditAction::ReadAudit, String::new(), detail)
        .await?;
    let params = filters.params();
    let next = (events.len() == PAGE as usize)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    let sel = |v: &Option<String>, opt: &str| v.as_deref() == Some(opt);
    let body = html! {
        h1 { "Audit log" }
        p.muted { "Every sign-in, every view of a capture or screenshot, every decision and every change, newest first. The log cannot be edited or deleted." }
        form.filters method="get" action="/audit" {
            label { "Who" input name="actor" value=(filters.actor.as_deref().unwrap_or("")) size="12"; }
            label { "Action"
                select name="action" {
                    option value="" { "Any" }
                    @for a in AuditAction::ALL { option value=(a.as_str()) selected[sel(&filters.action, a.as_str())] { (a.as_str()) } }
                }
            }
            label { "Target or detail" input type="search" name="q" value=(filters.q.as_deref().unwrap_or("")); }
            label { "From" input type="date" name="from" value=(filters.from.as_deref().unwrap_or("")); }
            label { "To" input type="date" name="to" value=(filters.to.as_deref().unwrap_or("")); }
            button type="submit" { "Filter" }
            a.button href="/audit" { "Clear" }
            a.button href={ "/audit.csv?" (params) } { "Export CSV" }
        }
        table #audit {
            thead { tr { th { "Time" } th { "Who" } th { "Action" } th { "Target" } th { "Detail" } th { "From" } } }
            tbody {
                @for e in &events {
                    tr {
                        td.time { (local_time(&e.time)) }
                        td { (e.actor) }
                        td { (e.action) }
                        td.snippet {
                            @if e.action.contains("capture") || e.action == "triage" || e.action == "view_screenshot" {
                                @for t in e.target.split(' ').take(20) {
                                    a href={ "/captures/" (t) } { (t) } " "
                                }
                            } @else { (e.target) }
                        }
                        td.snippet { (e.detail) }
                        td { (e.origin) }
                    }
                }
            }
        }
        div.pager {
            @if filters.before.is_some() { a href={ "/audit?" (params) } { "← Newest" } }
            @if let Some(n) = next { a href={ "/audit?" (params) "&before=" (n) } { "Older →" } }
        }
    };
    Ok(shell(&staff, "Audit log", "Audit log", body).into_response())
}

pub async fn csv(
    State(state): State<AppState>,
    staff: OversightStaff,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    let query = filters.query(MAX_EXPORT, staff.scope.school())?;
    let detail = format!("{query:?}");
    staff
        .audit(&state, AuditAction::ExportAudit, String::new(), detail)
        .await?;
    let events = blocking(&state, move |s| s.audit_query(&query)).await?;
    let mut out = crate::csv::line(["time", "actor", "action", "target", "detail", "origin"]);
    for e in &events {
        out.push_str(&crate::csv::line([
            e.time.as_str(),
            &e.actor,
            &e.action,
            &e.target,
            &e.detail,
            &e.origin,
        ]));
    }
    Ok(super::layout::download(
        "text/csv; charset=utf-8",
        "audit-log.csv",
        out,
    ))
}
