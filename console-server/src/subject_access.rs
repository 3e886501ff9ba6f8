//! A subject-access export: everything the console holds about one user
//! (a pupil or a member of staff, by the account name the laptops report),
//! for a request under UK GDPR. Written to a new folder: one JSON file per
//! kind of record, the screenshots, and a `README.txt` saying what each
//! file is. Text is exported exactly as stored (it is the pupil's own).
//! It reads the store it is given, SQLite or PostgreSQL, the same way.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::store::CaptureStore;
use crate::store::sql::{ToValue, Value as SqlValue};
use crate::store::sql_store::SqlStore;

/// How many records of each kind went into an export.
#[derive(Debug, Default)]
pub struct ExportSummary {
    /// Rows per file, in the order written.
    pub files: Vec<(&'static str, usize)>,
    pub screenshots: usize,
}

impl ExportSummary {
    /// Rows written to `file`.
    pub fn rows(&self, file: &str) -> usize {
        self.files
            .iter()
            .find(|(f, _)| *f == file)
            .map_or(0, |(_, n)| *n)
    }
}

/// What goes in the export: file, what it is, its columns (an expression
/// `AS` a name, or a column named as it is), and the rest of the query
/// (one `?1`: the user).
const PARTS: [(&str, &str, &[&str], &str); 7] = [
    (
        "captures.json",
        "Every capture made while this user was signed in: when, on which laptop, in which application and window, the term that matched, its category and severity, the text around it, and its review status. Concerns the user reported themselves are among them (source \"concern\").",
        &[
            "id",
            "device",
            "time",
            "received",
            "user",
            "source",
            "app",
            "window_title",
            "url",
            "term",
            "category",
            "severity",
            "context",
            "image_missing",
            "status",
            "status_time",
        ],
        "FROM captures WHERE user = ?1 ORDER BY time, id",
    ),
    (
        "reviews.json",
        "What staff decided about each of those captures: violation or false positive, the action taken and the note, who and when.",
        &[
            "t.capture AS capture",
            "t.time AS time",
            "t.actor AS actor",
            "t.status AS status",
            "t.note AS note",
            "t.action AS action",
        ],
        "FROM triage t JOIN captures c ON c.id = t.capture WHERE c.user = ?1 ORDER BY t.capture, t.seq",
    ),
    (
        "site_visits.json",
        "Websites the user had open: address, title, browser, when, and for how long.",
        &[
            "device",
            "browser",
            "url",
            "domain",
            "title",
            "start",
            "end",
            "active_seconds",
            "visits",
        ],
        "FROM site_visits WHERE user = ?1 ORDER BY start, url",
    ),
    (
        "site_hours.json",
        "The same visits summed by hour and website, which the weekly report is made from (kept as long as the visits).",
        &[
            "hour * 3600000 AS hour_start",
            "domain",
            "device",
            "visits",
            "active_seconds",
            "first",
            "last",
        ],
        "FROM visit_hours WHERE user = ?1 ORDER BY hour, domain, device",
    ),
    (
        "aup_decisions.json",
        "Each time the user accepted or declined the Acceptable Use Policy, and which version.",
        &["id", "device", "time", "audience", "version", "decision"],
        "FROM aup_decisions WHERE user = ?1 ORDER BY time, id",
    ),
    (
        "tamper_events.json",
        "Events on a laptop while this user was signed in that suggest the monitoring was interfered with.",
        &["id", "device", "time", "kind", "detail"],
        "FROM tamper_events WHERE user = ?1 ORDER BY time, id",
    ),
    (
        "account.json",
        "The user's entry in the register (from the school's MIS and from laptops), and the laptops they used.",
        &[
            "account",
            "name",
            "year_group",
            "role",
            "imported",
            "first_seen",
            "last_seen",
            "school",
        ],
        "FROM accounts WHERE account = ?1",
    ),
];

/// The laptops the user was seen on, first and last: in `account.json`,
/// under `laptops`.
const LAPTOPS: (&[&str], &str) = (
    &["device", "first_seen", "last_seen"],
    "FROM account_devices WHERE account = ?1 ORDER BY first_seen, device",
);

/// A column's name in the export: what follows `AS`, else the column.
fn column_name(column: &str) -> &str {
    column.rsplit(" AS ").next().unwrap_or(column)
}

/// Writes everything held about `user` in `store` (either database) into
/// `out` (which must not exist yet), read in one consistent snapshot.
///
/// # Errors
/// `out` exists, or a read or write fails.
pub fn export(store: &SqlStore, user: &str, out: &Path) -> anyhow::Result<ExportSummary> {
    if out.exists() {
        bail!("{} exists; export into a new folder", out.display());
    }
    let queries: Vec<(String, Vec<SqlValue>)> = PARTS
        .iter()
        .map(|(_, _, columns, rest)| (*columns, *rest))
        .chain([LAPTOPS])
        .map(|(columns, rest)| {
            (
                format!("SELECT {} {rest}", columns.join(", ")),
                vec![user.to_value()],
            )
        })
        .collect();
    let mut tables = store.snapshot_rows(
        "reading a user's records for a subject-access export",
        &queries,
    )?;
    let laptops: Vec<Value> = tables
        .pop()
        .unwrap_or_default()
        .into_iter()
        .map(|row| object(LAPTOPS.0, row))
        .collect();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out)
        .with_context(|| format!("cannot create {}", out.display()))?;

    let mut summary = ExportSummary::default();
    let mut readme = format!(
        "Everything this school's safeguarding console holds about the account {user:?},\n\
         exported {}.\nTimes are milliseconds since 1970-01-01 UTC.\n\n",
        jiff::Timestamp::now()
    );
    let mut captures = Vec::new();
    for ((file, what, columns, _), rows) in PARTS.iter().zip(tables) {
        let mut rows: Vec<Value> = rows.into_iter().map(|row| object(columns, row)).collect();
        if *file == "account.json"
            && let Some(Value::Object(account)) = rows.first_mut()
        {
            account.insert("laptops".into(), Value::Array(laptops.clone()));
        }
        if *file == "captures.json" {
            captures = rows
                .iter()
                .filter_map(|r| r["id"].as_str().and_then(|id| Uuid::parse_str(id).ok()))
                .collect();
        }
        let n = rows.len();
        summary.files.push((file, n));
        fs::write(out.join(file), serde_json::to_vec_pretty(&rows)?)
            .with_context(|| format!("cannot write {file}"))?;
        readme.push_str(&format!("{file} ({n}): {what}\n\n"));
    }

    for id in captures {
        let Some(png) = store.capture_image(id)? else {
            continue;
        };
        if summary.screenshots == 0 {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(out.join("screenshots"))?;
        }
        fs::write(out.join("screenshots").join(format!("{id}.png")), png)
            .context("cannot write a screenshot")?;
        summary.screenshots += 1;
    }
    readme.push_str(&format!(
        "screenshots/ ({}): the screenshot taken with each capture, named by the capture's id.\n",
        summary.screenshots
    ));
    fs::write(out.join("README.txt"), readme)?;
    Ok(summary)
}

/// A row as a JSON object named by its columns.
fn object(columns: &[&str], row: Vec<SqlValue>) -> Value {
    let obj: Map<String, Value> = columns
        .iter()
        .zip(row)
        .map(|(c, v)| (column_name(c).to_owned(), json(v)))
        .collect();
    Value::Object(obj)
}

/// A stored value as JSON (bytes are given by their length).
fn json(v: SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::Null,
        SqlValue::Int(n) => Value::from(n),
        SqlValue::Real(f) => Value::from(f),
        SqlValue::Text(t) => Value::from(t),
        SqlValue::Blob(b) => Value::from(b.len()),
    }
}
