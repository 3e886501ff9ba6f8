//! Every action the audit log records, by one name each. The log's filter,
//! the web console and the API all take their list from here, so an action
//! cannot be written under one name and searched for under another. Names
//! written by earlier versions (British `enrol`) are kept as aliases: a
//! filter finds old lines too.

use std::fmt;

macro_rules! audit_actions {
    ($($(#[$doc:meta])* $variant:ident = $name:literal $(| $old:literal)*,)*) => {
        /// What a member of staff, a script or the console did.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($(#[$doc])* $variant,)*
        }

        impl AuditAction {
            /// Every action, in the order the filter lists them.
            pub const ALL: &[AuditAction] = &[$(AuditAction::$variant,)*];

            /// The name written to the log.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)*
                }
            }

            /// The name, then any older names the log may hold.
            pub fn spellings(self) -> &'static [&'static str] {
                match self {
                    $(AuditAction::$variant => &[$name $(, $old)*],)*
                }
            }
        }
    };
}

audit_actions! {
    Login = "login",
    LoginFailed = "login_failed",
    Logout = "logout",
    /// A wrong password given to confirm a grave change.
    ReauthFailed = "reauth_failed",
    ChangePassword = "change_password",
    EndSession = "end_session",
    ViewInbox = "view_inbox",
    ViewCapture = "view_capture",
    ViewScreenshot = "view_screenshot",
    OpenLiveFeed = "open_live_feed",
    ListCaptures = "list_captures",
    Triage = "triage",
    DeleteCapture = "delete_capture",
    AddTerm = "add_term",
    AddException = "add_exception",
    /// A reviewer's exception, waiting for an admin.
    SuggestException = "suggest_exception",
    RejectException = "reject_exception",
    SetPolicy = "set_policy",
    /// Staff accounts from the MIS import, put into the policy.
    SetStaffAccounts = "set_staff_accounts",
    PublishAup = "publish_aup",
    ViewAup = "view_aup",
    ViewAupDecisions = "view_aup_decisions",
    ViewAupPending = "view_aup_pending",
    EnrollDevice = "enroll_device" | "enrol_device",
    MintEnrollToken = "mint_enroll_token" | "mint_enrol_token",
    RevokeDevice = "revoke_device",
    MintApiToken = "mint_api_token",
    RevokeApiToken = "revoke_api_token",
    RevokeEnrollToken = "revoke_enroll_token",
    /// A staff account made (the command line wrote `add_user`).
    AddStaff = "add_staff" | "add_user",
    SetRole = "set_role",
    DisableStaff = "disable_staff",
    EnableStaff = "enable_staff",
    ImportRegister = "import_register",
    ImportRegisterRefused = "import_register_refused",
    ViewRegister = "view_register",
    ReadAudit = "read_audit",
    ExportAudit = "export_audit",
    ReadTrends = "read_trends",
    ReadWeeklyVisits = "read_weekly_visits",
    ViewWeeklyReport = "view_weekly_report",
    ExportWeeklyReport = "export_weekly_report",
    SignOffWeek = "sign_off_week",
    /// An alert delivered (by the console itself).
    AlertSent = "alert_sent",
    /// An attempt to deliver an alert that failed.
    AlertFailed = "alert_failed",
    /// An alert rule made or changed on the Settings page.
    SetAlertRule = "set_alert_rule",
    /// A group's policy layer set or removed.
    SetPolicyLayer = "set_policy_layer",
    /// The accounts or laptops of a group replaced.
    SetGroupMembers = "set_group_members",
    /// The school's terms replaced.
    SetTermDates = "set_term_dates",
    /// A reviewer limited to groups, or given the whole school again.
    SetStaffScope = "set_staff_scope",
    /// What applies to a user looked at (`/policy/effective`).
    ViewEffectivePolicy = "view_effective_policy",
    /// An alert rule deleted on the Settings page.
    DeleteAlertRule = "delete_alert_rule",
    ImportDomainList = "import_domain_list",
    ReadTamper = "read_tamper",
    ViewTamper = "view_tamper",
    AcknowledgeTamper = "acknowledge_tamper",
    SubjectExport = "subject_export",
    /// Records deleted by retention, counted by kind (captures are audited
    /// one by one as `delete_capture`).
    ExpireRecords = "expire_records",
    /// Screenshot files no capture names, removed.
    SweepImages = "sweep_images",
    /// A school added to the trust's console.
    AddSchool = "add_school",
}

impl AuditAction {
    /// The action named `name`, by its name or an older one.
    pub fn parse(name: &str) -> Option<AuditAction> {
        Self::ALL
            .iter()
            .copied()
            .find(|a| a.spellings().contains(&name))
    }
}

/// A triage note as the audit log records it: whether there was one and how
/// long, never its words. The note is kept with the capture's history and
/// goes when the capture does; the audit log outlives captures and must not
/// keep what staff wrote about a pupil after the capture is gone.
pub fn note_summary(note: &str) -> String {
    match note.trim().chars().count() {
        0 => "no note".to_owned(),
        n => format!("a note of {n} characters, kept with the capture"),
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    #[test]
    fn every_name_is_one_action_and_enrol_is_spelt_one_way() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            for name in a.spellings() {
                assert!(seen.insert(*name), "{name} names two actions");
                assert_eq!(AuditAction::parse(name), Some(*a));
            }
            assert!(!a.as_str().contains("enrol_"), "{a}");
        }
        assert_eq!(
            AuditAction::parse("mint_enrol_token"),
            Some(AuditAction::MintEnrollToken)
        );
        assert_eq!(AuditAction::parse("nonsense"), None);
    }

    #[test]
    fn a_note_is_counted_never_copied() {
        let said = super::note_summary("Spoke to Amy's mum about the bruises");
        assert!(
            !said.contains("Amy") && said.contains("36 characters"),
            "{said}"
        );
        assert_eq!(super::note_summary("  "), "no note");
    }
}
