//! Two-factor login with TOTP (RFC 6238). Codes are computed by an independent TOTP
//! implementation (totp-rs in the test) from the secret the node hands out.

use serde_json::json;
use tests::{OWNER_EMAIL, OWNER_PASSWORD, TestNode, totp_code};

/// Turns MFA on for the owner; returns the secret.
async fn enable_mfa(node: &TestNode, token: &str) -> String {
    let setup = node.post("/auth/mfa/setup", Some(token), json!({})).await;
    assert_eq!(setup.status, 200, "{}", setup.text);
    let secret = setup.str("secret");
    assert!(setup.str("otpauth_url").starts_with("otpauth://totp/StayOS:"), "{}", setup.text);
    let enabled =
        node.post("/auth/mfa/enable", Some(token), json!({ "code": totp_code(&secret, 0) })).await;
    assert_eq!(enabled.status, 200, "{}", enabled.text);
    secret
}

#[tokio::test]
async fn with_mfa_on_login_needs_the_code_and_a_code_works_only_once() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let secret = enable_mfa(&node, &token).await;

    let login = node.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    assert_eq!(login.status, 200);
    assert_eq!(login.body["mfa_required"], true);
    assert!(login.body.get("access_token").is_none());
    let challenge = login.str("mfa_token");

    // The code of the current step was spent enabling MFA; the next step's code is valid
    // (one step of clock skew is allowed) and has not been used.
    let code = totp_code(&secret, 30);
    let wrong = node
        .post("/auth/verify-mfa", None, json!({ "mfa_token": challenge, "code": "000000" }))
        .await;
    assert_eq!((wrong.status, wrong.code()), (401, "invalid_mfa_code"));
    let ok =
        node.post("/auth/verify-mfa", None, json!({ "mfa_token": challenge, "code": code })).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(node.get("/auth/me", Some(&ok.str("access_token"))).await.body["mfa_enabled"], true);

    // Replays: the same challenge again, and the same code with a fresh challenge.
    let again =
        node.post("/auth/verify-mfa", None, json!({ "mfa_token": challenge, "code": code })).await;
    assert_eq!((again.status, again.code()), (401, "invalid_mfa_token"));
    let fresh = node.login(OWNER_EMAIL, OWNER_PASSWORD).await.str("mfa_token");
    let replay =
        node.post("/auth/verify-mfa", None, json!({ "mfa_token": fresh, "code": code })).await;
    assert_eq!((replay.status, replay.code()), (401, "invalid_mfa_code"));
    node.stop().await;
}

#[tokio::test]
async fn a_challenge_allows_five_wrong_codes_then_dies() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let secret = enable_mfa(&node, &token).await;
    let challenge = node.login(OWNER_EMAIL, OWNER_PASSWORD).await.str("mfa_token");
    for _ in 0..5 {
        let resp = node
            .post("/auth/verify-mfa", None, json!({ "mfa_token": challenge, "code": "123456" }))
            .await;
        assert_eq!(resp.status, 401);
    }
    let right = totp_code(&secret, 30);
    let dead =
        node.post("/auth/verify-mfa", None, json!({ "mfa_token": challenge, "code": right })).await;
    assert_eq!((dead.status, dead.code()), (401, "invalid_mfa_token"));
    node.stop().await;
}

#[tokio::test]
async fn mfa_inputs_are_checked() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let bad_code = node
        .post("/auth/verify-mfa", None, json!({ "mfa_token": "mfa_x", "code": "12ab56" }))
        .await;
    assert_eq!((bad_code.status, bad_code.field()), (422, "code"));
    let unknown = node
        .post("/auth/verify-mfa", None, json!({ "mfa_token": "mfa_x", "code": "123456" }))
        .await;
    assert_eq!((unknown.status, unknown.code()), (401, "invalid_mfa_token"));
    let not_set_up = node.post("/auth/mfa/enable", Some(&token), json!({ "code": "123456" })).await;
    assert_eq!((not_set_up.status, not_set_up.code()), (409, "mfa_not_set_up"));
    let setup = node.post("/auth/mfa/setup", Some(&token), json!({})).await;
    let wrong = node.post("/auth/mfa/enable", Some(&token), json!({ "code": "000000" })).await;
    assert_eq!((wrong.status, wrong.field()), (422, "code"));
    let secret = setup.str("secret");
    let on =
        node.post("/auth/mfa/enable", Some(&token), json!({ "code": totp_code(&secret, 0) })).await;
    assert_eq!(on.status, 200);
    let twice = node.post("/auth/mfa/setup", Some(&token), json!({})).await;
    assert_eq!((twice.status, twice.code()), (409, "mfa_already_enabled"));
    node.stop().await;
}

#[tokio::test]
async fn mfa_can_be_turned_off_with_a_current_code() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let secret = enable_mfa(&node, &token).await;
    let off = node
        .post("/auth/mfa/disable", Some(&token), json!({ "code": totp_code(&secret, 30) }))
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
    let login = node.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    assert!(login.body.get("access_token").is_some(), "{}", login.text);
    node.stop().await;
}

#[tokio::test]
async fn guessing_codes_to_turn_mfa_off_is_throttled() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let secret = enable_mfa(&node, &token).await;
    for attempt in 1..=5 {
        let resp = node.post("/auth/mfa/disable", Some(&token), json!({ "code": "000000" })).await;
        assert_eq!((resp.status, resp.field()), (422, "code"), "attempt {attempt}: {}", resp.text);
    }
    let locked = node
        .post("/auth/mfa/disable", Some(&token), json!({ "code": totp_code(&secret, 30) }))
        .await;
    assert_eq!((locked.status, locked.code()), (429, "too_many_requests"), "{}", locked.text);
    let still_on = node.get("/auth/me", Some(&token)).await;
    assert_eq!(still_on.body["mfa_enabled"], true);
    node.stop().await;
}

#[tokio::test]
async fn with_the_right_password_guessing_codes_is_locked_out_like_guessing_passwords() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let secret = enable_mfa(&node, &token).await;
    // A challenge the guesser keeps for later, to try the right code once locked.
    let kept = node.login(OWNER_EMAIL, OWNER_PASSWORD).await.str("mfa_token");
    // One wrong code per fresh challenge, each after the right password: the password alone
    // must not wipe the count.
    for attempt in 1..=5 {
        let login = node.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        assert_eq!(login.status, 200, "attempt {attempt}: {}", login.text);
        let challenge = login.str("mfa_token");
        let wrong = node
            .post("/auth/verify-mfa", None, json!({ "mfa_token": challenge, "code": "000000" }))
            .await;
        assert_eq!((wrong.status, wrong.code()), (401, "invalid_mfa_code"), "attempt {attempt}");
    }
    let login = node.login(OWNER_EMAIL, OWNER_PASSWORD).await;
    assert_eq!((login.status, login.code()), (429, "too_many_requests"), "{}", login.text);
    let right = totp_code(&secret, 30);
    let code =
        node.post("/auth/verify-mfa", None, json!({ "mfa_token": kept, "code": right })).await;
    assert_eq!((code.status, code.code()), (429, "too_many_requests"), "{}", code.text);
    node.stop().await;
}

#[tokio::test]
async fn a_completed_login_with_the_code_clears_the_failures_of_its_address() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let secret = enable_mfa(&node, &token).await;
    for _ in 0..4 {
        let challenge = node.login(OWNER_EMAIL, OWNER_PASSWORD).await.str("mfa_token");
        let wrong = node
            .post("/auth/verify-mfa", None, json!({ "mfa_token": challenge, "code": "000000" }))
            .await;
        assert_eq!(wrong.status, 401);
    }
    let challenge = node.login(OWNER_EMAIL, OWNER_PASSWORD).await.str("mfa_token");
    let ok = node
        .post(
            "/auth/verify-mfa",
            None,
            json!({ "mfa_token": challenge, "code": totp_code(&secret, 30) }),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // Four more misses are again within the five free ones.
    for attempt in 1..=4 {
        let challenge = node.login(OWNER_EMAIL, OWNER_PASSWORD).await;
        assert_eq!(challenge.status, 200, "attempt {attempt}: {}", challenge.text);
        let wrong = node
            .post(
                "/auth/verify-mfa",
                None,
                json!({ "mfa_token": challenge.str("mfa_token"), "code": "000000" }),
            )
            .await;
        assert_eq!(wrong.status, 401, "attempt {attempt}");
    }
    assert_eq!(node.login(OWNER_EMAIL, OWNER_PASSWORD).await.status, 200);
    node.stop().await;
}
