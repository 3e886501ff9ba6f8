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
    /// The user whose session it watches (the peer's own uid, or for a
    /// helper the service started, the session's).
    uid: u32,
    user: String,
    display: Option<String>,
    /// The helper's process, if the service started it.
    supervised_pid: Option<u32>,
    /// When it was last heard from: [`Service::clock_ms`], a monotonic
    /// clock (the wall clock can be moved, by a pupil among others).
    heard: Arc<AtomicU64>,
    /// Fed text and concern requests for the helper.
    feed: mpsc::Sender<ToSession>,
}

/// A session helper the service started: whose session it watches.
#[derive(Debug, Clone)]
pub(crate) struct SupervisedHelper {
    pub uid: u32,
    pub user: String,
    pub display: String,
}

/// Largest first message on the socket: a session helper's hello, a page
/// reader's, `agent feed`'s text, a concern request.
const FIRST_FRAME: u32 = 1024 * 1024;
/// Largest frame on a page reader's connection (a batch of page text).
const READER_FRAME: u32 = 4 * 1024 * 1024;
/// How long a peer has to send its first message.
const FIRST_MESSAGE: Duration = Duration::from_secs(5);
/// Open connections one (non-root) account may hold on the socket.
const CONNECTIONS_PER_USER: usize = 32;
/// `agent feed` texts and concern requests one account may make: a burst
/// of this many, then [`ASKS_PER_SECOND`].
const ASK_BURST: f64 = 20.0;
const ASKS_PER_SECOND: f64 = 5.0;

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
    /// The policy's layers for groups: helpers run the widest policy they
    /// allow, and [`Service::store`] keeps what applies to each user.
    layers: watch::Receiver<Arc<protocol::layers::GroupLayers>>,
    user: watch::Sender<Option<String>>,
    connected: watch::Receiver<bool>,
    sessions: Mutex<HashMap<u64, SessionEntry>>,
    readers: Mutex<HashMap<u64, ReaderEntry>>,
    next_session: AtomicU64,
    /// Since when, and why, records cannot be spooled (a full disk).
    spool_trouble: Mutex<Option<SpoolTrouble>>,
    /// Whether the service starts the session helpers itself; a helper a
    /// user started is then sent away.
    supervising: bool,
    /// The helpers the service started, by pid.
    supervised: Mutex<HashMap<u32, SupervisedHelper>>,
    /// Wakes the supervisor for a look at the sessions now (a user's
    /// autostart entry just ran).
    pub(crate) look_now: Notify,
    /// Open connections per account, and each account's allowance of
    /// asks (fed text, concern requests): (tokens, last refill).
    connections: Mutex<HashMap<u32, usize>>,
    asks: Mutex<HashMap<u32, (f64, std::time::Instant)>>,
    /// Messages refused on the socket, for `agent status` and the log.
    pub(crate) refused: AtomicU64,
    /// The graphical sessions the supervisor last found: (uid, display).
    found: Mutex<Vec<(u32, String)>>,
    /// Wakes the uplink to send the sessions' health (one came or went).
    health_changed: Arc<Notify>,
    /// When the service started (the base of [`Service::clock_ms`]).
    started: std::time::Instant,
    /// The semantic layer's model as the helpers will find it, in words
    /// ([`crate::semantic_layer::describe`]; empty until looked at).
    semantic_model: Mutex<String>,
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
    /// Start and supervise a session helper for every graphical session
    /// (see [`crate::supervisor`]); `None`: helpers are started by the
    /// users (the autostart entry) or in-process (`agent run`).
    pub supervise: Option<crate::supervisor::Supervision>,
    /// Where the session helpers find the semantic layer's model, for the
    /// health the console sees (`None`: the helpers run without one).
    pub semantic_model: Option<std::path::PathBuf>,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        ServiceOptions {
            spool_cap_bytes: crate::spool::DEFAULT_CAP_BYTES,
            supervise: None,
            semantic_model: None,
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
        let enrollment = state.enrollment()?;
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
            enrollment.identity.device_id,
            enrollment.console_address,
            policy.version
        );
        let (policy_tx, policy_rx) = watch::channel(Arc::new(policy));
        let layers = state.load_layers().unwrap_or_default();
        let (layers_tx, layers_rx) = watch::channel(Arc::new(layers));
        let (user_tx, user_rx) = watch::channel(None);
        let (connected_tx, connected_rx) = watch::channel(false);
        let spooled = Arc::new(Notify::new());
        let service = Arc::new(Service {
            spool: spool.clone(),
            spooled: spooled.clone(),
            policy: policy_rx,
            layers: layers_rx,
            user: user_tx,
            connected: connected_rx,
            sessions: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            spool_trouble: Mutex::new(None),
            supervising: options.supervise.is_some(),
            supervised: Mutex::new(HashMap::new()),
            look_now: Notify::new(),
            connections: Mutex::new(HashMap::new()),
            asks: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            found: Mutex::new(Vec::new()),
            health_changed: Arc::new(Notify::new()),
            started: std::time::Instant::now(),
            semantic_model: Mutex::new(String::new()),
        });
        // The model is read once (91 MB, off the async threads) and its
        // state sent with the next health.
        let looked = Arc::downgrade(&service);
        let dir = options.semantic_model.clone();
        tokio::spawn(async move {
            let said = match dir {
                Some(dir) => {
                    tokio::task::spawn_blocking(move || crate::semantic_layer::describe(&dir))
                        .await
                        .unwrap_or_else(|e| format!("not looked at ({e})"))
                }
                None => "NO MODEL: the helpers run without the semantic layer".to_owned(),
            };
            if let Some(service) = looked.upgrade() {
                tracing::info!("semantic layer: {said}");
                *service
                    .semantic_model
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = said;
                service.health_changed.notify_one();
            }
        });
        if let Some(supervision) = options.supervise {
            tokio::spawn(crate::supervisor::run(
                service.clone(),
                supervision,
                shutdown.clone(),
            ));
        }
        let health = Arc::downgrade(&service);
        let uplink = tokio::spawn(uplink::run(
            enrollment,
            state.clone(),
            UplinkShared {
                spool,
                spooled,
                policy: policy_tx,
                layers: layers_tx,
                user: user_rx,
                connected: connected_tx,
                health: uplink::HealthSource(
                    Arc::new(move || {
                        health
                            .upgrade()
                            .map_or_else(|| empty_health(false), |s| s.health())
                    }),
                    service.health_changed.clone(),
                ),
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
        let mut conn = Connection::with_max_frame(stream, FIRST_FRAME);
        let Some(_slot) = self.connection_slot(uid) else {
            self.refuse(
                &mut conn,
                &user,
                format!(
                    "{user} already has {CONNECTIONS_PER_USER} connections open to the agent; close some first"
                ),
            )
            .await;
            return;
        };
        let first = match tokio::time::timeout(FIRST_MESSAGE, conn.read::<ToService>()).await {
            Ok(Ok(Some(m))) => m,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{user} (pid {pid:?}) sent a bad first message: {e}");
                return;
            }
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "{user} (pid {pid:?}) sent nothing within {} s; closed",
                    FIRST_MESSAGE.as_secs()
                );
                return;
            }
        };
        match first {
            ToService::SessionHello { display: screen } => {
                let screen = screen.and_then(|d| crate::sessions::local_display(&d));
                let ours = pid
                    .and_then(|p| u32::try_from(p).ok())
                    .and_then(|p| self.supervised_helper(p).map(|h| (p, h)));
                if let Some((p, helper)) = ours {
                    tracing::info!(
                        "session helper {p} (started by the service) for {} on {}",
                        helper.user,
                        helper.display
                    );
                    conn.set_max_frame(protocol::frame::DEFAULT_MAX_FRAME);
                    self.session(
                        conn,
                        helper.uid,
                        pid,
                        helper.user,
                        Some(helper.display),
                        Some(p),
                    )
                    .await;
                } else if self.supervising && uid != 0 {
                    // A helper the user started (the autostart entry): the
                    // service watches the session with one of its own.
                    self.look_now.notify_one();
                    let why = format!(
                        "the agent service monitors {user}'s session on {} with a helper of its own; this one is not needed",
                        screen.as_deref().unwrap_or("this display")
                    );
                    let _ = conn.send(&ToSession::Supervised(why)).await;
                } else {
                    tracing::info!(
                        "session helper for {user} (pid {pid:?}, display {})",
                        screen.as_deref().unwrap_or("none")
                    );
                    conn.set_max_frame(protocol::frame::DEFAULT_MAX_FRAME);
                    self.session(conn, uid, pid, user, screen, None).await;
                }
            }
            ToService::Feed(text) => {
                let reply = match self.may_ask(uid) {
                    Ok(()) => self.route_to_session(uid, ToSession::Feed(text)),
                    Err(why) => self.refusal(&user, why),
                };
                let _ = conn.send(&reply).await;
            }
            ToService::OpenConcern => {
                let reply = match self.may_ask(uid) {
                    Ok(()) => self.route_to_session(uid, ToSession::OpenConcern),
                    Err(why) => self.refusal(&user, why),
                };
                let _ = conn.send(&reply).await;
            }
            ToService::PageReader { browser } => {
                conn.set_max_frame(READER_FRAME);
                self.page_reader(conn, uid, pid, user, browser).await;
            }
            ToService::Status => {
                let _ = conn.send(&ToSession::Status(self.health())).await;
            }
            other => {
                let why = format!(
                    "the first message must be SessionHello, Feed, OpenConcern or PageReader, not {}",
                    kind_of(&other)
                );
                self.refuse(&mut conn, &user, why).await;
            }
        }
    }

    /// Counts a refusal, logs it and says why to the peer.
    async fn refuse(&self, conn: &mut Connection<UnixStream>, user: &str, why: String) {
        let reply = self.refusal(user, why);
        let _ = conn.send(&reply).await;
    }

    fn refusal(&self, user: &str, why: String) -> ToSession {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!("refused {user}: {why} ({n} refusal(s) so far)");
        }
        ToSession::Refused(why)
    }

    /// A place among the connections `uid` may hold, given back when the
    /// guard is dropped; `None` when it holds its share already (root has
    /// no cap).
    fn connection_slot(self: &Arc<Self>, uid: u32) -> Option<ConnectionSlot> {
        let mut open = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(uid).or_insert(0);
        if uid != 0 && *n >= CONNECTIONS_PER_USER {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            service: self.clone(),
            uid,
        })
    }

    /// Whether `uid` may ask for something now (fed text, a concern window):
    /// a token bucket per account. Root (the administrator, integrations
    /// run by the system) is not limited.
    fn may_ask(&self, uid: u32) -> Result<(), String> {
        if uid == 0 {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let mut asks = self.asks.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = asks.entry(uid).or_insert((ASK_BURST, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * ASKS_PER_SECOND).min(ASK_BURST);
        *last = now;
        if *tokens < 1.0 {
            return Err(format!(
                "too many requests from this account (at most {ASKS_PER_SECOND} a second after a burst of {ASK_BURST}); try again in a moment"
            ));
        }
        *tokens -= 1.0;
        Ok(())
    }

    /// The helper the service started as process `pid`, if it did.
    fn supervised_helper(&self, pid: u32) -> Option<SupervisedHelper> {
        self.supervised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .cloned()
    }

    /// Notes a helper the service started (before it can connect).
    pub(crate) fn adopt(&self, pid: u32, helper: SupervisedHelper) {
        self.supervised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, helper);
    }

    /// Forgets a helper the service started (it exited).
    pub(crate) fn forget(&self, pid: u32) {
        self.supervised
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&pid);
    }

    /// The connected helpers: (uid, display, the pid the service started
    /// it as, when last heard from by [`Service::clock_ms`]).
    pub(crate) fn helpers(&self) -> Vec<(u32, Option<String>, Option<u32>, u64)> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|s| {
                (
                    s.uid,
                    s.display.clone(),
                    s.supervised_pid,
                    s.heard.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// Milliseconds since the service started, on a monotonic clock: what
    /// helpers' liveness is measured in, so that moving the wall clock
    /// neither hides a hung helper nor makes live ones look hung.
    pub(crate) fn clock_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Notes the sessions the supervisor found on its last look.
    pub(crate) fn set_found(&self, found: Vec<(u32, String)>) {
        let mut last = self.found.lock().unwrap_or_else(|p| p.into_inner());
        if *last != found {
            *last = found;
            self.health_changed.notify_one();
        }
    }

    /// What monitors each session now, for the console: the connected
    /// helpers, the sessions the supervisor found without one, and the
    /// connected page readers.
    pub(crate) fn health(&self) -> protocol::DeviceHealth {
        let now = self.clock_ms();
        let mut sessions: Vec<protocol::SessionHealth> = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|s| {
                let ago = now.saturating_sub(s.heard.load(Ordering::Relaxed)) / 1000;
                protocol::SessionHealth {
                    user: s.user.clone(),
                    display: s.display.clone().unwrap_or_default(),
                    monitored: ago < crate::ipc::ALIVE_DEADLINE.as_secs(),
                    supervised: s.supervised_pid.is_some(),
                    helper_pid: s.supervised_pid,
                    heard_seconds_ago: Some(ago),
                }
            })
            .collect();
        for (uid, display) in self.found.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let user = user_name(*uid);
            if !sessions
                .iter()
                .any(|s| s.user == user && &s.display == display)
            {
                sessions.push(protocol::SessionHealth {
                    user,
                    display: display.clone(),
                    monitored: false,
                    supervised: false,
                    helper_pid: None,
                    heard_seconds_ago: None,
                });
            }
        }
        sessions.sort_by(|a, b| (&a.display, &a.user).cmp(&(&b.display, &b.user)));
        sessions.truncate(64);
        let mut page_readers: Vec<protocol::PageReaderHealth> = self
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|r| protocol::PageReaderHealth {
                user: user_name(r.uid),
                browser: r.browser.clone(),
            })
            .collect();
        page_readers.sort_by(|a, b| (&a.user, &a.browser).cmp(&(&b.user, &b.browser)));
        page_readers.dedup();
        page_readers.truncate(64);
        protocol::DeviceHealth {
            time: UnixMillis::now(),
            supervising: self.supervising,
            sessions,
            page_readers,
            refused: self.refused.load(Ordering::Relaxed),
            semantic: if self.policy.borrow().semantic {
                self.semantic_model
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
            } else {
                "off in the policy".to_owned()
            },
        }
    }

    /// The user the heartbeat names: the newest connected helper's. Called
    /// whenever a helper comes or goes, so it also has the health sent.
    fn update_heartbeat_user(&self) {
        self.health_changed.notify_one();
        let user = self
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .max_by_key(|(id, _)| **id)
            .map(|(_, s)| s.user.clone());
        self.user.send_if_modified(|now| {
            let changed = *now != user;
            *now = user;
            changed
        });
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
                        tracing::warn!("page reader {id} sent {}; closed", kind_of(&other));
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
        display: Option<String>,
        supervised_pid: Option<u32>,
    ) {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let heard = Arc::new(AtomicU64::new(self.clock_ms()));
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
            .insert(
                id,
                SessionEntry {
                    uid,
                    user: user.clone(),
                    display: display.clone(),
                    supervised_pid,
                    heard: heard.clone(),
                    feed: feed_tx,
                },
            );
        self.update_heartbeat_user();
        let (read, write) = tokio::io::split(conn.into_inner());
        let mut reader = Connection::new(read);
        let mut writer = Connection::new(write);
        let mut policy = self.policy.clone();
        let mut layers = self.layers.clone();
        let mut logged_out = false;
        let mut stopped: Option<String> = None;
        let helper_policy =
            |p: &watch::Receiver<Arc<Policy>>,
             l: &watch::Receiver<Arc<protocol::layers::GroupLayers>>| {
                let layers = l.borrow();
                ToSession::Policy(
                    crate::group_policy::widest(&p.borrow(), &layers),
                    layers.aup_of(&user).cloned(),
                )
            };
        policy.borrow_and_update();
        layers.borrow_and_update();
        let first = [
            ToSession::Welcome { user: user.clone() },
            helper_policy(&policy, &layers),
        ];
        let mut ok = true;
        for m in &first {
            ok &= writer.send(m).await.is_ok();
        }
        while ok {
            tokio::select! {
                got = reader.read::<ToService>() => match got {
                    Ok(Some(message)) => {
                        heard.store(self.clock_ms(), Ordering::Relaxed);
                        match message {
                            ToService::Record(record) => {
                                let reply = self.store(record, &user).await;
                                ok = writer.send(&reply).await.is_ok();
                            }
                            ToService::Alive => {}
                            ToService::Goodbye { reason, logout } => {
                                tracing::info!("session helper for {user} stopped: {reason}");
                                if logout {
                                    logged_out = true;
                                } else {
                                    stopped = Some(reason);
                                }
                            }
                            other => {
                                tracing::warn!(
                                    "session helper for {user} sent {} mid-session; ignored",
                                    kind_of(&other)
                                );
                            }
                        }
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
                    policy.borrow_and_update();
                    ok = writer.send(&helper_policy(&policy, &layers)).await.is_ok();
                }
                Ok(()) = layers.changed() => {
                    layers.borrow_and_update();
                    ok = writer.send(&helper_policy(&policy, &layers)).await.is_ok();
                }
            }
        }
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        self.update_heartbeat_user();
        // A helper the service started is the supervisor's to restart and
        // report; one the user started was stopped by someone unless the
        // desktop closed.
        if !logged_out && supervised_pid.is_none() {
            // Give a logout a moment to take the user's other processes.
            tokio::time::sleep(Duration::from_secs(2)).await;
            if user_has_processes(uid, pid) {
                let how = match &stopped {
                    Some(reason) => format!("was stopped ({reason})"),
                    None => "vanished without a word".to_owned(),
                };
                let detail = format!(
                    "the session helper of {user} (pid {}) {how} while {user} is still logged in: monitoring of that session stopped",
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

    /// Spools a record from a session helper as the kernel-identified
    /// user, keeping of it what the policy's layers apply to that user
    /// (a record they drop is answered as stored: the helper forgets it).
    async fn store(&self, record: AgentMessage, user: &str) -> ToSession {
        let Some(id) = record.record_id() else {
            return ToSession::Refused(format!(
                "a session helper may not send a {}",
                record.kind_name()
            ));
        };
        let kept = {
            let (policy, layers) = (self.policy.borrow(), self.layers.borrow());
            crate::group_policy::keep(record, user, &policy, &layers)
        };
        match kept {
            Some(record) => self.store_as(record, user).await,
            None => ToSession::Stored(id),
        }
    }

    async fn store_as(&self, mut record: AgentMessage, user: &str) -> ToSession {
        match &mut record {
            AgentMessage::Capture(c) => c.user = user.to_owned(),
            AgentMessage::Concern(c) => c.user = user.to_owned(),
            AgentMessage::AupDecision(a) => a.user = user.to_owned(),
            AgentMessage::GroupAupDecision(g) => {
                if !crate::group_policy::may_answer(&self.layers.borrow(), user, &g.group) {
                    return ToSession::Refused(format!(
                        "{user} is not in {}, so may not answer its AUP",
                        g.group
                    ));
                }
                g.decision.user = user.to_owned();
            }
            AgentMessage::TamperEvent(t) => t.user = Some(user.to_owned()),
            AgentMessage::SiteVisits(s) => {
                for v in &mut s.visits {
                    v.user = user.to_owned();
                }
            }
            AgentMessage::Hello(_)
            | AgentMessage::Heartbeat(_)
            | AgentMessage::Health(_)
            | AgentMessage::HealthV7(_) => {
                return ToSession::Refused(format!(
                    "a session helper may not send a {}",
                    record.kind_name()
                ));
            }
        }
        self.spool_record(record).await
    }

    /// Spools a tamper event the service itself found.
    ///
    /// # Errors
    /// Why it could not be spooled.
    pub(crate) async fn spool_tamper(&self, event: AgentMessage) -> Result<(), String> {
        match self.spool_record(event).await {
            ToSession::Refused(why) | ToSession::NotSpooled { why, .. } => Err(why),
            _ => Ok(()),
        }
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

/// Health with nothing in it (the service is gone).
fn empty_health(supervising: bool) -> protocol::DeviceHealth {
    protocol::DeviceHealth {
        time: UnixMillis::now(),
        supervising,
        sessions: Vec::new(),
        page_readers: Vec::new(),
        refused: 0,
        semantic: String::new(),
    }
}

/// Gives back a connection's place in its account's share when dropped.
struct ConnectionSlot {
    service: Arc<Service>,
    uid: u32,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self
            .service
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.uid);
            }
        }
    }
}

/// The name of a message's kind, for refusals (never its content).
fn kind_of(m: &ToService) -> &'static str {
    match m {
        ToService::SessionHello { .. } => "SessionHello",
        ToService::Record(_) => "Record",
        ToService::Goodbye { .. } => "Goodbye",
        ToService::Alive => "Alive",
        ToService::Feed(_) => "Feed",
        ToService::OpenConcern => "OpenConcern",
        ToService::PageReader { .. } => "PageReader",
        ToService::PageText(_) => "PageText",
        ToService::Status => "Status",
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
