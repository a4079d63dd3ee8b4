//! The node's audit key: the secret that keys the audit log's hash chain (HMAC-SHA256), so
//! someone who can write the database but not read this file cannot rewrite the chain with
//! recomputed hashes.
//!
//! It lives in `DIR/keys/audit.key` (mode 0600), never in a table: tables replicate, files do
//! not. The file also says from which sequence number on entries are keyed
//! (`keyed_from_seq`): entries written before the key existed (a node older than the key)
//! carry unkeyed SHA-256 hashes and verify as such, and because that boundary is kept beside
//! the secret, a rewrite of the keyed entries as "old" unkeyed ones does not verify either.
//!
//! Connections get the key as SQL functions (`install`), so `audit::record`, called inside
//! other modules' write transactions on the writer, needs no extra argument:
//! `stayos_audit_mac(text)` (hex HMAC of its argument) and `stayos_audit_keyed_from()`. Both
//! are direct-only: no trigger, view or schema object can call them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Where the key lives inside a data directory.
pub const AUDIT_KEY_FILE: &str = "keys/audit.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to read the audit key {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("failed to create the audit key {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error(
        "the audit key {path} is damaged; restore it from a backup (without it the audit \
         chain cannot be verified)"
    )]
    Damaged { path: String },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The secret and the first sequence number it keys.
#[derive(Clone)]
pub struct AuditKey {
    secret: Arc<[u8]>,
    pub keyed_from_seq: i64,
}

/// The key never appears in logs or panics.
impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("keyed_from_seq", &self.keyed_from_seq).finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    /// 32 random bytes, base64.
    secret: String,
    keyed_from_seq: i64,
}

impl AuditKey {
    /// A new random key for entries from `keyed_from_seq` on.
    pub fn generate(keyed_from_seq: i64) -> AuditKey {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        AuditKey { secret: Arc::from(&secret[..]), keyed_from_seq }
    }

    /// Hex HMAC-SHA256 of `message`.
    pub fn mac(&self, message: &str) -> String {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn to_file(&self) -> String {
        let file = KeyFile {
            version: 1,
            secret: base64::engine::general_purpose::STANDARD.encode(&self.secret),
            keyed_from_seq: self.keyed_from_seq,
        };
        serde_json::to_string(&file).unwrap_or_default() + "\n"
    }

    fn parse(text: &str) -> Option<AuditKey> {
        let file: KeyFile = serde_json::from_str(text.trim()).ok()?;
        let secret = base64::engine::general_purpose::STANDARD.decode(file.secret).ok()?;
        (file.version == 1 && secret.len() >= 32 && file.keyed_from_seq >= 1)
            .then(|| AuditKey { secret: Arc::from(secret), keyed_from_seq: file.keyed_from_seq })
    }
}

fn key_path(data_dir: &Path) -> PathBuf {
    data_dir.join(AUDIT_KEY_FILE)
}

/// Reads `DIR/keys/audit.key`; `None` when there is none.
pub fn load(data_dir: &Path) -> Result<Option<AuditKey>, KeyError> {
    let path = key_path(data_dir);
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => AuditKey::parse(&text).map(Some).ok_or(KeyError::Damaged { path: shown }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyError::Read { path: shown, source }),
    }
}

/// Writes a new key file (refusing to overwrite one), readable by the node's user only.
pub fn create(data_dir: &Path, key: &AuditKey) -> Result<(), KeyError> {
    let path = key_path(data_dir);
    let write_err = |source| KeyError::Write { path: path.display().to_string(), source };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(write_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
    }
    crate::fsutil::write_file(&path, key.to_file().as_bytes(), true).map_err(write_err)
}

/// The node's key, created on first use: a node whose log predates the key keys the entries
/// after its last one.
pub fn load_or_create(data_dir: &Path, conn: &Connection) -> Result<AuditKey, KeyError> {
    if let Some(key) = load(data_dir)? {
        return Ok(key);
    }
    let last: i64 =
        conn.query_row("SELECT coalesce(max(seq), 0) FROM audit_log", [], |r| r.get(0))?;
    let key = AuditKey::generate(last + 1);
    match create(data_dir, &key) {
        Ok(()) => {
            if last > 0 {
                tracing::info!(
                    keyed_from_seq = key.keyed_from_seq,
                    "created the audit key; earlier audit entries keep their unkeyed hashes"
                );
            }
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(KeyError::Write { source, .. })
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            load(data_dir)?
                .ok_or(KeyError::Damaged { path: key_path(data_dir).display().to_string() })
        }
        Err(err) => Err(err),
    }
}

/// Gives `conn` the key as the SQL functions `stayos_audit_mac(text)` and
/// `stayos_audit_keyed_from()`.
pub fn install(conn: &Connection, key: &AuditKey) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    let mac_key = key.clone();
    conn.create_scalar_function("stayos_audit_mac", 1, flags, move |ctx| {
        let message: String = ctx.get(0)?;
        Ok(mac_key.mac(&message))
    })?;
    let from = key.keyed_from_seq;
    conn.create_scalar_function("stayos_audit_keyed_from", 0, flags, move |_| Ok(from))
}
