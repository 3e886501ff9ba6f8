//! Framing over a socket: an async [`Connection`] that reads and writes
//! whole messages over any `AsyncRead + AsyncWrite` (a TCP stream, a
//! tokio-rustls stream, an in-memory duplex in tests).
//!
//! Memory per connection is bounded: the read buffer never grows past the
//! frame maximum plus the header, because a frame's length is checked (in
//! [`frame::parse`]) before room for its body is reserved, and room is
//! reserved only as bytes actually arrive.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ProtocolError;
use crate::frame::{self, HEADER_LEN};
use crate::message::WireMessage;

/// Bytes asked of the socket at a time while a frame's size is not yet known.
const READ_CHUNK: usize = 8 * 1024;
/// The most the read buffer grows by in one step.
const MAX_RESERVE: usize = 64 * 1024;

/// A framed message stream over `S`.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    buf: BytesMut,
    max_frame: u32,
}

impl<S> Connection<S> {
    /// Wraps `stream`, accepting frames up to [`frame::DEFAULT_MAX_FRAME`].
    pub fn new(stream: S) -> Self {
        Self::with_max_frame(stream, frame::DEFAULT_MAX_FRAME)
    }

    /// Wraps `stream`, accepting frames up to `max_frame` bytes of body.
    pub fn with_max_frame(stream: S, max_frame: u32) -> Self {
        Connection {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            max_frame,
        }
    }

    /// Changes the largest frame body accepted from now on: for a peer
    /// whose first (small) message showed what it is and what it may send.
    pub fn set_max_frame(&mut self, max_frame: u32) {
        self.max_frame = max_frame;
    }

    /// The underlying stream (for example to read the peer's TLS certificate).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// Gives back the stream, dropping any buffered bytes.
    pub fn into_inner(self) -> S {
        self.stream
    }
}

impl<S: AsyncRead + Unpin> Connection<S> {
    /// Waits until the next frame's header has arrived and returns its body
    /// length (already checked against the maximum), without reading the
    /// body. A server uses it to reserve memory for the frame from a shared
    /// budget before [`Connection::read`] buffers it. `Ok(None)` means the
    /// peer closed cleanly between frames.
    ///
    /// Cancel-safe, like [`Connection::read`].
    ///
    /// # Errors
    /// As [`Connection::read`], for the header only.
    pub async fn next_frame_len(&mut self) -> Result<Option<usize>, ProtocolError> {
        while self.buf.len() < HEADER_LEN {
            self.buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(ProtocolError::Truncated {
                    got: self.buf.len(),
                    expected: HEADER_LEN,
                });
            }
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[..HEADER_LEN]);
        frame::body_len(header, self.max_frame).map(Some)
    }

    /// Reads the next message. `Ok(None)` means the peer closed the
    /// connection cleanly between frames.
    ///
    /// Cancel-safe: if the future is dropped (say, in a `select!` with a
    /// timeout), bytes already read stay buffered for the next call.
    ///
    /// # Errors
    /// Any framing or decoding error of [`frame`], [`ProtocolError::Truncated`]
    /// if the stream ends inside a frame, or [`ProtocolError::Io`].
    pub async fn read<T: WireMessage>(&mut self) -> Result<Option<T>, ProtocolError> {
        loop {
            if let Some(len) = frame::parse(&self.buf, self.max_frame)? {
                let body = &self.buf[HEADER_LEN..HEADER_LEN + len];
                let result = frame::decode_body(body);
                self.buf.advance(HEADER_LEN + len);
                if self.buf.is_empty() && self.buf.capacity() > MAX_RESERVE {
                    // Give back a big frame's room: an idle connection holds
                    // a small buffer, not the largest frame it ever read.
                    self.buf = BytesMut::with_capacity(READ_CHUNK);
                }
                return result.map(Some);
            }
            let want = match frame::needed(&self.buf, self.max_frame)? {
                Some(total) => total - self.buf.len(),
                None => READ_CHUNK,
            };
            // Grow by at most a chunk per read: a peer that promises a large
            // frame and then trickles bytes costs only what it has sent.
            self.buf.reserve(want.min(MAX_RESERVE));
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let expected = frame::needed(&self.buf, self.max_frame)?.unwrap_or(HEADER_LEN);
                return Err(ProtocolError::Truncated {
                    got: self.buf.len(),
                    expected,
                });
            }
        }
    }

    /// Reads the next message where one is required.
    ///
    /// # Errors
    /// As [`Connection::read`], and [`ProtocolError::Closed`] naming
    /// `during` if the peer closed the connection instead.
    pub async fn recv<T: WireMessage>(&mut self, during: &'static str) -> Result<T, ProtocolError> {
        self.read().await?.ok_or(ProtocolError::Closed { during })
    }
}

impl<S: AsyncWrite + Unpin> Connection<S> {
    /// Writes one message and flushes it.
    ///
    /// Not cancel-safe: a dropped send may leave half a frame on the wire,
    /// after which the connection must be closed.
    ///
    /// # Errors
    /// [`ProtocolError::Encode`] if the message cannot be encoded within the
    /// frame limit, or [`ProtocolError::Io`].
    pub async fn send<T: WireMessage>(&mut self, msg: &T) -> Result<(), ProtocolError> {
        let bytes = frame::encode(msg, self.max_frame)?;
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Closes the write side (TLS close_notify for a TLS stream).
    ///
    /// # Errors
    /// [`ProtocolError::Io`] if the shutdown fails.
    pub async fn shutdown(&mut self) -> Result<(), ProtocolError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}
