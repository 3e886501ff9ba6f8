//! The operator's guide, tested: a backup taken while laptops keep sending
//! restores to a working console (the same CA, so laptops and API tokens
//! carry on), a subject-access export holds everything about one pupil
//! and nothing about another, and the school's own web certificate is
//! served to browsers while laptops keep the built-in CA.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use protocol::device_link::DeviceLink;
use protocol::{AgentMessage, ConsoleMessage};
use tests::*;

/// Sends records and waits for each ack.
async fn deliver(link: &mut DeviceLink, records: Vec<AgentMessage>) {
    let mut waiting: Vec<uuid::Uuid> = records.iter().filter_map(AgentMessage::record_id).collect();
    for r in records {
        link.send(&r).await.unwrap();
    }
    while !waiting.is_empty() {
        match tokio::time::timeout(Duration::from_secs(20), link.recv()).await {
            Ok(Ok(ConsoleMessage::Ack(ids))) => waiting.retain(|w| !ids.contains(w)),
            Ok(Ok(_)) => {}
            other => panic!("no ack for {waiting:?}: {other:?}"),
        }
    }
}

fn count(data: &Path, sql: &str) -> i64 {
    open_db(data)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_backup_restores_to_a_working_console_and_a_subject_export_is_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let console = ConsoleProcess::start(&data).unwrap();
    let device = identity_from_ca(&data).unwrap();
    let token = api_token(&data, "it", "admin").unwrap();
    let api = Api::new(&data, &console.web_addr, &token).unwrap();
    let mut link = DeviceLink::connect(&console.agent_addr, &device, "test", 0)
        .await
        .unwrap();

    // Amy and Ben each have captures with screenshots and site visits.
    let mut amy = Vec::new();
    let mut records = Vec::new();
    for (i, user) in ["amy", "ben", "amy", "ben", "amy"].iter().enumerate() {
        let mut c = capture(
            &format!("message {i}: i want to kill myself"),
            "kill myself",
            Some(fake_png(20, i as u64)),
        );
        c.user = (*user).into();
        if *user == "amy" {
            amy.push(c.clone());
        }
        records.push(AgentMessage::Capture(c));
    }
    let now = protocol::UnixMillis::now().0;
    let visit = |user: &str, url: &str| protocol::SiteVisit {
        user: user.into(),
        browser: "Chromium".into(),
        url: url.into(),
        domain: String::new(),
        title: "a page".into(),
        start: protocol::UnixMillis(now - 60_000),
        end: protocol::UnixMillis(now),
        active_seconds: 60,
        visits: 1,
    };
    records.push(AgentMessage::SiteVisits(protocol::SiteVisits {
        id: uuid::Uuid::now_v7(),
        visits: vec![
            visit("amy", "https://www.bbc.co.uk/bitesize"),
            visit("ben", "https://ben-only.example/secret"),
        ],
    }));
    deliver(&mut link, records).await;
    let (status, _) = api
        .send(
            "POST",
            &format!("/api/v1/captures/{}/triage", amy[0].id),
            &serde_json::json!({"status": "violation", "note": "spoke to Amy and her parents", "action": "referred to DSL"}),
        )
        .unwrap();
    assert_eq!(status, 200);

    // A laptop keeps sending while the backup is taken.
    let sending = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicUsize::new(0));
    let stream = {
        let (sending, sent) = (sending.clone(), sent.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while sending.load(Ordering::Relaxed) {
                let mut c = capture("during the backup: kms", "kms", Some(fake_png(50, 100 + i)));
                c.user = "ben".into();
                deliver(&mut link, vec![AgentMessage::Capture(c)]).await;
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            link
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backup = tmp.path().join("backup");
    let out = {
        let (d, b) = (data.clone(), backup.clone());
        tokio::task::spawn_blocking(move || {
            console_cli(
                &[
                    "backup",
                    "--data",
                    d.to_str().unwrap(),
                    "--to",
                    b.to_str().unwrap(),
                ],
                None,
            )
        })
        .await
        .unwrap()
        .unwrap()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    sending.store(false, Ordering::Relaxed);
    let _link = stream.await.unwrap();
    let during = sent.load(Ordering::Relaxed);
    assert!(during > 0, "captures were sent during the backup");
    assert!(out.contains("passed its integrity check"), "{out}");
    let in_backup = count(&backup, "SELECT COUNT(*) FROM captures");
    assert!(
        (5..=5 + during as i64).contains(&in_backup),
        "the backup holds {in_backup} captures; 5 before and {during} during"
    );
    assert!(
        out.contains(&format!("{in_backup} captures, {in_backup} screenshots")),
        "{out}"
    );
    // A second backup into the same folder is refused.
    let again = console_cli(
        &[
            "backup",
            "--data",
            data.to_str().unwrap(),
            "--to",
            backup.to_str().unwrap(),
        ],
        None,
    );
    assert!(again.is_err(), "a backup over an existing one is refused");

    // The school loses the server. The backup is copied into place on a
    // new one (cp -a) and the console started.
    drop(console);
    let restored = tmp.path().join("restored");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(&backup)
        .arg(&restored)
        .status()
        .unwrap();
    assert!(status.success());
    let console = ConsoleProcess::start(&restored).unwrap();
    let api = Api::new(&restored, &console.web_addr, &token).unwrap();
    // The old API token works, every capture and screenshot is there.
    let (status, list) = api.get("/api/v1/captures?status=all&limit=1000").unwrap();
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["captures"].as_array().unwrap().len() as i64, in_backup);
    for c in &amy {
        let (status, ctype, bytes) = api
            .get_bytes(&format!("/api/v1/captures/{}/image", c.id))
            .unwrap();
        assert_eq!((status, ctype.as_str()), (200, "image/png"));
        let protocol::Screenshot::Png(png) = &c.screenshot else {
            unreachable!("made with a screenshot")
        };
        assert_eq!(&bytes, png, "a screenshot came back changed");
    }
    // The same laptop, with the same certificate, delivers to it.
    let mut link = DeviceLink::connect(&console.agent_addr, &device, "test", 0)
        .await
        .expect("the laptop connects to the restored console");
    deliver(
        &mut link,
        vec![AgentMessage::Capture(capture(
            "after the restore: kms",
            "kms",
            None,
        ))],
    )
    .await;

    // A subject-access request for Amy.
    let export = tmp.path().join("sar-amy");
    let out = console_cli(
        &[
            "subject-export",
            "--data",
            restored.to_str().unwrap(),
            "--user",
            "amy",
            "--out",
            export.to_str().unwrap(),
        ],
        None,
    )
    .unwrap();
    assert!(
        out.contains("captures.json 3, reviews.json 1, site_visits.json 1, site_hours.json 1")
            && out.contains("account.json 1, screenshots 3"),
        "{out}"
    );
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(export.join(f)).unwrap()).unwrap()
    };
    let captures = read("captures.json");
    let contexts: Vec<&str> = captures
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["context"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = amy.iter().map(|c| c.context.as_str()).collect();
    assert_eq!(contexts, want);
    assert_eq!(
        read("reviews.json")[0]["note"],
        "spoke to Amy and her parents"
    );
    assert_eq!(
        read("site_visits.json")[0]["url"],
        "https://www.bbc.co.uk/bitesize"
    );
    assert_eq!(read("site_hours.json")[0]["domain"], "bbc.co.uk");
    assert_eq!(read("account.json")[0]["account"], "amy");
    for c in &amy {
        let shot = std::fs::read(export.join("screenshots").join(format!("{}.png", c.id))).unwrap();
        let protocol::Screenshot::Png(png) = &c.screenshot else {
            unreachable!("made with a screenshot")
        };
        assert_eq!(&shot, png);
    }
    // Nothing about Ben.
    for entry in std::fs::read_dir(&export).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains("ben") && !text.contains("during the backup"),
                "{} mentions another pupil",
                path.display()
            );
        }
    }
    assert!(
        std::fs::read_to_string(export.join("README.txt"))
            .unwrap()
            .contains("captures.json (3)")
    );
    // The export is in the audit log.
    let (_, audit) = api.get("/api/v1/audit?limit=50").unwrap();
    assert!(
        audit.to_string().contains("subject_export"),
        "the export is audited: {audit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schools_own_web_certificate_is_served_while_laptops_keep_the_built_in_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut console = ConsoleProcess::start(&data).unwrap();
    console.terminate(Duration::from_secs(10)).unwrap();

    // The school's domain CA issues the console a certificate.
    let school = protocol::pki::Authority::generate("Test School Domain CA").unwrap();
    let issued = school.issue_server(&["localhost"]).unwrap();
    let etc = tmp.path().join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let (chain, key) = (etc.join("console.pem"), etc.join("console.key"));
    std::fs::write(&chain, &issued.cert_pem).unwrap();
    std::fs::write(&key, issued.key_pem.expose()).unwrap();
    let toml_path = data.join("console.toml");
    let settings = std::fs::read_to_string(&toml_path).unwrap();
    let default = "[web_certificate]\nchain = \"\"\nkey = \"\"\n";
    assert!(
        settings.contains(default),
        "the default settings show the section:\n{settings}"
    );
    let named = format!(
        "[web_certificate]\nchain = {:?}\nkey = {:?}\n",
        chain.display().to_string(),
        key.display().to_string()
    );
    std::fs::write(&toml_path, settings.replace(default, &named)).unwrap();

    let console = ConsoleProcess::start(&data).unwrap();
    assert!(
        console
            .log_text()
            .contains("web certificate: the school's, from")
    );
    let port = console.web_addr.rsplit(':').next().unwrap().to_owned();
    let base = format!("https://localhost:{port}");
    // A browser that trusts the school's CA, and nothing else, signs in.
    let browser = tests::web_client::Web::trusting(school.cert_pem().as_bytes(), &base);
    let page = tokio::task::spawn_blocking(move || browser.get("/login", ""))
        .await
        .unwrap();
    assert_eq!(page.status, 200);
    // The built-in CA no longer vouches for the web console.
    let builtin = std::fs::read(data.join("ca.pem")).unwrap();
    let url = format!("{base}/login");
    let refused = tokio::task::spawn_blocking(move || {
        tests::web_client::Web::trusting(&builtin, "")
            .agent
            .get(&url)
            .call()
            .map(|r| r.status())
    })
    .await
    .unwrap();
    assert!(refused.is_err(), "{refused:?}");
    // Laptops are unaffected: a capture goes through on the built-in CA.
    let device = identity_from_ca(&data).unwrap();
    let mut link = DeviceLink::connect(&console.agent_addr, &device, "test", 0)
        .await
        .unwrap();
    let c = capture("with the school's certificate: kms", "kms", None);
    deliver(&mut link, vec![AgentMessage::Capture(c.clone())]).await;
    assert_eq!(count_stored(&data, &[c.id]).unwrap(), (0, 0));
    drop(link);
    drop(console);

    // A key that does not fit stops the start, naming the files.
    let other = protocol::pki::Authority::generate("other").unwrap();
    std::fs::write(&key, other.key_pem().expose()).unwrap();
    let err = ConsoleProcess::start(&data).err().unwrap().to_string();
    assert!(
        err.contains("do not fit together") && err.contains("console.key"),
        "{err}"
    );
}

/// The README's first command: `console-server demo` makes a console and a
/// live agent in a directory of its own, sample lines become captures, and
/// it revokes its admin token when it stops (and the last run's when it
/// starts). Pointed at a school's real console it refuses and touches
/// nothing.
#[test]
fn the_demo_runs_in_a_directory_of_its_own_and_leaves_no_admin_token_behind() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo-data");
    let demo = |dir: &Path| {
        Command::new(workspace_binary("console-server").unwrap())
            .args(["demo", "--data"])
            .arg(dir)
            .args([
                "--no-desktop",
                "--agent-listen",
                "127.0.0.1:0",
                "--web-listen",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut earlier_token: Option<String> = None;
    for run in 1..=2 {
        let mut child = demo(&data);
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut web, mut token, mut handed) = (None, None, 0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while handed < 4 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("run {run}: the demo did not get going within 60 s"));
            if let Some(url) = line.split("JSON API: https://").nth(1) {
                web = Some(url.trim().to_owned());
            }
            if let Some(t) = line.split("admin API token: ").nth(1) {
                token = Some(t.trim().to_owned());
            }
            if line.contains("handed to the agent") {
                handed += 1;
            }
        }
        let (web, token) = (web.expect("the web address"), token.expect("an API token"));
        let api = Api::new(&data, &web, &token).unwrap();
        // The three risky samples become captures, the innocent one does not.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = api.get("/api/v1/captures?limit=100").unwrap();
            assert_eq!(status, 200, "{body}");
            let n = body["captures"].as_array().unwrap().len();
            if n >= 3 * run {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "run {run}: {n} captures after 60 s"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        if let Some(old) = &earlier_token {
            let (status, _) = api.with_token(old).get("/api/v1/captures").unwrap();
            assert_eq!(status, 401, "the last run's admin token still works");
        }
        let stopped = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        let out = child.wait_with_output().unwrap();
        let rest: Vec<String> = rx.try_iter().collect();
        assert!(out.status.success(), "run {run}: {out:?} {rest:?}");
        assert!(
            rest.iter()
                .any(|l| l.contains("the demo's API token is revoked")),
            "{rest:?}"
        );
        let listed = console_cli(
            &["api-token", "list", "--data", data.to_str().unwrap()],
            None,
        )
        .unwrap();
        assert!(
            !listed.lines().any(|l| l.ends_with("live")),
            "run {run} left a live token:\n{listed}"
        );
        earlier_token = Some(token);
    }

    // A school's real console: refused, nothing written.
    let real = tmp.path().join("data");
    enroll_token(&real, "127.0.0.1:9443", "1h").unwrap();
    let audit_lines = count(&real, "SELECT COUNT(*) FROM audit");
    let before: Vec<_> = std::fs::read_dir(&real)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let out = demo(&real).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("was not made by `console-server demo`"),
        "{err}"
    );
    let after: Vec<_> = std::fs::read_dir(&real)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(before, after);
    assert_eq!(count(&real, "SELECT COUNT(*) FROM audit"), audit_lines);
    assert_eq!(
        count(&real, "SELECT COUNT(*) FROM users"),
        0,
        "no admin made"
    );
    assert_eq!(count(&real, "SELECT COUNT(*) FROM api_tokens"), 0);
}
