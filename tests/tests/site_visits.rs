//! Time on websites, end to end: a real Chromium on a real X server
//! (Xvfb + openbox) visits local test sites for known lengths of time
//! while the real agent runs; a real console receives the visits; the
//! week's report (its JSON form) must show each site with its visit count
//! and active seconds within 10% of the time the test measured itself.
//! Time with another window in front, and time after the user stopped
//! touching keyboard and mouse, must not count.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tests::agent_process::{AgentProcess, EnrolledBed};
use tests::desktop::{XDesktop, require, wait_for};

/// The idle threshold given to the agent.
const IDLE_SECONDS: u64 = 6;

/// A web server for `*.test`: each host gets a page titled `Page <name>`.
fn sites() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut host = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(h) = line.to_ascii_lowercase().strip_prefix("host:") {
                        host = h.trim().split(':').next().unwrap_or("").to_owned();
                    }
                    line.clear();
                }
                let name = host.split('.').next().unwrap_or("unknown");
                let body = format!(
                    "<html><head><title>Page {name}</title></head><body><h1>{name}</h1>{}</body></html>",
                    "text ".repeat(200)
                );
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    Ok(port)
}

struct Chromium<'a> {
    x: &'a XDesktop,
    profile: std::path::PathBuf,
    home: std::path::PathBuf,
    port: u16,
    children: Vec<std::process::Child>,
}

impl Chromium<'_> {
    /// Opens `url` (the first call starts the browser; later ones hand the
    /// address to it, as a new tab).
    fn open(&mut self, url: &str) -> anyhow::Result<()> {
        let child = std::process::Command::new("chromium")
            .args([
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--password-store=basic",
                "--disable-features=Translate,MediaRouter",
                "--window-position=0,0",
                "--window-size=1200,760",
            ])
            .arg(format!("--user-data-dir={}", self.profile.display()))
            .arg(format!(
                "--host-resolver-rules=MAP *.test 127.0.0.1:{}",
                self.port
            ))
            .arg(url)
            .env("DISPLAY", &self.x.display)
            .env("HOME", &self.home)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start chromium")?;
        self.children.push(child);
        Ok(())
    }

    /// Waits until the front window is this page, activating the
    /// browser's window; returns when it was first seen in front.
    fn front(&self, title: &str) -> anyhow::Result<Instant> {
        let want = format!("{title} - Chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(name) = self.x.xdotool(&["getactivewindow", "getwindowname"])
                && name.trim() == want
            {
                return Ok(Instant::now());
            }
            if let Ok(ids) =
                self.x
                    .xdotool(&["search", "--onlyvisible", "--name", &format!("^{want}$")])
                && let Some(id) = ids.lines().next()
            {
                let _ = self.x.xdotool(&["windowactivate", "--sync", id]);
            }
            if Instant::now() > deadline {
                bail!("{want:?} never came to the front");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Chromium<'_> {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::process::Command::new("pkill")
            .args(["-f", &format!("user-data-dir={}", self.profile.display())])
            .status();
    }
}

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
    let terminal = x.xterm("terminal")?;

    let mut browser = Chromium {
        x: &x,
        profile: bed.home.join(".config/chromium"),
        home: bed.home.clone(),
        port,
        children: Vec::new(),
    };
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
