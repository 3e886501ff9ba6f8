//! Benchmarks of the agent on a real desktop (Xvfb + openbox + xterm), a
//! real console and the real binaries:
//!
//! - `latency`: the keystroke that completes a risky term (Return) →
//!   the capture, screenshot included, committed in the console's database.
//!   Measured from just before `xdotool key Return` starts to the moment a
//!   reader of the database sees the row, so xdotool's own start-up counts
//!   against the agent.
//! - `idle`: the agent (`agent run`) on a quiet desktop: CPU time over a
//!   period, and resident memory.
//!
//! - `viewed`: what a pupil views, through the page-reader extension in a
//!   real Chromium: a chat page adding one risky message a second, then a
//!   page of 1 MB of text put in at once; for each, the time from the text
//!   entering the page (the page's own clock, written into the text) to
//!   the capture's row appearing in the console's database; the agent's
//!   CPU (the agent and its native host) over the chat minute, their
//!   resident memory, and the extension's own time per batch in the page
//!   (from the agent's log).
//!
//! `cargo run --release -p tests --bin agent-bench -- latency --n 100`
//! `cargo run --release -p tests --bin agent-bench -- idle --seconds 60`
//! `cargo run --release -p tests --bin agent-bench -- viewed --seconds 60 --big-pages 5`

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::{Parser, Subcommand};
use tests::agent_process::{AgentProcess, EnrolledBed};
use tests::desktop::XDesktop;
use tests::open_db;

#[derive(Parser)]
#[command(about = "Agent benchmarks on a real X desktop")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Keystroke → capture stored by the console.
    Latency {
        #[arg(long, default_value_t = 100)]
        n: usize,
    },
    /// CPU and memory of the agent on a quiet desktop.
    Idle {
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// Page text (the extension in Chromium) → capture stored.
    Viewed {
        /// Seconds of the chat page, one message a second.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Loads of the 1 MB page.
        #[arg(long, default_value_t = 5)]
        big_pages: usize,
    },
}

struct Bed {
    x: XDesktop,
    agent: AgentProcess,
    setup: EnrolledBed,
}

fn bed() -> anyhow::Result<Bed> {
    let mut x = XDesktop::start()?;
    let setup = EnrolledBed::new()?;
    let agent = AgentProcess::start("run", &setup.state, Some(&x.display), &setup.home, &[])?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    x.xterm("Bench chat")?;
    Ok(Bed { x, agent, setup })
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Latency { n } => latency(n),
        Bench::Idle { seconds } => idle(seconds),
        Bench::Viewed { seconds, big_pages } => viewed(seconds, big_pages),
    }
}

fn latency(n: usize) -> anyhow::Result<()> {
    let bed = bed()?;
    // Every repeat in the same window must capture: no debounce.
    let (_, mut policy) = bed.setup.api.get("/api/v1/policy")?;
    policy["debounce_seconds"] = serde_json::json!(0);
    let (status, body) = bed.setup.api.send("PUT", "/api/v1/policy", &policy)?;
    ensure!(status == 200, "cannot set the policy: {body}");
    bed.agent
        .wait_log("policy version 2 in force", Duration::from_secs(30))?;
    let db = open_db(&bed.setup.console.data)?;
    let count = || -> anyhow::Result<i64> {
        Ok(db.query_row("SELECT COUNT(*) FROM captures", [], |r| r.get(0))?)
    };
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let before = count()?;
        bed.x.type_text("i want to kill myself")?;
        let t0 = Instant::now();
        bed.x.keys(&["Return"])?;
        loop {
            if count()? > before {
                break;
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(10),
                "capture {i} not stored within 10 s; agent log:\n{}",
                bed.agent.log_text()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        times.push(t0.elapsed());
    }
    let (with_image, total): (i64, i64) =
        db.query_row("SELECT COUNT(image), COUNT(*) FROM captures", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    ensure!(
        with_image == total,
        "{with_image} of {total} captures have a screenshot"
    );
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "keystroke_to_stored n={n} screen={}x{} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1} agent_rss_mb={:.1} agent_peak_rss_mb={:.1}",
        bed.x.width,
        bed.x.height,
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(*times.last().context("no samples")?),
        status_kb(bed.agent.pid(), "VmRSS:")? as f64 / 1024.0,
        status_kb(bed.agent.pid(), "VmHWM:")? as f64 / 1024.0,
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// utime + stime of a process, in clock ticks (100 a second on Linux).
fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Ok(f[11].parse::<u64>()? + f[12].parse::<u64>()?)
}

fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn idle(seconds: u64) -> anyhow::Result<()> {
    let bed = bed()?;
    let pid = bed.agent.pid();
    // Let start-up settle: policy built, first heartbeat sent.
    std::thread::sleep(Duration::from_secs(10));
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let c1 = cpu_ticks(pid)?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu_percent = (c1 - c0) as f64 / 100.0 / wall * 100.0;
    println!(
        "agent_idle seconds={wall:.0} cpu_ticks={} cpu_percent_of_one_core={cpu_percent:.3} rss_mb={:.1} peak_rss_mb={:.1} threads={}",
        c1 - c0,
        status_kb(pid, "VmRSS:")? as f64 / 1024.0,
        status_kb(pid, "VmHWM:")? as f64 / 1024.0,
        status_kb(pid, "Threads:")?
    );
    Ok(())
}

/// A chat page adding `Sam: message N at T dont tell your parents` once a
/// second (T: the page's clock when the message entered it).
const CHAT: &str = r#"<!doctype html><html><head><title>Bench chat</title>
<style>#log { height: 600px; overflow-y: auto; font: 16px sans-serif; }</style></head>
<body><div id="log"></div><script>
const log = document.getElementById('log');
const asked = new URLSearchParams(location.search).get('n');
const count = asked === null ? 60 : Number(asked);
let i = 0;
const tick = setInterval(() => {
  const d = document.createElement('div');
  d.textContent = 'Sam: message ' + i + ' at ' + Date.now() + ' dont tell your parents ok';
  log.appendChild(d); log.scrollTop = log.scrollHeight;
  if (++i >= count) clearInterval(tick);
}, 1000);
</script></body></html>"#;

/// A page that puts 1 MB of text in at once on load, a risky paragraph
/// first (in view) carrying the time it entered.
fn big_page() -> String {
    let words = [
        "the", "river", "valley", "school", "history", "lesson", "weather", "forecast", "bright",
        "morning", "garden", "football", "library", "quiet", "evening", "market", "village",
    ];
    let mut paragraphs = Vec::new();
    let mut size = 0;
    let mut n = 0usize;
    while size < 1_000_000 {
        let p: Vec<&str> = (0..60)
            .map(|k| words[(n * 7 + k * 13) % words.len()])
            .collect();
        let p = p.join(" ");
        size += p.len() + 7;
        paragraphs.push(p);
        n += 1;
    }
    format!(
        r#"<!doctype html><html><head><title>Bench big page</title></head><body><div id="all"></div><script>
const body = {};
const t = Date.now();
document.getElementById('all').innerHTML = '<p>Jo at ' + t + ' said i want to kill myself tonight</p>' + body.map(p => '<p>' + p + '</p>').join('');
</script></body></html>"#,
        serde_json::to_string(&paragraphs).expect("strings serialise")
    )
}

/// Process ids of the running native hosts of a state directory.
fn native_hosts(state: &std::path::Path) -> Vec<u32> {
    let Ok(out) = std::process::Command::new("pgrep")
        .args([
            "-f",
            &format!("native-host --state-dir {}", state.display()),
        ])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Captures seen so far: (context, when this reader first saw the row).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, u64)>>>;

/// Watches the console's database for new capture rows.
fn watch_rows(data: std::path::PathBuf) -> anyhow::Result<Seen> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = seen.clone();
    let db = open_db(&data)?;
    std::thread::spawn(move || {
        let mut last = String::new();
        loop {
            let rows: Vec<(String, String)> = db
                .prepare("SELECT id, context FROM captures WHERE id > ?1 ORDER BY id")
                .and_then(|mut s| {
                    s.query_map([&last], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()
                })
                .unwrap_or_default();
            let now = protocol::UnixMillis::now().0 as u64;
            if let Some((id, _)) = rows.last() {
                last.clone_from(id);
            }
            let mut seen = out.lock().unwrap_or_else(|p| p.into_inner());
            seen.extend(rows.into_iter().map(|(_, c)| (c, now)));
            drop(seen);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    Ok(seen)
}

/// The page's time written in a capture's context (`… at T …`).
fn page_time(context: &str) -> Option<u64> {
    let rest = context.split(" at ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let pct = |p: f64| v[((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1];
    (pct(0.5), pct(0.99), *v.last().unwrap_or(&f64::NAN))
}

/// The extension's reading times (µs) the agent logged since `from`.
fn reader_times(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|l| {
            l.split(", read in ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn viewed(seconds: u64, big_pages: usize) -> anyhow::Result<()> {
    use tests::headful_chromium::{Chromium, pages};
    let x = XDesktop::start()?;
    let setup = EnrolledBed::new()?;
    tests::agent_process::install_page_reader_host(&setup.state, &setup.home)?;
    let agent = AgentProcess::start_with_env(
        "run",
        &setup.state,
        Some(&x.display),
        &setup.home,
        &[],
        &[("AGENT_LOG", "info,agent::session=debug")],
    )?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    agent.answer_aup(&x, 1, true)?;
    let (_, mut policy) = setup.api.get("/api/v1/policy")?;
    policy["debounce_seconds"] = serde_json::json!(0);
    let (status, body) = setup.api.send("PUT", "/api/v1/policy", &policy)?;
    ensure!(status == 200, "cannot set the policy: {body}");
    agent.wait_log("policy version 2 in force", Duration::from_secs(30))?;
    let port = pages(vec![("/chat", CHAT.into()), ("/big", big_page())])?;
    let mut browser = Chromium::new(&x, &setup.home, port).with_extension();
    let rows = watch_rows(setup.console.data.clone())?;
    browser.open("http://bench.test/chat?n=0")?;
    browser.front("Bench chat")?;
    agent.wait_log(") connected", Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_secs(3));

    // The chat minute.
    let log_from = agent.log_text().len();
    let hosts = native_hosts(&setup.state);
    let ticks = |pids: &[u32]| -> u64 { pids.iter().filter_map(|p| cpu_ticks(*p).ok()).sum() };
    let pids: Vec<u32> = std::iter::once(agent.pid())
        .chain(hosts.iter().copied())
        .collect();
    let c0 = ticks(&pids);
    let t0 = Instant::now();
    browser.open(&format!("http://bench.test/chat?n={seconds}"))?;
    std::thread::sleep(Duration::from_secs(seconds + 3));
    let wall = t0.elapsed().as_secs_f64();
    let c1 = ticks(&pids);
    let chat: Vec<f64> = rows
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|(c, _)| c.contains("message "))
        .filter_map(|(c, seen)| Some(seen.saturating_sub(page_time(c)?) as f64))
        .collect();
    let reader = reader_times(&agent.log_text()[log_from..]);
    let (p50, p99, max) = percentiles(chat.clone());
    let (r50, r99, _) = percentiles(reader.clone());
    println!(
        "viewed_chat messages={seconds} captured={} p50_ms={p50:.1} p99_ms={p99:.1} max_ms={max:.1} agent_cpu_percent_of_one_core={:.2} (over {wall:.0} s, agent and {} native host(s)) agent_rss_mb={:.1} agent_peak_rss_mb={:.1} host_rss_mb={:.1} extension_batches={} extension_us_per_batch_p50={r50:.0} p99={r99:.0}",
        chat.len(),
        (c1 - c0) as f64 / 100.0 / wall * 100.0,
        hosts.len(),
        status_kb(agent.pid(), "VmRSS:")? as f64 / 1024.0,
        status_kb(agent.pid(), "VmHWM:")? as f64 / 1024.0,
        hosts.first().map_or(Ok(0), |h| status_kb(*h, "VmRSS:"))? as f64 / 1024.0,
        reader.len(),
    );

    // The 1 MB page.
    let log_from = agent.log_text().len();
    let before = rows.lock().unwrap_or_else(|p| p.into_inner()).len();
    for i in 0..big_pages {
        browser.open(&format!("http://bench.test/big?i={i}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while rows.lock().unwrap_or_else(|p| p.into_inner()).len() < before + i + 1 {
            ensure!(
                Instant::now() < deadline,
                "big page {i} made no capture within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let big: Vec<f64> = rows.lock().unwrap_or_else(|p| p.into_inner())[before..]
        .iter()
        .filter(|(c, _)| c.contains("kill myself"))
        .filter_map(|(c, seen)| Some(seen.saturating_sub(page_time(c)?) as f64))
        .collect();
    let reader = reader_times(&agent.log_text()[log_from..]);
    let (p50, p99, max) = percentiles(big.clone());
    let (r50, r99, rmax) = percentiles(reader.clone());
    println!(
        "viewed_big_page pages={} bytes={} p50_ms={p50:.1} p99_ms={p99:.1} max_ms={max:.1} extension_batches={} extension_us_per_batch_p50={r50:.0} p99={r99:.0} max={rmax:.0} agent_rss_mb={:.1} agent_peak_rss_mb={:.1}",
        big.len(),
        big_page().len(),
        reader.len(),
        status_kb(agent.pid(), "VmRSS:")? as f64 / 1024.0,
        status_kb(agent.pid(), "VmHWM:")? as f64 / 1024.0,
    );
    Ok(())
}
