//! API keys for integrations: shown once, stored hashed, acting with their own role.

use serde_json::json;
use tests::{OWNER_EMAIL, STAFF_PASSWORD, TestNode};

async fn new_key(node: &TestNode, token: &str, name: &str, role: &str) -> (String, String) {
    let created =
        node.post("/auth/api-keys", Some(token), json!({ "name": name, "role": role })).await;
    assert_eq!(created.status, 201, "{}", created.text);
    (created.str("id"), created.str("key"))
}

async fn owner_id(node: &TestNode, token: &str) -> String {
    node.get("/auth/me", Some(token)).await.str("id")
}

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
    assert_eq!(listed.body["items"][0]["id"], created.body["id"]);
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

#[tokio::test]
async fn an_owner_key_cannot_disable_owners_create_owners_or_managers_or_revoke_owner_keys() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let owner_id = owner_id(&node, &owner).await;
    let (other_id, _) = new_key(&node, &owner, "Backup owner key", "owner").await;
    let (_, key) = new_key(&node, &owner, "Automation", "owner").await;

    let disable = node.post(&format!("/staff/{owner_id}/disable"), Some(&key), json!({})).await;
    assert_eq!((disable.status, disable.code()), (403, "api_key_not_allowed"), "{}", disable.text);
    assert!(disable.body["error"]["message"].as_str().unwrap_or("").contains("API key"));
    for role in ["owner", "manager"] {
        let r = node
            .post(
                "/auth/register",
                Some(&key),
                json!({ "email": format!("{role}@grand-test.example"),
                "name": "New Boss", "password": STAFF_PASSWORD, "role": role }),
            )
            .await;
        assert_eq!((r.status, r.code(), r.field()), (403, "api_key_not_allowed", "role"), "{role}");
    }
    let revoke = node.delete(&format!("/auth/api-keys/{other_id}"), Some(&key)).await;
    assert_eq!((revoke.status, revoke.code()), (403, "api_key_not_allowed"), "{}", revoke.text);

    // Operational accounts it may still create, and the owner is untouched.
    let clerk = node
        .post(
            "/auth/register",
            Some(&key),
            json!({ "email": "nia@grand-test.example",
            "name": "Nia Clerk", "password": STAFF_PASSWORD, "role": "front_desk" }),
        )
        .await;
    assert_eq!(clerk.status, 201, "{}", clerk.text);
    assert_eq!(node.get("/auth/me", Some(&owner)).await.status, 200);
    assert_eq!(node.login(OWNER_EMAIL, tests::OWNER_PASSWORD).await.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn disabling_a_person_suspends_their_keys_and_enabling_them_restores_the_keys() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let mia = node.register(&owner, "mia@grand-test.example", "manager").await;
    let mia_id = mia["id"].as_str().expect("id").to_string();
    let (manager, _) = node.tokens("mia@grand-test.example", STAFF_PASSWORD).await;
    let (key_id, key) = new_key(&node, &manager, "Channel manager", "front_desk").await;
    assert_eq!(node.get("/auth/me", Some(&key)).await.status, 200);

    let off = node.post(&format!("/staff/{mia_id}/disable"), Some(&owner), json!({})).await;
    assert_eq!(off.status, 200, "{}", off.text);
    let suspended = node.get("/auth/me", Some(&key)).await;
    assert_eq!(
        (suspended.status, suspended.code()),
        (401, "api_key_suspended"),
        "{}",
        suspended.text
    );
    let listed = node.get("/auth/api-keys", Some(&owner)).await;
    let shown = listed.body["items"]
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["id"] == json!(key_id))
        .cloned();
    assert_eq!(shown.expect("listed")["suspended"], json!(true));

    let on = node.post(&format!("/staff/{mia_id}/enable"), Some(&owner), json!({})).await;
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(node.get("/auth/me", Some(&key)).await.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn a_manager_cannot_revoke_an_owners_key_but_revokes_their_own() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    node.register(&owner, "mia@grand-test.example", "manager").await;
    let (manager, _) = node.tokens("mia@grand-test.example", STAFF_PASSWORD).await;
    let (owners_id, owners_key) =
        new_key(&node, &owner, "Owner's channel manager", "front_desk").await;
    let (owner_role_id, _) = new_key(&node, &owner, "Owner automation", "owner").await;

    for id in [&owners_id, &owner_role_id] {
        let r = node.delete(&format!("/auth/api-keys/{id}"), Some(&manager)).await;
        assert_eq!(r.status, 403, "{}", r.text);
    }
    assert_eq!(node.get("/auth/me", Some(&owners_key)).await.status, 200);
    let (own_id, _) = new_key(&node, &manager, "Mia's report", "accountant").await;
    assert_eq!(node.delete(&format!("/auth/api-keys/{own_id}"), Some(&manager)).await.status, 204);
    assert_eq!(node.delete(&format!("/auth/api-keys/{owners_id}"), Some(&owner)).await.status, 204);
    node.stop().await;
}

#[tokio::test]
async fn keys_of_a_person_demoted_below_their_role_are_suspended_and_keys_cannot_change_owners() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let owner_id = owner_id(&node, &owner).await;
    let olav_id = node.register(&owner, "olav@grand-test.example", "owner").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (olav, _) = node.tokens("olav@grand-test.example", STAFF_PASSWORD).await;
    let (_, olavs_key) = new_key(&node, &olav, "Olav's automation", "owner").await;

    let by_key = node
        .request(
            reqwest::Method::PATCH,
            &format!("/staff/{owner_id}"),
            Some(&olavs_key),
            Some(json!({ "role": "front_desk" })),
        )
        .await;
    assert_eq!((by_key.status, by_key.code()), (403, "api_key_not_allowed"), "{}", by_key.text);

    let demoted = node
        .request(
            reqwest::Method::PATCH,
            &format!("/staff/{olav_id}"),
            Some(&owner),
            Some(json!({ "role": "manager" })),
        )
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.text);
    let me = node.get("/auth/me", Some(&olavs_key)).await;
    assert_eq!((me.status, me.code()), (401, "api_key_suspended"), "{}", me.text);
    node.stop().await;
}

#[tokio::test]
async fn taking_a_person_off_a_property_takes_their_keys_off_it_too() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let second = node
        .post(
            "/properties",
            Some(&owner),
            json!({ "name": "Second House", "timezone": "UTC", "currency": "EUR" }),
        )
        .await;
    let second_id = second.str("id");
    // Mia works at both houses (the owner's properties by default), and so does her key.
    let mia_id = node.register(&owner, "mia@grand-test.example", "manager").await["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (manager, _) = node.tokens("mia@grand-test.example", STAFF_PASSWORD).await;
    let (_, key) = new_key(&node, &manager, "Channel manager", "front_desk").await;
    let mut both = vec![node.property_id.clone(), second_id.clone()];
    both.sort();
    assert_eq!(node.get("/auth/me", Some(&key)).await.body["properties"], json!(both));

    let moved = node
        .request(
            reqwest::Method::PATCH,
            &format!("/staff/{mia_id}"),
            Some(&owner),
            Some(json!({ "properties": [node.property_id] })),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!(
        node.get("/auth/me", Some(&key)).await.body["properties"],
        json!([node.property_id])
    );
    let foreign = node.get(&format!("/properties/{second_id}"), Some(&key)).await;
    assert_eq!((foreign.status, foreign.code()), (404, "not_found"), "{}", foreign.text);
    node.stop().await;
}
