//! The session helper: one per logged-in desktop, running as the user. It
//! watches the sources (typed text, window titles, the clipboard, browser
//! history, fed text), matches them, takes the screenshot and hands each
//! capture to the service, keeping it until the service says it is spooled.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use protocol::layers::GroupAup;
use protocol::{
    AgentMessage, Audience, AupDecision, Capture, Concern, Connection, Decision, Policy,
    Screenshot, SiteVisits, Source, UnixMillis,
};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use wordlists::semantic::Semantic;
use wordlists::{KeyStream, Matcher};

use crate::backoff::Backoff;
use crate::browser_history::BrowserHistory;
use crate::ipc::{FeedText, PageText, ToService, ToSession};
use crate::page_readers::PageReaders;
use crate::pending::Pending;
use crate::pipeline::{Pipeline, Seen, build_matcher};
use crate::platform::x11::X11Desktop;
use crate::platform::{Desktop, DesktopEvent, WindowInfo};
use crate::prompts::{PromptAnswer, PromptOptions};
use crate::screenshot::{downscale, encode_png};
use crate::search_query::{percent_decode, search_query};
use crate::site_activity::SiteActivity;
use crate::window::aup::AupRequest;
use crate::window::concern::{ConcernReport, ConcernRequest};

/// A pause in typing after which the line is matched even without a space.
const TYPING_PAUSE: Duration = Duration::from_millis(800);

/// How the session helper runs.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The service's socket.
    pub socket: PathBuf,
    /// Watch the X display in `$DISPLAY` (false: no desktop at all).
    pub use_display: bool,
    /// The user's home, for browser profiles.
    pub home: PathBuf,
    /// How often browser history is looked at.
    pub browser_poll: Duration,
    /// A stretch without keyboard or mouse input this long is idle time,
    /// not time on a website.
    pub idle_after: Duration,
    /// How often the time on websites is reported.
    pub visit_report: Duration,
    /// The AUP and concern windows (None: no windows, as in a headless
    /// run).
    pub prompts: Option<PromptOptions>,
    /// Started by the service for a user's session: a helper that cannot
    /// open its display exits (the service reports it and tries again)
    /// rather than run blind.
    pub for_service: bool,
    /// Read other applications' text through a process of this account
    /// (see [`crate::screen_reader`]); `None`: in this process.
    pub screen_reader_as: Option<crate::screen_reader::ReaderAccount>,
    /// The semantic layer's model folder ([`crate::semantic_layer`]);
    /// `None`: the rules alone.
    pub semantic_model: Option<PathBuf>,
}

/// How often the window in front is checked for a browser no page reader
/// watches.
const READER_LOOK: Duration = Duration::from_secs(2);
/// How often the idle time is read while a browser is in front.
const ACTIVITY_LOOK: Duration = Duration::from_secs(2);
/// Most site visits in one record.
const VISITS_PER_BATCH: usize = 500;

type Reader = Connection<ReadHalf<UnixStream>>;
type Writer = Connection<WriteHalf<UnixStream>>;

struct Link {
    reader: Reader,
    writer: Writer,
}

/// Connects to the service, retrying until it answers or shutdown.
async fn connect(
    socket: &std::path::Path,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(Link, String, Policy, Option<GroupAup>)> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        match handshake(socket).await {
            Ok(Handshake::Joined(joined)) => return Some(*joined),
            Ok(Handshake::Supervised(why)) => {
                tracing::info!("{why}");
                return None;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!("{e:#}; trying again in {:.1} s", delay.as_secs_f32());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return None,
                }
            }
        }
    }
}

/// How a handshake with the service ended.
enum Handshake {
    /// The service took this helper on: its user and the policy.
    Joined(Box<(Link, String, Policy, Option<GroupAup>)>),
    /// The service watches this session with a helper of its own.
    Supervised(String),
}

async fn handshake(socket: &std::path::Path) -> anyhow::Result<Handshake> {
    let stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "cannot reach the agent service at {} (is `agent service` running?)",
            socket.display()
        )
    })?;
    let (read, write) = tokio::io::split(stream);
    let mut link = Link {
        reader: Connection::new(read),
        writer: Connection::new(write),
    };
    link.writer
        .send(&ToService::SessionHello {
            display: std::env::var("DISPLAY").ok(),
        })
        .await?;
    let user = match link
        .reader
        .recv::<ToSession>("waiting for the service's welcome")
        .await?
    {
        ToSession::Welcome { user } => user,
        ToSession::Supervised(why) => return Ok(Handshake::Supervised(why)),
        ToSession::Refused(why) => anyhow::bail!("the service refused this session helper: {why}"),
        other => anyhow::bail!("the service sent {other:?} instead of a welcome"),
    };
    let policy = match link
        .reader
        .recv::<ToSession>("waiting for the policy")
        .await?
    {
        ToSession::Policy(p, aup) => (p, aup),
        other => anyhow::bail!("the service sent {other:?} instead of the policy"),
    };
    Ok(Handshake::Joined(Box::new((
        link, user, policy.0, policy.1,
    ))))
}

/// The helper's state between events.
struct Helper {
    pipeline: Pipeline,
    desktop: Option<Arc<dyn Desktop>>,
    no_desktop_reason: String,
    keys: KeyStream,
    front: WindowInfo,
    /// Records handed to the service and not yet confirmed spooled.
    pending: Pending,
    activity: SiteActivity,
    /// The account this helper watches.
    user: String,
    /// The AUP version waiting for this user's acceptance, if any.
    aup_want: watch::Sender<Option<AupRequest>>,
    /// The year group's own AUP this user is shown, if the year has one.
    group_aup: Option<GroupAup>,
    /// (audience, year group for its own AUP, version) accepted in this
    /// session.
    accepted: HashSet<(Audience, Option<String>, u32)>,
    prompts: Option<PromptOptions>,
    answers: mpsc::UnboundedSender<PromptAnswer>,
    /// Concern windows open, with what was in front when each was asked for.
    concerns: HashMap<u64, ConcernContext>,
    /// The agent's own windows on screen, by X window id, and which of
    /// them are concern windows.
    own_windows: HashSet<u64>,
    concern_windows: HashSet<u64>,
    next_concern: u64,
    /// The browsers' page readers, and a browser in front without one.
    readers: PageReaders,
    /// Page text taken since the last summary in the log: (batches, bytes,
    /// microseconds the extension spent reading them).
    page_stats: (u64, u64, u64),
    /// The process in front, for the accessibility reader (none while a
    /// browser the extension reads is in front).
    front_pid: watch::Sender<Option<u32>>,
    /// The semantic layer's model folder (None: no layer on this laptop),
    /// whether it is being loaded, and whether loading it failed (it is
    /// not tried again until the helper restarts).
    semantic: (Option<PathBuf>, bool, bool),
}

impl Helper {
    /// Loads the semantic layer when the policy has it on and it is not
    /// loaded (once; in the background), and lets it go when the policy
    /// has it off.
    fn want_semantic(&mut self, loaded: &mpsc::UnboundedSender<Option<Arc<Semantic>>>) {
        let on = self.pipeline.policy().semantic;
        if !on {
            if self.pipeline.has_semantic() {
                tracing::info!("the policy switched the semantic layer off");
                self.pipeline.set_semantic(None);
            }
            return;
        }
        let (dir, loading, failed) = &mut self.semantic;
        let Some(dir) = dir.clone() else { return };
        if self.pipeline.has_semantic() || *loading || *failed {
            return;
        }
        *loading = true;
        let loaded = loaded.clone();
        tokio::spawn(async move {
            let _ = loaded.send(crate::semantic_layer::load_in_background(dir).await);
        });
    }
}

/// The moment a concern report was asked for.
struct ConcernContext {
    time: UnixMillis,
    front: WindowInfo,
    page: Option<(String, String)>,
    screenshot: Screenshot,
}

/// Runs the session helper until shutdown or until its desktop closes.
///
/// # Errors
/// Only a failure to build even the baseline matcher.
pub async fn run(
    options: SessionOptions,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some((mut link, user, policy, group_aup)) = connect(&options.socket, &mut shutdown).await
    else {
        return Ok(());
    };
    tracing::info!(
        "session helper for {user}: policy version {} in force",
        policy.version
    );
    let policy = Arc::new(policy);
    let matcher = build_matcher(policy.clone()).await?;

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (desktop, no_desktop_reason): (Option<Arc<dyn Desktop>>, String) = if !options.use_display {
        (None, "no display: the agent runs without a desktop".into())
    } else {
        match X11Desktop::open(None, Box::new(move |e| events_tx.send(e).is_ok())) {
            Ok(d) => {
                tracing::info!("watching the X display {}", d.name());
                (Some(d as Arc<dyn Desktop>), String::new())
            }
            Err(e) if options.for_service => {
                anyhow::bail!("cannot open the session's display: {e:#}");
            }
            Err(e) => {
                let why = format!("no display: {e:#}");
                tracing::warn!(
                    "{why}; typed text, titles, the clipboard and screenshots are not available"
                );
                (None, why)
            }
        }
    };
    let front = desktop
        .as_ref()
        .and_then(|d| d.active_window())
        .unwrap_or_default();
    let (answers_tx, mut answers) = mpsc::unbounded_channel();
    let (aup_want, aup_want_rx) = watch::channel(None);
    let prompts = if desktop.is_some() {
        options.prompts.clone()
    } else {
        if options.prompts.is_some() {
            tracing::warn!("no desktop, so the AUP cannot be shown ({no_desktop_reason})");
        }
        None
    };
    if let Some(p) = &prompts {
        tokio::spawn(crate::prompts::keep_aup_shown(
            p.clone(),
            aup_want_rx,
            answers_tx.clone(),
        ));
    }
    let mut helper = Helper {
        pipeline: Pipeline::new(policy, Arc::new(matcher)),
        desktop,
        no_desktop_reason,
        keys: KeyStream::new(),
        front,
        pending: Pending::default(),
        activity: SiteActivity::new(
            u64::try_from(options.idle_after.as_millis()).unwrap_or(u64::MAX),
            (ACTIVITY_LOOK * 5).as_millis() as u64,
        ),
        user,
        aup_want,
        group_aup,
        accepted: HashSet::new(),
        prompts,
        answers: answers_tx,
        concerns: HashMap::new(),
        own_windows: HashSet::new(),
        concern_windows: HashSet::new(),
        next_concern: 1,
        readers: PageReaders::default(),
        page_stats: (0, 0, 0),
        front_pid: watch::channel(None).0,
        semantic: (options.semantic_model.clone(), false, false),
    };
    let (semantic_tx, mut semantic_loaded) = mpsc::unbounded_channel();
    helper.want_semantic(&semantic_tx);
    let (a11y_tx, mut a11y) = mpsc::channel(64);
    let (reader_tamper_tx, mut reader_tamper) = mpsc::unbounded_channel();
    if helper.desktop.is_some() {
        let (front_pid, front_pid_rx) = watch::channel(None);
        helper.front_pid = front_pid;
        match options.screen_reader_as.clone() {
            Some(account) => {
                tokio::spawn(crate::screen_reader::supervise(
                    account,
                    front_pid_rx,
                    a11y_tx,
                    reader_tamper_tx,
                ));
            }
            None => {
                tokio::spawn(async move {
                    if let Err(e) = crate::accessibility::run(front_pid_rx, a11y_tx).await {
                        tracing::warn!("{e:#}; other applications' on-screen text is not read");
                    }
                });
            }
        }
    }
    helper.want_aup(&helper.pipeline.policy().clone());
    helper.front_for_activity();
    helper.tell_front_pid();
    if !helper.front.title.is_empty() {
        let w = helper.front.clone();
        let caps = helper
            .pipeline
            .scan(&w.title, &seen(Source::WindowTitle, &w, None));
        helper.emit(caps, &mut link).await;
    }

    let history = Arc::new(Mutex::new(BrowserHistory::new(
        &options.home,
        UnixMillis::now(),
    )));
    let mut browser_tick = tokio::time::interval(options.browser_poll);
    browser_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (rebuilt_tx, mut rebuilt) = mpsc::unbounded_channel::<(Arc<Policy>, Arc<Matcher>)>();
    let mut flush_at: Option<Instant> = None;
    let mut visit_report =
        tokio::time::interval_at(Instant::now() + options.visit_report, options.visit_report);
    visit_report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // An interval, not a sleep made afresh in the loop: a stream of other
    // events (typing in the browser) must not keep putting the look off.
    let mut activity_look = tokio::time::interval(ACTIVITY_LOOK);
    activity_look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reader_look = tokio::time::interval(READER_LOOK);
    reader_look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut alive = tokio::time::interval(crate::ipc::ALIVE_EVERY);
    alive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    loop {
        tokio::select! {
            Some(event) = events.recv() => {
                if let DesktopEvent::Closed(why) = &event {
                    tracing::info!("{why}; the session helper stops");
                    helper.report_visits(&mut link, true).await;
                    let _ = link.writer.send(&ToService::Goodbye { reason: why.clone(), logout: true }).await;
                    return Ok(());
                }
                if event == DesktopEvent::ConcernShortcut {
                    helper.ask_concern().await;
                    continue;
                }
                let caps = helper.desktop_event(event, &mut flush_at);
                helper.emit(caps, &mut link).await;
            }
            got = link.reader.read::<ToSession>() => match got {
                Ok(Some(ToSession::OpenConcern)) => helper.ask_concern().await,
                Ok(Some(message)) => {
                    let caps = helper.service_message(message, &rebuilt_tx);
                    helper.emit(caps, &mut link).await;
                }
                Ok(None) | Err(_) => {
                    tracing::warn!("lost the agent service; reconnecting");
                    let Some((l, _, policy, group_aup)) =
                        connect(&options.socket, &mut shutdown).await
                    else {
                        return Ok(());
                    };
                    link = l;
                    helper.group_aup = group_aup;
                    helper.want_aup(&policy);
                    helper.rebuild(policy, &rebuilt_tx);
                    // Whatever the service had not confirmed goes again (it keeps one copy per id).
                    for record in helper.pending.again() {
                        let _ = link.writer.send(&ToService::Record(record)).await;
                    }
                }
            },
            Some((kind, detail)) = reader_tamper.recv() => {
                let event = AgentMessage::TamperEvent(protocol::TamperEvent {
                    id: uuid::Uuid::now_v7(),
                    time: UnixMillis::now(),
                    user: Some(helper.user.clone()),
                    kind,
                    detail,
                });
                helper.send_record(event, &mut link).await;
            }
            Some(shown) = a11y.recv() => {
                let caps = helper.screen_text(&shown);
                helper.emit(caps, &mut link).await;
            }
            Some(answer) = answers.recv() => {
                helper.prompt_answer(answer, &mut link).await;
            }
            Some((policy, matcher)) = rebuilt.recv() => {
                tracing::info!("policy version {} in force", policy.version);
                helper.pipeline.replace(policy, matcher);
                helper.want_semantic(&semantic_tx);
            }
            Some(loaded) = semantic_loaded.recv() => {
                helper.semantic.1 = false;
                helper.semantic.2 = loaded.is_none();
                helper.pipeline.set_semantic(loaded);
                // The policy may have switched it off meanwhile.
                helper.want_semantic(&semantic_tx);
            }
            _ = browser_tick.tick(), if helper.pipeline.wants(Source::Browser) || helper.tracks_visits() => {
                let h = history.clone();
                let visits = tokio::task::spawn_blocking(move || {
                    h.lock().unwrap_or_else(|p| p.into_inner()).poll()
                }).await.unwrap_or_default();
                let mut caps = Vec::new();
                for v in visits {
                    if helper.tracks_visits() {
                        helper.activity.opened(&v);
                    }
                    if helper.pipeline.wants(Source::Browser) {
                        caps.extend(helper.page_visit(&v));
                    }
                }
                helper.emit(caps, &mut link).await;
            }
            _ = activity_look.tick(), if helper.activity.browser_in_front() || helper.activity.undecided() => {
                let idle = helper.idle_ms();
                helper.activity.look(UnixMillis::now().0, idle);
            }
            _ = visit_report.tick() => {
                helper.report_visits(&mut link, false).await;
            }
            _ = reader_look.tick(), if helper.desktop.is_some() && helper.pipeline.wants(Source::ScreenText) => {
                helper.look_for_unwatched_browser(&mut link).await;
            }
            () = sleep_until(helper.pending.retry_at()), if helper.pending.retry_at().is_some() => {
                for record in helper.pending.again() {
                    if link.writer.send(&ToService::Record(record)).await.is_err() {
                        // Lost the service; the reconnect offers them all.
                        break;
                    }
                }
            }
            () = sleep_until(flush_at), if flush_at.is_some() => {
                flush_at = None;
                let matcher = helper.pipeline.matcher().clone();
                if let Some(c) = helper.keys.flush(&matcher) {
                    let w = helper.front.clone();
                    let caps = helper.pipeline.typed(&c, &seen(Source::Typed, &w, None));
                    helper.emit(caps, &mut link).await;
                }
            }
            _ = alive.tick() => {
                // A lost service shows on the reading side, which reconnects.
                let _ = link.writer.send(&ToService::Alive).await;
            }
            _ = shutdown.changed() => {
                helper.report_visits(&mut link, true).await;
                let _ = link.writer.send(&ToService::Goodbye { reason: "stopped by a signal".into(), logout: false }).await;
                return Ok(());
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn seen<'a>(source: Source, window: &'a WindowInfo, url: Option<&'a str>) -> Seen<'a> {
    Seen {
        source,
        window,
        url,
    }
}

fn window_id(parts: &[&str]) -> u64 {
    let mut h = DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

impl Helper {
    /// Whether typing now goes into a concern window: a pupil's report to
    /// the safeguarding team, sent as it is, not text to match. Only that
    /// window, by its id: typing anywhere else is matched while it is
    /// open. (Keys typed at the AUP window are still matched: it may be
    /// slow to come up, or unable to, and monitoring must not pause
    /// meanwhile.)
    fn own_window_in_front(&self) -> bool {
        self.concern_windows.contains(&self.front.id)
    }

    /// Whether `w` is one of the agent's own windows, known by id (a
    /// program of the pupil's may give itself the agent's window class).
    fn is_own(&self, w: &WindowInfo) -> bool {
        self.own_windows.contains(&w.id)
    }

    /// Asks for the AUP of `policy` to be shown if this user has not
    /// accepted that version in this session.
    fn want_aup(&self, policy: &Policy) {
        if self.prompts.is_none() {
            return;
        }
        let audience = policy.audience_of(&self.user);
        let shown = match &self.group_aup {
            Some(g) if audience == Audience::Pupils => Some(AupRequest {
                audience,
                group: Some(g.group.clone()),
                version: g.version,
                markdown: g.markdown.clone(),
            }),
            _ => policy.aup_for(audience).map(|t| AupRequest {
                audience,
                group: None,
                version: t.version,
                markdown: t.markdown.clone(),
            }),
        };
        let want = shown.filter(|r| !r.markdown.trim().is_empty()).filter(|r| {
            !self
                .accepted
                .contains(&(r.audience, r.group.clone(), r.version))
        });
        self.aup_want.send_if_modified(|now| {
            let changed = *now != want;
            now.clone_from(&want);
            changed
        });
    }

    /// Opens the concern window, noting first what is on screen (before
    /// the window covers it).
    async fn ask_concern(&mut self) {
        let Some(prompts) = self.prompts.clone() else {
            tracing::warn!("a concern report was asked for, but this session has no windows");
            return;
        };
        if !self.concerns.is_empty() {
            tracing::info!("the concern window is already open");
            return;
        }
        let front = self
            .desktop
            .as_ref()
            .and_then(|d| d.active_window())
            .filter(|w| !self.is_own(w))
            .unwrap_or_else(|| self.front.clone());
        let page = self.activity.page_of(&front.app, &front.title);
        let context = ConcernContext {
            time: UnixMillis::now(),
            page,
            screenshot: self.screenshot().await,
            front,
        };
        let request = ConcernRequest {
            page: context
                .page
                .as_ref()
                .map(|(url, title)| format!("{title} ({url})")),
        };
        let id = self.next_concern;
        self.next_concern += 1;
        self.concerns.insert(id, context);
        crate::prompts::open_concern(&prompts, id, request, self.answers.clone());
    }

    /// A window answered: an AUP decision or a concern report to send.
    async fn prompt_answer(&mut self, answer: PromptAnswer, link: &mut Link) {
        match answer {
            PromptAnswer::Aup { request, decision } => {
                tracing::info!(
                    "{} chose {decision:?} for AUP version {} ({})",
                    self.user,
                    request.version,
                    request
                        .group
                        .clone()
                        .unwrap_or_else(|| format!("{:?}", request.audience))
                );
                let answer = AupDecision {
                    id: uuid::Uuid::now_v7(),
                    time: UnixMillis::now(),
                    user: self.user.clone(),
                    audience: request.audience,
                    aup_version: request.version,
                    decision,
                };
                let record = match &request.group {
                    Some(group) => AgentMessage::GroupAupDecision(protocol::GroupAupDecision {
                        decision: answer,
                        group: group.clone(),
                    }),
                    None => AgentMessage::AupDecision(answer),
                };
                self.send_record(record, link).await;
                match decision {
                    Decision::Accept => {
                        self.accepted.insert((
                            request.audience,
                            request.group.clone(),
                            request.version,
                        ));
                        self.want_aup(&self.pipeline.policy().clone());
                        // A newer version may have arrived meanwhile.
                        self.aup_want.send_if_modified(|now| {
                            if now.as_ref() == Some(&request) {
                                *now = None;
                                true
                            } else {
                                false
                            }
                        });
                    }
                    Decision::Decline => {
                        if let Some(p) = self.prompts.clone() {
                            tokio::spawn(
                                async move { crate::prompts::run_decline_command(&p).await },
                            );
                        }
                    }
                }
            }
            PromptAnswer::Window {
                window,
                open,
                concern,
            } => {
                if open {
                    self.own_windows.insert(window);
                    if concern {
                        self.concern_windows.insert(window);
                    }
                } else {
                    self.own_windows.remove(&window);
                    self.concern_windows.remove(&window);
                }
            }
            PromptAnswer::Concern { id, report } => {
                let Some(context) = self.concerns.remove(&id) else {
                    return;
                };
                let Some(ConcernReport { text, screenshot }) = report else {
                    tracing::info!("the concern report was cancelled");
                    return;
                };
                // The browser may have written the page to its history only
                // while the pupil was writing.
                let page = context.page.or_else(|| {
                    self.activity
                        .page_of(&context.front.app, &context.front.title)
                });
                let (url, page_title) = page.unzip();
                let record = AgentMessage::Concern(Concern {
                    id: uuid::Uuid::now_v7(),
                    time: context.time,
                    user: self.user.clone(),
                    text,
                    app: context.front.app,
                    window_title: context.front.title,
                    url,
                    page_title,
                    screenshot: if screenshot {
                        context.screenshot
                    } else {
                        Screenshot::Missing("the pupil chose not to include a picture".into())
                    },
                });
                tracing::info!("sending a concern report from {}", self.user);
                self.send_record(record, link).await;
            }
        }
    }

    /// Whether the school's policy asks for time on websites.
    fn tracks_visits(&self) -> bool {
        self.pipeline.policy().sources.site_visits
    }

    fn idle_ms(&self) -> Option<u64> {
        self.desktop.as_ref().and_then(|d| d.idle_ms())
    }

    fn front_for_activity(&mut self) {
        if self.tracks_visits() {
            let idle = self.idle_ms();
            self.activity.front_changed(
                UnixMillis::now().0,
                idle,
                &self.front.app,
                &self.front.title,
            );
        }
    }

    /// Hands the time on websites counted so far to the service, in
    /// batches; `all` also sends time whose address is still unknown
    /// (the session is ending).
    async fn report_visits(&mut self, link: &mut Link, all: bool) {
        let now = UnixMillis::now().0;
        let idle = self.idle_ms();
        self.activity.look(now, idle);
        let visits = if all {
            self.activity.report_all(now)
        } else {
            self.activity.report(now)
        };
        for chunk in visits.chunks(VISITS_PER_BATCH) {
            let record = AgentMessage::SiteVisits(SiteVisits {
                id: uuid::Uuid::now_v7(),
                visits: chunk.to_vec(),
            });
            tracing::info!("reporting {} site visits", chunk.len());
            self.send_record(record, link).await;
        }
    }

    /// Hands a record to the service, keeping it until the service says it
    /// is spooled.
    async fn send_record(&mut self, record: AgentMessage, link: &mut Link) -> bool {
        self.pending.insert(record.clone());
        if let Err(e) = link.writer.send(&ToService::Record(record)).await {
            // Kept in `pending`; sent again once the service is back.
            tracing::warn!("cannot hand a record to the service now: {e}");
            return false;
        }
        true
    }

    fn desktop_event(
        &mut self,
        event: DesktopEvent,
        flush_at: &mut Option<Instant>,
    ) -> Vec<Capture> {
        let matcher = self.pipeline.matcher().clone();
        match event {
            DesktopEvent::Key(key) => {
                if !self.pipeline.wants(Source::Typed) || self.own_window_in_front() {
                    return Vec::new();
                }
                let committed = self.keys.feed(key, &matcher);
                *flush_at = (!self.keys.is_empty()).then(|| Instant::now() + TYPING_PAUSE);
                let w = self.front.clone();
                committed
                    .map(|c| self.pipeline.typed(&c, &seen(Source::Typed, &w, None)))
                    .unwrap_or_default()
            }
            DesktopEvent::Focus(window) => {
                let old = self.front.clone();
                let mut caps = self
                    .keys
                    .focus_changed(&matcher)
                    .map(|c| self.pipeline.typed(&c, &seen(Source::Typed, &old, None)))
                    .unwrap_or_default();
                *flush_at = None;
                self.front = window.clone();
                self.front_for_activity();
                self.tell_front_pid();
                caps.extend(
                    self.pipeline
                        .scan(&window.title, &seen(Source::WindowTitle, &window, None)),
                );
                caps
            }
            DesktopEvent::Title(window) => {
                self.front = window.clone();
                self.front_for_activity();
                self.tell_front_pid();
                self.pipeline
                    .scan(&window.title, &seen(Source::WindowTitle, &window, None))
            }
            DesktopEvent::Clipboard(text) => {
                let w = self.front.clone();
                self.pipeline
                    .scan(&text, &seen(Source::Clipboard, &w, None))
            }
            DesktopEvent::Closed(_) | DesktopEvent::ConcernShortcut => Vec::new(),
        }
    }

    fn service_message(
        &mut self,
        message: ToSession,
        rebuilt: &mpsc::UnboundedSender<(Arc<Policy>, Arc<Matcher>)>,
    ) -> Vec<Capture> {
        match message {
            ToSession::Stored(id) => {
                self.pending.stored(id);
                Vec::new()
            }
            ToSession::NotSpooled { id, why } => {
                self.pending.not_spooled(id, why);
                Vec::new()
            }
            ToSession::Policy(policy, group_aup) => {
                // Sent when the policy or its layers change: what was
                // dropped under the old ones is looked at afresh.
                self.pipeline.forget_recent();
                self.group_aup = group_aup;
                self.want_aup(&policy);
                self.rebuild(policy, rebuilt);
                Vec::new()
            }
            ToSession::Feed(FeedText { app, title, text }) => {
                let w = WindowInfo {
                    id: window_id(&["feed", &app, &title]),
                    app,
                    title,
                    pid: None,
                };
                self.pipeline.scan(&text, &seen(Source::Feed, &w, None))
            }
            ToSession::Refused(why) => {
                tracing::error!("the agent service refused a record: {why}");
                Vec::new()
            }
            ToSession::PageReader {
                reader,
                browser_pid,
                browser,
                connected,
            } => {
                tracing::info!(
                    "page reader {reader} ({browser}, browser pid {}) {}",
                    browser_pid.map_or("?".into(), |p| p.to_string()),
                    if connected { "connected" } else { "went away" }
                );
                self.readers
                    .changed(reader, browser_pid, browser, connected);
                Vec::new()
            }
            ToSession::PageText { reader, text } => self.page_text(reader, &text),
            other => {
                tracing::warn!("unexpected message from the service: {other:?}");
                Vec::new()
            }
        }
    }

    /// Builds the new policy's matcher off the event loop; the old one
    /// keeps matching until it is ready, so no event waits or is lost.
    fn rebuild(
        &self,
        policy: Policy,
        rebuilt: &mpsc::UnboundedSender<(Arc<Policy>, Arc<Matcher>)>,
    ) {
        if policy == **self.pipeline.policy() {
            return;
        }
        let tx = rebuilt.clone();
        let policy = Arc::new(policy);
        tokio::spawn(async move {
            match build_matcher(policy.clone()).await {
                Ok(m) => {
                    let _ = tx.send((policy, Arc::new(m)));
                }
                Err(e) => tracing::error!(
                    "policy version {} does not build ({e:#}); the previous one stays in force",
                    policy.version
                ),
            }
        });
    }

    /// Text a browser's page reader read: matched block by block (a
    /// phrase does not run from one paragraph into the next) as text on
    /// screen of that page, unless the policy excludes the site.
    fn page_text(&mut self, reader: u64, text: &PageText) -> Vec<Capture> {
        if !self.pipeline.wants(Source::ScreenText) {
            return Vec::new();
        }
        let policy = self.pipeline.policy().clone();
        let excluded = [&text.page_url, &text.frame_url].into_iter().any(|u| {
            wordlists::domains::host_of(u).is_some_and(|h| policy.page_reading_excluded(&h))
        });
        if excluded {
            return Vec::new();
        }
        let (pid, browser) = self
            .readers
            .browser_of(reader)
            .map(|(p, b)| (p, b.to_owned()))
            .unwrap_or_default();
        let app = if pid.is_some() && self.front.pid == pid {
            self.front.app.clone()
        } else {
            browser
        };
        // One page is one window, whatever its title says meanwhile.
        let page = text.page_url.split('#').next().unwrap_or_default();
        let w = WindowInfo {
            id: window_id(&["page", page]),
            app,
            title: text.page_title.clone(),
            pid,
        };
        let s = seen(Source::ScreenText, &w, Some(&text.page_url));
        let mut caps = Vec::new();
        let mut bytes = 0;
        for block in &text.blocks {
            bytes += block.len();
            caps.extend(self.pipeline.scan(block, &s));
        }
        tracing::debug!(
            "page text from reader {reader}: {} block(s), {bytes} bytes, read in {} µs, {} capture(s)",
            text.blocks.len(),
            text.reader_us,
            caps.len()
        );
        let stats = &mut self.page_stats;
        stats.0 += 1;
        stats.1 += bytes as u64;
        stats.2 += u64::from(text.reader_us);
        if stats.0.is_multiple_of(1000) {
            tracing::info!(
                "page text: {} batches, {} bytes, {:.0} µs of the extension's time a batch on average",
                stats.0,
                stats.1,
                stats.2 as f64 / stats.0 as f64
            );
        }
        caps
    }

    fn tell_front_pid(&self) {
        let pid = if crate::page_readers::is_supported_browser(&self.front.app)
            || self.is_own(&self.front)
        {
            None
        } else {
            self.front.pid
        };
        self.front_pid.send_if_modified(|now| {
            let changed = *now != pid;
            *now = pid;
            changed
        });
    }

    /// Text another application showed (the accessibility bus): matched
    /// object by object as text on screen of the window in front.
    fn screen_text(&mut self, shown: &crate::accessibility::ScreenText) -> Vec<Capture> {
        if !self.pipeline.wants(Source::ScreenText) {
            return Vec::new();
        }
        let w = if self.front.pid == Some(shown.pid) {
            self.front.clone()
        } else {
            WindowInfo {
                id: window_id(&["a11y", &shown.pid.to_string()]),
                app: shown.app.clone(),
                title: String::new(),
                pid: Some(shown.pid),
            }
        };
        let s = seen(Source::ScreenText, &w, None);
        let mut caps = Vec::new();
        for block in &shown.blocks {
            caps.extend(self.pipeline.scan(block, &s));
        }
        caps
    }

    /// Tells the console (a tamper event) when a browser has been in
    /// front with no page reader for long enough.
    async fn look_for_unwatched_browser(&mut self, link: &mut Link) {
        let now = u64::try_from(UnixMillis::now().0).unwrap_or(0);
        let front = self.front.clone();
        let Some(u) = self.readers.look(&front.app, &front.title, front.pid, now) else {
            return;
        };
        let detail = format!(
            "{} (process {}) was in front for {} s with no page reader connected from it, so its pages were not read: the Safeguard extension is missing, disabled or blocked in that browser or profile (last window title {:?})",
            u.app,
            u.pid.map_or("unknown".into(), |p| p.to_string()),
            now.saturating_sub(u.since_ms) / 1000,
            u.title
        );
        tracing::warn!("{detail}");
        let record = AgentMessage::TamperEvent(protocol::TamperEvent {
            id: uuid::Uuid::now_v7(),
            time: UnixMillis::now(),
            user: Some(self.user.clone()),
            kind: protocol::TamperKind::BrowserUnmonitored,
            detail,
        });
        self.send_record(record, link).await;
    }

    fn page_visit(&mut self, v: &crate::browser_history::PageVisit) -> Vec<Capture> {
        let w = WindowInfo {
            id: window_id(&["browser", &v.browser, &v.url]),
            app: v.browser.clone(),
            title: v.title.clone(),
            pid: None,
        };
        let s = seen(Source::Browser, &w, Some(&v.url));
        let mut caps = self.pipeline.scan(&v.title, &s);
        if let Some(q) = search_query(&v.url) {
            // One search is one "window", however many addresses it took
            // (Chromium tries https:// first, then http://).
            let search = WindowInfo {
                id: window_id(&["search", &v.browser, &q]),
                ..w.clone()
            };
            caps.extend(
                self.pipeline
                    .scan(&q, &seen(Source::Browser, &search, Some(&v.url))),
            );
        } else {
            // The address's words ("/news/knife-crime-…") as text.
            let words =
                percent_decode(&v.url).replace(['/', '-', '_', '.', '?', '=', '&', ':'], " ");
            caps.extend(self.pipeline.scan(&words, &s));
        }
        caps
    }

    /// Adds one screenshot to the captures of this moment and hands them to
    /// the service.
    async fn emit(&mut self, mut captures: Vec<Capture>, link: &mut Link) {
        if captures.is_empty() {
            return;
        }
        let shot = self.screenshot().await;
        for c in &mut captures {
            c.screenshot = shot.clone();
            tracing::info!(
                "capture {}: {:?} ({}, severity {}) from {} in {:?}",
                c.id,
                c.term,
                c.category,
                c.severity,
                c.source.as_str(),
                c.window_title
            );
        }
        let mut sending = true;
        for c in captures {
            if sending {
                sending = self.send_record(AgentMessage::Capture(c), link).await;
            } else {
                self.pending.insert(AgentMessage::Capture(c));
            }
        }
    }

    async fn screenshot(&self) -> Screenshot {
        let policy = self.pipeline.policy();
        if !policy.screenshots {
            return Screenshot::Missing(
                "screenshots are switched off by the school's policy".into(),
            );
        }
        let Some(desktop) = self.desktop.clone() else {
            return Screenshot::Missing(self.no_desktop_reason.clone());
        };
        let width = policy.screenshot_max_width;
        let made = tokio::task::spawn_blocking(move || {
            let raw = desktop.screenshot()?;
            encode_png(&downscale(&raw, width))
        })
        .await;
        match made {
            Ok(Ok(png)) => Screenshot::Png(png),
            Ok(Err(e)) => Screenshot::Missing(format!("the screenshot failed: {e:#}")),
            Err(e) => Screenshot::Missing(format!("the screenshot failed: {e}")),
        }
    }
}
