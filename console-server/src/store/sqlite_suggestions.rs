//! [`super::suggestions::SuggestionStore`] on SQLite.

use super::sqlite::{SqliteStore, db, id_str};
use super::suggestions::*;
use super::{StoreError, rfc3339};
use protocol::UnixMillis;
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

const COLUMNS: &str =
    "id, time, category, phrase, suggested_by, capture, status, decided_by, decided_time";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Suggestion, String)> {
    let capture: Option<String> = r.get(5)?;
    Ok((
        Suggestion {
            id: r.get(0)?,
            time: rfc3339(UnixMillis(r.get(1)?)),
            category: r.get(2)?,
            phrase: r.get(3)?,
            suggested_by: r.get(4)?,
            capture: capture.and_then(|c| Uuid::parse_str(&c).ok()),
            status: SuggestionStatus::Pending,
            decided_by: r.get(7)?,
            decided_time: r.get::<_, Option<i64>>(8)?.map(|t| rfc3339(UnixMillis(t))),
        },
        r.get(6)?,
    ))
}

fn with_status((mut s, status): (Suggestion, String)) -> Result<Suggestion, StoreError> {
    s.status = SuggestionStatus::parse(&status)?;
    Ok(s)
}

impl SuggestionStore for SqliteStore {
    fn suggest_exception(
        &self,
        category: &str,
        phrase: &str,
        by: &str,
        capture: Option<Uuid>,
        now: UnixMillis,
    ) -> Result<i64, StoreError> {
        let mut conn = self.sqlite_writer()?;
        let tx = conn
            .transaction()
            .map_err(db("recording an exception suggestion"))?;
        let pending: Option<i64> = tx
            .query_row(
                "SELECT id FROM exception_suggestions
                 WHERE status = 'pending' AND category = ?1 AND phrase = ?2",
                params![category, phrase],
                |r| r.get(0),
            )
            .optional()
            .map_err(db("recording an exception suggestion"))?;
        let id = match pending {
            Some(id) => id,
            None => {
                tx.execute(
                    "INSERT INTO exception_suggestions
                         (time, category, phrase, suggested_by, capture, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
                    params![now.0, category, phrase, by, capture.map(id_str)],
                )
                .map_err(db("recording an exception suggestion"))?;
                tx.last_insert_rowid()
            }
        };
        tx.commit()
            .map_err(db("recording an exception suggestion"))?;
        Ok(id)
    }

    fn exception_suggestions(&self, decided: u32) -> Result<Vec<Suggestion>, StoreError> {
        let conn = self.sqlite_reader()?;
        let mut out = Vec::new();
        for (sql, limit) in [
            (
                format!(
                    "SELECT {COLUMNS} FROM exception_suggestions
                     WHERE status = 'pending' ORDER BY id LIMIT ?1"
                ),
                10_000,
            ),
            (
                format!(
                    "SELECT {COLUMNS} FROM exception_suggestions
                     WHERE status <> 'pending' ORDER BY decided_time DESC, id DESC LIMIT ?1"
                ),
                decided,
            ),
        ] {
            let mut stmt = conn
                .prepare(&sql)
                .map_err(db("listing exception suggestions"))?;
            let rows = stmt
                .query_map([limit], row)
                .map_err(db("listing exception suggestions"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db("listing exception suggestions"))?;
            for r in rows {
                out.push(with_status(r)?);
            }
        }
        Ok(out)
    }

    fn exception_suggestion(&self, id: i64) -> Result<Option<Suggestion>, StoreError> {
        let conn = self.sqlite_reader()?;
        conn.query_row(
            &format!("SELECT {COLUMNS} FROM exception_suggestions WHERE id = ?1"),
            [id],
            row,
        )
        .optional()
        .map_err(db("reading an exception suggestion"))?
        .map(with_status)
        .transpose()
    }

    fn decide_exception(
        &self,
        id: i64,
        approve: bool,
        by: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let conn = self.sqlite_writer()?;
        let status = if approve {
            SuggestionStatus::Approved
        } else {
            SuggestionStatus::Rejected
        };
        let changed = conn
            .execute(
                "UPDATE exception_suggestions SET status = ?2, decided_by = ?3, decided_time = ?4
                 WHERE id = ?1 AND status = 'pending'",
                params![id, status.as_str(), by, now.0],
            )
            .map_err(db("deciding an exception suggestion"))?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::images::FsImageStore;

    fn store(dir: &std::path::Path) -> SqliteStore {
        let images = FsImageStore::open(&dir.join("images")).unwrap();
        SqliteStore::open(
            &dir.join("console.db"),
            Arc::new(images),
            crate::policy::default_policy,
        )
        .unwrap()
    }

    #[test]
    fn a_suggestion_waits_once_and_is_decided_once() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let capture = Uuid::now_v7();
        let a = s
            .suggest_exception(
                "weapons",
                "knife skills",
                "lead",
                Some(capture),
                UnixMillis(1),
            )
            .unwrap();
        let again = s
            .suggest_exception("weapons", "knife skills", "other", None, UnixMillis(2))
            .unwrap();
        assert_eq!(a, again, "the same phrase pending is one suggestion");
        let b = s
            .suggest_exception("drugs", "weed the garden", "lead", None, UnixMillis(3))
            .unwrap();
        let listed = s.exception_suggestions(10).unwrap();
        assert_eq!(listed.iter().map(|x| x.id).collect::<Vec<_>>(), [a, b]);
        assert_eq!(listed[0].capture, Some(capture));
        assert_eq!(listed[0].status, SuggestionStatus::Pending);

        assert!(s.decide_exception(a, true, "head", UnixMillis(4)).unwrap());
        assert!(
            !s.decide_exception(a, false, "other", UnixMillis(5))
                .unwrap(),
            "the first decision stands"
        );
        assert!(s.decide_exception(b, false, "head", UnixMillis(6)).unwrap());
        let a = s.exception_suggestion(a).unwrap().unwrap();
        assert_eq!(a.status, SuggestionStatus::Approved);
        assert_eq!(a.decided_by.as_deref(), Some("head"));
        assert!(s.exception_suggestion(999).unwrap().is_none());
        // Decided, the phrase may be suggested afresh.
        let c = s
            .suggest_exception("weapons", "knife skills", "lead", None, UnixMillis(7))
            .unwrap();
        assert_ne!(c, a.id);

        // A status nobody wrote is an error, not a default.
        s.sqlite_writer()
            .unwrap()
            .execute(
                "UPDATE exception_suggestions SET status = 'maybe' WHERE id = ?1",
                [c],
            )
            .unwrap();
        assert!(matches!(
            s.exception_suggestion(c),
            Err(StoreError::Corrupt(_))
        ));
    }
}
