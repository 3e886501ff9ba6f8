//! The skeleton: the coarse form the Aho-Corasick automaton runs over.
//!
//! A skeleton is normalised text (see [`crate::normalize`]) with every
//! leetspeak reading applied (`0`→o, `3`→e, `4`/`@`→a, `5`/`$`→s, `7`→t),
//! `l`, `1`, `!` and `|` merged into `i`, the other digits (2 6 8 9) into
//! one symbol, and every run of one symbol
//! collapsed to one. So "kill", "k1ll", "kiiiill" and "ki11" share the
//! skeleton "ki". Matching a skeleton is therefore only a *candidate*: the
//! exact comparison of letters and run lengths is [`crate::verify`]'s.
//!
//! [`SKELETON`] maps a raw ASCII byte straight to its skeleton symbol, so
//! the matcher's fast pass reads the input once with one table lookup per
//! byte and feeds the automaton without materialising any normalised text.

use crate::fold::{ASCII, Class, OPAQUE};

/// Special codes of [`SKELETON`]; every real symbol is above them.
pub const BOUNDARY: u8 = b' ';
/// `. - _ * '`: dropped between word characters, else a boundary.
pub const SEP: u8 = 1;
/// `! |`: a letter between word characters, else a boundary.
pub const PEEK: u8 = 2;
/// The first byte of a multi-byte character.
pub const NON_ASCII: u8 = 3;
/// A digit: its symbol is [`symbol`]'s, but the walk must see where a
/// number ends and a word begins ("45kg"), so digits leave its fast path.
pub const DIGIT: u8 = 4;

/// The one symbol of the digits that are not read as letters (2 6 8 9):
/// the byte of `l`, free because `l` reads as `i`.
pub const OTHER_DIGIT: u8 = b'l';
/// The symbol of a letter of another script ([`OPAQUE`] in normalised
/// text): the byte after `z`.
pub const OPAQUE_SYMBOL: u8 = b'{';

/// The skeleton symbol of a normalised byte.
///
/// Every symbol but the boundary lies in `a`..=`{`, so the automaton's
/// alphabet is at most 31 byte classes (the 28 symbols, the boundary and
/// the bytes below and above them) and each state's row fits a stride of
/// 32: half the memory a stride of 64 takes, which one more class forces.
pub const fn symbol(b: u8) -> u8 {
    match b {
        b'l' | b'1' | b'!' | b'|' => b'i',
        b'2' | b'6' | b'8' | b'9' => OTHER_DIGIT,
        OPAQUE => OPAQUE_SYMBOL,
        b'0' => b'o',
        b'3' => b'e',
        b'4' | b'@' => b'a',
        b'5' | b'$' => b's',
        b'7' => b't',
        other => other,
    }
}

/// Raw byte → skeleton symbol or special code.
pub static SKELETON: [u8; 256] = {
    let mut t = [BOUNDARY; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = match ASCII[i] {
            Class::Letter(b) => symbol(b),
            Class::Digit(_) => DIGIT,
            Class::Leet(b'@') => b'a',
            Class::Leet(b'$') => b's',
            Class::Leet(_) => PEEK,
            Class::Sep => SEP,
            Class::Boundary => BOUNDARY,
            Class::NonAscii => NON_ASCII,
        };
        i += 1;
    }
    t
};

/// The skeleton of normalised bytes, and for each skeleton symbol the index
/// in `normalized` where its run starts (plus a final entry, the length).
pub fn skeleton(normalized: &[u8]) -> (Vec<u8>, Vec<u32>) {
    let mut out = Vec::with_capacity(normalized.len());
    let mut runs = Vec::with_capacity(normalized.len() + 1);
    let mut prev = 0u8;
    for (i, &b) in normalized.iter().enumerate() {
        let s = symbol(b);
        if s != prev {
            out.push(s);
            runs.push(i as u32);
            prev = s;
        }
    }
    runs.push(normalized.len() as u32);
    (out, runs)
}
