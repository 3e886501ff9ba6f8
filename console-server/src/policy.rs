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

/// Version 1 of every new console's policy.
pub fn default_policy() -> Policy {
    Policy {
        version: 1,
        aup: vec![AupText {
            audience: Audience::Pupils,
            version: 1,
            markdown: DEFAULT_PUPIL_AUP.into(),
        }],
        ..Policy::baseline()
    }
}

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
