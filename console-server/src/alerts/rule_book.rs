//! Where alert rules come from: `console.toml`'s `[[alerts]]` (read at
//! start, changed by editing the file) and those admins make on the
//! Settings page (kept in the database, every change audited). Both are
//! in force together; a page rule may not take a file rule's name.

use std::sync::Arc;

use super::hours::Hours;
use super::rules::{AlertRule, RuleSet, check};
use crate::store::{Store, StoreError};

/// The file's rules and what page rules are checked against.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    /// `console.toml`'s rules.
    pub file: Vec<AlertRule>,
    pub hours: Hours,
    /// Whether `[report.smtp]` can send mail (rules that mail need it).
    pub smtp_ready: bool,
}

impl RuleBook {
    /// Puts the file's rules and the saved page rules in force. A page
    /// rule that clashes with a file rule (the file was edited since) is
    /// left out and named in the returned warnings.
    ///
    /// # Errors
    /// A storage failure.
    pub fn apply(&self, store: &Arc<dyn Store>) -> Result<Vec<String>, StoreError> {
        let mut rules = self.file.clone();
        let mut warnings = Vec::new();
        for r in store.saved_alert_rules()? {
            if self.file.iter().any(|f| f.name == r.name) {
                warnings.push(format!(
                    "the alert rule {:?} made on the Settings page is not in force: console.toml has a rule of that name; rename or delete one",
                    r.name
                ));
                continue;
            }
            rules.push(r);
        }
        store.set_alert_rules(RuleSet {
            rules,
            hours: self.hours.clone(),
        });
        Ok(warnings)
    }

    /// Whether a rule named `name` comes from `console.toml`.
    pub fn in_file(&self, name: &str) -> bool {
        self.file.iter().any(|f| f.name == name)
    }

    /// Checks a page rule (`rule`, replacing the page rule `replacing`)
    /// against the rules it would join.
    ///
    /// # Errors
    /// What is wrong, in a sentence.
    pub fn check_page_rule(
        &self,
        rule: &AlertRule,
        replacing: Option<&str>,
        saved: &[AlertRule],
    ) -> Result<(), String> {
        if self.in_file(&rule.name) {
            return Err(format!(
                "console.toml already has an alert rule named {:?}; choose another name",
                rule.name
            ));
        }
        let mut all = self.file.clone();
        all.extend(
            saved
                .iter()
                .filter(|r| Some(r.name.as_str()) != replacing)
                .cloned(),
        );
        all.push(rule.clone());
        check(&all, self.smtp_ready)
    }
}
