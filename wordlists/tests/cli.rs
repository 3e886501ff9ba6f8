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
