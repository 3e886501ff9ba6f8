//! Policies per group (issue 24): through the console's command line on
//! a real data directory (layers for a year group, a role and a laptop
//! group, a tie refused, and `policy effective` saying what applies to
//! whom, where and when), and on a real laptop shared by two real pupil
//! accounts in different year groups, through a console outage.

use std::time::Duration;

use anyhow::{Context, ensure};
use serde_json::Value;
use tests::agent_process::{AgentProcess, EnrolledBed};
use tests::desktop::{XDesktop, wait_for};
use tests::pupil::Pupil;
use tests::{ConsoleProcess, console_cli, open_db};

fn effective(data: &str, args: &[&str]) -> Value {
    let mut all = vec!["policy", "effective", "--data", data];
    all.extend_from_slice(args);
    serde_json::from_str(&console_cli(&all, None).unwrap()).unwrap()
}

/// A console's data directory in `dir` (the school's zone UTC) with the
/// register imported from `people` (MIS lines: account, name, year
/// group, role).
fn school(dir: &std::path::Path, people: &str) -> std::path::PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("console.toml"), "time_zone = \"UTC\"\n").unwrap();
    let mis = dir.join("mis.csv");
    std::fs::write(&mis, format!("account,name,year group,role\n{people}")).unwrap();
    console_cli(
        &[
            "register",
            "import",
            "--data",
            data.to_str().unwrap(),
            mis.to_str().unwrap(),
        ],
        None,
    )
    .unwrap();
    data
}

#[test]
fn layers_for_a_year_a_role_and_a_laptop_say_what_applies_to_whom_and_when() {
    let tmp = tempfile::tempdir().unwrap();
    let data = school(
        tmp.path(),
        "amy,Amy A,Year 7,pupil\nben,Ben B,Year 12,pupil\nmrs.c,Mrs C,,staff\n",
    );
    let d = data.to_str().unwrap();
    let set = |args: &[&str]| {
        let mut all = vec!["policy", "set-group", "--data", d];
        all.extend_from_slice(args);
        console_cli(&all, None)
    };
    set(&[
        "--group",
        "year:Year 7",
        "--disable-category",
        "gambling",
        "--hours",
        "Mon-Fri 08:00-16:00",
        "--outside-hours",
        "gravest",
    ])
    .unwrap();
    set(&["--group", "role:pupil", "--min-severity", "2"]).unwrap();
    console_cli(
        &[
            "group",
            "set",
            "--data",
            d,
            "--group",
            "devices:library",
            "--member",
            "laptop-1",
        ],
        None,
    )
    .unwrap();
    set(&[
        "--group",
        "devices:library",
        "--min-severity",
        "4",
        "--screenshots",
        "false",
    ])
    .unwrap();
    // A second laptop group holding the same laptop, with its own minimum
    // severity: a tie, refused and named.
    console_cli(
        &[
            "group",
            "set",
            "--data",
            d,
            "--group",
            "devices:trolley",
            "--member",
            "laptop-1",
        ],
        None,
    )
    .unwrap();
    let tie = set(&["--group", "devices:trolley", "--min-severity", "2"])
        .unwrap_err()
        .to_string();
    assert!(
        tie.contains("minimum severity") && tie.contains("laptop-1"),
        "{tie}"
    );
    let bad = set(&["--group", "Year 7", "--min-severity", "2"])
        .unwrap_err()
        .to_string();
    assert!(bad.contains("is not a group"), "{bad}");
    let unknown = set(&["--group", "year:Year 7", "--disable-category", "gamblng"])
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("no library defines"), "{unknown}");

    // Tuesday 10:00: amy's year and role apply; gambling is off for her.
    let amy = effective(d, &["--user", "amy", "--at", "2026-12-08T10:00:00Z"]);
    assert_eq!(
        amy["groups"],
        serde_json::json!(["role:pupil", "year:Year 7"]),
        "{amy}"
    );
    assert_eq!(amy["min_severity"], 2, "{amy}");
    assert_eq!(amy["categories"]["gambling"], false, "{amy}");
    assert_eq!(amy["categories"]["self-harm"], true, "{amy}");
    assert_eq!(
        (amy["monitoring"].clone(), amy["gravest_only"].clone()),
        (true.into(), false.into())
    );
    // In the evening only the gravest; on the library laptop its layer last.
    let evening = effective(d, &["--user", "amy", "--at", "2026-12-08T19:00:00Z"]);
    assert_eq!(evening["gravest_only"], true, "{evening}");
    let library = effective(
        d,
        &[
            "--user",
            "amy",
            "--device",
            "laptop-1",
            "--at",
            "2026-12-08T10:00:00Z",
        ],
    );
    assert_eq!(library["min_severity"], 4, "{library}");
    assert_eq!(library["screenshots"], false, "{library}");
    assert_eq!(
        library["layers"],
        serde_json::json!(["role:pupil", "year:Year 7", "devices:library"]),
        "{library}"
    );
    assert_eq!(
        library["groups"].as_array().unwrap().last().unwrap(),
        "devices:trolley",
        "in both laptop groups; only one has a layer: {library}"
    );
    let ben = effective(d, &["--user", "ben", "--at", "2026-12-08T19:00:00Z"]);
    assert_eq!(ben["categories"]["gambling"], true, "{ben}");
    assert_eq!(ben["gravest_only"], false, "{ben}");
    let stranger = effective(d, &["--user", "visitor", "--at", "2026-12-08T10:00:00Z"]);
    assert_eq!(stranger["groups"], serde_json::json!([]), "{stranger}");
    assert_eq!(stranger["min_severity"], 3, "the school's own: {stranger}");

    // The same on the console's page, for staff.
    console_cli(
        &[
            "user", "add", "--data", d, "--name", "dsl", "--role", "reviewer",
        ],
        Some("the lead's long pass phrase\n"),
    )
    .unwrap();
    let console = ConsoleProcess::start(&data).unwrap();
    let port = console.web_addr.rsplit(':').next().unwrap().to_owned();
    let web = tests::web_client::Web::new(&data, &format!("https://localhost:{port}"));
    let (session, _) = web.sign_in("dsl", "the lead's long pass phrase", "");
    let page = web.get(
        "/policy/effective?user=amy&device=laptop-1&at=2026-12-08T19:00:00Z",
        &session,
    );
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in [
        "role:pupil, year:Year 7, devices:library",
        "only severity 5 (outside the hours)",
        "gambling: off",
        "self-harm: on",
    ] {
        assert!(page.body.contains(shown), "{shown:?} not in {}", page.body);
    }
    drop(console);

    // Every change is audited; the refused one is not; the look is too.
    let db = open_db(&data).unwrap();
    let n = |action: &str| -> i64 {
        db.query_row(
            "SELECT COUNT(*) FROM audit WHERE action = ?1",
            [action],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(n("set_policy_layer"), 3);
    assert_eq!(n("set_group_members"), 2);
    assert_eq!(n("view_effective_policy"), 1);
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" content=\"").expect("a csrf meta") + 21;
    page[at..].split('"').next().unwrap().to_owned()
}

/// The page `/policy/groups`: an admin sets a year group's layer, names a
/// group of laptops and gives it a layer, is refused a tie and a layer
/// that does not read, and removes a layer; a laptop connected to the
/// console is sent each change within seconds, `policy effective` agrees
/// with the page, every change is audited under the admin's name, and a
/// reviewer sees the layers but changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_sets_layers_and_groups_on_the_page_and_a_connected_laptop_gets_them() {
    use protocol::ConsoleMessage;
    use protocol::device_link::DeviceLink;

    let tmp = tempfile::tempdir().unwrap();
    let data = school(
        tmp.path(),
        "amy,Amy A,Year 7,pupil\nben,Ben B,Year 12,pupil\n",
    );
    let d = data.to_str().unwrap();
    for (name, role, pw) in [
        ("it", "admin", "the admin's long pass phrase"),
        ("dsl", "reviewer", "the lead's long pass phrase"),
    ] {
        console_cli(
            &["user", "add", "--data", d, "--name", name, "--role", role],
            Some(&format!("{pw}\n")),
        )
        .unwrap();
    }
    let console = ConsoleProcess::start(&data).unwrap();
    let port = console.web_addr.rsplit(':').next().unwrap().to_owned();
    let web = tests::web_client::Web::new(&data, &format!("https://localhost:{port}"));
    let identity = tests::identity_from_ca(&data).unwrap();
    let laptop = identity.device_id.to_string();
    let mut link = DeviceLink::connect(&console.agent_addr, &identity, "test", 0)
        .await
        .unwrap();
    assert!(
        link.layers.as_ref().is_some_and(|l| l.layers.is_empty()),
        "no layers yet: {:?}",
        link.layers
    );
    // The next layers the console sends, within seconds.
    async fn next_layers(link: &mut DeviceLink) -> protocol::layers::GroupLayers {
        let until = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(until, link.recv()).await {
                Ok(Ok(ConsoleMessage::LayersV6(l))) => return l,
                Ok(Ok(ConsoleMessage::Layers(_))) => {
                    panic!("a laptop of protocol 6 is sent the layers of protocol 5")
                }
                Ok(Ok(_)) => {}
                other => panic!("no layers sent: {other:?}"),
            }
        }
    }

    let (admin, _) = web.sign_in("it", "the admin's long pass phrase", "");
    let page = web.get("/policy/groups", &admin);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("year:Year 7 (1)"),
        "the register's groups listed"
    );
    let csrf = csrf_of(&page.body);
    let post = |path: &str, fields: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        web.post(path, &admin, &all)
    };

    // Year 7: gambling off, self-harm one severity up, school hours with
    // only the gravest outside them, no screenshots.
    let r = post(
        "/policy/groups",
        &[
            ("group", "year:Year 7"),
            ("cat:gambling", "off"),
            ("shift:self-harm", "+1"),
            ("screenshots", "off"),
            ("hours", "Mon-Fri 08:00-16:00"),
            ("outside_hours", "gravest"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let sent = next_layers(&mut link).await;
    let seven = sent
        .layers
        .iter()
        .find(|l| l.group == "year:Year 7")
        .expect("the laptop is sent the new layer");
    assert_eq!(
        seven.overrides.categories,
        vec![("gambling".to_owned(), false)]
    );
    assert_eq!(
        seven.overrides.severity_shift,
        vec![("self-harm".to_owned(), 1)]
    );
    let amy = effective(d, &["--user", "amy", "--at", "2026-12-08T19:00:00Z"]);
    assert_eq!(amy["categories"]["gambling"], false, "{amy}");
    assert_eq!(amy["gravest_only"], true, "{amy}");
    assert_eq!(amy["screenshots"], false, "{amy}");
    let page = web.get("/policy/groups", &admin).body;
    assert!(
        page.contains("gambling off; self-harm severity +1"),
        "{page}"
    );

    // The library's laptops, and their layer.
    let r = post(
        "/policy/groups/members",
        &[
            ("group", "devices:library"),
            ("members", &format!("{laptop}\n")),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let sent = next_layers(&mut link).await;
    assert_eq!(sent.device_groups, vec!["devices:library".to_owned()]);
    let r = post(
        "/policy/groups",
        &[("group", "devices:library"), ("min_severity", "4")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    next_layers(&mut link).await;
    let there = effective(
        d,
        &[
            "--user",
            "ben",
            "--device",
            &laptop,
            "--at",
            "2026-12-08T10:00:00Z",
        ],
    );
    assert_eq!(there["min_severity"], 4, "{there}");

    // Refused, and nothing changes: a tie between two groups of one rank
    // holding amy, and hours that do not read.
    for (group, members) in [("accounts:club", "amy"), ("accounts:choir", "amy")] {
        let r = post(
            "/policy/groups/members",
            &[("group", group), ("members", members)],
        );
        assert_eq!(r.status, 303, "{}", r.body);
    }
    let r = post(
        "/policy/groups",
        &[("group", "accounts:club"), ("cat:drugs", "off")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let r = post(
        "/policy/groups",
        &[("group", "accounts:choir"), ("cat:drugs", "on")],
    );
    assert_eq!(r.status, 400, "a tie is refused: {}", r.body);
    assert!(
        r.body.contains("amy"),
        "the refusal names the account: {}",
        r.body
    );
    let r = post(
        "/policy/groups",
        &[("group", "year:Year 12"), ("hours", "after school")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        "/policy/groups",
        &[("group", "Year 12"), ("min_severity", "4")],
    );
    assert_eq!(r.status, 400, "not a group: {}", r.body);
    let ben = effective(d, &["--user", "ben", "--at", "2026-12-08T10:00:00Z"]);
    assert_eq!(ben["layers"], serde_json::json!([]), "{ben}");

    // Term time: Year 12 monitored in school hours in term only, nothing
    // outside them. The school's terms set on the page reach the laptop;
    // on a day between two terms ben is outside his hours, in a term
    // inside them.
    let r = post(
        "/policy/groups",
        &[
            ("group", "year:Year 12"),
            ("hours", "Mon-Fri 08:00-16:00, term time"),
            ("outside_hours", "nothing"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    next_layers(&mut link).await;
    let r = post(
        "/policy/groups/terms",
        &[("terms", "2026-09-03..2026-10-23\n2026-11-02..2026-12-18\n")],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let sent = next_layers(&mut link).await;
    assert_eq!(
        sent.terms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        vec!["2026-09-03..2026-10-23", "2026-11-02..2026-12-18"]
    );
    let half_term = effective(d, &["--user", "ben", "--at", "2026-10-27T10:00:00Z"]);
    assert_eq!(
        (
            half_term["monitoring"].clone(),
            half_term["in_term"].clone()
        ),
        (false.into(), false.into()),
        "{half_term}"
    );
    let in_term = effective(d, &["--user", "ben", "--at", "2026-12-08T10:00:00Z"]);
    assert_eq!(in_term["monitoring"], true, "{in_term}");
    let page = web
        .get("/policy/effective?user=ben&at=2026-10-27T10:00:00Z", &admin)
        .body;
    assert!(
        page.contains("no (the school"),
        "the page says half term is not term"
    );
    let r = post(
        "/policy/groups/terms",
        &[("terms", "2026-12-18..2026-09-03")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        "/policy/groups/terms",
        &[("terms", "2026-09-03..2026-10-30\n2026-10-23..2026-12-18")],
    );
    assert_eq!(r.status, 400, "overlapping terms: {}", r.body);
    // An agent of protocol 5 is sent the layers in the shape it reads,
    // its term-time hours holding every week.
    let old = DeviceLink::connect_speaking(5, &console.agent_addr, &identity, "old", 0)
        .await
        .unwrap();
    let twelve = old
        .layers
        .as_ref()
        .unwrap()
        .layers
        .iter()
        .find(|l| l.group == "year:Year 12")
        .unwrap()
        .clone();
    assert_eq!(
        twelve.overrides.hours.map(|h| h.term_time),
        Some(false),
        "protocol 5 has no term time"
    );
    drop(old);

    // Removed: amy is back to the school's policy.
    let r = post("/policy/groups/remove", &[("group", "year:Year 7")]);
    assert_eq!(r.status, 303, "{}", r.body);
    let amy = effective(d, &["--user", "amy", "--at", "2026-12-08T19:00:00Z"]);
    assert_eq!(amy["categories"]["gambling"], true, "{amy}");
    assert_eq!(amy["gravest_only"], false, "{amy}");

    // A reviewer sees the layers and changes nothing.
    let (dsl, _) = web.sign_in("dsl", "the lead's long pass phrase", "");
    let page = web.get("/policy/groups", &dsl);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("accounts:club") && !page.body.contains("Save this layer"));
    let reviewer_csrf = csrf_of(&page.body);
    let r = web.post(
        "/policy/groups",
        &dsl,
        &[
            ("csrf", &reviewer_csrf),
            ("group", "year:Year 12"),
            ("min_severity", "5"),
        ],
    );
    assert_eq!(r.status, 403);
    drop(link);
    drop(console);

    let db = open_db(&data).unwrap();
    let n = |action: &str| -> i64 {
        db.query_row(
            "SELECT COUNT(*) FROM audit WHERE action = ?1 AND actor = 'it'",
            [action],
            |r| r.get(0),
        )
        .unwrap()
    };
    // Year 7, library, club, Year 12, then Year 7 removed; members three
    // times; the terms once.
    assert_eq!(
        (
            n("set_policy_layer"),
            n("set_group_members"),
            n("set_term_dates")
        ),
        (5, 3, 1)
    );
}

/// (category, window title) of each capture of `user`'s, oldest first.
fn captured(data: &std::path::Path, user: &str) -> Vec<(String, String)> {
    let Ok(db) = open_db(data) else {
        return Vec::new();
    };
    let Ok(mut stmt) =
        db.prepare("SELECT category, window_title FROM captures WHERE user = ?1 ORDER BY time")
    else {
        return Vec::new();
    };
    stmt.query_map([user], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.flatten().collect())
        .unwrap_or_default()
}

/// Types `lines` into a pupil's terminal titled `title` on `x`.
fn type_in(x: &XDesktop, title: &str, lines: &[&str]) -> anyhow::Result<()> {
    let window = x.window(title)?;
    x.xdotool(&["windowactivate", "--sync", &window])?;
    for line in lines {
        x.type_text(line)?;
        x.keys(&["Return"])?;
    }
    Ok(())
}

/// Two real pupil accounts on one laptop (each with a desktop of its own,
/// the service as root), in Year 7 and Year 9 by an MIS import. Self-harm
/// is off for Year 7: the same phrase typed by both is captured for the
/// Year 9 pupil only, and `policy effective` says so for each. Then the
/// console is stopped, the layer changed, and the laptop, offline, goes on
/// applying what it holds; reconnected, it gets the change.
#[test]
fn two_pupils_on_one_laptop_get_their_own_years_layers_offline_too() -> anyhow::Result<()> {
    let (x7, x9) = (XDesktop::start()?, XDesktop::start()?);
    let mut bed = EnrolledBed::new()?;
    let (amy, ben) = (
        Pupil::create(bed.tmp.path())?,
        Pupil::create(bed.tmp.path())?,
    );
    let data = bed.console.data.clone();
    let d = data.to_str().context("data")?.to_owned();
    let mis = bed.tmp.path().join("mis.csv");
    std::fs::write(
        &mis,
        format!(
            "account,name,year group,role\n{},Amy,Year 7,pupil\n{},Ben,Year 9,pupil\n",
            amy.name, ben.name
        ),
    )?;
    console_cli(
        &[
            "register",
            "import",
            "--data",
            &d,
            mis.to_str().context("mis")?,
        ],
        None,
    )?;
    let set_year7 = |flag: &str| {
        console_cli(
            &[
                "policy",
                "set-group",
                "--data",
                &d,
                "--group",
                "year:Year 7",
                flag,
                "self-harm",
            ],
            None,
        )
    };
    set_year7("--disable-category")?;
    let self_harm_for = |user: &str| -> anyhow::Result<bool> {
        let e: Value = serde_json::from_str(&console_cli(
            &["policy", "effective", "--data", &d, "--user", user],
            None,
        )?)?;
        e["categories"]["self-harm"].as_bool().context("self-harm")
    };
    ensure!(!self_harm_for(&amy.name)? && self_harm_for(&ben.name)?);

    let displays = format!("{},{}", x7.display, x9.display);
    let service = AgentProcess::start(
        "service",
        &bed.state,
        None,
        &bed.home,
        &["--displays", &displays],
    )?;
    let _amy_term = amy.terminal(&x7.display, "amy-term", &[])?;
    let _ben_term = ben.terminal(&x9.display, "ben-term", &[])?;
    for (p, x) in [(&amy, &x7), (&ben, &x9)] {
        service.wait_log(
            &format!("for {} on {}", p.name, x.display),
            Duration::from_secs(30),
        )?;
    }
    service.wait_log_count("watching the X display", 2, Duration::from_secs(30))?;
    service.answer_aup(&x7, 2, true)?;
    service.answer_aup(&x9, 2, true)?;

    type_in(
        &x7,
        "amy-term",
        &["i want to kill myself", "ur such a loser nobody likes u"],
    )?;
    type_in(&x9, "ben-term", &["i want to kill myself"])?;
    ensure!(
        wait_for(Duration::from_secs(30), || {
            captured(&data, &amy.name)
                .iter()
                .any(|c| c.0 == "cyberbullying")
                && captured(&data, &ben.name)
                    .iter()
                    .any(|c| c.0 == "self-harm")
        }),
        "amy's bullying and ben's self-harm captures never arrived: amy {:?}, ben {:?}; service log:\n{}",
        captured(&data, &amy.name),
        captured(&data, &ben.name),
        service.log_text()
    );
    std::thread::sleep(Duration::from_secs(2));
    let amys = captured(&data, &amy.name);
    ensure!(
        !amys.iter().any(|c| c.0 == "self-harm"),
        "self-harm is off for Year 7, yet: {amys:?}"
    );

    // The console stops; the change waits for the laptop.
    let (agent_addr, web_addr) = (bed.console.agent_addr.clone(), bed.console.web_addr.clone());
    bed.console.terminate(Duration::from_secs(20))?;
    set_year7("--enable-category")?;
    ensure!(self_harm_for(&amy.name)?);
    type_in(&x7, "amy-term", &["gonna kill myself tonight"])?;
    std::thread::sleep(Duration::from_secs(3));
    bed.console = ConsoleProcess::start_on(&data, &agent_addr, &web_addr)?;
    service.wait_log_count("policy layers version", 2, Duration::from_secs(60))?;
    // Whatever the laptop held while offline went under the old layer.
    std::thread::sleep(Duration::from_secs(3));
    ensure!(
        !captured(&data, &amy.name)
            .iter()
            .any(|c| c.0 == "self-harm"),
        "captured offline under the old layer: {:?}",
        captured(&data, &amy.name)
    );
    // Reconnected, the change applies: a new window, past the debounce.
    let _again = amy.terminal(&x7.display, "amy-term-2", &[])?;
    wait_for(Duration::from_secs(10), || x7.window("amy-term-2").is_ok());
    type_in(&x7, "amy-term-2", &["i want to kill myself"])?;
    ensure!(
        wait_for(Duration::from_secs(30), || captured(&data, &amy.name)
            .iter()
            .any(|c| c.0 == "self-harm")),
        "after the change, amy's self-harm phrase was not captured: {:?}; service log:\n{}",
        captured(&data, &amy.name),
        service.log_text()
    );
    Ok(())
}
