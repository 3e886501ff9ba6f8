//! Trends, to inform the school's e-safety teaching: captures per week
//! (violations, false positives and unreviewed apart), per category, per
//! severity, per hour of the school day and per device, as inline SVG
//! charts and a CSV. Counts only: no captured text, so auditors may read it.
//!
//! The aggregation ([`Trends::of`]) is a plain function of hourly buckets
//! from the store and the school's time zone.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use protocol::UnixMillis;
use serde::Deserialize;

use super::layout::{WebError, shell, status_label};
use super::roles::AnyStaff;
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::{CaptureBucket, Status};

/// Counts split by triage status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Split {
    pub new: u64,
    pub violation: u64,
    pub false_positive: u64,
}

impl Split {
    fn add(&mut self, status: Status, n: u64) {
        match status {
            Status::New => self.new += n,
            Status::Violation => self.violation += n,
            Status::FalsePositive => self.false_positive += n,
        }
    }

    pub fn total(&self) -> u64 {
        self.new + self.violation + self.false_positive
    }
}

/// Everything the trends page shows.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Trends {
    /// ISO week (`2026-W47`) → counts, every week of the period present.
    pub weeks: BTreeMap<String, Split>,
    pub categories: BTreeMap<String, Split>,
    pub severities: [Split; 5],
    /// Local hour of day.
    pub hours: [Split; 24],
    pub devices: BTreeMap<String, Split>,
}

fn iso_week(z: &jiff::Zoned) -> String {
    let w = z.date().iso_week_date();
    format!("{:04}-W{:02}", w.year(), w.week())
}

impl Trends {
    /// Aggregates hourly buckets into weeks and hours of the day in `tz`,
    /// with every week from `from` to `to` present (quiet weeks show as 0).
    pub fn of(
        buckets: &[CaptureBucket],
        tz: &jiff::tz::TimeZone,
        from: UnixMillis,
        to: UnixMillis,
    ) -> Trends {
        let mut t = Trends::default();
        let zoned = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
                .to_zoned(tz.clone())
        };
        let mut day = zoned(from.0);
        while day.timestamp().as_millisecond() < to.0 {
            t.weeks.entry(iso_week(&day)).or_default();
            match day.checked_add(jiff::Span::new().days(7)) {
                Ok(next) => day = next,
                Err(_) => break,
            }
        }
        t.weeks.entry(iso_week(&zoned(to.0 - 1))).or_default();
        for b in buckets {
            let z = zoned(b.hour.0);
            t.weeks
                .entry(iso_week(&z))
                .or_default()
                .add(b.status, b.count);
            t.categories
                .entry(b.category.clone())
                .or_default()
                .add(b.status, b.count);
            let sev = usize::from(b.severity.clamp(1, 5)) - 1;
            t.severities[sev].add(b.status, b.count);
            t.hours[z.hour() as usize].add(b.status, b.count);
            let device = if b.hostname.is_empty() {
                "(unknown)".to_owned()
            } else {
                b.hostname.clone()
            };
            t.devices.entry(device).or_default().add(b.status, b.count);
        }
        t
    }
}

/// A stacked bar chart: violations, false positives, unreviewed.
fn bars(rows: &[(String, Split)], label_every: usize) -> Markup {
    let max = rows
        .iter()
        .map(|(_, s)| s.total())
        .max()
        .unwrap_or(0)
        .max(1);
    let n = rows.len().max(1);
    let (w, h, base) = (720.0_f64, 180.0_f64, 150.0_f64);
    let step = w / n as f64;
    let bw = (step * 0.7).max(2.0);
    let scale = |v: u64| v as f64 / max as f64 * (base - 10.0);
    html! {
        svg viewBox={ "0 0 " (w) " " (h) } role="img" {
            text x="0" y="10" { "max " (max) }
            line x1="0" y1=(base) x2=(w) y2=(base) stroke="#ccd" {}
            @for (i, (label, s)) in rows.iter().enumerate() {
                @let x = i as f64 * step + (step - bw) / 2.0;
                @let v = scale(s.violation);
                @let f = scale(s.false_positive);
                @let u = scale(s.new);
                g {
                    title { (label) ": " (s.violation) " violations, " (s.false_positive) " false positives, " (s.new) " unreviewed" }
                    rect.bar-violation x=(format!("{x:.1}")) y=(format!("{:.1}", base - v)) width=(format!("{bw:.1}")) height=(format!("{v:.1}")) {}
                    rect.bar-fp x=(format!("{x:.1}")) y=(format!("{:.1}", base - v - f)) width=(format!("{bw:.1}")) height=(format!("{f:.1}")) {}
                    rect.bar-new x=(format!("{x:.1}")) y=(format!("{:.1}", base - v - f - u)) width=(format!("{bw:.1}")) height=(format!("{u:.1}")) {}
                }
                @if i % label_every.max(1) == 0 {
                    text x=(format!("{:.1}", x)) y=(base + 14.0) { (label) }
                }
            }
        }
    }
}

fn legend() -> Markup {
    html! {
        p.legend {
            span { i.v {} (status_label(Status::Violation)) }
            span { i.f {} (status_label(Status::FalsePositive)) }
            span { i.n {} (status_label(Status::New)) }
        }
    }
}

fn split_table(title: &str, rows: &[(String, Split)]) -> Markup {
    html! {
        table {
            thead { tr { th { (title) } th { "Violations" } th { "False positives" } th { "Unreviewed" } th { "Total" } } }
            tbody {
                @for (k, s) in rows {
                    tr { td { (k) } td { (s.violation) } td { (s.false_positive) } td { (s.new) } td { (s.total()) } }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Params {
    weeks: Option<u32>,
}

/// From the Monday `weeks - 1` weeks before this one, to now.
fn period(weeks: u32) -> Result<(UnixMillis, UnixMillis), WebError> {
    let tz = crate::school_week::zone();
    let now = jiff::Timestamp::now().to_zoned(tz.clone());
    let monday = now
        .date()
        .iso_week_date()
        .first_of_week()
        .map_err(|e| WebError::Internal(e.to_string()))?
        .date();
    let start = monday
        .checked_sub(jiff::Span::new().weeks(i64::from(weeks) - 1))
        .and_then(|d| d.to_zoned(tz.clone()))
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let from = UnixMillis(start.timestamp().as_millisecond());
    let to = UnixMillis(now.timestamp().as_millisecond() + 1);
    Ok((from, to))
}

pub async fn page(
    State(state): State<AppState>,
    staff: AnyStaff,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let weeks = p.weeks.unwrap_or(12).clamp(1, 104);
    let (from, to) = period(weeks)?;
    let scope = staff.scope.clone();
    let buckets = blocking(&state, move |s| s.capture_buckets(from, to, &scope)).await?;
    let t = Trends::of(&buckets, &crate::school_week::zone(), from, to);
    staff
        .audit(
            &state,
            AuditAction::ReadTrends,
            String::new(),
            format!("{weeks} weeks"),
        )
        .await?;
    let defs = state.definitions();
    let weekly: Vec<(String, Split)> = t.weeks.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let mut cats: Vec<(String, Split)> = t
        .categories
        .iter()
        .map(|(k, v)| (defs.title(k).to_owned(), *v))
        .collect();
    cats.sort_by_key(|c| std::cmp::Reverse(c.1.total()));
    let hours: Vec<(String, Split)> = t
        .hours
        .iter()
        .enumerate()
        .map(|(h, s)| (format!("{h:02}"), *s))
        .collect();
    let sevs: Vec<(String, Split)> = t
        .severities
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("{}", i + 1), *s))
        .collect();
    let mut devices: Vec<(String, Split)> =
        t.devices.iter().map(|(k, v)| (k.clone(), *v)).collect();
    devices.sort_by_key(|d| std::cmp::Reverse(d.1.total()));
    devices.truncate(30);
    let body = html! {
        h1 { "Trends" }
        @if !staff.scope.is_all() {
            p.notice #scope { "Only the captures you see: " (staff.scope.describe()) "." }
        }
        form.filters method="get" action="/trends" {
            label { "Weeks"
                select name="weeks" {
                    @for w in [4u32, 12, 26, 52] { option value=(w) selected[w == weeks] { (w) } }
                }
            }
            button type="submit" { "Show" }
            a.button href={ "/trends.csv?weeks=" (weeks) } { "Export CSV" }
        }
        h2 { "Captures per week" }
        div.chart { (bars(&weekly, if weekly.len() > 14 { 4 } else { 1 })) (legend()) }
        h2 { "By time of day" }
        div.chart { (bars(&hours, 2)) }
        h2 { "By category" }
        (split_table("Category", &cats))
        h2 { "By severity" }
        (split_table("Severity", &sevs))
        h2 { "By device (top 30)" }
        (split_table("Device", &devices))
        h2 { "By year group" }
        p.muted { "Year groups come from the register of users (a CSV import from the school's MIS), which this console does not have yet." }
    };
    Ok(shell(&staff, "Trends", "Trends", body).into_response())
}

pub async fn csv(
    State(state): State<AppState>,
    staff: AnyStaff,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let weeks = p.weeks.unwrap_or(12).clamp(1, 104);
    let (from, to) = period(weeks)?;
    staff
        .audit(
            &state,
            AuditAction::ReadTrends,
            "csv".into(),
            format!("{weeks} weeks"),
        )
        .await?;
    let scope = staff.scope.clone();
    let buckets = blocking(&state, move |s| s.capture_buckets(from, to, &scope)).await?;
    let tz = crate::school_week::zone();
    // week, category, severity, status, device → count
    let mut rows: BTreeMap<(String, String, u8, &'static str, String), u64> = BTreeMap::new();
    for b in &buckets {
        let z = jiff::Timestamp::from_millisecond(b.hour.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(tz.clone());
        *rows
            .entry((
                iso_week(&z),
                b.category.clone(),
                b.severity,
                b.status.as_str(),
                b.hostname.clone(),
            ))
            .or_default() += b.count;
    }
    let mut out = crate::csv::line([
        "week", "category", "severity", "status", "device", "captures",
    ]);
    for ((week, cat, sev, status, device), n) in rows {
        out.push_str(&crate::csv::line([
            week.as_str(),
            &cat,
            &sev.to_string(),
            status,
            &device,
            &n.to_string(),
        ]));
    }
    Ok(super::layout::download(
        "text/csv; charset=utf-8",
        "capture-trends.csv",
        out,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_fold_into_weeks_hours_and_categories() {
        let tz = jiff::tz::TimeZone::UTC;
        // Monday 2026-11-16 09:00 UTC and Tuesday 2026-11-24 14:00 UTC.
        let mon: jiff::Timestamp = "2026-11-16T09:00:00Z".parse().unwrap();
        let tue: jiff::Timestamp = "2026-11-24T14:00:00Z".parse().unwrap();
        let b = |t: jiff::Timestamp, status, n| CaptureBucket {
            hour: UnixMillis(t.as_millisecond()),
            category: "weapons".into(),
            severity: 4,
            status,
            hostname: "LAB-1".into(),
            count: n,
        };
        let from: jiff::Timestamp = "2026-11-09T00:00:00Z".parse().unwrap();
        let to: jiff::Timestamp = "2026-11-25T00:00:00Z".parse().unwrap();
        let t = Trends::of(
            &[
                b(mon, Status::Violation, 2),
                b(mon, Status::New, 1),
                b(tue, Status::FalsePositive, 5),
            ],
            &tz,
            UnixMillis(from.as_millisecond()),
            UnixMillis(to.as_millisecond()),
        );
        assert_eq!(
            t.weeks.keys().collect::<Vec<_>>(),
            ["2026-W46", "2026-W47", "2026-W48"]
        );
        assert_eq!(t.weeks["2026-W46"], Split::default());
        assert_eq!(
            t.weeks["2026-W47"],
            Split {
                new: 1,
                violation: 2,
                false_positive: 0
            }
        );
        assert_eq!(t.weeks["2026-W48"].false_positive, 5);
        assert_eq!(t.hours[9].total(), 3);
        assert_eq!(t.hours[14].total(), 5);
        assert_eq!(t.severities[3].total(), 8);
        assert_eq!(t.categories["weapons"].total(), 8);
        assert_eq!(t.devices["LAB-1"].violation, 2);
    }
}
