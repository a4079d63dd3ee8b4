//! Creating staff accounts: who may create whom, where, and with what password.

use serde_json::json;
use tests::{STAFF_PASSWORD, TestNode};

fn new_staff(email: &str, role: &str) -> serde_json::Value {
    json!({ "email": email, "name": "Nia Clerk", "password": STAFF_PASSWORD, "role": role })
}

#[tokio::test]
async fn an_owner_creates_a_clerk_who_can_then_log_in_at_the_same_property() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let created = node
        .post("/auth/register", Some(&owner), new_staff("nia@grand-test.example", "front_desk"))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.str("role"), "front_desk");
    assert_eq!(created.body["properties"], json!([node.property_id]));
    assert!(created.body.get("password").is_none() && !created.text.contains("argon2"));
    let (clerk, _) = node.tokens("nia@grand-test.example", STAFF_PASSWORD).await;
    let me = node.get("/auth/me", Some(&clerk)).await;
    assert_eq!(me.str("role"), "front_desk");
    node.stop().await;
}

#[tokio::test]
async fn an_email_can_have_only_one_account() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let again = node
        .post("/auth/register", Some(&owner), new_staff("NIA@grand-test.example", "housekeeping"))
        .await;
    assert_eq!((again.status, again.code(), again.field()), (409, "email_taken", "email"));
    node.stop().await;
}

#[tokio::test]
async fn only_owners_and_managers_create_accounts_and_never_above_themselves() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    node.register(&owner, "mia@grand-test.example", "manager").await;
    node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let (manager, _) = node.tokens("mia@grand-test.example", STAFF_PASSWORD).await;
    let (clerk, _) = node.tokens("nia@grand-test.example", STAFF_PASSWORD).await;

    let by_clerk = node
        .post("/auth/register", Some(&clerk), new_staff("x@grand-test.example", "housekeeping"))
        .await;
    assert_eq!((by_clerk.status, by_clerk.code()), (403, "missing_permission"));
    for role in ["owner", "manager"] {
        let up = node
            .post("/auth/register", Some(&manager), new_staff("y@grand-test.example", role))
            .await;
        assert_eq!((up.status, up.code()), (403, "role_not_grantable"), "{role}");
    }
    let waiter = node
        .post("/auth/register", Some(&manager), new_staff("w@grand-test.example", "pos_server"))
        .await;
    assert_eq!(waiter.status, 201, "{}", waiter.text);
    let nobody =
        node.post("/auth/register", None, new_staff("z@grand-test.example", "front_desk")).await;
    assert_eq!(nobody.status, 401);
    node.stop().await;
}

#[tokio::test]
async fn bad_registrations_name_the_field() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let cases = [
        (
            json!({ "email": "nia", "name": "Nia", "password": STAFF_PASSWORD, "role": "front_desk" }),
            "email",
        ),
        (
            json!({ "email": "n@g.example", "name": " ", "password": STAFF_PASSWORD, "role": "front_desk" }),
            "name",
        ),
        (
            json!({ "email": "n@g.example", "name": "Nia", "password": "hotel2024", "role": "front_desk" }),
            "password",
        ),
        (
            json!({ "email": "n@g.example", "name": "Nia", "password": "n@g.example1!", "role": "front_desk" }),
            "password",
        ),
        (
            json!({ "email": "n@g.example", "name": "Nia", "password": STAFF_PASSWORD, "role": "janitor" }),
            "role",
        ),
        (json!({ "email": "n@g.example", "name": "Nia", "password": STAFF_PASSWORD }), "role"),
        (
            json!({ "email": "n@g.example", "name": "Nia", "password": STAFF_PASSWORD, "role": "front_desk", "properties": [] }),
            "properties",
        ),
    ];
    for (body, field) in cases {
        let resp = node.post("/auth/register", Some(&owner), body.clone()).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{body}: {}", resp.text);
    }
    node.stop().await;
}

#[tokio::test]
async fn an_account_cannot_be_given_a_property_the_creator_does_not_belong_to() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let mut body = new_staff("nia@grand-test.example", "front_desk");
    body["properties"] = json!(["01900000-0000-7000-8000-000000000000"]);
    let resp = node.post("/auth/register", Some(&owner), body).await;
    assert_eq!((resp.status, resp.code()), (403, "property_not_allowed"));
    node.stop().await;
}

#[tokio::test]
async fn disabling_an_account_ends_its_sessions_at_once_and_enabling_restores_login() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let clerk = node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let id = clerk["id"].as_str().expect("id").to_string();
    let (clerk_token, _) = node.tokens("nia@grand-test.example", STAFF_PASSWORD).await;

    let off = node.post(&format!("/staff/{id}/disable"), Some(&owner), json!({})).await;
    assert_eq!((off.status, off.body["disabled"].as_bool()), (200, Some(true)), "{}", off.text);
    assert_eq!(node.get("/auth/me", Some(&clerk_token)).await.code(), "session_ended");
    let on = node.post(&format!("/staff/{id}/enable"), Some(&owner), json!({})).await;
    assert_eq!(on.status, 200);
    assert_eq!(node.login("nia@grand-test.example", STAFF_PASSWORD).await.status, 200);

    let me = node.get("/auth/me", Some(&owner)).await.str("id");
    let own = node.post(&format!("/staff/{me}/disable"), Some(&owner), json!({})).await;
    assert_eq!((own.status, own.code()), (403, "own_account"));
    let unknown = node.post("/staff/nobody/disable", Some(&owner), json!({})).await;
    assert_eq!(unknown.status, 404);
    node.stop().await;
}

#[tokio::test]
async fn staff_are_listed_for_managers_but_not_for_clerks() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let list = node.get("/staff", Some(&owner)).await;
    assert_eq!(list.status, 200);
    let emails: Vec<_> =
        list.body["items"].as_array().expect("array").iter().map(|s| s["email"].clone()).collect();
    assert_eq!(emails, vec![json!(tests::OWNER_EMAIL), json!("nia@grand-test.example")]);
    for staff in list.body["items"].as_array().expect("array") {
        assert_eq!(staff["properties"], json!([node.property_id]), "{staff}");
    }
    let (clerk, _) = node.tokens("nia@grand-test.example", STAFF_PASSWORD).await;
    assert_eq!(node.get("/staff", Some(&clerk)).await.status, 403);
    node.stop().await;
}

#[tokio::test]
async fn a_manager_unlocks_a_locked_clerk_and_a_clerk_cannot_unlock_anyone() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let nia = node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let nia_id = nia["id"].as_str().expect("id").to_string();
    node.register(&owner, "mia@grand-test.example", "manager").await;
    node.register(&owner, "tom@grand-test.example", "front_desk").await;
    let (manager, _) = node.tokens("mia@grand-test.example", STAFF_PASSWORD).await;
    let (clerk, _) = node.tokens("tom@grand-test.example", STAFF_PASSWORD).await;

    for _ in 0..5 {
        assert_eq!(node.login("nia@grand-test.example", "wrong-wrong-wrong").await.status, 401);
    }
    let locked = node.login("nia@grand-test.example", STAFF_PASSWORD).await;
    assert_eq!((locked.status, locked.code()), (429, "too_many_requests"));

    let by_clerk = node.post(&format!("/staff/{nia_id}/unlock"), Some(&clerk), json!({})).await;
    assert_eq!(
        (by_clerk.status, by_clerk.code()),
        (403, "missing_permission"),
        "{}",
        by_clerk.text
    );
    let unknown = node.post("/staff/nobody/unlock", Some(&manager), json!({})).await;
    assert_eq!(unknown.status, 404);
    let unlocked = node.post(&format!("/staff/{nia_id}/unlock"), Some(&manager), json!({})).await;
    assert_eq!(unlocked.status, 200, "{}", unlocked.text);
    assert_eq!(unlocked.str("id"), nia_id);

    // Her count starts again: four misses are free, then the right password works. Had the
    // unlock not cleared it, the next miss would lock her at once.
    for attempt in 1..=4 {
        let r = node.login("nia@grand-test.example", "wrong-wrong-wrong").await;
        assert_eq!((r.status, r.code()), (401, "invalid_credentials"), "attempt {attempt}");
    }
    assert_eq!(node.login("nia@grand-test.example", STAFF_PASSWORD).await.status, 200);
    let owner_id = node.get("/auth/me", Some(&owner)).await.str("id");
    let above = node.post(&format!("/staff/{owner_id}/unlock"), Some(&manager), json!({})).await;
    assert_eq!((above.status, above.code()), (403, "role_not_grantable"));
    node.stop().await;
}

#[tokio::test]
async fn the_last_active_owner_of_a_property_cannot_be_disabled() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let owner_id = node.get("/auth/me", Some(&owner)).await.str("id");
    // The first owner also owns a second property, which the second owner does not.
    let second = node
        .post(
            "/properties",
            Some(&owner),
            json!({ "name": "Second House", "timezone": "UTC", "currency": "EUR" }),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    let second_id = second.str("id");
    let mut body = new_staff("olav@grand-test.example", "owner");
    body["properties"] = json!([node.property_id]);
    let olav = node.post("/auth/register", Some(&owner), body).await;
    assert_eq!(olav.status, 201, "{}", olav.text);
    let olav_id = olav.str("id");
    let (olav_token, _) = node.tokens("olav@grand-test.example", STAFF_PASSWORD).await;

    let refused =
        node.post(&format!("/staff/{owner_id}/disable"), Some(&olav_token), json!({})).await;
    assert_eq!((refused.status, refused.code()), (409, "last_owner"), "{}", refused.text);
    assert!(refused.text.contains(&second_id), "{}", refused.text);
    assert_eq!(node.get("/auth/me", Some(&owner)).await.status, 200);

    // Where another active owner remains, disabling an owner is fine.
    let ok = node.post(&format!("/staff/{olav_id}/disable"), Some(&owner), json!({})).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    node.stop().await;
}

#[tokio::test]
async fn changing_a_role_never_leaves_a_property_without_an_active_owner() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let owner_id = node.get("/auth/me", Some(&owner)).await.str("id");
    let second = node
        .post(
            "/properties",
            Some(&owner),
            json!({ "name": "Second House", "timezone": "UTC", "currency": "EUR" }),
        )
        .await;
    let second_id = second.str("id");
    let mut body = new_staff("olav@grand-test.example", "owner");
    body["properties"] = json!([node.property_id]);
    let olav_id = node.post("/auth/register", Some(&owner), body).await.str("id");
    let (olav, _) = node.tokens("olav@grand-test.example", STAFF_PASSWORD).await;

    // Olav may not demote the only owner of the second house.
    let demote = node
        .request(
            reqwest::Method::PATCH,
            &format!("/staff/{owner_id}"),
            Some(&olav),
            Some(json!({ "role": "manager" })),
        )
        .await;
    assert_eq!((demote.status, demote.code()), (409, "last_owner"), "{}", demote.text);
    assert!(demote.text.contains(&second_id), "{}", demote.text);
    let own = node
        .request(
            reqwest::Method::PATCH,
            &format!("/staff/{olav_id}"),
            Some(&olav),
            Some(json!({ "role": "manager" })),
        )
        .await;
    assert_eq!((own.status, own.code()), (403, "own_account"));

    // The first owner may demote Olav: she stays owner of both.
    let ok = node
        .request(
            reqwest::Method::PATCH,
            &format!("/staff/{olav_id}"),
            Some(&owner),
            Some(json!({ "role": "manager" })),
        )
        .await;
    assert_eq!((ok.status, ok.str("role").as_str()), (200, "manager"), "{}", ok.text);
    assert_eq!(node.get("/auth/me", Some(&olav)).await.str("role"), "manager");
    node.stop().await;
}

#[tokio::test]
async fn a_manager_changes_a_clerks_role_and_properties_only_within_their_own_reach() {
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
    // Both work at the first house only; the owner holds the second too.
    let mut ids = Vec::new();
    for (email, role) in
        [("mia@grand-test.example", "manager"), ("nia@grand-test.example", "front_desk")]
    {
        let mut body = new_staff(email, role);
        body["properties"] = json!([node.property_id]);
        let created = node.post("/auth/register", Some(&owner), body).await;
        assert_eq!(created.status, 201, "{}", created.text);
        ids.push(created.str("id"));
    }
    let nia_id = ids[1].clone();
    let (manager, _) = node.tokens("mia@grand-test.example", STAFF_PASSWORD).await;
    let patch = |body: serde_json::Value| {
        let (node, manager, path) = (&node, &manager, format!("/staff/{nia_id}"));
        async move { node.request(reqwest::Method::PATCH, &path, Some(manager), Some(body)).await }
    };

    let up = patch(json!({ "role": "owner" })).await;
    assert_eq!((up.status, up.code()), (403, "role_not_grantable"), "{}", up.text);
    let foreign = patch(json!({ "properties": [node.property_id, second_id] })).await;
    assert_eq!((foreign.status, foreign.code()), (403, "property_not_allowed"), "{}", foreign.text);
    let empty = patch(json!({ "properties": [] })).await;
    assert_eq!((empty.status, empty.field()), (422, "properties"));
    let bad = patch(json!({ "role": "janitor" })).await;
    assert_eq!((bad.status, bad.field()), (422, "role"), "{}", bad.text);
    let ok = patch(json!({ "role": "housekeeping" })).await;
    assert_eq!((ok.status, ok.str("role").as_str()), (200, "housekeeping"), "{}", ok.text);
    assert_eq!(ok.body["properties"], json!([node.property_id]));
    node.stop().await;
}
