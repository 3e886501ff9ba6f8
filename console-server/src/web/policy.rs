//! Changing the policy from the web console: every page that changes it
//! (settings, libraries, the AUP, the register's audiences) goes through
//! [`update_policy`], which goes through the one policy service.

use protocol::Policy;

use super::AppState;
use super::auth::Staff;
use super::layout::WebError;
use crate::store::AuditAction;

/// Changes the policy through the one policy service (see
/// [`crate::policy_service`]): from the newest stored version, checked,
/// saved with its audit line, pushed to the laptops.
///
/// # Errors
/// The change's own [`WebError`]; [`WebError::BadRequest`] if the changed
/// policy would not build on the agents; a storage failure.
pub async fn update_policy(
    state: &AppState,
    staff: &Staff,
    action: AuditAction,
    target: String,
    detail: String,
    change: impl FnMut(&mut Policy) -> Result<(), WebError> + Send + 'static,
) -> Result<std::sync::Arc<Policy>, WebError> {
    staff.require_trust()?;
    use crate::policy_service::{Author, ChangeNote, PolicyChangeError};
    let author = Author {
        name: staff.name.clone(),
        origin: staff.origin.clone(),
        aup_label: staff.name.clone(),
    };
    let note = ChangeNote {
        action,
        target,
        detail,
    };
    state
        .editor
        .change(author, note, change)
        .await
        .map_err(|e| match e {
            PolicyChangeError::Refused(e) => e,
            PolicyChangeError::Invalid(m) => WebError::BadRequest(m),
            PolicyChangeError::Busy => WebError::Unavailable(e.to_string()),
            PolicyChangeError::Store(e) => WebError::from(e),
        })
}
