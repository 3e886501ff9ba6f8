//! The school's time zone and its ISO weeks (Monday to Sunday), the unit
//! of the weekly site-visit report.
//!
//! The zone is set once at start from `console.toml` (`time_zone`, an IANA
//! name such as `Europe/London`; empty means the machine's own zone).

use std::sync::OnceLock;

use jiff::Zoned;
use jiff::civil::{ISOWeekDate, Weekday};
use jiff::tz::TimeZone;
use protocol::UnixMillis;

static ZONE: OnceLock<TimeZone> = OnceLock::new();

/// Sets the school's zone; only the first call counts.
pub fn set_zone(tz: TimeZone) {
    let _ = ZONE.set(tz);
}

/// The school's zone (the machine's, until [`set_zone`]).
pub fn zone() -> TimeZone {
    ZONE.get().cloned().unwrap_or_else(TimeZone::system)
}

/// The zone named in the settings.
///
/// # Errors
/// The name is not a zone this machine's time-zone database knows.
pub fn parse_zone(name: &str) -> Result<TimeZone, String> {
    if name.trim().is_empty() {
        return Ok(TimeZone::system());
    }
    TimeZone::get(name.trim()).map_err(|e| {
        format!("time_zone {name:?} is not a known zone (use an IANA name such as \"Europe/London\"): {e}")
    })
}

/// An ISO week, `2026-W47`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Week(ISOWeekDate);

impl Week {
    /// Reads `YYYY-Www`.
    ///
    /// # Errors
    /// Anything else, said plainly.
    pub fn parse(s: &str) -> Result<Week, String> {
        let bad = || format!("week {s:?} is not YYYY-Www (for example 2026-W47)");
        let (year, w) = s.trim().split_once("-W").ok_or_else(bad)?;
        let year: i16 = year.parse().map_err(|_| bad())?;
        let w: i8 = w.parse().map_err(|_| bad())?;
        ISOWeekDate::new(year, w, Weekday::Monday)
            .map(Week)
            .map_err(|_| bad())
    }

    /// The week a moment falls in, in the school's zone.
    pub fn containing(t: UnixMillis, tz: &TimeZone) -> Week {
        let z = jiff::Timestamp::from_millisecond(t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(tz.clone());
        Week::of_date(z.date())
    }

    fn of_date(d: jiff::civil::Date) -> Week {
        let w = d.iso_week_date();
        Week(ISOWeekDate::new(w.year(), w.week(), Weekday::Monday).unwrap_or(w))
    }

    /// Its Monday.
    pub fn monday(self) -> jiff::civil::Date {
        self.0.date()
    }

    /// Monday 00:00 to the next Monday 00:00 in `tz`.
    pub fn bounds(self, tz: &TimeZone) -> (UnixMillis, UnixMillis) {
        let start = self.start_in(tz);
        let end = self.next().start_in(tz);
        (start, end)
    }

    fn start_in(self, tz: &TimeZone) -> UnixMillis {
        let ms = self
            .monday()
            .to_zoned(tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(0);
        UnixMillis(ms)
    }

    /// The week before.
    pub fn previous(self) -> Week {
        Week::of_date(self.monday().saturating_sub(jiff::Span::new().days(7)))
    }

    /// The week after.
    pub fn next(self) -> Week {
        Week::of_date(self.monday().saturating_add(jiff::Span::new().days(7)))
    }

    /// `Mon 17 Nov – Sun 23 Nov 2026`.
    pub fn span_label(self) -> String {
        let sunday = self.monday().saturating_add(jiff::Span::new().days(6));
        format!(
            "{} – {}",
            self.monday().strftime("%a %-d %b"),
            sunday.strftime("%a %-d %b %Y")
        )
    }

    /// When this week's report is due: the following Monday at 07:00.
    pub fn report_due(self, tz: &TimeZone) -> Option<Zoned> {
        self.next()
            .monday()
            .at(7, 0, 0, 0)
            .to_zoned(tz.clone())
            .ok()
    }
}

impl std::fmt::Display for Week {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-W{:02}", self.0.year(), self.0.week())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_parse_print_and_step_across_years() {
        let w = Week::parse("2026-W01").unwrap();
        assert_eq!(w.to_string(), "2026-W01");
        assert_eq!(w.monday().to_string(), "2025-12-29");
        assert_eq!(w.previous().to_string(), "2025-W52");
        assert_eq!(Week::parse("2026-W53").unwrap().to_string(), "2026-W53");
        assert_eq!(
            Week::parse("2026-W53").unwrap().next().to_string(),
            "2027-W01"
        );
        for bad in ["2026-47", "2026-W54", "2025-W53", "x-W1", "", "2026-W"] {
            assert!(Week::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_follow_the_school_zone_through_clock_changes() {
        let london = TimeZone::get("Europe/London").unwrap();
        // 2026-W13 holds the change to summer time (Sunday 29 March).
        let w = Week::parse("2026-W13").unwrap();
        let (start, end) = w.bounds(&london);
        assert_eq!(end.0 - start.0, (7 * 24 - 1) * 3_600_000, "one hour short");
        assert_eq!(Week::containing(start, &london), w);
        assert_eq!(Week::containing(UnixMillis(end.0 - 1), &london), w);
        assert_eq!(Week::containing(end, &london), w.next());
        let due = w.report_due(&london).unwrap();
        assert_eq!(due.to_string(), "2026-03-30T07:00:00+01:00[Europe/London]");
        assert!(parse_zone("Mars/Olympus").is_err());
    }
}
