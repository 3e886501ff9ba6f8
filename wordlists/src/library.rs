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
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Word => "word",
            Rule::Prefix => "prefix",
            Rule::Substring => "substring",
            Rule::Phrase => "phrase",
            Rule::Pattern => "pattern",
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
}

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
    category: String,
    title: Option<String>,
    #[serde(default)]
    exceptions: Vec<String>,
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
    let name = raw.category.trim().to_owned();
    if name.is_empty() {
        return Err(err("the category name is empty".into()));
    }
    let mut cat = Category {
        title: raw.title.unwrap_or_else(|| name.clone()),
        name,
        ..Category::default()
    };
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
        if group.rule == Some(Rule::Pattern) {
            return Err(err(format!(
                "{what}: rule \"pattern\" is for built-in detectors; use word, prefix, substring or phrase"
            )));
        }
        if group.terms.is_empty() {
            return Err(err(format!("{what}: no terms")));
        }
        for term in &group.terms {
            let t = term.trim();
            if normalize_term(t).iter().all(|&b| b == b' ') {
                return Err(err(format!(
                    "{what}: term {term:?} has no letters or digits to match"
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
                "exception {e:?} has no letters or digits to match"
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

/// The libraries built into the binary: (file name, text).
pub const BUILTIN: &[(&str, &str)] = &[
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

    /// Adds a category, merging it into one of the same name.
    pub fn add(&mut self, cat: Category) {
        match self.categories.iter_mut().find(|c| c.name == cat.name) {
            Some(existing) => {
                existing.entries.extend(cat.entries);
                existing.exceptions.extend(cat.exceptions);
                existing.detectors.extend(cat.detectors);
            }
            None => self.categories.push(cat),
        }
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
        for cat in &self.categories {
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
