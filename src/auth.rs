//! Secrets people and integrations hold: API tokens, session cookies and one-time
//! links (random, shown once, stored only as a SHA-256 hash), and passwords (argon2id).
//!
//! A token carries 256 random bits, so a fast hash is enough: there is nothing to
//! brute-force that a slow password hash would protect. A password is chosen by a
//! person and gets the slow hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Marks Switchboard tokens, so a leaked one is recognisable in a secret scanner.
const PREFIX: &str = "sb_";

pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// 256 random bits, URL-safe: a session cookie's value, a CSRF token, a link's token.
pub fn random_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// argon2id with the crate's defaults (19 MiB, 2 passes: OWASP's recommendation), as a
/// PHC string that carries its own salt and parameters.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|err| err.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|err| err.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| err.to_string())
}

/// Whether `password` matches the PHC string. A malformed stored hash matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(stored).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// The link an agent follows to set their password, printed by the CLI and returned to
/// admins: the token rides in the fragment, which browsers never send to a server or
/// put in a `Referer`, so it stays out of every access log.
pub fn link_url(public_url: &str, token: &str) -> String {
    format!("{public_url}/setup#{token}")
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_distinct_and_hash_stably() {
        let first = generate_token().unwrap();
        let second = generate_token().unwrap();
        assert!(first.starts_with(PREFIX) && first.len() == PREFIX.len() + 43);
        assert_ne!(first, second);
        assert_eq!(hash_token(&first), hash_token(&first));
        assert_ne!(hash_token(&first), hash_token(&second));
    }

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert_ne!(hash, hash_password("correct horse battery").unwrap(), "salted");
        assert!(!verify_password("anything", "not a hash"));
    }
}
