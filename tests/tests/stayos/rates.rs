//! Cancellation policies, rate plans and their nightly prices and restrictions: what a
//! revenue manager sets up, what is refused, and that a partial price update keeps the rest.

use serde_json::{Value, json};
use tests::{STAFF_PASSWORD, TestNode};

struct Setup {
    node: TestNode,
    owner: String,
    base: String,
    room_type: String,
    policy: String,
    plan: String,
}

/// A node with one room type, one policy and one rate plan (no prices).
async fn setup() -> Setup {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let base = format!("/properties/{}", node.property_id);
    let room_type = node
        .post(
            &format!("{base}/room-types"),
            Some(&owner),
            json!({ "code": "DBL", "name": "Double" }),
        )
        .await
        .str("id");
    let policy = node
        .post(&format!("{base}/cancellation-policies"), Some(&owner), json!({ "name": "Flexible" }))
        .await;
    assert_eq!(policy.status, 201, "{}", policy.text);
    let plan = node
        .post(
            &format!("{base}/rate-plans"),
            Some(&owner),
            json!({ "code": "flex", "name": "Flexible", "cancellation_policy_id": policy.str("id"),
                    "breakfast_included": true, "extra_adult_minor": 3000 }),
        )
        .await;
    assert_eq!(plan.status, 201, "{}", plan.text);
    Setup { owner, base, room_type, policy: policy.str("id"), plan: plan.str("id"), node }
}

impl Setup {
    fn prices(&self) -> String {
        format!("{}/rate-plans/{}/prices", self.base, self.plan)
    }

    async fn set(&self, body: Value) -> tests::Resp {
        self.node.put(&self.prices(), Some(&self.owner), body).await
    }

    async fn nights(&self, from: &str, to: &str) -> Vec<Value> {
        let resp = self
            .node
            .get(
                &format!("{}?room_type_id={}&from={from}&to={to}", self.prices(), self.room_type),
                Some(&self.owner),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body["items"].as_array().expect("list").clone()
    }
}

#[tokio::test]
async fn cancellation_policies_are_created_changed_and_checked() {
    let s = setup().await;
    let path = format!("{}/cancellation-policies", s.base);
    let created = s
        .node
        .post(&path, Some(&s.owner), json!({ "name": "Half", "free_until_hours": 48, "fee_kind": "percent", "fee_percent_bp": 5000, "no_show_fee_kind": "full" }))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["fee_percent_bp"], 5000);
    let changed = s
        .node
        .put(
            &format!("{path}/{}", created.str("id")),
            Some(&s.owner),
            json!({ "free_until_hours": 72 }),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(
        (changed.body["free_until_hours"].clone(), changed.str("fee_kind")),
        (json!(72), "percent".into())
    );

    let cases = [
        (json!({ "name": "P", "fee_kind": "percent" }), "fee_percent_bp"),
        (json!({ "name": "P", "fee_kind": "percent", "fee_percent_bp": 10_001 }), "fee_percent_bp"),
        (json!({ "name": "P", "fee_kind": "half" }), "fee_kind"),
        (json!({ "name": "P", "no_show_fee_kind": "all" }), "no_show_fee_kind"),
        (json!({ "name": "P", "free_until_hours": -1 }), "free_until_hours"),
        (json!({ "fee_kind": "none" }), "name"),
    ];
    for (body, field) in cases {
        let resp = s.node.post(&path, Some(&s.owner), body.clone()).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{body}: {}", resp.text);
    }
    let list = s.node.get(&path, Some(&s.owner)).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(2));
    s.node.stop().await;
}

#[tokio::test]
async fn a_policy_used_by_a_rate_plan_cannot_be_deleted() {
    let s = setup().await;
    let policy = format!("{}/cancellation-policies/{}", s.base, s.policy);
    let refused = s.node.delete(&policy, Some(&s.owner)).await;
    assert_eq!((refused.status, refused.code()), (409, "policy_in_use"), "{}", refused.text);
    assert_eq!(refused.body["error"]["details"]["rate_plans"], json!(["FLEX"]));
    let plan = format!("{}/rate-plans/{}", s.base, s.plan);
    assert_eq!(s.node.delete(&plan, Some(&s.owner)).await.status, 204);
    assert_eq!(s.node.delete(&policy, Some(&s.owner)).await.status, 204);
    assert_eq!(s.node.get(&plan, Some(&s.owner)).await.status, 404);
    assert_eq!(
        s.node.get(&format!("{}/rate-plans", s.base), Some(&s.owner)).await.body["items"],
        json!([])
    );
    s.node.stop().await;
}

#[tokio::test]
async fn rate_plans_have_unique_codes_and_a_policy_of_their_property() {
    let s = setup().await;
    let path = format!("{}/rate-plans", s.base);
    let plan = s.node.get(&format!("{path}/{}", s.plan), Some(&s.owner)).await;
    assert_eq!(
        (plan.str("code"), plan.body["breakfast_included"].clone(), plan.body["active"].clone()),
        ("FLEX".into(), json!(true), json!(true))
    );
    let again = s
        .node
        .post(
            &path,
            Some(&s.owner),
            json!({ "code": "FLEX", "name": "x", "cancellation_policy_id": s.policy }),
        )
        .await;
    assert_eq!((again.status, again.code(), again.field()), (409, "rate_plan_code_taken", "code"));
    let cases = [
        (
            json!({ "code": "NREF", "name": "x", "cancellation_policy_id": "nope" }),
            "cancellation_policy_id",
        ),
        (json!({ "code": "NREF", "name": "x" }), "cancellation_policy_id"),
        (
            json!({ "code": "NREF", "name": "x", "cancellation_policy_id": s.policy, "extra_child_minor": -5 }),
            "extra_child_minor",
        ),
        (
            json!({ "code": "NREF", "name": "x", "cancellation_policy_id": s.policy, "price": 5 }),
            "price",
        ),
    ];
    for (body, field) in cases {
        let resp = s.node.post(&path, Some(&s.owner), body.clone()).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{body}: {}", resp.text);
    }
    let off = s
        .node
        .put(
            &format!("{path}/{}", s.plan),
            Some(&s.owner),
            json!({ "active": false, "name": "Flexible (old)" }),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(
        (off.body["active"].clone(), off.str("name"), off.body["extra_adult_minor"].clone()),
        (json!(false), "Flexible (old)".into(), json!(3000))
    );
    let unknown =
        s.node.get(&format!("{path}/01900000-0000-7000-8000-000000000000"), Some(&s.owner)).await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    s.node.stop().await;
}

#[tokio::test]
async fn a_rate_plan_with_open_reservations_cannot_be_deleted() {
    let s = setup().await;
    let (property, plan) = (s.node.property_id.clone(), s.plan.clone());
    s.node
        .db()
        .write(move |tx| {
            tx.execute(
                "INSERT INTO reservations (id, property_id, status, rate_plan_id) VALUES ('r1', ?1, 'tentative', ?2)",
                [property, plan],
            )
            .map_err(edge_node::db::DbError::from)
        })
        .await
        .expect("reservation");
    let resp = s.node.delete(&format!("{}/rate-plans/{}", s.base, s.plan), Some(&s.owner)).await;
    assert_eq!((resp.status, resp.code()), (409, "rate_plan_has_reservations"), "{}", resp.text);
    s.node.stop().await;
}

#[tokio::test]
async fn prices_are_set_for_a_range_and_listed_night_by_night() {
    let s = setup().await;
    let set = s.set(json!({ "room_type_id": s.room_type, "from": "2030-03-01", "to": "2030-03-08", "price_minor": 12_000, "min_stay": 2 })).await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.body["nights"], 7);
    let nights = s.nights("2030-02-27", "2030-03-10").await;
    assert_eq!(nights.len(), 7);
    assert_eq!(nights[0]["night"], "2030-03-01");
    assert_eq!(nights[6]["night"], "2030-03-07", "`to` is exclusive");
    assert!(
        nights
            .iter()
            .all(|n| n["price_minor"] == 12_000 && n["min_stay"] == 2 && n["stop_sell"] == false)
    );

    let audit = s.node.get("/audit?event=rate_prices_set", Some(&s.owner)).await;
    let details = &audit.body["items"][0]["details"];
    assert_eq!(
        (details["from"].clone(), details["to"].clone(), details["nights"].clone()),
        (json!("2030-03-01"), json!("2030-03-08"), json!(7))
    );
    s.node.stop().await;
}

#[tokio::test]
async fn changing_one_restriction_keeps_the_price_and_the_other_restrictions() {
    let s = setup().await;
    s.set(json!({ "room_type_id": s.room_type, "from": "2030-03-01", "to": "2030-03-05", "price_minor": 9_900, "min_stay": 3, "closed_to_arrival": true })).await;
    let stop = s.set(json!({ "room_type_id": s.room_type, "from": "2030-03-02", "to": "2030-03-04", "stop_sell": true })).await;
    assert_eq!((stop.status, stop.body["nights"].clone()), (200, json!(2)), "{}", stop.text);
    let nights = s.nights("2030-03-01", "2030-03-05").await;
    let stopped: Vec<bool> = nights.iter().map(|n| n["stop_sell"] == true).collect();
    assert_eq!(stopped, [false, true, true, false]);
    for n in &nights {
        assert_eq!(
            (n["price_minor"].clone(), n["min_stay"].clone(), n["closed_to_arrival"].clone()),
            (json!(9_900), json!(3), json!(true)),
            "{n}"
        );
    }
    s.node.stop().await;
}

#[tokio::test]
async fn a_night_without_a_price_needs_one_and_nothing_is_half_written() {
    let s = setup().await;
    s.set(json!({ "room_type_id": s.room_type, "from": "2030-03-01", "to": "2030-03-03", "price_minor": 10_000 })).await;
    // Two nights are priced, the third is not: the whole request is refused.
    let resp = s.set(json!({ "room_type_id": s.room_type, "from": "2030-03-01", "to": "2030-03-04", "min_stay": 2 })).await;
    assert_eq!((resp.status, resp.field()), (422, "price_minor"), "{}", resp.text);
    let nights = s.nights("2030-03-01", "2030-03-05").await;
    assert_eq!(nights.len(), 2);
    assert!(nights.iter().all(|n| n["min_stay"] == 0), "rolled back");
    s.node.stop().await;
}

#[tokio::test]
async fn weekdays_limit_a_price_change_to_those_days() {
    let s = setup().await;
    // 2030-03-04 is a Monday; two weeks hold four weekend nights.
    s.set(json!({ "room_type_id": s.room_type, "from": "2030-03-04", "to": "2030-03-18", "price_minor": 10_000 })).await;
    let weekend = s.set(json!({ "room_type_id": s.room_type, "from": "2030-03-04", "to": "2030-03-18", "weekdays": ["fri", "sat"], "price_minor": 14_000 })).await;
    assert_eq!(
        (weekend.status, weekend.body["nights"].clone()),
        (200, json!(4)),
        "{}",
        weekend.text
    );
    let dear: Vec<String> = s
        .nights("2030-03-04", "2030-03-18")
        .await
        .iter()
        .filter(|n| n["price_minor"] == 14_000)
        .filter_map(|n| n["night"].as_str().map(String::from))
        .collect();
    assert_eq!(dear, ["2030-03-08", "2030-03-09", "2030-03-15", "2030-03-16"]);
    s.node.stop().await;
}

#[tokio::test]
async fn bad_price_requests_name_the_field() {
    let s = setup().await;
    let rt = s.room_type.clone();
    let cases = [
        (
            json!({ "room_type_id": rt, "from": "2030-03-01", "to": "2030-03-03", "price_minor": -1 }),
            "price_minor",
        ),
        (
            json!({ "room_type_id": rt, "from": "2030-03-01", "to": "2030-03-03", "price_minor": 1, "min_stay": 3, "max_stay": 2 }),
            "max_stay",
        ),
        (
            json!({ "room_type_id": rt, "from": "2030-03-01", "to": "2030-03-03", "price_minor": 1, "min_stay": -1 }),
            "min_stay",
        ),
        (
            json!({ "room_type_id": rt, "from": "2030-03-01", "to": "2032-03-03", "price_minor": 1 }),
            "to",
        ),
        (
            json!({ "room_type_id": rt, "from": "2030-03-03", "to": "2030-03-01", "price_minor": 1 }),
            "to",
        ),
        (
            json!({ "room_type_id": rt, "from": "2030-3-1", "to": "2030-03-03", "price_minor": 1 }),
            "from",
        ),
        (
            json!({ "room_type_id": rt, "from": "2030-03-01", "to": "2030-03-03", "price_minor": 1, "weekdays": ["funday"] }),
            "weekdays",
        ),
        (
            json!({ "room_type_id": "nope", "from": "2030-03-01", "to": "2030-03-03", "price_minor": 1 }),
            "room_type_id",
        ),
        (json!({ "from": "2030-03-01", "to": "2030-03-03", "price_minor": 1 }), "room_type_id"),
    ];
    for (body, field) in cases {
        let resp = s.set(body.clone()).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{body}: {}", resp.text);
    }
    assert!(s.nights("2030-03-01", "2030-03-05").await.is_empty());
    let no_plan = s
        .node
        .put(&format!("{}/rate-plans/nope/prices", s.base), Some(&s.owner), json!({ "room_type_id": rt, "from": "2030-03-01", "to": "2030-03-02", "price_minor": 1 }))
        .await;
    assert_eq!(no_plan.status, 404);
    s.node.stop().await;
}

#[tokio::test]
async fn the_front_desk_reads_prices_but_cannot_set_them() {
    let s = setup().await;
    s.node.register(&s.owner, "nia@grand-test.example", "front_desk").await;
    let (clerk, _) = s.node.tokens("nia@grand-test.example", STAFF_PASSWORD).await;
    let body = json!({ "room_type_id": s.room_type, "from": "2030-03-01", "to": "2030-03-02", "price_minor": 1 });
    let resp = s.node.put(&s.prices(), Some(&clerk), body).await;
    assert_eq!((resp.status, resp.code()), (403, "missing_permission"));
    let plan = s
        .node
        .post(
            &format!("{}/rate-plans", s.base),
            Some(&clerk),
            json!({ "code": "X", "name": "X", "cancellation_policy_id": s.policy }),
        )
        .await;
    assert_eq!((plan.status, plan.code()), (403, "missing_permission"));
    let read =
        s.node.get(&format!("{}?from=2030-03-01&to=2030-03-02", s.prices()), Some(&clerk)).await;
    assert_eq!(read.status, 200, "{}", read.text);
    s.node.stop().await;
}
