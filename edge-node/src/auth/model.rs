//! Auth's validated domain types (parse, don't validate) and its wire types — what crosses
//! HTTP. Storage rows live in `store.rs`; conversions are written out by hand.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::permissions::Role;
use crate::http::error::ApiError;

/// A normalised (trimmed, lower-case) e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, String> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("must not be empty".into());
        }
        if raw.chars().count() > 254 {
            return Err("must be at most 254 characters".into());
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("must be an e-mail address like name@hotel.example".into());
        };
        let bad = |s: &str| s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad(local)
            || bad(domain)
            || domain.contains('@')
            || domain.starts_with('.')
            || domain.ends_with('.')
        {
            return Err("must be an e-mail address like name@hotel.example".into());
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's display name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<PersonName, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        // Counted as sent, surrounding spaces included, as the document's maxLength counts.
        if raw.chars().count() > 200 {
            return Err("must be at most 200 characters".into());
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(PersonName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A six-digit TOTP code as typed (spaces allowed between digit groups).
#[derive(Debug, Clone)]
pub struct TotpCode(String);

impl TotpCode {
    pub fn parse(raw: &str) -> Result<TotpCode, String> {
        let code: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
            Ok(TotpCode(code))
        } else {
            Err("must be the 6-digit code from the authenticator app".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses one field, turning a refusal into a 422 that names it.
pub fn field<T>(name: &str, parsed: Result<T, String>) -> Result<T, ApiError> {
    parsed.map_err(|reason| ApiError::invalid_field(name, reason))
}

/// A role read back from storage. An unknown one means damaged data or a bug, not bad input,
/// so it is a 500 that names whose role it was.
pub fn stored_role(role: &str, whose: &str) -> Result<Role, ApiError> {
    Role::parse(role).ok_or_else(|| ApiError::internal(format!("{whose} has unknown role {role}")))
}

/// A presented (not new) password: only its size is checked.
pub fn presented_password(name: &str, raw: String) -> Result<String, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid_field(name, "must not be empty"));
    }
    // Characters, as the document's maxLength counts; at most 4 KiB, cheap to hash.
    if raw.chars().count() > super::password::MAX_PASSWORD_CHARS {
        return Err(ApiError::invalid_field(name, "is too long"));
    }
    Ok(raw)
}

// ---- wire types -------------------------------------------------------------------------

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "email": "clerk@harbour-view.example", "password": "a long passphrase of words" }))]
pub struct LoginRequest {
    #[schema(
        min_length = 1,
        max_length = 254,
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]+@[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.]([^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "name@hotel.example"
    )]
    pub email: String,
    /// At most 1024 characters.
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

/// An access token (JWT, about 15 minutes) and a single-use refresh token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// Returned by login for an account with two-factor login on: send `mfa_token` and the code
/// to `/auth/verify-mfa` within five minutes.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaChallenge {
    pub mfa_required: bool,
    pub mfa_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    Tokens(TokenPair),
    Mfa(MfaChallenge),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyMfaRequest {
    pub mfa_token: String,
    /// The 6-digit code from the authenticator app (spaces between digits allowed).
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([0-9][\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*){6}$",
        example = "123456"
    )]
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(
        min_length = 1,
        max_length = 254,
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]+@[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.]([^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "name@hotel.example"
    )]
    pub email: String,
    #[schema(min_length = 1, max_length = 200, format = "stayos:line")]
    pub name: String,
    /// 12 to 128 characters, no control characters, and not easily guessed (zxcvbn score 3
    /// of 4, counting the person's e-mail and name as known words): a passphrase of
    /// unrelated words is best.
    #[schema(min_length = 12, max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub password: String,
    pub role: Role,
    /// Property ids the account works at; defaults to the caller's properties.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub properties: Option<Vec<String>>,
}

/// A change of a staff account's role or properties; only the given fields change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStaffRequest {
    #[serde(default)]
    pub role: Option<Role>,
    /// The complete new list of property ids the account works at.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub properties: Option<Vec<String>>,
}

/// A staff account as shown to staff.
#[derive(Debug, Serialize, ToSchema)]
pub struct StaffView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub properties: Vec<String>,
    pub mfa_enabled: bool,
    pub disabled: bool,
    pub created_at: String,
}

/// Who is calling: a staff member on a session, or an integration's API key.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    /// `staff` or `api_key`.
    pub kind: &'static str,
    pub id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub role: Role,
    pub properties: Vec<String>,
    /// The permissions the role holds.
    pub permissions: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MfaSetupResponse {
    /// Base32 secret, for typing into an authenticator app by hand.
    pub secret: String,
    /// `otpauth://totp/...` URL, for a QR code.
    pub otpauth_url: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaCodeRequest {
    /// The 6-digit code from the authenticator app (spaces between digits allowed).
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([0-9][\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*){6}$",
        example = "123456"
    )]
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// At most 1024 characters.
    #[schema(min_length = 1, max_length = 1024)]
    pub current_password: String,
    /// 12 to 128 characters, no control characters, and not easily guessed (zxcvbn score 3
    /// of 4): a passphrase of unrelated words is best.
    #[schema(min_length = 12, max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Whether this is the session making the request.
    pub current: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    #[schema(min_length = 1, max_length = 200, format = "stayos:line")]
    pub name: String,
    pub role: Role,
    /// Property ids the key may act on; defaults to the creator's properties.
    #[serde(default)]
    #[schema(min_items = 1)]
    pub properties: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub properties: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// The person who created the key is disabled or no longer holds a role that may grant
    /// the key's: the key does not authenticate until that changes back.
    pub suspended: bool,
}

/// A new API key: `key` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub api_key: ApiKeyView,
    pub key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Anna@Hotel.Example ").map(|e| e.0),
            Ok("anna@hotel.example".into())
        );
        for bad in ["", "anna", "@hotel.example", "anna@", "an na@hotel.example", "a@b@c", "a@.b"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn totp_codes_are_six_digits() {
        assert_eq!(TotpCode::parse("123 456").map(|c| c.0), Ok("123456".into()));
        assert!(TotpCode::parse("12345").is_err());
        assert!(TotpCode::parse("12345a").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(PersonName::parse("  Anna Berg ").map(|n| n.0), Ok("Anna Berg".into()));
        assert!(PersonName::parse("   ").is_err());
        assert!(PersonName::parse(&"x".repeat(201)).is_err());
        assert!(PersonName::parse("a\u{0}b").is_err());
    }
}
