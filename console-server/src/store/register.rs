//! The register of users and the Acceptable Use Policy's versions.
//!
//! - **Accounts**: everyone who has used a school laptop (noted at ingest,
//!   from every record that names a user: first and last seen, and on
//!   which devices), plus what the school's management information system
//!   says of them (real name, year group, pupil or staff), imported from
//!   CSV all or nothing.
//! - **AUP versions**: each published text per audience, who published it
//!   and when. The text agents show travels in the policy; this is its
//!   history.

use protocol::{Audience, UnixMillis};
use serde::Serialize;

use super::{AuditEntry, StoreError};

/// Pupil or staff, as the MIS says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonRole {
    Pupil,
    Staff,
}

impl PersonRole {
    pub fn as_str(self) -> &'static str {
        match self {
            PersonRole::Pupil => "pupil",
            PersonRole::Staff => "staff",
        }
    }

    pub fn parse(s: &str) -> Option<PersonRole> {
        match s {
            "pupil" => Some(PersonRole::Pupil),
            "staff" => Some(PersonRole::Staff),
            _ => None,
        }
    }

    /// The role as stored; one no console wrote is an error, not a guess.
    pub(super) fn from_stored(s: &str) -> Result<PersonRole, super::sql::SqlError> {
        PersonRole::parse(s).ok_or_else(|| super::sql::SqlError::Column {
            column: 3,
            message: super::UnknownStoredValue {
                what: "the person's role",
                found: s.to_owned(),
                expected: "pupil, staff",
            }
            .to_string(),
        })
    }

    /// Which AUP this person is shown.
    pub fn audience(self) -> Audience {
        match self {
            PersonRole::Pupil => Audience::Pupils,
            PersonRole::Staff => Audience::Staff,
        }
    }
}

/// One person from the MIS file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRecord {
    pub account: String,
    pub name: String,
    pub year_group: String,
    pub role: PersonRole,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportCounts {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
}

/// A user's most recent AUP answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastDecision {
    pub audience: String,
    pub version: u32,
    pub decision: String,
    pub time: UnixMillis,
}

/// One account in the register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRow {
    pub account: String,
    pub name: Option<String>,
    pub year_group: Option<String>,
    pub role: Option<PersonRole>,
    pub imported: Option<UnixMillis>,
    pub first_seen: Option<UnixMillis>,
    pub last_seen: Option<UnixMillis>,
    /// Hostnames (or ids) of the devices used.
    pub devices: Vec<String>,
    /// The latest answer for each audience, newest first.
    pub decisions: Vec<LastDecision>,
}

impl AccountRow {
    /// Which AUP the account is shown: staff if the MIS says so.
    pub fn audience(&self) -> Audience {
        self.role.map_or(Audience::Pupils, PersonRole::audience)
    }

    /// The latest answer to `version` of the AUP named `audience` (an
    /// audience's name, or a year group's for its own AUP).
    pub fn answer_to(&self, audience: &str, version: u32) -> Option<&LastDecision> {
        self.decisions
            .iter()
            .find(|d| d.audience == audience && d.version == version)
    }
}

/// A published AUP text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AupVersion {
    pub audience: String,
    pub version: u32,
    pub markdown: String,
    pub published: UnixMillis,
    pub staff: String,
}

pub fn audience_str(a: Audience) -> &'static str {
    match a {
        Audience::Pupils => "pupils",
        Audience::Staff => "staff",
    }
}

/// The register and the AUP's history.
pub trait RegisterStore {
    /// Every account, by account name.
    ///
    /// # Errors
    /// A storage failure.
    fn accounts(&self) -> Result<Vec<AccountRow>, StoreError>;

    /// Accounts the MIS names as staff.
    ///
    /// # Errors
    /// A storage failure.
    fn mis_staff_accounts(&self) -> Result<Vec<String>, StoreError>;

    /// Writes an MIS import (already checked whole) and its audit entry in
    /// one transaction; its accounts belong to `school` (`None` on a
    /// console of one school).
    ///
    /// # Errors
    /// [`StoreError::Refused`] if an account is on another school's
    /// register, or the school does not exist; a storage failure. Nothing
    /// is written then.
    fn import_people(
        &self,
        people: &[PersonRecord],
        school: Option<&str>,
        audit: &AuditEntry<'_>,
    ) -> Result<ImportCounts, StoreError>;

    /// Every published AUP text, newest first.
    ///
    /// # Errors
    /// A storage failure.
    fn aup_versions(&self) -> Result<Vec<AupVersion>, StoreError>;

    /// Records a published text (the policy carries it to the agents).
    ///
    /// # Errors
    /// A storage failure.
    fn record_aup_version(&self, version: &AupVersion) -> Result<(), StoreError>;
}
