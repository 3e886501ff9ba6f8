//! The store on its own: retention, offline alerts, the append-only audit
//! log, tokens, idempotent ingest. Each test runs on a real SQLite file in
//! a temporary directory and, where its part of the store is written for
//! both, again on a fresh database of a real PostgreSQL server (see
//! `common::stores`; the lists at the end say which run where). Times are
//! passed in, so nothing waits on a clock.

mod common;

use common::stores::{Harness, Kind};

use std::sync::Arc;

use console_server::store::register::RegisterStore;
use console_server::store::retention::RecordRetention;
use console_server::store::sql_store::SqlStore;
use console_server::store::tokens::*;
use console_server::store::*;
use protocol::{AgentMessage, Capture, Screenshot, Source, UnixMillis};
use uuid::Uuid;

const DAY: i64 = 24 * 3600 * 1000;

fn capture_at(time: UnixMillis) -> Capture {
    common::captures::capture(
        "pupil",
        time,
        Screenshot::Png(b"\x89PNG\r\n\x1a\nimage".to_vec()),
    )
}

fn ingest(store: &SqlStore, device: Uuid, c: &Capture) -> Stored {
    store
        .store_batch(&[Incoming {
            device,
            received: UnixMillis::now(),
            message: AgentMessage::Capture(c.clone()),
        }])
        .unwrap()[0]
}

fn a_resend_is_a_duplicate_and_keeps_the_first_copy(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let device = Uuid::now_v7();
    let c = capture_at(UnixMillis::now());
    assert_eq!(ingest(store, device, &c), Stored::New);
    let mut resend = c.clone();
    resend.context = "changed".into();
    assert_eq!(ingest(store, device, &resend), Stored::Duplicate);
    let stored = store.capture(c.id).unwrap().unwrap();
    assert_eq!(stored.summary.context, "kms");
    // Twice in one batch: one row.
    let d = capture_at(UnixMillis::now());
    let item = Incoming {
        device,
        received: UnixMillis::now(),
        message: AgentMessage::Capture(d.clone()),
    };
    let out = store.store_batch(&[item.clone(), item]).unwrap();
    assert_eq!(out, vec![Stored::New, Stored::Duplicate]);
    assert_eq!(h.image_count(), 2);
}

fn retention_deletes_by_status_and_age_with_images_and_audit(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let device = Uuid::now_v7();
    let now = UnixMillis::now();
    let old_fp = capture_at(UnixMillis(now.0 - 31 * DAY));
    let young_fp = capture_at(UnixMillis(now.0 - 29 * DAY));
    let old_new = capture_at(UnixMillis(now.0 - 91 * DAY));
    let young_new = capture_at(UnixMillis(now.0 - 89 * DAY));
    let ancient_violation = capture_at(UnixMillis(now.0 - 3000 * DAY));
    for c in [&old_fp, &young_fp, &old_new, &young_new, &ancient_violation] {
        ingest(store, device, c);
    }
    let mark = |id, status| {
        store
            .triage(
                id,
                &Triage {
                    status,
                    note: String::new(),
                    action: None,
                    actor: "lead".into(),
                    time: now,
                },
            )
            .unwrap()
    };
    assert!(mark(old_fp.id, Status::FalsePositive));
    assert!(mark(young_fp.id, Status::FalsePositive));
    assert!(mark(ancient_violation.id, Status::Violation));
    assert_eq!(h.image_count(), 5);

    let deleted = store.expire(&Retention::default(), now).unwrap();
    let mut gone: Vec<Uuid> = deleted.iter().map(|d| d.id).collect();
    gone.sort();
    let mut expected = vec![old_fp.id, old_new.id];
    expected.sort();
    assert_eq!(gone, expected);
    for c in [&young_fp, &young_new, &ancient_violation] {
        assert!(store.capture(c.id).unwrap().is_some());
    }
    assert!(store.capture(old_fp.id).unwrap().is_none());
    assert_eq!(h.image_count(), 3, "images go with their rows");
    let audit = store.audit_events(100).unwrap();
    let retention: Vec<_> = audit.iter().filter(|e| e.actor == "retention").collect();
    assert_eq!(retention.len(), 2);
    assert!(retention.iter().all(|e| e.action == "delete_capture"));
    // Running again deletes nothing more.
    assert!(store.expire(&Retention::default(), now).unwrap().is_empty());
}

fn the_audit_log_cannot_be_changed_or_deleted(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    store
        .audit(&AuditEntry {
            time: UnixMillis::now(),
            actor: "a",
            action: AuditAction::ViewCapture,
            target: "x",
            detail: "",
            origin: "cli",
        })
        .unwrap();
    for sql in ["UPDATE audit SET actor = 'b'", "DELETE FROM audit"] {
        let err = h.execute(sql).unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.audit_events(10).unwrap().len(), 1);
}

fn silent_devices_raise_an_offline_alert_once_and_a_back_online_one(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let device = Uuid::now_v7();
    let t0 = UnixMillis(1_800_000_000_000);
    store
        .add_device(device, "lab-01", "Debian", "1", t0)
        .unwrap();
    store.device_connected(device, "1", t0).unwrap();
    let minutes = |m: i64| UnixMillis(t0.0 + m * 60_000);
    // Heard from just now: comes online.
    let events = store.update_presence(minutes(-15), t0).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "device_online");
    // Ten minutes of silence: nothing yet.
    assert!(
        store
            .update_presence(minutes(-5), minutes(10))
            .unwrap()
            .is_empty()
    );
    // Sixteen minutes: one offline alert, naming the laptop; not repeated.
    let events = store.update_presence(minutes(1), minutes(16)).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "device_offline");
    assert!(events[0].detail.contains("lab-01"));
    assert!(
        store
            .update_presence(minutes(2), minutes(17))
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.events(10).unwrap().len(), 2);
    // Listed offline, then online once it connects again.
    assert!(!store.devices(minutes(1)).unwrap()[0].online);
    store.device_connected(device, "1", minutes(20)).unwrap();
    assert!(store.devices(minutes(5)).unwrap()[0].online);
    let events = store.update_presence(minutes(5), minutes(20)).unwrap();
    assert_eq!(events[0].kind, "device_online");
}

fn enroll(store: &SqlStore, hash: &str, device: Uuid, now: UnixMillis) -> Result<(), TokenRefusal> {
    store
        .enroll_device(
            hash,
            &NewDevice {
                id: device,
                hostname: "lab-01",
                os: "Debian",
                agent_version: "1",
            },
            &AuditEntry {
                time: now,
                actor: "enrollment",
                action: AuditAction::EnrollDevice,
                target: &device.to_string(),
                detail: "",
                origin: "test",
            },
            now,
        )
        .unwrap()
}

fn an_enrollment_token_is_used_once_even_under_a_race(kind: Kind) {
    let h = Harness::new(kind);
    let store = Arc::new(h.store);
    let now = UnixMillis::now();
    store
        .add_enroll_token("hash", UnixMillis(now.0 + 60_000), None, now)
        .unwrap();
    let winners: usize = (0..8)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                enroll(&store, "hash", Uuid::now_v7(), UnixMillis::now()).is_ok()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| usize::from(t.join().unwrap()))
        .sum();
    assert_eq!(winners, 1);
    assert_eq!(store.devices(now).unwrap().len(), 1, "one device recorded");
    assert_eq!(
        enroll(&store, "nope", Uuid::now_v7(), now),
        Err(TokenRefusal::Unknown)
    );
    store
        .add_enroll_token("old", UnixMillis(now.0 - 1), None, UnixMillis(now.0 - 10))
        .unwrap();
    assert!(matches!(
        enroll(&store, "old", Uuid::now_v7(), now),
        Err(TokenRefusal::Expired(_))
    ));
}

fn an_enrollment_that_cannot_be_recorded_leaves_its_token_unused_and_revoked_ones_fail(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let now = UnixMillis::now();
    let hash = "a1b2c3d4e5f6a7b8c9d0";
    store
        .add_enroll_token(hash, UnixMillis(now.0 + 60_000), None, now)
        .unwrap();
    // The device cannot be stored (its id is taken): nothing is used up.
    let taken = Uuid::now_v7();
    store.add_device(taken, "old", "Debian", "1", now).unwrap();
    let failed = store.enroll_device(
        hash,
        &NewDevice {
            id: taken,
            hostname: "lab-02",
            os: "Debian",
            agent_version: "1",
        },
        &AuditEntry {
            time: now,
            actor: "enrollment",
            action: AuditAction::EnrollDevice,
            target: "",
            detail: "",
            origin: "test",
        },
        now,
    );
    assert!(failed.is_err(), "{failed:?}");
    let listed = store.enroll_tokens(now).unwrap();
    assert_eq!(listed.len(), 1, "the token is still usable");
    assert_eq!(listed[0].id, &hash[..12]);
    assert_eq!(
        store
            .audit_query(&AuditQuery {
                action: Some(AuditAction::EnrollDevice),
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap()
            .len(),
        0,
        "no audit line for an enrollment that did not happen"
    );
    // Revoked by its id, it enrolls nobody.
    assert!(!store.revoke_enroll_token("zz", now).unwrap(), "not an id");
    assert!(store.revoke_enroll_token(&hash[..12], now).unwrap());
    assert!(store.enroll_tokens(now).unwrap().is_empty());
    assert!(matches!(
        enroll(store, hash, Uuid::now_v7(), now),
        Err(TokenRefusal::Revoked(_))
    ));
}

fn an_api_token_works_only_while_live_and_while_its_owner_may(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let now = UnixMillis::now();
    store
        .add_user("lead", Role::Reviewer, "x", None, now)
        .unwrap();
    let add = |name: &str, role, owner, hash: &str, expires: i64| {
        store
            .add_api_token(
                &NewApiToken {
                    name,
                    role,
                    owner,
                    hash,
                    expires: UnixMillis(expires),
                    school: None,
                },
                now,
            )
            .unwrap();
    };
    add(
        "lead-script",
        Role::Reviewer,
        Some("lead"),
        "aaaaaaaaaaaa01",
        now.0 + 60_000,
    );
    add(
        "nightly",
        Role::Auditor,
        None,
        "bbbbbbbbbbbb02",
        now.0 + 60_000,
    );
    add("old", Role::Admin, None, "cccccccccccc03", now.0 - 1);
    let check = |hash: &str| store.check_api_token(hash, now).unwrap();
    assert_eq!(
        check("aaaaaaaaaaaa01"),
        ApiTokenCheck::Valid {
            name: "lead-script".into(),
            role: Role::Reviewer,
            owner: Some("lead".into()),
            school: None,
        }
    );
    assert!(matches!(check("cccccccccccc03"), ApiTokenCheck::Refused(w) if w.contains("expired")));
    assert!(matches!(check("dddd"), ApiTokenCheck::Refused(w) if w.contains("unknown")));
    // The owner disabled: the token stops; enabled again, it works.
    store.set_staff_disabled("lead", true, now).unwrap();
    assert!(matches!(check("aaaaaaaaaaaa01"), ApiTokenCheck::Refused(w) if w.contains("disabled")));
    store.set_staff_disabled("lead", false, now).unwrap();
    assert!(matches!(
        check("aaaaaaaaaaaa01"),
        ApiTokenCheck::Valid { .. }
    ));
    // The owner made an auditor: a reviewer's token no longer works.
    store.set_staff_role("lead", Role::Auditor).unwrap();
    assert!(
        matches!(check("aaaaaaaaaaaa01"), ApiTokenCheck::Refused(w) if w.contains("no longer holds"))
    );
    // Listed with owner, expiry and last use; revoked by name.
    store.touch_api_token("bbbbbbbbbbbb02", now).unwrap();
    let listed = store.api_tokens(now).unwrap();
    let nightly = listed.iter().find(|t| t.name == "nightly").unwrap();
    assert_eq!(nightly.id, "bbbbbbbbbbbb");
    assert!(nightly.live && nightly.last_used.is_some() && nightly.owner.is_none());
    assert!(!listed.iter().find(|t| t.name == "old").unwrap().live);
    assert_eq!(
        store.revoke_api_tokens(Some("nightly"), None, now).unwrap(),
        1
    );
    assert_eq!(
        store.revoke_api_tokens(Some("nightly"), None, now).unwrap(),
        0
    );
    assert!(matches!(check("bbbbbbbbbbbb02"), ApiTokenCheck::Refused(w) if w.contains("revoked")));
}

fn a_newer_schema_is_refused_not_damaged(kind: Kind) {
    let h = Harness::new(kind);
    match kind {
        Kind::Sqlite => h.execute("PRAGMA user_version = 99").map(|_| ()),
        Kind::Postgres => h
            .execute("UPDATE schema_version SET version = 99")
            .map(|_| ()),
    }
    .unwrap();
    let err = h.open_again().map(|_| ()).unwrap_err();
    assert!(err.contains("newer console"), "{err}");
    // Still the data of before.
    assert_eq!(h.store.policy().unwrap().version, 1);
}

fn policies_are_versioned(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let first = store.policy().unwrap();
    assert_eq!(first.version, 1);
    let mut next = first.clone();
    next.min_severity = 2;
    let saved = store.set_policy(next, UnixMillis::now()).unwrap();
    assert_eq!(saved.version, 2);
    assert_eq!(store.policy().unwrap(), saved);
    assert_eq!(h.open_again().unwrap().policy().unwrap().version, 2);
}

fn captures_are_listed_by_how_they_were_seen(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let device = Uuid::now_v7();
    let mut ids = Vec::new();
    for source in [
        Source::Typed,
        Source::ScreenText,
        Source::WindowTitle,
        Source::Clipboard,
    ] {
        let mut c = capture_at(UnixMillis::now());
        c.source = source;
        ingest(store, device, &c);
        ids.push((source, c.id));
    }
    let listed = |filter: &str| -> Vec<String> {
        store
            .captures(&CaptureQuery {
                sources: source_filter(filter).unwrap(),
                limit: 10,
                ..CaptureQuery::default()
            })
            .unwrap()
            .into_iter()
            .map(|c| c.source)
            .collect()
    };
    assert_eq!(
        listed(""),
        ["clipboard", "window_title", "screen_text", "typed"]
    );
    assert_eq!(listed("viewed"), ["window_title", "screen_text"]);
    assert_eq!(listed("typed"), ["typed"]);
    assert_eq!(listed("screen_text"), ["screen_text"]);
    let err = source_filter("seen'); DROP TABLE captures; --").unwrap_err();
    assert!(err.contains("not one of viewed, typed"), "{err}");
}

fn a_tamper_event_is_acknowledged_once_and_open_ones_are_listed_apart(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let device = Uuid::now_v7();
    let event = |t: i64| protocol::TamperEvent {
        id: Uuid::now_v7(),
        time: UnixMillis(t),
        user: Some("pupil".into()),
        kind: protocol::TamperKind::AgentKilled,
        detail: "killed".into(),
    };
    let (first, second) = (event(1_000), event(2_000));
    for e in [&first, &second] {
        let got = store
            .store_batch(&[Incoming {
                device,
                received: UnixMillis::now(),
                message: AgentMessage::TamperEvent(e.clone()),
            }])
            .unwrap();
        assert_eq!(got, vec![Stored::New]);
    }
    let all = |open_only| {
        store
            .tamper_events(&TamperQuery {
                open_only,
                device: None,
                limit: 10,
                ..TamperQuery::default()
            })
            .unwrap()
    };
    assert_eq!(
        all(false).iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![second.id, first.id],
        "newest first"
    );
    assert!(
        store
            .acknowledge_tamper(first.id, "lead", "spoke to them", UnixMillis(3_000))
            .unwrap()
    );
    // A second acknowledgement (a stale tab) changes nothing.
    assert!(
        !store
            .acknowledge_tamper(first.id, "other", "again", UnixMillis(4_000))
            .unwrap()
    );
    let row = store.tamper_event(first.id).unwrap().unwrap();
    assert_eq!(row.acknowledged_by.as_deref(), Some("lead"));
    assert_eq!(row.acknowledged_note.as_deref(), Some("spoke to them"));
    assert!(
        !store
            .acknowledge_tamper(Uuid::now_v7(), "lead", "", UnixMillis(5_000))
            .unwrap()
    );
    assert_eq!(
        all(true).iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![second.id]
    );
    let other = store
        .tamper_events(&TamperQuery {
            open_only: false,
            device: Some(Uuid::now_v7()),
            limit: 10,
            ..TamperQuery::default()
        })
        .unwrap();
    assert!(other.is_empty(), "another device's list is empty");
}

fn a_laptop_silent_while_a_user_is_logged_in_is_a_gap_closed_when_it_is_heard_again(kind: Kind) {
    use protocol::{DeviceHealth, Heartbeat, SessionHealth};
    let h = Harness::new(kind);
    let store = &h.store;
    let t0 = UnixMillis::now().0 - DAY;
    let (watched, idle, old_agent) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let health = |users: &[&str]| {
        AgentMessage::Health(DeviceHealth {
            time: UnixMillis(t0),
            supervising: true,
            sessions: users
                .iter()
                .map(|u| SessionHealth {
                    user: (*u).into(),
                    display: ":0".into(),
                    monitored: true,
                    supervised: true,
                    helper_pid: Some(42),
                    heard_seconds_ago: Some(1),
                })
                .collect(),
            page_readers: vec![],
            refused: 0,
            semantic: String::new(),
        })
    };
    let heartbeat = |user: Option<&str>| {
        AgentMessage::Heartbeat(Heartbeat {
            time: UnixMillis(t0),
            hostname: "lab-1".into(),
            os: "Debian".into(),
            agent_version: "0.1.0".into(),
            user: user.map(Into::into),
            uptime_seconds: 1,
            load: [0.0; 3],
            memory_total_bytes: 1,
            memory_used_bytes: 1,
            spool_depth: 0,
            spool_dropped: 0,
            policy_version: 1,
        })
    };
    let heard = |device: Uuid, at: i64, message: AgentMessage| {
        store
            .store_batch(&[Incoming {
                device,
                received: UnixMillis(at),
                message,
            }])
            .unwrap();
    };
    for d in [watched, idle, old_agent] {
        store.device_connected(d, "0.1.0", UnixMillis(t0)).unwrap();
    }
    heard(watched, t0, heartbeat(Some("amy")));
    heard(watched, t0, health(&["amy"]));
    // Someone was logged in once, but the latest health lists no session
    // (logged out, or the service stopping in good order).
    heard(idle, t0, heartbeat(Some("ben")));
    heard(idle, t0, health(&[]));
    // An agent too old to send health: its heartbeat's user counts.
    heard(old_agent, t0, heartbeat(Some("cat")));

    let check = |cutoff: i64, heard_since: i64| {
        store
            .update_silence(
                UnixMillis(cutoff),
                UnixMillis(heard_since),
                UnixMillis(cutoff),
            )
            .unwrap()
    };
    assert!(check(t0, 0).is_empty(), "heard at the cutoff is not silent");
    assert!(
        check(t0 + 1, t0 + 1).is_empty(),
        "silent since before the console started: not judged"
    );
    let opened = check(t0 + 1, 0);
    assert_eq!(opened.len(), 2, "the watched laptop and the old agent's");
    let events: Vec<TamperRow> = opened
        .iter()
        .map(|id| store.tamper_event(*id).unwrap().unwrap())
        .collect();
    let amy = events.iter().find(|e| e.device == watched).unwrap();
    assert_eq!(amy.kind, "DeviceSilent");
    assert_eq!(amy.user.as_deref(), Some("amy"));
    assert!(
        amy.detail.contains("while amy was logged in"),
        "{}",
        amy.detail
    );
    assert!(
        events
            .iter()
            .any(|e| e.device == old_agent && e.user.as_deref() == Some("cat"))
    );
    let silent_since = |d: Uuid| {
        store
            .devices(UnixMillis(0))
            .unwrap()
            .into_iter()
            .find(|x| x.id == d)
            .unwrap()
            .silent_since
    };
    assert!(silent_since(watched).is_some());
    assert!(silent_since(idle).is_none());
    assert!(check(t0 + 60_000, 0).is_empty(), "one gap, one event");

    // Heard again five minutes after it went quiet: the gap closes, and
    // its length is written into the event staff already have.
    heard(watched, t0 + 300_000, heartbeat(Some("amy")));
    assert!(check(t0 + 1, 0).is_empty());
    let closed = store.tamper_event(amy.id).unwrap().unwrap();
    assert!(
        closed.detail.contains("heard again") && closed.detail.contains("after 5 min 0 s"),
        "{}",
        closed.detail
    );
    assert!(silent_since(watched).is_none());
    assert!(silent_since(old_agent).is_some(), "still silent");
    // Silent again later: a new gap.
    assert_eq!(check(t0 + 300_001, 0).len(), 1);
}

fn the_audit_filter_finds_an_action_under_every_name_it_was_written_with(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    // A line written by an earlier version, which spelt it `enrol`.
    h.execute(
        "INSERT INTO audit (time, actor, action, target, detail, origin)
         VALUES (1, 'it', 'mint_enrol_token', '', 'old', 'cli')",
    )
    .unwrap();
    store
        .audit_now("it", AuditAction::MintEnrollToken, "", "new", "web")
        .unwrap();
    store
        .audit_now("it", AuditAction::RevokeDevice, "", "other", "web")
        .unwrap();
    let found = store
        .audit_query(&AuditQuery {
            action: Some(AuditAction::MintEnrollToken),
            limit: 10,
            ..AuditQuery::default()
        })
        .unwrap();
    let details: Vec<&str> = found.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["new", "old"]);
}

fn retention_reaches_tamper_events_aup_answers_events_and_unimported_accounts(kind: Kind) {
    use protocol::{Audience, AupDecision, Decision, TamperEvent, TamperKind};
    let h = Harness::new(kind);
    let store = &h.store;
    let now = UnixMillis::now();
    let old = UnixMillis(now.0 - 500 * DAY);
    let recent = UnixMillis(now.0 - DAY);
    let device = Uuid::now_v7();
    let tamper = |t: UnixMillis| {
        AgentMessage::TamperEvent(TamperEvent {
            id: Uuid::now_v7(),
            time: t,
            user: Some("amy".into()),
            kind: TamperKind::AgentKilled,
            detail: "killed".into(),
        })
    };
    let answer = |t: UnixMillis, user: &str| {
        AgentMessage::AupDecision(AupDecision {
            id: Uuid::now_v7(),
            time: t,
            user: user.into(),
            audience: Audience::Pupils,
            aup_version: 1,
            decision: Decision::Accept,
        })
    };
    let batch: Vec<Incoming> = [
        (old, tamper(old)),
        (recent, tamper(recent)),
        (old, answer(old, "gone.pupil")),
        (recent, answer(recent, "amy")),
    ]
    .into_iter()
    .map(|(received, message)| Incoming {
        device,
        received,
        message,
    })
    .collect();
    store.store_batch(&batch).unwrap();
    let done = store.expire_records(&Retention::default(), now).unwrap();
    let count = |what: &str| done.iter().find(|(w, _)| *w == what).map(|(_, n)| *n);
    assert_eq!(count("tamper events"), Some(1));
    assert_eq!(count("AUP answers"), Some(1));
    assert_eq!(
        count("register entries never imported"),
        Some(1),
        "gone.pupil, last seen 500 days ago: {done:?}"
    );
    let left = store
        .tamper_events(&TamperQuery {
            open_only: false,
            device: None,
            limit: 10,
            ..TamperQuery::default()
        })
        .unwrap();
    assert_eq!(left.len(), 1);
    let accounts: Vec<String> = store
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.account)
        .collect();
    assert_eq!(accounts, ["amy"]);
    let lines = store
        .audit_query(&AuditQuery {
            action: Some(AuditAction::ExpireRecords),
            limit: 10,
            ..AuditQuery::default()
        })
        .unwrap();
    assert_eq!(lines.len(), 3, "one line per kind");
    // Nothing older remains: a second run deletes nothing.
    assert!(
        store
            .expire_records(&Retention::default(), now)
            .unwrap()
            .is_empty()
    );
}

fn screenshot_files_no_capture_names_are_swept_and_named_ones_kept(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let device = Uuid::now_v7();
    let kept = capture_at(UnixMillis::now());
    assert_eq!(ingest(store, device, &kept), Stored::New);
    // A file left behind by a stop between deleting a row and its file,
    // and an unfinished write.
    let images = h.images();
    let orphan = Uuid::now_v7();
    images
        .put_all(&[(orphan, b"\x89PNG\r\n\x1a\nlost")])
        .unwrap();
    let shard = std::fs::read_dir(h.tmp.path().join("images"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(shard.join(format!("{}.png.tmp", Uuid::now_v7())), b"half").unwrap();
    assert_eq!(h.image_count(), 3);
    // Files written after the cut-off are not touched.
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    assert_eq!(store.sweep_images(past, UnixMillis::now()).unwrap(), 0);
    assert_eq!(h.image_count(), 3);
    let future = std::time::SystemTime::now() + std::time::Duration::from_secs(1);
    assert_eq!(store.sweep_images(future, UnixMillis::now()).unwrap(), 1);
    assert_eq!(h.image_count(), 1, "the capture's screenshot stays");
    assert!(store.capture_image(kept.id).unwrap().is_some());
}

fn a_stored_value_no_console_wrote_is_an_error_not_a_default(kind: Kind) {
    let h = Harness::new(kind);
    let store = &h.store;
    let now = UnixMillis::now();
    store
        .add_user("lead", Role::Reviewer, "x", None, now)
        .unwrap();
    let c = capture_at(now);
    assert_eq!(ingest(store, Uuid::now_v7(), &c), Stored::New);
    // A role nobody gave must not quietly become one (it was read as auditor).
    h.execute("UPDATE users SET role = 'superuser'").unwrap();
    let err = store.staff_account("lead").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("superuser")),
        "{err}"
    );
    // A status nobody wrote must not read as unreviewed.
    h.execute("UPDATE captures SET status = 'maybe'").unwrap();
    let err = store.capture(c.id).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("maybe")),
        "{err}"
    );
    assert!(matches!(
        store.capture_counts(&scope::Scope::all()),
        Err(StoreError::Corrupt(_))
    ));
}

/// Issue 25, part 3: two schools of a trust on one store. Each laptop is
/// the school's its enrolment token named, and every record made on it
/// with it; a school's staff see their school's captures, tamper events,
/// AUP answers, laptops, accounts and audit lines only, and the trust's
/// staff see both. Each check is made on both schools, so none could pass
/// by showing nothing.
fn each_school_sees_only_its_own_records_and_the_trust_sees_all(kind: Kind) {
    use console_server::store::schools::SchoolStore;
    use console_server::store::scope::{self, Scope, ScopeStore};
    let h = Harness::new(kind);
    let s = &h.store;
    let now = UnixMillis::now();
    let later = UnixMillis(now.0 + 60_000);
    let who = ("trust-it", "cli");

    // A school that does not exist is refused everywhere one is named.
    let refused = s.add_enroll_token("t", later, Some("north"), now);
    assert!(
        matches!(&refused, Err(StoreError::Refused(m)) if m.contains("no schools")),
        "{refused:?}"
    );
    s.add_school("north", "North Academy", who, now).unwrap();
    s.add_school("south", "South School", who, now).unwrap();
    for (id, name) in [("north", "Again"), ("North!", "Bad"), ("", "Empty")] {
        assert!(
            matches!(
                s.add_school(id, name, who, now),
                Err(StoreError::Refused(_))
            ),
            "{id:?} must be refused"
        );
    }
    let refused = s.add_user("x", Role::Admin, "h", Some("east"), now);
    assert!(
        matches!(&refused, Err(StoreError::Refused(m)) if m.contains("north, south")),
        "{refused:?}"
    );

    // North's own lead is told of North's laptops only; the trust's team
    // of every school's.
    use console_server::alerts::rules::{AlertEvent, AlertRule, RuleSet};
    use console_server::store::alerts::AlertStore;
    let told = |name: &str, schools: &[&str]| AlertRule {
        name: name.into(),
        events: vec![AlertEvent::Capture, AlertEvent::Tamper],
        email_to: vec![format!("{name}@trust.example")],
        schools: schools.iter().map(|s| (*s).to_owned()).collect(),
        ..AlertRule::default()
    };
    s.set_alert_rules(RuleSet {
        rules: vec![told("north-lead", &["north"]), told("trust-team", &[])],
        ..RuleSet::default()
    });

    // A laptop, a capture, a tamper event and an AUP answer at each school.
    let mut laptops = Vec::new();
    let mut captures = Vec::new();
    let mut tampers = Vec::new();
    for school in ["north", "south"] {
        let hash = format!("token-{school}");
        s.add_enroll_token(&hash, later, Some(school), now).unwrap();
        let laptop = Uuid::now_v7();
        s.enroll_device(
            &hash,
            &NewDevice {
                id: laptop,
                hostname: &format!("{school}-laptop"),
                os: "linux",
                agent_version: "1",
            },
            &AuditEntry {
                time: now,
                actor: "enrollment",
                action: AuditAction::EnrollDevice,
                target: &laptop.to_string(),
                detail: school,
                origin: "test",
            },
            now,
        )
        .unwrap()
        .unwrap();
        let mut c = capture_at(now);
        c.user = format!("{school}.pupil");
        c.context = format!("{school} words");
        let tamper = protocol::TamperEvent {
            id: Uuid::now_v7(),
            time: now,
            user: Some(c.user.clone()),
            kind: protocol::TamperKind::AgentKilled,
            detail: format!("{school} tamper"),
        };
        let answer = protocol::AupDecision {
            id: Uuid::now_v7(),
            time: now,
            user: c.user.clone(),
            audience: protocol::Audience::Pupils,
            aup_version: 1,
            decision: protocol::Decision::Accept,
        };
        let stored = s
            .store_batch(
                &[
                    AgentMessage::Capture(c.clone()),
                    AgentMessage::TamperEvent(tamper.clone()),
                    AgentMessage::AupDecision(answer),
                ]
                .map(|message| Incoming {
                    device: laptop,
                    received: now,
                    message,
                }),
            )
            .unwrap();
        assert_eq!(stored, vec![Stored::New; 3]);
        laptops.push(laptop);
        captures.push(c);
        tampers.push(tamper);
    }
    let alerts = s.alerts(100).unwrap();
    for (i, c) in captures.iter().enumerate() {
        let mut rules: Vec<&str> = alerts
            .iter()
            .filter(|a| a.record == c.id.to_string())
            .map(|a| a.rule.as_str())
            .collect();
        rules.sort();
        let want: &[&str] = if i == 0 {
            &["north-lead", "trust-team"]
        } else {
            &["trust-team"]
        };
        assert_eq!(rules, want, "who is told of capture {i}");
    }
    assert_eq!(
        alerts.len(),
        6,
        "three for each school's capture and tamper event: {alerts:?}"
    );
    s.add_user("north-dsl", Role::Admin, "h", Some("north"), now)
        .unwrap();
    s.add_user("south-dsl", Role::Reviewer, "h", Some("south"), now)
        .unwrap();
    s.add_user("trust-dsl", Role::Admin, "h", None, now)
        .unwrap();
    assert_eq!(
        s.staff_account("north-dsl")
            .unwrap()
            .unwrap()
            .school
            .as_deref(),
        Some("north")
    );
    let listed = s.schools().unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|l| (l.id.as_str(), l.devices, l.staff))
            .collect::<Vec<_>>(),
        [("north", 1, 1), ("south", 1, 1)]
    );

    let trust = scope::scope_of(s, "trust-dsl", Role::Admin).unwrap();
    assert!(trust.is_all(), "the trust's staff see every school");
    for (i, (name, role)) in [("north-dsl", Role::Admin), ("south-dsl", Role::Reviewer)]
        .into_iter()
        .enumerate()
    {
        let school = ["north", "south"][i];
        let (mine, theirs) = (i, 1 - i);
        let scope = scope::scope_of(s, name, role).unwrap();
        assert_eq!(scope.school(), Some(school));
        let listed = s
            .captures(&CaptureQuery {
                limit: 100,
                scope: scope.clone(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            listed.iter().map(|c| c.id).collect::<Vec<_>>(),
            [captures[mine].id],
            "{name}: captures"
        );
        let counted: u64 = s
            .capture_counts(&scope)
            .unwrap()
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(counted, 1, "{name}: counts");
        assert!(s.capture_in_scope(captures[mine].id, &scope).unwrap());
        assert!(!s.capture_in_scope(captures[theirs].id, &scope).unwrap());
        assert!(s.tamper_in_scope(tampers[mine].id, &scope).unwrap());
        assert!(!s.tamper_in_scope(tampers[theirs].id, &scope).unwrap());
        let t = s
            .tamper_events(&TamperQuery {
                limit: 100,
                scope: scope.clone(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(
            t.iter().map(|t| t.id).collect::<Vec<_>>(),
            [tampers[mine].id]
        );
        let answers = s.aup_decisions(100, &scope).unwrap();
        assert_eq!(
            answers.iter().map(|a| a.user.as_str()).collect::<Vec<_>>(),
            [captures[mine].user.as_str()]
        );
        let devices = scope::devices_in_scope(s, UnixMillis(0), &scope).unwrap();
        assert_eq!(
            devices.iter().map(|d| d.id).collect::<Vec<_>>(),
            [laptops[mine]]
        );
        assert_eq!(devices[0].school.as_deref(), Some(school));
        let accounts = s.scope_accounts(&scope).unwrap().unwrap();
        assert!(
            accounts.contains(&captures[mine].user),
            "{name}: {accounts:?}"
        );
        assert!(
            !accounts.contains(&captures[theirs].user),
            "{name}: {accounts:?}"
        );
        // The audit lines about each laptop are its school's.
        let lines = s
            .audit_query(&AuditQuery {
                school: Some(school.into()),
                limit: 100,
                ..Default::default()
            })
            .unwrap();
        assert!(
            lines.iter().any(|l| l.target == laptops[mine].to_string()),
            "{lines:?}"
        );
        assert!(
            !lines
                .iter()
                .any(|l| l.target == laptops[theirs].to_string())
        );
    }
    // The trust sees both.
    let all = s
        .captures(&CaptureQuery {
            limit: 100,
            scope: trust.clone(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        scope::devices_in_scope(s, UnixMillis(0), &trust)
            .unwrap()
            .len(),
        2
    );
    // A school's scope within it still narrows by group.
    let grouped = Scope::of(&["accounts:none".into()])
        .unwrap()
        .in_school(Some("north".into()));
    assert!(!s.capture_in_scope(captures[0].id, &grouped).unwrap());

    // A school imports its own register only: an account on another
    // school's register refuses the whole import.
    let person = |account: &str| register::PersonRecord {
        account: account.into(),
        name: account.into(),
        year_group: "Year 7".into(),
        role: register::PersonRole::Pupil,
    };
    let import = |people: &[register::PersonRecord], school| {
        s.import_people(
            people,
            Some(school),
            &AuditEntry {
                time: now,
                actor: "it",
                action: AuditAction::ImportRegister,
                target: "",
                detail: "",
                origin: "test",
            },
        )
    };
    import(&[person("north.new")], "north").unwrap();
    let refused = import(&[person("south.new"), person("north.new")], "south");
    assert!(
        matches!(&refused, Err(StoreError::Refused(m)) if m.contains("register of north")),
        "{refused:?}"
    );
    let south = scope::scope_of(s, "south-dsl", Role::Reviewer).unwrap();
    let north = scope::scope_of(s, "north-dsl", Role::Admin).unwrap();
    assert!(
        !s.scope_accounts(&south)
            .unwrap()
            .unwrap()
            .contains("south.new"),
        "nothing of a refused import is kept"
    );
    assert!(
        s.scope_accounts(&north)
            .unwrap()
            .unwrap()
            .contains("north.new")
    );
    assert!(
        !s.scope_accounts(&south)
            .unwrap()
            .unwrap()
            .contains("north.new")
    );

    // A school's policy layer is the group `school:ID`, which its laptops
    // are in; each laptop is sent its own school's register only.
    use console_server::store::groups::GroupStore;
    import(&[person("south.new")], "south").unwrap();
    let layer = protocol::layers::Overrides {
        min_severity: Some(4),
        ..Default::default()
    };
    s.set_layer("school:north", Some(&layer), who, now).unwrap();
    let refused = s.set_layer("school:east", Some(&layer), who, now);
    assert!(
        matches!(refused, Err(StoreError::Refused(_))),
        "{refused:?}"
    );
    assert!(
        Scope::of(&["school:north".into()]).is_err(),
        "a school is not a reviewer's group"
    );
    for (i, (mine, theirs)) in [("north", "south"), ("south", "north")]
        .into_iter()
        .enumerate()
    {
        let sent = s.layers_for_device(&laptops[i].to_string()).unwrap();
        assert!(
            sent.device_groups.contains(&format!("school:{mine}")),
            "{:?}",
            sent.device_groups
        );
        assert!(!sent.device_groups.contains(&format!("school:{theirs}")));
        let accounts: Vec<&str> = sent.accounts.iter().map(|(a, _)| a.as_str()).collect();
        assert!(
            accounts.contains(&format!("{mine}.new").as_str()),
            "{accounts:?}"
        );
        assert!(
            !accounts.contains(&format!("{theirs}.new").as_str()),
            "{accounts:?}"
        );
        let groups = s.device_groups(&laptops[i].to_string()).unwrap();
        assert_eq!(groups, [format!("school:{mine}")]);
    }
}

// Parts written for both databases.
on_both!(
    each_school_sees_only_its_own_records_and_the_trust_sees_all,
    an_api_token_works_only_while_live_and_while_its_owner_may,
    an_enrollment_that_cannot_be_recorded_leaves_its_token_unused_and_revoked_ones_fail,
    an_enrollment_token_is_used_once_even_under_a_race,
    the_audit_log_cannot_be_changed_or_deleted,
    policies_are_versioned,
    a_newer_schema_is_refused_not_damaged,
    the_audit_filter_finds_an_action_under_every_name_it_was_written_with,
    captures_are_listed_by_how_they_were_seen,
    a_tamper_event_is_acknowledged_once_and_open_ones_are_listed_apart,
    a_resend_is_a_duplicate_and_keeps_the_first_copy,
    retention_deletes_by_status_and_age_with_images_and_audit,
    silent_devices_raise_an_offline_alert_once_and_a_back_online_one,
    a_laptop_silent_while_a_user_is_logged_in_is_a_gap_closed_when_it_is_heard_again,
    retention_reaches_tamper_events_aup_answers_events_and_unimported_accounts,
    a_stored_value_no_console_wrote_is_an_error_not_a_default,
);

// Screenshots as files: the embedded store only (PostgreSQL keeps them in
// a table, swept by the same code).
on_sqlite!(screenshot_files_no_capture_names_are_swept_and_named_ones_kept);
