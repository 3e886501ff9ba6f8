//! Time on websites, end to end: a real Chromium on a real X server
//! (Xvfb + openbox) visits local test sites for known lengths of time
//! while the real agent runs; a real console receives the visits; the
//! week's report (its JSON form) must show each site with its visit count
//! and active seconds within 10% of the time the test measured itself.
//! Time with another window in front, and time after the user stopped
//! touching keyboard and mouse, must not count.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use tests::agent_process::{AgentProcess, EnrolledBed};
use tests::desktop::{XDesktop, require, wait_for};
use tests::headful_chromium::{Chromium, sites};

/// The idle threshold given to the agent.
const IDLE_SECONDS: u64 = 6;

/// Keeps the user active (the mouse moves every 500 ms) for `d`.
fn active_for(x: &XDesktop, d: Duration) -> anyhow::Result<Instant> {
    let end = Instant::now() + d;
    let mut i = 0;
    while Instant::now() < end {
        x.xdotool(&["mousemove", &(600 + (i % 2) * 7).to_string(), "400"])?;
        i += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(Instant::now())
}

fn current_week() -> String {
    let d = jiff::Zoned::now().date().iso_week_date();
    format!("{:04}-W{:02}", d.year(), d.week())
}

/// Site → (visits, active seconds) from the console's weekly report API.
fn report(bed: &EnrolledBed) -> anyhow::Result<BTreeMap<String, (u64, u64)>> {
    let (status, body) = bed.api.get(&format!(
        "/api/v1/site-visits/weekly?week={}",
        current_week()
    ))?;
    ensure!(status == 200, "weekly report: {status} {body}");
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for row in body["rows"].as_array().context("rows")? {
        let e = out
            .entry(row["domain"].as_str().unwrap_or("").to_owned())
            .or_default();
        e.0 += row["visits"].as_u64().unwrap_or(0);
        e.1 += row["active_seconds"].as_u64().unwrap_or(0);
    }
    Ok(out)
}

#[test]
fn time_on_sites_is_measured_from_focus_and_input_and_reaches_the_weekly_report()
-> anyhow::Result<()> {
    require("chromium", "chromium")?;
    require("pkill", "procps")?;
    let mut x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let port = sites()?;
    let idle = IDLE_SECONDS.to_string();
    let agent = AgentProcess::start(
        "run",
        &bed.state,
        Some(&x.display),
        &bed.home,
        &[
            "--browser-poll-seconds",
            "1",
            "--idle-seconds",
            &idle,
            "--visit-report-seconds",
            "3",
        ],
    )?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    agent.answer_aup(&x, 1, true)?;
    let terminal = x.xterm("terminal")?;

    let mut browser = Chromium::new(&x, &bed.home, port);
    // alpha: 20 s in front, the user active throughout.
    browser.open("http://alpha.test/")?;
    let alpha_from = browser.front("Page alpha")?;
    active_for(&x, Duration::from_secs(20))?;
    // The terminal in front for 8 s, the user active: no site gains time.
    x.xdotool(&["windowactivate", "--sync", &terminal])?;
    let alpha_to = Instant::now();
    active_for(&x, Duration::from_secs(8))?;
    // beta: 15 s, active.
    browser.open("http://beta.test/")?;
    let beta_from = browser.front("Page beta")?;
    active_for(&x, Duration::from_secs(15))?;
    // gamma: 10 s active, then 20 s without any input (idle from the last
    // input, since the gap passes the threshold), then the terminal.
    browser.open("http://gamma.test/")?;
    // beta stays in front (the user just paused) until gamma's tab shows.
    let gamma_from = browser.front("Page gamma")?;
    let beta_to = gamma_from;
    let gamma_to = active_for(&x, Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_secs(20));
    x.xdotool(&["windowactivate", "--sync", &terminal])?;
    active_for(&x, Duration::from_secs(2))?;

    let truth: BTreeMap<&str, f64> = [
        ("alpha.test", (alpha_to - alpha_from).as_secs_f64()),
        ("beta.test", (beta_to - beta_from).as_secs_f64()),
        ("gamma.test", (gamma_to - gamma_from).as_secs_f64()),
    ]
    .into();

    // Chromium writes its history every few seconds; the agent reports
    // every 3 s. Wait until all three sites are in and nothing changes.
    let mut last = BTreeMap::new();
    let mut stable_since = Instant::now();
    let settled = wait_for(Duration::from_secs(120), || {
        let now = report(&bed).unwrap_or_default();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
        truth.keys().all(|d| last.contains_key(*d))
            && stable_since.elapsed() > Duration::from_secs(8)
    });
    ensure!(
        settled,
        "the report never settled with all three sites: {last:?}; agent log:\n{}",
        agent.log_text()
    );
    println!("truth (s): {truth:?}");
    println!("report (visits, active s): {last:?}");
    for (domain, secs) in &truth {
        let (visits, active) = last[*domain];
        assert_eq!(visits, 1, "{domain}: one visit");
        let err = (active as f64 - secs).abs() / secs;
        assert!(
            err <= 0.10,
            "{domain}: {active} s reported, {secs:.1} s true ({:.0}% off); agent log:\n{}",
            err * 100.0,
            agent.log_text()
        );
    }
    let extra: Vec<_> = last
        .keys()
        .filter(|d| !truth.contains_key(d.as_str()))
        .collect();
    assert!(extra.is_empty(), "unexpected sites: {extra:?}");
    Ok(())
}
