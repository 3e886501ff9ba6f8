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
//! `cargo run --release -p tests --bin agent-bench -- latency --n 100`
//! `cargo run --release -p tests --bin agent-bench -- idle --seconds 60`

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
