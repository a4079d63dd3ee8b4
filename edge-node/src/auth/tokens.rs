//! Tokens: short-lived JWT access tokens (HS256, key kept in the data dir), and opaque random
//! tokens (refresh tokens, MFA challenges, API keys) of which only a SHA-256 is stored.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Where the signing key lives inside a data directory.
pub const JWT_KEY_FILE: &str = "keys/jwt.key";
const ISSUER: &str = "stayos-edge";
const ACCESS: &str = "access";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Staff account id.
    pub sub: String,
    /// Session (refresh-token family) id; revoking it ends the access token too.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub typ: String,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to read the token signing key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the token signing key {path} is damaged (expected base64 of at least 32 bytes)")]
    Damaged { path: String },
}

impl TokenKeys {
    pub fn from_secret(secret: &[u8]) -> TokenKeys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn load(data_dir: &Path) -> Result<TokenKeys, KeyError> {
        let path = data_dir.join(JWT_KEY_FILE);
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(&path)
            .map_err(|source| KeyError::Read { path: shown.clone(), source })?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| KeyError::Damaged { path: shown.clone() })?;
        if secret.len() < 32 {
            return Err(KeyError::Damaged { path: shown });
        }
        Ok(TokenKeys::from_secret(&secret))
    }

    /// A fresh random key, base64-encoded for the key file.
    pub fn generate_secret_file_contents() -> String {
        let mut secret = [0u8; 64];
        rand::rng().fill_bytes(&mut secret);
        base64::engine::general_purpose::STANDARD.encode(secret)
    }

    /// Issues an access token; returns it with its expiry (unix seconds).
    pub fn issue_access(
        &self,
        staff_id: &str,
        session_id: &str,
        now_secs: i64,
        ttl_secs: i64,
    ) -> Result<(String, i64), jsonwebtoken::errors::Error> {
        let claims = AccessClaims {
            sub: staff_id.to_string(),
            sid: session_id.to_string(),
            iat: now_secs,
            exp: now_secs + ttl_secs,
            iss: ISSUER.to_string(),
            typ: ACCESS.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims.exp))
    }

    /// The claims of a valid, unexpired access token signed by this node.
    pub fn verify_access(&self, token: &str) -> Option<AccessClaims> {
        let data =
            jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation).ok()?;
        (data.claims.typ == ACCESS).then_some(data.claims)
    }
}

/// A new opaque token: `prefix` followed by 256 random bits, URL-safe.
pub fn new_opaque(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored for an opaque token. The tokens carry 256 random bits, so a fast hash is
/// enough: there is nothing to brute-force.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub const REFRESH_PREFIX: &str = "rt_";
pub const MFA_PREFIX: &str = "mfa_";
pub const API_KEY_PREFIX: &str = "sk_";

/// An API key is `sk_<key id, 32 hex>_<secret>`; the id finds the row, the secret is checked
/// against its hash.
pub fn new_api_key(key_id: &uuid::Uuid) -> String {
    new_opaque(&format!("{API_KEY_PREFIX}{}_", key_id.simple()))
}

/// Splits an API key into its id and the whole key (which is what is hashed).
pub fn parse_api_key(key: &str) -> Option<uuid::Uuid> {
    let rest = key.strip_prefix(API_KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() < 40 {
        return None;
    }
    uuid::Uuid::try_parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_token_verifies_only_with_its_own_key() {
        let keys = TokenKeys::from_secret(&[7u8; 64]);
        let now = jiff::Timestamp::now().as_second();
        let (token, exp) = keys.issue_access("staff-1", "session-1", now, 900).expect("issue");
        assert_eq!(exp, now + 900);
        let claims = keys.verify_access(&token).expect("valid");
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("staff-1", "session-1"));
        assert!(TokenKeys::from_secret(&[8u8; 64]).verify_access(&token).is_none());
    }

    #[test]
    fn an_expired_access_token_is_refused() {
        let keys = TokenKeys::from_secret(&[7u8; 64]);
        let long_ago = jiff::Timestamp::now().as_second() - 3600;
        let (token, _) = keys.issue_access("s", "x", long_ago, 900).expect("issue");
        assert!(keys.verify_access(&token).is_none());
    }

    #[test]
    fn api_keys_round_trip_their_id() {
        let id = uuid::Uuid::now_v7();
        let key = new_api_key(&id);
        assert_eq!(parse_api_key(&key), Some(id));
        assert_eq!(parse_api_key("sk_nothex_abc"), None);
        assert_eq!(parse_api_key("rt_whatever"), None);
    }
}
