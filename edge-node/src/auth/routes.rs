//! Staff auth over HTTP, at the seed's paths (`/auth/login`, `/auth/register`,
//! `/auth/refresh`, `/auth/logout`, `/auth/verify-mfa`) plus what running a hotel needs:
//! `/auth/me`, two-factor setup, password change, sessions, API keys, and staff accounts.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use totp_rs::{Builder, Secret, Totp};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Authorized, ClientInfo, Principal};
use super::model::*;
use super::password::{self, PasswordError};
use super::permissions::{Role, perm};
use super::store::{self, NewSession, NewStaff, StaffRow};
use super::throttle;
use super::tokens::{self, REFRESH_PREFIX};
use crate::audit::{self, Actor, Entry};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::etag::{IfMatch, IfMatchHeader};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::list::Page;
use crate::property;
use crate::state::AppState;
use crate::time::{now_ms, rfc3339};

/// How long an MFA challenge from `/auth/login` stays valid, and how many codes it may try.
const MFA_CHALLENGE_MS: i64 = 5 * 60_000;
const MFA_MAX_ATTEMPTS: i64 = 5;
const TOTP_ISSUER: &str = "StayOS";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(verify_mfa))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(register))
        .routes(routes!(me))
        .routes(routes!(mfa_setup))
        .routes(routes!(mfa_enable))
        .routes(routes!(mfa_disable))
        .routes(routes!(change_password))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
        .routes(routes!(list_staff))
        .routes(routes!(disable_staff))
        .routes(routes!(enable_staff))
        .routes(routes!(unlock_staff))
        .routes(routes!(update_staff))
}

impl From<PasswordError> for ApiError {
    fn from(err: PasswordError) -> Self {
        ApiError::internal(err)
    }
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthorized("invalid_credentials", "the e-mail or password is wrong")
}

/// 429 for a key locked by failed password or code checks.
fn locked_out(ms: i64) -> ApiError {
    let secs = u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1);
    ApiError::too_many_requests(
        secs,
        format!("too many failed attempts; try again in {secs} seconds"),
    )
}

/// Counts a failed password or code check against the account from `keys`' addresses (the
/// same counters login uses, so a stolen password or session cannot guess secrets where
/// login would stop it) and audits it.
fn record_secret_failure(
    tx: &rusqlite::Connection,
    staff: &StaffRow,
    keys: &throttle::Keys,
    event: &str,
    reason: &str,
    ip: Option<&str>,
    now: i64,
) -> rusqlite::Result<()> {
    let lock = throttle::record_failures(tx, keys, now)?;
    audit::record(
        tx,
        Entry::new(event, Actor::Staff(staff.id.clone()))
            .subject(&staff.id)
            .ip(ip)
            .details(json!({ "reason": reason, "locked_for_ms": lock })),
        now,
    )
}

/// Opens a session with its first refresh token; returns (session id, refresh token).
fn open_session(
    tx: &rusqlite::Connection,
    staff_id: &str,
    client: &ClientInfo,
    session_ms: i64,
    now: i64,
) -> rusqlite::Result<(String, String)> {
    let session_id = uuid::Uuid::now_v7().to_string();
    store::insert_session(
        tx,
        &NewSession {
            id: &session_id,
            staff_id,
            now,
            expires_at: now + session_ms,
            ip: client.ip.as_deref(),
            user_agent: client.user_agent.as_deref(),
        },
    )?;
    let refresh = tokens::new_opaque(REFRESH_PREFIX);
    store::insert_refresh_token(tx, &tokens::hash_token(&refresh), &session_id, now)?;
    Ok((session_id, refresh))
}

fn token_pair(
    state: &AppState,
    staff_id: &str,
    session_id: &str,
    refresh: String,
) -> Result<TokenPair, ApiError> {
    let ttl = state.config.auth.access_token_minutes as i64 * 60;
    let now_secs = now_ms() / 1000;
    let (access, _) =
        state.keys.issue_access(staff_id, session_id, now_secs, ttl).map_err(ApiError::internal)?;
    Ok(TokenPair {
        access_token: access,
        refresh_token: refresh,
        token_type: "Bearer",
        expires_in: ttl,
    })
}

fn session_ms(state: &AppState) -> i64 {
    state.config.auth.session_hours as i64 * 3_600_000
}

fn totp_for(secret_base32: &str, account: &str) -> Result<Totp, ApiError> {
    let secret = Secret::try_from_base32(secret_base32)
        .map_err(|e| ApiError::internal(format!("stored TOTP secret: {e}")))?;
    Builder::new()
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(TOTP_ISSUER))
        .build()
        .map_err(|e| ApiError::internal(format!("TOTP: {e}")))
}

/// The TOTP step `code` matches now, if any (RFC 6238: 30 s steps, one step of clock skew).
fn totp_step(totp: &Totp, code: &TotpCode) -> Option<i64> {
    let now_secs = u64::try_from(now_ms() / 1000).unwrap_or(0);
    totp.check(code.as_str(), now_secs).and_then(|step| i64::try_from(step).ok())
}

fn staff_view(row: StaffRow, properties: Vec<String>) -> Result<StaffView, ApiError> {
    let role = stored_role(&row.role, &format!("staff {}", row.id))?;
    Ok(StaffView {
        id: row.id,
        email: row.email,
        name: row.name,
        role,
        properties,
        mfa_enabled: row.mfa_enabled,
        disabled: row.disabled,
        created_at: rfc3339(row.created_at),
    })
}

// ---- login and tokens ---------------------------------------------------------------------

enum LoginCheck {
    Locked(i64),
    Open(Option<StaffRow>),
}

/// Log in with e-mail and password.
///
/// Returns a token pair, or, for an account with two-factor login on, an MFA challenge to
/// answer at `/auth/verify-mfa`. Repeated failures for one account or from one address are
/// answered with 429 and `Retry-After`.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in, or an MFA challenge", body = LoginResponse),
        (status = 401, description = "Wrong e-mail or password", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let email = field("email", Email::parse(&req.email))?;
    let password = presented_password("password", req.password)?;
    let keys = throttle::Keys::new(email.as_str(), &[client.ip.as_deref()]);

    let now = now_ms();
    let (lookup_email, check_keys) = (email.clone(), keys.clone());
    let check = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            Ok(match throttle::locked_for_any(conn, &check_keys, now)? {
                Some(ms) => LoginCheck::Locked(ms),
                None => LoginCheck::Open(store::find_staff_by_email(conn, lookup_email.as_str())?),
            })
        })
        .await?;
    let staff = match check {
        LoginCheck::Locked(ms) => return Err(locked_out(ms)),
        LoginCheck::Open(staff) => staff,
    };

    let stored_hash = staff.as_ref().map(|s| s.password_hash.clone());
    let password_ok = state.hasher.verify(password.clone(), stored_hash).await?;
    let staff = match staff {
        Some(s) if password_ok && !s.disabled => s,
        other => {
            let reason = match &other {
                None => "unknown_account",
                Some(s) if password_ok && s.disabled => "account_disabled",
                Some(_) => "wrong_password",
            };
            let subject = other.map(|s| s.id);
            let (now, ip) = (now_ms(), client.ip.clone());
            let email = email.as_str().to_string();
            state
                .db
                .write(move |tx| -> Result<_, ApiError> {
                    let lock = throttle::record_failures(tx, &keys, now)?;
                    audit::record(
                        tx,
                        Entry::new("login_failed", Actor::Anonymous)
                            .subject_opt(subject.as_deref())
                            .ip(ip.as_deref())
                            .details(
                                json!({ "email": email, "reason": reason, "locked_for_ms": lock }),
                            ),
                        now,
                    )?;
                    Ok(())
                })
                .await?;
            return Err(invalid_credentials());
        }
    };

    // Hashes made with older parameters are upgraded the moment we hold the password.
    let rehashed = if password::needs_rehash(&staff.password_hash) {
        Some(state.hasher.hash(password).await?)
    } else {
        None
    };

    let now = now_ms();
    let session_ms = session_ms(&state);
    let client2 = client.clone();
    let staff_id = staff.id.clone();
    let outcome = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            if let Some(hash) = rehashed {
                store::set_password(tx, &staff.id, &hash, now)?;
            }
            if staff.mfa_enabled {
                let mfa_token = tokens::new_opaque(tokens::MFA_PREFIX);
                store::insert_mfa_challenge(
                    tx,
                    &tokens::hash_token(&mfa_token),
                    &staff.id,
                    now + MFA_CHALLENGE_MS,
                    client2.ip.as_deref(),
                    client2.user_agent.as_deref(),
                )?;
                audit::record(
                    tx,
                    Entry::new("login_mfa_required", Actor::Staff(staff.id.clone()))
                        .subject(&staff.id)
                        .ip(client2.ip.as_deref()),
                    now,
                )?;
                // The failure counters stay until the code is right too: a password alone
                // completes nothing, so it must not reset a guesser's count.
                return Ok(Err(mfa_token));
            }
            throttle::clear_completed(tx, &keys)?;
            let (session_id, refresh) = open_session(tx, &staff.id, &client2, session_ms, now)?;
            audit::record(
                tx,
                Entry::new("login_succeeded", Actor::Staff(staff.id.clone()))
                    .subject(&session_id)
                    .ip(client2.ip.as_deref())
                    .details(json!({ "mfa": false })),
                now,
            )?;
            Ok(Ok((session_id, refresh)))
        })
        .await?;
    match outcome {
        Ok((session_id, refresh)) => {
            Ok(Json(LoginResponse::Tokens(token_pair(&state, &staff_id, &session_id, refresh)?)))
        }
        Err(mfa_token) => {
            Ok(Json(LoginResponse::Mfa(MfaChallenge { mfa_required: true, mfa_token })))
        }
    }
}

enum MfaOutcome {
    InvalidChallenge,
    Locked(i64),
    WrongCode,
    Session { staff_id: String, session_id: String, refresh: String },
}

/// Answer an MFA challenge with the current code from the authenticator app.
///
/// A wrong or already used code → 401. A challenge allows five tries and lasts five minutes.
#[utoipa::path(post, path = "/auth/verify-mfa", tag = "auth", request_body = VerifyMfaRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenPair),
        (status = 401, description = "Wrong, replayed or expired code or challenge", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    ))]
async fn verify_mfa(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<VerifyMfaRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let code = field("code", TotpCode::parse(&req.code))?;
    if !req.mfa_token.starts_with(tokens::MFA_PREFIX) {
        return Err(ApiError::unauthorized(
            "invalid_mfa_token",
            "the MFA challenge is invalid or has expired; log in again",
        ));
    }
    let challenge_hash = tokens::hash_token(&req.mfa_token);
    let now = now_ms();
    let session_ms = session_ms(&state);
    let outcome = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let Some(challenge) = store::find_mfa_challenge(tx, &challenge_hash)? else {
                return Ok(MfaOutcome::InvalidChallenge);
            };
            if challenge.consumed_at.is_some()
                || challenge.expires_at <= now
                || challenge.attempts >= MFA_MAX_ATTEMPTS
            {
                return Ok(MfaOutcome::InvalidChallenge);
            }
            let staff = match store::get_staff(tx, &challenge.staff_id)? {
                Some(s) if !s.disabled && s.mfa_enabled => s,
                _ => return Ok(MfaOutcome::InvalidChallenge),
            };
            // Counted where the password was given and where the code comes from, so moving
            // between addresses mid-login gains nothing.
            let keys =
                throttle::Keys::new(&staff.email, &[challenge.ip.as_deref(), client.ip.as_deref()]);
            if let Some(ms) = throttle::locked_for_any(tx, &keys, now)? {
                return Ok(MfaOutcome::Locked(ms));
            }
            let secret = staff.mfa_secret.as_deref().unwrap_or_default();
            let totp = totp_for(secret, &staff.email)?;
            let ip = challenge.ip.as_deref().or(client.ip.as_deref());
            let step = totp_step(&totp, &code);
            let failure = match step {
                None => Some("wrong_code"),
                Some(step) if step <= staff.mfa_last_step => Some("replayed_code"),
                Some(_) => None,
            };
            if let Some(reason) = failure {
                store::count_mfa_attempt(tx, &challenge_hash)?;
                // Wrong codes count against the account like wrong passwords, so a stolen
                // password cannot be used to guess codes through endless fresh challenges.
                record_secret_failure(tx, &staff, &keys, "mfa_failed", reason, ip, now)?;
                return Ok(MfaOutcome::WrongCode);
            }
            let step = step.unwrap_or_default();
            store::set_mfa_last_step(tx, &staff.id, step)?;
            throttle::clear_completed(tx, &keys)?;
            store::consume_mfa_challenge(tx, &challenge_hash, now)?;
            let client = ClientInfo {
                ip: challenge.ip.clone().or(client.ip),
                user_agent: challenge.user_agent.clone().or(client.user_agent),
            };
            let (session_id, refresh) = open_session(tx, &staff.id, &client, session_ms, now)?;
            audit::record(
                tx,
                Entry::new("login_succeeded", Actor::Staff(staff.id.clone()))
                    .subject(&session_id)
                    .ip(client.ip.as_deref())
                    .details(json!({ "mfa": true })),
                now,
            )?;
            Ok(MfaOutcome::Session { staff_id: staff.id, session_id, refresh })
        })
        .await?;
    match outcome {
        MfaOutcome::InvalidChallenge => Err(ApiError::unauthorized(
            "invalid_mfa_token",
            "the MFA challenge is invalid, used up or has expired; log in again",
        )),
        MfaOutcome::Locked(ms) => Err(locked_out(ms)),
        MfaOutcome::WrongCode => Err(ApiError::unauthorized(
            "invalid_mfa_code",
            "the code is wrong or was already used; wait for the next code",
        )),
        MfaOutcome::Session { staff_id, session_id, refresh } => {
            Ok(Json(token_pair(&state, &staff_id, &session_id, refresh)?))
        }
    }
}

enum RefreshOutcome {
    Invalid,
    Reused,
    Rotated { staff_id: String, session_id: String, refresh: String },
}

/// Exchange a refresh token for a new pair.
///
/// Refresh tokens are single use. Presenting one that was already used revokes its whole
/// session (every token descended from the same login) and answers 401.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenPair),
        (status = 401, description = "Unknown, used, revoked or expired refresh token", body = ErrorBody),
    ))]
async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, ApiError> {
    let invalid = || {
        ApiError::unauthorized(
            "invalid_refresh_token",
            "the refresh token is invalid or has expired; log in again",
        )
    };
    if !req.refresh_token.starts_with(REFRESH_PREFIX) {
        return Err(invalid());
    }
    let presented = tokens::hash_token(&req.refresh_token);
    let now = now_ms();
    let outcome = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let Some(token) = store::find_refresh_token(tx, &presented)? else {
                return Ok(RefreshOutcome::Invalid);
            };
            let Some(session) = store::get_session(tx, &token.session_id)? else {
                return Ok(RefreshOutcome::Invalid);
            };
            if token.used_at.is_some() {
                // Someone holds a copy of a token that was already exchanged: end the family.
                let was_live = store::revoke_session(tx, &session.id, "refresh_token_reuse", now)?;
                audit::record(
                    tx,
                    Entry::new("refresh_token_reuse", Actor::Staff(session.staff_id.clone()))
                        .subject(&session.id)
                        .ip(client.ip.as_deref())
                        .details(json!({ "session_was_live": was_live })),
                    now,
                )?;
                return Ok(RefreshOutcome::Reused);
            }
            let staff_ok = store::get_staff(tx, &session.staff_id)?.is_some_and(|s| !s.disabled);
            if session.revoked_at.is_some() || session.expires_at <= now || !staff_ok {
                return Ok(RefreshOutcome::Invalid);
            }
            store::mark_refresh_token_used(tx, &presented, now)?;
            let refresh = tokens::new_opaque(REFRESH_PREFIX);
            store::insert_refresh_token(tx, &tokens::hash_token(&refresh), &session.id, now)?;
            store::touch_session(tx, &session.id, now)?;
            Ok(RefreshOutcome::Rotated {
                staff_id: session.staff_id,
                session_id: session.id,
                refresh,
            })
        })
        .await?;
    match outcome {
        RefreshOutcome::Invalid => Err(invalid()),
        RefreshOutcome::Reused => Err(ApiError::unauthorized(
            "refresh_token_reused",
            "this refresh token was already used; the session has been ended for safety — log in again",
        )),
        RefreshOutcome::Rotated { staff_id, session_id, refresh } => {
            Ok(Json(token_pair(&state, &staff_id, &session_id, refresh)?))
        }
    }
}

/// Log out: ends the calling session and its refresh token.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Called with an API key", body = ErrorBody),
    ))]
async fn logout(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::SelfService>,
) -> Result<StatusCode, ApiError> {
    let (staff_id, session_id) = principal.staff_session()?;
    let (staff_id, session_id) = (staff_id.to_string(), session_id.to_string());
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            store::revoke_session(tx, &session_id, "logout", now)?;
            audit::record(
                tx,
                Entry::new("logout", Actor::Staff(staff_id))
                    .subject(&session_id)
                    .ip(client.ip.as_deref()),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The properties a new account or key gets: those asked for, each of which the caller must
/// hold, or the caller's own.
fn granted_properties(
    principal: &Principal,
    asked: Option<Vec<String>>,
) -> Result<Vec<String>, ApiError> {
    let mut properties = asked.unwrap_or_else(|| principal.properties.clone());
    properties.sort();
    properties.dedup();
    if properties.is_empty() {
        return Err(ApiError::invalid_field("properties", "must name at least one property"));
    }
    if let Some(foreign) = properties.iter().find(|p| !principal.properties.contains(p)) {
        return Err(ApiError::forbidden(
            "property_not_allowed",
            format!("you cannot grant access to property {foreign}: it is not one of yours"),
        )
        .with_details(json!({ "field": "properties", "property_id": foreign })));
    }
    Ok(properties)
}

/// Whether the caller may give `role` to a new account. An API key never creates owners or
/// managers: logins made that way would outlive the key and answer to nobody.
fn check_grantable(principal: &Principal, role: Role) -> Result<(), ApiError> {
    if principal.is_api_key() && matches!(role, Role::Owner | Role::Manager) {
        return Err(ApiError::forbidden(
            "api_key_not_allowed",
            format!("an API key cannot create {role} accounts; a signed-in owner must do it"),
        )
        .with_details(json!({ "field": "role" })));
    }
    check_role_rank(principal, role)
}

/// Whether the caller may manage (disable, enable, unlock, revoke) an account or key of
/// `role`: the roles it could grant, and for an API key never the owner role, so a key can
/// neither take the owners' access away nor give it back.
fn check_manageable(principal: &Principal, role: Role) -> Result<(), ApiError> {
    if principal.is_api_key() && role == Role::Owner {
        return Err(ApiError::forbidden(
            "api_key_not_allowed",
            "an API key cannot manage owners' accounts or keys; a signed-in owner must do it",
        ));
    }
    check_role_rank(principal, role)
}

fn check_role_rank(principal: &Principal, role: Role) -> Result<(), ApiError> {
    if principal.role.can_grant(role) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "role_not_grantable",
            format!("a {} cannot give the role {role}", principal.role),
        )
        .with_details(json!({ "field": "role" })))
    }
}

/// Create a staff account (owners and managers).
///
/// Managers may create every role except owner and manager. `properties` defaults to the
/// caller's; only properties the caller belongs to may be given.
#[utoipa::path(post, path = "/auth/register", tag = "auth", security(("bearer" = [])),
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = StaffView),
        (status = 403, description = "Role or property not grantable by the caller", body = ErrorBody),
        (status = 409, description = "The e-mail already has an account", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid (e.g. weak password)", body = ErrorBody),
    ))]
async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::StaffManage>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<StaffView>), ApiError> {
    let email = field("email", Email::parse(&req.email))?;
    let name = field("name", PersonName::parse(&req.name))?;
    field("password", password::check_strength(&req.password, &[email.as_str(), name.as_str()]))?;
    check_grantable(&principal, req.role)?;
    let properties = granted_properties(&principal, req.properties)?;
    let hash = state.hasher.hash(req.password).await?;

    let now = now_ms();
    let id = uuid::Uuid::now_v7().to_string();
    let actor = principal.actor();
    let role = req.role;
    let row = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            if store::email_taken(tx, email.as_str())? {
                return Err(ApiError::conflict("email_taken", "a staff account with this e-mail already exists")
                    .with_details(json!({ "field": "email" })));
            }
            let known = property::store::existing(tx, &properties)?;
            if let Some(missing) = properties.iter().find(|p| !known.contains(p)) {
                return Err(ApiError::invalid_field("properties", format!("no property {missing}")));
            }
            store::insert_staff(
                tx,
                &NewStaff {
                    id: &id,
                    email: email.as_str(),
                    name: name.as_str(),
                    role: role.as_str(),
                    password_hash: &hash,
                    properties: &properties,
                    now,
                },
            )?;
            audit::record(
                tx,
                Entry::new("staff_registered", actor).subject(&id).ip(client.ip.as_deref()).details(json!({ "email": email.as_str(), "role": role.as_str(), "properties": properties })),
                now,
            )?;
            let row = store::get_staff(tx, &id)?.ok_or_else(|| ApiError::internal("staff row vanished"))?;
            Ok((row, properties))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(staff_view(row.0, row.1)?)))
}

/// Who am I: the calling staff member or API key, its role, permissions and properties.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn me(Authorized(principal, _): Authorized<perm::SelfService>) -> Json<MeResponse> {
    let permissions = super::permissions::Permission::ALL
        .iter()
        .filter(|p| principal.role.allows(**p))
        .map(|p| p.as_str())
        .collect();
    let (kind, id, session_id) = match principal.kind {
        super::extract::PrincipalKind::Staff { staff_id, session_id } => {
            ("staff", staff_id, Some(session_id))
        }
        super::extract::PrincipalKind::ApiKey { key_id } => ("api_key", key_id, None),
    };
    Json(MeResponse {
        kind,
        id,
        name: principal.name,
        email: principal.email,
        role: principal.role,
        properties: principal.properties,
        permissions,
        mfa_enabled: principal.mfa_enabled,
        session_id,
    })
}

/// Start turning on two-factor login: returns a new TOTP secret to put in an authenticator
/// app. Two-factor login is on only after `/auth/mfa/enable` confirms a code.
#[utoipa::path(post, path = "/auth/mfa/setup", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "A new secret", body = MfaSetupResponse),
        (status = 409, description = "Two-factor login is already on", body = ErrorBody),
    ))]
async fn mfa_setup(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::SelfService>,
) -> Result<Json<MfaSetupResponse>, ApiError> {
    let (staff_id, _) = principal.staff_session()?;
    if principal.mfa_enabled == Some(true) {
        return Err(ApiError::conflict(
            "mfa_already_enabled",
            "two-factor login is already on; disable it first",
        ));
    }
    let secret = Secret::generate().to_base32();
    let email = principal.email.clone().unwrap_or_default();
    let totp = totp_for(&secret, &email)?;
    let otpauth_url = totp.to_url().map_err(|e| ApiError::internal(format!("TOTP url: {e}")))?;
    let (id, stored, now) = (staff_id.to_string(), secret.clone(), now_ms());
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            Ok(store::set_mfa_secret(tx, &id, &stored, now)?)
        })
        .await?;
    Ok(Json(MfaSetupResponse { secret, otpauth_url }))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct MfaStatus {
    pub mfa_enabled: bool,
}

/// Turn two-factor login on by confirming the current code for the secret from setup.
#[utoipa::path(post, path = "/auth/mfa/enable", tag = "auth", security(("bearer" = [])),
    request_body = MfaCodeRequest,
    responses(
        (status = 200, description = "Two-factor login is on", body = MfaStatus),
        (status = 409, description = "No setup started, or already on", body = ErrorBody),
        (status = 422, description = "The code is not the current one", body = ErrorBody),
    ))]
async fn mfa_enable(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::SelfService>,
    ApiJson(req): ApiJson<MfaCodeRequest>,
) -> Result<Json<MfaStatus>, ApiError> {
    set_mfa(state, client, principal, req, true).await
}

/// Turn two-factor login off; needs a current code.
#[utoipa::path(post, path = "/auth/mfa/disable", tag = "auth", security(("bearer" = [])),
    request_body = MfaCodeRequest,
    responses(
        (status = 200, description = "Two-factor login is off", body = MfaStatus),
        (status = 409, description = "Two-factor login is not on", body = ErrorBody),
        (status = 422, description = "The code is not the current one", body = ErrorBody),
    ))]
async fn mfa_disable(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::SelfService>,
    ApiJson(req): ApiJson<MfaCodeRequest>,
) -> Result<Json<MfaStatus>, ApiError> {
    set_mfa(state, client, principal, req, false).await
}

async fn set_mfa(
    state: AppState,
    client: ClientInfo,
    principal: Principal,
    req: MfaCodeRequest,
    enable: bool,
) -> Result<Json<MfaStatus>, ApiError> {
    let code = field("code", TotpCode::parse(&req.code))?;
    let (staff_id, _) = principal.staff_session()?;
    let staff_id = staff_id.to_string();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let staff = store::get_staff(tx, &staff_id)?
                .ok_or_else(|| ApiError::not_found("staff account"))?;
            let keys = throttle::Keys::new(&staff.email, &[client.ip.as_deref()]);
            if let Some(ms) = throttle::locked_for_any(tx, &keys, now)? {
                return Err(locked_out(ms));
            }
            let secret = match (&staff.mfa_secret, staff.mfa_enabled, enable) {
                (_, true, true) => {
                    return Err(ApiError::conflict(
                        "mfa_already_enabled",
                        "two-factor login is already on",
                    ));
                }
                (_, false, false) => {
                    return Err(ApiError::conflict(
                        "mfa_not_enabled",
                        "two-factor login is not on",
                    ));
                }
                (None, _, _) => {
                    return Err(ApiError::conflict("mfa_not_set_up", "call /auth/mfa/setup first"));
                }
                (Some(secret), _, _) => secret.clone(),
            };
            let totp = totp_for(&secret, &staff.email)?;
            let Some(step) = totp_step(&totp, &code).filter(|step| *step > staff.mfa_last_step)
            else {
                // Counted and committed, so a stolen session cannot guess codes to turn
                // two-factor login off; the refusal is returned after the commit.
                record_secret_failure(
                    tx,
                    &staff,
                    &keys,
                    "mfa_failed",
                    "wrong_code",
                    client.ip.as_deref(),
                    now,
                )?;
                return Ok(Err(ApiError::invalid_field(
                    "code",
                    "is not the current code from the authenticator app",
                )));
            };
            store::set_mfa_enabled(tx, &staff.id, enable, step, now)?;
            audit::record(
                tx,
                Entry::new(
                    if enable { "mfa_enabled" } else { "mfa_disabled" },
                    Actor::Staff(staff.id.clone()),
                )
                .subject(&staff.id)
                .ip(client.ip.as_deref()),
                now,
            )?;
            Ok(Ok(()))
        })
        .await??;
    Ok(Json(MfaStatus { mfa_enabled: enable }))
}

/// Change one's own password. Ends every other session of the account.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Password changed"),
        (status = 401, description = "The current password is wrong", body = ErrorBody),
        (status = 422, description = "The new password is too weak", body = ErrorBody),
    ))]
async fn change_password(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::SelfService>,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    let (staff_id, session_id) = principal.staff_session()?;
    let (staff_id, session_id) = (staff_id.to_string(), session_id.to_string());
    let current = presented_password("current_password", req.current_password)?;
    let email = principal.email.clone().unwrap_or_default();
    field("new_password", password::check_strength(&req.new_password, &[&email, &principal.name]))?;
    if current == req.new_password {
        return Err(ApiError::invalid_field(
            "new_password",
            "must differ from the current password",
        ));
    }
    let (lookup, now, ip) = (staff_id.clone(), now_ms(), client.ip.clone());
    let (staff, locked) = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let staff = store::get_staff(conn, &lookup)?
                .ok_or_else(|| ApiError::not_found("staff account"))?;
            let keys = throttle::Keys::new(&staff.email, &[ip.as_deref()]);
            let locked = throttle::locked_for_any(conn, &keys, now)?;
            Ok((staff, locked))
        })
        .await?;
    if let Some(ms) = locked {
        return Err(locked_out(ms));
    }
    if !state.hasher.verify(current, Some(staff.password_hash.clone())).await? {
        let ip = client.ip.clone();
        state
            .db
            .write(move |tx| -> Result<_, ApiError> {
                let reason = "wrong_current_password";
                let keys = throttle::Keys::new(&staff.email, &[ip.as_deref()]);
                Ok(record_secret_failure(
                    tx,
                    &staff,
                    &keys,
                    "password_change_failed",
                    reason,
                    ip.as_deref(),
                    now_ms(),
                )?)
            })
            .await?;
        return Err(ApiError::unauthorized("invalid_credentials", "the current password is wrong"));
    }
    let hash = state.hasher.hash(req.new_password).await?;
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            store::set_password(tx, &staff_id, &hash, now)?;
            let ended = store::revoke_sessions_of(
                tx,
                &staff_id,
                Some(&session_id),
                "password_changed",
                now,
            )?;
            audit::record(
                tx,
                Entry::new("password_changed", Actor::Staff(staff_id.clone()))
                    .subject(&staff_id)
                    .ip(client.ip.as_deref())
                    .details(json!({ "other_sessions_ended": ended })),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One's own live sessions (devices logged in), newest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "Live sessions", body = Page<SessionView>)))]
async fn list_sessions(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::SelfService>,
) -> Result<Json<Page<SessionView>>, ApiError> {
    let (staff_id, current) = principal.staff_session()?;
    let (staff_id, current) = (staff_id.to_string(), current.to_string());
    let now = now_ms();
    let rows = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            Ok(store::live_sessions(conn, &staff_id, now)?)
        })
        .await?;
    Ok(Json(Page::all(
        rows.into_iter()
            .map(|s| SessionView {
                current: s.id == current,
                id: s.id,
                created_at: rfc3339(s.created_at),
                last_used_at: rfc3339(s.last_used_at),
                expires_at: rfc3339(s.expires_at),
                ip: s.ip,
                user_agent: s.user_agent,
            })
            .collect(),
    )))
}

/// End one of one's own sessions (e.g. a terminal left logged in).
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Session ended"),
        (status = 404, description = "No such live session of yours", body = ErrorBody),
    ))]
async fn revoke_session(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::SelfService>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let (staff_id, _) = principal.staff_session()?;
    let staff_id = staff_id.to_string();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let owned = store::get_session(tx, &id)?.is_some_and(|s| s.staff_id == staff_id);
            if !owned || !store::revoke_session(tx, &id, "revoked_by_user", now)? {
                return Err(ApiError::not_found("session"));
            }
            audit::record(
                tx,
                Entry::new("session_revoked", Actor::Staff(staff_id))
                    .subject(&id)
                    .ip(client.ip.as_deref()),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- API keys -----------------------------------------------------------------------------

fn api_key_view(row: store::ApiKeyRow) -> Result<ApiKeyView, ApiError> {
    let role = stored_role(&row.role, &format!("api key {}", row.id))?;
    Ok(ApiKeyView {
        id: row.id,
        name: row.name,
        role,
        properties: row.properties,
        created_by: row.created_by,
        created_at: rfc3339(row.created_at),
        last_used_at: row.last_used_at.map(rfc3339),
        revoked_at: row.revoked_at.map(rfc3339),
        suspended: row.suspended,
    })
}

/// Create an API key for an integration. The key is in the response once and never again;
/// use it as `Authorization: Bearer <key>`. It acts with its own role.
#[utoipa::path(post, path = "/auth/api-keys", tag = "auth", security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Key created", body = ApiKeyCreated),
        (status = 403, description = "Role or property not grantable by the caller", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::ApiKeysManage>,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    let (staff_id, _) = principal.staff_session()?;
    let name = field("name", PersonName::parse(&req.name))?;
    check_grantable(&principal, req.role)?;
    let properties = granted_properties(&principal, req.properties)?;
    let id = uuid::Uuid::now_v7();
    let key = tokens::new_api_key(&id);
    let row = store::ApiKeyRow {
        id: id.to_string(),
        name: name.as_str().to_string(),
        role: req.role.as_str().to_string(),
        secret_hash: tokens::hash_token(&key),
        created_by: staff_id.to_string(),
        properties,
        created_at: now_ms(),
        last_used_at: None,
        revoked_at: None,
        suspended: false,
    };
    let stored = row.clone();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            store::insert_api_key(tx, &stored)?;
            audit::record(
                tx,
                Entry::new("api_key_created", Actor::Staff(stored.created_by.clone())).subject(&stored.id).ip(client.ip.as_deref()).details(json!({ "name": stored.name, "role": stored.role, "properties": stored.properties })),
                stored.created_at,
            )?;
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, Json(ApiKeyCreated { api_key: api_key_view(row)?, key })))
}

/// API keys on the caller's properties, newest first (without their secrets).
#[utoipa::path(get, path = "/auth/api-keys", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "API keys", body = Page<ApiKeyView>)))]
async fn list_api_keys(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ApiKeysManage>,
) -> Result<Json<Page<ApiKeyView>>, ApiError> {
    let properties = principal.properties.clone();
    let rows = state
        .db
        .read(move |conn| -> Result<_, ApiError> { Ok(store::list_api_keys(conn, &properties)?) })
        .await?;
    Ok(Json(Page::all(rows.into_iter().map(api_key_view).collect::<Result<_, _>>()?)))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/auth/api-keys/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such live key on your properties", body = ErrorBody),
    ))]
async fn revoke_api_key(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::ApiKeysManage>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let actor = principal.actor();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let key = store::get_api_key(tx, &id)?
                .filter(|k| k.revoked_at.is_none())
                .filter(|k| k.properties.iter().any(|p| principal.properties.contains(p)))
                .ok_or_else(|| ApiError::not_found("API key"))?;
            // A key is as much its creator's as its role's: a manager may revoke keys whose
            // role they could grant, made by themselves or by someone they could manage.
            check_manageable(&principal, stored_role(&key.role, &format!("api key {id}"))?)?;
            let own = matches!(&principal.kind,
                super::extract::PrincipalKind::Staff { staff_id, .. } if *staff_id == key.created_by);
            if !own && let Some(creator) = store::get_staff(tx, &key.created_by)? {
                let creator_role = stored_role(&creator.role, &format!("staff {}", creator.id))?;
                check_manageable(&principal, creator_role).map_err(|_| {
                    ApiError::forbidden(
                        "key_of_higher_role",
                        format!(
                            "this key was created by a {creator_role}; a {} cannot revoke it",
                            if principal.is_api_key() { "API key" } else { principal.role.as_str() }
                        ),
                    )
                })?;
            }
            if !store::revoke_api_key(tx, &id, now)? {
                return Err(ApiError::not_found("API key"));
            }
            audit::record(
                tx,
                Entry::new("api_key_revoked", actor).subject(&id).ip(client.ip.as_deref()),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- staff accounts -----------------------------------------------------------------------

/// Staff accounts at the caller's properties.
#[utoipa::path(get, path = "/staff", tag = "staff", security(("bearer" = [])),
    responses((status = 200, description = "Staff accounts", body = Page<StaffView>)))]
async fn list_staff(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::StaffRead>,
) -> Result<Json<Page<StaffView>>, ApiError> {
    let properties = principal.properties.clone();
    let rows = state
        .db
        .read(move |conn| -> Result<_, ApiError> { Ok(store::list_staff(conn, &properties)?) })
        .await?;
    Ok(Json(Page::all(rows.into_iter().map(|(s, p)| staff_view(s, p)).collect::<Result<_, _>>()?)))
}

/// Disable a staff account: it can no longer log in and all its sessions end at once.
#[utoipa::path(post, path = "/staff/{id}/disable", tag = "staff", security(("bearer" = [])),
    params(("id" = String, Path, description = "Staff account id")),
    responses(
        (status = 200, description = "Disabled", body = StaffView),
        (status = 403, description = "Not allowed to manage this account", body = ErrorBody),
        (status = 404, description = "No such account at your properties", body = ErrorBody),
    ))]
async fn disable_staff(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::StaffManage>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StaffView>, ApiError> {
    set_staff_disabled(state, client, principal, id, true).await
}

/// Enable a disabled staff account again.
#[utoipa::path(post, path = "/staff/{id}/enable", tag = "staff", security(("bearer" = [])),
    params(("id" = String, Path, description = "Staff account id")),
    responses(
        (status = 200, description = "Enabled", body = StaffView),
        (status = 403, description = "Not allowed to manage this account", body = ErrorBody),
        (status = 404, description = "No such account at your properties", body = ErrorBody),
    ))]
async fn enable_staff(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::StaffManage>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StaffView>, ApiError> {
    set_staff_disabled(state, client, principal, id, false).await
}

async fn set_staff_disabled(
    state: AppState,
    client: ClientInfo,
    principal: Principal,
    id: String,
    disabled: bool,
) -> Result<Json<StaffView>, ApiError> {
    if matches!(&principal.kind, super::extract::PrincipalKind::Staff { staff_id, .. } if *staff_id == id)
    {
        return Err(ApiError::forbidden(
            "own_account",
            "you cannot disable or enable your own account",
        ));
    }
    let now = now_ms();
    let actor = principal.actor();
    let (row, props) = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let staff =
                store::get_staff(tx, &id)?.ok_or_else(|| ApiError::not_found("staff account"))?;
            let props = store::staff_properties(tx, &id)?;
            if !props.iter().any(|p| principal.properties.contains(p)) {
                return Err(ApiError::not_found("staff account"));
            }
            let role = stored_role(&staff.role, &format!("staff {id}"))?;
            check_manageable(&principal, role)?;
            if disabled && role == Role::Owner && !staff.disabled {
                ensure_owner_remains(tx, &id, &props)?;
            }
            store::set_disabled(tx, &id, disabled, now)?;
            let ended = if disabled {
                store::revoke_sessions_of(tx, &id, None, "account_disabled", now)?
            } else {
                0
            };
            audit::record(
                tx,
                Entry::new(if disabled { "staff_disabled" } else { "staff_enabled" }, actor)
                    .subject(&id)
                    .ip(client.ip.as_deref())
                    .details(json!({
                        "sessions_ended": ended,
                        // Their API keys stop (or start again) with them; see `api_keys.suspended`.
                        "api_keys_affected": store::live_api_keys_created_by(tx, &id)?,
                    })),
                now,
            )?;
            let row =
                store::get_staff(tx, &id)?.ok_or_else(|| ApiError::not_found("staff account"))?;
            Ok((row, props))
        })
        .await?;
    Ok(Json(staff_view(row, props)?))
}

/// 409 unless every one of `properties` keeps an active owner without `staff_id`: a property
/// without one could never again get an owner, create owners or change its own set-up.
fn ensure_owner_remains(
    tx: &rusqlite::Connection,
    staff_id: &str,
    properties: &[String],
) -> Result<(), ApiError> {
    for property in properties {
        if store::other_active_owners(tx, property, staff_id)? == 0 {
            return Err(ApiError::conflict(
                "last_owner",
                format!(
                    "this is the only active owner of property {property}; a property must \
                     always have an active owner, so make another owner there first"
                ),
            )
            .with_details(json!({ "property_id": property })));
        }
    }
    Ok(())
}

/// Lift the login locks of a staff account (managers, owners): its failure counters from
/// every address and the account-wide one. Audited.
#[utoipa::path(post, path = "/staff/{id}/unlock", tag = "staff", security(("bearer" = [])),
    params(("id" = String, Path, description = "Staff account id")),
    responses(
        (status = 200, description = "Unlocked", body = StaffView),
        (status = 403, description = "Not allowed to manage this account", body = ErrorBody),
        (status = 404, description = "No such account at your properties", body = ErrorBody),
    ))]
async fn unlock_staff(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::StaffManage>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<StaffView>, ApiError> {
    if matches!(&principal.kind, super::extract::PrincipalKind::Staff { staff_id, .. } if *staff_id == id)
    {
        // Else a stolen session could lift the locks that stop a guesser of its password.
        return Err(ApiError::forbidden("own_account", "you cannot unlock your own account"));
    }
    let now = now_ms();
    let actor = principal.actor();
    let (row, props) = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let staff =
                store::get_staff(tx, &id)?.ok_or_else(|| ApiError::not_found("staff account"))?;
            let props = store::staff_properties(tx, &id)?;
            if !props.iter().any(|p| principal.properties.contains(p)) {
                return Err(ApiError::not_found("staff account"));
            }
            check_manageable(&principal, stored_role(&staff.role, &format!("staff {id}"))?)?;
            let was_locked = throttle::account_locked(tx, &staff.email, now)?;
            let cleared = throttle::unlock_account(tx, &staff.email)?;
            audit::record(
                tx,
                Entry::new("staff_unlocked", actor)
                    .subject(&id)
                    .ip(client.ip.as_deref())
                    .details(json!({ "was_locked": was_locked, "counters_cleared": cleared })),
                now,
            )?;
            Ok((staff, props))
        })
        .await?;
    Ok(Json(staff_view(row, props)?))
}

/// Change a staff account's role or properties (owners, managers). The caller must be able
/// to manage the account's current role and grant the new one, and may add or remove only
/// properties they belong to. Refused with 409 `last_owner` when a property would be left
/// without an active owner.
#[utoipa::path(patch, path = "/staff/{id}", tag = "staff", security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Staff account id")),
    request_body = UpdateStaffRequest,
    responses(
        (status = 200, description = "The account after the change", body = StaffView),
        (status = 403, description = "Not allowed to manage this account, role or property", body = ErrorBody),
        (status = 404, description = "No such account at your properties", body = ErrorBody),
        (status = 409, description = "A property would be left without an active owner", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn update_staff(
    State(state): State<AppState>,
    client: ClientInfo,
    Authorized(principal, _): Authorized<perm::StaffManage>,
    ApiPath(id): ApiPath<String>,
    if_match: IfMatch,
    ApiJson(req): ApiJson<UpdateStaffRequest>,
) -> Result<Json<StaffView>, ApiError> {
    if matches!(&principal.kind, super::extract::PrincipalKind::Staff { staff_id, .. } if *staff_id == id)
    {
        return Err(ApiError::forbidden(
            "own_account",
            "you cannot change your own role or properties",
        ));
    }
    if let Some(role) = req.role {
        check_grantable(&principal, role)?;
    }
    let mut asked = req.properties;
    if let Some(properties) = &mut asked {
        properties.sort();
        properties.dedup();
        if properties.is_empty() {
            return Err(ApiError::invalid_field("properties", "must name at least one property"));
        }
    }
    let now = now_ms();
    let actor = principal.actor();
    let (row, props) = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let staff =
                store::get_staff(tx, &id)?.ok_or_else(|| ApiError::not_found("staff account"))?;
            let old_props = store::staff_properties(tx, &id)?;
            if !old_props.iter().any(|p| principal.properties.contains(p)) {
                return Err(ApiError::not_found("staff account"));
            }
            if_match.check(|| staff_view(staff.clone(), old_props.clone()))?;
            let old_role = stored_role(&staff.role, &format!("staff {id}"))?;
            check_manageable(&principal, old_role)?;
            let new_role = req.role.unwrap_or(old_role);
            let new_props = asked.unwrap_or_else(|| old_props.clone());
            let added: Vec<String> =
                new_props.iter().filter(|p| !old_props.contains(p)).cloned().collect();
            let removed: Vec<String> =
                old_props.iter().filter(|p| !new_props.contains(p)).cloned().collect();
            if let Some(foreign) =
                added.iter().chain(&removed).find(|p| !principal.properties.contains(p))
            {
                return Err(ApiError::forbidden(
                    "property_not_allowed",
                    format!("you cannot give or take property {foreign}: it is not one of yours"),
                )
                .with_details(json!({ "field": "properties", "property_id": foreign })));
            }
            let known = property::store::existing(tx, &added)?;
            if let Some(missing) = added.iter().find(|p| !known.contains(p)) {
                return Err(ApiError::invalid_field(
                    "properties",
                    format!("no property {missing}"),
                ));
            }
            // The properties where this account stops being an active owner.
            if old_role == Role::Owner && !staff.disabled {
                let losing = if new_role == Role::Owner { removed.clone() } else { old_props };
                ensure_owner_remains(tx, &id, &losing)?;
            }
            if new_role != old_role {
                store::set_role(tx, &id, new_role.as_str(), now)?;
            }
            if !added.is_empty() || !removed.is_empty() {
                store::set_staff_properties(tx, &id, &new_props)?;
            }
            audit::record(
                tx,
                Entry::new("staff_updated", actor).subject(&id).ip(client.ip.as_deref()).details(
                    json!({
                        "role": { "from": old_role.as_str(), "to": new_role.as_str() },
                        "properties_added": added,
                        "properties_removed": removed,
                    }),
                ),
                now,
            )?;
            let row =
                store::get_staff(tx, &id)?.ok_or_else(|| ApiError::not_found("staff account"))?;
            Ok((row, new_props))
        })
        .await?;
    Ok(Json(staff_view(row, props)?))
}
