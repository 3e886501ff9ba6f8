//! Group policies from the command line: a group's layer changed from
//! flags (`policy set-group`), and what applies to one user on one laptop
//! at one moment, as JSON (`policy effective`), read through the same
//! [`protocol::layers::GroupLayers::effective`] a laptop uses.

use std::collections::BTreeMap;

use protocol::layers::{MonitoringHours, OutsideHours, Overrides};
use protocol::{Policy, UnixMillis};
use serde_json::{Value, json};

use crate::store::Store;

/// What `policy set-group` asks to change.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub min_severity: Option<u8>,
    pub disable: Vec<String>,
    pub enable: Vec<String>,
    pub hours: Option<String>,
    pub outside_hours: Option<String>,
    pub screenshots: Option<bool>,
    /// Start from nothing rather than the group's current layer.
    pub reset: bool,
}

/// Every category the policy's libraries define (built-in and the
/// school's).
///
/// # Errors
/// A school library that does not read.
pub fn categories(policy: &Policy) -> anyhow::Result<Vec<String>> {
    let libraries = wordlists::Libraries::builtin_with(
        policy
            .libraries
            .iter()
            .map(|f| (f.name.as_str(), f.toml.as_str())),
    )?;
    let mut names: Vec<String> = libraries.categories.into_iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The group's layer with `change` applied.
///
/// # Errors
/// A severity out of 1–5, a category no library defines, hours that do
/// not read, or an unknown out-of-hours rule: each said plainly.
pub fn changed(
    current: Option<Overrides>,
    change: &GroupChange,
    known: &[String],
) -> anyhow::Result<Overrides> {
    let mut o = if change.reset {
        Overrides::default()
    } else {
        current.unwrap_or_default()
    };
    if let Some(m) = change.min_severity {
        anyhow::ensure!((1..=5).contains(&m), "--min-severity must be 1 to 5");
        o.min_severity = Some(m);
    }
    for (list, on) in [(&change.disable, false), (&change.enable, true)] {
        for c in list {
            anyhow::ensure!(
                known.contains(c),
                "no library defines a category {c:?}; the categories are {}",
                known.join(", ")
            );
            o.categories.retain(|(d, _)| d != c);
            o.categories.push((c.clone(), on));
        }
    }
    if let Some(h) = &change.hours {
        o.hours = Some(MonitoringHours::parse(h).map_err(anyhow::Error::msg)?);
    }
    if let Some(rule) = &change.outside_hours {
        o.outside_hours = match rule.as_str() {
            "nothing" => OutsideHours::Nothing,
            "gravest" => OutsideHours::GravestOnly,
            other => anyhow::bail!(
                "--outside-hours {other:?}: say nothing (no captures) or gravest (severity 5 only)"
            ),
        };
    }
    if let Some(s) = change.screenshots {
        o.screenshots = Some(s);
    }
    Ok(o)
}

/// `at` in the school's zone, as the layers read it.
pub fn local_moment(at: UnixMillis) -> protocol::layers::Moment {
    protocol::layers::moment(at, &crate::school_week::zone())
}

/// What applies to `user` on `device` (none: no device group) at `at`,
/// as `policy effective` prints it.
///
/// # Errors
/// A storage failure, or a school library that does not read.
pub fn effective(
    store: &dyn Store,
    user: &str,
    device: Option<&str>,
    at: UnixMillis,
) -> anyhow::Result<Value> {
    let policy = store.policy()?;
    let mut layers = store.layers_for_device(device.unwrap_or(""))?;
    if device.is_none() {
        layers.device_groups.clear();
    }
    let moment = local_moment(at);
    let e = layers.effective(&policy, user, moment);
    let categories: BTreeMap<String, bool> = categories(&policy)?
        .into_iter()
        .map(|c| {
            let on = !e.disabled_categories.contains(&c);
            (c, on)
        })
        .collect();
    let shifts: BTreeMap<&str, i8> = e
        .severity_shift
        .iter()
        .map(|(c, s)| (c.as_str(), *s))
        .collect();
    Ok(json!({
        "user": user,
        "device": device,
        "at": crate::store::rfc3339(at),
        "groups": e.groups,
        "layers": e.layered,
        "min_severity": e.min_severity,
        "categories": categories,
        "severity_shift": shifts,
        "sources": {
            "typed": e.sources.typed,
            "window_title": e.sources.window_title,
            "browser": e.sources.browser,
            "clipboard": e.sources.clipboard,
            "site_visits": e.sources.site_visits,
            "screen_text": e.sources.screen_text,
        },
        "screenshots": e.screenshots,
        "page_reading_excluded": e.page_reading_excluded,
        "monitoring": e.monitoring,
        "gravest_only": e.gravest_only,
        "hours": e.hours,
        "in_term": layers.in_term(moment.day),
        "policy_version": policy.version,
        "layers_version": layers.version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_checked_and_merged_into_the_layer() {
        let known = vec!["gambling".to_owned(), "self-harm".to_owned()];
        let first = changed(
            None,
            &GroupChange {
                min_severity: Some(4),
                disable: vec!["gambling".into()],
                hours: Some("Mon-Fri 08:00-16:00".into()),
                outside_hours: Some("gravest".into()),
                ..GroupChange::default()
            },
            &known,
        )
        .unwrap();
        assert_eq!(first.min_severity, Some(4));
        assert_eq!(first.outside_hours, OutsideHours::GravestOnly);
        let second = changed(
            Some(first.clone()),
            &GroupChange {
                enable: vec!["gambling".into()],
                ..GroupChange::default()
            },
            &known,
        )
        .unwrap();
        assert_eq!(second.categories, vec![("gambling".to_owned(), true)]);
        assert_eq!(second.min_severity, Some(4), "kept");
        let reset = changed(
            Some(first),
            &GroupChange {
                reset: true,
                ..GroupChange::default()
            },
            &known,
        )
        .unwrap();
        assert_eq!(reset, Overrides::default());
        for bad in [
            GroupChange {
                min_severity: Some(9),
                ..GroupChange::default()
            },
            GroupChange {
                disable: vec!["gamblng".into()],
                ..GroupChange::default()
            },
            GroupChange {
                hours: Some("weekdays".into()),
                ..GroupChange::default()
            },
            GroupChange {
                outside_hours: Some("some".into()),
                ..GroupChange::default()
            },
        ] {
            assert!(changed(None, &bad, &known).is_err(), "{bad:?}");
        }
    }
}
