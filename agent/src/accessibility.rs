//! On-screen text of other applications, through the accessibility bus
//! (AT-SPI over D-Bus, with the pure-Rust `atspi` and `zbus` crates).
//!
//! What is read: the application in front (the one whose process owns the
//! front window, `_NET_WM_PID`): the text of its showing, non-editable
//! text objects (labels, text views, documents, terminals) when it comes
//! to the front and a moment later (toolkits fill their windows after
//! mapping them), and the text around every insertion an
//! application reports (`object:text-changed:insert`: a message arriving
//! in a chat window, a page of a document). Never what is editable or a
//! terminal (what the user types is the keyboard source's), nor password
//! fields. Browsers the extension reads are left to it (the helper does
//! not name them as the front process).
//!
//! Accessibility is switched on for the session (`org.a11y.Status`
//! `IsEnabled`) where it is off, so toolkits that wait for it (Chromium,
//! Electron, Qt) expose their text. What no accessibility interface
//! exposes (images, canvas, games, most video) is not seen.
//!
//! Bounded: at most 3,000 objects visited and 256 KiB read per look, 16 KiB
//! of any one object, 24 KiB around an insertion.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::Context;
use atspi::connection::set_session_accessibility;
use atspi::events::object::TextChangedEvent;
use atspi::proxy::accessible::{AccessibleProxy, ObjectRefExt};
use atspi::proxy::proxy_ext::ProxyExt;
use atspi::zbus;
use atspi::{AccessibilityConnection, Event, Interface, ObjectRefOwned, Operation, Role, State};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

/// Objects visited in one look at an application.
const MAX_NODES: usize = 3000;
/// Depth of the tree walked.
const MAX_DEPTH: usize = 40;
/// Characters read of one object.
const MAX_OBJECT_CHARS: i32 = 16 * 1024;
/// Bytes read in one look.
const MAX_LOOK_BYTES: usize = 256 * 1024;
/// Characters read either side of an insertion.
const AROUND_INSERT: i32 = 12 * 1024;
/// Looks again after an application comes to the front.
const LOOK_AGAIN: [Duration; 2] = [Duration::from_millis(800), Duration::from_millis(2500)];

/// Text an application showed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScreenText {
    /// The application's process.
    pub pid: u32,
    /// Its name on the accessibility bus (for captures when the window in
    /// front does not name it).
    pub app: String,
    /// The text, object by object.
    pub blocks: Vec<String>,
}

/// Runs the reader until `front` closes: `front` says which process owns
/// the window in front; what it shows goes to `out`.
///
/// # Errors
/// No session bus, no accessibility bus, or the registry cannot be
/// reached (the helper logs it and runs on without this source).
pub async fn run(
    mut front: watch::Receiver<Option<u32>>,
    out: mpsc::Sender<ScreenText>,
) -> anyhow::Result<()> {
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        anyhow::bail!(
            "no session bus (DBUS_SESSION_BUS_ADDRESS is not set), so no accessibility bus"
        );
    }
    if let Err(e) = set_session_accessibility(true).await {
        tracing::warn!("cannot switch accessibility on for this session: {e}");
    }
    let conn = AccessibilityConnection::new()
        .await
        .context("cannot reach the accessibility bus (is at-spi2-core installed?)")?;
    conn.register_event::<TextChangedEvent>()
        .await
        .context("cannot ask for text-changed events")?;
    let bus = conn.connection().clone();
    let dbus = zbus::fdo::DBusProxy::new(&bus)
        .await
        .context("cannot talk to the accessibility bus")?;
    let mut reader = Reader {
        conn: &conn,
        bus: &bus,
        dbus,
        pids: HashMap::new(),
    };
    let mut events = conn.event_stream();
    let mut again: VecDeque<(tokio::time::Instant, u32)> = VecDeque::new();
    tracing::info!("reading on-screen text through the accessibility bus");
    loop {
        let next_again = again.front().map(|(at, _)| *at);
        tokio::select! {
            changed = front.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let pid = *front.borrow_and_update();
                again.clear();
                if let Some(pid) = pid {
                    let now = tokio::time::Instant::now();
                    for d in LOOK_AGAIN {
                        again.push_back((now + d, pid));
                    }
                    reader.look(pid, &out).await;
                }
            }
            () = sleep_until(next_again) => {
                if let Some((_, pid)) = again.pop_front()
                    && *front.borrow() == Some(pid)
                {
                    reader.look(pid, &out).await;
                }
            }
            event = events.next() => {
                let Some(event) = event else {
                    anyhow::bail!("the accessibility bus closed");
                };
                let Ok(Event::Object(atspi::events::ObjectEvents::TextChanged(changed))) = event else {
                    continue;
                };
                if changed.operation != Operation::Insert {
                    continue;
                }
                let Some(pid) = reader.pid_of(changed.item.name_as_str()).await else {
                    continue;
                };
                if *front.borrow() != Some(pid) {
                    continue;
                }
                if let Some(text) = reader.around(&changed).await {
                    let _ = out.send(ScreenText { pid, app: String::new(), blocks: vec![text] }).await;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct Reader<'c> {
    conn: &'c AccessibilityConnection,
    bus: &'c zbus::Connection,
    dbus: zbus::fdo::DBusProxy<'c>,
    /// Bus name → process.
    pids: HashMap<String, Option<u32>>,
}

impl Reader<'_> {
    async fn pid_of(&mut self, name: Option<&str>) -> Option<u32> {
        let name = name?;
        if let Some(pid) = self.pids.get(name) {
            return *pid;
        }
        let pid = match zbus::names::BusName::try_from(name) {
            Ok(bus_name) => self
                .dbus
                .get_connection_unix_process_id(bus_name)
                .await
                .ok(),
            Err(_) => None,
        };
        if self.pids.len() > 512 {
            self.pids.clear();
        }
        self.pids.insert(name.to_owned(), pid);
        pid
    }

    /// Reads what the application of process `pid` shows.
    async fn look(&mut self, pid: u32, out: &mpsc::Sender<ScreenText>) {
        let Ok(root) = self.conn.root_accessible_on_registry().await else {
            return;
        };
        let Ok(apps) = root.get_children().await else {
            return;
        };
        for app in apps {
            if self.pid_of(app.name_as_str()).await != Some(pid) {
                continue;
            }
            let Ok(proxy) = app.as_accessible_proxy(self.bus).await else {
                continue;
            };
            let name = proxy.name().await.unwrap_or_default();
            let blocks = self.walk(proxy).await;
            tracing::debug!(
                "accessibility: {name} (pid {pid}) shows {} text object(s)",
                blocks.len()
            );
            if !blocks.is_empty() {
                let _ = out
                    .send(ScreenText {
                        pid,
                        app: name,
                        blocks,
                    })
                    .await;
            }
        }
    }

    /// The showing, non-editable text under an application.
    async fn walk(&self, app: AccessibleProxy<'_>) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut bytes = 0;
        let mut visited = 0;
        let mut queue: VecDeque<(ObjectRefOwned, usize)> = match app.get_children().await {
            Ok(children) => children.into_iter().map(|c| (c, 1)).collect(),
            Err(_) => return blocks,
        };
        while let Some((object, depth)) = queue.pop_front() {
            visited += 1;
            if visited > MAX_NODES || bytes > MAX_LOOK_BYTES {
                break;
            }
            let Ok(node) = object.as_accessible_proxy(self.bus).await else {
                continue;
            };
            let Ok(state) = node.get_state().await else {
                continue;
            };
            // A hidden subtree is not on screen.
            if !state.contains(State::Showing) {
                continue;
            }
            if let Some(text) = readable_text(&node, &state, 0, MAX_OBJECT_CHARS).await {
                bytes += text.len();
                blocks.push(text);
            }
            if depth < MAX_DEPTH
                && let Ok(children) = node.get_children().await
            {
                queue.extend(children.into_iter().map(|c| (c, depth + 1)));
            }
        }
        blocks
    }

    /// The text around an insertion, if its object may be read.
    async fn around(&self, changed: &TextChangedEvent) -> Option<String> {
        let node = changed.item.as_accessible_proxy(self.bus).await.ok()?;
        let state = node.get_state().await.ok()?;
        let start = (changed.start_pos - AROUND_INSERT).max(0);
        let end = changed.start_pos + changed.length.max(0) + AROUND_INSERT;
        readable_text(&node, &state, start, end).await
    }
}

/// The text of an object between two character offsets, unless it is
/// editable (typed by the user), a password field, or has no text.
async fn readable_text(
    node: &AccessibleProxy<'_>,
    state: &atspi::StateSet,
    start: i32,
    end: i32,
) -> Option<String> {
    if state.contains(State::Editable) {
        return None;
    }
    let interfaces = node.get_interfaces().await.ok()?;
    if !interfaces.contains(Interface::Text) {
        return None;
    }
    // A terminal shows mostly what the user typed (the keyboard source's).
    if matches!(
        node.get_role().await.ok()?,
        Role::PasswordText | Role::Terminal
    ) {
        return None;
    }
    let text = node.proxies().await.ok()?.text().await.ok()?;
    let count = text.character_count().await.ok()?;
    let end = end.min(count);
    if end <= start {
        return None;
    }
    let got = text.get_text(start, end).await.ok()?;
    let got = got.trim();
    (!got.is_empty()).then(|| got.to_owned())
}
