//! The service role (root): the spool, the device identity, the uplink and
//! the policy, and the Unix socket the session helpers and `agent feed`
//! talk to.
//!
//! Each peer on the socket is identified by the kernel (`SO_PEERCRED`):
//! the account name on every record it hands over is the one the kernel
//! gives, whatever the record said. A session helper that disconnects
//! without saying goodbye while its user still has processes running was
//! killed: the service spools a tamper event.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use protocol::{AgentMessage, Connection, Policy, TamperEvent, TamperKind, UnixMillis};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc, watch};

use crate::ipc::{ToService, ToSession, user_has_processes, user_name};
use crate::spool::Spool;
use crate::state_dir::StateDir;
use crate::uplink::{self, UplinkShared};

/// A connected session helper.
#[derive(Debug)]
struct SessionEntry {
    uid: u32,
    /// Fed text and concern requests for the helper.
    feed: mpsc::Sender<ToSession>,
}

/// A connected page reader (`agent native-host`, started by a browser).
#[derive(Debug, Clone)]
struct ReaderEntry {
    uid: u32,
    browser_pid: Option<u32>,
    browser: String,
}

/// Page texts a session helper may have queued from its readers before
/// more are dropped (text is like keystrokes: not kept when nobody can
/// match it).
const READER_QUEUE: usize = 256;

/// The running service.
#[derive(Debug)]
pub struct Service {
    spool: Arc<Spool>,
    spooled: Arc<Notify>,
    policy: watch::Receiver<Arc<Policy>>,
    user: watch::Sender<Option<String>>,
    connected: watch::Receiver<bool>,
    sessions: Mutex<HashMap<u64, SessionEntry>>,
    readers: Mutex<HashMap<u64, ReaderEntry>>,
    next_session: AtomicU64,
    /// Since when, and why, records cannot be spooled (a full disk).
    spool_trouble: Mutex<Option<SpoolTrouble>>,
}

/// A spell in which the spool could not be written.
#[derive(Debug)]
struct SpoolTrouble {
    since: UnixMillis,
    why: String,
    refused: u64,
}

/// Spool cap and other knobs of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    pub spool_cap_bytes: u64,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            spool_cap_bytes: crate::spool::DEFAULT_CAP_BYTES,
        }
    }
}

/// A started service: the task handles to wait on.
pub struct Running {
    pub service: Arc<Service>,
    pub uplink: tokio::task::JoinHandle<()>,
    pub listener: tokio::task::JoinHandle<()>,
}

impl Service {
    /// Opens the state, binds the socket, starts the uplink and the
    /// listener.
    ///
    /// # Errors
    /// Not enrolled, the spool cannot be opened, or the socket cannot be
    /// bound (another agent service already runs on this state directory).
    pub async fn start(
        state: StateDir,
        options: ServiceOptions,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Running> {
        let enrolment = state.enrolment()?;
        state.create()?;
        // The socket first: a second service on this directory stops here,
        // before it touches the spool the first one is using.
        let listener = bind(&state)?;
        let (spool, damaged) = Spool::open(&state.spool(), options.spool_cap_bytes)?;
        let spool = Arc::new(spool);
        if let Some(detail) = damaged {
            spool.push(&tamper(None, TamperKind::SpoolDamaged, detail))?;
        }
        let policy = state.load_policy().unwrap_or_else(Policy::baseline);
        tracing::info!(
            "service starting: device {}, console {}, policy version {}",
            enrolment.identity.device_id,
            enrolment.console_address,
            policy.version
        );
        let (policy_tx, policy_rx) = watch::channel(Arc::new(policy));
        let (user_tx, user_rx) = watch::channel(None);
        let (connected_tx, connected_rx) = watch::channel(false);
        let spooled = Arc::new(Notify::new());
        let service = Arc::new(Service {
            spool: spool.clone(),
            spooled: spooled.clone(),
            policy: policy_rx,
            user: user_tx,
            connected: connected_rx,
            sessions: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            spool_trouble: Mutex::new(None),
        });
        let uplink = tokio::spawn(uplink::run(
            enrolment,
            state.clone(),
            UplinkShared {
                spool,
                spooled,
                policy: policy_tx,
                user: user_rx,
                connected: connected_tx,
            },
            shutdown.clone(),
        ));
        let accept = tokio::spawn(service.clone().accept(listener, shutdown));
        Ok(Running {
            service,
            uplink,
            listener: accept,
        })
    }

    /// Whether a session with the console is open now.
    pub fn connected(&self) -> bool {
        *self.connected.borrow()
    }

    async fn accept(self: Arc<Self>, listener: UnixListener, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                got = listener.accept() => match got {
                    Ok((stream, _)) => {
                        tokio::spawn(self.clone().peer(stream));
                    }
                    Err(e) => {
                        tracing::warn!("accepting on the agent socket failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn peer(self: Arc<Self>, stream: UnixStream) {
        let cred = match stream.peer_cred() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("a peer on the agent socket has no credentials ({e}); closed");
                return;
            }
        };
        let uid = cred.uid();
        let pid = cred.pid();
        let user = user_name(uid);
        let mut conn = Connection::new(stream);
        let first = match conn.read::<ToService>().await {
            Ok(Some(m)) => m,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("{user} (pid {pid:?}) sent a bad first message: {e}");
                return;
            }
        };
        match first {
            ToService::SessionHello { display: screen } => {
                let screen = screen.unwrap_or_else(|| "none".into());
                tracing::info!("session helper for {user} (pid {pid:?}, display {screen})");
                self.session(conn, uid, pid, user).await;
            }
            ToService::Feed(text) => {
                let reply = self.route_to_session(uid, ToSession::Feed(text));
                let _ = conn.send(&reply).await;
            }
            ToService::OpenConcern => {
                let reply = self.route_to_session(uid, ToSession::OpenConcern);
                let _ = conn.send(&reply).await;
            }
            ToService::PageReader { browser } => {
                self.page_reader(conn, uid, pid, user, browser).await;
            }
            other => {
                let _ = conn
                    .send(&ToSession::Refused(format!(
                        "the first message must be SessionHello, Feed, OpenConcern or PageReader, not {other:?}"
                    )))
                    .await;
            }
        }
    }

    /// Hands fed text or a concern request to a session helper of the same
    /// user (or, for root, the most recent helper).
    fn route_to_session(&self, uid: u32, message: ToSession) -> ToSession {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let target = sessions
            .iter()
            .filter(|(_, s)| s.uid == uid || uid == 0)
            .max_by_key(|(id, s)| (s.uid == uid, **id))
            .map(|(_, s)| s.feed.clone());
        match target {
            Some(tx) => match tx.try_send(message) {
                Ok(()) => ToSession::Handed,
                Err(_) => {
                    ToSession::Refused("the session helper is busy or stopping; try again".into())
                }
            },
            None => ToSession::Refused(format!(
                "no session helper is running for {}; start `agent session` (or use `agent run`)",
                user_name(uid)
            )),
        }
    }

    /// A page reader's connection: its texts go to the same user's session
    /// helper, which also hears when it comes and goes (a browser in front
    /// with no reader is reported); it is told the policy's page settings.
    async fn page_reader(
        self: Arc<Self>,
        mut conn: Connection<UnixStream>,
        uid: u32,
        pid: Option<i32>,
        user: String,
        browser: String,
    ) {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        // The browser is the process that started the host: the kernel's
        // word, not the host's.
        let browser_pid = pid
            .and_then(|p| u32::try_from(p).ok())
            .and_then(crate::ipc::parent_pid);
        let entry = ReaderEntry {
            uid,
            browser_pid,
            browser: browser.chars().take(64).collect(),
        };
        tracing::info!(
            "page reader {id} for {user}: {} (browser pid {})",
            entry.browser,
            browser_pid.map_or("?".into(), |p| p.to_string())
        );
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, entry.clone());
        self.tell_session(uid, reader_notice(id, &entry, true));
        let mut policy = self.policy.clone();
        let config = page_config(&policy.borrow_and_update());
        let mut ok = conn.send(&config).await.is_ok();
        let mut dropped = 0u64;
        while ok {
            tokio::select! {
                got = conn.read::<ToService>() => match got {
                    Ok(Some(ToService::PageText(text))) => {
                        if !self.tell_session(uid, ToSession::PageText { reader: id, text }) {
                            dropped += 1;
                            if dropped.is_power_of_two() {
                                tracing::warn!("page reader {id}: {dropped} batch(es) of page text dropped (no session helper for {user}, or it is busy)");
                            }
                        }
                    }
                    Ok(Some(other)) => {
                        tracing::warn!("page reader {id} sent {other:?}; closed");
                        break;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("page reader {id}: {e}");
                        break;
                    }
                },
                Ok(()) = policy.changed() => {
                    let config = page_config(&policy.borrow_and_update());
                    ok = conn.send(&config).await.is_ok();
                }
            }
        }
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        tracing::info!("page reader {id} for {user} went away");
        self.tell_session(uid, reader_notice(id, &entry, false));
    }

    /// Hands a message to the newest session helper of `uid`, if any and
    /// if it is not too busy; says whether it was taken.
    fn tell_session(&self, uid: u32, message: ToSession) -> bool {
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .iter()
            .filter(|(_, s)| s.uid == uid)
            .max_by_key(|(id, _)| **id)
            .is_some_and(|(_, s)| {
                // Leave room for what matters more (fed text, concerns).
                s.feed.capacity() > 8 && s.feed.try_send(message).is_ok()
            })
    }

    async fn session(
        self: Arc<Self>,
        conn: Connection<UnixStream>,
        uid: u32,
        pid: Option<i32>,
        user: String,
    ) {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let (feed_tx, mut feed_rx) = mpsc::channel(READER_QUEUE);
        // The page readers already connected, so the helper knows which
        // browsers are watched.
        for (reader, entry) in self
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, r)| r.uid == uid)
        {
            let _ = feed_tx.try_send(reader_notice(*reader, entry, true));
        }
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, SessionEntry { uid, feed: feed_tx });
        let _ = self.user.send(Some(user.clone()));
        let (read, write) = tokio::io::split(conn.into_inner());
        let mut reader = Connection::new(read);
        let mut writer = Connection::new(write);
        let mut policy = self.policy.clone();
        let mut said_goodbye = false;
        let first = [
            ToSession::Welcome { user: user.clone() },
            ToSession::Policy((**policy.borrow_and_update()).clone()),
        ];
        let mut ok = true;
        for m in &first {
            ok &= writer.send(m).await.is_ok();
        }
        while ok {
            tokio::select! {
                got = reader.read::<ToService>() => match got {
                    Ok(Some(ToService::Record(record))) => {
                        let reply = self.store(record, &user).await;
                        ok = writer.send(&reply).await.is_ok();
                    }
                    Ok(Some(ToService::Goodbye { reason })) => {
                        tracing::info!("session helper for {user} stopped: {reason}");
                        said_goodbye = true;
                    }
                    Ok(Some(other)) => {
                        tracing::warn!("session helper for {user} sent {other:?} mid-session; ignored");
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("session helper for {user}: {e}");
                        break;
                    }
                },
                Some(message) = feed_rx.recv() => {
                    ok = writer.send(&message).await.is_ok();
                }
                Ok(()) = policy.changed() => {
                    let p = (**policy.borrow_and_update()).clone();
                    ok = writer.send(&ToSession::Policy(p)).await.is_ok();
                }
            }
        }
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if !said_goodbye {
            // Give a logout a moment to take the user's other processes.
            tokio::time::sleep(Duration::from_secs(2)).await;
            if user_has_processes(uid, pid) {
                let detail = format!(
                    "the session helper of {user} (pid {}) stopped without logging out while {user} is still logged in",
                    pid.map_or("?".into(), |p| p.to_string())
                );
                tracing::error!("{detail}");
                let event = tamper(Some(user), TamperKind::AgentKilled, detail);
                match self.spool_record(event).await {
                    ToSession::Refused(why) | ToSession::NotSpooled { why, .. } => {
                        tracing::error!("cannot spool the tamper event: {why}");
                    }
                    _ => {}
                }
            }
        }
    }

    /// Spools a record from a session helper as the kernel-identified user.
    async fn store(&self, mut record: AgentMessage, user: &str) -> ToSession {
        match &mut record {
            AgentMessage::Capture(c) => c.user = user.to_owned(),
            AgentMessage::Concern(c) => c.user = user.to_owned(),
            AgentMessage::AupDecision(a) => a.user = user.to_owned(),
            AgentMessage::TamperEvent(t) => t.user = Some(user.to_owned()),
            AgentMessage::SiteVisits(s) => {
                for v in &mut s.visits {
                    v.user = user.to_owned();
                }
            }
            AgentMessage::Hello(_) | AgentMessage::Heartbeat(_) => {
                return ToSession::Refused(format!(
                    "a session helper may not send a {}",
                    record.kind_name()
                ));
            }
        }
        self.spool_record(record).await
    }

    async fn spool_record(&self, record: AgentMessage) -> ToSession {
        let Some(id) = record.record_id() else {
            return ToSession::Refused("not a record".into());
        };
        let spool = self.spool.clone();
        match tokio::task::spawn_blocking(move || spool.push(&record)).await {
            Ok(Ok(outcome)) => {
                self.spool_works().await;
                if outcome.images_dropped + outcome.records_dropped > 0 {
                    tracing::warn!(
                        "spool cap reached: {} screenshot(s) and {} record(s) dropped",
                        outcome.images_dropped,
                        outcome.records_dropped
                    );
                }
                self.spooled.notify_one();
                ToSession::Stored(id)
            }
            Ok(Err(e)) => {
                let why = format!("{e:#}");
                let mut trouble = self.spool_trouble.lock().unwrap_or_else(|p| p.into_inner());
                match trouble.as_mut() {
                    Some(t) => {
                        t.refused += 1;
                        t.why.clone_from(&why);
                    }
                    None => {
                        tracing::error!(
                            "cannot write the spool ({why}); session helpers keep their records until it can"
                        );
                        *trouble = Some(SpoolTrouble {
                            since: UnixMillis::now(),
                            why: why.clone(),
                            refused: 1,
                        });
                    }
                }
                ToSession::NotSpooled { id, why }
            }
            Err(e) => ToSession::Refused(format!("the spool writer failed: {e}")),
        }
    }

    /// After a spell of failing writes, records what happened for the
    /// console (a tamper event: the laptop could not keep records).
    async fn spool_works(&self) {
        let Some(t) = self
            .spool_trouble
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let minutes = (UnixMillis::now().0 - t.since.0) / 60_000;
        let detail = format!(
            "the laptop could not write its spool for {minutes} minute(s) ({}); {} record(s) were refused meanwhile and held by the session helpers in memory until it could (a restart meanwhile would have lost them)",
            t.why, t.refused
        );
        tracing::warn!("the spool can be written again: {detail}");
        let spool = self.spool.clone();
        let event = tamper(None, TamperKind::Other, detail);
        match tokio::task::spawn_blocking(move || spool.push(&event)).await {
            Ok(Ok(_)) => self.spooled.notify_one(),
            Ok(Err(e)) => tracing::error!("cannot spool the note of the full spool: {e:#}"),
            Err(e) => tracing::error!("cannot spool the note of the full spool: {e}"),
        }
    }
}

fn reader_notice(reader: u64, entry: &ReaderEntry, connected: bool) -> ToSession {
    ToSession::PageReader {
        reader,
        browser_pid: entry.browser_pid,
        browser: entry.browser.clone(),
        connected,
    }
}

fn page_config(policy: &Policy) -> ToSession {
    ToSession::PageConfig {
        reading: policy.sources.screen_text,
        excluded_sites: policy.page_reading_excluded.clone(),
    }
}

/// A tamper event made by the service itself.
pub fn tamper(user: Option<String>, kind: TamperKind, detail: String) -> AgentMessage {
    AgentMessage::TamperEvent(TamperEvent {
        id: uuid::Uuid::now_v7(),
        time: UnixMillis::now(),
        user,
        kind,
        detail,
    })
}

/// Binds the socket, replacing a stale one left by a crash but refusing to
/// steal one a running service answers on.
fn bind(state: &StateDir) -> anyhow::Result<UnixListener> {
    let path = state.socket();
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            anyhow::bail!(
                "another agent service is already running on {} (its socket {} answers); stop it first",
                state.root().display(),
                path.display()
            );
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot open {} to session helpers", path.display()))?;
    Ok(listener)
}
