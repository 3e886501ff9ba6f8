//! Term libraries as data: the TOML format, its validation, the libraries
//! built into the binary, and the import of plain one-term-per-line lists.
//!
//! One file per category:
//!
//! ```toml
//! category = "self-harm"                 # the name captures carry
//! title = "Self-harm and suicide"
//! exceptions = ["kill time", "dying to"]  # innocent words and phrases
//!
//! [[group]]                # terms that share a severity and definition
//! severity = 5             # 1 (lowest) to 5 (gravest)
//! rule = "phrase"          # word (default) | prefix | substring | phrase
//! definition = "States an intention to end their own life."
//! raise = ["tonight"]      # optional: these words nearby raise severity by 1
//! lower = ["game"]         # optional: these lower it by 1
//! terms = ["kill myself", "end my life"]
//! ```
//!
//! A term may hold the emoji pupils use as code words ("got ❄️ hmu", "🔌"):
//! those [`crate::fold::emoji_word`] lists are read as words of their own;
//! any other emoji is a word boundary, and a term of nothing else is refused.
//!
//! Context rules find risk said in ordinary words, where no single word is
//! enough. A **concept** is a set of words and phrases that mean one thing;
//! a **rule** fires when all its concepts stand within a few words of each
//! other, and cue concepts near it raise or lower its severity:
//!
//! ```toml
//! [[concept]]
//! name = "parents-away"        # concepts are shared by every file
//! terms = ["parents out", "mum at work", "nobody home"]
//!
//! [[concept]]
//! name = "when-question"
//! anchor = false               # a common word: looked for only near an anchor
//! terms = ["when", "what time"]
//!
//! [[rule]]
//! name = "asks when a child's parents are away"
//! severity = 4
//! definition = "Asks when the child will be without adults; a grooming pattern."
//! all = ["when-question", "parents-away"]  # each within `within` words
//! within = 6                   # words from the first to the last, a phrase counting as one (default 8)
//! ordered = false              # true: in the order listed
//! raise = ["second-person"]    # each cue concept near the hit: +weight
//! lower = ["safety-advice"]    # each: -weight
//! ```
//!
//! A concept's `weight` (default 1) is how far it moves a severity as a cue.
//! At least one concept of a rule must be an anchor (the default): anchors
//! are in the fast pass, so a rule costs nothing on text without one.
//! `lower = [...]` at the top of a category file names cue concepts that
//! lower every hit of that category (safety advice, schoolwork framing).
//! A file without `category` holds only concepts.
//!
//! A school's own files have the same format; a file whose category is
//! already defined adds its groups and exceptions to that category.
//! No I/O here: callers hand in the text.

use serde::Deserialize;
use thiserror::Error;

use crate::normalize::normalize_term;

/// How a term must sit in the text to match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    /// A whole word: "rape" in "the rape", not in "grape".
    Word,
    /// The start of a word: "masturbat" in "masturbating".
    Prefix,
    /// Anywhere, even inside a word. Use sparingly.
    Substring,
    /// A whole phrase of several words; also matched with the spaces left
    /// out ("killmyself").
    Phrase,
    /// Found by a built-in detector, not by a term (phone numbers, …).
    Pattern,
    /// Found by a context rule: concepts together (see [`ContextRule`]).
    Context,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Word => "word",
            Rule::Prefix => "prefix",
            Rule::Substring => "substring",
            Rule::Phrase => "phrase",
            Rule::Pattern => "pattern",
            Rule::Context => "context",
        }
    }
}

/// One term of a library, with everything staff need to know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub term: String,
    pub category: String,
    pub severity: u8,
    pub rule: Rule,
    pub definition: String,
    pub raise: Vec<String>,
    pub lower: Vec<String>,
}

/// A category: its entries and its exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Category {
    pub name: String,
    pub title: String,
    pub entries: Vec<Entry>,
    pub exceptions: Vec<String>,
    /// Built-in detectors of personal information ("phone", "email", …).
    pub detectors: Vec<Detector>,
    /// Context rules: concepts found together.
    pub rules: Vec<ContextRule>,
    /// Cue concepts that lower every hit of this category.
    pub lower: Vec<String>,
    /// Concepts this file defines (shared by all categories once added to
    /// [`Libraries`]).
    pub concepts: Vec<Concept>,
}

/// Words and phrases that mean one thing, for [`ContextRule`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concept {
    pub name: String,
    /// In the fast pass (true), or looked for only around an anchor.
    pub anchor: bool,
    /// How far the concept moves a severity when it is a cue.
    pub weight: u8,
    /// Each matched like a library term: one word is a whole word, several
    /// a phrase; chat-speak spellings included.
    pub terms: Vec<String>,
}

/// Concepts found together make a hit of this rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextRule {
    /// What staff see as the term.
    pub name: String,
    pub severity: u8,
    pub definition: String,
    /// Concept names; every one must be found.
    pub all: Vec<String>,
    /// Most words from the start of the first to the end of the last.
    pub within: u8,
    /// Whether the concepts must come in the order of `all`.
    pub ordered: bool,
    /// Cue concepts that raise (each by its weight) when near.
    pub raise: Vec<String>,
    /// Cue concepts that lower when near.
    pub lower: Vec<String>,
}

impl ContextRule {
    /// The rule as an entry of its category, as captures and `dump` show it.
    pub fn entry(&self, category: &str) -> Entry {
        Entry {
            term: self.name.clone(),
            category: category.to_owned(),
            severity: self.severity,
            rule: Rule::Context,
            definition: self.definition.clone(),
            raise: self.raise.clone(),
            lower: self.lower.clone(),
        }
    }
}

/// Most words a rule may span.
pub const MAX_WITHIN: u8 = 16;

/// A built-in pattern detector used where a list of terms cannot do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detector {
    pub kind: DetectorKind,
    pub severity: u8,
    pub definition: String,
}

/// What a [`Detector`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// A UK or international phone number.
    Phone,
    /// An email address.
    Email,
    /// A UK postcode.
    Postcode,
    /// A house number and street ("12 Elm Road").
    StreetAddress,
}

impl DetectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Phone => "phone number",
            DetectorKind::Email => "email address",
            DetectorKind::Postcode => "postcode",
            DetectorKind::StreetAddress => "street address",
        }
    }
}

/// A library file could not be used.
#[derive(Debug, Error)]
#[error("{file}: {message}")]
pub struct LibraryError {
    pub file: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    category: Option<String>,
    title: Option<String>,
    #[serde(default)]
    exceptions: Vec<String>,
    #[serde(default)]
    lower: Vec<String>,
    #[serde(default)]
    concept: Vec<ConceptToml>,
    #[serde(default)]
    rule: Vec<RuleToml>,
    #[serde(default)]
    group: Vec<GroupToml>,
    #[serde(default)]
    detector: Vec<DetectorToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupToml {
    severity: i64,
    rule: Option<Rule>,
    definition: String,
    #[serde(default)]
    raise: Vec<String>,
    #[serde(default)]
    lower: Vec<String>,
    terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConceptToml {
    name: String,
    anchor: Option<bool>,
    weight: Option<i64>,
    terms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    name: String,
    severity: i64,
    definition: String,
    all: Vec<String>,
    within: Option<i64>,
    ordered: Option<bool>,
    #[serde(default)]
    raise: Vec<String>,
    #[serde(default)]
    lower: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetectorToml {
    kind: DetectorKind,
    severity: i64,
    definition: String,
}

fn severity(file: &str, value: i64, what: &str) -> Result<u8, LibraryError> {
    u8::try_from(value)
        .ok()
        .filter(|s| (1..=5).contains(s))
        .ok_or_else(|| LibraryError {
            file: file.to_owned(),
            message: format!(
                "{what}: severity {value} is out of range; use 1 (lowest) to 5 (gravest)"
            ),
        })
}

/// Parses one library file. `file` names it in errors.
///
/// # Errors
/// A [`LibraryError`] naming the file and, for syntax errors, the line:
/// bad TOML, unknown keys, a severity outside 1–5, an empty term or
/// definition, or a term with nothing matchable in it.
pub fn parse(file: &str, text: &str) -> Result<Category, LibraryError> {
    let err = |message: String| LibraryError {
        file: file.to_owned(),
        message,
    };
    let raw: FileToml =
        toml::from_str(text).map_err(|e| err(e.to_string().trim_end().to_owned()))?;
    let concepts = raw
        .concept
        .iter()
        .map(|c| parse_concept(c).map_err(&err))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(name) = raw.category.as_deref().map(str::trim) else {
        if !(raw.group.is_empty()
            && raw.rule.is_empty()
            && raw.exceptions.is_empty()
            && raw.detector.is_empty()
            && raw.lower.is_empty())
        {
            return Err(err(
                "no `category`: a file without one may hold only [[concept]]s".into(),
            ));
        }
        return Ok(Category {
            concepts,
            ..Category::default()
        });
    };
    let name = name.to_owned();
    if name.is_empty() {
        return Err(err("the category name is empty".into()));
    }
    let mut cat = Category {
        title: raw.title.unwrap_or_else(|| name.clone()),
        name,
        concepts,
        lower: raw.lower.iter().map(|c| c.trim().to_owned()).collect(),
        ..Category::default()
    };
    for r in &raw.rule {
        cat.rules.push(parse_rule(file, r)?);
    }
    for (g, group) in raw.group.iter().enumerate() {
        let what = format!(
            "group {} ({:?}…)",
            g + 1,
            group.terms.first().map(String::as_str).unwrap_or("")
        );
        let sev = severity(file, group.severity, &what)?;
        if group.definition.trim().is_empty() {
            return Err(err(format!(
                "{what}: the definition is empty; write one line for staff"
            )));
        }
        if matches!(group.rule, Some(Rule::Pattern | Rule::Context)) {
            return Err(err(format!(
                "{what}: rule \"pattern\" is for built-in detectors and \"context\" for [[rule]]s; use word, prefix, substring or phrase"
            )));
        }
        if group.terms.is_empty() {
            return Err(err(format!("{what}: no terms")));
        }
        for term in &group.terms {
            let t = term.trim();
            if normalize_term(t).iter().all(|&b| b == b' ') {
                return Err(err(format!(
                    "{what}: term {term:?} has no letters or digits to match (of emoji, only the code words `wordlists::fold::emoji_word` lists are read)"
                )));
            }
            let rule = group.rule.unwrap_or(if t.contains(' ') {
                Rule::Phrase
            } else {
                Rule::Word
            });
            cat.entries.push(Entry {
                term: t.to_owned(),
                category: cat.name.clone(),
                severity: sev,
                rule,
                definition: group.definition.trim().to_owned(),
                raise: group.raise.clone(),
                lower: group.lower.clone(),
            });
        }
    }
    for e in &raw.exceptions {
        if normalize_term(e).iter().all(|&b| b == b' ') {
            return Err(err(format!(
                "exception {e:?} has no letters or digits to match (of emoji, only the code words `wordlists::fold::emoji_word` lists are read)"
            )));
        }
    }
    cat.exceptions = raw.exceptions.iter().map(|e| e.trim().to_owned()).collect();
    for d in raw.detector {
        let sev = severity(file, d.severity, d.kind.as_str())?;
        cat.detectors.push(Detector {
            kind: d.kind,
            severity: sev,
            definition: d.definition,
        });
    }
    Ok(cat)
}

fn parse_concept(c: &ConceptToml) -> Result<Concept, String> {
    let name = c.name.trim();
    if name.is_empty() {
        return Err("a concept has an empty name".into());
    }
    if c.terms.is_empty() {
        return Err(format!("concept {name:?}: no terms"));
    }
    for t in &c.terms {
        if normalize_term(t).iter().all(|&b| b == b' ') {
            return Err(format!(
                "concept {name:?}: term {t:?} has no letters or digits to match (of emoji, only the code words `wordlists::fold::emoji_word` lists are read)"
            ));
        }
    }
    let weight = c.weight.unwrap_or(1);
    if !(1..=4).contains(&weight) {
        return Err(format!(
            "concept {name:?}: weight {weight} is out of range; use 1 to 4"
        ));
    }
    Ok(Concept {
        name: name.to_owned(),
        anchor: c.anchor.unwrap_or(true),
        weight: weight as u8,
        terms: c.terms.iter().map(|t| t.trim().to_owned()).collect(),
    })
}

fn parse_rule(file: &str, r: &RuleToml) -> Result<ContextRule, LibraryError> {
    let err = |message: String| LibraryError {
        file: file.to_owned(),
        message,
    };
    let name = r.name.trim();
    let what = format!("rule {name:?}");
    if name.is_empty() {
        return Err(err("a rule has an empty name".into()));
    }
    if r.definition.trim().is_empty() {
        return Err(err(format!(
            "{what}: the definition is empty; write one line for staff"
        )));
    }
    if r.all.is_empty() {
        return Err(err(format!("{what}: `all` names no concept")));
    }
    let within = r.within.unwrap_or(8);
    if !(1..=i64::from(MAX_WITHIN)).contains(&within) {
        return Err(err(format!(
            "{what}: within {within} is out of range; use 1 to {MAX_WITHIN} words"
        )));
    }
    let names = |v: &[String]| v.iter().map(|c| c.trim().to_owned()).collect();
    Ok(ContextRule {
        name: name.to_owned(),
        severity: severity(file, r.severity, &what)?,
        definition: r.definition.trim().to_owned(),
        all: names(&r.all),
        within: within as u8,
        ordered: r.ordered.unwrap_or(false),
        raise: names(&r.raise),
        lower: names(&r.lower),
    })
}

/// The libraries built into the binary: (file name, text).
pub const BUILTIN: &[(&str, &str)] = &[
    ("concepts.toml", include_str!("../libraries/concepts.toml")),
    ("adult.toml", include_str!("../libraries/adult.toml")),
    ("bullying.toml", include_str!("../libraries/bullying.toml")),
    ("drugs.toml", include_str!("../libraries/drugs.toml")),
    (
        "eating-disorders.toml",
        include_str!("../libraries/eating-disorders.toml"),
    ),
    (
        "extremism.toml",
        include_str!("../libraries/extremism.toml"),
    ),
    (
        "filter-bypass.toml",
        include_str!("../libraries/filter-bypass.toml"),
    ),
    ("gambling.toml", include_str!("../libraries/gambling.toml")),
    ("grooming.toml", include_str!("../libraries/grooming.toml")),
    ("hate.toml", include_str!("../libraries/hate.toml")),
    (
        "personal-info.toml",
        include_str!("../libraries/personal-info.toml"),
    ),
    (
        "self-harm.toml",
        include_str!("../libraries/self-harm.toml"),
    ),
    ("sexting.toml", include_str!("../libraries/sexting.toml")),
    ("weapons.toml", include_str!("../libraries/weapons.toml")),
];

/// A set of categories, merged by name.
#[derive(Debug, Clone, Default)]
pub struct Libraries {
    pub categories: Vec<Category>,
    /// Every concept, by name; a later file's terms add to an earlier
    /// concept of the same name.
    pub concepts: Vec<Concept>,
}

impl Libraries {
    /// The built-in libraries.
    ///
    /// # Errors
    /// Only if a built-in file is broken, which the tests rule out.
    pub fn builtin() -> Result<Libraries, LibraryError> {
        let mut libs = Libraries::default();
        for (file, text) in BUILTIN {
            libs.add(parse(file, text)?);
        }
        Ok(libs)
    }

    /// The built-in libraries with a school's own files added on top, each
    /// given as its name and TOML text.
    ///
    /// # Errors
    /// [`LibraryError`] naming the school's file and what is wrong in it.
    pub fn builtin_with<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Libraries, LibraryError> {
        let mut libs = Libraries::builtin()?;
        for (name, text) in files {
            libs.add(parse(name, text)?);
        }
        Ok(libs)
    }

    /// Adds a category, merging it into one of the same name; its concepts
    /// join the shared ones. A file of concepts only adds no category.
    pub fn add(&mut self, mut cat: Category) {
        for c in std::mem::take(&mut cat.concepts) {
            match self.concepts.iter_mut().find(|x| x.name == c.name) {
                Some(existing) => existing.terms.extend(c.terms),
                None => self.concepts.push(c),
            }
        }
        if cat.name.is_empty() {
            return;
        }
        match self.categories.iter_mut().find(|c| c.name == cat.name) {
            Some(existing) => {
                existing.entries.extend(cat.entries);
                existing.exceptions.extend(cat.exceptions);
                existing.detectors.extend(cat.detectors);
                existing.rules.extend(cat.rules);
                existing.lower.extend(cat.lower);
            }
            None => self.categories.push(cat),
        }
    }

    /// Every context rule as an entry of its category.
    pub fn rule_entries(&self) -> impl Iterator<Item = Entry> + '_ {
        self.categories
            .iter()
            .flat_map(|c| c.rules.iter().map(|r| r.entry(&c.name)))
    }

    /// Every entry, category by category.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.categories.iter().flat_map(|c| c.entries.iter())
    }

    /// Problems `wordlists check` reports: duplicate terms within a category
    /// (same normalised form and rule) and terms an exception would always
    /// suppress.
    pub fn lint(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let concept = |name: &str| self.concepts.iter().find(|c| c.name == name);
        for cat in &self.categories {
            for name in &cat.lower {
                if concept(name).is_none() {
                    problems.push(format!(
                        "{}: `lower` names concept {name:?}, which no file defines",
                        cat.name
                    ));
                }
            }
            for r in &cat.rules {
                for name in r.all.iter().chain(&r.raise).chain(&r.lower) {
                    if concept(name).is_none() {
                        problems.push(format!(
                            "{}: rule {:?} names concept {name:?}, which no file defines",
                            cat.name, r.name
                        ));
                    }
                }
                if !r.all.iter().any(|n| concept(n).is_some_and(|c| c.anchor)) {
                    problems.push(format!(
                        "{}: rule {:?} has no anchor concept in `all`; it could never be found (mark one concept `anchor = true`)",
                        cat.name, r.name
                    ));
                }
            }
            let mut seen = std::collections::HashMap::new();
            for e in &cat.entries {
                let key = (normalize_term(&e.term), e.rule);
                if let Some(first) = seen.insert(key, &e.term) {
                    problems.push(format!(
                        "{}: duplicate term {:?} (same as {:?} once normalised)",
                        cat.name, e.term, first
                    ));
                }
            }
            let exceptions: Vec<Vec<u8>> =
                cat.exceptions.iter().map(|x| normalize_term(x)).collect();
            for e in &cat.entries {
                let t = normalize_term(&e.term);
                if let Some(x) = exceptions.iter().position(|x| *x == t) {
                    problems.push(format!(
                        "{}: term {:?} is shadowed by exception {:?} and can never match",
                        cat.name, e.term, cat.exceptions[x]
                    ));
                }
            }
        }
        problems
    }
}

/// Turns a plain list (one term per line; blank lines and `#` comments
/// skipped) into a library file in the TOML format.
pub fn import_plain(list: &str, category: &str, severity: u8, definition: &str) -> String {
    let terms: Vec<String> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|t| format!("  {},", toml_string(t)))
        .collect();
    format!(
        "category = {}\n\n[[group]]\nseverity = {severity}\ndefinition = {}\nterms = [\n{}\n]\n",
        toml_string(category),
        toml_string(definition),
        terms.join("\n")
    )
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
