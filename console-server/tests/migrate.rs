//! `console-server migrate`: a school's SQLite console, with records of
//! every kind, copied into a fresh PostgreSQL database and read back through
//! the store on PostgreSQL as it reads on SQLite.

mod common;

use std::sync::Arc;

use common::postgres::TestDatabase;
use console_server::policy::default_policy;
use console_server::store::images::FsImageStore;
use console_server::store::register::RegisterStore;
use console_server::store::sql_store::SqlStore;
use console_server::store::tokens::{NewApiToken, NewDevice, TokenStore};
use console_server::store::visits::VisitStore;
use console_server::store::*;
use protocol::{
    AgentMessage, Audience, AupDecision, Capture, Decision, Screenshot, SiteVisit, SiteVisits,
    TamperEvent, TamperKind, UnixMillis,
};
use uuid::Uuid;

const T0: i64 = 1_800_000_000_000;

fn capture(i: u8, shot: Screenshot) -> Capture {
    Capture {
        context: format!("line {i}: kms"),
        context_match: (8, 11),
        ..common::captures::capture(
            &format!("pupil{}", i % 3),
            UnixMillis(T0 + i64::from(i)),
            shot,
        )
    }
}

/// What a store holds, read through its traits, for comparing two stores.
fn everything(s: &SqlStore) -> String {
    let captures = s
        .captures(&CaptureQuery {
            limit: 1000,
            ..CaptureQuery::default()
        })
        .unwrap();
    let mut out = format!("{captures:?}\n");
    for c in &captures {
        out.push_str(&format!(
            "{:?} {:?}\n",
            s.capture(c.id).unwrap(),
            s.capture_image(c.id).unwrap()
        ));
    }
    out.push_str(&format!("{:?}\n", s.audit_events(1000).unwrap()));
    out.push_str(&format!("{:?}\n", s.staff_accounts().unwrap()));
    out.push_str(&format!("{:?}\n", s.devices(UnixMillis(T0)).unwrap()));
    out.push_str(&format!("{:?}\n", s.api_tokens(UnixMillis(T0)).unwrap()));
    out.push_str(&format!("{:?}\n", s.accounts().unwrap()));
    out.push_str(&format!("{:?}\n", s.policy().unwrap()));
    let week = console_server::school_week::Week::containing(
        UnixMillis(T0),
        &console_server::school_week::zone(),
    )
    .to_string();
    out.push_str(&format!("{:?}\n", s.week_totals(&week).unwrap()));
    out.push_str(&format!(
        "{:?}\n",
        s.tamper_events(&TamperQuery {
            limit: 100,
            ..TamperQuery::default()
        })
        .unwrap()
    ));
    out
}

#[test]
fn a_schools_console_is_copied_into_postgres_whole_and_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let images = FsImageStore::open(&tmp.path().join("images")).unwrap();
    let school = SqlStore::open(
        &tmp.path().join("console.db"),
        Arc::new(images),
        default_policy,
    )
    .unwrap();
    let now = UnixMillis(T0);
    school
        .add_user("lead", Role::Admin, "argon2-hash", None, now)
        .unwrap();
    school
        .add_api_token(
            &NewApiToken {
                name: "script",
                role: Role::Auditor,
                owner: None,
                hash: "aaaaaaaaaaaaaaaa",
                expires: UnixMillis(T0 + 86_400_000),
                school: None,
            },
            now,
        )
        .unwrap();
    let laptop = Uuid::now_v7();
    school
        .add_enroll_token("token-hash", UnixMillis(T0 + 60_000), None, now)
        .unwrap();
    school
        .enroll_device(
            "token-hash",
            &NewDevice {
                id: laptop,
                hostname: "lab-1",
                os: "Debian",
                agent_version: "0.1.0",
            },
            &AuditEntry {
                time: now,
                actor: "laptop",
                action: AuditAction::EnrollDevice,
                target: "lab-1",
                detail: "",
                origin: "test",
            },
            now,
        )
        .unwrap()
        .unwrap();
    let mut batch: Vec<Incoming> = (0..12u8)
        .map(|i| {
            let shot = if i % 4 == 0 {
                Screenshot::Missing("no display".into())
            } else {
                Screenshot::Png([b"\x89PNG\r\n\x1a\n".as_slice(), &[i; 2000]].concat())
            };
            Incoming {
                device: laptop,
                received: now,
                message: AgentMessage::Capture(capture(i, shot)),
            }
        })
        .collect();
    batch.push(Incoming {
        device: laptop,
        received: now,
        message: AgentMessage::SiteVisits(SiteVisits {
            id: Uuid::now_v7(),
            visits: vec![SiteVisit {
                user: "pupil1".into(),
                browser: "Firefox".into(),
                url: "https://www.bbc.co.uk/news".into(),
                domain: "bbc.co.uk".into(),
                title: "News".into(),
                start: now,
                end: UnixMillis(T0 + 60_000),
                active_seconds: 60,
                visits: 1,
            }],
        }),
    });
    batch.push(Incoming {
        device: laptop,
        received: now,
        message: AgentMessage::AupDecision(AupDecision {
            id: Uuid::now_v7(),
            time: now,
            user: "pupil1".into(),
            audience: Audience::Pupils,
            aup_version: 1,
            decision: Decision::Accept,
        }),
    });
    batch.push(Incoming {
        device: laptop,
        received: now,
        message: AgentMessage::TamperEvent(TamperEvent {
            id: Uuid::now_v7(),
            time: now,
            user: Some("pupil2".into()),
            kind: TamperKind::AgentKilled,
            detail: "killed".into(),
        }),
    });
    school.store_batch(&batch).unwrap();
    let first = match &batch[1].message {
        AgentMessage::Capture(c) => c.id,
        _ => unreachable!(),
    };
    school
        .triage(
            first,
            &Triage {
                status: Status::Violation,
                note: "spoke to pupil".into(),
                action: Some("DSL informed".into()),
                actor: "lead".into(),
                time: now,
            },
        )
        .unwrap();
    let before = everything(&school);
    let exports = tempfile::tempdir().unwrap();
    for user in ["pupil1", "pupil2"] {
        console_server::subject_access::export(
            &school,
            user,
            &exports.path().join(format!("sqlite-{user}")),
        )
        .unwrap();
    }
    drop(school);

    let database = TestDatabase::new().unwrap();
    let copied = console_server::migrate::to_postgres(tmp.path(), &database.url).unwrap();
    assert_eq!(copied.images, 9, "the nine screenshots");
    assert_eq!(copied.rows["captures"], 12);
    assert_eq!(copied.rows["site_visits"], 1);

    let trust = SqlStore::open_postgres(&database.url, 4, default_policy).unwrap();
    assert_eq!(everything(&trust), before, "the store reads the same");
    // A subject-access export from PostgreSQL is the export from SQLite,
    // file for file and byte for byte (but the README's time of export).
    for user in ["pupil1", "pupil2"] {
        let (lite, pg) = (
            exports.path().join(format!("sqlite-{user}")),
            exports.path().join(format!("postgres-{user}")),
        );
        let got = console_server::subject_access::export(&trust, user, &pg).unwrap();
        if user == "pupil1" {
            assert_eq!(
                (
                    got.rows("captures.json"),
                    got.rows("reviews.json"),
                    got.screenshots
                ),
                (4, 1, 3),
                "{got:?}"
            );
            assert_eq!(
                (got.rows("site_visits.json"), got.rows("aup_decisions.json")),
                (1, 1)
            );
        } else {
            assert_eq!(got.rows("tamper_events.json"), 1, "{got:?}");
        }
        let files = |dir: &std::path::Path| -> Vec<(String, Vec<u8>)> {
            let mut out = Vec::new();
            for sub in ["", "screenshots"] {
                let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                    continue;
                };
                for e in entries {
                    let path = e.unwrap().path();
                    if path.is_file() && !path.ends_with("README.txt") {
                        let name = path.strip_prefix(dir).unwrap().display().to_string();
                        out.push((name, std::fs::read(&path).unwrap()));
                    }
                }
            }
            out.sort();
            out
        };
        let (a, b) = (files(&lite), files(&pg));
        assert_eq!(
            a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            b.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(
                x == y,
                "{user}: {name} differs:\n{}\n---\n{}",
                String::from_utf8_lossy(x),
                String::from_utf8_lossy(y)
            );
        }
    }
    // The laptop's enrollment came along: its certificate's device is known.
    assert!(trust.revoked_devices().unwrap().is_empty());
    assert_eq!(trust.devices(now).unwrap()[0].id, laptop);
    // The copied sequences go on: new audit lines and triage follow the old.
    trust
        .audit_now("lead", AuditAction::ViewCapture, "x", "after", "web")
        .unwrap();
    assert!(
        trust
            .triage(
                first,
                &Triage {
                    status: Status::FalsePositive,
                    note: "on reflection".into(),
                    action: None,
                    actor: "lead".into(),
                    time: UnixMillis(T0 + 5),
                },
            )
            .unwrap()
    );
    assert_eq!(trust.capture(first).unwrap().unwrap().history.len(), 2);

    // A database that holds a console's records is not written over.
    let again = console_server::migrate::to_postgres(tmp.path(), &database.url)
        .unwrap_err()
        .to_string();
    assert!(again.contains("already holds"), "{again}");
}
