//! The one way the policy changes. The web console's pages, `PUT
//! /api/v1/policy` and the command line all go through [`change_policy`]:
//! it starts from the newest stored policy (not a copy in memory, which
//! another process may have overtaken), applies the change, refuses an AUP
//! whose text changed without a higher version, checks that the libraries
//! build, and then saves the new version, notes its AUP texts and writes
//! the audit line in one transaction, only if nobody saved another version
//! meanwhile (else it starts again, up to three times). In the running
//! console, [`PolicyEditor`] also pushes the saved policy to the laptops.

use std::sync::Arc;

use protocol::{Policy, UnixMillis};
use tokio::sync::watch;

use crate::store::{AuditAction, AuditEntry, Store, StoreError};

/// Who is changing the policy, for the audit log and the AUP's history.
#[derive(Debug, Clone)]
pub struct Author {
    pub name: String,
    /// An address, `cli` or `api`.
    pub origin: String,
    /// How the AUP history names them (`dsl.smith`, `it (API)`).
    pub aup_label: String,
}

/// What the change is, for the audit log.
#[derive(Debug, Clone)]
pub struct ChangeNote {
    pub action: AuditAction,
    pub target: String,
    pub detail: String,
}

/// Why a policy change was not saved.
#[derive(Debug, thiserror::Error)]
pub enum PolicyChangeError<E> {
    /// The change itself refused (its own error, for the caller).
    #[error("the change was refused")]
    Refused(E),
    /// The changed policy cannot be used: a library that does not build, an
    /// AUP text changed without a new version.
    #[error("{0}")]
    Invalid(String),
    /// Others kept saving first.
    #[error(
        "the policy was changed by someone else three times while this change was made; try again"
    )]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A laptop shows an AUP version once: changed text needs a higher number.
fn aup_versions_rise(current: &Policy, next: &Policy) -> Result<(), String> {
    for a in &next.aup {
        if let Some(old) = current.aup_for(a.audience)
            && a.version <= old.version
            && a.markdown != old.markdown
        {
            return Err(format!(
                "the AUP for {:?} changed but its version is {} (in force: {}); give the new text a higher version",
                a.audience, a.version, old.version
            ));
        }
    }
    Ok(())
}

/// Applies `change` to the newest stored policy and saves the result as
/// the next version (see the module's description).
///
/// # Errors
/// [`PolicyChangeError`].
pub fn change_policy<E>(
    store: &dyn Store,
    author: &Author,
    note: &ChangeNote,
    change: &mut dyn FnMut(&mut Policy) -> Result<(), E>,
) -> Result<Policy, PolicyChangeError<E>> {
    for _ in 0..3 {
        let current = store.policy()?;
        let mut next = current.clone();
        change(&mut next).map_err(PolicyChangeError::Refused)?;
        aup_versions_rise(&current, &next).map_err(PolicyChangeError::Invalid)?;
        crate::policy::check(&next).map_err(|e| PolicyChangeError::Invalid(e.to_string()))?;
        let audit = AuditEntry {
            time: UnixMillis::now(),
            actor: &author.name,
            action: note.action,
            target: &note.target,
            detail: &note.detail,
            origin: &author.origin,
        };
        if let Some(saved) =
            store.publish_policy(current.version, next, &audit, &author.aup_label)?
        {
            return Ok(saved);
        }
    }
    Err(PolicyChangeError::Busy)
}

/// The running console's side: changes one at a time, and each saved
/// policy pushed to every connected laptop.
pub struct PolicyEditor {
    store: Arc<dyn Store>,
    watch: watch::Sender<Arc<Policy>>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl PolicyEditor {
    pub fn new(store: Arc<dyn Store>, watch: watch::Sender<Arc<Policy>>) -> PolicyEditor {
        PolicyEditor {
            store,
            watch,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Where the policy in force is published (to laptops and pages).
    pub fn watch(&self) -> &watch::Sender<Arc<Policy>> {
        &self.watch
    }

    /// [`change_policy`], then the saved policy goes to the laptops.
    ///
    /// # Errors
    /// [`PolicyChangeError`].
    pub async fn change<E: Send + 'static>(
        &self,
        author: Author,
        note: ChangeNote,
        mut change: impl FnMut(&mut Policy) -> Result<(), E> + Send + 'static,
    ) -> Result<Arc<Policy>, PolicyChangeError<E>> {
        let _turn = self.one_at_a_time.lock().await;
        let store = self.store.clone();
        let saved = tokio::task::spawn_blocking(move || {
            change_policy(store.as_ref(), &author, &note, &mut change)
        })
        .await
        .map_err(|e| {
            PolicyChangeError::Store(StoreError::Corrupt(format!(
                "the policy change stopped unexpectedly: {e}"
            )))
        })??;
        let saved = Arc::new(saved);
        self.watch.send_replace(saved.clone());
        Ok(saved)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::images::FsImageStore;
    use crate::store::sql_store::SqlStore;
    use crate::store::{AuditQuery, AuditStore, PolicyStore};

    fn store(dir: &std::path::Path) -> SqlStore {
        let images = FsImageStore::open(&dir.join("images")).unwrap();
        SqlStore::open(
            &dir.join("console.db"),
            Arc::new(images),
            crate::policy::default_policy,
        )
        .unwrap()
    }

    fn author() -> Author {
        Author {
            name: "it".into(),
            origin: "test".into(),
            aup_label: "it".into(),
        }
    }

    fn note() -> ChangeNote {
        ChangeNote {
            action: AuditAction::SetPolicy,
            target: String::new(),
            detail: "test".into(),
        }
    }

    #[test]
    fn a_change_made_meanwhile_elsewhere_is_kept_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let before = s.policy().unwrap();
        // While this change is being made, another process (the command
        // line) saves its own: the first attempt loses, the second starts
        // from the newer policy and keeps both.
        let mut first = true;
        let saved = change_policy::<String>(&s, &author(), &note(), &mut |p| {
            if std::mem::take(&mut first) {
                let mut other = s.policy().unwrap();
                other.debounce_seconds = 99;
                s.set_policy(other, UnixMillis::now()).unwrap();
            }
            p.min_severity = 4;
            Ok(())
        })
        .unwrap();
        assert_eq!(saved.version, before.version + 2);
        assert_eq!((saved.min_severity, saved.debounce_seconds), (4, 99));
        assert_eq!(s.policy().unwrap(), saved);
        let audit = s
            .audit_query(&AuditQuery {
                action: Some(AuditAction::SetPolicy),
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(audit.len(), 1, "one audit line for one saved change");
    }

    #[test]
    fn a_bad_change_saves_nothing_and_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let before = s.policy().unwrap();
        let err = change_policy::<String>(&s, &author(), &note(), &mut |p| {
            p.libraries.push(protocol::LibraryFile {
                name: "school.toml".into(),
                toml: "[category\nbroken".into(),
            });
            Ok(())
        })
        .unwrap_err();
        assert!(
            matches!(&err, PolicyChangeError::Invalid(m) if m.contains("school.toml")),
            "{err}"
        );
        let err = change_policy::<String>(&s, &author(), &note(), &mut |p| {
            p.aup[0].markdown.push_str(" (edited)");
            Ok(())
        })
        .unwrap_err();
        assert!(
            matches!(&err, PolicyChangeError::Invalid(m) if m.contains("higher version")),
            "{err}"
        );
        let err = change_policy(&s, &author(), &note(), &mut |_| Err("no")).unwrap_err();
        assert!(matches!(err, PolicyChangeError::Refused("no")));
        assert_eq!(s.policy().unwrap(), before);
    }
}
