//! From a hit to a capture: the policy (enabled categories, minimum
//! severity, sources), the debounce (the same term in the same window
//! within the policy's period is one capture), a bounded context around
//! the hit, and a UUID v7. The screenshot is added by the caller, once for
//! all the captures of one moment.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{Capture, Policy, Screenshot, Source, UnixMillis};
use wordlists::{Hit, Libraries, Matcher, MatcherBuilder};

use crate::platform::WindowInfo;

/// Bytes of text kept either side of a hit: the capture's context, and all
/// of the text that ever leaves the laptop.
pub const CONTEXT_REACH: usize = 120;
/// Debounce entries kept before old ones are pruned.
const DEBOUNCE_ENTRIES: usize = 4096;

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
}

impl Pipeline {
    pub fn new(policy: Arc<Policy>, matcher: Arc<Matcher>) -> Pipeline {
        Pipeline {
            policy,
            matcher,
            last: HashMap::new(),
        }
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

    /// Whether a source is switched on.
    pub fn wants(&self, source: Source) -> bool {
        let s = &self.policy.sources;
        match source {
            Source::Typed => s.typed,
            Source::WindowTitle => s.window_title,
            Source::Browser => s.browser,
            Source::Clipboard => s.clipboard,
            Source::ScreenText | Source::Feed | Source::Concern => true,
        }
    }

    /// Scans whole text (a title, a page, the clipboard, fed text).
    pub fn scan(&mut self, text: &str, seen: &Seen<'_>) -> Vec<Capture> {
        if !self.wants(seen.source) {
            return Vec::new();
        }
        let matcher = self.matcher.clone();
        let hits = matcher.scan(text);
        self.captures(text, &hits, seen)
    }

    /// Hits already found (by the key stream) in `text`.
    pub fn captures(&mut self, text: &str, hits: &[Hit<'_>], seen: &Seen<'_>) -> Vec<Capture> {
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
            let key = (
                hit.entry.term.clone(),
                hit.entry.category.clone(),
                seen.window.id,
                seen.window.title.clone(),
            );
            if let Some(t) = self.last.get(&key)
                && now.duration_since(*t) < period
            {
                continue;
            }
            self.last.insert(key, now);
            let (context, range) = hit.context(text, CONTEXT_REACH);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(policy: Policy) -> Pipeline {
        let matcher = Arc::new(matcher_for(&policy).unwrap());
        Pipeline::new(Arc::new(policy), matcher)
    }

    fn window(id: u64, title: &str) -> WindowInfo {
        WindowInfo {
            id,
            app: "XTerm".into(),
            title: title.into(),
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
}
