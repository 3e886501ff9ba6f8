//! Screenshot files, one per capture or concern, kept outside the database
//! so that the database stays small and fast to back up.
//!
//! Layout: `images/<last two hex digits of the id>/<id>.png`. A file is
//! written to `<id>.png.tmp`, synced, renamed into place, and its directory
//! synced, so after [`ImageStore::put_all`] returns the image survives a
//! power cut; only then may the row naming it commit. A crash between the
//! two leaves an unnamed file, which the agent's resend overwrites with the
//! same bytes.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// Where screenshots live.
pub trait ImageStore: Send + Sync {
    /// Writes every image durably; returns the key each is stored under.
    ///
    /// # Errors
    /// An I/O error; some images may then be written but none is named by
    /// a row yet.
    fn put_all(&self, images: &[(Uuid, &[u8])]) -> io::Result<Vec<String>>;
    /// # Errors
    /// An I/O error other than the image being absent.
    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>>;
    /// Removes an image; an absent one is not an error.
    ///
    /// # Errors
    /// An I/O error.
    fn delete(&self, key: &str) -> io::Result<()>;
    /// The keys of every image written before `before`; unfinished writes
    /// (`.tmp`) from before then are removed on the way.
    ///
    /// # Errors
    /// An I/O error reading the store.
    fn keys_written_before(&self, before: std::time::SystemTime) -> io::Result<Vec<String>>;
}

/// The key an image is stored under, in either store:
/// `<last two hex digits of the id>/<id>.png`.
pub fn image_key(id: Uuid) -> String {
    let hex = id.simple().to_string();
    format!("{}/{id}.png", &hex[hex.len() - 2..])
}

/// Images in the PostgreSQL database's `images` table, so that every
/// console instance of a trust sees every screenshot. A batch's images
/// are committed in a transaction of their own before the rows that name
/// them (PostgreSQL's commit is durable), so the order of
/// [`ImageStore::put_all`] holds as it does for files.
pub struct PgImageStore {
    pg: std::sync::Arc<super::postgres::Postgres>,
}

impl PgImageStore {
    pub fn new(pg: std::sync::Arc<super::postgres::Postgres>) -> Self {
        PgImageStore { pg }
    }
}

impl std::fmt::Debug for PgImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgImageStore({})", self.pg.url())
    }
}

fn io_error(e: super::StoreError) -> io::Error {
    io::Error::other(e.to_string())
}

impl ImageStore for PgImageStore {
    fn put_all(&self, images: &[(Uuid, &[u8])]) -> io::Result<Vec<String>> {
        let now = protocol::UnixMillis::now();
        self.pg
            .write("storing screenshots", |db| {
                let mut keys = Vec::with_capacity(images.len());
                for (id, bytes) in images {
                    let key = image_key(*id);
                    db.execute(
                        "INSERT INTO images (key, written, bytes) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET bytes = excluded.bytes",
                        &super::sql::params![key, now, *bytes],
                    )?;
                    keys.push(key);
                }
                Ok(keys)
            })
            .map_err(io_error)
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        self.pg
            .read("reading a screenshot", |db| {
                db.query_opt(
                    "SELECT bytes FROM images WHERE key = ?1",
                    &super::sql::params![key],
                    |r| r.get(0),
                )
            })
            .map_err(io_error)
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        self.pg
            .write("deleting a screenshot", |db| {
                db.execute(
                    "DELETE FROM images WHERE key = ?1",
                    &super::sql::params![key],
                )
            })
            .map(|_| ())
            .map_err(io_error)
    }

    fn keys_written_before(&self, before: std::time::SystemTime) -> io::Result<Vec<String>> {
        let before = protocol::UnixMillis(
            before
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        );
        self.pg
            .read("listing screenshots", |db| {
                db.query_map(
                    "SELECT key FROM images WHERE written < ?1",
                    &super::sql::params![before],
                    |r| r.get(0),
                )
            })
            .map_err(io_error)
    }
}

/// Images as files under one directory.
#[derive(Debug)]
pub struct FsImageStore {
    root: PathBuf,
}

impl FsImageStore {
    /// # Errors
    /// If `root` cannot be created.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        Ok(FsImageStore {
            root: root.to_owned(),
        })
    }

    fn key(id: Uuid) -> String {
        image_key(id)
    }

    /// The path for a key, refusing anything that is not a key this store
    /// made (so a damaged row cannot point outside the store).
    fn path(&self, key: &str) -> io::Result<PathBuf> {
        // Keys this store makes are ASCII; anything else is refused outright.
        let ok = key.is_ascii()
            && key.len() == 43
            && key.as_bytes()[2] == b'/'
            && key.ends_with(".png")
            && key[..2].bytes().all(|b| b.is_ascii_hexdigit())
            && Uuid::parse_str(&key[3..39]).is_ok();
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{key:?} is not an image key"),
            ));
        }
        Ok(self.root.join(key))
    }
}

impl ImageStore for FsImageStore {
    fn put_all(&self, images: &[(Uuid, &[u8])]) -> io::Result<Vec<String>> {
        let mut keys = Vec::with_capacity(images.len());
        let mut dirs = BTreeSet::new();
        for (id, bytes) in images {
            let key = Self::key(*id);
            let path = self.path(&key)?;
            let dir = path.parent().expect("an image path has a directory");
            if !dir.exists() {
                fs::create_dir_all(dir)?;
                dirs.insert(self.root.clone());
            }
            let tmp = path.with_extension("png.tmp");
            let written = File::create(&tmp).and_then(|mut file| {
                file.write_all(bytes)?;
                file.sync_all()
            });
            if let Err(e) = written.and_then(|()| fs::rename(&tmp, &path)) {
                // A half-written file would only hold space a full disk
                // needs; the agent resends the image.
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            dirs.insert(dir.to_owned());
            keys.push(key);
        }
        for dir in dirs {
            File::open(&dir)?.sync_all()?;
        }
        Ok(keys)
    }

    fn get(&self, key: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path(key)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, key: &str) -> io::Result<()> {
        match fs::remove_file(self.path(key)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn keys_written_before(&self, before: std::time::SystemTime) -> io::Result<Vec<String>> {
        let mut keys = Vec::new();
        for dir in fs::read_dir(&self.root)? {
            let dir = dir?;
            let shard = dir.file_name();
            let Some(shard) = shard.to_str().filter(|s| s.len() == 2) else {
                continue;
            };
            if !dir.file_type()?.is_dir() {
                continue;
            }
            for file in fs::read_dir(dir.path())? {
                let file = file?;
                // A file deleted meanwhile (a capture's retention) is no
                // longer anyone's to sweep.
                let modified = match file.metadata().and_then(|m| m.modified()) {
                    Ok(t) => t,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let old = modified < before;
                let name = file.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.ends_with(".png.tmp") {
                    if old {
                        let _ = fs::remove_file(file.path());
                    }
                    continue;
                }
                let key = format!("{shard}/{name}");
                if old && self.path(&key).is_ok() {
                    keys.push(key);
                }
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsImageStore::open(dir.path()).unwrap();
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let keys = store.put_all(&[(a, b"one"), (b, b"two")]).unwrap();
        assert_eq!(store.get(&keys[0]).unwrap().unwrap(), b"one");
        assert_eq!(store.get(&keys[1]).unwrap().unwrap(), b"two");
        store.delete(&keys[0]).unwrap();
        assert!(store.get(&keys[0]).unwrap().is_none());
        store.delete(&keys[0]).unwrap();
        // A rewrite (an agent's resend) replaces the file whole.
        store.put_all(&[(b, b"two")]).unwrap();
        assert_eq!(store.get(&keys[1]).unwrap().unwrap(), b"two");
    }

    #[test]
    fn refuses_keys_it_did_not_make() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsImageStore::open(dir.path()).unwrap();
        // The right length, but not ASCII.
        let wide = format!("é/{}.png", "x".repeat(36));
        assert_eq!(wide.len(), 43);
        for key in [
            "../../etc/passwd",
            "ab/../../x.png",
            "",
            "zz/not-a-uuid.png",
            wide.as_str(),
        ] {
            assert!(store.get(key).is_err(), "{key}");
            assert!(store.delete(key).is_err(), "{key}");
        }
    }
}
