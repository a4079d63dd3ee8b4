//! API keys for integrations: shown once, stored hashed, acting with their own role.

use serde_json::json;
use tests::TestNode;

#[tokio::test]
async fn an_api_key_authenticates_with_its_own_role_until_revoked() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let created = node
        .post(
            "/auth/api-keys",
            Some(&owner),
            json!({ "name": "Channel manager", "role": "front_desk" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.str("key");
    assert!(key.starts_with("sk_"));

    let me = node.get("/auth/me", Some(&key)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!((me.str("kind").as_str(), me.str("role").as_str()), ("api_key", "front_desk"));
    assert_eq!(me.body["properties"], json!([node.property_id]));
    // Its role decides: a front-desk key cannot create staff.
    let register = node
        .post("/auth/register", Some(&key), json!({ "email": "k@g.example", "name": "K", "password": tests::STAFF_PASSWORD, "role": "front_desk" }))
        .await;
    assert_eq!(register.status, 403);

    let listed = node.get("/auth/api-keys", Some(&owner)).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body[0]["id"], created.body["id"]);
    assert!(!listed.text.contains(&key), "a listed key must not reveal its secret");

    let id = created.str("id");
    assert_eq!(node.delete(&format!("/auth/api-keys/{id}"), Some(&owner)).await.status, 204);
    let after = node.get("/auth/me", Some(&key)).await;
    assert_eq!((after.status, after.code()), (401, "invalid_api_key"));
    assert_eq!(node.delete(&format!("/auth/api-keys/{id}"), Some(&owner)).await.status, 404);
    node.stop().await;
}

#[tokio::test]
async fn a_forged_key_with_a_real_id_is_refused() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let key = node
        .post("/auth/api-keys", Some(&owner), json!({ "name": "POS bridge", "role": "pos_server" }))
        .await
        .str("key");
    let forged = format!("{}{}", &key[..key.len() - 4], "AAAA");
    assert_eq!(node.get("/auth/me", Some(&forged)).await.code(), "invalid_api_key");
    node.stop().await;
}

#[tokio::test]
async fn api_key_requests_are_checked() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let no_name = node
        .post("/auth/api-keys", Some(&owner), json!({ "name": "", "role": "front_desk" }))
        .await;
    assert_eq!((no_name.status, no_name.field()), (422, "name"));
    let bad_role =
        node.post("/auth/api-keys", Some(&owner), json!({ "name": "x", "role": "root" })).await;
    assert_eq!((bad_role.status, bad_role.field()), (422, "role"));
    node.register(&owner, "mia@grand-test.example", "manager").await;
    let (manager, _) = node.tokens("mia@grand-test.example", tests::STAFF_PASSWORD).await;
    let above = node
        .post("/auth/api-keys", Some(&manager), json!({ "name": "x", "role": "manager" }))
        .await;
    assert_eq!((above.status, above.code()), (403, "role_not_grantable"));
    node.stop().await;
}

#[tokio::test]
async fn an_api_key_cannot_act_as_a_person() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let key = node
        .post("/auth/api-keys", Some(&owner), json!({ "name": "Reporting", "role": "manager" }))
        .await
        .str("key");
    for path in ["/auth/logout", "/auth/mfa/setup"] {
        let resp = node.post(path, Some(&key), json!({})).await;
        assert_eq!((resp.status, resp.code()), (403, "staff_only"), "{path}");
    }
    let keys =
        node.post("/auth/api-keys", Some(&key), json!({ "name": "x", "role": "front_desk" })).await;
    assert_eq!((keys.status, keys.code()), (403, "staff_only"));
    node.stop().await;
}
