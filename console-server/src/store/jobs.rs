//! Work one console instance does for all: the Monday report, retention,
//! alert delivery and escalation, the presence check. One school's console
//! is the only instance; a trust runs several on one database, and each of
//! these jobs must still run once. Each is held under a *lease*, a row of
//! `job_leases`: an instance runs the job only while it holds the lease,
//! renews it each time it runs, and a lease not renewed (its holder died)
//! passes to another instance once it runs out.

use std::time::Duration;

use protocol::UnixMillis;

use super::StoreError;
use super::sql::params;
use super::sql_store::SqlStore;

/// The leases on shared jobs.
pub trait JobStore {
    /// Takes or renews the lease on `job` for `holder` until `now + lease`;
    /// true if `holder` holds it now (it was free, had run out, or was
    /// already `holder`'s). On SQLite the console is the only instance:
    /// always true, and nothing is written.
    ///
    /// # Errors
    /// A storage failure (then the job is not run).
    fn hold_job(
        &self,
        job: &str,
        holder: &str,
        now: UnixMillis,
        lease: Duration,
    ) -> Result<bool, StoreError>;

    /// Gives up every lease `holder` has (a console stopping cleanly), so
    /// another instance need not wait for them to run out.
    ///
    /// # Errors
    /// A storage failure.
    fn release_jobs(&self, holder: &str) -> Result<(), StoreError>;
}

impl JobStore for SqlStore {
    fn hold_job(
        &self,
        job: &str,
        holder: &str,
        now: UnixMillis,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        if self.postgres_url().is_none() {
            return Ok(true);
        }
        let until = now
            .0
            .saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let changed = self.write("holding a job's lease", |db| {
            db.execute(
                "INSERT INTO job_leases (job, holder, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE job_leases.holder = excluded.holder OR job_leases.until < ?4",
                &params![job, holder, until, now],
            )
        })?;
        Ok(changed == 1)
    }

    fn release_jobs(&self, holder: &str) -> Result<(), StoreError> {
        self.write("giving up job leases", |db| {
            db.execute("DELETE FROM job_leases WHERE holder = ?1", &params![holder])
        })?;
        Ok(())
    }
}

/// One console instance's way into the shared jobs: the store and the name
/// it holds leases under.
#[derive(Clone)]
pub struct JobGate {
    store: std::sync::Arc<dyn super::Store>,
    holder: String,
}

impl JobGate {
    /// A gate for this instance: `holder` names it in `job_leases` (its
    /// hostname and a fresh id, so a restart is a new holder).
    pub fn new(store: std::sync::Arc<dyn super::Store>, holder: String) -> JobGate {
        JobGate { store, holder }
    }

    /// Whether this instance is to run `job` now: it holds (or has just
    /// taken) the lease, renewed for `lease`. A storage failure is logged
    /// and answers no. Blocks: call from a blocking thread.
    pub fn may_run(&self, job: &str, lease: Duration) -> bool {
        match self
            .store
            .hold_job(job, &self.holder, UnixMillis::now(), lease)
        {
            Ok(held) => held,
            Err(e) => {
                tracing::error!("cannot take the lease on {job}: {e}; not running it now");
                false
            }
        }
    }

    /// Gives up this instance's leases (it is stopping).
    pub fn release(&self) {
        if let Err(e) = self.store.release_jobs(&self.holder) {
            tracing::warn!(
                "cannot give up this console's job leases ({e}); they run out by themselves"
            );
        }
    }
}
