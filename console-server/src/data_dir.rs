//! The console's data directory: made at first run, reused at every start.
//!
//! ```text
//! DIR/            mode 0700
//!   ca.pem        the console CA (laptops pin its fingerprint)
//!   ca-key.pem    its key, mode 0600
//!   server.pem    the console's certificate (agent and web listeners) + CA
//!   server-key.pem
//!   console.toml  settings
//!   console.db    SQLite (WAL: also console.db-wal, console.db-shm)
//!   images/       screenshots
//! ```
//!
//! With a PostgreSQL database (`database` in `console.toml`, or
//! `--database`), the rows and the screenshots are kept there instead, and
//! the directory holds only the certificates and the settings: several
//! console instances, each with a copy of the same CA and server
//! certificate, share the one database.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protocol::pki::{Authority, Issued, SecretPem};

use crate::policy::default_policy;
use crate::settings::Settings;
use crate::store::images::FsImageStore;
use crate::store::sql_store::SqlStore;

/// An opened data directory.
pub struct DataDir {
    pub path: PathBuf,
    pub authority: Arc<Authority>,
    pub server: Issued,
    pub settings: Settings,
    pub store: Arc<SqlStore>,
}

impl std::fmt::Debug for DataDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why the data directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is damaged: {reason}; restore it from a backup (or start a new data directory and re-enroll the laptops)"
    )]
    Damaged { path: String, reason: String },
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> DataDirError + 'a {
    move |source| DataDirError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Writes a file that only the console's account may read, durably.
fn write_private(path: &Path, contents: &str) -> Result<(), DataDirError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io("create", path))?;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io("write", path))
}

fn read(path: &Path) -> Result<String, DataDirError> {
    fs::read_to_string(path).map_err(io("read", path))
}

impl DataDir {
    /// Opens `path`, creating everything on first run, with the store
    /// where its settings say.
    ///
    /// # Errors
    /// If the directory cannot be created or read, or what is in it is
    /// damaged.
    pub fn open(path: &Path) -> Result<DataDir, DataDirError> {
        DataDir::open_with(path, None)
    }

    /// [`DataDir::open`], with the store in the PostgreSQL database at
    /// `database` if given (overriding the settings' `database`).
    ///
    /// # Errors
    /// If the directory cannot be created or read, what is in it is
    /// damaged, or the database cannot be reached.
    pub fn open_with(path: &Path, database: Option<&str>) -> Result<DataDir, DataDirError> {
        if !path.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io("create", path))?;
        }
        // Tighten a directory someone made by hand: it holds the CA key and
        // pupils' captures.
        let meta = fs::metadata(path).map_err(io("read", path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(io("restrict the permissions of", path))?;
        }
        let ca_path = path.join("ca.pem");
        let ca_key_path = path.join("ca-key.pem");
        let authority = if ca_path.exists() {
            Authority::from_pem(&read(&ca_path)?, &read(&ca_key_path)?).map_err(|e| {
                DataDirError::Damaged {
                    path: ca_path.display().to_string(),
                    reason: e.to_string(),
                }
            })?
        } else {
            let authority = Authority::generate("Safeguarding console CA").map_err(|e| {
                DataDirError::Damaged {
                    path: ca_path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
            // Key first: a crash between the two leaves no CA without a key.
            write_private(&ca_key_path, authority.key_pem().expose())?;
            write_private(&ca_path, authority.cert_pem())?;
            authority
        };
        let server_path = path.join("server.pem");
        let server_key_path = path.join("server-key.pem");
        let server = if server_path.exists() {
            Issued {
                cert_pem: read(&server_path)?,
                key_pem: SecretPem::new(read(&server_key_path)?),
            }
        } else {
            let host = hostname();
            let mut names = vec!["localhost", "127.0.0.1"];
            if !host.is_empty() {
                names.push(&host);
            }
            let issued = authority
                .issue_server(&names)
                .map_err(|e| DataDirError::Damaged {
                    path: server_path.display().to_string(),
                    reason: e.to_string(),
                })?;
            write_private(&server_key_path, issued.key_pem.expose())?;
            write_private(&server_path, &issued.cert_pem)?;
            issued
        };
        let settings = Settings::load_or_create(&path.join("console.toml"))?;
        let database = database
            .map(str::to_owned)
            .unwrap_or_else(|| settings.database.clone());
        let store = if database.trim().is_empty() {
            let images_path = path.join("images");
            let images = FsImageStore::open(&images_path).map_err(io("create", &images_path))?;
            SqlStore::open(&path.join("console.db"), Arc::new(images), default_policy)?
        } else {
            SqlStore::open_postgres(
                database.trim(),
                settings.database_connections.max(1) as usize,
                default_policy,
            )?
        };
        Ok(DataDir {
            path: path.to_owned(),
            authority: Arc::new(authority),
            server,
            settings,
            store: Arc::new(store),
        })
    }

    /// The CA's fingerprint, as laptops pin it.
    pub fn ca_fingerprint(&self) -> String {
        protocol::tls::pem_fingerprint(self.authority.cert_pem())
            .expect("the CA certificate was parsed when the directory was opened")
    }
}

/// This machine's hostname, or empty if it has none readable.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_creates_a_private_directory_and_later_runs_reuse_it() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        let first = DataDir::open(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        for key in ["ca-key.pem", "server-key.pem"] {
            let mode = fs::metadata(path.join(key)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
        for f in [
            "ca.pem",
            "server.pem",
            "console.toml",
            "console.db",
            "images",
        ] {
            assert!(path.join(f).exists(), "{f}");
        }
        let fingerprint = first.ca_fingerprint();
        drop(first);
        let second = DataDir::open(&path).unwrap();
        assert_eq!(second.ca_fingerprint(), fingerprint);
    }

    #[test]
    fn a_loose_directory_is_tightened() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        DataDir::open(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn a_damaged_ca_is_reported_not_replaced() {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("data");
        drop(DataDir::open(&path).unwrap());
        fs::write(path.join("ca.pem"), "garbage").unwrap();
        let err = DataDir::open(&path).unwrap_err().to_string();
        assert!(err.contains("ca.pem is damaged"), "{err}");
    }
}
