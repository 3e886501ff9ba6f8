//! What one character means to the matcher: letters folded to ASCII
//! (NFKD with marks dropped, case folded, Cyrillic and Greek look-alikes,
//! fullwidth and mathematical forms), characters to ignore (zero-width,
//! combining marks, soft hyphen), the pictographs pupils use as code
//! words (🍃 for cannabis, 🔌 for a dealer, 🔪 for a knife) read as words
//! of their own, and everything else a word boundary.
//!
//! ASCII is answered by a 256-entry table ([`ASCII`]); other characters by
//! [`fold_char`], which is slower and rare in the text schools see.

use unicode_normalization::char::{decompose_compatible, is_combining_mark};

/// The class of an ASCII byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A letter, already lowercased.
    Letter(u8),
    /// A digit: a digit in a number, a letter in leetspeak ("k1ll").
    Digit(u8),
    /// `@ $ ! |`: letters in leetspeak inside a word, punctuation elsewhere.
    Leet(u8),
    /// `. - _ * '`: dropped between two word characters ("s.u.i.c.i.d.e"),
    /// a boundary elsewhere.
    Sep,
    /// Whitespace and all other punctuation.
    Boundary,
    /// A byte of a multi-byte character: see [`fold_char`].
    NonAscii,
}

const fn class_of(b: u8) -> Class {
    match b {
        b'a'..=b'z' => Class::Letter(b),
        b'A'..=b'Z' => Class::Letter(b + 32),
        b'0'..=b'9' => Class::Digit(b),
        b'@' | b'$' | b'!' | b'|' => Class::Leet(b),
        b'.' | b'-' | b'_' | b'*' | b'\'' => Class::Sep,
        0x80..=0xff => Class::NonAscii,
        _ => Class::Boundary,
    }
}

/// The class of every ASCII byte, by index.
pub static ASCII: [Class; 256] = {
    let mut t = [Class::Boundary; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class_of(i as u8);
        i += 1;
    }
    t
};

/// The letter a digit or leet symbol stands for inside a word. Digits with
/// no common letter reading stay themselves.
pub const fn leet(b: u8) -> u8 {
    match b {
        b'0' => b'o',
        b'1' | b'!' | b'|' => AMBIGUOUS_IL,
        b'3' => b'e',
        b'4' | b'@' => b'a',
        b'5' | b'$' => b's',
        b'7' => b't',
        other => other,
    }
}

/// The normalised form of `1`, `!` and `|` inside a word: it may stand for
/// `i` or for `l`, and matches either in a term.
pub const AMBIGUOUS_IL: u8 = b'1';

/// What a non-ASCII character becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    /// Up to four ASCII lowercase letters or digits.
    Letters([u8; 4], u8),
    /// A letter of a script the libraries do not cover (CJK, Arabic, …):
    /// part of a word, never part of a term.
    Opaque,
    /// Drop it: zero-width, combining mark, soft hyphen, variation selector.
    Ignore,
    /// A pictograph that is a word of its own (see [`emoji_word`]): a
    /// boundary, these letters, a boundary.
    Word(&'static str),
    /// Punctuation, symbols, spaces, emoji.
    Boundary,
}

/// The letter used for [`Fold::Opaque`] in normalised text.
pub const OPAQUE: u8 = b'#';

fn letters(s: &str) -> Fold {
    let mut out = [0u8; 4];
    let n = s.len().min(4);
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    Fold::Letters(out, n as u8)
}

/// Look-alike letters that NFKD does not map to Latin.
fn confusable(c: char) -> Option<&'static str> {
    Some(match c {
        // Cyrillic
        'а' | 'А' => "a",
        'в' | 'В' => "b",
        'с' | 'С' => "c",
        'ԁ' => "d",
        'е' | 'Е' | 'ё' | 'Ё' => "e",
        'һ' | 'Һ' | 'н' | 'Н' => "h",
        'і' | 'І' | 'ї' | 'Ї' => "i",
        'ј' | 'Ј' => "j",
        'к' | 'К' => "k",
        'м' | 'М' => "m",
        'о' | 'О' => "o",
        'р' | 'Р' => "p",
        'ԛ' => "q",
        'ѕ' | 'Ѕ' => "s",
        'т' | 'Т' => "t",
        'у' | 'У' => "y",
        'х' | 'Х' => "x",
        'ѡ' | 'ԝ' => "w",
        // Greek
        'α' | 'Α' | 'ά' => "a",
        'β' | 'Β' => "b",
        'ε' | 'Ε' | 'έ' => "e",
        'η' | 'Η' => "n",
        'ι' | 'Ι' | 'ί' => "i",
        'κ' | 'Κ' => "k",
        'μ' | 'Μ' => "m",
        'ν' | 'Ν' => "v",
        'ο' | 'Ο' | 'ό' => "o",
        'ρ' | 'Ρ' => "p",
        'τ' | 'Τ' => "t",
        'υ' | 'Υ' | 'ύ' => "u",
        'χ' | 'Χ' => "x",
        'ζ' | 'Ζ' => "z",
        // Latin letters NFKD leaves alone
        'ß' | 'ẞ' => "ss",
        'æ' | 'Æ' => "ae",
        'œ' | 'Œ' => "oe",
        'ø' | 'Ø' => "o",
        'đ' | 'Đ' | 'ð' | 'Ð' => "d",
        'ł' | 'Ł' => "l",
        'ı' => "i",
        'ħ' => "h",
        'þ' | 'Þ' => "th",
        'ŋ' => "n",
        'ɡ' => "g",
        'ɑ' => "a",
        _ => return None,
    })
}

fn is_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
    ) || is_combining_mark(c)
}

/// The word a pictograph reads as, for the emoji that pupils use in
/// place of words about drugs, weapons and sex. Each becomes a made-up
/// word ("emojipill") that no text spells, so a library names it by
/// writing the emoji itself in a term or concept ("got 💊 hmu"), and an
/// emoji no library names matches nothing, as before.
pub fn emoji_word(c: char) -> Option<&'static str> {
    Some(match c {
        '🍃' | '🍁' | '🌿' | '🌱' | '🥦' => "emojileaf",
        '🌲' | '🌳' => "emojitree",
        '❄' | '⛄' | '☃' => "emojisnow",
        '💊' => "emojipill",
        '🔌' => "emojiplug",
        '🍄' => "emojimushroom",
        '💉' => "emojineedle",
        '💨' => "emojismoke",
        '🚬' => "emojicigarette",
        '⚡' => "emojibolt",
        '🔪' | '🗡' => "emojiknife",
        '🔫' => "emojigun",
        '💣' => "emojibomb",
        '🍆' => "emojiaubergine",
        '🍑' => "emojipeach",
        '💦' => "emojidroplets",
        '👅' => "emojitongue",
        '🩸' => "emojiblood",
        '🪢' => "emojirope",
        '⚰' => "emojicoffin",
        _ => return None,
    })
}

/// Folds one non-ASCII character.
pub fn fold_char(c: char) -> Fold {
    if is_ignorable(c) {
        return Fold::Ignore;
    }
    if let Some(w) = emoji_word(c) {
        return Fold::Word(w);
    }
    if let Some(s) = confusable(c) {
        return letters(s);
    }
    let mut out = [0u8; 4];
    let mut n = 0usize;
    let mut other = false;
    decompose_compatible(c, |d| {
        if d.is_ascii_alphanumeric() {
            if n < 4 {
                out[n] = d.to_ascii_lowercase() as u8;
                n += 1;
            }
        } else if let Some(s) = confusable(d) {
            for &b in s.as_bytes() {
                if n < 4 {
                    out[n] = b;
                    n += 1;
                }
            }
        } else if !is_combining_mark(d) {
            other = true;
        }
    });
    if n > 0 && !other {
        return Fold::Letters(out, n as u8);
    }
    if c.is_alphabetic() {
        Fold::Opaque
    } else {
        Fold::Boundary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(c: char) -> String {
        match fold_char(c) {
            Fold::Letters(b, n) => String::from_utf8(b[..n as usize].to_vec()).unwrap(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn folds_accents_widths_and_lookalikes() {
        assert_eq!(s('é'), "e");
        assert_eq!(s('Ｋ'), "k");
        assert_eq!(s('𝐤'), "k");
        assert_eq!(s('а'), "a"); // Cyrillic
        assert_eq!(s('ο'), "o"); // Greek
        assert_eq!(s('ß'), "ss");
        assert_eq!(s('ﬁ'), "fi");
        assert_eq!(s('①'), "1");
        assert_eq!(fold_char('\u{200B}'), Fold::Ignore);
        assert_eq!(fold_char('\u{0301}'), Fold::Ignore);
        assert_eq!(fold_char('\u{202E}'), Fold::Ignore);
        assert_eq!(fold_char('😀'), Fold::Boundary);
        assert_eq!(fold_char('—'), Fold::Boundary);
        assert_eq!(fold_char('中'), Fold::Opaque);
        assert_eq!(fold_char('💊'), Fold::Word("emojipill"));
        // ❄️ is ❄ and a variation selector, which is ignored.
        assert_eq!(fold_char('❄'), Fold::Word("emojisnow"));
        assert_eq!(fold_char('\u{FE0F}'), Fold::Ignore);
    }
}
