//! The hub's own TLS certificate: self-signed, generated once and kept in `hub_meta`, so
//! every hub process on the same database serves the same certificate and an enrollment
//! token can carry its SHA-256 for the edge to pin on first contact — no public CA and no
//! certificate files to copy between hub machines.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};

use crate::db::{self, HubError, Pool};

/// `hub_meta` keys of the certificate and its private key (both PEM).
pub const CERT_KEY: &str = "tls_cert_pem";
pub const PRIVATE_KEY_KEY: &str = "tls_key_pem";
/// `hub_meta` key saying what `serve` last served: `db` (the stored certificate), `files`
/// (an operator's certificate, e.g. from a public CA) or `http`. Enrollment tokens carry
/// the stored certificate's fingerprint only when that is what edges will see.
pub const SERVED_KEY: &str = "tls_served";

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

/// The hub's certificate: read from `hub_meta`, or generated and stored when there is none.
/// Safe when several processes start at once: each inserts only if absent, then everyone
/// reads back the one that won.
pub async fn hub_certificate(pool: &Pool) -> Result<HubCert, HubError> {
    if let Some(cert) = stored(pool).await? {
        return Ok(cert);
    }
    let (cert_pem, key_pem) = generate()?;
    let client = pool.get().await?;
    // One statement, both rows in the same order in every process: a racing process waits
    // on the first row's unique key and then inserts neither, so cert and key always match.
    client
        .execute(
            "INSERT INTO hub_meta (key, value) VALUES ($1, $2), ($3, $4) \
             ON CONFLICT (key) DO NOTHING",
            &[&CERT_KEY, &cert_pem.as_bytes(), &PRIVATE_KEY_KEY, &key_pem.as_bytes()],
        )
        .await?;
    drop(client);
    stored(pool).await?.ok_or_else(|| {
        HubError::Invalid("the hub certificate vanished right after it was stored".into())
    })
}

async fn stored(pool: &Pool) -> Result<Option<HubCert>, HubError> {
    let (Some(cert), Some(key)) =
        (db::hub_meta(pool, CERT_KEY).await?, db::hub_meta(pool, PRIVATE_KEY_KEY).await?)
    else {
        return Ok(None);
    };
    let text = |bytes: Vec<u8>, what: &str| {
        String::from_utf8(bytes)
            .map_err(|_| HubError::Invalid(format!("hub_meta.{what} is not PEM text")))
    };
    let cert_pem = text(cert, CERT_KEY)?;
    let key_pem = text(key, PRIVATE_KEY_KEY)?;
    let sha256_hex = pem_sha256(&cert_pem)?;
    Ok(Some(HubCert { cert_pem, key_pem, sha256_hex }))
}

/// This machine's host name, for the certificate's names.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// A self-signed ECDSA P-256 certificate for localhost, the loopback addresses and this host.
/// Edges pin its fingerprint rather than validating names, so the names matter only to other
/// clients (a browser, curl) pointed at the hub.
fn generate() -> Result<(String, String), HubError> {
    let err = |e: rcgen::Error| HubError::Invalid(format!("failed to create a certificate: {e}"));
    let key = KeyPair::generate().map_err(err)?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.extend(host_name());
    names.sort();
    names.dedup();
    let mut params = CertificateParams::new(names).map_err(err)?;
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
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_parses_and_its_fingerprint_is_the_sha256_of_its_der() {
        install_crypto_provider();
        let (cert_pem, key_pem) = generate().expect("generate");
        assert!(key_pem.contains("PRIVATE KEY"));
        let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("pem");
        let fp = pem_sha256(&cert_pem).expect("fingerprint");
        assert_eq!(fp, hex::encode(Sha256::digest(der.as_ref())));
        assert_eq!(fp.len(), 64);
        assert!(pem_sha256("not a certificate").is_err());
    }
}
