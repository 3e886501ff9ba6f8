//! The library parser on arbitrary files: no panic; a file it accepts has a
//! category name, severities 1–5, non-empty definitions and terms, builds
//! into a matcher, and that matcher scans its own terms without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wordlists::{BuildError, Libraries, MatcherBuilder, library};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cat) = library::parse("fuzz.toml", text) else {
        return;
    };
    assert!(!cat.name.trim().is_empty());
    let mut probe = String::new();
    for e in &cat.entries {
        assert!((1..=5).contains(&e.severity));
        assert!(!e.definition.trim().is_empty());
        probe.push_str(&e.term);
        probe.push_str(" . ");
    }
    let mut libs = Libraries::default();
    libs.add(cat);
    // A file the parser accepts must build, unless a term is longer than
    // the automaton can place (reported by the build, with the term).
    let m = match MatcherBuilder::new(libs).build() {
        Ok(m) => m,
        Err(BuildError::TermTooLong { .. }) => return,
        Err(e) => panic!("an accepted library did not build: {e}"),
    };
    for h in m.scan(&probe) {
        assert!(h.start <= h.end && h.end <= probe.len());
    }
});
