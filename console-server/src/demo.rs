//! `console-server demo`: a console on this machine and a demonstration
//! laptop enrolled in it through the real enrolment path, so a newcomer can
//! see captures arrive and read them through the API within a minute.
//!
//! The demonstration laptop is not the agent (that is the `agent` binary):
//! it takes lines from standard input (or, without a terminal, a few sample
//! lines), matches them against the libraries and the console's policy as
//! the agent would, and sends each hit as a capture over mutual TLS.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use protocol::device_link::{DeviceIdentity, DeviceLink};
use protocol::enrol::{DeviceFacts, EnrollToken, enroll};
use protocol::{AgentMessage, Capture, ConsoleMessage, Heartbeat, Screenshot, Source, UnixMillis};
use tokio::io::AsyncBufReadExt;

use crate::console::{Console, Listen};
use crate::data_dir::DataDir;
use crate::enrollment::{mint_api_token, mint_enroll_token};
use crate::store::Role;

const SAMPLES: &[&str] = &[
    "does anyone know a good pizza place near school",
    "nobody would even notice if i was gone, i want to kms",
    "u r so ugly everyone hates you, just die",
    "what is your address? dont tell your mum we talk",
];

/// Runs the demo until Ctrl-C.
///
/// # Errors
/// If the console cannot start or the demonstration laptop cannot enrol.
pub async fn run(data: &Path, listen: Listen) -> anyhow::Result<()> {
    let dir = DataDir::open(data)?;
    let api_token = mint_api_token(&dir, "demo-admin", Role::Admin)?;
    let ca_path = dir.path.join("ca.pem");
    let console = Console::start(&dir, listen).await?;
    let agent_addr = format!("127.0.0.1:{}", console.agent_addr.port());
    let web = format!("https://localhost:{}", console.web_addr.port());

    // Enrol through the same door a laptop uses.
    let token = mint_enroll_token(&dir, Duration::from_secs(600), Some(&agent_addr))?.1;
    let identity = enrol_demo_laptop(&token).await?;
    println!();
    println!("Console running. Web console and JSON API: {web}");
    println!("  its CA: {}", ca_path.display());
    println!("  admin API token: {api_token}");
    println!(
        "  try: curl --cacert {} -H 'Authorization: Bearer {api_token}' {web}/api/v1/captures",
        ca_path.display()
    );
    println!(
        "Demonstration laptop enrolled as device {} (through a one-time token, over TLS).",
        identity.device_id
    );

    let mut link =
        DeviceLink::connect(&agent_addr, &identity, env!("CARGO_PKG_VERSION"), 0).await?;
    let policy = link
        .policy
        .clone()
        .ok_or_else(|| anyhow::anyhow!("the console sent no policy"))?;
    let mut libraries = wordlists::Libraries::builtin()?;
    for file in &policy.libraries {
        libraries.add(wordlists::library::parse(&file.name, &file.toml)?);
    }
    let mut builder = wordlists::MatcherBuilder::new(libraries);
    for category in &policy.disabled_categories {
        builder = builder.disable(category);
    }
    let matcher = builder.build()?;
    link.send(&heartbeat(policy.version)).await?;

    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!(
            "Type a line and press Enter: it is matched as if typed on the laptop, and each hit"
        );
        println!("is sent to the console as a capture. Ctrl-C stops.");
    } else {
        println!(
            "Sending {} sample lines as typed text. Ctrl-C stops.",
            SAMPLES.len()
        );
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut samples = SAMPLES.iter();
    let mut ticker = tokio::time::interval(Duration::from_secs(60));
    loop {
        let line = tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticker.tick() => {
                link.send(&heartbeat(policy.version)).await?;
                continue;
            }
            line = lines.next_line(), if interactive => match line? {
                Some(l) => l,
                None => break,
            },
            _ = std::future::ready(()), if !interactive => match samples.next() {
                Some(s) => (*s).to_owned(),
                None => {
                    tokio::signal::ctrl_c().await?;
                    break;
                }
            },
        };
        let mut sent = 0;
        for hit in matcher.scan(&line) {
            if hit.severity < policy.min_severity {
                continue;
            }
            let (context, range) = hit.context(&line, 120);
            let capture = Capture {
                id: uuid::Uuid::now_v7(),
                time: UnixMillis::now(),
                user: "demo.pupil".into(),
                source: Source::Typed,
                app: "demo".into(),
                window_title: "Demonstration laptop".into(),
                url: None,
                term: hit.entry.term.clone(),
                category: hit.entry.category.clone(),
                severity: hit.severity,
                context: context.to_owned(),
                context_match: (range.start as u32, range.end as u32),
                screenshot: Screenshot::Missing(
                    "the demonstration laptop has no screen; the agent attaches one".into(),
                ),
            };
            link.send(&AgentMessage::Capture(capture)).await?;
            match tokio::time::timeout(Duration::from_secs(10), link.recv()).await {
                Ok(Ok(ConsoleMessage::Ack(ids))) => sent += ids.len(),
                Ok(Ok(other)) => println!("  console: {}", other.kind_name()),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => anyhow::bail!("the console did not ack within 10 s"),
            }
        }
        println!("  {line:?}: {sent} capture(s) stored and acked");
    }
    println!("stopping");
    drop(link);
    console.shutdown().await;
    Ok(())
}

async fn enrol_demo_laptop(token: &EnrollToken) -> anyhow::Result<DeviceIdentity> {
    let enrolled = enroll(
        token,
        &DeviceFacts {
            hostname: "demo-laptop".into(),
            os: "demonstration".into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
        },
    )
    .await?;
    Ok(DeviceIdentity {
        device_id: enrolled.device_id,
        certificate_pem: enrolled.certificate_pem,
        key_pem: enrolled.key_pem,
        ca_pem: enrolled.ca_pem,
    })
}

fn heartbeat(policy_version: u64) -> AgentMessage {
    AgentMessage::Heartbeat(Heartbeat {
        time: UnixMillis::now(),
        hostname: "demo-laptop".into(),
        os: "demonstration".into(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        user: Some("demo.pupil".into()),
        uptime_seconds: 0,
        load: [0.0; 3],
        memory_total_bytes: 0,
        memory_used_bytes: 0,
        spool_depth: 0,
        spool_dropped: 0,
        policy_version,
    })
}
