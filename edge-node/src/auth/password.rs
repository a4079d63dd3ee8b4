//! Password hashing with argon2id at OWASP's recommended minimum (m = 19 MiB, t = 2, p = 1),
//! and the strength rule every new password must pass.
//!
//! Hashing is CPU- and memory-heavy, so it runs on tokio's blocking pool behind a semaphore
//! sized to the cores: a burst of logins queues instead of allocating 19 MiB per request.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

pub const ARGON2_M_COST_KIB: u32 = 19_456;
pub const ARGON2_T_COST: u32 = 2;
pub const ARGON2_P_COST: u32 = 1;

/// Longest password accepted at all; argon2 hashes any length, but a megabyte "password" is a
/// denial-of-service attempt, not a credential.
pub const MAX_PASSWORD_CHARS: usize = 1024;
pub const MIN_NEW_PASSWORD_CHARS: usize = 12;

/// Verified against when an e-mail has no account, so that an unknown e-mail costs the same
/// time as a wrong password: a well-formed PHC string with today's parameters (a unit test
/// checks they still match) whose digest was chosen at random, so no password matches it.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c3RheW9zLWR1bW15LXNhbHQ$1zbmgWi0yBy6yTe8HCHrTbRp7VBQoEEh9fVvR2HfBPQ";

fn argon2() -> Argon2<'static> {
    // The parameters are constants inside the range argon2 accepts.
    let params =
        Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task was cancelled")]
    Cancelled,
}

/// Hashes a password (blocking; call from a blocking context).
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Verifies a password against a PHC string (blocking). A malformed stored hash verifies as
/// false rather than erroring, after doing the same work as a real check.
pub fn verify_blocking(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => {
            let _ = verify_blocking(password, DUMMY_HASH);
            false
        }
    }
}

/// Whether a stored hash was made with other parameters than today's and should be redone.
pub fn needs_rehash(phc: &str) -> bool {
    let wanted =
        format!("$argon2id$v=19$m={ARGON2_M_COST_KIB},t={ARGON2_T_COST},p={ARGON2_P_COST}$");
    !phc.starts_with(&wanted)
}

/// The async face of hashing, shared through `AppState`.
#[derive(Clone, Debug)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Hasher { permits: Arc::new(Semaphore::new(cores)) }
    }
}

impl Hasher {
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let _permit = self.permits.acquire().await.map_err(|_| PasswordError::Cancelled)?;
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|_| PasswordError::Cancelled)?
    }

    /// Verifies `password` against `phc`, or against a dummy hash when there is no account,
    /// so both paths take the same time. Returns false for `None`.
    pub async fn verify(
        &self,
        password: String,
        phc: Option<String>,
    ) -> Result<bool, PasswordError> {
        let _permit = self.permits.acquire().await.map_err(|_| PasswordError::Cancelled)?;
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => verify_blocking(&password, &phc),
            None => {
                let _ = verify_blocking(&password, DUMMY_HASH);
                false
            }
        })
        .await
        .map_err(|_| PasswordError::Cancelled)
    }
}

/// The rule for a new password: 12 to 128 characters, and not guessable by zxcvbn (score 3 of
/// 4 or better, i.e. more than 10^8 guesses), counting the person's own e-mail, name and
/// property as known words. Returns a reason a person can act on.
pub fn check_strength(password: &str, user_inputs: &[&str]) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_NEW_PASSWORD_CHARS {
        return Err(format!("must be at least {MIN_NEW_PASSWORD_CHARS} characters long"));
    }
    if chars > 128 {
        return Err("must be at most 128 characters long".into());
    }
    if password.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    let entropy = zxcvbn::zxcvbn(password, user_inputs);
    if u8::from(entropy.score()) < 3 {
        let hint = entropy
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .unwrap_or_else(|| "it is too easy to guess".to_string());
        return Err(format!("is too weak: {hint}; use a longer passphrase of unrelated words"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_only_its_own_password() {
        let hash = hash_blocking("correct horse battery staple").expect("hash");
        assert!(verify_blocking("correct horse battery staple", &hash));
        assert!(!verify_blocking("correct horse battery stapler", &hash));
        assert!(!needs_rehash(&hash), "{hash}");
    }

    #[test]
    fn the_dummy_hash_uses_todays_parameters() {
        assert!(!needs_rehash(DUMMY_HASH));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn a_malformed_stored_hash_never_verifies() {
        assert!(!verify_blocking("anything", "not-a-phc-string"));
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        assert!(check_strength("short", &[]).unwrap_err().contains("at least 12"));
        assert!(check_strength("password1234", &[]).unwrap_err().contains("too weak"));
        let own = check_strength("anna@grandhotel.example", &["anna@grandhotel.example"]);
        assert!(own.is_err());
        assert!(check_strength("plum-ferry-quantum-atlas", &[]).is_ok());
    }
}
