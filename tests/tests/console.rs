//! The console server end to end: the real binary, real TLS on loopback,
//! the real SQLite database, driven through its command line, its agent
//! port and its JSON API.

use std::time::Duration;

use protocol::device_link::{DeviceIdentity, DeviceLink};
use protocol::enroll::{DeviceFacts, EnrollToken, enroll};
use protocol::frame;
use protocol::{AgentMessage, ConsoleMessage, ProtocolError};
use tests::agent_process::{enroll_agent, enroll_agent_from_stdin};
use tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

fn facts(name: &str) -> DeviceFacts {
    DeviceFacts {
        hostname: name.into(),
        os: "Debian 13".into(),
        agent_version: "test".into(),
    }
}

async fn enroll_with(token: &str, name: &str) -> Result<DeviceIdentity, ProtocolError> {
    let token = EnrollToken::decode(token)?;
    let e = timeout(WAIT, enroll(&token, &facts(name)))
        .await
        .expect("enrollment answered within 20 s")?;
    Ok(DeviceIdentity {
        device_id: e.device_id,
        certificate_pem: e.certificate_pem,
        key_pem: e.key_pem,
        ca_pem: e.ca_pem,
    })
}

async fn link(console: &ConsoleProcess, id: &DeviceIdentity) -> Result<DeviceLink, ProtocolError> {
    timeout(
        WAIT,
        DeviceLink::connect(&console.agent_addr, id, "test", 0),
    )
    .await
    .expect("connection answered within 20 s")
}

/// Sends a message and waits for the console's next message.
async fn roundtrip(link: &mut DeviceLink, msg: AgentMessage) -> ConsoleMessage {
    link.send(&msg).await.expect("sent");
    timeout(WAIT, link.recv())
        .await
        .expect("the console answered within 20 s")
        .expect("the console answered")
}

fn started() -> (tempfile::TempDir, ConsoleProcess) {
    let tmp = tempfile::tempdir().unwrap();
    let console = ConsoleProcess::start(&tmp.path().join("data")).unwrap();
    (tmp, console)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_admits_each_laptop_once_and_refuses_bad_tokens() {
    let (_tmp, console) = started();
    let data = &console.data;

    // Happy path: enroll, connect with the new certificate, deliver a capture.
    let token = enroll_token(data, &console.agent_addr, "1h").unwrap();
    let laptop = enroll_with(&token, "lab-01").await.unwrap();
    let mut session = link(&console, &laptop).await.unwrap();
    assert!(session.policy.is_some(), "a new device gets the policy");
    let c = capture("i want to kms tonight", "kms", None);
    let id = c.id;
    assert_eq!(
        roundtrip(&mut session, AgentMessage::Capture(c)).await,
        ConsoleMessage::Ack(vec![id])
    );

    // The same token again: refused, saying it was used and by whom.
    let err = enroll_with(&token, "lab-02").await.unwrap_err().to_string();
    assert!(err.contains("already used"), "{err}");
    assert!(err.contains(&laptop.device_id.to_string()), "{err}");

    // Each laptop gets its own identity.
    let second = enroll_with(
        &enroll_token(data, &console.agent_addr, "1h").unwrap(),
        "lab-02",
    )
    .await
    .unwrap();
    assert_ne!(second.device_id, laptop.device_id);
    assert_ne!(second.certificate_pem, laptop.certificate_pem);

    // Expired.
    let short = enroll_token(data, &console.agent_addr, "1s").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let err = enroll_with(&short, "lab-03").await.unwrap_err().to_string();
    assert!(err.contains("expired"), "{err}");

    // Forged: the right console and CA, a secret it never issued.
    let mut forged = EnrollToken::decode(&token).unwrap();
    forged.secret = "made-up-secret".into();
    let err = enroll_with(&forged.encode(), "lab-04")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not issued by this console"), "{err}");

    // A token pinning another CA: the laptop refuses the console.
    let mut wrong_pin =
        EnrollToken::decode(&enroll_token(data, &console.agent_addr, "1h").unwrap()).unwrap();
    wrong_pin.ca_fingerprint = "00".repeat(32);
    let err = enroll_with(&wrong_pin.encode(), "lab-05")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("pinned"), "{err}");

    // A damaged token is refused before any connection.
    let err = enroll_with(&token[..token.len() - 3], "lab-06")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("damaged"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_laptop_is_cut_off_and_refused_at_the_handshake() {
    let (_tmp, console) = started();
    let laptop = enroll_with(
        &enroll_token(&console.data, &console.agent_addr, "1h").unwrap(),
        "lab-07",
    )
    .await
    .unwrap();
    let mut open = link(&console, &laptop).await.unwrap();
    let c = capture("kms", "kms", None);
    let id = c.id;
    assert_eq!(
        roundtrip(&mut open, AgentMessage::Capture(c)).await,
        ConsoleMessage::Ack(vec![id])
    );

    let data = console.data.to_str().unwrap();
    console_cli(
        &[
            "device",
            "revoke",
            "--data",
            data,
            &laptop.device_id.to_string(),
        ],
        None,
    )
    .unwrap();
    // The running console picks the revocation up within a few seconds;
    // the open session is told at its next record.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = roundtrip(
            &mut open,
            AgentMessage::Capture(capture("kms", "kms", None)),
        )
        .await;
        match reply {
            ConsoleMessage::Revoke { reason } => {
                assert!(reason.contains("revoked"), "{reason}");
                break;
            }
            ConsoleMessage::Ack(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still acked 20 s after revocation"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let err = link(&console, &laptop).await.unwrap_err().to_string();
    assert!(
        err.contains("CertificateRevoked"),
        "{err}\n{}",
        console.log_text()
    );
    let log = console.log_text();
    assert!(log.contains("revoked"), "the console logs why: {log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_device_certificate_get_nothing() {
    let (_tmp, console) = started();
    // A certificate from another CA: refused in the handshake.
    let stranger =
        identity_from(&protocol::pki::Authority::generate("Other school").unwrap()).unwrap();
    let mut foreign = stranger.clone();
    foreign.ca_pem = std::fs::read_to_string(console.data.join("ca.pem")).unwrap();
    assert!(link(&console, &foreign).await.is_err());

    // TLS without a certificate, speaking the device protocol: no Welcome.
    let config = protocol::tls::client_config(&foreign.ca_pem).unwrap();
    let tcp = TcpStream::connect(&console.agent_addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(protocol::tls::console_server_name(), tcp)
        .await
        .unwrap();
    let mut conn = protocol::Connection::new(tls);
    let hello = AgentMessage::Hello(protocol::Hello {
        protocol_version: protocol::PROTOCOL_VERSION,
        agent_version: "x".into(),
        device_id: uuid::Uuid::now_v7(),
        policy_version: 0,
    });
    conn.send(&hello).await.unwrap();
    let answer = timeout(WAIT, conn.read::<ConsoleMessage>()).await.unwrap();
    assert!(
        !matches!(answer, Ok(Some(ConsoleMessage::Welcome(_)))),
        "{answer:?}"
    );

    // Plain TCP: a Hello frame without TLS is not a TLS ClientHello.
    let mut tcp = TcpStream::connect(&console.agent_addr).await.unwrap();
    tcp.write_all(&frame::encode(&hello, frame::DEFAULT_MAX_FRAME).unwrap())
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    // At most a TLS alert (content type 21), never a frame.
    assert!(n == 0 || buf[0] == 21, "got {:?}", &buf[..n]);

    // And the console still serves enrolled laptops.
    let laptop = enroll_with(
        &enroll_token(&console.data, &console.agent_addr, "1h").unwrap(),
        "lab-08",
    )
    .await
    .unwrap();
    assert!(link(&console, &laptop).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_only_that_connection_and_bad_records_are_rejected() {
    let (_tmp, console) = started();
    let good_id = identity_from_ca(&console.data).unwrap();
    let bad_id = identity_from_ca(&console.data).unwrap();
    let mut good = link(&console, &good_id).await.unwrap();

    // Garbage inside a well-sized frame.
    let mut garbage = link(&console, &bad_id).await.unwrap();
    let mut raw = garbage.writer.into_inner();
    raw.write_all(&[0, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    raw.flush().await.unwrap();
    let closed = timeout(WAIT, garbage.reader.read::<ConsoleMessage>())
        .await
        .expect("the console closed the garbage connection within 20 s");
    assert!(matches!(closed, Ok(None) | Err(_)), "{closed:?}");

    // An oversized frame header: closed before any body is read.
    let mut big = link(&console, &bad_id).await.unwrap();
    let mut raw = big.writer.into_inner();
    raw.write_all(&(200u32 * 1024 * 1024).to_be_bytes())
        .await
        .unwrap();
    raw.flush().await.unwrap();
    let closed = timeout(WAIT, big.reader.read::<ConsoleMessage>())
        .await
        .expect("the console closed the oversized connection within 20 s");
    assert!(matches!(closed, Ok(None) | Err(_)), "{closed:?}");
    assert!(console.log_text().contains("over the"), "the log says why");

    // The other connection carries on.
    let c = capture("i want to kms", "kms", Some(fake_png(20, 1)));
    let id = c.id;
    assert_eq!(
        roundtrip(&mut good, AgentMessage::Capture(c)).await,
        ConsoleMessage::Ack(vec![id])
    );

    // A record that can never be stored is rejected, with a reason.
    let mut bad = capture("x", "x", None);
    bad.severity = 9;
    let bad_record = bad.id;
    match roundtrip(&mut good, AgentMessage::Capture(bad)).await {
        ConsoleMessage::Reject(r) => {
            assert_eq!(r[0].id, bad_record);
            assert!(r[0].reason.contains("severity"), "{}", r[0].reason);
        }
        other => panic!("{other:?}"),
    }
    let mut not_png = capture("kms", "kms", Some(b"<html>".to_vec()));
    not_png.id = uuid::Uuid::now_v7();
    match roundtrip(&mut good, AgentMessage::Capture(not_png)).await {
        ConsoleMessage::Reject(r) => assert!(r[0].reason.contains("PNG"), "{}", r[0].reason),
        other => panic!("{other:?}"),
    }
    // A resend is acked again and stored once.
    let again = capture("i want to kms", "kms", Some(fake_png(20, 1)));
    let mut resend = again.clone();
    resend.id = id;
    assert_eq!(
        roundtrip(&mut good, AgentMessage::Capture(resend)).await,
        ConsoleMessage::Ack(vec![id])
    );
    assert_eq!(count_stored(&console.data, &[id]).unwrap(), (0, 0));
    assert_eq!(count_stored(&console.data, &[bad_record]).unwrap(), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_serves_captures_by_role_and_audits_every_look() {
    let (_tmp, console) = started();
    let data = &console.data;
    let laptop = enroll_with(
        &enroll_token(data, &console.agent_addr, "1h").unwrap(),
        "lab-09",
    )
    .await
    .unwrap();
    let mut session = link(&console, &laptop).await.unwrap();
    let png = fake_png(150, 7);
    let hostile = "<script>alert(1)</script> \u{202e}kms\u{0}\" '";
    let mut c = capture(hostile, "kms", Some(png.clone()));
    c.window_title = "<img src=x onerror=alert(2)>".into();
    let id = c.id;
    assert_eq!(
        roundtrip(&mut session, AgentMessage::Capture(c)).await,
        ConsoleMessage::Ack(vec![id])
    );

    let admin = Api::new(
        data,
        &console.web_addr,
        &api_token(data, "ms.lead", "admin").unwrap(),
    )
    .unwrap();
    let reviewer = admin.with_token(&api_token(data, "mr.review", "reviewer").unwrap());
    let auditor = admin.with_token(&api_token(data, "mrs.audit", "auditor").unwrap());
    let nobody = admin.with_token("sgapi_not-a-token");

    tokio::task::spawn_blocking(move || {
        // No token, a wrong token.
        assert_eq!(nobody.get("/api/v1/captures").unwrap().0, 401);
        // The reviewer sees the capture, hostile text exactly as captured.
        let (status, list) = reviewer
            .get("/api/v1/captures?status=new&limit=10")
            .unwrap();
        assert_eq!(status, 200, "{list}");
        let first = &list["captures"][0];
        assert_eq!(first["id"], id.to_string());
        assert_eq!(first["context"], hostile);
        assert_eq!(first["window_title"], "<img src=x onerror=alert(2)>");
        assert_eq!(first["has_image"], true);
        assert_eq!(first["status"], "new");
        assert_eq!(first["device"], laptop.device_id.to_string());
        // The screenshot, byte for byte.
        let (status, ctype, body) = reviewer
            .get_bytes(&format!("/api/v1/captures/{id}/image"))
            .unwrap();
        assert_eq!((status, ctype.as_str()), (200, "image/png"));
        assert_eq!(body, png);
        // Triage, and its history.
        let (status, detail) = reviewer
            .send(
                "POST",
                &format!("/api/v1/captures/{id}/triage"),
                &serde_json::json!({"status": "violation", "note": "spoke to pupil"}),
            )
            .unwrap();
        assert_eq!(status, 200, "{detail}");
        assert_eq!(detail["status"], "violation");
        assert_eq!(detail["history"][0]["actor"], "mr.review");
        let (status, err) = reviewer
            .send(
                "POST",
                &format!("/api/v1/captures/{id}/triage"),
                &serde_json::json!({"status": "maybe"}),
            )
            .unwrap();
        assert_eq!(status, 400, "{err}");
        assert!(err["error"].as_str().unwrap().contains("maybe"));
        // The auditor: the list without captured text, never the image.
        let (status, list) = auditor.get("/api/v1/captures").unwrap();
        assert_eq!(status, 200);
        assert_eq!(list["captures"][0]["context"], "");
        assert_eq!(list["captures"][0]["window_title"], "");
        assert_eq!(list["captures"][0]["term"], "");
        assert_eq!(list["captures"][0]["app"], "");
        assert!(list["captures"][0]["status"].is_string(), "{list}");
        assert_eq!(list["text_withheld"], true);
        // Nor can the auditor learn the text by searching it: a yes or no
        // per guess would read it out.
        for search in ["/api/v1/captures?q=kms", "/api/v1/captures?user=pupil&q=k"] {
            let (status, err) = auditor.get(search).unwrap();
            assert_eq!(status, 403, "{search}: {err}");
            assert!(
                err["error"]
                    .as_str()
                    .unwrap()
                    .contains("never captured text"),
                "{err}"
            );
        }
        assert_eq!(auditor.get("/api/v1/captures?user=pupil").unwrap().0, 403);
        assert_eq!(admin.get("/api/v1/captures?q=kms").unwrap().0, 200);
        assert_eq!(
            auditor
                .get_bytes(&format!("/api/v1/captures/{id}/image"))
                .unwrap()
                .0,
            403
        );
        assert_eq!(
            auditor.get(&format!("/api/v1/captures/{id}")).unwrap().0,
            403
        );
        // Devices.
        let (_, devices) = admin.get("/api/v1/devices").unwrap();
        assert_eq!(devices["devices"][0]["hostname"], "lab-09");
        assert_eq!(devices["devices"][0]["online"], true);
        // The audit log saw every look and every change, with who and where.
        let (status, audit) = auditor.get("/api/v1/audit").unwrap();
        assert_eq!(status, 200);
        let events = audit["events"].as_array().unwrap();
        let has = |actor: &str, action: &str| {
            events
                .iter()
                .any(|e| e["actor"] == actor && e["action"] == action)
        };
        assert!(has("mr.review", "list_captures"));
        assert!(has("mr.review", "view_screenshot"));
        assert!(has("mr.review", "triage"));
        assert!(has("mrs.audit", "list_captures"));
        assert!(events.iter().any(|e| e["action"] == "enroll_device"));
        assert!(
            events
                .iter()
                .filter(|e| e["actor"] == "mr.review")
                .all(|e| e["origin"].as_str().unwrap().starts_with("127.0.0.1:"))
        );
        // The reviewer may not read the audit log, revoke or delete.
        assert_eq!(reviewer.get("/api/v1/audit").unwrap().0, 403);
        assert_eq!(
            reviewer
                .send(
                    "DELETE",
                    &format!("/api/v1/captures/{id}"),
                    &serde_json::json!({})
                )
                .unwrap()
                .0,
            403
        );
        // The admin deletes it; the image goes with it; the deletion is audited.
        assert_eq!(
            admin
                .send(
                    "DELETE",
                    &format!("/api/v1/captures/{id}"),
                    &serde_json::json!({})
                )
                .unwrap()
                .0,
            200
        );
        assert_eq!(
            admin
                .get_bytes(&format!("/api/v1/captures/{id}/image"))
                .unwrap()
                .0,
            404
        );
        let (_, audit) = auditor.get("/api/v1/audit").unwrap();
        assert!(
            audit["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["action"] == "delete_capture" && e["actor"] == "ms.lead")
        );
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_reaches_connected_laptops() {
    let (_tmp, console) = started();
    let data = &console.data;
    let laptop = identity_from_ca(data).unwrap();
    let mut session = link(&console, &laptop).await.unwrap();
    let first = session
        .policy
        .clone()
        .expect("a new laptop gets the policy");
    assert_eq!(first.version, 1);
    let admin = Api::new(
        data,
        &console.web_addr,
        &api_token(data, "it", "admin").unwrap(),
    )
    .unwrap();
    let mut changed = serde_json::to_value(&first).unwrap();
    changed["min_severity"] = 4.into();
    changed["libraries"] = serde_json::json!([{
        "name": "school.toml",
        "toml": "category = \"school\"\ntitle = \"Local words\"\n\n[[group]]\nseverity = 4\ndefinition = \"A local slur\"\nterms = [\"zorblax\"]\n"
    }]);
    let (status, saved) = tokio::task::spawn_blocking({
        let changed = changed.clone();
        move || admin.send("PUT", "/api/v1/policy", &changed).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["version"], 2);
    match timeout(WAIT, session.recv()).await.unwrap().unwrap() {
        ConsoleMessage::PolicyV7(p) => {
            assert_eq!(p.version, 2);
            assert_eq!(p.min_severity, 4);
            assert_eq!(p.libraries.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    // A broken library is refused with the reason, and nothing is pushed.
    let admin = Api::new(
        data,
        &console.web_addr,
        &api_token(data, "it2", "admin").unwrap(),
    )
    .unwrap();
    changed["libraries"][0]["toml"] = "[category\nbroken".into();
    let (status, err) =
        tokio::task::spawn_blocking(move || admin.send("PUT", "/api/v1/policy", &changed).unwrap())
            .await
            .unwrap();
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("school.toml"),
        "{err}"
    );
    // A laptop that reconnects with version 2 gets no policy resent.
    let again = DeviceLink::connect(&console.agent_addr, &laptop, "test", 2)
        .await
        .unwrap();
    assert!(again.policy.is_none());
    assert_eq!(again.welcome.policy_version, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stores_and_acks_what_was_already_sent() {
    let (_tmp, mut console) = started();
    let laptop = identity_from_ca(&console.data).unwrap();
    let mut session = link(&console, &laptop).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let c = capture("kms", "kms", Some(fake_png(50, i)));
        ids.push(c.id);
        session.send(&AgentMessage::Capture(c)).await.unwrap();
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = console.terminate(Duration::from_secs(30));
        (status, console)
    })
    .await
    .unwrap();
    let (status, console) = status;
    assert!(status.unwrap().success(), "{}", console.log_text());
    let mut acked = Vec::new();
    while let Ok(Ok(ConsoleMessage::Ack(batch))) = timeout(WAIT, session.recv()).await {
        acked.extend(batch);
    }
    let (missing, doubled) = count_stored(&console.data, &acked).unwrap();
    assert_eq!(
        (missing, doubled),
        (0, 0),
        "every ack names a stored capture"
    );
    // Every record the console had read before the signal is stored and acked.
    assert_eq!(
        acked.len(),
        ids.len(),
        "acked {} of {}",
        acked.len(),
        ids.len()
    );
}

/// A connection to `addr` from the loopback address `ip` (another
/// "machine" than the test's own 127.0.0.1).
async fn connect_from(ip: &str, addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_half_open_and_slow_clients_do_not_stop_service_for_others() {
    let (_tmp, console) = started();
    // On each listener, from one hostile machine: 300 connections that
    // never start TLS, and 50 that send the first bytes of a ClientHello
    // and stall.
    let mut stalled = Vec::new();
    for addr in [&console.agent_addr, &console.web_addr] {
        for _ in 0..300 {
            stalled.push(connect_from("127.0.0.2", addr).await);
        }
        for _ in 0..50 {
            let mut s = connect_from("127.0.0.2", addr).await;
            s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
                .await
                .unwrap();
            stalled.push(s);
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Meanwhile a laptop delivers a capture and staff load a page, promptly.
    service_goes_on(&console, "700 stalled connections").await;

    // The stalled connections are closed at the handshake timeout (15 s).
    tokio::time::sleep(Duration::from_secs(18)).await;
    let mut closed = 0;
    for s in &mut stalled {
        let mut buf = [0u8; 64];
        if matches!(
            timeout(Duration::from_millis(50), s.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        ) {
            closed += 1;
        }
    }
    assert_eq!(
        closed,
        stalled.len(),
        "the console still holds {} stalled connections after 18 s",
        stalled.len() - closed
    );
}

/// While something hostile goes on: a laptop delivers a capture and staff
/// call the API, and both answer within 5 s.
async fn service_goes_on(console: &ConsoleProcess, under: &str) {
    let started_at = std::time::Instant::now();
    let id = identity_from_ca(&console.data).unwrap();
    let mut good = link(console, &id).await.unwrap();
    let c = capture("i want to kms", "kms", None);
    let cid = c.id;
    assert_eq!(
        roundtrip(&mut good, AgentMessage::Capture(c)).await,
        ConsoleMessage::Ack(vec![cid])
    );
    let agent_took = started_at.elapsed();
    let api = Api::new(
        &console.data,
        &console.web_addr,
        &api_token(&console.data, "it", "admin").unwrap(),
    )
    .unwrap();
    let web_started = std::time::Instant::now();
    let (status, body) = tokio::task::spawn_blocking(move || api.get("/api/v1/devices").unwrap())
        .await
        .unwrap();
    let web_took = web_started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert!(
        agent_took < Duration::from_secs(5) && web_took < Duration::from_secs(5),
        "under {under}: a capture took {agent_took:?}, an API call {web_took:?}"
    );
    eprintln!("under {under}: capture acked in {agent_took:?}, API answered in {web_took:?}");
}

/// A TLS connection from `ip` to `addr`, handshake finished.
async fn tls_from(
    ip: &str,
    addr: &str,
    config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = connect_from(ip, addr).await;
    tokio_rustls::TlsConnector::from(config)
        .connect(protocol::tls::console_server_name(), tcp)
        .await
        .expect("TLS handshake")
}

/// Writes `head`, then one byte `tail` every `every`, until
/// the server closes the connection or answers. Returns how long after
/// `start` (when the connection was opened) that was, and what the server
/// sent, or `None` if it still had not after `limit`.
async fn trickle<S>(
    (mut s, start): (S, std::time::Instant),
    head: Vec<u8>,
    tail: u8,
    every: Duration,
    limit: Duration,
) -> Option<(Duration, String)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let mut byte = head;
    while start.elapsed() < limit {
        if s.write_all(&byte).await.is_err() || s.flush().await.is_err() {
            return Some((start.elapsed(), String::from_utf8_lossy(&answer).into()));
        }
        match timeout(every, s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                return Some((start.elapsed(), String::from_utf8_lossy(&answer).into()));
            }
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        byte = vec![tail];
        if !answer.is_empty() && answer.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some((start.elapsed(), String::from_utf8_lossy(&answer).into()));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_clients_on_both_listeners_are_cut_off_without_stopping_service() {
    let (_tmp, console) = started();
    let ca = std::fs::read_to_string(console.data.join("ca.pem")).unwrap();
    let web_tls = protocol::tls::client_config(&ca).unwrap();
    let token = api_token(&console.data, "it", "admin").unwrap();
    let slow = Duration::from_millis(500);
    let limit = Duration::from_secs(100);

    // Web: one machine opens 80 TLS connections. It may hold 64; the rest
    // are closed at once.
    let mut opened = Vec::new();
    for _ in 0..80 {
        let at = std::time::Instant::now();
        opened.push((
            tls_from("127.0.0.3", &console.web_addr, web_tls.clone()).await,
            at,
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut held = Vec::new();
    let mut refused = 0;
    for (mut s, at) in opened {
        let mut buf = [0u8; 16];
        match timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => refused += 1,
            Ok(Ok(n)) => panic!("the console said {n} bytes unasked"),
            Err(_) => held.push((s, at)),
        }
    }
    // Opening 80 takes a while on a loaded machine, and the header timer
    // starts at each one's accept, so a few of the first may already be
    // cut at 10 s: the limit is what matters.
    assert!(
        held.len() <= 64 && refused >= 16 && held.len() >= 40,
        "one address should hold at most 64 web connections: {} held, {refused} closed",
        held.len()
    );
    // Each of the 64 sends a request's headers a byte at a time.
    let mut lorises = Vec::new();
    for s in held {
        lorises.push(tokio::spawn(trickle(
            s,
            b"GET /api/v1/devices HTTP/1.1\r\nHost: console\r\nX-Slow: ".to_vec(),
            b'a',
            slow,
            limit,
        )));
    }
    // A body sent a byte at a time, with a valid token.
    let body_loris = {
        let at = std::time::Instant::now();
        let s = (
            tls_from("127.0.0.4", &console.web_addr, web_tls.clone()).await,
            at,
        );
        let head = format!(
            "PUT /api/v1/policy HTTP/1.1\r\nHost: console\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"x\": \""
        );
        tokio::spawn(trickle(
            s,
            head.into_bytes(),
            b'a',
            Duration::from_secs(1),
            limit,
        ))
    };
    // A keep-alive connection that goes quiet after its request.
    let idle = {
        let mut s = tls_from("127.0.0.5", &console.web_addr, web_tls.clone()).await;
        s.write_all(b"GET /login HTTP/1.1\r\nHost: console\r\n\r\n")
            .await
            .unwrap();
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let mut buf = vec![0u8; 65536];
            loop {
                match timeout(limit, s.read(&mut buf)).await {
                    Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
                    Ok(Ok(_)) => {}
                    Err(_) => return None,
                }
            }
        })
    };
    // Agents: a laptop with a real device certificate opens 20 connections
    // and sends its Hello a byte at a time.
    let loris_id = identity_from_ca(&console.data).unwrap();
    let device_tls = protocol::tls::client_config_mtls(
        &loris_id.ca_pem,
        &loris_id.certificate_pem,
        loris_id.key_pem.expose(),
    )
    .unwrap();
    let mut agent_lorises = Vec::new();
    for _ in 0..20 {
        let at = std::time::Instant::now();
        let s = (
            tls_from("127.0.0.3", &console.agent_addr, device_tls.clone()).await,
            at,
        );
        agent_lorises.push(tokio::spawn(trickle(
            s,
            vec![0, 0, 0x10, 0],
            0x01,
            slow,
            limit,
        )));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Meanwhile a laptop delivers a capture and staff use the API, promptly.
    service_goes_on(&console, "slow clients").await;

    // Headers trickled: cut at the 10 s header timeout.
    for l in lorises {
        let (took, said) = l
            .await
            .unwrap()
            .expect("a header slow loris was never cut off");
        assert!(
            (Duration::from_secs(9)..Duration::from_secs(15)).contains(&took),
            "a header slow loris was cut off after {took:?} (said {said:?}); expected 10 s"
        );
    }
    // A quiet keep-alive connection: closed after 10 s.
    let quiet = idle
        .await
        .unwrap()
        .expect("an idle keep-alive connection was never closed");
    assert!(
        quiet < Duration::from_secs(15),
        "an idle keep-alive connection lasted {quiet:?}"
    );
    // Hello trickled to the agent listener: cut at the 15 s handshake limit.
    for l in agent_lorises {
        let (took, _) = l
            .await
            .unwrap()
            .expect("an agent slow loris was never cut off");
        assert!(
            (Duration::from_secs(14)..Duration::from_secs(20)).contains(&took),
            "an agent slow loris was cut off after {took:?}; expected 15 s"
        );
    }
    // The body trickled: answered 408 at the 60 s request limit.
    let (took, said) = body_loris
        .await
        .unwrap()
        .expect("a body slow loris was never cut off");
    assert!(
        said.starts_with("HTTP/1.1 408"),
        "a body slow loris got {said:?} after {took:?}"
    );
    assert!(
        (Duration::from_secs(59)..Duration::from_secs(70)).contains(&took),
        "a body slow loris was answered after {took:?}; expected 60 s"
    );
    eprintln!(
        "quiet keep-alive closed after {quiet:?}; body slow loris answered 408 after {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_its_connection_limit_the_console_asks_laptops_to_come_back_later() {
    let (_tmp, mut console) = started();
    let data = console.data.clone();
    console.terminate(Duration::from_secs(20)).unwrap();
    let path = data.join("console.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.starts_with("max_connections") {
                "max_connections = 5".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, text).unwrap();
    let console = ConsoleProcess::start(&data).unwrap();

    let mut held = Vec::new();
    for _ in 0..5 {
        let id = identity_from_ca(&data).unwrap();
        held.push(link(&console, &id).await.expect("within the limit"));
    }
    // A sixth laptop is told, in words it understands, to come back later.
    let late = identity_from_ca(&data).unwrap();
    match link(&console, &late).await {
        Err(ProtocolError::Busy {
            retry_after_seconds,
        }) => assert_eq!(retry_after_seconds, 30),
        other => panic!("over the limit a laptop should be told Busy, got {other:?}"),
    }
    assert!(
        console
            .log_text()
            .contains("laptops that connect now are asked to come back later"),
        "the console says it is shedding; its log:\n{}",
        console.log_text()
    );
    // Those already connected are served as before.
    let c = capture("i want to kms", "kms", None);
    let cid = c.id;
    assert_eq!(
        roundtrip(&mut held[0], AgentMessage::Capture(c)).await,
        ConsoleMessage::Ack(vec![cid])
    );
    // Once one leaves, the late laptop gets in.
    let DeviceLink {
        mut writer, reader, ..
    } = held.pop().unwrap();
    writer.shutdown().await.ok();
    drop(reader);
    let mut got_in = None;
    for _ in 0..50 {
        if let Ok(l) = link(&console, &late).await {
            got_in = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut l = got_in.expect("a slot freed up, but the late laptop never got in");
    let c = capture("i want to kms", "kms", None);
    let cid = c.id;
    assert_eq!(
        roundtrip(&mut l, AgentMessage::Capture(c)).await,
        ConsoleMessage::Ack(vec![cid])
    );
}

/// A laptop monitoring a logged-in pupil that goes quiet (its network cut,
/// its power pulled) is shown as silent within `silent_after_seconds`, with
/// a tamper event; heard again, the event says how long the gap was. A
/// laptop that said it watches no session may go quiet unremarked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_laptop_that_goes_quiet_while_a_pupil_is_logged_in_is_shown_as_a_gap() {
    use protocol::{DeviceHealth, Heartbeat, SessionHealth, UnixMillis};
    let (_tmp, mut console) = started();
    let data = console.data.clone();
    console.terminate(Duration::from_secs(20)).unwrap();
    let path = data.join("console.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("silent_after_seconds = 180"), "{text}");
    std::fs::write(
        &path,
        text.replace("silent_after_seconds = 180", "silent_after_seconds = 3"),
    )
    .unwrap();
    let console = ConsoleProcess::start(&data).unwrap();
    let api = Api::new(
        &data,
        &console.web_addr,
        &api_token(&data, "lead", "admin").unwrap(),
    )
    .unwrap();
    let heartbeat = |user: &str| {
        AgentMessage::Heartbeat(Heartbeat {
            time: UnixMillis::now(),
            hostname: format!("laptop-of-{user}"),
            os: "Debian 13".into(),
            agent_version: "test".into(),
            user: Some(user.into()),
            uptime_seconds: 1,
            load: [0.0; 3],
            memory_total_bytes: 1,
            memory_used_bytes: 1,
            spool_depth: 0,
            spool_dropped: 0,
            policy_version: 1,
        })
    };
    let health = |users: &[&str]| {
        AgentMessage::Health(DeviceHealth {
            time: UnixMillis::now(),
            supervising: true,
            sessions: users
                .iter()
                .map(|u| SessionHealth {
                    user: (*u).into(),
                    display: ":0".into(),
                    monitored: true,
                    supervised: true,
                    helper_pid: Some(4242),
                    heard_seconds_ago: Some(0),
                })
                .collect(),
            page_readers: vec![],
            refused: 0,
            semantic: String::new(),
        })
    };
    let (watched, idle) = (
        identity_from_ca(&data).unwrap(),
        identity_from_ca(&data).unwrap(),
    );
    let mut watched_link = link(&console, &watched).await.unwrap();
    watched_link.send(&heartbeat("amy")).await.unwrap();
    watched_link.send(&health(&["amy"])).await.unwrap();
    let mut idle_link = link(&console, &idle).await.unwrap();
    idle_link.send(&heartbeat("ben")).await.unwrap();
    idle_link.send(&health(&[])).await.unwrap();

    // Both now say nothing, connections open.
    let events_of = |device: uuid::Uuid| {
        let (status, body) = api.get(&format!("/api/v1/tamper?device={device}")).unwrap();
        assert_eq!(status, 200, "{body}");
        body["events"].as_array().unwrap().clone()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let event = loop {
        let events = tokio::task::block_in_place(|| events_of(watched.device_id));
        if let Some(e) = events.iter().find(|e| e["kind"] == "DeviceSilent") {
            break e.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no DeviceSilent event within 20 s of the laptop going quiet (silent_after_seconds = 3); its log:\n{}",
            console.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(event["user"], "amy", "{event}");
    assert!(
        event["detail"]
            .as_str()
            .unwrap()
            .contains("has sent nothing since"),
        "{event}"
    );
    let (_, devices) = tokio::task::block_in_place(|| api.get("/api/v1/devices")).unwrap();
    let shown = |id: uuid::Uuid| {
        devices["devices"]
            .as_array()
            .unwrap_or_else(|| panic!("{devices}"))
            .iter()
            .find(|d| d["id"] == id.to_string())
            .unwrap()
            .clone()
    };
    assert!(
        shown(watched.device_id)["silent_since"].is_string(),
        "{devices}"
    );
    assert!(shown(idle.device_id)["silent_since"].is_null(), "{devices}");
    assert!(
        tokio::task::block_in_place(|| events_of(idle.device_id)).is_empty(),
        "a laptop with nobody logged in may be quiet"
    );

    // Heard again: the gap is closed and its length written into the event.
    watched_link.send(&heartbeat("amy")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = tokio::task::block_in_place(|| events_of(watched.device_id));
        assert_eq!(events.len(), 1, "one gap, one event: {events:?}");
        let detail = events[0]["detail"].as_str().unwrap().to_owned();
        if detail.contains("heard again") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gap was not closed within 20 s of the laptop being heard again: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(idle_link);
}

/// API tokens have owners, are listed with their last use and are refused
/// at once when revoked; a reviewer cannot own an admin's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_owned_listed_and_refused_at_once_when_revoked() {
    let (_tmp, console) = started();
    let data = console.data.clone();
    let d = data.to_str().unwrap().to_owned();
    console_cli(
        &[
            "user", "add", "--data", &d, "--name", "ms.lead", "--role", "reviewer",
        ],
        Some("a long pass phrase\n"),
    )
    .unwrap();
    // Named after her account, the token is hers.
    let hers = api_token(&data, "ms.lead", "reviewer").unwrap();
    let nightly = api_token(&data, "nightly", "auditor").unwrap();
    let err = console_cli(
        &[
            "api-token",
            "--data",
            &d,
            "--name",
            "sneaky",
            "--role",
            "admin",
            "--owner",
            "ms.lead",
        ],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot own a admin token"), "{err}");
    let api = Api::new(&data, &console.web_addr, &hers).unwrap();
    tokio::task::block_in_place(|| {
        assert_eq!(api.get("/api/v1/captures").unwrap().0, 200);
        let script = api.with_token(&nightly);
        assert_eq!(script.get("/api/v1/audit").unwrap().0, 200);

        let listed = console_cli(&["api-token", "list", "--data", &d], None).unwrap();
        let line = |name: &str| {
            listed
                .lines()
                .find(|l| l.split_whitespace().nth(1) == Some(name))
                .unwrap_or_else(|| panic!("{name} not in:\n{listed}"))
                .to_owned()
        };
        let mine = line("ms.lead");
        assert!(
            mine.contains(" reviewer ") && mine.contains(" ms.lead ") && mine.ends_with("live"),
            "{mine}"
        );
        assert!(!mine.contains("never"), "its use is recorded: {mine}");
        assert!(
            line("nightly").contains(" - "),
            "a script's token has no owner"
        );

        let out = console_cli(
            &["api-token", "revoke", "--data", &d, "--name", "nightly"],
            None,
        )
        .unwrap();
        assert!(out.contains("revoked 1"), "{out}");
        // The running console refuses it at once (no restart, no cache).
        let (status, body) = script.get("/api/v1/audit").unwrap();
        assert_eq!(status, 401, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("revoked"),
            "{body}"
        );
        assert_eq!(
            api.get("/api/v1/captures").unwrap().0,
            200,
            "others still work"
        );
        let err = console_cli(
            &["api-token", "revoke", "--data", &d, "--name", "nightly"],
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no live API token"), "{err}");
        let listed = console_cli(&["api-token", "list", "--data", &d], None).unwrap();
        assert!(
            listed
                .lines()
                .any(|l| l.contains("nightly") && l.contains("revoked")),
            "{listed}"
        );
    });
}

/// Enrollment tokens live at most 7 days, are listed while usable and can
/// be revoked; a revoked one enrolls nobody; the agent reads its token from
/// a file or standard input, never needing it on the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_tokens_are_capped_listed_revoked_and_read_from_a_file_or_stdin() {
    let (tmp, console) = started();
    let data = console.data.clone();
    let d = data.to_str().unwrap().to_owned();
    let err = enroll_token(&data, &console.agent_addr, "8d")
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 7 days"), "{err}");
    let first = enroll_token(&data, &console.agent_addr, "1h").unwrap();
    let second = enroll_token(&data, &console.agent_addr, "1h").unwrap();
    let listed = console_cli(&["enroll-token", "list", "--data", &d], None).unwrap();
    let ids: Vec<String> = listed
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    // A token's id is the start of its secret's hash.
    let id_of = |token: &str| {
        let secret = EnrollToken::decode(token).unwrap().secret;
        console_server::secret::token_hash(&secret)[..12].to_owned()
    };
    let mut expected = vec![id_of(&first), id_of(&second)];
    let mut got = ids.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected);
    let ids = [id_of(&first), id_of(&second)];
    let out = console_cli(&["enroll-token", "revoke", "--data", &d, &ids[1]], None).unwrap();
    assert!(out.contains("revoked"), "{out}");
    let still = console_cli(&["enroll-token", "list", "--data", &d], None).unwrap();
    assert_eq!(still.lines().count(), 1, "{still}");
    assert!(still.starts_with(&ids[0]), "{still}");
    let err = console_cli(&["enroll-token", "revoke", "--data", &d, &ids[1]], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no unused enrollment token"), "{err}");

    tokio::task::block_in_place(|| {
        let state = tmp.path().join("laptop-a");
        let (ok, out, err) = enroll_agent_from_stdin(&state, &second).unwrap();
        assert!(!ok, "a revoked token enrolled a laptop: {out}");
        assert!(err.contains("revoked"), "{err}");
        let (ok, out, err) = enroll_agent_from_stdin(&state, &first).unwrap();
        assert!(ok, "{out}{err}");
        assert!(out.contains("enrolled as device"), "{out}");
        let listed = console_cli(&["enroll-token", "list", "--data", &d], None).unwrap();
        assert!(
            listed.contains("no enrollment token can be used"),
            "{listed}"
        );
        // A third, from a file.
        let third = enroll_token(&data, &console.agent_addr, "1h").unwrap();
        enroll_agent(&tmp.path().join("laptop-b"), &third).unwrap();
    });
    let api = Api::new(
        &data,
        &console.web_addr,
        &api_token(&data, "it", "admin").unwrap(),
    )
    .unwrap();
    let (_, audit) = tokio::task::block_in_place(|| api.get("/api/v1/audit?limit=100")).unwrap();
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in ["mint_enroll_token", "revoke_enroll_token", "enroll_device"] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
    assert!(!actions.iter().any(|a| a.contains("enrol_")), "{actions:?}");
}

/// Alerts (issue 23): a capture at a rule's severity reaches a webhook and
/// a mailbox at once, naming the category, severity, laptop and a link,
/// never the captured words; a capture under it raises nothing; an alert
/// the webhook refused is audited, tried again and, through a console
/// killed meanwhile, delivered once after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_a_webhook_and_a_mailbox_once_through_refusals_and_a_kill() {
    let (_tmp, mut console) = started();
    let data = console.data.clone();
    console.terminate(Duration::from_secs(20)).unwrap();
    let (smtp_port, mails) = tests::sinks::smtp_sink();
    let hook = tests::sinks::WebhookSink::start();
    let path = data.join("console.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("host = \"\""), "{text}");
    let text = text
        .replace("host = \"\"", "host = \"127.0.0.1\"")
        .replace("port = 587", &format!("port = {smtp_port}"))
        .replace("security = \"starttls\"", "security = \"none\"")
        .replace("from = \"\"", "from = \"console@school.example\"");
    let text = format!(
        "{text}\n[[alerts]]\nname = \"urgent\"\nmin_severity = 5\nevents = [\"capture\", \"concern\"]\n\
         email_to = [\"dsl@school.example\"]\nwebhook_urls = [\"{}\"]\n",
        hook.url
    );
    std::fs::write(&path, text).unwrap();
    let mut console = ConsoleProcess::start(&data).unwrap();
    let laptop = identity_from_ca(&data).unwrap();
    let mut l = link(&console, &laptop).await.unwrap();

    let mut low = capture("ur so dumb lol", "dumb", None);
    (low.severity, low.category) = (3, "cyberbullying".into());
    let high = capture("i want to kms tonight", "kms", None);
    for c in [low, high.clone()] {
        let id = c.id;
        assert_eq!(
            roundtrip(&mut l, AgentMessage::Capture(c)).await,
            ConsoleMessage::Ack(vec![id])
        );
    }
    let wait = Duration::from_secs(20);
    let (head, body) = hook
        .received
        .recv_timeout(wait)
        .expect("the webhook was called");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["fields"]["category"], "self-harm", "{body}");
    assert_eq!(json["fields"]["severity"], 5, "{body}");
    assert_eq!(json["record"], high.id.to_string(), "{body}");
    assert!(
        json["link"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/captures/{}", high.id)),
        "{body}"
    );
    assert!(!body.contains("kms tonight"), "no captured words: {body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("idempotency-key: alert-"),
        "{head}"
    );
    // Quoted-printable: soft line breaks joined.
    let unfold = |m: String| m.replace("=\r\n", "").replace("=\n", "");
    let mail = unfold(mails.recv_timeout(wait).expect("the mail was sent"));
    assert!(mail.contains("Severity 5 self-harm capture"), "{mail}");
    assert!(mail.contains(&format!("/captures/{}", high.id)), "{mail}");
    assert!(!mail.contains("kms tonight"), "{mail}");
    assert!(
        hook.received.recv_timeout(Duration::from_secs(4)).is_err(),
        "the severity-3 capture raised nothing, and nothing came twice"
    );

    // The webhook refuses: the alert is audited as failed and kept.
    hook.set_up(false);
    let before = hook.attempts();
    let second = capture("gonna end it tonight", "end it", None);
    let id = second.id;
    assert_eq!(
        roundtrip(&mut l, AgentMessage::Capture(second)).await,
        ConsoleMessage::Ack(vec![id])
    );
    let deadline = std::time::Instant::now() + wait;
    while hook.attempts() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook was never tried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mail = unfold(mails.recv_timeout(wait).expect("the second mail"));
    assert!(mail.contains(&id.to_string()), "{mail}");
    // The console says so: its health is not ok while the alert waits.
    let api = Api::new(
        &data,
        &console.web_addr,
        &api_token(&data, "it", "admin").unwrap(),
    )
    .unwrap();
    // (The refusal is recorded just after the webhook answers.)
    let mut health = serde_json::Value::Null;
    for _ in 0..50 {
        health = tokio::task::block_in_place(|| api.get("/api/v1/health"))
            .unwrap()
            .1;
        if health["ok"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(health["ok"], false, "{health}");
    assert_eq!(
        health["alerts"]["failing"][0]["record"],
        id.to_string(),
        "{health}"
    );
    assert!(
        health["message"]
            .as_str()
            .unwrap()
            .contains("1 alert not delivered"),
        "{health}"
    );
    // Killed, and the webhook back: after the restart and the backoff
    // (30 s after the refusal), delivered once.
    drop(l);
    console.kill();
    hook.set_up(true);
    let console = ConsoleProcess::start(&data).unwrap();
    let (_, body) = hook
        .received
        .recv_timeout(Duration::from_secs(60))
        .expect("delivered after the restart");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["record"], id.to_string(), "{body}");
    assert!(
        hook.received.recv_timeout(Duration::from_secs(5)).is_err(),
        "delivered once"
    );
    assert!(
        mails.recv_timeout(Duration::from_secs(1)).is_err(),
        "no mail twice"
    );
    let api = Api::new(
        &data,
        &console.web_addr,
        &api_token(&data, "it", "admin").unwrap(),
    )
    .unwrap();
    let (_, audit) = tokio::task::block_in_place(|| api.get("/api/v1/audit?limit=200")).unwrap();
    let actions: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "alert_sent").count(),
        4,
        "{actions:?}"
    );
    assert!(actions.contains(&"alert_failed"), "{actions:?}");
    let (_, listed) = tokio::task::block_in_place(|| api.get("/api/v1/alerts")).unwrap();
    let listed = listed["alerts"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(listed.iter().all(|a| a["status"] == "sent"), "{listed:?}");
    let (_, health) = tokio::task::block_in_place(|| api.get("/api/v1/health")).unwrap();
    assert_eq!(health["ok"], true, "every alert delivered: {health}");
    assert!(
        !listed
            .iter()
            .any(|a| a["target"].as_str().unwrap().contains("/hook")),
        "a webhook's path is its secret: {listed:?}"
    );

    // The Alerts page lists them for staff, the webhook by its host only.
    console_cli(
        &[
            "user",
            "add",
            "--data",
            data.to_str().unwrap(),
            "--name",
            "governor",
            "--role",
            "auditor",
        ],
        Some("a long auditor pass phrase\n"),
    )
    .unwrap();
    let port = console.web_addr.rsplit(':').next().unwrap().to_owned();
    let web = tests::web_client::Web::new(&data, &format!("https://localhost:{port}"));
    let page = tokio::task::block_in_place(|| {
        let (session, _) = web.sign_in("governor", "a long auditor pass phrase", "");
        web.get("/alerts", &session)
    });
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body.matches("<tr id=\"a-").count(), 4, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("{}/…", hook.url.trim_end_matches("/hook"))),
        "{}",
        page.body
    );
    assert!(!page.body.contains("/hook<"), "{}", page.body);
}

/// Escalation (issue 23) through the real alert sender and a real webhook
/// receiver, with the clock held by the test: a grave capture nobody
/// triages is sent to the rule's `escalate_to` once, 15 minutes on; one
/// triaged in time is not.
#[test]
fn an_untriaged_capture_escalates_once_and_a_triaged_one_does_not() {
    use console_server::alerts::rules::{AlertEvent, AlertRule, RuleSet};
    use console_server::alerts::sender::Sender;
    use console_server::store::{Incoming, Status, Store, Triage};
    use protocol::UnixMillis;

    let tmp = tempfile::tempdir().unwrap();
    let dir = console_server::data_dir::DataDir::open(&tmp.path().join("data")).unwrap();
    let store: std::sync::Arc<dyn Store> = dir.store.clone();
    let (first, next) = (
        tests::sinks::WebhookSink::start(),
        tests::sinks::WebhookSink::start(),
    );
    store.set_alert_rules(RuleSet {
        rules: vec![AlertRule {
            name: "urgent".into(),
            min_severity: 5,
            events: vec![AlertEvent::Capture],
            webhook_urls: vec![first.url.clone()],
            escalate_after_minutes: Some(15),
            escalate_to: vec![next.url.clone()],
            ..AlertRule::default()
        }],
        ..RuleSet::default()
    });
    let sender = Sender::new(
        store.clone(),
        console_server::settings::Smtp::default(),
        "https://console.school.example".into(),
        std::sync::Arc::new(|_: &str, _: &str| None),
        std::sync::Arc::default(),
    );
    let t0 = UnixMillis::now().0;
    let (ignored, handled) = (
        capture("i want to kms tonight", "kms", None),
        capture("gonna end it tonight", "end it", None),
    );
    for c in [&ignored, &handled] {
        store
            .store_batch(&[Incoming {
                device: uuid::Uuid::now_v7(),
                received: UnixMillis(t0),
                message: AgentMessage::Capture(c.clone()),
            }])
            .unwrap();
    }
    let wait = Duration::from_secs(5);
    assert_eq!(sender.round(UnixMillis(t0)).unwrap(), 2);
    for _ in 0..2 {
        first.received.recv_timeout(wait).expect("alerted at once");
    }
    store
        .triage(
            handled.id,
            &Triage {
                status: Status::Violation,
                note: "spoken to".into(),
                action: None,
                actor: "lead".into(),
                time: UnixMillis(t0 + 5 * 60_000),
            },
        )
        .unwrap();
    assert_eq!(sender.round(UnixMillis(t0 + 14 * 60_000)).unwrap(), 0);
    assert!(
        next.received
            .recv_timeout(Duration::from_millis(300))
            .is_err()
    );
    assert_eq!(
        sender.round(UnixMillis(t0 + 16 * 60_000)).unwrap(),
        1,
        "the untriaged one escalates"
    );
    let (_, body) = next.received.recv_timeout(wait).expect("escalated");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["record"], ignored.id.to_string(), "{body}");
    assert_eq!(json["event"], "escalation", "{body}");
    assert!(
        json["title"]
            .as_str()
            .unwrap()
            .starts_with("Not triaged yet"),
        "{body}"
    );
    assert_eq!(
        sender.round(UnixMillis(t0 + 60 * 60_000)).unwrap(),
        0,
        "once"
    );
    assert!(
        next.received
            .recv_timeout(Duration::from_millis(300))
            .is_err()
    );
    assert!(
        first
            .received
            .recv_timeout(Duration::from_millis(300))
            .is_err()
    );
}
