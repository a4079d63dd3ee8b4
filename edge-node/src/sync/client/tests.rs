//! The client against real TLS servers on loopback with rcgen certificates: a pinned
//! certificate passes and any other fails as a pin mismatch; a CA pin checks the issuer;
//! a hub's JSON error and a closed port are told apart.

use axum::Json;
use axum::http::StatusCode;
use axum::routing::get;
use axum_server::tls_rustls::RustlsConfig;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::json;

use super::*;

struct Served {
    url: String,
    handle: axum_server::Handle<std::net::SocketAddr>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

fn hello() -> Hello {
    Hello {
        hub_site_id: "00".repeat(16),
        schema_version: 2,
        node_id: "n1".into(),
        property_id: "p1".into(),
        received: 0,
        head: 0,
        audit_anchor: None,
    }
}

/// A TLS server with `cert_pem`/`key_pem`: `/v1/sync/hello` answers, `/v1/sync/pull`
/// answers a hub-style 403.
async fn serve(cert_pem: String, key_pem: String) -> Served {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let app = axum::Router::new().route("/v1/sync/hello", get(|| async { Json(hello()) })).route(
        "/v1/sync/pull",
        get(|| async {
            (
                StatusCode::FORBIDDEN,
                Json(json!({"error": {"code": "node_revoked", "message": "revoked"}})),
            )
        }),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let tls = RustlsConfig::from_pem(cert_pem.into_bytes(), key_pem.into_bytes())
        .await
        .expect("tls config");
    let handle = axum_server::Handle::new();
    let server =
        axum_server::from_tcp_rustls(listener, tls).expect("server").handle(handle.clone());
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    Served { url: format!("https://{addr}"), handle }
}

fn self_signed() -> (String, String, String) {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["hub.test".into()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let fp = hex::encode(Sha256::digest(cert.der()));
    (cert.pem(), key.serialize_pem(), fp)
}

/// A CA and a leaf it signs for 127.0.0.1: (ca pem, leaf pem, leaf key pem).
fn ca_and_leaf() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".into()])
        .expect("params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

#[tokio::test]
async fn the_pinned_certificate_is_accepted_whatever_its_name_and_another_is_refused() {
    let (cert, key, fp) = self_signed();
    let hub = serve(cert, key).await;
    let client =
        HubClient::new(&hub.url, &Pin::CertSha256(fp), Some("n1.s".into())).expect("client");
    assert_eq!(client.hello().await.expect("hello through the pin"), hello());

    let (_, _, other_fp) = self_signed();
    let wrong = HubClient::new(&hub.url, &Pin::CertSha256(other_fp), None).expect("client");
    let err = wrong.hello().await.expect_err("another certificate");
    assert!(matches!(err, HubError::Certificate(_)), "{err:?}");
    assert!(err.to_string().contains("presented certificate sha256"), "{err}");
    assert!(!err.is_network());
}

#[tokio::test]
async fn a_ca_pin_accepts_what_the_ca_issued_and_nothing_else() {
    let (ca, leaf, key) = ca_and_leaf();
    let hub = serve(leaf, key).await;
    let client = HubClient::new(&hub.url, &Pin::CaPem(ca), None).expect("client");
    client.hello().await.expect("issued by the pinned CA");

    let (other_ca, _, _) = ca_and_leaf();
    let wrong = HubClient::new(&hub.url, &Pin::CaPem(other_ca), None).expect("client");
    let err = wrong.hello().await.expect_err("another CA");
    assert!(matches!(err, HubError::Certificate(_)), "{err:?}");
    assert!(matches!(tls_config(&Pin::CaPem("not pem".into())), Err(HubError::Setup(_))));
}

#[tokio::test]
async fn a_hub_error_carries_its_code_and_a_closed_port_is_a_network_error() {
    let (cert, key, fp) = self_signed();
    let hub = serve(cert, key).await;
    let client = HubClient::new(&hub.url, &Pin::CertSha256(fp), None).expect("client");
    let err = client.pull(0, 10, Duration::ZERO).await.expect_err("403");
    assert_eq!(err.code(), Some("node_revoked"), "{err:?}");
    assert!(matches!(err, HubError::Http { status: 403, .. }));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let nobody = HubClient::new(&format!("http://{addr}"), &Pin::None(true), None).expect("client");
    let err = nobody.hello().await.expect_err("nothing listens");
    assert!(err.is_network(), "{err:?}");
}
