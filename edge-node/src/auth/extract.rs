//! Who is calling: the `Authorized<P>` extractor authenticates the request (JWT access token
//! or API key) and checks permission `P`, so a handler's signature says who may call it.
//! `ClientInfo` carries the caller's address and user agent for sessions and the audit log.

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use subtle::ConstantTimeEq as _;

use super::model::stored_role;
use super::permissions::{RequiredPermission, Role};
use super::store;
use super::tokens::{self, API_KEY_PREFIX};
use crate::audit::Actor;
use crate::http::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;

#[derive(Debug, Clone)]
pub enum PrincipalKind {
    Staff { staff_id: String, session_id: String },
    ApiKey { key_id: String },
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub role: Role,
    pub name: String,
    pub email: Option<String>,
    pub mfa_enabled: Option<bool>,
    /// Properties the caller may act on.
    pub properties: Vec<String>,
}

impl Principal {
    pub fn is_api_key(&self) -> bool {
        matches!(self.kind, PrincipalKind::ApiKey { .. })
    }

    pub fn actor(&self) -> Actor {
        match &self.kind {
            PrincipalKind::Staff { staff_id, .. } => Actor::Staff(staff_id.clone()),
            PrincipalKind::ApiKey { key_id } => Actor::ApiKey(key_id.clone()),
        }
    }

    /// The staff account and session behind the request; API keys have neither.
    pub fn staff_session(&self) -> Result<(&str, &str), ApiError> {
        match &self.kind {
            PrincipalKind::Staff { staff_id, session_id } => Ok((staff_id, session_id)),
            PrincipalKind::ApiKey { .. } => Err(ApiError::forbidden(
                "staff_only",
                "this action is for a signed-in staff member, not an API key",
            )),
        }
    }
}

/// An authenticated caller whose role holds permission `P`.
#[derive(Debug)]
pub struct Authorized<P>(pub Principal, pub PhantomData<P>);

impl<P: RequiredPermission> FromRequestParts<AppState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = authenticate(parts, state).await?;
        if !principal.role.allows(P::PERMISSION) {
            return Err(ApiError::forbidden(
                "missing_permission",
                format!(
                    "the role {} does not have the permission {}",
                    principal.role,
                    P::PERMISSION.as_str()
                ),
            )
            .with_details(serde_json::json!({ "permission": P::PERMISSION.as_str() })));
        }
        Ok(Authorized(principal, PhantomData))
    }
}

fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let missing = || {
        ApiError::unauthorized(
            "unauthenticated",
            "this route needs `Authorization: Bearer <access token or API key>`",
        )
    };
    let value = parts.headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    let token = bearer_token(parts)?;
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_api_key(token, state).await;
    }
    let claims = state.keys.verify_access(token).ok_or_else(|| {
        ApiError::unauthorized(
            "invalid_token",
            "the access token is invalid or has expired; refresh it or log in again",
        )
    })?;
    let (staff_id, session_id) = (claims.sub, claims.sid);
    let now = now_ms();
    let lookup = (staff_id.clone(), session_id.clone());
    let found = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let (staff_id, session_id) = lookup;
            let Some(auth) = store::session_auth(conn, &session_id, &staff_id, now)? else {
                return Ok(None);
            };
            let properties = store::staff_properties(conn, &staff_id)?;
            Ok(Some((auth, properties)))
        })
        .await?;
    let Some((auth, properties)) = found.filter(|(auth, _)| auth.live) else {
        return Err(ApiError::unauthorized(
            "session_ended",
            "this session has ended (logged out, revoked or account disabled); log in again",
        ));
    };
    let role = stored_role(&auth.role, &format!("staff {staff_id}"))?;
    Ok(Principal {
        kind: PrincipalKind::Staff { staff_id, session_id },
        role,
        name: auth.name,
        email: Some(auth.email),
        mfa_enabled: Some(auth.mfa_enabled),
        properties,
    })
}

/// Last-used times of API keys are kept to the minute, so an integration polling many times a
/// second does not turn every read into a write.
const API_KEY_TOUCH_INTERVAL_MS: i64 = 60_000;

async fn authenticate_api_key(key: &str, state: &AppState) -> Result<Principal, ApiError> {
    let invalid = || ApiError::unauthorized("invalid_api_key", "the API key is invalid or revoked");
    let key_id = tokens::parse_api_key(key).ok_or_else(invalid)?.to_string();
    let presented = tokens::hash_token(key);
    let lookup = key_id.clone();
    let (row, creator_properties) = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let Some(row) = store::get_api_key(conn, &lookup)? else { return Ok(None) };
            let creator_properties = store::staff_properties(conn, &row.created_by)?;
            Ok(Some((row, creator_properties)))
        })
        .await?
        .ok_or_else(invalid)?;
    let matches: bool = row.secret_hash.ct_eq(&presented).into();
    if !matches || row.revoked_at.is_some() {
        return Err(invalid());
    }
    if row.suspended {
        // Only someone holding the real key gets here, so telling why is safe and useful.
        return Err(ApiError::unauthorized(
            "api_key_suspended",
            "the API key is suspended: the person who created it is disabled or no longer holds \
             a role that may grant the key's; it works again when they do, or ask a manager for \
             a new key",
        ));
    }
    let role = stored_role(&row.role, &format!("api key {key_id}"))?;
    let now = now_ms();
    if row.last_used_at.is_none_or(|t| now - t > API_KEY_TOUCH_INTERVAL_MS) {
        let db = state.db.clone();
        let id = key_id.clone();
        tokio::spawn(async move {
            let touched = db
                .write(move |tx| -> Result<_, ApiError> { Ok(store::touch_api_key(tx, &id, now)?) })
                .await;
            if let Err(err) = touched {
                tracing::warn!(error = %err, "could not record API key use");
            }
        });
    }
    Ok(Principal {
        kind: PrincipalKind::ApiKey { key_id },
        role,
        name: row.name,
        email: None,
        mfa_enabled: None,
        // A key acts only where its creator still works: taking a person off a property
        // takes their keys off it too.
        properties: row.properties.into_iter().filter(|p| creator_properties.contains(p)).collect(),
    })
}

/// The caller's address and user agent (never rejects).
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect());
        Ok(ClientInfo { ip, user_agent })
    }
}
