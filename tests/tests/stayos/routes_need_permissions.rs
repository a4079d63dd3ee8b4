//! Every route declares who may call it: walking the OpenAPI document, each operation is
//! either on the short public list or marked as needing a bearer token — and really answers
//! 401 without one. A route added without an `Authorized<...>` extractor fails here.

use reqwest::Method;
use tests::TestNode;

/// Routes anyone on the LAN may call.
const PUBLIC: [(&str, &str); 6] = [
    ("post", "/auth/login"),
    ("post", "/auth/verify-mfa"),
    ("post", "/auth/refresh"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
];

#[tokio::test]
async fn every_route_but_the_public_ones_needs_a_token() {
    let node = TestNode::spawn().await;
    let doc = node.get("/openapi.json", None).await.body;
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let public = PUBLIC.contains(&(method.as_str(), path.as_str()));
            let secured = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            assert!(public ^ secured, "{method} {path}: public={public} secured={secured}");
            if public {
                continue;
            }
            let concrete = path.replace("{id}", "01900000-0000-7000-8000-000000000000");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let body =
                (method != Method::GET && method != Method::DELETE).then(|| serde_json::json!({}));
            let resp = node.request(method.clone(), &concrete, None, body).await;
            assert_eq!((resp.status, resp.code()), (401, "unauthenticated"), "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} protected operations found");
    node.stop().await;
}
