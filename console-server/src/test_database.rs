//! For tests (this crate's and the end-to-end ones): a fresh PostgreSQL
//! database on the cluster named by `POSTGRES_TEST_URL` (`tests/run`
//! starts a private one and sets it), dropped with its connections when
//! the test ends. Not used by the console itself.

use anyhow::Context;
use postgres::{Client, NoTls};

/// A database made for one test; dropped (with its connections) with it.
pub struct TestDatabase {
    admin: String,
    name: String,
    /// `postgres://…/test_…`, as `--database` takes it.
    pub url: String,
}

/// The cluster's URL.
///
/// # Errors
/// `POSTGRES_TEST_URL` is not set: the error says how to get one.
pub fn cluster_url() -> anyhow::Result<String> {
    std::env::var("POSTGRES_TEST_URL").context(
        "POSTGRES_TEST_URL is not set: these tests need a PostgreSQL server. Run them \
         through ./tests/run (which starts a private cluster), or start one with \
         `tests/postgres.sh DIR` and export the URL it prints",
    )
}

impl TestDatabase {
    /// # Errors
    /// No cluster, or the database cannot be made.
    pub fn new() -> anyhow::Result<TestDatabase> {
        let admin = cluster_url()?;
        let name = format!("test_{}", uuid::Uuid::now_v7().simple());
        let mut client = Client::connect(&admin, NoTls)
            .with_context(|| format!("cannot connect to POSTGRES_TEST_URL {admin}"))?;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .context("cannot make a test database")?;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Ok(TestDatabase { admin, name, url })
    }

    /// A client of the database, to look at what was stored.
    ///
    /// # Errors
    /// It cannot connect.
    pub fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.url, NoTls)?)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.admin, NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
