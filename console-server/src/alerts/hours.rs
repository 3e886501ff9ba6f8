//! School hours (`[school_hours]` in `console.toml`), in the school's zone:
//! an alert rule with `when = "school_hours"` holds what comes in outside
//! them and sends it as one digest when they next begin.
//!
//! ```toml
//! [school_hours]
//! days = ["mon", "tue", "wed", "thu", "fri"]
//! start = "08:00"
//! end = "16:30"
//! ```

use jiff::Zoned;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use protocol::UnixMillis;
use serde::{Deserialize, Serialize};

/// When staff are in school.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchoolHours {
    /// `mon` … `sun`.
    pub days: Vec<String>,
    /// `HH:MM` (or `HH:MM:SS`), the school's zone.
    pub start: String,
    /// `HH:MM` (or `HH:MM:SS`), after `start`.
    pub end: String,
}

impl Default for SchoolHours {
    fn default() -> Self {
        SchoolHours {
            days: ["mon", "tue", "wed", "thu", "fri"]
                .map(str::to_owned)
                .to_vec(),
            start: "08:00".into(),
            end: "16:30".into(),
        }
    }
}

/// [`SchoolHours`] read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    days: [bool; 7],
    start: Time,
    end: Time,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn index(d: Weekday) -> usize {
    usize::try_from(d.to_monday_zero_offset()).unwrap_or(0)
}

impl SchoolHours {
    /// Reads the days and times.
    ///
    /// # Errors
    /// A sentence naming the setting that is wrong.
    pub fn parse(&self) -> Result<Hours, String> {
        let mut days = [false; 7];
        for d in &self.days {
            let i = DAYS
                .iter()
                .position(|x| x.eq_ignore_ascii_case(d.trim()))
                .ok_or_else(|| {
                    format!("school_hours.days has {d:?}; use mon, tue, wed, thu, fri, sat, sun")
                })?;
            days[i] = true;
        }
        if !days.contains(&true) {
            return Err("school_hours.days is empty; name at least one day".into());
        }
        let time = |name: &str, s: &str| {
            s.trim().parse::<Time>().map_err(|_| {
                format!("school_hours.{name} is {s:?}; write a time of day such as \"08:30\"")
            })
        };
        let (start, end) = (time("start", &self.start)?, time("end", &self.end)?);
        if end <= start {
            return Err(format!(
                "school_hours.end ({}) must be after school_hours.start ({})",
                self.end, self.start
            ));
        }
        Ok(Hours { days, start, end })
    }
}

impl Default for Hours {
    fn default() -> Self {
        SchoolHours::default()
            .parse()
            .expect("the default school hours are valid")
    }
}

impl Hours {
    /// `mon, tue, wed, thu, fri 08:00–16:30`, for the Settings page.
    pub fn describe(&self) -> String {
        let days: Vec<&str> = DAYS
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(d, _)| *d)
            .collect();
        format!(
            "{} {}–{}",
            days.join(", "),
            self.start.strftime("%H:%M"),
            self.end.strftime("%H:%M")
        )
    }

    /// Whether `t` falls in school hours.
    pub fn contains(&self, t: UnixMillis, tz: &TimeZone) -> bool {
        let z = zoned(t, tz);
        self.days[index(z.weekday())] && z.time() >= self.start && z.time() < self.end
    }

    /// `None` inside school hours; outside them, when they next begin.
    pub fn next_opening(&self, t: UnixMillis, tz: &TimeZone) -> Option<UnixMillis> {
        if self.contains(t, tz) {
            return None;
        }
        let z = zoned(t, tz);
        let mut day = z.date();
        // Today's opening if it is still ahead, else the next school day's
        // (a week ahead at most).
        for _ in 0..8 {
            if self.days[index(day.weekday())] {
                let opening = day.to_datetime(self.start).to_zoned(tz.clone()).ok()?;
                if opening.timestamp() > z.timestamp() {
                    return Some(UnixMillis(opening.timestamp().as_millisecond()));
                }
            }
            day = day.tomorrow().ok()?;
        }
        None
    }
}

fn zoned(t: UnixMillis, tz: &TimeZone) -> Zoned {
    jiff::Timestamp::from_millisecond(t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(tz.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str, tz: &TimeZone) -> UnixMillis {
        let z = s
            .parse::<jiff::civil::DateTime>()
            .unwrap()
            .to_zoned(tz.clone())
            .unwrap();
        UnixMillis(z.timestamp().as_millisecond())
    }

    #[test]
    fn hours_hold_the_evening_and_weekend_until_the_next_school_morning() {
        let tz = TimeZone::get("Europe/London").unwrap();
        let h = SchoolHours::default().parse().unwrap();
        // 2026-12-07 is a Monday.
        assert!(h.contains(at("2026-12-07T08:00", &tz), &tz));
        assert!(h.contains(at("2026-12-07T16:29", &tz), &tz));
        assert!(!h.contains(at("2026-12-07T16:30", &tz), &tz));
        assert_eq!(h.next_opening(at("2026-12-07T12:00", &tz), &tz), None);
        assert_eq!(
            h.next_opening(at("2026-12-07T06:10", &tz), &tz),
            Some(at("2026-12-07T08:00", &tz)),
            "early morning: today's opening"
        );
        assert_eq!(
            h.next_opening(at("2026-12-07T22:00", &tz), &tz),
            Some(at("2026-12-08T08:00", &tz))
        );
        assert_eq!(
            h.next_opening(at("2026-12-11T17:00", &tz), &tz),
            Some(at("2026-12-14T08:00", &tz)),
            "Friday evening: Monday"
        );
        assert_eq!(
            h.next_opening(at("2026-12-13T10:00", &tz), &tz),
            Some(at("2026-12-14T08:00", &tz)),
            "Sunday: Monday"
        );
        // The clocks change on Sunday 2027-03-28: Monday's 08:00 is BST.
        let monday = h.next_opening(at("2027-03-27T12:00", &tz), &tz).unwrap();
        assert_eq!(monday, at("2027-03-29T08:00", &tz));
        assert_eq!(
            jiff::Timestamp::from_millisecond(monday.0)
                .unwrap()
                .to_string(),
            "2027-03-29T07:00:00Z"
        );
    }

    #[test]
    fn bad_hours_say_what_is_wrong() {
        let bad = |f: fn(&mut SchoolHours), needle: &str| {
            let mut s = SchoolHours::default();
            f(&mut s);
            let e = s.parse().unwrap_err();
            assert!(e.contains(needle), "{e}");
        };
        bad(|s| s.days = vec!["monday".into()], "\"monday\"");
        bad(|s| s.days.clear(), "at least one day");
        bad(|s| s.start = "8am".into(), "school_hours.start");
        bad(|s| s.end = "07:00".into(), "must be after");
        let s = SchoolHours {
            start: "08:30:15".into(),
            days: vec!["Sat".into()],
            ..SchoolHours::default()
        };
        assert!(s.parse().is_ok());
    }
}
