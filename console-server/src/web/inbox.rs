//! The inbox: captures newest first, unreviewed by default, with filters,
//! counts per status, keyset pagination (by capture id, which sorts by
//! time, so the thousandth page costs what the first does) and bulk triage.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::UnixMillis;
use serde::Deserialize;
use uuid::Uuid;

use super::auth::urlencode;
use super::form::Form;
use super::layout::{WebError, capture_row, csrf, local_time, shell, status_label};
use super::roles::CaptureStaff;
use super::{AppState, Definitions, blocking};
use crate::store::AuditAction;
use crate::store::{CaptureQuery, CaptureSummary, Device, Status, TamperRow, Triage};

pub const PAGE: u32 = 50;

/// The inbox's filters, as in its address.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Filters {
    pub status: Option<String>,
    pub category: Option<String>,
    pub severity: Option<String>,
    pub device: Option<String>,
    pub user: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub q: Option<String>,
    pub source: Option<String>,
    pub before: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A `YYYY-MM-DD` day's start in the school's time zone.
pub fn day_start(day: &str, what: &str) -> Result<UnixMillis, WebError> {
    let date: jiff::civil::Date = day
        .parse()
        .map_err(|_| WebError::BadRequest(format!("{what} {day:?} is not a date (YYYY-MM-DD)")))?;
    let zoned = date
        .to_zoned(crate::school_week::zone())
        .map_err(|e| WebError::BadRequest(format!("{what} {day:?}: {e}")))?;
    Ok(UnixMillis(zoned.timestamp().as_millisecond()))
}

impl Filters {
    /// The status shown: unreviewed unless asked otherwise; `all` for all.
    pub fn status(&self) -> Result<Option<Status>, WebError> {
        match nonempty(&self.status) {
            None => Ok(Some(Status::New)),
            Some("all") => Ok(None),
            Some(s) => Status::parse(s).map(Some).ok_or_else(|| {
                WebError::BadRequest(format!(
                    "status {s:?} is not one of new, violation, false_positive, all"
                ))
            }),
        }
    }

    pub fn query(&self, limit: u32) -> Result<CaptureQuery, WebError> {
        let id = |s: &str, what: &str| {
            Uuid::parse_str(s)
                .map_err(|_| WebError::BadRequest(format!("{what} {s:?} is not an id")))
        };
        let severity = nonempty(&self.severity)
            .map(|s| {
                s.parse::<u8>()
                    .ok()
                    .filter(|n| (1..=5).contains(n))
                    .ok_or_else(|| WebError::BadRequest(format!("severity {s:?} is not 1–5")))
            })
            .transpose()?;
        let to = nonempty(&self.to)
            .map(|d| day_start(d, "to").map(|t| t.plus(UnixMillis::DAY)))
            .transpose()?;
        Ok(CaptureQuery {
            status: self.status()?,
            device: nonempty(&self.device)
                .map(|d| id(d, "device"))
                .transpose()?,
            category: nonempty(&self.category).map(str::to_owned),
            severity,
            user: nonempty(&self.user).map(str::to_owned),
            from: nonempty(&self.from)
                .map(|d| day_start(d, "from"))
                .transpose()?,
            to,
            text: nonempty(&self.q).map(str::to_owned),
            sources: crate::store::source_filter(nonempty(&self.source).unwrap_or_default())
                .map_err(WebError::BadRequest)?,
            before: nonempty(&self.before)
                .map(|b| id(b, "before"))
                .transpose()?,
            limit,
            ..CaptureQuery::default()
        })
    }

    /// Whether this is the first page of an unfiltered view that new
    /// captures belong at the top of.
    fn live(&self) -> bool {
        nonempty(&self.before).is_none()
            && nonempty(&self.category).is_none()
            && nonempty(&self.severity).is_none()
            && nonempty(&self.device).is_none()
            && nonempty(&self.user).is_none()
            && nonempty(&self.to).is_none()
            && nonempty(&self.q).is_none()
            && nonempty(&self.source).is_none()
            && matches!(nonempty(&self.status), None | Some("new") | Some("all"))
    }

    /// The address of this view with `before` replaced.
    pub fn href(&self, before: Option<&str>) -> String {
        let mut parts = Vec::new();
        for (k, v) in [
            ("status", &self.status),
            ("category", &self.category),
            ("severity", &self.severity),
            ("device", &self.device),
            ("user", &self.user),
            ("from", &self.from),
            ("to", &self.to),
            ("q", &self.q),
            ("source", &self.source),
        ] {
            if let Some(v) = nonempty(v) {
                parts.push(format!("{k}={}", urlencode(v)));
            }
        }
        if let Some(b) = before {
            parts.push(format!("before={b}"));
        }
        format!("/inbox?{}", parts.join("&"))
    }
}

pub async fn page(
    State(state): State<AppState>,
    staff: CaptureStaff,
    Query(filters): Query<Filters>,
) -> Result<Response, WebError> {
    let mut query = filters.query(PAGE)?;
    query.scope = staff.scope.clone();
    let detail = format!("{query:?}");
    let scope = staff.scope.clone();
    let (captures, counts, devices, weeks, concerns, tamper) = blocking(&state, move |s| {
        Ok((
            s.captures(&query)?,
            s.capture_counts(&scope)?,
            crate::store::scope::devices_in_scope(s, UnixMillis(0), &scope)?,
            // The weekly report is the school's, signed off by those who
            // see the whole school.
            if scope.is_all() {
                super::site_visits::recent_weeks(s)?
            } else {
                Vec::new()
            },
            s.captures(&CaptureQuery {
                status: Some(Status::New),
                category: Some(crate::store::sql_store::CONCERN_CATEGORY.to_owned()),
                limit: 20,
                scope: scope.clone(),
                ..CaptureQuery::default()
            })?,
            s.tamper_events(&crate::store::TamperQuery {
                open_only: true,
                device: None,
                limit: 20,
                scope,
            })?,
        ))
    })
    .await?;
    let unchecked: Vec<String> = weeks
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(w, _)| w.to_string())
        .collect();
    staff
        .audit(&state, AuditAction::ViewInbox, String::new(), detail)
        .await?;
    let defs = state.definitions();
    let next = (captures.len() == PAGE as usize)
        .then(|| captures.last().map(|c| c.id.to_string()))
        .flatten();
    let body = html! {
        h1 { "Inbox" }
        (waiting(&unchecked, &tamper, &concerns))
        (status_tabs(&filters, &counts)?)
        (filter_form(&filters, &defs, &devices))
        (toolbar(&staff, &filters))
        (captures_table(&captures, &defs, &filters, next.as_deref()))
    };
    Ok(shell(&staff, "Inbox", "Inbox", body).into_response())
}

/// What waits before the captures: weeks of site visits not yet checked,
/// open tamper events and pupils' own concerns.
fn waiting(unchecked: &[String], tamper: &[TamperRow], concerns: &[CaptureSummary]) -> Markup {
    html! {
    @if !unchecked.is_empty() {
        p.notice #unchecked-weeks {
            "Site-visit reports not yet checked: "
            @for (i, w) in unchecked.iter().enumerate() {
                @if i > 0 { ", " }
                a href={ "/reports/weekly?week=" (w) } { (w) }
            }
        }
    }
    (super::tamper::open_section(tamper, 20))
    @if !concerns.is_empty() {
        section.concerns #concerns {
            h2 { "Pupils' concerns waiting (" (concerns.len()) @if concerns.len() == 20 { "+" } ")" }
            p.muted { "Reports pupils made themselves. Read these first." }
            ul {
                @for c in concerns {
                    li {
                        a href={ "/captures/" (c.id) } { (local_time(&c.time)) " — " (c.user) }
                        ": " (preview(&c.context))
                    }
                }
            }
        }
    }
    }
}

/// The tabs by status, each with its count.
fn status_tabs(filters: &Filters, counts: &[(Status, u64)]) -> Result<Markup, WebError> {
    let count = |s: Status| {
        counts
            .iter()
            .find(|(st, _)| *st == s)
            .map_or(0, |(_, n)| *n)
    };
    let shown = filters.status()?;
    let tab = |label: &str, value: &str, n: Option<u64>, id: &str| {
        let mut f = filters.clone();
        f.status = Some(value.to_owned());
        f.before = None;
        let current = match shown {
            None => value == "all",
            Some(s) => s.as_str() == value,
        };
        html! {
            a href=(f.href(None)) aria-current=[current.then_some("page")] {
                (label) @if let Some(n) = n { span.count id=(id) { (n) } }
            }
        }
    };
    Ok(html! {
    div.tabs {
        (tab(status_label(Status::New), "new", Some(count(Status::New)), "count-new"))
        (tab(status_label(Status::Violation), "violation", Some(count(Status::Violation)), "count-violation"))
        (tab(status_label(Status::FalsePositive), "false_positive", Some(count(Status::FalsePositive)), "count-fp"))
        (tab("All", "all", None, "count-all"))
    }
    })
}

/// The filters: category, severity, laptop, source, user, dates, text.
fn filter_form(filters: &Filters, defs: &Definitions, devices: &[Device]) -> Markup {
    let sel = |v: &Option<String>, opt: &str| nonempty(v) == Some(opt);
    html! {
    form.filters method="get" action="/inbox" {
        input type="hidden" name="status" value=(filters.status.as_deref().unwrap_or("new"));
        label { "Category"
            select name="category" {
                option value="" { "Any" }
                @for (name, title) in &defs.categories {
                    option value=(name) selected[sel(&filters.category, name)] { (title) }
                }
            }
        }
        label { "Severity"
            select name="severity" {
                option value="" { "Any" }
                @for n in (1..=5).rev() {
                    option value=(n) selected[sel(&filters.severity, &n.to_string())] { (n) }
                }
            }
        }
        label { "Device"
            select name="device" {
                option value="" { "Any" }
                @for d in devices {
                    option value=(d.id) selected[sel(&filters.device, &d.id.to_string())] {
                        @if d.hostname.is_empty() { (d.id) } @else { (d.hostname) }
                    }
                }
            }
        }
        label { "Seen how"
            select name="source" {
                option value="" { "Any" }
                option value="viewed" selected[sel(&filters.source, "viewed")] { "Viewed (pages, on-screen text, titles)" }
                @for source in protocol::Source::ALL {
                    option value=(source.as_str()) selected[sel(&filters.source, source.as_str())] { (super::layout::source_label(source.as_str())) }
                }
            }
        }
        label { "User" input name="user" value=(filters.user.as_deref().unwrap_or("")) size="12"; }
        label { "From" input type="date" name="from" value=(filters.from.as_deref().unwrap_or("")); }
        label { "To" input type="date" name="to" value=(filters.to.as_deref().unwrap_or("")); }
        label { "Text" input type="search" name="q" value=(filters.q.as_deref().unwrap_or("")) placeholder="in context, title, term"; }
        button type="submit" { "Filter" }
        a.button href="/inbox" { "Clear" }
    }
    }
}

/// Triage of the selected captures, the keys, and the alerts' settings.
fn toolbar(staff: &CaptureStaff, filters: &Filters) -> Markup {
    html! {
    div.toolbar {
        form #bulk method="post" action="/inbox/triage" {
            (csrf(staff))
            input type="hidden" name="back" value=(filters.href(nonempty(&filters.before)));
            "Selected: "
            select name="status" aria-label="decision" required {
                option value="" selected disabled { "Choose a decision…" }
                option value="false_positive" { "False positive" }
                option value="violation" { "Violation" }
                option value="new" { "Reopen" }
            }
            " "
            input name="note" placeholder="note (optional)" size="30";
            " "
            button type="submit" { "Apply to selected" }
        }
        span.muted {
            "Keys: " span.kbd { "j" } "/" span.kbd { "k" } " move, "
            span.kbd { "o" } " open, " span.kbd { "x" } " select"
        }
        button #enable-notifications type="button" { "Enable desktop alerts" }
        label { "Sound for "
            select #sound-min {
                option value="0" { "no captures" }
                option value="5" { "severity 5" }
                option value="4" { "severity 4–5" }
                option value="3" { "severity 3–5" }
            }
        }
    }
    }
}

/// The captures, newest first, and the pager.
fn captures_table(
    captures: &[CaptureSummary],
    defs: &Definitions,
    filters: &Filters,
    next: Option<&str>,
) -> Markup {
    html! {
        table #captures data-live=(if filters.live() { "1" } else { "0" }) {
            thead { tr {
                th { input #select-all type="checkbox" aria-label="select all"; }
                th { "Time" } th { "Sev." } th { "Category" } th { "Term" } th { "Context" }
                th { "User" } th { "Device" } th { "Source" } th { "Status" }
            } }
            tbody {
                @for c in captures {
                    (capture_row(c, defs.title(&c.category), false))
                }
            }
        }
        @if captures.is_empty() {
            p #empty.muted { "Nothing here. New captures appear at the top as they arrive." }
        }
        div.pager {
            @if nonempty(&filters.before).is_some() { a href=(filters.href(None)) { "← Newest" } }
            @if let Some(n) = next { a href=(filters.href(Some(n))) { "Older →" } }
        }
    }
}

/// The start of a concern's text, for the list.
fn preview(text: &str) -> String {
    let mut out: String = text.chars().take(120).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out.replace('\n', " ")
}

/// Parses the status of a triage form.
pub fn decision(form: &Form) -> Result<Status, WebError> {
    let s = form.get("status").unwrap_or_default();
    Status::parse(s).ok_or_else(|| {
        WebError::BadRequest(format!(
            "decision {s:?} is not one of violation, false_positive, new"
        ))
    })
}

pub const MAX_NOTE: usize = 8192;

pub async fn bulk_triage(
    State(state): State<AppState>,
    staff: CaptureStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let status = decision(&form)?;
    let ids = form
        .all("id")
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|_| WebError::BadRequest(format!("{s:?} is not a capture id")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(WebError::BadRequest(
            "no captures were selected; tick the boxes of the captures first".into(),
        ));
    }
    if ids.len() > 1000 {
        return Err(WebError::BadRequest("at most 1000 captures at once".into()));
    }
    let note = form.get("note").unwrap_or_default().to_owned();
    if note.len() > MAX_NOTE {
        return Err(WebError::BadRequest(format!(
            "the note is over {MAX_NOTE} bytes"
        )));
    }
    if !staff.scope.is_all() {
        let (ids, scope) = (ids.clone(), staff.scope.clone());
        let outside = blocking(&state, move |s| {
            let mut n = 0;
            for id in ids {
                n += usize::from(!s.capture_in_scope(id, &scope)?);
            }
            Ok(n)
        })
        .await?;
        if outside > 0 {
            return Err(WebError::NotFound(format!(
                "{outside} of the selected captures are not among those you see ({}); nothing was changed",
                staff.scope.describe()
            )));
        }
    }
    let list = ids
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(" ");
    staff
        .audit(
            &state,
            AuditAction::Triage,
            list,
            format!(
                "{} (bulk, {} captures), {}",
                status.as_str(),
                ids.len(),
                crate::store::audit_action::note_summary(&note)
            ),
        )
        .await?;
    let decision = Triage {
        status,
        note,
        action: None,
        actor: staff.name.clone(),
        time: UnixMillis::now(),
    };
    blocking(&state, move |s| s.triage_many(&ids, &decision)).await?;
    let back = form
        .get("back")
        .filter(|b| b.starts_with("/inbox"))
        .unwrap_or("/inbox");
    Ok(Redirect::to(back).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_default_to_unreviewed_and_parse() {
        let f = Filters::default();
        assert_eq!(f.status().unwrap(), Some(Status::New));
        assert!(f.live());
        let f = Filters {
            status: Some("all".into()),
            severity: Some("4".into()),
            q: Some(" knife ".into()),
            ..Filters::default()
        };
        let q = f.query(10).unwrap();
        assert_eq!(
            (q.status, q.severity, q.text.as_deref()),
            (None, Some(4), Some("knife"))
        );
        assert!(!f.live());
        assert!(
            Filters {
                severity: Some("9".into()),
                ..Filters::default()
            }
            .query(1)
            .is_err()
        );
        assert!(
            Filters {
                from: Some("yesterday".into()),
                ..Filters::default()
            }
            .query(1)
            .is_err()
        );
        assert_eq!(
            Filters {
                q: Some("a&b".into()),
                ..Filters::default()
            }
            .href(Some("x")),
            "/inbox?q=a%26b&before=x"
        );
    }
}
