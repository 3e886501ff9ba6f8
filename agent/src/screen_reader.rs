//! The accessibility reader ([`crate::accessibility`]) in a process of the
//! session's own user, for a session helper the service runs as root.
//!
//! A session's D-Bus (and its accessibility bus) takes connections only
//! from the user who owns it, not even from root, so a helper running as
//! root cannot read other applications' text itself. It starts
//! `agent screen-reader` as the session's user instead: the helper writes
//! the process in front to its standard input (one line, a pid or `-`),
//! the reader writes each text it read to its standard output (one JSON
//! line). The pupil can kill that process (it is theirs); the helper then
//! reports it (a [`TamperKind::SourceUnavailable`] event naming the
//! signal) and starts it again at once, at most [`STARTS_PER_MINUTE`]
//! times a minute. It says it is alive every 5 s; one silent for
//! [`READER_DEADLINE`] (paused with SIGSTOP, or hung) is killed, reported
//! and started again.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use protocol::TamperKind;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

use crate::accessibility::ScreenText;

/// Most starts of the reader in a minute.
pub const STARTS_PER_MINUTE: usize = 5;
/// How often the reader says it is alive, and the line it says it with.
const ALIVE_EVERY: Duration = Duration::from_secs(5);
const ALIVE_LINE: &str = "alive\n";
/// Silence from the reader after which it is taken for paused or hung,
/// killed and reported.
pub const READER_DEADLINE: Duration = Duration::from_secs(20);
/// Longest line the reader may write (a look is at most 256 KiB of text).
const MAX_LINE: usize = 2 * 1024 * 1024;

/// Who the reader runs as, and where it finds the session.
#[derive(Debug, Clone)]
pub struct ReaderAccount {
    /// The agent's program.
    pub program: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// `DISPLAY`, `DBUS_SESSION_BUS_ADDRESS`, `HOME`… for the reader.
    pub env: Vec<(String, String)>,
}

/// `agent screen-reader`: the accessibility reader on standard input and
/// output, until its input closes.
///
/// # Errors
/// What [`crate::accessibility::run`] returns (no session bus…).
pub async fn child_main() -> anyhow::Result<()> {
    let (front_tx, front_rx) = watch::channel(None);
    let (out_tx, mut out_rx) = mpsc::channel::<ScreenText>(64);
    tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = front_tx.send(line.trim().parse::<u32>().ok());
        }
        // Input closed: the helper is gone; dropping `front_tx` ends the reader.
    });
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        let mut alive = tokio::time::interval(ALIVE_EVERY);
        loop {
            let line = tokio::select! {
                text = out_rx.recv() => match text.map(|t| serde_json::to_vec(&t)) {
                    Some(Ok(mut line)) => {
                        line.push(b'\n');
                        line
                    }
                    Some(Err(_)) => continue,
                    None => return,
                },
                _ = alive.tick() => ALIVE_LINE.as_bytes().to_vec(),
            };
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                return;
            }
        }
    });
    let result = crate::accessibility::run(front_rx, out_tx).await;
    let _ = writer.await;
    result
}

/// Keeps a reader running as `account` for as long as `front` lives:
/// texts go to `out`, and a reader that was killed is reported on
/// `tamper` (kind, detail) before it is started again.
pub async fn supervise(
    account: ReaderAccount,
    mut front: watch::Receiver<Option<u32>>,
    out: mpsc::Sender<ScreenText>,
    tamper: mpsc::UnboundedSender<(TamperKind, String)>,
) {
    let mut starts: VecDeque<Instant> = VecDeque::new();
    loop {
        while starts
            .front()
            .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
        {
            starts.pop_front();
        }
        if starts.len() >= STARTS_PER_MINUTE {
            tracing::warn!(
                "the screen-text reader failed {STARTS_PER_MINUTE} times in a minute; trying again in a minute"
            );
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(60)) => {}
                changed = front.changed() => if changed.is_err() { return },
            }
            continue;
        }
        starts.push_back(Instant::now());
        let ended = match run_once(&account, &mut front, &out).await {
            Some(ended) => ended,
            None => return,
        };
        if ended.hung {
            let detail = format!(
                "the screen-text reader of this session (pid {}) stopped answering for {} s (paused, as with SIGSTOP, or hung) and was killed; started again",
                ended.pid,
                READER_DEADLINE.as_secs()
            );
            tracing::error!("{detail}");
            let _ = tamper.send((TamperKind::SourceUnavailable, detail));
        } else if let Some(signal) = ended.signal {
            let detail = format!(
                "the screen-text reader of this session (pid {}) was killed by signal {signal} after {} s; started again",
                ended.pid,
                ended.ran.as_secs()
            );
            tracing::error!("{detail}");
            let _ = tamper.send((TamperKind::SourceUnavailable, detail));
        } else {
            tracing::warn!(
                "the screen-text reader ended ({}); starting it again in 2 s",
                ended.how
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// How one run of the reader ended.
struct Ended {
    pid: u32,
    ran: Duration,
    signal: Option<i32>,
    how: String,
    /// It fell silent and the helper killed it.
    hung: bool,
}

/// Runs the reader once; `None` when `front` closed (the helper stops).
async fn run_once(
    account: &ReaderAccount,
    front: &mut watch::Receiver<Option<u32>>,
    out: &mpsc::Sender<ScreenText>,
) -> Option<Ended> {
    use std::os::unix::process::ExitStatusExt;
    let started = Instant::now();
    let mut command = tokio::process::Command::new(&account.program);
    command
        .arg("screen-reader")
        .uid(account.uid)
        .gid(account.gid)
        .env_clear()
        .envs(account.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Some(Ended {
                pid: 0,
                ran: started.elapsed(),
                signal: None,
                how: format!("it cannot start: {e}"),
                hung: false,
            });
        }
    };
    let pid = child.id().unwrap_or(0);
    let mut stdin = child.stdin.take();
    let mut lines = child.stdout.take().map(BufReader::new);
    // The reader starts with what is in front now.
    let now = *front.borrow_and_update();
    if let Some(i) = stdin.as_mut() {
        let _ = i.write_all(front_line(now).as_bytes()).await;
    }
    let mut heard = tokio::time::Instant::now();
    let mut hung = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(heard + READER_DEADLINE) => {
                hung = true;
                let _ = child.start_kill();
                break;
            }
            changed = front.changed() => {
                if changed.is_err() {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return None;
                }
                let now = *front.borrow_and_update();
                if let Some(i) = stdin.as_mut() {
                    let _ = i.write_all(front_line(now).as_bytes()).await;
                }
            }
            line = next_line(&mut lines) => match line {
                Some(Ok(line)) if line == ALIVE_LINE => heard = tokio::time::Instant::now(),
                Some(Ok(line)) => match serde_json::from_str::<ScreenText>(&line) {
                    Ok(text) => {
                        heard = tokio::time::Instant::now();
                        if out.send(text).await.is_err() {
                            let _ = child.start_kill();
                            return None;
                        }
                    }
                    Err(e) => tracing::warn!("the screen-text reader wrote a bad line: {e}"),
                },
                Some(Err(why)) => tracing::warn!("the screen-text reader wrote {why}; skipped"),
                None => break,
            },
        }
    }
    let status = child.wait().await.ok();
    Some(Ended {
        pid,
        ran: started.elapsed(),
        signal: status.and_then(|s| s.signal()),
        how: status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
        hung,
    })
}

fn front_line(pid: Option<u32>) -> String {
    match pid {
        Some(p) => format!("{p}\n"),
        None => "-\n".to_owned(),
    }
}

/// The reader's next line, at most [`MAX_LINE`] bytes (a longer one is
/// skipped whole: the reader runs as the pupil, who could tamper with
/// it); `None` at the end.
async fn next_line(
    reader: &mut Option<BufReader<tokio::process::ChildStdout>>,
) -> Option<Result<String, &'static str>> {
    use tokio::io::AsyncReadExt;
    let r = reader.as_mut()?;
    let mut buf = Vec::new();
    let n = (&mut *r)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut buf)
        .await
        .ok()?;
    if n == 0 {
        return None;
    }
    if buf.last() != Some(&b'\n') {
        loop {
            buf.clear();
            let n = (&mut *r)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut buf)
                .await
                .ok()?;
            if n == 0 {
                return None;
            }
            if buf.last() == Some(&b'\n') {
                return Some(Err("an over-long line"));
            }
        }
    }
    Some(String::from_utf8(buf).map_err(|_| "a line that is not UTF-8"))
}
