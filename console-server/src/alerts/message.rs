//! What an alert says: the category, severity, term and its definition,
//! the laptop, the user (or their initials), the time in the school's
//! zone and a link to the record in the console. Never the captured text
//! or the screenshot, unless the rule's `include_text` allows the text.
//!
//! A webhook gets a generic JSON object; a Slack incoming webhook (by its
//! address) `{"text": …}`; a Microsoft Teams webhook an Adaptive Card
//! message.

use serde_json::{Value, json};

use super::rules::AlertRule;
use crate::store::alerts::Alert;
use crate::store::{CaptureSummary, TamperRow};

/// What an alert is about, read from the store when it is sent.
pub enum Subject {
    Capture(Box<CaptureSummary>),
    Tamper(Box<TamperRow>),
    /// A laptop gone offline, and when it was last heard.
    Offline {
        device: uuid::Uuid,
        hostname: String,
        last_seen: Option<String>,
    },
    /// The record is gone (deleted by retention or an admin).
    Gone,
}

/// An alert ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    pub title: String,
    /// Plain text, a line a fact.
    pub text: String,
    pub link: String,
    pub fields: Value,
}

/// `amy.smith` → `A.S.`; `Jo Bloggs-Smith` → `J.B.S.`
pub fn initials(user: &str) -> String {
    user.split(|c: char| !c.is_alphanumeric())
        .filter_map(|w| w.chars().next())
        .filter(|c| c.is_alphabetic())
        .map(|c| format!("{}.", c.to_uppercase()))
        .collect()
}

/// A laptop by its hostname, or its id before it has said its name.
fn laptop_name(hostname: &str, device: uuid::Uuid) -> String {
    if hostname.is_empty() {
        device.to_string()
    } else {
        hostname.to_owned()
    }
}

fn local(rfc3339: &str) -> String {
    let tz = crate::school_week::zone();
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.to_zoned(tz).strftime("%Y-%m-%d %H:%M %Z").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned())
}

/// Puts an alert into words. `definition` gives a term's meaning for
/// staff; `link_base` is the console's address (`https://host:port`).
pub fn compose(
    alert: &Alert,
    rule: Option<&AlertRule>,
    subject: &Subject,
    definition: &dyn Fn(&str, &str) -> Option<String>,
    link_base: &str,
) -> Composed {
    let initials_only = rule.is_some_and(|r| r.initials_only);
    let include_text = rule.is_some_and(|r| r.include_text);
    let who = |u: &str| {
        if initials_only {
            initials(u)
        } else {
            u.to_owned()
        }
    };
    let escalated = alert.event == "escalation";
    let mut lines = Vec::new();
    let (title, link, fields) = match subject {
        Subject::Capture(c) => {
            let concern = c.source == "concern";
            let laptop = laptop_name(&c.hostname, c.device);
            let title = if concern {
                format!("A pupil reported a concern on {laptop}")
            } else {
                format!("Severity {} {} capture on {laptop}", c.severity, c.category)
            };
            let title = if escalated {
                format!("Not triaged yet: {title}")
            } else {
                title
            };
            let link = format!("{link_base}/captures/{}", c.id);
            if !concern {
                lines.push(format!("Category: {}", c.category));
                lines.push(format!("Severity: {}", c.severity));
                lines.push(format!("Term: {}", c.term));
            }
            let meaning = if concern {
                Some(crate::web::CONCERN_DEFINITION.to_owned())
            } else {
                definition(&c.category, &c.term)
            };
            if let Some(d) = &meaning {
                lines.push(format!("What it means: {d}"));
            }
            lines.push(format!("Laptop: {laptop}"));
            lines.push(format!("User: {}", who(&c.user)));
            lines.push(format!("Time: {}", local(&c.time)));
            if include_text {
                lines.push(format!("Text: {}", c.context));
            }
            let mut fields = json!({
                "category": c.category,
                "severity": c.severity,
                "term": c.term,
                "definition": meaning,
                "device": c.device,
                "hostname": c.hostname,
                "user": who(&c.user),
                "time": c.time,
                "source": c.source,
            });
            if include_text {
                fields["text"] = json!(c.context);
            }
            (title, link, fields)
        }
        Subject::Tamper(t) => {
            let laptop = laptop_name(&t.hostname, t.device);
            let title = format!("{} on {laptop}", crate::web::tamper::label(&t.kind));
            lines.push(format!("Laptop: {laptop}"));
            if let Some(u) = &t.user {
                lines.push(format!("User: {}", who(u)));
            }
            lines.push(format!("Time: {}", local(&t.time)));
            lines.push(format!("Detail: {}", t.detail));
            let fields = json!({
                "kind": t.kind,
                "device": t.device,
                "hostname": t.hostname,
                "user": t.user.as_deref().map(who),
                "time": t.time,
                "detail": t.detail,
            });
            (title, format!("{link_base}/tamper"), fields)
        }
        Subject::Offline {
            device,
            hostname,
            last_seen,
        } => {
            let laptop = laptop_name(hostname, *device);
            lines.push(format!("Laptop: {laptop}"));
            if let Some(t) = last_seen {
                lines.push(format!("Last heard: {}", local(t)));
            }
            let fields = json!({ "device": device, "hostname": hostname, "last_seen": last_seen });
            (
                format!("{laptop} has gone offline"),
                format!("{link_base}/devices"),
                fields,
            )
        }
        Subject::Gone => (
            format!(
                "An alert about {} {} that is no longer kept",
                alert.event, alert.record
            ),
            format!("{link_base}/inbox"),
            json!({}),
        ),
    };
    lines.push(format!("Open in the console: {link}"));
    Composed {
        title,
        text: lines.join("\n"),
        link,
        fields,
    }
}

/// Puts alerts held for school hours into one digest: a line and a link
/// each, oldest first.
pub fn digest(parts: &[(&Alert, Composed)], link_base: &str) -> Composed {
    let n = parts.len();
    let title = if n == 1 {
        "1 alert from outside school hours".to_owned()
    } else {
        format!("{n} alerts from outside school hours")
    };
    let mut lines =
        vec!["These came in while school was closed; each is waiting in the console.".to_owned()];
    for (alert, c) in parts {
        lines.push(String::new());
        lines.push(format!("{} ({})", c.title, local_millis(alert.created.0)));
        lines.push(format!("Open in the console: {}", c.link));
    }
    Composed {
        title,
        text: lines.join("\n"),
        link: format!("{link_base}/inbox"),
        fields: json!({ "count": n }),
    }
}

fn local_millis(t: i64) -> String {
    jiff::Timestamp::from_millisecond(t)
        .map(|t| {
            t.to_zoned(crate::school_week::zone())
                .strftime("%Y-%m-%d %H:%M %Z")
                .to_string()
        })
        .unwrap_or_default()
}

/// The body a webhook at `url` accepts for a digest of `parts` (put
/// together as `c` by [`digest`]).
pub fn webhook_digest_body(parts: &[(&Alert, Composed)], c: &Composed, url: &str) -> Value {
    if let Some(chat) = chat_body(c, url) {
        return chat;
    }
    let alerts: Vec<Value> = parts.iter().map(|(a, c)| plain_body(a, c)).collect();
    json!({
        "digest": true,
        "title": c.title,
        "text": c.text,
        "link": c.link,
        "alerts": alerts,
    })
}

/// The body a webhook at `url` accepts.
pub fn webhook_body(alert: &Alert, c: &Composed, url: &str) -> Value {
    chat_body(c, url).unwrap_or_else(|| plain_body(alert, c))
}

/// Slack's or Teams' body, for a webhook of theirs.
fn chat_body(c: &Composed, url: &str) -> Option<Value> {
    let host = wordlists::domains::host_of(url).unwrap_or_default();
    if host == "hooks.slack.com" {
        return Some(json!({ "text": format!("*{}*\n{}", c.title, c.text) }));
    }
    if host.ends_with("webhook.office.com") || host.ends_with("logic.azure.com") {
        return Some(json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        { "type": "TextBlock", "text": c.title, "weight": "Bolder", "wrap": true },
                        { "type": "TextBlock", "text": c.text, "wrap": true },
                    ],
                    "actions": [{ "type": "Action.OpenUrl", "title": "Open in the console", "url": c.link }],
                },
            }],
        }));
    }
    None
}

fn plain_body(alert: &Alert, c: &Composed) -> Value {
    json!({
        "alert": alert.id,
        "rule": alert.rule,
        "event": alert.event,
        "record": alert.record,
        "title": c.title,
        "text": c.text,
        "link": c.link,
        "fields": c.fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_webhook_gets_the_body_it_accepts() {
        use crate::alerts::rules::Channel;
        use crate::store::alerts::AlertStatus;
        use protocol::UnixMillis;
        let alert = Alert {
            id: 7,
            rule: "urgent".into(),
            event: "capture".into(),
            record: "r".into(),
            channel: Channel::Webhook,
            target: String::new(),
            status: AlertStatus::Pending,
            attempts: 0,
            next_attempt: UnixMillis(0),
            last_error: None,
            created: UnixMillis(0),
            sent: None,
            held_until: None,
        };
        let c = Composed {
            title: "Severity 5 self-harm capture on lab-1".into(),
            text: "Category: self-harm".into(),
            link: "https://console/captures/r".into(),
            fields: json!({}),
        };
        let slack = webhook_body(&alert, &c, "https://HOOKS.slack.com:443/services/T/B/X");
        assert_eq!(slack.as_object().unwrap().len(), 1, "{slack}");
        assert!(slack["text"].as_str().unwrap().contains("lab-1"), "{slack}");
        let teams = webhook_body(&alert, &c, "https://school.webhook.office.com/webhookb2/x");
        assert_eq!(teams["type"], "message", "{teams}");
        assert_eq!(
            teams["attachments"][0]["content"]["actions"][0]["url"],
            "https://console/captures/r"
        );
        let plain = webhook_body(&alert, &c, "https://hooks.example/abc");
        assert_eq!(
            (plain["alert"].as_i64(), plain["rule"].as_str()),
            (Some(7), Some("urgent"))
        );
    }

    #[test]
    fn initials_are_the_first_letter_of_each_part() {
        assert_eq!(initials("amy.smith"), "A.S.");
        assert_eq!(initials("Jo Bloggs-Smith"), "J.B.S.");
        assert_eq!(initials("pupil0042"), "P.");
    }
}
