//! For the store's unit tests: each test body run on a fresh SQLite store
//! and again on a fresh database of the PostgreSQL server named by
//! `POSTGRES_TEST_URL` (`tests/run` starts a private one); a test fails,
//! saying so, when there is none.

use std::sync::Arc;

use protocol::Policy;

use super::images::FsImageStore;
use super::sql_store::SqlStore;

/// A database made for one test, dropped with it.
struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    fn new() -> TestDatabase {
        let admin = std::env::var("POSTGRES_TEST_URL").unwrap_or_else(|_| {
            panic!(
                "POSTGRES_TEST_URL is not set: the store's tests run on PostgreSQL too. Run them \
                 through ./tests/run (which starts a private cluster), or start one with \
                 `tests/postgres.sh DIR` and export the URL it prints"
            )
        });
        let name = format!("unit_{}", uuid::Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to POSTGRES_TEST_URL {admin}: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        TestDatabase { admin, name, url }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL one,
/// each made with `policy` as its first.
pub(crate) fn on_each(policy: fn() -> Policy, test: impl Fn(&SqlStore)) {
    let dir = tempfile::tempdir().unwrap();
    let images = Arc::new(FsImageStore::open(&dir.path().join("images")).unwrap());
    test(&SqlStore::open(&dir.path().join("c.db"), images, policy).unwrap());
    let database = TestDatabase::new();
    test(&SqlStore::open_postgres(&database.url, 4, policy).unwrap());
}
