//! The exact normaliser: text in, a normalised byte string out, with every
//! byte mapped back to the span of the original text it came from.
//!
//! The normalised alphabet is `a`–`z`, `0`–`9`, [`AMBIGUOUS_IL`] (a `1`,
//! `!` or `|` inside a word, which may be an i or an l), [`OPAQUE`] (a
//! letter of another script) and `' '` (one word boundary, however many
//! spaces or punctuation marks it stands for). The output always starts
//! and ends with a boundary, so whole-word rules need no special case at
//! the ends of the text.
//!
//! What it undoes, in one pass over the characters:
//! - case, accents, compatibility forms (fullwidth, mathematical letters,
//!   ligatures, circled digits) and Cyrillic/Greek look-alikes (see
//!   [`crate::fold`]);
//! - zero-width characters, bidi controls and combining marks (dropped);
//! - leetspeak: inside a word that has at least one letter, `0 3 4 5 7 @ $`
//!   read as `o e a s t a s`, and `1 ! |` as "i or l"; a word of digits only
//!   stays a number;
//! - separators inside a word: `. - _ * '` between two word characters are
//!   dropped ("s.u.i.c.i.d.e", "self-harm" → "selfharm", "don't" → "dont");
//! - letters spaced out: three or more one-letter words separated by one or
//!   two spaces are joined ("k i l l" → "kill");
//! - a number run into a word: two or more digits and then a letter are
//!   read as two words ("45kg" → "45 kg", "13yo" → "13 yo"), where
//!   leetspeak would have read "askg"; one digit stays leetspeak ("5ex").
//!
//! Repeated letters are *not* collapsed here: the matcher compares runs
//! ("kiiiill" has at least the letters of "kill"), see [`crate::skeleton`].

use crate::fold::{AMBIGUOUS_IL, ASCII, Class, Fold, OPAQUE, fold_char, leet};

/// Normalised text and where each byte came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Normalized {
    /// The normalised bytes (ASCII).
    pub bytes: Vec<u8>,
    /// For each normalised byte, the byte range of the original text it
    /// stands for. Boundaries added at the ends have empty ranges.
    pub spans: Vec<(u32, u32)>,
    /// Whether spaced-out letters were joined. Text like "how old r u a"
    /// reads both ways, so the matcher then also looks at
    /// [`normalize_unjoined`].
    pub joined: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Letter,
    Digit,
    Leet,
}

#[derive(Debug, Clone, Copy)]
struct Unit {
    byte: u8,
    kind: Kind,
    start: u32,
    end: u32,
}

struct Token {
    /// Its units, as a range of the shared unit list.
    units: std::ops::Range<usize>,
    /// Original byte range of the boundary run before this token.
    gap: (u32, u32),
}

fn is_ascii_alnum(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Normalises `text`. Cost: linear in the text, one allocation per output
/// vector and per word.
pub fn normalize(text: &str) -> Normalized {
    normalize_with(text, true)
}

/// Normalises `text` without joining spaced-out letters.
pub fn normalize_unjoined(text: &str) -> Normalized {
    normalize_with(text, false)
}

fn normalize_with(text: &str, join_spaced: bool) -> Normalized {
    if text.is_ascii()
        && let Some(out) = normalize_ascii(text, join_spaced)
    {
        return out;
    }
    normalize_general(text, join_spaced)
}

/// [`normalize_general`] for ASCII text, byte by byte straight into the
/// output: most text the matcher looks at. `None` where spaced-out
/// letters would be joined (the general path does that).
fn normalize_ascii(text: &str, join_spaced: bool) -> Option<Normalized> {
    let bytes = text.as_bytes();
    let mut out = Normalized::default();
    out.bytes.reserve(text.len() + 2);
    out.spans.reserve(text.len() + 2);
    out.bytes.push(b' ');
    out.spans.push((0, 0));
    let mut word = AsciiWord::default();
    let mut words = 0usize;
    // The run of boundary characters since the last word.
    let mut gap: (u32, u32) = (0, 0);
    // One-letter words in a row, each after a gap of one or two spaces.
    let mut singles = 0usize;
    // Ends the word being read; `false` where spaced-out letters would be
    // joined (the general path does that).
    let mut end_word = |out: &mut Normalized, word: &mut AsciiWord, words: &mut usize| -> bool {
        if word.has_letter {
            for b in &mut out.bytes[word.start..] {
                *b = leet(*b);
            }
        }
        let single = word.units == 1 && !word.first_is_digit;
        let narrow = {
            let g = &bytes[word.gap.0 as usize..word.gap.1 as usize];
            (1..=2).contains(&g.len()) && g.iter().all(|&b| b == b' ')
        };
        singles = match (single, singles > 0 && narrow) {
            (false, _) => 0,
            (true, true) => singles + 1,
            (true, false) => 1,
        };
        *words += 1;
        *word = AsciiWord::default();
        singles < 3 || !join_spaced
    };
    for (i, &b) in bytes.iter().enumerate() {
        let (start, end) = (i as u32, i as u32 + 1);
        let in_word = word.units > 0;
        let next = bytes.get(i + 1);
        let unit = match ASCII[b as usize] {
            Class::Letter(l) => Some((l, Kind::Letter)),
            Class::Digit(d) => Some((d, Kind::Digit)),
            Class::Leet(l @ (b'@' | b'$')) => Some((l, Kind::Leet)),
            Class::Leet(l) if in_word && is_ascii_alnum(next) => Some((l, Kind::Leet)),
            Class::Sep if in_word && is_ascii_alnum(next) => continue,
            _ => None,
        };
        match unit {
            Some((byte, kind)) => {
                // Two or more digits and then a letter: a number, and
                // then a word ("45kg"), as `split_numbers` reads it.
                if kind == Kind::Letter && word.units >= 2 && word.only_digits {
                    if !end_word(&mut out, &mut word, &mut words) {
                        return None;
                    }
                    gap = (start, start);
                }
                if word.units == 0 {
                    word.only_digits = true;
                    word.gap = gap;
                    if words > 0 {
                        out.bytes.push(b' ');
                        out.spans.push(gap);
                    }
                    word.start = out.bytes.len();
                    word.first_is_digit = kind == Kind::Digit;
                }
                word.units += 1;
                word.has_letter |= kind == Kind::Letter;
                word.only_digits &= kind == Kind::Digit;
                out.bytes.push(byte);
                out.spans.push((start, end));
            }
            None if in_word => {
                if !end_word(&mut out, &mut word, &mut words) {
                    return None;
                }
                gap = (start, end);
            }
            None if gap.0 == gap.1 => gap = (start, end),
            None => gap.1 = end,
        }
    }
    if word.units > 0 && !end_word(&mut out, &mut word, &mut words) {
        return None;
    }
    let len = text.len() as u32;
    out.bytes.push(b' ');
    out.spans.push((len, len));
    Some(out)
}

/// The word [`normalize_ascii`] is reading: where it starts in the output,
/// its units, whether one is a letter (then its digits and symbols read as
/// letters), whether it is all digits so far, and the gap before it.
#[derive(Default)]
struct AsciiWord {
    start: usize,
    units: usize,
    has_letter: bool,
    first_is_digit: bool,
    only_digits: bool,
    gap: (u32, u32),
}

fn normalize_general(text: &str, join_spaced: bool) -> Normalized {
    let bytes = text.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    // Every word's units, one after another; the current word's start at
    // `current`.
    let mut units: Vec<Unit> = Vec::with_capacity(text.len());
    let mut current = 0usize;
    // The run of boundary characters since the last word, and the one that
    // stood before the word being read.
    let mut gap: (u32, u32) = (0, 0);
    let mut token_gap: (u32, u32) = (0, 0);

    for (i, c) in text.char_indices() {
        let start = i as u32;
        let end = (i + c.len_utf8()) as u32;
        let in_word = units.len() > current;
        let next = bytes.get(end as usize);
        let before = units.len() - current;
        let mut boundary = false;
        if c.is_ascii() {
            match ASCII[c as usize] {
                Class::Letter(b) => units.push(Unit {
                    byte: b,
                    kind: Kind::Letter,
                    start,
                    end,
                }),
                Class::Digit(b) => units.push(Unit {
                    byte: b,
                    kind: Kind::Digit,
                    start,
                    end,
                }),
                Class::Leet(b @ (b'@' | b'$')) => units.push(Unit {
                    byte: b,
                    kind: Kind::Leet,
                    start,
                    end,
                }),
                Class::Leet(b) => {
                    if in_word && is_ascii_alnum(next) {
                        units.push(Unit {
                            byte: b,
                            kind: Kind::Leet,
                            start,
                            end,
                        })
                    } else {
                        boundary = true;
                    }
                }
                Class::Sep => {
                    if !(in_word && is_ascii_alnum(next)) {
                        boundary = true;
                    }
                }
                Class::Boundary | Class::NonAscii => boundary = true,
            }
        } else {
            match fold_char(c) {
                Fold::Letters(b, n) => {
                    for &byte in &b[..n as usize] {
                        let kind = if byte.is_ascii_digit() {
                            Kind::Digit
                        } else {
                            Kind::Letter
                        };
                        units.push(Unit {
                            byte,
                            kind,
                            start,
                            end,
                        });
                    }
                }
                Fold::Opaque => units.push(Unit {
                    byte: OPAQUE,
                    kind: Kind::Letter,
                    start,
                    end,
                }),
                Fold::Ignore => {}
                Fold::Boundary => boundary = true,
                Fold::Word(w) => {
                    // A word of its own: the word before it ends here,
                    // and the next one starts after it.
                    if units.len() > current {
                        tokens.push(Token {
                            units: current..units.len(),
                            gap: token_gap,
                        });
                        current = units.len();
                        gap = (start, start);
                    }
                    for &byte in w.as_bytes() {
                        units.push(Unit {
                            byte,
                            kind: Kind::Letter,
                            start,
                            end,
                        });
                    }
                    tokens.push(Token {
                        units: current..units.len(),
                        gap,
                    });
                    current = units.len();
                    gap = (end, end);
                    continue;
                }
            }
        }
        if before == 0 && units.len() > current {
            token_gap = gap;
        }
        if boundary {
            if units.len() > current {
                tokens.push(Token {
                    units: current..units.len(),
                    gap: token_gap,
                });
                current = units.len();
                gap = (start, end);
            } else if gap.0 == gap.1 {
                gap = (start, end);
            } else {
                gap.1 = end;
            }
        }
    }
    if units.len() > current {
        tokens.push(Token {
            units: current..units.len(),
            gap: token_gap,
        });
    }

    let tokens = split_numbers(tokens, &units);
    let spaced = if join_spaced {
        spaced_runs(&tokens, &units, bytes)
    } else {
        vec![false; tokens.len()]
    };
    let mut out = Normalized {
        joined: spaced.contains(&true),
        ..Normalized::default()
    };
    out.bytes.reserve(text.len() + 2);
    out.spans.reserve(text.len() + 2);
    out.bytes.push(b' ');
    out.spans.push((0, 0));
    for (t, token) in tokens.iter().enumerate() {
        if t > 0 && !spaced[t] {
            out.bytes.push(b' ');
            out.spans.push(token.gap);
        }
        let word = &units[token.units.clone()];
        let has_letter = word.iter().any(|u| u.kind == Kind::Letter);
        for u in word {
            let byte = match (u.kind, has_letter) {
                (Kind::Letter, _) => u.byte,
                (Kind::Digit | Kind::Leet, true) => leet(u.byte),
                (Kind::Digit, false) => u.byte,
                (Kind::Leet, false) => u.byte,
            };
            out.bytes.push(byte);
            out.spans.push((u.start, u.end));
        }
    }
    let len = text.len() as u32;
    out.bytes.push(b' ');
    out.spans.push((len, len));
    out
}

/// A word of two or more digits and then letters is a number and a word
/// ("45kg", "13yo", "888casino"): read as one, its digits would read as
/// letters ("askg"). The word after it has an empty gap.
fn split_numbers(tokens: Vec<Token>, units: &[Unit]) -> Vec<Token> {
    let split_at = |t: &Token| {
        let word = &units[t.units.clone()];
        let digits = word.iter().take_while(|u| u.kind == Kind::Digit).count();
        (digits >= 2 && word.get(digits).is_some_and(|u| u.kind == Kind::Letter))
            .then_some(t.units.start + digits)
    };
    if !tokens.iter().any(|t| split_at(t).is_some()) {
        return tokens;
    }
    let mut out = Vec::with_capacity(tokens.len() + 1);
    for t in tokens {
        match split_at(&t) {
            Some(at) => {
                let s = units[at].start;
                out.push(Token {
                    units: t.units.start..at,
                    gap: t.gap,
                });
                out.push(Token {
                    units: at..t.units.end,
                    gap: (s, s),
                });
            }
            None => out.push(t),
        }
    }
    out
}

/// For each token, whether it joins the previous one because both belong
/// to a run of three or more one-letter words separated by at most two
/// spaces ("k i l l").
fn spaced_runs(tokens: &[Token], units: &[Unit], text: &[u8]) -> Vec<bool> {
    let single = |t: &Token| t.units.len() == 1 && units[t.units.start].kind != Kind::Digit;
    let narrow = |t: &Token| {
        let (s, e) = t.gap;
        let gap = &text[s as usize..e as usize];
        (1..=2).contains(&gap.len()) && gap.iter().all(|&b| b == b' ')
    };
    let mut join = vec![false; tokens.len()];
    let mut i = 0;
    while i < tokens.len() {
        if !single(&tokens[i]) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < tokens.len() && single(&tokens[j]) && narrow(&tokens[j]) {
            j += 1;
        }
        if j - i >= 3 {
            for flag in &mut join[i + 1..j] {
                *flag = true;
            }
        }
        i = j;
    }
    join
}

/// Normalises a library term or exception: as [`normalize`], without the
/// boundaries at the ends. Spaced-out letters in a term are not joined.
pub fn normalize_term(term: &str) -> Vec<u8> {
    let n = normalize(term);
    let inner = &n.bytes[1..n.bytes.len() - 1];
    inner.to_vec()
}

/// The `1`/`!`/`|` reading: does text byte `t` satisfy term byte `p`?
pub fn compatible(p: u8, t: u8) -> bool {
    p == t || (t == AMBIGUOUS_IL && (p == b'i' || p == b'l'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        String::from_utf8(normalize(s).bytes).unwrap()
    }

    #[test]
    fn undoes_the_obfuscations_it_claims() {
        assert_eq!(n("KILL Myself"), " kill myself ");
        assert_eq!(n("k1ll"), " k1ll ");
        assert_eq!(n("s.u.i.c.i.d.e"), " suicide ");
        assert_eq!(n("k i l l"), " kill ");
        assert_eq!(n("k  i  l  l  me"), " kill me ");
        assert_eq!(n("kiiiill"), " kiiiill ");
        assert_eq!(n("ｋｉｌｌ"), " kill ");
        assert_eq!(n("kіll"), " kill "); // Cyrillic і
        assert_eq!(n("k\u{200B}ill"), " kill ");
        assert_eq!(n("h4t3 y0u"), " hate you ");
        assert_eq!(n("$ex"), " sex ");
        assert_eq!(n("don't"), " dont ");
        assert_eq!(n("self-harm"), " selfharm ");
        assert_eq!(n("s3lf h@rm"), " self harm ");
    }

    #[test]
    fn an_emoji_code_word_is_a_word_of_its_own() {
        assert_eq!(n("got ❄️ and 🍃 hmu"), " got emojisnow and emojileaf hmu ");
        // Touching words on either side stay words of their own.
        assert_eq!(n("weed🍃x"), " weed emojileaf x ");
        assert_eq!(n("🔌🍃"), " emojiplug emojileaf ");
        // An emoji no library reads is a boundary, as before.
        assert_eq!(n("hi 😀 there"), " hi there ");
        // Its letters map back to the emoji's own bytes.
        let norm = normalize("a💊b");
        let at = norm.bytes.iter().position(|&b| b == b'e').unwrap();
        assert_eq!(norm.spans[at], (1, 5));
        assert_eq!(normalize_term("💊"), b"emojipill".to_vec());
    }

    #[test]
    fn a_number_then_a_word_is_read_as_both() {
        assert_eq!(n("under 45kg"), " under 45 kg ");
        assert_eq!(n("im 13yo"), " im 13 yo ");
        assert_eq!(n("４５ｋｇ"), " 45 kg ");
        // One digit is leetspeak, as ever; a number alone stays a number.
        assert_eq!(n("5ex"), " sex ");
        assert_eq!(n("2nd 1984"), " 2nd 1984 ");
        let out = normalize("45kg");
        assert_eq!(
            out.spans[3],
            (2, 2),
            "the boundary between stands for nothing"
        );
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        assert_eq!(n("I have 5 apples, 2013!"), " i have 5 apples 2013 ");
        assert_eq!(n("stop!"), " stop ");
        assert_eq!(n("well... then"), " well then ");
        assert_eq!(n("a, b"), " a b ");
        assert_eq!(n(""), "  ");
    }

    proptest::proptest! {
        /// The ASCII path gives exactly what the general one gives, spans
        /// included, whenever it answers.
        #[test]
        fn the_ascii_path_agrees_with_the_general_one(
            text in "[ a-zA-Z0-9.!|@$'_*,\n-]{0,48}",
            join in proptest::bool::ANY,
        ) {
            if let Some(fast) = normalize_ascii(&text, join) {
                proptest::prop_assert_eq!(fast, normalize_general(&text, join));
            }
        }
    }

    #[test]
    fn the_ascii_path_answers_for_all_but_spaced_letters() {
        for text in [
            "Hello, world!",
            "k1ll my$elf",
            "s.u.i.c.i.d.e",
            "a b",
            "i am 12 lol",
        ] {
            assert!(normalize_ascii(text, true).is_some(), "{text}");
        }
        assert!(normalize_ascii("k i l l", true).is_none());
        assert!(normalize_ascii("k i l l", false).is_some());
    }

    #[test]
    fn spans_point_into_the_original() {
        let text = "Ｋ i l l";
        let out = normalize(text);
        for (b, &(s, e)) in out.bytes.iter().zip(&out.spans) {
            assert!(text.is_char_boundary(s as usize) && text.is_char_boundary(e as usize));
            if *b != b' ' {
                assert!(s < e);
            }
        }
        assert_eq!(out.spans[1], (0, 3));
    }
}
