//! The audit log: auth events are recorded, readable by owners and auditors, and the hash
//! chain verifies.

use serde_json::json;
use tests::{OWNER_EMAIL, OWNER_PASSWORD, STAFF_PASSWORD, TestNode};

#[tokio::test]
async fn auth_events_are_in_the_audit_log_newest_first_and_the_chain_is_intact() {
    let node = TestNode::spawn().await;
    node.login(OWNER_EMAIL, "a-wrong-password-here").await;
    let (owner, refresh) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let rotated = node.post("/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    node.post("/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    let owner = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await.0;
    assert_eq!(rotated.status, 200);

    let page = node.get("/audit", Some(&owner)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let events: Vec<&str> = page.body["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        events,
        [
            "login_succeeded",
            "refresh_token_reuse",
            "staff_registered",
            "login_succeeded",
            "login_failed",
            "staff_registered",
            "node_initialised"
        ]
    );
    let failed = &page.body["entries"][4];
    assert_eq!(failed["details"]["reason"], "wrong_password");
    assert_eq!(failed["ip"], "127.0.0.1");

    let only_failures = node.get("/audit?event=login_failed", Some(&owner)).await;
    assert_eq!(only_failures.body["entries"].as_array().map(Vec::len), Some(1));
    let paged = node.get("/audit?limit=2", Some(&owner)).await;
    let before = paged.body["next_before"].as_i64().expect("next page");
    let older = node.get(&format!("/audit?limit=2&before={before}"), Some(&owner)).await;
    assert_eq!(older.body["entries"][0]["event"], "staff_registered");

    let verify = node.get("/audit/verify", Some(&owner)).await;
    assert_eq!(
        (verify.body["intact"].as_bool(), verify.body["entries"].as_u64()),
        (Some(true), Some(7))
    );
    node.stop().await;
}

#[tokio::test]
async fn auditors_read_the_log_and_clerks_do_not() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    node.register(&owner, "ada@grand-test.example", "auditor").await;
    node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let (auditor, _) = node.tokens("ada@grand-test.example", STAFF_PASSWORD).await;
    let (clerk, _) = node.tokens("nia@grand-test.example", STAFF_PASSWORD).await;
    assert_eq!(node.get("/audit", Some(&auditor)).await.status, 200);
    let denied = node.get("/audit", Some(&clerk)).await;
    assert_eq!((denied.status, denied.code()), (403, "missing_permission"));
    assert_eq!(denied.body["error"]["details"]["permission"], "audit.read");
    node.stop().await;
}

#[tokio::test]
async fn bad_audit_queries_name_the_parameter() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    for (query, field) in
        [("limit=0", "limit"), ("limit=abc", "limit"), ("before=x", "before"), ("sort=asc", "sort")]
    {
        let resp = node.get(&format!("/audit?{query}"), Some(&owner)).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{query}: {}", resp.text);
    }
    node.stop().await;
}
