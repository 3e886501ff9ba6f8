//! One test per error path of the framing and the handshake: each is a
//! typed error with a message that says what was wrong.

use protocol::frame::{self, DEFAULT_MAX_FRAME, FrameDecoder};
use protocol::handshake::{agent_hello, console_accept};
use protocol::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
use tokio::time::{Duration, timeout};

const WAIT: Duration = Duration::from_secs(5);

fn hello(version: u16) -> Hello {
    Hello {
        protocol_version: version,
        agent_version: "test".into(),
        device_id: uuid::Uuid::now_v7(),
        policy_version: 0,
    }
}

fn heartbeat() -> AgentMessage {
    AgentMessage::Heartbeat(Heartbeat {
        time: UnixMillis(1),
        hostname: "lab-01".into(),
        os: "Debian".into(),
        agent_version: "0.1.0".into(),
        user: Some("pupil1".into()),
        uptime_seconds: 5,
        load: [0.1, 0.2, 0.3],
        memory_total_bytes: 8 << 30,
        memory_used_bytes: 2 << 30,
        spool_depth: 0,
        spool_dropped: 0,
        policy_version: 1,
    })
}

/// Reads one AgentMessage from raw bytes written by a "peer", then EOF.
async fn read_raw(bytes: &[u8], max: u32) -> Result<Option<AgentMessage>, ProtocolError> {
    let (mut peer, ours) = duplex(1 << 20);
    peer.write_all(bytes).await.unwrap();
    drop(peer);
    let mut conn = Connection::with_max_frame(ours, max);
    timeout(WAIT, conn.read::<AgentMessage>())
        .await
        .expect("read timed out")
}

#[tokio::test]
async fn oversized_length_is_refused_before_the_body_arrives() {
    let (mut peer, ours) = duplex(64);
    // Promise 4 GiB and send nothing more, keeping the connection open: the
    // error must come from the header alone, without waiting or allocating.
    peer.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let mut conn = Connection::with_max_frame(ours, 1024);
    let err = timeout(WAIT, conn.read::<AgentMessage>())
        .await
        .expect("an oversized header must fail at once")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::FrameTooLarge {
                len: u32::MAX,
                max: 1024
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("over the 1024-byte limit"),
        "{err}"
    );
    drop(peer);
}

#[tokio::test]
async fn zero_length_frame_is_refused() {
    let err = read_raw(&0u32.to_be_bytes(), 1024).await.unwrap_err();
    assert!(matches!(err, ProtocolError::EmptyFrame), "{err:?}");
}

#[tokio::test]
async fn stream_ending_inside_a_body_is_truncated() {
    let mut bytes = 10u32.to_be_bytes().to_vec();
    bytes.extend([4, 0, 0]);
    let err = read_raw(&bytes, 1024).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Truncated {
                got: 7,
                expected: 14
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("7 of 14 bytes"), "{err}");
}

#[tokio::test]
async fn stream_ending_inside_a_header_is_truncated() {
    let err = read_raw(&[0, 0], 1024).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Truncated {
                got: 2,
                expected: 4
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn clean_close_between_frames_is_not_an_error() {
    let bytes = frame::encode(&heartbeat(), DEFAULT_MAX_FRAME).unwrap();
    let (mut peer, ours) = duplex(1 << 16);
    peer.write_all(&bytes).await.unwrap();
    drop(peer);
    let mut conn = Connection::new(ours);
    assert_eq!(
        conn.read::<AgentMessage>().await.unwrap(),
        Some(heartbeat())
    );
    assert_eq!(conn.read::<AgentMessage>().await.unwrap(), None);
    let err = conn
        .recv::<AgentMessage>("waiting for a record")
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Closed { .. }), "{err:?}");
}

#[tokio::test]
async fn unknown_kind_is_named() {
    let mut bytes = 2u32.to_be_bytes().to_vec();
    bytes.extend([AgentMessage::KINDS as u8 + 3, 0]);
    let err = read_raw(&bytes, 1024).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::UnknownKind {
                kind: 13,
                known: 10,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("unknown agent message kind 13"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_kind_varint_is_a_decode_error() {
    let mut bytes = 6u32.to_be_bytes().to_vec();
    bytes.extend([0xff; 6]);
    let err = read_raw(&bytes, 1024).await.unwrap_err();
    assert!(matches!(err, ProtocolError::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn undecodable_body_is_a_decode_error() {
    // Kind 1 (Capture) with a body that ends long before a capture does.
    let mut bytes = 3u32.to_be_bytes().to_vec();
    bytes.extend([1, 0xff, 0xff]);
    let err = read_raw(&bytes, 1024).await.unwrap_err();
    assert!(matches!(err, ProtocolError::Decode { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("could not decode agent message"),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_utf8_in_a_string_is_a_decode_error() {
    let mut body = frame::encode(&heartbeat(), DEFAULT_MAX_FRAME).unwrap()[4..].to_vec();
    // Heartbeat = kind 4, then the time varint (1), then the hostname length
    // (6) and "lab-01": corrupt the hostname's first byte.
    assert_eq!(&body[..3], &[4, 2, 6]);
    body[3] = 0xff;
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend(body);
    let err = read_raw(&bytes, 1024).await.unwrap_err();
    assert!(matches!(err, ProtocolError::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn trailing_bytes_inside_a_frame_are_refused() {
    let mut body = frame::encode(&heartbeat(), DEFAULT_MAX_FRAME).unwrap()[4..].to_vec();
    body.extend([0, 0]);
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend(body);
    let err = read_raw(&bytes, 1024).await.unwrap_err();
    assert!(
        matches!(err, ProtocolError::TrailingBytes { extra: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn encoding_over_the_limit_is_refused_by_the_sender() {
    let msg = ConsoleMessage::Revoke {
        reason: "x".repeat(2000),
    };
    let err = frame::encode(&msg, 1000).unwrap_err();
    assert!(matches!(err, ProtocolError::Encode { .. }), "{err:?}");
    assert!(
        err.to_string().contains("over the 1000-byte frame limit"),
        "{err}"
    );
}

#[test]
fn decoder_reports_a_half_frame_at_end_of_stream() {
    let bytes = frame::encode(&heartbeat(), DEFAULT_MAX_FRAME).unwrap();
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    decoder.push(&bytes[..bytes.len() - 1]);
    assert!(decoder.next_message::<AgentMessage>().unwrap().is_none());
    let err = decoder.finish().unwrap_err();
    assert!(matches!(err, ProtocolError::Truncated { .. }), "{err:?}");
}

#[tokio::test]
async fn read_is_cancel_safe() {
    let bytes = frame::encode(&heartbeat(), DEFAULT_MAX_FRAME).unwrap();
    let (mut peer, ours) = duplex(1 << 16);
    let mut conn = Connection::new(ours);
    peer.write_all(&bytes[..5]).await.unwrap();
    // A read that times out part-way must not lose the bytes it took.
    assert!(
        timeout(Duration::from_millis(50), conn.read::<AgentMessage>())
            .await
            .is_err()
    );
    peer.write_all(&bytes[5..]).await.unwrap();
    let msg = timeout(WAIT, conn.read::<AgentMessage>())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg, Some(heartbeat()));
}

#[tokio::test]
async fn compatible_versions_shake_hands() {
    let (a, c) = duplex(1 << 16);
    let console = tokio::spawn(async move {
        let mut conn = Connection::new(c);
        let hello = console_accept(&mut conn).await.unwrap();
        conn.send(&ConsoleMessage::Welcome(Welcome {
            protocol_version: PROTOCOL_VERSION,
            console_version: "c".into(),
            policy_version: 3,
            window: 64,
        }))
        .await
        .unwrap();
        hello
    });
    let mut conn = Connection::new(a);
    let welcome = timeout(WAIT, agent_hello(&mut conn, &hello(PROTOCOL_VERSION)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(welcome.policy_version, 3);
    assert_eq!(console.await.unwrap().protocol_version, PROTOCOL_VERSION);
}

#[tokio::test]
async fn incompatible_agent_is_refused_with_both_versions() {
    let (a, c) = duplex(1 << 16);
    let console = tokio::spawn(async move {
        let mut conn = Connection::new(c);
        console_accept(&mut conn).await
    });
    let mut conn = Connection::new(a);
    let err = timeout(WAIT, agent_hello(&mut conn, &hello(PROTOCOL_VERSION + 98)))
        .await
        .unwrap()
        .unwrap_err();
    let theirs = PROTOCOL_VERSION + 98;
    assert!(
        matches!(err, ProtocolError::VersionMismatch { ours, theirs: t } if ours == theirs && t == PROTOCOL_VERSION),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&format!("version {theirs}")), "{msg}");
    assert!(
        msg.contains(&format!("version {PROTOCOL_VERSION}")),
        "{msg}"
    );

    let console_err = console.await.unwrap().unwrap_err();
    assert!(
        matches!(console_err, ProtocolError::VersionMismatch { theirs: t, .. } if t == theirs),
        "{console_err:?}"
    );
}

#[tokio::test]
async fn agent_refuses_a_console_of_an_unsupported_version() {
    let (a, c) = duplex(1 << 16);
    tokio::spawn(async move {
        let mut conn = Connection::new(c);
        let _ = conn.read::<AgentMessage>().await;
        conn.send(&ConsoleMessage::Welcome(Welcome {
            protocol_version: 0,
            console_version: "ancient".into(),
            policy_version: 0,
            window: 1,
        }))
        .await
        .unwrap();
    });
    let mut conn = Connection::new(a);
    let err = agent_hello(&mut conn, &hello(PROTOCOL_VERSION))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProtocolError::VersionMismatch { theirs: 0, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn console_refuses_a_first_message_that_is_not_hello() {
    let (a, c) = duplex(1 << 16);
    let mut agent = Connection::new(a);
    agent.send(&heartbeat()).await.unwrap();
    let mut conn = Connection::new(c);
    let err = console_accept(&mut conn).await.unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Unexpected {
                got: "Heartbeat",
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn agent_reports_a_busy_or_other_refusal_in_words() {
    for (refusal, expect) in [
        (
            Refusal::Busy {
                retry_after_seconds: 30,
            },
            "tried again in 30 s",
        ),
        (Refusal::Other("device revoked".into()), "device revoked"),
    ] {
        let (a, c) = duplex(1 << 16);
        tokio::spawn(async move {
            let mut conn = Connection::new(c);
            let _ = conn.read::<AgentMessage>().await;
            conn.send(&ConsoleMessage::Refuse(refusal)).await.unwrap();
        });
        let mut conn = Connection::new(a);
        let err = agent_hello(&mut conn, &hello(PROTOCOL_VERSION))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::Refused(_)
                    | ProtocolError::Busy {
                        retry_after_seconds: 30
                    }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(expect), "{err}");
    }
}

#[tokio::test]
async fn console_closing_before_welcome_is_reported() {
    let (a, c) = duplex(1 << 16);
    tokio::spawn(async move {
        let mut c = c;
        let mut buf = [0u8; 64];
        let _ = c.read(&mut buf).await;
        drop(c);
    });
    let mut conn = Connection::new(a);
    let err = agent_hello(&mut conn, &hello(PROTOCOL_VERSION))
        .await
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Closed { .. }), "{err:?}");
}
