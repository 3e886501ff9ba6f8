//! The one error type of the protocol crate.
//!
//! Every variant ends the connection it happened on and nothing else: the
//! server loop that owns the connection logs it and drops the socket.

use thiserror::Error;

/// What went wrong on a framed connection, in the handshake, or in TLS setup.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The length prefix promises more than this side accepts.
    #[error(
        "frame of {len} bytes is over the {max}-byte limit; the peer is misbehaving or is not speaking this protocol"
    )]
    FrameTooLarge { len: u32, max: u32 },

    /// A length prefix of zero: every frame carries one message.
    #[error("empty frame (length 0); every frame must carry a message")]
    EmptyFrame,

    /// The stream ended part-way through a frame.
    #[error(
        "connection closed part-way through a frame ({got} of {expected} bytes); the peer crashed or the network cut the connection"
    )]
    Truncated { got: usize, expected: usize },

    /// The message kind is past the variants this side knows.
    #[error(
        "unknown {what} kind {kind} (this side knows kinds 0 to {last}); the peer is newer or is not speaking this protocol",
        last = known.saturating_sub(1)
    )]
    UnknownKind {
        what: &'static str,
        kind: u32,
        known: u32,
    },

    /// The body is not a valid encoding of the expected message.
    #[error("could not decode {what}: {source}; the peer sent a malformed message")]
    Decode {
        what: &'static str,
        #[source]
        source: postcard::Error,
    },

    /// The body held a whole message and then more bytes.
    #[error("{what} is followed by {extra} unexpected bytes inside its frame")]
    TrailingBytes { what: &'static str, extra: usize },

    /// This side could not encode its own message (a bug, or a message over the limit).
    #[error("could not encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },

    /// The two sides' protocol versions cannot talk to each other.
    #[error(
        "incompatible protocol versions: this side speaks version {ours}, the peer version {theirs}; upgrade the older of agent and console"
    )]
    VersionMismatch { ours: u16, theirs: u16 },

    /// The console is shedding load (or cannot store for now) and asked to
    /// be tried again later.
    #[error("the console is busy; it asked to be tried again in {retry_after_seconds} s")]
    Busy { retry_after_seconds: u32 },

    /// The console refused this agent for a reason other than the version.
    #[error("the console refused the connection: {0}")]
    Refused(String),

    /// A valid message arrived where the conversation does not allow it.
    #[error("unexpected {got} while {during}")]
    Unexpected {
        got: &'static str,
        during: &'static str,
    },

    /// The peer closed the connection cleanly where a message was required.
    #[error("the peer closed the connection while {during}")]
    Closed { during: &'static str },

    /// TLS configuration or certificate material is unusable.
    #[error("the enrollment token is not usable: {0}")]
    BadToken(String),

    #[error("TLS setup failed: {0}")]
    Tls(String),

    /// The socket failed.
    #[error("network I/O failed: {0}")]
    Io(#[from] std::io::Error),
}
