//! What the live feed announces once it is committed (a new capture or a
//! new tamper event, by id), and how it reaches every console instance.
//!
//! On SQLite there is one console: the ingest writer and the presence
//! check announce on the process's own channel after their commit. On
//! PostgreSQL several instances share the database, and staff signed in to
//! any of them must see what a laptop sent to another: the announcement is
//! a `NOTIFY` on the channel [`CHANNEL`], made inside the transaction that
//! stores the record (so it is sent exactly when the record is committed,
//! and never for a rolled-back one), and each instance `LISTEN`s on a
//! connection of its own ([`listen`]) and passes what it hears to its own
//! channel: its live inboxes and its alert sender.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;
use uuid::Uuid;

use super::sql::{Db, SqlError, params};

/// The PostgreSQL channel live announcements go on.
pub const CHANNEL: &str = "console_live";

/// A committed record the live feed announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Live {
    Capture(Uuid),
    Tamper(Uuid),
}

impl Live {
    /// The notification's payload: `capture:ID` or `tamper:ID`.
    pub fn payload(self) -> String {
        match self {
            Live::Capture(id) => format!("capture:{id}"),
            Live::Tamper(id) => format!("tamper:{id}"),
        }
    }

    /// A payload read back; `None` for one this console does not know.
    pub fn parse(payload: &str) -> Option<Live> {
        let (kind, id) = payload.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "capture" => Some(Live::Capture(id)),
            "tamper" => Some(Live::Tamper(id)),
            _ => None,
        }
    }
}

/// Announces `live` to every instance when the caller's transaction
/// commits: a `NOTIFY` on PostgreSQL; nothing on SQLite, whose one console
/// announces on its own channel after the commit.
///
/// # Errors
/// The database's.
pub(super) fn notify(db: &mut Db<'_, '_>, live: Live) -> Result<(), SqlError> {
    if db.dialect() == super::sql::Dialect::Postgres {
        db.execute(
            "SELECT pg_notify(?1, ?2)",
            &params![CHANNEL, live.payload()],
        )?;
    }
    Ok(())
}

/// How a store's live announcements reach the consoles.
pub trait LiveStore {
    /// Whether the store announces new records itself, to every instance
    /// (PostgreSQL); if not, the one console announces them on its own
    /// channel after the commit.
    fn announces_live(&self) -> bool;
    /// Starts passing the store's announcements to `live`; `None` when the
    /// store makes none.
    fn listen_live(&self, live: broadcast::Sender<Live>) -> Option<Listener>;
}

/// A listener passing the database's announcements to a console's channel;
/// stopped when dropped.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Listens on [`CHANNEL`] over a connection of its own (made again after
/// a failure, with the failure logged) and sends what it hears on `live`.
pub fn listen(
    connector: super::pg_connector::Connector,
    shown: String,
    live: broadcast::Sender<Live>,
) -> Listener {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("live-listener".into())
        .spawn(move || {
            let mut wait = Duration::from_millis(200);
            while !stopping.load(Ordering::Relaxed) {
                match listen_once(&connector, &live, &stopping) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::error!(
                            "the live feed from the database at {shown} stopped ({e}); listening again in {} ms",
                            wait.as_millis()
                        );
                        std::thread::sleep(wait);
                        wait = (wait * 2).min(Duration::from_secs(10));
                    }
                }
            }
        })
        .expect("the live listener thread starts");
    Listener {
        stop,
        thread: Some(thread),
    }
}

fn listen_once(
    connector: &super::pg_connector::Connector,
    live: &broadcast::Sender<Live>,
    stop: &AtomicBool,
) -> Result<(), postgres::Error> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut client = connector.connect()?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    while !stop.load(Ordering::Relaxed) {
        let mut heard = client.notifications();
        let mut iter = heard.timeout_iter(Duration::from_millis(500));
        // Ends after half a second of quiet (to look at `stop`); a broken
        // connection is an error.
        while let Some(n) = iter.next()? {
            if let Some(event) = Live::parse(n.payload()) {
                // Nobody listening (no inbox open) is fine.
                let _ = live.send(event);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_reads_back_as_what_was_announced() {
        let id = Uuid::now_v7();
        for live in [Live::Capture(id), Live::Tamper(id)] {
            assert_eq!(Live::parse(&live.payload()), Some(live));
        }
        assert_eq!(Live::parse("capture:not-an-id"), None);
        assert_eq!(Live::parse(&format!("other:{id}")), None);
    }
}
