//! The policy as protocols 3 to 6 send it: the shape agents of those
//! versions decode (postcard is not self-describing, so it must not
//! change). [`crate::ConsoleMessage::Policy`] is written and read in it;
//! protocol 7 sends [`crate::ConsoleMessage::PolicyV7`] with the whole
//! policy. An agent also reads a policy file saved before it was upgraded
//! through it.
//!
//! What it leaves out, and so what a policy read in it has: the semantic
//! layer switched on ([`crate::Policy::semantic`]), as a console that
//! does not know it means the product's default.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::message::{AupText, LibraryFile, SourceSwitches};

/// [`crate::Policy`] without `semantic`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub version: u64,
    pub libraries: Vec<LibraryFile>,
    pub disabled_categories: Vec<String>,
    pub min_severity: u8,
    pub debounce_seconds: u32,
    pub screenshots: bool,
    pub screenshot_max_width: u32,
    pub sources: SourceSwitches,
    pub aup: Vec<AupText>,
    pub heartbeat_seconds: u32,
    pub staff_accounts: Vec<String>,
    pub page_reading_excluded: Vec<String>,
}

impl From<&crate::Policy> for Policy {
    fn from(p: &crate::Policy) -> Policy {
        Policy {
            version: p.version,
            libraries: p.libraries.clone(),
            disabled_categories: p.disabled_categories.clone(),
            min_severity: p.min_severity,
            debounce_seconds: p.debounce_seconds,
            screenshots: p.screenshots,
            screenshot_max_width: p.screenshot_max_width,
            sources: p.sources,
            aup: p.aup.clone(),
            heartbeat_seconds: p.heartbeat_seconds,
            staff_accounts: p.staff_accounts.clone(),
            page_reading_excluded: p.page_reading_excluded.clone(),
        }
    }
}

impl From<Policy> for crate::Policy {
    fn from(p: Policy) -> crate::Policy {
        crate::Policy {
            version: p.version,
            libraries: p.libraries,
            disabled_categories: p.disabled_categories,
            min_severity: p.min_severity,
            debounce_seconds: p.debounce_seconds,
            screenshots: p.screenshots,
            screenshot_max_width: p.screenshot_max_width,
            sources: p.sources,
            aup: p.aup,
            heartbeat_seconds: p.heartbeat_seconds,
            staff_accounts: p.staff_accounts,
            page_reading_excluded: p.page_reading_excluded,
            semantic: true,
        }
    }
}

/// Writes a [`crate::Policy`] in this shape (`#[serde(with)]`).
///
/// # Errors
/// The serialiser's.
pub fn serialize<S: Serializer>(policy: &crate::Policy, s: S) -> Result<S::Ok, S::Error> {
    Policy::from(policy).serialize(s)
}

/// Reads a [`crate::Policy`] from this shape (`#[serde(with)]`).
///
/// # Errors
/// The deserialiser's.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<crate::Policy, D::Error> {
    Policy::deserialize(d).map(Into::into)
}
