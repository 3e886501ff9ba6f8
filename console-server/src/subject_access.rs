//! A subject-access export: everything the console holds about one user
//! (a pupil or a member of staff, by the account name the laptops report),
//! for a request under UK GDPR. Written to a new folder: one JSON file per
//! kind of record, the screenshots, and a `README.txt` saying what each
//! file is. Text is exported exactly as stored (it is the pupil's own).

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, bail};
use rusqlite::types::ValueRef;
use serde_json::{Map, Value};

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

/// What goes in the export: file, what it is, and the query (one `?1`: the
/// user).
const PARTS: [(&str, &str, &str); 7] = [
    (
        "captures.json",
        "Every capture made while this user was signed in: when, on which laptop, in which application and window, the term that matched, its category and severity, the text around it, and its review status. Concerns the user reported themselves are among them (source \"concern\").",
        "SELECT id, device, time, received, user, source, app, window_title, url, term, category, severity, context, image_missing, status, status_time FROM captures WHERE user = ?1 ORDER BY time",
    ),
    (
        "reviews.json",
        "What staff decided about each of those captures: violation or false positive, the action taken and the note, who and when.",
        "SELECT t.capture, t.time, t.actor, t.status, t.note, t.action FROM triage t JOIN captures c ON c.id = t.capture WHERE c.user = ?1 ORDER BY t.capture, t.seq",
    ),
    (
        "site_visits.json",
        "Websites the user had open: address, title, browser, when, and for how long.",
        "SELECT device, browser, url, domain, title, start, end, active_seconds, visits FROM site_visits WHERE user = ?1 ORDER BY start",
    ),
    (
        "site_hours.json",
        "The same visits summed by hour and website, which the weekly report is made from (kept as long as the visits).",
        "SELECT hour * 3600000 AS hour_start, domain, device, visits, active_seconds, first, last FROM visit_hours WHERE user = ?1 ORDER BY hour, domain",
    ),
    (
        "aup_decisions.json",
        "Each time the user accepted or declined the Acceptable Use Policy, and which version.",
        "SELECT id, device, time, audience, version, decision FROM aup_decisions WHERE user = ?1 ORDER BY time",
    ),
    (
        "tamper_events.json",
        "Events on a laptop while this user was signed in that suggest the monitoring was interfered with.",
        "SELECT id, device, time, kind, detail FROM tamper_events WHERE user = ?1 ORDER BY time",
    ),
    (
        "account.json",
        "The user's entry in the register (from the school's MIS and from laptops), and the laptops they used.",
        "SELECT account, name, year_group, role, imported, first_seen, last_seen FROM accounts WHERE account = ?1",
    ),
];

/// Writes everything held about `user` from the data directory `data` into
/// `out` (which must not exist yet).
///
/// # Errors
/// `data` is not a console's data directory, `out` exists, or a read or
/// write fails.
pub fn export(data: &Path, user: &str, out: &Path) -> anyhow::Result<ExportSummary> {
    let db = data.join("console.db");
    if !db.exists() {
        bail!(
            "{} has no console.db; give the console's data directory (--data)",
            data.display()
        );
    }
    if out.exists() {
        bail!("{} exists; export into a new folder", out.display());
    }
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
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
    for (file, what, sql) in PARTS {
        let mut rows = query(&conn, sql, user)?;
        if file == "account.json" {
            let devices = query(
                &conn,
                "SELECT device, first_seen, last_seen FROM account_devices WHERE account = ?1 ORDER BY first_seen",
                user,
            )?;
            if let Some(Value::Object(account)) = rows.first_mut() {
                account.insert("laptops".into(), Value::Array(devices));
            }
        }
        let n = rows.len();
        summary.files.push((file, n));
        fs::write(out.join(file), serde_json::to_vec_pretty(&rows)?)
            .with_context(|| format!("cannot write {file}"))?;
        readme.push_str(&format!("{file} ({n}): {what}\n\n"));
    }

    let mut stmt =
        conn.prepare("SELECT id, image FROM captures WHERE user = ?1 AND image IS NOT NULL")?;
    let images: Vec<(String, String)> = stmt
        .query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if !images.is_empty() {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(out.join("screenshots"))?;
    }
    for (id, key) in images {
        if key.contains("..") || key.starts_with('/') {
            bail!("the database names an image outside images/: {key:?}");
        }
        match fs::copy(
            data.join("images").join(&key),
            out.join("screenshots").join(format!("{id}.png")),
        ) {
            Ok(_) => summary.screenshots += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).context("cannot copy a screenshot"),
        }
    }
    readme.push_str(&format!(
        "screenshots/ ({}): the screenshot taken with each capture, named by the capture's id.\n",
        summary.screenshots
    ));
    fs::write(out.join("README.txt"), readme)?;
    Ok(summary)
}

/// Rows of `sql` (one parameter) as JSON objects named by column.
fn query(conn: &rusqlite::Connection, sql: &str, user: &str) -> anyhow::Result<Vec<Value>> {
    let mut stmt = conn.prepare(sql)?;
    let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let rows = stmt.query_map([user], |r| {
        let mut obj = Map::new();
        for (i, name) in names.iter().enumerate() {
            let v = match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(f) => Value::from(f),
                ValueRef::Text(t) => Value::from(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::from(b.len()),
            };
            obj.insert(name.clone(), v);
        }
        Ok(Value::Object(obj))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
