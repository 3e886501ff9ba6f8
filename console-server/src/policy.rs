//! The policy agents run: what to capture, how, and the AUP to show. The
//! stored policy is versioned (each change is a new version); connected
//! agents get a new version as soon as it is saved, through a
//! [`tokio::sync::watch`] channel every connection listens on.

use std::sync::Arc;

use protocol::{Audience, AupText, Policy};

/// The Acceptable Use Policy shown to pupils until the school writes its own.
pub const DEFAULT_PUPIL_AUP: &str = "\
# Using school computers

This computer belongs to the school. To keep everyone safe, the school
checks how it is used.

- What you type and what is on the screen is checked for words and phrases
  that could mean someone is at risk or being harmed. When one is found, a
  copy of the screen is sent to the school's safeguarding team. Nothing else
  you type is kept.
- The websites you visit, and for how long, are recorded.
- Be kind online. Do not bully, threaten or share images of anyone.
- If something online upsets or worries you, tell a teacher, or use
  \"Report a concern\".

Choose Accept to go on using this computer.
";

/// The Acceptable Use Policy shown to staff until the school writes its own.
pub const DEFAULT_STAFF_AUP: &str = "\
# Acceptable use of school computers: staff

This computer and the school's network are provided for your work. Their
use is monitored to keep pupils and staff safe, as the school's
safeguarding duties require.

- What is typed and shown on screen is checked for words and phrases that
  may indicate a risk to someone. When one is found, a copy of the screen
  goes to the safeguarding team. Nothing else you type is kept.
- The websites visited, and for how long, are recorded.
- Keep pupils' personal data confidential and do not copy it to personal
  devices or accounts.
- Lock the screen when you leave the computer, and do not share your
  password.
- Report any safeguarding concern to the designated safeguarding lead
  without delay.

Choose Accept to go on using this computer.
";

/// The default text for an audience.
pub fn default_aup(audience: Audience) -> &'static str {
    match audience {
        Audience::Pupils => DEFAULT_PUPIL_AUP,
        Audience::Staff => DEFAULT_STAFF_AUP,
    }
}

/// Version 1 of every new console's policy.
pub fn default_policy() -> Policy {
    Policy {
        version: 1,
        aup: [Audience::Pupils, Audience::Staff]
            .into_iter()
            .map(|audience| AupText {
                audience,
                version: 1,
                markdown: default_aup(audience).into(),
            })
            .collect(),
        ..Policy::baseline()
    }
}

/// The policy with a default AUP added for each audience that has none
/// (a console made before staff had their own text); None if nothing is
/// missing.
pub fn with_default_aup(policy: &Policy) -> Option<Policy> {
    let mut p = policy.clone();
    for audience in [Audience::Pupils, Audience::Staff] {
        if p.aup_for(audience).is_none() {
            p.aup.push(AupText {
                audience,
                version: 1,
                markdown: default_aup(audience).into(),
            });
        }
    }
    (p != *policy).then_some(p)
}

/// The stored policy, with a default AUP for any audience that lacks one
/// (saved as a new version), and every AUP text in it noted in the AUP's
/// history.
///
/// # Errors
/// A storage failure.
pub fn ensure_aup(store: &dyn crate::store::Store) -> Result<Policy, crate::store::StoreError> {
    let now = protocol::UnixMillis::now();
    let mut policy = store.policy()?;
    if let Some(p) = with_default_aup(&policy) {
        policy = store.set_policy(p, now)?;
    }
    for a in &policy.aup {
        store.record_aup_version(&crate::store::register::AupVersion {
            audience: crate::store::register::audience_str(a.audience).into(),
            version: a.version,
            markdown: a.markdown.clone(),
            published: now,
            staff: "(the console's default text)".into(),
        })?;
    }
    Ok(policy)
}

/// The policy with `staff` as its staff accounts; None if they are already.
pub fn with_staff_accounts(policy: &Policy, mut staff: Vec<String>) -> Option<Policy> {
    staff.sort();
    staff.dedup();
    (policy.staff_accounts != staff).then(|| Policy {
        staff_accounts: staff,
        ..policy.clone()
    })
}

/// Longest AUP text accepted, in bytes.
pub const MAX_AUP: usize = 64 * 1024;

/// Why a policy cannot be saved.
#[derive(Debug, thiserror::Error)]
#[error("the policy cannot be used: {0}")]
pub struct PolicyError(pub String);

/// Checks a policy before it is saved and pushed: the school's libraries
/// must build together with the defaults, exactly as the agents will build
/// them.
///
/// # Errors
/// [`PolicyError`] saying which value or library is wrong.
pub fn check(policy: &Policy) -> Result<(), PolicyError> {
    if !(1..=5).contains(&policy.min_severity) {
        return Err(PolicyError(format!(
            "min_severity is {}; it must be 1 to 5",
            policy.min_severity
        )));
    }
    if policy.screenshot_max_width < 320 {
        return Err(PolicyError(
            "screenshot_max_width must be at least 320".into(),
        ));
    }
    if policy.heartbeat_seconds == 0 {
        return Err(PolicyError("heartbeat_seconds must be at least 1".into()));
    }
    for a in &policy.aup {
        if a.markdown.len() > MAX_AUP {
            return Err(PolicyError(format!(
                "the AUP for {:?} is {} bytes; at most {MAX_AUP}",
                a.audience,
                a.markdown.len()
            )));
        }
    }
    let libraries = wordlists::Libraries::builtin_with(
        policy
            .libraries
            .iter()
            .map(|f| (f.name.as_str(), f.toml.as_str())),
    )
    .map_err(|e| PolicyError(e.to_string()))?;
    wordlists::MatcherBuilder::new(libraries)
        .build()
        .map_err(|e| PolicyError(format!("the libraries do not build: {e}")))?;
    Ok(())
}

/// The current policy, shared with every agent connection.
pub type PolicyWatch = tokio::sync::watch::Receiver<Arc<Policy>>;
