//! The durable spool: every record the agent makes waits here until the
//! console acks it.
//!
//! SQLite in WAL mode with `synchronous=FULL`: a record is on disk before
//! [`Spool::push`] returns, so it survives `kill -9` and a power cut. Records
//! leave only through [`Spool::remove`], called with the ids the console
//! acked (or rejected for good).
//!
//! **The cap** (default 500 MB of record and image bytes). When a new record
//! would go over it:
//! 1. the oldest screenshots are dropped first; their captures stay, saying
//!    the image was dropped at the cap;
//! 2. when no screenshot is left, the oldest records that are not captures
//!    (site-visit batches, …) go;
//! 3. only then the oldest captures.
//!
//! **Each user's share.** At every step what goes is the oldest of the user
//! who holds the most bytes of the spool (records of the laptop itself,
//! such as its own tamper events, count as the user ""). A pupil who makes
//! captures by the thousand (pasting risky text in a loop) fills and
//! empties only their own share: another user's screenshot goes only once
//! the flooder holds no more than that user does.
//!
//! Every drop is counted (persisted with the spool) and the count goes to
//! the console in each heartbeat.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use protocol::{AgentMessage, RecordId, Screenshot};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// The default cap: 500 MB.
pub const DEFAULT_CAP_BYTES: u64 = 500 * 1000 * 1000;

/// What a capture's screenshot says when the cap took it.
pub const DROPPED_AT_CAP: &str = "the screenshot was dropped on the laptop: the spool reached its size cap while the console could not be reached";

/// How the last [`Spool::push`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PushOutcome {
    /// False if a record with this id was already in the spool.
    pub inserted: bool,
    /// Screenshots dropped to make room.
    pub images_dropped: u64,
    /// Records dropped to make room.
    pub records_dropped: u64,
}

/// Depth and drop counts, for heartbeats and `agent status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    pub records: u64,
    pub bytes: u64,
    pub images_dropped: u64,
    pub records_dropped: u64,
}

/// The spool.
#[derive(Debug)]
pub struct Spool {
    inner: Mutex<Inner>,
    cap: u64,
    path: PathBuf,
}

/// The connection and the bytes it holds, kept together under one lock so
/// the cap is checked without summing the table at every push.
#[derive(Debug)]
struct Inner {
    conn: Connection,
    used: u64,
}

/// Why a spool file could not be opened.
enum OpenError {
    /// The file is not a sound SQLite database: move it aside.
    Damaged(String),
    /// Anything else (permissions, a full disk, a lock): leave it alone.
    Other(anyhow::Error),
}

impl From<rusqlite::Error> for OpenError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                OpenError::Damaged(e.to_string())
            }
            _ => OpenError::Other(e.into()),
        }
    }
}

impl Spool {
    /// Opens (or creates) the spool at `path`. A file that is not a sound
    /// SQLite database (corrupt, or failing the integrity check) is moved
    /// aside, kept for inspection, and a new one started; the second value
    /// then says so, for a tamper event. Any other failure leaves the file
    /// as it is.
    ///
    /// # Errors
    /// If the file cannot be opened or created (permissions, disk).
    pub fn open(path: &Path, cap: u64) -> anyhow::Result<(Spool, Option<String>)> {
        match Self::open_checked(path, cap) {
            Ok(spool) => Ok((spool, None)),
            Err(OpenError::Other(e)) => {
                Err(e.context(format!("cannot open the spool {}", path.display())))
            }
            Err(OpenError::Damaged(e)) => {
                let aside =
                    path.with_extension(format!("damaged-{}", protocol::UnixMillis::now().0));
                std::fs::rename(path, &aside).with_context(|| {
                    format!(
                        "the spool {} is damaged ({e:#}) and cannot be moved aside",
                        path.display()
                    )
                })?;
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.as_os_str().to_owned();
                    side.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(side));
                }
                let detail = format!(
                    "the spool {} was damaged ({e:#}); it was moved to {} and a new one started",
                    path.display(),
                    aside.display()
                );
                tracing::error!("{detail}");
                match Self::open_checked(path, cap) {
                    Ok(spool) => Ok((spool, Some(detail))),
                    Err(OpenError::Other(e)) => Err(e),
                    Err(OpenError::Damaged(e)) => Err(anyhow::anyhow!(
                        "a new spool at {} is damaged at once: {e}",
                        path.display()
                    )),
                }
            }
        }
    }

    fn open_checked(path: &Path, cap: u64) -> Result<Spool, OpenError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // auto_vacuum must be chosen before the first table exists.
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if mode != "wal" {
            return Err(OpenError::Other(anyhow::anyhow!(
                "the spool cannot use WAL mode (got {mode})"
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS records (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 id TEXT NOT NULL UNIQUE,
                 is_capture INTEGER NOT NULL,
                 body BLOB NOT NULL,
                 image BLOB,
                 image_note TEXT,
                 bytes INTEGER NOT NULL,
                 user TEXT NOT NULL DEFAULT ''
             ) STRICT;
             CREATE TABLE IF NOT EXISTS counters (
                 name TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             ) STRICT;",
        )?;
        // A spool written before users had shares: its records are the
        // laptop's ("") until they leave.
        let has_user: bool = conn
            .prepare("SELECT 1 FROM pragma_table_info('records') WHERE name = 'user'")?
            .exists([])?;
        if !has_user {
            conn.execute_batch("ALTER TABLE records ADD COLUMN user TEXT NOT NULL DEFAULT ''")?;
        }
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(OpenError::Damaged(format!(
                "integrity check failed: {check}"
            )));
        }
        let used: i64 = conn.query_row("SELECT COALESCE(SUM(bytes), 0) FROM records", [], |r| {
            r.get(0)
        })?;
        Ok(Spool {
            inner: Mutex::new(Inner {
                conn,
                used: used as u64,
            }),
            cap,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a record durably. A record whose id is already here is left
    /// as it is (the session helper may hand one over twice).
    ///
    /// # Errors
    /// A message without a record id, or a disk error.
    pub fn push(&self, message: &AgentMessage) -> anyhow::Result<PushOutcome> {
        let id = message
            .record_id()
            .with_context(|| format!("a {} is not a spooled record", message.kind_name()))?;
        let (body, image, note) = split_image(message)?;
        let bytes = (body.len() + image.as_ref().map_or(0, Vec::len)) as u64;
        let mut inner = self.lock();
        let Inner { conn, used } = &mut *inner;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM records WHERE id = ?1",
                [id.to_string()],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if exists {
            return Ok(PushOutcome::default());
        }
        let mut outcome = PushOutcome {
            inserted: true,
            ..PushOutcome::default()
        };
        // The bytes held if this push commits; `*used` moves only on commit.
        let mut used_after = *used;
        let user = user_of(message);
        // Whose share things go from first: the user holding the most bytes,
        // counting the new record.
        const BIGGEST: &str = "(SELECT user FROM (
                 SELECT user, SUM(bytes) + CASE WHEN user = ?1 THEN ?2 ELSE 0 END AS held
                 FROM records GROUP BY user
             ) ORDER BY held DESC, user LIMIT 1)";
        // 1. the oldest screenshots.
        while used_after + bytes > self.cap {
            let oldest: Option<(i64, i64)> = tx
                .query_row(
                    &format!(
                        "SELECT seq, length(image) FROM records WHERE image IS NOT NULL
                         ORDER BY user = {BIGGEST} DESC, seq LIMIT 1"
                    ),
                    params![user, bytes as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((seq, len)) = oldest else { break };
            tx.execute(
                "UPDATE records SET image = NULL, image_note = ?2, bytes = bytes - ?3 WHERE seq = ?1",
                params![seq, DROPPED_AT_CAP, len],
            )?;
            used_after -= len as u64;
            outcome.images_dropped += 1;
        }
        // 2. and 3. the oldest records, captures last.
        while used_after + bytes > self.cap {
            let oldest: Option<(i64, i64)> = tx
                .query_row(
                    &format!(
                        "SELECT seq, bytes FROM records
                         ORDER BY user = {BIGGEST} DESC, is_capture, seq LIMIT 1"
                    ),
                    params![user, bytes as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((seq, len)) = oldest else { break };
            tx.execute("DELETE FROM records WHERE seq = ?1", [seq])?;
            used_after -= len as u64;
            outcome.records_dropped += 1;
        }
        // A record bigger than the whole cap keeps its text, not its image.
        let (image, note, bytes) = if used_after + bytes > self.cap && image.is_some() {
            outcome.images_dropped += 1;
            (None, Some(DROPPED_AT_CAP.to_owned()), body.len() as u64)
        } else {
            (image, note, bytes)
        };
        tx.execute(
            "INSERT INTO records (id, is_capture, body, image, image_note, bytes, user)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id.to_string(),
                matches!(message, AgentMessage::Capture(_)),
                body,
                image,
                note,
                bytes as i64,
                user
            ],
        )?;
        for (name, n) in [
            ("images_dropped", outcome.images_dropped),
            ("records_dropped", outcome.records_dropped),
        ] {
            if n > 0 {
                tx.execute(
                    "INSERT INTO counters (name, value) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET value = value + ?2",
                    params![name, n as i64],
                )?;
            }
        }
        tx.commit().context("cannot commit a record to the spool")?;
        *used = used_after + bytes;
        Ok(outcome)
    }

    /// Up to `limit` records after position `after` (0 for the start), in
    /// the order they were made, with their positions.
    ///
    /// # Errors
    /// A disk error. A record that no longer decodes is removed and logged.
    pub fn after(&self, after: i64, limit: usize) -> anyhow::Result<Vec<(i64, AgentMessage)>> {
        let mut inner = self.lock();
        let Inner { conn, used } = &mut *inner;
        let mut stmt = conn.prepare_cached(
            "SELECT seq, id, body, image, image_note FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![after, limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        drop(stmt);
        let mut out = Vec::with_capacity(rows.len());
        for (seq, id, body, image, note) in rows {
            match join_image(&body, image, note) {
                Ok(m) => out.push((seq, m)),
                Err(e) => {
                    tracing::error!("spooled record {id} does not decode ({e}); removing it");
                    let gone: i64 = conn.query_row(
                        "DELETE FROM records WHERE seq = ?1 RETURNING bytes",
                        [seq],
                        |r| r.get(0),
                    )?;
                    *used = used.saturating_sub(gone as u64);
                }
            }
        }
        Ok(out)
    }

    /// Removes acked (or rejected) records; returns how many were here.
    ///
    /// # Errors
    /// A disk error.
    pub fn remove(&self, ids: &[RecordId]) -> anyhow::Result<usize> {
        let mut inner = self.lock();
        let Inner { conn, used } = &mut *inner;
        let tx = conn.transaction()?;
        let mut n = 0;
        let mut freed = 0u64;
        {
            let mut stmt =
                tx.prepare_cached("DELETE FROM records WHERE id = ?1 RETURNING bytes")?;
            for id in ids {
                if let Some(bytes) = stmt
                    .query_row([id.to_string()], |r| r.get::<_, i64>(0))
                    .optional()?
                {
                    n += 1;
                    freed += bytes as u64;
                }
            }
        }
        tx.commit()?;
        *used = used.saturating_sub(freed);
        // Give pages back a few at a time so the file shrinks after an outage.
        let _ = conn.execute_batch("PRAGMA incremental_vacuum(256);");
        Ok(n)
    }

    /// Depth and drop counts.
    ///
    /// # Errors
    /// A disk error.
    pub fn stats(&self) -> anyhow::Result<SpoolStats> {
        stats_of(&self.lock().conn)
    }

    /// Depth and drop counts of the spool at `path`, read without writing
    /// (for `agent status` while the service runs). No file: empty.
    ///
    /// # Errors
    /// A file that is not a spool.
    pub fn stats_read_only(path: &Path) -> anyhow::Result<SpoolStats> {
        if !path.exists() {
            return Ok(SpoolStats::default());
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| {
                format!(
                    "cannot open {} (the agent's spool is readable by root only)",
                    path.display()
                )
            })?;
        stats_of(&conn)
    }
}

fn stats_of(conn: &Connection) -> anyhow::Result<SpoolStats> {
    let (records, bytes): (i64, i64) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM records",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let counter = |name: &str| -> anyhow::Result<u64> {
        Ok(conn
            .query_row("SELECT value FROM counters WHERE name = ?1", [name], |r| {
                r.get::<_, i64>(0)
            })
            .optional()?
            .unwrap_or(0) as u64)
    };
    Ok(SpoolStats {
        records: records as u64,
        bytes: bytes as u64,
        images_dropped: counter("images_dropped")?,
        records_dropped: counter("records_dropped")?,
    })
}

/// Splits a capture's or concern's PNG from the rest, so the cap can drop
/// the image and keep the text.
type Split = (Vec<u8>, Option<Vec<u8>>, Option<String>);

/// Whose share of the spool a record counts against: its user, or ""
/// for the laptop's own records.
fn user_of(message: &AgentMessage) -> &str {
    match message {
        AgentMessage::Capture(c) => &c.user,
        AgentMessage::Concern(c) => &c.user,
        AgentMessage::AupDecision(a) => &a.user,
        AgentMessage::GroupAupDecision(g) => &g.decision.user,
        AgentMessage::TamperEvent(t) => t.user.as_deref().unwrap_or(""),
        AgentMessage::SiteVisits(v) => v.visits.first().map_or("", |v| v.user.as_str()),
        AgentMessage::Hello(_)
        | AgentMessage::Heartbeat(_)
        | AgentMessage::Health(_)
        | AgentMessage::HealthV7(_) => "",
    }
}

fn split_image(message: &AgentMessage) -> anyhow::Result<Split> {
    let mut message = message.clone();
    let shot = match &mut message {
        AgentMessage::Capture(c) => Some(&mut c.screenshot),
        AgentMessage::Concern(c) => Some(&mut c.screenshot),
        _ => None,
    };
    let (image, note) = match shot {
        Some(shot) => match std::mem::replace(shot, Screenshot::Missing(String::new())) {
            Screenshot::Png(png) => (Some(png), None),
            Screenshot::Missing(why) => (None, Some(why)),
        },
        None => (None, None),
    };
    let body = postcard::to_stdvec(&message).context("cannot encode a record for the spool")?;
    Ok((body, image, note))
}

fn join_image(
    body: &[u8],
    image: Option<Vec<u8>>,
    note: Option<String>,
) -> Result<AgentMessage, postcard::Error> {
    let mut message: AgentMessage = postcard::from_bytes(body)?;
    let shot = match &mut message {
        AgentMessage::Capture(c) => Some(&mut c.screenshot),
        AgentMessage::Concern(c) => Some(&mut c.screenshot),
        _ => None,
    };
    if let Some(shot) = shot {
        *shot = match image {
            Some(png) => Screenshot::Png(png),
            None => Screenshot::Missing(note.unwrap_or_default()),
        };
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Capture, SiteVisits, Source, UnixMillis};

    fn capture(image: Option<usize>) -> AgentMessage {
        AgentMessage::Capture(Capture {
            id: uuid::Uuid::now_v7(),
            time: UnixMillis::now(),
            user: "pupil".into(),
            source: Source::Typed,
            app: "XTerm".into(),
            window_title: "xterm".into(),
            url: None,
            term: "kill myself".into(),
            category: "self-harm".into(),
            severity: 5,
            context: "i want to kill myself".into(),
            context_match: (10, 21),
            screenshot: match image {
                Some(n) => Screenshot::Png(vec![7; n]),
                None => Screenshot::Missing("no display".into()),
            },
        })
    }

    fn visits() -> AgentMessage {
        AgentMessage::SiteVisits(SiteVisits {
            id: uuid::Uuid::now_v7(),
            // Bigger than a text-only capture, so dropping it makes room for one.
            visits: vec![protocol::SiteVisit {
                user: "pupil".into(),
                browser: "Chromium".into(),
                url: format!("https://example.org/{}", "a".repeat(400)),
                domain: "example.org".into(),
                title: "a page".into(),
                start: UnixMillis(1),
                end: UnixMillis(2),
                active_seconds: 1,
                visits: 1,
            }],
        })
    }

    fn ids(spool: &Spool) -> Vec<RecordId> {
        spool
            .after(0, 1000)
            .unwrap()
            .into_iter()
            .map(|(_, m)| m.record_id().unwrap())
            .collect()
    }

    #[test]
    fn records_come_back_whole_in_order_and_leave_on_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, damaged) =
            Spool::open(&tmp.path().join("spool.db"), DEFAULT_CAP_BYTES).unwrap();
        assert!(damaged.is_none());
        let a = capture(Some(1000));
        let b = capture(None);
        let c = visits();
        for m in [&a, &b, &c] {
            assert!(spool.push(m).unwrap().inserted);
        }
        assert!(
            !spool.push(&a).unwrap().inserted,
            "the same id twice is stored once"
        );
        let got: Vec<AgentMessage> = spool
            .after(0, 10)
            .unwrap()
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(got, vec![a.clone(), b.clone(), c.clone()]);
        let first = spool.after(0, 1).unwrap()[0].0;
        assert_eq!(spool.after(first, 10).unwrap().len(), 2);
        assert_eq!(
            spool
                .remove(&[a.record_id().unwrap(), uuid::Uuid::now_v7()])
                .unwrap(),
            1
        );
        assert_eq!(
            ids(&spool),
            vec![b.record_id().unwrap(), c.record_id().unwrap()]
        );
        let used = spool.lock().used;
        assert_eq!(
            used,
            spool.stats().unwrap().bytes,
            "the running count agrees"
        );
        drop(spool);
        let (spool, _) = Spool::open(&tmp.path().join("spool.db"), DEFAULT_CAP_BYTES).unwrap();
        assert_eq!(
            spool.stats().unwrap().records,
            2,
            "records survive reopening"
        );
    }

    fn capture_of(user: &str, image: usize) -> AgentMessage {
        let mut m = capture(Some(image));
        if let AgentMessage::Capture(c) = &mut m {
            c.user = user.into();
        }
        m
    }

    fn has_image(spool: &Spool, id: RecordId) -> bool {
        spool.after(0, 1000).unwrap().into_iter().any(|(_, m)| {
            matches!(&m, AgentMessage::Capture(c) if c.id == id && matches!(c.screenshot, Screenshot::Png(_)))
        })
    }

    #[test]
    fn one_user_flooding_the_spool_evicts_only_their_own_screenshots() {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(&tmp.path().join("spool.db"), 20_000).unwrap();
        // Another pupil's genuine capture, first (the oldest).
        let genuine = capture_of("victim", 3000);
        spool.push(&genuine).unwrap();
        // The flooder's captures, far more than the cap.
        let mut flood = Vec::new();
        for _ in 0..40 {
            let m = capture_of("flooder", 3000);
            spool.push(&m).unwrap();
            flood.push(m.record_id().unwrap());
        }
        assert!(
            has_image(&spool, genuine.record_id().unwrap()),
            "the other user's screenshot was evicted by the flood"
        );
        assert!(!has_image(&spool, flood[0]), "the flooder's oldest went");
        assert!(has_image(&spool, flood[39]), "the flooder's newest stays");
        let stats = spool.stats().unwrap();
        assert!(stats.bytes <= 20_000, "{stats:?}");
        assert_eq!(stats.records, 41, "no record was dropped, only images");
        // Once the flooder holds no more than the other user, shares even out.
        let (spool, _) = Spool::open(&tmp.path().join("spool2.db"), 10_000).unwrap();
        let a = capture_of("a", 4000);
        let b = capture_of("b", 4000);
        spool.push(&a).unwrap();
        spool.push(&b).unwrap();
        let a2 = capture_of("a", 4000);
        spool.push(&a2).unwrap();
        // "a" would hold 8,000 of 12,000: its oldest goes, not "b"'s.
        assert!(!has_image(&spool, a.record_id().unwrap()));
        assert!(has_image(&spool, b.record_id().unwrap()));
        assert!(has_image(&spool, a2.record_id().unwrap()));
    }

    #[test]
    fn a_spool_from_before_shares_opens_and_counts_as_the_laptops() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spool.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE records (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     id TEXT NOT NULL UNIQUE,
                     is_capture INTEGER NOT NULL,
                     body BLOB NOT NULL,
                     image BLOB,
                     image_note TEXT,
                     bytes INTEGER NOT NULL
                 ) STRICT;",
            )
            .unwrap();
        }
        let (spool, damaged) = Spool::open(&path, DEFAULT_CAP_BYTES).unwrap();
        assert!(damaged.is_none());
        assert!(spool.push(&capture_of("pupil", 10)).unwrap().inserted);
        assert_eq!(spool.stats().unwrap().records, 1);
    }

    #[test]
    fn at_the_cap_old_screenshots_go_first_then_other_records_then_captures() {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(&tmp.path().join("spool.db"), 10_000).unwrap();
        let first = capture(Some(4000));
        let second = capture(Some(4000));
        spool.push(&first).unwrap();
        spool.push(&second).unwrap();
        let v = visits();
        spool.push(&v).unwrap();
        // A third image does not fit: the oldest screenshot goes, its text stays.
        let third = capture(Some(4000));
        let out = spool.push(&third).unwrap();
        assert_eq!((out.images_dropped, out.records_dropped), (1, 0));
        let got = spool.after(0, 10).unwrap();
        assert_eq!(got.len(), 4);
        match &got[0].1 {
            AgentMessage::Capture(c) => {
                assert_eq!(c.screenshot, Screenshot::Missing(DROPPED_AT_CAP.into()));
                assert_eq!(c.term, "kill myself");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&got[1].1, AgentMessage::Capture(c) if matches!(c.screenshot, Screenshot::Png(_)))
        );
        // Text-only captures until even the text does not fit: every image
        // goes, then the site visits, then the oldest capture.
        let mut pushed = 0;
        let mut records_dropped = 0;
        while records_dropped == 0 {
            records_dropped += spool.push(&capture(None)).unwrap().records_dropped;
            pushed += 1;
            assert!(pushed < 1000);
        }
        let left = ids(&spool);
        assert!(
            !left.contains(&v.record_id().unwrap()),
            "site visits go before captures"
        );
        assert!(
            left.contains(&first.record_id().unwrap()),
            "captures go last"
        );
        let stats = spool.stats().unwrap();
        assert!(stats.bytes <= 10_000, "{stats:?}");
        assert_eq!(
            spool.lock().used,
            stats.bytes,
            "the running count agrees with the table"
        );
        assert_eq!(stats.images_dropped, 3);
        assert_eq!(stats.records_dropped, 1);
        // An image bigger than the whole cap: the capture is kept without it.
        let huge = capture(Some(20_000));
        let out = spool.push(&huge).unwrap();
        assert!(out.inserted && out.images_dropped == 1);
        let all = spool.after(0, 1000).unwrap();
        let kept = all
            .iter()
            .find(|(_, m)| m.record_id() == huge.record_id())
            .unwrap();
        assert!(
            matches!(&kept.1, AgentMessage::Capture(c) if c.screenshot == Screenshot::Missing(DROPPED_AT_CAP.into()))
        );
    }

    #[test]
    fn a_damaged_file_is_moved_aside_and_a_new_spool_started() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spool.db");
        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let (spool, damaged) = Spool::open(&path, DEFAULT_CAP_BYTES).unwrap();
        let detail = damaged.expect("the damage is reported");
        assert!(detail.contains("moved to"), "{detail}");
        assert!(spool.push(&capture(None)).unwrap().inserted);
        let aside = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains("damaged")
            })
            .count();
        assert_eq!(aside, 1);
    }

    #[test]
    fn a_spool_that_cannot_be_opened_for_another_reason_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("spool.db");
        std::fs::create_dir(&path).unwrap();
        let err = Spool::open(&path, DEFAULT_CAP_BYTES).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot open the spool"),
            "{err:#}"
        );
        assert!(path.is_dir(), "not moved aside");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_message_without_a_record_id_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (spool, _) = Spool::open(&tmp.path().join("spool.db"), DEFAULT_CAP_BYTES).unwrap();
        let hb = AgentMessage::Hello(protocol::Hello {
            protocol_version: 1,
            agent_version: "x".into(),
            device_id: uuid::Uuid::now_v7(),
            policy_version: 0,
        });
        assert!(
            spool
                .push(&hb)
                .unwrap_err()
                .to_string()
                .contains("not a spooled record")
        );
    }
}
