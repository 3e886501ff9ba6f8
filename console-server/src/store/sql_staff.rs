//! The store's staff accounts and their browser sessions.

use protocol::UnixMillis;

use super::sql::{Row, SqlError, params};
use super::sql_store::*;
use super::*;

impl UserStore for SqlStore {
    fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        school: Option<&str>,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        if let Some(school) = school {
            super::schools::require_school(self, school)?;
        }
        let changed = self.write("adding a user", |db| {
            db.execute(
                "INSERT INTO users (name, role, password_hash, created, school)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                &params![name, role.as_str(), password_hash, now, school],
            )
        })?;
        if changed == 0 {
            return Err(StoreError::Refused(format!(
                "a user named {name:?} already exists; choose another name"
            )));
        }
        Ok(())
    }
}

fn staff_row(r: &Row) -> Result<StaffAccount, SqlError> {
    Ok(StaffAccount {
        name: r.get(0)?,
        role: stored_as(&r.get::<String>(1)?)?,
        created: r.get(2)?,
        disabled: r.get::<Option<i64>>(3)?.is_some(),
        password_hash: r.get(4)?,
        school: r.get(5)?,
    })
}

fn session_row(r: &Row) -> Result<WebSession, SqlError> {
    Ok(WebSession {
        id_hash: r.get(0)?,
        user: r.get(1)?,
        role: stored_as(&r.get::<String>(2)?)?,
        csrf: r.get(3)?,
        created: r.get(4)?,
        last_seen: r.get(5)?,
        origin: r.get(6)?,
        agent: r.get(7)?,
    })
}

const SESSION_COLUMNS: &str =
    "s.id_hash, s.user, u.role, s.csrf, s.created, s.last_seen, s.origin, s.agent";

impl StaffStore for SqlStore {
    fn staff_account(&self, name: &str) -> Result<Option<StaffAccount>, StoreError> {
        self.read("reading a staff account", |db| {
            db.query_opt(
                "SELECT name, role, created, disabled, password_hash, school FROM users WHERE name = ?1",
                &params![name],
                staff_row,
            )
        })
    }

    fn staff_accounts(&self) -> Result<Vec<StaffAccount>, StoreError> {
        self.read("listing staff accounts", |db| {
            db.query_map(
                "SELECT name, role, created, disabled, password_hash, school FROM users ORDER BY name",
                &[],
                staff_row,
            )
        })
    }

    fn set_staff_role(&self, name: &str, role: Role) -> Result<bool, StoreError> {
        self.write("changing a role", |db| {
            let changed = db.execute(
                "UPDATE users SET role = ?2 WHERE name = ?1",
                &params![name, role.as_str()],
            )?;
            // Groups limit reviewers only: one made admin or auditor sees
            // the whole school, and made a reviewer again starts from it.
            if role != Role::Reviewer {
                db.execute("DELETE FROM staff_scopes WHERE staff = ?1", &params![name])?;
            }
            Ok(changed == 1)
        })
    }

    fn set_staff_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.write("disabling an account", |db| {
            let changed = db.execute(
                "UPDATE users SET disabled = ?2 WHERE name = ?1",
                &params![name, disabled.then_some(now)],
            )?;
            if disabled {
                db.execute("DELETE FROM web_sessions WHERE user = ?1", &params![name])?;
            }
            Ok(changed == 1)
        })
    }

    fn set_staff_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let changed = self.write("changing a password", |db| {
            db.execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                &params![name, password_hash],
            )
        })?;
        Ok(changed == 1)
    }

    fn open_session(&self, s: &WebSession) -> Result<(), StoreError> {
        self.write("opening a session", |db| {
            db.execute(
                "INSERT INTO web_sessions (id_hash, user, csrf, created, last_seen, origin, agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &params![
                    s.id_hash,
                    s.user,
                    s.csrf,
                    s.created,
                    s.last_seen,
                    s.origin,
                    s.agent
                ],
            )
        })?;
        Ok(())
    }

    fn session(&self, id_hash: &str) -> Result<Option<WebSession>, StoreError> {
        self.read("reading a session", |db| {
            db.query_opt(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.name = s.user
                     WHERE s.id_hash = ?1 AND u.disabled IS NULL"
                ),
                &params![id_hash],
                session_row,
            )
        })
    }

    fn touch_session(&self, id_hash: &str, now: UnixMillis) -> Result<(), StoreError> {
        self.write("recording session activity", |db| {
            db.execute(
                "UPDATE web_sessions SET last_seen = ?2 WHERE id_hash = ?1",
                &params![id_hash, now],
            )
        })?;
        Ok(())
    }

    fn end_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let changed = self.write("ending a session", |db| {
            db.execute(
                "DELETE FROM web_sessions WHERE id_hash = ?1",
                &params![id_hash],
            )
        })?;
        Ok(changed == 1)
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<WebSession>, StoreError> {
        self.read("listing sessions", |db| {
            db.query_map(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.name = s.user
                     WHERE s.user = ?1 ORDER BY s.created"
                ),
                &params![user],
                session_row,
            )
        })
    }

    fn purge_sessions(
        &self,
        idle_before: UnixMillis,
        opened_before: UnixMillis,
    ) -> Result<usize, StoreError> {
        let n = self.write("purging expired sessions", |db| {
            db.execute(
                "DELETE FROM web_sessions WHERE last_seen < ?1 OR created < ?2",
                &params![idle_before, opened_before],
            )
        })?;
        Ok(n as usize)
    }
}
