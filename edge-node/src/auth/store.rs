//! Auth's SQL: plain functions over a connection or transaction. Auth owns the tables
//! `staff`, `staff_emails`, `staff_properties`, `sessions`, `refresh_tokens`,
//! `mfa_challenges`, `login_throttle` and `api_keys`; no other module touches them.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::permissions::Role;

/// Active (not disabled) owners at `property` other than `except`.
pub fn other_active_owners(
    conn: &Connection,
    property: &str,
    except: &str,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM staff_properties sp JOIN staff s ON s.id = sp.staff_id
         WHERE sp.property_id = ?1 AND s.id <> ?2 AND s.role = 'owner' AND s.disabled = 0",
    )?
    .query_row(params![property, except], |r| r.get(0))
}

/// A `staff` row.
#[derive(Debug, Clone)]
pub struct StaffRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub mfa_secret: Option<String>,
    pub mfa_enabled: bool,
    pub mfa_last_step: i64,
    pub disabled: bool,
    pub created_at: i64,
}

const STAFF_COLUMNS: &str = "s.id, s.email, s.name, s.role, s.password_hash, s.mfa_secret, \
     s.mfa_enabled, s.mfa_last_step, s.disabled, s.created_at";

fn staff_from_row(r: &Row<'_>) -> rusqlite::Result<StaffRow> {
    Ok(StaffRow {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: r.get(3)?,
        password_hash: r.get(4)?,
        mfa_secret: r.get(5)?,
        mfa_enabled: r.get(6)?,
        mfa_last_step: r.get(7)?,
        disabled: r.get(8)?,
        created_at: r.get(9)?,
    })
}

pub fn find_staff_by_email(conn: &Connection, email: &str) -> rusqlite::Result<Option<StaffRow>> {
    conn.prepare_cached(&format!(
        "SELECT {STAFF_COLUMNS} FROM staff_emails e JOIN staff s ON s.id = e.staff_id WHERE e.email = ?1"
    ))?
    .query_row([email], staff_from_row)
    .optional()
}

pub fn get_staff(conn: &Connection, id: &str) -> rusqlite::Result<Option<StaffRow>> {
    conn.prepare_cached(&format!("SELECT {STAFF_COLUMNS} FROM staff s WHERE s.id = ?1"))?
        .query_row([id], staff_from_row)
        .optional()
}

pub fn email_taken(conn: &Connection, email: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM staff_emails WHERE email = ?1")?.exists([email])
}

pub fn staff_properties(conn: &Connection, staff_id: &str) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached(
        "SELECT property_id FROM staff_properties WHERE staff_id = ?1 ORDER BY property_id",
    )?
    .query_map([staff_id], |r| r.get(0))?
    .collect()
}

pub struct NewStaff<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub password_hash: &'a str,
    pub properties: &'a [String],
    pub now: i64,
}

pub fn insert_staff(conn: &Connection, s: &NewStaff<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO staff (id, email, name, role, password_hash, password_changed_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6)",
    )?
    .execute(params![s.id, s.email, s.name, s.role, s.password_hash, s.now])?;
    conn.prepare_cached("INSERT INTO staff_emails (email, staff_id) VALUES (?1, ?2)")?
        .execute(params![s.email, s.id])?;
    let mut link = conn
        .prepare_cached("INSERT INTO staff_properties (staff_id, property_id) VALUES (?1, ?2)")?;
    for property in s.properties {
        link.execute(params![s.id, property])?;
    }
    Ok(())
}

/// Staff working at any of `properties`, oldest first, each with all of their properties.
pub fn list_staff(
    conn: &Connection,
    properties: &[String],
) -> rusqlite::Result<Vec<(StaffRow, Vec<String>)>> {
    let json = serde_json::to_string(properties).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(&format!(
        "SELECT {STAFF_COLUMNS},
             (SELECT json_group_array(property_id) FROM
                 (SELECT property_id FROM staff_properties WHERE staff_id = s.id ORDER BY property_id))
         FROM staff s WHERE s.id IN (
             SELECT staff_id FROM staff_properties WHERE property_id IN (SELECT value FROM json_each(?1)))
         ORDER BY s.created_at, s.id"
    ))?
    .query_map([json], |r| {
        let properties: String = r.get(10)?;
        Ok((staff_from_row(r)?, serde_json::from_str(&properties).unwrap_or_default()))
    })?
    .collect()
}

pub fn set_password(
    conn: &Connection,
    staff_id: &str,
    hash: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE staff SET password_hash = ?2, password_changed_at = ?3, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![staff_id, hash, now])?;
    Ok(())
}

pub fn set_role(conn: &Connection, staff_id: &str, role: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE staff SET role = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![staff_id, role, now])?;
    Ok(())
}

/// Makes `properties` the staff member's properties: removed links deleted, new ones added.
pub fn set_staff_properties(
    conn: &Connection,
    staff_id: &str,
    properties: &[String],
) -> rusqlite::Result<()> {
    let json = serde_json::to_string(properties).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "DELETE FROM staff_properties
         WHERE staff_id = ?1 AND property_id NOT IN (SELECT value FROM json_each(?2))",
    )?
    .execute(params![staff_id, json])?;
    let mut link = conn.prepare_cached(
        "INSERT INTO staff_properties (staff_id, property_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?;
    for property in properties {
        link.execute(params![staff_id, property])?;
    }
    Ok(())
}

pub fn set_disabled(
    conn: &Connection,
    staff_id: &str,
    disabled: bool,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE staff SET disabled = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![staff_id, disabled, now])?;
    Ok(())
}

/// Stores a pending (not yet enabled) TOTP secret.
pub fn set_mfa_secret(
    conn: &Connection,
    staff_id: &str,
    secret: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE staff SET mfa_secret = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![staff_id, secret, now])?;
    Ok(())
}

pub fn set_mfa_enabled(
    conn: &Connection,
    staff_id: &str,
    enabled: bool,
    last_step: i64,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE staff SET mfa_enabled = ?2, mfa_last_step = ?3,
             mfa_secret = CASE WHEN ?2 THEN mfa_secret ELSE NULL END, updated_at = ?4
         WHERE id = ?1",
    )?
    .execute(params![staff_id, enabled, last_step, now])?;
    Ok(())
}

/// Records the TOTP time step just used, so the same code is never accepted twice.
pub fn set_mfa_last_step(conn: &Connection, staff_id: &str, step: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE staff SET mfa_last_step = ?2 WHERE id = ?1")?
        .execute(params![staff_id, step])?;
    Ok(())
}

// ---- sessions and refresh tokens ----------------------------------------------------------

pub struct NewSession<'a> {
    pub id: &'a str,
    pub staff_id: &'a str,
    pub now: i64,
    pub expires_at: i64,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub fn insert_session(conn: &Connection, s: &NewSession<'_>) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO sessions (id, staff_id, created_at, last_used_at, expires_at, ip, user_agent)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![s.id, s.staff_id, s.now, s.expires_at, s.ip, s.user_agent])?;
    Ok(())
}

/// What the request path needs to know about an access token's session.
#[derive(Debug)]
pub struct SessionAuth {
    pub role: String,
    pub name: String,
    pub email: String,
    pub mfa_enabled: bool,
    pub live: bool,
}

pub fn session_auth(
    conn: &Connection,
    session_id: &str,
    staff_id: &str,
    now: i64,
) -> rusqlite::Result<Option<SessionAuth>> {
    conn.prepare_cached(
        "SELECT st.role, st.name, st.email, st.mfa_enabled,
                s.revoked_at IS NULL AND s.expires_at > ?3 AND st.disabled = 0
         FROM sessions s JOIN staff st ON st.id = s.staff_id
         WHERE s.id = ?1 AND s.staff_id = ?2",
    )?
    .query_row(params![session_id, staff_id, now], |r| {
        Ok(SessionAuth {
            role: r.get(0)?,
            name: r.get(1)?,
            email: r.get(2)?,
            mfa_enabled: r.get(3)?,
            live: r.get(4)?,
        })
    })
    .optional()
}

#[derive(Debug)]
pub struct SessionRow {
    pub id: String,
    pub staff_id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        staff_id: r.get(1)?,
        created_at: r.get(2)?,
        last_used_at: r.get(3)?,
        expires_at: r.get(4)?,
        revoked_at: r.get(5)?,
        ip: r.get(6)?,
        user_agent: r.get(7)?,
    })
}

const SESSION_COLUMNS: &str =
    "id, staff_id, created_at, last_used_at, expires_at, revoked_at, ip, user_agent";

pub fn get_session(conn: &Connection, id: &str) -> rusqlite::Result<Option<SessionRow>> {
    conn.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"))?
        .query_row([id], session_from_row)
        .optional()
}

/// The staff member's sessions that are still usable, newest first.
pub fn live_sessions(
    conn: &Connection,
    staff_id: &str,
    now: i64,
) -> rusqlite::Result<Vec<SessionRow>> {
    conn.prepare_cached(&format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE staff_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
         ORDER BY created_at DESC"
    ))?
    .query_map(params![staff_id, now], session_from_row)?
    .collect()
}

pub fn touch_session(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE sessions SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// Revokes one session; returns whether it was live.
pub fn revoke_session(
    conn: &Connection,
    id: &str,
    reason: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE sessions SET revoked_at = ?2, revoke_reason = ?3
             WHERE id = ?1 AND revoked_at IS NULL",
        )?
        .execute(params![id, now, reason])?;
    Ok(changed > 0)
}

/// Revokes every live session of a staff member except `keep`; returns how many.
pub fn revoke_sessions_of(
    conn: &Connection,
    staff_id: &str,
    keep: Option<&str>,
    reason: &str,
    now: i64,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE sessions SET revoked_at = ?3, revoke_reason = ?4
         WHERE staff_id = ?1 AND revoked_at IS NULL AND (?2 IS NULL OR id <> ?2)",
    )?
    .execute(params![staff_id, keep, now, reason])
}

pub fn insert_refresh_token(
    conn: &Connection,
    hash: &[u8],
    session_id: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO refresh_tokens (token_hash, session_id, issued_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![hash, session_id, now])?;
    Ok(())
}

#[derive(Debug)]
pub struct RefreshRow {
    pub session_id: String,
    pub used_at: Option<i64>,
}

pub fn find_refresh_token(conn: &Connection, hash: &[u8]) -> rusqlite::Result<Option<RefreshRow>> {
    conn.prepare_cached("SELECT session_id, used_at FROM refresh_tokens WHERE token_hash = ?1")?
        .query_row([hash], |r| Ok(RefreshRow { session_id: r.get(0)?, used_at: r.get(1)? }))
        .optional()
}

pub fn mark_refresh_token_used(conn: &Connection, hash: &[u8], now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1")?
        .execute(params![hash, now])?;
    Ok(())
}

// ---- MFA challenges -----------------------------------------------------------------------

#[derive(Debug)]
pub struct MfaChallengeRow {
    pub staff_id: String,
    pub expires_at: i64,
    pub attempts: i64,
    pub consumed_at: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub fn insert_mfa_challenge(
    conn: &Connection,
    hash: &[u8],
    staff_id: &str,
    expires_at: i64,
    ip: Option<&str>,
    user_agent: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO mfa_challenges (token_hash, staff_id, expires_at, ip, user_agent)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![hash, staff_id, expires_at, ip, user_agent])?;
    Ok(())
}

pub fn find_mfa_challenge(
    conn: &Connection,
    hash: &[u8],
) -> rusqlite::Result<Option<MfaChallengeRow>> {
    conn.prepare_cached(
        "SELECT staff_id, expires_at, attempts, consumed_at, ip, user_agent
         FROM mfa_challenges WHERE token_hash = ?1",
    )?
    .query_row([hash], |r| {
        Ok(MfaChallengeRow {
            staff_id: r.get(0)?,
            expires_at: r.get(1)?,
            attempts: r.get(2)?,
            consumed_at: r.get(3)?,
            ip: r.get(4)?,
            user_agent: r.get(5)?,
        })
    })
    .optional()
}

pub fn count_mfa_attempt(conn: &Connection, hash: &[u8]) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE mfa_challenges SET attempts = attempts + 1 WHERE token_hash = ?1")?
        .execute([hash])?;
    Ok(())
}

pub fn consume_mfa_challenge(conn: &Connection, hash: &[u8], now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE mfa_challenges SET consumed_at = ?2 WHERE token_hash = ?1")?
        .execute(params![hash, now])?;
    Ok(())
}

// ---- API keys -----------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub secret_hash: Vec<u8>,
    pub created_by: String,
    pub properties: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The person who created the key is disabled (or gone), or no longer holds a role that
    /// may grant the key's: the key does not authenticate until that changes back. Computed
    /// when read, never stored.
    pub suspended: bool,
}

const API_KEY_COLUMNS: &str = "id, name, role, secret_hash, created_by, properties, created_at, \
     last_used_at, revoked_at, (SELECT role FROM staff WHERE staff.id = api_keys.created_by \
     AND staff.disabled = 0)";

fn api_key_from_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    let properties: String = r.get(5)?;
    let role: String = r.get(2)?;
    // The active creator's role, NULL when they are disabled or gone.
    let creator_role: Option<String> = r.get(9)?;
    let suspended = match (creator_role.as_deref().and_then(Role::parse), Role::parse(&role)) {
        (Some(creator), Some(key)) => !creator.can_grant(key),
        _ => true,
    };
    Ok(ApiKeyRow {
        id: r.get(0)?,
        name: r.get(1)?,
        role,
        secret_hash: r.get(3)?,
        created_by: r.get(4)?,
        properties: serde_json::from_str(&properties).unwrap_or_default(),
        created_at: r.get(6)?,
        last_used_at: r.get(7)?,
        revoked_at: r.get(8)?,
        suspended,
    })
}

pub fn insert_api_key(conn: &Connection, key: &ApiKeyRow) -> rusqlite::Result<()> {
    let properties = serde_json::to_string(&key.properties).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO api_keys (id, name, role, secret_hash, created_by, properties, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        key.id,
        key.name,
        key.role,
        key.secret_hash,
        key.created_by,
        properties,
        key.created_at
    ])?;
    Ok(())
}

pub fn get_api_key(conn: &Connection, id: &str) -> rusqlite::Result<Option<ApiKeyRow>> {
    conn.prepare_cached(&format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1"))?
        .query_row([id], api_key_from_row)
        .optional()
}

/// Keys that act on any of `properties`, newest first.
pub fn list_api_keys(conn: &Connection, properties: &[String]) -> rusqlite::Result<Vec<ApiKeyRow>> {
    let json = serde_json::to_string(properties).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(&format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys
         WHERE EXISTS (SELECT 1 FROM json_each(api_keys.properties) k
                       WHERE k.value IN (SELECT value FROM json_each(?1)))
         ORDER BY created_at DESC"
    ))?
    .query_map([json], api_key_from_row)?
    .collect()
}

pub fn revoke_api_key(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")?
        .execute(params![id, now])?;
    Ok(changed > 0)
}

/// Unrevoked keys made by `staff_id`.
pub fn live_api_keys_created_by(conn: &Connection, staff_id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM api_keys WHERE created_by = ?1 AND revoked_at IS NULL",
    )?
    .query_row([staff_id], |r| r.get(0))
}

pub fn touch_api_key(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}
