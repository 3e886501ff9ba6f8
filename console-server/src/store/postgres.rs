//! The store's connection to PostgreSQL, for a trust whose console
//! instances share one database: a pool of connections, the schema's
//! migrations (one instance at a time, under an advisory lock), and
//! transactions that behave as SQLite's single writer does.
//!
//! Every write runs `SERIALIZABLE` and is run again, from the start, when
//! the server reports a conflict with another instance's transaction
//! (`40001`) or a deadlock (`40P01`): so the store's read-then-write steps
//! (an enrolment token used once, a record stored once) hold across
//! instances exactly as they hold in one SQLite file. Reads run in a
//! read-only `REPEATABLE READ` transaction: one consistent snapshot.
//!
//! The client is the synchronous `postgres` crate, which drives each
//! connection on a small runtime of its own and so cannot be called from
//! a thread that is running async tasks. Store calls made from async code
//! (as SQLite's are, for short queries) are therefore run on a scoped
//! thread of their own (see `off_runtime`); from a blocking thread they
//! run where they are.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use postgres::{Client, IsolationLevel, Statement};

use super::StoreError;
use super::migrations::POSTGRES_MIGRATIONS;
use super::sql::{Db, SqlError};

/// Connections kept open to the database, at most, by one console.
pub const DEFAULT_CONNECTIONS: usize = 16;
/// Times a write is tried when it keeps conflicting with other instances.
const WRITE_TRIES: u32 = 20;
/// The advisory lock key migrations hold ("cnsl" in ASCII).
const MIGRATION_LOCK: i64 = 0x636e_736c;

/// A pool of connections to one PostgreSQL database.
pub struct Postgres {
    connector: super::pg_connector::Connector,
    /// The URL as shown in messages: no password.
    shown: String,
    idle: Mutex<Pool>,
    freed: Condvar,
    max: usize,
}

struct Pool {
    idle: Vec<Conn>,
    open: usize,
}

/// One connection, and the statements prepared on it.
struct Conn {
    client: Client,
    prepared: HashMap<String, Statement>,
}

/// A connection taken from the pool; back in it when dropped, unless the
/// server closed it.
struct Taken<'p> {
    pool: &'p Postgres,
    conn: Option<Conn>,
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        let mut pool = self.pool.lock();
        if conn.client.is_closed() {
            pool.open -= 1;
        } else {
            pool.idle.push(conn);
        }
        drop(pool);
        self.pool.freed.notify_one();
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Postgres({})", self.shown)
    }
}

/// `url` with any password replaced by `***`.
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn pg(during: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| StoreError::Sql {
        during,
        source: SqlError::Postgres(e),
    }
}

impl Postgres {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`,
    /// or a `key=value` string), keeping up to `max` connections, and
    /// migrates its schema.
    ///
    /// TLS as the URL asks (`sslmode=require&sslrootcert=/path/ca.pem`; see
    /// [`super::pg_connector`]).
    ///
    /// # Errors
    /// The URL does not parse, asks for TLS without a CA to check the
    /// server against, the server cannot be reached, or its schema is newer
    /// than this console's.
    pub fn connect(url: &str, max: usize) -> Result<Postgres, StoreError> {
        let shown = shown_url(url);
        let connector =
            super::pg_connector::Connector::new(url, &shown).map_err(StoreError::Refused)?;
        let store = Postgres {
            connector,
            shown,
            idle: Mutex::new(Pool {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
            max: max.max(1),
        };
        off_runtime(|| store.migrate())?;
        Ok(store)
    }

    /// The URL, with no password.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// How to connect, for a connection of its own (the live listener).
    pub fn connector(&self) -> super::pg_connector::Connector {
        self.connector.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection: an idle one, a new one while fewer than `max` are
    /// open, or else the next one freed.
    fn take(&self) -> Result<Taken<'_>, StoreError> {
        let mut pool = self.lock();
        loop {
            if let Some(conn) = pool.idle.pop() {
                return Ok(Taken {
                    pool: self,
                    conn: Some(conn),
                });
            }
            if pool.open < self.max {
                pool.open += 1;
                drop(pool);
                return match self.connector.connect() {
                    Ok(client) => Ok(Taken {
                        pool: self,
                        conn: Some(Conn {
                            client,
                            prepared: HashMap::new(),
                        }),
                    }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.freed.notify_one();
                        Err(StoreError::Unavailable(format!(
                            "cannot connect to the database at {}: {e}; check that PostgreSQL is running there and that this console may log in",
                            self.shown
                        )))
                    }
                };
            }
            pool = self
                .freed
                .wait_timeout(pool, Duration::from_secs(1))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Runs `f` in a serializable transaction and commits it, running it
    /// again when it conflicts with another transaction.
    ///
    /// # Errors
    /// `f`'s error, a database error, or conflicts `WRITE_TRIES` times.
    pub fn write<T: Send>(
        &self,
        during: &'static str,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| self.write_here(during, &mut f))
    }

    /// [`Postgres::write`] at `READ COMMITTED`, for writes each of whose
    /// statements is safe beside other instances' by itself (inserts that
    /// do nothing on a conflicting key, upserts that add to a total): many
    /// instances' ingest touches shared rows (an account, a week's totals
    /// for a site), which `SERIALIZABLE` would have them retry over and
    /// over. Run again on a deadlock only.
    ///
    /// # Errors
    /// As [`Postgres::write`].
    pub fn write_concurrent<T: Send>(
        &self,
        during: &'static str,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| self.write_at(IsolationLevel::ReadCommitted, during, &mut f))
    }

    fn write_here<T>(
        &self,
        during: &'static str,
        f: impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError>,
    ) -> Result<T, StoreError> {
        self.write_at(IsolationLevel::Serializable, during, f)
    }

    fn write_at<T>(
        &self,
        level: IsolationLevel,
        during: &'static str,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError>,
    ) -> Result<T, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.transaction(level, false, &mut f) {
                Err(e) if tries < WRITE_TRIES && is_conflict(&e) => {
                    std::thread::sleep(Duration::from_millis(u64::from(tries) * 2));
                }
                Err(e) => return Err(e.during(during)),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// Runs `f` in a read-only transaction over one snapshot.
    ///
    /// # Errors
    /// `f`'s error or a database error.
    pub fn read<T: Send>(
        &self,
        during: &'static str,
        mut f: impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            self.transaction(IsolationLevel::RepeatableRead, true, &mut f)
                .map_err(|e| e.during(during))
        })
    }

    fn transaction<T>(
        &self,
        level: IsolationLevel,
        read_only: bool,
        f: &mut impl FnMut(&mut Db<'_, '_>) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let mut taken = self
            .take()
            .map_err(|e| SqlError::Unavailable(e.to_string()))?;
        let Some(conn) = taken.conn.as_mut() else {
            return Err(SqlError::Unavailable("no connection".into()));
        };
        let mut tx = conn
            .client
            .build_transaction()
            .isolation_level(level)
            .read_only(read_only)
            .start()?;
        let value = f(&mut Db::Postgres {
            tx: &mut tx,
            prepared: &mut conn.prepared,
        })?;
        tx.commit()?;
        Ok(value)
    }

    /// Applies the migrations this database lacks, one instance at a
    /// time.
    fn migrate(&self) -> Result<(), StoreError> {
        let mut taken = self.take()?;
        let Some(conn) = taken.conn.as_mut() else {
            return Err(StoreError::Unavailable("no connection".into()));
        };
        let mut tx = conn
            .client
            .transaction()
            .map_err(pg("starting a migration"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(pg("waiting for another console's migration"))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .map_err(pg("reading the schema version"))?;
        let current: i64 = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .map_err(pg("reading the schema version"))?
            .map_or(0, |r| r.get(0));
        let known = POSTGRES_MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::SchemaTooNew {
                found: current,
                known,
            });
        }
        for sql in POSTGRES_MIGRATIONS.iter().skip(current as usize) {
            tx.batch_execute(sql).map_err(pg("applying a migration"))?;
        }
        tx.execute("DELETE FROM schema_version", &[])
            .map_err(pg("recording a migration"))?;
        tx.execute("INSERT INTO schema_version VALUES ($1)", &[&known])
            .map_err(pg("recording a migration"))?;
        tx.commit().map_err(pg("committing a migration"))?;
        conn.prepared.clear();
        Ok(())
    }
}

/// Runs `f` where the `postgres` client may block: here, unless this
/// thread is running async tasks, in which case on a scoped thread (a few
/// microseconds, against a round trip to the database).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(v) => v,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn is_conflict(e: &SqlError) -> bool {
    matches!(e.sqlstate(), Some("40001" | "40P01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            shown_url("postgres://console:s3cret@db.trust.example:5432/safeguarding"),
            "postgres://console:***@db.trust.example:5432/safeguarding"
        );
        assert_eq!(
            shown_url("postgres://console@db:5432/x"),
            "postgres://console@db:5432/x"
        );
    }
}
