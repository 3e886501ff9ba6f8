//! Policies per group (issue 24), through the console's command line on
//! a real data directory: layers for a year group, a role and a laptop
//! group, a tie refused, and `policy effective` saying what applies to
//! whom, where and when.

use serde_json::Value;
use tests::{console_cli, open_db};

fn effective(data: &str, args: &[&str]) -> Value {
    let mut all = vec!["policy", "effective", "--data", data];
    all.extend_from_slice(args);
    serde_json::from_str(&console_cli(&all, None).unwrap()).unwrap()
}

#[test]
fn layers_for_a_year_a_role_and_a_laptop_say_what_applies_to_whom_and_when() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("console.toml"), "time_zone = \"UTC\"\n").unwrap();
    let d = data.to_str().unwrap();
    let mis = tmp.path().join("mis.csv");
    std::fs::write(
        &mis,
        "account,name,year group,role\namy,Amy A,Year 7,pupil\nben,Ben B,Year 12,pupil\nmrs.c,Mrs C,,staff\n",
    )
    .unwrap();
    console_cli(
        &["register", "import", "--data", d, mis.to_str().unwrap()],
        None,
    )
    .unwrap();
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

    // Every change is audited; the refused one is not.
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
}
