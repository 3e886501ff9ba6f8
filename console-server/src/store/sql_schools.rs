//! [`super::schools::SchoolStore`], on either database.

use protocol::UnixMillis;

use super::schools::{School, SchoolStore, check_id};
use super::sql::params;
use super::sql_audit::write_audit;
use super::sql_store::SqlStore;
use super::{AuditAction, AuditEntry, StoreError};

impl SchoolStore for SqlStore {
    fn schools(&self) -> Result<Vec<School>, StoreError> {
        self.read("listing the schools", |db| {
            db.query_map(
                "SELECT s.id, s.name, s.created,
                        (SELECT COUNT(*) FROM devices d WHERE d.school = s.id),
                        (SELECT COUNT(*) FROM users u WHERE u.school = s.id)
                 FROM schools s ORDER BY s.id",
                &[],
                |r| {
                    Ok(School {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        created: r.get(2)?,
                        devices: r.get::<i64>(3)?.max(0) as u64,
                        staff: r.get::<i64>(4)?.max(0) as u64,
                    })
                },
            )
        })
    }

    fn add_school(
        &self,
        id: &str,
        name: &str,
        (actor, origin): (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        check_id(id).map_err(StoreError::Refused)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(StoreError::Refused(
                "a school's name must be 1 to 200 characters".into(),
            ));
        }
        let added = self.write("adding a school", |db| {
            let changed = db.execute(
                "INSERT INTO schools (id, name, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                &params![id, name, now],
            )?;
            if changed == 0 {
                return Ok(false);
            }
            write_audit(
                db,
                &AuditEntry {
                    actor,
                    action: AuditAction::AddSchool,
                    target: id,
                    detail: name,
                    origin,
                    time: now,
                },
            )?;
            Ok(true)
        })?;
        if added {
            Ok(())
        } else {
            Err(StoreError::Refused(format!(
                "there is a school {id:?} already; choose another id"
            )))
        }
    }

    fn staff_school(&self, name: &str) -> Result<Option<String>, StoreError> {
        let school: Option<Option<String>> =
            self.read("reading a staff account's school", |db| {
                db.query_opt(
                    "SELECT school FROM users WHERE name = ?1",
                    &params![name],
                    |r| r.get(0),
                )
            })?;
        Ok(school.flatten())
    }
}
