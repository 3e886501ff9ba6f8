//! The store's policy versions, saved whole; a change is published only
//! over the version it started from.

use protocol::{Policy, UnixMillis};

use super::sql::{Db, SqlError, params};
use super::sql_audit::write_audit;
use super::sql_store::*;
use super::*;

/// The newest policy.
pub(super) fn newest_policy(db: &mut Db<'_, '_>) -> Result<Option<String>, SqlError> {
    db.query_opt(
        "SELECT body FROM policies ORDER BY version DESC LIMIT 1",
        &[],
        |r| r.get(0),
    )
}

/// Writes `default_policy` as version 1 if there is no policy yet.
pub(super) fn first_policy(db: &mut Db<'_, '_>, default_policy: &Policy) -> Result<(), SqlError> {
    if newest_policy(db)?.is_some() {
        return Ok(());
    }
    let mut policy = default_policy.clone();
    policy.version = 1;
    let body = serde_json::to_string(&policy).expect("a policy serialises");
    db.execute(
        "INSERT INTO policies (version, created, body) VALUES (1, ?1, ?2)",
        &params![UnixMillis::now(), body],
    )?;
    Ok(())
}

impl PolicyStore for SqlStore {
    fn policy(&self) -> Result<Policy, StoreError> {
        let body = self
            .read("reading the policy", newest_policy)?
            .ok_or_else(|| StoreError::Corrupt("there is no policy stored".into()))?;
        serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("the stored policy does not parse: {e}")))
    }

    fn set_policy(&self, policy: Policy, now: UnixMillis) -> Result<Policy, StoreError> {
        self.write("saving the policy", |db| {
            let mut policy = policy.clone();
            let version: i64 = db.query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM policies",
                &[],
                |r| r.get(0),
            )?;
            policy.version = version as u64;
            let body = serde_json::to_string(&policy).expect("a policy serialises");
            db.execute(
                "INSERT INTO policies (version, created, body) VALUES (?1, ?2, ?3)",
                &params![version, now, body],
            )?;
            Ok(policy)
        })
    }

    fn publish_policy(
        &self,
        based_on: u64,
        policy: Policy,
        audit: &AuditEntry<'_>,
        aup_by: &str,
    ) -> Result<Option<Policy>, StoreError> {
        self.write("publishing the policy", |db| {
            let newest: i64 =
                db.query_row("SELECT COALESCE(MAX(version), 0) FROM policies", &[], |r| {
                    r.get(0)
                })?;
            if newest as u64 != based_on {
                return Ok(None);
            }
            let mut policy = policy.clone();
            policy.version = based_on + 1;
            let body = serde_json::to_string(&policy).expect("a policy serialises");
            db.execute(
                "INSERT INTO policies (version, created, body) VALUES (?1, ?2, ?3)",
                &params![policy.version, audit.time, body],
            )?;
            for a in &policy.aup {
                db.execute(
                    "INSERT INTO aup_versions (audience, version, markdown, published, staff)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    &params![
                        super::register::audience_str(a.audience),
                        a.version,
                        a.markdown,
                        audit.time,
                        aup_by
                    ],
                )?;
            }
            write_audit(db, audit)?;
            Ok(Some(policy))
        })
    }
}
