//! The JSON API (`/api/v1/…`, see docs/interfaces.md), on the web listener.
//!
//! Every request carries `Authorization: Bearer TOKEN` from
//! `console-server api-token`. Roles: admin and reviewer see captures;
//! an auditor gets capture lists with the captured text withheld and never
//! a screenshot. Every call that reads a capture or changes anything is
//! written to the audit log before the answer is sent; if the audit write
//! fails, the call fails.

use crate::storage_health::StorageHealth;
use crate::web::roles::{Admins, CaptureReaders, Overseers, Roles};
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use protocol::{Policy, UnixMillis};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::watch;
use uuid::Uuid;

use crate::https::Peer;
use crate::school_week::Week;
use crate::site_report::{self, WeeklyReport};
use crate::store::AuditAction;
use crate::store::scope::Scope;
use crate::store::tokens::ApiTokenCheck;
use crate::store::{CaptureQuery, Role, Status, Store, StoreError, Triage};

/// What the API handlers share.
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub policy: watch::Sender<Arc<Policy>>,
    /// A device not heard from for this long is listed as offline.
    pub offline_after_ms: i64,
    /// Whether storing works and how much room is left.
    pub health: Arc<StorageHealth>,
    /// The one way the policy changes (shared with the web console).
    pub editor: Arc<crate::policy_service::PolicyEditor>,
    /// When each token's last use was written down (at most once a minute
    /// each, so a busy script does not queue behind ingest).
    pub token_uses: TokenUses,
}

/// When each API token's use was last recorded, by token hash.
#[derive(Debug, Default)]
pub struct TokenUses(std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>);

impl TokenUses {
    /// Whether this use should be written down.
    fn due(&self, hash: &str) -> bool {
        let mut seen = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        match seen.get(hash) {
            Some(t) if now.duration_since(*t) < std::time::Duration::from_secs(60) => false,
            _ => {
                if seen.len() > 10_000 {
                    seen.clear();
                }
                seen.insert(hash.to_owned(), now);
                true
            }
        }
    }
}

type AppState = Arc<ApiState>;

/// The router for `/api/v1`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/captures", get(list_captures))
        .route(
            "/api/v1/captures/{id}",
            get(get_capture).delete(delete_capture),
        )
        .route("/api/v1/captures/{id}/image", get(get_image))
        .route("/api/v1/captures/{id}/triage", post(triage))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/devices/{id}/revoke", post(revoke))
        .route("/api/v1/events", get(events))
        .route("/api/v1/health", get(health))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/site-visits/weekly", get(weekly_visits))
        .route("/api/v1/aup/decisions", get(aup_decisions))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/tamper", get(tamper))
        .route("/api/v1/policy", get(get_policy).put(put_policy))
        .layer(axum::middleware::from_fn(crate::error::json_errors))
        .with_state(state)
}

/// An API failure: the console's one error, said as `{"error": "…"}` by
/// [`crate::error::json_errors`] on this router.
pub use crate::error::ConsoleError as ApiError;

/// Runs a storage call off the async threads.
async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| ApiError::Internal(format!("a storage task failed: {e}")))?
        .map_err(ApiError::from)
}

/// An authenticated caller whose role is one of `R`'s (see
/// [`crate::web::roles`]): checked when the request is read, before the
/// handler runs.
pub struct Calling<R>(Caller, PhantomData<R>);

pub type CaptureCaller = Calling<CaptureReaders>;
pub type OversightCaller = Calling<Overseers>;
pub type AdminCaller = Calling<Admins>;

impl<R> std::ops::Deref for Calling<R> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<R: Roles> FromRequestParts<AppState> for Calling<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(R::ROLES)?;
        Ok(Calling(caller, PhantomData))
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// The records the token's owner sees (see [`Scope`]).
    pub scope: Scope,
    pub origin: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let origin = parts
            .extensions
            .get::<ConnectInfo<Peer>>()
            .map(|c| c.0.0.to_string())
            .unwrap_or_else(|| "unknown".into());
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "missing `Authorization: Bearer TOKEN`; make a token with `console-server api-token`"
                        .into(),
                )
            })?;
        let hash = crate::secret::token_hash(token.trim());
        let checked = {
            let hash = hash.clone();
            blocking(state, move |s| s.check_api_token(&hash, UnixMillis::now())).await?
        };
        match checked {
            ApiTokenCheck::Valid {
                name,
                role,
                owner,
                school,
            } => {
                if state.token_uses.due(&hash) {
                    blocking(state, move |s| s.touch_api_token(&hash, UnixMillis::now())).await?;
                }
                // A reviewer's own token sees her groups; a token made for
                // a system (no owner) sees what its role does.
                let scope = match owner {
                    Some(owner) => {
                        blocking(state, move |s| {
                            crate::store::scope::scope_of(s, &owner, role)
                        })
                        .await?
                    }
                    None => Scope::all().in_school(school),
                };
                Ok(Caller {
                    name,
                    role,
                    scope,
                    origin,
                })
            }
            ApiTokenCheck::Refused(why) => Err(ApiError::Unauthorized(why)),
        }
    }
}

impl Caller {
    /// Refuses a school's own token what is the trust's to read or set
    /// (the policy of every school).
    ///
    /// # Errors
    /// [`ApiError::Forbidden`] saying whom to ask.
    pub fn require_trust(&self) -> Result<(), ApiError> {
        match self.scope.school() {
            None => Ok(()),
            Some(school) => Err(ApiError::Forbidden(format!(
                "this is set for every school of the trust; this token serves {school}, so ask one of the trust's admins"
            ))),
        }
    }

    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the {} role may not do this",
                self.role.as_str()
            )))
        }
    }

    async fn audit(
        &self,
        state: &AppState,
        action: AuditAction,
        target: String,
        detail: String,
    ) -> Result<(), ApiError> {
        let (actor, origin) = (self.name.clone(), self.origin.clone());
        blocking(state, move |s| {
            s.audit_now(&actor, action, &target, &detail, &origin)
        })
        .await
    }
}

/// A screenshot as sent to a browser or client: PNG, never cached.
pub fn png_response(png: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        png,
    )
        .into_response()
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::BadRequest(format!("{id:?} is not a capture id")))
}

#[derive(Debug, Deserialize)]
struct CapturesParams {
    status: Option<String>,
    limit: Option<u32>,
    before: Option<String>,
    device: Option<String>,
    category: Option<String>,
    min_severity: Option<u8>,
    user: Option<String>,
    q: Option<String>,
    source: Option<String>,
}

async fn list_captures(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<CapturesParams>,
) -> Result<Response, ApiError> {
    let sees_text = caller.role.sees_captures();
    let asked = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    if !sees_text && (asked(&p.q) || asked(&p.user)) {
        // A search over text the caller may not read would tell them what
        // it says, one yes or no at a time.
        return Err(ApiError::Forbidden(format!(
            "the {} role sees counts and decisions, never captured text: searching by text (q=) \
             or by pupil (user=) is for reviewers and admins",
            caller.role.as_str()
        )));
    }
    let status = match p.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status {s:?} is not one of new, violation, false_positive"
            ))
        })?),
    };
    let query = CaptureQuery {
        status,
        device: p.device.as_deref().map(parse_id).transpose()?,
        category: p.category,
        min_severity: p.min_severity,
        before: p.before.as_deref().map(parse_id).transpose()?,
        limit: p.limit.unwrap_or(100).clamp(1, 1000),
        user: p.user,
        text: p.q,
        sources: crate::store::source_filter(p.source.as_deref().unwrap_or_default())
            .map_err(ApiError::BadRequest)?,
        scope: caller.scope.clone(),
        ..CaptureQuery::default()
    };
    let detail = format!("{query:?}");
    let mut captures = blocking(&state, move |s| s.captures(&query)).await?;
    if !sees_text {
        for c in &mut captures {
            c.context.clear();
            c.context_match = [0, 0];
            c.window_title.clear();
            c.url = None;
            c.term.clear();
            c.app.clear();
        }
    }
    caller
        .audit(&state, AuditAction::ListCaptures, String::new(), detail)
        .await?;
    Ok(Json(json!({ "captures": captures, "text_withheld": !sees_text })).into_response())
}

async fn get_capture(
    State(state): State<AppState>,
    caller: CaptureCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    crate::web::capture_in_scope(&state.store, &caller.scope, id).await?;
    caller
        .audit(
            &state,
            AuditAction::ViewCapture,
            id.to_string(),
            String::new(),
        )
        .await?;
    match blocking(&state, move |s| s.capture(id)).await? {
        Some(c) => Ok(Json(c).into_response()),
        None => Err(ApiError::NotFound(format!("no capture {id}"))),
    }
}

async fn get_image(
    State(state): State<AppState>,
    caller: CaptureCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    crate::web::capture_in_scope(&state.store, &caller.scope, id).await?;
    caller
        .audit(
            &state,
            AuditAction::ViewScreenshot,
            id.to_string(),
            String::new(),
        )
        .await?;
    match blocking(&state, move |s| s.capture_image(id)).await? {
        Some(png) => Ok(png_response(png)),
        None => Err(ApiError::NotFound(format!(
            "capture {id} has no screenshot"
        ))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriageBody {
    status: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    action: Option<String>,
}

async fn triage(
    State(state): State<AppState>,
    caller: CaptureCaller,
    Path(id): Path<String>,
    body: Result<Json<TriageBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let Json(body) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = Status::parse(&body.status).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "status {:?} is not one of violation, false_positive, new (reopen)",
            body.status
        ))
    })?;
    if body.note.len() > 8192 {
        return Err(ApiError::BadRequest("the note is over 8192 bytes".into()));
    }
    crate::web::capture_in_scope(&state.store, &caller.scope, id).await?;
    let decision = Triage {
        status,
        note: body.note.clone(),
        action: body.action.clone(),
        actor: caller.name.clone(),
        time: UnixMillis::now(),
    };
    caller
        .audit(
            &state,
            AuditAction::Triage,
            id.to_string(),
            format!(
                "{}, {}",
                status.as_str(),
                crate::store::audit_action::note_summary(&body.note)
            ),
        )
        .await?;
    if blocking(&state, move |s| s.triage(id, &decision)).await? {
        let detail = blocking(&state, move |s| s.capture(id)).await?;
        Ok(Json(detail).into_response())
    } else {
        Err(ApiError::NotFound(format!("no capture {id}")))
    }
}

async fn delete_capture(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    crate::web::capture_in_scope(&state.store, &caller.scope, id).await?;
    let (actor, origin) = (caller.name.clone(), caller.origin.clone());
    // The store writes the audit event in the same transaction.
    if blocking(&state, move |s| s.delete_capture(id, &actor, &origin)).await? {
        Ok(Json(json!({ "deleted": id })).into_response())
    } else {
        Err(ApiError::NotFound(format!("no capture {id}")))
    }
}

async fn devices(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let since = UnixMillis(UnixMillis::now().0 - state.offline_after_ms);
    let scope = caller.scope.clone();
    let devices = blocking(&state, move |s| {
        crate::store::scope::devices_in_scope(s, since, &scope)
    })
    .await?;
    Ok(Json(json!({ "devices": devices })).into_response())
}

#[derive(Debug, Deserialize, Default)]
struct RevokeBody {
    #[serde(default)]
    reason: String,
}

async fn revoke(
    State(state): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
    body: Option<Json<RevokeBody>>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let scope = caller.scope.clone();
    if !blocking(&state, move |s| {
        crate::store::scope::device_in_scope(s, id, &scope)
    })
    .await?
    {
        return Err(ApiError::NotFound(format!("no device {id}")));
    }
    let reason = body.map(|b| b.0.reason).unwrap_or_default();
    let reason = if reason.is_empty() {
        format!("revoked by {}", caller.name)
    } else {
        reason
    };
    caller
        .audit(
            &state,
            AuditAction::RevokeDevice,
            id.to_string(),
            reason.clone(),
        )
        .await?;
    if blocking(&state, move |s| {
        s.revoke_device(id, &reason, UnixMillis::now())
    })
    .await?
    {
        Ok(Json(json!({ "revoked": id })).into_response())
    } else {
        Err(ApiError::NotFound(format!("no device {id}")))
    }
}

#[derive(Debug, Deserialize)]
struct LimitParams {
    limit: Option<u32>,
}

/// Whether the console can store what laptops send, and its free space;
/// any role may ask (it says nothing about pupils).
async fn health(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let report = state.health.report();
    let scope = caller.scope.clone();
    let failing = blocking(&state, move |s| {
        Ok(failing_alerts(crate::store::scope::alerts_in_scope(
            s, 500, &scope,
        )?))
    })
    .await?;
    let undelivered = (!failing.is_empty()).then(|| {
        format!(
            "{} alert{} not delivered (see alerts.failing)",
            failing.len(),
            if failing.len() == 1 { "" } else { "s" }
        )
    });
    let message = match (report.message(), undelivered) {
        (Some(m), Some(u)) => Some(format!("{m}; {u}")),
        (m, u) => m.or(u),
    };
    Ok(Json(json!({
        "ok": report.ok() && failing.is_empty(),
        "message": message,
        "storage": report,
        "alerts": { "failing": failing },
    }))
    .into_response())
}

/// Alerts given up, or refused at least once and still waiting: a channel
/// that keeps failing.
fn failing_alerts(latest: Vec<crate::store::alerts::Alert>) -> Vec<crate::store::alerts::Alert> {
    use crate::store::alerts::AlertStatus;
    latest
        .into_iter()
        .filter(|a| {
            a.status == AlertStatus::Failed || (a.status == AlertStatus::Pending && a.attempts > 0)
        })
        .collect()
}

async fn alerts(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<LimitParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(200).clamp(1, 10_000);
    let scope = caller.scope.clone();
    let alerts = blocking(&state, move |s| {
        crate::store::scope::alerts_in_scope(s, limit, &scope)
    })
    .await?;
    Ok(Json(json!({ "alerts": alerts })).into_response())
}

async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<LimitParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(200).clamp(1, 10_000);
    let scope = caller.scope.clone();
    let events = blocking(&state, move |s| {
        let mut events = s.events(limit)?;
        if scope.school().is_some() {
            // A school's staff hear of their school's laptops only.
            let mine: std::collections::HashSet<Uuid> =
                crate::store::scope::devices_in_scope(s, UnixMillis(0), &scope)?
                    .into_iter()
                    .map(|d| d.id)
                    .collect();
            events.retain(|e| e.device.is_some_and(|d| mine.contains(&d)));
        }
        Ok(events)
    })
    .await?;
    Ok(Json(json!({ "events": events })).into_response())
}

#[derive(Debug, Deserialize)]
struct WeekParams {
    week: String,
    format: Option<String>,
    /// One school of a trust.
    school: Option<String>,
}

async fn weekly_visits(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<WeekParams>,
) -> Result<Response, ApiError> {
    let week = Week::parse(&p.week).map_err(ApiError::BadRequest)?;
    let asked = p.school.clone().filter(|s| !s.trim().is_empty());
    let scope = caller
        .scope
        .narrowed_to(asked.as_deref())
        .map_err(ApiError::Forbidden)?;
    let report = blocking(&state, move |s| {
        if let Some(school) = &asked {
            crate::store::schools::require_school(s, school)?;
        }
        WeeklyReport::load_in_scope(s, week, site_report::Detail::Pairs, &scope)
    })
    .await?;
    caller
        .audit(
            &state,
            AuditAction::ReadWeeklyVisits,
            p.week.clone(),
            String::new(),
        )
        .await?;
    if p.format.as_deref() == Some("csv") {
        let out = site_report::csv(&report, "pairs").unwrap_or_default();
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response());
    }
    let rows: Vec<site_report::PairLine> = report.pair_lines().collect();
    Ok(Json(json!({ "week": report.week, "rows": rows })).into_response())
}

async fn aup_decisions(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<LimitParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(1000).clamp(1, 100_000);
    let scope = caller.scope.clone();
    let decisions = blocking(&state, move |s| s.aup_decisions(limit, &scope)).await?;
    Ok(Json(json!({ "decisions": decisions })).into_response())
}

async fn audit(
    State(state): State<AppState>,
    caller: OversightCaller,
    Query(p): Query<LimitParams>,
) -> Result<Response, ApiError> {
    let limit = p.limit.unwrap_or(500).clamp(1, 100_000);
    let school = caller.scope.school().map(str::to_owned);
    let events = blocking(&state, move |s| {
        s.audit_query(&crate::store::AuditQuery {
            school,
            limit,
            ..Default::default()
        })
    })
    .await?;
    Ok(Json(json!({ "events": events })).into_response())
}

#[derive(Debug, Deserialize, Default)]
struct TamperParams {
    limit: Option<u32>,
    /// `1` or `true`: only events nobody has acknowledged.
    open: Option<String>,
    device: Option<String>,
}

/// Every tamper event laptops reported or the console found, newest
/// first. Any role: it is how those who oversee monitoring see that it
/// ran, and it holds no captured text.
async fn tamper(
    State(state): State<AppState>,
    caller: Caller,
    Query(p): Query<TamperParams>,
) -> Result<Response, ApiError> {
    let device = match p.device.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => Some(
            Uuid::parse_str(d)
                .map_err(|_| ApiError::BadRequest(format!("{d:?} is not a device id")))?,
        ),
        None => None,
    };
    let query = crate::store::TamperQuery {
        open_only: matches!(p.open.as_deref(), Some("1" | "true")),
        device,
        limit: p.limit.unwrap_or(1000).clamp(1, 100_000),
        scope: caller.scope.clone(),
    };
    let events = blocking(&state, move |s| s.tamper_events(&query)).await?;
    caller
        .audit(
            &state,
            AuditAction::ReadTamper,
            String::new(),
            String::new(),
        )
        .await?;
    Ok(Json(json!({ "events": events })).into_response())
}

async fn get_policy(
    State(state): State<AppState>,
    caller: AdminCaller,
) -> Result<Response, ApiError> {
    caller.require_trust()?;
    let policy = state.policy.borrow().clone();
    Ok(Json(&*policy).into_response())
}

async fn put_policy(
    State(state): State<AppState>,
    caller: AdminCaller,
    body: Result<Json<Policy>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    caller.require_trust()?;
    use crate::policy_service::{Author, ChangeNote, PolicyChangeError};
    let Json(policy) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let author = Author {
        name: caller.name.clone(),
        origin: caller.origin.clone(),
        aup_label: format!("{} (API)", caller.name),
    };
    let note = ChangeNote {
        action: AuditAction::SetPolicy,
        target: String::new(),
        detail: String::new(),
    };
    // The whole policy is replaced; its version is the console's to give.
    let saved = state
        .editor
        .change(author, note, move |p: &mut Policy| {
            *p = Policy {
                version: p.version,
                ..policy.clone()
            };
            Ok::<(), std::convert::Infallible>(())
        })
        .await
        .map_err(|e| match e {
            PolicyChangeError::Refused(never) => match never {},
            PolicyChangeError::Invalid(m) => ApiError::BadRequest(m),
            PolicyChangeError::Busy => ApiError::Unavailable(e.to_string()),
            PolicyChangeError::Store(e) => ApiError::from(e),
        })?;
    Ok(Json(&*saved).into_response())
}
