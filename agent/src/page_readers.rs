//! Which browsers have a page reader (the extension, through
//! `agent native-host`) connected, and when a browser in front has had
//! none long enough to tell the school.
//!
//! A browser is known by its process: the one that owns its windows
//! (`_NET_WM_PID`) and that started the native host (the service reads the
//! host's parent from the kernel). A second browser process (another
//! profile, `--user-data-dir`, a portable copy) is a browser of its own:
//! watched only if its own extension connects. Pure logic over times given
//! by the caller.

use std::collections::HashMap;

/// How long a browser may be seen in front with no page reader before it
/// is reported. The extension connects within a second or two of a
/// browser's start; with the helper looking every 2 s, a browser is
/// reported within 52 s, inside the minute the school is promised.
pub const UNWATCHED_AFTER_MS: u64 = 50_000;

/// The browsers whose pages the extension reads, by window class (lower
/// case, as a prefix: `Chromium`, `chromium-browser`, `Google-chrome`,
/// `Microsoft-edge`, `Brave-browser`, `firefox`, `firefox-esr`).
const BROWSER_CLASSES: [&str; 6] = [
    "chromium",
    "google-chrome",
    "microsoft-edge",
    "brave-browser",
    "firefox",
    "navigator",
];

/// Whether a window class is a browser the extension supports.
pub fn is_supported_browser(app: &str) -> bool {
    let app = app.to_ascii_lowercase();
    BROWSER_CLASSES.iter().any(|b| app.starts_with(b))
}

#[derive(Debug)]
struct Reader {
    browser_pid: Option<u32>,
    browser: String,
}

/// A browser in front that no reader watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unwatched {
    pub pid: Option<u32>,
    pub app: String,
    pub title: String,
    /// Since when it has been seen unwatched.
    pub since_ms: u64,
}

/// The page readers of one session, and the browser reported.
#[derive(Debug, Default)]
pub struct PageReaders {
    readers: HashMap<u64, Reader>,
    unwatched: Option<Unwatched>,
    reported: bool,
}

impl PageReaders {
    /// A reader connected (`connected`) or went away.
    pub fn changed(
        &mut self,
        reader: u64,
        browser_pid: Option<u32>,
        browser: String,
        connected: bool,
    ) {
        if connected {
            self.readers.insert(
                reader,
                Reader {
                    browser_pid,
                    browser,
                },
            );
        } else {
            self.readers.remove(&reader);
        }
    }

    /// The browser process a reader was started by.
    pub fn browser_of(&self, reader: u64) -> Option<(Option<u32>, &str)> {
        self.readers
            .get(&reader)
            .map(|r| (r.browser_pid, r.browser.as_str()))
    }

    /// Whether the browser process `pid` has a reader connected.
    fn watched(&self, pid: Option<u32>) -> bool {
        self.readers
            .values()
            .any(|r| pid.is_none() || r.browser_pid == pid)
    }

    /// Looks at the window in front; returns the browser to report, once
    /// per spell, when a supported browser process has had no reader for
    /// [`UNWATCHED_AFTER_MS`] since it was first seen in front without one
    /// (a reader connecting ends the spell). A window that does not say
    /// its process counts as watched if any reader is connected.
    pub fn look(
        &mut self,
        app: &str,
        title: &str,
        pid: Option<u32>,
        now_ms: u64,
    ) -> Option<Unwatched> {
        if !is_supported_browser(app) {
            return None;
        }
        if self.watched(pid) {
            if self.unwatched.as_ref().is_some_and(|u| u.pid == pid) {
                self.unwatched = None;
                self.reported = false;
            }
            return None;
        }
        match &mut self.unwatched {
            Some(u) if u.pid == pid => {
                u.title = title.to_owned();
            }
            _ => {
                self.unwatched = Some(Unwatched {
                    pid,
                    app: app.to_owned(),
                    title: title.to_owned(),
                    since_ms: now_ms,
                });
                self.reported = false;
            }
        }
        let u = self.unwatched.as_ref()?;
        if !self.reported && now_ms.saturating_sub(u.since_ms) >= UNWATCHED_AFTER_MS {
            self.reported = true;
            return Some(u.clone());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_known_by_class() {
        for b in [
            "Chromium",
            "chromium-browser",
            "Google-chrome",
            "firefox-esr",
            "Firefox",
            "Microsoft-edge",
            "Brave-browser",
        ] {
            assert!(is_supported_browser(b), "{b}");
        }
        for a in ["XTerm", "Zenity", "", "Safeguard-agent"] {
            assert!(!is_supported_browser(a), "{a}");
        }
    }

    #[test]
    fn a_browser_with_no_reader_is_reported_once_after_a_minute() {
        let mut r = PageReaders::default();
        // Not a browser: never.
        assert_eq!(r.look("XTerm", "t", Some(1), 0), None);
        assert_eq!(r.look("XTerm", "t", Some(1), 120_000), None);
        // A watched browser: never.
        r.changed(1, Some(100), "chromium".into(), true);
        assert_eq!(r.look("Chromium", "Page", Some(100), 0), None);
        assert_eq!(r.look("Chromium", "Page", Some(100), 200_000), None);
        // Another browser process (a fresh profile) is not watched by the
        // first one's reader.
        assert_eq!(r.look("Chromium", "New Tab", Some(200), 1_000), None);
        assert_eq!(r.look("Chromium", "New Tab", Some(200), 50_000), None);
        let got = r
            .look("Chromium", "Other", Some(200), 51_000)
            .expect("reported");
        assert_eq!(
            (got.pid, got.since_ms, got.title.as_str()),
            (Some(200), 1_000, "Other")
        );
        assert_eq!(
            r.look("Chromium", "Other", Some(200), 90_000),
            None,
            "once a spell"
        );
        // Its reader connects: the spell ends; when it goes, a new one
        // begins.
        r.changed(2, Some(200), "chromium".into(), true);
        assert_eq!(r.look("Chromium", "Other", Some(200), 100_000), None);
        r.changed(2, Some(200), "chromium".into(), false);
        assert_eq!(
            r.look("Chromium", "Other", Some(200), 110_000),
            None,
            "spell starts"
        );
        assert!(r.look("Chromium", "Other", Some(200), 160_000).is_some());
        assert_eq!(r.browser_of(1), Some((Some(100), "chromium")));
    }

    #[test]
    fn a_removed_extension_is_reported() {
        let mut r = PageReaders::default();
        r.changed(7, Some(100), "chromium".into(), true);
        assert_eq!(r.look("Chromium", "Page", Some(100), 10_000), None);
        r.changed(7, Some(100), "chromium".into(), false);
        assert_eq!(
            r.look("Chromium", "Page", Some(100), 20_000),
            None,
            "the spell starts"
        );
        assert_eq!(r.look("Chromium", "Page", Some(100), 69_000), None);
        assert!(r.look("Chromium", "Page", Some(100), 70_000).is_some());
        // A reader that reconnects in between is no gap.
        let mut r = PageReaders::default();
        r.changed(8, Some(100), "chromium".into(), false);
        assert_eq!(r.look("Chromium", "Page", Some(100), 0), None);
        r.changed(9, Some(100), "chromium".into(), true);
        assert_eq!(r.look("Chromium", "Page", Some(100), 30_000), None);
        r.changed(9, Some(100), "chromium".into(), false);
        assert_eq!(r.look("Chromium", "Page", Some(100), 40_000), None);
        assert_eq!(
            r.look("Chromium", "Page", Some(100), 89_000),
            None,
            "counted from 40 s"
        );
    }
}
