//! Time on websites: which page a browser shows in front, for how long the
//! user was really there, and how many times each page was opened.
//!
//! Two signals meet here:
//! - page opens, from the browsers' history ([`crate::browser_history`]),
//!   which know the address and title but not how long a page was seen;
//! - the desktop's front window and idle time, which know how long but not
//!   the address: a browser's window title is the page title plus the
//!   browser's name.
//!
//! Front-window time is matched to the address by title (the newest opened
//! page of that browser with that title). Time is counted as active only
//! while a browser is in front and the user is not idle. A stretch without
//! keyboard or mouse input is counted once input comes back before the
//! idle threshold; a stretch that reaches the threshold is idle from its
//! start, so reading counts and walking away does not.
//!
//! Everything is in memory and pure (times are passed in), so it is tested
//! without a desktop. What leaves the laptop is one [`SiteVisit`] per page
//! and report period.

use std::collections::{BTreeMap, HashMap, VecDeque};

use protocol::{SiteVisit, UnixMillis};

use crate::browser_history::PageVisit;

/// Longest address kept; longer ones are cut (at a character boundary).
pub const MAX_URL: usize = 2048;
/// Longest page title kept.
pub const MAX_TITLE: usize = 512;
/// Recent page opens remembered per browser, to match titles to addresses.
const RECENT: usize = 256;
/// Time under a title with no address yet waits this long for the history
/// to catch up before it is reported without one.
const UNRESOLVED_GRACE_MS: i64 = 180_000;

/// The browsers whose windows are recognised, by `WM_CLASS` (lower case),
/// and their names as [`crate::browser_history`] reports them.
const BROWSERS: &[(&str, &str)] = &[
    ("chromium", "Chromium"),
    ("google-chrome", "Chrome"),
    ("microsoft-edge", "Edge"),
    ("brave", "Brave"),
    ("firefox", "Firefox"),
];

/// Window-title endings the browsers add after the page title.
const TITLE_SUFFIXES: &[&str] = &[
    " - Chromium",
    " - Google Chrome",
    " - Microsoft\u{200b} Edge",
    " - Microsoft Edge",
    " - Brave",
    " — Mozilla Firefox",
    " - Mozilla Firefox",
    " — Firefox",
    " - Firefox",
];

/// The browser a window belongs to, from its application class.
pub fn browser_of(app: &str) -> Option<&'static str> {
    let app = app.to_ascii_lowercase();
    BROWSERS
        .iter()
        .find(|(class, _)| app.contains(class))
        .map(|(_, name)| *name)
}

/// The page title inside a browser's window title.
pub fn page_title(window_title: &str) -> &str {
    TITLE_SUFFIXES
        .iter()
        .find_map(|s| window_title.strip_suffix(s))
        .unwrap_or(window_title)
        .trim()
}

/// While a page loads, browsers show its address (without the scheme) as
/// the title: `alpha.test/`, `www.example.com/news`.
fn loading_title_of(title: &str, url: &str) -> bool {
    let bare = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or(url);
    let bare = bare.strip_prefix("www.").unwrap_or(bare);
    let title = title.strip_prefix("www.").unwrap_or(title);
    title.len() > 3 && title.contains('.') && bare.starts_with(title)
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A page in front: (browser, page title).
type Front = (&'static str, String);

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// A known address in a browser.
    Url { browser: String, url: String },
    /// Front time under a title whose address is not known yet.
    Title { browser: String, title: String },
}

#[derive(Debug, Clone, Default)]
struct Entry {
    title: String,
    start: i64,
    end: i64,
    active_ms: i64,
    visits: u32,
    /// When time under this (unresolved) title was first counted.
    since: i64,
}

impl Entry {
    fn span(&mut self, start: i64, end: i64) {
        if self.start == 0 || start < self.start {
            self.start = start;
        }
        self.end = self.end.max(end);
    }
}

/// Front time not yet known to be active: it lies after the last input.
#[derive(Debug, Clone)]
struct Tentative {
    front: Front,
    start: i64,
    end: i64,
}

/// The tracker. See the module documentation.
#[derive(Debug)]
pub struct SiteActivity {
    idle_after_ms: i64,
    max_step_ms: i64,
    recent: HashMap<&'static str, VecDeque<(String, String)>>,
    ledger: BTreeMap<Key, Entry>,
    tentative: VecDeque<Tentative>,
    front: Option<Front>,
    since: i64,
}

impl SiteActivity {
    /// A stretch without input of `idle_after_ms` or more is idle. A gap
    /// between two looks longer than `max_step_ms` (the laptop slept) is
    /// cut to that.
    pub fn new(idle_after_ms: u64, max_step_ms: u64) -> SiteActivity {
        SiteActivity {
            idle_after_ms: i64::try_from(idle_after_ms).unwrap_or(i64::MAX),
            max_step_ms: i64::try_from(max_step_ms).unwrap_or(i64::MAX),
            recent: HashMap::new(),
            ledger: BTreeMap::new(),
            tentative: VecDeque::new(),
            front: None,
            since: 0,
        }
    }

    /// Whether a browser page is in front (the caller then looks again
    /// every few seconds).
    pub fn browser_in_front(&self) -> bool {
        self.front.is_some()
    }

    /// Whether time is waiting to be judged active or idle.
    pub fn undecided(&self) -> bool {
        !self.tentative.is_empty()
    }

    /// A page was opened. Non-web addresses (`file:`, `chrome:`, …) are
    /// not websites and are left out.
    pub fn opened(&mut self, v: &PageVisit) {
        if wordlists::domains::host_of(&v.url).is_none() {
            return;
        }
        let Some(browser) = BROWSERS.iter().map(|b| b.1).find(|b| *b == v.browser) else {
            return;
        };
        let url = cut(&v.url, MAX_URL);
        let title = cut(v.title.trim(), MAX_TITLE);
        let recent = self.recent.entry(browser).or_default();
        recent.push_back((title.clone(), url.clone()));
        if recent.len() > RECENT {
            recent.pop_front();
        }
        let e = self
            .ledger
            .entry(Key::Url {
                browser: browser.to_owned(),
                url,
            })
            .or_default();
        e.visits += 1;
        e.span(v.time.0, v.time.0);
        if !title.is_empty() {
            e.title = title;
        }
    }

    /// The front window changed (or its title did) at `now`; `idle_ms` is
    /// the desktop's time since the last input, if it can tell.
    pub fn front_changed(&mut self, now: i64, idle_ms: Option<u64>, app: &str, title: &str) {
        self.look(now, idle_ms);
        self.front = browser_of(app).map(|b| (b, cut(page_title(title), MAX_TITLE)));
    }

    /// Counts the time since the last look for the page in front, then
    /// settles what the idle time decides.
    pub fn look(&mut self, now: i64, idle_ms: Option<u64>) {
        if let Some(front) = &self.front {
            let start = self.since.max(now - self.max_step_ms);
            if now > start {
                self.tentative.push_back(Tentative {
                    front: front.clone(),
                    start,
                    end: now,
                });
            }
        }
        self.since = now;
        let Some(idle) = idle_ms else {
            // No idle signal: all front time counts.
            while let Some(t) = self.tentative.pop_front() {
                self.count(&t.front, t.start, t.end, now);
            }
            return;
        };
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        let last_input = now.saturating_sub(idle);
        // Time before the last input lies in a stretch that ended in time.
        while let Some(t) = self.tentative.front_mut() {
            if t.start >= last_input {
                break;
            }
            let end = t.end.min(last_input);
            let front = t.front.clone();
            let start = t.start;
            if t.end <= last_input {
                self.tentative.pop_front();
            } else {
                t.start = last_input;
            }
            self.count(&front, start, end, now);
        }
        if idle >= self.idle_after_ms {
            self.tentative.clear();
        }
    }

    fn count(&mut self, front: &Front, start: i64, end: i64, now: i64) {
        let key = self.resolve(front);
        let e = self.ledger.entry(key).or_default();
        e.active_ms += end - start;
        e.span(start, end);
        if e.since == 0 {
            e.since = now;
        }
        if e.title.is_empty() {
            e.title.clone_from(&front.1);
        }
    }

    fn resolve(&self, (browser, title): &Front) -> Key {
        let found = self.recent.get(browser).and_then(|r| {
            r.iter().rev().find(|(t, url)| {
                (!t.is_empty()
                    && (t == title
                        || title
                            .strip_prefix(t.as_str())
                            .is_some_and(|rest| rest.starts_with(" - "))))
                    || loading_title_of(title, url)
            })
        });
        match found {
            Some((_, url)) => Key::Url {
                browser: (*browser).to_owned(),
                url: url.clone(),
            },
            None => Key::Title {
                browser: (*browser).to_owned(),
                title: title.clone(),
            },
        }
    }

    /// The page a browser window shows, from its application and window
    /// title: (address, page title), if the address is known.
    pub fn page_of(&self, app: &str, window_title: &str) -> Option<(String, String)> {
        let browser = browser_of(app)?;
        let title = cut(page_title(window_title), MAX_TITLE);
        match self.resolve(&(browser, title.clone())) {
            Key::Url { url, .. } => Some((url, title)),
            Key::Title { .. } => None,
        }
    }

    /// Everything counted so far, as site visits, and forgets it. Time
    /// under a title is given its address if the history now knows it;
    /// if not, it waits for the history a while, then goes without one.
    pub fn report(&mut self, now: i64) -> Vec<SiteVisit> {
        self.report_inner(now, false)
    }

    /// Everything counted so far, time without an address too (the session
    /// is ending).
    pub fn report_all(&mut self, now: i64) -> Vec<SiteVisit> {
        self.report_inner(now, true)
    }

    fn report_inner(&mut self, now: i64, all: bool) -> Vec<SiteVisit> {
        let titles: Vec<Key> = self
            .ledger
            .keys()
            .filter(|k| matches!(k, Key::Title { .. }))
            .cloned()
            .collect();
        for key in titles {
            let Key::Title { browser, title } = &key else {
                continue;
            };
            let Some(browser) = BROWSERS.iter().map(|b| b.1).find(|b| b == browser) else {
                continue;
            };
            let resolved = self.resolve(&(browser, title.clone()));
            if matches!(resolved, Key::Url { .. })
                && let Some(entry) = self.ledger.remove(&key)
            {
                let e = self.ledger.entry(resolved).or_default();
                e.active_ms += entry.active_ms;
                e.span(entry.start, entry.end);
                if e.title.is_empty() {
                    e.title = entry.title;
                }
            }
        }
        let mut out = Vec::new();
        let mut keep = BTreeMap::new();
        for (key, e) in std::mem::take(&mut self.ledger) {
            let active_seconds = u32::try_from((e.active_ms + 500) / 1000).unwrap_or(u32::MAX);
            let (browser, url) = match &key {
                Key::Url { browser, url } => (browser.clone(), url.clone()),
                Key::Title { browser, .. } => {
                    if !all && now - e.since < UNRESOLVED_GRACE_MS {
                        keep.insert(key, e);
                        continue;
                    }
                    (browser.clone(), String::new())
                }
            };
            if active_seconds == 0 && e.visits == 0 {
                continue;
            }
            out.push(SiteVisit {
                user: String::new(),
                browser,
                domain: wordlists::domains::host_of(&url).unwrap_or_default(),
                url,
                title: e.title,
                start: UnixMillis(e.start),
                end: UnixMillis(e.end.max(e.start)),
                active_seconds,
                visits: e.visits,
            });
        }
        self.ledger = keep;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000;
    const T0: i64 = 1_800_000_000_000;

    fn opened(a: &mut SiteActivity, at: i64, url: &str, title: &str) {
        a.opened(&PageVisit {
            browser: "Chromium".into(),
            url: url.into(),
            title: title.into(),
            time: UnixMillis(at),
        });
    }

    fn by_domain(v: &[SiteVisit]) -> BTreeMap<String, (u32, u32)> {
        v.iter()
            .map(|s| (s.domain.clone(), (s.visits, s.active_seconds)))
            .collect()
    }

    #[test]
    fn names_of_browsers_and_titles() {
        assert_eq!(browser_of("Chromium"), Some("Chromium"));
        assert_eq!(browser_of("Google-chrome"), Some("Chrome"));
        assert_eq!(browser_of("firefox"), Some("Firefox"));
        assert_eq!(browser_of("XTerm"), None);
        assert_eq!(page_title("Alpha page - Chromium"), "Alpha page");
        assert_eq!(page_title("News — Mozilla Firefox"), "News");
        assert_eq!(page_title("plain"), "plain");
        assert!(loading_title_of("alpha.test/", "http://alpha.test/"));
        assert!(loading_title_of(
            "example.com/news",
            "https://www.example.com/news?x"
        ));
        assert!(!loading_title_of("News", "https://news.example/"));
    }

    #[test]
    fn active_time_follows_the_front_window_and_input() {
        let mut a = SiteActivity::new(30_000, 10_000);
        opened(&mut a, T0, "https://alpha.test/", "Alpha");
        a.front_changed(T0, Some(0), "Chromium", "Alpha - Chromium");
        // 20 s with input every 2 s.
        for i in 1..=10 {
            a.look(T0 + i * 2 * S, Some(0));
        }
        // A terminal in front for 10 s: not counted.
        a.front_changed(T0 + 20 * S, Some(0), "XTerm", "bash");
        opened(&mut a, T0 + 25 * S, "https://beta.test/x", "Beta");
        a.front_changed(T0 + 30 * S, Some(0), "Chromium", "Beta - Chromium");
        // 12 s reading with no input (under the threshold), then input.
        a.look(T0 + 36 * S, Some(6 * S as u64));
        a.look(T0 + 42 * S, Some(0));
        // Then the user walks away for 60 s: idle from the last input.
        for i in 1..=12 {
            a.look(T0 + 42 * S + i * 5 * S, Some((i * 5 * S) as u64));
        }
        let got = by_domain(&a.report(T0 + 200 * S));
        assert_eq!(got["alpha.test"], (1, 20));
        assert_eq!(got["beta.test"], (1, 12));
        assert_eq!(got.len(), 2);
        assert!(a.report(T0 + 300 * S).is_empty(), "reported once");
    }

    #[test]
    fn without_an_idle_signal_all_front_time_counts_and_sleep_is_cut() {
        let mut a = SiteActivity::new(30_000, 10_000);
        opened(&mut a, T0, "https://alpha.test/", "Alpha");
        a.front_changed(T0, None, "Chromium", "Alpha - Chromium");
        a.look(T0 + 5 * S, None);
        // The laptop slept for an hour.
        a.look(T0 + 3605 * S, None);
        let got = by_domain(&a.report(T0 + 3606 * S));
        assert_eq!(got["alpha.test"], (1, 15));
    }

    #[test]
    fn a_title_waits_for_its_address_then_goes_without() {
        let mut a = SiteActivity::new(30_000, 10_000);
        a.front_changed(T0, Some(0), "Chromium", "Late - Chromium");
        a.front_changed(T0 + 8 * S, Some(0), "XTerm", "bash");
        assert!(a.report(T0 + 10 * S).is_empty(), "waits for the history");
        opened(&mut a, T0 + 1, "https://late.test/", "Late");
        let got = a.report(T0 + 20 * S);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].domain.as_str(), got[0].active_seconds),
            ("late.test", 8)
        );

        a.front_changed(T0 + 20 * S, Some(0), "Chromium", "New Tab - Chromium");
        a.look(T0 + 24 * S, Some(0));
        assert!(a.report(T0 + 30 * S).is_empty());
        let got = a.report(T0 + 24 * S + UNRESOLVED_GRACE_MS + S);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].url, "");
        assert_eq!(got[0].title, "New Tab");
        assert_eq!(got[0].active_seconds, 4);
    }

    #[test]
    fn non_web_pages_and_huge_addresses() {
        let mut a = SiteActivity::new(30_000, 10_000);
        opened(&mut a, T0, "file:///home/pupil/x.html", "x");
        opened(&mut a, T0, "chrome://settings", "Settings");
        let long = format!("https://long.test/{}", "é".repeat(5000));
        opened(&mut a, T0, &long, &"t".repeat(5000));
        let got = a.report(T0 + S);
        assert_eq!(got.len(), 1);
        assert!(got[0].url.len() <= MAX_URL && got[0].title.len() <= MAX_TITLE);
        assert_eq!(got[0].domain, "long.test");
    }
}
