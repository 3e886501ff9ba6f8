//! Detectors for personal information that no list of terms can hold:
//! phone numbers, email addresses, UK postcodes and street addresses.
//! Plain byte scanners over the original text: no regular expressions, no
//! allocation but the result.

use crate::library::DetectorKind;

const STREET_WORDS: &[&str] = &[
    "road", "rd", "street", "avenue", "ave", "lane", "drive", "crescent", "grove", "gardens",
    "terrace", "mews",
];
/// Street words that are ordinary English too ("3 nights in a row"): they
/// count only after a capitalised name ("4 Church Close").
const AMBIGUOUS_STREET_WORDS: &[&str] = &[
    "close", "way", "place", "court", "walk", "row", "square", "st", "dr", "ln",
];
/// Words that never form part of a street name.
const NOT_A_NAME: &[&str] = &[
    "a", "an", "the", "of", "and", "in", "on", "at", "to", "or", "m", "am", "pm", "p", "nights",
    "days", "times", "years", "hours",
];

/// Trigger bytes are looked for this many at a time.
const CHUNK: usize = 32;

fn is_trigger(c: u8) -> bool {
    c.wrapping_sub(b'0') < 10 || c == b'@'
}

/// The next digit or `@` at or after `i`. Every detector's match holds one,
/// so text without them costs one branch-free (vectorised) test per
/// [`CHUNK`] bytes.
fn next_trigger(b: &[u8], mut i: usize) -> Option<usize> {
    while i + CHUNK <= b.len() {
        if b[i..i + CHUNK]
            .iter()
            .fold(false, |acc, &c| acc | is_trigger(c))
        {
            break;
        }
        i += CHUNK;
    }
    b.get(i..)?
        .iter()
        .position(|&c| is_trigger(c))
        .map(|k| i + k)
}

/// Finds every match of `kind` in `text`, as byte ranges.
pub fn find(kind: DetectorKind, text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    find_all(text, &[kind], |_, s, e| out.push((s, e)));
    out
}

/// Runs the detectors in `kinds` over `text` in one pass, calling `found`
/// with each match's kind and byte range (on character boundaries: every
/// match begins and ends on ASCII).
pub fn find_all(
    text: &str,
    kinds: &[DetectorKind],
    mut found: impl FnMut(DetectorKind, usize, usize),
) {
    let b = text.as_bytes();
    let on = |k| kinds.contains(&k);
    let (phone, email, postcode, street) = (
        on(DetectorKind::Phone),
        on(DetectorKind::Email),
        on(DetectorKind::Postcode),
        on(DetectorKind::StreetAddress),
    );
    let mut i = 0;
    while let Some(t) = next_trigger(b, i) {
        i = t + 1;
        if b[t] == b'@' {
            if email && let Some((s, e)) = email_at(b, t) {
                found(DetectorKind::Email, s, e);
            }
            continue;
        }
        // A digit: each alphanumeric word is looked at once, from its
        // first digit; the scan then resumes after the word, so the whole
        // pass stays linear however many digits a word holds.
        let mut ws = t;
        while ws > 0 && b[ws - 1].is_ascii_alphanumeric() {
            ws -= 1;
        }
        let mut we = t;
        while we < b.len() && b[we].is_ascii_alphanumeric() {
            we += 1;
        }
        i = we;
        if phone
            && ws == t
            && let Some((s, e)) = phone_at(b, t)
        {
            found(DetectorKind::Phone, s, e);
            i = i.max(e);
            continue;
        }
        if postcode
            && (1..=2).contains(&(t - ws))
            && let Some(e) = postcode_at(b, ws, we)
        {
            found(DetectorKind::Postcode, ws, e);
            i = i.max(e);
            continue;
        }
        if street
            && ws == t
            && let Some(e) = street_at(text, ws, we)
        {
            found(DetectorKind::StreetAddress, ws, e);
            i = i.max(e);
        }
    }
}

fn word_start(b: &[u8], i: usize) -> bool {
    i == 0 || !b[i - 1].is_ascii_alphanumeric()
}

/// A phone number whose first digit is at `d`: 10 to 13 digits starting
/// with `0` or `+`, with single spaces, dashes, dots or brackets between
/// groups.
fn phone_at(b: &[u8], d: usize) -> Option<(usize, usize)> {
    let i = match b[d] {
        _ if d > 0 && b[d - 1] == b'+' && word_start(b, d - 1) => d - 1,
        b'0' if d > 0 && b[d - 1] == b'(' && word_start(b, d - 1) => d - 1,
        b'0' if word_start(b, d) => d,
        _ => return None,
    };
    let mut digits = 0;
    let mut last_digit = d;
    let mut seps = 0;
    let mut j = d;
    while j < b.len() {
        match b[j] {
            // More digits than any phone number: stop reading, so a long
            // run of digits is not re-read from every word in it.
            b'0'..=b'9' if digits > 13 => break,
            b'0'..=b'9' => {
                digits += 1;
                last_digit = j;
                seps = 0;
            }
            b' ' | b'-' | b'.' | b'(' | b')' if seps == 0 => seps += 1,
            _ => break,
        }
        j += 1;
    }
    let end = last_digit + 1;
    let clean_end = end == b.len() || !b[end].is_ascii_alphanumeric();
    ((10..=13).contains(&digits) && clean_end).then_some((i, end))
}

/// The email address around the `@` at `at`.
fn email_at(b: &[u8], at: usize) -> Option<(usize, usize)> {
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    let mut s = at;
    while s > 0 && local(b[s - 1]) {
        s -= 1;
    }
    let mut e = at + 1;
    while e < b.len() && domain(b[e]) {
        e += 1;
    }
    while e > at + 1 && b[e - 1] == b'.' {
        e -= 1;
    }
    let dom = &b[at + 1..e];
    let tld_ok = dom.iter().rposition(|&c| c == b'.').is_some_and(|d| {
        d > 0 && dom.len() - d > 2 && dom[d + 1..].iter().all(u8::is_ascii_alphabetic)
    });
    (s < at && tld_ok).then_some((s, e))
}

/// The alphanumeric word starting at or after `i`.
fn next_word(b: &[u8], mut i: usize) -> Option<(usize, usize)> {
    while i < b.len() && !b[i].is_ascii_alphanumeric() {
        i += 1;
    }
    if i == b.len() {
        return None;
    }
    let s = i;
    while i < b.len() && b[i].is_ascii_alphanumeric() {
        i += 1;
    }
    Some((s, i))
}

fn is_outward(w: &[u8]) -> bool {
    let letters = w.iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let rest = &w[letters..];
    (1..=2).contains(&letters)
        && (1..=2).contains(&rest.len())
        && rest[0].is_ascii_digit()
        && rest.iter().all(u8::is_ascii_alphanumeric)
}

fn is_inward(w: &[u8]) -> bool {
    w.len() == 3
        && w[0].is_ascii_digit()
        && w[1].is_ascii_alphabetic()
        && w[2].is_ascii_alphabetic()
}

/// A postcode starting with the word `s..e`: "SW1A 1AA", "m1 1ae",
/// "B338TH". Returns its end.
fn postcode_at(b: &[u8], s: usize, e: usize) -> Option<usize> {
    let w = &b[s..e];
    if let Some((s2, e2)) = next_word(b, e)
        && is_outward(w)
        && s2 == e + 1
        && b[e] == b' '
        && is_inward(&b[s2..e2])
    {
        return Some(e2);
    }
    ((5..=7).contains(&w.len()) && is_outward(&w[..w.len() - 3]) && is_inward(&w[w.len() - 3..]))
        .then_some(e)
}

/// A street address starting with the house number `s..e`: the number,
/// one to three words, and a street word ("12 Elm Road"). Returns its end.
fn street_at(text: &str, s: usize, e: usize) -> Option<usize> {
    let b = text.as_bytes();
    let num = &b[s..e];
    let digits = num.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 4 || num.len() > digits + 1 {
        return None;
    }
    // Up to three name words, then the street word.
    let mut name_capitalised = true;
    let mut end = e;
    for k in 1..=4 {
        let (a, z) = next_word(b, end)?;
        end = z;
        let word = &text[a..z];
        if k >= 2 {
            let street = STREET_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w))
                || (name_capitalised
                    && AMBIGUOUS_STREET_WORDS
                        .iter()
                        .any(|w| word.eq_ignore_ascii_case(w)));
            if street {
                return Some(z);
            }
        }
        let name_ok = word.bytes().all(|c| c.is_ascii_alphabetic())
            && !NOT_A_NAME.iter().any(|w| word.eq_ignore_ascii_case(w));
        if !name_ok {
            return None;
        }
        name_capitalised &= b[a].is_ascii_uppercase();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(kind: DetectorKind, text: &str) -> Vec<&str> {
        find(kind, text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }

    /// Long runs of digits, digit-laden words and spaced zeros: each byte
    /// is read a bounded number of times (these took minutes when every
    /// digit re-read its whole word or number). Only the last ten zeros of
    /// a spaced run read as a phone number.
    #[test]
    fn digit_floods_are_read_in_linear_time() {
        let floods = [
            ("7".repeat(400_000), 0),
            ("0 ".repeat(200_000), 1),
            ("a1".repeat(200_000), 0),
            ("0-".repeat(200_000), 1),
        ];
        for (text, expected) in &floods {
            let mut n = 0;
            find_all(
                text,
                &[
                    DetectorKind::Phone,
                    DetectorKind::Email,
                    DetectorKind::Postcode,
                    DetectorKind::StreetAddress,
                ],
                |_, _, _| n += 1,
            );
            assert_eq!(n, *expected, "{}", &text[..20]);
        }
    }

    #[test]
    fn finds_personal_information() {
        assert_eq!(
            f(DetectorKind::Phone, "call me on 07700 900123 ok"),
            ["07700 900123"]
        );
        assert_eq!(
            f(DetectorKind::Phone, "+44 7700-900-123"),
            ["+44 7700-900-123"]
        );
        assert_eq!(
            f(
                DetectorKind::Phone,
                "in 2013 and 2014 we had 1200000 visitors"
            ),
            Vec::<&str>::new()
        );
        assert_eq!(
            f(DetectorKind::Email, "mail jo.b@example.co.uk."),
            ["jo.b@example.co.uk"]
        );
        assert_eq!(
            f(DetectorKind::Email, "at @home or a@b"),
            Vec::<&str>::new()
        );
        assert_eq!(
            f(DetectorKind::Postcode, "I live at SW1A 1AA, and m1 1ae"),
            ["SW1A 1AA", "m1 1ae"]
        );
        assert_eq!(
            f(DetectorKind::Postcode, "page 12 of 3ab"),
            Vec::<&str>::new()
        );
        assert_eq!(
            f(DetectorKind::StreetAddress, "come to 12 Elm Road tonight"),
            ["12 Elm Road"]
        );
        assert_eq!(
            f(DetectorKind::StreetAddress, "the 3 little pigs"),
            Vec::<&str>::new()
        );
    }
}
