//! Matching typed text key by key.
//!
//! A [`KeyStream`] keeps the line being typed in the focused window as an
//! editable buffer: characters are inserted at the cursor, BackSpace and
//! Delete remove, cursor keys move. What is matched is what the user ended
//! up with: the buffer is scanned at *commit points*, when a word is
//! finished (a space or punctuation typed), at Enter or Tab, when focus
//! moves, and when the caller flushes after a pause. A term typed and then
//! rubbed out before it was finished never matches; a phrase typed over
//! several events ("kill" … "myself") matches, because the buffer holds the
//! whole line.
//!
//! Each hit is reported once for as long as it stays in the buffer. Memory
//! is bounded: the buffer holds at most [`MAX_CHARS`] characters, dropping
//! the oldest words first (far more than the longest phrase, so no match
//! is lost at the cut). The stream holds no matcher: the caller passes the
//! current one, so a new policy's matcher takes effect at the next key.

use crate::matcher::{Hit, Matcher};

/// Most characters kept for one line.
pub const MAX_CHARS: usize = 1024;
/// How much of the line is kept when it is cut.
const KEEP_CHARS: usize = 512;

/// One key event, as the platform layer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A character typed (after the keyboard layout and modifiers).
    Char(char),
    BackSpace,
    /// Ctrl+BackSpace: deletes the word before the cursor.
    WordBackSpace,
    Delete,
    Left,
    Right,
    Home,
    End,
    /// Enter or Tab: the line is finished.
    Enter,
    /// Anything the buffer cannot follow (a mouse click, Up/Down, paste,
    /// select-all): the line is committed and a new one begins.
    Reset,
}

/// Hits found at a commit point, with the text they were found in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed<'m> {
    /// The line as the user left it (at most [`MAX_CHARS`] characters).
    pub text: String,
    /// The new hits; offsets are into `text`.
    pub hits: Vec<Hit<'m>>,
    /// The line ended (Enter, Tab, focus moved) or typing paused: the line
    /// may be judged as a whole (see [`crate::semantic`]). Such a commit
    /// comes even without new hits; a commit within a line (at a space)
    /// comes only with them.
    pub whole: bool,
    /// The gravest severity of every hit in the line now, reported before
    /// or not (0: none).
    pub gravest: u8,
}

/// What has been reported: term, category and the hit's start and end in
/// the buffer, in characters.
type Reported = (String, String, usize, usize);

/// The typed line of the focused window.
#[derive(Debug, Default, Clone)]
pub struct KeyStream {
    chars: Vec<char>,
    cursor: usize,
    reported: Vec<Reported>,
}

impl KeyStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current line.
    pub fn text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Characters held.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// Applies one key; returns new hits if the key was a commit point.
    pub fn feed<'m>(&mut self, key: Key, matcher: &'m Matcher) -> Option<Committed<'m>> {
        match key {
            Key::Char(c) if c == '\n' || c == '\r' || c == '\t' => {
                return self.end_line(matcher);
            }
            Key::Char(c) if c.is_control() => {}
            Key::Char(c) => {
                self.chars.insert(self.cursor, c);
                self.edited(self.cursor, 0, 1);
                self.cursor += 1;
                if self.chars.len() > MAX_CHARS {
                    self.cut();
                }
                if !c.is_alphanumeric() {
                    return self.commit(matcher, false);
                }
            }
            Key::BackSpace => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.chars.remove(self.cursor);
                    self.edited(self.cursor, 1, 0);
                }
            }
            Key::WordBackSpace => {
                let mut from = self.cursor;
                while from > 0 && !self.chars[from - 1].is_alphanumeric() {
                    from -= 1;
                }
                while from > 0 && self.chars[from - 1].is_alphanumeric() {
                    from -= 1;
                }
                self.chars.drain(from..self.cursor);
                self.edited(from, self.cursor - from, 0);
                self.cursor = from;
            }
            Key::Delete => {
                if self.cursor < self.chars.len() {
                    self.chars.remove(self.cursor);
                    self.edited(self.cursor, 1, 0);
                }
            }
            Key::Left => self.cursor = self.cursor.saturating_sub(1),
            Key::Right => self.cursor = (self.cursor + 1).min(self.chars.len()),
            Key::Home => self.cursor = 0,
            Key::End => self.cursor = self.chars.len(),
            Key::Enter | Key::Reset => return self.end_line(matcher),
        }
        None
    }

    /// Commits without ending the line (call after a pause in typing).
    pub fn flush<'m>(&mut self, matcher: &'m Matcher) -> Option<Committed<'m>> {
        self.commit(matcher, true)
    }

    /// Focus moved to another window: the line is committed and forgotten.
    pub fn focus_changed<'m>(&mut self, matcher: &'m Matcher) -> Option<Committed<'m>> {
        self.end_line(matcher)
    }

    fn end_line<'m>(&mut self, matcher: &'m Matcher) -> Option<Committed<'m>> {
        let committed = self.commit(matcher, true);
        self.chars.clear();
        self.cursor = 0;
        self.reported.clear();
        committed
    }

    /// Scans the line; returns the hits not reported before (and, for a
    /// `whole` line, the line even without them).
    fn commit<'m>(&mut self, matcher: &'m Matcher, whole: bool) -> Option<Committed<'m>> {
        if self.chars.is_empty() {
            return None;
        }
        let text = self.text();
        let mut fresh = Vec::new();
        let mut now = Vec::new();
        let mut gravest = 0;
        for hit in matcher.scan(&text) {
            gravest = gravest.max(hit.severity);
            let at = text[..hit.start].chars().count();
            let end = at + text[hit.start..hit.end].chars().count();
            let key = (hit.entry.term.clone(), hit.entry.category.clone(), at, end);
            if !self.reported.contains(&key) {
                fresh.push(hit);
            }
            now.push(key);
        }
        // Hits edited away are forgotten: typed again, they are new.
        self.reported = now;
        (whole || !fresh.is_empty()).then_some(Committed {
            text,
            hits: fresh,
            whole,
            gravest,
        })
    }

    /// `removed` characters at `at` were replaced by `inserted` ones: a
    /// reported hit after the edit moves with its text; one the edit
    /// touches no longer stands, so typed again it is new.
    fn edited(&mut self, at: usize, removed: usize, inserted: usize) {
        self.reported.retain_mut(|(_, _, start, end)| {
            if at >= *end {
                true
            } else if at + removed <= *start {
                *start = *start + inserted - removed;
                *end = *end + inserted - removed;
                true
            } else {
                false
            }
        });
    }

    /// Drops the oldest words so that about [`KEEP_CHARS`] remain.
    fn cut(&mut self) {
        let mut drop = self.chars.len() - KEEP_CHARS;
        while drop < self.chars.len() && !self.chars[drop].is_whitespace() {
            drop += 1;
        }
        self.chars.drain(..drop);
        self.cursor = self.cursor.saturating_sub(drop);
        self.reported.retain_mut(|(_, _, start, end)| {
            let kept = *start >= drop;
            *start = start.saturating_sub(drop);
            *end = end.saturating_sub(drop);
            kept
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Libraries, MatcherBuilder};
    use std::sync::OnceLock;

    fn m() -> &'static Matcher {
        static M: OnceLock<Matcher> = OnceLock::new();
        M.get_or_init(|| {
            MatcherBuilder::new(Libraries::builtin().unwrap())
                .build()
                .unwrap()
        })
    }

    /// Types `keys` (characters, with `<` for BackSpace, `«` for Left,
    /// `»` for Right, `^` for Home, `$` for End, `~` for Delete) and
    /// returns every term reported.
    fn type_keys(stream: &mut KeyStream, keys: &str) -> Vec<String> {
        let mut terms = Vec::new();
        for c in keys.chars() {
            let key = match c {
                '<' => Key::BackSpace,
                '«' => Key::Left,
                '»' => Key::Right,
                '^' => Key::Home,
                '$' => Key::End,
                '~' => Key::Delete,
                '\n' => Key::Enter,
                c => Key::Char(c),
            };
            if let Some(done) = stream.feed(key, m()) {
                for h in &done.hits {
                    assert!(
                        done.text.is_char_boundary(h.start) && done.text.is_char_boundary(h.end)
                    );
                    terms.push(h.entry.term.clone());
                }
            }
        }
        terms
    }

    #[test]
    fn a_phrase_typed_key_by_key_is_found_once() {
        let mut s = KeyStream::new();
        let terms = type_keys(&mut s, "i want to kill myself and nobody cares\n");
        assert_eq!(
            terms.iter().filter(|t| *t == "kill myself").count(),
            1,
            "{terms:?}"
        );
    }

    #[test]
    fn what_counts_is_what_the_user_ended_up_with() {
        let mut s = KeyStream::new();
        // A typo corrected with BackSpace is found.
        assert!(type_keys(&mut s, "kill mysefl<<lf\n").contains(&"kill myself".to_owned()));
        // Typed and rubbed out before the word was finished: nothing.
        let got = type_keys(&mut s, "kill myse<<<<<<<<<nice day\n");
        assert!(!got.contains(&"kill myself".to_owned()), "{got:?}");
        // Words inserted by moving the cursor back.
        let got = type_keys(&mut s, "kill self««««my$\n");
        assert!(got.contains(&"kill myself".to_owned()), "{got:?}");
        // Home, then Delete rubs out the start: "xkill myself" → "kill myself".
        let got = type_keys(&mut s, "xkill myself^~\n");
        assert!(got.contains(&"kill myself".to_owned()), "{got:?}");
    }

    #[test]
    fn an_ended_line_comes_whole_with_its_gravest_severity() {
        let mut s = KeyStream::new();
        // Within the line, only new hits commit.
        for c in "see you later ".chars() {
            assert!(s.feed(Key::Char(c), m()).is_none());
        }
        let done = s.feed(Key::Enter, m()).expect("a whole line");
        assert!(done.whole && done.hits.is_empty() && done.gravest == 0);
        assert_eq!(done.text, "see you later ");
        // A hit reported mid-line still counts in the gravest at the end.
        type_keys(&mut s, "i want to kill myself ");
        let done = s.feed(Key::Enter, m()).expect("a whole line");
        assert!(done.hits.is_empty(), "reported before");
        assert_eq!(done.gravest, 5);
        assert!(
            s.feed(Key::Enter, m()).is_none(),
            "an empty line is nothing"
        );
    }

    #[test]
    fn a_pause_flushes_the_last_word() {
        let mut s = KeyStream::new();
        let got = type_keys(&mut s, "i want to kill myself");
        assert!(!got.contains(&"kill myself".to_owned()), "{got:?}");
        let done = s.flush(m()).expect("flush commits");
        assert!(done.hits.iter().any(|h| h.entry.term == "kill myself"));
        // Not again at the end of the line.
        assert!(!type_keys(&mut s, "\n").contains(&"kill myself".to_owned()));
    }

    #[test]
    fn focus_change_starts_a_new_line() {
        let mut s = KeyStream::new();
        type_keys(&mut s, "kill my");
        let ended = s.focus_changed(m()).expect("the line ends");
        assert!(ended.whole && ended.hits.is_empty());
        assert_eq!(ended.text, "kill my");
        assert!(s.is_empty());
        assert!(!type_keys(&mut s, "self\n").contains(&"kill myself".to_owned()));
    }

    #[test]
    fn memory_is_bounded_and_late_phrases_still_match() {
        let mut s = KeyStream::new();
        let long = "lorem ipsum dolor sit amet ".repeat(400);
        assert!(type_keys(&mut s, &long).is_empty());
        assert!(s.len() <= MAX_CHARS);
        let got = type_keys(&mut s, "i want to kill myself ");
        assert!(got.contains(&"kill myself".to_owned()));
        assert!(s.len() <= MAX_CHARS);
    }

    #[test]
    fn text_typed_before_a_reported_hit_does_not_report_it_again() {
        let mut s = KeyStream::new();
        let first = type_keys(&mut s, "kill myself ");
        // Home, then a few words in front of it, each committed at a space.
        let later = type_keys(&mut s, "^oh no i \n");
        assert_eq!(first.iter().filter(|t| *t == "kill myself").count(), 1);
        assert_eq!(
            later.iter().filter(|t| *t == "kill myself").count(),
            0,
            "{later:?}"
        );
    }

    #[test]
    fn edited_away_and_typed_again_is_new() {
        let mut s = KeyStream::new();
        let first = type_keys(&mut s, "kill myself ");
        // Rub out "self " and type it again.
        let again = type_keys(&mut s, "<<<<<self ");
        assert_eq!(first.iter().filter(|t| *t == "kill myself").count(), 1);
        assert_eq!(again.iter().filter(|t| *t == "kill myself").count(), 1);
    }
}
