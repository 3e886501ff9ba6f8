//! Minting the one-time tokens that enroll laptops, and API tokens.

use std::time::Duration;

use protocol::UnixMillis;
use protocol::enroll::EnrollToken;

use crate::data_dir::{DataDir, hostname};
use crate::secret::{random_token, token_hash};
use crate::store::tokens::NewApiToken;
use crate::store::{Role, StoreError};

/// The longest an enrollment token may live: a token lost in an email or
/// a deployment script must not enroll a stranger's laptop next term.
pub const MAX_ENROLL_TTL: Duration = Duration::from_secs(7 * 86_400);
/// How long an API token lives unless told.
pub const DEFAULT_API_TTL: Duration = Duration::from_secs(90 * 86_400);

/// Parses `90s`, `30m`, `24h`, `7d`.
///
/// # Errors
/// A message saying the accepted forms.
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like 30m, 24h or 7d");
    let (split, _) = text.char_indices().last().ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let secs = n.saturating_mul(scale);
    if secs == 0 || secs > 365 * 86_400 {
        return Err(format!(
            "{text:?}: a token must live between 1 second and 365 days"
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// Records a new enrollment token and returns it, printable.
///
/// # Errors
/// A storage failure.
pub fn mint_enroll_token(
    dir: &DataDir,
    ttl: Duration,
    address: Option<&str>,
    school: Option<&str>,
) -> Result<(String, EnrollToken), StoreError> {
    if ttl > MAX_ENROLL_TTL {
        return Err(StoreError::Refused(format!(
            "an enrollment token may live at most 7 days (asked for {} hours); mint another when it runs out",
            ttl.as_secs() / 3600
        )));
    }
    let address = match address {
        Some(a) => a.to_owned(),
        None => default_address(&dir.settings, dir.settings.agent_listen.port()),
    };
    record_enroll_token(
        dir.store.as_ref(),
        &dir.ca_fingerprint(),
        ttl,
        address,
        school,
    )
}

/// Where laptops reach the console: the configured public address, or this
/// machine's hostname and the agent port.
pub fn default_address(settings: &crate::settings::Settings, agent_port: u16) -> String {
    if !settings.public_address.is_empty() {
        return settings.public_address.clone();
    }
    let host = hostname();
    let host = if host.is_empty() {
        "localhost".into()
    } else {
        host
    };
    format!("{host}:{agent_port}")
}

/// Records a new enrollment token for `address` and returns it, printable.
/// The laptop it enrols belongs to `school`. On a console with schools
/// (a trust's) a token must name one: a laptop of no school would be
/// seen by the trust's staff only.
///
/// # Errors
/// [`StoreError::Refused`] for a school there is not, or none named on a
/// console with schools; a storage failure.
pub fn record_enroll_token(
    store: &dyn crate::store::Store,
    ca_fingerprint: &str,
    ttl: Duration,
    address: String,
    school: Option<&str>,
) -> Result<(String, EnrollToken), StoreError> {
    if school.is_none() {
        let schools = store.schools()?;
        if !schools.is_empty() {
            let ids: Vec<&str> = schools.iter().map(|s| s.id.as_str()).collect();
            return Err(StoreError::Refused(format!(
                "this console serves several schools: say which school the laptop is for (--school, one of: {})",
                ids.join(", ")
            )));
        }
    }
    let secret = random_token();
    let now = UnixMillis::now();
    let expires = UnixMillis(now.0 + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2));
    store.add_enroll_token(&token_hash(&secret), expires, school, now)?;
    let token = EnrollToken {
        address,
        ca_fingerprint: ca_fingerprint.to_owned(),
        secret,
        expires: expires.0,
    };
    Ok((token.encode(), token))
}

/// Records a new API token for `name` and returns it. The token acts
/// for `owner` (a staff account), or, when none is named, for the staff
/// account called `name` if there is one: it stops working when that
/// account is disabled or loses the role, and sees its school. With
/// neither, it is a script's token, owned by nobody, serving `school`
/// (the trust's, with none), and lives until it expires or is revoked.
///
/// # Errors
/// [`StoreError::Refused`] if the owner has no account, is disabled or
/// does not hold the role, or `school` is not theirs or not a school; a
/// storage failure.
pub fn mint_api_token(
    store: &dyn crate::store::Store,
    name: &str,
    role: Role,
    owner: Option<&str>,
    school: Option<&str>,
    ttl: Duration,
) -> Result<String, StoreError> {
    let named = match owner {
        Some(o) => Some(store.staff_account(o)?.ok_or_else(|| {
            StoreError::Refused(format!(
                "there is no staff account {o:?} to own the token; add it with `console-server user add` or leave --owner out"
            ))
        })?),
        None => store.staff_account(name)?,
    };
    if let Some(account) = &named {
        if account.disabled {
            return Err(StoreError::Refused(format!(
                "the staff account {:?} is disabled, so it cannot own a token",
                account.name
            )));
        }
        if account.role != role && account.role != Role::Admin {
            return Err(StoreError::Refused(format!(
                "the staff account {:?} is a {}, so it cannot own a {} token",
                account.name,
                account.role.as_str(),
                role.as_str()
            )));
        }
    }
    match (&named, school) {
        (Some(account), Some(school)) if account.school.as_deref() != Some(school) => {
            return Err(StoreError::Refused(format!(
                "the token acts for {:?}, who is {}; it sees what they see, so leave --school out",
                account.name,
                match &account.school {
                    Some(s) => format!("of the school {s}"),
                    None => "of the trust".into(),
                }
            )));
        }
        (None, Some(school)) => crate::store::schools::require_school(store, school)?,
        _ => {}
    }
    let token = format!("sgapi_{}", random_token());
    let now = UnixMillis::now();
    store.add_api_token(
        &NewApiToken {
            name,
            role,
            owner: named.as_ref().map(|a| a.name.as_str()),
            hash: &token_hash(&token),
            expires: UnixMillis(now.0 + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2)),
            school: if named.is_some() { None } else { school },
        },
        now,
    )?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls() {
        assert_eq!(parse_ttl("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_ttl("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_ttl("2s").unwrap(), Duration::from_secs(2));
        for bad in [
            "",
            "h",
            "24",
            "24x",
            "-1h",
            "0s",
            "400d",
            "24é",
            "é",
            "18446744073709551615d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }
}
