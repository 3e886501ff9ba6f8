//! Retention beyond captures (which `CaptureStore::expire` deletes one by
//! one, each audited): tamper events, AUP answers, the console's events and
//! register entries seen on laptops but never imported, each after its
//! `[retention]` setting, counted in one audit line per kind; and the
//! screenshot files no capture names any more (left when the console
//! stopped between deleting a row and its file), swept at start.

use std::time::SystemTime;

use protocol::UnixMillis;

use super::{Retention, StoreError};

/// Records other than captures, expired; screenshot files swept.
pub trait RecordRetention {
    /// Deletes what is older than its setting; returns (what, how many)
    /// for each kind that lost rows.
    ///
    /// # Errors
    /// A storage failure.
    fn expire_records(
        &self,
        retention: &Retention,
        now: UnixMillis,
    ) -> Result<Vec<(&'static str, u64)>, StoreError>;

    /// Removes screenshot files written before `before` that no capture
    /// names; returns how many.
    ///
    /// # Errors
    /// A storage or file failure.
    fn sweep_images(&self, before: SystemTime, now: UnixMillis) -> Result<u64, StoreError>;
}
