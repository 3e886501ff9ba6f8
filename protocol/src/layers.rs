//! Policy layers: the school's policy ([`crate::Policy`]) changed for
//! groups of accounts and laptops, and what applies to one user on one
//! laptop at one moment ([`GroupLayers::effective`]). The console and the
//! agent both read a policy through this one function, so what the
//! console says applies is what the laptop does.
//!
//! A group is named by its kind and a name:
//!
//! | group | who | from |
//! |---|---|---|
//! | `role:pupil`, `role:staff` | accounts of that role | the register (MIS import) |
//! | `year:NAME` (`year:Year 9`) | accounts of that year group | the register |
//! | `accounts:NAME` | a named list of accounts | the console |
//! | `devices:NAME` | a named list of laptops | the console |
//!
//! **Precedence**, least specific first: the school's policy, then `role`,
//! `year`, `accounts` and `devices` layers; a later layer's setting wins.
//! Two layers of the same rank that both apply to someone and both set
//! one thing differently are a tie, refused when a layer is saved
//! ([`GroupLayers::ties`]), never guessed at.
//!
//! **Term time.** Monitoring hours may hold in term time only
//! (`Mon-Fri 08:00-16:00, term time`): outside the school's terms
//! ([`GroupLayers::terms`]) the group is outside its hours. With no terms
//! set, every day counts as term time (a school that has not entered its
//! dates is monitored as its hours say, never less).
//!
//! **On the wire.** Protocol 6 sends these as
//! [`crate::ConsoleMessage::LayersV6`]; an agent of protocol 5 is sent
//! [`wire5::GroupLayers`], the shape it knows, without term time (its
//! term-time hours hold every week).

use serde::{Deserialize, Serialize};

use crate::message::{Policy, Source, SourceSwitches};

pub mod wire5;

/// The kinds of group, least specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupKind {
    /// The laptops of one school of a trust (`school:ID`), least specific.
    School,
    Role,
    Year,
    Accounts,
    Devices,
}

impl GroupKind {
    pub fn prefix(self) -> &'static str {
        match self {
            GroupKind::School => "school",
            GroupKind::Role => "role",
            GroupKind::Year => "year",
            GroupKind::Accounts => "accounts",
            GroupKind::Devices => "devices",
        }
    }

    /// The kind of a group's name (`year:Year 9`).
    ///
    /// # Errors
    /// A name without a known kind, said with the kinds there are.
    pub fn of(group: &str) -> Result<GroupKind, String> {
        let (kind, name) = group.split_once(':').unwrap_or(("", ""));
        if name.trim().is_empty() {
            return Err(format!(
                "{group:?} is not a group: write role:pupil, role:staff, year:NAME, accounts:NAME, devices:NAME or school:ID"
            ));
        }
        match kind {
            "school" => Ok(GroupKind::School),
            "role" if matches!(name, "pupil" | "staff") => Ok(GroupKind::Role),
            "role" => Err(format!("{group:?}: a role is pupil or staff")),
            "year" => Ok(GroupKind::Year),
            "accounts" => Ok(GroupKind::Accounts),
            "devices" => Ok(GroupKind::Devices),
            _ => Err(format!(
                "{group:?} is not a group: write role:pupil, role:staff, year:NAME, accounts:NAME, devices:NAME or school:ID"
            )),
        }
    }
}

/// Days and times of day (the laptop's own clock and zone, which is the
/// school's) when a group is monitored as its layers say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoringHours {
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after midnight; `start < end`.
    pub start_minute: u16,
    pub end_minute: u16,
    /// Only in the school's terms: outside them the group is outside its
    /// hours.
    #[serde(default)]
    pub term_time: bool,
}

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl MonitoringHours {
    /// Reads `Mon-Fri 08:00-16:00` (or `Sat,Sun 10:00-12:00`, `Mon
    /// 09:00-15:30`), with `, term time` after it for term time only.
    ///
    /// # Errors
    /// What does not read, with an example.
    pub fn parse(text: &str) -> Result<MonitoringHours, String> {
        let bad = || {
            format!(
                "hours {text:?} do not read: write days and times such as \"Mon-Fri 08:00-16:00\", and \", term time\" after them for term time only"
            )
        };
        let trimmed = text.trim();
        let (hours, term_time) = match trimmed
            .to_ascii_lowercase()
            .strip_suffix("term time")
            .map(str::len)
        {
            Some(n) => (
                trimmed[..n].trim_end().trim_end_matches(',').trim_end(),
                true,
            ),
            None => (trimmed, false),
        };
        let (days_part, times) = hours.split_once(' ').ok_or_else(bad)?;
        let day = |d: &str| {
            DAY_NAMES
                .iter()
                .position(|x| x.eq_ignore_ascii_case(d.trim().get(..3).unwrap_or("")))
                .ok_or_else(bad)
        };
        let mut days = [false; 7];
        for part in days_part.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a)?, day(b)?);
                    if a > b {
                        return Err(bad());
                    }
                    days[a..=b].iter_mut().for_each(|d| *d = true);
                }
                None => days[day(part)?] = true,
            }
        }
        let minute = |t: &str| -> Result<u16, String> {
            let (h, m) = t.trim().split_once(':').ok_or_else(bad)?;
            let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
            if h > 24 || m > 59 || (h == 24 && m > 0) {
                return Err(bad());
            }
            Ok(h * 60 + m)
        };
        let (from, to) = times.trim().split_once('-').ok_or_else(bad)?;
        let (start_minute, end_minute) = (minute(from)?, minute(to)?);
        if start_minute >= end_minute {
            return Err(format!("hours {text:?}: the end must be after the start"));
        }
        Ok(MonitoringHours {
            days,
            start_minute,
            end_minute,
            term_time,
        })
    }

    /// Whether `(weekday, minute)` (Monday 0, minutes after midnight) is
    /// inside the hours.
    pub fn contains(&self, weekday: u8, minute: u16) -> bool {
        self.days
            .get(usize::from(weekday))
            .copied()
            .unwrap_or(false)
            && minute >= self.start_minute
            && minute < self.end_minute
    }
}

impl std::fmt::Display for MonitoringHours {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let days: Vec<&str> = DAY_NAMES
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(d, _)| *d)
            .collect();
        write!(
            f,
            "{} {:02}:{:02}-{:02}:{:02}",
            days.join(","),
            self.start_minute / 60,
            self.start_minute % 60,
            self.end_minute / 60,
            self.end_minute % 60
        )?;
        if self.term_time {
            write!(f, ", term time")?;
        }
        Ok(())
    }
}

/// One term: its first and last days (inclusive), as days since
/// 1970-01-01 in the school's calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Term {
    pub first: i32,
    pub last: i32,
}

/// Days since 1970-01-01 of a calendar date.
fn day_number(date: jiff::civil::Date) -> i32 {
    let epoch = jiff::civil::date(1970, 1, 1);
    date.since((jiff::Unit::Day, epoch))
        .map(|s| s.get_days())
        .unwrap_or(0)
}

fn date_of(day: i32) -> jiff::civil::Date {
    jiff::civil::date(1970, 1, 1)
        .checked_add(jiff::Span::new().days(i64::from(day)))
        .unwrap_or(jiff::civil::date(1970, 1, 1))
}

impl Term {
    /// Reads `2026-09-03..2026-12-18` (or `2026-09-03 to 2026-12-18`).
    ///
    /// # Errors
    /// What does not read, with an example.
    pub fn parse(text: &str) -> Result<Term, String> {
        let bad = |why: &str| {
            format!(
                "term {text:?} does not read ({why}): write its first and last days, such as 2026-09-03..2026-12-18"
            )
        };
        let t = text.trim();
        let (a, b) = t
            .split_once("..")
            .or_else(|| t.split_once(" to "))
            .ok_or_else(|| bad("no \"..\" between the days"))?;
        let day = |d: &str| -> Result<i32, String> {
            d.trim()
                .parse::<jiff::civil::Date>()
                .map(day_number)
                .map_err(|_| bad(&format!("{:?} is not a date", d.trim())))
        };
        let (first, last) = (day(a)?, day(b)?);
        if last < first {
            return Err(bad("the last day is before the first"));
        }
        Ok(Term { first, last })
    }

    pub fn contains(&self, day: i32) -> bool {
        (self.first..=self.last).contains(&day)
    }
}

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", date_of(self.first), date_of(self.last))
    }
}

/// A moment as the layers read it, in the school's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Monday 0.
    pub weekday: u8,
    /// Minutes after midnight.
    pub minute: u16,
    /// Days since 1970-01-01 (see [`Term`]).
    pub day: i32,
}

/// `at` in `zone`, as [`GroupLayers::effective`] takes it.
pub fn moment(at: crate::UnixMillis, zone: &jiff::tz::TimeZone) -> Moment {
    let z = jiff::Timestamp::from_millisecond(at.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(zone.clone());
    Moment {
        weekday: u8::try_from(z.weekday().to_monday_zero_offset()).unwrap_or(0),
        minute: u16::try_from(i32::from(z.hour()) * 60 + i32::from(z.minute())).unwrap_or(0),
        day: day_number(z.date()),
    }
}

/// What is captured outside a group's monitoring hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutsideHours {
    /// Nothing at all.
    #[default]
    Nothing,
    /// Only hits of severity 5 (immediate risk to life, sexual
    /// exploitation of a child).
    GravestOnly,
}

/// What one group's layer changes; `None` or empty leaves it as the
/// layers below have it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overrides {
    pub min_severity: Option<u8>,
    /// Categories switched on (`true`) or off.
    pub categories: Vec<(String, bool)>,
    /// Severity moved up or down for a category's hits.
    pub severity_shift: Vec<(String, i8)>,
    /// Sources switched on or off.
    pub sources: Vec<(Source, bool)>,
    pub screenshots: Option<bool>,
    /// Sites whose pages are not read, on top of the school's.
    pub page_reading_excluded: Vec<String>,
    /// When the group is monitored; `None`: always.
    pub hours: Option<MonitoringHours>,
    /// What applies outside `hours`.
    pub outside_hours: OutsideHours,
}

/// One group's layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    pub group: String,
    pub overrides: Overrides,
}

/// Every layer, and the groups of each account a laptop may see, as the
/// console sends them to one laptop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLayers {
    /// Raised at every change.
    pub version: u64,
    pub layers: Vec<Layer>,
    /// Each account's groups of kind role, year and accounts.
    pub accounts: Vec<(String, Vec<String>)>,
    /// The groups (kind devices) of the laptop these were sent to.
    pub device_groups: Vec<String>,
    /// The school's terms, for hours that hold in term time only.
    #[serde(default)]
    pub terms: Vec<Term>,
    /// Year groups' own AUPs.
    #[serde(default)]
    pub aups: Vec<GroupAup>,
}

/// A year group's own Acceptable Use Policy: its pupils are shown it in
/// place of the pupils' (an age-appropriate text for the youngest, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAup {
    /// `year:NAME`.
    pub group: String,
    pub version: u32,
    pub markdown: String,
}

/// What applies to one user on one laptop at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Effective {
    /// The groups the user (and laptop) are in, least specific first.
    pub groups: Vec<String>,
    /// Those of them whose layers applied, in the order they did.
    pub layered: Vec<String>,
    pub min_severity: u8,
    /// Categories the school or a layer switched off.
    pub disabled_categories: Vec<String>,
    /// Categories a layer switched back on.
    pub enabled_categories: Vec<String>,
    pub severity_shift: Vec<(String, i8)>,
    pub sources: SourceSwitches,
    pub screenshots: bool,
    pub page_reading_excluded: Vec<String>,
    /// Whether the user is monitored now at all.
    pub monitoring: bool,
    /// Outside the hours with only the gravest kept: hits below 5 are
    /// dropped.
    pub gravest_only: bool,
    /// The hours that decided `monitoring`, if a layer set any.
    pub hours: Option<String>,
}

impl Effective {
    /// Whether a hit of `category` at `severity` (before any shift) is
    /// captured; and at what severity.
    pub fn keeps(&self, category: &str, severity: u8) -> Option<u8> {
        if !self.monitoring || self.disabled_categories.iter().any(|c| c == category) {
            return None;
        }
        let shift = self
            .severity_shift
            .iter()
            .find(|(c, _)| c == category)
            .map_or(0, |(_, s)| *s);
        let severity = (i16::from(severity) + i16::from(shift)).clamp(1, 5) as u8;
        if severity < self.min_severity || (self.gravest_only && severity < 5) {
            return None;
        }
        Some(severity)
    }

    /// Whether a source is switched on.
    pub fn wants(&self, source: Source) -> bool {
        let s = &self.sources;
        match source {
            Source::Typed => s.typed,
            Source::WindowTitle => s.window_title,
            Source::Browser => s.browser,
            Source::Clipboard => s.clipboard,
            Source::ScreenText => s.screen_text,
            Source::Feed | Source::Concern => true,
        }
    }
}

impl GroupLayers {
    /// The groups `account` is in on this laptop, least specific first.
    pub fn groups_of(&self, account: &str) -> Vec<String> {
        let mut groups: Vec<String> = self
            .accounts
            .iter()
            .find(|(a, _)| a == account)
            .map(|(_, g)| g.clone())
            .unwrap_or_default();
        groups.extend(self.device_groups.iter().cloned());
        groups.sort_by_key(|g| GroupKind::of(g).ok());
        groups.dedup();
        groups
    }

    /// The year group's own AUP `account` is shown, if its year group has
    /// one; staff are shown the staff AUP whatever their year group.
    pub fn aup_of(&self, account: &str) -> Option<&GroupAup> {
        let groups = self.groups_of(account);
        if groups.iter().any(|g| g == "role:staff") {
            return None;
        }
        groups
            .iter()
            .filter(|g| g.starts_with("year:"))
            .find_map(|g| self.aups.iter().find(|a| &a.group == g))
    }

    /// Whether `day` is in term: in one of the terms, or any day when no
    /// terms are set.
    pub fn in_term(&self, day: i32) -> bool {
        self.terms.is_empty() || self.terms.iter().any(|t| t.contains(day))
    }

    /// What applies to `account` on this laptop at `at` (see [`moment`]).
    pub fn effective(&self, policy: &Policy, account: &str, at: Moment) -> Effective {
        let groups = self.groups_of(account);
        let mut e = Effective {
            groups: groups.clone(),
            layered: Vec::new(),
            min_severity: policy.min_severity,
            disabled_categories: policy.disabled_categories.clone(),
            enabled_categories: Vec::new(),
            severity_shift: Vec::new(),
            sources: policy.sources,
            screenshots: policy.screenshots,
            page_reading_excluded: policy.page_reading_excluded.clone(),
            monitoring: true,
            gravest_only: false,
            hours: None,
        };
        for g in &groups {
            let Some(layer) = self.layers.iter().find(|l| &l.group == g) else {
                continue;
            };
            e.layered.push(g.clone());
            let o = &layer.overrides;
            if let Some(m) = o.min_severity {
                e.min_severity = m;
            }
            for (c, on) in &o.categories {
                e.disabled_categories.retain(|d| d != c);
                e.enabled_categories.retain(|d| d != c);
                if *on {
                    e.enabled_categories.push(c.clone());
                } else {
                    e.disabled_categories.push(c.clone());
                }
            }
            for (c, s) in &o.severity_shift {
                e.severity_shift.retain(|(d, _)| d != c);
                e.severity_shift.push((c.clone(), *s));
            }
            for (source, on) in &o.sources {
                set_source(&mut e.sources, *source, *on);
            }
            if let Some(s) = o.screenshots {
                e.screenshots = s;
            }
            e.page_reading_excluded
                .extend(o.page_reading_excluded.iter().cloned());
            if let Some(h) = &o.hours {
                let inside =
                    h.contains(at.weekday, at.minute) && (!h.term_time || self.in_term(at.day));
                e.hours = Some(h.to_string());
                e.monitoring = inside || o.outside_hours == OutsideHours::GravestOnly;
                e.gravest_only = !inside && o.outside_hours == OutsideHours::GravestOnly;
            }
        }
        e
    }

    /// Ties: two layers of one rank that both apply to some account (or
    /// laptop) in `members` and set one thing differently. Each is said
    /// in a sentence; none means the layers can be saved.
    ///
    /// `members` lists, for each group of kind accounts or devices, the
    /// accounts or laptops in it (role and year groups cannot overlap:
    /// an account has one of each).
    pub fn ties(&self, members: &[(String, Vec<String>)]) -> Vec<String> {
        let mut out = Vec::new();
        let of = |g: &str| {
            members
                .iter()
                .find(|(n, _)| n == g)
                .map(|(_, m)| m.as_slice())
                .unwrap_or_default()
        };
        for (i, a) in self.layers.iter().enumerate() {
            for b in &self.layers[i + 1..] {
                let (ka, kb) = (GroupKind::of(&a.group), GroupKind::of(&b.group));
                let (Ok(ka), Ok(kb)) = (ka, kb) else { continue };
                if ka != kb || matches!(ka, GroupKind::Role | GroupKind::Year) {
                    continue;
                }
                let Some(shared) = of(&a.group).iter().find(|m| of(&b.group).contains(m)) else {
                    continue;
                };
                for what in clashes(&a.overrides, &b.overrides) {
                    out.push(format!(
                        "{} and {} both set {what} differently, and {shared:?} is in both: give one of them its own setting, or take {shared:?} out of one",
                        a.group, b.group
                    ));
                }
            }
        }
        out
    }
}

fn set_source(s: &mut SourceSwitches, source: Source, on: bool) {
    match source {
        Source::Typed => s.typed = on,
        Source::WindowTitle => s.window_title = on,
        Source::Browser => s.browser = on,
        Source::Clipboard => s.clipboard = on,
        Source::ScreenText => s.screen_text = on,
        Source::Feed | Source::Concern => {}
    }
}

/// What two layers both set, differently.
fn clashes(a: &Overrides, b: &Overrides) -> Vec<String> {
    let mut out = Vec::new();
    if matches!((a.min_severity, b.min_severity), (Some(x), Some(y)) if x != y) {
        out.push("the minimum severity".to_owned());
    }
    for (c, on) in &a.categories {
        if b.categories.iter().any(|(d, o)| d == c && o != on) {
            out.push(format!("category {c}"));
        }
    }
    for (c, s) in &a.severity_shift {
        if b.severity_shift.iter().any(|(d, t)| d == c && t != s) {
            out.push(format!("the severity of {c}"));
        }
    }
    for (src, on) in &a.sources {
        if b.sources.iter().any(|(d, o)| d == src && o != on) {
            out.push(format!("source {src:?}"));
        }
    }
    if matches!((a.screenshots, b.screenshots), (Some(x), Some(y)) if x != y) {
        out.push("screenshots".to_owned());
    }
    if a.hours.is_some()
        && b.hours.is_some()
        && (a.hours != b.hours || a.outside_hours != b.outside_hours)
    {
        out.push("monitoring hours".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers() -> GroupLayers {
        GroupLayers {
            version: 1,
            layers: vec![
                Layer {
                    group: "year:Year 7".into(),
                    overrides: Overrides {
                        categories: vec![("gambling".into(), false)],
                        hours: Some(MonitoringHours::parse("Mon-Fri 08:00-16:00").unwrap()),
                        outside_hours: OutsideHours::GravestOnly,
                        ..Overrides::default()
                    },
                },
                Layer {
                    group: "role:pupil".into(),
                    overrides: Overrides {
                        min_severity: Some(2),
                        categories: vec![("gambling".into(), true)],
                        ..Overrides::default()
                    },
                },
                Layer {
                    group: "devices:library".into(),
                    overrides: Overrides {
                        min_severity: Some(4),
                        screenshots: Some(false),
                        ..Overrides::default()
                    },
                },
            ],
            accounts: vec![
                (
                    "amy".into(),
                    vec!["role:pupil".into(), "year:Year 7".into()],
                ),
                (
                    "ben".into(),
                    vec!["role:pupil".into(), "year:Year 12".into()],
                ),
            ],
            device_groups: Vec::new(),
            terms: Vec::new(),
            aups: Vec::new(),
        }
    }

    #[test]
    fn a_year_groups_own_aup_is_its_pupils_and_never_staffs() {
        let mut l = layers();
        assert!(l.aup_of("amy").is_none(), "no year AUP yet");
        l.aups = vec![GroupAup {
            group: "year:Year 7".into(),
            version: 2,
            markdown: "# Year 7".into(),
        }];
        assert_eq!(l.aup_of("amy").map(|a| a.version), Some(2));
        assert!(l.aup_of("ben").is_none(), "Year 12 has none");
        assert!(l.aup_of("zed").is_none(), "unknown to the register");
        l.accounts.push((
            "mr.t".into(),
            vec!["role:staff".into(), "year:Year 7".into()],
        ));
        assert!(l.aup_of("mr.t").is_none(), "staff see the staff AUP");
    }

    /// A Tuesday or other weekday in a term of 2026 (day 20_700 is
    /// 2026-09-04), at `minute`.
    fn at(weekday: u8, minute: u16) -> Moment {
        Moment {
            weekday,
            minute,
            day: 20_700,
        }
    }

    #[test]
    fn term_time_hours_hold_in_the_terms_only_and_always_when_none_are_set() {
        let policy = Policy::baseline();
        let mut l = layers();
        l.layers[0].overrides.hours =
            Some(MonitoringHours::parse("Mon-Fri 08:00-16:00, term time").unwrap());
        let autumn = Term::parse("2026-09-03..2026-12-18").unwrap();
        assert_eq!(autumn.to_string(), "2026-09-03..2026-12-18");
        assert_eq!(Term::parse(" 2026-09-03 to 2026-12-18 ").unwrap(), autumn);
        // No terms set: every day is term time.
        let christmas = Moment {
            weekday: 1,
            minute: 600,
            day: autumn.last + 5,
        };
        assert!(!l.effective(&policy, "amy", christmas).gravest_only);
        l.terms = vec![autumn];
        let in_term = l.effective(&policy, "amy", at(1, 600));
        assert!(in_term.monitoring && !in_term.gravest_only);
        assert_eq!(
            in_term.hours.as_deref(),
            Some("mon,tue,wed,thu,fri 08:00-16:00, term time")
        );
        // A Tuesday morning in the holidays is outside the hours.
        let holiday = l.effective(&policy, "amy", christmas);
        assert!(holiday.monitoring && holiday.gravest_only, "{holiday:?}");
        assert_eq!(holiday.keeps("self-harm", 4), None);
        // Hours that do not say term time hold in the holidays too.
        l.layers[0].overrides.hours = Some(MonitoringHours::parse("Mon-Fri 08:00-16:00").unwrap());
        assert!(!l.effective(&policy, "amy", christmas).gravest_only);
        for bad in [
            "2026-09-03",
            "2026-12-18..2026-09-03",
            "autumn..spring",
            "2026-02-30..2026-03-01",
        ] {
            let e = Term::parse(bad).unwrap_err();
            assert!(e.contains("2026-09-03..2026-12-18"), "{e}");
        }
        // The moment of a real time: 2026-12-08 is a Tuesday.
        let m = moment(
            crate::UnixMillis(
                "2026-12-08T19:30:00Z"
                    .parse::<jiff::Timestamp>()
                    .unwrap()
                    .as_millisecond(),
            ),
            &jiff::tz::TimeZone::UTC,
        );
        assert_eq!((m.weekday, m.minute), (1, 19 * 60 + 30));
        assert!(autumn.contains(m.day));
        assert_eq!(Term::parse("2026-12-08..2026-12-08").unwrap().first, m.day);
    }

    #[test]
    fn the_most_specific_layer_wins_and_hours_decide_monitoring() {
        let policy = Policy::baseline();
        let l = layers();
        // Tuesday 10:00: amy's year switches gambling off over her role's on.
        let amy = l.effective(&policy, "amy", at(1, 600));
        assert_eq!(amy.groups, vec!["role:pupil", "year:Year 7"]);
        assert_eq!(amy.layered, amy.groups);
        assert_eq!(amy.min_severity, 2);
        assert!(amy.disabled_categories.contains(&"gambling".to_owned()));
        assert_eq!(amy.keeps("gambling", 5), None);
        assert_eq!(amy.keeps("self-harm", 2), Some(2));
        let ben = l.effective(&policy, "ben", at(1, 600));
        assert_eq!(ben.keeps("gambling", 3), Some(3));
        // Tuesday 20:00: amy's year keeps only the gravest; ben is watched.
        let evening = l.effective(&policy, "amy", at(1, 1200));
        assert!(evening.monitoring && evening.gravest_only);
        assert_eq!(evening.keeps("self-harm", 4), None);
        assert_eq!(evening.keeps("self-harm", 5), Some(5));
        // Someone the register does not know gets the school's policy.
        let stranger = l.effective(&policy, "zed", at(1, 600));
        assert!(stranger.groups.is_empty());
        assert_eq!(stranger.min_severity, policy.min_severity);
        // On a library laptop its device layer comes last.
        let mut library = l.clone();
        library.device_groups = vec!["devices:library".into()];
        let on_it = library.effective(&policy, "amy", at(1, 600));
        assert_eq!(on_it.min_severity, 4);
        assert!(!on_it.screenshots);
        assert_eq!(on_it.groups.last().unwrap(), "devices:library");
    }

    #[test]
    fn hours_read_and_say_what_is_wrong() {
        let h = MonitoringHours::parse("Mon-Fri 08:00-16:00").unwrap();
        assert!(h.contains(0, 480) && h.contains(4, 959));
        assert!(!h.contains(4, 960) && !h.contains(5, 600));
        assert_eq!(h.to_string(), "mon,tue,wed,thu,fri 08:00-16:00");
        assert_eq!(MonitoringHours::parse(&h.to_string()).unwrap(), h);
        let w = MonitoringHours::parse("Sat,sun 10:00-12:30").unwrap();
        assert!(w.contains(6, 700) && !w.contains(0, 700));
        let t = MonitoringHours::parse("Mon-Fri 08:00-16:00, Term Time").unwrap();
        assert!(t.term_time && !h.term_time);
        assert_eq!(MonitoringHours::parse(&t.to_string()).unwrap(), t);
        assert_eq!(
            MonitoringHours::parse("Mon-Fri 08:00-16:00 term time").unwrap(),
            t
        );
        for bad in [
            "",
            "term time",
            ", term time",
            "Mon-Fri",
            "Fri-Mon 08:00-16:00",
            "Mon 16:00-08:00",
            "Mon 25:00-26:00",
            "Xyz 08:00-09:00",
        ] {
            assert!(MonitoringHours::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tie_is_named_and_a_group_needs_a_kind() {
        let mut l = layers();
        l.layers.push(Layer {
            group: "devices:lab".into(),
            overrides: Overrides {
                min_severity: Some(3),
                ..Overrides::default()
            },
        });
        let members = vec![
            ("devices:library".to_owned(), vec!["d1".to_owned()]),
            ("devices:lab".to_owned(), vec!["d1".to_owned()]),
        ];
        let ties = l.ties(&members);
        assert_eq!(ties.len(), 1, "{ties:?}");
        assert!(ties[0].contains("minimum severity") && ties[0].contains("d1"));
        assert!(
            l.ties(&members[..1]).is_empty(),
            "no laptop in both: no tie"
        );
        assert!(GroupKind::of("Year 9").is_err());
        assert!(GroupKind::of("role:governor").is_err());
        assert_eq!(GroupKind::of("year:Year 9"), Ok(GroupKind::Year));
    }
}
