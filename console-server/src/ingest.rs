//! Ingest: records from every agent connection go through one writer
//! thread that stores them in batches (one transaction, one sync, for many
//! records) and only then tells each connection what became of its records,
//! so an Ack always follows a durable commit.
//!
//! Records are checked here before they are stored: a record that can never
//! be stored (a severity of 9, a context of a megabyte, a screenshot that is
//! not a PNG) is rejected with a reason, so the agent drops it instead of
//! resending it forever.

use std::sync::Arc;
use std::thread::JoinHandle;

use protocol::{AgentMessage, RecordId, Screenshot};
use tokio::sync::{OwnedSemaphorePermit, broadcast, mpsc};

use crate::storage_health::StorageHealth;
use crate::store::{Incoming, Store, Stored};

/// Most records stored in one transaction.
const MAX_BATCH: usize = 512;

/// What became of a record, sent back to its connection.
#[derive(Debug)]
pub enum Reply {
    /// Durably stored (now or before): ack it.
    Stored(RecordId),
    /// A heartbeat was applied; nothing to ack.
    Applied,
    /// Storage failed: do not ack; the agent will resend.
    Failed(String),
}

/// One record on its way to the store, holding its share of the memory
/// budget until it is stored.
#[derive(Debug)]
pub struct Job {
    pub item: Incoming,
    pub reply: mpsc::UnboundedSender<(Reply, Option<OwnedSemaphorePermit>)>,
    /// Bytes of the memory budget this record's frame took.
    pub budget: Option<OwnedSemaphorePermit>,
    /// A place in its connection's window of unacked records, given back
    /// when the reply has been written.
    pub window: Option<OwnedSemaphorePermit>,
}

/// The sending side, cloned into every connection.
#[derive(Debug, Clone)]
pub struct IngestHandle {
    jobs: mpsc::Sender<Job>,
}

impl IngestHandle {
    /// Queues a record; waits while the queue is full (backpressure).
    ///
    /// # Errors
    /// If the writer has stopped (the console is shutting down).
    pub async fn submit(&self, job: Job) -> Result<(), Job> {
        self.jobs.send(job).await.map_err(|e| e.0)
    }
}

pub use crate::store::live::Live;

/// Starts the writer thread. It ends when every [`IngestHandle`] is dropped
/// and the queue is drained. Every newly stored capture and tamper event is
/// sent on `live` after its commit (for live inboxes; nobody listening is
/// fine).
/// Every batch's outcome goes to `health`.
pub fn start(
    store: Arc<dyn Store>,
    queue: usize,
    live: broadcast::Sender<Live>,
    health: Arc<StorageHealth>,
) -> (IngestHandle, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Job>(queue);
    let thread = std::thread::Builder::new()
        .name("ingest-writer".into())
        .spawn(move || {
            while let Some(first) = rx.blocking_recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                write_batch(store.as_ref(), jobs, &live, &health);
            }
        })
        .expect("the ingest writer thread starts");
    (IngestHandle { jobs: tx }, thread)
}

fn write_batch(
    store: &dyn Store,
    jobs: Vec<Job>,
    live: &broadcast::Sender<Live>,
    health: &StorageHealth,
) {
    // The records move into the batch (no copy of their images); what is
    // needed to answer stays behind, in the same order.
    let (batch, answers): (Vec<Incoming>, Vec<_>) = jobs
        .into_iter()
        .map(|j| (j.item, (j.reply, j.window, j.budget)))
        .unzip();
    let result = store.store_batch(&batch);
    let ids: Vec<Option<RecordId>> = batch.iter().map(|i| i.message.record_id()).collect();
    let announce: Vec<Option<Live>> = batch
        .iter()
        .map(|i| match &i.message {
            // A pupil's concern is stored as a capture of its own.
            AgentMessage::Capture(c) => Some(Live::Capture(c.id)),
            AgentMessage::Concern(c) => Some(Live::Capture(c.id)),
            AgentMessage::TamperEvent(t) => Some(Live::Tamper(t.id)),
            _ => None,
        })
        .collect();
    // The memory budget is given back once the records are out of memory.
    drop(batch);
    match result {
        Ok(outcomes) => {
            health.stored();
            // On PostgreSQL the store announced them to every instance
            // (this one included) as it committed them.
            if !store.announces_live() {
                for (outcome, event) in outcomes.iter().zip(&announce) {
                    if let (Stored::New, Some(event)) = (outcome, event) {
                        let _ = live.send(*event);
                    }
                }
            }
            for (((reply, window, _budget), outcome), id) in
                answers.into_iter().zip(outcomes).zip(ids)
            {
                let answer = match (outcome, id) {
                    (Stored::New | Stored::Duplicate, Some(id)) => Reply::Stored(id),
                    _ => Reply::Applied,
                };
                // A closed connection no longer wants its reply; the agent
                // resends on its next connection and gets a duplicate ack.
                let _ = reply.send((answer, window));
            }
        }
        Err(e) => {
            // The first failure of a spell is logged by `health`; every one
            // would flood the log of a console whose disk is full.
            tracing::debug!("storing {} records failed: {e}", answers.len());
            health.failed(&e);
            for (reply, window, _budget) in answers {
                let _ = reply.send((Reply::Failed(e.to_string()), window));
            }
        }
    }
}

/// Longest values accepted, in bytes.
pub mod limits {
    pub const NAME: usize = 256;
    pub const TERM: usize = 512;
    pub const TITLE: usize = 2048;
    pub const URL: usize = 8192;
    pub const CONTEXT: usize = 8192;
    pub const CONCERN_TEXT: usize = 16384;
    pub const DETAIL: usize = 8192;
    pub const VISITS_PER_BATCH: usize = 10_000;
}

fn bounded(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.len() > max {
        Err(format!(
            "{what} is {} bytes; at most {max} are accepted",
            value.len()
        ))
    } else {
        Ok(())
    }
}

fn screenshot_ok(shot: &Screenshot) -> Result<(), String> {
    match shot {
        Screenshot::Png(bytes) if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") => {
            Err("the screenshot is not a PNG image".into())
        }
        Screenshot::Missing(why) => bounded("the missing-screenshot reason", why, limits::DETAIL),
        Screenshot::Png(_) => Ok(()),
    }
}

/// Checks a record from an agent before it is stored.
///
/// # Errors
/// Why the record can never be stored.
pub fn check(message: &AgentMessage) -> Result<(), String> {
    use limits::*;
    match message {
        AgentMessage::Hello(_) => Err("Hello is only valid as the first message".into()),
        AgentMessage::Capture(c) => {
            if !(1..=5).contains(&c.severity) {
                return Err(format!("severity {} is outside 1 to 5", c.severity));
            }
            if c.term.is_empty() || c.category.is_empty() {
                return Err("a capture must name its term and category".into());
            }
            bounded("user", &c.user, NAME)?;
            bounded("app", &c.app, NAME)?;
            bounded("category", &c.category, NAME)?;
            bounded("term", &c.term, TERM)?;
            bounded("window title", &c.window_title, TITLE)?;
            bounded("url", c.url.as_deref().unwrap_or(""), URL)?;
            bounded("context", &c.context, CONTEXT)?;
            let (start, end) = (c.context_match.0 as usize, c.context_match.1 as usize);
            if start > end
                || end > c.context.len()
                || !c.context.is_char_boundary(start)
                || !c.context.is_char_boundary(end)
            {
                return Err(format!(
                    "the match {start}..{end} is not a range of the {}-byte context",
                    c.context.len()
                ));
            }
            screenshot_ok(&c.screenshot)
        }
        AgentMessage::Concern(c) => {
            bounded("user", &c.user, NAME)?;
            bounded("app", &c.app, NAME)?;
            bounded("text", &c.text, CONCERN_TEXT)?;
            bounded("window title", &c.window_title, TITLE)?;
            bounded("url", c.url.as_deref().unwrap_or(""), URL)?;
            bounded("page title", c.page_title.as_deref().unwrap_or(""), TITLE)?;
            screenshot_ok(&c.screenshot)
        }
        AgentMessage::SiteVisits(batch) => {
            if batch.visits.len() > VISITS_PER_BATCH {
                return Err(format!(
                    "{} visits in one batch; at most {VISITS_PER_BATCH}",
                    batch.visits.len()
                ));
            }
            for v in &batch.visits {
                bounded("user", &v.user, NAME)?;
                bounded("browser", &v.browser, NAME)?;
                bounded("url", &v.url, URL)?;
                bounded("domain", &v.domain, NAME)?;
                bounded("title", &v.title, TITLE)?;
            }
            Ok(())
        }
        AgentMessage::AupDecision(a) => bounded("user", &a.user, NAME),
        AgentMessage::GroupAupDecision(g) => {
            bounded("user", &g.decision.user, NAME)?;
            bounded("group", &g.group, NAME)?;
            if !g.group.starts_with("year:") {
                return Err(format!(
                    "{:?} is not a year group; only year groups have AUPs of their own",
                    g.group
                ));
            }
            Ok(())
        }
        AgentMessage::TamperEvent(t) => {
            bounded("user", t.user.as_deref().unwrap_or(""), NAME)?;
            bounded("detail", &t.detail, DETAIL)
        }
        AgentMessage::Health(h) | AgentMessage::HealthV7(h) => {
            bounded("semantic layer state", &h.semantic, DETAIL)?;
            if h.sessions.len() > 64 || h.page_readers.len() > 64 {
                return Err(format!(
                    "a health report lists {} sessions and {} page readers; at most 64 of each",
                    h.sessions.len(),
                    h.page_readers.len()
                ));
            }
            for s in &h.sessions {
                bounded("user", &s.user, NAME)?;
                bounded("display", &s.display, NAME)?;
            }
            for r in &h.page_readers {
                bounded("user", &r.user, NAME)?;
                bounded("browser", &r.browser, NAME)?;
            }
            Ok(())
        }
        AgentMessage::Heartbeat(h) => {
            bounded("hostname", &h.hostname, NAME)?;
            bounded("os", &h.os, NAME)?;
            bounded("agent version", &h.agent_version, NAME)?;
            bounded("user", h.user.as_deref().unwrap_or(""), NAME)
        }
    }
}
