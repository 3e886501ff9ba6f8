//! Random secrets (enrollment and API tokens) and the hashes kept of them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

/// 32 random bytes from the operating system, base64url.
///
/// # Panics
/// If the operating system has no randomness to give, which leaves nothing
/// safe to do.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256, hex: what is stored instead of a high-entropy token. (Passwords,
/// which are low-entropy, get Argon2id instead.)
pub fn token_hash(token: &str) -> String {
    protocol::tls::fingerprint(token.as_bytes())
}

/// An Argon2id hash of a staff password, in PHC string form.
///
/// # Errors
/// If hashing fails (it does not, for passwords of sane length).
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// Whether `password` matches a hash made by [`hash_password`].
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}
