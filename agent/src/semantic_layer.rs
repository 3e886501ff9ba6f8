//! The semantic layer on the laptop ([`wordlists::semantic`]): where its
//! model is, loading it once off the async threads, and what it may judge.
//!
//! The model (91 MB) ships beside the agent, in
//! [`DEFAULT_MODEL_DIR`] (`wordlists/semantic/fetch-model.sh` fetches it;
//! the README's install steps put it there); nothing is downloaded at run
//! time. It is loaded only while the policy has the layer on, and let go
//! when the policy switches it off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use protocol::Source;
use wordlists::semantic::Semantic;

/// Where an installed agent finds the model.
pub const DEFAULT_MODEL_DIR: &str = "/usr/local/share/safeguard-agent/semantic";

/// Most lines of one text the layer judges: typed messages and the
/// clipboard are short; a long paste is judged by its first lines.
pub const MAX_LINES: usize = 4;

/// Bytes of a line the layer reads, and all of it that a capture carries.
pub const MAX_LINE_BYTES: usize = 240;

/// Reads the model in `dir` and builds the layer with the head shipped in
/// the agent. Slow (a quarter of a second): call it off the async threads.
///
/// # Errors
/// The model is missing, damaged, or not the one the head was trained
/// over; the message says how to fetch it.
pub fn load(dir: &Path) -> anyhow::Result<Semantic> {
    let model = std::fs::read(dir.join("model.safetensors")).with_context(|| {
        format!(
            "cannot read the semantic layer's model {}/model.safetensors: install it there \
             (wordlists/semantic/fetch-model.sh fetches it)",
            dir.display()
        )
    })?;
    let tokenizer = std::fs::read_to_string(dir.join("tokenizer.json"))
        .with_context(|| format!("cannot read {}/tokenizer.json", dir.display()))?;
    Ok(Semantic::with_builtin_head(&model, &tokenizer)?)
}

/// Whether the model in `dir` is there and the one the shipped head was
/// trained over, in words for `agent status`.
pub fn describe(dir: &Path) -> String {
    match std::fs::read(dir.join("model.safetensors")) {
        Err(e) => format!(
            "MODEL MISSING ({}/model.safetensors: {e}); the rules alone run: install it there \
             (wordlists/semantic/fetch-model.sh fetches it)",
            dir.display()
        ),
        Ok(bytes) => match wordlists::semantic::builtin_head() {
            Ok(head) if wordlists::semantic::sha256_hex(&bytes) == head.model_sha256 => {
                format!(
                    "model in {} (used while the policy has the layer on)",
                    dir.display()
                )
            }
            Ok(_) => format!(
                "WRONG MODEL in {} (not the one its head was trained over); the rules alone run",
                dir.display()
            ),
            Err(e) => format!("the agent's own head is broken ({e})"),
        },
    }
}

/// [`load`] on a blocking thread; failure is logged (once per attempt)
/// and the rules alone go on.
pub async fn load_in_background(dir: PathBuf) -> Option<Arc<Semantic>> {
    let shown = dir.display().to_string();
    match tokio::task::spawn_blocking(move || load(&dir)).await {
        Ok(Ok(s)) => {
            tracing::info!(
                "semantic layer loaded from {shown} ({} MiB of weights)",
                s.weight_bytes() >> 20
            );
            Some(Arc::new(s))
        }
        Ok(Err(e)) => {
            tracing::error!("the semantic layer is off on this laptop: {e:#}");
            None
        }
        Err(e) => {
            tracing::error!("loading the semantic layer failed: {e}");
            None
        }
    }
}

/// The longest block of on-screen text judged without a term marking it:
/// a chat message, not a paragraph of an article.
pub const SHORT_BLOCK_BYTES: usize = 200;

/// Whether the layer judges `text` from `source` (`candidate`: a term
/// below the capture threshold marks it): what the pupil writes or copies
/// always; on-screen text when it is a short block (a message received)
/// or a candidate; titles and addresses only as candidates.
pub fn judges(source: Source, candidate: bool, text: &str) -> bool {
    match source {
        Source::Typed | Source::Clipboard | Source::Feed => true,
        Source::ScreenText => candidate || text.trim().len() <= SHORT_BLOCK_BYTES,
        Source::WindowTitle | Source::Browser => candidate,
        Source::Concern => false,
    }
}

/// How much on-screen text the layer may judge: a page can hold hundreds
/// of short blocks, and each costs about 12 ms of one core. A bucket of
/// [`Budget::BURST`] judgements, refilled at [`Budget::PER_SECOND`]: a
/// chat's messages arriving one by one are all judged; a long page is
/// judged in part, its first blocks first.
#[derive(Debug, Clone)]
pub struct Budget {
    tokens: f64,
    last: std::time::Instant,
}

impl Budget {
    pub const BURST: f64 = 30.0;
    pub const PER_SECOND: f64 = 0.5;

    pub fn new(now: std::time::Instant) -> Budget {
        Budget {
            tokens: Self::BURST,
            last: now,
        }
    }

    /// Takes one judgement, if there is one left.
    pub fn take(&mut self, now: std::time::Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * Self::PER_SECOND;
        self.tokens = (self.tokens + refill).min(Self::BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The lines of `text` the layer judges: non-blank, at most
/// [`MAX_LINES`], each cut to [`MAX_LINE_BYTES`] on a character boundary.
pub fn lines_of(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(MAX_LINES)
        .map(|l| {
            let mut end = l.len().min(MAX_LINE_BYTES);
            while !l.is_char_boundary(end) {
                end -= 1;
            }
            &l[..end]
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bounded_and_cut_on_characters() {
        let long = "é".repeat(200);
        let text = format!("\n  first  \n\n{long}\nthird\nfourth\nfifth");
        let lines: Vec<&str> = lines_of(&text).collect();
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines[0], "first");
        assert_eq!(lines[1].len(), MAX_LINE_BYTES);
        assert_eq!(lines[3], "fourth");
    }

    #[test]
    fn a_missing_model_says_how_to_get_it() {
        let err = load(Path::new("/nonexistent")).unwrap_err().to_string();
        assert!(err.contains("fetch-model.sh"), "{err}");
        assert!(describe(Path::new("/nonexistent")).starts_with("MODEL MISSING"));
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("model.safetensors"), b"not it").unwrap();
        assert!(describe(tmp.path()).starts_with("WRONG MODEL"));
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wordlists/semantic/model");
        assert!(
            describe(&shipped).starts_with("model in"),
            "{}",
            describe(&shipped)
        );
    }

    #[test]
    fn on_screen_short_blocks_and_candidates_are_judged_titles_only_as_candidates() {
        let paragraph = "word ".repeat(60);
        assert!(judges(Source::Typed, false, &paragraph));
        assert!(judges(Source::ScreenText, false, "do u have ur own room"));
        assert!(!judges(Source::ScreenText, false, &paragraph));
        assert!(judges(Source::ScreenText, true, &paragraph));
        assert!(!judges(Source::WindowTitle, false, "do u have ur own room"));
        assert!(!judges(Source::Concern, true, "x"));
    }

    #[test]
    fn the_budget_allows_a_burst_then_its_rate() {
        let t0 = std::time::Instant::now();
        let mut b = Budget::new(t0);
        let burst = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(burst, Budget::BURST as usize);
        let later = t0 + std::time::Duration::from_secs(10);
        let refilled = (0..100).filter(|_| b.take(later)).count();
        assert_eq!(refilled, (10.0 * Budget::PER_SECOND) as usize);
    }
}
