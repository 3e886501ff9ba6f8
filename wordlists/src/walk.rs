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

use crate::fold::{Fold, fold_char};
use crate::skeleton::{BOUNDARY, NON_ASCII, OPAQUE_SYMBOL, PEEK, SEP, SKELETON, symbol};

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
}

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
                for &o in &out[..n as usize] {
                    self.letter(dfa, symbol(o), i, sink);
                }
            }
            Fold::Opaque => self.letter(dfa, OPAQUE_SYMBOL, i, sink),
            Fold::Ignore => {}
            Fold::Boundary => self.boundary(dfa, i, sink),
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
