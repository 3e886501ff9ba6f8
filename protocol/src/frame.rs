//! What is on the wire: one message per frame.
//!
//! ```text
//! +----------------------+--------------------------------------------+
//! | length: u32 big-end. | body: `length` bytes, one postcard message |
//! +----------------------+--------------------------------------------+
//! ```
//!
//! The length counts the body only. It is checked against the receiver's
//! maximum before a single byte of body is buffered, so a peer cannot make
//! this side allocate more than `max + HEADER_LEN` bytes for a frame.
//!
//! A body is a postcard encoding of a [`WireMessage`]; for an enum the first
//! byte(s) are the variant index as a varint, which [`decode_body`] reads
//! first so that a kind this side does not know is reported as such rather
//! than as a generic decoding failure. A body must be consumed exactly:
//! trailing bytes are an error, not silently ignored.
//!
//! Everything here is a pure function of its input: no sockets, no clocks.

use crate::ProtocolError;
use crate::message::WireMessage;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 4;

/// The default largest body either side accepts: 16 MiB, room for a PNG
/// screenshot of a 1920-pixel-wide screen with margin to spare.
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// Reads a frame header and checks the promised length against `max`.
///
/// # Errors
/// [`ProtocolError::EmptyFrame`] for a zero length and
/// [`ProtocolError::FrameTooLarge`] for a length over `max`.
pub fn body_len(header: [u8; HEADER_LEN], max: u32) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(header);
    if len == 0 {
        return Err(ProtocolError::EmptyFrame);
    }
    if len > max {
        return Err(ProtocolError::FrameTooLarge { len, max });
    }
    Ok(len as usize)
}

/// Looks for one whole frame at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed, and `Ok(Some(len))` when
/// `buf[HEADER_LEN..HEADER_LEN + len]` is a complete body.
///
/// # Errors
/// As [`body_len`], as soon as the header is complete: a bad length is
/// reported before its body arrives.
pub fn parse(buf: &[u8], max: u32) -> Result<Option<usize>, ProtocolError> {
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let len = body_len(*header, max)?;
    if buf.len() - HEADER_LEN < len {
        return Ok(None);
    }
    Ok(Some(len))
}

/// How many bytes the frame at the start of `buf` needs in all, once its
/// header is there (used to size the read buffer, never past `max`).
pub fn needed(buf: &[u8], max: u32) -> Result<Option<usize>, ProtocolError> {
    match buf.first_chunk::<HEADER_LEN>() {
        Some(header) => Ok(Some(HEADER_LEN + body_len(*header, max)?)),
        None => Ok(None),
    }
}

/// Encodes `msg` as one frame: header and body.
///
/// # Errors
/// [`ProtocolError::Encode`] when serialisation fails or the body would be
/// larger than `max` (the peer would refuse it; better to know here).
pub fn encode<T: WireMessage>(msg: &T, max: u32) -> Result<Vec<u8>, ProtocolError> {
    let mut out =
        postcard::to_extend(msg, vec![0u8; HEADER_LEN]).map_err(|e| ProtocolError::Encode {
            what: T::NAME,
            detail: e.to_string(),
        })?;
    let body = out.len() - HEADER_LEN;
    let len = u32::try_from(body)
        .ok()
        .filter(|&l| l <= max)
        .ok_or_else(|| ProtocolError::Encode {
            what: T::NAME,
            detail: format!("the message is {body} bytes, over the {max}-byte frame limit"),
        })?;
    out[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Decodes a frame body (without its header) as one `T`.
///
/// # Errors
/// [`ProtocolError::EmptyFrame`], [`ProtocolError::UnknownKind`],
/// [`ProtocolError::Decode`] or [`ProtocolError::TrailingBytes`].
pub fn decode_body<T: WireMessage>(body: &[u8]) -> Result<T, ProtocolError> {
    if body.is_empty() {
        return Err(ProtocolError::EmptyFrame);
    }
    if let Some(known) = T::KINDS {
        let kind = leading_varint(body).ok_or(ProtocolError::Decode {
            what: T::NAME,
            source: postcard::Error::DeserializeBadVarint,
        })?;
        if kind >= known {
            return Err(ProtocolError::UnknownKind {
                what: T::NAME,
                kind,
                known,
            });
        }
    }
    let (msg, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|source| ProtocolError::Decode {
            what: T::NAME,
            source,
        })?;
    if !rest.is_empty() {
        return Err(ProtocolError::TrailingBytes {
            what: T::NAME,
            extra: rest.len(),
        });
    }
    Ok(msg)
}

/// postcard's varint for a `u32` enum index: little-endian groups of seven
/// bits, high bit set on every byte but the last, at most five bytes.
fn leading_varint(bytes: &[u8]) -> Option<u32> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().take(5).enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(value).ok();
        }
    }
    None
}

/// Splits a byte stream into messages: feed it bytes as they arrive and
/// take out whole messages. The same logic [`crate::Connection`] uses,
/// without a socket, for fuzzing and for tests.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: u32,
}

impl FrameDecoder {
    /// A decoder that refuses frames over `max` bytes.
    pub fn new(max: u32) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            max,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet consumed by a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, `Ok(None)` if more bytes are needed.
    ///
    /// # Errors
    /// As [`parse`] and [`decode_body`]. After an error the stream is out of
    /// step and the connection must be closed.
    pub fn next_message<T: WireMessage>(&mut self) -> Result<Option<T>, ProtocolError> {
        let Some(len) = parse(&self.buf, self.max)? else {
            return Ok(None);
        };
        let result = decode_body(&self.buf[HEADER_LEN..HEADER_LEN + len]);
        self.buf.drain(..HEADER_LEN + len);
        result.map(Some)
    }

    /// Called at end of stream: an error if a frame was left half-received.
    ///
    /// # Errors
    /// [`ProtocolError::Truncated`] when bytes remain.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let expected = needed(&self.buf, self.max)?.unwrap_or(HEADER_LEN);
        Err(ProtocolError::Truncated {
            got: self.buf.len(),
            expected,
        })
    }
}
