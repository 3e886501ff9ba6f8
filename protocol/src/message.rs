//! Every message that crosses the wire, in both directions.
//!
//! Two enums carry them: [`AgentMessage`] (laptop → console) and
//! [`ConsoleMessage`] (console → laptop). Enrollment runs on its own
//! short connection with [`EnrollRequest`] and [`EnrollResponse`].
//!
//! Invariants the rest of the system relies on:
//! - every record the console must store exactly once (capture, site-visit
//!   batch, AUP decision, concern, tamper event) carries a [`RecordId`] made
//!   by the agent (UUID v7, so ids sort by creation time). The console stores
//!   by that id idempotently and acks it only once the row is durable;
//! - times are [`UnixMillis`] (UTC milliseconds since the Unix epoch); zones
//!   are a presentation concern of the console;
//! - variants are only ever appended, never reordered or removed: postcard
//!   encodes an enum variant by its index, so reordering would silently change
//!   the meaning of old peers' frames. A change that cannot be made by
//!   appending bumps [`crate::PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The agent-made identifier of a stored record (UUID v7).
pub type RecordId = Uuid;

/// UTC milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// Milliseconds in a minute, an hour, a day: the units the console's
    /// stores, reports and settings count in, named once here.
    pub const MINUTE: i64 = 60_000;
    pub const HOUR: i64 = 60 * Self::MINUTE;
    pub const DAY: i64 = 24 * Self::HOUR;

    /// `days` days before this time (saturating).
    pub fn days_before(self, days: u32) -> UnixMillis {
        UnixMillis(self.0.saturating_sub(i64::from(days) * Self::DAY))
    }

    /// This time plus `ms` milliseconds (saturating; `ms` may be negative).
    pub fn plus(self, ms: i64) -> UnixMillis {
        UnixMillis(self.0.saturating_add(ms))
    }

    /// The number of the hour this time is in, counted from 1970 (hours
    /// before 1970 negative): the key of hourly totals.
    pub fn hour_number(self) -> i64 {
        self.0.div_euclid(Self::HOUR)
    }

    /// The current wall-clock time. A clock before 1970 reads as 0.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        UnixMillis(ms)
    }
}

/// Where the text that matched came from. The console's JSON names them in
/// snake case (`typed`, `window_title`, …), as in docs/interfaces.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Source {
    Typed,
    WindowTitle,
    Browser,
    Clipboard,
    ScreenText,
    Feed,
    Concern,
}

impl Source {
    /// Every source, in wire order.
    pub const ALL: [Source; 7] = [
        Source::Typed,
        Source::WindowTitle,
        Source::Browser,
        Source::Clipboard,
        Source::ScreenText,
        Source::Feed,
        Source::Concern,
    ];

    /// The name used in the JSON API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Typed => "typed",
            Source::WindowTitle => "window_title",
            Source::Browser => "browser",
            Source::Clipboard => "clipboard",
            Source::ScreenText => "screen_text",
            Source::Feed => "feed",
            Source::Concern => "concern",
        }
    }

    /// The inverse of [`Source::as_str`].
    pub fn parse(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// The screenshot that goes with a capture, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Screenshot {
    /// A PNG image of the screen, at most the policy's maximum width.
    Png(#[serde(with = "serde_bytes_vec")] Vec<u8>),
    /// No image, and why (no display, screenshots off by policy, the grab
    /// failed, dropped at the spool's size cap, …).
    Missing(String),
}

/// A hit on a term, with the screen as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Capture {
    #[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuid()"))]
    pub id: RecordId,
    pub time: UnixMillis,
    /// The logged-in account name on the laptop.
    pub user: String,
    pub source: Source,
    /// The application (WM_CLASS on X11, the executable elsewhere).
    pub app: String,
    pub window_title: String,
    /// The page address, when the source was a browser.
    pub url: Option<String>,
    /// The library term that matched, as written in the library.
    pub term: String,
    pub category: String,
    /// 1 (lowest) to 5 (gravest).
    pub severity: u8,
    /// A bounded snippet of the text around the hit; never more.
    pub context: String,
    /// Byte range of the matched text inside `context`.
    pub context_match: (u32, u32),
    pub screenshot: Screenshot,
}

/// One site a user had open, aggregated by the agent over a short period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SiteVisit {
    pub user: String,
    pub browser: String,
    pub url: String,
    pub domain: String,
    pub title: String,
    pub start: UnixMillis,
    pub end: UnixMillis,
    /// Seconds the page was in a focused browser window and the user was not idle.
    pub active_seconds: u32,
    /// How many times the page was opened in the period.
    pub visits: u32,
}

/// Site visits, batched so a busy laptop sends few records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SiteVisits {
    #[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuid()"))]
    pub id: RecordId,
    pub visits: Vec<SiteVisit>,
}

/// Who an Acceptable Use Policy text is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Audience {
    Pupils,
    Staff,
}

/// What the user chose at the AUP prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Decision {
    Accept,
    Decline,
}

/// A user's answer to an Acceptable Use Policy version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AupDecision {
    #[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuid()"))]
    pub id: RecordId,
    pub time: UnixMillis,
    pub user: String,
    pub audience: Audience,
    pub aup_version: u32,
    pub decision: Decision,
}

/// Liveness and health of a laptop, every minute. Not stored per se: the
/// console keeps the latest one per device, so it carries no record id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Heartbeat {
    pub time: UnixMillis,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    /// The logged-in user, if anyone is.
    pub user: Option<String>,
    pub uptime_seconds: u64,
    /// One-, five- and fifteen-minute load averages.
    #[cfg_attr(test, proptest(strategy = "crate::arbitrary::load()"))]
    pub load: [f32; 3],
    pub memory_total_bytes: u64,
    pub memory_used_bytes: u64,
    /// Records waiting in the agent's spool.
    pub spool_depth: u64,
    /// Screenshots or records dropped at the spool's size cap, since install.
    pub spool_dropped: u64,
    /// The policy version the agent is running.
    pub policy_version: u64,
}

/// A pupil's own report that something online upset or worried them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Concern {
    #[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuid()"))]
    pub id: RecordId,
    pub time: UnixMillis,
    pub user: String,
    /// What the pupil wrote.
    pub text: String,
    /// The window in front when the report was opened.
    pub app: String,
    pub window_title: String,
    /// The browser's page at the time, when a browser was in front.
    pub url: Option<String>,
    pub page_title: Option<String>,
    pub screenshot: Screenshot,
}

/// Something that suggests the agent is being interfered with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum TamperKind {
    /// The agent or its session helper stopped without a shutdown.
    AgentKilled,
    /// The wall clock jumped by more than the tolerance.
    ClockJump,
    /// The spool was found truncated or corrupted.
    SpoolDamaged,
    /// Records were dropped at the spool's size cap.
    SpoolOverflow,
    /// The session helper could not read keyboard or screen.
    SourceUnavailable,
    Other,
    /// A supported browser was in front with no page reader (the browser
    /// extension) connected from it: removed, disabled, or a browser
    /// started with a fresh profile.
    BrowserUnmonitored,
    /// A user was logged in to a graphical session with no working
    /// monitor (protocol version 4).
    SessionUnmonitored,
    /// A session's monitor stopped or stopped answering and the service
    /// restarted it; the detail says how long the gap was and why
    /// (protocol version 4).
    MonitorRestarted,
}

/// A tamper or integrity event, with a human-readable detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct TamperEvent {
    #[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuid()"))]
    pub id: RecordId,
    pub time: UnixMillis,
    pub user: Option<String>,
    pub kind: TamperKind,
    pub detail: String,
}

/// The agent's opening message on a device connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Hello {
    pub protocol_version: u16,
    pub agent_version: String,
    #[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuid()"))]
    pub device_id: Uuid,
    /// The policy version the agent already holds (0 for none), so the
    /// console sends a policy only when it has a newer one.
    pub policy_version: u64,
}

/// Everything an agent sends on its device connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum AgentMessage {
    Hello(Hello),
    Capture(Capture),
    SiteVisits(SiteVisits),
    AupDecision(AupDecision),
    Heartbeat(Heartbeat),
    Concern(Concern),
    TamperEvent(TamperEvent),
    /// What monitors each session now (protocol version 4), with every
    /// heartbeat, in the shape of protocols 4 to 6 ([`crate::health_v6`]):
    /// sent to consoles of those versions.
    Health(
        #[serde(with = "crate::health_v6")]
        #[cfg_attr(test, proptest(strategy = "crate::roundtrip_tests::health_v6()"))]
        DeviceHealth,
    ),
    /// An answer to a year group's own AUP (protocol version 6; see
    /// [`crate::layers::GroupAup`]).
    GroupAupDecision(GroupAupDecision),
    /// The same health with the semantic layer's state (protocol 7), to
    /// consoles of protocol 7 or later in place of `Health`.
    HealthV7(DeviceHealth),
}

/// An answer to the AUP of `group` (a year group), not the audience's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct GroupAupDecision {
    /// `aup_version` is the group's AUP's version.
    pub decision: AupDecision,
    pub group: String,
}

/// What watches a laptop's sessions now: sent with every heartbeat, kept
/// by the console as the device's latest (not a record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct DeviceHealth {
    pub time: UnixMillis,
    /// Whether the service starts and supervises the session helpers.
    pub supervising: bool,
    pub sessions: Vec<SessionHealth>,
    /// Browsers whose page reader (the extension) is connected.
    pub page_readers: Vec<PageReaderHealth>,
    /// Messages refused on the laptop's local socket since the service
    /// started (forgeries, floods).
    pub refused: u64,
    /// The semantic layer on this laptop, in words: on with its model, off
    /// in the policy, or its model missing or wrong (protocol 7; empty:
    /// not reported).
    #[serde(default)]
    pub semantic: String,
}

/// One graphical session and its monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SessionHealth {
    pub user: String,
    /// `:0`; empty for a helper without a display.
    pub display: String,
    /// A helper is connected and answering.
    pub monitored: bool,
    /// The service started that helper (out of the user's reach).
    pub supervised: bool,
    /// That helper's process, when the service started it.
    pub helper_pid: Option<u32>,
    /// Seconds since the helper was last heard from, if there is one.
    pub heard_seconds_ago: Option<u64>,
}

/// A browser with its page reader connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct PageReaderHealth {
    pub user: String,
    pub browser: String,
}

impl AgentMessage {
    /// Number of variants; a frame whose kind is at or above it is refused
    /// as [`crate::ProtocolError::UnknownKind`].
    pub const KINDS: u32 = 10;

    /// The health in the message a console of `protocol` reads.
    pub fn health_for(protocol: u16, health: DeviceHealth) -> AgentMessage {
        if protocol >= crate::handshake::SEMANTIC_SINCE {
            AgentMessage::HealthV7(health)
        } else {
            AgentMessage::Health(health)
        }
    }

    /// The record id the console will ack, for messages that carry one.
    pub fn record_id(&self) -> Option<RecordId> {
        match self {
            AgentMessage::Capture(c) => Some(c.id),
            AgentMessage::SiteVisits(s) => Some(s.id),
            AgentMessage::AupDecision(a) => Some(a.id),
            AgentMessage::GroupAupDecision(g) => Some(g.decision.id),
            AgentMessage::Concern(c) => Some(c.id),
            AgentMessage::TamperEvent(t) => Some(t.id),
            AgentMessage::Hello(_)
            | AgentMessage::Heartbeat(_)
            | AgentMessage::Health(_)
            | AgentMessage::HealthV7(_) => None,
        }
    }

    /// A short name for logs and errors.
    pub fn kind_name(&self) -> &'static str {
        match self {
            AgentMessage::Hello(_) => "Hello",
            AgentMessage::Capture(_) => "Capture",
            AgentMessage::SiteVisits(_) => "SiteVisits",
            AgentMessage::AupDecision(_) => "AupDecision",
            AgentMessage::GroupAupDecision(_) => "GroupAupDecision",
            AgentMessage::Heartbeat(_) => "Heartbeat",
            AgentMessage::Concern(_) => "Concern",
            AgentMessage::TamperEvent(_) => "TamperEvent",
            AgentMessage::Health(_) => "Health",
            AgentMessage::HealthV7(_) => "HealthV7",
        }
    }
}

/// The console's answer to a compatible [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Welcome {
    pub protocol_version: u16,
    pub console_version: String,
    /// The console's current policy version; a [`Policy`] follows when it is
    /// newer than the one the agent announced.
    pub policy_version: u64,
    /// How many unacked records the agent may have in flight.
    pub window: u32,
}

/// Why the console will not talk to this agent; the connection closes after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum Refusal {
    /// The two protocol versions cannot talk; both are named.
    IncompatibleVersion { console: u16, agent: u16 },
    /// The console is shedding load; try again after the given seconds.
    Busy { retry_after_seconds: u32 },
    /// Anything else, said in words.
    Other(String),
}

/// A record the console will never accept, so the agent must drop it
/// rather than resend it forever. The reason is for the agent's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Rejected {
    #[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuid()"))]
    pub id: RecordId,
    pub reason: String,
}

/// A term library or exception list the school added, in the same TOML
/// format as the built-in libraries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct LibraryFile {
    pub name: String,
    pub toml: String,
}

/// Which text sources the agent watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct SourceSwitches {
    pub typed: bool,
    pub window_title: bool,
    pub browser: bool,
    pub clipboard: bool,
    pub site_visits: bool,
    /// Text on screen: pages read by the browser extension and other
    /// applications' text (source `screen_text`). Older stored policies
    /// have it on.
    #[serde(default = "on")]
    pub screen_text: bool,
}

fn on() -> bool {
    true
}

/// The Acceptable Use Policy text for one audience (Markdown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct AupText {
    pub audience: Audience,
    pub version: u32,
    pub markdown: String,
}

/// Everything the console decides about how an agent behaves. Sent after
/// [`Welcome`] when newer than the agent's, and again whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct Policy {
    pub version: u64,
    /// The school's libraries and exception lists, on top of the built-in ones.
    pub libraries: Vec<LibraryFile>,
    /// Built-in categories the school has switched off.
    pub disabled_categories: Vec<String>,
    /// Hits below this severity are not captured.
    pub min_severity: u8,
    /// The same term in the same window within this many seconds is one capture.
    pub debounce_seconds: u32,
    pub screenshots: bool,
    pub screenshot_max_width: u32,
    pub sources: SourceSwitches,
    pub aup: Vec<AupText>,
    pub heartbeat_seconds: u32,
    /// Accounts shown the staff AUP rather than the pupils' one (from the
    /// console's register of users). Older stored policies have none.
    #[serde(default)]
    pub staff_accounts: Vec<String>,
    /// Sites whose pages are never read (the school's own MIS, say): a
    /// domain covers its subdomains. Their addresses and titles are still
    /// seen as before.
    #[serde(default)]
    pub page_reading_excluded: Vec<String>,
    /// Whether the semantic layer judges what the terms and rules leave
    /// below the capture threshold (protocol 7; older consoles and stored
    /// policies mean on).
    #[serde(default = "on")]
    pub semantic: bool,
}

impl Policy {
    /// The AUP text for `audience`, if the school has one.
    pub fn aup_for(&self, audience: Audience) -> Option<&AupText> {
        self.aup.iter().find(|a| a.audience == audience)
    }

    /// Whether pages at `host` are left unread under this policy.
    pub fn page_reading_excluded(&self, host: &str) -> bool {
        site_listed(&self.page_reading_excluded, host)
    }

    /// Which AUP an account is shown.
    pub fn audience_of(&self, user: &str) -> Audience {
        if self.staff_accounts.iter().any(|s| s == user) {
            Audience::Staff
        } else {
            Audience::Pupils
        }
    }

    /// What an agent does before the console has sent it anything (version
    /// 0), and what a new console starts from: the built-in libraries only,
    /// severity 3 and above, one capture per term and window a minute,
    /// screenshots at most 1920 px wide, every source on, no AUP text.
    pub fn baseline() -> Policy {
        Policy {
            version: 0,
            libraries: Vec::new(),
            disabled_categories: Vec::new(),
            min_severity: 3,
            debounce_seconds: 60,
            screenshots: true,
            screenshot_max_width: 1920,
            sources: SourceSwitches {
                typed: true,
                window_title: true,
                browser: true,
                clipboard: true,
                site_visits: true,
                screen_text: true,
            },
            aup: Vec::new(),
            heartbeat_seconds: 60,
            staff_accounts: Vec::new(),
            page_reading_excluded: Vec::new(),
            semantic: true,
        }
    }
}

/// Whether `host` is one of the sites in `list` (a domain covers its
/// subdomains; `*.` and a final dot are ignored).
pub fn site_listed(list: &[String], host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    list.iter().any(|d| {
        let d = d.trim().trim_start_matches("*.").trim_end_matches('.');
        !d.is_empty()
            && (host.eq_ignore_ascii_case(d)
                || host
                    .strip_suffix(&d.to_ascii_lowercase())
                    .is_some_and(|rest| rest.ends_with('.')))
    })
}

/// Everything the console sends on a device connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum ConsoleMessage {
    Welcome(Welcome),
    Refuse(Refusal),
    /// These records are durably stored; the agent may delete them.
    Ack(#[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuids()"))] Vec<RecordId>),
    /// The policy, in the shape of protocols 3 to 6
    /// ([`crate::policy_v6`]): sent to agents of those versions.
    Policy(
        #[serde(with = "crate::policy_v6")]
        #[cfg_attr(test, proptest(strategy = "crate::roundtrip_tests::policy_v6()"))]
        Policy,
    ),
    /// This device's certificate has been revoked; the agent stops sending.
    Revoke {
        reason: String,
    },
    /// These records will never be accepted; the agent drops them.
    Reject(Vec<Rejected>),
    /// The policy's layers for groups, and the groups of every account
    /// and of this laptop, as protocol 5 sends them (no term time): sent
    /// to agents of protocol 5 after the policy, and again whenever they
    /// change.
    Layers(
        #[cfg_attr(test, proptest(strategy = "crate::roundtrip_tests::group_layers_v5()"))]
        crate::layers::wire5::GroupLayers,
    ),
    /// The same with the school's terms and term-time hours (protocol 6),
    /// to agents of protocol 6 or later.
    LayersV6(
        #[cfg_attr(test, proptest(strategy = "crate::roundtrip_tests::group_layers()"))]
        crate::layers::GroupLayers,
    ),
    /// The whole policy (protocol 7: with the semantic layer's switch), to
    /// agents of protocol 7 or later in place of `Policy`.
    PolicyV7(Policy),
}

impl ConsoleMessage {
    /// Number of variants; see [`AgentMessage::KINDS`].
    pub const KINDS: u32 = 9;

    /// The policy in the message a peer of `protocol` reads.
    pub fn policy_for(protocol: u16, policy: Policy) -> ConsoleMessage {
        if protocol >= crate::handshake::SEMANTIC_SINCE {
            ConsoleMessage::PolicyV7(policy)
        } else {
            ConsoleMessage::Policy(policy)
        }
    }

    /// A short name for logs and errors.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ConsoleMessage::Layers(_) => "Layers",
            ConsoleMessage::LayersV6(_) => "LayersV6",
            ConsoleMessage::Welcome(_) => "Welcome",
            ConsoleMessage::Refuse(_) => "Refuse",
            ConsoleMessage::Ack(_) => "Ack",
            ConsoleMessage::Policy(_) => "Policy",
            ConsoleMessage::PolicyV7(_) => "PolicyV7",
            ConsoleMessage::Revoke { .. } => "Revoke",
            ConsoleMessage::Reject(_) => "Reject",
        }
    }
}

/// The opening of an enrollment connection (server-authenticated TLS only,
/// the agent pinning the CA fingerprint from its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct EnrollRequest {
    pub protocol_version: u16,
    /// The secret part of the one-time enrollment token.
    pub token_secret: String,
    /// A PKCS #10 certificate signing request for the device key, PEM.
    pub csr_pem: String,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
}

/// The console's answer to an [`EnrollRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub enum EnrollResponse {
    Enrolled {
        #[cfg_attr(test, proptest(strategy = "crate::arbitrary::uuid()"))]
        device_id: Uuid,
        /// The device certificate, signed by the console CA, PEM.
        certificate_pem: String,
        /// The console CA, PEM (its fingerprint matches the token's).
        ca_pem: String,
    },
    Refused {
        reason: String,
    },
}

impl EnrollResponse {
    /// Number of variants; see [`AgentMessage::KINDS`].
    pub const KINDS: u32 = 2;
}

/// A message type that can travel in a frame: it knows how many variants
/// its top-level enum has, so an unknown one is told apart from garbage.
pub trait WireMessage: Serialize + serde::de::DeserializeOwned {
    /// Used in errors: which direction of which conversation this is.
    const NAME: &'static str;
    /// Number of top-level variants. Structs (one "kind") say `None`.
    const KINDS: Option<u32>;
}

impl WireMessage for AgentMessage {
    const NAME: &'static str = "agent message";
    const KINDS: Option<u32> = Some(AgentMessage::KINDS);
}

impl WireMessage for ConsoleMessage {
    const NAME: &'static str = "console message";
    const KINDS: Option<u32> = Some(ConsoleMessage::KINDS);
}

impl WireMessage for EnrollRequest {
    const NAME: &'static str = "enrollment request";
    const KINDS: Option<u32> = None;
}

impl WireMessage for EnrollResponse {
    const NAME: &'static str = "enrollment response";
    const KINDS: Option<u32> = Some(EnrollResponse::KINDS);
}

/// Images as one byte string: serde's default for `Vec<u8>` is a sequence,
/// which postcard decodes one element at a time through a visitor call per
/// byte. Same bytes on the wire, one copy to decode.
mod serde_bytes_vec {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

#[cfg(test)]
mod unix_millis_tests {
    use super::UnixMillis;

    #[test]
    fn units_and_arithmetic_are_named_once() {
        assert_eq!(UnixMillis::DAY, 86_400_000);
        assert_eq!(
            UnixMillis(UnixMillis::DAY * 3).days_before(2),
            UnixMillis(UnixMillis::DAY)
        );
        assert_eq!(
            UnixMillis(i64::MIN + 1).days_before(1),
            UnixMillis(i64::MIN)
        );
        assert_eq!(UnixMillis(5).plus(-10), UnixMillis(-5));
        assert_eq!(UnixMillis(UnixMillis::HOUR * 2 + 1).hour_number(), 2);
        assert_eq!(UnixMillis(-1).hour_number(), -1, "before 1970 rounds down");
    }
}
