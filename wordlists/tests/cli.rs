//! The `wordlists` binary as the contract describes it.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], input: &[u8]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wordlists"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run wordlists");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

#[test]
fn check_reports_the_libraries() {
    let (code, out) = run(&["check"], b"");
    assert_eq!(code, 0, "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.ends_with("exceptions") && last.contains(" entries in 13 categories, "),
        "{last}"
    );
}

#[test]
fn scan_reports_byte_offsets_of_the_input_line() {
    // Invalid UTF-8 before the term: offsets still point into the raw line.
    let input = b"fine line\n\xff\xfe oh i want to k1ll mys3lf\nclean\n";
    let (code, out) = run(&["scan", "-"], input);
    assert_eq!(code, 0);
    let hit: serde_json::Value = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["term"] == "kill myself")
        .expect("kill myself reported");
    assert_eq!(hit["line"], 2);
    let line = &input[10..input.len() - 7];
    let (s, e) = (
        hit["start"].as_u64().unwrap() as usize,
        hit["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&line[s..e], b"k1ll mys3lf");
    assert_eq!(hit["matched"], "k1ll mys3lf");
    assert!(!out.contains("\"line\":1,") && !out.contains("\"line\":3,"));
}

/// The semantic layer is on by default (the model fetched into the source
/// tree by wordlists/semantic/fetch-model.sh, as tests/run does), judging
/// only lines no term or rule caught at severity 3.
#[test]
fn scan_adds_the_semantic_layers_hits_unless_told_not_to() {
    let input = b"i wish i could just fade away\ni want to kill myself\nsee you at football\n";
    let (code, out) = run(&["scan", "-"], input);
    assert_eq!(code, 0);
    let hits: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let semantic: Vec<&serde_json::Value> =
        hits.iter().filter(|h| h["rule"] == "semantic").collect();
    assert_eq!(semantic.len(), 1, "{out}");
    let s = semantic[0];
    assert_eq!(
        (s["line"].as_u64(), s["severity"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(s["category"], "self-harm");
    assert!(
        s["term"]
            .as_str()
            .unwrap()
            .starts_with("semantic layer: reads as self-harm")
    );
    assert_eq!(s["matched"], "i wish i could just fade away");
    assert!(s["risk"].as_f64().unwrap() >= 0.9);
    assert!(
        hits.iter()
            .any(|h| h["line"] == 2 && h["term"] == "kill myself")
    );
    assert!(!out.contains("\"line\":3,"), "{out}");
    let (code, out) = run(&["scan", "--no-semantic", "-"], input);
    assert_eq!(code, 0);
    assert!(!out.contains("semantic"), "{out}");
}

#[test]
fn dump_prints_every_entry() {
    let (code, out) = run(&["dump"], b"");
    assert_eq!(code, 0);
    let n = out.lines().count();
    assert!(n >= 1500, "{n}");
    let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    for key in ["term", "category", "severity", "rule", "definition"] {
        assert!(first.get(key).is_some(), "{key} missing");
    }
}
