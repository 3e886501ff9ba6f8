//! The alert rules on the Settings page (admins): every rule in force is
//! listed; those made here can be changed and deleted here, those in
//! `console.toml` only there. Each change is audited and in force at once
//! (see [`crate::alerts::rule_book`]).
//!
//! A webhook's address is its secret, so the page shows it as its host
//! only; a line left as shown keeps the address it stands for.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use protocol::UnixMillis;

use super::form::Form;
use super::layout::{WebError, csrf};
use super::roles::AdminStaff;
use super::{AppState, blocking};
use crate::alerts::rules::{AlertEvent, AlertRule, Delivery};
use crate::store::alerts::shown_target;

const EVENTS: [(AlertEvent, &str); 4] = [
    (AlertEvent::Capture, "Captures at or above the severity"),
    (AlertEvent::Concern, "A pupil's concern"),
    (AlertEvent::Tamper, "Monitoring stopped or tampered with"),
    (AlertEvent::Offline, "A laptop gone offline"),
];

/// The rules section of the Settings page.
pub async fn section(state: &AppState, staff: &AdminStaff) -> Result<Markup, WebError> {
    let saved = blocking(state, |s| s.saved_alert_rules()).await?;
    let book = &state.rule_book;
    let categories = state.definitions().categories.clone();
    let all: Vec<(&AlertRule, bool)> = book
        .file
        .iter()
        .map(|r| (r, true))
        .chain(saved.iter().map(|r| (r, false)))
        .collect();
    Ok(html! {
        div.card #alert-rules {
            h2 { "Alert rules" }
            p.muted {
                "Alerts reach staff who are not looking at the console: by mail (through [report.smtp] in console.toml) and by webhook (a JSON POST; Microsoft Teams and Slack incoming webhooks get the body they accept). "
                "An alert names the category, severity, laptop, time and a link, never the captured words unless a rule allows it. "
                "School hours (for rules that wait for them): " (book.hours.describe()) ", set in console.toml ([school_hours])."
            }
            @if !book.smtp_ready {
                p.muted { "Mail is not set up ([report.smtp] host and from in console.toml), so rules can only use webhooks." }
            }
            @if all.is_empty() {
                p #no-alert-rules.muted { "No alert rule yet: captures reach only the open inboxes." }
            } @else {
                table #alert-rule-list {
                    thead { tr { th { "Rule" } th { "On" } th { "Tells" } th { "Escalates" } th { "When" } th { "Set in" } } }
                    tbody {
                        @for (r, in_file) in &all {
                            tr {
                                td { (r.name) }
                                td { (events_said(r)) }
                                td { (recipients_said(&r.email_to, &r.webhook_urls)) }
                                td {
                                    @if let Some(m) = r.escalate_after_minutes {
                                        "after " (m) " min to " (recipients_said(&r.escalate_to, &[]))
                                    }
                                }
                                td { @match r.when { Delivery::AtOnce => "at once", Delivery::SchoolHours => "school hours, digest of the rest" } }
                                td { @if *in_file { "console.toml" } @else { "this page" } }
                            }
                        }
                    }
                }
            }
            @for r in &saved {
                details.alert-rule-edit {
                    summary { "Change “" (r.name) "”" }
                    (rule_form(staff, Some(r), &categories, book.smtp_ready))
                    form method="post" action="/settings/alert-rules/delete" {
                        (csrf(staff))
                        input type="hidden" name="name" value=(r.name);
                        button.danger type="submit" { "Delete “" (r.name) "”" }
                    }
                }
            }
            details #new-alert-rule open[all.is_empty()] {
                summary { "New alert rule" }
                (rule_form(staff, None, &categories, book.smtp_ready))
            }
        }
    })
}

fn events_said(r: &AlertRule) -> String {
    r.events
        .iter()
        .map(|e| match e {
            AlertEvent::Capture if r.categories.is_empty() => {
                format!("captures ≥ {}", r.min_severity)
            }
            AlertEvent::Capture => {
                format!(
                    "captures ≥ {} ({})",
                    r.min_severity,
                    r.categories.join(", ")
                )
            }
            other => other.as_str().to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn recipients_said(emails: &[String], hooks: &[String]) -> String {
    emails
        .iter()
        .chain(hooks)
        .map(|t| shown_target(t))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lines(v: &[String]) -> String {
    v.iter()
        .map(|t| shown_target(t))
        .collect::<Vec<_>>()
        .join("\n")
}

fn rule_form(
    staff: &AdminStaff,
    rule: Option<&AlertRule>,
    categories: &[(String, String)],
    smtp_ready: bool,
) -> Markup {
    let blank = AlertRule {
        events: vec![AlertEvent::Capture, AlertEvent::Concern],
        ..AlertRule::default()
    };
    let r = rule.unwrap_or(&blank);
    html! {
        form.card.alert-rule method="post" action="/settings/alert-rules" {
            (csrf(staff))
            @if let Some(old) = rule { input type="hidden" name="replacing" value=(old.name); }
            label { "Name " input type="text" name="name" required maxlength="60" value=(r.name); }
            fieldset {
                legend { "Alert on" }
                @for (e, said) in EVENTS {
                    label { input type="checkbox" name="event" value=(e.as_str()) checked[r.events.contains(&e)]; " " (said) }
                }
                label { "Captures of severity at least "
                    select name="min_severity" { @for n in 1..=5u8 { option value=(n) selected[n == r.min_severity] { (n) } } }
                }
                p.muted { "Captures of these categories only (none ticked: any category):" }
                @for (name, title) in categories {
                    label { input type="checkbox" name="category" value=(name) checked[r.categories.contains(name)]; " " (title) }
                }
            }
            fieldset {
                legend { "Who is told" }
                label { "Email addresses, one a line" @if !smtp_ready { " (mail is not set up)" }
                    textarea name="email_to" rows="2" cols="50" { (r.email_to.join("\n")) }
                }
                label { "Webhook addresses, one a line (shown by host; leave a shown line as it is to keep it)"
                    textarea name="webhook_urls" rows="2" cols="50" { (lines(&r.webhook_urls)) }
                }
                label { "Not triaged after "
                    input type="number" name="escalate_after_minutes" min="1" max="10080"
                        value=[r.escalate_after_minutes];
                    " minutes (blank: never), tell"
                    textarea name="escalate_to" rows="2" cols="50" { (lines(&r.escalate_to)) }
                }
            }
            fieldset {
                legend { "When and what" }
                label { "Send "
                    select name="when" {
                        option value="at_once" selected[r.when == Delivery::AtOnce] { "at once, at any hour" }
                        option value="school_hours" selected[r.when == Delivery::SchoolHours] { "in school hours; the rest as one digest when school opens" }
                    }
                }
                label { "Laptops of these schools only (a trust's school ids, one a line; blank: every school)"
                    textarea name="schools" rows="2" cols="30" { (r.schools.join("\n")) }
                }
                label { input type="checkbox" name="initials_only" value="1" checked[r.initials_only]; " Name the pupil by initials only" }
                label { input type="checkbox" name="include_text" value="1" checked[r.include_text]; " Put the captured words in the alert (mail and chat tools are not safe places for a child's messages)" }
            }
            button.primary type="submit" { @if rule.is_some() { "Save the rule" } @else { "Add the rule" } }
        }
    }
}

/// Non-empty trimmed lines.
fn list(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Lines of webhook addresses (or of escalation targets), where a line
/// still as the page showed it stands for the address it was shown for.
fn unmasked(text: &str, old: &[String]) -> Result<Vec<String>, String> {
    list(text)
        .into_iter()
        .map(|line| {
            if !line.ends_with("/…") {
                return Ok(line);
            }
            old.iter()
                .find(|o| shown_target(o) == line)
                .cloned()
                .ok_or_else(|| {
                    format!("{line:?} is a webhook shown by its host only; paste its whole address")
                })
        })
        .collect()
}

/// Reads the rule a form describes; `old` is the rule it changes.
///
/// # Errors
/// A field that does not read, in a sentence (the rule's own checks come
/// after, in [`crate::alerts::rule_book::RuleBook::check_page_rule`]).
pub fn rule_from_form(form: &Form, old: Option<&AlertRule>) -> Result<AlertRule, String> {
    let events = form
        .all("event")
        .map(|e| {
            EVENTS
                .iter()
                .find(|(x, _)| x.as_str() == e)
                .map(|(x, _)| *x)
                .ok_or_else(|| format!("{e:?} is not an event an alert can be about"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let min_severity = form
        .get("min_severity")
        .unwrap_or("5")
        .trim()
        .parse()
        .map_err(|_| "the severity must be 1 to 5".to_owned())?;
    let escalate_after_minutes = match form.get("escalate_after_minutes").map(str::trim) {
        None | Some("") => None,
        Some(m) => Some(
            m.parse()
                .map_err(|_| format!("{m:?} minutes is not a whole number"))?,
        ),
    };
    let when = match form.get("when").unwrap_or("at_once") {
        "at_once" => Delivery::AtOnce,
        "school_hours" => Delivery::SchoolHours,
        other => return Err(format!("{other:?} is not when an alert can go")),
    };
    let old_targets: Vec<String> = old
        .map(|o| {
            o.webhook_urls
                .iter()
                .chain(&o.escalate_to)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Ok(AlertRule {
        name: form.get("name").unwrap_or_default().trim().to_owned(),
        min_severity,
        events,
        categories: form.all("category").map(str::to_owned).collect(),
        email_to: list(form.get("email_to").unwrap_or_default()),
        webhook_urls: unmasked(form.get("webhook_urls").unwrap_or_default(), &old_targets)?,
        escalate_after_minutes,
        escalate_to: unmasked(form.get("escalate_to").unwrap_or_default(), &old_targets)?,
        include_text: form.get("include_text") == Some("1"),
        initials_only: form.get("initials_only") == Some("1"),
        when,
        schools: list(form.get("schools").unwrap_or_default()),
    })
}

/// `POST /settings/alert-rules`: a new rule, or a change to one made here.
pub async fn save(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let replacing = form
        .get("replacing")
        .map(str::to_owned)
        .filter(|r| !r.is_empty());
    let saved = blocking(&state, |s| s.saved_alert_rules()).await?;
    let old = match &replacing {
        Some(name) => Some(
            saved
                .iter()
                .find(|r| &r.name == name)
                .cloned()
                .ok_or_else(|| {
                    WebError::NotFound(format!(
                        "no alert rule {name:?} was made on this page (it may be in console.toml, or deleted meanwhile)"
                    ))
                })?,
        ),
        None => None,
    };
    let rule = rule_from_form(&form, old.as_ref()).map_err(WebError::BadRequest)?;
    let schools = rule.schools.clone();
    blocking(&state, move |s| {
        schools
            .iter()
            .try_for_each(|id| crate::store::schools::require_school(s, id))
    })
    .await?;
    if replacing.is_none() && saved.iter().any(|r| r.name == rule.name) {
        return Err(WebError::BadRequest(format!(
            "an alert rule named {:?} already exists; change that one, or choose another name",
            rule.name
        )));
    }
    state
        .rule_book
        .check_page_rule(&rule, replacing.as_deref(), &saved)
        .map_err(WebError::BadRequest)?;
    let (actor, origin) = (staff.name.clone(), staff.origin.clone());
    blocking(&state, move |s| {
        s.save_alert_rule(
            &rule,
            replacing.as_deref(),
            (&actor, &origin),
            UnixMillis::now(),
        )
    })
    .await?;
    apply(&state).await?;
    Ok(Redirect::to("/settings#alert-rules").into_response())
}

/// `POST /settings/alert-rules/delete`.
pub async fn delete(
    State(state): State<AppState>,
    staff: AdminStaff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.require_trust()?;
    staff.check_post(&headers, &form)?;
    let name = form.get("name").unwrap_or_default().to_owned();
    if state.rule_book.in_file(&name) {
        return Err(WebError::BadRequest(format!(
            "the alert rule {name:?} is in console.toml; delete it there"
        )));
    }
    let (actor, origin) = (staff.name.clone(), staff.origin.clone());
    let gone = blocking(&state, move |s| {
        s.delete_alert_rule(&name, (&actor, &origin), UnixMillis::now())
    })
    .await?;
    if !gone {
        return Err(WebError::NotFound(
            "that alert rule is not there (deleted meanwhile?)".into(),
        ));
    }
    apply(&state).await?;
    Ok(Redirect::to("/settings#alert-rules").into_response())
}

async fn apply(state: &AppState) -> Result<(), WebError> {
    let book = state.rule_book.clone();
    let store = state.store.clone();
    let warnings = tokio::task::spawn_blocking(move || book.apply(&store))
        .await
        .map_err(|e| WebError::Internal(format!("a storage task failed: {e}")))??;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_shown_by_its_host_keeps_its_address() {
        let old = AlertRule {
            name: "urgent".into(),
            webhook_urls: vec!["https://hooks.slack.com/services/T0/B0/SECRET".into()],
            ..AlertRule::default()
        };
        let form = Form(vec![
            ("name".into(), " urgent ".into()),
            ("event".into(), "capture".into()),
            ("event".into(), "tamper".into()),
            ("min_severity".into(), "4".into()),
            (
                "webhook_urls".into(),
                "https://hooks.slack.com/…\nhttps://hooks.example/new\n".into(),
            ),
            ("email_to".into(), "dsl@school.example\n\n".into()),
            ("escalate_after_minutes".into(), "".into()),
            ("when".into(), "school_hours".into()),
        ]);
        let r = rule_from_form(&form, Some(&old)).unwrap();
        assert_eq!(r.name, "urgent");
        assert_eq!(r.events, vec![AlertEvent::Capture, AlertEvent::Tamper]);
        assert_eq!(r.min_severity, 4);
        assert_eq!(
            r.webhook_urls,
            vec![
                "https://hooks.slack.com/services/T0/B0/SECRET".to_owned(),
                "https://hooks.example/new".to_owned()
            ]
        );
        assert_eq!(r.email_to, vec!["dsl@school.example".to_owned()]);
        assert_eq!(
            (r.escalate_after_minutes, r.when),
            (None, Delivery::SchoolHours)
        );
        // A shown line that stands for no address it was shown for.
        let e = rule_from_form(&form, None).unwrap_err();
        assert!(e.contains("paste its whole address"), "{e}");
        let bad = Form(vec![("event".into(), "everything".into())]);
        assert!(
            rule_from_form(&bad, None)
                .unwrap_err()
                .contains("not an event")
        );
    }
}
