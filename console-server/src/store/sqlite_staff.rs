//! The SQLite store's staff accounts and their browser sessions.

use protocol::UnixMillis;
use rusqlite::{OptionalExtension, params};

use super::sqlite::*;
use super::*;

impl UserStore for SqliteStore {
    fn add_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let changed = self
            .sqlite_writer()?
            .execute(
                "INSERT OR IGNORE INTO users (name, role, password_hash, created)
                 VALUES (?1, ?2, ?3, ?4)",
                params![name, role.as_str(), password_hash, now.0],
            )
            .map_err(db("adding a user"))?;
        if changed == 0 {
            return Err(StoreError::Refused(format!(
                "a user named {name:?} already exists; choose another name"
            )));
        }
        Ok(())
    }
}

fn staff_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StaffAccount> {
    let role: String = r.get(1)?;
    Ok(StaffAccount {
        name: r.get(0)?,
        role: stored(&role)?,
        created: UnixMillis(r.get(2)?),
        disabled: r.get::<_, Option<i64>>(3)?.is_some(),
        password_hash: r.get(4)?,
    })
}

fn session_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebSession> {
    let role: String = r.get(2)?;
    Ok(WebSession {
        id_hash: r.get(0)?,
        user: r.get(1)?,
        role: stored(&role)?,
        csrf: r.get(3)?,
        created: UnixMillis(r.get(4)?),
        last_seen: UnixMillis(r.get(5)?),
        origin: r.get(6)?,
        agent: r.get(7)?,
    })
}

const SESSION_COLUMNS: &str =
    "s.id_hash, s.user, u.role, s.csrf, s.created, s.last_seen, s.origin, s.agent";

impl StaffStore for SqliteStore {
    fn staff_account(&self, name: &str) -> Result<Option<StaffAccount>, StoreError> {
        self.sqlite_reader()?
            .query_row(
                "SELECT name, role, created, disabled, password_hash FROM users WHERE name = ?1",
                [name],
                staff_row,
            )
            .optional()
            .map_err(db("reading a staff account"))
    }

    fn staff_accounts(&self) -> Result<Vec<StaffAccount>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut stmt = conn
            .prepare("SELECT name, role, created, disabled, password_hash FROM users ORDER BY name")
            .map_err(db("listing staff accounts"))?;
        stmt.query_map([], staff_row)
            .map_err(db("listing staff accounts"))?
            .collect::<Result<_, _>>()
            .map_err(db("listing staff accounts"))
    }

    fn set_staff_role(&self, name: &str, role: Role) -> Result<bool, StoreError> {
        let mut conn = self.sqlite_writer()?;
        let tx = conn.transaction().map_err(db("changing a role"))?;
        let changed = tx
            .execute(
                "UPDATE users SET role = ?2 WHERE name = ?1",
                params![name, role.as_str()],
            )
            .map_err(db("changing a role"))?;
        // Groups limit reviewers only: one made admin or auditor sees the
        // whole school, and made a reviewer again starts from it.
        if role != Role::Reviewer {
            tx.execute("DELETE FROM staff_scopes WHERE staff = ?1", [name])
                .map_err(db("changing a role"))?;
        }
        tx.commit().map_err(db("changing a role"))?;
        Ok(changed == 1)
    }

    fn set_staff_disabled(
        &self,
        name: &str,
        disabled: bool,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut conn = self.sqlite_writer()?;
        let tx = conn.transaction().map_err(db("disabling an account"))?;
        let changed = tx
            .execute(
                "UPDATE users SET disabled = ?2 WHERE name = ?1",
                params![name, disabled.then_some(now.0)],
            )
            .map_err(db("disabling an account"))?;
        if disabled {
            tx.execute("DELETE FROM web_sessions WHERE user = ?1", [name])
                .map_err(db("ending a disabled account's sessions"))?;
        }
        tx.commit().map_err(db("disabling an account"))?;
        Ok(changed == 1)
    }

    fn set_staff_password(&self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        let changed = self
            .sqlite_writer()?
            .execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, password_hash],
            )
            .map_err(db("changing a password"))?;
        Ok(changed == 1)
    }

    fn open_session(&self, s: &WebSession) -> Result<(), StoreError> {
        self.sqlite_writer()?
            .execute(
                "INSERT INTO web_sessions (id_hash, user, csrf, created, last_seen, origin, agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.id_hash,
                    s.user,
                    s.csrf,
                    s.created.0,
                    s.last_seen.0,
                    s.origin,
                    s.agent
                ],
            )
            .map_err(db("opening a session"))?;
        Ok(())
    }

    fn session(&self, id_hash: &str) -> Result<Option<WebSession>, StoreError> {
        self.sqlite_reader()?
            .query_row(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.name = s.user
                     WHERE s.id_hash = ?1 AND u.disabled IS NULL"
                ),
                [id_hash],
                session_row,
            )
            .optional()
            .map_err(db("reading a session"))
    }

    fn touch_session(&self, id_hash: &str, now: UnixMillis) -> Result<(), StoreError> {
        self.sqlite_writer()?
            .execute(
                "UPDATE web_sessions SET last_seen = ?2 WHERE id_hash = ?1",
                params![id_hash, now.0],
            )
            .map_err(db("recording session activity"))?;
        Ok(())
    }

    fn end_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        let changed = self
            .sqlite_writer()?
            .execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])
            .map_err(db("ending a session"))?;
        Ok(changed == 1)
    }

    fn sessions_of(&self, user: &str) -> Result<Vec<WebSession>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {SESSION_COLUMNS} FROM web_sessions s JOIN users u ON u.name = s.user
                 WHERE s.user = ?1 ORDER BY s.created"
            ))
            .map_err(db("listing sessions"))?;
        stmt.query_map([user], session_row)
            .map_err(db("listing sessions"))?
            .collect::<Result<_, _>>()
            .map_err(db("listing sessions"))
    }

    fn purge_sessions(
        &self,
        idle_before: UnixMillis,
        opened_before: UnixMillis,
    ) -> Result<usize, StoreError> {
        self.sqlite_writer()?
            .execute(
                "DELETE FROM web_sessions WHERE last_seen < ?1 OR created < ?2",
                params![idle_before.0, opened_before.0],
            )
            .map_err(db("purging expired sessions"))
    }
}
