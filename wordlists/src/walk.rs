//! The skeleton walk over raw text: each byte turned into its skeleton
//! symbol by one table look-up ([`SKELETON`]), runs of one symbol
//! collapsed, and the symbol fed straight into an Aho-Corasick automaton
//! built over skeletons. Nothing is allocated and no normalised copy of
//! the text is made; a match is reported with the byte range of the
//! original text it came from.
//!
//! What the walk finds is a superset of what the exact pass finds in the
//! same text (a skeleton match is only a candidate), except for letters
//! spaced out ("k i l l"), which it cannot join: it reports runs of three
//! or more one-letter words instead, for the exact pass to look at.
//!
//! The matcher's fast pass walks every text this way over the terms'
//! automaton; the exact pass walks a region over the concepts' automaton
//! to learn, before normalising anything, whether a rule could be there.

use aho_corasick::Anchored;
use aho_corasick::PatternID;
use aho_corasick::automaton::{Automaton, StateID};

use crate::fold::{ASCII, Class};
use crate::fold::{Fold, fold_char};
use crate::skeleton::{BOUNDARY, DIGIT, NON_ASCII, OPAQUE_SYMBOL, PEEK, SEP, SKELETON, symbol};

/// Longest pattern, in skeleton symbols; a walk remembers where the last
/// this many symbols came from.
pub const RING: usize = 64;

/// What a walk reports.
pub trait Sink {
    /// Pattern `pid` matched the original bytes `start..end`.
    fn pattern(&mut self, pid: PatternID, start: usize, end: usize);
    /// Three or more one-letter words in a row stand over `start..end`.
    fn spaced(&mut self, start: usize, end: usize);
}

/// The state of one walk over a text.
pub struct Walk {
    sid: StateID,
    /// The last symbol fed to the automaton.
    prev: u8,
    /// Where each of the last [`RING`] symbols came from.
    ring: [u32; RING],
    count: usize,
    /// `count` at the last boundary.
    word_mark: usize,
    /// One-letter words in a row ("k i l l"), and where the run began.
    singles: u32,
    singles_start: usize,
    /// Digits since the boundary while the word holds nothing else, and
    /// the symbols they gave ([`NOT_A_NUMBER`] once it holds anything
    /// else): two or more and then a letter are a number and a word
    /// ("45kg"), as [`crate::normalize`] reads them.
    digits: usize,
    digit_symbols: usize,
    /// `word_mark` of the word `digits` counts in (kept here rather than
    /// reset at each boundary, which every word pays for).
    digits_mark: usize,
}

/// [`Walk::digit_symbols`] of a word that is not a number.
const NOT_A_NUMBER: usize = usize::MAX;

impl Walk {
    /// A walk starting at byte `at`, which is the start of the text or
    /// whitespace; it begins as if after a boundary.
    pub fn new<A: Automaton, S: Sink>(dfa: &A, start: StateID, at: usize, sink: &mut S) -> Walk {
        let mut walk = Walk {
            sid: start,
            prev: 0,
            ring: [0; RING],
            count: 0,
            word_mark: 0,
            singles: 0,
            singles_start: 0,
            digits: 0,
            digit_symbols: 0,
            digits_mark: 0,
        };
        walk.emit(dfa, BOUNDARY, at, sink);
        walk.word_mark = walk.count;
        walk
    }

    /// Whether the walk is where a walk begun at the last boundary would
    /// be: after a boundary, in `fresh` (the automaton's state for a lone
    /// boundary), no run of one-letter words open.
    pub fn is_fresh(&self, fresh: StateID) -> bool {
        self.prev == BOUNDARY && self.sid == fresh && self.singles == 0
    }

    /// Feeds one symbol that came from byte `at`.
    #[inline(always)]
    fn emit<A: Automaton, S: Sink>(&mut self, dfa: &A, sym: u8, at: usize, sink: &mut S) {
        self.ring[self.count % RING] = at as u32;
        self.count += 1;
        self.prev = sym;
        self.sid = dfa.next_state(Anchored::No, self.sid, sym);
        if dfa.is_special(self.sid) && dfa.is_match(self.sid) {
            self.matched(dfa, at, sink);
        }
    }

    #[cold]
    fn matched<A: Automaton, S: Sink>(&self, dfa: &A, at: usize, sink: &mut S) {
        for k in 0..dfa.match_len(self.sid) {
            let pid = dfa.match_pattern(self.sid, k);
            let first = self.ring[(self.count - dfa.pattern_len(pid)) % RING] as usize;
            sink.pattern(pid, first, at + 1);
        }
    }

    #[inline(always)]
    fn letter<A: Automaton, S: Sink>(&mut self, dfa: &A, sym: u8, at: usize, sink: &mut S) {
        if sym != self.prev {
            self.emit(dfa, sym, at, sink);
        }
    }

    /// A digit at byte `at` whose character ends at `next`: fed like a
    /// letter; and if the word so far is two or more digits and a letter
    /// comes next, the number ends there as a word of its own.
    fn digit<A: Automaton, S: Sink>(
        &mut self,
        dfa: &A,
        sym: u8,
        text: &str,
        at: usize,
        next: usize,
        sink: &mut S,
    ) {
        if self.digits_mark != self.word_mark {
            self.digits = 0;
            self.digit_symbols = 0;
            self.digits_mark = self.word_mark;
        }
        let only_digits = self.digit_symbols == self.count - self.word_mark
            && !unit_before_is_not_a_digit(text, at);
        let before = self.count;
        self.letter(dfa, sym, at, sink);
        if !only_digits {
            self.digit_symbols = NOT_A_NUMBER;
            return;
        }
        self.digit_symbols += self.count - before;
        self.digits += 1;
        if self.digits >= 2 && letter_follows(text, next) {
            self.boundary(dfa, next, sink);
        }
    }

    #[inline(always)]
    fn boundary<A: Automaton, S: Sink>(&mut self, dfa: &A, at: usize, sink: &mut S) {
        if self.prev == BOUNDARY {
            return;
        }
        // One symbol since the boundary: a one-letter word (or a run of
        // one letter, "ll", which only costs the exact pass a look).
        if self.count - self.word_mark == 1 {
            if self.singles == 0 {
                self.singles_start = self.ring[self.word_mark % RING] as usize;
            }
            self.singles += 1;
        } else {
            if self.singles >= 3 {
                sink.spaced(self.singles_start, at);
            }
            self.singles = 0;
        }
        self.emit(dfa, BOUNDARY, at, sink);
        self.word_mark = self.count;
    }

    /// Reads the character at byte `i`; returns where the next one starts.
    #[inline(always)]
    pub fn step<A: Automaton, S: Sink>(
        &mut self,
        dfa: &A,
        text: &str,
        i: usize,
        sink: &mut S,
    ) -> usize {
        let bytes = text.as_bytes();
        let b = bytes[i];
        let s = SKELETON[b as usize];
        if s > BOUNDARY {
            self.letter(dfa, s, i, sink);
            return i + 1;
        }
        match s {
            SEP | PEEK => {
                let next_alnum = bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric);
                if self.prev != BOUNDARY && next_alnum {
                    if s == PEEK {
                        self.letter(dfa, b'i', i, sink);
                    }
                } else {
                    self.boundary(dfa, i, sink);
                }
                i + 1
            }
            NON_ASCII => self.non_ascii(dfa, text, i, sink),
            DIGIT => {
                self.digit(dfa, symbol(b), text, i, i + 1, sink);
                i + 1
            }
            _ => {
                self.boundary(dfa, i, sink);
                i + 1
            }
        }
    }

    fn non_ascii<A: Automaton, S: Sink>(
        &mut self,
        dfa: &A,
        text: &str,
        i: usize,
        sink: &mut S,
    ) -> usize {
        let c = text[i..].chars().next().unwrap_or('\u{FFFD}');
        match fold_char(c) {
            Fold::Letters(out, n) => {
                let next = i + c.len_utf8();
                for &o in &out[..n as usize] {
                    if o.is_ascii_digit() {
                        self.digit(dfa, symbol(o), text, i, next, sink);
                    } else {
                        self.letter(dfa, symbol(o), i, sink);
                    }
                }
            }
            Fold::Opaque => self.letter(dfa, OPAQUE_SYMBOL, i, sink),
            Fold::Ignore => {}
            Fold::Boundary => self.boundary(dfa, i, sink),
            Fold::Word(w) => {
                self.boundary(dfa, i, sink);
                for &b in w.as_bytes() {
                    self.letter(dfa, symbol(b), i, sink);
                }
                self.boundary(dfa, i, sink);
            }
        }
        i + c.len_utf8()
    }

    /// Ends the walk at the end of the text.
    pub fn finish<A: Automaton, S: Sink>(&mut self, dfa: &A, end: usize, sink: &mut S) {
        self.boundary(dfa, end, sink);
        if self.singles >= 3 {
            sink.spaced(self.singles_start, end);
        }
    }

    /// Walks all of `text` from its start.
    pub fn all<A: Automaton, S: Sink>(dfa: &A, text: &str, sink: &mut S) {
        let Ok(start) = dfa.start_state(Anchored::No) else {
            return;
        };
        let mut walk = Walk::new(dfa, start, 0, sink);
        let mut i = 0;
        while i < text.len() {
            i = walk.step(dfa, text, i, sink);
        }
        walk.finish(dfa, text.len(), sink);
    }
}

/// Whether the unit before byte `at` (past separators a word drops) is
/// one that is not a digit: a letter, or a symbol read as one. The walk
/// needs it where a letter's symbol merged into a digit's ("0o5").
fn unit_before_is_not_a_digit(text: &str, at: usize) -> bool {
    // Most often a digit or a space.
    match at.checked_sub(1).map(|i| text.as_bytes()[i]) {
        None => return false,
        Some(b) if b.is_ascii_digit() || b.is_ascii_whitespace() => return false,
        _ => {}
    }
    let mut j = at;
    loop {
        let Some(c) = text[..j].chars().next_back() else {
            return false;
        };
        j -= c.len_utf8();
        if c.is_ascii() {
            return match ASCII[c as usize] {
                Class::Sep => continue,
                Class::Letter(_) | Class::Leet(_) => true,
                _ => false,
            };
        }
        match fold_char(c) {
            Fold::Letters(out, n) => return !out[n as usize - 1].is_ascii_digit(),
            Fold::Opaque => return true,
            Fold::Ignore => continue,
            Fold::Boundary | Fold::Word(_) => return false,
        }
    }
}

/// Whether the first unit from byte `at` on (past separators a word drops
/// and characters it ignores) is a letter.
fn letter_follows(text: &str, at: usize) -> bool {
    let bytes = text.as_bytes();
    let mut j = at;
    loop {
        let Some(c) = text.get(j..).and_then(|t| t.chars().next()) else {
            return false;
        };
        if c.is_ascii() {
            return match ASCII[c as usize] {
                Class::Letter(_) => true,
                Class::Sep if bytes.get(j + 1).is_some_and(u8::is_ascii_alphanumeric) => {
                    j += 1;
                    continue;
                }
                _ => false,
            };
        }
        match fold_char(c) {
            Fold::Letters(out, _) => return !out[0].is_ascii_digit(),
            Fold::Opaque => return true,
            Fold::Ignore => j += c.len_utf8(),
            Fold::Boundary | Fold::Word(_) => return false,
        }
    }
}
