//! The reconnect storm: N simulated laptops (real mutual TLS, device
//! certificates minted from the console's CA) are connected to a real
//! console, which is then killed and started again on the same ports. Every
//! laptop reconnects as the real agent does (its backoff: 1 s doubling,
//! equal jitter, reset only after an ack) and delivers the capture it made
//! during the outage. Measured: how long until every laptop is back and its
//! capture acked, how many connection attempts that took and how they
//! failed (the console's refusals included), and the console's memory
//! (VmRSS, sampled every 50 ms) before and during the storm. Afterwards the
//! database must hold every capture exactly once.
//!
//! `cargo run --release -p tests --bin storm -- --agents 2000 [--max-connections N]`
//!
//! Last line: `agents=… back_s_p50=… back_s_p99=… back_s_max=… attempts=… peak_rss_mb=… lost=… duplicated=…`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::backoff::Backoff;
use anyhow::bail;
use clap::Parser;
use protocol::device_link::{DeviceIdentity, DeviceLink};
use protocol::pki::Authority;
use protocol::{AgentMessage, ConsoleMessage, ProtocolError};
use tests::{ConsoleProcess, capture, count_stored, identity_from, open_db};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "A console restart with N laptops connected")]
struct Args {
    #[arg(long, default_value_t = 2000)]
    agents: usize,
    /// The console's `[limits] max_connections` (default: the console's own).
    #[arg(long)]
    max_connections: Option<u32>,
    /// Each laptop disconnects once its capture is acked (so laptops turned
    /// away by a low `--max-connections` get in later), instead of staying.
    #[arg(long)]
    leave: bool,
    /// The console's data directory (default: a fresh temporary one).
    #[arg(long)]
    data: Option<std::path::PathBuf>,
}

#[derive(Default)]
struct Tally {
    /// Seconds from the restart until each laptop's capture was acked.
    back: Vec<f64>,
    /// Failed attempts by what went wrong.
    failures: BTreeMap<String, usize>,
    sent: Vec<Uuid>,
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Why an attempt failed.
enum Fail {
    Busy(u32),
    Other(String),
}

/// What kind of failure an error is, for the tally.
fn kind(e: &str) -> String {
    let e = e.to_lowercase();
    for (needle, name) in [
        ("refused", "connection refused"),
        ("reset", "connection reset"),
        ("timed out", "timed out"),
        ("eof", "closed during the handshake"),
        ("closed", "closed"),
    ] {
        if e.contains(needle) {
            return name.into();
        }
    }
    e.chars().take(60).collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tmp = tempfile::tempdir()?;
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| tmp.path().join("console"));
    // A first start creates the data directory; the limit is then set.
    let mut console = ConsoleProcess::start(&data)?;
    if let Some(max) = args.max_connections {
        console.terminate(Duration::from_secs(20))?;
        let path = data.join("console.toml");
        let settings = std::fs::read_to_string(&path)?;
        let settings = settings
            .lines()
            .map(|l| {
                if l.starts_with("max_connections") {
                    format!("max_connections = {max}")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, settings)?;
        console = ConsoleProcess::start(&data)?;
    }
    let (agent_addr, web_addr) = (console.agent_addr.clone(), console.web_addr.clone());

    let authority = Authority::from_pem(
        &std::fs::read_to_string(data.join("ca.pem"))?,
        &std::fs::read_to_string(data.join("ca-key.pem"))?,
    )?;
    println!("minting {} device certificates", args.agents);
    let identities: Vec<DeviceIdentity> = (0..args.agents)
        .map(|_| identity_from(&authority))
        .collect::<Result<_, _>>()?;

    // Everyone connects, calmly, and stays connected.
    println!("connecting {} laptops to {agent_addr}", args.agents);
    let gate = Arc::new(Semaphore::new(64));
    let mut first = Vec::new();
    for id in &identities {
        let (gate, addr, id) = (gate.clone(), agent_addr.clone(), id.clone());
        first.push(tokio::spawn(async move {
            let _p = gate.acquire().await;
            DeviceLink::connect(&addr, &id, "storm", 0).await
        }));
    }
    let mut links = Vec::new();
    for f in first {
        // Over a low --max-connections, the rest start out turned away.
        match f.await? {
            Ok(link) => links.push(Some(link)),
            Err(ProtocolError::Busy { .. }) if args.max_connections.is_some() => links.push(None),
            Err(e) => bail!("a laptop could not connect before the storm: {e}"),
        }
    }
    let pid = console.pid();
    let rss_before = rss_kb(pid).unwrap_or(0);
    println!(
        "{} laptops connected; console RSS {} MB",
        links.iter().flatten().count(),
        rss_before / 1024
    );

    // The console dies; each laptop notices when its connection breaks.
    console.kill();
    let restarted = Arc::new(Mutex::new(None::<Instant>));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let attempts = Arc::new(AtomicU64::new(0));
    let mut laptops = Vec::new();
    let leave = args.leave;
    for (link, id) in links.into_iter().zip(identities) {
        let (addr, tally, attempts, restarted) = (
            agent_addr.clone(),
            tally.clone(),
            attempts.clone(),
            restarted.clone(),
        );
        laptops.push(tokio::spawn(async move {
            // Wait for the break, as the agent does, by reading.
            if let Some(DeviceLink { mut reader, .. }) = link {
                while let Ok(Some(_)) = reader.read::<ConsoleMessage>().await {}
            }
            laptop(&addr, &id, tally, attempts, restarted, leave).await
        }));
    }
    sleep(Duration::from_millis(500)).await;
    let console = ConsoleProcess::start_on(&data, &agent_addr, &web_addr)?;
    *restarted.lock().unwrap() = Some(Instant::now());
    let pid = console.pid();
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kb) = rss_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                sleep(Duration::from_millis(50)).await;
            }
        })
    };
    println!("console restarted; {} laptops reconnecting", args.agents);
    // Each laptop stays connected once back, as a real one would.
    let mut stuck = 0;
    let mut connected = Vec::new();
    for l in laptops {
        match timeout(Duration::from_secs(900), l).await {
            Ok(Ok(halves)) => connected.push(halves),
            _ => stuck += 1,
        }
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    if stuck > 0 {
        bail!("{stuck} laptops were not back within 15 minutes");
    }
    let rss_after = rss_kb(pid).unwrap_or(0);
    drop(connected);

    let tally = std::mem::take(&mut *tally.lock().unwrap());
    // Doubling under one id is ruled out by the key; a capture stored
    // twice would show as more rows than captures sent and stored.
    let (lost, _) = count_stored(&data, &tally.sent)?;
    let rows: i64 = open_db(&data)?.query_row("SELECT COUNT(*) FROM captures", [], |r| r.get(0))?;
    let duplicated = usize::try_from(rows)?.saturating_sub(tally.sent.len() - lost);
    let mut back = tally.back.clone();
    back.sort_by(f64::total_cmp);
    let pct = |p: f64| back[((back.len() as f64 - 1.0) * p).round() as usize];
    println!("failed attempts by kind: {:?}", tally.failures);
    println!(
        "console RSS: {} MB before the restart, {} MB peak during the storm, {} MB after",
        rss_before / 1024,
        peak.load(Ordering::Relaxed) / 1024,
        rss_after / 1024
    );
    println!(
        "agents={} back_s_p50={:.1} back_s_p99={:.1} back_s_max={:.1} attempts={} peak_rss_mb={} lost={lost} duplicated={duplicated}",
        args.agents,
        pct(0.5),
        pct(0.99),
        back.last().copied().unwrap_or(f64::NAN),
        attempts.load(Ordering::Relaxed),
        peak.load(Ordering::Relaxed) / 1024,
    );
    if lost > 0 || duplicated > 0 {
        bail!("{lost} captures lost, {duplicated} duplicated");
    }
    Ok(())
}

/// A laptop's open connection, kept until the end.
type Connected = (
    protocol::Connection<
        tokio::io::ReadHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    >,
    protocol::Connection<
        tokio::io::WriteHalf<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    >,
);

/// One laptop after the break: reconnect with the agent's backoff, send the
/// capture made during the outage, wait for its ack.
async fn laptop(
    addr: &str,
    id: &DeviceIdentity,
    tally: Arc<Mutex<Tally>>,
    attempts: Arc<AtomicU64>,
    restarted: Arc<Mutex<Option<Instant>>>,
    leave: bool,
) -> Connected {
    let c = capture("i want to kms", "kms", None);
    let cid = c.id;
    tally.lock().unwrap().sent.push(cid);
    let message = AgentMessage::Capture(c);
    let mut backoff = Backoff::default();
    let mut delay = backoff.next_delay();
    loop {
        sleep(delay).await;
        attempts.fetch_add(1, Ordering::Relaxed);
        let tried = async {
            let link = timeout(
                Duration::from_secs(30),
                DeviceLink::connect(addr, id, "storm", 1),
            )
            .await
            .map_err(|_| Fail::Other("connect timed out".to_owned()))?
            .map_err(|e| match e {
                ProtocolError::Busy {
                    retry_after_seconds,
                } => Fail::Busy(retry_after_seconds),
                e => Fail::Other(e.to_string()),
            })?;
            let DeviceLink {
                mut reader,
                mut writer,
                ..
            } = link;
            writer
                .send(&message)
                .await
                .map_err(|e| Fail::Other(e.to_string()))?;
            loop {
                match timeout(Duration::from_secs(60), reader.read::<ConsoleMessage>()).await {
                    Ok(Ok(Some(ConsoleMessage::Ack(ids)))) if ids.contains(&cid) => {
                        return Ok((reader, writer));
                    }
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) => return Err(Fail::Other("closed before the ack".to_owned())),
                    Ok(Err(e)) => return Err(Fail::Other(e.to_string())),
                    Err(_) => return Err(Fail::Other("no ack: timed out".to_owned())),
                }
            }
        };
        match tried.await {
            Ok(mut halves) => {
                if leave {
                    let _ = halves.1.shutdown().await;
                }
                let since = restarted
                    .lock()
                    .unwrap()
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                tally.lock().unwrap().back.push(since);
                return halves;
            }
            Err(Fail::Busy(after)) => {
                *tally
                    .lock()
                    .unwrap()
                    .failures
                    .entry("refused: busy".into())
                    .or_default() += 1;
                delay = agent::uplink::busy_delay(&mut backoff, after);
            }
            Err(Fail::Other(e)) => {
                *tally.lock().unwrap().failures.entry(kind(&e)).or_default() += 1;
                delay = backoff.next_delay();
            }
        }
    }
}
