//! Local stand-ins for the services the console talks to: an SMTP relay
//! that hands over each message, and a webhook receiver that can be made
//! to fail.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};

/// A local SMTP sink: answers like a relay and hands over each message.
pub fn smtp_sink() -> (u16, Receiver<String>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
    let port = listener.local_addr().expect("bound").port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            // A relay serves many clients at once.
            std::thread::spawn(move || {
                let Ok(mut out) = stream.try_clone() else {
                    return;
                };
                let mut lines = BufReader::new(stream);
                let _ = out.write_all(b"220 sink ESMTP\r\n");
                let mut data: Option<String> = None;
                let mut line = String::new();
                while lines.read_line(&mut line).unwrap_or(0) > 0 {
                    if let Some(body) = data.as_mut() {
                        if line == ".\r\n" {
                            let _ = tx.send(std::mem::take(body));
                            data = None;
                            let _ = out.write_all(b"250 2.0.0 queued\r\n");
                        } else {
                            body.push_str(&line);
                        }
                    } else {
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-sink\r\n250 8BITMIME\r\n",
                            "DATA" => {
                                data = Some(String::new());
                                b"354 go ahead\r\n"
                            }
                            "QUIT" => {
                                let _ = out.write_all(b"221 bye\r\n");
                                break;
                            }
                            _ => b"250 OK\r\n",
                        };
                        let _ = out.write_all(reply);
                    }
                    line.clear();
                }
            });
        }
    });
    (port, rx)
}

/// A webhook receiver on loopback: each POST it accepts (while up) is
/// handed over as (headers, body); while down it answers 503.
pub struct WebhookSink {
    pub url: String,
    pub received: Receiver<(String, String)>,
    up: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
}

impl WebhookSink {
    pub fn start() -> WebhookSink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a local port");
        let port = listener.local_addr().expect("bound").port();
        let (tx, rx) = channel();
        let up = Arc::new(AtomicBool::new(true));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (up2, attempts2) = (up.clone(), attempts.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (tx, up2, attempts2) = (tx.clone(), up2.clone(), attempts2.clone());
                std::thread::spawn(move || {
                    let Ok(mut out) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(stream);
                    let mut head = String::new();
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                        head.push_str(&line);
                        line.clear();
                    }
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())
                                .flatten()
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    attempts2.fetch_add(1, Ordering::SeqCst);
                    if up2.load(Ordering::SeqCst) {
                        let _ = tx.send((head, String::from_utf8_lossy(&body).into_owned()));
                        let _ = out.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                    } else {
                        let _ = out.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                    }
                });
            }
        });
        WebhookSink {
            url: format!("http://127.0.0.1:{port}/hook"),
            received: rx,
            up,
            attempts,
        }
    }

    /// Answers 503 from now on (`false`), or accepts again (`true`).
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }

    /// Requests seen, accepted or not.
    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }
}
