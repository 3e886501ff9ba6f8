//! Bearer tokens for the JSON API and one-time enrollment tokens for
//! laptops. Only hashes of the secrets are stored; each token is named in
//! lists and revocations by a short id (the start of that hash), which
//! reveals nothing of the secret.
//!
//! An API token has an owner (a staff account) when one is named: it works
//! only while that account is enabled and still holds the token's role (or
//! is an admin). Every token has an expiry, and its last use is kept.
//!
//! An enrollment token is used up in the same transaction that records the
//! device it enrolled and writes the audit line, so a failure to store
//! either leaves the token unused.

use protocol::UnixMillis;
use serde::Serialize;
use uuid::Uuid;

use super::{AuditEntry, Role, StoreError};

/// Characters of the hash that name a token.
pub const ID_LEN: usize = 12;

/// An API token to record.
#[derive(Debug, Clone)]
pub struct NewApiToken<'a> {
    pub name: &'a str,
    pub role: Role,
    /// The staff account it acts for, if any.
    pub owner: Option<&'a str>,
    pub hash: &'a str,
    pub expires: UnixMillis,
    /// The school it serves, for a token with no owner (one with an owner
    /// serves its owner's school); `None` for the trust.
    pub school: Option<&'a str>,
}

/// An API token as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiTokenInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub owner: Option<String>,
    /// Its school (its owner's, for a token with one); none for the trust.
    pub school: Option<String>,
    pub created: String,
    pub expires: String,
    pub last_used: Option<String>,
    pub revoked: Option<String>,
    /// Neither revoked nor expired (its owner may still stop it working).
    pub live: bool,
}

/// What a presented API token is good for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiTokenCheck {
    Valid {
        name: String,
        role: Role,
        /// The staff account it acts for, if any: a reviewer's token sees
        /// that reviewer's groups.
        owner: Option<String>,
        /// The school it serves: its owner's, or its own for a token with
        /// no owner; `None` for the trust.
        school: Option<String>,
    },
    /// Why it is refused, for the caller.
    Refused(String),
}

/// An enrollment token not yet used, revoked or expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnrollTokenInfo {
    pub id: String,
    pub created: String,
    pub expires: String,
    /// The school the laptop it enrols will belong to.
    pub school: Option<String>,
}

/// A laptop being enrolled.
#[derive(Debug, Clone)]
pub struct NewDevice<'a> {
    pub id: Uuid,
    pub hostname: &'a str,
    pub os: &'a str,
    pub agent_version: &'a str,
}

/// Why an enrollment token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    #[error(
        "the enrollment token was not issued by this console (or was mistyped); mint a new one with `console-server enroll-token`"
    )]
    Unknown,
    #[error(
        "the enrollment token expired at {0}; mint a new one with `console-server enroll-token`"
    )]
    Expired(String),
    #[error(
        "the enrollment token was already used at {at} by device {device}; each token enrolls one laptop, mint another"
    )]
    Used { at: String, device: String },
    #[error(
        "the enrollment token was revoked at {0}; mint a new one with `console-server enroll-token`"
    )]
    Revoked(String),
}

/// API and enrollment tokens.
pub trait TokenStore {
    /// # Errors
    /// A storage failure.
    fn add_api_token(&self, token: &NewApiToken<'_>, now: UnixMillis) -> Result<(), StoreError>;

    /// Whether the token with this hash may be used now, and as whom.
    ///
    /// # Errors
    /// A storage failure, or a stored role nobody wrote.
    fn check_api_token(&self, hash: &str, now: UnixMillis) -> Result<ApiTokenCheck, StoreError>;

    /// Records that the token was used.
    ///
    /// # Errors
    /// A storage failure.
    fn touch_api_token(&self, hash: &str, now: UnixMillis) -> Result<(), StoreError>;

    /// Every API token, newest first.
    ///
    /// # Errors
    /// A storage failure, or a stored role nobody wrote.
    fn api_tokens(&self, now: UnixMillis) -> Result<Vec<ApiTokenInfo>, StoreError>;

    /// Revokes the live tokens called `name`, or the one whose id is `id`;
    /// returns how many.
    ///
    /// # Errors
    /// A storage failure.
    fn revoke_api_tokens(
        &self,
        name: Option<&str>,
        id: Option<&str>,
        now: UnixMillis,
    ) -> Result<u64, StoreError>;

    /// Records an enrolment token; the laptop it enrols belongs to
    /// `school` (which must exist), `None` on a console of one school.
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a school there is not; a storage
    /// failure.
    fn add_enroll_token(
        &self,
        secret_hash: &str,
        expires: UnixMillis,
        school: Option<&str>,
        now: UnixMillis,
    ) -> Result<(), StoreError>;

    /// The tokens that could still enroll a laptop, newest first.
    ///
    /// # Errors
    /// A storage failure.
    fn enroll_tokens(&self, now: UnixMillis) -> Result<Vec<EnrollTokenInfo>, StoreError>;

    /// Revokes an unused token by its id; `false` if there is none unused.
    ///
    /// # Errors
    /// A storage failure.
    fn revoke_enroll_token(&self, id: &str, now: UnixMillis) -> Result<bool, StoreError>;

    /// Uses up a token for `device`, records the device and writes `audit`,
    /// all in one transaction: of two laptops racing with one token,
    /// exactly one wins, and a failure leaves the token unused.
    ///
    /// # Errors
    /// A storage failure (nothing is changed).
    fn enroll_device(
        &self,
        secret_hash: &str,
        device: &NewDevice<'_>,
        audit: &AuditEntry<'_>,
        now: UnixMillis,
    ) -> Result<Result<(), TokenRefusal>, StoreError>;
}
