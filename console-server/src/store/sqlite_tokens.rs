//! [`super::tokens::TokenStore`] on SQLite.

use super::sqlite::{SqliteStore, db, id_str, insert_audit};
use super::tokens::*;
use super::{AuditEntry, Role, StoreError, rfc3339};
use protocol::UnixMillis;
use rusqlite::{OptionalExtension, params};

fn token_id(hash: &str) -> String {
    hash.chars().take(ID_LEN).collect()
}

fn role(text: &str) -> Result<Role, StoreError> {
    Role::parse(text).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "an API token has the role {text:?}, which is not admin, reviewer or auditor"
        ))
    })
}

/// An id typed by staff: the first characters of a hash, lower case.
fn id_pattern(id: &str) -> Option<String> {
    let id = id.trim().to_ascii_lowercase();
    (id.len() >= 6 && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("{id}%"))
}

impl TokenStore for SqliteStore {
    fn add_api_token(&self, t: &NewApiToken<'_>, now: UnixMillis) -> Result<(), StoreError> {
        self.sqlite_writer()?
            .execute(
                "INSERT INTO api_tokens (hash, name, role, created, owner, expires)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.hash, t.name, t.role.as_str(), now.0, t.owner, t.expires.0],
            )
            .map_err(db("adding an API token"))?;
        Ok(())
    }

    fn check_api_token(&self, hash: &str, now: UnixMillis) -> Result<ApiTokenCheck, StoreError> {
        type Row = (
            String,
            String,
            Option<String>,
            i64,
            Option<i64>,
            Option<String>,
            Option<i64>,
        );
        let row: Option<Row> = self
            .sqlite_reader()?
            .query_row(
                "SELECT t.name, t.role, t.owner, t.expires, t.revoked, u.role, u.disabled
                 FROM api_tokens t LEFT JOIN users u ON u.name = t.owner
                 WHERE t.hash = ?1",
                [hash],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()
            .map_err(db("checking an API token"))?;
        let Some((name, token_role, owner, expires, revoked, owner_role, disabled)) = row else {
            return Ok(ApiTokenCheck::Refused(
                "the bearer token is not valid (unknown); make one with `console-server api-token`"
                    .into(),
            ));
        };
        let token_role = role(&token_role)?;
        let refused = |why: String| Ok(ApiTokenCheck::Refused(why));
        if let Some(at) = revoked {
            return refused(format!(
                "the bearer token {name:?} was revoked at {}",
                rfc3339(UnixMillis(at))
            ));
        }
        if expires <= now.0 {
            return refused(format!(
                "the bearer token {name:?} expired at {}; make a new one with `console-server api-token`",
                rfc3339(UnixMillis(expires))
            ));
        }
        if let Some(owner) = &owner {
            let Some(owner_role) = owner_role else {
                return refused(format!(
                    "the bearer token {name:?} belongs to {owner:?}, who no longer has an account"
                ));
            };
            if disabled.is_some() {
                return refused(format!(
                    "the bearer token {name:?} belongs to {owner:?}, whose account is disabled"
                ));
            }
            let owner_role = role(&owner_role)?;
            if owner_role != token_role && owner_role != Role::Admin {
                return refused(format!(
                    "the bearer token {name:?} is for the {} role, which its owner {owner:?} no longer holds",
                    token_role.as_str()
                ));
            }
        }
        Ok(ApiTokenCheck::Valid {
            name,
            role: token_role,
            owner,
        })
    }

    fn touch_api_token(&self, hash: &str, now: UnixMillis) -> Result<(), StoreError> {
        self.sqlite_writer()?
            .execute(
                "UPDATE api_tokens SET last_used = ?2 WHERE hash = ?1",
                params![hash, now.0],
            )
            .map_err(db("recording an API token's use"))?;
        Ok(())
    }

    fn api_tokens(&self, now: UnixMillis) -> Result<Vec<ApiTokenInfo>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut stmt = conn
            .prepare(
                "SELECT hash, name, role, owner, created, expires, last_used, revoked
                 FROM api_tokens ORDER BY created DESC, name",
            )
            .map_err(db("listing API tokens"))?;
        type Row = (
            String,
            String,
            String,
            Option<String>,
            i64,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            })
            .map_err(db("listing API tokens"))?
            .collect::<Result<_, _>>()
            .map_err(db("listing API tokens"))?;
        rows.into_iter()
            .map(
                |(hash, name, r, owner, created, expires, last_used, revoked)| {
                    Ok(ApiTokenInfo {
                        id: token_id(&hash),
                        name,
                        role: role(&r)?,
                        owner,
                        created: rfc3339(UnixMillis(created)),
                        expires: rfc3339(UnixMillis(expires)),
                        last_used: last_used.map(|t| rfc3339(UnixMillis(t))),
                        revoked: revoked.map(|t| rfc3339(UnixMillis(t))),
                        live: revoked.is_none() && expires > now.0,
                    })
                },
            )
            .collect()
    }

    fn revoke_api_tokens(
        &self,
        name: Option<&str>,
        id: Option<&str>,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        let conn = self.sqlite_writer()?;
        let changed = match (name, id.and_then(id_pattern)) {
            (Some(name), _) => conn.execute(
                "UPDATE api_tokens SET revoked = ?2 WHERE name = ?1 AND revoked IS NULL",
                params![name, now.0],
            ),
            (None, Some(pattern)) => conn.execute(
                "UPDATE api_tokens SET revoked = ?2 WHERE hash LIKE ?1 AND revoked IS NULL",
                params![pattern, now.0],
            ),
            (None, None) => return Ok(0),
        }
        .map_err(db("revoking an API token"))?;
        Ok(changed as u64)
    }

    fn add_enroll_token(
        &self,
        secret_hash: &str,
        expires: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.sqlite_writer()?
            .execute(
                "INSERT INTO enroll_tokens (hash, created, expires) VALUES (?1, ?2, ?3)",
                params![secret_hash, now.0, expires.0],
            )
            .map_err(db("recording an enrollment token"))?;
        Ok(())
    }

    fn enroll_tokens(&self, now: UnixMillis) -> Result<Vec<EnrollTokenInfo>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut stmt = conn
            .prepare(
                "SELECT hash, created, expires FROM enroll_tokens
                 WHERE used IS NULL AND revoked IS NULL AND expires > ?1
                 ORDER BY created DESC",
            )
            .map_err(db("listing enrollment tokens"))?;
        stmt.query_map([now.0], |r| {
            Ok(EnrollTokenInfo {
                id: token_id(&r.get::<_, String>(0)?),
                created: rfc3339(UnixMillis(r.get(1)?)),
                expires: rfc3339(UnixMillis(r.get(2)?)),
            })
        })
        .map_err(db("listing enrollment tokens"))?
        .collect::<Result<_, _>>()
        .map_err(db("listing enrollment tokens"))
    }

    fn revoke_enroll_token(&self, id: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let Some(pattern) = id_pattern(id) else {
            return Ok(false);
        };
        let conn = self.sqlite_writer()?;
        let changed = conn
            .execute(
                "UPDATE enroll_tokens SET revoked = ?2
                 WHERE hash LIKE ?1 AND used IS NULL AND revoked IS NULL",
                params![pattern, now.0],
            )
            .map_err(db("revoking an enrollment token"))?;
        Ok(changed > 0)
    }

    fn enroll_device(
        &self,
        secret_hash: &str,
        device: &NewDevice<'_>,
        audit: &AuditEntry<'_>,
        now: UnixMillis,
    ) -> Result<Result<(), TokenRefusal>, StoreError> {
        let mut conn = self.sqlite_writer()?;
        let tx = conn.transaction().map_err(db("enrolling a device"))?;
        let changed = tx
            .execute(
                "UPDATE enroll_tokens SET used = ?2, device = ?3
                 WHERE hash = ?1 AND used IS NULL AND revoked IS NULL AND expires > ?2",
                params![secret_hash, now.0, id_str(device.id)],
            )
            .map_err(db("redeeming an enrollment token"))?;
        if changed == 0 {
            // expires, used, device, revoked
            type Row = (i64, Option<i64>, Option<String>, Option<i64>);
            let row: Option<Row> = tx
                .query_row(
                    "SELECT expires, used, device, revoked FROM enroll_tokens WHERE hash = ?1",
                    [secret_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(db("redeeming an enrollment token"))?;
            return Ok(Err(match row {
                None => TokenRefusal::Unknown,
                Some((_, Some(used), device, _)) => TokenRefusal::Used {
                    at: rfc3339(UnixMillis(used)),
                    device: device.unwrap_or_default(),
                },
                Some((_, None, _, Some(revoked))) => {
                    TokenRefusal::Revoked(rfc3339(UnixMillis(revoked)))
                }
                Some((expires, None, _, None)) => {
                    TokenRefusal::Expired(rfc3339(UnixMillis(expires)))
                }
            }));
        }
        tx.execute(
            "INSERT INTO devices (id, hostname, os, agent_version, enrolled, first_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            params![
                id_str(device.id),
                device.hostname,
                device.os,
                device.agent_version,
                now.0
            ],
        )
        .map_err(db("recording an enrolled device"))?;
        insert_audit(&tx, audit).map_err(db("writing the enrollment to the audit log"))?;
        tx.commit().map_err(db("committing an enrollment"))?;
        Ok(Ok(()))
    }
}
