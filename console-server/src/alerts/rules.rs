//! Alert rules, as `console.toml` holds them (`[[alerts]]`): which events
//! raise an alert, and who hears of it.
//!
//! ```toml
//! [[alerts]]
//! name = "urgent"
//! min_severity = 5                 # captures at or above this severity
//! events = ["capture", "concern", "tamper"]
//! categories = []                  # captures of these categories only; empty: any
//! email_to = ["dsl@school.example"]
//! webhook_urls = ["https://hooks.example/abc"]
//! escalate_after_minutes = 15      # not triaged by then: tell escalate_to
//! escalate_to = ["head@school.example"]
//! include_text = false             # the captured words in the alert (off by default)
//! initials_only = false            # name the user by initials only
//! when = "at_once"                 # or "school_hours": what comes in outside
//!                                  # [school_hours] waits for one digest
//! schools = ["north-academy"]      # a trust's: laptops of these schools only;
//!                                  # empty: every school
//! ```

use protocol::UnixMillis;
use serde::{Deserialize, Serialize};

use super::hours::Hours;

/// What an alert can be about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEvent {
    /// A capture at or above the rule's severity.
    Capture,
    /// A pupil's own report of a concern.
    Concern,
    /// A tamper event: monitoring stopped, a laptop gone silent.
    Tamper,
    /// A laptop gone offline.
    Offline,
}

impl AlertEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Capture => "capture",
            AlertEvent::Concern => "concern",
            AlertEvent::Tamper => "tamper",
            AlertEvent::Offline => "offline",
        }
    }
}

/// When a rule's alerts go out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// As soon as the record is stored.
    #[default]
    AtOnce,
    /// In school hours at once; outside them held, and sent together as
    /// one digest when school hours next begin.
    SchoolHours,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::AtOnce => "at_once",
            Delivery::SchoolHours => "school_hours",
        }
    }
}

/// One `[[alerts]]` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertRule {
    /// Names the rule in the audit log and the list of alerts sent.
    pub name: String,
    /// Captures at or above this severity (1–5); concerns and tamper
    /// events are named in `events`.
    pub min_severity: u8,
    pub events: Vec<AlertEvent>,
    /// Captures of these categories only; empty: any category.
    pub categories: Vec<String>,
    /// Mail goes through `[report.smtp]`.
    pub email_to: Vec<String>,
    /// Each gets a JSON POST; a Microsoft Teams or Slack incoming webhook
    /// (known by its address) gets the body it accepts.
    pub webhook_urls: Vec<String>,
    /// A capture or concern nobody has triaged this long after it arrived
    /// is sent again to `escalate_to`, once.
    pub escalate_after_minutes: Option<u32>,
    /// Addresses or webhook URLs.
    pub escalate_to: Vec<String>,
    /// Put the captured words in the alert. Off by default: mail and chat
    /// tools are not safe places for a child's messages.
    pub include_text: bool,
    /// Name the user by their initials only.
    pub initials_only: bool,
    /// At once, or in school hours with a digest of the rest.
    pub when: Delivery,
    /// On a trust's console: the laptops of these schools only (a school's
    /// own safeguarding lead hears of her school); empty: every school.
    pub schools: Vec<String>,
}

impl Default for AlertRule {
    fn default() -> Self {
        AlertRule {
            name: String::new(),
            min_severity: 5,
            events: vec![AlertEvent::Capture],
            categories: Vec::new(),
            email_to: Vec::new(),
            webhook_urls: Vec::new(),
            escalate_after_minutes: None,
            escalate_to: Vec::new(),
            include_text: false,
            initials_only: false,
            when: Delivery::AtOnce,
            schools: Vec::new(),
        }
    }
}

/// How an alert is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "webhook" => Some(Channel::Webhook),
            _ => None,
        }
    }

    /// An `escalate_to` entry: a URL is a webhook, anything else an address.
    pub fn of_target(target: &str) -> Channel {
        if target.starts_with("https://") || target.starts_with("http://") {
            Channel::Webhook
        } else {
            Channel::Email
        }
    }
}

/// Something that may raise alerts.
#[derive(Debug, Clone, Copy)]
pub enum Happening<'a> {
    Capture { severity: u8, category: &'a str },
    Concern,
    Tamper,
    Offline,
}

impl AlertRule {
    /// Whether the rule raises an alert for `what`.
    pub fn matches(&self, what: Happening<'_>) -> bool {
        match what {
            Happening::Capture { severity, category } => {
                self.events.contains(&AlertEvent::Capture)
                    && severity >= self.min_severity
                    && (self.categories.is_empty() || self.categories.iter().any(|c| c == category))
            }
            Happening::Concern => self.events.contains(&AlertEvent::Concern),
            Happening::Tamper => self.events.contains(&AlertEvent::Tamper),
            Happening::Offline => self.events.contains(&AlertEvent::Offline),
        }
    }

    /// Whether the rule is for a laptop of `school` (`None`: a laptop of
    /// no school, which only a rule for every school covers).
    pub fn covers(&self, school: Option<&str>) -> bool {
        self.schools.is_empty() || school.is_some_and(|s| self.schools.iter().any(|r| r == s))
    }

    /// Who hears of an alert at once: each address and webhook.
    pub fn recipients(&self) -> impl Iterator<Item = (Channel, &str)> {
        self.email_to
            .iter()
            .map(|a| (Channel::Email, a.as_str()))
            .chain(
                self.webhook_urls
                    .iter()
                    .map(|u| (Channel::Webhook, u.as_str())),
            )
    }

    /// Who hears of it if nobody triages it in time.
    pub fn escalation(&self) -> impl Iterator<Item = (Channel, &str)> {
        self.escalate_to
            .iter()
            .map(|t| (Channel::of_target(t), t.as_str()))
    }
}

/// The rules in force and the school hours they may wait for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    pub rules: Vec<AlertRule>,
    pub hours: Hours,
}

impl RuleSet {
    /// When an alert of `rule` raised at `now` may go: `None` at once, or
    /// the next opening of school hours for a rule that waits for them.
    pub fn held_until(&self, rule: &AlertRule, now: UnixMillis) -> Option<UnixMillis> {
        match rule.when {
            Delivery::AtOnce => None,
            Delivery::SchoolHours => self.hours.next_opening(now, &crate::school_week::zone()),
        }
    }

    pub fn rule(&self, name: &str) -> Option<&AlertRule> {
        self.rules.iter().find(|r| r.name == name)
    }
}

/// Checks a list of rules; says what is wrong with the first bad one.
///
/// # Errors
/// A sentence naming the rule and the setting.
pub fn check(rules: &[AlertRule], smtp_ready: bool) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        let what = if r.name.is_empty() {
            format!("alerts rule {}", i + 1)
        } else {
            format!("alerts rule {:?}", r.name)
        };
        if r.name.trim().is_empty() {
            return Err(format!("{what} has no name; give each [[alerts]] a name"));
        }
        if !names.insert(r.name.as_str()) {
            return Err(format!("{what}: two rules have this name"));
        }
        if !(1..=5).contains(&r.min_severity) {
            return Err(format!("{what}: min_severity must be 1 to 5"));
        }
        if r.events.is_empty() {
            return Err(format!(
                "{what}: events is empty; name capture, concern, tamper or offline"
            ));
        }
        if r.email_to.is_empty() && r.webhook_urls.is_empty() {
            return Err(format!(
                "{what}: nobody to tell; set email_to or webhook_urls"
            ));
        }
        for a in r.email_to.iter().chain(
            r.escalate_to
                .iter()
                .filter(|t| Channel::of_target(t) == Channel::Email),
        ) {
            if a.parse::<lettre::Address>().is_err() {
                return Err(format!("{what}: {a:?} is not an email address"));
            }
        }
        for u in r.webhook_urls.iter().chain(
            r.escalate_to
                .iter()
                .filter(|t| Channel::of_target(t) == Channel::Webhook),
        ) {
            if !(u.starts_with("https://") || u.starts_with("http://"))
                || u.contains(char::is_whitespace)
            {
                return Err(format!("{what}: {u:?} is not an http(s) URL"));
            }
        }
        let mails = !r.email_to.is_empty()
            || r.escalate_to
                .iter()
                .any(|t| Channel::of_target(t) == Channel::Email);
        if mails && !smtp_ready {
            return Err(format!(
                "{what} sends mail, so report.smtp.host and report.smtp.from are needed"
            ));
        }
        match (r.escalate_after_minutes, r.escalate_to.is_empty()) {
            (Some(0), _) => {
                return Err(format!("{what}: escalate_after_minutes must be at least 1"));
            }
            (Some(_), true) => {
                return Err(format!(
                    "{what}: escalate_after_minutes is set but escalate_to is empty"
                ));
            }
            (None, false) => {
                return Err(format!(
                    "{what}: escalate_to is set but escalate_after_minutes is not"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> AlertRule {
        AlertRule {
            name: "urgent".into(),
            webhook_urls: vec!["https://hooks.example/abc".into()],
            ..AlertRule::default()
        }
    }

    #[test]
    fn a_rule_for_some_schools_covers_their_laptops_only() {
        let mut r = rule();
        assert!(r.covers(None) && r.covers(Some("north")), "every school");
        r.schools = vec!["north".into()];
        assert!(r.covers(Some("north")));
        assert!(!r.covers(Some("south")));
        assert!(!r.covers(None), "a laptop of no school is the trust's");
    }

    #[test]
    fn a_rule_matches_by_event_severity_and_category() {
        let mut r = rule();
        r.events = vec![AlertEvent::Capture, AlertEvent::Concern];
        r.min_severity = 4;
        assert!(r.matches(Happening::Capture {
            severity: 5,
            category: "self-harm"
        }));
        assert!(!r.matches(Happening::Capture {
            severity: 3,
            category: "self-harm"
        }));
        assert!(r.matches(Happening::Concern));
        assert!(!r.matches(Happening::Tamper));
        r.categories = vec!["grooming".into()];
        assert!(!r.matches(Happening::Capture {
            severity: 5,
            category: "self-harm"
        }));
        assert!(r.matches(Happening::Capture {
            severity: 4,
            category: "grooming"
        }));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        assert_eq!(check(&[rule()], false), Ok(()));
        let bad = |f: fn(&mut AlertRule), needle: &str, smtp: bool| {
            let mut r = rule();
            f(&mut r);
            let e = check(&[r], smtp).unwrap_err();
            assert!(e.contains(needle), "{e}");
        };
        bad(|r| r.name.clear(), "no name", true);
        bad(|r| r.min_severity = 6, "min_severity", true);
        bad(|r| r.events.clear(), "events", true);
        bad(|r| r.webhook_urls.clear(), "nobody to tell", true);
        bad(
            |r| r.email_to = vec!["not an address".into()],
            "not an email",
            true,
        );
        bad(
            |r| r.email_to = vec!["dsl@school.example".into()],
            "report.smtp",
            false,
        );
        bad(
            |r| r.webhook_urls = vec!["ftp://x".into()],
            "http(s) URL",
            true,
        );
        bad(
            |r| r.escalate_after_minutes = Some(10),
            "escalate_to is empty",
            true,
        );
        bad(
            |r| r.escalate_to = vec!["https://hooks.example/b".into()],
            "escalate_after_minutes is not",
            true,
        );
        let twice = check(&[rule(), rule()], true).unwrap_err();
        assert!(twice.contains("two rules"), "{twice}");
    }
}
