//! Context rules and chat-speak on small libraries written for the test,
//! so each behaviour is seen alone: a rule fires only when its concepts
//! stand close enough (and in order, if asked), says which words made it,
//! cues move its severity, a category's cues lower its term hits, and the
//! parser and lint refuse what could never work. The last test is of the
//! shipped rules: a risky line beside an ordinary one that shares its words.

use wordlists::library::parse;
use wordlists::{Libraries, Matcher, MatcherBuilder, Rule};

const LIBRARY: &str = r#"
category = "test-grooming"
lower = ["advice"]

[[group]]
severity = 4
definition = "Secrecy."
terms = ["kill yourself", "our secret", "mum at work", "dont tell an adult"]

[[concept]]
name = "adults"
terms = ["parents", "mum"]

[[concept]]
name = "question"
anchor = false
terms = ["when", "what time"]

[[concept]]
name = "you"
anchor = false
terms = ["you", "your"]

[[concept]]
name = "advice"
anchor = false
weight = 2
terms = ["tell an adult"]

[[rule]]
name = "asks when the adults are out"
severity = 3
definition = "Asks when a child's parents are away."
all = ["question", "adults"]
within = 5
raise = ["you"]

[[rule]]
name = "adults then question, in order"
severity = 2
definition = "Order matters here."
all = ["adults", "question"]
within = 5
ordered = true
"#;

fn matcher() -> Matcher {
    matcher_of("test.toml", LIBRARY)
}

/// A matcher over one library file, which must lint clean.
fn matcher_of(file: &str, toml: &str) -> Matcher {
    let mut libs = Libraries::default();
    libs.add(parse(file, toml).unwrap());
    assert_eq!(libs.lint(), Vec::<String>::new());
    MatcherBuilder::new(libs).build().unwrap()
}

fn rule_hits<'m>(m: &'m Matcher, text: &str, rule: &str) -> Vec<wordlists::Hit<'m>> {
    m.scan(text)
        .into_iter()
        .filter(|h| h.entry.term == rule)
        .collect()
}

#[test]
fn a_rule_fires_when_its_concepts_stand_close_and_says_which_words() {
    let m = matcher();
    let text = "so what time do ur parents get home";
    let hits = rule_hits(&m, text, "asks when the adults are out");
    assert_eq!(hits.len(), 1, "{:?}", m.scan(text));
    let h = &hits[0];
    assert_eq!(h.entry.rule, Rule::Context);
    assert_eq!(h.entry.category, "test-grooming");
    assert_eq!(h.entry.definition, "Asks when a child's parents are away.");
    let words: Vec<&str> = h.because.iter().map(|r| &text[r.clone()]).collect();
    assert_eq!(words, ["what time", "parents"]);
    assert_eq!(&text[h.start..h.end], "what time do ur parents");
    // "ur" is a chat spelling of "your", a raising cue: 3 + 1.
    assert_eq!(h.severity, 4);
}

#[test]
fn concepts_too_far_apart_or_absent_make_no_hit() {
    let m = matcher();
    let far = "when it rains the dog and the cat and the hamster all hide from my parents";
    assert!(rule_hits(&m, far, "asks when the adults are out").is_empty());
    assert!(rule_hits(&m, "my parents are lovely", "asks when the adults are out").is_empty());
    // A cue concept alone is never a hit, nor the start of a region.
    assert!(m.scan("when when when what time").is_empty());
}

#[test]
fn a_phrase_counts_as_one_word_and_a_rule_stays_in_one_sentence() {
    let m = matcher();
    let rule = "asks when the adults are out";
    // "what time" is two words, counted as one: five words in all.
    let phrase = "what time will the two parents be out";
    assert_eq!(rule_hits(&m, phrase, rule).len(), 1, "{:?}", m.scan(phrase));
    // The same words across the end of a sentence are two messages.
    let two = "what time is it. parents evening is tonight";
    assert!(rule_hits(&m, two, rule).is_empty(), "{:?}", m.scan(two));
    let asked = "what time? parents said no";
    assert!(rule_hits(&m, asked, rule).is_empty());
}

#[test]
fn an_ordered_rule_needs_its_concepts_in_order() {
    let m = matcher();
    let rule = "adults then question, in order";
    assert_eq!(rule_hits(&m, "parents say when", rule).len(), 1);
    assert!(rule_hits(&m, "when do parents", rule).is_empty());
}

#[test]
fn a_categorys_cues_lower_its_term_hits_and_rule_hits() {
    let m = matcher();
    let plain = m.scan("its our secret");
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].severity, 4);
    let advised = m.scan("if someone says its our secret tell an adult");
    assert_eq!(advised[0].severity, 2, "{advised:?}");
    let rule = rule_hits(
        &m,
        "when are your parents out? tell an adult if asked",
        "asks when the adults are out",
    );
    assert_eq!(rule[0].severity, 2, "3 + 1 (you) - 2 (advice)");
}

#[test]
fn a_term_right_after_a_title_or_a_naming_frame_is_a_name() {
    let m = matcher();
    let sev = |text: &str| m.scan(text).iter().map(|h| h.severity).max();
    assert_eq!(sev("its our secret"), Some(4));
    // A title, or "name is", right before the term: a name, 4 - 2.
    assert_eq!(sev("we met mr. our secret"), Some(2));
    assert_eq!(sev("her name is our secret"), Some(2));
    // Not right before it, or across a line break, or a verb ("miss").
    assert_eq!(sev("mr jones said its our secret"), Some(4));
    assert_eq!(sev("ask mr\nour secret"), Some(4));
    assert_eq!(sev("i miss our secret"), Some(4));
    // "called" alone is no frame ("getting called gay"); a place is.
    assert_eq!(sev("getting called our secret"), Some(4));
    assert_eq!(sev("a village called our secret"), Some(2));
    // A person or a pet "called", straight or after "is" or "was", is a
    // frame; "he is called" is not.
    assert_eq!(sev("a girl called our secret"), Some(2));
    assert_eq!(sev("the new boy is called our secret"), Some(2));
    assert_eq!(sev("our dog was called our secret"), Some(2));
    assert_eq!(sev("he is called our secret"), Some(4));
    assert_eq!(sev("the boy is not called our secret"), Some(4));
}

#[test]
fn a_hits_own_words_never_lower_it() {
    let m = matcher();
    // The cue "tell an adult" is inside the term: the term is not advice.
    let own = m.scan("dont tell an adult ok");
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0].severity, 4, "{own:?}");
    // The same cue beside it still lowers it.
    let advised = m.scan("if he says dont tell an adult then tell an adult");
    assert_eq!(advised[0].severity, 2, "{advised:?}");
}

#[test]
fn a_hits_own_words_are_not_its_context_words() {
    let m = matcher_of(
        "weapons.toml",
        r#"
category = "test-weapons"

[[group]]
severity = 3
definition = "A weapon at school."
raise = ["school"]
lower = ["game"]
terms = ["school shooting", "knife", "game knife"]
"#,
    );
    let sev = |text: &str, term: &str| {
        m.scan(text)
            .into_iter()
            .find(|h| h.entry.term == term)
            .map(|h| h.severity)
    };
    // "school" inside the term does not raise it, nor "game" lower it.
    assert_eq!(
        sev("a play about a school shooting", "school shooting"),
        Some(3)
    );
    assert_eq!(sev("the game knife skin", "game knife"), Some(3));
    // Beside the term they still do.
    assert_eq!(sev("bringing a knife to school", "knife"), Some(4));
    assert_eq!(sev("a knife in the game", "knife"), Some(2));
}

#[test]
fn chat_spellings_match_the_written_term_at_the_original_offsets() {
    let m = matcher();
    for (text, written) in [
        ("just kill urself", "kill urself"),
        ("u should kill urself now", "kill urself"),
        ("just KILL URSELF!!", "KILL URSELF"),
    ] {
        let hits = m.scan(text);
        assert_eq!(hits.len(), 1, "{text}: {hits:?}");
        assert_eq!(hits[0].entry.term, "kill yourself");
        assert_eq!(&text[hits[0].start..hits[0].end], written);
    }
}

#[test]
fn the_parser_and_the_lint_refuse_rules_that_could_never_work() {
    let bad = |text: &str, want: &str| {
        let e = parse("school.toml", text).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
        assert!(e.starts_with("school.toml: "), "{e}");
    };
    bad(
        "category = \"x\"\n[[rule]]\nname = \"r\"\nseverity = 3\ndefinition = \"d\"\nall = [\"a\"]\nwithin = 40\n",
        "within 40 is out of range",
    );
    bad(
        "category = \"x\"\n[[rule]]\nname = \"r\"\nseverity = 3\ndefinition = \"\"\nall = [\"a\"]\n",
        "the definition is empty",
    );
    bad(
        "category = \"x\"\n[[rule]]\nname = \"r\"\nseverity = 3\ndefinition = \"d\"\nall = []\n",
        "names no concept",
    );
    bad(
        "[[group]]\nseverity = 3\ndefinition = \"d\"\nterms = [\"a\"]\n",
        "may hold only [[concept]]s",
    );
    bad(
        "[[concept]]\nname = \"c\"\nweight = 9\nterms = [\"a\"]\n",
        "weight 9 is out of range",
    );
    bad(
        "[[concept]]\nname = \"c\"\nterms = [\"!!\"]\n",
        "has no letters or digits",
    );
    bad(
        "category = \"x\"\n[[group]]\nseverity = 3\nrule = \"context\"\ndefinition = \"d\"\nterms = [\"a\"]\n",
        "for [[rule]]s",
    );

    let mut libs = Libraries::default();
    libs.add(
        parse(
            "school.toml",
            "category = \"x\"\nlower = [\"nowhere\"]\n[[concept]]\nname = \"cue\"\nanchor = false\nterms = [\"when\"]\n[[rule]]\nname = \"r\"\nseverity = 3\ndefinition = \"d\"\nall = [\"cue\", \"missing\"]\n",
        )
        .unwrap(),
    );
    // The build, which the console runs on a school's libraries, refuses
    // the same rule rather than leave it silently doing nothing.
    let e = MatcherBuilder::new(libs.clone())
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("x: "), "{e}");
    assert!(e.contains("\"nowhere\", which no file defines"), "{e}");
    let problems = libs.lint().join("\n");
    assert!(
        problems.contains("names concept \"missing\", which no file defines"),
        "{problems}"
    );
    assert!(problems.contains("no anchor concept"), "{problems}");
    assert!(
        problems.contains("`lower` names concept \"nowhere\""),
        "{problems}"
    );
}

#[test]
fn a_schools_concept_file_adds_terms_to_a_shared_concept() {
    let mut libs = Libraries::default();
    libs.add(parse("test.toml", LIBRARY).unwrap());
    libs.add(
        parse(
            "more.toml",
            "[[concept]]\nname = \"adults\"\nterms = [\"carer\"]\n",
        )
        .unwrap(),
    );
    assert!(libs.categories.iter().all(|c| !c.name.is_empty()));
    let m = MatcherBuilder::new(libs).build().unwrap();
    assert_eq!(
        rule_hits(
            &m,
            "when does ur carer leave",
            "asks when the adults are out"
        )
        .len(),
        1
    );
}

#[test]
fn a_concepts_phrase_run_together_is_not_read_where_its_words_merge() {
    // "i live" run together is "ilive", whose skeleton (" ive ") is that
    // of "live" and "i've": such a joined form would mark every one of
    // those everyday words as a region for the rules.
    let m = matcher_of(
        "where.toml",
        r#"
category = "test-where"

[[concept]]
name = "i-live"
terms = ["i live", "we live"]

[[concept]]
name = "street"
anchor = false
terms = ["road"]

[[rule]]
name = "says where they live"
severity = 3
definition = "Gives where they live."
all = ["i-live", "street"]
within = 6
"#,
    );
    assert_eq!(
        m.candidate_regions("ive got tickets to the live show on the road"),
        0
    );
    let rule = "says where they live";
    assert_eq!(rule_hits(&m, "i live on oak road", rule).len(), 1);
    // A phrase whose words meet on different symbols keeps its joined form.
    assert_eq!(rule_hits(&m, "welive on oak road", rule).len(), 1);
    assert!(rule_hits(&m, "ive been down that road", rule).is_empty());
}

#[test]
fn a_rule_hit_that_a_term_already_covers_is_left_out() {
    let m = matcher();
    let hits = m.scan("when is ur mum at work");
    let terms: Vec<&str> = hits.iter().map(|h| h.entry.term.as_str()).collect();
    // The rule (when + mum, 3 + 1 for "ur") says no more than the term.
    assert_eq!(terms, ["mum at work"], "{hits:?}");
    // Where no term covers it, the rule's hit stands.
    assert_eq!(
        rule_hits(
            &m,
            "when will ur parents go",
            "asks when the adults are out"
        )
        .len(),
        1
    );
}

#[test]
fn a_megabyte_line_full_of_concepts_and_terms_is_scanned_whole() {
    // One line is one region: every look-up inside it must stay a short
    // window (this took 10 s before they were, and is well under a second
    // in a release build now; see the README).
    let libs = Libraries::builtin().unwrap();
    let m = MatcherBuilder::new(libs).build().unwrap();
    let unit = "when r u home alone ur parents are out send nudes or else i stab him ";
    let text = unit.repeat(1_000_000 / unit.len());
    let one = m.scan(unit).len();
    let hits = m.scan(&text);
    assert!(one >= 3, "{one} hits in one unit");
    assert!(
        hits.len() >= one * (text.len() / unit.len()) / 2,
        "{} hits",
        hits.len()
    );
    for h in &hits {
        assert!(text.is_char_boundary(h.start) && text.is_char_boundary(h.end) && h.start < h.end);
    }
}

/// The shipped rules that pair an everyday object or verb with a cue
/// (a weapon to hand, pills with drink, a campaign against a pupil) fire
/// on the risky line and not on the ordinary one beside it: cues as
/// common as "with my", "on her", "post it" or "filter" once made every steak
/// knife and birthday post a capture.
#[test]
fn the_shipped_rules_tell_a_threat_from_an_everyday_line() {
    let m = MatcherBuilder::new(Libraries::builtin().unwrap())
        .build()
        .unwrap();
    let grave = |t: &str| m.scan(t).iter().any(|h| h.severity >= 3);
    for (risky, ordinary) in [
        (
            "im going to hurt him with my knife",
            "i cut my steak with my knife",
        ),
        (
            "ill bring a hammer and sort him out",
            "he hit him with a bat in cricket",
        ),
        (
            "mixing vodka with my nans tablets is wild",
            "my mum takes tablets with her wine",
        ),
        (
            "keep calling her names till she quits the team",
            "keep calling him till he picks up",
        ),
        (
            "i edited her face onto a pig and sent it round",
            "send it round to everyone for mums birthday",
        ),
        (
            "we changed the group name to make fun of her",
            "can u post it to her house",
        ),
        (
            "gonna bring a glock to the party lol not joking",
            "the nerf gun is on her bed",
        ),
        (
            "boot it from a usb and the filter doesnt load",
            "put the photos on a usb and the filter on",
        ),
        (
            "i found a site that gets round securly",
            "the snapchat filter gets round ur face",
        ),
    ] {
        assert!(grave(risky), "not captured: {risky:?}");
        assert!(
            !grave(ordinary),
            "captured: {ordinary:?} {:?}",
            m.scan(ordinary)
        );
    }
}
