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

/// Finds every match of `kind` in `text`, as byte ranges.
pub fn find(kind: DetectorKind, text: &str) -> Vec<(usize, usize)> {
    match kind {
        DetectorKind::Phone => phones(text.as_bytes()),
        DetectorKind::Email => emails(text.as_bytes()),
        DetectorKind::Postcode => postcodes(text),
        DetectorKind::StreetAddress => streets(text),
    }
}

fn word_start(b: &[u8], i: usize) -> bool {
    i == 0 || !b[i - 1].is_ascii_alphanumeric()
}

/// 10 to 13 digits starting with `0` or `+`, with single spaces, dashes,
/// dots or brackets between groups.
fn phones(b: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts = (b[i] == b'0'
            || (b[i] == b'+' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
            || (b[i] == b'(' && b.get(i + 1) == Some(&b'0')))
            && word_start(b, i);
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut digits = 0;
        let mut last_digit = i;
        let mut seps = 0;
        while j < b.len() {
            match b[j] {
                b'0'..=b'9' => {
                    digits += 1;
                    last_digit = j;
                    seps = 0;
                }
                b'+' if j == i => {}
                b' ' | b'-' | b'.' | b'(' | b')' if seps == 0 => seps += 1,
                _ => break,
            }
            j += 1;
        }
        let end = last_digit + 1;
        let clean_end = end == b.len() || !b[end].is_ascii_alphanumeric();
        if (10..=13).contains(&digits) && clean_end {
            out.push((i, end));
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn emails(b: &[u8]) -> Vec<(usize, usize)> {
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'-';
    let mut out = Vec::new();
    for (at, _) in b.iter().enumerate().filter(|(_, c)| **c == b'@') {
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
        if s < at && tld_ok {
            out.push((s, e));
        }
    }
    out
}

fn words(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() {
            let s = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
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

/// "SW1A 1AA", "m1 1ae", "B338TH".
fn postcodes(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let ws = words(text);
    let mut out = Vec::new();
    for (k, &(s, e)) in ws.iter().enumerate() {
        let w = &b[s..e];
        if let Some(&(s2, e2)) = ws.get(k + 1)
            && is_outward(w)
            && s2 == e + 1
            && b[e] == b' '
            && is_inward(&b[s2..e2])
        {
            out.push((s, e2));
            continue;
        }
        if (5..=7).contains(&w.len())
            && is_outward(&w[..w.len() - 3])
            && is_inward(&w[w.len() - 3..])
        {
            out.push((s, e));
        }
    }
    out
}

/// A house number, one to three words, and a street word: "12 Elm Road".
fn streets(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let ws = words(text);
    let mut out = Vec::new();
    for (k, &(s, e)) in ws.iter().enumerate() {
        let num = &b[s..e];
        let digits = num.iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 4 || num.len() > digits + 1 {
            continue;
        }
        for n in 2..=4 {
            let Some(&(ls, le)) = ws.get(k + n) else {
                break;
            };
            let name = &ws[k + 1..k + n];
            let name_ok = name.iter().all(|&(a, z)| {
                b[a..z].iter().all(u8::is_ascii_alphabetic)
                    && !NOT_A_NAME.contains(&text[a..z].to_ascii_lowercase().as_str())
            });
            let capitalised = name.iter().all(|&(a, _)| b[a].is_ascii_uppercase());
            let last = text[ls..le].to_ascii_lowercase();
            let street = STREET_WORDS.contains(&last.as_str())
                || (capitalised && AMBIGUOUS_STREET_WORDS.contains(&last.as_str()));
            if name_ok && street {
                out.push((s, le));
                break;
            }
        }
    }
    out
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
