//! A fresh PostgreSQL database for one test, on the cluster named by
//! `POSTGRES_TEST_URL` (`tests/run` starts a private one and sets it).

use postgres::{Client, NoTls};

/// A database made for one test; dropped with it.
pub struct TestDatabase {
    admin: String,
    name: String,
    pub url: String,
}

/// The cluster's URL; a test that needs one fails, naming what to do,
/// when there is none.
pub fn cluster_url() -> String {
    std::env::var("POSTGRES_TEST_URL").unwrap_or_else(|_| {
        panic!(
            "POSTGRES_TEST_URL is not set: these tests need a PostgreSQL server. \
             Run them through ./tests/run (which starts a private cluster), or start one with \
             `tests/postgres.sh DIR` and export the URL it prints"
        )
    })
}

impl TestDatabase {
    pub fn new() -> TestDatabase {
        let admin = cluster_url();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut client = Client::connect(&admin, NoTls)
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
        if let Ok(mut client) = Client::connect(&self.admin, NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
