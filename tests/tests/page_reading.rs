//! What pupils view, end to end: a real Chromium on a real X server
//! (Xvfb + openbox) with the page-reader extension loaded unpacked and its
//! native host installed by `agent browser-integration install --user`,
//! the real agent and a real console. Pages are served locally.
//!
//! - a risky phrase in the body of a page with an innocent title becomes a
//!   `screen_text` capture with the page's address and a screenshot of the
//!   page, within 5 s of the page loading;
//! - a chat page that adds a grooming message 3 s after loading, then
//!   re-renders and scrolls it ten times, makes one capture;
//! - a Holocaust history lesson and a news report on a knife crime make
//!   none; nor does a password field holding a library term;
//! - the first case in Firefox ESR too;
//! - a browser started with a fresh profile, or again without the
//!   extension, is reported to the console as a tamper event within 60 s
//!   (the pupil a real unprivileged account, the service root).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::Value;
use tests::agent_process::{AgentProcess, EnrolledBed, install_page_reader_host};
use tests::desktop::{XDesktop, require, wait_for};
use tests::firefox::Firefox;
use tests::headful_chromium::{Chromium, extension_dir, pages};
use tests::pupil::Pupil;

const RISKY: &str = r#"<!doctype html><html><head><title>Homework help</title>
<style>body { background: #ff00ff; font: 28px sans-serif; }</style></head>
<body><h1>Study group</h1><p>Jo wrote: honestly i want to kill myself, nobody would even notice</p>
<p>Reply below.</p></body></html>"#;

/// A chat whose message arrives 3 s after load, is then re-rendered and
/// scrolled past ten times.
const CHAT: &str = r#"<!doctype html><html><head><title>Chat</title>
<style>#log { height: 300px; overflow-y: scroll; border: 1px solid #999; } .m { padding: 4px; }</style></head>
<body><h1>Messages</h1><div id="log"><div class="m">Sam: hey whats up</div></div>
<script>
const log = document.getElementById('log');
for (let i = 0; i < 30; i++) { const d = document.createElement('div'); d.className = 'm'; d.textContent = 'Sam: filler line ' + i; log.appendChild(d); }
log.scrollTop = log.scrollHeight;
const message = 'Sam: dont tell your parents about our chats ok';
function render() {
  const old = document.getElementById('msg'); if (old) old.remove();
  const d = document.createElement('div'); d.className = 'm'; d.id = 'msg'; d.textContent = message;
  log.appendChild(d); log.scrollTop = log.scrollHeight;
}
setTimeout(() => {
  render();
  document.title = '(1) Chat';
  let n = 0;
  const again = setInterval(() => {
    n++;
    if (n % 2) { render(); } else { log.scrollTop = 0; setTimeout(() => { log.scrollTop = log.scrollHeight; }, 150); }
    document.title = '(' + (n + 1) + ') Chat';
    if (n >= 10) { clearInterval(again); document.body.dataset.done = '1'; }
  }, 400);
}, 3000);
</script></body></html>"#;

const HISTORY: &str = r#"<!doctype html><html><head><title>Year 9 History</title></head><body>
<h1>The Holocaust</h1>
<p>Between 1941 and 1945 the Nazi regime murdered six million Jews in Europe.</p>
<p>Jews were forced into ghettos, then deported by train to concentration camps and extermination camps such as Auschwitz-Birkenau and Treblinka.</p>
<p>Millions died in the gas chambers. Roma people, disabled people and political prisoners were also persecuted and killed.</p>
<p>Adolf Hitler and the Nazi Party spread antisemitic propaganda that blamed Jewish people for Germany's problems.</p>
<p>Discuss with your partner: why did so few people speak out? How do survivors' testimonies help us remember the victims of genocide?</p>
</body></html>"#;

const NEWS: &str = r#"<!doctype html><html><head><title>Local news</title></head><body>
<h1>Teenager charged after city centre stabbing</h1>
<p>A 17-year-old boy has been charged with attempted murder after a man was stabbed in a city centre street on Saturday night.</p>
<p>Police said the victim, aged 24, was taken to hospital with serious injuries and is in a stable condition. A knife was recovered at the scene.</p>
<p>Detectives have appealed for witnesses and asked anyone with dashcam footage to come forward. Knife crime in the region rose by 8% last year, according to figures published on Thursday.</p>
<p>A local charity that runs knife crime awareness sessions in schools said more funding was needed for youth services.</p>
</body></html>"#;

const LOGIN: &str = r#"<!doctype html><html><head><title>Sign in</title></head><body>
<h1>Sign in to the homework site</h1>
<form><label>Name <input name="u" value="jo"></label>
<label>Password <input type="password" id="pw" value="i want to kill myself"></label></form>
<script>document.getElementById('pw').value = 'dont tell your parents';</script>
<p>Forgotten your password? Ask your teacher.</p>
</body></html>"#;

fn captures(bed: &EnrolledBed) -> anyhow::Result<Vec<Value>> {
    let (status, body) = bed.api.get("/api/v1/captures?limit=1000")?;
    ensure!(status == 200, "captures: {status} {body}");
    Ok(body["captures"].as_array().cloned().unwrap_or_default())
}

fn on_page(all: &[Value], path: &str) -> Vec<Value> {
    all.iter()
        .filter(|c| {
            c["source"] == "screen_text" && c["url"].as_str().is_some_and(|u| u.ends_with(path))
        })
        .cloned()
        .collect()
}

/// The share of the screenshot's pixels that are the risky page's magenta.
fn magenta_share(png: &[u8]) -> anyhow::Result<f64> {
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("image size")?];
    let info = reader.next_frame(&mut buf)?;
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let total = pixels.len() / channels;
    let magenta = pixels
        .chunks(channels)
        .filter(|p| p[0] > 230 && p[1] < 30 && p[2] > 230)
        .count();
    Ok(magenta as f64 / total as f64)
}

#[test]
fn pages_a_pupil_views_in_chromium_become_captures_once_and_innocent_ones_do_not()
-> anyhow::Result<()> {
    require("chromium", "chromium")?;
    require("pkill", "procps")?;
    let mut x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let port = pages(vec![
        ("/risky", RISKY.into()),
        ("/chat", CHAT.into()),
        ("/history", HISTORY.into()),
        ("/news", NEWS.into()),
        ("/login", LOGIN.into()),
        (
            "/plain",
            "<!doctype html><title>Plain</title><p>A plain page.</p>".into(),
        ),
    ])?;
    install_page_reader_host(&bed.state, &bed.home)?;
    let agent = AgentProcess::start(
        "run",
        &bed.state,
        Some(&x.display),
        &bed.home,
        &["--browser-poll-seconds", "1"],
    )?;
    agent.wait_log("policy version 1 in force", Duration::from_secs(30))?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    agent.answer_aup(&x, 1, true)?;
    x.xterm("terminal")?;

    let mut browser = Chromium::new(&x, &bed.home, port).with_extension();
    let base = "http://school.test";
    browser.open(&format!("{base}/plain"))?;
    browser.front("Plain")?;
    agent
        .wait_log("page reader", Duration::from_secs(30))
        .context("the extension's native host never reached the agent")?;

    // 1. The risky page: one capture within 5 s, with the page's address
    // and a screenshot of the page.
    browser.open(&format!("{base}/risky"))?;
    let loaded = browser.front("Homework help")?;
    let mut risky = Vec::new();
    wait_for(Duration::from_secs(20), || {
        risky = on_page(&captures(&bed).unwrap_or_default(), "/risky");
        !risky.is_empty()
    });
    let took = loaded.elapsed();
    ensure!(
        !risky.is_empty(),
        "no screen_text capture from the risky page; agent log:\n{}",
        agent.log_text()
    );
    let c = &risky[0];
    ensure!(
        took <= Duration::from_secs(5),
        "the capture took {took:?} from the page coming to the front (at most 5 s)"
    );
    ensure!(c["term"] == "kill myself", "{c}");
    ensure!(c["window_title"] == "Homework help", "{c}");
    ensure!(
        c["app"]
            .as_str()
            .is_some_and(|a| a.to_lowercase().contains("chromium")),
        "{c}"
    );
    ensure!(c["has_image"] == true, "{c}");
    let id = c["id"].as_str().context("id")?;
    let (status, ctype, png) = bed.api.get_bytes(&format!("/api/v1/captures/{id}/image"))?;
    ensure!(
        status == 200 && ctype == "image/png",
        "image: {status} {ctype}"
    );
    let share = magenta_share(&png)?;
    ensure!(
        share > 0.3,
        "the screenshot should show the (magenta) page; {:.0}% of it is magenta",
        share * 100.0
    );
    // The title is not what matched: the page's address and title are
    // innocent, and the browser source made nothing.
    ensure!(
        captures(&bed)?.iter().all(|c| !(c["source"] == "browser"
            && c["url"].as_str().is_some_and(|u| u.ends_with("/risky")))),
        "a browser-source capture of the risky page"
    );

    // 2. The chat: one capture however often the message is re-rendered.
    browser.open(&format!("{base}/chat"))?;
    browser.front("Chat")?;
    let chat_open = Instant::now();
    wait_for(Duration::from_secs(20), || {
        !on_page(&captures(&bed).unwrap_or_default(), "/chat").is_empty()
    });
    // The page re-renders ten times over about 4 s after the message.
    std::thread::sleep(
        Duration::from_secs(10).saturating_sub(chat_open.elapsed()) + Duration::from_secs(4),
    );
    let chat = on_page(&captures(&bed)?, "/chat");
    ensure!(
        chat.len() == 1,
        "the chat message should be one capture, not {}: {chat:?}\nagent log:\n{}",
        chat.len(),
        agent.log_text()
    );
    ensure!(chat[0]["term"] == "dont tell your parents", "{}", chat[0]);
    ensure!(chat[0]["category"] == "grooming", "{}", chat[0]);

    // 3. Innocent pages, read through (scrolled to the end), and a
    // password field: nothing.
    for (path, title) in [
        ("/history", "Year 9 History"),
        ("/news", "Local news"),
        ("/login", "Sign in"),
    ] {
        browser.open(&format!("{base}{path}"))?;
        browser.front(title)?;
        std::thread::sleep(Duration::from_secs(2));
        x.keys(&["End"])?;
        std::thread::sleep(Duration::from_secs(3));
    }
    let all = captures(&bed)?;
    for path in ["/history", "/news", "/login"] {
        let got: Vec<&Value> = all
            .iter()
            .filter(|c| c["url"].as_str().is_some_and(|u| u.ends_with(path)))
            .collect();
        ensure!(got.is_empty(), "{path} made captures: {got:?}");
    }

    // 4. A site the school excludes from page reading (its MIS): its
    // pages are not read, other sites' still are.
    let (status, mut policy) = bed.api.get("/api/v1/policy")?;
    ensure!(status == 200, "policy: {status} {policy}");
    policy["page_reading_excluded"] = serde_json::json!(["mis.test"]);
    let (status, body) = bed.api.send("PUT", "/api/v1/policy", &policy)?;
    ensure!(status == 200, "policy PUT: {status} {body}");
    agent.wait_log("policy version 2 in force", Duration::from_secs(30))?;
    browser.open("http://mis.test/risky")?;
    std::thread::sleep(Duration::from_secs(6));
    let mis: Vec<Value> = captures(&bed)?
        .into_iter()
        .filter(|c| {
            c["source"] == "screen_text"
                && c["url"].as_str().is_some_and(|u| u.contains("mis.test"))
        })
        .collect();
    ensure!(mis.is_empty(), "an excluded site's page was read: {mis:?}");
    browser.open("http://other.test/risky")?;
    ensure!(
        wait_for(Duration::from_secs(20), || {
            captures(&bed).unwrap_or_default().iter().any(|c| {
                c["source"] == "screen_text"
                    && c["url"].as_str().is_some_and(|u| u.contains("other.test"))
            })
        }),
        "a site not excluded was no longer read"
    );

    // 5. Staff tell viewed from typed: the API's source filter.
    let (_, viewed) = bed.api.get("/api/v1/captures?source=viewed&limit=100")?;
    let viewed = viewed["captures"].as_array().cloned().unwrap_or_default();
    ensure!(viewed.len() >= 3, "viewed: {viewed:?}");
    ensure!(
        viewed
            .iter()
            .all(|c| c["source"] == "screen_text" || c["source"] == "window_title"),
        "{viewed:?}"
    );
    let (_, typed) = bed.api.get("/api/v1/captures?source=typed&limit=100")?;
    ensure!(
        typed["captures"].as_array().is_some_and(Vec::is_empty),
        "{typed}"
    );
    let (status, bad) = bed.api.get("/api/v1/captures?source=psychic")?;
    ensure!(
        status == 400 && bad.to_string().contains("not one of"),
        "{status} {bad}"
    );
    Ok(())
}

/// The BrowserUnmonitored tamper events stored: (user, detail).
fn unmonitored(bed: &EnrolledBed) -> Vec<(String, String)> {
    let Ok(db) = tests::open_db(&bed.console.data) else {
        return Vec::new();
    };
    let Ok(mut stmt) = db.prepare(
        "SELECT COALESCE(user, ''), detail FROM tamper_events WHERE kind = 'BrowserUnmonitored' ORDER BY time",
    ) else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.flatten().collect())
        .unwrap_or_default()
}

/// The pupil's ways round the page reader, as a real unprivileged account
/// (the service runs as root, the session helper and the browsers as the
/// pupil): a second browser on a fresh profile, and the browser started
/// again without the extension. Each is reported within 60 s.
#[test]
fn a_browser_without_the_extension_is_reported_within_a_minute() -> anyhow::Result<()> {
    require("chromium", "chromium")?;
    require("pkill", "procps")?;
    let x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let pupil = Pupil::create(bed.tmp.path())?;
    let port = pages(vec![
        (
            "/plain",
            "<!doctype html><title>Plain</title><p>A plain page.</p>".into(),
        ),
        (
            "/other",
            "<!doctype html><title>Other</title><p>Another page.</p>".into(),
        ),
        (
            "/again",
            "<!doctype html><title>Again</title><p>A page once more.</p>".into(),
        ),
    ])?;
    let state = bed.state.to_str().context("UTF-8 path")?;
    let out = pupil
        .command(tests::workspace_binary("agent")?, None)
        .args([
            "browser-integration",
            "install",
            "--user",
            "--state-dir",
            state,
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "browser-integration install --user failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let service = AgentProcess::start(
        "service",
        &bed.state,
        None,
        &bed.home,
        &["--displays", &x.display],
    )?;
    // The pupil's desktop session (a terminal of theirs): the service
    // starts the session helper for it, out of the pupil's reach.
    let _terminal = pupil.terminal(&x.display, "pupil-term", &[])?;
    // Its log goes to the service's.
    let session = &service;
    session.wait_log("watching the X display", Duration::from_secs(30))?;
    session.answer_aup(&x, 1, true)?;

    // The pupil's own profile has the extension: watched, no report.
    let mut watched = Chromium::new(&x, &pupil.home, port)
        .with_extension()
        .as_user(&pupil);
    watched.open("http://school.test/plain")?;
    watched.front("Plain")?;
    session
        .wait_log(") connected", Duration::from_secs(30))
        .context("the pupil's own browser never connected its page reader")?;

    // 1. A second browser on a fresh profile, with no extension.
    let mut fresh = Chromium::new(&x, &pupil.home, port)
        .profile(pupil.home.join("fresh-profile"))
        .as_user(&pupil);
    fresh.open("http://other.test/other")?;
    let front_at = fresh.front("Other")?;
    wait_for(Duration::from_secs(75), || !unmonitored(&bed).is_empty());
    let took = front_at.elapsed();
    let got = unmonitored(&bed);
    ensure!(
        got.len() == 1,
        "{} BrowserUnmonitored events, not one, within 75 s: {got:?}\nservice log (with the helper's):\n{}",
        got.len(),
        service.log_text()
    );
    ensure!(
        took <= Duration::from_secs(60),
        "reported after {took:?}, not within 60 s"
    );
    ensure!(
        got[0].0 == pupil.name,
        "the event names {:?}, not the pupil",
        got[0].0
    );
    ensure!(got[0].1.contains("Chromium"), "{}", got[0].1);
    drop(fresh);

    // 2. The pupil's own browser started again without the extension.
    drop(watched);
    let mut bare = Chromium::new(&x, &pupil.home, port).as_user(&pupil);
    bare.open("http://school.test/again")?;
    let front_at = bare.front("Again")?;
    wait_for(Duration::from_secs(75), || unmonitored(&bed).len() >= 2);
    let took = front_at.elapsed();
    let got = unmonitored(&bed);
    ensure!(
        got.len() == 2,
        "{} BrowserUnmonitored events after the extension went, not two: {got:?}\nsession log:\n{}",
        got.len(),
        session.log_text()
    );
    ensure!(
        took <= Duration::from_secs(60),
        "reported after {took:?}, not within 60 s"
    );
    Ok(())
}

/// The first case in Firefox ESR: the extension sideloaded into a test
/// profile, the host from `browser-integration install --user`.
#[test]
fn a_risky_page_in_firefox_becomes_a_capture() -> anyhow::Result<()> {
    let x = XDesktop::start()?;
    let bed = EnrolledBed::new()?;
    let port = pages(vec![("/risky", RISKY.into())])?;
    install_page_reader_host(&bed.state, &bed.home)?;
    let agent = AgentProcess::start("run", &bed.state, Some(&x.display), &bed.home, &[])?;
    agent.wait_log("watching the X display", Duration::from_secs(30))?;
    agent.answer_aup(&x, 1, true)?;
    let extension = extension_dir();
    let mut firefox = Firefox::new(
        &x,
        &bed.tmp.path().join("firefox-profile"),
        &["school.test"],
        Some((agent::browser_integration::FIREFOX_EXTENSION_ID, &extension)),
    )?;
    firefox.open(&format!("http://school.test:{port}/risky"), &bed.home)?;
    let loaded = firefox.front("Homework help")?;
    let mut risky = Vec::new();
    wait_for(Duration::from_secs(30), || {
        risky = on_page(&captures(&bed).unwrap_or_default(), "/risky");
        !risky.is_empty()
    });
    let took = loaded.elapsed();
    ensure!(
        !risky.is_empty(),
        "no screen_text capture from the risky page in Firefox within 30 s; agent log:\n{}\nFirefox:\n{}",
        agent.log_text(),
        firefox.log_text()
    );
    let c = &risky[0];
    ensure!(c["term"] == "kill myself", "{c}");
    ensure!(c["window_title"] == "Homework help", "{c}");
    ensure!(
        c["app"]
            .as_str()
            .is_some_and(|a| a.to_lowercase().contains("firefox")),
        "{c}"
    );
    let id = c["id"].as_str().context("id")?;
    let (status, _, png) = bed.api.get_bytes(&format!("/api/v1/captures/{id}/image"))?;
    ensure!(status == 200, "image: {status}");
    let share = magenta_share(&png)?;
    ensure!(
        share > 0.3,
        "the screenshot should show the page; {:.0}% magenta",
        share * 100.0
    );
    ensure!(
        took <= Duration::from_secs(5),
        "the capture took {took:?} from the page coming to the front (at most 5 s)"
    );
    Ok(())
}
