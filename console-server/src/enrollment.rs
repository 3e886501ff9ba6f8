//! Minting the one-time tokens that enroll laptops, and API tokens.

use std::time::Duration;

use protocol::UnixMillis;
use protocol::enroll::EnrollToken;

use crate::data_dir::{DataDir, hostname};
use crate::secret::{random_token, token_hash};
use crate::store::{Role, StoreError, UserStore};

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
) -> Result<(String, EnrollToken), StoreError> {
    let address = match address {
        Some(a) => a.to_owned(),
        None => default_address(&dir.settings, dir.settings.agent_listen.port()),
    };
    record_enroll_token(dir.store.as_ref(), &dir.ca_fingerprint(), ttl, address)
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
///
/// # Errors
/// A storage failure.
pub fn record_enroll_token(
    store: &dyn crate::store::Store,
    ca_fingerprint: &str,
    ttl: Duration,
    address: String,
) -> Result<(String, EnrollToken), StoreError> {
    let secret = random_token();
    let now = UnixMillis::now();
    let expires = UnixMillis(now.0 + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2));
    store.add_enroll_token(&token_hash(&secret), expires, now)?;
    let token = EnrollToken {
        address,
        ca_fingerprint: ca_fingerprint.to_owned(),
        secret,
        expires: expires.0,
    };
    Ok((token.encode(), token))
}

/// Records a new API token for `name` and returns it.
///
/// # Errors
/// A storage failure.
pub fn mint_api_token(dir: &DataDir, name: &str, role: Role) -> Result<String, StoreError> {
    let token = format!("sgapi_{}", random_token());
    dir.store
        .add_api_token(name, role, &token_hash(&token), UnixMillis::now())?;
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
