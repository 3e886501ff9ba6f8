//! `wordlists`: the command-line tool for people who edit term libraries.
//! See docs/interfaces.md for the commands and their exact outputs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::json;
use wordlists::library::{self, import_plain};
use wordlists::semantic::{
    CAPTURE_TERM, Example, INNOCENT, MAX_TOKENS, Semantic, Verdict, sha256_hex, train,
};
use wordlists::{Libraries, MatcherBuilder};

#[derive(Parser)]
#[command(
    name = "wordlists",
    version,
    about = "Check, scan with, dump and benchmark safeguarding term libraries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Libs {
    /// A folder of the school's own libraries (*.toml), added to the built-in ones.
    #[arg(long, value_name = "DIR")]
    libraries: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Lint the libraries: syntax, duplicates, severities, shadowed terms.
    Check(Libs),
    /// Match each input line; print one JSON object per hit.
    Scan {
        #[command(flatten)]
        libs: Libs,
        /// The semantic layer's model, which judges each line the terms
        /// and rules leave below the capture threshold. Default: the
        /// first of $WORDLISTS_SEMANTIC_MODEL, the agent's installed model
        /// and this source tree's wordlists/semantic/model that holds one.
        #[arg(long, value_name = "DIR", conflicts_with = "no_semantic")]
        semantic: Option<PathBuf>,
        /// Terms and rules only, without the semantic layer.
        #[arg(long)]
        no_semantic: bool,
        /// Input file, or - for standard input (the default).
        file: Option<PathBuf>,
    },
    /// Print every entry as one JSON object a line.
    Dump(Libs),
    /// Measure the engine against the plain aho-corasick crate on a corpus.
    Bench {
        #[command(flatten)]
        libs: Libs,
        #[arg(long, value_name = "FILE")]
        corpus: PathBuf,
    },
    /// The semantic layer: train its head, judge lines, measure it.
    #[command(subcommand)]
    Semantic(SemanticCommand),
    /// Turn a plain one-term-per-line list into a library file (TOML on stdout).
    Import {
        #[arg(long)]
        category: String,
        #[arg(long, default_value_t = 3)]
        severity: u8,
        #[arg(long, default_value = "Imported term; no definition yet.")]
        definition: String,
        /// The list, or - for standard input (the default).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SemanticCommand {
    /// Fit the head over the model's sentence vectors of labelled lines
    /// (`category | text` files; `innocent` lines in their own files) and
    /// of prose (fortune files: records between `%` lines, all innocent).
    Train {
        /// The model (from wordlists/semantic/fetch-model.sh).
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// Labelled lines: risky lines labelled by category, innocent ones
        /// by kind (every label not a category counts as innocent).
        #[arg(long, value_name = "FILE", required = true)]
        labelled: Vec<PathBuf>,
        /// Ordinary prose, innocent, counted at `--prose-weight`.
        #[arg(long, value_name = "FILE")]
        prose: Vec<PathBuf>,
        /// (The defaults are the shipped head's: chosen by leaving out one
        /// later batch of the dev part at a time, see the README.)
        #[arg(long, default_value_t = 5.0)]
        prose_weight: f32,
        /// Inverse strength of the penalty on the weights.
        #[arg(long, default_value_t = 10.0)]
        c: f32,
        /// The chance of risk at which a line is flagged.
        #[arg(long, default_value_t = 0.87)]
        threshold: f32,
        /// Also learn each labelled line in standard spelling (chat-speak
        /// written out, see `wordlists::spelling`). Off in the shipped
        /// head: it caught more risky lines, in either spelling, but read
        /// far more prose as risky (see the README).
        #[arg(long)]
        standard_spelling: bool,
        /// Where to write the head (TOML).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print one JSON object for each input line the layer flags.
    Judge {
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// Input file, or - for standard input (the default).
        file: Option<PathBuf>,
    },
    /// Time the layer per line over a file of lines; print its memory.
    Bench {
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        #[arg(long, value_name = "FILE")]
        lines: PathBuf,
    },
}

/// Loads the built-in libraries plus every *.toml in `dir`; parse errors
/// are collected rather than fatal, so `check` can report them all.
fn load(libs: &Libs) -> Result<(Libraries, Vec<String>)> {
    let mut set = Libraries::builtin().context("a built-in library is broken")?;
    let mut errors = Vec::new();
    if let Some(dir) = &libs.libraries {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the libraries folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            bail!("{} holds no .toml library files", dir.display());
        }
        for path in files {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            match library::parse(&path.display().to_string(), &text) {
                Ok(cat) => set.add(cat),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    Ok((set, errors))
}

fn load_strict(libs: &Libs) -> Result<Libraries> {
    let (set, errors) = load(libs)?;
    if let Some(first) = errors.first() {
        bail!("{first}\n(run `wordlists check` to see every problem)");
    }
    Ok(set)
}

fn read_input(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match file {
        None => std::io::stdin().read_to_end(&mut buf).map(|_| ()),
        Some(p) if p == Path::new("-") => std::io::stdin().read_to_end(&mut buf).map(|_| ()),
        Some(p) => std::fs::read(p).map(|b| buf = b),
    }
    .context("cannot read the input")?;
    Ok(buf)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wordlists: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    match cli.command {
        Command::Check(libs) => {
            let (set, mut problems) = load(&libs)?;
            problems.extend(set.lint());
            if problems.is_empty()
                && let Err(e) = MatcherBuilder::new(set.clone()).build()
            {
                problems.push(e.to_string());
            }
            for p in &problems {
                writeln!(out, "{p}")?;
            }
            let entries: usize = set.categories.iter().map(|c| c.entries.len()).sum();
            let exceptions: usize = set.categories.iter().map(|c| c.exceptions.len()).sum();
            let rules: usize = set.categories.iter().map(|c| c.rules.len()).sum();
            writeln!(
                out,
                "{rules} context rules over {} concepts",
                set.concepts.len()
            )?;
            writeln!(
                out,
                "{entries} entries in {} categories, {exceptions} exceptions",
                set.categories.len()
            )?;
            out.flush()?;
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Scan {
            libs,
            semantic,
            no_semantic,
            file,
        } => {
            let matcher = MatcherBuilder::new(load_strict(&libs)?).build()?;
            let semantic = match (semantic, no_semantic) {
                (_, true) => None,
                (Some(dir), false) => Some(load_semantic(&dir)?),
                (None, false) => match default_model() {
                    Some(dir) => Some(load_semantic(&dir)?),
                    None => {
                        eprintln!(
                            "wordlists: the semantic layer is off: no model found ($WORDLISTS_SEMANTIC_MODEL, {}, {}); \
                             fetch it with wordlists/semantic/fetch-model.sh, or pass --no-semantic",
                            INSTALLED_MODEL, SOURCE_MODEL
                        );
                        None
                    }
                },
            };
            let input = read_input(file.as_deref())?;
            for (n, raw) in input.split(|&b| b == b'\n').enumerate() {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let (line, to_raw) = repaired(raw);
                let hits = matcher.scan(&line);
                if let Some(verdict) = semantic
                    .as_ref()
                    .and_then(|s| s.second_opinion(&line, &hits, CAPTURE_THRESHOLD))
                {
                    writeln!(out, "{}", semantic_json(n + 1, raw, &verdict))?;
                }
                for hit in hits {
                    let (start, end) = (to_raw[hit.start], to_raw[hit.end]);
                    let mut obj = json!({
                        "line": n + 1,
                        "term": hit.entry.term,
                        "category": hit.entry.category,
                        "severity": hit.severity,
                        "start": start,
                        "end": end,
                        "matched": String::from_utf8_lossy(&raw[start..end]),
                        "rule": hit.entry.rule.as_str(),
                    });
                    if !hit.because.is_empty() {
                        // A context rule's hit: the words that made it.
                        obj["because"] = hit
                            .because
                            .iter()
                            .map(|r| String::from_utf8_lossy(&raw[to_raw[r.start]..to_raw[r.end]]))
                            .collect();
                    }
                    writeln!(out, "{obj}")?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dump(libs) => {
            let set = load_strict(&libs)?;
            for e in set.entries() {
                let obj = json!({
                    "term": e.term,
                    "category": e.category,
                    "severity": e.severity,
                    "rule": e.rule.as_str(),
                    "definition": e.definition,
                });
                writeln!(out, "{obj}")?;
            }
            // Context rules, with the concepts they join and their cues.
            for cat in &set.categories {
                for r in &cat.rules {
                    let obj = json!({
                        "term": r.name,
                        "category": cat.name,
                        "severity": r.severity,
                        "rule": "context",
                        "definition": r.definition,
                        "all": r.all,
                        "within": r.within,
                        "ordered": r.ordered,
                        "raise": r.raise,
                        "lower": r.lower,
                    });
                    writeln!(out, "{obj}")?;
                }
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { libs, corpus } => {
            let set = load_strict(&libs)?;
            let text = String::from_utf8_lossy(
                &std::fs::read(&corpus)
                    .with_context(|| format!("cannot read {}", corpus.display()))?,
            )
            .into_owned();
            bench(&mut out, set, &text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Semantic(command) => semantic_command(&mut out, command),
        Command::Import {
            category,
            severity,
            definition,
            file,
        } => {
            if !(1..=5).contains(&severity) {
                bail!("severity {severity} is out of range; use 1 to 5");
            }
            let input = read_input(file.as_deref())?;
            let text = String::from_utf8(input).context("the list is not UTF-8 text")?;
            write!(
                out,
                "{}",
                import_plain(&text, &category, severity, &definition)
            )?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The severity from which a hit becomes a capture: the semantic layer
/// judges only lines with no hit at it.
const CAPTURE_THRESHOLD: u8 = 3;

/// The severity of a semantic hit: a capture, never more, for staff to judge.
const SEMANTIC_SEVERITY: u8 = 3;

fn semantic_json(line: usize, raw: &[u8], verdict: &Verdict) -> serde_json::Value {
    json!({
        "line": line,
        "term": format!(
            "{CAPTURE_TERM}: reads as {} ({:.0}% sure)",
            verdict.category,
            verdict.risk * 100.0
        ),
        "category": verdict.category,
        "severity": SEMANTIC_SEVERITY,
        "start": 0,
        "end": raw.len(),
        "matched": String::from_utf8_lossy(raw),
        "rule": "semantic",
        "risk": (f64::from(verdict.risk) * 1000.0).round() / 1000.0,
    })
}

/// Where the agent's install puts the model.
const INSTALLED_MODEL: &str = "/usr/local/share/safeguard-agent/semantic";
/// Where fetch-model.sh puts it in this source tree.
const SOURCE_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/semantic/model");

/// The model `scan` uses when none is named: the first folder that holds
/// one of $WORDLISTS_SEMANTIC_MODEL, the installed one, this source tree's.
fn default_model() -> Option<PathBuf> {
    std::env::var_os("WORDLISTS_SEMANTIC_MODEL")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from(INSTALLED_MODEL), PathBuf::from(SOURCE_MODEL)])
        .find(|d| d.join("model.safetensors").is_file())
}

/// The semantic layer from a model folder and the built-in head.
fn load_semantic(dir: &Path) -> Result<Semantic> {
    let (model, tokenizer) = read_model(dir)?;
    Semantic::with_builtin_head(&model, &tokenizer)
        .with_context(|| format!("cannot use the semantic model in {}", dir.display()))
}

fn read_model(dir: &Path) -> Result<(Vec<u8>, String)> {
    let model = std::fs::read(dir.join("model.safetensors")).with_context(|| {
        format!(
            "cannot read {}/model.safetensors: fetch it with wordlists/semantic/fetch-model.sh",
            dir.display()
        )
    })?;
    let tokenizer = std::fs::read_to_string(dir.join("tokenizer.json"))
        .with_context(|| format!("cannot read {}/tokenizer.json", dir.display()))?;
    Ok((model, tokenizer))
}

/// Lines of a `label | text` file, comments and blanks left out.
fn labelled_lines(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            l.split_once(" | ")
                .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
                .with_context(|| format!("{}: a line without ' | ': {l:?}", path.display()))
        })
        .collect()
}

/// The records of a fortune file (between `%` lines), each on one line.
fn prose_records(path: &Path) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text
        .split("\n%\n")
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|r| !r.is_empty())
        .collect())
}

fn semantic_command(out: &mut impl Write, command: SemanticCommand) -> Result<ExitCode> {
    match command {
        SemanticCommand::Train {
            model,
            labelled,
            prose,
            prose_weight,
            c,
            threshold,
            standard_spelling,
            out: path,
        } => {
            let (bytes, tokenizer) = read_model(&model)?;
            let encoder = wordlists::minilm::Encoder::from_safetensors(&bytes)?;
            let vocab = wordlists::wordpiece::WordPiece::from_tokenizer_json(&tokenizer)?;
            let categories: std::collections::BTreeSet<String> = Libraries::builtin()?
                .categories
                .iter()
                .map(|c| c.name.clone())
                .collect();
            let mut classes = vec![INNOCENT.to_owned()];
            let mut examples = Vec::new();
            let vector = |t: &str| encoder.encode(&vocab.encode(t, MAX_TOKENS));
            let t = Instant::now();
            for file in &labelled {
                for (label, text) in labelled_lines(file)? {
                    let class = if categories.contains(&label) {
                        match classes.iter().position(|c| *c == label) {
                            Some(i) => i,
                            None => {
                                classes.push(label.clone());
                                classes.len() - 1
                            }
                        }
                    } else {
                        0
                    };
                    examples.push(Example {
                        vector: vector(&text),
                        class,
                        weight: 1.0,
                    });
                    if standard_spelling {
                        examples.push(Example {
                            vector: vector(&wordlists::spelling::standard(&text)),
                            class,
                            weight: 1.0,
                        });
                    }
                }
            }
            let labelled_count = examples.len();
            for file in &prose {
                for record in prose_records(file)? {
                    examples.push(Example {
                        vector: vector(&record),
                        class: 0,
                        weight: prose_weight,
                    });
                }
            }
            eprintln!(
                "encoded {labelled_count} labelled examples{} and {} prose records in {:.1} s",
                if standard_spelling {
                    " (each line as written and in standard spelling)"
                } else {
                    ""
                },
                examples.len() - labelled_count,
                t.elapsed().as_secs_f64()
            );
            let names = |files: &[PathBuf]| {
                files
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let trained = format!(
                "wordlists semantic train: labelled {}; prose {} at weight {prose_weight}; c {c}; standard spelling {standard_spelling}",
                names(&labelled),
                names(&prose)
            );
            let head = train(
                &classes,
                &examples,
                c,
                threshold,
                trained,
                sha256_hex(&bytes),
            );
            std::fs::write(&path, format!(
                "# The semantic layer's head: written by `wordlists semantic train`; do not edit.\n{}",
                head.to_toml()
            ))
            .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(
                out,
                "head of {} classes written to {}",
                head.classes.len(),
                path.display()
            )?;
        }
        SemanticCommand::Judge { model, file } => {
            let semantic = load_semantic(&model)?;
            let input = read_input(file.as_deref())?;
            for (n, raw) in input.split(|&b| b == b'\n').enumerate() {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let (line, _) = repaired(raw);
                if let Some(verdict) = semantic.judge(&line) {
                    writeln!(out, "{}", semantic_json(n + 1, raw, &verdict))?;
                }
            }
        }
        SemanticCommand::Bench { model, lines } => {
            let t = Instant::now();
            let semantic = load_semantic(&model)?;
            let load_ms = t.elapsed().as_secs_f64() * 1e3;
            let text = std::fs::read_to_string(&lines)
                .with_context(|| format!("cannot read {}", lines.display()))?;
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let mut times: Vec<f64> = Vec::with_capacity(lines.len());
            let mut flagged = 0;
            for l in &lines {
                let t = Instant::now();
                flagged += usize::from(std::hint::black_box(semantic.judge(l)).is_some());
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            times.sort_by(f64::total_cmp);
            let at = |q: f64| {
                times
                    .get(((times.len() as f64 - 1.0) * q) as usize)
                    .copied()
                    .unwrap_or(0.0)
            };
            writeln!(out, "lines: {} ({flagged} flagged)", lines.len())?;
            writeln!(
                out,
                "loaded in {load_ms:.0} ms; weights {} MiB; this process resident {}",
                semantic.weight_bytes() >> 20,
                resident().map_or_else(|| "unknown".to_owned(), |kib| format!("{} MiB", kib >> 10))
            )?;
            writeln!(
                out,
                "per line: median {:.2} ms, p90 {:.2} ms, max {:.2} ms (one thread)",
                at(0.5),
                at(0.9),
                at(1.0)
            )?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// This process's resident memory in KiB, from /proc (Linux).
fn resident() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A line as text, invalid UTF-8 replaced by U+FFFD, and for each byte
/// offset of that text (and its end) the offset in the raw line, so hits
/// are reported at the input's own byte offsets.
fn repaired(raw: &[u8]) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(raw.len());
    let mut to_raw = Vec::with_capacity(raw.len() + 1);
    let mut at = 0;
    for chunk in raw.utf8_chunks() {
        let valid = chunk.valid();
        text.push_str(valid);
        to_raw.extend(at..at + valid.len());
        at += valid.len();
        if !chunk.invalid().is_empty() {
            text.push(char::REPLACEMENT_CHARACTER);
            to_raw.extend([at; 3]);
            at += chunk.invalid().len();
        }
    }
    to_raw.push(at);
    (text, to_raw)
}

/// Best of several runs, in MB/s (10^6 bytes per second).
fn best_mbps(bytes: usize, runs: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut found = 0;
    for _ in 0..runs {
        let t = Instant::now();
        found = std::hint::black_box(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    (bytes as f64 / best / 1e6, found)
}

fn bench(out: &mut impl Write, set: Libraries, text: &str) -> Result<()> {
    let terms: Vec<String> = set.entries().map(|e| e.term.to_lowercase()).collect();
    let t = Instant::now();
    let matcher = MatcherBuilder::new(set).build()?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let lowered = text.to_lowercase();
    let raw = aho_corasick::AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(&terms)?;
    let lines: Vec<&str> = text.lines().collect();
    const RUNS: usize = 9;
    let (scan, hits) = best_mbps(text.len(), RUNS, || matcher.scan(text).len());
    let (per_line, line_hits) = best_mbps(text.len(), RUNS, || {
        lines.iter().map(|l| matcher.scan(l).len()).sum()
    });
    let (fast, regions) = best_mbps(text.len(), RUNS, || matcher.candidate_regions(text));
    let (rawm, raw_hits) = best_mbps(lowered.len(), RUNS, || raw.find_iter(&lowered).count());
    writeln!(
        out,
        "corpus: {} bytes, {} lines; {} terms, {} automaton patterns; built in {build_ms:.1} ms",
        text.len(),
        lines.len(),
        terms.len(),
        matcher.pattern_count()
    )?;
    writeln!(
        out,
        "scan (line by line): {per_line:.1} MB/s ({line_hits} hits)"
    )?;
    writeln!(
        out,
        "fast pass alone: {fast:.1} MB/s ({regions} candidate regions)"
    )?;
    let (exceptions, concepts) = matcher.exact_automata_bytes();
    writeln!(
        out,
        "automaton memory: fast pass {} KiB, exceptions {} KiB, concepts {} KiB, raw {} KiB",
        matcher.automaton_bytes() / 1024,
        exceptions / 1024,
        concepts / 1024,
        raw.memory_usage() / 1024
    )?;
    writeln!(out, "raw-aho-corasick hits: {raw_hits}; scan hits: {hits}")?;
    writeln!(out, "ratio: {:.2}", scan / rawm)?;
    writeln!(out, "scan: {scan:.1} MB/s")?;
    writeln!(out, "raw-aho-corasick: {rawm:.1} MB/s")?;
    out.flush()?;
    Ok(())
}
