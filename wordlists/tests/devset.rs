//! Detection measured on messages written the way pupils and those who
//! target them write (`tests/devset/`): risky lines per category, hard
//! innocent lines per kind (schoolwork, idioms, gaming, names and places,
//! news, safety advice, everyday chat).
//!
//! Two parts: `dev/`, which rules may be tuned to, and `heldout/`, written
//! before any tuning and never tuned to. Both are printed; run with
//! `--nocapture` to see the table. `DEVSET_SHOW=1` also lists the dev
//! part's misses and false alarms (never the held-out part's);
//! `DEVSET_BATCH=DIR` also measures a fresh batch (DIR/risky.txt,
//! DIR/innocent.txt) without listing its lines. Both parts are measured
//! again with their chat-speak written out in standard spelling.
//!
//! The held-out part is also measured without the lines that have a near
//! copy in dev ("heldout-unseen", see [`COPIED`]): one author wrote both,
//! and some held-out lines were written again into dev, where rules were
//! tuned to them. That figure is the one to read.
//!
//! The floors asserted below are today's figures less a margin: they catch
//! a regression, they are not the targets (95% caught, 1% false alarms on
//! the held-out part), which the README reports against.

use std::collections::BTreeMap;

use wordlists::semantic::Semantic;
use wordlists::{Libraries, Matcher, MatcherBuilder};

mod common;

/// The capture threshold: what staff see.
const THRESHOLD: u8 = 3;

struct Line<'a> {
    label: &'a str,
    text: &'a str,
}

fn lines(file: &str) -> Vec<Line<'_>> {
    file.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (label, text) = l
                .split_once(" | ")
                .unwrap_or_else(|| panic!("devset line without ' | ': {l:?}"));
            Line {
                label: label.trim(),
                text: text.trim(),
            }
        })
        .collect()
}

/// The two parts as written: name, risky lines, innocent lines.
const WRITTEN: [(&str, &str, &str); 2] = [
    (
        "heldout",
        include_str!("devset/heldout/risky.txt"),
        include_str!("devset/heldout/innocent.txt"),
    ),
    (
        "dev",
        include_str!("devset/dev/risky.txt"),
        include_str!("devset/dev/innocent.txt"),
    ),
];

/// How alike two lines are, 0 to 1, given in [`plain`] form: one less
/// their edit distance over the longer's length.
fn likeness(a: &[u8], b: &[u8]) -> f64 {
    let longer = a.len().max(b.len()).max(1);
    1.0 - edit_distance(a, b) as f64 / longer as f64
}

/// A line as [`likeness`] compares it: letters, digits and single spaces
/// in lower case (so "i'm" and "im" are one).
fn plain(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for b in text.bytes().map(|b| b.to_ascii_lowercase()) {
        if b.is_ascii_alphanumeric() {
            out.push(b);
        } else if b.is_ascii_whitespace() && out.last().is_some_and(|&l| l != b' ') {
            out.push(b' ');
        }
    }
    if out.last() == Some(&b' ') {
        out.pop();
    }
    out
}

fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(x != y));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A held-out line is *copied* when a dev line is this alike
/// ([`likeness`]): "can u get me some mandy for the party" and "can u get
/// me some molly for saturday" are; "whats the wifi password at urs" and
/// "whats the teachers wifi password" are not. One author wrote both
/// parts, and across twenty batches wrote some held-out lines again, word
/// for word or nearly, into dev, where rules were tuned to them.
const COPIED: f64 = 0.7;

/// Whether `b` is a near copy of `a` ([`COPIED`]), both in [`plain`]
/// form. Lines whose lengths differ by more than the allowance cannot be,
/// and are not compared.
fn near_copy(a: &[u8], b: &[u8]) -> bool {
    let (n, m) = (a.len() as f64, b.len() as f64);
    (n - m).abs() <= (1.0 - COPIED) * n.max(m) && likeness(a, b) >= COPIED
}

/// Whether some dev line (in [`plain`] form) is a near copy of `line`.
fn copied_in(line: &str, dev: &[Vec<u8>]) -> bool {
    let line = plain(line);
    dev.iter().any(|d| near_copy(&line, d))
}

/// Every dev line, in [`plain`] form.
fn dev_plain() -> Vec<Vec<u8>> {
    let dev = WRITTEN[1];
    lines(dev.1)
        .iter()
        .chain(&lines(dev.2))
        .map(|l| plain(l.text))
        .collect()
}

/// The parts measured: dev, held-out, and "unseen", the held-out lines
/// with no near copy in dev ([`copied_in`]): the figure no tuning to a
/// copied line can have flattered.
fn parts() -> Vec<(String, String, String)> {
    let heldout = WRITTEN[0];
    let dev_lines = dev_plain();
    let unseen = |file: &str| -> String {
        lines(file)
            .iter()
            .filter(|l| !copied_in(l.text, &dev_lines))
            .map(|l| format!("{} | {}\n", l.label, l.text))
            .collect()
    };
    let mut parts: Vec<(String, String, String)> = WRITTEN
        .iter()
        .map(|(p, r, i)| (p.to_string(), r.to_string(), i.to_string()))
        .collect();
    parts.insert(
        1,
        (
            "heldout-unseen".to_string(),
            unseen(heldout.1),
            unseen(heldout.2),
        ),
    );
    parts
}

/// What each test measures, for [`floor`].
#[derive(Clone, Copy)]
enum Measure {
    Rules,
    WithLayer,
    StandardSpelling,
}

/// Floor on recall and ceiling on false alarms (percent) of a part:
/// today's figures less a margin.
fn floor(part: &str, measure: Measure) -> (f64, f64) {
    use Measure::*;
    match (part, measure) {
        ("dev", Rules) => (93.0, 2.5),
        ("dev", WithLayer) => (97.0, 2.5),
        ("dev", StandardSpelling) => (95.0, 2.5),
        ("heldout", Rules) => (93.0, 5.5),
        ("heldout", WithLayer | StandardSpelling) => (95.0, 6.0),
        ("heldout-unseen", Rules) => (92.0, 8.0),
        ("heldout-unseen", WithLayer | StandardSpelling) => (94.0, 10.0),
        _ => panic!("no floor for the part {part:?}"),
    }
}

/// Per label: (lines, flagged at the threshold, flagged in the label's own
/// category).
type Table<'a> = BTreeMap<&'a str, (usize, usize, usize)>;

fn measure<'a>(
    matcher: &Matcher,
    semantic: Option<&Semantic>,
    set: &[Line<'a>],
    show: Option<&str>,
) -> Table<'a> {
    let mut table: Table = BTreeMap::new();
    for line in set {
        let hits = matcher.scan(line.text);
        let grave: Vec<_> = hits.iter().filter(|h| h.severity >= THRESHOLD).collect();
        let verdict = semantic.and_then(|s| s.second_opinion(line.text, &hits, THRESHOLD));
        let flagged = !grave.is_empty() || verdict.is_some();
        let row = table.entry(line.label).or_default();
        row.0 += 1;
        if flagged {
            row.1 += 1;
        }
        if grave.iter().any(|h| h.entry.category == line.label)
            || verdict.as_ref().is_some_and(|v| v.category == line.label)
        {
            row.2 += 1;
        }
        let wrong = match show {
            Some("miss") => !flagged,
            Some("alarm") => flagged,
            _ => false,
        };
        if wrong {
            let mut why: Vec<String> = grave
                .iter()
                .map(|h| format!("{}:{} s{}", h.entry.category, h.entry.term, h.severity))
                .collect();
            why.extend(verdict.map(|v| format!("semantic:{} {:.2}", v.category, v.risk)));
            println!("  {} | {} {}", line.label, line.text, why.join(", "));
        }
    }
    table
}

fn pct(n: usize, of: usize) -> f64 {
    100.0 * n as f64 / of.max(1) as f64
}

/// Prints a part's table; returns (risky caught %, innocent flagged %).
fn report(
    matcher: &Matcher,
    semantic: Option<&Semantic>,
    part: &str,
    risky: &str,
    innocent: &str,
) -> (f64, f64) {
    let show = part.starts_with("dev") && std::env::var_os("DEVSET_SHOW").is_some();
    let risky = lines(risky);
    let innocent = lines(innocent);
    if show {
        println!("{part}: risky lines missed");
    }
    let caught = measure(matcher, semantic, &risky, show.then_some("miss"));
    if show {
        println!("{part}: innocent lines flagged");
    }
    let flagged = measure(matcher, semantic, &innocent, show.then_some("alarm"));
    println!("== {part}: risky lines captured at severity >= {THRESHOLD} ==");
    let (mut n, mut c, mut own) = (0, 0, 0);
    for (cat, (lines, hit, right)) in &caught {
        println!(
            "  {cat:<18} {hit:>3}/{lines:<3} {:>5.1}%   in its own category {:>5.1}%",
            pct(*hit, *lines),
            pct(*right, *lines)
        );
        (n, c, own) = (n + lines, c + hit, own + right);
    }
    let recall = pct(c, n);
    println!(
        "  {:<18} {c:>3}/{n:<3} {recall:>5.1}%   in its own category {:>5.1}%",
        "all",
        pct(own, n)
    );
    println!("== {part}: innocent lines flagged at severity >= {THRESHOLD} ==");
    let (mut n, mut f) = (0, 0);
    for (kind, (lines, hit, _)) in &flagged {
        println!(
            "  {kind:<18} {hit:>3}/{lines:<3} {:>5.1}%",
            pct(*hit, *lines)
        );
        (n, f) = (n + lines, f + hit);
    }
    let alarms = pct(f, n);
    println!("  {:<18} {f:>3}/{n:<3} {alarms:>5.1}%", "all");
    (recall, alarms)
}

#[test]
fn risky_messages_are_captured_and_hard_innocent_lines_are_not() {
    let matcher = MatcherBuilder::new(Libraries::builtin().unwrap())
        .build()
        .unwrap();
    for (part, risky, innocent) in parts() {
        let (part, risky, innocent) = (part.as_str(), risky.as_str(), innocent.as_str());
        let (recall, alarms) = report(&matcher, None, part, risky, innocent);
        let (min_recall, max_alarms) = floor(part, Measure::Rules);
        assert!(
            recall >= min_recall,
            "{part}: {recall:.1}% of risky lines captured, below the floor of {min_recall}%"
        );
        assert!(
            alarms <= max_alarms,
            "{part}: {alarms:.1}% of innocent lines flagged, above the ceiling of {max_alarms}%"
        );
    }
}

/// The rules with the semantic layer as their second opinion
/// (`wordlists/semantic/`): its head was trained on the dev part (and
/// prose), never on the held-out part. Needs the model:
/// `wordlists/semantic/fetch-model.sh` (tests/run runs it).
#[test]
fn the_semantic_layer_adds_what_the_rules_miss() {
    let semantic = common::semantic();
    let matcher = MatcherBuilder::new(Libraries::builtin().unwrap())
        .build()
        .unwrap();
    let mut figures = Vec::new();
    for (part, risky, innocent) in parts() {
        let (part, risky, innocent) = (part.as_str(), risky.as_str(), innocent.as_str());
        let rules = report(&matcher, None, part, risky, innocent);
        let both = report(
            &matcher,
            Some(&semantic),
            &format!("{part} with the semantic layer"),
            risky,
            innocent,
        );
        figures.push((part.to_string(), rules, both));
    }
    // A fresh batch, measured before anything is tuned to it:
    // `DEVSET_BATCH=DIR` (with DIR/risky.txt and DIR/innocent.txt; a
    // relative DIR is from wordlists/, where cargo runs the test) prints
    // its figures too; they are never asserted (a fresh batch's figure is
    // what it is).
    if let Some(dir) = std::env::var_os("DEVSET_BATCH") {
        let dir = std::path::PathBuf::from(dir);
        let read = |f: &str| {
            std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| {
                panic!("DEVSET_BATCH: cannot read {}: {e}", dir.join(f).display())
            })
        };
        let (risky, innocent) = (read("risky.txt"), read("innocent.txt"));
        let (r, a) = report(&matcher, None, "batch", &risky, &innocent);
        let (sr, sa) = report(
            &matcher,
            Some(&semantic),
            "batch with the semantic layer",
            &risky,
            &innocent,
        );
        println!(
            "batch {}: rules {r:.1}% caught, {a:.1}% false alarms; with the semantic layer {sr:.1}% and {sa:.1}%",
            dir.display()
        );
    }
    for (part, (rules_recall, rules_alarms), (recall, alarms)) in figures {
        println!(
            "{part}: rules {rules_recall:.1}% caught, {rules_alarms:.1}% false alarms; \
             with the semantic layer {recall:.1}% and {alarms:.1}%"
        );
        // It only adds captures: never fewer caught.
        assert!(recall >= rules_recall, "{part}: {recall} < {rules_recall}");
        let (min_recall, max_alarms) = floor(&part, Measure::WithLayer);
        assert!(
            recall >= min_recall,
            "{part} with the semantic layer: {recall:.1}% caught, below the floor of {min_recall}%"
        );
        assert!(
            alarms <= max_alarms,
            "{part} with the semantic layer: {alarms:.1}% flagged, above the ceiling of {max_alarms}%"
        );
    }
}

/// The same lines with their chat-speak written out in standard spelling
/// (`wordlists::spelling`: "r u home alone rn" becomes "are you home alone
/// right now"): risk said in full words must be caught as well as in
/// chat-speak. The semantic layer alone catches far fewer lines in
/// standard spelling (the README's cross-validation); this measures the
/// rules and the layer together.
#[test]
fn the_same_lines_in_standard_spelling() {
    let semantic = common::semantic();
    let matcher = MatcherBuilder::new(Libraries::builtin().unwrap())
        .build()
        .unwrap();
    let standard = |file: &str| -> String {
        lines(file)
            .iter()
            .map(|l| format!("{} | {}\n", l.label, wordlists::spelling::standard(l.text)))
            .collect()
    };
    for (part, risky, innocent) in parts() {
        let (part, risky, innocent) = (part.as_str(), risky.as_str(), innocent.as_str());
        let (min_recall, max_alarms) = floor(part, Measure::StandardSpelling);
        let (risky, innocent) = (standard(risky), standard(innocent));
        let name = format!("{part} in standard spelling");
        let (rules_recall, rules_alarms) = report(&matcher, None, &name, &risky, &innocent);
        let (recall, alarms) = report(
            &matcher,
            Some(&semantic),
            &format!("{name} with the semantic layer"),
            &risky,
            &innocent,
        );
        println!(
            "{name}: rules {rules_recall:.1}% caught, {rules_alarms:.1}% false alarms; \
             with the semantic layer {recall:.1}% and {alarms:.1}%"
        );
        assert!(
            recall >= min_recall,
            "{name} with the semantic layer: {recall:.1}% caught, below the floor of {min_recall}%"
        );
        assert!(
            alarms <= max_alarms,
            "{name} with the semantic layer: {alarms:.1}% flagged, above the ceiling of {max_alarms}%"
        );
    }
}

/// Held-out lines with a near copy in dev ([`COPIED`]) may not grow in
/// number: a line added to dev must not be one the held-out part already
/// holds. (115 were found in session 23, written over earlier sessions;
/// the "heldout-unseen" figures leave them out.)
#[test]
fn dev_does_not_gain_copies_of_held_out_lines() {
    const FOUND: usize = 115;
    let [heldout, dev] = WRITTEN;
    let dev_lines = dev_plain();
    let held: Vec<Line<'_>> = lines(heldout.1)
        .into_iter()
        .chain(lines(heldout.2))
        .collect();
    let copied: Vec<&Line<'_>> = held
        .iter()
        .filter(|l| copied_in(l.text, &dev_lines))
        .collect();
    println!(
        "{} of {} held-out lines have a near copy in dev",
        copied.len(),
        held.len()
    );
    if copied.len() > FOUND {
        // Name the dev lines, never the held-out ones.
        let held_plain: Vec<Vec<u8>> = copied.iter().map(|h| plain(h.text)).collect();
        for d in lines(dev.1).iter().chain(&lines(dev.2)) {
            let p = plain(d.text);
            if held_plain.iter().any(|h| near_copy(h, &p)) {
                println!("  dev line copying a held-out line: {}", d.text);
            }
        }
    }
    assert!(
        copied.len() <= FOUND,
        "dev holds near copies of {} held-out lines, more than the {FOUND} known: \
         reword or drop the dev lines named above",
        copied.len()
    );
}
