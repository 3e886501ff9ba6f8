//! The store on either database, for the store test suite: one test body,
//! run once on SQLite and once on PostgreSQL (see [`on_both`]).

use std::sync::Arc;

use console_server::policy::default_policy;
use console_server::store::images::{FsImageStore, ImageStore};
use console_server::store::sql_store::SqlStore;

use super::postgres::TestDatabase;

/// Which database a test's store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A store, what it is kept in, and a way round it to the raw database.
pub struct Harness {
    pub store: SqlStore,
    pub kind: Kind,
    pub tmp: tempfile::TempDir,
    pg: Option<TestDatabase>,
}

fn open_store(kind: Kind, tmp: &std::path::Path, pg: Option<&TestDatabase>) -> SqlStore {
    match (kind, pg) {
        (Kind::Postgres, Some(db)) => SqlStore::open_postgres(&db.url, 8, default_policy)
            .expect("open the store on PostgreSQL"),
        _ => {
            let images = FsImageStore::open(&tmp.join("images")).unwrap();
            SqlStore::open(&tmp.join("console.db"), Arc::new(images), default_policy)
                .expect("open the store on SQLite")
        }
    }
}

impl Harness {
    pub fn new(kind: Kind) -> Harness {
        let tmp = tempfile::tempdir().unwrap();
        let pg = (kind == Kind::Postgres).then(|| TestDatabase::new().unwrap());
        let store = open_store(kind, tmp.path(), pg.as_ref());
        Harness {
            store,
            kind,
            tmp,
            pg,
        }
    }

    /// Opens the store again without keeping it: the error, if any.
    pub fn open_again(&self) -> Result<SqlStore, String> {
        match &self.pg {
            Some(db) => SqlStore::open_postgres(&db.url, 2, default_policy),
            None => {
                let images = FsImageStore::open(&self.tmp.path().join("images")).unwrap();
                SqlStore::open(
                    &self.tmp.path().join("console.db"),
                    Arc::new(images),
                    default_policy,
                )
            }
        }
        .map_err(|e| e.to_string())
    }

    /// Runs `sql` on the database directly, round the store, as someone
    /// with the database's password might (the column `user` written
    /// bare is quoted for PostgreSQL).
    pub fn execute(&self, sql: &str) -> Result<u64, String> {
        match &self.pg {
            Some(db) => {
                let mut client = postgres::Client::connect(&db.url, postgres::NoTls)
                    .map_err(|e| e.to_string())?;
                let sql = console_server::store::sql::for_postgres(sql);
                client.execute(sql.as_str(), &[]).map_err(|e| {
                    e.as_db_error()
                        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
                })
            }
            None => {
                let conn = rusqlite::Connection::open(self.tmp.path().join("console.db"))
                    .map_err(|e| e.to_string())?;
                conn.execute(sql, [])
                    .map(|n| n as u64)
                    .map_err(|e| e.to_string())
            }
        }
    }

    /// How many screenshots the store holds.
    pub fn image_count(&self) -> usize {
        match &self.pg {
            Some(db) => {
                let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
                let n: i64 = client
                    .query_one("SELECT COUNT(*) FROM images", &[])
                    .unwrap()
                    .get(0);
                n as usize
            }
            None => std::fs::read_dir(self.tmp.path().join("images"))
                .unwrap()
                .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
                .count(),
        }
    }

    /// The screenshots' store, beside the store.
    pub fn images(&self) -> Arc<dyn ImageStore> {
        match &self.pg {
            Some(_) => panic!("the PostgreSQL store's images are reached through the store"),
            None => Arc::new(FsImageStore::open(&self.tmp.path().join("images")).unwrap()),
        }
    }
}

/// Each named test (a `fn name(kind: Kind)`) as two tests, `name::sqlite`
/// and `name::postgres`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::common::stores::Kind::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name($crate::common::stores::Kind::Postgres)
            }
        }
    )*};
}

/// Each named test on SQLite only: its part of the store is not yet
/// written for PostgreSQL.
#[macro_export]
macro_rules! on_sqlite {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name($crate::common::stores::Kind::Sqlite)
            }
        }
    )*};
}
