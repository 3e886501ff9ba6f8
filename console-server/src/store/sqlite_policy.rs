//! The SQLite store's policy versions, saved whole; a change is published
//! only over the version it started from.

use protocol::{Policy, UnixMillis};
use rusqlite::params;

use super::sqlite::*;
use super::*;

impl PolicyStore for SqliteStore {
    fn policy(&self) -> Result<Policy, StoreError> {
        let body: String = self
            .reader
            .get()
            .query_row(
                "SELECT body FROM policies ORDER BY version DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .map_err(db("reading the policy"))?;
        serde_json::from_str(&body)
            .map_err(|e| StoreError::Corrupt(format!("the stored policy does not parse: {e}")))
    }

    fn set_policy(&self, mut policy: Policy, now: UnixMillis) -> Result<Policy, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db("saving the policy"))?;
        let version: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM policies",
                [],
                |r| r.get(0),
            )
            .map_err(db("saving the policy"))?;
        policy.version = version as u64;
        let body = serde_json::to_string(&policy).expect("a policy serialises");
        tx.execute(
            "INSERT INTO policies (version, created, body) VALUES (?1, ?2, ?3)",
            params![version, now.0, body],
        )
        .map_err(db("saving the policy"))?;
        tx.commit().map_err(db("saving the policy"))?;
        Ok(policy)
    }

    fn publish_policy(
        &self,
        based_on: u64,
        mut policy: Policy,
        audit: &AuditEntry<'_>,
        aup_by: &str,
    ) -> Result<Option<Policy>, StoreError> {
        let during = "publishing the policy";
        let mut conn = lock(&self.writer);
        let tx = conn.transaction().map_err(db(during))?;
        let newest: i64 = tx
            .query_row("SELECT COALESCE(MAX(version), 0) FROM policies", [], |r| {
                r.get(0)
            })
            .map_err(db(during))?;
        if newest as u64 != based_on {
            return Ok(None);
        }
        policy.version = based_on + 1;
        let body = serde_json::to_string(&policy).expect("a policy serialises");
        tx.execute(
            "INSERT INTO policies (version, created, body) VALUES (?1, ?2, ?3)",
            params![policy.version as i64, audit.time.0, body],
        )
        .map_err(db(during))?;
        for a in &policy.aup {
            tx.execute(
                "INSERT OR IGNORE INTO aup_versions (audience, version, markdown, published, staff)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    super::register::audience_str(a.audience),
                    a.version,
                    a.markdown,
                    audit.time.0,
                    aup_by
                ],
            )
            .map_err(db(during))?;
        }
        insert_audit(&tx, audit).map_err(db(during))?;
        tx.commit().map_err(db(during))?;
        Ok(Some(policy))
    }
}
