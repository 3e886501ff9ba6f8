//! How the weekly site-visit report holds up with many visit rows: a fresh
//! SQLite store (the embedded default) filled through the ingest path with
//! N visit rows in last week (1,500 pupils on 200 laptops, 3,000 sites
//! with a skewed popularity, school hours), plus a tenth as many the week
//! before; then the report is built, rendered as the web page, as PDF and
//! as CSV, each timed (median of 5).
//!
//! `cargo run --release -p tests --bin report-bench -- --visits 10000000`

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use console_server::school_week::{self, Week};
use console_server::site_report::{self, WeeklyReport};
use console_server::store::images::FsImageStore;
use console_server::store::sql_store::SqlStore;
use protocol::{Policy, UnixMillis};
use tests::load::{DEVICES, fill_visits};
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

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let dir = tempfile::tempdir()?;
    let images = Arc::new(FsImageStore::open(&dir.path().join("images"))?);
    let store = SqlStore::open(&dir.path().join("console.db"), images, Policy::baseline)?;
    {
        use console_server::store::visits::VisitStore;
        store.ensure_week_totals(&school_week::zone())?;
    }
    let devices: Vec<Uuid> = (0..DEVICES).map(|_| Uuid::now_v7()).collect();
    let week = Week::containing(UnixMillis::now(), &school_week::zone()).previous();
    let started = Instant::now();
    let weeks = cli.weeks.max(1);
    let per_week = cli.visits / weeks;
    let mut total = 0;
    if weeks == 1 {
        fill_visits(&store, week.previous(), cli.visits / 10, &devices)?;
        total += cli.visits / 10;
    }
    let mut w = week;
    for _ in 0..weeks {
        fill_visits(&store, w, per_week, &devices)?;
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
    let (read, rows) = tests::load::median(5, || {
        use console_server::store::visits::VisitStore;
        let t = store.week_totals(&week.to_string()).expect("totals");
        t.domains.len() + t.users.len() + t.devices.len()
    });
    let mut summary = None;
    let (build, _) = tests::load::median(5, || {
        let r = WeeklyReport::load(&store, builtin, week, site_report::Detail::Summary)
            .expect("the report");
        let n = r.domains.len();
        summary = Some(r);
        n
    });
    let summary = summary.expect("built");
    let mut report = None;
    let (build_pairs, _) = tests::load::median(5, || {
        let r = WeeklyReport::load(&store, builtin, week, site_report::Detail::Pairs)
            .expect("the report with its pairs");
        let n = r.pairs.len();
        report = Some(r);
        n
    });
    let report = report.expect("built");
    let (page, html_len) = tests::load::median(5, || {
        console_server::web::site_visits::report_body(&summary, week)
            .into_string()
            .len()
    });
    let (pdf, pdf_len) = tests::load::median(5, || {
        console_server::report_pdf::render(&summary, week, None).len()
    });
    let (csv, csv_len) = tests::load::median(5, || {
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
        "| read and put together the week (store → report: page, PDF, mail) | {:.0} ms |",
        build.as_secs_f64() * 1e3
    );
    println!(
        "| the same with every user on every site (CSV of pairs, API) | {:.0} ms |",
        build_pairs.as_secs_f64() * 1e3
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
