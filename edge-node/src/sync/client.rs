//! The HTTP client for the hub: TLS pinned as enrollment decided (`config::Pin`), the
//! protocol's endpoints (`crdt::protocol`) as typed calls, and one error type that tells a
//! network failure (the node is offline) from an answer of the hub (something to fix).

use std::sync::Arc;
use std::time::Duration;

use crdt::protocol::{
    self, Batch, CONTENT_ENCODING, CONTENT_TYPE, EnrollRequest, EnrollResponse, Hello, Pull,
    PushAck,
};
use reqwest::header;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::config::Pin;

/// How long opening a connection to the hub may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take, long-polls included (they wait at most 30 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The hub could not be reached, or the connection broke: the node is offline.
    #[error("the hub is unreachable: {0}")]
    Network(String),
    /// The TLS handshake found a certificate other than the pinned one.
    #[error("the hub's certificate does not match the pin: {0}")]
    Certificate(String),
    /// The hub answered with an error.
    #[error("the hub answered {status} {code}: {message}")]
    Http { status: u16, code: String, message: String },
    /// The hub answered something this node cannot read.
    #[error("the hub's answer is not understood: {0}")]
    Protocol(String),
    /// The pin or CA this node holds cannot be turned into a TLS configuration.
    #[error("the TLS set-up for the hub is invalid: {0}")]
    Setup(String),
}

impl HubError {
    /// The hub's error code, for an answer of the hub.
    pub fn code(&self) -> Option<&str> {
        match self {
            HubError::Http { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether this is a failure to reach the hub rather than an answer from it.
    pub fn is_network(&self) -> bool {
        matches!(self, HubError::Network(_))
    }
}

/// Accepts exactly one certificate, named by the SHA-256 of its DER. The host name is not
/// checked — the pinned certificate *is* the identity — but the handshake signatures are, so
/// only the holder of that certificate's private key passes.
#[derive(Debug)]
pub struct PinnedCertVerifier {
    sha256: [u8; 32],
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedCertVerifier {
    /// `sha256_hex`: 64 hex digits (either case).
    pub fn new(sha256_hex: &str, provider: &CryptoProvider) -> Result<Self, HubError> {
        let bytes = hex::decode(sha256_hex)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| HubError::Setup("the pinned fingerprint is not 64 hex digits".into()))?;
        Ok(Self { sha256: bytes, algorithms: provider.signature_verification_algorithms })
    }
}

impl ServerCertVerifier for PinnedCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        // Not secret, but constant time costs nothing here.
        if subtle::ConstantTimeEq::ct_eq(&seen[..], &self.sha256[..]).into() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(
                rustls::OtherError(Arc::new(PinMismatch(hex::encode(seen)))),
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The hub presented a certificate other than the pinned one.
#[derive(Debug)]
struct PinMismatch(String);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the hub presented certificate sha256 {}, not the pinned one", self.0)
    }
}

impl std::error::Error for PinMismatch {}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls configuration for a pin; `None` for an http:// hub.
pub fn tls_config(pin: &Pin) -> Result<Option<rustls::ClientConfig>, HubError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| HubError::Setup(e.to_string()))?;
    let config = match pin {
        Pin::None(_) => return Ok(None),
        Pin::CertSha256(hex) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCertVerifier::new(hex, &provider)?))
            .with_no_client_auth(),
        Pin::CaPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| HubError::Setup(format!("the CA is not PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| HubError::Setup(format!("the CA certificate is unusable: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(HubError::Setup("the CA file holds no certificate".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Some(config))
}

/// The error body every StayOS service answers with.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInfo,
}

#[derive(Deserialize)]
struct ErrorInfo {
    code: String,
    message: String,
}

/// A reqwest client bound to one hub, with the node's credential.
#[derive(Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: String,
    credential: Option<String>,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient").field("base", &self.base).finish_non_exhaustive()
    }
}

impl HubClient {
    /// A client for `base_url` (no trailing slash needed) trusting what `pin` says;
    /// `credential` is `None` before enrollment.
    pub fn new(base_url: &str, pin: &Pin, credential: Option<String>) -> Result<Self, HubError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("stayos-edge/", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = tls_config(pin)? {
            builder = builder.tls_backend_preconfigured(tls).https_only(true);
        }
        let http = builder.build().map_err(|e| HubError::Setup(e.to_string()))?;
        Ok(Self { http, base: base_url.trim_end_matches('/').to_string(), credential })
    }

    fn authed(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credential {
            Some(c) => req.bearer_auth(c),
            None => req,
        }
    }

    /// `POST /v1/enroll`.
    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse, HubError> {
        let resp = self.http.post(format!("{}/v1/enroll", self.base)).json(req).send().await;
        json(checked(resp).await?).await
    }

    /// `GET /v1/sync/hello`.
    pub async fn hello(&self) -> Result<Hello, HubError> {
        let req = self.authed(self.http.get(format!("{}/v1/sync/hello", self.base)));
        json(checked(req.send().await).await?).await
    }

    /// `POST /v1/sync/push` of one batch of this node's changes.
    pub async fn push(&self, batch: &Batch) -> Result<PushAck, HubError> {
        let req = self
            .authed(self.http.post(format!("{}/v1/sync/push", self.base)))
            .header(header::CONTENT_TYPE, CONTENT_TYPE)
            .header(header::CONTENT_ENCODING, CONTENT_ENCODING)
            .body(protocol::encode(batch));
        json(checked(req.send().await).await?).await
    }

    /// `GET /v1/sync/pull`: the changes after hub version `since`, waiting up to `wait` for
    /// something new when there is nothing yet.
    pub async fn pull(&self, since: i64, limit: u32, wait: Duration) -> Result<Pull, HubError> {
        let url = format!(
            "{}/v1/sync/pull?since={since}&limit={limit}&wait={}",
            self.base,
            wait.as_secs()
        );
        let resp = checked(self.authed(self.http.get(url)).send().await).await?;
        let body = resp.bytes().await.map_err(transport)?;
        protocol::decode(&body, protocol::MAX_DECODED_BYTES)
            .map_err(|e| HubError::Protocol(e.to_string()))
    }
}

async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, HubError> {
    let body = resp.bytes().await.map_err(transport)?;
    serde_json::from_slice(&body).map_err(|e| HubError::Protocol(e.to_string()))
}

/// A 2xx response, or the hub's error as `HubError::Http`.
async fn checked(
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<reqwest::Response, HubError> {
    let resp = resp.map_err(transport)?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => (
            "http_error".to_string(),
            status.canonical_reason().unwrap_or("unexpected status").to_string(),
        ),
    };
    Err(HubError::Http { status: status.as_u16(), code, message })
}

/// Classifies a failed request: a certificate that does not match the pin is told apart
/// from the network being down, since only one of them fixes itself.
fn transport(err: reqwest::Error) -> HubError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(rustls::Error::InvalidCertificate(cert)) = rustls_error(e) {
            return HubError::Certificate(describe_cert_error(cert));
        }
        source = e.source();
    }
    // reqwest's Display hides the cause; the chain names it (refused, timed out, ...).
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    HubError::Network(text)
}

/// The rustls error inside `e`, looking through the `io::Error`s that wrap it (hyper wraps
/// rustls's error in one, and hyper-util that one in another).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current = e;
    for _ in 0..8 {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        current = current.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
    None
}

fn describe_cert_error(err: &rustls::CertificateError) -> String {
    match err {
        rustls::CertificateError::Other(other) => other.to_string(),
        rustls::CertificateError::UnknownIssuer => {
            "the hub's certificate is not issued by the given CA".into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests;
