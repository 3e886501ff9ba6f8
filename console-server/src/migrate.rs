//! `console-server migrate`: a school's SQLite console copied into a
//! trust's PostgreSQL database, and checked.
//!
//! Screenshots go first (each committed before any row names it, as at
//! ingest), then every table in one transaction, so a failure part way
//! leaves the target with no rows at all and the copy can simply be run
//! again. The check afterwards compares every table's row count and every
//! screenshot's bytes. The laptops need not enroll again: their devices and
//! the CA they pin come along (the rows here; the certificates stay in the
//! data directory, which the trust's instances are given).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::store::images::{FsImageStore, ImageStore};
use crate::store::postgres::Postgres;
use crate::store::sql::{params, sqlite_value};

/// Tables not copied: leases belong to running instances.
const NOT_COPIED: [&str; 1] = ["job_leases"];

/// Tables the target's migrations fill with a starting row, emptied before
/// the copy brings the school's own.
const SEEDED: [&str; 2] = ["layers_version", "policies"];

/// Tables whose rows must be absent for the target to count as empty.
const MUST_BE_EMPTY: [&str; 4] = ["devices", "captures", "users", "audit"];

/// Identity columns, whose sequences must continue after the copied rows.
const IDENTITIES: [(&str, &str); 5] = [
    ("triage", "seq"),
    ("audit", "seq"),
    ("events", "id"),
    ("alerts", "id"),
    ("exception_suggestions", "id"),
];

/// What was copied.
#[derive(Debug, Default)]
pub struct Copied {
    /// Rows per table, as counted in both databases afterwards.
    pub rows: BTreeMap<String, u64>,
    pub images: u64,
    pub image_bytes: u64,
}

/// Copies the SQLite console in `data` into the PostgreSQL database at
/// `url` (made or migrated to this console's schema first), then checks the
/// copy.
///
/// # Errors
/// The source is not a console's data directory, the target already holds
/// a console's records, a copy fails, or the check finds a difference.
pub fn to_postgres(data: &Path, url: &str) -> anyhow::Result<Copied> {
    let db_path = data.join("console.db");
    if !db_path.exists() {
        bail!(
            "{} has no console.db; give the school's data directory (--data)",
            data.display()
        );
    }
    // Open (and migrate) the source through the store, so an older
    // console's file is brought to this console's schema first.
    let images = std::sync::Arc::new(
        FsImageStore::open(&data.join("images"))
            .with_context(|| format!("cannot open {}", data.join("images").display()))?,
    );
    drop(crate::store::sql_store::SqlStore::open(
        &db_path,
        images.clone(),
        crate::policy::default_policy,
    )?);
    let mut source =
        rusqlite::Connection::open_with_flags(&db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("cannot open {}", db_path.display()))?;
    source.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = Postgres::connect(url, 2)?;

    let full: Vec<String> = target.read("looking at the target", |db| {
        let mut full = Vec::new();
        for table in MUST_BE_EMPTY {
            let n: i64 =
                db.query_row(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.get(0))?;
            if n > 0 {
                full.push(format!("{table} ({n} rows)"));
            }
        }
        Ok(full)
    })?;
    if !full.is_empty() {
        bail!(
            "the database at {} already holds a console's records: {}; migrate into an empty database",
            target.url(),
            full.join(", ")
        );
    }

    let tables = source_tables(&source)?;
    let mut copied = Copied::default();

    // Screenshots first, each batch committed before any row names it.
    let keys: Vec<String> = {
        let mut stmt = source.prepare("SELECT image FROM captures WHERE image IS NOT NULL")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?
    };
    for chunk in keys.chunks(64) {
        let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(chunk.len());
        for key in chunk {
            // A row naming a file that is gone: the check below says so.
            if let Some(bytes) = images.get(key)? {
                batch.push((key.clone(), bytes));
            }
        }
        let now = protocol::UnixMillis::now();
        target.write("copying screenshots", |db| {
            for (key, bytes) in &batch {
                db.execute(
                    "INSERT INTO images (key, written, bytes) VALUES (?1, ?2, ?3)
                     ON CONFLICT (key) DO UPDATE SET bytes = excluded.bytes",
                    &params![key, now, bytes],
                )?;
            }
            Ok(())
        })?;
    }

    // Every row, in one transaction, read a row at a time.
    let source_ref = &mut source;
    let tables_ref = &tables;
    target.write("copying the school's records", move |db| {
        for table in SEEDED {
            db.execute(&format!("DELETE FROM {table}"), &[])?;
        }
        for table in tables_ref {
            let columns = source_columns(&*source_ref, table)?;
            let list = columns.join(", ");
            let marks = (1..=columns.len())
                .map(|i| format!("?{i}"))
                .collect::<Vec<_>>()
                .join(", ");
            let insert = format!("INSERT INTO {table} ({list}) VALUES ({marks})");
            let mut stmt = source_ref.prepare(&format!("SELECT {list} FROM {table}"))?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let row = (0..columns.len())
                    .map(|i| r.get_ref(i).map(sqlite_value))
                    .collect::<Result<Vec<_>, _>>()?;
                db.execute(&insert, &row)?;
            }
        }
        for (table, column) in IDENTITIES {
            db.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                   COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
                ),
                &[],
            )?;
        }
        Ok(())
    })?;

    // The check: every table's rows, every screenshot's bytes.
    let mut differences = Vec::new();
    for table in &tables {
        let here: i64 =
            source.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        let there: i64 = target.read("checking the copy", |db| {
            db.query_row(&format!("SELECT COUNT(*) FROM {table}"), &[], |r| r.get(0))
        })?;
        if there != here {
            differences.push(format!(
                "{table}: {here} rows in SQLite, {there} in PostgreSQL"
            ));
        }
        copied.rows.insert(table.clone(), there.max(0) as u64);
    }
    for key in &keys {
        let here = images.get(key)?;
        let there: Option<Vec<u8>> = target.read("checking the copied screenshots", |db| {
            db.query_opt(
                "SELECT bytes FROM images WHERE key = ?1",
                &params![key],
                |r| r.get(0),
            )
        })?;
        match (here, there) {
            (Some(a), Some(b)) if Sha256::digest(&a) == Sha256::digest(&b) => {
                copied.images += 1;
                copied.image_bytes += a.len() as u64;
            }
            (None, _) => differences.push(format!(
                "the screenshot {key} a capture names is missing from {}",
                data.join("images").display()
            )),
            (Some(_), None) => differences.push(format!("the screenshot {key} was not copied")),
            (Some(_), Some(_)) => {
                differences.push(format!("the screenshot {key} differs after the copy"))
            }
        }
    }
    if !differences.is_empty() {
        bail!(
            "the copy does not match the source: {}",
            differences.join("; ")
        );
    }
    Ok(copied)
}

/// The source's tables, in the order their rows can be inserted (a table
/// another's foreign key names first).
fn source_tables(conn: &rusqlite::Connection) -> anyhow::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )?;
    let mut tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?
        .into_iter()
        .filter(|t| !NOT_COPIED.contains(&t.as_str()))
        .collect();
    // domain_categories names domain_lists.
    tables.sort_by_key(|t| t == "domain_categories");
    Ok(tables)
}

/// A table's columns, each as the common dialect writes it.
fn source_columns(conn: &rusqlite::Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let columns = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(columns)
}
