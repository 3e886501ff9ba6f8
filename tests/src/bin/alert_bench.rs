//! Alerts under load: the real console binary with one `[[alerts]]` rule
//! (every severity-5 capture to a mailbox and a webhook), a local SMTP
//! sink and webhook receiver, and simulated laptops over mutual TLS
//! sending severity-5 captures (the `simulate` tool). Measured for each
//! alert: from the moment the console received the capture (the alert's
//! `created`, written in the capture's own transaction) to the SMTP sink
//! accepting the mail, and to the webhook receiving its POST.
//!
//! `cargo run --release -p tests --bin alert-bench -- [--rate 100] [--seconds 10] [--agents 20]`
//!
//! Last line: `captures=… mail_p50_ms=… mail_p99_ms=… webhook_p50_ms=… webhook_p99_ms=… all_delivered_s=…`.

use std::collections::HashMap;
use std::process::Command;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use tests::sinks::{WebhookSink, smtp_sink};
use tests::{ConsoleProcess, open_db, workspace_binary};

#[derive(Parser)]
#[command(about = "Time from a capture's commit to its alert's delivery")]
struct Cli {
    /// Captures a second from the simulated laptops.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 20)]
    agents: usize,
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(i64::MAX)
}

/// Arrival times by alert id, from a receiver of messages that name it
/// after `marker` (`alert-123`).
fn drain(
    rx: Receiver<String>,
    marker: &'static str,
) -> (Arc<Mutex<HashMap<i64, i64>>>, std::thread::JoinHandle<()>) {
    let arrived: Arc<Mutex<HashMap<i64, i64>>> = Arc::default();
    let out = arrived.clone();
    let thread = std::thread::spawn(move || {
        while let Ok(m) = rx.recv() {
            let at = now_ms();
            let lower = m.to_ascii_lowercase();
            let Some(i) = lower.find(marker) else {
                continue;
            };
            let digits: String = lower[i + marker.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(id) = digits.parse() {
                out.lock().expect("not poisoned").insert(id, at);
            }
        }
    });
    (arrived, thread)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (smtp_port, mails) = smtp_sink();
    let hook = WebhookSink::start();
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("console");
    std::fs::create_dir_all(&data)?;
    std::fs::write(
        data.join("console.toml"),
        format!(
            "[report.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\nfrom = \"console@school.example\"\n\
             [[alerts]]\nname = \"urgent\"\nmin_severity = 5\nevents = [\"capture\"]\n\
             email_to = [\"dsl@school.example\"]\nwebhook_urls = [\"{}\"]\n",
            hook.url
        ),
    )?;
    let (mail_times, _m) = drain(mails, "message-id: <alert-");
    let (hook_rx, hook_head) = {
        let (tx, rx) = std::sync::mpsc::channel();
        let received = hook.received;
        let forward = std::thread::spawn(move || {
            while let Ok((head, _)) = received.recv() {
                if tx.send(head).is_err() {
                    return;
                }
            }
        });
        (rx, forward)
    };
    let (hook_times, _h) = drain(hook_rx, "idempotency-key: alert-");

    let console = ConsoleProcess::start(&data)?;
    println!(
        "{} laptops sending {} severity-5 captures/s for {} s; each alerts a mailbox and a webhook",
        cli.agents, cli.rate, cli.seconds
    );
    let ingest = Command::new(workspace_binary("simulate")?)
        .arg("--data")
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
            "30",
        ])
        .output()?;
    let ingest_out = String::from_utf8_lossy(&ingest.stdout).into_owned();
    anyhow::ensure!(
        ingest.status.success(),
        "simulate failed: {ingest_out}{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let sent_at = Instant::now();

    let db = open_db(&data)?;
    let captures: i64 = db.query_row("SELECT COUNT(*) FROM captures", [], |r| r.get(0))?;
    let deadline = Instant::now() + Duration::from_secs(300);
    let want = usize::try_from(captures)?;
    loop {
        let (m, h) = (
            mail_times.lock().expect("not poisoned").len(),
            hook_times.lock().expect("not poisoned").len(),
        );
        if m >= want && h >= want {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "after 300 s only {m} mails and {h} webhook posts of {want} each"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let drained = sent_at.elapsed();
    let mut stmt = db.prepare("SELECT id, channel, created, status FROM alerts")?;
    let rows: Vec<(i64, String, i64, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<Result<_, _>>()?;
    let (mail_times, hook_times) = (
        mail_times.lock().expect("not poisoned").clone(),
        hook_times.lock().expect("not poisoned").clone(),
    );
    let (mut mail, mut webhook) = (Vec::new(), Vec::new());
    for (id, channel, created, status) in &rows {
        anyhow::ensure!(status == "sent", "alert {id} is {status}");
        let (times, into) = match channel.as_str() {
            "email" => (&mail_times, &mut mail),
            _ => (&hook_times, &mut webhook),
        };
        let at = times
            .get(id)
            .with_context(|| format!("alert {id} ({channel}) never arrived"))?;
        into.push(at - created);
    }
    mail.sort_unstable();
    webhook.sort_unstable();
    anyhow::ensure!(
        mail.len() == want && webhook.len() == want,
        "{} mail and {} webhook alerts for {want} captures",
        mail.len(),
        webhook.len()
    );
    println!("ingest: {}", ingest_out.lines().last().unwrap_or_default());
    println!(
        "captures={want} mail_p50_ms={} mail_p99_ms={} mail_max_ms={} webhook_p50_ms={} webhook_p99_ms={} webhook_max_ms={} all_delivered_s={:.1}",
        percentile(&mail, 0.5),
        percentile(&mail, 0.99),
        mail.last().copied().unwrap_or_default(),
        percentile(&webhook, 0.5),
        percentile(&webhook, 0.99),
        webhook.last().copied().unwrap_or_default(),
        drained.as_secs_f64()
    );
    drop(hook_head);
    Ok(())
}
