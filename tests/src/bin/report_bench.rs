//! How the weekly site-visit report holds up with many visit rows: a fresh
//! SQLite store (the embedded default) filled through the ingest path with
//! N visit rows in last week (1,500 pupils on 200 laptops, 3,000 sites
//! with a skewed popularity, school hours), plus a tenth as many the week
//! before; then the report is built, rendered as the web page, as PDF and
//! as CSV, each timed (median of 5).
//!
//! `cargo run --release -p tests --bin report-bench -- --visits 10000000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use console_server::school_week::{self, Week};
use console_server::site_report::{self, WeeklyReport};
use console_server::store::images::FsImageStore;
use console_server::store::sqlite::SqliteStore;
use console_server::store::{Incoming, IngestStore};
use protocol::{AgentMessage, Policy, SiteVisit, SiteVisits, UnixMillis};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "The weekly site-visit report over many visit rows")]
struct Cli {
    /// Visit rows in the database.
    #[arg(long, default_value_t = 10_000_000)]
    visits: usize,
    /// Weeks they are spread over, evenly; the report is of the last.
    /// With 1, every row is in the reported week (and a tenth as many
    /// more in the week before, for the change figures).
    #[arg(long, default_value_t = 1)]
    weeks: usize,
}

const USERS: usize = 1500;
const DEVICES: usize = 200;
const SITES: u64 = 3000;

fn median(mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut n = 0;
    for _ in 0..5 {
        let t = Instant::now();
        n = f();
        times.push(t.elapsed());
    }
    times.sort();
    (times[times.len() / 2], n)
}

/// A cheap deterministic mix (SplitMix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn site(r: u64) -> String {
    // Skewed: low numbers are far more popular.
    let u = (r % 10_000) as f64 / 10_000.0;
    let n = (u * u * u * SITES as f64) as u64;
    match n {
        0 => "bbc.co.uk".into(),
        1 => "youtube.com".into(),
        2 => "m.bet365.com".into(),
        3 => "roblox.com".into(),
        _ => format!("site{n}.example"),
    }
}

fn fill(store: &SqliteStore, week: Week, rows: usize, devices: &[Uuid]) -> anyhow::Result<()> {
    let (start, _) = week.bounds(&school_week::zone());
    let mut made = 0;
    while made < rows {
        let mut batch = Vec::new();
        for _ in 0..10 {
            if made >= rows {
                break;
            }
            let n = 1000.min(rows - made);
            let visits: Vec<SiteVisit> = (made..made + n)
                .map(|i| {
                    let r = mix(i as u64 ^ start.0 as u64);
                    let user = (r % USERS as u64) as usize;
                    let day = (r >> 12) % 5;
                    let minute = (r >> 20) % (7 * 60);
                    let t = start.0 + (day as i64 * 24 + 8) * 3_600_000 + minute as i64 * 60_000;
                    let domain = site(r >> 32);
                    SiteVisit {
                        user: format!("pupil{user:04}"),
                        browser: "Chrome".into(),
                        url: format!("https://{domain}/page/{}", (r >> 40) % 50),
                        domain,
                        title: "A page".into(),
                        start: UnixMillis(t),
                        end: UnixMillis(t + 60_000),
                        active_seconds: ((r >> 48) % 300) as u32,
                        visits: 1,
                    }
                })
                .collect();
            let user = (mix(made as u64) % USERS as u64) as usize;
            batch.push(Incoming {
                device: devices[user % DEVICES],
                received: UnixMillis::now(),
                message: AgentMessage::SiteVisits(SiteVisits {
                    id: Uuid::now_v7(),
                    visits,
                }),
            });
            made += n;
        }
        store.store_batch(&batch)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dir = tempfile::tempdir()?;
    let images = Arc::new(FsImageStore::open(&dir.path().join("images"))?);
    let store = SqliteStore::open(&dir.path().join("console.db"), images, Policy::baseline)?;
    let devices: Vec<Uuid> = (0..DEVICES).map(|_| Uuid::now_v7()).collect();
    let week = Week::containing(UnixMillis::now(), &school_week::zone()).previous();
    let started = Instant::now();
    let weeks = cli.weeks.max(1);
    let per_week = cli.visits / weeks;
    let mut total = 0;
    if weeks == 1 {
        fill(&store, week.previous(), cli.visits / 10, &devices)?;
        total += cli.visits / 10;
    }
    let mut w = week;
    for _ in 0..weeks {
        fill(&store, w, per_week, &devices)?;
        total += per_week;
        w = w.previous();
    }
    let loaded = started.elapsed();
    println!(
        "stored {total} visit rows over {} weeks ({per_week} in {week}) in {:.1} s through the ingest path",
        weeks.max(2),
        loaded.as_secs_f64()
    );

    let builtin = site_report::builtin_categories();
    let (start, end) = week.bounds(&school_week::zone());
    let (read, rows) = median(|| {
        use console_server::store::visits::VisitStore;
        store.visit_totals(start, end).expect("totals").len()
    });
    let mut report = None;
    let (build, _) = median(|| {
        let r = WeeklyReport::load(&store, builtin, week).expect("the report");
        let n = r.pairs.len();
        report = Some(r);
        n
    });
    let report = report.expect("built");
    let (page, html_len) = median(|| {
        console_server::web::site_visits::report_body(&report, week)
            .into_string()
            .len()
    });
    let (pdf, pdf_len) = median(|| console_server::report_pdf::render(&report, week, None).len());
    let (csv, csv_len) = median(|| {
        site_report::csv(&report, "pairs")
            .map(|c| c.len())
            .unwrap_or(0)
    });
    println!(
        "report {week}: {} sites, {} users, {} devices, {} user-site pairs, {} visits",
        report.domains.len(),
        report.users_lines.len(),
        report.devices.len(),
        report.pairs.len(),
        report.visits
    );
    println!("| step | median of 5 |");
    println!("|---|---|");
    println!(
        "| of which: read the week's totals ({rows} rows) | {:.0} ms |",
        read.as_secs_f64() * 1e3
    );
    println!(
        "| read and fold the week (store → report) | {:.0} ms |",
        build.as_secs_f64() * 1e3
    );
    println!(
        "| render the web page ({} KB) | {:.0} ms |",
        html_len / 1024,
        page.as_secs_f64() * 1e3
    );
    println!(
        "| render the PDF ({} KB) | {:.0} ms |",
        pdf_len / 1024,
        pdf.as_secs_f64() * 1e3
    );
    println!(
        "| CSV of user-site pairs ({} KB) | {:.0} ms |",
        csv_len / 1024,
        csv.as_secs_f64() * 1e3
    );
    println!(
        "| page total (read + fold + render) | {:.0} ms |",
        (build + page).as_secs_f64() * 1e3
    );
    Ok(())
}
