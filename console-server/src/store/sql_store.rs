//! The store, on either database.
//!
//! - **SQLite** (one school, embedded): WAL mode with `synchronous = FULL`
//!   (a commit is on disk when it returns, which is what lets the console
//!   ack), one writer connection (ingest batches, triage, audit, retention)
//!   and four readers for pages and the API, so a long report never holds
//!   up ingest or other pages; screenshots in an [`ImageStore`] of files.
//! - **PostgreSQL** (a trust): a pool of connections shared by writes and
//!   reads (see [`super::postgres`]), screenshots in its `images` table.
//!
//! Every part runs its SQL through `SqlStore::write` and
//! `SqlStore::read`, which hand it a [`Db`] on whichever database the
//! store is on. This file holds the store, its SQLite connections and the
//! helpers its parts share; each trait is implemented in a file of its own
//! beside it (`sql_ingest.rs`, `sql_captures.rs`, `sql_devices.rs`, …).

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::Policy;
use rusqlite::Connection;
use uuid::Uuid;

use super::images::ImageStore;
use super::migrations::MIGRATIONS;
use super::sql::{Db, SqlError};
use super::*;

/// The console's store: SQLite plus image files for one school, or a
/// PostgreSQL database a trust's console instances share.
pub struct SqlStore {
    pub(super) backend: Backend,
    pub(super) images: Arc<dyn ImageStore>,
    /// The zone the weekly totals are counted in (see
    /// [`super::week_totals`]): the one recorded, until
    /// `ensure_week_totals` sets the school's.
    pub(super) week_zone: Mutex<jiff::tz::TimeZone>,
    /// The alert rules new records are matched against (see
    /// [`super::alerts`]).
    pub(super) alert_rules: Mutex<Arc<crate::alerts::rules::RuleSet>>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SqlStore")
    }
}

/// The database a store keeps its rows in.
pub(super) enum Backend {
    /// One writer connection and a few readers, on one file.
    Sqlite {
        writer: Mutex<Connection>,
        reader: Readers,
    },
    /// A pool of connections to a shared database.
    Postgres(Arc<super::postgres::Postgres>),
}

pub(super) fn db(during: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| match source {
        // A stored value no version of the console wrote: the data is
        // damaged, and no default stands in for it.
        rusqlite::Error::FromSqlConversionFailure(column, _, e) => {
            StoreError::Corrupt(format!("while {during}: column {column}: {e}"))
        }
        source => StoreError::Database { during, source },
    }
}

pub(super) fn img(during: &'static str) -> impl Fn(std::io::Error) -> StoreError {
    move |source| StoreError::Image { during, source }
}

/// Connections for reading. In WAL mode readers neither wait for the writer
/// nor for each other, so one slow report does not hold up every page.
pub(super) struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Reading connections kept open.
const READERS: usize = 4;

impl Readers {
    /// A free reading connection, or, when all are busy, a wait for one.
    pub(super) fn get(&self) -> MutexGuard<'_, Connection> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..n {
            match self.conns[(start + i) % n].try_lock() {
                Ok(guard) => return guard,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.conns[start % n])
    }
}

pub(super) fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock cannot leave SQLite inconsistent (an
    // open transaction rolls back when dropped), so a poisoned lock is safe
    // to reuse.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db("opening the database"))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(db("setting the busy timeout"))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;",
    )
    .map_err(db("setting up the database connection"))?;
    Ok(conn)
}

pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db("reading the schema version"))?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction().map_err(db("starting a migration"))?;
        tx.execute_batch(sql).map_err(db("applying a migration"))?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(db("recording a migration"))?;
        tx.commit().map_err(db("committing a migration"))?;
    }
    Ok(())
}

impl SqlStore {
    /// Runs `f` in one write transaction and commits it: on SQLite, on the
    /// one writer connection; on PostgreSQL, serializable, and run again
    /// when another instance's transaction conflicts with it (so `f` must
    /// have no effect outside the database).
    ///
    /// # Errors
    /// `f`'s error or the database's.
    pub(super) fn write<T: Send>(
        &self,
        during: &'static str,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError> + Send,
    ) -> Result<T, StoreError> {
        match &self.backend {
            Backend::Sqlite { writer, .. } => {
                let mut conn = lock(writer);
                let tx = conn
                    .transaction()
                    .map_err(|e| SqlError::from(e).during(during))?;
                let value = f(&mut Db::Sqlite(&tx)).map_err(|e| e.during(during))?;
                tx.commit().map_err(|e| SqlError::from(e).during(during))?;
                Ok(value)
            }
            Backend::Postgres(pg) => pg.write(during, f),
        }
    }

    /// [`SqlStore::write`] for a write each of whose statements is safe
    /// beside other instances' writes by itself (see
    /// [`super::postgres::Postgres::write_concurrent`]): ingest. On SQLite,
    /// the same one writer.
    ///
    /// # Errors
    /// `f`'s error or the database's.
    pub(super) fn write_concurrent<T: Send>(
        &self,
        during: &'static str,
        f: impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError> + Send,
    ) -> Result<T, StoreError> {
        match &self.backend {
            Backend::Sqlite { .. } => self.write(during, f),
            Backend::Postgres(pg) => pg.write_concurrent(during, f),
        }
    }

    /// Runs `f` over one consistent view of the database.
    ///
    /// # Errors
    /// `f`'s error or the database's.
    pub(super) fn read<T: Send>(
        &self,
        during: &'static str,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError> + Send,
    ) -> Result<T, StoreError> {
        match &self.backend {
            Backend::Sqlite { reader, .. } => {
                let mut conn = reader.get();
                let tx = conn
                    .transaction()
                    .map_err(|e| SqlError::from(e).during(during))?;
                let value = f(&mut Db::Sqlite(&tx)).map_err(|e| e.during(during))?;
                drop(tx);
                Ok(value)
            }
            Backend::Postgres(pg) => pg.read(during, f),
        }
    }

    /// The rows of read-only queries, all read in one consistent snapshot,
    /// as values in their columns' order: for an export that names its
    /// own columns (see [`crate::subject_access`]).
    ///
    /// # Errors
    /// The database's error.
    pub fn snapshot_rows(
        &self,
        during: &'static str,
        queries: &[(String, Vec<super::sql::Value>)],
    ) -> Result<Vec<Vec<Vec<super::sql::Value>>>, StoreError> {
        self.read(during, |db| {
            queries
                .iter()
                .map(|(sql, params)| db.query_map(sql, params, |r| Ok(r.values().to_vec())))
                .collect()
        })
    }

    /// The PostgreSQL database the store is in (its URL, no password), or
    /// `None` for SQLite.
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.backend {
            Backend::Sqlite { .. } => None,
            Backend::Postgres(pg) => Some(pg.url()),
        }
    }

    /// The dialect of the database the store is on.
    pub(super) fn dialect(&self) -> super::sql::Dialect {
        match &self.backend {
            Backend::Sqlite { .. } => super::sql::Dialect::Sqlite,
            Backend::Postgres(_) => super::sql::Dialect::Postgres,
        }
    }

    /// The zone the weekly totals are counted in.
    pub(super) fn week_zone(&self) -> jiff::tz::TimeZone {
        self.week_zone
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Opens (creating and migrating if needed) the database at `path`, and
    /// writes `default_policy` as version 1 if there is no policy yet.
    ///
    /// # Errors
    /// If the database cannot be opened or migrated.
    pub fn open(
        path: &Path,
        images: Arc<dyn ImageStore>,
        default_policy: impl FnOnce() -> Policy,
    ) -> Result<Self, StoreError> {
        let mut writer = open_connection(path)?;
        migrate(&mut writer)?;
        let default_policy = default_policy();
        let during = "writing the first policy";
        let week_zone = {
            let tx = writer
                .transaction()
                .map_err(|e| SqlError::from(e).during(during))?;
            let mut db = Db::Sqlite(&tx);
            super::sql_policy::first_policy(&mut db, &default_policy)
                .map_err(|e| e.during(during))?;
            let zone = super::week_totals::recorded_zone(&mut db)
                .map_err(|e| e.during("reading the weekly totals' zone"))?;
            tx.commit().map_err(|e| SqlError::from(e).during(during))?;
            zone
        }
        .unwrap_or_else(crate::school_week::zone);
        let readers = (0..READERS)
            .map(|_| open_connection(path).map(Mutex::new))
            .collect::<Result<_, _>>()?;
        Ok(SqlStore {
            week_zone: Mutex::new(week_zone),
            alert_rules: Mutex::new(Arc::new(crate::alerts::rules::RuleSet::default())),
            backend: Backend::Sqlite {
                writer: Mutex::new(writer),
                reader: Readers {
                    conns: readers,
                    next: std::sync::atomic::AtomicUsize::new(0),
                },
            },
            images,
        })
    }
}

impl SqlStore {
    /// Opens the store in the PostgreSQL database at `url` (migrating its
    /// schema, one instance at a time), with screenshots in the same
    /// database; writes `default_policy` as version 1 if there is no
    /// policy yet.
    ///
    /// # Errors
    /// If the database cannot be reached or migrated.
    pub fn open_postgres(
        url: &str,
        connections: usize,
        default_policy: impl FnOnce() -> Policy,
    ) -> Result<Self, StoreError> {
        let pg = super::postgres::Postgres::connect(url, connections)?;
        // Made here: the transaction may run on another thread, and again.
        let default_policy = default_policy();
        let week_zone = pg
            .write("writing the first policy", |db| {
                super::sql_policy::first_policy(db, &default_policy)?;
                super::week_totals::recorded_zone(db)
            })?
            .unwrap_or_else(crate::school_week::zone);
        let pg = Arc::new(pg);
        Ok(SqlStore {
            week_zone: Mutex::new(week_zone),
            alert_rules: Mutex::new(Arc::new(crate::alerts::rules::RuleSet::default())),
            images: Arc::new(super::images::PgImageStore::new(pg.clone())),
            backend: Backend::Postgres(pg),
        })
    }
}

impl super::live::LiveStore for SqlStore {
    fn announces_live(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    fn listen_live(
        &self,
        live: tokio::sync::broadcast::Sender<super::live::Live>,
    ) -> Option<super::live::Listener> {
        match &self.backend {
            Backend::Sqlite { .. } => None,
            Backend::Postgres(pg) => Some(super::live::listen(
                pg.connector(),
                pg.url().to_owned(),
                live,
            )),
        }
    }
}

/// The term and category a pupil's concern is stored under.
pub const CONCERN_TERM: &str = "Report a concern";
pub const CONCERN_CATEGORY: &str = "concern";

pub(super) fn id_str(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// A value read as text, as the type it is stored for; one no console
/// wrote is [`SqlError::Column`] (made [`StoreError::Corrupt`] by
/// [`SqlError::during`]), never a default.
pub(super) fn stored_as<T: rusqlite::types::FromSql>(text: &str) -> Result<T, SqlError> {
    T::column_result(rusqlite::types::ValueRef::Text(text.as_bytes())).map_err(|e| {
        SqlError::Column {
            column: 0,
            message: e.to_string(),
        }
    })
}
