//! The load tool: N simulated laptops over real mutual TLS, each with a
//! device certificate minted straight from the console CA in DIR, sending
//! captures (with an image of K KB) and heartbeats for S seconds, at R
//! captures a second in all. Afterwards it checks the console's database:
//! every capture sent must be there exactly once.
//!
//! `cargo run --release -p tests --bin simulate -- --data DIR --agent-addr HOST:PORT[,HOST:PORT…] [--database URL] --agents N --seconds S [--image-kb K] [--rate R]`
//!
//! Last line: `sent=… stored=… lost=… duplicated=… captures_per_s=… p50_ack_ms=… p99_ack_ms=…`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use protocol::device_link::{DeviceIdentity, DeviceLink};
use protocol::pki::Authority;
use protocol::{AgentMessage, ConsoleMessage, Heartbeat, Screenshot, UnixMillis};
use tests::{capture, fake_png, identity_from, open_db};
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep, timeout};
use uuid::Uuid;

#[derive(Parser)]
#[command(about = "Simulated laptops against a running console")]
struct Args {
    /// The console's data directory (its CA mints the device certificates,
    /// and its database is checked afterwards).
    #[arg(long)]
    data: PathBuf,
    /// The console's agent listener; several, comma-separated, for a
    /// trust's instances (the laptops are shared out among them in turn).
    #[arg(long)]
    agent_addr: String,
    /// The PostgreSQL database the console (or the trust's instances)
    /// store in, checked afterwards instead of DIR/console.db.
    #[arg(long, value_name = "URL")]
    database: Option<String>,
    #[arg(long, default_value_t = 100)]
    agents: usize,
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Size of each capture's image.
    #[arg(long, default_value_t = 150)]
    image_kb: usize,
    /// Captures a second, over all agents.
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
}

#[derive(Default)]
struct Totals {
    sent: Vec<Uuid>,
    latencies_us: Vec<u64>,
    acked: usize,
    errors: Vec<String>,
}

const IMAGES: usize = 32;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let ca_pem = std::fs::read_to_string(args.data.join("ca.pem"))
        .with_context(|| format!("no console CA in {}", args.data.display()))?;
    let ca_key = std::fs::read_to_string(args.data.join("ca-key.pem"))?;
    let authority = Authority::from_pem(&ca_pem, &ca_key)?;
    let images: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..IMAGES)
            .map(|i| fake_png(args.image_kb, i as u64))
            .collect(),
    );

    println!("minting {} device certificates", args.agents);
    let identities: Vec<DeviceIdentity> = (0..args.agents)
        .map(|_| identity_from(&authority))
        .collect::<Result<_, _>>()?;

    println!("connecting {} agents to {}", args.agents, args.agent_addr);
    let addresses: Vec<String> = args
        .agent_addr
        .split(',')
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty())
        .collect();
    anyhow::ensure!(!addresses.is_empty(), "--agent-addr names no address");
    let handshakes = Arc::new(Semaphore::new(64));
    let mut connecting = Vec::new();
    for (n, identity) in identities.into_iter().enumerate() {
        let addr = addresses[n % addresses.len()].clone();
        let handshakes = handshakes.clone();
        connecting.push(tokio::spawn(async move {
            let _permit = handshakes.acquire().await;
            for attempt in 0..5 {
                match timeout(
                    Duration::from_secs(30),
                    DeviceLink::connect(&addr, &identity, "simulate", 0),
                )
                .await
                {
                    Ok(Ok(link)) => return Ok((identity, link)),
                    Ok(Err(e)) if attempt == 4 => return Err(anyhow::anyhow!("{e}")),
                    Err(_) if attempt == 4 => return Err(anyhow::anyhow!("connect timed out")),
                    _ => sleep(Duration::from_millis(200 << attempt)).await,
                }
            }
            unreachable!("the loop returns on its last attempt")
        }));
    }
    let mut links = Vec::new();
    for c in connecting {
        links.push(c.await??);
    }
    println!(
        "{} agents connected; sending for {} s",
        links.len(),
        args.seconds
    );

    let totals = Arc::new(Mutex::new(Totals::default()));
    let per_agent = args.rate / args.agents as f64;
    let start = Instant::now();
    let stop_at = start + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    let devices: Vec<Uuid> = links.iter().map(|(i, _)| i.device_id).collect();
    for (n, (_identity, link)) in links.into_iter().enumerate() {
        let totals = totals.clone();
        let images = images.clone();
        tasks.push(tokio::spawn(run_agent(
            n, link, per_agent, stop_at, images, totals,
        )));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();

    let totals = std::mem::take(&mut *totals.lock().unwrap());
    for e in totals.errors.iter().take(5) {
        eprintln!("agent error: {e}");
    }
    let (stored, duplicated) = match &args.database {
        Some(url) => {
            // The synchronous client may not block a runtime's thread.
            let (url, sent, devices) = (url.clone(), totals.sent.clone(), devices.clone());
            tokio::task::spawn_blocking(move || check_postgres(&url, &sent, &devices)).await??
        }
        None => check_database(&args.data, &totals.sent, &devices)?,
    };
    let sent = totals.sent.len();
    let mut lat = totals.latencies_us;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        lat[i] as f64 / 1000.0
    };
    println!(
        "agents={} seconds={} image_kb={} acked={} errors={}",
        args.agents,
        args.seconds,
        args.image_kb,
        totals.acked,
        totals.errors.len()
    );
    println!(
        "sent={sent} stored={stored} lost={} duplicated={duplicated} captures_per_s={:.1} p50_ack_ms={:.1} p99_ack_ms={:.1}",
        sent - stored,
        totals.acked as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}

async fn run_agent(
    n: usize,
    link: DeviceLink,
    rate: f64,
    stop_at: Instant,
    images: Arc<Vec<Vec<u8>>>,
    totals: Arc<Mutex<Totals>>,
) {
    let DeviceLink {
        mut reader,
        mut writer,
        ..
    } = link;
    let in_flight: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let finished = Arc::new(AtomicBool::new(false));
    let reading = {
        let in_flight = in_flight.clone();
        let finished = finished.clone();
        let totals = totals.clone();
        tokio::spawn(async move {
            loop {
                let msg = timeout(Duration::from_secs(60), reader.read::<ConsoleMessage>()).await;
                match msg {
                    Ok(Ok(Some(ConsoleMessage::Ack(ids)))) => {
                        let now = Instant::now();
                        let mut sent = in_flight.lock().unwrap();
                        let mut t = totals.lock().unwrap();
                        for id in ids {
                            if let Some(at) = sent.remove(&id) {
                                t.latencies_us
                                    .push(now.duration_since(at).as_micros() as u64);
                                t.acked += 1;
                            }
                        }
                        if sent.is_empty() && finished.load(Ordering::SeqCst) {
                            return;
                        }
                    }
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) => return,
                    Ok(Err(e)) => {
                        totals.lock().unwrap().errors.push(format!("{e}"));
                        return;
                    }
                    Err(_) => {
                        totals
                            .lock()
                            .unwrap()
                            .errors
                            .push("no ack within 60 s".into());
                        return;
                    }
                }
            }
        })
    };
    // Spread agents' first sends over the first period.
    let period = Duration::from_secs_f64(1.0 / rate.max(1e-6));
    let mut next = Instant::now() + period.mul_f64((n % 97) as f64 / 97.0);
    let mut heartbeat_at = Instant::now();
    let mut i = n;
    while next < stop_at {
        sleep_until(next).await;
        if Instant::now() >= heartbeat_at {
            let hb = AgentMessage::Heartbeat(heartbeat());
            if writer.send(&hb).await.is_err() {
                break;
            }
            heartbeat_at += Duration::from_secs(60);
        }
        let mut c = capture("i want to kms", "kms", None);
        c.screenshot = Screenshot::Png(images[i % images.len()].clone());
        i += 1;
        let id = c.id;
        in_flight.lock().unwrap().insert(id, Instant::now());
        totals.lock().unwrap().sent.push(id);
        if let Err(e) = writer.send(&AgentMessage::Capture(c)).await {
            totals.lock().unwrap().errors.push(format!("send: {e}"));
            break;
        }
        next += period;
    }
    // Wait for the last acks (the reader returns when all are in).
    finished.store(true, Ordering::SeqCst);
    if in_flight.lock().unwrap().is_empty() {
        reading.abort();
    } else {
        let _ = timeout(Duration::from_secs(60), reading).await;
    }
    let _ = writer.shutdown().await;
}

async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at).await;
}

fn heartbeat() -> Heartbeat {
    Heartbeat {
        time: UnixMillis::now(),
        hostname: "sim".into(),
        os: "simulated".into(),
        agent_version: "simulate".into(),
        user: Some("pupil.sim".into()),
        uptime_seconds: 1,
        load: [0.1, 0.1, 0.1],
        memory_total_bytes: 4 << 30,
        memory_used_bytes: 1 << 30,
        spool_depth: 0,
        spool_dropped: 0,
        policy_version: 1,
    }
}

/// How many of `ids` the console stored, and how many rows the simulated
/// devices have beyond those (a capture stored twice under any id, or
/// something stored that was never sent). A row per id is guaranteed by the
/// primary key, so the second count is what catches doubling.
fn check_database(
    data: &std::path::Path,
    ids: &[Uuid],
    devices: &[Uuid],
) -> anyhow::Result<(usize, usize)> {
    let conn = open_db(data)?;
    let mut by_id = conn.prepare("SELECT COUNT(*) FROM captures WHERE id = ?1")?;
    let mut stored = 0;
    for id in ids {
        let n: i64 = by_id.query_row([id.hyphenated().to_string()], |r| r.get(0))?;
        stored += usize::from(n >= 1);
    }
    let mut by_device = conn.prepare("SELECT COUNT(*) FROM captures WHERE device = ?1")?;
    let mut rows = 0;
    for device in devices {
        let n: i64 = by_device.query_row([device.hyphenated().to_string()], |r| r.get(0))?;
        rows += n as usize;
    }
    Ok((stored, rows.saturating_sub(stored)))
}

/// [`check_database`] for a console storing in PostgreSQL.
fn check_postgres(url: &str, ids: &[Uuid], devices: &[Uuid]) -> anyhow::Result<(usize, usize)> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .with_context(|| format!("cannot connect to {url} to check what was stored"))?;
    let ids: Vec<String> = ids.iter().map(|i| i.hyphenated().to_string()).collect();
    let devices: Vec<String> = devices.iter().map(|d| d.hyphenated().to_string()).collect();
    let stored: i64 = client
        .query_one("SELECT COUNT(*) FROM captures WHERE id = ANY($1)", &[&ids])?
        .get(0);
    let rows: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM captures WHERE device = ANY($1)",
            &[&devices],
        )?
        .get(0);
    let stored = usize::try_from(stored).unwrap_or(0);
    Ok((
        stored,
        usize::try_from(rows).unwrap_or(0).saturating_sub(stored),
    ))
}
