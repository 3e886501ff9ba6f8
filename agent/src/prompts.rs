//! The session helper's side of the agent's windows: it starts each window
//! as a child process (`<program> aup-window` / `<program> concern-window`),
//! hands it what to show on standard input as JSON, and reads the answer
//! from its standard output.
//!
//! The AUP window is kept up while a version is waiting for acceptance: a
//! window that ends without an answer (closed, killed, its X connection
//! cut) is shown again at once; after a decline it is shown again after a
//! pause (the logout command should have ended the session by then).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use protocol::Decision;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};

use crate::window::aup::AupRequest;
use crate::window::concern::{ConcernReport, ConcernRequest};

/// How the windows are run.
#[derive(Debug, Clone)]
pub struct PromptOptions {
    /// The program with the `aup-window` and `concern-window` commands
    /// (the agent itself).
    pub program: PathBuf,
    /// Run with `sh -c` after a decline, to log the user out; empty: none.
    pub decline_command: String,
    /// The account (uid, gid) the decline command runs as: the session's
    /// user when the helper runs as root for the service; `None`: as the
    /// helper itself.
    pub decline_as: Option<(u32, u32)>,
}

/// The default logout after a decline: the current login session (or, if
/// the session is unknown, every session of the user).
pub const DEFAULT_DECLINE_COMMAND: &str = "if [ -n \"$XDG_SESSION_ID\" ]; then loginctl terminate-session \"$XDG_SESSION_ID\"; else loginctl terminate-user \"$(id -un)\"; fi";

/// Pause before the AUP is shown again after a decline.
const AFTER_DECLINE: Duration = Duration::from_secs(5);
/// Pause before a window that vanished is shown again.
const AFTER_LOSS: Duration = Duration::from_millis(700);

/// An answer from a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptAnswer {
    Aup {
        request: AupRequest,
        decision: Decision,
    },
    /// The concern window closed: the report, or None if cancelled.
    Concern {
        id: u64,
        report: Option<ConcernReport>,
    },
    /// One of the agent's windows is on screen (`open`) or gone: its X
    /// window id, and whether it is a concern window (typing into which
    /// is a report, not text to match).
    Window {
        window: u64,
        open: bool,
        concern: bool,
    },
}

/// Keeps the AUP window up whenever `want` holds a text, until the helper
/// clears or replaces it (after an accept). Ends when `want`'s sender goes.
pub async fn keep_aup_shown(
    options: PromptOptions,
    mut want: watch::Receiver<Option<AupRequest>>,
    answers: mpsc::UnboundedSender<PromptAnswer>,
) {
    loop {
        let Some(request) = want.borrow_and_update().clone() else {
            if want.changed().await.is_err() {
                return;
            }
            continue;
        };
        let input = match serde_json::to_vec(&request) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!("cannot encode the AUP for its window: {e}");
                return;
            }
        };
        let mut child = match start(&options.program, "aup-window", &input).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{e:#}; trying again in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        tracing::info!(
            "showing the AUP (version {} for {})",
            request.version,
            request
                .group
                .clone()
                .unwrap_or_else(|| format!("{:?}", request.audience))
        );
        let answer = tokio::select! {
            a = answer_of(&mut child, &answers, false) => a,
            changed = superseded(&mut want, &request) => {
                let _ = child.kill().await;
                if !changed {
                    return;
                }
                tracing::info!("the AUP changed while shown; showing the new one");
                continue;
            }
        };
        let decision = match answer.as_deref().map(serde_json::from_str::<Decision>) {
            Some(Ok(d)) => d,
            other => {
                tracing::warn!(
                    "the AUP window closed without a decision ({}); showing it again",
                    match other {
                        Some(Err(e)) => format!("a bad answer: {e}"),
                        _ => "no answer".to_owned(),
                    }
                );
                tokio::time::sleep(AFTER_LOSS).await;
                continue;
            }
        };
        if answers
            .send(PromptAnswer::Aup {
                request: request.clone(),
                decision,
            })
            .is_err()
        {
            return;
        }
        match decision {
            Decision::Accept => {
                // Wait until the helper has taken the accept in (or a new
                // version arrives).
                if !superseded(&mut want, &request).await {
                    return;
                }
            }
            Decision::Decline => {
                tokio::select! {
                    () = tokio::time::sleep(AFTER_DECLINE) => {}
                    alive = superseded(&mut want, &request) => if !alive { return },
                }
            }
        }
    }
}

/// Waits until `want` holds something other than `request`; false if the
/// sender went away.
async fn superseded(want: &mut watch::Receiver<Option<AupRequest>>, request: &AupRequest) -> bool {
    loop {
        if want.borrow_and_update().as_ref() != Some(request) {
            return true;
        }
        if want.changed().await.is_err() {
            return false;
        }
    }
}

/// Opens the concern window; its answer arrives on `answers` with `id`.
pub fn open_concern(
    options: &PromptOptions,
    id: u64,
    request: ConcernRequest,
    answers: mpsc::UnboundedSender<PromptAnswer>,
) {
    let program = options.program.clone();
    tokio::spawn(async move {
        let report = async {
            let input = serde_json::to_vec(&request)?;
            let mut child = start(&program, "concern-window", &input).await?;
            let answer = answer_of(&mut child, &answers, true)
                .await
                .context("the concern window closed without an answer")?;
            Ok::<_, anyhow::Error>(serde_json::from_str::<Option<ConcernReport>>(&answer)?)
        }
        .await;
        let report = report.unwrap_or_else(|e| {
            tracing::error!("the concern window failed: {e:#}");
            None
        });
        let _ = answers.send(PromptAnswer::Concern { id, report });
    });
}

/// Runs the command that logs the user out after a decline.
pub async fn run_decline_command(options: &PromptOptions) {
    if options.decline_command.trim().is_empty() {
        tracing::warn!("the AUP was declined and no logout command is set");
        return;
    }
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&options.decline_command)
        .stdin(Stdio::null());
    if let Some((uid, gid)) = options.decline_as {
        command.uid(uid).gid(gid);
    }
    let status = command.status().await;
    match status {
        Ok(s) if s.success() => tracing::info!("the AUP was declined; logout command ran"),
        Ok(s) => tracing::error!(
            "the AUP was declined and the logout command {:?} failed ({s})",
            options.decline_command
        ),
        Err(e) => tracing::error!(
            "the AUP was declined and the logout command {:?} cannot run: {e}",
            options.decline_command
        ),
    }
}

async fn start(program: &std::path::Path, command: &str, input: &[u8]) -> anyhow::Result<Child> {
    let mut child = Command::new(program)
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} {command}", program.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).await?;
        stdin.shutdown().await?;
    }
    Ok(child)
}

/// The window's answer: its standard output after the line naming its
/// window, if it ended cleanly. The window's id goes to `answers` when it
/// shows and again when it is gone.
async fn answer_of(
    child: &mut Child,
    answers: &mpsc::UnboundedSender<PromptAnswer>,
    concern: bool,
) -> Option<String> {
    use tokio::io::AsyncBufReadExt;
    let mut out = String::new();
    let mut shown = None;
    if let Some(stdout) = child.stdout.take() {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match line
                .strip_prefix(crate::window::WINDOW_LINE)
                .and_then(|id| id.trim().parse::<u64>().ok())
            {
                Some(window) if shown.is_none() => {
                    shown = Some(window);
                    let _ = answers.send(PromptAnswer::Window {
                        window,
                        open: true,
                        concern,
                    });
                }
                _ => {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
        }
    }
    let status = child.wait().await.ok();
    if let Some(window) = shown {
        let _ = answers.send(PromptAnswer::Window {
            window,
            open: false,
            concern,
        });
    }
    (status?.success() && !out.trim().is_empty()).then_some(out)
}
