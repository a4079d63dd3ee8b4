//! LAN TLS: a certificate authority per property, generated at `init` with rcgen, and a
//! server certificate it signs for this machine's names and addresses. Desktop apps and
//! terminals pin the CA (`tls/ca.pem`), so the node needs no public certificate and no
//! internet to be reached securely.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

pub const CA_CERT: &str = "tls/ca.pem";
pub const CA_KEY: &str = "tls/ca.key";
pub const SERVER_CERT: &str = "tls/server.pem";
pub const SERVER_KEY: &str = "tls/server.key";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to create a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("failed to write {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// This machine's host name, for the server certificate.
pub fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn date_from_today(years: i16) -> (i32, u8, u8) {
    let today = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let year = i32::from(today.year()) + i32::from(years);
    let month = u8::try_from(today.month()).unwrap_or(1);
    let day = u8::try_from(today.day()).unwrap_or(1).min(28);
    (year, month, day)
}

fn validity(params: &mut CertificateParams, years: i16) {
    // A day of slack for terminals whose clocks run behind.
    let (y, m, d) = date_from_today(0);
    params.not_before = rcgen::date_time_ymd(y, m, d) - std::time::Duration::from_secs(86_400);
    let (y, m, d) = date_from_today(years);
    params.not_after = rcgen::date_time_ymd(y, m, d);
}

fn write(data_dir: &Path, rel: &str, contents: &str, secret: bool) -> Result<(), TlsError> {
    let path = data_dir.join(rel);
    let err = |source| TlsError::Write { path: path.display().to_string(), source };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    crate::fsutil::write_file(&path, contents.as_bytes(), secret).map_err(err)
}

/// Creates the property's CA and a server certificate for `names` (host names and IP
/// addresses; `localhost`, the loopback addresses and this host's name are always included),
/// and writes both under `DIR/tls/`.
pub fn generate(data_dir: &Path, property_name: &str, names: &[String]) -> Result<(), TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("StayOS CA — {property_name}"));
    dn.push(DnType::OrganizationName, "StayOS");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, 20);
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca, &ca_key);

    let mut all_names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(host) = host_name() {
        all_names.push(format!("{host}.local"));
        all_names.push(host);
    }
    all_names.extend(names.iter().cloned());
    all_names.sort();
    all_names.dedup();
    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(all_names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("StayOS edge node — {property_name}"));
    server.distinguished_name = dn;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut server, 2);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    write(data_dir, CA_CERT, &ca_cert.pem(), false)?;
    write(data_dir, CA_KEY, &ca_key.serialize_pem(), true)?;
    // The served chain: leaf first, then the CA.
    write(data_dir, SERVER_CERT, &format!("{}{}", server_cert.pem(), ca_cert.pem()), false)?;
    write(data_dir, SERVER_KEY, &server_key.serialize_pem(), true)?;
    Ok(())
}
