//! The normaliser and the full scan on arbitrary text: no panic, every
//! span inside the text and in order, every hit on character boundaries,
//! and the interleaved walk agreeing with one walk.
#![no_main]

mod matcher;

use libfuzzer_sys::fuzz_target;
use matcher::matcher;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let norm = wordlists::normalize::normalize(&text);
    assert_eq!(norm.bytes.len(), norm.spans.len());
    assert!(norm.bytes.is_ascii());
    let mut last = 0;
    for &(s, e) in &norm.spans {
        assert!(s <= e && (e as usize) <= text.len());
        assert!(text.is_char_boundary(s as usize) && text.is_char_boundary(e as usize));
        assert!(s >= last || s == e, "spans go backwards");
        last = last.max(s);
    }
    let hits = matcher().scan(&text);
    for h in &hits {
        assert!(h.start <= h.end && h.end <= text.len());
        assert!(text.is_char_boundary(h.start) && text.is_char_boundary(h.end));
        assert!((1..=5).contains(&h.severity));
    }
    // Long inputs take the interleaved walk and the shortcuts; they must
    // agree with the reference scan (one walk, no shortcuts).
    if text.len() >= 4096 {
        let key = |h: &wordlists::Hit<'_>| (h.start, h.end, h.entry.term.clone(), h.severity);
        let one: Vec<_> = matcher().scan_reference(&text).iter().map(key).collect();
        let fast: Vec<_> = hits.iter().map(key).collect();
        assert_eq!(fast, one);
    }
});
