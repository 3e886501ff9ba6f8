//! The agent end to end: a real console, the real `agent` binary enrolled
//! with it, a real X server (Xvfb + openbox) with xterm windows, real
//! typing (xdotool), the real clipboard (xclip) and a real Chromium.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use tests::agent_process::{AgentProcess, EnrolledBed, feed, spool_depth};
use tests::desktop::{XDesktop, require, wait_for};
use tests::*;

fn setup() -> anyhow::Result<EnrolledBed> {
    EnrolledBed::new()
}

#[derive(Debug)]
struct Row {
    id: String,
    source: String,
    app: String,
    window_title: String,
    url: Option<String>,
    term: String,
    category: String,
    user: String,
    context: String,
    image_missing: Option<String>,
}

fn captures(data: &Path) -> anyhow::Result<Vec<Row>> {
    let db = open_db(data)?;
    let mut stmt = db.prepare(
        "SELECT id, source, app, window_title, url, term, category, user, context, image_missing
         FROM captures ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Row {
                id: r.get(0)?,
                source: r.get(1)?,
                app: r.get(2)?,
                window_title: r.get(3)?,
                url: r.get(4)?,
                term: r.get(5)?,
                category: r.get(6)?,
                user: r.get(7)?,
                context: r.get(8)?,
                image_missing: r.get(9)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Waits (up to `within`) until `ok` holds for the stored captures.
fn wait_captures(
    data: &Path,
    within: Duration,
    what: &str,
    mut ok: impl FnMut(&[Row]) -> bool,
) -> anyhow::Result<Vec<Row>> {
    let mut last = Vec::new();
    let found = wait_for(within, || {
        last = captures(data).unwrap_or_default();
        ok(&last)
    });
    ensure!(found, "{what}: not within {within:?}; captures: {last:#?}");
    Ok(last)
}

/// The captures once `ok` holds (within 30 s) and then 2 s more, so that
/// anything else the same moment caused has arrived too.
fn settled_captures(
    data: &Path,
    what: &str,
    ok: impl FnMut(&[Row]) -> bool,
) -> anyhow::Result<Vec<Row>> {
    wait_captures(data, Duration::from_secs(30), what, ok)?;
    std::thread::sleep(Duration::from_secs(2));
    captures(data)
}

fn whoami() -> anyhow::Result<String> {
    let out = std::process::Command::new("id").arg("-un").output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

fn decode_png(bytes: &[u8]) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("PNG too big")?];
    let info = reader.next_frame(&mut buf)?;
    ensure!(
        info.color_type == png::ColorType::Rgb,
        "not RGB: {:?}",
        info.color_type
    );
    buf.truncate(info.buffer_size());
    Ok((info.width, info.height, buf))
}

/// Share of white pixels and count of dark ones in a rectangle.
fn whiteness(
    img: &(u32, u32, Vec<u8>),
    x: std::ops::Range<u32>,
    y: std::ops::Range<u32>,
) -> (f64, usize) {
    let (w, _, px) = img;
    let (mut white, mut dark, mut all) = (0usize, 0usize, 0usize);
    for yy in y {
        for xx in x.clone() {
            let i = ((yy * w + xx) * 3) as usize;
            let p = &px[i..i + 3];
            all += 1;
            if p.iter().all(|&c| c > 230) {
                white += 1;
            }
            if p.iter().all(|&c| c < 60) {
                dark += 1;
            }
        }
    }
    (white as f64 / all as f64, dark)
}

#[test]
fn typed_risky_phrases_become_captures_with_a_screenshot_and_ordinary_typing_does_not()
-> anyhow::Result<()> {
    let mut x = XDesktop::start()?;
    let s = setup()?;
    let agent = AgentProcess::start("run", &s.state, Some(&x.display), &s.home, &[])?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    agent.answer_aup(&x, 1, true)?;
    x.xterm("Homework chat")?;

    for line in [
        "we will meet after the maths lesson to finish the project",
        "my brother skilled himself at chess over the summer",
        "the recipe needs two eggs and a cup of flour",
        "please submit your essay about the history of the castle by friday",
    ] {
        x.type_text(line)?;
        x.keys(&["Return"])?;
    }
    // A typo, corrected with BackSpace, then finished.
    x.type_text("i want to kill mysrl")?;
    x.keys(&["BackSpace", "BackSpace"])?;
    x.type_text("elf")?;
    x.keys(&["Return"])?;
    // An obfuscated spelling, with Shift on a letter.
    x.type_text("K1ll y0urself")?;
    x.keys(&["Return"])?;

    wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "two typed captures",
        |r| r.len() >= 2,
    )?;
    // Anything the ordinary lines caused would have arrived before these.
    std::thread::sleep(Duration::from_secs(2));
    let rows = captures(&s.console.data)?;
    let summary: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.term.as_str(), r.category.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("kill myself", "self-harm"),
            ("kill yourself", "cyberbullying")
        ],
        "exactly the two risky lines, nothing from the ordinary ones: {rows:#?}"
    );
    let me = whoami()?;
    for r in &rows {
        assert_eq!(r.source, "typed");
        assert_eq!(r.user, me);
        assert_eq!(r.window_title, "Homework chat");
        assert_eq!(r.app, "XTerm");
        assert!(r.image_missing.is_none(), "{r:?}");
    }
    assert!(
        rows[0].context.contains("i want to kill myself"),
        "{:?}",
        rows[0].context
    );
    assert!(
        !rows[0].context.contains("mysrl"),
        "the typo was rubbed out: {:?}",
        rows[0].context
    );
    assert!(
        !rows[0].context.contains("maths"),
        "only the line with the hit: {:?}",
        rows[0].context
    );
    assert!(
        rows[1].context.contains("K1ll y0urself"),
        "{:?}",
        rows[1].context
    );

    // The screenshot shows the xterm: white where it is, with dark text in
    // it, and the desktop's dark background elsewhere.
    let (status, kind, bytes) = s
        .api
        .get_bytes(&format!("/api/v1/captures/{}/image", rows[0].id))?;
    assert_eq!((status, kind.as_str()), (200, "image/png"));
    let img = decode_png(&bytes)?;
    assert_eq!((img.0, img.1), (x.width, x.height));
    let (white, dark) = whiteness(&img, 20..400, 60..300);
    assert!(
        white > 0.8 && dark > 50,
        "the xterm's area: {white:.2} white, {dark} dark pixels"
    );
    let (white_elsewhere, _) = whiteness(&img, 700..1270, 450..790);
    assert!(
        white_elsewhere < 0.2,
        "outside the xterm: {white_elsewhere:.2} white"
    );
    Ok(())
}

/// The semantic layer (issue 20) on a real laptop: a message no term or
/// rule names, typed into an xterm, is captured as reading like self-harm,
/// with the line as its context; once the school switches the layer off
/// (through the API, as the Settings page does), the same message typed
/// in another window is not.
#[test]
fn a_message_no_term_names_is_captured_by_the_semantic_layer_until_the_school_switches_it_off()
-> anyhow::Result<()> {
    let mut x = XDesktop::start()?;
    let s = setup()?;
    let model = tests::agent_process::semantic_model()?;
    let agent = AgentProcess::start(
        "run",
        &s.state,
        Some(&x.display),
        &s.home,
        &["--semantic-model", &model],
    )?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    agent.wait_log("semantic layer loaded", Duration::from_secs(60))?;
    agent.answer_aup(&x, 1, true)?;
    x.xterm("Chat")?;
    let line = "i wish i could just fade away";
    for typed in ["see you at football later", line] {
        x.type_text(typed)?;
        x.keys(&["Return"])?;
    }
    let rows = settled_captures(&s.console.data, "the semantic layer's capture", |r| {
        !r.is_empty()
    })
    .with_context(|| format!("the agent's log:\n{}", agent.log_text()))?;
    assert_eq!(rows.len(), 1, "only the risky line: {rows:#?}");
    let r = &rows[0];
    assert_eq!(
        (r.category.as_str(), r.source.as_str()),
        ("self-harm", "typed")
    );
    assert!(
        r.term.starts_with("semantic layer: reads as self-harm ("),
        "{}",
        r.term
    );
    assert_eq!(r.context, line);
    assert!(r.image_missing.is_none(), "with a screenshot: {r:?}");

    // The laptop's health tells the console the layer is on, with its model.
    let mut said = String::new();
    let reported = wait_for(Duration::from_secs(30), || {
        said = s
            .api
            .get("/api/v1/devices")
            .ok()
            .and_then(|(_, b)| {
                b["devices"][0]["health"]["semantic"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        said.starts_with("model in")
    });
    ensure!(reported, "the health's semantic state: {said:?}");

    let (status, mut policy) = s.api.get("/api/v1/policy")?;
    assert_eq!(status, 200);
    assert_eq!(policy["semantic"], serde_json::json!(true), "on by default");
    policy["semantic"] = serde_json::json!(false);
    let (status, body) = s.api.send("PUT", "/api/v1/policy", &policy)?;
    assert_eq!(status, 200, "{body}");
    agent.wait_log("policy version 2 in force", Duration::from_secs(30))?;
    agent.wait_log("switched the semantic layer off", Duration::from_secs(30))?;
    // Another window, so no debounce could hide a capture.
    x.xterm("Another chat")?;
    x.type_text(line)?;
    x.keys(&["Return"])?;
    x.type_text("i want to kill myself")?;
    x.keys(&["Return"])?;
    let rows = settled_captures(
        &s.console.data,
        "the term's capture in the second window",
        |r| r.iter().any(|r| r.window_title == "Another chat"),
    )?;
    let there: Vec<&str> = rows
        .iter()
        .filter(|r| r.window_title == "Another chat")
        .map(|r| r.term.as_str())
        .collect();
    assert_eq!(there, ["kill myself"], "the layer is off: {rows:#?}");
    Ok(())
}

/// Alerts (issue 23) from a real laptop: a severity-5 phrase typed into
/// an xterm is mailed and posted to a webhook within 5 s of being stored,
/// with a link and without the typed words; a severity-3 line, which no
/// rule asks for, tells nobody.
#[test]
fn a_grave_phrase_typed_on_a_laptop_is_mailed_and_posted_within_seconds() -> anyhow::Result<()> {
    let (smtp_port, mails) = tests::sinks::smtp_sink();
    let hook = tests::sinks::WebhookSink::start();
    let mut x = XDesktop::start()?;
    let s = EnrolledBed::with_settings(&format!(
        "[report.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\nfrom = \"console@school.example\"\n\
         [[alerts]]\nname = \"urgent\"\nmin_severity = 5\nevents = [\"capture\"]\n\
         email_to = [\"dsl@school.example\"]\nwebhook_urls = [\"{}\"]\n",
        hook.url
    ))?;
    let agent = AgentProcess::start("run", &s.state, Some(&x.display), &s.home, &[])?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    agent.answer_aup(&x, 1, true)?;
    x.xterm("Chat")?;
    x.type_text("ur such a loser nobody likes u")?;
    x.keys(&["Return"])?;
    x.type_text("i want to kill myself")?;
    x.keys(&["Return"])?;
    let rows = wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "the typed captures",
        |r| {
            r.iter().any(|r| r.category == "self-harm")
                && r.iter().any(|r| r.category == "cyberbullying")
        },
    )?;
    let grave = rows
        .iter()
        .find(|r| r.category == "self-harm")
        .context("the self-harm capture")?;
    let (_, body) = hook
        .received
        .recv_timeout(Duration::from_secs(20))
        .context("the webhook was called")?;
    let json: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(json["record"], grave.id, "{body}");
    assert_eq!(json["fields"]["severity"], 5, "{body}");
    assert!(
        json["link"]
            .as_str()
            .unwrap_or_default()
            .ends_with(&format!("/captures/{}", grave.id)),
        "{body}"
    );
    assert!(!body.contains("want to kill"), "no typed words: {body}");
    let mail = mails
        .recv_timeout(Duration::from_secs(20))
        .context("the mail was sent")?
        .replace("=\r\n", "");
    assert!(mail.contains(&format!("/captures/{}", grave.id)), "{mail}");
    assert!(!mail.contains("want to kill"), "{mail}");
    assert!(
        hook.received.recv_timeout(Duration::from_secs(4)).is_err()
            && mails.recv_timeout(Duration::from_secs(1)).is_err(),
        "the severity-3 capture told nobody, and nothing came twice"
    );
    // From the commit that stored the capture to the relay's and the
    // webhook's acceptance.
    let (_, listed) = s.api.get("/api/v1/alerts")?;
    let alerts = listed["alerts"].as_array().context("alerts")?;
    assert_eq!(alerts.len(), 2, "{listed}");
    for a in alerts {
        let took =
            a["sent"].as_i64().context("sent")? - a["created"].as_i64().context("created")?;
        assert!((0..=5_000).contains(&took), "{} ms: {a}", took);
    }
    drop(agent);
    Ok(())
}

/// Policies per group (issue 24) on a real laptop: the test's account is
/// in Year 7 by the register; Year 7's layer switches self-harm off, so a
/// self-harm phrase typed into an xterm makes no capture while a bullying
/// one does; switched back on from the command line, the console sends
/// the layers within seconds and the same phrase is captured. `policy
/// effective` says the same at each step.
#[test]
fn a_year_groups_layer_decides_what_its_pupil_is_captured_for() -> anyhow::Result<()> {
    let mut x = XDesktop::start()?;
    let s = setup()?;
    let data = s.console.data.to_str().context("data")?.to_owned();
    let me = whoami()?;
    let mis = s.tmp.path().join("mis.csv");
    std::fs::write(
        &mis,
        format!("account,name,year group,role\n{me},Test Pupil,Year 7,pupil\n"),
    )?;
    console_cli(
        &[
            "register",
            "import",
            "--data",
            &data,
            mis.to_str().context("mis")?,
        ],
        None,
    )?;
    let set = |flag: &str| {
        console_cli(
            &[
                "policy",
                "set-group",
                "--data",
                &data,
                "--group",
                "year:Year 7",
                flag,
                "self-harm",
            ],
            None,
        )
    };
    let self_harm_on = || -> anyhow::Result<bool> {
        let e: serde_json::Value = serde_json::from_str(&console_cli(
            &["policy", "effective", "--data", &data, "--user", &me],
            None,
        )?)?;
        e["categories"]["self-harm"]
            .as_bool()
            .context("self-harm in the effective policy")
    };
    set("--disable-category")?;
    assert!(!self_harm_on()?);

    let agent = AgentProcess::start("run", &s.state, Some(&x.display), &s.home, &[])?;
    agent.wait_log("policy layers version", Duration::from_secs(30))?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    agent.answer_aup(&x, 1, true)?;
    x.xterm("Chat")?;
    x.type_text("i want to kill myself")?;
    x.keys(&["Return"])?;
    x.type_text("ur such a loser nobody likes u")?;
    x.keys(&["Return"])?;
    wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "the bullying capture",
        |r| r.iter().any(|r| r.category == "cyberbullying"),
    )?;
    std::thread::sleep(Duration::from_secs(2));
    let rows = captures(&s.console.data)?;
    assert!(
        !rows.iter().any(|r| r.category == "self-harm"),
        "self-harm is off for Year 7: {rows:#?}"
    );

    // Back on: the console sends the layers, the laptop applies them.
    set("--enable-category")?;
    assert!(self_harm_on()?);
    agent.wait_log_count("policy layers version", 2, Duration::from_secs(30))?;
    // The same window, well within the debounce period: the helper forgot
    // the phrase the service dropped when the layers changed.
    let chat = x.window("Chat")?;
    x.xdotool(&["windowactivate", "--sync", &chat])?;
    x.type_text("i want to kill myself")?;
    x.keys(&["Return"])?;
    wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "the self-harm capture",
        |r| r.iter().any(|r| r.category == "self-harm"),
    )?;

    // Monitoring hours that are not now (the laptop's clock and zone):
    // outside them nothing, then only severity 5.
    let now = jiff::Zoned::now();
    let not_now = if i32::from(now.hour()) * 60 + i32::from(now.minute()) < 600 {
        "Mon-Sun 14:00-15:00"
    } else {
        "Mon-Sun 02:00-03:00"
    };
    let hours = |outside: &str| {
        console_cli(
            &[
                "policy",
                "set-group",
                "--data",
                &data,
                "--group",
                "year:Year 7",
                "--hours",
                not_now,
                "--outside-hours",
                outside,
            ],
            None,
        )
    };
    let before = captures(&s.console.data)?.len();
    hours("nothing")?;
    let e: serde_json::Value = serde_json::from_str(&console_cli(
        &["policy", "effective", "--data", &data, "--user", &me],
        None,
    )?)?;
    assert_eq!(e["monitoring"], false, "{e}");
    agent.wait_log_count("policy layers version", 3, Duration::from_secs(30))?;
    x.xterm("Evening chat")?;
    x.type_text("gonna kill myself tonight")?;
    x.keys(&["Return"])?;
    x.type_text("u r such a loser")?;
    x.keys(&["Return"])?;
    std::thread::sleep(Duration::from_secs(4));
    let rows = captures(&s.console.data)?;
    assert_eq!(rows.len(), before, "nothing outside the hours: {rows:#?}");

    hours("gravest")?;
    agent.wait_log_count("policy layers version", 4, Duration::from_secs(30))?;
    x.xterm("Late chat")?;
    x.type_text("u r such a loser")?;
    x.keys(&["Return"])?;
    x.type_text("gonna kill myself tonight")?;
    x.keys(&["Return"])?;
    wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "the gravest capture outside the hours",
        |r| {
            r.iter()
                .any(|r| r.window_title == "Late chat" && r.category == "self-harm")
        },
    )?;
    std::thread::sleep(Duration::from_secs(2));
    let late_rows: Vec<Row> = captures(&s.console.data)?
        .into_iter()
        .filter(|r| r.window_title == "Late chat")
        .collect();
    assert!(
        late_rows.iter().all(|r| r.category == "self-harm"),
        "only severity 5 outside the hours: {late_rows:#?}"
    );

    // All day, in term time only, nothing outside: with the last term
    // ended yesterday it is the holidays and nothing is captured; with a
    // term holding today, the same line is.
    console_cli(
        &[
            "policy",
            "set-group",
            "--data",
            &data,
            "--group",
            "year:Year 7",
            "--hours",
            "Mon-Sun 00:00-24:00, term time",
            "--outside-hours",
            "nothing",
        ],
        None,
    )?;
    let today = jiff::Zoned::now().date();
    let day = |n: i64| today.checked_add(jiff::Span::new().days(n)).unwrap();
    let terms = |first: i64, last: i64| {
        console_cli(
            &[
                "policy",
                "terms",
                "--data",
                &data,
                "--term",
                &format!("{}..{}", day(first), day(last)),
            ],
            None,
        )
    };
    // The laptop holds the layers when it logs the version the console has.
    let holds_current = || -> anyhow::Result<()> {
        let v: i64 =
            open_db(&s.console.data)?
                .query_row("SELECT version FROM layers_version", [], |r| r.get(0))?;
        agent.wait_log(
            &format!("policy layers version {v} received"),
            Duration::from_secs(30),
        )
    };
    terms(-40, -1)?;
    holds_current()?;
    let before = captures(&s.console.data)?.len();
    x.xterm("Holiday chat")?;
    x.type_text("u r such a loser")?;
    x.keys(&["Return"])?;
    std::thread::sleep(Duration::from_secs(4));
    let rows = captures(&s.console.data)?;
    assert_eq!(rows.len(), before, "nothing in the holidays: {rows:#?}");
    terms(-1, 1)?;
    holds_current()?;
    x.xterm("Term chat")?;
    x.type_text("u r such a loser")?;
    x.keys(&["Return"])?;
    wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "the capture in term time",
        |r| r.iter().any(|r| r.window_title == "Term chat"),
    )?;
    Ok(())
}

/// A minimal web server answering every request with a small page.
fn web_server() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0; 4096];
            let _ = stream.read(&mut buf);
            let body =
                "<html><head><title>Search results</title></head><body>results</body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok(port)
}

#[test]
fn risky_titles_clipboard_text_and_browser_searches_are_captured_with_their_source()
-> anyhow::Result<()> {
    require("chromium", "chromium")?;
    require("xclip", "xclip")?;
    let mut x = XDesktop::start()?;
    let s = setup()?;
    let agent = AgentProcess::start(
        "run",
        &s.state,
        Some(&x.display),
        &s.home,
        &["--browser-poll-seconds", "1"],
    )?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    agent.answer_aup(&x, 1, true)?;

    // A window that opens with a risky title, and one renamed to one.
    x.xterm("how to hang myself - notes")?;
    let renamed = x.xterm("Revision timetable")?;
    x.xdotool(&["set_window", "--name", "u r such a loser go die", &renamed])?;
    wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "two title captures",
        |r| r.iter().filter(|r| r.source == "window_title").count() >= 2,
    )?;

    // The clipboard.
    let mut xclip = std::process::Command::new("xclip")
        .args(["-selection", "clipboard"])
        .env("DISPLAY", &x.display)
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    xclip
        .stdin
        .take()
        .context("stdin")?
        .write_all(b"send me nudes tonight")?;
    xclip.wait()?;

    // A search in a real Chromium, its history in the user's profile.
    let port = web_server()?;
    let profile = s.home.join(".config/chromium");
    let status = std::process::Command::new("timeout")
        .arg("90")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!(
            "--host-resolver-rules=MAP www.google.com 127.0.0.1:{port}"
        ))
        .args([
            "--dump-dom",
            "http://www.google.com/search?q=how+to+buy+a+gun+online",
        ])
        .env("HOME", &s.home)
        .env_remove("DISPLAY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    ensure!(status.success(), "chromium failed: {status}");

    let rows = wait_captures(
        &s.console.data,
        Duration::from_secs(60),
        "clipboard and browser captures",
        |r| r.iter().any(|r| r.source == "clipboard") && r.iter().any(|r| r.source == "browser"),
    )?;
    let titles: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r.source == "window_title")
        .map(|r| (r.term.as_str(), r.window_title.as_str()))
        .collect();
    assert_eq!(
        titles,
        [
            ("hang myself", "how to hang myself - notes"),
            ("such a loser", "u r such a loser go die"),
            ("go die", "u r such a loser go die")
        ]
    );
    let clip = rows
        .iter()
        .find(|r| r.source == "clipboard")
        .context("clipboard")?;
    assert_eq!(clip.term, "send me nudes");
    assert_eq!(clip.category, "sexting");
    let web = rows
        .iter()
        .find(|r| r.source == "browser")
        .context("browser")?;
    assert_eq!(
        (web.term.as_str(), web.category.as_str()),
        ("buy a gun", "weapons")
    );
    assert_eq!(web.app, "Chromium");
    let url = web.url.as_deref().unwrap_or_default();
    assert!(
        url.contains("www.google.com/search?q=how+to+buy+a+gun+online"),
        "{url}"
    );
    assert_eq!(
        rows.iter().filter(|r| r.source == "browser").count(),
        1,
        "one search is one capture however many addresses Chromium tried: {rows:#?}"
    );
    Ok(())
}

#[test]
fn captures_made_during_an_outage_and_a_kill_arrive_exactly_once() -> anyhow::Result<()> {
    let mut s = setup()?;
    // No display: the agent still runs, and says why there is no screenshot.
    let mut agent = AgentProcess::start("run", &s.state, None, &s.home, &[])?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    for i in 0..5 {
        feed(
            &s.state,
            "Notes",
            &format!("before {i}"),
            "i want to kill myself",
        )?;
    }
    let rows = wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "5 captures",
        |r| r.len() == 5,
    )?;
    assert!(
        rows[0]
            .image_missing
            .as_deref()
            .unwrap_or_default()
            .contains("no display"),
        "{:?}",
        rows[0].image_missing
    );
    assert_eq!(rows[0].source, "feed");

    // The console goes down hard; the laptop keeps capturing.
    let (agent_addr, web_addr) = (s.console.agent_addr.clone(), s.console.web_addr.clone());
    s.console.kill();
    for i in 0..10 {
        feed(
            &s.state,
            "Notes",
            &format!("outage {i}"),
            "i want to kill myself",
        )?;
    }
    ensure!(
        wait_for(Duration::from_secs(30), || spool_depth(&s.state).ok()
            == Some(10)),
        "10 captures should wait in the spool; status:\n{}",
        tests::agent_process::status(&s.state)?
    );
    // The agent is killed with them in its spool, and started again.
    agent.kill();
    ensure!(spool_depth(&s.state)? == 10, "the spool survives SIGKILL");
    let agent = AgentProcess::start("run", &s.state, None, &s.home, &[])?;
    std::thread::sleep(Duration::from_secs(1));
    ensure!(
        spool_depth(&s.state)? == 10,
        "nothing sent while the console is down"
    );

    let _console = ConsoleProcess::start_on(&s.console.data, &agent_addr, &web_addr)?;
    wait_captures(
        &s.console.data,
        Duration::from_secs(90),
        "all 15 captures",
        |r| r.len() >= 15,
    )?;
    ensure!(
        wait_for(Duration::from_secs(30), || spool_depth(&s.state).ok()
            == Some(0)),
        "the spool empties once acked; agent log:\n{}",
        agent.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    let rows = captures(&s.console.data)?;
    let mut titles: Vec<&str> = rows.iter().map(|r| r.window_title.as_str()).collect();
    titles.sort_unstable();
    let mut want: Vec<String> = (0..5)
        .map(|i| format!("before {i}"))
        .chain((0..10).map(|i| format!("outage {i}")))
        .collect();
    want.sort();
    assert_eq!(titles, want, "every capture exactly once");
    Ok(())
}

#[test]
fn the_service_and_session_roles_report_a_killed_helper_and_follow_a_pushed_policy()
-> anyhow::Result<()> {
    let s = setup()?;
    // Helpers started by the users (the service does not supervise): the
    // service still reports one that is killed.
    let service = AgentProcess::start("service", &s.state, None, &s.home, &["--no-supervise"])?;
    let mut session = AgentProcess::start("session", &s.state, None, &s.home, &[])?;
    service.wait_log("session helper for", Duration::from_secs(30))?;
    session.wait_log("policy version 1 in force", Duration::from_secs(30))?;

    feed(
        &s.state,
        "Chat",
        "weapons before",
        "how to buy a gun online",
    )?;
    wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "a weapons capture",
        |r| r.iter().any(|r| r.term == "buy a gun"),
    )?;

    // The school switches weapons off; the running helper follows at once.
    let (status, mut policy) = s.api.get("/api/v1/policy")?;
    assert_eq!(status, 200);
    policy["disabled_categories"] = serde_json::json!(["weapons"]);
    let (status, body) = s.api.send("PUT", "/api/v1/policy", &policy)?;
    assert_eq!(status, 200, "{body}");
    session.wait_log("policy version 2 in force", Duration::from_secs(30))?;
    feed(&s.state, "Chat", "weapons after", "how to buy a gun online")?;
    feed(&s.state, "Chat", "self-harm after", "i want to kill myself")?;
    let rows = wait_captures(
        &s.console.data,
        Duration::from_secs(30),
        "the self-harm capture",
        |r| r.iter().any(|r| r.window_title == "self-harm after"),
    )?;
    assert!(
        !rows.iter().any(|r| r.window_title == "weapons after"),
        "a switched-off category is not captured: {rows:#?}"
    );

    // The helper is killed while its user is still logged in.
    session.kill();
    let db_has_tamper = || {
        open_db(&s.console.data)
            .and_then(|db| {
                Ok(db.query_row(
                    "SELECT COUNT(*) FROM tamper_events WHERE kind = 'AgentKilled'",
                    [],
                    |r| r.get::<_, i64>(0),
                )?)
            })
            .unwrap_or(0)
    };
    ensure!(
        wait_for(Duration::from_secs(30), || db_has_tamper() == 1),
        "a tamper event should reach the console; service log:\n{}",
        service.log_text()
    );
    // Without a session helper, fed text is refused with the reason.
    let err = feed(&s.state, "Chat", "nobody", "i want to kill myself")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no session helper"), "{err}");

    // A helper stopped by a signal (a pupil's `kill PID`) while its user
    // is still logged in is reported too: it says goodbye, but only a
    // closed desktop (a logout) is not tampering.
    let session = AgentProcess::start("session", &s.state, None, &s.home, &[])?;
    session.wait_log("policy version 2 in force", Duration::from_secs(30))?;
    let term = std::process::Command::new("kill")
        .args(["-TERM", &session.pid().to_string()])
        .status()?;
    ensure!(term.success());
    service.wait_log("stopped: stopped by a signal", Duration::from_secs(30))?;
    ensure!(
        wait_for(Duration::from_secs(30), || db_has_tamper() == 2),
        "a helper stopped by SIGTERM while its user is logged in is reported; service log:\n{}",
        service.log_text()
    );
    let detail: String = open_db(&s.console.data)?.query_row(
        "SELECT detail FROM tamper_events WHERE kind = 'AgentKilled' ORDER BY time DESC LIMIT 1",
        [],
        |r| r.get(0),
    )?;
    assert!(
        detail.contains("was stopped (stopped by a signal)"),
        "{detail}"
    );
    Ok(())
}

#[test]
fn the_x11_platform_layer_reads_keys_the_front_window_and_idle_time() -> anyhow::Result<()> {
    use agent::platform::x11::X11Desktop;
    use agent::platform::{Desktop, DesktopEvent};
    use std::sync::{Arc, Mutex};
    use wordlists::Key;

    let mut x = XDesktop::start()?;
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let desktop = X11Desktop::open(
        Some(&x.display),
        Box::new(move |e| {
            sink.lock().unwrap().push(e);
            true
        }),
    )?;
    x.xterm("Alpha")?;
    ensure!(
        wait_for(Duration::from_secs(10), || desktop
            .active_window()
            .is_some_and(|w| w.title == "Alpha")),
        "active window: {:?}",
        desktop.active_window()
    );
    assert_eq!(desktop.active_window().unwrap_or_default().app, "XTerm");
    std::thread::sleep(Duration::from_millis(1500));
    let idle = desktop.idle_ms().context("idle time")?;
    assert!(idle >= 1000, "idle {idle} ms after 1.5 s without input");
    x.type_text("Hi! ")?;
    assert!(
        desktop.idle_ms().context("idle time")? < 1000,
        "typing resets idle time"
    );
    ensure!(
        wait_for(Duration::from_secs(10), || {
            let keys: Vec<Key> = events
                .lock()
                .unwrap()
                .iter()
                .filter_map(|e| match e {
                    DesktopEvent::Key(k) => Some(*k),
                    _ => None,
                })
                .collect();
            keys.ends_with(&[
                Key::Char('H'),
                Key::Char('i'),
                Key::Char('!'),
                Key::Char(' '),
            ])
        }),
        "keys: {:?}",
        events.lock().unwrap()
    );
    assert!(
        events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, DesktopEvent::Focus(w) if w.title == "Alpha")),
        "the focus change was reported"
    );
    let shot = desktop.screenshot()?;
    assert_eq!((shot.width, shot.height), (x.width, x.height));
    Ok(())
}
