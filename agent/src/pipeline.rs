//! From a hit to a capture: the policy (enabled categories, minimum
//! severity, sources), the debounce (the same term in the same window
//! within the policy's period is one capture), a bounded context around
//! the hit, and a UUID v7. The screenshot is added by the caller, once for
//! all the captures of one moment.
//!
//! Text on screen (`screen_text`) is read again whenever a page re-renders
//! or is scrolled past, so for it the debounce ignores the title (a chat
//! page's title counts unread messages) and the same term in the same
//! words on the same page is one capture for as long as the helper runs,
//! however long after: only a new message holding it captures again (once
//! the debounce period has passed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{Capture, Policy, Screenshot, Source, UnixMillis};
use wordlists::semantic::{CAPTURE_TERM as SEMANTIC_TERM, Semantic};
use wordlists::{Committed, Hit, Libraries, Matcher, MatcherBuilder};

use crate::platform::WindowInfo;

/// Bytes of text kept either side of a hit: the capture's context, and all
/// of the text that ever leaves the laptop.
pub const CONTEXT_REACH: usize = 120;
/// Debounce entries kept before old ones are pruned.
const DEBOUNCE_ENTRIES: usize = 4096;
/// On-screen texts remembered as already captured (term, page, words)
/// before the oldest half is forgotten.
const SEEN_TEXTS: usize = 8192;

/// The matcher a policy asks for: the built-in libraries and the school's,
/// without the categories it switched off.
///
/// # Errors
/// A school library that does not parse or build.
pub fn matcher_for(policy: &Policy) -> anyhow::Result<Matcher> {
    let libraries = Libraries::builtin_with(
        policy
            .libraries
            .iter()
            .map(|f| (f.name.as_str(), f.toml.as_str())),
    )?;
    let mut builder = MatcherBuilder::new(libraries);
    for c in &policy.disabled_categories {
        builder = builder.disable(c);
    }
    Ok(builder.build()?)
}

/// A matcher build waiting for the builder thread, and where its result goes.
type BuildJob = (
    Arc<Policy>,
    tokio::sync::oneshot::Sender<anyhow::Result<Matcher>>,
);

/// [`matcher_for`] on one long-lived thread. A build allocates and frees
/// again several times the matcher's own size (the automaton's
/// construction); done on whichever blocking-pool thread was free, each
/// build could leave that freed memory in another of the allocator's
/// per-thread arenas, and the agent's resident memory grew with each
/// policy. On one thread, every build reuses what the last one freed.
///
/// # Errors
/// What [`matcher_for`] returns, or that the builder thread is gone.
pub async fn build_matcher(policy: Arc<Policy>) -> anyhow::Result<Matcher> {
    static JOBS: std::sync::OnceLock<std::sync::mpsc::Sender<BuildJob>> =
        std::sync::OnceLock::new();
    let jobs = JOBS.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<BuildJob>();
        let spawned = std::thread::Builder::new()
            .name("matcher-build".into())
            .spawn(move || {
                for (policy, done) in rx {
                    let _ = done.send(matcher_for(&policy));
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the matcher's builder thread: {e}");
        }
        tx
    });
    let (done, result) = tokio::sync::oneshot::channel();
    jobs.send((policy, done))
        .map_err(|_| anyhow::anyhow!("the matcher's builder thread is not running"))?;
    result
        .await
        .map_err(|_| anyhow::anyhow!("the matcher's builder thread stopped mid-build"))?
}

/// Where some text was seen.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    pub source: Source,
    pub window: &'a WindowInfo,
    pub url: Option<&'a str>,
}

/// Turns hits into captures under a policy.
#[derive(Debug)]
pub struct Pipeline {
    policy: Arc<Policy>,
    matcher: Arc<Matcher>,
    last: HashMap<(String, String, u64, String), Instant>,
    /// On-screen text already captured: hash of (term, category, window,
    /// context) → when, for pruning the oldest.
    seen_text: HashMap<u64, u64>,
    seen_clock: u64,
    /// The semantic layer, while the policy has it on and its model loaded.
    semantic: Option<Arc<Semantic>>,
    /// How much more on-screen text it may judge now, and the on-screen
    /// lines it has judged (hash of window and words), so a block shown
    /// again is not judged again.
    semantic_budget: crate::semantic_layer::Budget,
    judged_on_screen: std::collections::HashSet<u64>,
}

impl Pipeline {
    pub fn new(policy: Arc<Policy>, matcher: Arc<Matcher>) -> Pipeline {
        Pipeline {
            policy,
            matcher,
            last: HashMap::new(),
            seen_text: HashMap::new(),
            seen_clock: 0,
            semantic: None,
            semantic_budget: crate::semantic_layer::Budget::new(Instant::now()),
            judged_on_screen: std::collections::HashSet::new(),
        }
    }

    /// The semantic layer to consult (when the policy has it on), or none.
    pub fn set_semantic(&mut self, semantic: Option<Arc<Semantic>>) {
        self.semantic = semantic;
    }

    /// Whether a semantic layer is loaded.
    pub fn has_semantic(&self) -> bool {
        self.semantic.is_some()
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    pub fn matcher(&self) -> &Arc<Matcher> {
        &self.matcher
    }

    /// A new policy and its matcher, swapped in between two events.
    pub fn replace(&mut self, policy: Arc<Policy>, matcher: Arc<Matcher>) {
        self.policy = policy;
        self.matcher = matcher;
    }

    /// Forgets what the debounce remembers: after the policy or its
    /// layers change, a phrase found (and perhaps dropped by the service
    /// under the old ones) is captured again when next seen.
    pub fn forget_recent(&mut self) {
        self.last.clear();
        self.seen_text.clear();
    }

    /// Whether a source is switched on.
    pub fn wants(&self, source: Source) -> bool {
        let s = &self.policy.sources;
        match source {
            Source::Typed => s.typed,
            Source::WindowTitle => s.window_title,
            Source::Browser => s.browser,
            Source::Clipboard => s.clipboard,
            Source::ScreenText => s.screen_text,
            Source::Feed | Source::Concern => true,
        }
    }

    /// Scans whole text (a title, a page, the clipboard, fed text).
    pub fn scan(&mut self, text: &str, seen: &Seen<'_>) -> Vec<Capture> {
        if !self.wants(seen.source) {
            return Vec::new();
        }
        let matcher = self.matcher.clone();
        let hits = matcher.scan(text);
        let mut out = self.captures(text, &hits, seen);
        if out.is_empty() {
            let gravest = hits.iter().map(|h| h.severity).max().unwrap_or(0);
            out = self.second_opinion(text, gravest, !hits.is_empty(), seen);
        }
        out
    }

    /// A commit of typed text: its new hits, and, once the line ended or
    /// typing paused, the semantic layer's view of the whole line.
    pub fn typed(&mut self, committed: &Committed<'_>, seen: &Seen<'_>) -> Vec<Capture> {
        let mut out = self.captures(&committed.text, &committed.hits, seen);
        if out.is_empty() && committed.whole {
            out = self.second_opinion(
                &committed.text,
                committed.gravest,
                committed.gravest > 0,
                seen,
            );
        }
        out
    }

    fn remember_text(&mut self, words: u64) {
        self.seen_clock += 1;
        self.seen_text.insert(words, self.seen_clock);
        if self.seen_text.len() > SEEN_TEXTS {
            let cut = self.seen_clock - (SEEN_TEXTS / 2) as u64;
            self.seen_text.retain(|_, at| *at > cut);
        }
    }

    /// Hits already found (by the key stream) in `text`.
    fn captures(&mut self, text: &str, hits: &[Hit<'_>], seen: &Seen<'_>) -> Vec<Capture> {
        if !self.wants(seen.source) {
            return Vec::new();
        }
        let now = Instant::now();
        let period = Duration::from_secs(u64::from(self.policy.debounce_seconds));
        if self.last.len() > DEBOUNCE_ENTRIES {
            self.last.retain(|_, t| now.duration_since(*t) < period);
        }
        let mut out = Vec::new();
        for hit in hits {
            if hit.severity < self.policy.min_severity {
                continue;
            }
            let on_screen = seen.source == Source::ScreenText;
            let (context, range) = hit.context(text, CONTEXT_REACH);
            let words = on_screen.then(|| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(
                    &(
                        &hit.entry.term,
                        &hit.entry.category,
                        seen.window.id,
                        context,
                    ),
                    &mut h,
                );
                std::hash::Hasher::finish(&h)
            });
            if let Some(w) = words
                && self.seen_text.contains_key(&w)
            {
                continue;
            }
            let key = (
                hit.entry.term.clone(),
                hit.entry.category.clone(),
                seen.window.id,
                if on_screen {
                    String::new()
                } else {
                    seen.window.title.clone()
                },
            );
            if self.debounced(key, now, period) {
                continue;
            }
            if let Some(w) = words {
                self.remember_text(w);
            }
            out.push(Capture {
                id: uuid::Uuid::now_v7(),
                time: UnixMillis::now(),
                user: String::new(), // the service writes the kernel-identified user
                source: seen.source,
                app: seen.window.app.clone(),
                window_title: seen.window.title.clone(),
                url: seen.url.map(str::to_owned),
                term: hit.entry.term.clone(),
                category: hit.entry.category.clone(),
                severity: hit.severity,
                context: context.to_owned(),
                context_match: (range.start as u32, range.end as u32),
                screenshot: Screenshot::Missing(String::new()),
            });
        }
        out
    }

    /// Whether `key` was captured within `period` before `now`; if not, it
    /// is now.
    fn debounced(
        &mut self,
        key: (String, String, u64, String),
        now: Instant,
        period: Duration,
    ) -> bool {
        if let Some(t) = self.last.get(&key)
            && now.duration_since(*t) < period
        {
            return true;
        }
        self.last.insert(key, now);
        false
    }

    /// The semantic layer's captures of `text`, where the policy has it on,
    /// no hit in it reaches the capture threshold (`gravest` is its
    /// gravest), and the source is one it judges
    /// ([`crate::semantic_layer::judges`]; `candidate`: some term marks
    /// it). Debounced like a term, by category and window.
    fn second_opinion(
        &mut self,
        text: &str,
        gravest: u8,
        candidate: bool,
        seen: &Seen<'_>,
    ) -> Vec<Capture> {
        let Some(semantic) = self.semantic.clone().filter(|_| self.policy.semantic) else {
            return Vec::new();
        };
        if !self.wants(seen.source)
            || SEMANTIC_SEVERITY < self.policy.min_severity
            || gravest >= CAPTURE_THRESHOLD
            || !crate::semantic_layer::judges(seen.source, candidate, text)
        {
            return Vec::new();
        }
        let now = Instant::now();
        let period = Duration::from_secs(u64::from(self.policy.debounce_seconds));
        let on_screen = seen.source == Source::ScreenText;
        let mut out = Vec::new();
        for line in crate::semantic_layer::lines_of(text) {
            if on_screen {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&(seen.window.id, line), &mut h);
                let words = std::hash::Hasher::finish(&h);
                if self.judged_on_screen.contains(&words) || !self.semantic_budget.take(now) {
                    continue;
                }
                if self.judged_on_screen.len() >= SEEN_TEXTS {
                    self.judged_on_screen.clear();
                }
                self.judged_on_screen.insert(words);
            }
            let Some(verdict) = semantic.judge(line) else {
                continue;
            };
            if self.policy.disabled_categories.contains(&verdict.category) {
                continue;
            }
            let key = (
                SEMANTIC_TERM.to_owned(),
                verdict.category.clone(),
                seen.window.id,
                if seen.source == Source::ScreenText {
                    line.to_owned()
                } else {
                    seen.window.title.clone()
                },
            );
            if self.debounced(key, now, period) {
                continue;
            }
            out.push(Capture {
                id: uuid::Uuid::now_v7(),
                time: UnixMillis::now(),
                user: String::new(),
                source: seen.source,
                app: seen.window.app.clone(),
                window_title: seen.window.title.clone(),
                url: seen.url.map(str::to_owned),
                term: format!(
                    "{SEMANTIC_TERM}: reads as {} ({:.0}% sure)",
                    verdict.category,
                    verdict.risk * 100.0
                ),
                category: verdict.category,
                severity: SEMANTIC_SEVERITY,
                context: line.to_owned(),
                context_match: (0, line.len() as u32),
                screenshot: Screenshot::Missing(String::new()),
            });
        }
        out
    }
}

/// The severity from which a term's hit is a capture: the semantic layer
/// judges only text with no hit at it.
const CAPTURE_THRESHOLD: u8 = 3;
/// The severity of the semantic layer's captures: staff see them, and
/// judge them; never more.
const SEMANTIC_SEVERITY: u8 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(policy: Policy) -> Pipeline {
        let matcher = Arc::new(matcher_for(&policy).unwrap());
        Pipeline::new(Arc::new(policy), matcher)
    }

    /// The semantic layer, from the model tests/run fetches.
    fn semantic() -> Arc<Semantic> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../wordlists/semantic/model");
        Arc::new(crate::semantic_layer::load(&dir).unwrap_or_else(|e| {
            panic!("{e:#} (run wordlists/semantic/fetch-model.sh; tests/run does)")
        }))
    }

    #[test]
    fn the_semantic_layer_captures_what_no_term_names_where_the_policy_wants_it() {
        let mut p = pipeline(Policy::baseline());
        p.set_semantic(Some(semantic()));
        let w = window(1, "chat");
        let typed = Seen {
            source: Source::Typed,
            window: &w,
            url: None,
        };
        let line = "i wish i could just fade away";
        let caps = p.scan(line, &typed);
        assert_eq!(caps.len(), 1, "{caps:?}");
        let c = &caps[0];
        assert_eq!((c.category.as_str(), c.severity), ("self-harm", 3));
        assert!(
            c.term.starts_with("semantic layer: reads as self-harm ("),
            "{}",
            c.term
        );
        assert_eq!(c.context, line);
        assert_eq!(c.context_match, (0, line.len() as u32));
        // Debounced like a term: the same window, within the period.
        assert!(p.scan(line, &typed).is_empty());
        // Innocent words are not captured; a term's capture is the rules' own.
        assert!(p.scan("lets get pizza after school", &typed).is_empty());
        let caps = p.scan("i want to kill myself", &typed);
        assert_eq!(caps.len(), 1);
        assert!(!caps[0].term.starts_with("semantic"), "{}", caps[0].term);
        // On screen, only where a term marks the text.
        let page = window(2, "page");
        let screen = Seen {
            source: Source::ScreenText,
            window: &page,
            url: Some("http://chat.test/"),
        };
        // On screen: a short block (a message received) is judged once,
        // however often it is shown; a paragraph only where a term marks it.
        let received = "does ur mum read ur messages";
        assert_eq!(p.scan(received, &screen).len(), 1, "a short block");
        assert!(p.scan(received, &screen).is_empty(), "shown again");
        let paragraph = format!(
            "{} i keep doing it to my arms and no one notices",
            "the weather today. ".repeat(12)
        );
        assert!(
            p.scan(&paragraph, &screen).is_empty(),
            "a paragraph without a term"
        );
        let other = window(3, "another chat");
        let typed_there = Seen {
            source: Source::Typed,
            window: &other,
            url: None,
        };
        assert_eq!(
            p.scan(
                "i keep doing it to my arms and no one notices",
                &typed_there
            )
            .len(),
            1
        );
        // Typed key by key: judged when the line ends, not at each space.
        let typing = window(4, "typing");
        let keyed = Seen {
            source: Source::Typed,
            window: &typing,
            url: None,
        };
        let matcher = p.matcher().clone();
        let mut keys = wordlists::KeyStream::new();
        for c in "i keep doing it to my arms and no one notices".chars() {
            if let Some(c) = keys.feed(wordlists::Key::Char(c), &matcher) {
                assert!(p.typed(&c, &keyed).is_empty(), "mid-line: {:?}", c.text);
            }
        }
        let ended = keys
            .feed(wordlists::Key::Enter, &matcher)
            .expect("a whole line");
        let caps = p.typed(&ended, &keyed);
        assert_eq!(caps.len(), 1, "{caps:?}");
        assert_eq!(caps[0].category, "self-harm");
        // Switched off by the policy, or the category switched off.
        let mut off = Policy::baseline();
        off.semantic = false;
        let mut p = pipeline(off);
        p.set_semantic(Some(semantic()));
        assert!(p.scan(line, &typed).is_empty());
        let mut no_self_harm = Policy::baseline();
        no_self_harm.disabled_categories = vec!["self-harm".into()];
        let mut p = pipeline(no_self_harm);
        p.set_semantic(Some(semantic()));
        assert!(p.scan(line, &typed).is_empty());
    }

    fn window(id: u64, title: &str) -> WindowInfo {
        WindowInfo {
            id,
            app: "XTerm".into(),
            title: title.into(),
            pid: None,
        }
    }

    #[test]
    fn debounce_severity_categories_sources_and_context() {
        let mut p = pipeline(Policy::baseline());
        let w = window(1, "chat");
        let seen = Seen {
            source: Source::Feed,
            window: &w,
            url: None,
        };
        let long = format!(
            "{} i want to kill myself {}",
            "a".repeat(500),
            "b".repeat(500)
        );
        let caps = p.scan(&long, &seen);
        assert_eq!(caps.len(), 1);
        let c = &caps[0];
        assert_eq!(
            (c.term.as_str(), c.category.as_str(), c.severity),
            ("kill myself", "self-harm", 5)
        );
        assert!(
            c.context.len() <= 11 + 2 * CONTEXT_REACH + 4,
            "context is bounded: {}",
            c.context.len()
        );
        assert_eq!(
            &c.context[c.context_match.0 as usize..c.context_match.1 as usize],
            "kill myself"
        );
        assert_eq!(c.id.get_version_num(), 7);
        assert!(
            p.scan(&long, &seen).is_empty(),
            "same term, same window, within a minute"
        );
        // A policy or layers change: the debounce forgets, so a phrase
        // dropped under the old layers is captured when next seen.
        p.forget_recent();
        assert_eq!(p.scan(&long, &seen).len(), 1, "seen afresh after a change");
        let other = window(2, "chat");
        let seen2 = Seen {
            window: &other,
            ..seen.clone()
        };
        assert_eq!(
            p.scan(&long, &seen2).len(),
            1,
            "another window captures again"
        );

        let mut policy = Policy::baseline();
        policy.disabled_categories = vec!["self-harm".into()];
        policy.debounce_seconds = 0;
        let mut p = pipeline(policy);
        assert!(
            p.scan("i want to kill myself", &seen).is_empty(),
            "category switched off"
        );

        let mut policy = Policy::baseline();
        policy.min_severity = 5;
        policy.debounce_seconds = 0;
        policy.sources.clipboard = false;
        let mut p = pipeline(policy);
        let clip = Seen {
            source: Source::Clipboard,
            ..seen.clone()
        };
        assert!(
            p.scan("i want to kill myself", &clip).is_empty(),
            "source switched off"
        );
        assert_eq!(p.scan("i want to kill myself", &seen).len(), 1);
        assert_eq!(
            p.scan("i want to kill myself", &seen).len(),
            1,
            "no debounce at 0 s"
        );
        assert!(
            p.scan("you are such an idiot", &seen).is_empty(),
            "below the minimum severity"
        );
    }

    #[test]
    fn on_screen_text_is_one_capture_per_message_and_page() {
        let mut policy = Policy::baseline();
        policy.debounce_seconds = 0;
        let mut p = pipeline(policy);
        let page = window(7, "(1) Chat");
        let seen = Seen {
            source: Source::ScreenText,
            window: &page,
            url: Some("http://chat.test/room"),
        };
        let message = "Sam: dont tell your parents about our chats ok";
        assert_eq!(p.scan(message, &seen).len(), 1);
        // Re-rendered, scrolled past, the title counting unread messages:
        // the same words on the same page are not captured again, even
        // with no debounce at all.
        let retitled = window(7, "(2) Chat");
        for _ in 0..10 {
            let again = Seen {
                window: &retitled,
                ..seen.clone()
            };
            assert!(p.scan(message, &again).is_empty());
        }
        // A new message holding the same term is.
        assert_eq!(
            p.scan("Sam: remember dont tell your parents", &seen).len(),
            1
        );
        // Another page is another window.
        let other = window(8, "Chat");
        let elsewhere = Seen {
            window: &other,
            ..seen.clone()
        };
        assert_eq!(p.scan(message, &elsewhere).len(), 1);

        let mut off = Policy::baseline();
        off.sources.screen_text = false;
        let mut p = pipeline(off);
        assert!(p.scan(message, &seen).is_empty(), "switched off");
    }
}
