//! Records a session helper has made that the service has not yet confirmed
//! spooled.
//!
//! They normally wait here for milliseconds. They wait longer while the
//! service restarts, or while it cannot write its spool (the laptop's disk
//! is full); then this is their only copy, in memory, so it is bounded:
//! - at most [`KEEP_SCREENSHOTS`] hold their screenshot; older ones keep the
//!   capture and say the image was dropped;
//! - at most [`MAX_RECORDS`] records; beyond that the oldest go, counted.
//!
//! Records the service could not spool are offered again every
//! [`RESPOOL_AFTER`] until it takes them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use protocol::{AgentMessage, RecordId, Screenshot};
use tokio::time::Instant;

/// How long to wait before offering refused records again.
pub const RESPOOL_AFTER: Duration = Duration::from_secs(10);
/// Waiting records that keep their screenshot.
pub const KEEP_SCREENSHOTS: usize = 64;
/// Waiting records kept at most.
pub const MAX_RECORDS: usize = 10_000;

/// What a capture's screenshot says when it was dropped here.
pub const SCREENSHOT_DROPPED: &str = "the screenshot was dropped on the laptop: the agent could not write its spool (the disk was full) and keeps only the newest screenshots in memory meanwhile";

/// The waiting records.
#[derive(Debug, Default)]
pub struct Pending {
    /// By id: ids are UUID v7, so the first is the oldest.
    records: BTreeMap<RecordId, AgentMessage>,
    /// The ids of those that hold a screenshot.
    with_image: BTreeSet<RecordId>,
    /// When to offer the refused records again.
    retry_at: Option<Instant>,
    /// Why the service last refused, while it refuses.
    refusing: Option<String>,
    /// Records dropped at [`MAX_RECORDS`] since the helper started.
    dropped: u64,
}

fn has_image(record: &AgentMessage) -> bool {
    match record {
        AgentMessage::Capture(c) => matches!(c.screenshot, Screenshot::Png(_)),
        AgentMessage::Concern(c) => matches!(c.screenshot, Screenshot::Png(_)),
        _ => false,
    }
}

fn screenshot_mut(record: &mut AgentMessage) -> Option<&mut Screenshot> {
    match record {
        AgentMessage::Capture(c) => Some(&mut c.screenshot),
        AgentMessage::Concern(c) => Some(&mut c.screenshot),
        _ => None,
    }
}

impl Pending {
    /// Holds a record until the service confirms it.
    pub fn insert(&mut self, record: AgentMessage) {
        let Some(id) = record.record_id() else {
            return;
        };
        if has_image(&record) {
            self.with_image.insert(id);
        } else {
            self.with_image.remove(&id);
        }
        self.records.insert(id, record);
        while self.with_image.len() > KEEP_SCREENSHOTS {
            let Some(oldest) = self.with_image.pop_first() else {
                break;
            };
            if let Some(shot) = self.records.get_mut(&oldest).and_then(screenshot_mut) {
                *shot = Screenshot::Missing(SCREENSHOT_DROPPED.into());
            }
        }
        while self.records.len() > MAX_RECORDS {
            if let Some((oldest, _)) = self.records.pop_first() {
                self.with_image.remove(&oldest);
            }
            self.dropped += 1;
            if self.dropped == 1 || self.dropped.is_power_of_two() {
                tracing::error!(
                    "{} record(s) dropped on the laptop: the agent service has not spooled the last {MAX_RECORDS}",
                    self.dropped
                );
            }
        }
    }

    /// The service spooled `id`.
    pub fn stored(&mut self, id: RecordId) {
        self.records.remove(&id);
        self.with_image.remove(&id);
        if self.records.is_empty()
            && let Some(why) = self.refusing.take()
        {
            tracing::warn!("the agent service spools records again (it could not: {why})");
        }
    }

    /// The service could not spool `id` (it stays here); it is offered
    /// again after [`RESPOOL_AFTER`].
    pub fn not_spooled(&mut self, id: RecordId, why: String) {
        if self.refusing.is_none() {
            tracing::error!(
                "the agent service cannot spool records ({why}); they are kept in memory and offered again every {} s",
                RESPOOL_AFTER.as_secs()
            );
        }
        tracing::debug!("record {id} not spooled");
        self.refusing = Some(why);
        self.retry_at
            .get_or_insert_with(|| Instant::now() + RESPOOL_AFTER);
    }

    /// When refused records are due to be offered again.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// Every waiting record, oldest first, to offer again; clears the
    /// retry time (a new refusal sets it again).
    pub fn again(&mut self) -> Vec<AgentMessage> {
        self.retry_at = None;
        self.records.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Records dropped at [`MAX_RECORDS`].
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Capture, Source, UnixMillis};

    fn capture(png: bool) -> AgentMessage {
        AgentMessage::Capture(Capture {
            id: uuid::Uuid::now_v7(),
            time: UnixMillis::now(),
            user: "amy".into(),
            source: Source::Typed,
            app: "xterm".into(),
            window_title: "t".into(),
            url: None,
            term: "kms".into(),
            category: "self-harm".into(),
            severity: 4,
            context: "kms".into(),
            context_match: (0, 3),
            screenshot: if png {
                Screenshot::Png(b"\x89PNG\r\n\x1a\nrest".to_vec())
            } else {
                Screenshot::Missing("none".into())
            },
        })
    }

    fn images(p: &Pending) -> usize {
        p.records.values().filter(|r| has_image(r)).count()
    }

    fn shot(p: &mut Pending, id: &RecordId) -> Screenshot {
        screenshot_mut(p.records.get_mut(id).unwrap())
            .unwrap()
            .clone()
    }

    #[test]
    fn only_the_newest_screenshots_are_kept() {
        let mut p = Pending::default();
        let mut ids = Vec::new();
        for _ in 0..KEEP_SCREENSHOTS + 5 {
            let c = capture(true);
            ids.push(c.record_id().unwrap());
            p.insert(c);
        }
        assert_eq!(p.len(), KEEP_SCREENSHOTS + 5);
        assert_eq!(images(&p), KEEP_SCREENSHOTS);
        // The five oldest lost theirs, and say why.
        for id in &ids[..5] {
            assert_eq!(
                shot(&mut p, id),
                Screenshot::Missing(SCREENSHOT_DROPPED.into())
            );
        }
        assert!(matches!(shot(&mut p, &ids[5]), Screenshot::Png(_)));
    }

    #[test]
    fn the_oldest_records_go_beyond_the_cap_and_are_counted() {
        let mut p = Pending::default();
        let first = capture(false);
        let first_id = first.record_id().unwrap();
        p.insert(first);
        for _ in 0..MAX_RECORDS + 2 {
            p.insert(capture(false));
        }
        assert_eq!(p.len(), MAX_RECORDS);
        assert_eq!(p.dropped(), 3);
        assert!(!p.records.contains_key(&first_id));
    }

    #[test]
    fn refused_records_are_offered_again_until_stored() {
        let mut p = Pending::default();
        let c = capture(true);
        let id = c.record_id().unwrap();
        p.insert(c.clone());
        assert!(p.retry_at().is_none(), "nothing refused, nothing to retry");
        let before = Instant::now();
        p.not_spooled(id, "database or disk is full".into());
        let at = p.retry_at().unwrap();
        assert!(at >= before + RESPOOL_AFTER && at <= Instant::now() + RESPOOL_AFTER);
        // A second refusal does not put the retry off.
        std::thread::sleep(Duration::from_millis(20));
        p.not_spooled(id, "database or disk is full".into());
        assert_eq!(p.retry_at(), Some(at));
        assert_eq!(p.again(), vec![c]);
        assert!(p.retry_at().is_none());
        p.stored(id);
        assert!(p.is_empty());
        assert!(p.refusing.is_none());
    }
}
