//! Monitoring a pupil cannot switch off (issue 21). The service runs as
//! root and starts the session helper itself; the pupil is a real
//! unprivileged account the test creates, with a terminal of its own on a
//! real X server. The pupil signals every process it may, starts its own
//! helper, forges records and floods the socket; a helper that is killed
//! or hung is restarted and the gap reaches `GET /api/v1/tamper`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::Value;
use tests::agent_process::{AgentProcess, EnrolledBed};
use tests::desktop::{XDesktop, ZENITY_MESSAGES, wait_for};
use tests::pupil::Pupil;

/// The terms of the pupil's captures in the console, oldest first.
fn captured_terms(bed: &EnrolledBed, user: &str) -> Vec<String> {
    let Ok(db) = tests::open_db(&bed.console.data) else {
        return Vec::new();
    };
    let Ok(mut stmt) = db.prepare("SELECT term FROM captures WHERE user = ?1 ORDER BY time") else {
        return Vec::new();
    };
    stmt.query_map([user], |r| r.get(0))
        .map(|rows| rows.flatten().collect())
        .unwrap_or_default()
}

/// Tamper events as scripts read them: (kind, user, detail), newest first.
fn tamper_events(bed: &EnrolledBed) -> Vec<(String, String, String)> {
    let Ok((200, body)) = bed.api.get("/api/v1/tamper") else {
        return Vec::new();
    };
    body["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|e| {
                    let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
                    (s("kind"), s("user"), s("detail"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The pid of the newest helper the service started for `user`, from its log.
fn helper_pid(service: &AgentProcess, user: &str) -> Option<u32> {
    service
        .log_text()
        .lines()
        .rev()
        .filter(|l| l.contains("started session helper") && l.contains(&format!("for {user} on")))
        .filter_map(|l| {
            l.split("started session helper ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .next()
}

/// A process's state letter (`S`, `R`, `T` when stopped…), if it runs.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Types a line into the pupil's terminal and waits until the console has
/// one more capture of the pupil's.
fn typed_and_captured(
    x: &XDesktop,
    bed: &EnrolledBed,
    pupil: &Pupil,
    line: &str,
    service: &AgentProcess,
) -> anyhow::Result<()> {
    let before = captured_terms(bed, &pupil.name).len();
    x.type_text(line)?;
    x.keys(&["Return"])?;
    ensure!(
        wait_for(Duration::from_secs(30), || captured_terms(bed, &pupil.name)
            .len()
            > before),
        "typing {line:?} made no capture of {} within 30 s; service log:\n{}",
        pupil.name,
        service.log_text()
    );
    Ok(())
}

#[test]
fn the_pupil_cannot_stop_blind_impersonate_or_flood_the_monitor_and_gaps_are_reported()
-> anyhow::Result<()> {
    let x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let pupil = Pupil::create(bed.tmp.path())?;
    let service = AgentProcess::start(
        "service",
        &bed.state,
        None,
        &bed.home,
        &["--displays", &x.display],
    )?;

    // The pupil's desktop: a terminal of theirs, in front.
    let mut terminal = pupil.terminal(&x.display, "pupil-term", &[])?;
    let window = x.window("pupil-term")?;

    // The service finds the session and starts a helper for it (the
    // pupil ran nothing of the agent's).
    service.wait_log(
        &format!("for {} on {}", pupil.name, x.display),
        Duration::from_secs(30),
    )?;
    service.wait_log("watching the X display", Duration::from_secs(30))?;
    service.answer_aup(&x, 1, true)?;
    let helper = helper_pid(&service, &pupil.name).context("no helper pid in the log")?;
    x.xdotool(&["windowactivate", "--sync", &window])?;
    typed_and_captured(&x, &bed, &pupil, "i want to kill myself", &service)?;
    // What the technician sees on the laptop.
    let status = tests::agent_process::status(&bed.state)?;
    println!("agent status:\n{status}");
    ensure!(
        status.contains(&format!(
            "session: {} on {}: monitored (helper {helper}, started by the service",
            pupil.name, x.display
        )) && status.contains("it starts and supervises the session helpers"),
        "agent status does not show the pupil's session monitored:\n{status}"
    );

    // What the safeguarding lead sees in the console.
    let mut seen = Value::Null;
    let shown = wait_for(Duration::from_secs(20), || {
        let Ok((200, body)) = bed.api.get("/api/v1/devices") else {
            return false;
        };
        seen = body["devices"][0]["health"].clone();
        seen["sessions"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["user"] == pupil.name.as_str()
                    && s["display"] == x.display.as_str()
                    && s["monitored"] == true
                    && s["supervised"] == true
            })
        })
    });
    ensure!(
        shown && seen["supervising"] == true,
        "the console does not show the pupil's session monitored: {seen}"
    );

    // 1. Every signal the pupil may send, to every process it may send it
    //    to, except its own terminal and the shell doing it.
    let keep = terminal.id();
    let script = r#"
        for sig in STOP TERM KILL; do
          for d in /proc/[0-9]*; do
            p=${d#/proc/}
            [ "$p" = "$$" ] && continue
            [ "$p" = "$KEEP" ] && continue
            ppid=$(cut -d' ' -f4 "$d/stat" 2>/dev/null)
            [ "$ppid" = "$KEEP" ] && continue
            if kill -s "$sig" "$p" 2>/dev/null; then echo "sent $sig $p"; else echo "denied $sig $p"; fi
          done
        done
        true
    "#;
    let out = pupil
        .command("sh", Some(&x.display))
        .env("KEEP", keep.to_string())
        .args(["-c", script])
        .output()?;
    let signalled = String::from_utf8_lossy(&out.stdout).into_owned();
    let sent: Vec<&str> = signalled
        .lines()
        .filter(|l| l.starts_with("sent"))
        .collect();
    println!(
        "the pupil tried {} signals; the kernel let these through: {sent:?}",
        signalled.lines().count()
    );
    for sig in ["STOP", "TERM", "KILL"] {
        ensure!(
            signalled
                .lines()
                .any(|l| l == format!("denied {sig} {helper}")),
            "the pupil's SIG{sig} to the helper {helper} was not tried or not denied:\n{signalled}"
        );
    }
    ensure!(
        !sent.iter().any(|l| l.ends_with(&format!(" {helper}"))),
        "the pupil could signal the helper {helper}: {sent:?}"
    );
    ensure!(
        process_state(helper).is_some_and(|s| s != 'T' && s != 'Z'),
        "the helper {helper} is no longer running after the pupil's signals (state {:?})",
        process_state(helper)
    );
    ensure!(
        helper_pid(&service, &pupil.name) == Some(helper),
        "the helper was restarted: the pupil reached it"
    );
    x.xdotool(&["windowactivate", "--sync", &window])?;
    typed_and_captured(&x, &bed, &pupil, "i will cut myself tonight", &service)?;

    // 2. The pupil's own helper (what the autostart entry runs) is told the
    //    service watches this session, and stops.
    let agent = tests::workspace_binary("agent")?;
    let state = bed.state.to_str().context("UTF-8 path")?;
    let started = Instant::now();
    let out = pupil
        .command(&agent, Some(&x.display))
        .args(["session", "--state-dir", state])
        .env("AGENT_LOG", "info")
        .output()?;
    let said = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && said.contains("with a helper of its own"),
        "the pupil's own helper: {:?} after {:?}: {said}",
        out.status,
        started.elapsed()
    );

    // 3. The pupil's program on the socket: too many connections, a forged
    //    capture and AUP acceptances (the pupils' and a year's), a flood
    //    of fed text.
    let out = pupil
        .command(env!("CARGO_BIN_EXE_socket-forger"), Some(&x.display))
        .arg(bed.state.join("agent.sock"))
        .output()?;
    ensure!(
        out.status.success(),
        "socket-forger failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout)?;
    println!("socket-forger: {report}");
    ensure!(report["refused_at_once"] == 8, "{report}");
    ensure!(report["closed_by_deadline"] == 32, "{report}");
    ensure!(
        report["forge_answers"] == serde_json::json!(["Supervised"]),
        "{report}"
    );
    ensure!(
        report["feed_limited"].as_u64() >= Some(30) && report["feed_handed"].as_u64() >= Some(20),
        "{report}"
    );
    ensure!(
        !captured_terms(&bed, &pupil.name)
            .iter()
            .any(|t| t == "FORGED"),
        "a forged capture was stored"
    );
    let db = tests::open_db(&bed.console.data)?;
    let forged_aup: i64 = db.query_row(
        "SELECT COUNT(*) FROM aup_decisions WHERE user = 'FORGED' OR audience = 'year:FORGED'",
        [],
        |r| r.get(0),
    )?;
    ensure!(forged_aup == 0, "a forged AUP decision was stored");
    x.xdotool(&["windowactivate", "--sync", &window])?;
    typed_and_captured(&x, &bed, &pupil, "send me nudes", &service)?;

    // 4. The helper killed (a crash; only root can): restarted at once, and
    //    the gap reported within 60 s.
    let killed_at = Instant::now();
    std::process::Command::new("kill")
        .args(["-KILL", &helper.to_string()])
        .status()?;
    ensure!(
        wait_for(Duration::from_secs(15), || helper_pid(
            &service,
            &pupil.name
        )
        .is_some_and(|p| p != helper)),
        "no new helper within 15 s of the kill; service log:\n{}",
        service.log_text()
    );
    ensure!(
        wait_for(Duration::from_secs(60), || {
            tamper_events(&bed)
                .iter()
                .any(|(k, _, d)| k == "MonitorRestarted" && d.contains("SIGKILL"))
        }),
        "no MonitorRestarted event within 60 s: {:?}\nservice log:\n{}",
        tamper_events(&bed),
        service.log_text()
    );
    println!("kill reported {:?} after it", killed_at.elapsed());
    let second = helper_pid(&service, &pupil.name).context("no second helper")?;
    // A new helper shows the AUP again (it keeps no memory of the last).
    service.answer_aup(&x, 2, true)?;

    // 5. The helper paused (hung): killed, restarted and reported.
    std::process::Command::new("kill")
        .args(["-STOP", &second.to_string()])
        .status()?;
    let paused_at = Instant::now();
    ensure!(
        wait_for(Duration::from_secs(60), || tamper_events(&bed).iter().any(
            |(k, _, d)| k == "MonitorRestarted" && d.contains("stopped answering")
        )),
        "no report of the hung helper within 60 s: {:?}\nservice log:\n{}",
        tamper_events(&bed),
        service.log_text()
    );
    println!("hang reported {:?} after the pause", paused_at.elapsed());
    // The report may be written before the new helper has started.
    ensure!(
        wait_for(Duration::from_secs(15), || helper_pid(
            &service,
            &pupil.name
        )
        .is_some_and(|p| p != second)),
        "the hung helper was not replaced within 15 s of the report; service log:\n{}",
        service.log_text()
    );
    let events = tamper_events(&bed);
    ensure!(
        events.iter().all(|(_, u, _)| u == &pupil.name),
        "{events:?}"
    );
    // The new helper watches the session again.
    service.wait_log_count("watching the X display", 3, Duration::from_secs(30))?;
    service.answer_aup(&x, 3, true)?;
    x.xdotool(&["windowactivate", "--sync", &window])?;
    typed_and_captured(&x, &bed, &pupil, "i want to die", &service)?;

    // 6. The pupil logs out (their programs end): the helper is stopped,
    //    and that is no tampering.
    let before = tamper_events(&bed).len();
    terminal.close();
    service.wait_log(
        &format!("{} has left {}", pupil.name, x.display),
        Duration::from_secs(30),
    )?;
    std::thread::sleep(Duration::from_secs(5));
    let after = tamper_events(&bed);
    ensure!(
        after.len() == before,
        "a logout was reported as tampering: {after:?}"
    );
    Ok(())
}

/// The typed captures in the console: (term, window title).
fn typed_captures(bed: &EnrolledBed) -> Vec<(String, String)> {
    let Ok((200, body)) = bed.api.get("/api/v1/captures?status=all") else {
        return Vec::new();
    };
    body["captures"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["source"] == "typed")
                .map(|c| {
                    (
                        c["term"].as_str().unwrap_or("").to_owned(),
                        c["window_title"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The agent knows its own windows by id: a window that only claims the
/// agent's window class is matched like any other, and an open concern
/// window pauses matching of nothing but itself.
#[test]
fn a_window_posing_as_the_agents_and_an_open_concern_window_hide_no_typing() -> anyhow::Result<()> {
    let mut x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let agent = AgentProcess::start("run", &bed.state, Some(&x.display), &bed.home, &[])?;
    agent.answer_aup(&x, 1, true)?;

    // 1. A terminal with the agent's window class.
    let mut fake = std::process::Command::new("xterm")
        .args(["-class", "Safeguard-agent", "-T", "posing", "-e", "cat"])
        .env("DISPLAY", &x.display)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let posing = x.window("posing")?;
    x.xdotool(&["windowactivate", "--sync", &posing])?;
    x.type_text("i want to kill myself")?;
    x.keys(&["Return"])?;
    ensure!(
        wait_for(Duration::from_secs(30), || typed_captures(&bed)
            .iter()
            .any(|(_, w)| w == "posing")),
        "typing in a window with the agent's class was not captured: {:?}\n{}",
        typed_captures(&bed),
        agent.log_text()
    );
    let _ = fake.kill();
    let _ = fake.wait();

    // 2. The concern window opened and left open; the pupil types
    //    elsewhere: matched. Typing into the concern window is not.
    x.xterm("elsewhere")?;
    x.keys(&["ctrl+alt+r"])?;
    let concern = x.window("Report a concern")?;
    x.xdotool(&["windowactivate", "--sync", &concern])?;
    x.type_text("he said go kill yourself")?;
    let elsewhere = x.window("elsewhere")?;
    x.xdotool(&["windowactivate", "--sync", &elsewhere])?;
    x.type_text("i am going to cut myself")?;
    x.keys(&["Return"])?;
    ensure!(
        wait_for(Duration::from_secs(30), || typed_captures(&bed)
            .iter()
            .any(|(_, w)| w == "elsewhere")),
        "typing elsewhere while the concern window was open was not captured: {:?}\n{}",
        typed_captures(&bed),
        agent.log_text()
    );
    ensure!(
        x.xdotool(&["search", "--onlyvisible", "--name", "^Report a concern$"])
            .is_ok_and(|found| found.lines().next().is_some()),
        "the concern window should still be open"
    );
    let in_concern: Vec<(String, String)> = typed_captures(&bed)
        .into_iter()
        .filter(|(_, w)| w.contains("Report a concern"))
        .collect();
    ensure!(
        in_concern.is_empty(),
        "words written in the concern window were captured as typing: {in_concern:?}"
    );
    Ok(())
}

/// A helper the service runs as root reads other applications' text
/// through a reader process of the pupil's own (the pupil's session bus
/// takes no one else); the pupil can kill that reader, which is reported
/// and started again.
#[test]
fn other_applications_text_is_read_in_a_supervised_session_and_a_killed_reader_is_reported()
-> anyhow::Result<()> {
    tests::desktop::require("zenity", "zenity")?;
    tests::desktop::require("pkill", "procps")?;
    let x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let pupil = Pupil::create(bed.tmp.path())?;
    let bus = tests::session_bus::SessionBus::start_as(&x.display, &pupil)?;
    let service = AgentProcess::start(
        "service",
        &bed.state,
        None,
        &bed.home,
        &["--displays", &x.display],
    )?;
    // The pupil's session: a terminal that names its session bus.
    let _terminal = pupil.terminal(
        &x.display,
        "pupil-term",
        &[("DBUS_SESSION_BUS_ADDRESS", &bus.address)],
    )?;
    service.wait_log("watching the X display", Duration::from_secs(30))?;
    service.answer_aup(&x, 1, true)?;
    service
        .wait_log(
            "reading on-screen text through the accessibility bus",
            Duration::from_secs(30),
        )
        .context("the pupil's reader never reached the accessibility bus")?;

    let file = pupil.home.join("message.txt");
    std::fs::write(
        &file,
        "Messages from Alex\n\nAlex: its our secret ok, delete this chat after you read it\n",
    )?;
    let mut zenity = pupil
        .command("zenity", Some(&x.display))
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .args(ZENITY_MESSAGES)
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let screen_text = |bed: &EnrolledBed| -> Vec<Value> {
        let Ok((200, body)) = bed.api.get("/api/v1/captures?source=screen_text&limit=100") else {
            return Vec::new();
        };
        body["captures"].as_array().cloned().unwrap_or_default()
    };
    ensure!(
        wait_for(Duration::from_secs(30), || screen_text(&bed).iter().any(
            |c| c["term"] == "its our secret" && c["user"] == pupil.name.as_str()
        )),
        "no screen_text capture of the pupil's zenity window within 30 s: {:?}\nservice log:\n{}",
        screen_text(&bed),
        service.log_text()
    );

    // The pupil kills its reader: reported within 60 s and started again.
    let out = pupil
        .command("pkill", None)
        .args(["-KILL", "-f", "agent screen-reader"])
        .output()?;
    ensure!(out.status.success(), "the pupil found no reader to kill");
    ensure!(
        wait_for(Duration::from_secs(60), || tamper_events(&bed).iter().any(
            |(k, u, d)| k == "SourceUnavailable" && u == &pupil.name && d.contains("signal 9")
        )),
        "the killed reader was not reported: {:?}\nservice log:\n{}",
        tamper_events(&bed),
        service.log_text()
    );
    service.wait_log_count(
        "reading on-screen text through the accessibility bus",
        2,
        Duration::from_secs(30),
    )?;

    // The pupil pauses its reader instead: found silent, reported, replaced.
    let paused_at = Instant::now();
    let out = pupil
        .command("pkill", None)
        .args(["-STOP", "-f", "agent screen-reader"])
        .output()?;
    ensure!(out.status.success(), "the pupil found no reader to pause");
    ensure!(
        wait_for(Duration::from_secs(60), || tamper_events(&bed).iter().any(
            |(k, u, d)| k == "SourceUnavailable"
                && u == &pupil.name
                && d.contains("stopped answering")
        )),
        "the paused reader was not reported within 60 s: {:?}\nservice log:\n{}",
        tamper_events(&bed),
        service.log_text()
    );
    println!(
        "paused reader reported {:?} after the pause",
        paused_at.elapsed()
    );
    service.wait_log_count(
        "reading on-screen text through the accessibility bus",
        3,
        Duration::from_secs(30),
    )?;
    let _ = zenity.kill();
    let _ = zenity.wait();

    // Stopped in good order (the laptop shutting down): its last word is
    // that it watches no session, so the console does not take the
    // silence that follows for a pupil cutting it off.
    let sessions = || -> Option<usize> {
        let (_, body) = bed.api.get("/api/v1/devices").ok()?;
        Some(body["devices"][0]["health"]["sessions"].as_array()?.len())
    };
    ensure!(
        sessions() == Some(1),
        "the console should know of the pupil's session: {:?}",
        sessions()
    );
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &service.pid().to_string()])
        .status()?;
    ensure!(stopped.success(), "could not send SIGTERM to the service");
    ensure!(
        wait_for(Duration::from_secs(20), || sessions() == Some(0)),
        "the service stopped without telling the console it watches nothing now: {:?}\nservice log:\n{}",
        sessions(),
        service.log_text()
    );
    Ok(())
}
