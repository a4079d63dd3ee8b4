//! Loyalty: points earned at check-out by the property's rule, tiers, manual adjustments that
//! never take a balance below zero, and who may adjust.

use edge_node::http::error::ApiError;
use serde_json::json;
use tests::TestNode;

async fn guest(node: &TestNode, token: &str) -> String {
    let resp =
        node.post("/guests", Some(token), json!({ "first_name": "Ann", "last_name": "Lee" })).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.str("id")
}

/// Check-out's call into loyalty, as the reservation service makes it.
async fn earn(node: &TestNode, guest_id: &str, reservation_id: &str, revenue_minor: i64) {
    let (property, guest_id, reservation_id) =
        (node.property_id.clone(), guest_id.to_string(), reservation_id.to_string());
    node.db()
        .write(move |tx| {
            edge_node::guest::loyalty::earn_on_checkout(
                tx,
                &property,
                &guest_id,
                &reservation_id,
                revenue_minor,
                "staff:test",
                edge_node::time::now_ms(),
            )
        })
        .await
        .expect("earn");
}

#[tokio::test]
async fn check_out_enrolls_the_guest_and_earns_points_by_the_default_rule() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = guest(&node, &owner).await;
    earn(&node, &id, "res-1", 12_345).await; // 123.45 → 1234 points at 10 a unit
    let view = node.get(&format!("/guests/{id}/loyalty"), Some(&owner)).await;
    assert_eq!(view.status, 200, "{}", view.text);
    let account = &view.body["account"];
    assert_eq!(
        (account["balance"].clone(), account["lifetime_points"].clone()),
        (json!(1234), json!(1234))
    );
    assert_eq!(account["tier"], "member");
    let number = account["number"].as_str().expect("number");
    assert!(
        number.len() == 11
            && number.starts_with("SO-")
            && number[3..].chars().all(|c| c.is_ascii_digit()),
        "{number}"
    );
    assert_eq!(view.body["ledger"][0]["kind"], "earn");
    assert_eq!(view.body["ledger"][0]["reservation_id"], "res-1");

    earn(&node, &id, "res-1", 12_345).await;
    let again = node.get(&format!("/guests/{id}/loyalty"), Some(&owner)).await;
    assert_eq!(again.body["account"]["balance"], 1234, "one reservation earns once");
    earn(&node, &id, "res-2", 400_000).await;
    let silver = node.get(&format!("/guests/{id}/loyalty"), Some(&owner)).await;
    assert_eq!(silver.body["account"]["balance"], 41_234);
    assert_eq!(silver.body["account"]["tier"], "gold");
    assert_eq!(silver.body["ledger"][0]["reservation_id"], "res-2", "newest first");
    node.stop().await;
}

#[tokio::test]
async fn the_property_rule_sets_points_and_tiers() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let property = node.property_id.clone();
    node.db()
        .write(move |tx| -> Result<_, ApiError> {
            tx.execute(
                "UPDATE properties SET loyalty_rule = ?2 WHERE id = ?1",
                rusqlite::params![
                    property,
                    r#"{"points_per_unit": 1, "tiers": [{"name":"blue","min_points":0},{"name":"platinum","min_points":100}]}"#
                ],
            )?;
            Ok(())
        })
        .await
        .expect("rule");
    let id = guest(&node, &owner).await;
    earn(&node, &id, "res-1", 9_999).await; // 99.99 → 99 points
    let view = node.get(&format!("/guests/{id}/loyalty"), Some(&owner)).await;
    assert_eq!(
        (view.body["account"]["balance"].clone(), view.body["account"]["tier"].clone()),
        (json!(99), json!("blue"))
    );
    earn(&node, &id, "res-2", 100).await;
    let view = node.get(&format!("/guests/{id}/loyalty"), Some(&owner)).await;
    assert_eq!(view.body["account"]["tier"], "platinum");
    node.stop().await;
}

#[tokio::test]
async fn erased_or_unknown_guests_earn_nothing() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = guest(&node, &owner).await;
    assert_eq!(
        node.post(&format!("/guests/{id}/erase"), Some(&owner), json!({})).await.status,
        200
    );
    earn(&node, &id, "res-1", 50_000).await;
    earn(&node, "no-such-guest", "res-2", 50_000).await;
    let view = node.get(&format!("/guests/{id}/loyalty"), Some(&owner)).await;
    assert_eq!(view.body["account"], json!(null));
    node.stop().await;
}

#[tokio::test]
async fn adjustments_need_a_reason_and_never_take_the_balance_below_zero() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = guest(&node, &owner).await;
    let path = format!("/guests/{id}/loyalty/adjustments");
    let enrolled =
        node.post(&format!("/guests/{id}/loyalty/enroll"), Some(&owner), json!({})).await;
    assert_eq!(enrolled.status, 201, "{}", enrolled.text);
    let again = node.post(&format!("/guests/{id}/loyalty/enroll"), Some(&owner), json!({})).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["account"]["number"], enrolled.body["account"]["number"]);

    let add = node.post(&path, Some(&owner), json!({ "points": 500, "reason": "birthday" })).await;
    assert_eq!(add.status, 201, "{}", add.text);
    assert_eq!(add.body["account"]["balance"], 500);
    let take = node
        .post(&path, Some(&owner), json!({ "points": -200, "reason": "redeemed a drink" }))
        .await;
    assert_eq!(take.body["account"]["balance"], 300);
    assert_eq!(take.body["ledger"][0]["balance_after"], 300);
    assert_eq!(take.body["ledger"][0]["reason"], "redeemed a drink");
    let too_much =
        node.post(&path, Some(&owner), json!({ "points": -301, "reason": "oops" })).await;
    assert_eq!((too_much.status, too_much.code()), (409, "insufficient_points"));
    assert_eq!(too_much.body["error"]["details"]["balance"], 300);
    let exact =
        node.post(&path, Some(&owner), json!({ "points": -300, "reason": "all of it" })).await;
    assert_eq!(exact.body["account"]["balance"], 0);
    assert_eq!(
        exact.body["account"]["lifetime_points"], 500,
        "taking points keeps the lifetime total"
    );

    let zero = node.post(&path, Some(&owner), json!({ "points": 0, "reason": "x" })).await;
    assert_eq!((zero.status, zero.field()), (422, "points"));
    let no_reason = node.post(&path, Some(&owner), json!({ "points": 5, "reason": "  " })).await;
    assert_eq!((no_reason.status, no_reason.field()), (422, "reason"));
    let missing = node.post(&path, Some(&owner), json!({ "points": 5 })).await;
    assert_eq!((missing.status, missing.field()), (422, "reason"));

    node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let (clerk, _) = node.tokens("nia@grand-test.example", tests::STAFF_PASSWORD).await;
    let denied = node.post(&path, Some(&clerk), json!({ "points": 5, "reason": "friend" })).await;
    assert_eq!((denied.status, denied.code()), (403, "missing_permission"));
    let audit = node.get("/audit?event=loyalty_adjusted", Some(&owner)).await;
    assert_eq!(audit.body["items"].as_array().expect("entries").len(), 3);
    node.stop().await;
}

#[tokio::test]
async fn one_adjustment_moves_at_most_the_documented_maximum_of_points() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = guest(&node, &owner).await;
    let path = format!("/guests/{id}/loyalty/adjustments");
    let max = edge_node::guest::routes::MAX_ADJUSTMENT_POINTS;
    for points in [max + 1, 1_000_000, -(max + 1)] {
        let resp =
            node.post(&path, Some(&owner), json!({ "points": points, "reason": "gift" })).await;
        assert_eq!((resp.status, resp.field()), (422, "points"), "{points}: {}", resp.text);
        let reason = resp.body["error"]["details"]["reason"].as_str().unwrap_or("");
        assert!(reason.contains(&max.to_string()), "{reason}");
    }
    let ok = node.post(&path, Some(&owner), json!({ "points": max, "reason": "gift" })).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
    assert_eq!(ok.body["account"]["balance"], max);
    node.stop().await;
}
