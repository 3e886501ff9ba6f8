//! The engine against the shipped libraries: recall under every
//! obfuscation the normaliser claims to undo, exceptions, offsets.

use std::sync::OnceLock;

use proptest::prelude::*;
use wordlists::{Libraries, Matcher, MatcherBuilder, Rule};

fn matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        MatcherBuilder::new(Libraries::builtin().unwrap())
            .build()
            .unwrap()
    })
}

fn caught(text: &str, term: &str) -> bool {
    matcher().scan(text).iter().any(|h| h.entry.term == term)
}

#[test]
fn shipped_libraries_pass_the_lint_and_are_large_enough() {
    let libs = Libraries::builtin().unwrap();
    assert_eq!(libs.lint(), Vec::<String>::new());
    let n = libs.entries().count();
    assert!(n >= 1500, "only {n} entries");
    for grave in ["self-harm", "grooming", "sexting", "extremism"] {
        let cat = libs.categories.iter().find(|c| c.name == grave).unwrap();
        let phrases = cat.entries.iter().filter(|e| e.term.contains(' ')).count();
        assert!(
            phrases * 2 > cat.entries.len(),
            "{grave}: most entries must be phrases"
        );
    }
}

/// Applies one obfuscation to a term; `None` where it does not apply.
fn obfuscate(term: &str, how: &str) -> Option<String> {
    let leet = |c: char| match c {
        'a' => '4',
        'e' => '3',
        'i' => '1',
        'o' => '0',
        's' => '5',
        't' => '7',
        other => other,
    };
    let words = |f: &dyn Fn(&str) -> String| term.split(' ').map(f).collect::<Vec<_>>().join(" ");
    Some(match how {
        "upper" => term.to_uppercase(),
        "leet" => words(&|w| {
            // Leave a word's first letter alone so the word still has a letter.
            let mut cs = w.chars();
            let first = cs.next().map(String::from).unwrap_or_default();
            first + &cs.map(leet).collect::<String>()
        }),
        "dots" => words(&|w| w.chars().map(String::from).collect::<Vec<_>>().join(".")),
        "spaced" => {
            if term.contains(' ') {
                return None;
            }
            term.chars().map(String::from).collect::<Vec<_>>().join(" ")
        }
        "repeat" => words(&|w| w.chars().flat_map(|c| [c, c, c]).collect()),
        "cyrillic" => term
            .chars()
            .map(|c| match c {
                'a' => 'а',
                'e' => 'е',
                'o' => 'о',
                'c' => 'с',
                'p' => 'р',
                'x' => 'х',
                other => other,
            })
            .collect(),
        "fullwidth" => term
            .chars()
            .map(|c| match c {
                'a'..='z' => char::from_u32(c as u32 - 'a' as u32 + 0xFF41).unwrap(),
                other => other,
            })
            .collect(),
        "zero-width" => words(&|w| {
            w.chars()
                .map(String::from)
                .collect::<Vec<_>>()
                .join("\u{200B}")
        }),
        "accents" => term
            .chars()
            .map(|c| match c {
                'a' => 'á',
                'e' => 'é',
                'o' => 'ö',
                'u' => 'ü',
                other => other,
            })
            .collect(),
        _ => unreachable!(),
    })
}

#[test]
fn at_least_95_percent_of_terms_survive_each_obfuscation() {
    let m = matcher();
    let terms: Vec<_> = m
        .entries()
        .iter()
        // A context rule's name is not text to find.
        .filter(|e| !matches!(e.rule, Rule::Pattern | Rule::Context) && e.term.is_ascii())
        .collect();
    let mut report = Vec::new();
    for how in [
        "upper",
        "leet",
        "dots",
        "spaced",
        "repeat",
        "cyrillic",
        "fullwidth",
        "zero-width",
        "accents",
    ] {
        let (mut tried, mut ok, mut missed) = (0, 0, Vec::new());
        for e in &terms {
            let Some(text) = obfuscate(&e.term.to_lowercase(), how) else {
                continue;
            };
            tried += 1;
            if caught(&format!("well {text} then"), &e.term) {
                ok += 1;
            } else if missed.len() < 5 {
                missed.push(text);
            }
        }
        let rate = ok as f64 / tried as f64;
        report.push(format!(
            "{how}: {ok}/{tried} = {:.1}% (missed e.g. {missed:?})",
            rate * 100.0
        ));
        assert!(rate >= 0.95, "{}", report.join("\n"));
    }
    println!("{}", report.join("\n"));
}

#[test]
fn exceptions_never_produce_a_hit_of_their_own_category() {
    let libs = Libraries::builtin().unwrap();
    for cat in &libs.categories {
        for x in &cat.exceptions {
            let hits = matcher().scan(x);
            let own: Vec<_> = hits
                .iter()
                .filter(|h| h.entry.category == cat.name)
                .map(|h| &h.entry.term)
                .collect();
            assert!(
                own.is_empty(),
                "exception {x:?} of {} fires {own:?}",
                cat.name
            );
        }
    }
}

#[test]
fn innocent_words_that_contain_terms_stay_quiet() {
    for text in [
        "We drove through Scunthorpe to Penistone",
        "The assessment of the cocktail analysis was passed to the therapist in Sussex",
        "Matt Hancock and Alfred Hitchcock",
        "grapes and drapes",
        "My classmate Jo passed the class",
        "We are killing it in the match today",
        "I could kill for a pizza",
        "Romeo drinks the poison and dies; Juliet stabs herself with his dagger",
    ] {
        let hits: Vec<_> = matcher()
            .scan(text)
            .into_iter()
            .filter(|h| h.severity >= 3)
            .collect();
        assert!(hits.is_empty(), "{text:?}: {hits:?}");
    }
}

#[test]
fn risk_in_text_nobody_wrote_for_the_purpose() {
    for (text, term) in [
        ("honestly i just want to die at this point", "want to die"),
        (
            "pls dont tell ur parents bout this ok. dont tell your parents",
            "dont tell your parents",
        ),
        ("u should just k.y.s lol", "kys"),
        ("im gonna k1ll mys3lf", "kill myself"),
        ("send n00dz? no - send NUDES now", "send nudes"),
        (
            "are u home alone rn? are you home alone",
            "are you home alone",
        ),
        ("ive been cutting myself again", "cutting myself"),
    ] {
        assert!(
            caught(text, term),
            "{text:?} should catch {term:?}: {:?}",
            matcher().scan(text)
        );
    }
}

/// Two libraries asking for the same detector each get their hit.
/// Pupils write drugs, weapons and sex in emoji ("got ❄️ and 🍁 hmu"):
/// the libraries name the emoji themselves, and a hit's span is the
/// emoji's own bytes.
#[test]
fn emoji_code_words_are_read_in_context() {
    let captured = |text: &str, category: &str| {
        matcher()
            .scan(text)
            .iter()
            .any(|h| h.severity >= 3 && h.entry.category == category)
    };
    assert!(captured("got ❄️ and 🍁 hmu", "drugs"));
    assert!(captured("who's the 🔌 for 🍃", "drugs"));
    assert!(captured("drop me a 🍃 later", "drugs"));
    assert!(captured("i'll 🔪 u after school", "weapons"));
    assert!(captured("send me a pic of ur 🍑", "sexting"));
    // The same emoji in innocent use.
    assert!(!captured("autumn vibes 🍁🍂", "drugs"));
    assert!(!captured("going skiing ❄️❄️ so cold", "drugs"));
    assert!(!captured("took my 💊 for my cold", "drugs"));
    let text = "got 🍁 hmu";
    let hit = matcher()
        .scan(text)
        .into_iter()
        .find(|h| h.entry.category == "drugs" && h.severity >= 3)
        .expect("a drugs hit");
    assert_eq!(&text[hit.start..hit.end], "🍁 hmu");
}

#[test]
fn every_library_with_a_detector_reports_it() {
    let extra = r#"
category = "school-contacts"
title = "Contact details"
[[detector]]
kind = "phone"
severity = 2
definition = "A phone number."
"#;
    let mut libs = Libraries::builtin().unwrap();
    libs.add(wordlists::library::parse("school-contacts.toml", extra).unwrap());
    let m = MatcherBuilder::new(libs).build().unwrap();
    let mut cats: Vec<String> = m
        .scan("ring me on 07700 900123")
        .iter()
        .map(|h| h.entry.category.clone())
        .collect();
    cats.sort();
    assert_eq!(cats, ["personal-info", "school-contacts"]);
}

#[test]
fn context_words_move_severity() {
    let sev = |t: &str| {
        matcher()
            .scan(t)
            .iter()
            .find(|h| h.entry.term == "i hate myself")
            .map(|h| h.severity)
    };
    assert_eq!(sev("i hate myself"), Some(3));
    assert_eq!(sev("i hate myself lol"), Some(2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Hit offsets land on character boundaries of the original and the
    /// scan never panics, whatever the input.
    #[test]
    fn offsets_are_char_boundaries(text in "(\\PC|[ .!1|@$\u{200B}кiIlL🍃💊🔪❄\u{FE0F}]){0,80}") {
        for h in matcher().scan(&text) {
            prop_assert!(h.start <= h.end && h.end <= text.len());
            prop_assert!(text.is_char_boundary(h.start) && text.is_char_boundary(h.end));
            let (ctx, range) = h.context(&text, 20);
            prop_assert_eq!(&ctx[range], &text[h.start..h.end]);
        }
    }

    /// A term embedded in random words is found (no hidden dependence on
    /// what surrounds it, beyond word boundaries). The words start "zq",
    /// which no English word does, so that they never complete one of the
    /// libraries' exceptions ("ill shoot you a" message is one).
    #[test]
    fn terms_are_found_among_other_words(idx in 0usize..1000, before in "zq[a-z]{0,6}", after in "zq[a-z]{0,6}") {
        let entries = matcher().entries();
        let e = &entries[idx % entries.len()];
        prop_assume!(!matches!(e.rule, Rule::Pattern | Rule::Context));
        let text = format!("{before} {} {after}", e.term);
        prop_assert!(matcher().scan(&text).iter().any(|h| h.entry.term == e.term), "{}", text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Long texts are walked as four interleaved parts; the hits are
    /// exactly those of the reference scan (one walk, no shortcuts),
    /// wherever the parts meet.
    #[test]
    fn interleaved_walk_finds_what_one_walk_finds(
        picks in proptest::collection::vec((0usize..2000, 0usize..6), 700..1000),
    ) {
        let entries = matcher().entries();
        let fillers = ["the", "a", "kill my", "r u", "x", "k i l l", "\u{200B}", "naïve"];
        let mut text = String::new();
        for (n, (idx, how)) in picks.iter().enumerate() {
            let e = &entries[idx % entries.len()];
            match how {
                0 => text.push_str(&e.term),
                1 => text.push_str(&e.term.to_uppercase()),
                2 => text.push_str(&e.term.replace(' ', "  ")),
                _ => text.push_str(fillers[(idx + n) % fillers.len()]),
            }
            text.push(if n % 7 == 0 { '\n' } else { ' ' });
        }
        prop_assume!(text.len() >= 4096);
        let key = |h: &wordlists::Hit<'_>| (h.start, h.end, h.entry.term.clone(), h.severity);
        let whole: Vec<_> = matcher().scan(&text).iter().map(key).collect();
        let one: Vec<_> = matcher().scan_reference(&text).iter().map(key).collect();
        prop_assert_eq!(whole, one);
    }
}

/// Every word and phrase of every concept, in the built-in libraries.
fn concept_terms() -> &'static [String] {
    static T: OnceLock<Vec<String>> = OnceLock::new();
    T.get_or_init(|| {
        Libraries::builtin()
            .unwrap()
            .concepts
            .into_iter()
            .flat_map(|c| c.terms)
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A region an anchor marks is skipped when a quick walk over the
    /// concepts' skeletons finds no rule's concepts all there. Lines made
    /// of concept words (so rules fire and nearly fire), obfuscated and
    /// spaced out, give exactly the hits of the reference scan, which
    /// looks at every such region in full.
    #[test]
    fn skipping_regions_without_a_rule_loses_no_hit(
        picks in proptest::collection::vec((0usize..5000, 0usize..8), 1..24),
    ) {
        let terms = concept_terms();
        let fillers = ["the", "i", "u", "k i l l", "r u", "\n", "lol", "!!", "n0t", "m.u.m"];
        let mut text = String::new();
        for (n, (idx, how)) in picks.iter().enumerate() {
            let t = &terms[idx % terms.len()];
            match how {
                0..=2 => text.push_str(t),
                3 => text.push_str(&t.to_uppercase()),
                4 => text.push_str(&t.replace('o', "0").replace('e', "3")),
                5 => text.push_str(&t.chars().map(|c| format!("{c} ")).collect::<String>()),
                _ => text.push_str(fillers[(idx + n) % fillers.len()]),
            }
            text.push(' ');
        }
        let key = |h: &wordlists::Hit<'_>| (h.start, h.end, h.entry.term.clone(), h.severity);
        let quick: Vec<_> = matcher().scan(&text).iter().map(key).collect();
        let full: Vec<_> = matcher().scan_reference(&text).iter().map(key).collect();
        prop_assert_eq!(quick, full, "{:?}", text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The fast pass only chooses where the exact pass looks: on one line
    /// of terms, concept words, numbers and obfuscations, a scan finds
    /// exactly what the exact pass finds looking at the whole line.
    #[test]
    fn the_fast_pass_loses_nothing_the_exact_pass_would_find(
        picks in proptest::collection::vec((0usize..5000, 0usize..10), 1..16),
    ) {
        let entries = matcher().entries();
        let terms = concept_terms();
        let fillers = [
            "the", "i", "u", "k i l l", "45kg", "13yo", "2nd", "888", "n0t", "m.u.m", "lol!!", "naïve", "ｋｉｌｌ",
            "0o55kg", "４５kg", "12.5kg", "45\u{200B}kg", "4@5kg", "1!5yo", "x45kg", "45.kg", "45кg",
            // Emoji read as words, touching words and each other.
            "got ❄️ and 🍁 hmu", "weed🍃x", "🔌🍃", "i'll 🔪u", "45🍃kg", "k 🔪 i l l",
        ];
        let mut text = String::new();
        for (n, (idx, how)) in picks.iter().enumerate() {
            let term = &entries[idx % entries.len()].term;
            let concept = &terms[idx % terms.len()];
            match how {
                0 | 1 => text.push_str(term),
                2 | 3 => text.push_str(concept),
                4 => text.push_str(&term.to_uppercase()),
                5 => text.push_str(&concept.replace('o', "0").replace('e', "3")),
                6 => text.push_str(&term.replace(' ', ".")),
                _ => text.push_str(fillers[(idx + n) % fillers.len()]),
            }
            text.push(' ');
        }
        let key = |h: &wordlists::Hit<'_>| (h.start, h.end, h.entry.term.clone(), h.severity);
        let scan: Vec<_> = matcher().scan(&text).iter().map(key).collect();
        let exact: Vec<_> = matcher().scan_exact(&text).iter().map(key).collect();
        prop_assert_eq!(scan, exact, "{:?}", text);
    }
}
