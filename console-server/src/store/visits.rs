//! Site visits as the weekly report reads them: totals per school week
//! (kept at ingest, see [`super::week_totals`], so a week's report never
//! reads every visit row), the first sighting of each domain, the school's
//! imported domain lists, week sign-offs and the reports made on schedule.

use std::collections::HashMap;

use protocol::UnixMillis;
use serde::Serialize;

use super::StoreError;
use super::week_totals::{PairTotal, WeekTotals};

/// One of the school's imported domain lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainListInfo {
    pub category: String,
    pub severity: u8,
    pub definition: String,
    pub domains: u64,
    pub imported: UnixMillis,
    pub source: String,
}

/// A reviewer's record that a week's visits were checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeekSignoff {
    pub week: String,
    pub staff: String,
    pub time: UnixMillis,
    pub notes: String,
}

/// A weekly report made on schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledReport {
    pub week: String,
    pub generated: UnixMillis,
    pub emailed: Option<UnixMillis>,
    pub email_error: Option<String>,
}

/// What the weekly report needs from storage.
pub trait VisitStore {
    /// A school week's totals per domain, user and laptop (kept at
    /// ingest: a few thousand rows however many visits the week holds).
    ///
    /// # Errors
    /// A storage failure.
    fn week_totals(&self, week: &str) -> Result<WeekTotals, StoreError>;
    /// A school week's totals per domain and user: of the domains in
    /// `only`, or of every domain (one row a pair: the CSV and the API).
    ///
    /// # Errors
    /// A storage failure.
    fn week_pairs(&self, week: &str, only: Option<&[&str]>) -> Result<Vec<PairTotal>, StoreError>;
    /// Counts the weekly totals again if they were counted in a zone other
    /// than `zone` (or never); returns whether it did. Call at start, once
    /// the school's zone is set.
    ///
    /// # Errors
    /// A storage failure.
    fn ensure_week_totals(&self, zone: &jiff::tz::TimeZone) -> Result<bool, StoreError>;
    /// Domains first seen in `[start, end)`.
    ///
    /// # Errors
    /// A storage failure.
    fn domains_first_seen(
        &self,
        start: UnixMillis,
        end: UnixMillis,
    ) -> Result<Vec<String>, StoreError>;
    /// The imported categories of each host (its own and its parents').
    ///
    /// # Errors
    /// A storage failure.
    fn imported_categories(
        &self,
        hosts: &[&str],
    ) -> Result<HashMap<String, Vec<String>>, StoreError>;
    /// Replaces an imported list with `domains`; returns how many it holds.
    ///
    /// # Errors
    /// A storage failure.
    fn import_domain_list(
        &self,
        info: &DomainListInfo,
        domains: &[String],
    ) -> Result<u64, StoreError>;
    /// The imported lists.
    ///
    /// # Errors
    /// A storage failure.
    fn domain_lists(&self) -> Result<Vec<DomainListInfo>, StoreError>;
    /// Records the sign-off of a week and its audit entry (`sign_off_week`
    /// by the signer, from `origin`) in one transaction; false, and
    /// nothing written, if the week was already signed off.
    ///
    /// # Errors
    /// A storage failure.
    fn sign_off_week(&self, signoff: &WeekSignoff, origin: &str) -> Result<bool, StoreError>;
    /// Every sign-off, by week.
    ///
    /// # Errors
    /// A storage failure.
    fn week_signoffs(&self) -> Result<HashMap<String, WeekSignoff>, StoreError>;
    /// The earliest visit held, if any.
    ///
    /// # Errors
    /// A storage failure.
    fn first_visit(&self) -> Result<Option<UnixMillis>, StoreError>;
    /// Notes that a week's report was made (and mailed, or why not).
    ///
    /// # Errors
    /// A storage failure.
    fn record_scheduled_report(&self, report: &ScheduledReport) -> Result<(), StoreError>;
    /// The report made on schedule for a week, if any.
    ///
    /// # Errors
    /// A storage failure.
    fn scheduled_report(&self, week: &str) -> Result<Option<ScheduledReport>, StoreError>;
    /// Deletes visits that started before `cutoff`; returns how many rows.
    ///
    /// # Errors
    /// A storage failure.
    fn expire_visits(&self, cutoff: UnixMillis) -> Result<u64, StoreError>;
}
