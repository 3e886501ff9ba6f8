//! The web console: server-rendered pages for staff, on the same HTTPS
//! listener as the JSON API.
//!
//! Every page is built with `maud`, which escapes every interpolated value,
//! so captured text (hostile input from a pupil's laptop) is only ever text.
//! No asset comes from another site: the stylesheet and the one script are
//! compiled into the binary, and the Content-Security-Policy allows nothing
//! else (no inline script or style at all).
//!
//! - [`auth`]: passwords, sessions, CSRF, login throttling, re-authentication;
//! - [`roles`]: who may reach each page, checked before its handler runs;
//! - [`form`]: urlencoded form bodies, with repeated fields;
//! - [`layout`]: the page shell, errors, shared fragments;
//! - [`live`]: server-sent events for captures as they arrive;
//! - [`inbox`], [`capture_page`]: finding and triaging captures;
//! - [`audit_page`], [`trends`]: oversight and reports;
//! - [`devices`], [`staff`], [`settings`], [`libraries`], [`tokens`]: the
//!   admin's pages; [`policy`]: how any page changes the policy;
//! - [`site_visits`], [`tamper`], [`alerts`]: the weekly report, tamper
//!   events, the alerts sent;
//! - [`aup`], [`register`]: the Acceptable Use Policy and the register of
//!   users;
//! - [`account`]: one's own sessions and password.

pub mod account;
pub mod alert_rules;
pub mod alerts;
pub mod assets;
pub mod audit_page;
pub mod aup;
pub mod auth;
pub mod capture_page;
pub mod devices;
pub mod effective_policy;
pub mod form;
pub mod group_layers;
pub mod inbox;
pub mod layout;
pub mod libraries;
pub mod live;
pub mod policy;
pub mod register;
pub mod roles;
pub mod settings;
pub mod site_visits;
pub mod staff;
pub mod tamper;
pub mod tokens;
pub mod trends;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use protocol::Policy;
use tokio::sync::{broadcast, watch};

use crate::storage_health::StorageHealth;
use crate::store::{Store, StoreError};

/// What the web handlers share.
pub struct WebState {
    pub store: Arc<dyn Store>,
    pub policy: watch::Sender<Arc<Policy>>,
    /// Ids of captures as they are stored, for live inboxes.
    pub live: broadcast::Sender<crate::ingest::Live>,
    pub throttle: auth::Throttle,
    /// A device not heard from for this long is listed as offline.
    pub offline_after_ms: i64,
    /// Written into enrollment tokens minted from the devices page.
    pub enroll_address: String,
    pub ca_fingerprint: String,
    /// The one way the policy changes (shared with the API).
    pub editor: Arc<crate::policy_service::PolicyEditor>,
    /// Whether storing works and how much room is left.
    pub health: Arc<StorageHealth>,
    /// Alerts not delivered, as the alert sender last counted them.
    pub alert_health: Arc<crate::alerts::sender::AlertHealth>,
    /// The alert rules of `console.toml`, beside which the Settings page
    /// keeps its own.
    pub rule_book: crate::alerts::rule_book::RuleBook,
    definitions: Mutex<Option<(u64, Arc<Definitions>)>>,
}

impl WebState {
    pub fn new(
        store: Arc<dyn Store>,
        live: broadcast::Sender<crate::ingest::Live>,
        offline_after_ms: i64,
        enroll_address: String,
        ca_fingerprint: String,
        health: Arc<StorageHealth>,
        editor: Arc<crate::policy_service::PolicyEditor>,
    ) -> WebState {
        WebState {
            store,
            policy: editor.watch().clone(),
            live,
            throttle: auth::Throttle::default(),
            offline_after_ms,
            enroll_address,
            ca_fingerprint,
            editor,
            health,
            alert_health: Arc::default(),
            rule_book: crate::alerts::rule_book::RuleBook::default(),
            definitions: Mutex::new(None),
        }
    }

    /// The libraries in force (built-in plus the school's), indexed for
    /// the pages; rebuilt when the policy version changes.
    pub fn definitions(&self) -> Arc<Definitions> {
        let policy = self.policy.borrow().clone();
        let mut cached = self.definitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((version, defs)) = cached.as_ref()
            && *version == policy.version
        {
            return defs.clone();
        }
        let defs = Arc::new(Definitions::of(&policy));
        *cached = Some((policy.version, defs.clone()));
        defs
    }
}

/// What staff read on a pupil's concern.
pub const CONCERN_DEFINITION: &str = "A pupil reported this themselves with \"Report a concern\" (Ctrl+Alt+R or the launcher). Treat it as high priority: read what they wrote, look at the page and the screenshot if they sent one, and follow the school's safeguarding procedure. Speak to the pupil.";

/// Term definitions and category titles, for staff.
#[derive(Debug, Default)]
pub struct Definitions {
    /// (category, term) → (severity, definition).
    pub terms: HashMap<(String, String), (u8, String)>,
    /// Category name → title, in library order.
    pub categories: Vec<(String, String)>,
    pub libraries: wordlists::Libraries,
}

impl Definitions {
    fn of(policy: &Policy) -> Definitions {
        let libs = wordlists::Libraries::builtin_with(
            policy
                .libraries
                .iter()
                .map(|f| (f.name.as_str(), f.toml.as_str())),
        )
        .or_else(|e| {
            // The policy was checked when it was saved; a failure here means
            // the built-in files are broken, which the tests rule out.
            tracing::error!("the libraries in the policy do not load: {e}");
            wordlists::Libraries::builtin()
        })
        .unwrap_or_default();
        let mut terms = HashMap::new();
        // Context rules are captured under their name, like a term.
        for e in libs.entries().cloned().chain(libs.rule_entries()) {
            terms.insert(
                (e.category.clone(), e.term.clone()),
                (e.severity, e.definition.clone()),
            );
        }
        for c in &libs.categories {
            for d in &c.detectors {
                terms.insert(
                    (c.name.clone(), d.kind.as_str().to_owned()),
                    (d.severity, d.definition.clone()),
                );
            }
        }
        // A pupil's own report is listed with the captures, first.
        terms.insert(
            (
                crate::store::sql_store::CONCERN_CATEGORY.to_owned(),
                crate::store::sql_store::CONCERN_TERM.to_owned(),
            ),
            (5, CONCERN_DEFINITION.to_owned()),
        );
        let mut categories = vec![(
            crate::store::sql_store::CONCERN_CATEGORY.to_owned(),
            "Pupil's concern".to_owned(),
        )];
        categories.extend(
            libs.categories
                .iter()
                .map(|c| (c.name.clone(), c.title.clone())),
        );
        Definitions {
            terms,
            categories,
            libraries: libs,
        }
    }

    pub fn title<'a>(&'a self, category: &'a str) -> &'a str {
        self.categories
            .iter()
            .find(|(name, _)| name == category)
            .map_or(category, |(_, title)| title.as_str())
    }

    pub fn definition(&self, category: &str, term: &str) -> Option<&str> {
        if term.starts_with(wordlists::semantic::CAPTURE_TERM) {
            return Some(wordlists::semantic::EXPLANATION);
        }
        self.terms
            .get(&(category.to_owned(), term.to_owned()))
            .map(|(_, d)| d.as_str())
    }
}

pub type AppState = Arc<WebState>;

/// The web console's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/{name}", get(assets::serve))
        .route("/inbox", get(inbox::page))
        .route("/inbox/triage", post(inbox::bulk_triage))
        .route("/live", get(live::stream))
        .route("/tamper", get(tamper::page))
        .route("/alerts", get(alerts::page))
        .route("/tamper/{id}/acknowledge", post(tamper::acknowledge))
        .route("/captures/{id}", get(capture_page::page))
        .route("/captures/{id}/image", get(capture_page::image))
        .route("/captures/{id}/triage", post(capture_page::triage))
        .route("/captures/{id}/delete", post(capture_page::delete))
        .route("/audit", get(audit_page::page))
        .route("/audit.csv", get(audit_page::csv))
        .route("/reports", get(site_visits::index))
        .route("/reports/weekly", get(site_visits::page))
        .route("/reports/weekly.csv", get(site_visits::csv))
        .route("/reports/weekly.pdf", get(site_visits::pdf))
        .route("/reports/weekly/signoff", post(site_visits::sign_off))
        .route("/aup", get(aup::page))
        .route("/aup/publish", post(aup::publish))
        .route("/aup/decisions", get(aup::decisions))
        .route("/aup/pending", get(aup::pending))
        .route("/register", get(register::page))
        .route("/register/import", post(register::import))
        .route("/trends", get(trends::page))
        .route("/trends.csv", get(trends::csv))
        .route("/devices", get(devices::page))
        .route("/devices/{id}/revoke", post(devices::revoke))
        .route("/devices/enroll-token", post(devices::enroll_token))
        // The spelling of earlier versions, for bookmarks and scripts.
        .route("/devices/enrol-token", post(devices::enroll_token))
        .route("/staff", get(staff::page).post(staff::add))
        .route("/staff/{name}/role", post(staff::set_role))
        .route(
            "/staff/api-tokens/{id}/revoke",
            post(tokens::revoke_api_token),
        )
        .route(
            "/devices/enroll-tokens/{id}/revoke",
            post(tokens::revoke_enroll_token),
        )
        .route("/staff/{name}/disabled", post(staff::set_disabled))
        .route("/staff/{name}/scope", post(staff::set_scope))
        .route("/libraries", get(libraries::page))
        .route("/libraries/terms", post(libraries::add_term))
        .route("/libraries/exceptions", post(libraries::add_exception))
        .route(
            "/libraries/suggestions/{id}/approve",
            post(libraries::approve_suggestion),
        )
        .route(
            "/libraries/suggestions/{id}/reject",
            post(libraries::reject_suggestion),
        )
        .route("/settings", get(settings::page).post(settings::save))
        .route("/policy/effective", get(effective_policy::page))
        .route(
            "/policy/groups",
            get(group_layers::page).post(group_layers::save),
        )
        .route("/policy/groups/remove", post(group_layers::remove))
        .route("/policy/groups/members", post(group_layers::members))
        .route("/policy/groups/terms", post(group_layers::terms))
        .route("/settings/alert-rules", post(alert_rules::save))
        .route("/settings/alert-rules/delete", post(alert_rules::delete))
        .route("/account", get(account::page))
        .route("/account/sessions/end", post(account::end_session))
        .route("/account/password", post(account::change_password))
        .with_state(state)
}

async fn home(staff: Option<auth::Staff>) -> Response {
    match staff {
        None => Redirect::to("/login").into_response(),
        Some(s) if s.role.sees_captures() => Redirect::to("/inbox").into_response(),
        Some(_) => Redirect::to("/audit").into_response(),
    }
}

/// The Content-Security-Policy of every response: nothing from elsewhere,
/// no inline script or style, no framing, forms only back to this site.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Adds the security headers to every response, pages and API alike.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // `same-origin`, not `no-referrer`: with no referrer Chromium sends
    // `Origin: null` on form posts, which the CSRF check must refuse.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(
        h,
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        h,
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    response
}

/// Runs a storage call off the async threads.
pub async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, layout::WebError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || f(store.as_ref()))
        .await
        .map_err(|e| layout::WebError::Internal(format!("a storage task failed: {e}")))?
        .map_err(layout::WebError::from)
}

/// Refuses a capture outside `scope` as if it did not exist (404), so a
/// reviewer limited to groups learns nothing of another group's records,
/// not even that one exists.
///
/// # Errors
/// [`layout::WebError::NotFound`] outside the scope; a storage failure.
pub async fn capture_in_scope(
    store: &Arc<dyn Store>,
    scope: &crate::store::scope::Scope,
    id: uuid::Uuid,
) -> Result<(), layout::WebError> {
    if scope.is_all() {
        return Ok(());
    }
    let (store, asked) = (store.clone(), scope.clone());
    let found = tokio::task::spawn_blocking(move || store.capture_in_scope(id, &asked))
        .await
        .map_err(|e| layout::WebError::Internal(format!("a storage task failed: {e}")))??;
    if found {
        Ok(())
    } else {
        Err(layout::WebError::NotFound(format!(
            "there is no capture {id} in what you see ({})",
            scope.describe()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_semantic_capture_is_explained_and_a_term_keeps_its_definition() {
        let defs = Definitions::of(&protocol::Policy::baseline());
        let said = defs
            .definition("self-harm", "semantic layer: reads as self-harm (97% sure)")
            .unwrap();
        assert!(said.contains("No term in this message matched"), "{said}");
        let term = defs.definition("self-harm", "kill myself").unwrap();
        assert!(!term.contains("semantic"), "{term}");
        assert_eq!(defs.definition("self-harm", "no such term"), None);
    }
}
