//! A bad network between the real agent and the real console: a proxy that
//! refuses, delays, cuts, truncates frames mid-way and swallows the
//! console's acks while the connection stays open. Every capture the agent
//! made must reach the console exactly once, and a link that keeps failing
//! must not make the agent knock more than its backoff allows.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use tests::agent_process::{AgentProcess, enroll_agent, feed, spool_depth, status};
use tests::desktop::wait_for;
use tests::fault_proxy::{Fault, FaultProxy};
use tests::*;

/// The window titles of the stored captures, sorted.
fn stored_titles(data: &Path) -> anyhow::Result<Vec<String>> {
    let db = open_db(data)?;
    let mut stmt = db.prepare("SELECT window_title FROM captures ORDER BY window_title")?;
    let titles = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(titles)
}

#[test]
fn through_a_bad_network_every_capture_arrives_once_and_reconnects_stay_bounded()
-> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("console");
    let console = ConsoleProcess::start(&data)?;
    let proxy = FaultProxy::start(&console.agent_addr, Box::new(|_| Fault::Pass))?;
    let state = tmp.path().join("agent-state");
    enroll_agent(&state, &enroll_token(&data, &proxy.addr.to_string(), "1h")?)?;
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home)?;
    let agent = AgentProcess::start("run", &state, None, &home, &[])?;
    agent.wait_log("connected to the console", Duration::from_secs(30))?;

    // Phase 1: every kind of fault, in turn, while captures are made.
    let faults = [
        Fault::TruncateUp(300),
        Fault::Delay(Duration::from_millis(150)),
        Fault::TruncateUp(4000),
        Fault::CutAfter(Duration::from_millis(1500)),
        Fault::Refuse,
        Fault::TruncateUp(7000),
        Fault::SilenceDownAfter(Duration::from_secs(2)),
        Fault::Delay(Duration::from_millis(40)),
        Fault::TruncateUp(2500),
        Fault::CutAfter(Duration::from_secs(4)),
    ];
    let phase1 = Instant::now();
    proxy.set_schedule(Box::new(move |n| faults[n % faults.len()]));
    proxy.cut_all();
    // Captures keep coming (so there is always something in flight when a
    // fault strikes) until every fault has had its turn.
    let mut want = Vec::new();
    let mut i = 0;
    while proxy.opened_since(phase1) < faults.len() + 1 {
        ensure!(
            phase1.elapsed() < Duration::from_secs(300),
            "the agent opened only {} connections through the faults in 300 s; its log:\n{}",
            proxy.opened_since(phase1),
            agent.log_text()
        );
        let title = format!("net {i:03}");
        feed(&state, "Chat", &title, "i want to kill myself")?;
        want.push(title);
        i += 1;
        std::thread::sleep(Duration::from_millis(1000));
        // Now and then the line drops, but not while the acks are being
        // swallowed: the agent must notice that on its own.
        let blackholed = matches!(proxy.opened().last(), Some((_, Fault::SilenceDownAfter(_))));
        if i % 8 == 0 && !blackholed {
            proxy.cut_all();
        }
    }
    proxy.set_schedule(Box::new(|_| Fault::Pass));
    let mut got = Vec::new();
    ensure!(
        wait_for(Duration::from_secs(180), || {
            got = stored_titles(&data).unwrap_or_default();
            got.len() >= want.len() && spool_depth(&state).ok() == Some(0)
        }),
        "after the network was mended: {} of {} captures stored, status:\n{}\nagent log:\n{}",
        got.len(),
        want.len(),
        status(&state).unwrap_or_default(),
        agent.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stored_titles(&data)?, want, "every capture exactly once");
    let log = agent.log_text();
    assert!(
        log.contains("has acknowledged nothing for 60 s"),
        "the agent never noticed the acks were swallowed; its log:\n{log}"
    );
    eprintln!(
        "phase 1: {} connections through the faults in {:?}",
        proxy.opened_since(phase1),
        phase1.elapsed()
    );

    // Phase 2: a link that refuses, or opens and is cut at once, for 60 s,
    // with nothing to send. The agent's backoff bounds how often it knocks.
    proxy.set_schedule(Box::new(|n| {
        if n % 2 == 0 {
            Fault::Refuse
        } else {
            Fault::CutAfter(Duration::from_millis(300))
        }
    }));
    let phase2 = Instant::now();
    proxy.cut_all();
    std::thread::sleep(Duration::from_secs(60));
    let knocks: Vec<Duration> = proxy
        .opened()
        .iter()
        .filter(|(t, _)| *t >= phase2)
        .map(|(t, _)| t.duration_since(phase2))
        .collect();
    eprintln!(
        "phase 2: {} connections in 60 s, at {knocks:.1?}",
        knocks.len()
    );
    // 1, 2, 4, 8, 16, 32 s steps, each at least half its step: at most 8
    // attempts fit in 60 s.
    assert!(
        (3..=8).contains(&knocks.len()),
        "the agent knocked {} times in 60 s on a failing link (at {knocks:.1?}); its backoff should allow 3 to 8",
        knocks.len()
    );

    // Phase 3: the network mends; a new capture still arrives, once.
    proxy.set_schedule(Box::new(|_| Fault::Pass));
    feed(&state, "Chat", "net after", "i want to kill myself")?;
    want.push("net after".into());
    want.sort();
    ensure!(
        wait_for(Duration::from_secs(120), || stored_titles(&data)
            .is_ok_and(|t| t.len() >= want.len())),
        "the capture made after the outage never arrived; agent log:\n{}",
        agent.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(stored_titles(&data)?, want, "every capture exactly once");
    Ok(())
}
