//! Exceptions suggested during triage. A reviewer who marks a capture a
//! false positive may suggest an exception (an innocent phrase), but one
//! reviewer must not silence a phrase on every laptop at once: the
//! suggestion waits on the Libraries page until an admin approves it (it
//! then joins the school's library) or rejects it.

use protocol::UnixMillis;
use serde::Serialize;
use uuid::Uuid;

use super::StoreError;

/// Where a suggestion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SuggestionStatus {
    Pending,
    Approved,
    Rejected,
}

impl SuggestionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SuggestionStatus::Pending => "pending",
            SuggestionStatus::Approved => "approved",
            SuggestionStatus::Rejected => "rejected",
        }
    }

    pub(super) fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(SuggestionStatus::Pending),
            "approved" => Ok(SuggestionStatus::Approved),
            "rejected" => Ok(SuggestionStatus::Rejected),
            other => Err(StoreError::Corrupt(format!(
                "an exception suggestion has the status {other:?}, which is not pending, approved or rejected"
            ))),
        }
    }
}

/// An exception a member of staff suggested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Suggestion {
    pub id: i64,
    pub time: String,
    pub category: String,
    pub phrase: String,
    pub suggested_by: String,
    /// The capture being triaged when it was suggested.
    pub capture: Option<Uuid>,
    pub status: SuggestionStatus,
    pub decided_by: Option<String>,
    pub decided_time: Option<String>,
}

/// Exceptions waiting for an admin, and what became of them.
pub trait SuggestionStore {
    /// Records a suggestion; the same phrase already pending for the same
    /// category is not recorded twice. Returns its id.
    ///
    /// # Errors
    /// A storage failure.
    fn suggest_exception(
        &self,
        category: &str,
        phrase: &str,
        by: &str,
        capture: Option<Uuid>,
        now: UnixMillis,
    ) -> Result<i64, StoreError>;

    /// The pending ones first (oldest first), then the `decided` most
    /// recently decided.
    ///
    /// # Errors
    /// A storage failure, or a row with an unknown status.
    fn exception_suggestions(&self, decided: u32) -> Result<Vec<Suggestion>, StoreError>;

    /// One suggestion.
    ///
    /// # Errors
    /// A storage failure, or a row with an unknown status.
    fn exception_suggestion(&self, id: i64) -> Result<Option<Suggestion>, StoreError>;

    /// Approves or rejects a pending suggestion; `false` if there is none
    /// pending with that id (the first decision stands).
    ///
    /// # Errors
    /// A storage failure.
    fn decide_exception(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError>;
}
