//! For the store's unit tests: each test body run on a fresh SQLite store
//! and again on a fresh database of the PostgreSQL server named by
//! `POSTGRES_TEST_URL` (`tests/run` starts a private one); a test fails,
//! saying so, when there is none.

use std::sync::Arc;

use protocol::Policy;

use super::images::FsImageStore;
use super::sql_store::SqlStore;

/// Runs `test` on a fresh SQLite store, then on a fresh PostgreSQL one,
/// each made with `policy` as its first.
pub(crate) fn on_each(policy: fn() -> Policy, test: impl Fn(&SqlStore)) {
    let dir = tempfile::tempdir().unwrap();
    let images = Arc::new(FsImageStore::open(&dir.path().join("images")).unwrap());
    test(&SqlStore::open(&dir.path().join("c.db"), images, policy).unwrap());
    let database = crate::test_database::TestDatabase::new().unwrap();
    test(&SqlStore::open_postgres(&database.url, 4, policy).unwrap());
}
