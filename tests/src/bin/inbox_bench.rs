//! How the console's inbox queries hold up with many captures: a fresh
//! SQLite store (the embedded default, as `console-server serve` uses it)
//! filled with N captures over 12 weeks, 70% of them triaged, then each
//! query the inbox, capture page and trends make, timed (median of 15).
//!
//! `cargo run --release -p tests --bin inbox-bench -- --captures 1000000`

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use console_server::store::images::FsImageStore;
use console_server::store::scope::Scope;
use console_server::store::sql_store::SqlStore;
use console_server::store::{CaptureQuery, CaptureStore, Status};
use protocol::{Policy, UnixMillis};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Inbox queries over many captures")]
struct Cli {
    #[arg(long, default_value_t = 1_000_000)]
    captures: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dir = tempfile::tempdir()?;
    let images = Arc::new(FsImageStore::open(&dir.path().join("images"))?);
    let store = SqlStore::open(&dir.path().join("console.db"), images, Policy::baseline)?;
    let now = UnixMillis::now().0;
    let span = 12 * 7 * 24 * 3_600_000_i64;
    let device = Uuid::now_v7();
    let started = Instant::now();
    tests::load::fill_captures(&store, cli.captures, now, span, device)?;
    let made = cli.captures;
    println!("stored {made} captures in {:.1?}", started.elapsed());
    {
        let db = rusqlite::Connection::open(dir.path().join("console.db"))?;
        db.execute(
            "UPDATE captures SET status = CASE WHEN rowid % 10 < 6 THEN 'false_positive'
             WHEN rowid % 10 = 6 THEN 'violation' ELSE 'new' END",
            [],
        )?;
        db.execute_batch("ANALYZE")?;
    }
    let q = |f: &dyn Fn(&mut CaptureQuery)| {
        let mut q = CaptureQuery {
            status: Some(Status::New),
            limit: 50,
            ..CaptureQuery::default()
        };
        f(&mut q);
        q
    };
    // A cursor 20,000 unreviewed captures deep (page 400).
    let deep = {
        let db = rusqlite::Connection::open(dir.path().join("console.db"))?;
        let id: String = db.query_row(
            "SELECT id FROM captures WHERE status = 'new' ORDER BY id DESC LIMIT 1 OFFSET 20000",
            [],
            |r| r.get(0),
        )?;
        Uuid::parse_str(&id)?
    };
    let cases: Vec<(&str, CaptureQuery)> = vec![
        ("first page, unreviewed", q(&|_| {})),
        ("page 400, unreviewed", q(&|q| q.before = Some(deep))),
        ("first page, all statuses", q(&|q| q.status = None)),
        (
            "category filter",
            q(&|q| q.category = Some("weapons".into())),
        ),
        ("user filter", q(&|q| q.user = Some("pupil17".into()))),
        ("severity 5", q(&|q| q.severity = Some(5))),
        (
            "last 7 days",
            q(&|q| q.from = Some(UnixMillis(now - 7 * 86_400_000))),
        ),
        ("text, common", q(&|q| q.text = Some("pupil 17 ".into()))),
        (
            "text, absent (full scan)",
            q(&|q| q.text = Some("zebra crossing".into())),
        ),
    ];
    for (name, query) in &cases {
        let (t, n) =
            tests::load::median(15, || store.captures(query).map(|c| c.len()).unwrap_or(0));
        println!("{name}: {:.1} ms ({n} rows)", t.as_secs_f64() * 1000.0);
    }
    let (t, _) = tests::load::median(15, || {
        store
            .capture_counts(&Scope::all())
            .map(|c| c.len())
            .unwrap_or(0)
    });
    println!("counts per status: {:.1} ms", t.as_secs_f64() * 1000.0);
    let (t, n) = tests::load::median(15, || {
        store
            .capture_buckets(UnixMillis(now - span), UnixMillis(now + 1), &Scope::all())
            .map(|b| b.len())
            .unwrap_or(0)
    });
    println!(
        "trends, 12 weeks: {:.1} ms ({n} buckets)",
        t.as_secs_f64() * 1000.0
    );
    Ok(())
}
