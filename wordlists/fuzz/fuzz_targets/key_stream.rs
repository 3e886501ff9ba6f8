//! The key-by-key matcher on arbitrary key sequences: no panic (an edit at
//! a cursor outside the line would panic), the line stays bounded, and
//! every reported hit lies on character boundaries of the committed text.
#![no_main]

mod matcher;

use libfuzzer_sys::fuzz_target;
use matcher::matcher;
use wordlists::stream::MAX_CHARS;
use wordlists::{Key, KeyStream};

/// Bytes to keys: mostly characters (so words and phrases form), with
/// every editing key reachable.
fn key(b: u8, next: u8) -> Key {
    match b {
        0 => Key::BackSpace,
        1 => Key::WordBackSpace,
        2 => Key::Delete,
        3 => Key::Left,
        4 => Key::Right,
        5 => Key::Home,
        6 => Key::End,
        7 => Key::Enter,
        8 => Key::Reset,
        9 => Key::Char(['é', 'к', '\u{200B}', '４', 'ß', '😀'][next as usize % 6]),
        b => Key::Char(b as char),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut stream = KeyStream::new();
    for (i, &b) in data.iter().enumerate() {
        let k = key(b % 128, data.get(i + 1).copied().unwrap_or(0));
        if let Some(done) = stream.feed(k, matcher()) {
            assert!(!done.hits.is_empty());
            assert!(done.text.chars().count() <= MAX_CHARS);
            for h in &done.hits {
                assert!(h.end <= done.text.len());
                assert!(done.text.is_char_boundary(h.start) && done.text.is_char_boundary(h.end));
            }
        }
        assert!(stream.len() <= MAX_CHARS);
        if b == 255 {
            let _ = stream.focus_changed(matcher());
            assert!(stream.is_empty());
        }
    }
    let _ = stream.flush(matcher());
});
