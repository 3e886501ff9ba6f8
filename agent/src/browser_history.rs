//! Pages opened in the browsers on this laptop, read from their history
//! databases: Chromium, Chrome, Edge and Brave (`History`) and Firefox
//! (`places.sqlite`), in every profile of the user.
//!
//! The browser is never locked or disturbed: a database without a
//! write-ahead log is opened `immutable` (no locks taken, nothing written);
//! one with a live WAL (Firefox) is copied, with its WAL, into a private
//! scratch directory and read there. A file is read again only when its
//! size or time changed. Only visits after the agent started are reported.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use protocol::UnixMillis;
use rusqlite::{Connection, OpenFlags};

/// Microseconds between 1601-01-01 (Chromium's epoch) and 1970-01-01.
const CHROMIUM_EPOCH_OFFSET_US: i64 = 11_644_473_600_000_000;
/// Most visits read from one database in one poll.
const MAX_PER_POLL: i64 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chromium,
    Firefox,
}

/// A page opened in a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageVisit {
    pub browser: String,
    pub url: String,
    pub title: String,
    pub time: UnixMillis,
}

#[derive(Debug)]
struct HistoryFile {
    browser: &'static str,
    kind: Kind,
    path: PathBuf,
    /// The last visit seen, in the browser's own time unit.
    watermark: i64,
    stamp: Option<(SystemTime, u64, u64)>,
}

/// Follows every browser profile under a home directory.
#[derive(Debug)]
pub struct BrowserHistory {
    home: PathBuf,
    since: UnixMillis,
    scratch: PathBuf,
    files: Vec<HistoryFile>,
}

/// Chromium-family profile roots, relative to the home directory.
const CHROMIUM_ROOTS: &[(&str, &str)] = &[
    (".config/chromium", "Chromium"),
    ("snap/chromium/common/chromium", "Chromium"),
    (".config/google-chrome", "Chrome"),
    (".config/google-chrome-beta", "Chrome"),
    (".config/microsoft-edge", "Edge"),
    (".config/BraveSoftware/Brave-Browser", "Brave"),
];

/// Firefox profile roots, relative to the home directory.
const FIREFOX_ROOTS: &[&str] = &[".mozilla/firefox", "snap/firefox/common/.mozilla/firefox"];

impl BrowserHistory {
    /// Follows the browsers of the user whose home is `home`, reporting
    /// visits after `since`.
    pub fn new(home: &Path, since: UnixMillis) -> BrowserHistory {
        let scratch = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .unwrap_or_else(std::env::temp_dir)
            .join(format!("safeguard-agent-history-{}", std::process::id()));
        BrowserHistory {
            home: home.to_owned(),
            since,
            scratch,
            files: Vec::new(),
        }
    }

    /// New visits since the last poll, oldest first.
    pub fn poll(&mut self) -> Vec<PageVisit> {
        self.discover();
        let mut visits = Vec::new();
        for i in 0..self.files.len() {
            match self.read(i) {
                Ok(mut v) => visits.append(&mut v),
                Err(e) => {
                    tracing::debug!("cannot read {} yet: {e:#}", self.files[i].path.display())
                }
            }
        }
        visits.sort_by_key(|v| v.time);
        visits
    }

    fn discover(&mut self) {
        let mut found: Vec<(&'static str, Kind, PathBuf)> = Vec::new();
        for (root, browser) in CHROMIUM_ROOTS {
            for profile in subdirs(&self.home.join(root)) {
                let db = profile.join("History");
                if db.is_file() {
                    found.push((browser, Kind::Chromium, db));
                }
            }
        }
        for root in FIREFOX_ROOTS {
            for profile in subdirs(&self.home.join(root)) {
                let db = profile.join("places.sqlite");
                if db.is_file() {
                    found.push(("Firefox", Kind::Firefox, db));
                }
            }
        }
        for (browser, kind, path) in found {
            if !self.files.iter().any(|f| f.path == path) {
                let watermark = match kind {
                    Kind::Chromium => self.since.0 * 1000 + CHROMIUM_EPOCH_OFFSET_US,
                    Kind::Firefox => self.since.0 * 1000,
                };
                tracing::info!("following {browser} history at {}", path.display());
                self.files.push(HistoryFile {
                    browser,
                    kind,
                    path,
                    watermark,
                    stamp: None,
                });
            }
        }
    }

    fn read(&mut self, i: usize) -> anyhow::Result<Vec<PageVisit>> {
        let file = &self.files[i];
        let wal = side_file(&file.path, "-wal");
        let meta = fs::metadata(&file.path)?;
        let wal_meta = fs::metadata(&wal).ok();
        let stamp = (
            meta.modified()?.max(
                wal_meta
                    .as_ref()
                    .and_then(|m| m.modified().ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
            ),
            meta.len(),
            wal_meta.as_ref().map_or(0, fs::Metadata::len),
        );
        if file.stamp == Some(stamp) {
            return Ok(Vec::new());
        }
        let live_wal = stamp.2 > 0;
        let conn = if live_wal {
            self.copy_out(&file.path, &wal)?
        } else {
            let uri = format!("file:{}?immutable=1", uri_path(&file.path));
            Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?
        };
        let sql = match file.kind {
            Kind::Chromium => {
                "SELECT u.url, COALESCE(u.title, ''), v.visit_time FROM visits v JOIN urls u ON u.id = v.url
                 WHERE v.visit_time > ?1 ORDER BY v.visit_time LIMIT ?2"
            }
            Kind::Firefox => {
                "SELECT p.url, COALESCE(p.title, ''), v.visit_date FROM moz_historyvisits v
                 JOIN moz_places p ON p.id = v.place_id
                 WHERE v.visit_date > ?1 ORDER BY v.visit_date LIMIT ?2"
            }
        };
        let rows: Vec<(String, String, i64)> = conn
            .prepare(sql)?
            .query_map([file.watermark, MAX_PER_POLL], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<_, _>>()?;
        drop(conn);
        if live_wal {
            let _ = fs::remove_dir_all(&self.scratch);
        }
        let file = &mut self.files[i];
        // Read again next time if the batch was full.
        file.stamp = (rows.len() < MAX_PER_POLL as usize).then_some(stamp);
        let kind = file.kind;
        let browser = file.browser;
        if let Some(last) = rows.last() {
            file.watermark = last.2;
        }
        Ok(rows
            .into_iter()
            .map(|(url, title, t)| PageVisit {
                browser: browser.to_owned(),
                url,
                title,
                time: UnixMillis(match kind {
                    Kind::Chromium => (t - CHROMIUM_EPOCH_OFFSET_US) / 1000,
                    Kind::Firefox => t / 1000,
                }),
            })
            .collect())
    }

    /// Copies a database and its WAL into the private scratch directory
    /// and opens the copy (which SQLite may then recover freely).
    fn copy_out(&self, db: &Path, wal: &Path) -> anyhow::Result<Connection> {
        let _ = fs::remove_dir_all(&self.scratch);
        fs::DirBuilder::new().mode(0o700).create(&self.scratch)?;
        let copy = self.scratch.join("history.sqlite");
        fs::copy(db, &copy)?;
        if wal.exists() {
            fs::copy(wal, side_file(&copy, "-wal"))?;
        }
        Ok(Connection::open_with_flags(
            &copy,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?)
    }
}

impl Drop for BrowserHistory {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn side_file(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A path escaped for an SQLite `file:` URI.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' | b' ' => out.push_str(&format!("%{b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chromium_db(path: &Path) -> Connection {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let c = Connection::open(path).unwrap();
        c.execute_batch(
            "CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT, title TEXT);
             CREATE TABLE visits (id INTEGER PRIMARY KEY, url INTEGER, visit_time INTEGER);",
        )
        .unwrap();
        c
    }

    fn visit_chromium(c: &Connection, url: &str, title: &str, at: UnixMillis) {
        c.execute(
            "INSERT INTO urls (url, title) VALUES (?1, ?2)",
            [url, title],
        )
        .unwrap();
        let id = c.last_insert_rowid();
        c.execute(
            "INSERT INTO visits (url, visit_time) VALUES (?1, ?2)",
            [id, at.0 * 1000 + CHROMIUM_EPOCH_OFFSET_US],
        )
        .unwrap();
    }

    #[test]
    fn reads_new_chromium_and_firefox_visits_once() {
        let home = tempfile::tempdir().unwrap();
        let start = UnixMillis::now();
        let chrome = chromium_db(&home.path().join(".config/google-chrome/Default/History"));
        visit_chromium(
            &chrome,
            "https://old.example/",
            "before the agent",
            UnixMillis(start.0 - 60_000),
        );
        visit_chromium(
            &chrome,
            "https://www.google.com/search?q=x",
            "x - Google Search",
            UnixMillis(start.0 + 5),
        );

        let ff_path = home
            .path()
            .join(".mozilla/firefox/abc.default-release/places.sqlite");
        fs::create_dir_all(ff_path.parent().unwrap()).unwrap();
        let ff = Connection::open(&ff_path).unwrap();
        let _: String = ff
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        ff.execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT, title TEXT);
             CREATE TABLE moz_historyvisits (id INTEGER PRIMARY KEY, place_id INTEGER, visit_date INTEGER);",
        )
        .unwrap();
        ff.execute(
            "INSERT INTO moz_places (url, title) VALUES ('https://fire.example/', NULL)",
            [],
        )
        .unwrap();
        ff.execute(
            "INSERT INTO moz_historyvisits (place_id, visit_date) VALUES (1, ?1)",
            [(start.0 + 10) * 1000],
        )
        .unwrap();

        let mut history = BrowserHistory::new(home.path(), start);
        let got = history.poll();
        let urls: Vec<(&str, &str)> = got
            .iter()
            .map(|v| (v.browser.as_str(), v.url.as_str()))
            .collect();
        assert_eq!(
            urls,
            [
                ("Chrome", "https://www.google.com/search?q=x"),
                ("Firefox", "https://fire.example/")
            ],
            "only visits after the start, from both, oldest first (the Firefox one is still in its WAL)"
        );
        assert_eq!(got[0].time, UnixMillis(start.0 + 5));
        assert!(history.poll().is_empty(), "nothing new, nothing reported");
        // The browser keeps writing while we read: our reading left it unlocked.
        visit_chromium(
            &chrome,
            "https://later.example/",
            "later",
            UnixMillis(start.0 + 20),
        );
        let got = history.poll();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].title, "later");
        drop(ff);
    }

    #[test]
    fn damaged_or_foreign_files_are_skipped_without_harm() {
        let home = tempfile::tempdir().unwrap();
        let p = home.path().join(".config/chromium/Default/History");
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"not a database at all").unwrap();
        let mut history = BrowserHistory::new(home.path(), UnixMillis::now());
        assert!(history.poll().is_empty());
        assert_eq!(fs::read(&p).unwrap(), b"not a database at all");
    }
}
