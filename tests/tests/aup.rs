//! The Acceptable Use Policy at login and a pupil's concern report, end to
//! end: the real agent on a real X server (Xvfb + openbox), real keys
//! (xdotool), a real console; for the concern, a real Chromium in front.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;
use tests::agent_process::{AgentProcess, EnrolledBed, HELD};
use tests::desktop::{XDesktop, require, wait_for};
use tests::headful_chromium::{Chromium, sites};

const WAIT: Duration = Duration::from_secs(60);

/// (version, decision) of every AUP answer the console holds, oldest first.
fn decisions(bed: &EnrolledBed) -> anyhow::Result<Vec<(u64, String)>> {
    let (status, body) = bed.api.get("/api/v1/aup/decisions")?;
    ensure!(status == 200, "decisions: {status} {body}");
    let mut out: Vec<(u64, String)> = body["decisions"]
        .as_array()
        .context("decisions")?
        .iter()
        .map(|d| {
            (
                d["version"].as_u64().unwrap_or(0),
                d["decision"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    out.reverse();
    Ok(out)
}

fn wait_decisions(bed: &EnrolledBed, want: &[(u64, &str)]) -> anyhow::Result<()> {
    let mut last = Vec::new();
    let ok = wait_for(WAIT, || {
        last = decisions(bed).unwrap_or_default();
        last.len() == want.len()
            && last
                .iter()
                .zip(want)
                .all(|((v, d), (wv, wd))| v == wv && d == wd)
    });
    ensure!(ok, "the console's AUP log is {last:?}, not {want:?}");
    Ok(())
}

fn aup_window(x: &XDesktop) -> Option<String> {
    x.xdotool(&[
        "search",
        "--onlyvisible",
        "--name",
        "^Acceptable Use Policy$",
    ])
    .ok()?
    .lines()
    .next()
    .map(str::to_owned)
}

fn start_agent(bed: &EnrolledBed, x: &XDesktop, logged_out: &Path) -> anyhow::Result<AgentProcess> {
    let decline = format!("echo declined >> '{}'", logged_out.display());
    AgentProcess::start(
        "run",
        &bed.state,
        Some(&x.display),
        &bed.home,
        &["--decline-command", &decline],
    )
}

#[test]
fn the_aup_holds_the_desktop_until_answered_and_returns_when_killed_declined_or_changed()
-> anyhow::Result<()> {
    require("xterm", "xterm")?;
    let mut x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let typed = bed.home.join("typed.txt");
    let logged_out = bed.home.join("logged-out");
    // An xterm that keeps whatever reaches it.
    x.spawn(
        "xterm",
        &[
            "-T",
            "Notes",
            "-geometry",
            "80x24+0+0",
            "-e",
            "sh",
            "-c",
            &format!("cat > '{}'", typed.display()),
        ],
        &bed.home,
    )?;
    let notes = x
        .xdotool(&["search", "--sync", "--onlyvisible", "--name", "^Notes$"])?
        .lines()
        .next()
        .context("no xterm")?
        .to_owned();
    x.xdotool(&["windowactivate", "--sync", &notes])?;

    // Login: the policy covers the whole screen and holds the keyboard.
    let agent = start_agent(&bed, &x, &logged_out)?;
    agent.wait_log(HELD, WAIT)?;
    let aup = aup_window(&x).context("no visible AUP window")?;
    let geometry = x.xdotool(&["getwindowgeometry", &aup])?;
    ensure!(
        geometry.contains("Position: 0,0")
            && geometry.contains(&format!("Geometry: {}x{}", x.width, x.height)),
        "the AUP window is not full screen: {geometry}"
    );
    // Keys and clicks meant for the xterm do not reach it.
    x.xdotool(&["mousemove", "--sync", "200", "150", "click", "1"])?;
    x.type_text("typed before accepting")?;
    x.keys(&["Return"])?;

    // Killed, it comes straight back.
    x.xdotool(&["windowkill", &aup])?;
    agent.wait_log("closed without a decision", WAIT)?;
    agent.answer_aup(&x, 2, true)?;
    ensure!(
        wait_for(Duration::from_secs(10), || aup_window(&x).is_none()),
        "the AUP window stayed after Alt+A"
    );
    wait_decisions(&bed, &[(1, "accept")])?;

    // Now the xterm gets what is typed, and never got the earlier line.
    x.xdotool(&["windowactivate", "--sync", &notes])?;
    x.type_text("typed after accepting")?;
    x.keys(&["Return"])?;
    let read = || std::fs::read_to_string(&typed).unwrap_or_default();
    ensure!(
        wait_for(Duration::from_secs(20), || read()
            .contains("typed after accepting")),
        "the xterm never got the line typed after accepting: {:?}",
        read()
    );
    ensure!(
        !read().contains("before"),
        "keys typed before accepting reached the xterm: {:?}",
        read()
    );

    // The next login: Alt+D declines and the logout command runs.
    drop(agent);
    let agent = start_agent(&bed, &x, &logged_out)?;
    agent.answer_aup(&x, 1, false)?;
    ensure!(
        wait_for(Duration::from_secs(20), || logged_out.exists()),
        "the logout command did not run after Alt+D"
    );
    wait_decisions(&bed, &[(1, "accept"), (1, "decline")])?;
    // The command here logs nobody out, so the policy is asked again.
    agent.answer_aup(&x, 2, true)?;
    wait_decisions(&bed, &[(1, "accept"), (1, "decline"), (1, "accept")])?;

    // The school publishes version 2: every laptop shows it at once.
    let (status, mut policy) = bed.api.get("/api/v1/policy")?;
    ensure!(status == 200, "policy: {status} {policy}");
    for a in policy["aup"].as_array_mut().context("aup")? {
        if a["audience"] == "Pupils" {
            a["version"] = Value::from(2);
            a["markdown"] = Value::from("# New rules\n\n- Phones stay in bags.\n");
        }
    }
    let (status, body) = bed.api.send("PUT", "/api/v1/policy", &policy)?;
    ensure!(status == 200, "publishing: {status} {body}");
    agent.answer_aup(&x, 3, true)?;
    agent.wait_log("chose Accept for AUP version 2", WAIT)?;
    wait_decisions(
        &bed,
        &[(1, "accept"), (1, "decline"), (1, "accept"), (2, "accept")],
    )?;
    Ok(())
}

/// A year group's own AUP (issue 24): the school publishes one for Year 7
/// on the AUP page; the laptop's pupil, in Year 7 by the MIS import, is
/// shown it at login in place of the pupils' AUP, and the answer is kept
/// against the year's AUP; withdrawn, the pupils' AUP is shown again.
#[test]
fn a_year_groups_own_aup_is_shown_to_its_pupil_and_answered_against_it() -> anyhow::Result<()> {
    let x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let logged_out = bed.home.join("logged-out");
    let data = bed.console.data.to_str().context("data")?.to_owned();
    let out = std::process::Command::new("id").arg("-un").output()?;
    let me = String::from_utf8(out.stdout)?.trim().to_owned();
    let mis = bed.tmp.path().join("mis.csv");
    std::fs::write(
        &mis,
        format!("account,name,year group,role\n{me},Test Pupil,Year 7,pupil\n"),
    )?;
    tests::console_cli(
        &[
            "register",
            "import",
            "--data",
            &data,
            mis.to_str().context("mis")?,
        ],
        None,
    )?;
    tests::console_cli(
        &[
            "user", "add", "--data", &data, "--name", "it", "--role", "admin",
        ],
        Some("the admin's long pass phrase\n"),
    )?;
    let port = bed.console.web_addr.rsplit(':').next().context("port")?;
    let web = tests::web_client::Web::new(&bed.console.data, &format!("https://localhost:{port}"));
    let (admin, _) = web.sign_in("it", "the admin's long pass phrase", "");
    let page = web.get("/aup", &admin);
    ensure!(page.status == 200, "the AUP page: {}", page.status);
    let at = page.body.find("name=\"csrf\" content=\"").context("csrf")? + 21;
    let csrf = page.body[at..]
        .split('"')
        .next()
        .context("csrf")?
        .to_owned();
    let r = web.post(
        "/aup/publish",
        &admin,
        &[
            ("csrf", &csrf),
            ("audience", "year:Year 7"),
            (
                "markdown",
                "# Year 7 rules\n\n- Ask a teacher before you download anything.\n",
            ),
        ],
    );
    ensure!(
        r.status == 303,
        "publishing Year 7's AUP: {} {}",
        r.status,
        r.body
    );

    // Login: the year's own AUP is shown and answered.
    let agent = start_agent(&bed, &x, &logged_out)?;
    agent.wait_log("showing the AUP (version 1 for year:Year 7)", WAIT)?;
    let shown_at = agent
        .log_text()
        .rfind("showing the AUP (version 1 for year:Year 7)");
    ensure!(
        wait_for(WAIT, || shown_at
            .is_some_and(|i| agent.log_text()[i..].contains(HELD))),
        "the year's AUP window never held the desktop"
    );
    x.keys(&["alt+a"])?;
    agent.wait_log("chose Accept for AUP version 1 (year:Year 7)", WAIT)?;
    let mut rows = Vec::new();
    ensure!(
        wait_for(WAIT, || {
            rows = bed
                .api
                .get("/api/v1/aup/decisions")
                .ok()
                .and_then(|(_, b)| b["decisions"].as_array().cloned())
                .unwrap_or_default();
            rows.iter().any(|d| d["audience"] == "year:Year 7")
        }),
        "the console never had the answer to Year 7's AUP: {rows:?}"
    );
    let answer = rows
        .iter()
        .find(|d| d["audience"] == "year:Year 7")
        .context("answer")?;
    ensure!(
        answer["version"] == 1 && answer["decision"] == "accept" && answer["user"] == me.as_str(),
        "{answer}"
    );
    ensure!(
        rows.iter().all(|d| d["audience"] != "pupils"),
        "the pupils' AUP was answered too: {rows:?}"
    );
    // The console counts the pupil as having accepted what applies to her.
    let pending = web.get("/aup/pending", &admin).body;
    ensure!(
        !pending.contains(&format!("<code>{me}</code>")),
        "{me} is listed as not having accepted"
    );
    let aup_page = web.get("/aup", &admin).body;
    ensure!(
        aup_page.contains("1 of 1 known accounts of the year have accepted this version"),
        "the AUP page's count of Year 7"
    );

    // Withdrawn: the pupils' AUP is shown again, within seconds.
    let r = web.post(
        "/aup/publish",
        &admin,
        &[
            ("csrf", &csrf),
            ("audience", "year:Year 7"),
            ("withdraw", "1"),
        ],
    );
    ensure!(r.status == 303, "withdrawing: {} {}", r.status, r.body);
    agent.wait_log("showing the AUP (version 1 for Pupils)", WAIT)?;
    Ok(())
}

#[test]
fn a_concern_written_in_its_window_reaches_the_console_with_the_page_in_front() -> anyhow::Result<()>
{
    require("chromium", "chromium")?;
    require("pkill", "procps")?;
    require("xterm", "xterm")?;
    let mut x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let port = sites()?;
    let agent = AgentProcess::start(
        "run",
        &bed.state,
        Some(&x.display),
        &bed.home,
        &["--browser-poll-seconds", "1"],
    )?;
    agent.answer_aup(&x, 1, true)?;
    let mut browser = Chromium::new(&x, &bed.home, port);
    let url = format!("http://forum.test:{port}/thread/7");
    browser.open(&url)?;
    browser.front("Page forum")?;
    // The pupil reads the page for a while. Chromium writes its history
    // some seconds after a visit (about 10 here); the agent reads it every
    // second.
    let history = bed.home.join(".config/chromium/Default/History");
    let written = wait_for(Duration::from_secs(40), || {
        rusqlite::Connection::open_with_flags(
            format!("file:{}?immutable=1", history.display()),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
        )
        .and_then(|db| {
            db.query_row(
                "SELECT count(*) FROM urls WHERE url LIKE '%forum.test%'",
                [],
                |r| r.get::<_, i64>(0),
            )
        })
        .is_ok_and(|n| n > 0)
    });
    ensure!(written, "Chromium never wrote the visit to its history");
    std::thread::sleep(Duration::from_secs(2));

    // The shortcut opens the window; the pupil writes and sends.
    x.keys(&["ctrl+alt+r"])?;
    let window = x
        .xdotool(&[
            "search",
            "--sync",
            "--onlyvisible",
            "--name",
            "^Report a concern$",
        ])?
        .lines()
        .next()
        .context("no concern window")?
        .to_owned();
    x.xdotool(&["windowactivate", "--sync", &window])?;
    // Words the libraries match ("kill myself"): typed into the concern
    // window they are the pupil's report, not a typed-text capture.
    x.type_text("Someone on this forum keeps telling me to go kill myself")?;
    x.keys(&["ctrl+Return"])?;
    agent.wait_log("sending a concern report", WAIT)?;

    let mut found = Value::Null;
    let arrived = wait_for(WAIT, || {
        let Ok((200, body)) = bed.api.get("/api/v1/captures?status=all") else {
            return false;
        };
        found = body["captures"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["source"] == "concern").cloned())
            .unwrap_or(Value::Null);
        !found.is_null()
    });
    ensure!(arrived, "no concern reached the console");
    ensure!(
        found["context"]
            .as_str()
            .is_some_and(|t| t.contains("keeps telling me to go kill myself")),
        "the concern's text: {found}"
    );
    ensure!(found["severity"] == 5, "a concern is top priority: {found}");
    ensure!(found["url"] == url.as_str(), "the page's address: {found}");
    ensure!(
        found["window_title"]
            .as_str()
            .is_some_and(|t| t.contains("Page forum")),
        "the page's title: {found}"
    );
    ensure!(found["has_image"] == true, "the screenshot: {found}");
    // No typed-text capture was made from the words written in the window
    // (the agent would have sent it before the report, at the typing pause).
    std::thread::sleep(Duration::from_secs(2));
    let (_, all) = bed.api.get("/api/v1/captures?status=all")?;
    let typed: Vec<&Value> = all["captures"]
        .as_array()
        .context("captures")?
        .iter()
        .filter(|c| c["source"] == "typed")
        .collect();
    ensure!(
        typed.is_empty(),
        "the concern's words were captured as typed text: {typed:?}"
    );
    // Once the window is gone, typing elsewhere is matched again (the
    // shortcut's modifiers were followed to their release).
    drop(browser);
    x.xterm("Chat")?;
    x.type_text("i want to kill myself")?;
    x.keys(&["Return"])?;
    let mut after = Vec::new();
    let matched = wait_for(WAIT, || {
        let Ok((200, body)) = bed.api.get("/api/v1/captures?status=all") else {
            return false;
        };
        after = body["captures"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|c| c["source"] == "typed")
                    .map(|c| c["term"].clone())
                    .collect()
            })
            .unwrap_or_default();
        !after.is_empty()
    });
    ensure!(
        matched,
        "typing in an xterm after the report was not captured:\n{}",
        agent.log_text()
    );
    Ok(())
}
