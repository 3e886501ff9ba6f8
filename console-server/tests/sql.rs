//! The store's SQL layer on both databases: one statement, one result, on
//! SQLite and on a real PostgreSQL server; PostgreSQL's schema, its
//! migrations under concurrent starts, its append-only audit log, and
//! writes that conflict across connections.

mod common;

use common::postgres::TestDatabase;
use console_server::store::StoreError;
use console_server::store::postgres::Postgres;
use console_server::store::sql::{Db, SqlError, Value, params};

const TABLE: &str = "CREATE TABLE things (id TEXT PRIMARY KEY, user TEXT NOT NULL, n BIGINT NOT NULL, \
                     flag BIGINT NOT NULL DEFAULT 0, note TEXT, bytes BYTEA)";

/// The statements under test, on either database.
fn exercise(db: &mut Db<'_, '_>) -> Result<Vec<String>, SqlError> {
    let mut seen = Vec::new();
    for (id, user, n) in [("a", "pupil1", 3), ("b", "pupil2", 4), ("c", "pupil1", 5)] {
        let changed = db.execute(
            "INSERT INTO things (id, user, n, note, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
            &params![id, user, n, None::<String>, vec![0u8, 255, 7]],
        )?;
        seen.push(format!("insert {id}: {changed}"));
    }
    // A second copy of one id: stored once.
    let changed = db.execute(
        "INSERT INTO things (id, user, n) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        &params!["a", "someone else", 99],
    )?;
    seen.push(format!("duplicate: {changed}"));
    db.execute(
        "UPDATE things SET flag = 1 WHERE user = ?",
        &params!["pupil1"],
    )?;
    let rows = db.query_map(
        "SELECT id, user, n, flag <> 0, note, bytes, note IS NULL FROM things ORDER BY id",
        &[],
        |r| {
            Ok(format!(
                "{} {} {} {} {:?} {:?} {}",
                r.get::<String>(0)?,
                r.get::<String>(1)?,
                r.get::<i64>(2)?,
                r.get::<bool>(3)?,
                r.get::<Option<String>>(4)?,
                r.get::<Vec<u8>>(5)?,
                r.get::<bool>(6)?,
            ))
        },
    )?;
    seen.extend(rows);
    let total: i64 = db.query_row(
        "SELECT CAST(SUM(n) AS BIGINT) FROM things WHERE user = ?1 AND instr(lower(id), ?2) > 0",
        &params!["pupil1", "a"],
        |r| r.get(0),
    )?;
    seen.push(format!("sum: {total}"));
    let none = db.query_opt("SELECT id FROM things WHERE id = ?", &params!["zz"], |r| {
        r.get::<String>(0)
    })?;
    seen.push(format!("none: {none:?}"));
    // A value of the wrong kind is refused, not defaulted.
    let wrong = db.query_row("SELECT user FROM things WHERE id = 'a'", &[], |r| {
        r.get::<i64>(0)
    });
    seen.push(format!(
        "wrong kind refused: {}",
        matches!(wrong, Err(SqlError::Column { .. }))
    ));
    Ok(seen)
}

#[test]
fn one_statement_gives_one_result_on_sqlite_and_on_postgres() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(&TABLE.replace("BYTEA", "BLOB")).unwrap();
    let on_sqlite = exercise(&mut Db::Sqlite(&conn)).unwrap();

    let database = TestDatabase::new().unwrap();
    let pg = Postgres::connect(&database.url, 4).unwrap();
    pg.write("making a table", |db| {
        db.batch(&TABLE.replace("user", "\"user\""))
    })
    .unwrap();
    let on_postgres = pg.write("exercising", exercise).unwrap();

    assert_eq!(on_sqlite, on_postgres);
    assert_eq!(
        on_sqlite,
        [
            "insert a: 1",
            "insert b: 1",
            "insert c: 1",
            "duplicate: 0",
            "a pupil1 3 true None [0, 255, 7] true",
            "b pupil2 4 false None [0, 255, 7] true",
            "c pupil1 5 true None [0, 255, 7] true",
            "sum: 3",
            "none: None",
            "wrong kind refused: true",
        ]
    );
    // A read sees what the write committed.
    let count = pg
        .read("counting", |db| {
            db.query_row("SELECT COUNT(*) FROM things", &[], |r| r.get::<i64>(0))
        })
        .unwrap();
    assert_eq!(count, 3);
}

#[test]
fn consoles_starting_together_migrate_the_schema_once() {
    let database = TestDatabase::new().unwrap();
    let url = database.url.clone();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || Postgres::connect(&url, 2).map(|_| ()))
        })
        .collect();
    for s in starts {
        s.join().unwrap().unwrap();
    }
    let pg = Postgres::connect(&url, 1).unwrap();
    let (versions, tables) = pg
        .read("reading the schema", |db| {
            let versions = db.query_map("SELECT version FROM schema_version", &[], |r| {
                r.get::<i64>(0)
            })?;
            let tables = db.query_row(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
                &[],
                |r| r.get::<i64>(0),
            )?;
            Ok((versions, tables))
        })
        .unwrap();
    assert_eq!(
        versions,
        [console_server::store::migrations::POSTGRES_MIGRATIONS.len() as i64]
    );
    assert!(tables > 30, "{tables} tables");
}

#[test]
fn a_newer_schema_in_postgres_is_refused_not_damaged() {
    let database = TestDatabase::new().unwrap();
    let pg = Postgres::connect(&database.url, 1).unwrap();
    pg.write("pretending to be newer", |db| {
        db.execute("UPDATE schema_version SET version = 999", &[])
    })
    .unwrap();
    drop(pg);
    match Postgres::connect(&database.url, 1) {
        Err(StoreError::SchemaTooNew { found: 999, .. }) => {}
        other => panic!("expected a newer schema refused, got {other:?}"),
    }
}

#[test]
fn the_audit_log_in_postgres_cannot_be_changed_or_deleted() {
    let database = TestDatabase::new().unwrap();
    let pg = Postgres::connect(&database.url, 1).unwrap();
    pg.write("auditing", |db| {
        db.execute(
            "INSERT INTO audit (time, actor, action, target, detail, origin) VALUES (?, ?, ?, ?, ?, ?)",
            &params![1i64, "lead", "view_capture", "x", "", "cli"],
        )
    })
    .unwrap();
    for attempt in [
        "UPDATE audit SET actor = 'someone else'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let err = pg
            .write("tampering", |db| db.execute(attempt, &[]))
            .expect_err(attempt);
        assert!(err.to_string().contains("append-only"), "{attempt}: {err}");
    }
    let rows = pg
        .read("counting", |db| {
            db.query_row("SELECT COUNT(*), MIN(actor) FROM audit", &[], |r| {
                Ok((r.get::<i64>(0)?, r.get::<String>(1)?))
            })
        })
        .unwrap();
    assert_eq!(rows, (1, "lead".to_owned()));
}

/// Read-then-write steps from many connections at once: each is run again
/// when it conflicts, so none is lost, as with SQLite's single writer.
#[test]
fn conflicting_writes_are_run_again_and_none_is_lost() {
    let database = TestDatabase::new().unwrap();
    let pg = std::sync::Arc::new(Postgres::connect(&database.url, 8).unwrap());
    pg.write("a counter", |db| {
        db.batch("CREATE TABLE counter (n BIGINT NOT NULL); INSERT INTO counter VALUES (0);")
    })
    .unwrap();
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let pg = pg.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    pg.write("counting", |db| {
                        let n: i64 = db.query_row("SELECT n FROM counter", &[], |r| r.get(0))?;
                        db.execute("UPDATE counter SET n = ?", &[Value::Int(n + 1)])?;
                        Ok(())
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let n = pg
        .read("reading", |db| {
            db.query_row("SELECT n FROM counter", &[], |r| r.get::<i64>(0))
        })
        .unwrap();
    assert_eq!(n, 150);
}

#[test]
fn an_unreachable_database_is_a_clear_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://console:hunter2@127.0.0.1:{port}/safeguarding");
    let err = Postgres::connect(&url, 1).expect_err("nothing listens there");
    let message = err.to_string();
    assert!(
        message.contains("cannot connect to the database"),
        "{message}"
    );
    assert!(
        !message.contains("hunter2"),
        "the password is shown: {message}"
    );
}

/// Two console instances on one database: one holds a shared job's lease
/// at a time; it passes on when it runs out or is given up.
#[test]
fn a_shared_job_is_held_by_one_instance_at_a_time() {
    use console_server::policy::default_policy;
    use console_server::store::jobs::JobStore;
    use console_server::store::sql_store::SqlStore;
    use protocol::UnixMillis;
    use std::time::Duration;

    let database = TestDatabase::new().unwrap();
    let a = SqlStore::open_postgres(&database.url, 4, default_policy).unwrap();
    let b = SqlStore::open_postgres(&database.url, 4, default_policy).unwrap();
    let t = |s: i64| UnixMillis(1_800_000_000_000 + s * 1000);
    let lease = Duration::from_secs(60);
    assert!(a.hold_job("alerts", "a", t(0), lease).unwrap());
    assert!(
        !b.hold_job("alerts", "b", t(10), lease).unwrap(),
        "a holds it"
    );
    assert!(
        b.hold_job("retention", "b", t(10), lease).unwrap(),
        "another job is free"
    );
    assert!(a.hold_job("alerts", "a", t(50), lease).unwrap(), "a renews");
    assert!(
        !b.hold_job("alerts", "b", t(100), lease).unwrap(),
        "renewed till 110"
    );
    assert!(
        b.hold_job("alerts", "b", t(111), lease).unwrap(),
        "ran out: b takes it"
    );
    assert!(!a.hold_job("alerts", "a", t(112), lease).unwrap());
    b.release_jobs("b").unwrap();
    assert!(
        a.hold_job("alerts", "a", t(113), lease).unwrap(),
        "given up: a takes it"
    );

    // Many instances asking at once: exactly one gets it.
    let stores: Vec<_> = (0..6)
        .map(|_| {
            std::sync::Arc::new(SqlStore::open_postgres(&database.url, 2, default_policy).unwrap())
        })
        .collect();
    let winners: usize = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.clone();
            std::thread::spawn(move || {
                usize::from(
                    s.hold_job("weekly-report", &format!("i{i}"), t(200), lease)
                        .unwrap(),
                )
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(winners, 1);

    // On SQLite the console is the only instance.
    let tmp = tempfile::tempdir().unwrap();
    let images = console_server::store::images::FsImageStore::open(&tmp.path().join("i")).unwrap();
    let lone = SqlStore::open(
        &tmp.path().join("c.db"),
        std::sync::Arc::new(images),
        default_policy,
    )
    .unwrap();
    assert!(lone.hold_job("alerts", "x", t(0), lease).unwrap());
    assert!(lone.hold_job("alerts", "y", t(1), lease).unwrap());
}

/// What one instance stores is announced to a listener on another: the
/// live feed across a trust's instances.
#[test]
fn a_record_stored_through_one_instance_is_announced_to_another() {
    use console_server::policy::default_policy;
    use console_server::store::live::{Live, LiveStore};
    use console_server::store::sql_store::SqlStore;
    use console_server::store::{Incoming, IngestStore};
    use protocol::{AgentMessage, UnixMillis};
    use std::time::Duration;

    let database = TestDatabase::new().unwrap();
    let a = SqlStore::open_postgres(&database.url, 4, default_policy).unwrap();
    let b = SqlStore::open_postgres(&database.url, 4, default_policy).unwrap();
    assert!(a.announces_live() && b.announces_live());
    let (tx, mut rx) = tokio::sync::broadcast::channel(16);
    let _listener = b.listen_live(tx).expect("PostgreSQL announces");
    // The listener is up once it has said LISTEN; give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let capture = capture_by("amy");
    let item = Incoming {
        device: uuid::Uuid::now_v7(),
        received: UnixMillis::now(),
        message: AgentMessage::Capture(capture.clone()),
    };
    a.store_batch(std::slice::from_ref(&item)).unwrap();
    // Sent again: a duplicate, announced no more.
    a.store_batch(&[item]).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let heard = loop {
        match rx.try_recv() {
            Ok(live) => break live,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("nothing announced within 10 s: {e:?}"),
        }
    };
    assert_eq!(heard, Live::Capture(capture.id));
    std::thread::sleep(Duration::from_millis(700));
    assert!(rx.try_recv().is_err(), "the duplicate was announced");
}

/// A capture of `user`'s, now, with no screenshot.
fn capture_by(user: &str) -> protocol::Capture {
    common::captures::capture(
        user,
        protocol::UnixMillis::now(),
        protocol::Screenshot::Missing("test".into()),
    )
}

/// TLS to the database when the URL asks for it: the server's certificate
/// checked against the CA given; a plain connection, a certificate from
/// another CA, and TLS with no CA to check against all refused.
#[test]
fn tls_to_the_database_is_checked_against_the_ca_named() {
    let cluster = common::postgres::TlsCluster::start();
    let with = |options: &str| format!("{}?{options}", cluster.base);
    let good = with(&format!(
        "sslmode=require&sslrootcert={}",
        cluster.ca.display()
    ));
    let pg = Postgres::connect(&good, 2).expect("over TLS, the server's certificate checked");
    let n = pg
        .read("counting over TLS", |db| {
            db.query_row("SELECT COUNT(*) FROM policies", &[], |r| r.get::<i64>(0))
        })
        .unwrap();
    assert_eq!(n, 0);
    let on_the_wire: bool = pg
        .read("asking the server", |db| {
            db.query_row(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
                |r| r.get(0),
            )
        })
        .unwrap();
    assert!(on_the_wire, "the server says the connection is not TLS");

    let plain = Postgres::connect(&with("sslmode=disable"), 1).unwrap_err();
    assert!(
        plain.to_string().contains("cannot connect"),
        "a plain connection: {plain}"
    );
    let wrong = Postgres::connect(
        &with(&format!(
            "sslmode=require&sslrootcert={}",
            cluster.other_ca.display()
        )),
        1,
    )
    .unwrap_err();
    assert!(
        wrong.to_string().contains("cannot connect"),
        "another CA's root: {wrong}"
    );
    let blind = Postgres::connect(&with("sslmode=require"), 1).unwrap_err();
    assert!(blind.to_string().contains("sslrootcert"), "{blind}");
}

/// Two instances storing batches whose records share accounts and sites,
/// in opposite orders, all at once: every record stored, the week's totals
/// those of every visit, and PostgreSQL never finds a deadlock (the shared
/// rows are locked in one order; in the records' order, each deadlock cost
/// a second before PostgreSQL broke it, which was the 10,000-laptop load's
/// p99 of 1.2 s).
#[test]
fn two_instances_storing_records_of_shared_accounts_never_deadlock() {
    use console_server::policy::default_policy;
    use console_server::store::sql_store::SqlStore;
    use console_server::store::{Incoming, IngestStore};
    use protocol::{AgentMessage, SiteVisit, SiteVisits, UnixMillis};

    let database = TestDatabase::new().unwrap();
    let deadlocks = || {
        let pg = Postgres::connect(&database.url, 1).unwrap();
        pg.read("counting deadlocks", |db| {
            db.query_row(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
                &[],
                |r| r.get::<i64>(0),
            )
        })
        .unwrap()
    };
    let before = deadlocks();
    let accounts: Vec<String> = (0..12).map(|i| format!("pupil{i}")).collect();
    let batch = |reverse: bool| -> Vec<Incoming> {
        let device = uuid::Uuid::now_v7();
        let mut users: Vec<&String> = accounts.iter().collect();
        if reverse {
            users.reverse();
        }
        let visits = SiteVisits {
            id: uuid::Uuid::now_v7(),
            visits: users
                .iter()
                .map(|user| {
                    let site = format!("site{}.example", &user["pupil".len()..]);
                    SiteVisit {
                        user: (*user).clone(),
                        browser: "chromium".into(),
                        url: format!("https://{site}/"),
                        domain: site,
                        title: "A site".into(),
                        start: UnixMillis::now(),
                        end: UnixMillis::now(),
                        active_seconds: 3,
                        visits: 1,
                    }
                })
                .collect(),
        };
        let site_visits = Incoming {
            device,
            received: UnixMillis::now(),
            message: AgentMessage::SiteVisits(visits),
        };
        users
            .into_iter()
            .map(|user| Incoming {
                device,
                received: UnixMillis::now(),
                message: AgentMessage::Capture(capture_by(user)),
            })
            .chain([site_visits])
            .collect()
    };
    const BATCHES: usize = 40;
    let stored = std::thread::scope(|s| {
        let workers: Vec<_> = [false, true]
            .into_iter()
            .map(|reverse| {
                let batch = &batch;
                let url = &database.url;
                s.spawn(move || {
                    let store = SqlStore::open_postgres(url, 2, default_policy).unwrap();
                    (0..BATCHES)
                        .map(|_| store.store_batch(&batch(reverse)).unwrap().len())
                        .sum::<usize>()
                    // The store is dropped here: its connections end and
                    // report their statistics.
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .sum::<usize>()
    });
    assert_eq!(stored, 2 * BATCHES * (accounts.len() + 1));
    let pg = Postgres::connect(&database.url, 1).unwrap();
    let captures = pg
        .read("counting", |db| {
            db.query_row("SELECT COUNT(*) FROM captures", &[], |r| r.get::<i64>(0))
        })
        .unwrap();
    assert_eq!(captures as usize, 2 * BATCHES * accounts.len());
    // Every visit counted once in the week's totals: each site's, each
    // pupil's, and the pairs'.
    let totals = pg
        .read("totals", |db| {
            db.query_row(
                "SELECT CAST((SELECT SUM(visits) FROM week_domains) AS BIGINT),
                        CAST((SELECT SUM(users) FROM week_domains) AS BIGINT),
                        CAST((SELECT SUM(visits) FROM week_users) AS BIGINT),
                        CAST((SELECT SUM(sites) FROM week_users) AS BIGINT),
                        (SELECT COUNT(*) FROM week_pairs),
                        CAST((SELECT SUM(visits) FROM visit_hours) AS BIGINT)",
                &[],
                |r| {
                    Ok([
                        r.get::<i64>(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ])
                },
            )
        })
        .unwrap();
    let visits = (2 * BATCHES * accounts.len()) as i64;
    let pairs = accounts.len() as i64;
    assert_eq!(totals, [visits, pairs, visits, pairs, pairs, visits]);
    // A backend's statistics reach pg_stat_database when it ends.
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(deadlocks() - before, 0, "PostgreSQL broke deadlocks");
}
