//! `agent native-host`: the native-messaging host the browsers start for
//! the page-reader extension (`agent/browser-extension/`).
//!
//! The browser writes messages to its standard input and reads ours from
//! its standard output, each a 32-bit length in the machine's byte order
//! followed by that many bytes of UTF-8 JSON. The host keeps one
//! connection to the agent service's socket open ([`ToService::PageReader`])
//! for as long as the browser keeps the port open: that open connection is
//! how the session helper knows the browser is watched. Page text goes to
//! the service, which hands it to the same user's session helper; nothing
//! is matched, stored or sent anywhere from here.
//!
//! Bounded: a message over 4 MiB ends the host (the browser starts it
//! again when the extension reconnects); at most 512 blocks of at most
//! 16 KiB each are taken from a message, and at most 1 MiB of text a
//! second in all (more is dropped and counted in the log).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::Connection;
use serde_json::{Value, json};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::ipc::{PageText, ToService, ToSession};

/// The largest message taken from the browser.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;
/// Blocks taken from one message.
const MAX_BLOCKS: usize = 512;
/// Bytes kept of one block.
const MAX_BLOCK: usize = 16 * 1024;
/// Bytes of addresses and titles kept.
const MAX_FIELD: usize = 2048;
/// Bytes of text a second passed on.
const RATE: usize = 1024 * 1024;

/// One message from the extension, as read.
#[derive(Debug, PartialEq)]
pub enum FromExtension {
    Hello { version: String },
    Text(PageText),
    Alive,
    Other(String),
}

/// Reads one native-messaging frame; `Ok(None)` at the end of input.
///
/// # Errors
/// A truncated frame, one over [`MAX_MESSAGE`], or one that is not JSON.
pub fn read_frame(input: &mut impl Read) -> anyhow::Result<Option<Value>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e).context("cannot read from the browser"),
    }
    let len = u32::from_ne_bytes(len) as usize;
    anyhow::ensure!(
        len <= MAX_MESSAGE,
        "the browser sent a message of {len} bytes; at most {MAX_MESSAGE} are taken"
    );
    let mut body = vec![0u8; len];
    input
        .read_exact(&mut body)
        .context("the browser's message ended early")?;
    serde_json::from_slice(&body).context("the browser's message is not JSON")
}

/// Writes one native-messaging frame.
///
/// # Errors
/// The browser closed its end.
pub fn write_frame(output: &mut impl Write, message: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec(message)?;
    output.write_all(&(body.len() as u32).to_ne_bytes())?;
    output.write_all(&body)?;
    output.flush()
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// What a JSON message from the extension says, bounded.
pub fn parse(message: &Value) -> FromExtension {
    let field = |name: &str| cut(message[name].as_str().unwrap_or_default(), MAX_FIELD);
    match message["kind"].as_str() {
        Some("hello") => FromExtension::Hello {
            version: field("extension_version"),
        },
        Some("alive") => FromExtension::Alive,
        Some("text") => {
            let blocks = message["blocks"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .filter_map(Value::as_str)
                        .filter(|t| !t.trim().is_empty())
                        .take(MAX_BLOCKS)
                        .map(|t| cut(t, MAX_BLOCK))
                        .collect()
                })
                .unwrap_or_default();
            FromExtension::Text(PageText {
                page_url: field("page_url"),
                page_title: field("page_title"),
                frame_url: field("frame_url"),
                blocks,
                reader_us: message["reader_us"]
                    .as_u64()
                    .map_or(0, |us| u32::try_from(us).unwrap_or(u32::MAX)),
            })
        }
        other => FromExtension::Other(cut(other.unwrap_or("no kind"), 64)),
    }
}

/// The browser that started this host, by its process name (for logs).
fn browser_name() -> String {
    let parent = std::os::unix::process::parent_id();
    std::fs::read_to_string(format!("/proc/{parent}/comm"))
        .map(|c| c.trim().to_owned())
        .unwrap_or_else(|_| format!("pid {parent}"))
}

/// Runs the host until the browser closes its end.
///
/// # Errors
/// The browser sent something unreadable (the host then exits; the
/// extension reconnects).
pub async fn run(socket: &Path, args: &[String]) -> anyhow::Result<()> {
    let browser = browser_name();
    tracing::info!("native host for {browser} started ({args:?})");
    let (tx, mut from_browser) = mpsc::channel::<anyhow::Result<Value>>(64);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        loop {
            match read_frame(&mut stdin) {
                Ok(Some(v)) => {
                    if tx.blocking_send(Ok(v)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let (out_tx, out_rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        let mut stdout = std::io::stdout().lock();
        for message in out_rx {
            if write_frame(&mut stdout, &message).is_err() {
                return;
            }
        }
    });

    let mut link: Option<Connection<UnixStream>> = None;
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut next_try = Instant::now();
    let mut window = (Instant::now(), 0usize);
    let mut dropped = 0u64;
    loop {
        if link.is_none() && Instant::now() >= next_try {
            match open(socket, &browser).await {
                Ok(c) => {
                    backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
                    link = Some(c);
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!("{e:#}; trying again in {:.1} s", delay.as_secs_f32());
                    next_try = Instant::now() + delay;
                }
            }
        }
        let wait = next_try.saturating_duration_since(Instant::now());
        tokio::select! {
            got = from_browser.recv() => {
                let Some(got) = got else {
                    tracing::info!("the browser closed the page reader's port");
                    return Ok(());
                };
                match parse(&got?) {
                    FromExtension::Text(text) => {
                        let bytes: usize = text.blocks.iter().map(String::len).sum();
                        if window.0.elapsed() >= Duration::from_secs(1) {
                            window = (Instant::now(), 0);
                        }
                        if window.1 + bytes > RATE || link.is_none() {
                            dropped += 1;
                            if dropped.is_power_of_two() {
                                tracing::warn!("{dropped} batch(es) of page text dropped (over {RATE} bytes a second, or the agent service is not reachable)");
                            }
                            continue;
                        }
                        window.1 += bytes;
                        if let Some(c) = link.as_mut()
                            && let Err(e) = c.send(&ToService::PageText(text)).await
                        {
                            tracing::warn!("lost the agent service: {e}");
                            link = None;
                        }
                    }
                    FromExtension::Hello { version } => {
                        tracing::info!("page reader extension {version} connected");
                    }
                    FromExtension::Alive => {}
                    FromExtension::Other(kind) => {
                        tracing::warn!("the extension sent a message of kind {kind:?}; ignored");
                    }
                }
            }
            got = recv(&mut link) => match got {
                Ok(Some(ToSession::PageConfig { reading, excluded_sites })) => {
                    let _ = out_tx.send(json!({
                        "kind": "config",
                        "reading": reading,
                        "excluded_sites": excluded_sites,
                    }));
                }
                Ok(Some(other)) => tracing::warn!("the agent service sent {other:?}; ignored"),
                Ok(None) | Err(_) => {
                    tracing::warn!("lost the agent service; reconnecting");
                    link = None;
                    next_try = Instant::now() + backoff.next_delay();
                }
            },
            () = tokio::time::sleep(wait), if link.is_none() => {}
        }
    }
}

async fn recv(link: &mut Option<Connection<UnixStream>>) -> anyhow::Result<Option<ToSession>> {
    match link {
        Some(c) => Ok(c.read::<ToSession>().await?),
        None => std::future::pending().await,
    }
}

async fn open(socket: &Path, browser: &str) -> anyhow::Result<Connection<UnixStream>> {
    let stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "cannot reach the agent service at {} (is it running?)",
            socket.display()
        )
    })?;
    let mut conn = Connection::new(stream);
    conn.send(&ToService::PageReader {
        browser: browser.to_owned(),
    })
    .await?;
    Ok(conn)
}

/// The socket of the state directory a host was installed for.
pub fn socket_of(state_dir: &Path) -> PathBuf {
    crate::state_dir::StateDir::new(state_dir.to_owned()).socket()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_are_bounded() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &json!({"kind": "alive"})).unwrap();
        write_frame(
            &mut buf,
            &json!({"kind": "hello", "extension_version": "0.1.0"}),
        )
        .unwrap();
        let mut input = buf.as_slice();
        let a = read_frame(&mut input).unwrap().unwrap();
        assert_eq!(parse(&a), FromExtension::Alive);
        let b = read_frame(&mut input).unwrap().unwrap();
        assert_eq!(
            parse(&b),
            FromExtension::Hello {
                version: "0.1.0".into()
            }
        );
        assert!(read_frame(&mut input).unwrap().is_none(), "end of input");

        let huge = ((MAX_MESSAGE + 1) as u32).to_ne_bytes();
        let err = read_frame(&mut huge.as_slice()).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
        let mut short = 10u32.to_ne_bytes().to_vec();
        short.extend_from_slice(b"{\"a\"");
        assert!(read_frame(&mut short.as_slice()).is_err(), "truncated");
        let mut garbage = 3u32.to_ne_bytes().to_vec();
        garbage.extend_from_slice(b"\xff\x00{");
        assert!(read_frame(&mut garbage.as_slice()).is_err(), "not JSON");
    }

    #[test]
    fn text_messages_are_cut_to_size() {
        let long = "é".repeat(MAX_BLOCK);
        let blocks: Vec<Value> = (0..MAX_BLOCKS + 10)
            .map(|i| Value::String(if i == 0 { long.clone() } else { "  ".into() }))
            .chain(std::iter::once(json!(42)))
            .chain((0..MAX_BLOCKS + 10).map(|i| Value::String(format!("block {i}"))))
            .collect();
        let m = json!({
            "kind": "text",
            "page_url": "http://chat.test/".repeat(500),
            "page_title": "Chat",
            "frame_url": "http://chat.test/",
            "blocks": blocks,
            "reader_us": 1234,
        });
        let FromExtension::Text(t) = parse(&m) else {
            panic!("not text")
        };
        assert_eq!(
            t.blocks.len(),
            MAX_BLOCKS,
            "blank and non-string blocks skipped, then capped"
        );
        assert!(t.blocks[0].len() <= MAX_BLOCK && t.blocks[0].starts_with('é'));
        assert_eq!(t.blocks[1], "block 0");
        assert!(t.page_url.len() <= MAX_FIELD);
        assert_eq!(t.reader_us, 1234);
        assert_eq!(
            parse(&json!({"kind": "<script>"})),
            FromExtension::Other("<script>".into())
        );
        assert_eq!(
            parse(&json!([1, 2])),
            FromExtension::Other("no kind".into())
        );
    }
}
