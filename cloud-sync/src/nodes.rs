//! Enrollment tokens, node credentials, revocation and the hub's audit log (tables of
//! `migrations/hub/0002-nodes/`).
//!
//! Secrets never reach the database: a token or credential is stored as the SHA-256 of its
//! secret, and a presented secret is compared by hash in constant time. Tokens are looked up
//! by that hash; credentials by the node id in front of the secret, so a wrong secret for a
//! known node and an unknown node look the same to the caller (401).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use crdt::protocol::{EnrollRequest, EnrollToken};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::db::{HubError, Pool};

/// Allowed token lifetimes, in minutes: at least one, at most a week.
pub const TTL_MINUTES: std::ops::RangeInclusive<u32> = 1..=10_080;

/// Audit events.
pub const EV_ENROLLED: &str = "node_enrolled";
pub const EV_REVOKED: &str = "node_revoked";
pub const EV_REVOKED_REFUSED: &str = "revoked_node_refused";
pub const EV_PUSH_REFUSED: &str = "push_refused";
pub const EV_IMPORTED: &str = "changes_imported";
pub const EV_EXPORTED: &str = "changes_exported";
pub const EV_TOKEN_CREATED: &str = "enroll_token_created";

fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn sha256(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// A property id as the hub accepts it: what edges generate (UUIDs) and readable test ids,
/// never anything that could smuggle control characters into logs or tables.
pub fn check_property_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err("a property id has 1 to 128 characters".into());
    }
    if !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')) {
        return Err("a property id has only letters, digits and - _ . :".into());
    }
    Ok(())
}

/// True once `stayos-hub migrate` has created this part's tables.
pub async fn is_migrated(pool: &Pool) -> Result<bool, HubError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT to_regclass('nodes') IS NOT NULL AND to_regclass('hub_meta') IS NOT NULL",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// Creates a one-time token for `property_id`, valid `ttl_minutes`. `cert_sha256` is the
/// fingerprint the edge will pin (None when the hub serves a certificate it does not own).
pub async fn create_token(
    pool: &Pool,
    property_id: &str,
    ttl_minutes: u32,
    cert_sha256: Option<String>,
) -> Result<EnrollToken, HubError> {
    check_property_id(property_id).map_err(HubError::Invalid)?;
    if !TTL_MINUTES.contains(&ttl_minutes) {
        return Err(HubError::Invalid(format!(
            "a token lives {} to {} minutes",
            TTL_MINUTES.start(),
            TTL_MINUTES.end()
        )));
    }
    let secret = random_secret();
    let ttl = i32::try_from(ttl_minutes).unwrap_or(i32::MAX);
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO enroll_tokens (secret_sha256, property_id, expires_at) \
             VALUES ($1, $2, now() + make_interval(mins => $3))",
            &[&sha256(&secret), &property_id, &ttl],
        )
        .await?;
    audit(
        &client,
        EV_TOKEN_CREATED,
        None,
        Some(property_id),
        json!({ "ttl_minutes": ttl_minutes }),
    )
    .await?;
    Ok(EnrollToken { secret, cert_sha256 })
}

/// Why an enrollment was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment token is not valid")]
    TokenInvalid,
    #[error(
        "the enrollment token was already used; create a new one with `stayos-hub enroll-token`"
    )]
    TokenUsed,
    #[error("the enrollment token has expired; create a new one with `stayos-hub enroll-token`")]
    TokenExpired,
    #[error("the token was made for property {token}, not {requested}")]
    PropertyMismatch { token: String, requested: String },
    #[error("{field}: {reason}")]
    BadRequest { field: &'static str, reason: String },
    #[error(
        "site {0} is already enrolled; revoke its node with `stayos-hub revoke-node` to enroll it again"
    )]
    SiteEnrolled(String),
    #[error(transparent)]
    Hub(#[from] HubError),
}

impl From<tokio_postgres::Error> for EnrollError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Hub(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for EnrollError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Hub(e.into())
    }
}

/// A successful enrollment: the credential is shown to the node once.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub node_id: String,
    pub credential: String,
    pub property_id: String,
}

/// Parses a site id in hex (16 bytes).
pub fn parse_site_id(hex_text: &str) -> Result<[u8; 16], String> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|_| "a site id is 32 hexadecimal digits".to_string())?;
    <[u8; 16]>::try_from(bytes.as_slice())
        .map_err(|_| "a site id is 16 bytes (32 hexadecimal digits)".to_string())
}

/// Uses a token (once, atomically) and records the node. Nothing changes when anything is
/// refused: a token is burned only by an enrollment that succeeds.
pub async fn enroll(pool: &Pool, req: &EnrollRequest) -> Result<Enrolled, EnrollError> {
    let token = EnrollToken::parse(&req.token).map_err(|_| EnrollError::TokenInvalid)?;
    let site_id = parse_site_id(&req.site_id)
        .map_err(|reason| EnrollError::BadRequest { field: "site_id", reason })?;
    check_property_id(&req.property_id)
        .map_err(|reason| EnrollError::BadRequest { field: "property_id", reason })?;
    let name: String = req.name.chars().filter(|c| !c.is_control()).take(200).collect();
    let token_hash = sha256(&token.secret);
    let node_id = uuid::Uuid::now_v7().to_string();
    let secret = random_secret();

    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let used = tx
        .query_opt(
            "UPDATE enroll_tokens SET used_at = now(), used_by_node = $3 \
             WHERE secret_sha256 = $1 AND used_at IS NULL AND expires_at > now() \
               AND property_id = $2 \
             RETURNING property_id",
            &[&token_hash, &req.property_id, &node_id],
        )
        .await?;
    if used.is_none() {
        let row = tx
            .query_opt(
                "SELECT property_id, used_at IS NOT NULL, expires_at <= now() \
                 FROM enroll_tokens WHERE secret_sha256 = $1",
                &[&token_hash],
            )
            .await?;
        return Err(match row {
            None => EnrollError::TokenInvalid,
            Some(r) if r.get::<_, bool>(1) => EnrollError::TokenUsed,
            Some(r) if r.get::<_, bool>(2) => EnrollError::TokenExpired,
            Some(r) => EnrollError::PropertyMismatch {
                token: r.get(0),
                requested: req.property_id.clone(),
            },
        });
    }
    let inserted = tx
        .query_opt(
            "INSERT INTO nodes (id, property_id, name, site_id, credential_sha256) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (site_id) WHERE revoked_at IS NULL DO NOTHING \
             RETURNING id",
            &[&node_id, &req.property_id, &name, &site_id.as_slice(), &sha256(&secret)],
        )
        .await?;
    if inserted.is_none() {
        return Err(EnrollError::SiteEnrolled(hex::encode(site_id)));
    }
    audit(
        &tx,
        EV_ENROLLED,
        Some(&node_id),
        Some(&req.property_id),
        json!({ "site_id": hex::encode(site_id), "name": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(Enrolled {
        credential: format!("{node_id}.{secret}"),
        node_id,
        property_id: req.property_id.clone(),
    })
}

/// An enrolled node, as authentication finds it.
#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub property_id: String,
    pub site_id: [u8; 16],
}

/// What a presented credential turned out to be.
#[derive(Debug, Clone)]
pub enum Auth {
    Node(Node),
    /// A valid credential of a revoked node.
    Revoked(Node),
    /// Malformed, unknown node, or wrong secret.
    Unknown,
}

/// A credential split into node id and secret, or `None` when it cannot be one.
fn split_credential(credential: &str) -> Option<(&str, &str)> {
    let (id, secret) = credential.split_once('.')?;
    if id.is_empty() || id.len() > 64 || secret.is_empty() || secret.len() > 128 {
        return None;
    }
    Some((id, secret))
}

/// Checks `<node_id>.<secret>`. Reads the database every time, so a revocation takes effect
/// on the node's next request.
pub async fn authenticate(pool: &Pool, credential: &str) -> Result<Auth, HubError> {
    let Some((id, secret)) = split_credential(credential) else {
        return Ok(Auth::Unknown);
    };
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT property_id, site_id, credential_sha256, revoked_at IS NOT NULL \
             FROM nodes WHERE id = $1",
            &[&id],
        )
        .await?;
    drop(client);
    let Some(row) = row else {
        return Ok(Auth::Unknown);
    };
    let stored: Vec<u8> = row.get(2);
    if !bool::from(stored.as_slice().ct_eq(&sha256(secret))) {
        return Ok(Auth::Unknown);
    }
    let site: Vec<u8> = row.get(1);
    let site_id = <[u8; 16]>::try_from(site.as_slice())
        .map_err(|_| HubError::Invalid(format!("node {id} has a malformed site id")))?;
    let node = Node { id: id.to_string(), property_id: row.get(0), site_id };
    Ok(if row.get::<_, bool>(3) { Auth::Revoked(node) } else { Auth::Node(node) })
}

/// [`authenticate`], answered from `cache` when the same credential succeeded recently. Only
/// successes are remembered: a wrong, unknown or revoked credential is read from the database
/// every time, and a revocation drops the node from the cache as soon as its notification
/// arrives (`CredentialCache::revoked`).
pub async fn authenticate_cached(
    pool: &Pool,
    cache: &CredentialCache,
    credential: &str,
) -> Result<Auth, HubError> {
    let Some((id, secret)) = split_credential(credential) else {
        return Ok(Auth::Unknown);
    };
    let hash = sha256(secret);
    if let Some(node) = cache.lookup(id, &hash) {
        return Ok(Auth::Node(node));
    }
    let epoch = cache.epoch();
    let auth = authenticate(pool, credential).await?;
    if let Auth::Node(node) = &auth {
        cache.remember(epoch, hash, node);
    }
    Ok(auth)
}

/// Successful authentications, remembered for a short time so that a thousand nodes
/// long-polling do not each cost a credential query per request.
///
/// Revocation stays immediate: the revoking transaction notifies every hub process
/// (`revoked:<node_id>` on [`crate::db::NOTIFY_CHANNEL`]) and the server's listener calls
/// [`CredentialCache::revoked`]. Nothing is remembered while that listener is not connected
/// (a revocation could be missed), and an authentication read from the database before a
/// revocation or a listener change is not remembered after it (it may predate the
/// revocation): both bump the epoch.
#[derive(Debug)]
pub struct CredentialCache {
    ttl: Duration,
    state: Mutex<CacheState>,
}

#[derive(Debug, Default)]
struct CacheState {
    epoch: u64,
    listening: bool,
    /// node id → (SHA-256 of the secret, the node, remembered until).
    entries: HashMap<String, (Vec<u8>, Node, Instant)>,
}

impl CredentialCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, state: Mutex::new(CacheState::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node whose credential hashes to `secret_sha256`, if it succeeded recently.
    fn lookup(&self, node_id: &str, secret_sha256: &[u8]) -> Option<Node> {
        let state = self.state();
        if !state.listening {
            return None;
        }
        let (stored, node, until) = state.entries.get(node_id)?;
        let matches = bool::from(stored.as_slice().ct_eq(secret_sha256));
        (matches && Instant::now() < *until).then(|| node.clone())
    }

    /// The epoch to pass to [`Self::remember`], read before the database is.
    fn epoch(&self) -> u64 {
        self.state().epoch
    }

    /// Remembers a success read from the database in `epoch`, unless the epoch has moved
    /// since (a revocation or a listener change came in between) or nobody listens.
    fn remember(&self, epoch: u64, secret_sha256: Vec<u8>, node: &Node) {
        let mut state = self.state();
        if !state.listening || state.epoch != epoch {
            return;
        }
        let now = Instant::now();
        if state.entries.len() > 100_000 {
            state.entries.retain(|_, (_, _, until)| now < *until);
        }
        state.entries.insert(node.id.clone(), (secret_sha256, node.clone(), now + self.ttl));
    }

    /// A node was revoked: its next request reads the database.
    pub fn revoked(&self, node_id: &str) {
        let mut state = self.state();
        state.epoch += 1;
        state.entries.remove(node_id);
    }

    /// Whether revocations reach this process; while not, nothing is remembered.
    pub fn set_listening(&self, listening: bool) {
        let mut state = self.state();
        state.epoch += 1;
        state.listening = listening;
        if !listening {
            state.entries.clear();
        }
    }
}

/// Records that a node was seen now.
pub async fn touch(pool: &Pool, node_id: &str) -> Result<(), HubError> {
    let client = pool.get().await?;
    client.execute("UPDATE nodes SET last_seen_at = now() WHERE id = $1", &[&node_id]).await?;
    Ok(())
}

/// What `revoke` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    Now { property_id: String },
    Already { property_id: String },
    UnknownNode,
}

/// Revokes a node: its credential stops working on its next request; its site may be
/// enrolled again with a new token.
pub async fn revoke(pool: &Pool, node_id: &str) -> Result<Revoked, HubError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let row = tx
        .query_opt(
            "SELECT property_id, revoked_at IS NOT NULL FROM nodes WHERE id = $1 FOR UPDATE",
            &[&node_id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Revoked::UnknownNode);
    };
    let property_id: String = row.get(0);
    if row.get::<_, bool>(1) {
        return Ok(Revoked::Already { property_id });
    }
    tx.execute("UPDATE nodes SET revoked_at = now() WHERE id = $1", &[&node_id]).await?;
    // Serving hub processes drop the node's remembered credential when this commits.
    tx.execute(
        "SELECT pg_notify($1, 'revoked:' || $2::text)",
        &[&crate::db::NOTIFY_CHANNEL, &node_id],
    )
    .await?;
    audit(&tx, EV_REVOKED, Some(node_id), Some(&property_id), json!({})).await?;
    tx.commit().await?;
    Ok(Revoked::Now { property_id })
}

/// A line of `stayos-hub nodes`.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub property_id: String,
    pub name: String,
    pub site_id: String,
    pub enrolled_at: String,
    pub last_seen_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// Every node ever enrolled, oldest first.
pub async fn list(pool: &Pool) -> Result<Vec<NodeRow>, HubError> {
    const TS: &str = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT id, property_id, name, encode(site_id, 'hex'), \
                        to_char(created_at AT TIME ZONE 'UTC', {TS}), \
                        to_char(last_seen_at AT TIME ZONE 'UTC', {TS}), \
                        to_char(revoked_at AT TIME ZONE 'UTC', {TS}) \
                 FROM nodes ORDER BY created_at, id"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| NodeRow {
            id: r.get(0),
            property_id: r.get(1),
            name: r.get(2),
            site_id: r.get(3),
            enrolled_at: r.get(4),
            last_seen_at: r.get(5),
            revoked_at: r.get(6),
        })
        .collect())
}

/// Appends to `hub_audit`, on a connection or inside a caller's transaction.
pub async fn audit(
    client: &impl deadpool_postgres::GenericClient,
    event: &str,
    node_id: Option<&str>,
    property_id: Option<&str>,
    details: Value,
) -> Result<(), HubError> {
    client
        .execute(
            "INSERT INTO hub_audit (event, node_id, property_id, details) \
             VALUES ($1, $2, $3, $4::text::jsonb)",
            &[&event, &node_id, &property_id, &details.to_string()],
        )
        .await?;
    Ok(())
}

/// [`audit`] on a pooled connection.
pub async fn audit_pool(
    pool: &Pool,
    event: &str,
    node_id: Option<&str>,
    property_id: Option<&str>,
    details: Value,
) -> Result<(), HubError> {
    let client = pool.get().await?;
    audit(&client, event, node_id, property_id, details).await
}

/// "At most once per `period` per key": keeps `last_seen_at` writes and the audit of a
/// revoked node that keeps retrying from turning every request into a database write.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    last: Mutex<HashMap<String, Instant>>,
}

impl Throttle {
    pub fn new(period: Duration) -> Self {
        Self { period, last: Mutex::new(HashMap::new()) }
    }

    /// True when `key` was not let through within the period (and records it now).
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.len() > 100_000 {
            // Bounded memory whatever the callers do: forget entries older than the period.
            let period = self.period;
            last.retain(|_, at| now.duration_since(*at) < period);
        }
        match last.get(key) {
            Some(at) if now.duration_since(*at) < self.period => false,
            _ => {
                last.insert(key.to_string(), now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_ids_are_exactly_sixteen_bytes_of_hex() {
        assert_eq!(parse_site_id(&"ab".repeat(16)).expect("ok"), [0xab; 16]);
        assert!(parse_site_id("ab").is_err());
        assert!(parse_site_id(&"zz".repeat(16)).is_err());
        assert!(parse_site_id(&"ab".repeat(17)).is_err());
    }

    #[test]
    fn property_ids_refuse_empty_long_and_odd_characters() {
        assert!(check_property_id("0195f2a0-7c1d-7000-8000-000000000001").is_ok());
        assert!(check_property_id("").is_err());
        assert!(check_property_id(&"a".repeat(129)).is_err());
        assert!(check_property_id("a b").is_err());
        assert!(check_property_id("a\nb").is_err());
    }

    fn node(id: &str) -> Node {
        Node { id: id.into(), property_id: "P1".into(), site_id: [1; 16] }
    }

    #[test]
    fn remembered_credentials_need_a_listener_the_same_secret_and_no_revocation_in_between() {
        let cache = CredentialCache::new(Duration::from_secs(60));
        let hash = sha256("secret");
        cache.remember(cache.epoch(), hash.clone(), &node("n1"));
        assert!(cache.lookup("n1", &hash).is_none(), "nothing is remembered without a listener");

        cache.set_listening(true);
        cache.remember(cache.epoch(), hash.clone(), &node("n1"));
        assert_eq!(cache.lookup("n1", &hash).map(|n| n.id), Some("n1".into()));
        assert!(cache.lookup("n1", &sha256("other")).is_none(), "another secret");

        cache.revoked("n1");
        assert!(cache.lookup("n1", &hash).is_none(), "revoked: read the database again");
        let before = cache.epoch();
        cache.revoked("n2");
        cache.remember(before, hash.clone(), &node("n1"));
        assert!(cache.lookup("n1", &hash).is_none(), "read before a revocation: not kept");

        cache.remember(cache.epoch(), hash.clone(), &node("n1"));
        cache.set_listening(false);
        cache.set_listening(true);
        assert!(cache.lookup("n1", &hash).is_none(), "a lost listener forgets everything");

        let brief = CredentialCache::new(Duration::ZERO);
        brief.set_listening(true);
        brief.remember(brief.epoch(), hash.clone(), &node("n1"));
        assert!(brief.lookup("n1", &hash).is_none(), "expired");
    }

    #[test]
    fn a_throttle_lets_each_key_through_once_per_period() {
        let t = Throttle::new(Duration::from_secs(60));
        assert!(t.allow("a"));
        assert!(!t.allow("a"));
        assert!(t.allow("b"));
        let zero = Throttle::new(Duration::ZERO);
        assert!(zero.allow("a"));
        assert!(zero.allow("a"));
    }
}
