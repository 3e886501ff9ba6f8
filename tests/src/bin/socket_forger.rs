//! What a pupil's own program can try on the agent's local socket, for the
//! tamper tests (run as the pupil's account): hold more connections than
//! an account may, pose as a session helper and forge a capture and an AUP
//! acceptance, and flood it with fed text. Prints one JSON line of what
//! the service answered.
//!
//!   socket-forger STATE_DIR/agent.sock

use std::path::PathBuf;
use std::time::Duration;

use agent::ipc::{FeedText, ToService, ToSession};
use protocol::{AgentMessage, Audience, AupDecision, Connection, Decision, UnixMillis};
use tokio::net::UnixStream;

/// More connections than the service lets one account hold.
const HOLD: usize = 40;
/// Fed texts sent as fast as the service answers.
const FLOOD: usize = 60;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let socket: PathBuf = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: socket-forger SOCKET"))?
        .into();

    // 1. Connections opened at once and held without a word: those over
    //    the account's share are refused at once, the rest closed at the
    //    service's deadline for a first message.
    let mut held = Vec::new();
    for _ in 0..HOLD {
        held.push(Connection::new(UnixStream::connect(&socket).await?));
    }
    let (mut refused_at_once, mut closed_by_deadline) = (0, 0);
    for conn in &mut held {
        match tokio::time::timeout(Duration::from_secs(10), conn.read::<ToSession>()).await {
            Ok(Ok(Some(ToSession::Refused(_)))) => refused_at_once += 1,
            Ok(Ok(None) | Err(_)) => closed_by_deadline += 1,
            _ => {}
        }
    }
    drop(held);

    // 2. Posing as a session helper, then forging records.
    let mut conn = Connection::new(UnixStream::connect(&socket).await?);
    conn.send(&ToService::SessionHello {
        display: std::env::var("DISPLAY").ok(),
    })
    .await?;
    let mut forged = tests::capture("FORGED kill myself FORGED", "kill myself", None);
    forged.severity = 5;
    forged.term = "FORGED".into();
    let _ = conn
        .send(&ToService::Record(AgentMessage::Capture(forged)))
        .await;
    let _ = conn
        .send(&ToService::Record(AgentMessage::AupDecision(AupDecision {
            id: uuid::Uuid::now_v7(),
            time: UnixMillis::now(),
            user: "FORGED".into(),
            audience: Audience::Pupils,
            aup_version: 1,
            decision: Decision::Accept,
        })))
        .await;
    // An answer to a year group's own AUP, for a year the pupil is not in.
    let _ = conn
        .send(&ToService::Record(AgentMessage::GroupAupDecision(
            protocol::GroupAupDecision {
                decision: AupDecision {
                    id: uuid::Uuid::now_v7(),
                    time: UnixMillis::now(),
                    user: "FORGED".into(),
                    audience: Audience::Pupils,
                    aup_version: 1,
                    decision: Decision::Accept,
                },
                group: "year:FORGED".into(),
            },
        )))
        .await;
    let mut answers = Vec::new();
    while let Ok(Ok(Some(m))) =
        tokio::time::timeout(Duration::from_secs(5), conn.read::<ToSession>()).await
    {
        answers.push(match m {
            ToSession::Supervised(_) => "Supervised".to_owned(),
            ToSession::Welcome { .. } => "Welcome".to_owned(),
            ToSession::Stored(_) => "Stored".to_owned(),
            ToSession::Refused(why) => format!("Refused: {why}"),
            other => format!("{other:?}").chars().take(40).collect(),
        });
    }

    // 3. Fed text as fast as it is answered.
    let (mut handed, mut limited, mut other) = (0, 0, 0);
    for i in 0..FLOOD {
        let text = FeedText {
            app: "flood".into(),
            title: "flood".into(),
            text: format!("ordinary words {i}"),
        };
        match agent::ipc::feed(&socket, text).await {
            Ok(()) => handed += 1,
            Err(e) if e.to_string().contains("too many requests") => limited += 1,
            Err(_) => other += 1,
        }
    }

    println!(
        "{}",
        serde_json::json!({
            "opened": HOLD,
            "refused_at_once": refused_at_once,
            "closed_by_deadline": closed_by_deadline,
            "forge_answers": answers,
            "feed_handed": handed,
            "feed_limited": limited,
            "feed_other": other,
        })
    );
    Ok(())
}
