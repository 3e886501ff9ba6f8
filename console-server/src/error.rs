//! The console's one error type for web pages and the JSON API. Handlers
//! return a [`ConsoleError`]; it becomes an HTML page by default, and the
//! API's router turns it into `{"error": "…"}` (see [`json_errors`]), so a
//! failure is one value with one meaning whichever door it comes through.
//! Storage failures map by their kind, never by their wording: a refused
//! change (a name taken) is the caller's to fix, a full disk is
//! "unavailable", anything else is the console's own fault.

use axum::Json;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde_json::json;

use crate::store::StoreError;

/// What went wrong, for the person or script that asked.
#[derive(Debug)]
pub enum ConsoleError {
    BadRequest(String),
    /// No credentials, or ones that are not valid (the API's bearer token).
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    /// A state-changing request without this session's token, or from
    /// another site.
    Csrf,
    TooMany(std::time::Duration),
    /// The console cannot do this now (its disk is full).
    Unavailable(String),
    Internal(String),
}

/// The status and the words, kept on an error response so the API can
/// say them as JSON.
#[derive(Debug, Clone)]
struct Said {
    status: StatusCode,
    message: String,
}

impl ConsoleError {
    fn said(self) -> Said {
        let (status, message) = match self {
            ConsoleError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ConsoleError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            ConsoleError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ConsoleError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ConsoleError::Csrf => (
                StatusCode::FORBIDDEN,
                "this request did not come from a page of this console (its security token is missing or stale); go back, reload the page and try again".into(),
            ),
            ConsoleError::TooMany(wait) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed attempts; try again in {} seconds",
                    wait.as_secs().max(1)
                ),
            ),
            ConsoleError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ConsoleError::Internal(m) => {
                tracing::error!("console: {m}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the console could not do this: {m}"),
                )
            }
        };
        Said { status, message }
    }
}

/// As an HTML page (the web console's door).
impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let said = self.said();
        let title = said.status.canonical_reason().unwrap_or("Error");
        let mut response = (
            said.status,
            crate::web::layout::bare_page(
                title,
                html! {
                    main.narrow {
                        h1 { (title) }
                        p.notice role="alert" { (said.message) }
                        p { a href="/" { "Back to the console" } }
                    }
                },
            ),
        )
            .into_response();
        response.extensions_mut().insert(said);
        response
    }
}

/// Middleware for the API's router: an error is said as
/// `{"error": "…"}` with its status, instead of as a page.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    match response.extensions().get::<Said>().cloned() {
        Some(said) => (said.status, Json(json!({ "error": said.message }))).into_response(),
        None => response,
    }
}

impl From<StoreError> for ConsoleError {
    fn from(e: StoreError) -> Self {
        if e.is_disk_full() {
            return ConsoleError::Unavailable(e.disk_full_message());
        }
        match e {
            // A change the store will not make as asked (a name taken, an
            // owner who may not own a token): the caller can fix it.
            StoreError::Refused(m) => ConsoleError::BadRequest(m),
            e => ConsoleError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_failure_maps_by_its_kind_not_its_words() {
        let taken = ConsoleError::from(StoreError::Refused(
            "a user named \"lead\" already exists; choose another name".into(),
        ));
        assert!(matches!(taken, ConsoleError::BadRequest(_)), "{taken:?}");
        let corrupt = ConsoleError::from(StoreError::Corrupt("already exists".into()));
        assert!(
            matches!(corrupt, ConsoleError::Internal(_)),
            "the words do not decide: {corrupt:?}"
        );
        let page = ConsoleError::Forbidden("the auditor role may not".into()).into_response();
        assert_eq!(page.status(), StatusCode::FORBIDDEN);
        let said = page.extensions().get::<Said>().expect("kept for the API");
        assert_eq!(said.message, "the auditor role may not");
    }
}
