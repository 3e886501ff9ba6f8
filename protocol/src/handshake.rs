//! The version handshake that opens every device connection.
//!
//! ```text
//! agent                              console
//!   | -- Hello{protocol_version,…} --> |
//!   | <-- Welcome{…}  or  Refuse(…) -- |   (Refuse closes the connection)
//! ```
//!
//! Versions are compatible when the agent's lies in
//! [`MIN_SUPPORTED_VERSION`]`..=`[`PROTOCOL_VERSION`] on the console. An
//! incompatible agent is told both versions before the console hangs up,
//! so its log (and `agent status`) can say which side to upgrade.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::message::{AgentMessage, ConsoleMessage, Hello, Refusal, Welcome};
use crate::{Connection, ProtocolError};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 7;

/// The oldest peer version this build still talks to. Version 4 only
/// added tamper kinds, so a console still reads what a version 3 agent
/// sends; a version 4 agent is refused by a version 3 console, which could
/// not read them. Version 5 added the console's `Layers` message, which a
/// console sends only to agents of version 5 or later; version 6 added
/// `LayersV6` (terms and term-time hours), sent to agents of version 6
/// or later in place of `Layers`; version 7 added `PolicyV7` (the
/// semantic layer's switch), sent to agents of version 7 or later in place
/// of `Policy`.
pub const MIN_SUPPORTED_VERSION: u16 = 3;

/// The version from which the console sends [`crate::ConsoleMessage::Layers`]
/// right after the Welcome (and the policy, if one follows it).
pub const LAYERS_SINCE: u16 = 5;

/// The version from which the console sends the layers as
/// [`crate::ConsoleMessage::LayersV6`], with the school's terms.
pub const TERMS_SINCE: u16 = 6;

/// The version from which the console sends the policy as
/// [`crate::ConsoleMessage::PolicyV7`], with the semantic layer's switch.
pub const SEMANTIC_SINCE: u16 = 7;

/// Whether a peer speaking `theirs` can talk to this build.
///
/// # Errors
/// [`ProtocolError::VersionMismatch`] naming both versions.
pub fn check_version(theirs: u16) -> Result<(), ProtocolError> {
    if (MIN_SUPPORTED_VERSION..=PROTOCOL_VERSION).contains(&theirs) {
        Ok(())
    } else {
        Err(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs,
        })
    }
}

/// The agent's side: sends `hello` and waits for the console's answer.
///
/// # Errors
/// [`ProtocolError::VersionMismatch`] or [`ProtocolError::Refused`] when the
/// console refuses, [`ProtocolError::Unexpected`] for any other reply, and
/// any error of the connection.
pub async fn agent_hello<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
    hello: &Hello,
) -> Result<Welcome, ProtocolError> {
    conn.send(&AgentMessage::Hello(hello.clone())).await?;
    welcome_from(conn.recv::<ConsoleMessage>(WELCOME_DURING).await?)
}

const WELCOME_DURING: &str = "waiting for the console's Welcome";

/// The agent's reading of the console's first message.
///
/// # Errors
/// As [`agent_hello`].
pub fn welcome_from(reply: ConsoleMessage) -> Result<Welcome, ProtocolError> {
    match reply {
        ConsoleMessage::Welcome(welcome) => {
            check_version(welcome.protocol_version)?;
            Ok(welcome)
        }
        ConsoleMessage::Refuse(Refusal::IncompatibleVersion { console, agent }) => {
            Err(ProtocolError::VersionMismatch {
                ours: agent,
                theirs: console,
            })
        }
        ConsoleMessage::Refuse(Refusal::Busy {
            retry_after_seconds,
        }) => Err(ProtocolError::Busy {
            retry_after_seconds,
        }),
        ConsoleMessage::Refuse(Refusal::Other(reason)) => Err(ProtocolError::Refused(reason)),
        other => Err(ProtocolError::Unexpected {
            got: other.kind_name(),
            during: WELCOME_DURING,
        }),
    }
}

/// The console's side: reads the agent's [`Hello`] and checks its version.
/// An incompatible agent is sent [`Refusal::IncompatibleVersion`] before the
/// error is returned. On success the caller sends its [`Welcome`].
///
/// # Errors
/// [`ProtocolError::VersionMismatch`], [`ProtocolError::Unexpected`] if the
/// first message is not a Hello, and any error of the connection.
pub async fn console_accept<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
) -> Result<Hello, ProtocolError> {
    const DURING: &str = "waiting for the agent's Hello";
    match conn.recv::<AgentMessage>(DURING).await? {
        AgentMessage::Hello(hello) => {
            if let Err(err) = check_version(hello.protocol_version) {
                let refusal = Refusal::IncompatibleVersion {
                    console: PROTOCOL_VERSION,
                    agent: hello.protocol_version,
                };
                // Best effort: the agent learns why; the error stands either way.
                let _ = conn.send(&ConsoleMessage::Refuse(refusal)).await;
                let _ = conn.shutdown().await;
                return Err(err);
            }
            Ok(hello)
        }
        other => Err(ProtocolError::Unexpected {
            got: other.kind_name(),
            during: DURING,
        }),
    }
}
