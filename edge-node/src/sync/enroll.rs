//! `stayos-edge enroll`: trades a one-time token from `stayos-hub enroll-token` for this
//! node's credential, and stores the hub link in `node_meta`.
//!
//! A node serves exactly the property it is enrolled for: a data directory that holds any
//! other property (even a deleted one, whose rows would still be pushed and refused) is not
//! enrolled.
//!
//! Nothing is stored unless the hub said yes: every check (token shape, URL, pin, identity,
//! other properties, an earlier enrollment) runs first, then the one request, then one transaction. It works
//! while `stayos-edge serve` runs on the same data directory (SQLite WAL; the database is
//! opened the way `changes import` opens it) — the running agent picks the link up within
//! a few seconds.

use std::path::{Path, PathBuf};

use crdt::protocol::{EnrollRequest, EnrollToken};
use rusqlite::TransactionBehavior;

use super::client::{HubClient, HubError};
use super::config::{self, HubLink, Pin};
use crate::db::{self, DB_FILE, DbError};

/// What to enroll with.
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub data_dir: PathBuf,
    /// `https://host:port` (or `http://` for loopback tests and development).
    pub hub_url: String,
    /// The whole token `stayos-hub enroll-token` printed.
    pub token: String,
    /// PEM of the CA that issued the hub's certificate; replaces the token's fingerprint.
    pub hub_ca_pem: Option<String>,
    /// Replace an earlier enrollment.
    pub force: bool,
}

/// What enrollment stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollReport {
    pub node_id: String,
    pub property_id: String,
    pub hub_url: String,
    /// Hex.
    pub hub_site_id: String,
    /// The link is plain HTTP: not encrypted.
    pub unencrypted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("{0}")]
    BadInput(String),
    #[error(
        "this node is already enrolled with {url} as node {node_id}; pass --force to replace it"
    )]
    AlreadyEnrolled { url: String, node_id: String },
    #[error("{} holds no StayOS database; run `stayos-edge init` first", .0.display())]
    NotInitialised(PathBuf),
    #[error(
        "this node holds {} properties: its own {own} and {}; a node serves exactly the property \
         it is enrolled for, so only a node that holds nothing but {own} can be enrolled — give \
         each other property a node of its own (`stayos-edge init`)",
        others.len() + 1,
        others.join(", ")
    )]
    OtherProperties { own: String, others: Vec<String> },
    #[error("the token was already used; ask the hub operator for a new one")]
    TokenUsed,
    #[error("the token has expired; ask the hub operator for a new one")]
    TokenExpired,
    #[error("the hub does not know this token (mistyped, or made by another hub)")]
    TokenInvalid,
    #[error("the token is for another property than this node's ({0})")]
    PropertyMismatch(String),
    #[error("the hub is unreachable: {0}")]
    Unreachable(String),
    #[error("the hub's certificate does not match the pin: {0}")]
    CertificateMismatch(String),
    #[error("the hub refused: {0}")]
    Refused(String),
    #[error("the hub's answer is not understood: {0}")]
    Protocol(String),
    #[error("failed to use the database: {0}")]
    Db(#[from] DbError),
}

impl EnrollError {
    /// 2 for input the operator must correct before trying again, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            EnrollError::BadInput(_)
            | EnrollError::AlreadyEnrolled { .. }
            | EnrollError::OtherProperties { .. }
            | EnrollError::NotInitialised(_) => 2,
            _ => 1,
        }
    }
}

impl From<config::LinkError> for EnrollError {
    fn from(e: config::LinkError) -> Self {
        match e {
            config::LinkError::Sqlite(e) => EnrollError::Db(DbError::from(e)),
            // A damaged earlier link can only be replaced.
            corrupt @ config::LinkError::Corrupt(_) => EnrollError::BadInput(corrupt.to_string()),
        }
    }
}

/// The pin for a hub URL: the given CA, else the token's fingerprint; none for http://.
fn pin_for(url: &str, token: &EnrollToken, ca_pem: Option<&str>) -> Result<Pin, EnrollError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") {
        return Ok(Pin::None(true));
    }
    if !lower.starts_with("https://") {
        return Err(EnrollError::BadInput(format!(
            "the hub URL must start with https:// (or http:// for a test hub), not {url:?}"
        )));
    }
    match (ca_pem, &token.cert_sha256) {
        (Some(pem), _) => Ok(Pin::CaPem(pem.to_string())),
        (None, Some(fp)) => Ok(Pin::CertSha256(fp.clone())),
        (None, None) => Err(EnrollError::BadInput(
            "the token carries no certificate fingerprint; pass --hub-ca".into(),
        )),
    }
}

fn open(data_dir: &Path) -> Result<(rusqlite::Connection, crdt::Replica), EnrollError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Err(EnrollError::NotInitialised(data_dir.to_path_buf()));
    }
    let mut conn = db::open_writer(&path)?;
    let replica = db::prepare(&mut conn)?;
    Ok((conn, replica))
}

/// 2 (bad input) unless `own` is the only property in the database, deleted ones included.
fn ensure_one_property(conn: &rusqlite::Connection, own: &str) -> Result<(), EnrollError> {
    let others = conn
        .prepare("SELECT id, name FROM properties WHERE id <> ?1 ORDER BY id")
        .and_then(|mut stmt| {
            stmt.query_map([own], |r| {
                let (id, name): (String, String) = (r.get(0)?, r.get(1)?);
                Ok(format!("{id} ({name:?})"))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(DbError::from)?;
    if others.is_empty() {
        Ok(())
    } else {
        Err(EnrollError::OtherProperties { own: own.to_string(), others })
    }
}

/// The node's site id and property, and its current hub link.
fn identity(data_dir: &Path) -> Result<(String, String, Option<HubLink>), EnrollError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Err(EnrollError::NotInitialised(data_dir.to_path_buf()));
    }
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(DbError::from)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(DbError::from)?;
    let node = crate::node::load(&conn)
        .map_err(DbError::from)?
        .ok_or_else(|| EnrollError::NotInitialised(data_dir.to_path_buf()))?;
    ensure_one_property(&conn, &node.property_id)?;
    let link = config::load(&conn);
    let _ = conn.close();
    let link = match link {
        Ok(link) => link,
        // A damaged link is replaced like any other.
        Err(config::LinkError::Corrupt(_)) => None,
        Err(e) => return Err(e.into()),
    };
    Ok((node.site_id, node.property_id, link))
}

fn save(data_dir: &Path, own: &str, link: &HubLink) -> Result<(), EnrollError> {
    let (mut conn, replica) = open(data_dir)?;
    let tx =
        conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(DbError::from)?;
    // Again under the write lock: a property created while the hub was asked must not
    // slip in beside the link (POST /properties checks for a link in its own transaction).
    ensure_one_property(&tx, own)?;
    replica.refresh(&tx).map_err(DbError::from)?;
    config::store(&tx, link)?;
    replica.flush(&tx).map_err(DbError::from)?;
    tx.commit().map_err(DbError::from)?;
    conn.close().map_err(|(_, e)| DbError::from(e))?;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EnrollError> + Send + 'static,
) -> Result<T, EnrollError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| EnrollError::Db(DbError::Panicked))?
}

/// Enrolls the node in `options.data_dir` with the hub.
pub async fn enroll(options: &EnrollOptions) -> Result<EnrollReport, EnrollError> {
    let token =
        EnrollToken::parse(&options.token).map_err(|e| EnrollError::BadInput(e.to_string()))?;
    let url = options.hub_url.trim().trim_end_matches('/').to_string();
    let pin = pin_for(&url, &token, options.hub_ca_pem.as_deref())?;
    if let Pin::CaPem(_) = &pin {
        // A CA file that is no CA is bad input, told before the hub is asked.
        super::client::tls_config(&pin).map_err(|e| EnrollError::BadInput(e.to_string()))?;
    }
    let dir = options.data_dir.clone();
    let (site_id, property_id, existing) = blocking(move || identity(&dir)).await?;
    if let Some(link) = existing
        && !options.force
    {
        return Err(EnrollError::AlreadyEnrolled { url: link.url, node_id: link.node_id });
    }

    let client = HubClient::new(&url, &pin, None).map_err(|e| match e {
        HubError::Setup(m) => EnrollError::BadInput(m),
        other => EnrollError::Protocol(other.to_string()),
    })?;
    let request = EnrollRequest {
        token: token.format(),
        site_id,
        property_id: property_id.clone(),
        name: crate::tls::host_name().unwrap_or_default(),
    };
    let answer = client.enroll(&request).await.map_err(|e| match e {
        HubError::Network(m) => EnrollError::Unreachable(m),
        HubError::Certificate(m) => EnrollError::CertificateMismatch(m),
        HubError::Http { code, message, .. } => match code.as_str() {
            "token_used" => EnrollError::TokenUsed,
            "token_expired" => EnrollError::TokenExpired,
            "token_invalid" => EnrollError::TokenInvalid,
            "property_mismatch" => EnrollError::PropertyMismatch(property_id.clone()),
            _ => EnrollError::Refused(format!("{code}: {message}")),
        },
        HubError::Protocol(m) | HubError::Setup(m) => EnrollError::Protocol(m),
    })?;
    if answer.property_id != property_id {
        return Err(EnrollError::PropertyMismatch(property_id));
    }
    let hub_site_id = hex::decode(&answer.hub_site_id)
        .ok()
        .filter(|s| s.len() == 16)
        .ok_or_else(|| EnrollError::Protocol("hub_site_id is not 16 bytes of hex".into()))?;
    if answer.node_id.is_empty() || !answer.credential.starts_with(&format!("{}.", answer.node_id))
    {
        return Err(EnrollError::Protocol("the credential is not <node_id>.<secret>".into()));
    }
    let link = HubLink {
        url: url.clone(),
        node_id: answer.node_id.clone(),
        credential: answer.credential,
        hub_site_id,
        pin: pin.clone(),
    };
    let (dir, own) = (options.data_dir.clone(), property_id.clone());
    blocking(move || save(&dir, &own, &link)).await?;
    Ok(EnrollReport {
        node_id: answer.node_id,
        property_id,
        hub_url: url,
        hub_site_id: answer.hub_site_id.to_ascii_lowercase(),
        unencrypted: matches!(pin, Pin::None(_)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(fp: Option<&str>) -> EnrollToken {
        EnrollToken { secret: "abc".into(), cert_sha256: fp.map(str::to_string) }
    }

    #[test]
    fn the_pin_comes_from_the_ca_then_the_token_and_https_needs_one() {
        let fp = "ab".repeat(32);
        assert_eq!(
            pin_for("https://hub", &token(Some(&fp)), None).expect("pin"),
            Pin::CertSha256(fp.clone())
        );
        assert_eq!(
            pin_for("https://hub", &token(Some(&fp)), Some("PEM")).expect("pin"),
            Pin::CaPem("PEM".into())
        );
        assert_eq!(pin_for("http://hub", &token(None), None).expect("pin"), Pin::None(true));
        let err = pin_for("https://hub", &token(None), None).expect_err("no pin");
        assert!(err.to_string().contains("--hub-ca"), "{err}");
        assert_eq!(err.exit_code(), 2);
        assert!(pin_for("ftp://hub", &token(Some(&fp)), None).is_err());
    }
}
