//! Who is at the keyboard: passwords (Argon2id), login sessions, CSRF,
//! throttling of failed logins, and re-authentication for grave changes.
//!
//! Sessions: the cookie `__Host-sg_session` (`Secure; HttpOnly;
//! SameSite=Strict; Path=/`, no `Domain`) holds 32 random bytes; the
//! database keeps only their SHA-256, so a copy of the database opens no
//! session. A login always makes a new session id (and ends the one the
//! browser had). A session ends after [`IDLE`] without a request or
//! [`ABSOLUTE`] after login, whichever is first. The role is read from the
//! account on every request, so a changed role or a disabled account takes
//! effect at once.
//!
//! CSRF: each session has a random token that every form carries in a
//! hidden `csrf` field; every state-changing request is refused without
//! it. The login form, before there is a session, uses a double-submit
//! cookie (`__Host-sg_login`). Cross-site requests (`Sec-Fetch-Site:
//! cross-site`, or an `Origin` that is not this host) are refused as well.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use protocol::UnixMillis;
use serde::Deserialize;

use super::form::Form;
use super::layout::{WebError, bare_page};
use super::{AppState, blocking};
use crate::https::Peer;
use crate::secret::{random_token, token_hash, verify_password};
use crate::store::AuditAction;
use crate::store::scope::Scope;
use crate::store::{Role, WebSession};

pub const COOKIE: &str = "__Host-sg_session";
const LOGIN_COOKIE: &str = "__Host-sg_login";
/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login, however busy.
pub const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A signed-in member of staff.
#[derive(Debug, Clone)]
pub struct Staff {
    pub name: String,
    pub role: Role,
    /// The records this member of staff sees ([`Scope`]): a reviewer's
    /// groups, read afresh at each request, or the whole school.
    pub scope: Scope,
    pub session: WebSession,
    /// The client's address.
    pub origin: String,
    /// What staff must know about the console's storage, if anything (a
    /// full disk), shown on every page.
    pub storage_alert: Option<String>,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn origin_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// How stale a session's last use may get before a request writes it.
const TOUCH_EVERY_MS: i64 = 60_000;

/// Whether a session has run out at `now`.
pub fn expired(s: &WebSession, now: UnixMillis) -> bool {
    now.0.saturating_sub(s.last_seen.0) > ms(IDLE)
        || now.0.saturating_sub(s.created.0) > ms(ABSOLUTE)
}

/// Where to send someone who is not signed in.
fn to_login(parts: &Parts, why: Option<&str>) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .filter(|_| parts.method == Method::GET)
        .unwrap_or_else(|| "/".into());
    let mut url = format!("/login?next={}", urlencode(&next));
    if let Some(why) = why {
        url.push_str("&why=");
        url.push_str(why);
    }
    Redirect::to(&url).into_response()
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match <Staff as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state).await
        {
            Ok(Some(staff)) => Ok(staff),
            Ok(None) => {
                let had_cookie = cookie(&parts.headers, COOKIE).is_some();
                Err(to_login(parts, had_cookie.then_some("expired")))
            }
            Err(e) => Err(e),
        }
    }
}

impl OptionalFromRequestParts<AppState> for Staff {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Response> {
        let Some(secret) = cookie(&parts.headers, COOKIE) else {
            return Ok(None);
        };
        let hash = token_hash(secret);
        let now = UnixMillis::now();
        let found = {
            let hash = hash.clone();
            blocking(state, move |s| s.session(&hash))
                .await
                .map_err(IntoResponse::into_response)?
        };
        let Some(session) = found else {
            return Ok(None);
        };
        if expired(&session, now) {
            let hash = hash.clone();
            blocking(state, move |s| s.end_session(&hash))
                .await
                .map_err(IntoResponse::into_response)?;
            return Ok(None);
        }
        // The live stream is not the user at the keyboard: it must not keep
        // an idle session alive. A session is extended at most once a
        // minute, so pages mostly read and do not queue for the writer
        // behind ingest.
        let stale = now.0.saturating_sub(session.last_seen.0) >= TOUCH_EVERY_MS;
        if parts.uri.path() != "/live" && stale {
            match blocking(state, move |s| s.touch_session(&hash, now)).await {
                Ok(()) => {}
                // A full disk must not lock staff out of the page that tells
                // them so; the session just does not get longer.
                Err(WebError::Unavailable(why)) => {
                    tracing::warn!("cannot extend the session of {}: {why}", session.user);
                }
                Err(e) => return Err(e.into_response()),
            }
        }
        let (name, role) = (session.user.clone(), session.role);
        let scope = blocking(state, move |s| {
            crate::store::scope::scope_of(s, &name, role)
        })
        .await
        .map_err(IntoResponse::into_response)?;
        Ok(Some(Staff {
            name: session.user.clone(),
            role: session.role,
            scope,
            origin: origin_of(parts),
            session,
            storage_alert: match (
                state.health.report().message(),
                state.alert_health.message(),
            ) {
                (Some(s), Some(a)) => Some(format!("{s} {a}")),
                (s, a) => s.or(a),
            },
        }))
    }
}

impl Staff {
    /// Refuses a school's own staff what is the trust's to set (libraries,
    /// settings, policies, alert rules, the AUP): on a console of one
    /// school nobody is refused.
    ///
    /// # Errors
    /// [`WebError::Forbidden`] saying whom to ask.
    pub fn require_trust(&self) -> Result<(), WebError> {
        match self.scope.school() {
            None => Ok(()),
            Some(school) => Err(WebError::Forbidden(format!(
                "this is set for every school of the trust; you are staff of {school}, so ask one of the trust's admins"
            ))),
        }
    }

    /// Refuses roles not in `allowed`.
    ///
    /// # Errors
    /// [`WebError::Forbidden`] naming the role.
    pub fn require(&self, allowed: &[Role]) -> Result<(), WebError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(WebError::Forbidden(format!(
                "the {} role may not see or do this",
                self.role.as_str()
            )))
        }
    }

    /// The checks every state-changing request passes: from a page of this
    /// site, with this session's CSRF token (the role is checked already,
    /// see [`super::roles`]).
    ///
    /// # Errors
    /// [`WebError::Csrf`].
    pub fn check_post(&self, headers: &HeaderMap, form: &Form) -> Result<(), WebError> {
        same_site(headers)?;
        self.check_csrf(form)
    }

    /// Refuses a form without this session's CSRF token.
    ///
    /// # Errors
    /// [`WebError::Csrf`].
    pub fn check_csrf(&self, form: &Form) -> Result<(), WebError> {
        match form.get("csrf") {
            Some(t) if constant_time_eq(t.as_bytes(), self.session.csrf.as_bytes()) => Ok(()),
            _ => Err(WebError::Csrf),
        }
    }

    /// Writes to the audit log; the caller must not go on if this fails.
    ///
    /// # Errors
    /// A storage failure.
    pub async fn audit(
        &self,
        state: &AppState,
        action: AuditAction,
        target: String,
        detail: String,
    ) -> Result<(), WebError> {
        let (actor, origin) = (self.name.clone(), self.origin.clone());
        blocking(state, move |s| {
            s.audit_now(&actor, action, &target, &detail, &origin)
        })
        .await
    }

    /// Re-authentication for grave changes (roles, deletions): the form's
    /// `password` must be this user's password.
    ///
    /// # Errors
    /// [`WebError::BadRequest`] if it is wrong (and the failure counts
    /// towards the login throttle).
    pub async fn reauthenticate(&self, state: &AppState, form: &Form) -> Result<(), WebError> {
        let password = form.get("password").unwrap_or_default().to_owned();
        let keys = sign_in_keys(&self.name, &self.origin);
        if let Some(wait) = state.throttle.locked(&keys) {
            return Err(WebError::TooMany(wait));
        }
        let name = self.name.clone();
        let account = blocking(state, move |s| s.staff_account(&name)).await?;
        let hash = account.map(|a| a.password_hash).unwrap_or_default();
        let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            state.throttle.failed(&keys);
            self.audit(
                state,
                AuditAction::ReauthFailed,
                self.name.clone(),
                "wrong password when confirming a change".into(),
            )
            .await?;
            Err(WebError::BadRequest(
                "your password was not right; the change was not made. Type your own password to confirm it".into(),
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses requests another site started: browsers say so in
/// `Sec-Fetch-Site`, and `Origin` names the page that sent a form.
///
/// # Errors
/// [`WebError::Csrf`].
pub fn same_site(headers: &HeaderMap) -> Result<(), WebError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        tracing::warn!("refused a {site} request (Sec-Fetch-Site)");
        return Err(WebError::Csrf);
    }
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if origin != format!("https://{host}") {
            tracing::warn!("refused a request from origin {origin:?} to host {host:?}");
            return Err(WebError::Csrf);
        }
    }
    Ok(())
}

/// Failed logins, by account and by address. After [`FREE_FAILURES`]
/// failures in [`WINDOW`], each further attempt must wait twice as long as
/// the last (30 s, 1 min, 2 min, … up to 15 min).
#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failures of one name from one address before it waits.
const FREE_FAILURES: u32 = 5;
/// Failures from one address, whatever the names, before it waits: enough
/// for a room of staff sharing one address to mistype, few enough to stop
/// one machine trying every name.
const FREE_FAILURES_PER_ADDRESS: u32 = 20;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_KEYS: usize = 100_000;

/// The throttle's keys for `name` signing in from `address`: the two
/// together, and the address alone. There is deliberately no key for the
/// name alone: anyone who can reach the web port could then keep the
/// safeguarding lead locked out by failing her name, from anywhere.
pub fn sign_in_keys(name: &str, address: &str) -> [String; 2] {
    [
        format!("pair:{}@{address}", name.to_lowercase()),
        format!("ip:{address}"),
    ]
}

impl Throttle {
    fn wait_for(key: &str, f: &Failures) -> Duration {
        let free = if key.starts_with("ip:") {
            FREE_FAILURES_PER_ADDRESS
        } else {
            FREE_FAILURES
        };
        if f.count < free {
            return Duration::ZERO;
        }
        let doublings = (f.count - free).min(5);
        (Duration::from_secs(30) * 2u32.pow(doublings)).min(WINDOW)
    }

    /// How long the caller must still wait, if any of `keys` is locked.
    pub fn locked(&self, keys: &[String]) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter()
            .filter_map(|k| map.get(k).map(|f| (k, f)))
            .filter_map(|(k, f)| Self::wait_for(k, f).checked_sub(f.last.elapsed()))
            .filter(|d| !d.is_zero())
            .max()
    }

    pub fn failed(&self, keys: &[String]) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > MAX_KEYS {
            map.retain(|_, f| f.last.elapsed() < WINDOW);
        }
        for k in keys {
            let f = map.entry(k.clone()).or_insert(Failures {
                count: 0,
                last: Instant::now(),
            });
            if f.last.elapsed() > WINDOW {
                f.count = 0;
            }
            f.count += 1;
            f.last = Instant::now();
        }
    }

    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[derive(Debug, Deserialize, Default)]
pub struct LoginParams {
    next: Option<String>,
    why: Option<String>,
}

/// A local path to go to after login, never another site.
///
/// Browsers drop tabs and line breaks from a `Location` and read a
/// backslash as a slash, so `/<tab>/evil.example` would become
/// `//evil.example`: only visible ASCII other than the backslash is
/// allowed, after a single leading slash.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n
        }
        _ => "/",
    }
}

fn login_form(next: &str, message: Option<&str>, login_csrf: &str) -> maud::Markup {
    bare_page(
        "Sign in",
        html! {
            main.login {
                h1 { "Safeguard console" }
                @if let Some(m) = message { p.notice role="alert" { (m) } }
                form method="post" action="/login" {
                    input type="hidden" name="csrf" value=(login_csrf);
                    input type="hidden" name="next" value=(next);
                    label { "Name" input name="name" autocomplete="username" required autofocus; }
                    label { "Password" input name="password" type="password" autocomplete="current-password" required; }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

fn login_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{LOGIN_COOKIE}={value}; Path=/; Secure; HttpOnly; SameSite=Strict"
    ))
    .expect("a token is a valid header value")
}

pub async fn login_page(Query(p): Query<LoginParams>) -> Response {
    let message = match p.why.as_deref() {
        Some("expired") => Some(
            "Your session ended (30 minutes idle, or 12 hours since sign-in). Please sign in again.",
        ),
        Some("out") => Some("You have signed out."),
        _ => None,
    };
    let csrf = random_token();
    let mut r = login_form(safe_next(p.next.as_deref()), message, &csrf).into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, login_cookie(&csrf));
    r
}

/// A fixed Argon2id hash to check against when the account does not exist,
/// so a wrong name costs as much time as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::secret::hash_password("not a password").unwrap_or_default())
}

pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    same_site(&headers)?;
    let submitted = form.get("csrf").unwrap_or_default();
    match cookie(&headers, LOGIN_COOKIE) {
        Some(c)
            if !submitted.is_empty() && constant_time_eq(c.as_bytes(), submitted.as_bytes()) => {}
        _ => return Err(WebError::Csrf),
    }
    let name = form.get("name").unwrap_or_default().trim().to_owned();
    let password = form.get("password").unwrap_or_default().to_owned();
    let next = safe_next(form.get("next")).to_owned();
    let ip = peer.0.ip().to_string();
    let keys = sign_in_keys(&name, &ip);
    let refuse = |message: String| {
        let csrf = random_token();
        let mut r = (
            StatusCode::UNAUTHORIZED,
            login_form(&next, Some(&message), &csrf),
        )
            .into_response();
        r.headers_mut()
            .append(header::SET_COOKIE, login_cookie(&csrf));
        r
    };
    if let Some(wait) = state.throttle.locked(&keys) {
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            refuse(format!(
                "Too many failed sign-ins for this name from this computer. Try again in {} seconds.",
                wait.as_secs().max(1)
            )),
        )
            .into_response());
    }
    if name.is_empty() || name.len() > 128 || password.len() > 1024 {
        return Ok(refuse("Type your name and password.".into()));
    }
    let lookup = name.clone();
    let account = blocking(&state, move |s| s.staff_account(&lookup)).await?;
    let usable = account.as_ref().filter(|a| !a.disabled);
    let hash = usable.map_or_else(|| dummy_hash().to_owned(), |a| a.password_hash.clone());
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    let audit = |action: AuditAction, detail: String| {
        let (actor, ip) = (name.clone(), ip.clone());
        blocking(&state, move |s| {
            s.audit_now(&actor, action, &actor, &detail, &ip)
        })
    };
    let Some(account) = usable.filter(|_| matches) else {
        state.throttle.failed(&keys);
        let why = match &account {
            None => "no such account",
            Some(a) if a.disabled => "account disabled",
            Some(_) => "wrong password",
        };
        audit(AuditAction::LoginFailed, why.into()).await?;
        return Ok(refuse(
            "That name and password do not match an enabled account.".into(),
        ));
    };
    state.throttle.succeeded(&keys[0]);

    // A fresh session id at every login; the browser's old one ends.
    if let Some(old) = cookie(&headers, COOKIE) {
        let old = token_hash(old);
        blocking(&state, move |s| s.end_session(&old)).await?;
    }
    let secret = random_token();
    let now = UnixMillis::now();
    let agent: String = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    let session = WebSession {
        id_hash: token_hash(&secret),
        user: account.name.clone(),
        role: account.role,
        csrf: random_token(),
        created: now,
        last_seen: now,
        origin: ip.clone(),
        agent,
    };
    blocking(&state, move |s| {
        s.purge_sessions(
            UnixMillis(now.0 - ms(IDLE)),
            UnixMillis(now.0 - ms(ABSOLUTE)),
        )?;
        s.open_session(&session)
    })
    .await?;
    audit(AuditAction::Login, account.role.as_str().into()).await?;
    let mut r = Redirect::to(&next).into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}={secret}; Path=/; Secure; HttpOnly; SameSite=Strict"
        ))
        .expect("a token is a valid header value"),
    );
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-sg_login=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(r)
}

pub async fn logout(
    State(state): State<AppState>,
    staff: Staff,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    staff.check_post(&headers, &form)?;
    let hash = staff.session.id_hash.clone();
    blocking(&state, move |s| s.end_session(&hash)).await?;
    staff
        .audit(
            &state,
            AuditAction::Logout,
            staff.name.clone(),
            String::new(),
        )
        .await?;
    let mut r = Redirect::to("/login?why=out").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-sg_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_locks_after_five_failures_and_doubles() {
        let t = Throttle::default();
        let keys = ["pair:a@192.0.2.1".to_owned()];
        for _ in 0..4 {
            t.failed(&keys);
        }
        assert!(t.locked(&keys).is_none());
        t.failed(&keys);
        let first = t.locked(&keys).expect("locked after five");
        assert!(first <= Duration::from_secs(30) && first > Duration::from_secs(25));
        t.failed(&keys);
        assert!(t.locked(&keys).unwrap() > Duration::from_secs(55));
        assert!(t.locked(&["pair:b@192.0.2.1".to_owned()]).is_none());
        t.succeeded("pair:a@192.0.2.1");
        assert!(t.locked(&keys).is_none());
    }

    #[test]
    fn failing_her_name_elsewhere_does_not_lock_her_out_and_one_address_may_not_spray() {
        let t = Throttle::default();
        for _ in 0..10 {
            t.failed(&sign_in_keys("Lead", "203.0.113.9"));
        }
        assert!(t.locked(&sign_in_keys("lead", "203.0.113.9")).is_some());
        assert!(
            t.locked(&sign_in_keys("lead", "198.51.100.7")).is_none(),
            "the real user from her own address still gets in"
        );
        // One address trying many names waits after 20 failures in all.
        for n in 0..19 {
            t.failed(&sign_in_keys(&format!("name{n}"), "192.0.2.50"));
        }
        assert!(t.locked(&sign_in_keys("other", "192.0.2.50")).is_none());
        t.failed(&sign_in_keys("name19", "192.0.2.50"));
        assert!(t.locked(&sign_in_keys("other", "192.0.2.50")).is_some());
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/captures/1")), "/captures/1");
        assert_eq!(
            safe_next(Some("/inbox?status=new&week=2026-W47")),
            "/inbox?status=new&week=2026-W47"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "/ /evil.example",
            "/\u{00a0}/evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-sg_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("console:8443"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://console:8443"),
        );
        assert!(same_site(&h).is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(same_site(&h).is_err());
        h.remove(header::ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(same_site(&h).is_err());
    }

    #[test]
    fn sessions_expire_idle_and_absolute() {
        let s = WebSession {
            id_hash: String::new(),
            user: "a".into(),
            role: Role::Reviewer,
            csrf: String::new(),
            created: UnixMillis(0),
            last_seen: UnixMillis(0),
            origin: String::new(),
            agent: String::new(),
        };
        assert!(!expired(&s, UnixMillis(29 * 60_000)));
        assert!(expired(&s, UnixMillis(31 * 60_000)));
        let busy = WebSession {
            last_seen: UnixMillis(12 * 3_600_000),
            ..s
        };
        assert!(!expired(&busy, UnixMillis(12 * 3_600_000)));
        assert!(expired(&busy, UnixMillis(12 * 3_600_000 + 60_000)));
    }
}
