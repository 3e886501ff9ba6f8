//! The matching engine: built once from libraries, immutable, shared across
//! threads (`Matcher: Send + Sync`).
//!
//! A scan has two stages:
//!
//! 1. **Fast pass.** One walk over the raw bytes ([`crate::walk`]): each
//!    byte turned into its skeleton symbol by one table look-up, runs of
//!    one symbol collapsed, the symbol fed straight into an Aho-Corasick
//!    DFA built over the skeletons of every term variant and anchor
//!    concept. Nothing is allocated and no normalised copy of the text is
//!    made; a long text is walked as four parts at once, interleaved, so
//!    their memory look-ups overlap. Word boundaries are part of the
//!    patterns (" rape " for a whole word), so innocent words that merely
//!    contain a term ("grape") never get past this stage. A match marks a
//!    *region* of the original text.
//! 2. **Exact pass**, only over marked regions (widened to whole words):
//!    the exact normaliser ([`crate::normalize`]), the same automaton over
//!    that region's skeleton, then letter-by-letter verification of each
//!    candidate ([`crate::verify`]). Exceptions found there suppress the
//!    hits they cover; context words adjust severity.
//!
//! 3. **Context rules** (see [`crate::library::ContextRule`]), only where
//!    the fast pass marked a region: a rule's anchor concepts are patterns
//!    of the fast pass like terms, so text without one costs nothing more.
//!    A region marked by an anchor is widened by the longest rule span
//!    (`within` words, see [`crate::library::MAX_WITHIN`]) either side.
//!    A walk of that region over the concepts' skeletons (no normalising)
//!    first tells whether any rule has all its concepts there; most
//!    regions stop at that. Otherwise a third automaton finds every
//!    concept in it; a rule whose concepts all stand within its span of
//!    words is a hit, and cue concepts within [`CUE_WORDS`] words raise or
//!    lower its severity. A category's own `lower` cues apply to its term
//!    hits too: a term's region is widened by [`CUE_WORDS`] words, and the
//!    concepts are looked for in it only once a term there is verified.
//!
//! Letters spaced out ("k i l l") are the one thing the fast pass cannot
//! see; it notices runs of three or more one-letter words and marks them
//! for the exact pass, which joins them.
//!
//! Guarantee: a hit's `start..end` is a byte range of the original text on
//! character boundaries.

use std::collections::HashMap;
use std::ops::Range;

use aho_corasick::automaton::Automaton;
use aho_corasick::dfa::DFA;
use aho_corasick::nfa::contiguous::NFA as ContiguousNfa;
use aho_corasick::{Anchored, MatchKind, PatternID};
use thiserror::Error;

use crate::library::{Category, Entry, Libraries, Rule};
use crate::normalize::{normalize, normalize_unjoined};
use crate::skeleton::{BOUNDARY, skeleton};
use crate::verify::Runs;
use crate::walk::{RING, Sink, Walk};

/// How far a marked region is widened, at most, for each word it takes in.
const WIDEN: usize = 64;
/// Most words a region is widened by on each side, for long exceptions.
const MAX_EXTRA_WORDS: usize = 6;
/// Bytes of text either side of a hit that context words are looked for in.
const CONTEXT_REACH: usize = 120;
/// Longest original span of a term or exception that look-ups by position
/// allow for (a 63-symbol phrase of 16-byte words): a longer one, padded
/// with ignored characters, is only ever looked up less, never wrongly.
const SPAN_REACH: usize = RING * 16;
/// Words either side of a hit that cue concepts are looked for in; also
/// how far a term's region is widened when there are concepts.
pub const CUE_WORDS: usize = 8;

/// Building a [`Matcher`] failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError {
    #[error("term {term:?} in {category} is too long ({len} symbols; the limit is {max})")]
    TermTooLong {
        term: String,
        category: String,
        len: usize,
        max: usize,
    },
    #[error("cannot build the automaton: {0}")]
    Automaton(String),
    /// A category's rule or `lower` names a concept no file defines, or a
    /// rule has no anchor concept (it could never be found).
    #[error("{category}: {problem}")]
    Rule { category: String, problem: String },
}

/// What one pattern of the automaton stands for.
#[derive(Debug, Clone)]
enum Target {
    /// Entry index.
    Term(u32),
    /// Category index.
    Exception(u32),
    /// A concept that marks a region for the rules (fast pass only).
    Anchor,
    /// Concept index (the concepts' own automaton).
    Concept(u32),
}

#[derive(Debug, Clone)]
struct Variant {
    target: Target,
    runs: Runs,
    /// Whether the form starts with a boundary (so the match starts one
    /// byte later in normalised text).
    leading_boundary: bool,
}

/// A term found in text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<'m> {
    pub entry: &'m Entry,
    /// The entry's severity adjusted by context words.
    pub severity: u8,
    /// Byte range of the matched text in the input (on char boundaries).
    pub start: usize,
    pub end: usize,
    /// For a context rule's hit: the byte range of each concept's words
    /// that made it, in the order of the rule's `all`. Empty for a term.
    pub because: Vec<Range<usize>>,
}

impl Hit<'_> {
    /// A bounded snippet around the hit: up to `reach` bytes either side,
    /// cut at character boundaries, and the hit's range within it.
    pub fn context<'t>(&self, text: &'t str, reach: usize) -> (&'t str, Range<usize>) {
        let from = floor_char(text, self.start.saturating_sub(reach));
        let to = ceil_char(text, (self.end + reach).min(text.len()));
        (&text[from..to], self.start - from..self.end - from)
    }
}

/// Builds a [`Matcher`].
#[derive(Debug, Default)]
pub struct MatcherBuilder {
    libraries: Libraries,
    disabled: Vec<String>,
}

impl MatcherBuilder {
    /// A builder over the given libraries.
    pub fn new(libraries: Libraries) -> Self {
        MatcherBuilder {
            libraries,
            disabled: Vec::new(),
        }
    }

    /// Leaves out a category.
    pub fn disable(mut self, category: &str) -> Self {
        self.disabled.push(category.to_owned());
        self
    }

    /// Compiles the automaton.
    ///
    /// # Errors
    /// [`BuildError`] for a term too long for the automaton.
    pub fn build(self) -> Result<Matcher, BuildError> {
        let categories: Vec<Category> = self
            .libraries
            .categories
            .into_iter()
            .filter(|c| !self.disabled.contains(&c.name))
            .collect();
        let mut entries = Vec::new();
        let mut entry_category = Vec::new();
        let mut terms = PatternsBuilder::default();
        let mut exceptions = PatternsBuilder::default();
        for (c, cat) in categories.iter().enumerate() {
            for e in &cat.entries {
                let idx = entries.len() as u32;
                let form = crate::normalize::normalize_term(&e.term);
                for f in chat_forms(&form, e.rule, Joins::All) {
                    let len = terms.add(f, Target::Term(idx));
                    // The fast pass remembers where the last RING symbols
                    // came from; a longer term could not be placed.
                    if len >= RING {
                        return Err(BuildError::TermTooLong {
                            term: e.term.clone(),
                            category: e.category.clone(),
                            len,
                            max: RING - 1,
                        });
                    }
                }
                entries.push(e.clone());
                entry_category.push(c as u32);
            }
            for x in &cat.exceptions {
                let form = crate::normalize::normalize_term(x);
                for f in crate::chatspeak::variants(&form) {
                    exceptions.add(f, Target::Exception(c as u32));
                }
            }
        }
        let concepts = &self.libraries.concepts;
        let concept_id = |name: &str| {
            concepts
                .iter()
                .position(|c| c.name == name)
                .map(|i| i as u32)
        };
        let mut concept_set = PatternsBuilder::default();
        for (i, c) in concepts.iter().enumerate() {
            for t in &c.terms {
                let form = crate::normalize::normalize_term(t);
                let rule = if t.trim().contains(' ') {
                    Rule::Phrase
                } else {
                    Rule::Word
                };
                for f in chat_forms(&form, rule, Joins::Clean) {
                    if c.anchor {
                        terms.add(f.clone(), Target::Anchor);
                    }
                    let len = concept_set.add(f, Target::Concept(i as u32));
                    if len >= RING {
                        return Err(BuildError::TermTooLong {
                            term: t.clone(),
                            category: format!("concept {}", c.name),
                            len,
                            max: RING - 1,
                        });
                    }
                }
            }
        }
        let mut rules = Vec::new();
        let mut category_lower = Vec::new();
        for (c, cat) in categories.iter().enumerate() {
            // A name that matches no concept would leave a rule or a cue
            // silently doing nothing: refuse it, naming it.
            let ids = |what: &str, names: &[String]| -> Result<Vec<u32>, BuildError> {
                names
                    .iter()
                    .map(|n| {
                        concept_id(n).ok_or_else(|| BuildError::Rule {
                            category: cat.name.clone(),
                            problem: format!(
                                "{what} names concept {n:?}, which no file defines; define it in a [[concept]] or fix the name"
                            ),
                        })
                    })
                    .collect()
            };
            category_lower.push(ids("`lower`", &cat.lower)?);
            for r in &cat.rules {
                let what = format!("rule {:?}", r.name);
                let all = ids(&what, &r.all)?;
                if !all.iter().any(|&i| concepts[i as usize].anchor) {
                    return Err(BuildError::Rule {
                        category: cat.name.clone(),
                        problem: format!(
                            "{what} has no anchor concept in `all`, so it could never be found; make one of its concepts an anchor (the default)"
                        ),
                    });
                }
                rules.push(CompiledRule {
                    entry: entries.len() as u32,
                    all,
                    within: r.within as usize,
                    ordered: r.ordered,
                    raise: ids(&what, &r.raise)?,
                    lower: ids(&what, &r.lower)?,
                });
                entries.push(r.entry(&cat.name));
                entry_category.push(c as u32);
            }
        }
        let has_concepts = !concepts.is_empty();
        let reach = rules.iter().map(|r| r.within).max().unwrap_or(0) as u8;
        // A cue of several words may end within reach and begin beyond it
        // ("of mice and men" lowers a grooming phrase six words on).
        let cue_reach = (CUE_WORDS + longest_concept_words(concepts).saturating_sub(1))
            .min(usize::from(u8::MAX)) as u8;
        let mut terms = terms.build()?;
        terms.widen = reach_of_exceptions(&terms, &exceptions.patterns);
        // An anchor's region takes in the words its rules may span, a
        // term's the words its category's cues may stand in.
        terms.context = terms
            .marks
            .iter()
            .map(|marks| match (has_concepts, marks.anchor) {
                (false, _) => 0,
                (true, true) => reach.max(cue_reach),
                (true, false) => cue_reach,
            })
            .collect();
        let exceptions = exceptions.build_compact()?;
        let concept_set = if has_concepts {
            Some(concept_set.build_compact()?)
        } else {
            None
        };
        let concept_weight = concepts.iter().map(|c| c.weight).collect();
        let spaced_widen = terms
            .widen
            .iter()
            .fold((0, 0), |acc, w| (acc.0.max(w.0), acc.1.max(w.1)));
        let spaced_context = if has_concepts { cue_reach } else { 0 };
        let detectors: Vec<(crate::library::DetectorKind, Entry)> = categories
            .iter()
            .flat_map(|c| {
                c.detectors.iter().map(move |d| {
                    let entry = Entry {
                        term: d.kind.as_str().to_owned(),
                        category: c.name.clone(),
                        severity: d.severity,
                        rule: Rule::Pattern,
                        definition: d.definition.clone(),
                        raise: vec![],
                        lower: vec![],
                    };
                    (d.kind, entry)
                })
            })
            .collect();
        let context_words = entries
            .iter()
            .map(|e| match e.rule {
                // A rule's raise and lower name concepts, not words.
                Rule::Context => (Vec::new(), Vec::new()),
                _ => (context_needles(&e.raise), context_needles(&e.lower)),
            })
            .collect();
        let rule_needs = RuleNeeds::new(&rules, concepts.len());
        Ok(Matcher {
            terms,
            exceptions,
            concepts: concept_set,
            concept_weight,
            rule_needs,
            rules,
            category_lower,
            entries,
            entry_category,
            spaced_widen,
            spaced_context,
            context_words,
            detector_kinds: detectors.iter().map(|(k, _)| *k).collect(),
            detectors,
        })
    }
}

/// The forms a term is matched in: each of its chat-speak spellings
/// (see [`crate::chatspeak`]) in each of its rule's forms.
fn chat_forms(term: &[u8], rule: Rule, joins: Joins) -> Vec<Vec<u8>> {
    match rule {
        // Inside words, a chat spelling of a word means nothing.
        Rule::Substring | Rule::Pattern | Rule::Context => forms(term, rule, joins),
        _ => crate::chatspeak::variants(term)
            .iter()
            .flat_map(|v| forms(v, rule, joins))
            .collect(),
    }
}

/// Which phrases are also matched with their words run together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Joins {
    /// Every phrase ("killmyself").
    All,
    /// Only where no two words meet on letters of one skeleton symbol:
    /// "i live" run together is "ilive", whose skeleton " ive " is also
    /// that of "live" and "i've". A concept goes without such a form; in
    /// the fast pass it would mark every such everyday word for nothing.
    Clean,
}

/// Whether two words of `phrase` meet on letters that share a skeleton
/// symbol, so that running them together loses one.
fn merges_at_a_join(phrase: &[u8]) -> bool {
    phrase.windows(3).any(|w| {
        w[1] == b' '
            && w[0] != b' '
            && crate::skeleton::symbol(w[0]) == crate::skeleton::symbol(w[2])
    })
}

/// The normalised forms a term is matched in, boundaries included.
fn forms(term: &[u8], rule: Rule, joins: Joins) -> Vec<Vec<u8>> {
    let wrap = |lead: bool, body: &[u8], trail: bool| {
        let mut f = Vec::with_capacity(body.len() + 2);
        if lead {
            f.push(b' ');
        }
        f.extend_from_slice(body);
        if trail {
            f.push(b' ');
        }
        f
    };
    match rule {
        Rule::Word => vec![wrap(true, term, true)],
        Rule::Prefix => vec![wrap(true, term, false)],
        // Groups cannot have the rule "context" (the parser refuses it).
        Rule::Substring | Rule::Pattern | Rule::Context => vec![term.to_vec()],
        Rule::Phrase => {
            let mut v = vec![wrap(true, term, true)];
            if term.contains(&b' ') && (joins == Joins::All || !merges_at_a_join(term)) {
                let joined: Vec<u8> = term.iter().copied().filter(|&b| b != b' ').collect();
                v.push(wrap(true, &joined, true));
            }
            v
        }
    }
}

/// Collects forms by skeleton for one automaton.
#[derive(Default)]
struct PatternsBuilder {
    by_skeleton: HashMap<Vec<u8>, usize>,
    patterns: Vec<Vec<u8>>,
    variants: Vec<Vec<Variant>>,
}

impl PatternsBuilder {
    /// Adds a normalised form; returns its length in skeleton symbols.
    fn add(&mut self, form: Vec<u8>, target: Target) -> usize {
        let (skel, _) = skeleton(&form);
        let len = skel.len();
        let id = *self.by_skeleton.entry(skel.clone()).or_insert_with(|| {
            self.patterns.push(skel);
            self.variants.push(Vec::new());
            self.patterns.len() - 1
        });
        self.variants[id].push(Variant {
            target,
            leading_boundary: form.first() == Some(&b' '),
            runs: Runs::of(&form),
        });
        len
    }

    /// A DFA: the fastest walk, and the most memory (the fast pass).
    fn build(self) -> Result<Patterns<DFA>, BuildError> {
        let dfa = DFA::builder()
            .match_kind(MatchKind::Standard)
            .start_kind(aho_corasick::StartKind::Unanchored)
            // The walk is ours, so a prefilter would only make the start
            // state "special" and cost a branch per symbol.
            .prefilter(false)
            .build(&self.patterns)
            .map_err(|e| BuildError::Automaton(e.to_string()))?;
        Ok(self.with(dfa))
    }

    /// A contiguous NFA: a fraction of a DFA's memory, for the automata
    /// that only walk the short regions of the exact pass.
    fn build_compact(self) -> Result<Patterns<ContiguousNfa>, BuildError> {
        let nfa = ContiguousNfa::builder()
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(&self.patterns)
            .map_err(|e| BuildError::Automaton(e.to_string()))?;
        Ok(self.with(nfa))
    }

    fn with<A: Automaton>(self, dfa: A) -> Patterns<A> {
        let marks = self
            .variants
            .iter()
            .map(|vs| Marks {
                term: vs.iter().any(|v| !matches!(v.target, Target::Anchor)),
                anchor: vs.iter().any(|v| matches!(v.target, Target::Anchor)),
                spaced: false,
            })
            .collect();
        Patterns {
            dfa,
            widen: vec![(0, 0); self.variants.len()],
            context: vec![0; self.variants.len()],
            variants: self.variants,
            skeletons: self
                .patterns
                .into_iter()
                .map(Vec::into_boxed_slice)
                .collect(),
            marks,
        }
    }
}

/// An Aho-Corasick automaton over skeletons (a DFA for the fast pass),
/// and what each pattern stands for.
#[derive(Debug)]
struct Patterns<A = DFA> {
    dfa: A,
    variants: Vec<Vec<Variant>>,
    /// Per pattern: words before and after a match that the exact pass
    /// must see (for exceptions longer than the term).
    widen: Vec<(u8, u8)>,
    /// Per pattern: words either side that its cues or rules may stand in
    /// (beyond `widen` only where it is larger).
    context: Vec<u8>,
    /// Per pattern: whether it stands for a term, an anchor concept or both.
    marks: Vec<Marks>,
    /// Per pattern: its skeleton, the symbols the automaton matches.
    skeletons: Vec<Box<[u8]>>,
}

impl<A: Automaton> Patterns<A> {
    /// Runs the automaton over a skeleton and verifies each candidate
    /// letter by letter against the normalised bytes; calls `found` with
    /// each verified variant's target and normalised byte range.
    fn candidates(
        &self,
        skel: &[u8],
        range: Range<usize>,
        runs: &[u32],
        norm: &[u8],
        mut found: impl FnMut(&Target, usize, usize),
    ) {
        let dfa = &self.dfa;
        let Ok(mut sid) = dfa.start_state(Anchored::No) else {
            return;
        };
        for (j, &sym) in skel.iter().enumerate().take(range.end).skip(range.start) {
            sid = dfa.next_state(Anchored::No, sid, sym);
            if !(dfa.is_special(sid) && dfa.is_match(sid)) {
                continue;
            }
            for k in 0..dfa.match_len(sid) {
                let pid = dfa.match_pattern(sid, k);
                let first = j + 1 - dfa.pattern_len(pid);
                let starts = runs[first] as usize..runs[first + 1] as usize;
                for v in &self.variants[pid.as_usize()] {
                    if let Some((s, e)) = v.runs.find(norm, starts.clone()) {
                        let s = if v.leading_boundary { s + 1 } else { s };
                        found(&v.target, s, e);
                    }
                }
            }
        }
    }
}

impl Patterns {
    /// What [`Patterns::candidates`] finds in `ranges` of a reading, found
    /// instead from the matches the fast pass made (`handed`: the original
    /// byte where each began, and its pattern) without walking the
    /// automaton again: each is looked for at the skeleton symbols its
    /// first byte became, and kept where the reading's skeleton holds the
    /// pattern whole inside one of `ranges`, as a walk of that range would
    /// have met it.
    fn handed_candidates(
        &self,
        r: &Reading<'_>,
        handed: &[(usize, usize, u32)],
        from: usize,
        ranges: &[Range<usize>],
        mut found: impl FnMut(&Target, usize, usize),
    ) {
        let symbols = r.skel.len();
        // The skeleton symbol an original byte became (or the one before).
        let symbol_at = |at: usize| {
            let rel = (at.max(from) - from) as u32;
            let i = r.norm.spans.partition_point(|sp| sp.1 <= rel);
            r.runs[..symbols]
                .partition_point(|&x| x as usize <= i)
                .saturating_sub(1)
        };
        for &(start, end, pid) in handed {
            let pid = pid as usize;
            if !self.marks[pid].term {
                continue;
            }
            let pattern = &self.skeletons[pid];
            let len = pattern.len();
            // Every place the pattern could begin and still overlap the
            // symbols the match's bytes became, with some slack: a place
            // too many is only compared, never kept unless the skeleton
            // holds the pattern there, as a walk would have met it.
            let lo = symbol_at(start).saturating_sub(HANDED_SLACK);
            let hi = (symbol_at(end.saturating_sub(1)) + HANDED_SLACK).min(symbols);
            for first in lo..=hi.saturating_sub(len.saturating_sub(1)).max(lo) {
                if r.skel.get(first..first + len) != Some(&pattern[..])
                    || !ranges
                        .iter()
                        .any(|c| c.start <= first && first + len <= c.end)
                {
                    continue;
                }
                let starts = r.runs[first] as usize..r.runs[first + 1] as usize;
                for v in &self.variants[pid] {
                    if let Some((s, e)) = v.runs.find(&r.norm.bytes, starts.clone()) {
                        let s = if v.leading_boundary { s + 1 } else { s };
                        found(&v.target, s, e);
                    }
                }
            }
        }
    }
}

/// How many skeleton symbols beyond those a handed match's bytes became
/// [`Patterns::handed_candidates`] looks for it (two always sufficed in
/// the property tests; one did not).
const HANDED_SLACK: usize = 4;

/// A context rule, its concepts by index.
#[derive(Debug)]
struct CompiledRule {
    /// Its entry in [`Matcher::entries`].
    entry: u32,
    all: Vec<u32>,
    within: usize,
    ordered: bool,
    raise: Vec<u32>,
    lower: Vec<u32>,
}

/// Which concepts each rule needs, as bits (`words` u64s a rule), so that
/// whether some rule could stand among the concepts a region holds is a
/// few ANDs rather than a search.
#[derive(Debug)]
struct RuleNeeds {
    words: usize,
    bits: Vec<u64>,
}

impl RuleNeeds {
    fn new(rules: &[CompiledRule], concepts: usize) -> RuleNeeds {
        let words = concepts.div_ceil(64).max(1);
        let mut bits = vec![0; rules.len() * words];
        for (need, rule) in bits.chunks_exact_mut(words).zip(rules) {
            for &c in &rule.all {
                set_bit(need, c);
            }
        }
        RuleNeeds { words, bits }
    }

    /// No concepts: a set to fill with [`set_bit`].
    fn none(&self) -> Vec<u64> {
        vec![0; self.words]
    }

    /// The concepts among `occurrences`.
    fn held(&self, occurrences: &[Occurrence]) -> Vec<u64> {
        let mut held = self.none();
        for o in occurrences {
            set_bit(&mut held, o.concept);
        }
        held
    }

    /// Whether every concept of rule `r` is in `held`.
    fn met(&self, r: usize, held: &[u64]) -> bool {
        let need = &self.bits[r * self.words..(r + 1) * self.words];
        need.iter().zip(held).all(|(n, h)| n & h == *n)
    }

    /// Whether every concept of some rule is in `held`.
    fn any_met(&self, held: &[u64]) -> bool {
        (0..self.bits.len() / self.words).any(|r| self.met(r, held))
    }
}

fn set_bit(bits: &mut [u64], c: u32) {
    bits[c as usize / 64] |= 1 << (c % 64);
}

/// One reading of a region: its normalised text and that text's skeleton.
struct Reading<'n> {
    norm: &'n crate::normalize::Normalized,
    skel: Vec<u8>,
    runs: Vec<u32>,
}

impl Reading<'_> {
    /// The skeleton's symbols that stand for the original byte ranges
    /// `cores` (of the text the region starting at `from` is part of),
    /// each with the boundary before and after it; overlapping ones
    /// joined.
    fn skeleton_ranges(&self, cores: &[(usize, usize)], from: usize) -> Vec<Range<usize>> {
        let spans = &self.norm.spans;
        let symbols = self.skel.len();
        let mut out: Vec<Range<usize>> = cores
            .iter()
            .map(|&(cs, ce)| {
                let (cs, ce) = ((cs - from) as u32, (ce - from) as u32);
                // Normalised bytes: from the boundary before the core to
                // the one after it.
                let lo = spans.partition_point(|sp| sp.1 <= cs).saturating_sub(1);
                let hi = (spans.partition_point(|sp| sp.0 < ce) + 1).min(spans.len());
                // Symbols: the one whose run holds `lo`, to the first
                // starting at or after `hi`.
                let k_lo = self
                    .runs
                    .partition_point(|&r| r as usize <= lo)
                    .saturating_sub(1);
                let k_hi = self.runs[..symbols].partition_point(|&r| (r as usize) < hi);
                k_lo..k_hi.max(k_lo)
            })
            .collect();
        out.sort_unstable_by_key(|r| r.start);
        out.dedup_by(|next, last| {
            if next.start <= last.end {
                last.end = last.end.max(next.end);
                true
            } else {
                false
            }
        });
        out
    }
}

/// A concept found in the text: which, and its original byte range.
#[derive(Debug, Clone, Copy)]
struct Occurrence {
    concept: u32,
    start: usize,
    end: usize,
}

/// The compiled libraries. Cheap to share: wrap in an `Arc`.
#[derive(Debug)]
pub struct Matcher {
    /// Every term's forms and the anchor concepts': the fast pass runs
    /// this alone.
    terms: Patterns,
    /// Every exception: only the exact pass needs these.
    exceptions: Patterns<ContiguousNfa>,
    /// Every concept's forms, anchors and cues: only for marked regions.
    concepts: Option<Patterns<ContiguousNfa>>,
    concept_weight: Vec<u8>,
    rules: Vec<CompiledRule>,
    rule_needs: RuleNeeds,
    /// Per category: the cue concepts that lower its hits.
    category_lower: Vec<Vec<u32>>,
    entries: Vec<Entry>,
    entry_category: Vec<u32>,
    detectors: Vec<(crate::library::DetectorKind, Entry)>,
    detector_kinds: Vec<crate::library::DetectorKind>,
    /// Per entry: its raise and lower words, normalised, with a boundary
    /// either side (" knife ").
    context_words: Vec<(Vec<String>, Vec<String>)>,
    /// How a region of spaced-out letters is widened: the most of any
    /// pattern, and its cues' reach.
    spaced_widen: (u8, u8),
    spaced_context: u8,
}

/// A byte range of the input that the exact pass must look at.
#[derive(Debug, Clone, Copy)]
struct Region {
    start: usize,
    end: usize,
    /// Words to take in before and after it for its terms and exceptions
    /// (see [`Patterns::widen`]): its *core*.
    widen: (u8, u8),
    /// Words to take in either side for cues and rules (see
    /// [`Patterns::context`]).
    context: u8,
    /// What marked it: a term (or spaced letters), an anchor concept, or both.
    marks: Marks,
}

/// What marked a region of text, and so which work its exact pass needs.
#[derive(Debug, Clone, Copy)]
struct Marks {
    /// A term's pattern: the terms and exceptions must be verified.
    term: bool,
    /// An anchor concept's pattern: the concepts must be found for the rules.
    anchor: bool,
    /// Letters spaced out, which the fast pass cannot join: its terms are
    /// walked for again, not handed over.
    spaced: bool,
}

impl Marks {
    const SPACED: Marks = Marks {
        term: true,
        anchor: false,
        spaced: true,
    };

    fn union(self, other: Marks) -> Marks {
        Marks {
            term: self.term || other.term,
            anchor: self.anchor || other.anchor,
            spaced: self.spaced || other.spaced,
        }
    }
}

impl Matcher {
    /// Every entry the matcher was built with.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of automaton patterns (term variants and exceptions, by skeleton).
    pub fn pattern_count(&self) -> usize {
        self.terms.variants.len() + self.exceptions.variants.len()
    }

    /// All hits in `text`, in order of position. Cost: one table-driven pass
    /// over the bytes, plus exact work proportional to the candidate regions.
    pub fn scan<'m>(&'m self, text: &str) -> Vec<Hit<'m>> {
        self.scan_with(text, Look::Fast)
    }

    /// [`Matcher::scan`] without its shortcuts: the fast pass always one
    /// walk, whatever the length, and every region an anchor marks looked
    /// at in full. The reference the shortcuts are tested against.
    #[doc(hidden)]
    pub fn scan_reference<'m>(&'m self, text: &str) -> Vec<Hit<'m>> {
        self.scan_with(text, Look::Reference)
    }

    /// The exact pass alone over all of a one-line `text`, as one region,
    /// with no fast pass to choose where to look: what the fast pass must
    /// never lose (its candidates are a superset of the exact pass's).
    #[doc(hidden)]
    pub fn scan_exact<'m>(&'m self, text: &str) -> Vec<Hit<'m>> {
        self.scan_with(text, Look::Everything)
    }

    fn scan_with<'m>(&'m self, text: &str, look: Look) -> Vec<Hit<'m>> {
        let mut hits = Vec::new();
        let shortcuts = look == Look::Fast;
        let mut handed = Vec::new();
        let (merged, cores) = match look {
            Look::Fast => {
                let (regions, matches) = self.fast_pass(text, INTERLEAVE_MIN);
                handed = matches;
                merge(regions, text)
            }
            Look::Reference => merge(self.fast_pass(text, usize::MAX).0, text),
            Look::Everything => (
                vec![Merged {
                    from: 0,
                    to: text.len(),
                    marks: Marks {
                        term: true,
                        anchor: true,
                        spaced: true,
                    },
                    cores: 0..1,
                }],
                vec![(0, text.len())],
            ),
        };
        for m in merged {
            let lo = handed.partition_point(|h| h.0 < m.from);
            let hi = handed.partition_point(|h| h.0 < m.to);
            self.exact_pass(
                text,
                &m,
                &cores[m.cores.clone()],
                shortcuts,
                (shortcuts && !m.marks.spaced).then_some(&handed[lo..hi.max(lo)]),
                &mut hits,
            );
        }
        if !self.detectors.is_empty() {
            self.detect(text, &mut hits);
        }
        // Entry address as the last key puts duplicates of one entry next
        // to each other, so `dedup_by` removes all of them.
        hits.sort_by_key(|h| (h.start, h.end, std::ptr::from_ref(h.entry) as usize));
        hits.dedup_by(|a, b| {
            a.start == b.start && a.end == b.end && std::ptr::eq(a.entry, b.entry)
        });
        hits
    }

    /// Heap bytes of the fast pass's automaton.
    pub fn automaton_bytes(&self) -> usize {
        self.terms.dfa.memory_usage()
    }

    /// Heap bytes of the exact pass's automata: exceptions and concepts.
    pub fn exact_automata_bytes(&self) -> (usize, usize) {
        (
            self.exceptions.dfa.memory_usage(),
            self.concepts.as_ref().map_or(0, |c| c.dfa.memory_usage()),
        )
    }

    /// The fast pass alone: how many candidate regions it marks. For
    /// benchmarks.
    #[doc(hidden)]
    pub fn candidate_regions(&self, text: &str) -> usize {
        self.fast_pass(text, INTERLEAVE_MIN).0.len()
    }

    fn detect<'m>(&'m self, text: &str, hits: &mut Vec<Hit<'m>>) {
        crate::detect::find_all(text, &self.detector_kinds, |kind, start, end| {
            // Two libraries may both ask for one kind: each gets its hit.
            for (_, entry) in self.detectors.iter().filter(|(k, _)| *k == kind) {
                hits.push(Hit {
                    entry,
                    severity: entry.severity,
                    start,
                    end,
                    because: Vec::new(),
                });
            }
        });
    }

    /// The fast pass: candidate regions of `text`. Long texts are walked
    /// as [`WALKS`] parts at once, interleaved, so the chains of automaton
    /// look-ups overlap in the processor (each look-up waits on memory;
    /// independent ones wait together).
    /// Returns the regions, and every match as the original bytes it came
    /// from and its pattern, sorted.
    fn fast_pass(
        &self,
        text: &str,
        interleave_min: usize,
    ) -> (Vec<Region>, Vec<(usize, usize, u32)>) {
        let dfa = &self.terms.dfa;
        let sink = |_| Regions {
            terms: &self.terms,
            spaced_widen: self.spaced_widen,
            spaced_context: self.spaced_context,
            out: Vec::new(),
            matches: Vec::new(),
        };
        let bytes = text.as_bytes();
        // Where each walk starts: the text's start, then whitespace.
        let mut cuts = [0usize; WALKS];
        let mut parts = 1;
        if bytes.len() >= interleave_min {
            for k in 1..WALKS {
                let at = bytes.len() * k / WALKS;
                if let Some(p) = bytes[at..].iter().position(u8::is_ascii_whitespace)
                    && at + p > cuts[parts - 1]
                {
                    cuts[parts] = at + p;
                    parts += 1;
                }
            }
        }
        let Ok(start) = dfa.start_state(Anchored::No) else {
            return (Vec::new(), Vec::new());
        };
        if parts < WALKS {
            let mut one = sink(0);
            Walk::all(dfa, text, &mut one);
            return (one.out, one.matches);
        }
        let mut found: [Regions<'_>; WALKS] = std::array::from_fn(sink);
        let mut walks: [Walk; WALKS] =
            std::array::from_fn(|k| Walk::new(dfa, start, cuts[k], &mut found[k]));
        let ends: [usize; WALKS] = std::array::from_fn(|k| {
            if k + 1 < WALKS {
                cuts[k + 1]
            } else {
                bytes.len()
            }
        });
        // All in step while every part has bytes left.
        let [w0, w1, w2, w3] = &mut walks;
        let [f0, f1, f2, f3] = &mut found;
        let [mut i0, mut i1, mut i2, mut i3] = cuts;
        let [e0, e1, e2, e3] = ends;
        while i0 < e0 && i1 < e1 && i2 < e2 && i3 < e3 {
            i0 = w0.step(dfa, text, i0, f0);
            i1 = w1.step(dfa, text, i1, f1);
            i2 = w2.step(dfa, text, i2, f2);
            i3 = w3.step(dfa, text, i3, f3);
        }
        let mut at = [i0, i1, i2, i3];
        let fresh = dfa.next_state(Anchored::No, start, BOUNDARY);
        let mut regions = Vec::new();
        let mut matches = Vec::new();
        for (k, (walk, sink)) in walks.iter_mut().zip(&mut found).enumerate() {
            while at[k] < ends[k] {
                at[k] = walk.step(dfa, text, at[k], sink);
            }
            // A part goes on past its end until it is where a fresh walk
            // would be: from there on the next part's walk has seen
            // everything it would.
            while at[k] < bytes.len() && !(at[k] > ends[k] && walk.is_fresh(fresh)) {
                at[k] = walk.step(dfa, text, at[k], sink);
            }
            if at[k] >= bytes.len() {
                walk.finish(dfa, bytes.len(), sink);
            }
            regions.append(&mut sink.out);
            matches.append(&mut sink.matches);
        }
        // A part's walk past its end meets what the next part's did.
        matches.sort_unstable();
        matches.dedup();
        (regions, matches)
    }

    /// `handed`: the fast pass's matches in the region, to take its terms
    /// from instead of walking for them again; `None` to walk (no
    /// shortcuts, or letters spaced out in the region).
    fn exact_pass<'m>(
        &'m self,
        text: &str,
        merged: &Merged,
        cores: &[(usize, usize)],
        shortcuts: bool,
        handed: Option<&[(usize, usize, u32)]>,
        hits: &mut Vec<Hit<'m>>,
    ) {
        let Merged {
            from, to, marks, ..
        } = *merged;
        // Most regions an anchor marks hold no rule's concepts at all: a
        // walk over the concepts' skeletons says so before any normalising.
        let anchor = marks.anchor && (!shortcuts || self.rule_possible(&text[from..to]));
        if !marks.term && !anchor {
            return;
        }
        let region = &text[from..to];
        let first_hit = hits.len();
        let norm = normalize(region);
        let unjoined = norm.joined.then(|| normalize_unjoined(region));
        // Each reading of the region with its skeleton, made once for the
        // terms, the exceptions and the concepts.
        let readings: Vec<Reading<'_>> = std::iter::once(&norm)
            .chain(unjoined.as_ref())
            .map(|norm| {
                let (skel, runs) = skeleton(&norm.bytes);
                Reading { norm, skel, runs }
            })
            .collect();
        // The concepts of this region, found once if a term's cues or an
        // anchor's rules need them.
        let mut concepts: Option<Vec<Occurrence>> = None;
        // A region only an anchor marked (most of them: anchors are
        // everyday words) is done once no rule has all its concepts here;
        // its exceptions, needed only to except a rule's hit, wait till then.
        if !marks.term {
            let occurrences = self.region_occurrences(&readings, from);
            if !self.rule_needs.any_met(&self.rule_needs.held(&occurrences)) {
                return;
            }
            concepts = Some(occurrences);
        }
        let mut found: Vec<(Target, usize, usize)> = Vec::new();
        for (n, r) in readings.iter().enumerate() {
            let mut keep = |target: &Target, s, e| {
                if let Some((os, oe)) = original_span(&r.norm.spans, &r.norm.bytes, s, e) {
                    found.push((target.clone(), from + os, from + oe));
                }
            };
            // Terms are looked for only in the cores the fast pass marked
            // (each term's words and its exceptions' words), not in the
            // words around them taken in for cues; exceptions too, unless
            // a rule's hit may need excepting anywhere in the region.
            let whole = 0..r.skel.len();
            let in_cores = if shortcuts {
                r.skeleton_ranges(cores, from)
            } else {
                std::iter::once(whole.clone()).collect()
            };
            if marks.term {
                match handed {
                    // The first reading is the one the fast pass walked.
                    Some(handed) if n == 0 => {
                        self.terms
                            .handed_candidates(r, handed, from, &in_cores, &mut keep);
                    }
                    _ => {
                        for range in &in_cores {
                            self.terms.candidates(
                                &r.skel,
                                range.clone(),
                                &r.runs,
                                &r.norm.bytes,
                                &mut keep,
                            );
                        }
                    }
                }
            }
            let exceptions_in = if anchor {
                std::slice::from_ref(&whole)
            } else {
                &in_cores[..]
            };
            for range in exceptions_in {
                self.exceptions.candidates(
                    &r.skel,
                    range.clone(),
                    &r.runs,
                    &r.norm.bytes,
                    &mut keep,
                );
            }
        }
        // Exceptions by start, so each look-up is a short window even in a
        // long line full of terms.
        let mut exceptions: Vec<(usize, usize, u32)> = found
            .iter()
            .filter_map(|(t, s, e)| match t {
                Target::Exception(c) => Some((*s, *e, *c)),
                _ => None,
            })
            .collect();
        exceptions.sort_unstable();
        let excepted = |cat: u32, s: usize, e: usize| {
            let lo = exceptions.partition_point(|x| x.0 + SPAN_REACH < s);
            let hi = exceptions.partition_point(|x| x.0 <= s);
            exceptions[lo..hi.max(lo)]
                .iter()
                .any(|&(_, xe, c)| c == cat && e <= xe)
        };
        let mut region_concepts = || self.region_occurrences(&readings, from);
        for (target, s, e) in &found {
            let Target::Term(idx) = target else { continue };
            let cat = self.entry_category[*idx as usize];
            if excepted(cat, *s, *e) {
                continue;
            }
            let entry = &self.entries[*idx as usize];
            let mut severity = self.contextual_severity(*idx as usize, *s, *e, text);
            if is_a_name(text, *s) {
                severity = shift(severity, -NAME_LOWERS);
            }
            let lower = &self.category_lower[cat as usize];
            let lowered = if lower.is_empty() {
                0
            } else {
                let cues = concepts.get_or_insert_with(&mut region_concepts);
                self.cue_shift(lower, cues, *s, *e, std::slice::from_ref(&(*s..*e)), text)
            };
            hits.push(Hit {
                entry,
                severity: shift(severity, -lowered),
                start: *s,
                end: *e,
                because: Vec::new(),
            });
        }
        if anchor {
            let occurrences = concepts.get_or_insert_with(&mut region_concepts);
            if !occurrences.is_empty() {
                let mut region_hits = hits.split_off(first_hit);
                self.apply_rules(text, occurrences, &excepted, &mut region_hits);
                Self::drop_covered_rule_hits(&mut region_hits);
                hits.append(&mut region_hits);
            }
        }
    }

    /// Whether some rule could stand in `region`: whether every concept
    /// of a rule is among those whose skeletons a walk over the region
    /// meets. It normalises nothing, and what it meets is a superset of
    /// what the exact look finds (letters spaced out aside, which it
    /// answers yes to), so a no is sure.
    fn rule_possible(&self, region: &str) -> bool {
        let Some(concepts) = &self.concepts else {
            return false;
        };
        let mut seen = ConceptsSeen {
            concepts,
            seen: self.rule_needs.none(),
            spaced: false,
        };
        Walk::all(&concepts.dfa, region, &mut seen);
        seen.spaced || self.rule_needs.any_met(&seen.seen)
    }

    /// Every concept in a region, in each reading of spaced letters ("r u
    /// on ur own" is also "ru on ur own"), sorted by start.
    fn region_occurrences(&self, readings: &[Reading<'_>], from: usize) -> Vec<Occurrence> {
        let mut out = Vec::new();
        let Some(concepts) = &self.concepts else {
            return out;
        };
        for r in readings {
            concepts.candidates(
                &r.skel,
                0..r.skel.len(),
                &r.runs,
                &r.norm.bytes,
                |target, s, e| {
                    if let (Target::Concept(c), Some((os, oe))) =
                        (target, original_span(&r.norm.spans, &r.norm.bytes, s, e))
                    {
                        out.push(Occurrence {
                            concept: *c,
                            start: from + os,
                            end: from + oe,
                        });
                    }
                },
            );
        }
        // Found in order of their ends; the rules look them up by start.
        out.sort_unstable_by_key(|o| (o.start, o.end, o.concept));
        if readings.len() > 1 {
            out.dedup_by_key(|o| (o.start, o.end, o.concept));
        }
        out
    }

    /// Leaves out the rule hits among `hits` that a term of the same
    /// category already covers at the same or a higher severity: they tell
    /// staff nothing more, and each would be a capture of its own.
    fn drop_covered_rule_hits(hits: &mut Vec<Hit<'_>>) {
        if !hits.iter().any(|h| h.entry.rule == Rule::Context) {
            return;
        }
        let mut terms: Vec<&Hit<'_>> = hits
            .iter()
            .filter(|t| t.entry.rule != Rule::Context)
            .collect();
        terms.sort_unstable_by_key(|t| t.start);
        let covered = |r: &Hit<'_>| {
            let lo = terms.partition_point(|t| t.start + SPAN_REACH < r.start);
            let hi = terms.partition_point(|t| t.start < r.end);
            r.entry.rule == Rule::Context
                && terms[lo..hi.max(lo)].iter().any(|t| {
                    t.entry.category == r.entry.category
                        && t.severity >= r.severity
                        && r.start < t.end
                })
        };
        let keep: Vec<bool> = hits.iter().map(|h| !covered(h)).collect();
        let mut k = keep.into_iter();
        hits.retain(|_| k.next().unwrap_or(true));
    }

    /// Hits of the context rules whose concepts all stand close enough.
    fn apply_rules<'m>(
        &'m self,
        text: &str,
        occurrences: &[Occurrence],
        excepted: &dyn Fn(u32, usize, usize) -> bool,
        hits: &mut Vec<Hit<'m>>,
    ) {
        let held = self.rule_needs.held(occurrences);
        for (r, rule) in self.rules.iter().enumerate() {
            // Every concept present at all, before any pairing.
            if !self.rule_needs.met(r, &held) {
                continue;
            }
            let cat = self.entry_category[rule.entry as usize];
            for first in occurrences.iter().filter(|o| o.concept == rule.all[0]) {
                let Some((parts, start, end)) = pair_up(rule, first, occurrences, text) else {
                    continue;
                };
                if excepted(cat, start, end) {
                    continue;
                }
                let entry = &self.entries[rule.entry as usize];
                let own: Vec<_> = parts.iter().map(|p| p.start..p.end).collect();
                // A rule's own words may raise it ("r u" is the second
                // person a question to a child needs), never lower it.
                let up = self.cue_shift(&rule.raise, occurrences, start, end, &[], text);
                let down = self.cue_shift(&rule.lower, occurrences, start, end, &own, text)
                    + self.cue_shift(
                        &self.category_lower[cat as usize],
                        occurrences,
                        start,
                        end,
                        &own,
                        text,
                    );
                hits.push(Hit {
                    entry,
                    severity: shift(entry.severity, up - down),
                    start,
                    end,
                    because: own,
                });
            }
        }
    }

    /// The summed weight of the cue concepts in `cues` found within
    /// [`CUE_WORDS`] words of `start..end` (each concept counted once).
    /// `own`: the hit's own words (the term, or a rule's concepts), which
    /// are not looked at as cues (a hit's own words never lower it).
    fn cue_shift(
        &self,
        cues: &[u32],
        occurrences: &[Occurrence],
        start: usize,
        end: usize,
        own: &[std::ops::Range<usize>],
        text: &str,
    ) -> i32 {
        if cues.is_empty() {
            return 0;
        }
        let near = near(occurrences, start, end, CUE_WORDS);
        cues.iter()
            .filter(|c| {
                near.iter().any(|o| {
                    // A cue may overlap the hit ("never send" around "send"),
                    // but the hit's own words are not its context: "the
                    // government" does not make "overthrow the government"
                    // news.
                    o.concept == **c
                        && !own.iter().any(|w| w.start <= o.start && o.end <= w.end)
                        && words_in(text, o.end.min(start), o.start.max(end)) <= CUE_WORDS + 1
                })
            })
            .map(|c| i32::from(self.concept_weight[*c as usize]))
            .sum()
    }

    /// The severity of entry `idx` found at `start..end`, raised or
    /// lowered by its context words within [`CONTEXT_REACH`] bytes. The
    /// hit's own words are not its context: "school" raises a weapon
    /// named near a school, not the term "school shooting" itself.
    fn contextual_severity(&self, idx: usize, start: usize, end: usize, text: &str) -> u8 {
        let e = &self.entries[idx];
        let (raise, lower) = &self.context_words[idx];
        if raise.is_empty() && lower.is_empty() {
            return e.severity;
        }
        let from = floor_char(text, start.saturating_sub(CONTEXT_REACH));
        let to = ceil_char(text, (end + CONTEXT_REACH).min(text.len()));
        let mut window = normalize(&text[from..to]);
        let own = (start - from) as u32..(end - from) as u32;
        for (b, span) in window.bytes.iter_mut().zip(&window.spans) {
            if span.0 < span.1 && own.start <= span.0 && span.1 <= own.end {
                *b = b' ';
            }
        }
        // Normalised text is ASCII.
        let norm = String::from_utf8(window.bytes).unwrap_or_default();
        let near = |words: &[String]| words.iter().any(|w| norm.contains(w.as_str()));
        let mut sev = e.severity as i32;
        if near(raise) {
            sev += 1;
        }
        if near(lower) {
            sev -= 1;
        }
        sev.clamp(1, 5) as u8
    }
}

/// Words that make the term right after them a name: "mr dyke", "dr
/// butt". ("miss" is left out: "i miss cutting" is a verb.)
const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "mx",
    "dr",
    "prof",
    "professor",
    "named",
    "surname",
];

/// Two words that make the term right after them a name: "my cousin's
/// name is isis", "a village called shitterton". ("called" alone is left
/// out: "getting called gay" is bullying.)
const NAME_FRAMES: &[(&str, &str)] = &[
    ("name", "is"),
    ("name", "was"),
    ("surname", "is"),
    ("village", "called"),
    ("town", "called"),
    ("city", "called"),
    ("place", "called"),
    ("road", "called"),
    ("street", "called"),
    ("band", "called"),
    ("team", "called"),
    ("shop", "called"),
    ("pub", "called"),
];

/// Who or what "called" names when it follows them, straight or after
/// "is" or "was": "a boy called isis", "the new boy is called isis", "our
/// dog was called tank". (Not "he" or "she": "he is called gay by
/// everyone" is bullying.)
const NAMED_BEINGS: &[&str] = &[
    "boy",
    "girl",
    "kid",
    "baby",
    "man",
    "woman",
    "lady",
    "guy",
    "brother",
    "sister",
    "cousin",
    "friend",
    "teacher",
    "neighbour",
    "dog",
    "cat",
    "puppy",
    "kitten",
    "hamster",
    "rabbit",
    "horse",
    "pony",
    "character",
    "player",
];

/// How far a term named as a name is lowered: a severity 4 word as a
/// surname is a 2, below the capture threshold.
const NAME_LOWERS: i32 = 2;

/// Whether the term at byte `start` stands as a name: right after a title
/// or a naming frame ([`TITLES`], [`NAME_FRAMES`]), on the same line.
fn is_a_name(text: &str, start: usize) -> bool {
    let before = &text.as_bytes()[..start];
    let Some((last, rest)) = word_before(before) else {
        return false;
    };
    if one_of(last, TITLES) {
        return true;
    }
    let Some((first, rest)) = word_before(rest) else {
        return false;
    };
    if NAME_FRAMES
        .iter()
        .any(|(a, b)| one_of(first, &[a]) && one_of(last, &[b]))
    {
        return true;
    }
    if !one_of(last, &["called"]) {
        return false;
    }
    // "a boy called isis", "the new boy is called isis".
    one_of(first, NAMED_BEINGS)
        || (one_of(first, &["is", "was"])
            && word_before(rest).is_some_and(|(being, _)| one_of(being, NAMED_BEINGS)))
}

/// Whether `word` is one of `list`, ignoring ASCII case.
fn one_of(word: &[u8], list: &[&str]) -> bool {
    list.iter().any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
}

/// The last word of `bytes` (ASCII letters, past any spaces and
/// punctuation, not past a line break), and what comes before it.
fn word_before(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes
        .iter()
        .rposition(|b| b.is_ascii_alphanumeric() || *b == b'\n' || !b.is_ascii())?;
    if !bytes[end].is_ascii_alphabetic() {
        return None;
    }
    let start = bytes[..end]
        .iter()
        .rposition(|b| !b.is_ascii_alphabetic())
        .map_or(0, |i| i + 1);
    Some((&bytes[start..=end], &bytes[..start]))
}

/// The most words (split at whitespace) of any concept's term.
fn longest_concept_words(concepts: &[crate::library::Concept]) -> usize {
    concepts
        .iter()
        .flat_map(|c| &c.terms)
        .map(|t| t.split_whitespace().count())
        .max()
        .unwrap_or(1)
}

/// A severity moved by `by`, kept within 1–5.
fn shift(severity: u8, by: i32) -> u8 {
    (i32::from(severity) + by).clamp(1, 5) as u8
}

/// Words (runs of non-whitespace) that start in `text[from..to]`, plus one
/// if the range starts inside a word.
fn words_in(text: &str, from: usize, to: usize) -> usize {
    let bytes = &text.as_bytes()[from.min(to)..to];
    let mut n = 0;
    let mut in_word = false;
    for b in bytes {
        let space = b.is_ascii_whitespace();
        if !space && !in_word {
            n += 1;
        }
        in_word = !space;
    }
    n
}

/// The occurrences (sorted by start) that may lie within `words` words of
/// `start..end`: those starting within [`WIDEN`] bytes a word of it. Keeps
/// the rules linear in a long text full of concepts.
fn near(occurrences: &[Occurrence], start: usize, end: usize, words: usize) -> &[Occurrence] {
    let reach = WIDEN * (words + 1);
    let lo = occurrences.partition_point(|o| o.start + reach < start);
    let hi = occurrences.partition_point(|o| o.start <= end + reach);
    &occurrences[lo..hi.max(lo)]
}

/// For a rule and an occurrence of its first concept, the nearest
/// occurrence of each other concept (after the previous one, if the rule
/// is ordered; never overlapping one already taken), and the byte range
/// they span, if that is at most the rule's `within` words.
fn pair_up(
    rule: &CompiledRule,
    first: &Occurrence,
    occurrences: &[Occurrence],
    text: &str,
) -> Option<(Vec<Occurrence>, usize, usize)> {
    let mut parts = vec![*first];
    let occurrences = near(occurrences, first.start, first.end, rule.within);
    for c in &rule.all[1..] {
        let after = parts.last().map_or(0, |p| p.end);
        let best = occurrences
            .iter()
            .filter(|o| o.concept == *c)
            .filter(|o| !rule.ordered || o.start >= after)
            .filter(|o| !parts.iter().any(|p| o.start < p.end && p.start < o.end))
            .min_by_key(|o| o.start.abs_diff(first.start))?;
        parts.push(*best);
    }
    let start = parts.iter().map(|p| p.start).min()?;
    let end = parts.iter().map(|p| p.end).max()?;
    // A phrase counts as one word: "go back to" and "your own country"
    // stand within two words of each other, as "go" and "poland" do.
    let inside: usize = parts
        .iter()
        .map(|p| words_in(text, p.start, p.end).saturating_sub(1))
        .sum();
    // And the concepts stand in one sentence.
    (words_in(text, start, end).saturating_sub(inside) <= rule.within
        && !crosses_a_sentence(&text[start..end]))
    .then_some((parts, start, end))
}

/// Whether `span` holds the end of a sentence: `.`, `!` or `?` and then a
/// space.
fn crosses_a_sentence(span: &str) -> bool {
    span.as_bytes()
        .windows(2)
        .any(|w| matches!(w[0], b'.' | b'!' | b'?') && w[1].is_ascii_whitespace())
}

/// How a scan chooses where the exact pass looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// The fast pass (interleaved walks) and every shortcut: a scan.
    Fast,
    /// The fast pass as one walk, every region an anchor marks looked at
    /// in full and every term looked for in the whole region.
    Reference,
    /// No fast pass: the whole text is one region.
    Everything,
}

/// Texts at least this long are walked as [`WALKS`] interleaved parts.
const INTERLEAVE_MIN: usize = 4096;
/// How many parts of a long text the fast pass walks at once (the loop
/// that keeps them in step is written out for four).
const WALKS: usize = 4;

/// The concepts a walk over a region meets (see [`Matcher::rule_possible`]).
struct ConceptsSeen<'p> {
    concepts: &'p Patterns<ContiguousNfa>,
    /// As bits (see [`RuleNeeds`]).
    seen: Vec<u64>,
    spaced: bool,
}

impl Sink for ConceptsSeen<'_> {
    fn pattern(&mut self, pid: PatternID, _: usize, _: usize) {
        for v in &self.concepts.variants[pid.as_usize()] {
            if let Target::Concept(c) = v.target {
                set_bit(&mut self.seen, c);
            }
        }
    }

    fn spaced(&mut self, _: usize, _: usize) {
        self.spaced = true;
    }
}

/// The fast pass's sink: each match of the terms' automaton marks a region.
struct Regions<'p> {
    terms: &'p Patterns,
    spaced_widen: (u8, u8),
    spaced_context: u8,
    out: Vec<Region>,
    /// Each match: the original bytes it came from, and its pattern.
    matches: Vec<(usize, usize, u32)>,
}

impl Sink for Regions<'_> {
    fn pattern(&mut self, pid: PatternID, start: usize, end: usize) {
        self.matches.push((start, end, pid.as_u32()));
        self.out.push(Region {
            start,
            end,
            widen: self.terms.widen[pid.as_usize()],
            context: self.terms.context[pid.as_usize()],
            marks: self.terms.marks[pid.as_usize()],
        });
    }

    fn spaced(&mut self, start: usize, end: usize) {
        self.out.push(Region {
            start,
            end,
            widen: self.spaced_widen,
            context: self.spaced_context,
            marks: Marks::SPACED,
        });
    }
}

/// Context words as they appear in normalised text: " word ".
fn context_needles(words: &[String]) -> Vec<String> {
    words
        .iter()
        .map(|w| {
            let norm = crate::normalize::normalize_term(w);
            format!(" {} ", String::from_utf8_lossy(&norm))
        })
        .collect()
}

/// The original byte range of normalised bytes `s..e`, trimmed of
/// boundaries; `None` if there is nothing but boundaries.
fn original_span(spans: &[(u32, u32)], bytes: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    let first = (s..e).find(|&i| bytes[i] != b' ')?;
    let last = (s..e).rev().find(|&i| bytes[i] != b' ')?;
    Some((spans[first].0 as usize, spans[last].1 as usize))
}

/// A region of the text for the exact pass: regions of the fast pass
/// widened and merged.
struct Merged {
    from: usize,
    to: usize,
    marks: Marks,
    /// Its terms' cores, as a range of the list [`merge`] returns with it.
    cores: Range<usize>,
}

/// Widens regions to whole words plus the words their exceptions need
/// (the core) and those their cues and rules need (words split at
/// whitespace, each at most [`WIDEN`] bytes), merges overlapping ones,
/// and returns byte ranges on character boundaries, with the cores of
/// the regions a term marked.
fn merge(regions: Vec<Region>, text: &str) -> (Vec<Merged>, Vec<(usize, usize)>) {
    let bytes = text.as_bytes();
    let mut widened: Vec<(usize, usize, usize, usize, Marks)> = regions
        .into_iter()
        .map(|r| {
            let (cs, s) = widen_back(bytes, r.start, r.widen.0, r.widen.0.max(r.context));
            // A match ending at the final boundary ends one past the text.
            let end = r.end.min(bytes.len());
            let (ce, e) = widen_forward(bytes, end, r.widen.1, r.widen.1.max(r.context));
            (
                floor_char(text, s),
                ceil_char(text, e),
                floor_char(text, cs),
                ceil_char(text, ce),
                r.marks,
            )
        })
        .collect();
    widened.sort_unstable_by_key(|r| (r.0, r.1));
    let mut merged: Vec<Merged> = Vec::new();
    let mut cores = Vec::new();
    for (s, e, cs, ce, marks) in widened {
        match merged.last_mut() {
            Some(last) if s <= last.to => {
                last.to = last.to.max(e);
                last.marks = last.marks.union(marks);
            }
            _ => merged.push(Merged {
                from: s,
                to: e,
                marks,
                cores: cores.len()..cores.len(),
            }),
        }
        if marks.term {
            cores.push((cs, ce));
            if let Some(last) = merged.last_mut() {
                last.cores.end = cores.len();
            }
        }
    }
    (merged, cores)
}

/// From byte `at`, back over `outer` more words (at most): where the
/// first `core` of them end and where all do. A line is a message: no
/// widening crosses a line break.
fn widen_back(bytes: &[u8], at: usize, core: u8, outer: u8) -> (usize, usize) {
    let mut s = at;
    let mut core_start = at;
    for word in 0..=outer {
        if word > 0 {
            while s > 0 && bytes[s - 1].is_ascii_whitespace() && bytes[s - 1] != b'\n' {
                s -= 1;
            }
        }
        let lo = s.saturating_sub(WIDEN);
        while s > lo && !bytes[s - 1].is_ascii_whitespace() {
            s -= 1;
        }
        if word == core {
            core_start = s;
        }
    }
    (core_start, s)
}

/// [`widen_back`] forward from byte `at`.
fn widen_forward(bytes: &[u8], at: usize, core: u8, outer: u8) -> (usize, usize) {
    let mut e = at;
    let mut core_end = at;
    for word in 0..=outer {
        if word > 0 {
            while e < bytes.len() && bytes[e].is_ascii_whitespace() && bytes[e] != b'\n' {
                e += 1;
            }
        }
        let hi = (e + WIDEN).min(bytes.len());
        while e < hi && !bytes[e].is_ascii_whitespace() {
            e += 1;
        }
        if word == core {
            core_end = e;
        }
    }
    (core_end, e)
}

/// For each term pattern, how many words before and after it the longest
/// exception that contains it reaches (plus one for punctuation standing
/// between words in the original text), so its region takes them in.
fn reach_of_exceptions(terms: &Patterns, exceptions: &[Vec<u8>]) -> Vec<(u8, u8)> {
    let mut widen = vec![(0u8, 0u8); terms.variants.len()];
    let words = |skel: &[u8]| {
        let n = skel
            .windows(2)
            .filter(|w| w[0] == BOUNDARY && w[1] != BOUNDARY)
            .count()
            + usize::from(skel.first().is_some_and(|&b| b != BOUNDARY));
        if n == 0 {
            0
        } else {
            (n + 1).min(MAX_EXTRA_WORDS) as u8
        }
    };
    for skel in exceptions {
        // Terms may begin or end with a boundary where the exception does.
        let skel: Vec<u8> = [BOUNDARY]
            .iter()
            .chain(skel)
            .chain(&[BOUNDARY])
            .copied()
            .collect();
        let Ok(mut sid) = terms.dfa.start_state(Anchored::No) else {
            continue;
        };
        for (j, &sym) in skel.iter().enumerate() {
            sid = terms.dfa.next_state(Anchored::No, sid, sym);
            if !(terms.dfa.is_special(sid) && terms.dfa.is_match(sid)) {
                continue;
            }
            for k in 0..terms.dfa.match_len(sid) {
                let pid = terms.dfa.match_pattern(sid, k);
                let first = j + 1 - terms.dfa.pattern_len(pid);
                let w = &mut widen[pid.as_usize()];
                w.0 = w.0.max(words(&skel[..first]));
                w.1 = w.1.max(words(&skel[j + 1..]));
            }
        }
    }
    widen
}

fn floor_char(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_char(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i
}
