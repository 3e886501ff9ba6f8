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
        Command::Scan { libs, file } => {
            let matcher = MatcherBuilder::new(load_strict(&libs)?).build()?;
            let input = read_input(file.as_deref())?;
            for (n, raw) in input.split(|&b| b == b'\n').enumerate() {
                let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                let (line, to_raw) = repaired(raw);
                for hit in matcher.scan(&line) {
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
