//! The page shell, error pages, and fragments more than one page uses.
//! Everything goes through maud, which escapes every value it is given.

use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::auth::Staff;
use crate::store::{CaptureSummary, Role, Status};

/// A failure, shown as a page (see [`crate::error`]).
pub use crate::error::ConsoleError as WebError;

/// A file to download (CSV, PDF), named `filename`.
pub fn download(
    content_type: &'static str,
    filename: &str,
    body: impl Into<axum::body::Body>,
) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type.to_owned()),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
        ],
        body.into(),
    )
        .into_response()
}

/// A page without navigation (sign-in, errors).
pub fn bare_page(title: &str, body: Markup) -> Markup {
    bare(title, body, false)
}

/// A page without navigation that runs the console's script (the print
/// view of a report).
pub fn bare_page_with_script(title: &str, body: Markup) -> Markup {
    bare(title, body, true)
}

fn bare(title: &str, body: Markup, script: bool) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Safeguard" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                @if script { script src=(super::assets::JS_PATH) defer {} }
            }
            body { (body) }
        }
    }
}

/// A page with the navigation for `staff`'s role. `active` names the nav
/// entry to mark.
pub fn shell(staff: &Staff, title: &str, active: &str, body: Markup) -> Markup {
    let mut nav: Vec<(&str, &str)> = Vec::new();
    if staff.role.sees_captures() {
        nav.push(("/inbox", "Inbox"));
    }
    nav.push(("/reports", "Reports"));
    nav.push(("/trends", "Trends"));
    nav.push(("/aup", "AUP"));
    nav.push(("/register", "Users"));
    if matches!(staff.role, Role::Admin | Role::Auditor) {
        nav.push(("/audit", "Audit log"));
    }
    nav.push(("/devices", "Devices"));
    nav.push(("/alerts", "Alerts"));
    if staff.role.sees_captures() {
        nav.push(("/libraries", "Libraries"));
    }
    if staff.role == Role::Admin {
        nav.push(("/staff", "Staff"));
        nav.push(("/settings", "Settings"));
    }
    html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf" content=(staff.session.csrf);
                meta name="role" content=(staff.role.as_str());
                title { (title) " · Safeguard" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                script src=(super::assets::JS_PATH) defer {}
            }
            body {
                header.top {
                    a.brand href="/" { "Safeguard" }
                    nav {
                        @for (href, label) in &nav {
                            a href=(href) aria-current=[(*label == active).then_some("page")] { (label) }
                        }
                    }
                    div.me {
                        span #live-status title="Live alerts" {}
                        a href="/account" { (staff.name) " (" (staff.role.as_str()) ")" }
                        form.inline method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(staff.session.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                div #toasts aria-live="polite" {}
                @if let Some(alert) = &staff.storage_alert {
                    div.storage-alert role="alert" { (alert) }
                }
                main { (body) }
            }
        }
    }
}

/// A hidden CSRF field for a form.
pub fn csrf(staff: &Staff) -> Markup {
    html! { input type="hidden" name="csrf" value=(staff.session.csrf); }
}

/// A re-authentication field for grave changes.
pub fn confirm_password() -> Markup {
    html! {
        label.confirm { "Your password, to confirm"
            input type="password" name="password" autocomplete="current-password" required;
        }
    }
}

/// An RFC 3339 time as the school reads it: local time zone, day and time.
pub fn local_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned(crate::school_week::zone())
            .strftime("%a %-d %b %Y %H:%M")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

pub fn status_label(s: Status) -> &'static str {
    match s {
        Status::New => "Unreviewed",
        Status::Violation => "Violation",
        Status::FalsePositive => "False positive",
    }
}

pub fn source_label(s: &str) -> &str {
    match s {
        "typed" => "Typed",
        "window_title" => "Window title",
        "browser" => "Browser",
        "clipboard" => "Clipboard",
        "screen_text" => "On screen (page or app)",
        "feed" => "On-screen text (fed)",
        "concern" => "Pupil's concern",
        other => other,
    }
}

/// Whether a capture is of what the user wrote or of what was on their
/// screen, as a badge: told apart at a glance in the inbox.
pub fn seen_badge(source: &str) -> Markup {
    if crate::store::VIEWED_SOURCES.contains(&source) {
        html! { span.seen.viewed title="Text the user was shown" { "Viewed" } }
    } else if source == "typed" {
        html! { span.seen.typed title="Text the user typed" { "Typed" } }
    } else {
        html! {}
    }
}

pub fn severity_badge(severity: u8) -> Markup {
    let class = match severity {
        5 => "sev sev5",
        4 => "sev sev4",
        3 => "sev sev3",
        _ => "sev sevlow",
    };
    html! { span class=(class) title="Severity (1–5)" { (severity) } }
}

/// The context with the match marked, all of it escaped. The byte range
/// comes from the agent, so it is checked, not trusted.
pub fn context(c: &CaptureSummary) -> Markup {
    let text = c.context.as_str();
    let [start, end] = c.context_match;
    let (start, end) = (start as usize, end as usize);
    let fits = start <= end
        && end <= text.len()
        && text.is_char_boundary(start)
        && text.is_char_boundary(end);
    if !fits {
        return html! { span.context { (text) } };
    }
    html! {
        span.context {
            (&text[..start]) mark { (&text[start..end]) } (&text[end..])
        }
    }
}

/// One inbox row (also sent to live inboxes as it arrives).
pub fn capture_row(c: &CaptureSummary, category_title: &str, fresh: bool) -> Markup {
    let href = format!("/captures/{}", c.id);
    html! {
        tr.capture.fresh[fresh] data-id=(c.id) data-severity=(c.severity) data-href=(href) {
            td { input type="checkbox" name="id" value=(c.id) form="bulk" aria-label="select"; }
            td.time { (local_time(&c.time)) }
            td { (severity_badge(c.severity)) }
            td { (category_title) }
            td { a href=(href) { (c.term) } }
            td.snippet { (context(c)) }
            td { (c.user) }
            td { (c.hostname) }
            td { (seen_badge(&c.source)) " " (source_label(&c.source)) }
            td { span class={ "status " (c.status.as_str()) } { (status_label(c.status)) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(context: &str, m: [u32; 2]) -> CaptureSummary {
        CaptureSummary {
            id: uuid::Uuid::nil(),
            device: uuid::Uuid::nil(),
            hostname: "LAPTOP".into(),
            user: "pupil".into(),
            time: "2026-11-23T09:00:00Z".into(),
            source: "typed".into(),
            app: "app".into(),
            window_title: "t".into(),
            url: None,
            term: "kill".into(),
            category: "weapons".into(),
            severity: 3,
            context: context.into(),
            context_match: m,
            has_image: false,
            image_missing: None,
            status: Status::New,
        }
    }

    #[test]
    fn viewed_and_typed_captures_are_told_apart() {
        let mut c = capture("kill", [0, 4]);
        let typed = capture_row(&c, "Weapons", false).into_string();
        assert!(typed.contains(r#"class="seen typed""#), "{typed}");
        c.source = "screen_text".into();
        let viewed = capture_row(&c, "Weapons", false).into_string();
        assert!(
            viewed.contains(r#"class="seen viewed""#) && viewed.contains("On screen"),
            "{viewed}"
        );
        c.source = "clipboard".into();
        assert!(
            !capture_row(&c, "Weapons", false)
                .into_string()
                .contains("seen ")
        );
    }

    #[test]
    fn context_is_escaped_and_marked() {
        let html = context(&capture(
            "<b>x</b> kill <img src=x onerror=alert(1)>",
            [9, 13],
        ))
        .into_string();
        assert!(
            html.contains("&lt;b&gt;x&lt;/b&gt; <mark>kill</mark> &lt;img"),
            "{html}"
        );
        assert!(!html.contains("<img"));
    }

    #[test]
    fn a_bad_range_shows_plain_text() {
        for m in [[5, 2], [0, 999], [1, 2]] {
            let html = context(&capture("é kill", m)).into_string();
            assert!(!html.contains("<mark>"), "{m:?}: {html}");
        }
    }
}
