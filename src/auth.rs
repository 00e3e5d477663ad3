//! Agent API tokens: random, shown once, stored only as a SHA-256 hash.
//!
//! A token carries 256 random bits, so a fast hash is enough: there is nothing to
//! brute-force that a slow password hash would protect.

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
}
