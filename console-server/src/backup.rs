//! Backups of a data directory, taken while the console runs: the database
//! is copied with SQLite's `VACUUM INTO` (a consistent snapshot, whatever is
//! being written), then the screenshots it names, the weekly reports, the
//! certificates and keys, and the settings. The copy is then checked: the
//! database passes `PRAGMA integrity_check` and every screenshot it names is
//! present. Restoring is copying the backup into place while the console is
//! stopped (see the README's operator's guide).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};

/// The files of a data directory besides the database and the folders.
const FILES: [&str; 5] = [
    "ca.pem",
    "ca-key.pem",
    "server.pem",
    "server-key.pem",
    "console.toml",
];

/// What a backup holds.
#[derive(Debug)]
pub struct BackupSummary {
    pub captures: i64,
    pub images: usize,
    pub reports: usize,
    pub bytes: u64,
}

/// Copies the data directory `data` to `to` (which must not exist yet, or
/// be empty) and checks the copy.
///
/// # Errors
/// `data` is not a console's data directory, `to` is not empty, a copy
/// fails, or the copy does not check out.
pub fn backup(data: &Path, to: &Path) -> anyhow::Result<BackupSummary> {
    let db = data.join("console.db");
    if !db.exists() {
        bail!(
            "{} has no console.db; give the console's data directory (--data)",
            data.display()
        );
    }
    if to.exists() && fs::read_dir(to)?.next().is_some() {
        bail!(
            "{} is not empty; back up into a new directory",
            to.display()
        );
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)
        .with_context(|| format!("cannot create {}", to.display()))?;

    // The database first: every screenshot it names was written (and
    // synced) before its row was committed, so it is there to be copied.
    let conn =
        rusqlite::Connection::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let out = to.join("console.db");
    conn.execute(
        "VACUUM INTO ?1",
        [out.to_str().context("the backup path is not UTF-8")?],
    )
    .context("cannot snapshot the database (is the disk full?)")?;
    drop(conn);
    fs::set_permissions(&out, fs::Permissions::from_mode(0o600))?;

    for name in FILES {
        let from = data.join(name);
        if from.exists() {
            fs::copy(&from, to.join(name))
                .with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }
    let snapshot =
        rusqlite::Connection::open_with_flags(&out, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut images = 0;
    {
        let mut stmt = snapshot.prepare("SELECT image FROM captures WHERE image IS NOT NULL")?;
        let keys = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for key in keys {
            let key = key?;
            // Keys are `xx/<uuid>.png`, checked when stored; a key that
            // would leave the folder is refused here as well.
            if key.contains("..") || key.starts_with('/') {
                bail!("the database names an image outside images/: {key:?}");
            }
            let from = data.join("images").join(&key);
            let dest = to.join("images").join(&key);
            if let Some(parent) = dest.parent() {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)?;
            }
            match fs::copy(&from, &dest) {
                Ok(_) => images += 1,
                // Deleted by retention since the snapshot: the row goes
                // at the next retention run after a restore.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot copy {}", from.display()));
                }
            }
        }
    }
    let mut reports = 0;
    let reports_dir = data.join("reports");
    if reports_dir.is_dir() {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(to.join("reports"))?;
        for entry in fs::read_dir(&reports_dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::copy(entry.path(), to.join("reports").join(entry.file_name()))?;
                reports += 1;
            }
        }
    }

    let check: String = snapshot.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        bail!("the copied database fails its integrity check: {check}");
    }
    let captures: i64 = snapshot.query_row("SELECT COUNT(*) FROM captures", [], |r| r.get(0))?;
    let bytes = dir_bytes(to)?;
    Ok(BackupSummary {
        captures,
        images,
        reports,
        bytes,
    })
}

fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
