//! The library parser on arbitrary files: no panic; a file it accepts has a
//! category name (or holds only concepts), severities 1–5, non-empty
//! definitions and terms, context rules with 1–16 words and concepts,
//! builds into a matcher, and that matcher scans its own terms, concepts
//! and rule names without panicking.
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
    assert!(
        !cat.name.trim().is_empty()
            || (cat.entries.is_empty() && cat.rules.is_empty() && cat.exceptions.is_empty())
    );
    let mut probe = String::new();
    for e in &cat.entries {
        assert!((1..=5).contains(&e.severity));
        assert!(!e.definition.trim().is_empty());
        probe.push_str(&e.term);
        probe.push_str(" . ");
    }
    for r in &cat.rules {
        assert!((1..=5).contains(&r.severity));
        assert!((1..=library::MAX_WITHIN).contains(&r.within));
        assert!(!r.all.is_empty() && !r.definition.trim().is_empty());
        probe.push_str(&r.name);
        probe.push(' ');
    }
    for c in &cat.concepts {
        assert!(!c.terms.is_empty() && (1..=4).contains(&c.weight));
        probe.push_str(&c.terms.join(" "));
        probe.push_str(" . ");
    }
    let mut libs = Libraries::default();
    libs.add(cat);
    // A file the parser accepts must build, unless a term is longer than
    // the automaton can place or a rule names a missing concept (each
    // reported by the build, by name).
    let m = match MatcherBuilder::new(libs).build() {
        Ok(m) => m,
        Err(BuildError::TermTooLong { .. }) => return,
        // A rule naming a concept the file does not define is refused with
        // its name (a file alone may lean on concepts defined elsewhere).
        Err(BuildError::Rule { .. }) => return,
        Err(e) => panic!("an accepted library did not build: {e}"),
    };
    for h in m.scan(&probe) {
        assert!(h.start <= h.end && h.end <= probe.len());
    }
});
