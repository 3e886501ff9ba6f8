//! A fresh PostgreSQL database for one test, on the cluster named by
//! `POSTGRES_TEST_URL` (`tests/run` starts a private one and sets it), and
//! a client to look inside it: the console's own test helper.

pub use console_server::test_database::TestDatabase;
