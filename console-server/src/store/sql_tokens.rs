//! [`super::tokens::TokenStore`], on either database.

use super::sql::params;
use super::sql_audit::write_audit;
use super::sql_store::SqlStore;
use super::tokens::*;
use super::{AuditEntry, Role, StoreError, rfc3339};
use protocol::UnixMillis;

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

impl TokenStore for SqlStore {
    fn add_api_token(&self, t: &NewApiToken<'_>, now: UnixMillis) -> Result<(), StoreError> {
        self.write("adding an API token", |db| {
            db.execute(
                "INSERT INTO api_tokens (hash, name, role, created, owner, expires, school)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &params![
                    t.hash,
                    t.name,
                    t.role.as_str(),
                    now,
                    t.owner,
                    t.expires,
                    t.school
                ],
            )
        })?;
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
            Option<String>,
        );
        let row: Option<Row> = self.read("checking an API token", |db| {
            db.query_opt(
                "SELECT t.name, t.role, t.owner, t.expires, t.revoked, u.role, u.disabled,
                        CASE WHEN t.owner IS NULL THEN t.school ELSE u.school END
                 FROM api_tokens t LEFT JOIN users u ON u.name = t.owner
                 WHERE t.hash = ?1",
                &params![hash],
                |r| {
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
                },
            )
        })?;
        let Some((name, token_role, owner, expires, revoked, owner_role, disabled, school)) = row
        else {
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
            school,
        })
    }

    fn touch_api_token(&self, hash: &str, now: UnixMillis) -> Result<(), StoreError> {
        self.write("recording an API token's use", |db| {
            db.execute(
                "UPDATE api_tokens SET last_used = ?2 WHERE hash = ?1",
                &params![hash, now],
            )
        })?;
        Ok(())
    }

    fn api_tokens(&self, now: UnixMillis) -> Result<Vec<ApiTokenInfo>, StoreError> {
        type Row = (
            String,
            String,
            String,
            Option<String>,
            i64,
            i64,
            Option<i64>,
            Option<i64>,
            Option<String>,
        );
        let rows: Vec<Row> = self.read("listing API tokens", |db| {
            db.query_map(
                "SELECT t.hash, t.name, t.role, t.owner, t.created, t.expires, t.last_used,
                        t.revoked, CASE WHEN t.owner IS NULL THEN t.school ELSE u.school END
                 FROM api_tokens t LEFT JOIN users u ON u.name = t.owner
                 ORDER BY t.created DESC, t.name",
                &[],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                },
            )
        })?;
        rows.into_iter()
            .map(
                |(hash, name, r, owner, created, expires, last_used, revoked, school)| {
                    Ok(ApiTokenInfo {
                        id: token_id(&hash),
                        name,
                        role: role(&r)?,
                        owner,
                        school,
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
        let pattern = id.and_then(id_pattern);
        self.write("revoking an API token", |db| match (name, &pattern) {
            (Some(name), _) => db.execute(
                "UPDATE api_tokens SET revoked = ?2 WHERE name = ?1 AND revoked IS NULL",
                &params![name, now],
            ),
            (None, Some(pattern)) => db.execute(
                "UPDATE api_tokens SET revoked = ?2 WHERE hash LIKE ?1 AND revoked IS NULL",
                &params![pattern, now],
            ),
            (None, None) => Ok(0),
        })
    }

    fn add_enroll_token(
        &self,
        secret_hash: &str,
        expires: UnixMillis,
        school: Option<&str>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        if let Some(school) = school {
            super::schools::require_school(self, school)?;
        }
        self.write("recording an enrollment token", |db| {
            db.execute(
                "INSERT INTO enroll_tokens (hash, created, expires, school)
                 VALUES (?1, ?2, ?3, ?4)",
                &params![secret_hash, now, expires, school],
            )
        })?;
        Ok(())
    }

    fn enroll_tokens(&self, now: UnixMillis) -> Result<Vec<EnrollTokenInfo>, StoreError> {
        self.read("listing enrollment tokens", |db| {
            db.query_map(
                "SELECT hash, created, expires, school FROM enroll_tokens
                 WHERE used IS NULL AND revoked IS NULL AND expires > ?1
                 ORDER BY created DESC",
                &params![now],
                |r| {
                    Ok(EnrollTokenInfo {
                        id: token_id(&r.get::<String>(0)?),
                        created: rfc3339(r.get(1)?),
                        expires: rfc3339(r.get(2)?),
                        school: r.get(3)?,
                    })
                },
            )
        })
    }

    fn revoke_enroll_token(&self, id: &str, now: UnixMillis) -> Result<bool, StoreError> {
        let Some(pattern) = id_pattern(id) else {
            return Ok(false);
        };
        let changed = self.write("revoking an enrollment token", |db| {
            db.execute(
                "UPDATE enroll_tokens SET revoked = ?2
                 WHERE hash LIKE ?1 AND used IS NULL AND revoked IS NULL",
                &params![pattern, now],
            )
        })?;
        Ok(changed > 0)
    }

    fn enroll_device(
        &self,
        secret_hash: &str,
        device: &NewDevice<'_>,
        audit: &AuditEntry<'_>,
        now: UnixMillis,
    ) -> Result<Result<(), TokenRefusal>, StoreError> {
        self.write("enrolling a device", |db| {
            let changed = db.execute(
                "UPDATE enroll_tokens SET used = ?2, device = ?3
                 WHERE hash = ?1 AND used IS NULL AND revoked IS NULL AND expires > ?2",
                &params![secret_hash, now, device.id],
            )?;
            if changed == 0 {
                // expires, used, device, revoked
                type Row = (i64, Option<i64>, Option<String>, Option<i64>);
                let row: Option<Row> = db.query_opt(
                    "SELECT expires, used, device, revoked FROM enroll_tokens WHERE hash = ?1",
                    &params![secret_hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?;
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
            db.execute(
                "INSERT INTO devices (id, hostname, os, agent_version, enrolled, first_seen, school)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5, (SELECT school FROM enroll_tokens WHERE hash = ?6))",
                &params![
                    device.id,
                    device.hostname,
                    device.os,
                    device.agent_version,
                    now,
                    secret_hash
                ],
            )?;
            write_audit(db, audit)?;
            Ok(Ok(()))
        })
    }
}
