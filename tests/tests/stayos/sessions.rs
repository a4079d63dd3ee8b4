//! Refresh tokens, logout and sessions: single-use refresh tokens in families, reuse
//! detection, revocation that takes effect at once.

use serde_json::json;
use tests::{OWNER_EMAIL, OWNER_PASSWORD, TestNode};

#[tokio::test]
async fn a_refresh_token_gives_a_new_pair_and_works_only_once() {
    let node = TestNode::spawn().await;
    let (_, refresh) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    let rotated = node.post("/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    assert_ne!(rotated.str("refresh_token"), refresh);
    let me = node.get("/auth/me", Some(&rotated.str("access_token"))).await;
    assert_eq!(me.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn reusing_a_refresh_token_ends_the_whole_session() {
    let node = TestNode::spawn().await;
    let (_, first) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    let rotated = node.post("/auth/refresh", None, json!({ "refresh_token": first })).await;
    let (access, second) = (rotated.str("access_token"), rotated.str("refresh_token"));

    let replay = node.post("/auth/refresh", None, json!({ "refresh_token": first })).await;
    assert_eq!((replay.status, replay.code()), (401, "refresh_token_reused"));
    // The thief's replay also kills the legitimate holder's newer tokens: the family is gone.
    let newer = node.post("/auth/refresh", None, json!({ "refresh_token": second })).await;
    assert_eq!(newer.status, 401);
    let me = node.get("/auth/me", Some(&access)).await;
    assert_eq!((me.status, me.code()), (401, "session_ended"));
    // Other logins of the same person are untouched.
    let (other, _) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    assert_eq!(node.get("/auth/me", Some(&other)).await.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn garbage_refresh_tokens_are_refused() {
    let node = TestNode::spawn().await;
    for token in ["", "rt_not-a-real-token", "eyJhbGciOiJIUzI1NiJ9.e30.x"] {
        let resp = node.post("/auth/refresh", None, json!({ "refresh_token": token })).await;
        assert_eq!((resp.status, resp.code()), (401, "invalid_refresh_token"), "{token:?}");
    }
    let missing = node.post("/auth/refresh", None, json!({})).await;
    assert_eq!((missing.status, missing.field()), (422, "refresh_token"));
    node.stop().await;
}

#[tokio::test]
async fn logout_ends_the_access_token_and_the_refresh_token() {
    let node = TestNode::spawn().await;
    let (access, refresh) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    let out = node.post("/auth/logout", Some(&access), json!({})).await;
    assert_eq!(out.status, 204, "{}", out.text);
    assert_eq!(node.get("/auth/me", Some(&access)).await.code(), "session_ended");
    let refreshed = node.post("/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    assert_eq!(refreshed.status, 401);
    node.stop().await;
}

#[tokio::test]
async fn tampered_or_foreign_access_tokens_are_refused() {
    let node = TestNode::spawn().await;
    let other = TestNode::spawn().await;
    let (access, _) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    // Same e-mail and password on another node: its token is signed with another key.
    let foreign = other.owner_token().await;
    let tampered = format!("{}x", &access[..access.len() - 1]);
    for token in [foreign.as_str(), tampered.as_str(), "not.a.jwt", "sk_garbage"] {
        let resp = node.get("/auth/me", Some(token)).await;
        assert_eq!(resp.status, 401, "{token}: {}", resp.text);
    }
    let no_scheme = node
        .client
        .get(format!("{}/auth/me", node.url))
        .header("authorization", access.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(no_scheme.status().as_u16(), 401);
    node.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn staff_list_and_end_their_own_sessions() {
    let node = TestNode::spawn().await;
    let (desk, _) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    let (tablet, _) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    let list = node.get("/auth/sessions", Some(&desk)).await;
    assert_eq!(list.status, 200);
    let sessions = list.body["items"].as_array().expect("array").clone();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let tablet_id = sessions.iter().find(|s| s["current"] == false).expect("other")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let ended = node.delete(&format!("/auth/sessions/{tablet_id}"), Some(&desk)).await;
    assert_eq!(ended.status, 204);
    assert_eq!(node.get("/auth/me", Some(&tablet)).await.status, 401);
    assert_eq!(node.get("/auth/me", Some(&desk)).await.status, 200);
    let again = node.delete(&format!("/auth/sessions/{tablet_id}"), Some(&desk)).await;
    assert_eq!(again.status, 404);
    node.stop().await;
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_retires_the_old_one() {
    let node = TestNode::spawn().await;
    let (desk, _) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    let (tablet, _) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    let new_password = "saffron-glacier-pylon-mint";

    let wrong = node
        .post(
            "/auth/password",
            Some(&desk),
            json!({ "current_password": "nope-nope-nope", "new_password": new_password }),
        )
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_credentials"));
    let weak = node
        .post(
            "/auth/password",
            Some(&desk),
            json!({ "current_password": OWNER_PASSWORD, "new_password": "password123" }),
        )
        .await;
    assert_eq!((weak.status, weak.field()), (422, "new_password"));

    let changed = node
        .post(
            "/auth/password",
            Some(&desk),
            json!({ "current_password": OWNER_PASSWORD, "new_password": new_password }),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(node.get("/auth/me", Some(&desk)).await.status, 200);
    assert_eq!(node.get("/auth/me", Some(&tablet)).await.status, 401);
    assert_eq!(node.login(OWNER_EMAIL, OWNER_PASSWORD).await.status, 401);
    assert_eq!(node.login(OWNER_EMAIL, new_password).await.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn guessing_the_current_password_through_a_session_is_throttled_like_login() {
    let node = TestNode::spawn().await;
    let (token, _) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    let change = |current: &str| json!({ "current_password": current, "new_password": "saffron-glacier-pylon-mint" });
    for attempt in 1..=5 {
        let resp =
            node.post("/auth/password", Some(&token), change("a-guess-at-the-password")).await;
        assert_eq!(resp.status, 401, "attempt {attempt}: {}", resp.text);
    }
    let locked = node.post("/auth/password", Some(&token), change(OWNER_PASSWORD)).await;
    assert_eq!((locked.status, locked.code()), (429, "too_many_requests"), "{}", locked.text);
    assert!(locked.header("retry-after").is_some());
    // The same account counter guards login.
    assert_eq!(node.login(OWNER_EMAIL, OWNER_PASSWORD).await.status, 429);
    node.stop().await;
}
