//! The console under many staff at once: a store filled through the ingest
//! path (N captures over 12 weeks, and a big week of site visits), then the
//! real console binary with, at the same time,
//! - staff signed in to the web console reading the inbox page again and
//!   again (each its own session, plain HTTPS);
//! - a senior leader opening the big week's site-visit report again and
//!   again (`GET /reports/weekly?week=…`, which reads every visit total of
//!   the week);
//! - simulated laptops over mutual TLS sending captures with screenshots at
//!   R a second (the `simulate` tool).
//!
//! Measured: how long each inbox page took (p50, p99, max), how many
//! reports were made and how long each took, and the ingest's own figures.
//!
//! `cargo run --release -p tests --bin console-load-bench -- [--captures 200000] [--visits 2000000] [--seconds 60] [--rate 1000] [--staff 4]`
//!
//! Last line: `inbox_p50_ms=… inbox_p99_ms=… inbox_max_ms=… pages=… reports=… report_median_s=… | ingest: …`.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use console_server::data_dir::DataDir;
use console_server::school_week::{self, Week};
use console_server::store::{Role, UserStore};
use protocol::UnixMillis;
use tests::load::{DEVICES, fill_captures, fill_visits};
use tests::web_client::Web;
use tests::{ConsoleProcess, workspace_binary};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Inbox pages while a big report and a busy ingest run")]
struct Cli {
    /// Captures in the store before the run.
    #[arg(long, default_value_t = 200_000)]
    captures: usize,
    /// Visit rows in the reported week (and a tenth as many the week before).
    #[arg(long, default_value_t = 2_000_000)]
    visits: usize,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Captures a second from the simulated laptops.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// Size of each capture's screenshot.
    #[arg(long, default_value_t = 30)]
    image_kb: usize,
    /// Staff reading the inbox at once.
    #[arg(long, default_value_t = 4)]
    staff: usize,
}

const PASSWORD: &str = "a long bench pass phrase";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("console");
    let zone = school_week::zone();
    let week = Week::containing(UnixMillis::now(), &zone).previous();
    {
        let dir = DataDir::open(&data)?;
        let started = Instant::now();
        let now = UnixMillis::now().0;
        fill_captures(
            &dir.store,
            cli.captures,
            now,
            12 * 7 * 86_400_000,
            Uuid::now_v7(),
        )?;
        let devices: Vec<Uuid> = (0..DEVICES).map(|_| Uuid::now_v7()).collect();
        fill_visits(&dir.store, week.previous(), cli.visits / 10, &devices)?;
        fill_visits(&dir.store, week, cli.visits, &devices)?;
        let hash = console_server::secret::hash_password(PASSWORD)
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
        dir.store
            .add_user("head", Role::Auditor, &hash, None, UnixMillis::now())?;
        for n in 0..cli.staff {
            dir.store.add_user(
                &format!("lead{n}"),
                Role::Reviewer,
                &hash,
                None,
                UnixMillis::now(),
            )?;
        }
        println!(
            "stored {} captures and {} visit rows ({} in {week}) in {:.1} s",
            cli.captures,
            cli.visits + cli.visits / 10,
            cli.visits,
            started.elapsed().as_secs_f64()
        );
    }
    let console = ConsoleProcess::start(&data)?;
    let port = console.web_addr.rsplit(':').next().unwrap_or_default();
    let base = format!("https://localhost:{port}");
    let stop = Arc::new(AtomicBool::new(false));

    let pages: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let mut staff = Vec::new();
    for n in 0..cli.staff {
        let (data, base, stop, pages) = (data.clone(), base.clone(), stop.clone(), pages.clone());
        staff.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let web = Web::new(&data, &base);
            let (cookie, r) = web.sign_in(&format!("lead{n}"), PASSWORD, "");
            anyhow::ensure!(r.status == 303, "lead{n} could not sign in: {}", r.status);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = web.get("/inbox", &cookie);
                let took = t.elapsed();
                anyhow::ensure!(r.status == 200, "the inbox answered {}", r.status);
                pages.lock().expect("not poisoned").push(took);
            }
            Ok(())
        }));
    }
    let reports: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let reporter = {
        let (data, base, stop, reports) =
            (data.clone(), base.clone(), stop.clone(), reports.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let web = Web::new(&data, &base);
            let (cookie, r) = web.sign_in("head", PASSWORD, "");
            anyhow::ensure!(r.status == 303, "head could not sign in: {}", r.status);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let r = web.get(&format!("/reports/weekly?week={week}"), &cookie);
                anyhow::ensure!(r.status == 200, "the weekly report answered {}", r.status);
                reports.lock().expect("not poisoned").push(t.elapsed());
            }
            Ok(())
        })
    };

    println!(
        "{} staff reading the inbox, a senior leader reading {week}'s report, {} laptops sending {} captures/s for {} s",
        cli.staff, cli.agents, cli.rate, cli.seconds
    );
    let ingest = Command::new(workspace_binary("simulate")?)
        .args(["--data"])
        .arg(&data)
        .args([
            "--agent-addr",
            &console.agent_addr,
            "--agents",
            &cli.agents.to_string(),
            "--seconds",
            &cli.seconds.to_string(),
            "--rate",
            &cli.rate.to_string(),
            "--image-kb",
            &cli.image_kb.to_string(),
        ])
        .output()?;
    stop.store(true, Ordering::Relaxed);
    for s in staff {
        s.join().expect("a staff thread")?;
    }
    reporter.join().expect("the report thread")?;
    let ingest_out = String::from_utf8_lossy(&ingest.stdout);
    anyhow::ensure!(
        ingest.status.success(),
        "simulate failed: {ingest_out}{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let ingest_line = ingest_out.lines().last().unwrap_or_default().to_owned();

    let mut pages = std::mem::take(&mut *pages.lock().expect("not poisoned"));
    pages.sort();
    let mut reports = std::mem::take(&mut *reports.lock().expect("not poisoned"));
    reports.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "inbox_p50_ms={:.1} inbox_p99_ms={:.1} inbox_max_ms={:.1} pages={} reports={} report_median_s={:.2} | ingest: {ingest_line}",
        ms(percentile(&pages, 0.5)),
        ms(percentile(&pages, 0.99)),
        ms(pages.last().copied().unwrap_or_default()),
        pages.len(),
        reports.len(),
        percentile(&reports, 0.5).as_secs_f64(),
    );
    Ok(())
}
