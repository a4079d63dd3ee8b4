//! The gateway duties: errors in one JSON shape, limits, CORS, request ids, compression,
//! rate limiting, health, readiness, metrics, the OpenAPI document and its docs page.

use reqwest::Method;
use serde_json::json;
use tests::TestNode;

#[tokio::test]
async fn health_and_ready_answer_when_the_node_is_up() {
    let node = TestNode::spawn().await;
    let health = node.get("/health", None).await;
    assert_eq!((health.status, health.str("status").as_str()), (200, "ok"));
    let ready = node.get("/ready", None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.str("property_id"), node.property_id);
    let latest = edge_node::db::migrations::latest_version();
    assert_eq!(ready.body["schema_version"], latest);
    assert!(latest >= 2, "the hotel core migration is embedded");
    node.stop().await;
}

#[tokio::test]
async fn an_unknown_route_and_a_wrong_method_answer_json_errors() {
    let node = TestNode::spawn().await;
    let missing = node.get("/no/such/route", None).await;
    assert_eq!((missing.status, missing.code()), (404, "not_found"));
    let wrong_method = node.request(Method::DELETE, "/health", None, None).await;
    assert_eq!((wrong_method.status, wrong_method.code()), (405, "method_not_allowed"));
    assert!(wrong_method.header("allow").is_some_and(|a| a.contains("GET")));
    node.stop().await;
}

#[tokio::test]
async fn malformed_json_is_a_400_that_says_where() {
    let node = TestNode::spawn().await;
    let resp = node
        .client
        .post(format!("{}/auth/login", node.url))
        .header("content-type", "application/json")
        .body("{\"email\": \"a@b.example\",")
        .send()
        .await
        .expect("send");
    let resp = tests::into_resp(resp).await;
    assert_eq!((resp.status, resp.code()), (400, "malformed_json"));
    assert!(resp.body["error"]["details"]["line"].is_number());
    node.stop().await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_as_unsupported() {
    let node = TestNode::spawn().await;
    let resp = node
        .client
        .post(format!("{}/auth/login", node.url))
        .header("content-type", "text/plain")
        .body("email=a@b.example")
        .send()
        .await
        .expect("send");
    let resp = tests::into_resp(resp).await;
    assert_eq!((resp.status, resp.code()), (415, "unsupported_media_type"));
    node.stop().await;
}

#[tokio::test]
async fn missing_mistyped_and_unknown_fields_are_named() {
    let node = TestNode::spawn().await;
    let cases = [
        (json!({ "password": "x" }), "email"),
        (json!({ "email": 42, "password": "x" }), "email"),
        (json!({ "email": "a@b.example", "password": ["x"] }), "password"),
        (json!({ "email": "a@b.example", "password": "x", "remember": true }), "remember"),
        (json!({ "email": "not-an-email", "password": "x" }), "email"),
        (json!({ "email": "a@b.example", "password": "" }), "password"),
    ];
    for (body, field) in cases {
        let resp = node.post("/auth/login", None, body.clone()).await;
        assert_eq!(resp.status, 422, "{body}: {}", resp.text);
        assert_eq!((resp.code(), resp.field()), ("validation_failed", field), "{body}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413() {
    let node = TestNode::spawn_with(|c| c.http.body_limit_bytes = 4096).await;
    let big = "x".repeat(10_000);
    let resp =
        node.post("/auth/login", None, json!({ "email": "a@b.example", "password": big })).await;
    assert_eq!((resp.status, resp.code()), (413, "payload_too_large"));
    node.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let node = TestNode::spawn().await;
    let generated = node.get("/health", None).await;
    assert!(generated.header("x-request-id").is_some_and(|id| id.len() >= 32));
    let resp = node
        .client
        .get(format!("{}/health", node.url))
        .header("x-request-id", "desk-3-req-17")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.headers()["x-request-id"], "desk-3-req-17");
    node.stop().await;
}

#[tokio::test]
async fn the_desktop_app_origin_passes_cors_and_a_foreign_one_does_not() {
    let node = TestNode::spawn().await;
    let preflight = |origin: &'static str| {
        node.client
            .request(Method::OPTIONS, format!("{}/auth/login", node.url))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, authorization")
            .send()
    };
    let allowed = preflight("tauri://localhost").await.expect("send");
    assert_eq!(allowed.headers()["access-control-allow-origin"], "tauri://localhost");
    let foreign = preflight("https://evil.example").await.expect("send");
    assert!(foreign.headers().get("access-control-allow-origin").is_none());
    node.stop().await;
}

#[tokio::test]
async fn large_responses_are_compressed_for_clients_that_ask() {
    let node = TestNode::spawn().await;
    let resp = node
        .client
        .get(format!("{}/openapi.json", node.url))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    node.stop().await;
}

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after() {
    let node = TestNode::spawn_with(|c| {
        c.rate_limit.per_second = 1;
        c.rate_limit.burst = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(node.get("/health", None).await);
    }
    assert!(statuses[..3].iter().all(|r| r.status == 200));
    let limited = &statuses[4];
    assert_eq!((limited.status, limited.code()), (429, "too_many_requests"));
    assert!(limited.header("retry-after").is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
    node.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let node = TestNode::spawn().await;
    node.get("/health", None).await;
    node.get("/no/such/route", None).await;
    let metrics = node.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text.contains("http_requests_total"), "{}", metrics.text);
    assert!(metrics.text.contains(r#"route="/health""#));
    assert!(metrics.text.contains(r#"route="unmatched""#));
    assert!(metrics.text.contains("http_request_duration_seconds_bucket"));
    node.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_seed_auth_paths() {
    let node = TestNode::spawn().await;
    let doc = node.get("/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    for path in
        ["/auth/login", "/auth/register", "/auth/refresh", "/auth/logout", "/auth/verify-mfa"]
    {
        assert!(
            doc.body["paths"][path]["post"].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(doc.body["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    node.stop().await;
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_node_without_the_internet() {
    let node = TestNode::spawn().await;
    let page = node.get("/docs/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("swagger"), "{}", page.text);
    for asset in
        ["/docs/swagger-ui.css", "/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"]
    {
        let resp = node.get(asset, None).await;
        assert_eq!(resp.status, 200, "{asset}");
    }
    let init = node.get("/docs/swagger-initializer.js", None).await;
    assert!(init.text.contains("/openapi.json"));
    for external in ["src=\"http", "href=\"http", "src='http", "href='http"] {
        assert!(!page.text.contains(external), "the docs page loads {external}… from elsewhere");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_person_opening_the_node_in_a_browser_sees_the_property() {
    let node = TestNode::spawn().await;
    let page = node.get("/", None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Grand Test Hotel"));
    assert!(page.text.contains("/docs/"));
    node.stop().await;
}
