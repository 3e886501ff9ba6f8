//! A full disk, for real: the console's data directory, then the agent's
//! state directory, on a small tmpfs filled to the last byte with ballast.
//!
//! The console: nothing is acked that is not on disk (laptops are told
//! `Busy` and keep their captures), staff see a banner on every page and the
//! health endpoint says why, a SIGKILL while full corrupts nothing, and once
//! the ballast is removed every capture arrives exactly once and the banner
//! goes.
//!
//! The agent: captures made while its disk is full are held by the session
//! helper and spooled when space returns; nothing acked is resent twice, the
//! spool passes an integrity check, and the console hears of the spell.

use std::path::Path;
use std::time::Duration;

use protocol::device_link::{DeviceIdentity, DeviceLink};
use protocol::{AgentMessage, ConsoleMessage, Refusal};
use serde_json::Value;
use tests::agent_process::{AgentProcess, enroll_agent, feed, spool_depth};
use tests::desktop::wait_for;
use tests::small_disk::SmallDisk;
use tests::web_client::Web;
use tests::*;

const DISK: u64 = 48 << 20;
const LEAD_PW: &str = "full disk drill";

fn query<T: rusqlite::types::FromSql>(data: &Path, sql: &str) -> T {
    open_db(data)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

fn captures(data: &Path) -> i64 {
    query(data, "SELECT COUNT(*) FROM captures")
}

/// How many stored captures have `marker` in their context.
fn stored_with(data: &Path, marker: &str) -> i64 {
    open_db(data)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM captures WHERE instr(context, ?1) > 0",
            [marker],
            |r| r.get(0),
        )
        .unwrap()
}

/// Feeds `n` captures, each in its own window, marked `marker-{set}{i}`.
fn feed_marked(state: &Path, set: &str, n: usize) {
    for i in 1..=n {
        feed(
            state,
            "Chat",
            &format!("{set} {i}"),
            &format!("marker-{set}{i}: i want to kill myself"),
        )
        .unwrap();
    }
}

/// True when each of the `n` captures of [`feed_marked`] is stored once.
fn all_stored_once(data: &Path, set: &str, n: usize) -> bool {
    (1..=n).all(|i| stored_with(data, &format!("marker-{set}{i}")) == 1)
}

fn health(api: &Api) -> Value {
    let (status, body) = api.get("/api/v1/health").unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// Sends one capture with a screenshot on a raw link and returns the
/// console's verdict on it: acked, or refused with a reason.
fn offer(
    rt: &tokio::runtime::Runtime,
    link: &mut DeviceLink,
    capture: &protocol::Capture,
) -> Result<(), String> {
    rt.block_on(async {
        link.send(&AgentMessage::Capture(capture.clone()))
            .await
            .map_err(|e| format!("send: {e}"))?;
        loop {
            match tokio::time::timeout(Duration::from_secs(20), link.recv()).await {
                Ok(Ok(ConsoleMessage::Ack(ids))) if ids.contains(&capture.id) => return Ok(()),
                Ok(Ok(ConsoleMessage::Refuse(r))) => return Err(format!("{r:?}")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("recv: {e}")),
                Err(_) => return Err("no answer within 20 s".into()),
            }
        }
    })
}

/// Enrolls `state` with the console and runs the agent on it (no display),
/// with a home directory under `tmp`.
fn start_agent(state: &Path, tmp: &Path, console: &ConsoleProcess) -> AgentProcess {
    enroll_agent(
        state,
        &enroll_token(&console.data, &console.agent_addr, "1h").unwrap(),
    )
    .unwrap();
    let home = tmp.join("home");
    std::fs::create_dir_all(&home).unwrap();
    AgentProcess::start("run", state, None, &home, &[]).unwrap()
}

fn connect(rt: &tokio::runtime::Runtime, addr: &str, device: &DeviceIdentity) -> DeviceLink {
    rt.block_on(DeviceLink::connect(addr, device, "test", 0))
        .unwrap()
}

fn no_temporary_images(data: &Path) -> bool {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, found);
            } else if p.to_string_lossy().ends_with(".tmp") {
                found.push(p.display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(&data.join("images"), &mut found);
    assert!(found.is_empty(), "half-written images left: {found:?}");
    true
}

#[test]
fn the_console_on_a_full_disk_acks_nothing_it_cannot_keep_and_resumes_when_space_returns() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut disk = SmallDisk::mount(&tmp.path().join("console"), DISK).unwrap();
    let data = disk.path().to_owned();
    let mut console = ConsoleProcess::start(&data).unwrap();
    let d = data.to_str().unwrap();
    console_cli(
        &[
            "user", "add", "--data", d, "--name", "lead", "--role", "reviewer",
        ],
        Some(&format!("{LEAD_PW}\n")),
    )
    .unwrap();
    let api = Api::new(
        &data,
        &console.web_addr,
        &api_token(&data, "it", "admin").unwrap(),
    )
    .unwrap();
    let port = console.web_addr.rsplit(':').next().unwrap().to_owned();
    let web = Web::new(&data, &format!("https://localhost:{port}"));
    let (cookie, signed_in) = web.sign_in("lead", LEAD_PW, "");
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);

    // A real agent, and a raw laptop that sends screenshots.
    let state = tmp.path().join("agent");
    let agent = start_agent(&state, tmp.path(), &console);
    let device = identity_from_ca(&data).unwrap();
    let mut raw = connect(&rt, &console.agent_addr, &device);

    feed(
        &state,
        "Chat",
        "before",
        "before the disk filled: i want to kill myself",
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(30), || captures(&data) == 1),
        "the first capture never arrived"
    );
    let body = health(&api);
    assert_eq!(body["ok"], Value::Bool(true), "{body}");
    assert!(body["storage"]["space"]["free_bytes"].as_u64().unwrap() > 20 << 20);
    let devices = web.get("/devices", &cookie);
    assert_eq!(devices.status, 200);
    assert!(
        !devices.body.contains("storage-alert"),
        "a banner with room to spare"
    );

    // Phase 1: the disk fills.
    let ballast = disk.fill().unwrap();
    eprintln!(
        "ballast: {ballast} bytes; {} left",
        disk.free_bytes().unwrap()
    );
    feed_marked(&state, "a", 3);
    let mut shot = capture("marker-raw: i want to kill myself", "kill myself", None);
    shot.screenshot = protocol::Screenshot::Png(fake_png(300, 7));
    let verdict = offer(&rt, &mut raw, &shot);
    assert_eq!(
        verdict,
        Err(format!(
            "{:?}",
            Refusal::Busy {
                retry_after_seconds: 30
            }
        )),
        "a capture the console cannot write must be refused, not acked"
    );
    assert!(
        wait_for(Duration::from_secs(60), || {
            health(&api)["storage"]["failing"]["disk_full"] == Value::Bool(true)
        }),
        "the health endpoint never reported the full disk: {}",
        health(&api)
    );
    let body = health(&api);
    assert_eq!(body["ok"], Value::Bool(false));
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("the disk is full"), "{message}");
    assert!(
        message.contains(d),
        "the message names the data directory: {message}"
    );
    // Staff see it: a banner on the pages that write nothing; a page whose
    // viewing is audited (the inbox) is refused, saying why, since who
    // looked could not be written down.
    let devices = web.get("/devices", &cookie);
    assert_eq!(devices.status, 200, "{}", devices.body);
    assert!(
        devices.body.contains("storage-alert") && devices.body.contains("the disk is full"),
        "no banner on the devices page: {}",
        devices.body
    );
    let inbox = web.get("/inbox", &cookie);
    assert_eq!(inbox.status, 503, "{}", inbox.body);
    assert!(
        inbox
            .body
            .contains("disk is full, so this could not be saved"),
        "{}",
        inbox.body
    );
    // Nothing was stored or acked; the agent still holds its three.
    assert_eq!(captures(&data), 1);
    assert!(spool_depth(&state).unwrap() >= 3);
    assert!(no_temporary_images(&data));
    assert!(
        console
            .log_text()
            .contains("The disk is full: free space on the volume"),
        "the console's log does not say the disk is full:\n{}",
        console.log_text()
    );

    // Space returns: the agent resends on its own (Busy asked for 30 s),
    // the raw laptop resends by hand; the banner goes.
    disk.free().unwrap();
    assert!(
        wait_for(Duration::from_secs(90), || {
            all_stored_once(&data, "a", 3)
        }),
        "the agent's captures did not arrive after space returned; console log:\n{}\nagent log:\n{}",
        console.log_text(),
        agent.log_text()
    );
    let mut raw = connect(&rt, &console.agent_addr, &device);
    assert_eq!(offer(&rt, &mut raw, &shot), Ok(()));
    assert_eq!(stored_with(&data, "marker-raw"), 1);
    let body = health(&api);
    assert_eq!(body["ok"], Value::Bool(true), "{body}");
    let devices = web.get("/devices", &cookie);
    assert!(devices.status == 200 && !devices.body.contains("storage-alert"));
    assert_eq!(web.get("/inbox", &cookie).status, 200);
    assert!(wait_for(Duration::from_secs(30), || spool_depth(&state)
        .unwrap()
        == 0));
    assert!(console.log_text().contains("storing records works again"));

    // Phase 2: full again, and the console is killed while refusing.
    disk.fill().unwrap();
    feed_marked(&state, "b", 2);
    assert!(
        wait_for(Duration::from_secs(60), || {
            health(&api)["storage"]["failing"].is_object()
        }),
        "the second spell was not reported"
    );
    let (agent_addr, web_addr) = (console.agent_addr.clone(), console.web_addr.clone());
    console.kill();
    disk.free().unwrap();
    let console = ConsoleProcess::start_on(&data, &agent_addr, &web_addr).unwrap();
    assert!(
        wait_for(Duration::from_secs(90), || {
            all_stored_once(&data, "b", 2)
        }),
        "the captures made while full did not arrive after the restart; console log:\n{}\nagent log:\n{}",
        console.log_text(),
        agent.log_text()
    );

    // Every capture exactly once, and a sound database.
    let integrity: String = query(&data, "PRAGMA integrity_check");
    assert_eq!(integrity, "ok");
    for marker in [
        "before the disk",
        "marker-a1",
        "marker-a2",
        "marker-a3",
        "marker-raw",
        "marker-b1",
        "marker-b2",
    ] {
        assert_eq!(stored_with(&data, marker), 1, "{marker}");
    }
    assert_eq!(captures(&data), 7);
    assert_eq!(
        query::<i64>(
            &data,
            "SELECT COUNT(*) FROM captures WHERE image IS NOT NULL"
        ),
        1
    );
    assert!(no_temporary_images(&data));
    drop(raw);
}

#[test]
fn the_agent_on_a_full_disk_holds_its_captures_and_spools_them_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("console");
    let console = ConsoleProcess::start(&data).unwrap();
    let mut disk = SmallDisk::mount(&tmp.path().join("agent"), DISK).unwrap();
    let state = disk.path().to_owned();
    let agent = start_agent(&state, tmp.path(), &console);

    feed(
        &state,
        "Chat",
        "before",
        "before the disk filled: i want to kill myself",
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(30), || captures(&data) == 1));
    assert!(wait_for(Duration::from_secs(30), || spool_depth(&state)
        .unwrap()
        == 0));

    disk.fill().unwrap();
    feed_marked(&state, "a", 3);
    agent
        .wait_log("cannot write the spool", Duration::from_secs(30))
        .unwrap();
    agent
        .wait_log("they are kept in memory", Duration::from_secs(30))
        .unwrap();
    // Nothing reached the console meanwhile (it was never spooled).
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(captures(&data), 1);

    disk.free().unwrap();
    assert!(
        wait_for(Duration::from_secs(60), || {
            all_stored_once(&data, "a", 3)
        }),
        "the held captures did not arrive after space returned; agent log:\n{}",
        agent.log_text()
    );
    agent
        .wait_log("the spool can be written again", Duration::from_secs(10))
        .unwrap();
    // The console hears of the spell.
    assert!(
        wait_for(Duration::from_secs(30), || query::<i64>(
            &data,
            "SELECT COUNT(*) FROM tamper_events WHERE detail LIKE '%could not write its spool%'"
        ) == 1),
        "no tamper event about the full spool"
    );
    assert!(wait_for(Duration::from_secs(30), || spool_depth(&state)
        .unwrap()
        == 0));
    assert_eq!(stored_with(&data, "before the disk"), 1);
    assert_eq!(captures(&data), 4);

    // The spool is sound.
    drop(agent);
    let spool = rusqlite::Connection::open(state.join("private").join("spool.db")).unwrap();
    let integrity: String = spool
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}
