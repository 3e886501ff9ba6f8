//! Everything the console keeps, behind narrow traits, on SQLite (one
//! school, embedded) or PostgreSQL (a trust's instances sharing one
//! database).
//!
//! The traits are synchronous: a call may block on disk or the network, so
//! async callers run them on a blocking thread
//! ([`tokio::task::spawn_blocking`]) and the ingest writer runs on a thread
//! of its own. [`Store`] is all of them together; [`sql_store::SqlStore`]
//! implements them once for both databases, through the SQL layer
//! [`sql`] (one dialect, a backend of SQLite connections or a
//! [`postgres::Postgres`] pool).
//!
//! Layout: the traits of the core records (captures, devices, activity,
//! audit, staff, policy, ingest) are here, and a domain's own trait sits in
//! its module with its types ([`visits`], [`register`], [`tokens`],
//! [`suggestions`], [`retention`], [`jobs`], [`live`]); each trait's
//! implementation is in `sql_<name>.rs` beside it, the store and its
//! connections in [`sql_store`], the schemas in [`migrations`].
//!
//! Invariants every implementation keeps:
//! - a record is stored at most once, by the agent's id: storing a batch
//!   that holds an id already stored leaves the first copy and reports a
//!   duplicate;
//! - an image is durable before the row that names it commits, and a row
//!   is durable when [`IngestStore::store_batch`] returns;
//! - the audit log is append-only.

pub mod alerts;
pub mod audit_action;
pub mod groups;
pub use audit_action::AuditAction;
pub use tokens::TokenRefusal;
pub mod images;
pub mod jobs;
pub mod live;
pub mod migrations;
pub mod pg_connector;
pub mod postgres;
pub mod register;
pub mod retention;
pub mod schools;
pub mod scope;
pub mod sql;
mod sql_activity;
mod sql_alerts;
mod sql_audit;
mod sql_captures;
mod sql_devices;
mod sql_groups;
mod sql_ingest;
mod sql_policy;
mod sql_register;
mod sql_retention;
mod sql_schools;
mod sql_scope;
mod sql_staff;
pub mod sql_store;
mod sql_suggestions;
mod sql_tokens;
mod sql_visits;
pub mod suggestions;
#[cfg(test)]
pub(crate) mod testing;
pub mod tokens;
pub mod visits;
pub mod week_totals;

use std::collections::HashSet;

use protocol::{AgentMessage, Policy, UnixMillis};
use serde::Serialize;
use uuid::Uuid;

/// A failure of the storage layer. The message says what failed and, where
/// it helps, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database error while {during}: {source}")]
    Database {
        during: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// A database error through [`sql::Db`] (either database).
    #[error("database error while {during}: {source}")]
    Sql {
        during: &'static str,
        #[source]
        source: sql::SqlError,
    },
    /// The database cannot be reached; the message says where and what to check.
    #[error("{0}")]
    Unavailable(String),
    #[error("image store error while {during}: {source}")]
    Image {
        during: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the database was written by a newer console (schema {found}, this one knows up to {known}); run the newer console-server"
    )]
    SchemaTooNew { found: i64, known: i64 },
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    /// What staff read when a change could not be saved for a full disk.
    pub fn disk_full_message(&self) -> String {
        format!(
            "the console's disk is full, so this could not be saved ({self}). Free space on the volume holding the console's data directory; nothing already stored is lost"
        )
    }

    /// True when the failure is a full disk (or an exhausted quota): staff
    /// must free space; nothing is wrong with the data.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Database { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
            }
            StoreError::Sql { source, .. } => source.is_disk_full(),
            StoreError::Image { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            ),
            _ => false,
        }
    }
}

/// Who may do what in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Staff accounts, devices, libraries, policy, AUP, retention.
    Admin,
    /// Sees and triages captures.
    Reviewer,
    /// Audit log and reports; never screenshots or captured text.
    Auditor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Reviewer => "reviewer",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "reviewer" => Some(Role::Reviewer),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }

    /// Whether this role may see captured text and screenshots.
    pub fn sees_captures(self) -> bool {
        matches!(self, Role::Admin | Role::Reviewer)
    }
}

/// Where a capture stands in triage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    New,
    Violation,
    FalsePositive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Violation => "violation",
            Status::FalsePositive => "false_positive",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "new" => Some(Status::New),
            "violation" => Some(Status::Violation),
            "false_positive" => Some(Status::FalsePositive),
            _ => None,
        }
    }
}

/// A value stored as text that no version of the console wrote: an error
/// naming it, never a default (a role nobody gave must not become one).
#[derive(Debug, thiserror::Error)]
#[error("{what} {found:?} is not one the console writes ({expected})")]
pub struct UnknownStoredValue {
    pub what: &'static str,
    pub found: String,
    pub expected: &'static str,
}

/// `ToSql`/`FromSql` for an enum kept as its `as_str` text.
macro_rules! stored_as_text {
    ($ty:ty, $what:literal, $expected:literal) => {
        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(
                value: rusqlite::types::ValueRef<'_>,
            ) -> rusqlite::types::FromSqlResult<Self> {
                let text = value.as_str()?;
                <$ty>::parse(text).ok_or_else(|| {
                    rusqlite::types::FromSqlError::Other(Box::new(UnknownStoredValue {
                        what: $what,
                        found: text.to_owned(),
                        expected: $expected,
                    }))
                })
            }
        }
    };
}

stored_as_text!(
    Status,
    "the triage status",
    "new, violation, false_positive"
);
stored_as_text!(Role, "the role", "admin, reviewer, auditor");

/// One record from an agent, checked and ready to store.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The device the record came from (its certificate's id).
    pub device: Uuid,
    pub received: UnixMillis,
    /// Never a Hello.
    pub message: AgentMessage,
}

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new row.
    New,
    /// The id was already stored; nothing changed.
    Duplicate,
    /// Not a record (a heartbeat): its effect is applied, nothing to ack.
    Applied,
}

/// Takes in what agents send.
pub trait IngestStore {
    /// Stores a batch durably, in one transaction: images first (written
    /// and synced), then the rows, then the commit. Returns one outcome per
    /// input, in order.
    ///
    /// # Errors
    /// Any storage failure; then nothing of the batch may be acked.
    fn store_batch(&self, batch: &[Incoming]) -> Result<Vec<Stored>, StoreError>;
}

/// Filters for the capture list.
#[derive(Debug, Clone, Default)]
pub struct CaptureQuery {
    pub status: Option<Status>,
    pub device: Option<Uuid>,
    pub category: Option<String>,
    pub min_severity: Option<u8>,
    /// Exactly this severity.
    pub severity: Option<u8>,
    /// The account name on the laptop, exactly.
    pub user: Option<String>,
    /// Captured at or after.
    pub from: Option<UnixMillis>,
    /// Captured before.
    pub to: Option<UnixMillis>,
    /// Appears (case-insensitively) in the context, the window title, the
    /// term or the address.
    pub text: Option<String>,
    /// One of these sources (`typed`, `screen_text`, …); empty for any.
    pub sources: Vec<String>,
    /// Only captures strictly older than this id (UUID v7 sorts by time):
    /// the cursor for the next page.
    pub before: Option<Uuid>,
    /// Only captures strictly newer than this id, oldest first: the cursor
    /// for the previous page.
    pub after: Option<Uuid>,
    pub limit: u32,
    /// Only those of the reviewer's groups.
    pub scope: scope::Scope,
}

/// The sources what was on screen comes from: a page or an application's
/// text, a window's title.
pub const VIEWED_SOURCES: [&str; 3] = ["screen_text", "feed", "window_title"];

/// The sources a `source` filter names: one source (`typed`,
/// `screen_text`, …), or `viewed` for everything that was on screen.
///
/// # Errors
/// Neither a source nor `viewed`; the message lists them.
pub fn source_filter(value: &str) -> Result<Vec<String>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(Vec::new());
    }
    if value == "viewed" {
        return Ok(VIEWED_SOURCES.iter().map(|s| (*s).to_owned()).collect());
    }
    match protocol::Source::parse(value) {
        Some(s) => Ok(vec![s.as_str().to_owned()]),
        None => Err(format!(
            "source {value:?} is not one of viewed, {}",
            protocol::Source::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// A capture as listed.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureSummary {
    pub id: Uuid,
    pub device: Uuid,
    pub hostname: String,
    pub user: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub source: String,
    pub app: String,
    pub window_title: String,
    pub url: Option<String>,
    pub term: String,
    pub category: String,
    pub severity: u8,
    pub context: String,
    /// Byte range of the match inside `context`.
    pub context_match: [u32; 2],
    pub has_image: bool,
    /// Why there is no screenshot, when there is none.
    pub image_missing: Option<String>,
    pub status: Status,
}

/// One triage decision on a capture.
#[derive(Debug, Clone, Serialize)]
pub struct TriageEntry {
    pub time: String,
    pub actor: String,
    pub status: Status,
    pub note: String,
    pub action: Option<String>,
}

/// A capture with its triage history.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureDetail {
    #[serde(flatten)]
    pub summary: CaptureSummary,
    pub received: String,
    pub history: Vec<TriageEntry>,
}

/// A triage decision to record.
#[derive(Debug, Clone)]
pub struct Triage {
    pub status: Status,
    pub note: String,
    pub action: Option<String>,
    pub actor: String,
    pub time: UnixMillis,
}

/// Captures made in one hour that share category, severity, status and
/// device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureBucket {
    /// The hour's start (UTC milliseconds).
    pub hour: UnixMillis,
    pub category: String,
    pub severity: u8,
    pub status: Status,
    pub hostname: String,
    pub count: u64,
}

/// How long records are kept, in days; `None` keeps them until an admin
/// deletes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default)]
pub struct Retention {
    pub false_positive_days: Option<u32>,
    pub unreviewed_days: Option<u32>,
    pub violation_days: Option<u32>,
    /// Site visits (the rows behind the weekly report).
    pub visit_days: Option<u32>,
    /// Tamper events (and the console's silent-laptop gaps).
    pub tamper_days: Option<u32>,
    /// Pupils' and staff's answers to the AUP.
    pub aup_decision_days: Option<u32>,
    /// The console's own events (offline, online, revoked).
    pub event_days: Option<u32>,
    /// Register entries of accounts seen on a laptop but not imported from
    /// the MIS, once not seen for this long (with the laptops they used).
    pub account_days: Option<u32>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            false_positive_days: Some(30),
            unreviewed_days: Some(90),
            violation_days: None,
            visit_days: Some(400),
            tamper_days: Some(400),
            aup_decision_days: Some(400),
            event_days: Some(90),
            account_days: Some(400),
        }
    }
}

/// A capture removed by retention or by an admin.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub id: Uuid,
    pub status: Status,
    pub time: UnixMillis,
}

/// Captures and their screenshots.
pub trait CaptureStore {
    /// Newest first.
    ///
    /// # Errors
    /// A storage failure.
    fn captures(&self, query: &CaptureQuery) -> Result<Vec<CaptureSummary>, StoreError>;
    /// # Errors
    /// A storage failure.
    fn capture(&self, id: Uuid) -> Result<Option<CaptureDetail>, StoreError>;
    /// The PNG, if the capture exists and has one.
    ///
    /// # Errors
    /// A storage failure.
    fn capture_image(&self, id: Uuid) -> Result<Option<Vec<u8>>, StoreError>;
    /// Records a decision; `false` if there is no such capture.
    ///
    /// # Errors
    /// A storage failure.
    fn triage(&self, id: Uuid, triage: &Triage) -> Result<bool, StoreError> {
        Ok(self.triage_many(&[id], triage)? == 1)
    }
    /// Records one decision on each capture, in one transaction; returns
    /// how many captures existed.
    ///
    /// # Errors
    /// A storage failure; then no decision is recorded.
    fn triage_many(&self, ids: &[Uuid], triage: &Triage) -> Result<usize, StoreError>;
    /// Capture counts by hour, category, severity, status and device
    /// for captures made in `[from, to)`: the raw material of the trends.
    ///
    /// # Errors
    /// A storage failure.
    fn capture_buckets(
        &self,
        from: UnixMillis,
        to: UnixMillis,
        scope: &scope::Scope,
    ) -> Result<Vec<CaptureBucket>, StoreError>;
    /// Counts per status, of the captures in `scope`.
    ///
    /// # Errors
    /// A storage failure.
    fn capture_counts(&self, scope: &scope::Scope) -> Result<Vec<(Status, u64)>, StoreError>;
    /// Deletes the captures (and their images) that `retention` says have
    /// expired at `now`, and writes one audit event for each. Returns them.
    ///
    /// # Errors
    /// A storage failure; what was deleted before it stays deleted and
    /// audited.
    fn expire(&self, retention: &Retention, now: UnixMillis) -> Result<Vec<Deleted>, StoreError>;
    /// Deletes one capture and its image, with an audit event by `actor`.
    ///
    /// # Errors
    /// A storage failure.
    fn delete_capture(&self, id: Uuid, actor: &str, origin: &str) -> Result<bool, StoreError>;
}

/// A laptop as the console knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub id: Uuid,
    pub hostname: String,
    pub os: String,
    pub agent_version: String,
    pub user: Option<String>,
    pub enrolled: Option<String>,
    pub last_seen: Option<String>,
    pub online: bool,
    pub revoked: Option<String>,
    /// The latest heartbeat's figures, as JSON.
    pub heartbeat: Option<serde_json::Value>,
    /// What monitors its sessions, as the agent last said (JSON: time,
    /// supervising, sessions, page_readers, refused).
    pub health: Option<serde_json::Value>,
    /// Tamper events of this device nobody has acknowledged.
    pub open_tamper_events: u64,
    /// When it was last heard, if it has gone silent while a user was
    /// logged in and has not been heard since.
    pub silent_since: Option<String>,
    /// The school of the trust it was enrolled for; none on a console of
    /// one school.
    pub school: Option<String>,
}

/// A console event worth an alert (a device gone quiet, back again, …).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub id: i64,
    pub time: String,
    pub kind: String,
    pub device: Option<Uuid>,
    pub detail: String,
}

/// Laptops, their liveness and their revocation.
pub trait DeviceStore {
    /// Records a newly enrolled device.
    ///
    /// # Errors
    /// A storage failure.
    fn add_device(
        &self,
        id: Uuid,
        hostname: &str,
        os: &str,
        agent_version: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// A device opened a connection (created if it was minted without
    /// enrollment, as the load simulator's are).
    ///
    /// # Errors
    /// A storage failure.
    fn device_connected(
        &self,
        id: Uuid,
        agent_version: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// Every device, by hostname; `online` means heard from since
    /// `online_since`.
    ///
    /// # Errors
    /// A storage failure.
    fn devices(&self, online_since: UnixMillis) -> Result<Vec<Device>, StoreError>;
    /// Marks devices silent since before `cutoff` offline, with an event
    /// each; marks devices seen since `cutoff` online again, with an event
    /// each. Returns the events written.
    ///
    /// # Errors
    /// A storage failure.
    fn update_presence(
        &self,
        cutoff: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Event>, StoreError>;
    /// Finds laptops gone silent while they should be on, and marks their
    /// return.
    ///
    /// A device is silent when it was monitoring a logged-in session (its
    /// latest health lists one; for an agent too old to send health, its
    /// latest heartbeat names a user), was last heard before `cutoff` and
    /// not before `heard_since` (devices silent since before the console
    /// started are not judged), and has no open gap. Each gets a
    /// `DeviceSilent` tamper event dated when it was last heard. A device
    /// heard again after its gap began has the gap closed and its length
    /// written into that event. Returns the ids of the events opened.
    ///
    /// # Errors
    /// A storage failure.
    fn update_silence(
        &self,
        cutoff: UnixMillis,
        heard_since: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Uuid>, StoreError>;
    /// Revokes a device: its certificate is refused from now on.
    /// `false` if there is no such device.
    ///
    /// # Errors
    /// A storage failure.
    fn revoke_device(&self, id: Uuid, reason: &str, now: UnixMillis) -> Result<bool, StoreError>;
    /// The ids of every revoked device.
    ///
    /// # Errors
    /// A storage failure.
    fn revoked_devices(&self) -> Result<HashSet<String>, StoreError>;
    /// Console events, newest first.
    ///
    /// # Errors
    /// A storage failure.
    fn events(&self, limit: u32) -> Result<Vec<Event>, StoreError>;
}

/// An AUP answer as listed.
#[derive(Debug, Clone, Serialize)]
pub struct AupDecisionRow {
    pub user: String,
    pub device: Uuid,
    pub hostname: String,
    pub audience: String,
    pub version: u32,
    pub decision: String,
    pub time: String,
}

/// A tamper event as listed: something a laptop reported (or the console
/// found) that suggests monitoring was stopped, blinded or interfered with.
#[derive(Debug, Clone, Serialize)]
pub struct TamperRow {
    pub id: Uuid,
    pub time: String,
    pub device: Uuid,
    pub hostname: String,
    pub user: Option<String>,
    /// The agent's kind (`AgentKilled`, `SpoolOverflow`, …).
    pub kind: String,
    pub detail: String,
    /// Who acknowledged it, when and with what note; `None` while open.
    pub acknowledged_by: Option<String>,
    pub acknowledged_time: Option<String>,
    pub acknowledged_note: Option<String>,
}

/// Which tamper events to list.
#[derive(Debug, Clone, Default)]
pub struct TamperQuery {
    /// Only those nobody has acknowledged.
    pub open_only: bool,
    pub device: Option<Uuid>,
    pub limit: u32,
    /// Only those of the reviewer's groups.
    pub scope: scope::Scope,
}

/// AUP answers, pupils' concerns and tamper events.
pub trait ActivityStore {
    /// Newest first.
    ///
    /// # Errors
    /// A storage failure.
    fn aup_decisions(
        &self,
        limit: u32,
        scope: &scope::Scope,
    ) -> Result<Vec<AupDecisionRow>, StoreError>;

    /// Tamper events, newest first.
    ///
    /// # Errors
    /// A storage failure.
    fn tamper_events(&self, q: &TamperQuery) -> Result<Vec<TamperRow>, StoreError>;

    /// One tamper event.
    ///
    /// # Errors
    /// A storage failure.
    fn tamper_event(&self, id: Uuid) -> Result<Option<TamperRow>, StoreError>;

    /// Marks a tamper event as dealt with by `staff`; `false` if there is no
    /// such event or it was already acknowledged (the first word stands).
    ///
    /// # Errors
    /// A storage failure.
    fn acknowledge_tamper(
        &self,
        id: Uuid,
        staff: &str,
        note: &str,
        time: UnixMillis,
    ) -> Result<bool, StoreError>;
}

/// One line of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent {
    /// Its place in the log (ascending); the cursor for the next page.
    pub seq: i64,
    pub time: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
    /// Where the request came from (an address, `cli`, `system`).
    pub origin: String,
}

/// What to write to the audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub time: UnixMillis,
    pub actor: &'a str,
    pub action: AuditAction,
    pub target: &'a str,
    pub detail: &'a str,
    pub origin: &'a str,
}

/// Filters for the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor: Option<String>,
    pub action: Option<AuditAction>,
    /// Appears in the target or the detail.
    pub text: Option<String>,
    pub from: Option<UnixMillis>,
    pub to: Option<UnixMillis>,
    /// Only events before this sequence number.
    pub before: Option<i64>,
    /// Only the lines about this school (for a school's own staff).
    pub school: Option<String>,
    pub limit: u32,
}

/// The append-only record of who did what.
pub trait AuditStore {
    /// # Errors
    /// A storage failure: the caller must then not do what it was auditing.
    fn audit(&self, entry: &AuditEntry<'_>) -> Result<(), StoreError>;
    /// Writes one event stamped now.
    ///
    /// # Errors
    /// As [`AuditStore::audit`].
    fn audit_now(
        &self,
        actor: &str,
        action: AuditAction,
        target: &str,
        detail: &str,
        origin: &str,
    ) -> Result<(), StoreError> {
        self.audit(&AuditEntry {
            time: UnixMillis::now(),
            actor,
            action,
            target,
            detail,
            origin,
        })
    }
    /// Newest first.
    ///
    /// # Errors
    /// A storage failure.
    fn audit_events(&self, limit: u32) -> Result<Vec<AuditEvent>, StoreError> {
        self.audit_query(&AuditQuery {
            limit,
            ..AuditQuery::default()
        })
    }
    /// Newest first, filtered.
    ///
    /// # Errors
    /// A storage failure.
    fn audit_query(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Staff accounts (their tokens: [`tokens::TokenStore`]).
pub trait UserStore {
    /// # Errors
    /// A storage failure, or [`StoreError::Refused`] if the name is taken.
    /// Adds a staff account, of `school` (which must exist) or of the
    /// trust (`None`).
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a name taken or a school there is not;
    /// a storage failure.
    fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        school: Option<&str>,
        now: UnixMillis,
    ) -> Result<(), StoreError>;
}

/// A staff account of the web console.
#[derive(Debug, Clone)]
pub struct StaffAccount {
    pub name: String,
    pub role: Role,
    pub created: UnixMillis,
    pub disabled: bool,
    /// Argon2id, PHC string.
    pub password_hash: String,
    /// The school whose staff they are; none for the trust's staff (and
    /// on a console of one school).
    pub school: Option<String>,
}

/// A signed-in browser. The cookie holds a secret whose SHA-256 is `id_hash`.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub id_hash: String,
    pub user: String,
    /// The account's role now (not at login), so a changed role applies at once.
    pub role: Role,
    /// Sent back in every form; compared on every state-changing request.
    pub csrf: String,
    pub created: UnixMillis,
    pub last_seen: UnixMillis,
    /// The address the session was opened from.
    pub origin: String,
    /// The browser's `User-Agent`, truncated.
    pub agent: String,
}

/// Staff accounts and their browser sessions.
pub trait StaffStore {
    /// # Errors
    /// A storage failure.
    fn staff_account(&self, name: &str) -> Result<Option<StaffAccount>, StoreError>;
    /// By name.
    ///
    /// # Errors
    /// A storage failure.
    fn staff_accounts(&self) -> Result<Vec<StaffAccount>, StoreError>;
    /// `false` if there is no such account.
    ///
    /// # Errors
    /// A storage failure.
    fn set_staff_role(&self, name: &str, role: Role) -> Result<bool, StoreError>;
    /// Disabling an account also ends its sessions. `false` if there is no
    /// such account.
    ///
    /// # Errors
    /// A storage failure.
    fn set_staff_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;
    /// `false` if there is no such account.
    ///
    /// # Errors
    /// A storage failure.
    fn set_staff_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError>;
    /// # Errors
    /// A storage failure.
    fn open_session(&self, session: &WebSession) -> Result<(), StoreError>;
    /// The session, if it exists and its account is enabled.
    ///
    /// # Errors
    /// A storage failure.
    fn session(&self, id_hash: &str) -> Result<Option<WebSession>, StoreError>;
    /// # Errors
    /// A storage failure.
    fn touch_session(&self, id_hash: &str, now: UnixMillis) -> Result<(), StoreError>;
    /// `false` if there was no such session.
    ///
    /// # Errors
    /// A storage failure.
    fn end_session(&self, id_hash: &str) -> Result<bool, StoreError>;
    /// Oldest first.
    ///
    /// # Errors
    /// A storage failure.
    fn sessions_of(&self, user: &str) -> Result<Vec<WebSession>, StoreError>;
    /// Deletes sessions idle since before `idle_before` or opened before
    /// `opened_before`; returns how many.
    ///
    /// # Errors
    /// A storage failure.
    fn purge_sessions(
        &self,
        idle_before: UnixMillis,
        opened_before: UnixMillis,
    ) -> Result<usize, StoreError>;
}

/// The policy agents run, versioned.
pub trait PolicyStore {
    /// The current policy (version 1 is written at first run).
    ///
    /// # Errors
    /// A storage failure.
    fn policy(&self) -> Result<Policy, StoreError>;
    /// Stores `policy` as the next version and returns it with that version.
    ///
    /// # Errors
    /// A storage failure.
    fn set_policy(&self, policy: Policy, now: UnixMillis) -> Result<Policy, StoreError>;
    /// Stores `policy` as the next version, provided the newest stored is
    /// still `based_on` (else `Ok(None)`: another change got there first).
    /// In the same transaction it writes `audit` and notes every AUP text
    /// of the policy in the AUP's history, as published by `aup_by`.
    ///
    /// # Errors
    /// A storage failure (nothing is saved).
    fn publish_policy(
        &self,
        based_on: u64,
        policy: Policy,
        audit: &AuditEntry<'_>,
        aup_by: &str,
    ) -> Result<Option<Policy>, StoreError>;
}

/// All of the console's storage.
pub trait Store:
    IngestStore
    + CaptureStore
    + DeviceStore
    + ActivityStore
    + AuditStore
    + UserStore
    + PolicyStore
    + StaffStore
    + visits::VisitStore
    + register::RegisterStore
    + suggestions::SuggestionStore
    + tokens::TokenStore
    + retention::RecordRetention
    + alerts::AlertStore
    + groups::GroupStore
    + scope::ScopeStore
    + schools::SchoolStore
    + live::LiveStore
    + jobs::JobStore
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: IngestStore
        + CaptureStore
        + DeviceStore
        + ActivityStore
        + AuditStore
        + UserStore
        + PolicyStore
        + StaffStore
        + visits::VisitStore
        + register::RegisterStore
        + suggestions::SuggestionStore
        + tokens::TokenStore
        + retention::RecordRetention
        + alerts::AlertStore
        + groups::GroupStore
        + scope::ScopeStore
        + schools::SchoolStore
        + live::LiveStore
        + jobs::JobStore
        + Send
        + Sync
{
}

/// RFC 3339 in UTC, millisecond precision, for the API.
pub fn rfc3339(t: UnixMillis) -> String {
    match jiff::Timestamp::from_millisecond(t.0) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => format!("invalid time ({} ms)", t.0),
    }
}
