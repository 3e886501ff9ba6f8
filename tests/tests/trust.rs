//! A trust's console: two `console-server` processes on one PostgreSQL
//! database, behind a TCP load balancer, with real agents enrolled through
//! it (one reaches each instance). What either laptop captures appears in
//! both instances' APIs; when one instance is killed with SIGKILL in the
//! middle of a laptop's stream, its laptops reconnect to the other and
//! every capture is stored exactly once.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::Capture;
use tests::agent_process::{AgentProcess, enroll_agent, feed};
use tests::balancer::Balancer;
use tests::laptop::deliver;
use tests::postgres::TestDatabase;
use tests::*;
use tokio::time::timeout;

/// Captures the simulated laptop streams while an instance is killed.
const STREAMED: usize = 300;

/// Gives `to` the certificates of the instance at `from`: every instance
/// of a trust serves the same CA (the laptops pin it) and certificate.
fn copy_certificates(from: &Path, to: &Path) {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().mode(0o700).create(to).unwrap();
    for f in ["ca.pem", "ca-key.pem", "server.pem", "server-key.pem"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
        std::fs::set_permissions(to.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Two instances on `database`: A in `data_a`, then B in `data_b` with A's
/// certificates, each with `settings` as its console.toml if any.
fn two_instances(
    data_a: &Path,
    data_b: &Path,
    database: &str,
    settings: Option<&str>,
) -> (ConsoleProcess, ConsoleProcess) {
    let db_args = ["--database", database];
    if let Some(settings) = settings {
        std::fs::create_dir_all(data_a).unwrap();
        std::fs::write(data_a.join("console.toml"), settings).unwrap();
    }
    let a = ConsoleProcess::start_with(data_a, "127.0.0.1:0", "127.0.0.1:0", &db_args).unwrap();
    copy_certificates(data_a, data_b);
    if let Some(settings) = settings {
        std::fs::write(data_b.join("console.toml"), settings).unwrap();
    }
    let b = ConsoleProcess::start_with(data_b, "127.0.0.1:0", "127.0.0.1:0", &db_args).unwrap();
    (a, b)
}

/// The contexts of the captures an instance's API lists.
fn contexts(api: &Api) -> Vec<String> {
    let (status, body) = api.get("/api/v1/captures?limit=500").unwrap();
    assert_eq!(status, 200, "{body}");
    body["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["context"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn wait_until(within: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !ok() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_instances_on_one_database_share_every_capture_and_lose_none_when_one_dies() {
    let database = TestDatabase::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (mut a, b) = two_instances(&data_a, &data_b, &database.url, None);
    let balancer = Balancer::start(&[&a.agent_addr, &b.agent_addr]).unwrap();
    let address = balancer.addr.to_string();

    // Tokens minted on either instance are good on both: they are rows.
    let token = |data: &Path| {
        let data = data.to_str().unwrap();
        let out = console_cli(
            &[
                "enroll-token",
                "--data",
                data,
                "--database",
                &database.url,
                "--address",
                &address,
            ],
            None,
        )
        .unwrap();
        out.lines().last().unwrap().trim().to_owned()
    };
    let api_key = console_cli(
        &[
            "api-token",
            "--data",
            data_b.to_str().unwrap(),
            "--database",
            &database.url,
            "--name",
            "trust-lead",
            "--role",
            "admin",
        ],
        None,
    )
    .unwrap()
    .lines()
    .last()
    .unwrap()
    .trim()
    .to_owned();
    let api_a = Api::new(&data_a, &a.web_addr, &api_key).unwrap();
    let api_b = Api::new(&data_b, &b.web_addr, &api_key).unwrap();

    // Two real agents enrolled through the balancer: the first enrollment
    // reaches instance A, the second instance B.
    let homes: Vec<_> = (0..2)
        .map(|i| {
            let state = tmp.path().join(format!("agent-{i}"));
            enroll_agent(&state, &token(if i == 0 { &data_a } else { &data_b })).unwrap();
            let home = tmp.path().join(format!("home-{i}"));
            std::fs::create_dir_all(&home).unwrap();
            (state, home)
        })
        .collect();
    assert_eq!(balancer.taken(), [1, 1], "one enrollment through each");
    let agents: Vec<AgentProcess> = homes
        .iter()
        .map(|(state, home)| {
            let agent = AgentProcess::start("run", state, None, home, &[]).unwrap();
            agent
                .wait_log("policy version 1 in force", Duration::from_secs(30))
                .unwrap();
            agent
        })
        .collect();
    assert!(
        balancer.taken().iter().sum::<usize>() >= 4,
        "each agent connected through the balancer: {:?}",
        balancer.taken()
    );
    for (i, (state, _)) in homes.iter().enumerate() {
        feed(
            state,
            "Chat",
            "chat",
            &format!("laptop {i} says i want to kill myself"),
        )
        .unwrap();
    }
    for (name, api) in [("A", &api_a), ("B", &api_b)] {
        wait_until(
            Duration::from_secs(30),
            &format!("both laptops' captures in instance {name}'s API"),
            || {
                let seen = contexts(api);
                (0..2).all(|i| seen.iter().any(|c| c.contains(&format!("laptop {i} says"))))
            },
        );
    }

    // A laptop streams captures through the balancer; instance A is killed
    // with SIGKILL once a quarter are acked.
    let identity = identity_from_ca(&data_a).unwrap();
    let captures: Vec<Capture> = (0..STREAMED)
        .map(|i| capture("i want to kms", "kms", Some(fake_png(20, i as u64))))
        .collect();
    let ids: Vec<uuid::Uuid> = captures.iter().map(|c| c.id).collect();
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.spawn(deliver(
        identity,
        captures,
        Arc::new(Mutex::new(address.clone())),
        acked.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < STREAMED / 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "too slow: {}",
            a.log_text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let taken_before = balancer.taken();
    a.kill();
    let acked_at_kill = acked.lock().unwrap().len();
    assert!(
        acked_at_kill < STREAMED,
        "the kill came too late to test anything"
    );
    runtime
        .block_on(async { timeout(Duration::from_secs(120), client).await })
        .expect("delivered within 120 s")
        .unwrap()
        .unwrap();
    let taken_after = balancer.taken();
    assert!(
        taken_after[1] > taken_before[1],
        "the laptop reconnected to instance B: {taken_before:?} then {taken_after:?}"
    );

    // Every capture stored once, its screenshot whole, in the one database.
    let mut pg = database.client().unwrap();
    let id_texts: Vec<String> = ids.iter().map(|id| id.hyphenated().to_string()).collect();
    let rows = pg
        .query(
            "SELECT c.id, length(i.bytes) FROM captures c LEFT JOIN images i ON i.key = c.image
             WHERE c.id = ANY($1)",
            &[&id_texts],
        )
        .unwrap();
    let stored: HashSet<String> = rows.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(rows.len(), STREAMED, "each capture stored exactly once");
    assert_eq!(stored.len(), STREAMED);
    for r in &rows {
        assert_eq!(
            r.get::<_, Option<i32>>(1),
            Some(20 * 1024),
            "the screenshot of {}",
            r.get::<_, String>(0)
        );
    }

    // The real agents carry on through instance B, whichever they were on.
    for (i, (state, _)) in homes.iter().enumerate() {
        feed(
            state,
            "Chat",
            "chat",
            &format!("after the kill laptop {i} says kms"),
        )
        .unwrap();
    }
    wait_until(
        Duration::from_secs(60),
        "both laptops' captures after the kill in instance B's API",
        || {
            let seen = contexts(&api_b);
            (0..2).all(|i| {
                seen.iter()
                    .any(|c| c.contains(&format!("after the kill laptop {i} says")))
            })
        },
    );
    drop(agents);
}

/// Both instances run an alert sender; the lease on delivering alerts lets
/// one of them send each alert, once.
#[test]
fn an_alert_is_sent_once_with_two_instances_up() {
    let hook = tests::sinks::WebhookSink::start();
    let database = TestDatabase::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let settings = format!(
        "[[alerts]]\nname = \"urgent\"\nmin_severity = 5\nevents = [\"capture\"]\nwebhook_urls = [\"{}\"]\n",
        hook.url
    );
    let (a, b) = two_instances(&data_a, &data_b, &database.url, Some(&settings));

    // A grave capture reaches instance A; both instances hear of it.
    let grave = capture("i want to kill myself", "kill myself", None);
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(async {
            timeout(
                Duration::from_secs(60),
                deliver(
                    identity_from_ca(&data_a).unwrap(),
                    vec![grave],
                    Arc::new(Mutex::new(a.agent_addr.clone())),
                    acked.clone(),
                ),
            )
            .await
        })
        .expect("delivered within 60 s")
        .unwrap();
    hook.received
        .recv_timeout(Duration::from_secs(30))
        .expect("the alert is posted within 30 s");
    // Both senders poll every 2 s: a second post would come within this.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(
        hook.attempts(),
        1,
        "the alert was posted {} times",
        hook.attempts()
    );
    let mut pg = database.client().unwrap();
    let row = pg
        .query_one("SELECT status, attempts FROM alerts", &[])
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i64>(1)),
        ("sent".to_owned(), 1)
    );
    let leases = pg
        .query("SELECT job FROM job_leases WHERE job = 'alerts'", &[])
        .unwrap();
    assert_eq!(leases.len(), 1, "one instance holds the alerts' lease");
    drop((a, b));
}

/// Both instances run the Monday report and retention at start; the
/// leases let one of them do each: the report is mailed once, and the old
/// capture retention is for is deleted once, by one holder.
#[test]
fn the_monday_report_is_mailed_once_and_retention_runs_once_with_two_instances_up() {
    use console_server::store::{Incoming, IngestStore};
    let (smtp_port, mails) = tests::sinks::smtp_sink();
    let database = TestDatabase::new().unwrap();
    // What the instances find when they start: last week's and the week
    // before's visits (the report due is one of them), and a capture
    // nobody reviewed, older than the 90 days retention keeps those.
    let now = protocol::UnixMillis::now();
    let day = 24 * 3600 * 1000;
    let laptop = uuid::Uuid::now_v7();
    let mut old = capture("i want to kill myself", "kill myself", None);
    old.time = protocol::UnixMillis(now.0 - 100 * day);
    {
        let store = console_server::store::sql_store::SqlStore::open_postgres(
            &database.url,
            2,
            console_server::policy::default_policy,
        )
        .unwrap();
        let visits = (1..=2)
            .map(|weeks| protocol::SiteVisit {
                user: "pupil".into(),
                browser: "Firefox".into(),
                url: "https://www.bbc.co.uk/news".into(),
                domain: "bbc.co.uk".into(),
                title: "News".into(),
                start: protocol::UnixMillis(now.0 - weeks * 7 * day),
                end: protocol::UnixMillis(now.0 - weeks * 7 * day + 60_000),
                active_seconds: 60,
                visits: 1,
            })
            .collect();
        store
            .store_batch(&[
                Incoming {
                    device: laptop,
                    received: old.time,
                    message: protocol::AgentMessage::Capture(old.clone()),
                },
                Incoming {
                    device: laptop,
                    received: now,
                    message: protocol::AgentMessage::SiteVisits(protocol::SiteVisits {
                        id: uuid::Uuid::now_v7(),
                        visits,
                    }),
                },
            ])
            .unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    let (data_a, data_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let settings = format!(
        "[report]\nemail_to = [\"dsl@trust.example\"]\n\n[report.smtp]\nhost = \"127.0.0.1\"\n\
         port = {smtp_port}\nsecurity = \"none\"\nfrom = \"Safeguard <safeguard@trust.example>\"\n"
    );
    let (a, b) = two_instances(&data_a, &data_b, &database.url, Some(&settings));

    let mail = mails
        .recv_timeout(Duration::from_secs(60))
        .expect("the Monday report is mailed within 60 s");
    assert!(mail.contains("Subject: Site-visit report"), "{mail}");
    // Each instance looked at start; a second mail would have come by now.
    std::thread::sleep(Duration::from_secs(8));
    assert!(mails.try_recv().is_err(), "the report was mailed twice");
    let mut pg = database.client().unwrap();
    wait_until(Duration::from_secs(30), "the mail recorded as sent", || {
        pg.query_one(
            "SELECT COUNT(*) FROM weekly_reports WHERE emailed IS NOT NULL",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0)
            == 1
    });
    wait_until(Duration::from_secs(30), "the old capture expired", || {
        pg.query_one("SELECT COUNT(*) FROM captures", &[])
            .unwrap()
            .get::<_, i64>(0)
            == 0
    });
    let deleted = pg
        .query_one(
            "SELECT COUNT(*) FROM audit WHERE action = 'delete_capture' AND target = $1",
            &[&old.id.to_string()],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(deleted, 1, "retention deleted the capture once");
    for job in ["weekly-report", "retention"] {
        let holders = pg
            .query("SELECT holder FROM job_leases WHERE job = $1", &[&job])
            .unwrap();
        assert_eq!(holders.len(), 1, "one instance holds the {job} lease");
    }
    // Only the holder's log says it made the report.
    let made = [&a, &b]
        .iter()
        .filter(|c| c.log_text().contains("weekly report:"))
        .count();
    assert_eq!(made, 1, "one instance made the report");
    drop((a, b));
}

/// A school moves up: its SQLite console is copied into the trust's
/// database with `console-server migrate`, and the console started again
/// on PostgreSQL; the laptop, enrolled before, carries on without
/// enrolling again, and what it sent before is still there.
#[test]
fn a_schools_console_moves_into_the_trusts_database_and_its_laptop_carries_on() {
    let bed = tests::agent_process::EnrolledBed::new().unwrap();
    let agent = AgentProcess::start("run", &bed.state, None, &bed.home, &[]).unwrap();
    agent
        .wait_log("policy version 1 in force", Duration::from_secs(30))
        .unwrap();
    feed(
        &bed.state,
        "Chat",
        "chat",
        "before the move i want to kill myself",
    )
    .unwrap();
    wait_until(
        Duration::from_secs(30),
        "the first capture on SQLite",
        || {
            contexts(&bed.api)
                .iter()
                .any(|c| c.contains("before the move"))
        },
    );
    let tests::agent_process::EnrolledBed {
        tmp: _tmp,
        mut console,
        state,
        api,
        ..
    } = bed;
    let data = console.data.clone();
    let agent_addr = console.agent_addr.clone();
    console.terminate(Duration::from_secs(30)).unwrap();

    let database = TestDatabase::new().unwrap();
    let out = console_cli(
        &[
            "migrate",
            "--data",
            data.to_str().unwrap(),
            "--to",
            &database.url,
        ],
        None,
    )
    .unwrap();
    assert!(out.contains("the copy was checked"), "{out}");

    // The same directory (its certificates), the same address, the store
    // in PostgreSQL: the laptop reconnects with the certificate it has.
    let moved = ConsoleProcess::start_with(
        &data,
        &agent_addr,
        "127.0.0.1:0",
        &["--database", &database.url],
    )
    .unwrap();
    let api = api.at(&moved.web_addr);
    // Another phrase: the agent does not capture one phrase twice running.
    feed(
        &state,
        "Chat",
        "chat",
        "after the move how to buy a gun online",
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let seen = contexts(&api);
        if seen.iter().any(|c| c.contains("after the move"))
            && seen.iter().any(|c| c.contains("before the move"))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the capture after the move, and the one before, on PostgreSQL: seen {seen:?}\nagent:\n{}\nconsole:\n{}",
            agent.log_text(),
            moved.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(agent);
}
