//! The hub's own TLS certificate: self-signed, generated once. The certificate (public) is
//! kept in `hub_meta`, so every hub process on the same database serves the same one and an
//! enrollment token can carry its SHA-256 for the edge to pin on first contact. Its private
//! key is kept out of the database, in `tls-key.pem` (mode 0600) of the hub's state directory
//! (`--state-dir`): whoever reads the database or a backup of it cannot impersonate the hub.
//! A second hub machine on the same database needs a copy of that file.
//!
//! [`hub_certificate`] creates both on first run, and moves a key that an older hub kept in
//! `hub_meta` into the file, deleting it from the database — idempotently, under an advisory
//! lock so hub processes starting together agree. Migration `0004-tls-key-out` refuses any
//! `hub_meta` value holding a private key from then on.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

use crate::db::{self, HubError, Pool};

/// `hub_meta` key of the certificate (PEM).
pub const CERT_KEY: &str = "tls_cert_pem";
/// `hub_meta` key where hubs before migration `0004-tls-key-out` kept the private key.
pub const PRIVATE_KEY_KEY: &str = "tls_key_pem";
/// `hub_meta` key saying what `serve` last served: `db` (the stored certificate), `files`
/// (an operator's certificate, e.g. from a public CA) or `http`. Enrollment tokens carry
/// the stored certificate's fingerprint only when that is what edges will see.
pub const SERVED_KEY: &str = "tls_served";
/// The private key's file in the state directory.
pub const KEY_FILE: &str = "tls-key.pem";

/// Advisory lock held while the certificate is created or its key moved.
const TLS_LOCK: i64 = 0x5354_4159_4f53_544b;

/// How long the generated certificate is valid. Edges pin it, so rotating it means
/// re-enrolling every node; ten years keeps that a deliberate act, not a surprise.
const VALIDITY_DAYS: u64 = 3650;

/// The hub's certificate and key as PEM, and the SHA-256 of the certificate (DER, hex).
#[derive(Clone)]
pub struct HubCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub sha256_hex: String,
}

impl std::fmt::Debug for HubCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("HubCert").field("sha256_hex", &self.sha256_hex).finish_non_exhaustive()
    }
}

/// Why the hub's certificate or key cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Hub(#[from] HubError),
    /// Something the operator must put right (a missing or foreign key file, its mode).
    #[error("{0}")]
    Setup(String),
}

/// Installs the workspace's one rustls crypto provider (aws-lc-rs), as the edge does.
/// Later calls are no-ops.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// SHA-256 (hex) of the first certificate of a PEM text: what edges pin.
pub fn pem_sha256(cert_pem: &str) -> Result<String, HubError> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| HubError::Invalid(format!("the hub certificate is not PEM: {e}")))?;
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

/// The certificate in `hub_meta`, without its key: what enrollment tokens pin.
pub async fn stored_certificate(pool: &Pool) -> Result<Option<(String, String)>, HubError> {
    let Some(cert) = db::hub_meta(pool, CERT_KEY).await? else { return Ok(None) };
    let cert_pem = String::from_utf8(cert)
        .map_err(|_| HubError::Invalid(format!("hub_meta.{CERT_KEY} is not PEM text")))?;
    let sha = pem_sha256(&cert_pem)?;
    Ok(Some((cert_pem, sha)))
}

/// Whether `hub_meta` still holds the private key in clear (a hub from before migration
/// `0004-tls-key-out` that has not moved it yet).
pub async fn key_in_database(pool: &Pool) -> Result<bool, HubError> {
    Ok(db::hub_meta(pool, PRIVATE_KEY_KEY).await?.is_some())
}

/// The hub's certificate with its key from `state_dir`: created on first run (key file
/// first, then the certificate), or a key still in `hub_meta` moved into the file and
/// deleted from the database. Refuses a key file that is not the certificate's, or readable
/// by anyone but its owner.
pub async fn hub_certificate(pool: &Pool, state_dir: &Path) -> Result<HubCert, TlsError> {
    let client = pool.get().await.map_err(HubError::from)?;
    client.execute("SELECT pg_advisory_lock($1)", &[&TLS_LOCK]).await.map_err(HubError::from)?;
    let result = certificate_locked(&client, state_dir).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&TLS_LOCK]).await;
    let cert = result?;
    unlocked.map_err(HubError::from)?;
    Ok(cert)
}

async fn certificate_locked(
    client: &deadpool_postgres::Object,
    state_dir: &Path,
) -> Result<HubCert, TlsError> {
    let meta = async |key: &str| -> Result<Option<String>, TlsError> {
        let row = client
            .query_opt("SELECT value FROM hub_meta WHERE key = $1", &[&key])
            .await
            .map_err(HubError::from)?;
        row.map(|r| {
            String::from_utf8(r.get(0))
                .map_err(|_| TlsError::Setup(format!("hub_meta.{key} is not PEM text")))
        })
        .transpose()
    };
    let key_path = state_dir.join(KEY_FILE);
    let file_key = read_key_file(&key_path)?;
    let cert_pem = match (meta(CERT_KEY).await?, meta(PRIVATE_KEY_KEY).await?) {
        (Some(cert_pem), db_key) => {
            let key_pem = match (file_key, db_key) {
                (Some(file), _) if matches(&cert_pem, &file)? => file,
                (Some(_), _) => {
                    return Err(TlsError::Setup(format!(
                        "{} is not the private key of this hub's certificate (sha256 {}); \
                         it belongs to another hub database. Give this hub its own --state-dir",
                        key_path.display(),
                        pem_sha256(&cert_pem)?
                    )));
                }
                (None, Some(db_key)) if matches(&cert_pem, &db_key)? => {
                    write_key_file(state_dir, &db_key)?;
                    tracing::info!(path = %key_path.display(), "moved the hub's TLS private key out of the database");
                    db_key
                }
                (None, Some(_)) => {
                    return Err(TlsError::Setup(format!(
                        "hub_meta.{PRIVATE_KEY_KEY} is not the private key of hub_meta.{CERT_KEY}; \
                         the database was edited by hand"
                    )));
                }
                (None, None) => {
                    return Err(TlsError::Setup(format!(
                        "this hub's certificate (sha256 {}) exists, but its private key is not \
                         at {}: copy {KEY_FILE} from the state directory of the hub that created \
                         it (nodes pin this certificate, so a new one would mean re-enrolling \
                         every node)",
                        pem_sha256(&cert_pem)?,
                        key_path.display()
                    )));
                }
            };
            // The file holds the key now (written and synced above, or already there): the
            // database copy goes. Deleting nothing is fine: this is safe to run again.
            client
                .execute("DELETE FROM hub_meta WHERE key = $1", &[&PRIVATE_KEY_KEY])
                .await
                .map_err(HubError::from)?;
            return Ok(HubCert { sha256_hex: pem_sha256(&cert_pem)?, cert_pem, key_pem });
        }
        (None, Some(_)) => {
            return Err(TlsError::Setup(format!(
                "hub_meta holds a TLS private key ({PRIVATE_KEY_KEY}) but no certificate; the \
                 database was edited by hand"
            )));
        }
        (None, None) => {
            // First run: the key file (an existing one is reused), then the certificate.
            let key_pem = match file_key {
                Some(key) => key,
                None => {
                    let key = KeyPair::generate().map_err(rcgen_err)?.serialize_pem();
                    write_key_file(state_dir, &key)?;
                    key
                }
            };
            let cert_pem = generate(&key_pem)?;
            client
                .execute(
                    "INSERT INTO hub_meta (key, value) VALUES ($1, $2)",
                    &[&CERT_KEY, &cert_pem.as_bytes()],
                )
                .await
                .map_err(HubError::from)?;
            cert_pem
        }
    };
    let key_pem = read_key_file(&key_path)?
        .ok_or_else(|| TlsError::Setup(format!("{} vanished", key_path.display())))?;
    Ok(HubCert { sha256_hex: pem_sha256(&cert_pem)?, cert_pem, key_pem })
}

fn rcgen_err(e: rcgen::Error) -> HubError {
    HubError::Invalid(format!("failed to create a certificate: {e}"))
}

/// The key file, if there is one; refused when others than its owner may read it.
fn read_key_file(path: &Path) -> Result<Option<String>, TlsError> {
    let setup = |e: std::io::Error| TlsError::Setup(format!("cannot read {}: {e}", path.display()));
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(setup(e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TlsError::Setup(format!(
            "{} is readable by others (mode {mode:o}); `chmod 600` it",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map(Some).map_err(setup)
}

/// Writes the key file atomically with mode 0600, in a directory of mode 0700 (created).
fn write_key_file(dir: &Path, key_pem: &str) -> Result<PathBuf, TlsError> {
    let path = dir.join(KEY_FILE);
    let fail = |e: std::io::Error| TlsError::Setup(format!("cannot write {}: {e}", path.display()));
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(fail)?;
    let partial = dir.join(format!(".{KEY_FILE}.partial-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)?;
        out.write_all(key_pem.as_bytes())?;
        out.sync_all()?;
        std::fs::rename(&partial, &path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written.map_err(fail)?;
    Ok(path)
}

/// Whether `key_pem` is the private key of the certificate `cert_pem`.
fn matches(cert_pem: &str, key_pem: &str) -> Result<bool, TlsError> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|e| TlsError::Setup(format!("the hub certificate is not PEM: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::Setup(format!("the hub's private key is not PEM: {e}")))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Setup(format!("the hub's private key is not usable: {e}")))?;
    Ok(rustls::sign::CertifiedKey::new(vec![cert], Arc::clone(&signing)).keys_match().is_ok())
}

/// This machine's host name, for the certificate's names.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A self-signed certificate of `key_pem` (ECDSA P-256 when the hub made it) for localhost,
/// the loopback addresses and this host. Edges pin its fingerprint rather than validating
/// names, so the names matter only to other clients (a browser, curl) pointed at the hub.
fn generate(key_pem: &str) -> Result<String, HubError> {
    let key = KeyPair::from_pem(key_pem).map_err(rcgen_err)?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(host_name());
    names.sort();
    names.dedup();
    let mut params = CertificateParams::new(names).map_err(rcgen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "StayOS hub");
    dn.push(DnType::OrganizationName, "StayOS");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = std::time::SystemTime::now();
    // A day of slack for edges whose clocks run behind.
    params.not_before = (now - std::time::Duration::from_secs(86_400)).into();
    params.not_after = (now + std::time::Duration::from_secs(VALIDITY_DAYS * 86_400)).into();
    let cert = params.self_signed(&key).map_err(rcgen_err)?;
    Ok(cert.pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_parses_and_its_fingerprint_is_the_sha256_of_its_der() {
        install_crypto_provider();
        let key_pem = KeyPair::generate().expect("key").serialize_pem();
        let cert_pem = generate(&key_pem).expect("generate");
        assert!(key_pem.contains("PRIVATE KEY"));
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("pem");
        let fp = pem_sha256(&cert_pem).expect("fingerprint");
        assert_eq!(fp, hex::encode(Sha256::digest(der.as_ref())));
        assert_eq!(fp.len(), 64);
        assert!(pem_sha256("not a certificate").is_err());
        assert!(matches(&cert_pem, &key_pem).expect("match"));
        let other = KeyPair::generate().expect("key").serialize_pem();
        assert!(!matches(&cert_pem, &other).expect("no match"));
    }

    #[test]
    fn the_key_file_is_written_owner_only_and_a_readable_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("stayos-hub-tls-{}", rand::random::<u64>()));
        let path = write_key_file(&dir.join("state"), "KEY").expect("write");
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        let dir_mode = std::fs::metadata(dir.join("state")).expect("meta").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(read_key_file(&path).expect("read").as_deref(), Some("KEY"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let err = read_key_file(&path).expect_err("readable by others");
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(read_key_file(&dir.join("none.pem")).expect("absent").is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
