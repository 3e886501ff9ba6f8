//! The schools of a trust. A console of one school has none and nothing
//! about it changes. Once a trust adds its schools, each laptop belongs to
//! the school its enrolment token named (and every record made on it, with
//! it), each member of staff and API token either to one school or to the
//! trust (none: every school), each account of the register to the school
//! whose register named it, and each audit line to the school it concerns.
//! A school's staff see their school only, through every page and route
//! (see [`super::scope::Scope`]); the trust's staff see every school.

use protocol::UnixMillis;
use serde::Serialize;

use super::StoreError;

/// A school of the trust, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct School {
    /// Short and fixed: `north-academy`.
    pub id: String,
    /// As staff read it: `North Academy`.
    pub name: String,
    pub created: UnixMillis,
    /// Laptops enrolled for it.
    pub devices: u64,
    /// Its own staff accounts.
    pub staff: u64,
}

/// Checks a school's id: 1 to 40 of `a-z`, `0-9` and `-`.
///
/// # Errors
/// What is wrong with it, and what is allowed.
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 40
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{id:?} is not a school id: use 1 to 40 of a-z, 0-9 and '-' (for example north-academy)"
        ))
    }
}

/// What the console keeps of the trust's schools.
pub trait SchoolStore {
    /// Every school, by id, with its laptops and staff counted.
    ///
    /// # Errors
    /// A storage failure.
    fn schools(&self) -> Result<Vec<School>, StoreError>;
    /// Adds a school, with its audit line naming `who` (the actor and
    /// where from).
    ///
    /// # Errors
    /// [`StoreError::Refused`] for a bad id or one taken; a storage
    /// failure.
    fn add_school(
        &self,
        id: &str,
        name: &str,
        who: (&str, &str),
        now: UnixMillis,
    ) -> Result<(), StoreError>;
    /// The school a staff account belongs to; `None` for the trust's staff
    /// (and for an account that does not exist).
    ///
    /// # Errors
    /// A storage failure.
    fn staff_school(&self, name: &str) -> Result<Option<String>, StoreError>;
}

/// Refuses a school that is not one of the console's.
///
/// # Errors
/// [`StoreError::Refused`] naming the schools there are.
pub fn require_school(store: &dyn SchoolStore, id: &str) -> Result<(), StoreError> {
    let schools = store.schools()?;
    if schools.iter().any(|s| s.id == id) {
        return Ok(());
    }
    let known: Vec<&str> = schools.iter().map(|s| s.id.as_str()).collect();
    Err(StoreError::Refused(if known.is_empty() {
        format!(
            "there is no school {id:?}: this console has no schools (add one with `console-server school add`)"
        )
    } else {
        format!(
            "there is no school {id:?}; the schools are: {}",
            known.join(", ")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_school_id_is_short_lower_case_letters_digits_and_dashes() {
        assert!(check_id("north-academy").is_ok());
        assert!(check_id("st-marys-2").is_ok());
        for bad in ["", "North", "a b", "x/y", "é", &"a".repeat(41)] {
            let e = check_id(bad).unwrap_err();
            assert!(e.contains("a-z, 0-9"), "{bad:?}: {e}");
        }
    }
}
