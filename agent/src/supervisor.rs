//! Monitoring out of the pupil's reach: the service (root) starts a session
//! helper for every graphical session it finds ([`crate::sessions`]) and
//! keeps it running.
//!
//! A helper the service starts runs as root, joined to the session's X
//! display with the session's X authority. The pupil can neither signal,
//! trace nor replace it (the kernel lets an ordinary account signal only
//! its own processes), nor stop it from starting (the user's autostart
//! entry is now only a prompt to look at once). What the pupil can still
//! do (log out, switch the laptop off) ends the session, which is not
//! tampering.
//!
//! - **Started**: within [`LOOK_EVERY`] of a session appearing, or at once
//!   when the user's autostart entry runs.
//! - **Restarted**: a helper that exits while its session lasts, or that
//!   stops answering for [`crate::ipc::ALIVE_DEADLINE`] (hung; it is
//!   killed first), is started again at once, and the gap is reported to
//!   the console as a [`TamperKind::MonitorRestarted`] event: how long,
//!   and why. A helper that keeps failing is started at most
//!   [`RESTARTS_PER_MINUTE`] times a minute.
//! - **Unmonitored sessions**: a session with no working helper for
//!   [`UNMONITORED_AFTER`] is reported as [`TamperKind::SessionUnmonitored`]
//!   with the reason (the helper cannot open the display, say).
//! - **Logout**: a helper whose session is gone (no process of that user on
//!   that display) is told to stop.

use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::TamperKind;
use tokio::sync::{mpsc, watch};

use crate::ipc::user_name;
use crate::service::{Service, SupervisedHelper, tamper};
use crate::sessions::{self, GraphicalSession};

/// How often the sessions are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(2);
/// A session this long without a working helper is reported.
pub const UNMONITORED_AFTER: Duration = Duration::from_secs(60);
/// Most starts of one session's helper in a minute.
pub const RESTARTS_PER_MINUTE: usize = 5;

/// How the service starts helpers.
#[derive(Debug, Clone)]
pub struct Supervision {
    /// The agent's program.
    pub program: PathBuf,
    /// The arguments after `session` (state directory, tuning).
    pub session_args: Vec<OsString>,
    /// The displays to watch (`:0`); empty: every local display.
    pub displays: Vec<String>,
    /// A directory only root may enter, for the helpers' scratch files
    /// (their `XDG_RUNTIME_DIR`): never the shared `/tmp`.
    pub scratch: PathBuf,
}

type Key = (u32, String);

/// A helper the supervisor started.
struct Child {
    pid: u32,
    started: Instant,
    /// Looks in a row that found its session gone.
    missing: u8,
}

/// A gap in a session's monitoring: since when, and why.
struct Gap {
    since: Instant,
    why: String,
}

/// Runs until shutdown; then asks every helper it started to stop.
pub async fn run(
    service: Arc<Service>,
    supervision: Supervision,
    mut shutdown: watch::Receiver<bool>,
) {
    let (exited_tx, mut exited) = mpsc::unbounded_channel::<(u32, Key, String)>();
    let mut children: HashMap<Key, Child> = HashMap::new();
    let mut gaps: HashMap<Key, Gap> = HashMap::new();
    let mut starts: HashMap<Key, VecDeque<Instant>> = HashMap::new();
    let mut unwatched: HashMap<Key, (Instant, bool)> = HashMap::new();
    let mut look = tokio::time::interval(LOOK_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(
        "supervising session helpers on {}",
        if supervision.displays.is_empty() {
            "every local display".to_owned()
        } else {
            supervision.displays.join(", ")
        }
    );
    loop {
        tokio::select! {
            _ = look.tick() => {}
            () = service.look_now.notified() => {}
            Some((pid, key, how)) = exited.recv() => {
                service.forget(pid);
                if children.get(&key).is_some_and(|c| c.pid == pid) {
                    children.remove(&key);
                }
                tracing::warn!("the session helper {pid} for {} on {} {how}", user_name(key.0), key.1);
                gaps.entry(key).or_insert(Gap { since: Instant::now(), why: how });
            }
            _ = shutdown.changed() => {
                for child in children.values() {
                    signal(child.pid, rustix::process::Signal::TERM);
                }
                return;
            }
        }
        // What the helpers started as the user (their screen-text
        // readers) is not a session of its own.
        let ours: Vec<u32> = children.values().map(|c| c.pid).collect();
        let found: Vec<GraphicalSession> = sessions::find(&ours)
            .into_iter()
            .filter(|s| {
                supervision.displays.is_empty() || supervision.displays.contains(&s.display)
            })
            .collect();
        service.set_found(found.iter().map(|s| (s.uid, s.display.clone())).collect());
        let helpers = service.helpers();
        // Hung helpers: killed, and so restarted below once they exit.
        let now_ms = service.clock_ms();
        for (uid, screen, pid, heard) in &helpers {
            let (Some(pid), Some(screen)) = (pid, screen) else {
                continue;
            };
            let silent = Duration::from_millis(now_ms.saturating_sub(*heard));
            if silent >= crate::ipc::ALIVE_DEADLINE {
                tracing::warn!(
                    "the session helper {pid} for {} on {} has not answered for {} s; restarting it",
                    user_name(*uid),
                    screen,
                    silent.as_secs()
                );
                gaps.entry((*uid, screen.clone())).or_insert(Gap {
                    since: Instant::now()
                        .checked_sub(silent)
                        .unwrap_or_else(Instant::now),
                    why: format!(
                        "stopped answering (hung or paused) for {} s and was killed",
                        silent.as_secs()
                    ),
                });
                signal(*pid, rustix::process::Signal::KILL);
            }
        }
        for session in &found {
            let key: Key = (session.uid, session.display.clone());
            if !children.contains_key(&key) && may_start(&mut starts, &key) {
                match start(&supervision, session, &exited_tx) {
                    Ok(pid) => {
                        service.adopt(
                            pid,
                            SupervisedHelper {
                                uid: session.uid,
                                user: user_name(session.uid),
                                display: session.display.clone(),
                            },
                        );
                        children.insert(
                            key.clone(),
                            Child {
                                pid,
                                started: Instant::now(),
                                missing: 0,
                            },
                        );
                    }
                    Err(e) => {
                        tracing::error!("{e:#}");
                        gaps.entry(key.clone()).or_insert(Gap {
                            since: Instant::now(),
                            why: format!("{e:#}"),
                        });
                    }
                }
            }
            let watched = helpers.iter().any(|(uid, display, _, _)| {
                *uid == session.uid && display.as_deref() == Some(&session.display)
            });
            if watched {
                unwatched.remove(&key);
                if let Some(gap) = gaps.remove(&key) {
                    let secs = gap.since.elapsed().as_secs_f64();
                    let user = user_name(session.uid);
                    let detail = format!(
                        "monitoring of {user}'s session on {} stopped for {secs:.1} s: the session helper {}; the service started a new one",
                        session.display, gap.why
                    );
                    spool(&service, Some(user), TamperKind::MonitorRestarted, detail).await;
                }
            } else {
                let (since, reported) = unwatched
                    .entry(key.clone())
                    .or_insert((Instant::now(), false));
                if !*reported && since.elapsed() >= UNMONITORED_AFTER {
                    *reported = true;
                    let user = user_name(session.uid);
                    let why = gaps.get(&key).map_or_else(
                        || "its helper has not connected".to_owned(),
                        |g| g.why.clone(),
                    );
                    let detail = format!(
                        "{user} has been logged in on {} for {} s with no working monitor ({why}); typing and screens there are not being watched",
                        session.display,
                        since.elapsed().as_secs()
                    );
                    spool(&service, Some(user), TamperKind::SessionUnmonitored, detail).await;
                }
            }
        }
        // Sessions that ended: their helpers are told to stop (a helper
        // of the display would otherwise go on watching the login screen).
        for (key, child) in &mut children {
            if found.iter().any(|s| s.uid == key.0 && s.display == key.1) {
                child.missing = 0;
            } else {
                child.missing = child.missing.saturating_add(1);
                if child.missing == 2 {
                    tracing::info!(
                        "{} has left {} (after {} s); its session helper {} stops",
                        user_name(key.0),
                        key.1,
                        child.started.elapsed().as_secs(),
                        child.pid
                    );
                    signal(child.pid, rustix::process::Signal::TERM);
                }
            }
        }
        unwatched.retain(|k, _| found.iter().any(|s| s.uid == k.0 && s.display == k.1));
        gaps.retain(|k, _| found.iter().any(|s| s.uid == k.0 && s.display == k.1));
    }
}

/// Whether a session's helper may be started again now.
fn may_start(starts: &mut HashMap<Key, VecDeque<Instant>>, key: &Key) -> bool {
    let times = starts.entry(key.clone()).or_default();
    while times
        .front()
        .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
    {
        times.pop_front();
    }
    if times.len() >= RESTARTS_PER_MINUTE {
        return false;
    }
    times.push_back(Instant::now());
    true
}

/// Starts a helper for `session`, as root, on its display; its exit is
/// sent on `exited`.
fn start(
    supervision: &Supervision,
    session: &GraphicalSession,
    exited: &mpsc::UnboundedSender<(u32, Key, String)>,
) -> anyhow::Result<u32> {
    let user = user_name(session.uid);
    let home = sessions::home_of(session.uid).unwrap_or_else(|| PathBuf::from("/"));
    let mut command = tokio::process::Command::new(&supervision.program);
    command
        .arg("session")
        .args(&supervision.session_args)
        .arg("--for-uid")
        .arg(session.uid.to_string())
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("DISPLAY", &session.display)
        .env("HOME", &home)
        .env("USER", &user)
        .env("LOGNAME", &user)
        .env("XDG_RUNTIME_DIR", &supervision.scratch)
        .stdin(Stdio::null());
    if let Some(x) = &session.xauthority {
        command.env("XAUTHORITY", x);
    }
    if let Some(bus) = &session.dbus_address {
        command.env("DBUS_SESSION_BUS_ADDRESS", bus);
    }
    for var in ["AGENT_LOG", "MALLOC_ARENA_MAX", "LANG"] {
        if let Some(v) = std::env::var_os(var) {
            command.env(var, v);
        }
    }
    let mut child = command.spawn().map_err(|e| {
        anyhow::anyhow!(
            "cannot start a session helper for {user} on {} ({}): {e}",
            session.display,
            supervision.program.display()
        )
    })?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("the session helper for {user} exited at once"))?;
    tracing::info!(
        "started session helper {pid} for {user} on {}",
        session.display
    );
    let key: Key = (session.uid, session.display.clone());
    let exited = exited.clone();
    tokio::spawn(async move {
        let how = match child.wait().await {
            Ok(status) => describe(status),
            Err(e) => format!("could not be waited for ({e})"),
        };
        let _ = exited.send((pid, key, how));
    });
    Ok(pid)
}

/// How a helper ended, in words.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => "stopped".to_owned(),
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(9)) => "was killed (SIGKILL)".to_owned(),
        (None, Some(15)) => "was stopped (SIGTERM)".to_owned(),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        (None, None) => "ended".to_owned(),
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process(p, sig) {
        tracing::warn!("cannot signal the session helper {pid}: {e}");
    }
}

async fn spool(service: &Service, user: Option<String>, kind: TamperKind, detail: String) {
    tracing::error!("{detail}");
    if let Err(why) = service.spool_tamper(tamper(user, kind, detail)).await {
        tracing::error!("cannot spool the tamper event: {why}");
    }
}
