//! The Big List of Naughty Strings (`tests/assets/blns/`, MIT), with
//! control characters, bidi overrides and 1 MB lines, through the matcher,
//! the wire protocol and the real agent's on-screen text source. The
//! console's side (storage, pages, API, CSV and PDF) is in `web.rs`.

use std::time::Duration;

use anyhow::ensure;
use protocol::{AgentMessage, frame};
use tests::agent_process::{AgentProcess, EnrolledBed, feed};
use tests::desktop::wait_for;
use tests::{capture, open_db};
use wordlists::{Libraries, Matcher, MatcherBuilder};

fn matcher() -> Matcher {
    MatcherBuilder::new(Libraries::builtin().unwrap())
        .build()
        .unwrap()
}

const PHRASE: &str = "i want to kill myself";

/// The phrase is found whatever surrounds it, and the hit covers exactly it.
fn assert_found(m: &Matcher, text: &str, phrase_at: usize, what: &str) {
    let hits = m.scan(text);
    let phrase = phrase_at..phrase_at + PHRASE.len();
    assert!(
        hits.iter().any(|h| h.entry.category == "self-harm"
            && phrase.contains(&h.start)
            && h.end <= phrase.end),
        "{what}: the phrase was not found; hits: {:?}",
        hits.iter()
            .map(|h| (&h.entry.term, h.start, h.end))
            .collect::<Vec<_>>()
    );
    for h in &hits {
        assert!(text.is_char_boundary(h.start) && text.is_char_boundary(h.end));
    }
}

#[test]
fn the_matcher_finds_the_phrase_among_naughty_strings_and_in_1_mb_lines() {
    let m = matcher();
    let strings = tests::naughty_strings();
    for s in &strings {
        // Alone: no panic, hits on character boundaries.
        for h in m.scan(s) {
            assert!(s.is_char_boundary(h.start) && s.is_char_boundary(h.end));
        }
        let text = format!("{s} {PHRASE} {s}");
        assert_found(&m, &text, s.len() + 1, &format!("between {s:?}"));
    }
    // 1 MB lines: the strings end to end, bidi overrides and controls, one
    // unbroken word; the phrase in the middle of each.
    let all: String = strings.concat();
    let bidi = "\u{202E}\u{2066}\u{200B}\u{1}\u{7}\u{1b}[31m".repeat(60_000);
    let word = "a".repeat(1 << 20);
    for (name, filler) in [("naughty", &all), ("bidi", &bidi), ("one word", &word)] {
        let mut half = filler.repeat((1 << 19) / filler.len().max(1) + 1);
        let mut cut = (1 << 19).min(half.len());
        while !half.is_char_boundary(cut) {
            cut -= 1;
        }
        half.truncate(cut);
        let text = format!("{half} {PHRASE} {half}");
        assert!(text.len() >= 1 << 20);
        assert_found(&m, &text, half.len() + 1, &format!("a 1 MB {name} line"));
    }
}

#[test]
fn naughty_captures_cross_the_wire_byte_for_byte() {
    for s in tests::naughty_strings() {
        let mut c = capture(&format!("{s} {PHRASE}"), "kill myself", None);
        c.window_title = s.clone();
        c.app = s.clone();
        c.user = s.clone();
        c.url = Some(s.clone());
        let message = AgentMessage::Capture(c);
        let bytes = frame::encode(&message, frame::DEFAULT_MAX_FRAME).unwrap();
        let back: AgentMessage = frame::decode_body(&bytes[4..]).unwrap();
        assert_eq!(back, message, "{s:?} changed on the wire");
    }
}

#[test]
fn the_agent_turns_naughty_on_screen_text_into_intact_bounded_captures() -> anyhow::Result<()> {
    let s = EnrolledBed::new()?;
    let agent = AgentProcess::start("run", &s.state, None, &s.home, &[])?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    // Every fourth string (the agent debounces repeats of one term in one
    // window, so each goes to a window of its own).
    let strings: Vec<String> = tests::naughty_strings().into_iter().step_by(4).collect();
    let mut fed = Vec::new();
    for (i, n) in strings.iter().enumerate() {
        let text = format!("{n} {PHRASE} {n}");
        feed(&s.state, "Chat", &format!("window {i}"), &text)?;
        fed.push(text);
    }
    let rows = || -> Vec<(String, String)> {
        let Ok(conn) = open_db(&s.console.data) else {
            return Vec::new();
        };
        let Ok(mut stmt) = conn.prepare("SELECT window_title, context FROM captures") else {
            return Vec::new();
        };
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .unwrap_or_default()
    };
    // Some naughty strings hold library terms of their own (blns has
    // profanity), so a window may have more than one capture; each must
    // have the one for the phrase.
    let windows_with_phrase = |rows: &[(String, String)]| -> Vec<bool> {
        let mut found = vec![false; fed.len()];
        for (title, context) in rows {
            if let Some(i) = title
                .strip_prefix("window ")
                .and_then(|n| n.parse::<usize>().ok())
            {
                found[i] |= context.contains("kill myself");
            }
        }
        found
    };
    let mut last = Vec::new();
    let all_in = wait_for(Duration::from_secs(120), || {
        last = rows();
        windows_with_phrase(&last).iter().all(|f| *f)
    });
    let missing: Vec<&String> = windows_with_phrase(&last)
        .iter()
        .zip(&fed)
        .filter(|(found, _)| !**found)
        .map(|(_, text)| text)
        .collect();
    ensure!(
        all_in,
        "no capture of the phrase from {missing:?}; agent log:\n{}",
        agent.log_text()
    );
    for (title, context) in &last {
        let i: usize = title.trim_start_matches("window ").parse()?;
        let text = &fed[i];
        ensure!(
            text.contains(context.as_str()),
            "the context {context:?} is not a piece of what was on screen, {text:?}"
        );
        // At most CONTEXT_REACH bytes either side of a match (and no
        // matched text here is longer than 64 bytes: terms are at most 39).
        let bound = 2 * agent::pipeline::CONTEXT_REACH + 64;
        ensure!(
            context.len() <= bound,
            "the context is bounded to {bound} bytes: {} bytes",
            context.len()
        );
    }
    Ok(())
}
