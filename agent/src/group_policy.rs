//! The policy's layers for groups (issue 24) on the laptop. A session
//! helper runs the *widest* policy any layer could ask of it, so it finds
//! every hit some group would keep; the service, which knows the user from
//! the kernel, then keeps of each record only what applies to that user on
//! this laptop at that moment ([`protocol::layers::GroupLayers::effective`],
//! the same reading the console's `policy effective` prints).

use protocol::layers::GroupLayers;
use protocol::{AgentMessage, Policy, Screenshot, UnixMillis};

/// `at` on this laptop's clock and zone (the school's), as the layers
/// read it.
pub fn local_moment(at: UnixMillis) -> protocol::layers::Moment {
    protocol::layers::moment(at, &jiff::tz::TimeZone::system())
}

/// Whether `user` may answer the own AUP of `group`: only a year group
/// the user is in. Not "the AUP shown now": an answer given while the
/// year's AUP was withdrawn or replaced is still the user's, and kept.
pub fn may_answer(layers: &GroupLayers, user: &str, group: &str) -> bool {
    group.starts_with("year:") && layers.groups_of(user).iter().any(|g| g == group)
}

/// The policy a session helper runs: the school's, widened so that what
/// any layer keeps is found (the lowest minimum severity, a category on
/// if any layer switches it on, a source on if any layer does, screenshots
/// if any layer wants them).
pub fn widest(policy: &Policy, layers: &GroupLayers) -> Policy {
    let mut p = policy.clone();
    for l in &layers.layers {
        let o = &l.overrides;
        if let Some(m) = o.min_severity {
            p.min_severity = p.min_severity.min(m);
        }
        for (c, on) in &o.categories {
            if *on {
                p.disabled_categories.retain(|d| d != c);
            }
        }
        // A category raised by a layer may rise above the threshold.
        if o.severity_shift.iter().any(|(_, s)| *s > 0) {
            let most = o.severity_shift.iter().map(|(_, s)| *s).max().unwrap_or(0);
            let lowest = i16::from(p.min_severity) - i16::from(most);
            p.min_severity = lowest.clamp(1, 5) as u8;
        }
        for (source, on) in &o.sources {
            if *on {
                match source {
                    protocol::Source::Typed => p.sources.typed = true,
                    protocol::Source::WindowTitle => p.sources.window_title = true,
                    protocol::Source::Browser => p.sources.browser = true,
                    protocol::Source::Clipboard => p.sources.clipboard = true,
                    protocol::Source::ScreenText => p.sources.screen_text = true,
                    protocol::Source::Feed | protocol::Source::Concern => {}
                }
            }
        }
        if o.screenshots == Some(true) {
            p.screenshots = true;
        }
    }
    p
}

/// What of `record` (from a helper of `user`) is kept under the layers:
/// `None` if nothing. Captures are dropped, or their severity moved and
/// screenshot removed, as the user's layers say at the capture's time;
/// site visits outside the user's monitored hours are dropped. Concerns,
/// AUP answers and tamper events always go.
pub fn keep(
    record: AgentMessage,
    user: &str,
    policy: &Policy,
    layers: &GroupLayers,
) -> Option<AgentMessage> {
    // Without layers the helper already ran the school's policy itself.
    if layers.layers.is_empty() {
        return Some(record);
    }
    match record {
        AgentMessage::Capture(mut c) => {
            let e = layers.effective(policy, user, local_moment(c.time));
            if !e.wants(c.source) {
                return None;
            }
            // A page of a site the user's layers leave unread.
            let host = c.url.as_deref().and_then(wordlists::domains::host_of);
            if c.source == protocol::Source::ScreenText
                && host.is_some_and(|h| protocol::site_listed(&e.page_reading_excluded, &h))
            {
                return None;
            }
            c.severity = e.keeps(&c.category, c.severity)?;
            if !e.screenshots {
                c.screenshot =
                    Screenshot::Missing("screenshots are off for this user's group".into());
            }
            Some(AgentMessage::Capture(c))
        }
        AgentMessage::SiteVisits(mut batch) => {
            batch.visits.retain(|v| {
                let e = layers.effective(policy, user, local_moment(v.start));
                e.monitoring && !e.gravest_only && e.sources.site_visits
            });
            (!batch.visits.is_empty()).then_some(AgentMessage::SiteVisits(batch))
        }
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use protocol::layers::{Layer, MonitoringHours, OutsideHours, Overrides};

    use super::*;

    /// Year 12's hours are an hour that is not now.
    fn layers() -> GroupLayers {
        let minute = local_moment(UnixMillis::now()).minute;
        let not_now = if minute < 600 {
            "Mon-Sun 12:00-13:00"
        } else {
            "Mon-Sun 01:00-02:00"
        };
        GroupLayers {
            version: 1,
            layers: vec![
                Layer {
                    group: "year:Year 7".into(),
                    overrides: Overrides {
                        categories: vec![("gambling".into(), false)],
                        min_severity: Some(2),
                        page_reading_excluded: vec!["mis.school.example".into()],
                        ..Overrides::default()
                    },
                },
                Layer {
                    group: "year:Year 12".into(),
                    overrides: Overrides {
                        categories: vec![("adult".into(), true)],
                        screenshots: Some(false),
                        hours: Some(MonitoringHours::parse(not_now).unwrap()),
                        outside_hours: OutsideHours::GravestOnly,
                        ..Overrides::default()
                    },
                },
            ],
            accounts: vec![
                ("amy".into(), vec!["year:Year 7".into()]),
                ("ben".into(), vec!["year:Year 12".into()]),
            ],
            device_groups: Vec::new(),
            terms: Vec::new(),
            aups: Vec::new(),
        }
    }

    #[test]
    fn a_pupil_answers_only_her_own_years_aup() {
        let l = layers();
        assert!(may_answer(&l, "amy", "year:Year 7"));
        assert!(!may_answer(&l, "amy", "year:Year 12"), "another year's");
        assert!(
            !may_answer(&l, "zed", "year:Year 7"),
            "unknown to the register"
        );
        // An AUP withdrawn meanwhile: the answer is still hers.
        assert!(l.aup_of("amy").is_none() && may_answer(&l, "amy", "year:Year 7"));
    }

    #[test]
    fn hours_in_term_time_drop_what_comes_in_the_holidays() {
        let policy = Policy::baseline();
        let mut l = layers();
        l.layers[0].overrides.hours =
            Some(MonitoringHours::parse("Mon-Sun 00:00-24:00, term time").unwrap());
        let today = local_moment(UnixMillis::now()).day;
        let capture = || {
            AgentMessage::Capture(protocol::Capture {
                id: uuid::Uuid::now_v7(),
                time: UnixMillis::now(),
                user: String::new(),
                source: protocol::Source::Typed,
                app: "xterm".into(),
                window_title: "Chat".into(),
                url: None,
                term: "t".into(),
                category: "bullying".into(),
                severity: 4,
                context: "t".into(),
                context_match: (0, 1),
                screenshot: Screenshot::Missing("test".into()),
            })
        };
        // A term that holds today: kept.
        l.terms = vec![protocol::layers::Term {
            first: today - 1,
            last: today + 1,
        }];
        assert!(keep(capture(), "amy", &policy, &l).is_some());
        // Only terms that ended before today: the holidays, nothing kept.
        l.terms = vec![protocol::layers::Term {
            first: today - 30,
            last: today - 1,
        }];
        assert!(keep(capture(), "amy", &policy, &l).is_none());
        // No terms set: every day is term time.
        l.terms.clear();
        assert!(keep(capture(), "amy", &policy, &l).is_some());
    }

    #[test]
    fn the_helper_finds_what_any_layer_keeps_and_the_service_keeps_what_applies() {
        let mut policy = Policy::baseline();
        policy.disabled_categories = vec!["adult".into()];
        let wide = widest(&policy, &layers());
        assert_eq!(wide.min_severity, 2);
        assert!(
            wide.disabled_categories.is_empty(),
            "adult is on for a layer"
        );

        let capture = |category: &str, severity: u8| {
            AgentMessage::Capture(protocol::Capture {
                id: uuid::Uuid::now_v7(),
                time: UnixMillis::now(),
                user: String::new(),
                source: protocol::Source::Typed,
                app: "xterm".into(),
                window_title: "Chat".into(),
                url: None,
                term: "t".into(),
                category: category.into(),
                severity,
                context: "t".into(),
                context_match: (0, 1),
                screenshot: Screenshot::Png(vec![1, 2, 3]),
            })
        };
        let l = layers();
        assert!(keep(capture("gambling", 4), "amy", &policy, &l).is_none());
        assert!(keep(capture("self-harm", 2), "amy", &policy, &l).is_some());
        assert!(
            keep(capture("self-harm", 2), "zed", &policy, &l).is_none(),
            "the school's 3"
        );
        // Outside Ben's hours only the gravest, and never with a screenshot.
        assert!(keep(capture("self-harm", 4), "ben", &policy, &l).is_none());
        match keep(capture("self-harm", 5), "ben", &policy, &l) {
            Some(AgentMessage::Capture(c)) => {
                assert!(matches!(c.screenshot, Screenshot::Missing(_)));
            }
            other => panic!("the gravest is kept: {other:?}"),
        }
        assert!(
            keep(capture("adult", 3), "amy", &policy, &l).is_none(),
            "off for the school"
        );
        // A page of a site Year 7's layer leaves unread, for Year 7 only.
        let on_page = |url: &str| {
            let AgentMessage::Capture(mut c) = capture("self-harm", 4) else {
                unreachable!()
            };
            c.source = protocol::Source::ScreenText;
            c.url = Some(url.into());
            AgentMessage::Capture(c)
        };
        let unread = "https://www.mis.school.example/pupil";
        assert!(keep(on_page(unread), "amy", &policy, &l).is_none());
        assert!(keep(on_page("https://news.example/a"), "amy", &policy, &l).is_some());
        assert!(keep(on_page(unread), "zed", &policy, &l).is_some());
    }
}
