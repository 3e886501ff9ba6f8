//! [`super::suggestions::SuggestionStore`], on either database.

use super::sql::{Row, SqlError, params};
use super::sql_store::SqlStore;
use super::suggestions::*;
use super::{StoreError, rfc3339};
use protocol::UnixMillis;
use uuid::Uuid;

const COLUMNS: &str =
    "id, time, category, phrase, suggested_by, capture, status, decided_by, decided_time";

fn row(r: &Row) -> Result<(Suggestion, String), SqlError> {
    let capture: Option<String> = r.get(5)?;
    Ok((
        Suggestion {
            id: r.get(0)?,
            time: rfc3339(r.get(1)?),
            category: r.get(2)?,
            phrase: r.get(3)?,
            suggested_by: r.get(4)?,
            capture: capture.and_then(|c| Uuid::parse_str(&c).ok()),
            status: SuggestionStatus::Pending,
            decided_by: r.get(7)?,
            decided_time: r.get::<Option<UnixMillis>>(8)?.map(rfc3339),
        },
        r.get(6)?,
    ))
}

fn with_status((mut s, status): (Suggestion, String)) -> Result<Suggestion, StoreError> {
    s.status = SuggestionStatus::parse(&status)?;
    Ok(s)
}

impl SuggestionStore for SqlStore {
    fn suggest_exception(
        &self,
        category: &str,
        phrase: &str,
        by: &str,
        capture: Option<Uuid>,
        now: UnixMillis,
    ) -> Result<i64, StoreError> {
        self.write("recording an exception suggestion", |db| {
            let pending: Option<i64> = db.query_opt(
                "SELECT id FROM exception_suggestions
                 WHERE status = 'pending' AND category = ?1 AND phrase = ?2",
                &params![category, phrase],
                |r| r.get(0),
            )?;
            match pending {
                Some(id) => Ok(id),
                None => db.query_row(
                    "INSERT INTO exception_suggestions
                         (time, category, phrase, suggested_by, capture, status)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending') RETURNING id",
                    &params![now, category, phrase, by, capture],
                    |r| r.get(0),
                ),
            }
        })
    }

    fn exception_suggestions(&self, decided: u32) -> Result<Vec<Suggestion>, StoreError> {
        let rows = self.read("listing exception suggestions", |db| {
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
                out.extend(db.query_map(&sql, &params![limit], row)?);
            }
            Ok(out)
        })?;
        rows.into_iter().map(with_status).collect()
    }

    fn exception_suggestion(&self, id: i64) -> Result<Option<Suggestion>, StoreError> {
        self.read("reading an exception suggestion", |db| {
            db.query_opt(
                &format!("SELECT {COLUMNS} FROM exception_suggestions WHERE id = ?1"),
                &params![id],
                row,
            )
        })?
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
        let status = if approve {
            SuggestionStatus::Approved
        } else {
            SuggestionStatus::Rejected
        };
        let changed = self.write("deciding an exception suggestion", |db| {
            db.execute(
                "UPDATE exception_suggestions SET status = ?2, decided_by = ?3, decided_time = ?4
                 WHERE id = ?1 AND status = 'pending'",
                &params![id, status.as_str(), by, now],
            )
        })?;
        Ok(changed == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suggestion_waits_once_and_is_decided_once() {
        crate::store::testing::on_each(crate::policy::default_policy, |s| {
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
            s.write("damaging a row", |db| {
                db.execute(
                    "UPDATE exception_suggestions SET status = 'maybe' WHERE id = ?1",
                    &params![c],
                )
            })
            .unwrap();
            assert!(matches!(
                s.exception_suggestion(c),
                Err(StoreError::Corrupt(_))
            ));
        });
    }
}
