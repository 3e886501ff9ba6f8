//! Live alerts: `GET /live` is a server-sent event stream that carries
//! each capture within moments of its commit, as a ready-escaped inbox row,
//! to every open page of a reviewer or admin.
//!
//! Events: `capture` (JSON: id, term, category, severity, row; a pupil's
//! concern is one), `tamper` (JSON: id, what, device, user), `resync`
//! (this stream fell behind; reload), `expired` (the session ended; the
//! page goes to sign-in). The stream checks its session every
//! [`SESSION_CHECK`] and ends with `expired` when it has run out: an open
//! tab does not outlive its session, and does not keep it alive either.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use protocol::UnixMillis;
use serde_json::json;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::ingest::Live;

use super::auth::expired;
use super::layout::{WebError, capture_row};
use super::roles::CaptureStaff;
use super::{AppState, blocking};
use crate::store::AuditAction;
use crate::store::scope::Scope;

const SESSION_CHECK: Duration = Duration::from_secs(30);

pub async fn stream(
    State(state): State<AppState>,
    staff: CaptureStaff,
) -> Result<Response, WebError> {
    staff
        .audit(
            &state,
            AuditAction::OpenLiveFeed,
            String::new(),
            String::new(),
        )
        .await?;
    let rx = state.live.subscribe();
    Ok(Sse::new(events(
        state,
        staff.session.id_hash.clone(),
        staff.scope.clone(),
        rx,
    ))
    .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
    .into_response())
}

struct Feed {
    state: AppState,
    session: String,
    /// What the reviewer sees; read again at each session check, so a
    /// change reaches an open feed within [`SESSION_CHECK`].
    scope: Scope,
    rx: broadcast::Receiver<Live>,
    check: tokio::time::Interval,
    done: bool,
}

fn events(
    state: AppState,
    session: String,
    scope: Scope,
    rx: broadcast::Receiver<Live>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut check = tokio::time::interval(SESSION_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = Feed {
        state,
        session,
        scope,
        rx,
        check,
        done: false,
    };
    stream::unfold(feed, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            tokio::select! {
                _ = f.check.tick() => {
                    let hash = f.session.clone();
                    let found = blocking(&f.state, move |s| {
                        let Some(session) = s.session(&hash)? else {
                            return Ok(None);
                        };
                        let scope =
                            crate::store::scope::scope_of(s, &session.user, session.role)?;
                        Ok(Some((session, scope)))
                    })
                    .await
                    .ok()
                    .flatten()
                    .filter(|(s, _)| !expired(s, UnixMillis::now()));
                    let Some((_, scope)) = found else {
                        f.done = true;
                        return Some((Ok(Event::default().event("expired").data("")), f));
                    };
                    f.scope = scope;
                }
                got = f.rx.recv() => match got {
                    Ok(Live::Capture(id)) => {
                        if let Some(event) = capture_event(&f.state, id, &f.scope).await {
                            return Some((Ok(event), f));
                        }
                    }
                    Ok(Live::Tamper(id)) => {
                        if let Some(event) = tamper_event(&f.state, id, &f.scope).await {
                            return Some((Ok(event), f));
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Some((Ok(Event::default().event("resync").data("")), f));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    })
}

/// A new capture for the page, if it is in the reviewer's `scope`.
async fn capture_event(state: &AppState, id: Uuid, scope: &Scope) -> Option<Event> {
    let scope = scope.clone();
    let capture = blocking(state, move |s| {
        Ok(if scope.is_all() || s.capture_in_scope(id, &scope)? {
            s.capture(id)?
        } else {
            None
        })
    })
    .await
    .ok()??
    .summary;
    let defs = state.definitions();
    let title = defs.title(&capture.category);
    let row = capture_row(&capture, title, true).into_string();
    let data = json!({
        "id": capture.id,
        "term": capture.term,
        "category": title,
        "severity": capture.severity,
        "concern": capture.source == "concern",
        "user": capture.user,
        "row": row,
    });
    Some(Event::default().event("capture").data(data.to_string()))
}

/// A tamper event for the page: what happened, where and to whom, as plain
/// strings the script sets as text (never as HTML).
async fn tamper_event(state: &AppState, id: Uuid, scope: &Scope) -> Option<Event> {
    let scope = scope.clone();
    let t = blocking(state, move |s| {
        Ok(if scope.is_all() || s.tamper_in_scope(id, &scope)? {
            s.tamper_event(id)?
        } else {
            None
        })
    })
    .await
    .ok()??;
    let data = json!({
        "id": t.id,
        "what": super::tamper::label(&t.kind),
        "device": if t.hostname.is_empty() { t.device.to_string() } else { t.hostname },
        "user": t.user.unwrap_or_default(),
    });
    Some(Event::default().event("tamper").data(data.to_string()))
}
