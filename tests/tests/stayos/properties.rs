//! The property service: properties and their settings, room types, rooms and amenities —
//! who may see and change them, what is refused, and that nothing is half-written.

use serde_json::{Value, json};
use tests::{STAFF_PASSWORD, TestNode};

fn hotel(name: &str) -> Value {
    json!({
        "name": name,
        "timezone": "Europe/Vienna",
        "currency": "EUR",
        "address": "Ringstrasse 1, Wien",
        "check_in_time": "14:00",
        "check_out_time": "10:30",
        "vat_rate_bp": 1000,
        "vat_inclusive": true,
        "city_tax_minor": 320,
        "city_tax_children": false,
        "tentative_hold_hours": 48,
        "loyalty_rule": { "points_per_unit": 1, "tiers": [
            { "name": "Silver", "min_points": 0 }, { "name": "Gold", "min_points": 5000 } ] }
    })
}

/// Runs SQL against the node's database through its write path (for rows other services
/// own, such as reservations).
async fn sql(node: &TestNode, sql: String) {
    node.db()
        .write(move |tx| tx.execute_batch(&sql).map_err(edge_node::db::DbError::from))
        .await
        .expect("sql");
}

/// A staff member with `role` at the test property; returns their access token.
async fn staff(node: &TestNode, owner: &str, email: &str, role: &str) -> String {
    node.register(owner, email, role).await;
    node.tokens(email, STAFF_PASSWORD).await.0
}

async fn create_type(node: &TestNode, token: &str, code: &str) -> Value {
    let path = format!("/properties/{}/room-types", node.property_id);
    let resp = node.post(&path, Some(token), json!({ "code": code, "name": "Twin" })).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.body
}

#[tokio::test]
async fn an_owner_creates_a_property_with_every_setting_and_gets_access_to_it() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let created = node.post("/properties", Some(&owner), hotel("Hotel Ring")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.str("id");
    assert_eq!(created.str("timezone"), "Europe/Vienna");
    assert_eq!(created.str("check_out_time"), "10:30");
    assert_eq!(created.body["vat_rate_bp"], 1000);
    assert_eq!(created.body["city_tax_minor"], 320);
    assert_eq!(created.body["tentative_hold_hours"], 48);
    assert_eq!(created.body["loyalty_rule"]["tiers"][1]["name"], "Gold");
    assert_eq!(created.str("business_date").len(), 10, "{}", created.text);

    let fetched = node.get(&format!("/properties/{id}"), Some(&owner)).await;
    assert_eq!(fetched.status, 200, "{}", fetched.text);
    assert_eq!(fetched.body, created.body);
    let list = node.get("/properties", Some(&owner)).await;
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert!(ids.contains(&id.as_str()) && ids.contains(&node.property_id.as_str()), "{ids:?}");
    node.stop().await;
}

#[tokio::test]
async fn bad_property_settings_are_refused_naming_the_field() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let cases = [
        ("timezone", json!("Mars/Olympus")),
        ("currency", json!("eur")),
        ("check_in_time", json!("25:00")),
        ("check_out_time", json!("9:00")),
        ("vat_rate_bp", json!(10_001)),
        ("city_tax_minor", json!(-1)),
        ("tentative_hold_hours", json!(0)),
        ("loyalty_rule", json!({ "points_per_unit": -3 })),
        ("name", json!("  ")),
        ("business_date", json!("2030-01-01")),
    ];
    for (field, value) in cases {
        let mut body = hotel("Bad");
        body[field] = value;
        let resp = node.post("/properties", Some(&owner), body).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{field}: {}", resp.text);
    }
    let mut missing = hotel("No zone");
    missing.as_object_mut().expect("object").remove("timezone");
    let resp = node.post("/properties", Some(&owner), missing).await;
    assert_eq!((resp.status, resp.field()), (422, "timezone"), "{}", resp.text);
    let list = node.get("/properties", Some(&owner)).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1), "nothing was half-created");
    node.stop().await;
}

#[tokio::test]
async fn a_manager_changes_only_the_settings_given_and_the_change_is_audited() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let manager = staff(&node, &owner, "mia@grand-test.example", "manager").await;
    let path = format!("/properties/{}", node.property_id);
    let before = node.get(&path, Some(&manager)).await;
    let changed = node
        .put(&path, Some(&manager), json!({ "vat_rate_bp": 2000, "check_in_time": "16:00" }))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["vat_rate_bp"], 2000);
    assert_eq!(changed.str("check_in_time"), "16:00");
    for same in
        ["name", "timezone", "currency", "check_out_time", "business_date", "tentative_hold_hours"]
    {
        assert_eq!(changed.body[same], before.body[same], "{same}");
    }
    let date = node.put(&path, Some(&manager), json!({ "business_date": "2030-01-01" })).await;
    assert_eq!((date.status, date.field()), (422, "business_date"));

    let audit = node.get("/audit?event=property_updated", Some(&owner)).await;
    let entry = &audit.body["items"][0];
    assert_eq!(entry["subject_id"], node.property_id.as_str());
    assert_eq!(entry["details"]["changed"], json!(["check_in_time", "vat_rate_bp"]));
    node.stop().await;
}

#[tokio::test]
async fn only_owners_create_and_delete_properties_and_only_managers_change_them() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let manager = staff(&node, &owner, "mia@grand-test.example", "manager").await;
    let clerk = staff(&node, &owner, "nia@grand-test.example", "front_desk").await;
    let by_manager = node.post("/properties", Some(&manager), hotel("Annex")).await;
    assert_eq!((by_manager.status, by_manager.code()), (403, "missing_permission"));
    let path = format!("/properties/{}", node.property_id);
    let delete = node.delete(&path, Some(&manager)).await;
    assert_eq!((delete.status, delete.code()), (403, "missing_permission"));
    let put = node.put(&path, Some(&clerk), json!({ "vat_rate_bp": 0 })).await;
    assert_eq!((put.status, put.code()), (403, "missing_permission"));
    let read = node.get(&path, Some(&clerk)).await;
    assert_eq!(read.status, 200, "every role reads its property: {}", read.text);
    // Nobody would get access to a property an integration created: keys may not.
    let key = node
        .post("/auth/api-keys", Some(&owner), json!({ "name": "Bridge", "role": "owner" }))
        .await
        .str("key");
    let by_key = node.post("/properties", Some(&key), hotel("Keyed")).await;
    assert_eq!((by_key.status, by_key.code()), (403, "staff_only"), "{}", by_key.text);
    node.stop().await;
}

#[tokio::test]
async fn staff_of_one_property_cannot_see_or_touch_another() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let manager = staff(&node, &owner, "mia@grand-test.example", "manager").await;
    let other = node.post("/properties", Some(&owner), hotel("Elsewhere")).await.str("id");
    let type_id = create_type_at(&node, &owner, &other).await;

    let list = node.get("/properties", Some(&manager)).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1), "{}", list.text);
    for path in [
        format!("/properties/{other}"),
        format!("/properties/{other}/rooms"),
        format!("/properties/{other}/room-types/{type_id}"),
        format!("/properties/{other}/rate-plans"),
    ] {
        let resp = node.get(&path, Some(&manager)).await;
        assert_eq!((resp.status, resp.code()), (404, "not_found"), "{path}");
    }
    let write = node
        .post(
            &format!("/properties/{other}/room-types"),
            Some(&manager),
            json!({ "code": "X", "name": "X" }),
        )
        .await;
    assert_eq!((write.status, write.code()), (404, "not_found"));
    // An unknown property looks the same as a foreign one.
    let unknown = node.get("/properties/01900000-0000-7000-8000-000000000000", Some(&owner)).await;
    assert_eq!((unknown.status, unknown.code()), (404, "not_found"));
    node.stop().await;
}

async fn create_type_at(node: &TestNode, token: &str, property: &str) -> String {
    let resp = node
        .post(
            &format!("/properties/{property}/room-types"),
            Some(token),
            json!({ "code": "DBL", "name": "Double" }),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.str("id")
}

#[tokio::test]
async fn a_property_with_open_reservations_cannot_be_deleted() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = node.post("/properties", Some(&owner), hotel("Short-lived")).await.str("id");
    sql(
        &node,
        format!(
            "INSERT INTO reservations (id, property_id, status, arrival, departure)
             VALUES ('r1', '{id}', 'confirmed', '2030-01-01', '2030-01-03')"
        ),
    )
    .await;
    let path = format!("/properties/{id}");
    let refused = node.delete(&path, Some(&owner)).await;
    assert_eq!(
        (refused.status, refused.code()),
        (409, "property_has_reservations"),
        "{}",
        refused.text
    );

    sql(&node, "UPDATE reservations SET status = 'cancelled' WHERE id = 'r1'".into()).await;
    let deleted = node.delete(&path, Some(&owner)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert_eq!(node.get(&path, Some(&owner)).await.status, 404);
    let list = node.get("/properties", Some(&owner)).await;
    assert!(!list.text.contains(&id), "a deleted property is not listed");
    node.stop().await;
}

#[tokio::test]
async fn room_types_are_created_listed_and_changed_with_their_amenities() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let base = format!("/properties/{}", node.property_id);
    let balcony = node
        .post(
            &format!("{base}/amenities"),
            Some(&owner),
            json!({ "code": "balcony", "name": "Balcony" }),
        )
        .await;
    assert_eq!(balcony.status, 201, "{}", balcony.text);
    assert_eq!((balcony.str("code"), balcony.str("scope")), ("BALCONY".into(), "room".into()));
    let created = node
        .post(
            &format!("{base}/room-types"),
            Some(&owner),
            json!({ "code": "fam", "name": "Family", "base_occupancy": 2, "max_adults": 3,
                    "max_children": 2, "amenity_ids": [balcony.str("id")] }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.str("code"), "FAM");
    assert_eq!(created.body["max_occupancy"], 5, "defaults to adults + children");
    assert_eq!(created.body["overbooking_allowance"], 0);
    assert_eq!(created.body["amenity_ids"], json!([balcony.str("id")]));
    assert_eq!(created.body["room_count"], 0);

    let type_path = format!("{base}/room-types/{}", created.str("id"));
    let changed = node
        .put(&type_path, Some(&owner), json!({ "overbooking_allowance": 1, "amenity_ids": [] }))
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    assert_eq!(changed.body["overbooking_allowance"], 1);
    assert_eq!(changed.body["amenity_ids"], json!([]));
    assert_eq!(changed.str("name"), "Family");

    node.post(
        &format!("{base}/rooms"),
        Some(&owner),
        json!({ "number": "301", "room_type_id": created.str("id") }),
    )
    .await;
    let list = node.get(&format!("{base}/room-types"), Some(&owner)).await;
    assert_eq!(list.body["items"][0]["room_count"], 1, "{}", list.text);
    node.stop().await;
}

#[tokio::test]
async fn room_type_codes_are_unique_and_occupancy_must_make_sense() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let path = format!("/properties/{}/room-types", node.property_id);
    create_type(&node, &owner, "TWN").await;
    let again = node.post(&path, Some(&owner), json!({ "code": "twn", "name": "Other" })).await;
    assert_eq!((again.status, again.code(), again.field()), (409, "room_type_code_taken", "code"));
    let cases = [
        (json!({ "code": "A", "name": "A", "base_occupancy": 0 }), "base_occupancy"),
        (json!({ "code": "A", "name": "A", "max_adults": 0 }), "max_adults"),
        (json!({ "code": "A", "name": "A", "max_adults": 3, "max_occupancy": 2 }), "max_occupancy"),
        (
            json!({ "code": "A", "name": "A", "base_occupancy": 4, "max_adults": 2 }),
            "base_occupancy",
        ),
        (json!({ "code": "A", "name": "A", "overbooking_allowance": -1 }), "overbooking_allowance"),
        (json!({ "code": "bad code!", "name": "A" }), "code"),
        (json!({ "name": "A" }), "code"),
        (json!({ "code": "A", "name": "A", "amenity_ids": ["nope"] }), "amenity_ids"),
    ];
    for (body, field) in cases {
        let resp = node.post(&path, Some(&owner), body.clone()).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{body}: {}", resp.text);
    }
    assert_eq!(node.get(&path, Some(&owner)).await.body["items"].as_array().map(Vec::len), Some(1));
    node.stop().await;
}

#[tokio::test]
async fn housekeeping_reads_the_set_up_but_cannot_change_it() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let maid = staff(&node, &owner, "hana@grand-test.example", "housekeeping").await;
    let path = format!("/properties/{}/room-types", node.property_id);
    let create = node.post(&path, Some(&maid), json!({ "code": "X", "name": "X" })).await;
    assert_eq!((create.status, create.code()), (403, "missing_permission"));
    let rooms = node
        .post(
            &format!("/properties/{}/rooms", node.property_id),
            Some(&maid),
            json!({ "number": "1" }),
        )
        .await;
    assert_eq!((rooms.status, rooms.code()), (403, "missing_permission"));
    assert_eq!(node.get(&path, Some(&maid)).await.status, 200);
    node.stop().await;
}

#[tokio::test]
async fn a_room_type_in_use_cannot_be_deleted_and_a_deleted_one_is_gone() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let hotel = node.seed_small_hotel().await;
    let base = format!("/properties/{}/room-types", node.property_id);
    let dbl = &hotel.room_types[0].id;
    let refused = node.delete(&format!("{base}/{dbl}"), Some(&owner)).await;
    assert_eq!((refused.status, refused.code()), (409, "room_type_has_rooms"), "{}", refused.text);

    let empty = create_type(&node, &owner, "TWN").await["id"].as_str().expect("id").to_string();
    sql(
        &node,
        format!(
            "INSERT INTO reservations (id, property_id, status, room_type_id, arrival, departure)
             VALUES ('w1', '{}', 'waitlisted', '{empty}', '2030-01-01', '2030-01-02')",
            node.property_id
        ),
    )
    .await;
    let waiting = node.delete(&format!("{base}/{empty}"), Some(&owner)).await;
    assert_eq!((waiting.status, waiting.code()), (409, "room_type_has_reservations"));
    sql(&node, "UPDATE reservations SET status = 'cancelled' WHERE id = 'w1'".into()).await;
    assert_eq!(node.delete(&format!("{base}/{empty}"), Some(&owner)).await.status, 204);
    let gone = node.get(&format!("{base}/{empty}"), Some(&owner)).await;
    assert_eq!((gone.status, gone.code()), (404, "not_found"));
    assert!(!node.get(&base, Some(&owner)).await.text.contains(&empty));
    // The code is free again.
    create_type(&node, &owner, "TWN").await;
    node.stop().await;
}

#[tokio::test]
async fn rooms_are_created_filtered_and_their_numbers_are_unique() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let hotel = node.seed_small_hotel().await;
    let (dbl, ste) = (&hotel.room_types[0].id, &hotel.room_types[1].id);
    let path = format!("/properties/{}/rooms", node.property_id);
    let created = node
        .post(&path, Some(&owner), json!({ "number": "103", "room_type_id": dbl, "floor": "1", "description": "Quiet, courtyard" }))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        (created.str("status"), created.str("room_type_code")),
        ("clean".into(), "DBL".into())
    );

    let taken =
        node.post(&path, Some(&owner), json!({ "number": "201", "room_type_id": dbl })).await;
    assert_eq!((taken.status, taken.code(), taken.field()), (409, "room_number_taken", "number"));
    let bad_type =
        node.post(&path, Some(&owner), json!({ "number": "104", "room_type_id": "nope" })).await;
    assert_eq!((bad_type.status, bad_type.field()), (422, "room_type_id"));
    let no_number = node.post(&path, Some(&owner), json!({ "room_type_id": dbl })).await;
    assert_eq!((no_number.status, no_number.field()), (422, "number"));

    let doubles = node.get(&format!("{path}?room_type_id={dbl}"), Some(&owner)).await;
    let numbers: Vec<&str> = doubles.body["items"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["number"].as_str())
        .collect();
    assert_eq!(numbers, ["101", "102", "103"]);
    let suites = node.get(&format!("{path}?room_type_id={ste}&status=clean"), Some(&owner)).await;
    assert_eq!(suites.body["items"].as_array().map(Vec::len), Some(1));
    let dirty = node.get(&format!("{path}?status=dirty"), Some(&owner)).await;
    assert_eq!(dirty.body["items"], json!([]));
    let bad_status = node.get(&format!("{path}?status=sparkling"), Some(&owner)).await;
    assert_eq!((bad_status.status, bad_status.field()), (422, "status"));

    let moved = node
        .put(
            &format!("{path}/{}", created.str("id")),
            Some(&owner),
            json!({ "room_type_id": ste, "number": "203" }),
        )
        .await;
    assert_eq!(moved.status, 200, "{}", moved.text);
    assert_eq!((moved.str("number"), moved.str("room_type_code")), ("203".into(), "STE".into()));
    assert_eq!(moved.str("description"), "Quiet, courtyard");
    node.stop().await;
}

#[tokio::test]
async fn a_room_holding_future_nights_cannot_change_type_or_be_deleted() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let hotel = node.seed_small_hotel().await;
    let today = node.business_date().await;
    let room = &hotel.room_types[0].room_ids[0];
    let ste = &hotel.room_types[1].id;
    let yesterday = today.yesterday().expect("yesterday");
    sql(&node, format!("INSERT INTO room_nights (room_id, night, reservation_id) VALUES ('{room}', '{yesterday}', 'old')")).await;
    sql(&node, format!("INSERT INTO room_nights (room_id, night, reservation_id) VALUES ('{room}', '{today}', 'r1')")).await;
    let path = format!("/properties/{}/rooms/{room}", node.property_id);
    let retype = node.put(&path, Some(&owner), json!({ "room_type_id": ste })).await;
    assert_eq!((retype.status, retype.code()), (409, "room_has_reservations"), "{}", retype.text);
    let delete = node.delete(&path, Some(&owner)).await;
    assert_eq!((delete.status, delete.code()), (409, "room_has_reservations"));
    let rename = node.put(&path, Some(&owner), json!({ "description": "Renovated" })).await;
    assert_eq!(rename.status, 200, "other changes are fine: {}", rename.text);

    sql(&node, format!("DELETE FROM room_nights WHERE room_id = '{room}' AND night = '{today}'"))
        .await;
    assert_eq!(node.delete(&path, Some(&owner)).await.status, 204, "past nights do not block");
    assert_eq!(node.get(&path, Some(&owner)).await.status, 404);
    node.stop().await;
}

#[tokio::test]
async fn a_room_whose_type_is_sold_out_cannot_be_taken_away() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let hotel = node.seed_small_hotel().await;
    let tomorrow = node.business_date().await.tomorrow().expect("tomorrow");
    let dbl = &hotel.room_types[0];
    // Both doubles are sold tomorrow, neither assigned to a room yet.
    sql(
        &node,
        format!(
            "INSERT INTO room_type_nights (room_type_id, night, property_id, sold) VALUES ('{}', '{tomorrow}', '{}', 2)",
            dbl.id, node.property_id
        ),
    )
    .await;
    let path = format!("/properties/{}/rooms/{}", node.property_id, dbl.room_ids[0]);
    let delete = node.delete(&path, Some(&owner)).await;
    assert_eq!(
        (delete.status, delete.code()),
        (409, "room_type_capacity_in_use"),
        "{}",
        delete.text
    );
    let retype =
        node.put(&path, Some(&owner), json!({ "room_type_id": hotel.room_types[1].id })).await;
    assert_eq!((retype.status, retype.code()), (409, "room_type_capacity_in_use"));
    let rooms = node.get(&format!("/properties/{}/rooms", node.property_id), Some(&owner)).await;
    assert_eq!(rooms.body["items"].as_array().map(Vec::len), Some(3), "nothing changed");

    // With an overbooking allowance of one the room may go.
    let type_path = format!("/properties/{}/room-types/{}", node.property_id, dbl.id);
    assert_eq!(
        node.put(&type_path, Some(&owner), json!({ "overbooking_allowance": 1 })).await.status,
        200
    );
    assert_eq!(node.delete(&path, Some(&owner)).await.status, 204);
    let lower = node.put(&type_path, Some(&owner), json!({ "overbooking_allowance": 0 })).await;
    assert_eq!((lower.status, lower.code()), (409, "room_type_capacity_in_use"));
    node.stop().await;
}

#[tokio::test]
async fn amenities_have_unique_codes_and_deleting_one_removes_it_from_room_types() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let base = format!("/properties/{}", node.property_id);
    let pool = node
        .post(
            &format!("{base}/amenities"),
            Some(&owner),
            json!({ "code": "POOL", "name": "Pool", "scope": "property" }),
        )
        .await;
    assert_eq!(pool.status, 201, "{}", pool.text);
    let again = node
        .post(
            &format!("{base}/amenities"),
            Some(&owner),
            json!({ "code": "pool", "name": "Pool 2" }),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "amenity_code_taken"));
    let scope = node
        .post(
            &format!("{base}/amenities"),
            Some(&owner),
            json!({ "code": "SPA", "name": "Spa", "scope": "city" }),
        )
        .await;
    assert_eq!((scope.status, scope.field()), (422, "scope"));

    let room_type = node
        .post(
            &format!("{base}/room-types"),
            Some(&owner),
            json!({ "code": "DBL", "name": "Double", "amenity_ids": [pool.str("id")] }),
        )
        .await;
    let deleted = node.delete(&format!("{base}/amenities/{}", pool.str("id")), Some(&owner)).await;
    assert_eq!(deleted.status, 204);
    assert_eq!(node.get(&format!("{base}/amenities"), Some(&owner)).await.body["items"], json!([]));
    let after = node.get(&format!("{base}/room-types/{}", room_type.str("id")), Some(&owner)).await;
    assert_eq!(after.body["amenity_ids"], json!([]));
    let twice = node.delete(&format!("{base}/amenities/{}", pool.str("id")), Some(&owner)).await;
    assert_eq!(twice.status, 404);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_node_refuses_a_second_property() {
    let hub = tests::hub::Hub::start().await;
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    tests::hub::enroll_ok(&hub, &node.data_dir, &node.property_id).await;
    let refused = node.post("/properties", Some(&owner), hotel("Annex")).await;
    assert_eq!((refused.status, refused.code()), (409, "node_enrolled"), "{}", refused.text);
    let message = refused.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(&format!("this node is enrolled for property {};", node.property_id)),
        "{message}"
    );
    let listed = node.get("/properties", Some(&owner)).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1), "{}", listed.text);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_refuses_a_node_that_holds_two_properties_and_stores_nothing() {
    let hub = tests::hub::Hub::start().await;
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let second = node.post("/properties", Some(&owner), hotel("Annex")).await;
    assert_eq!(second.status, 201, "{}", second.text);
    let second_id = second.str("id");
    // Deleted still counts: its rows would still be pushed and refused by the hub.
    assert_eq!(node.delete(&format!("/properties/{second_id}"), Some(&owner)).await.status, 204);

    let token = hub.enroll_token(&node.property_id).await;
    let out = tests::hub::enroll(&node.data_dir, &hub.url, &token).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("this node holds 2 properties"), "{stderr}");
    assert!(stderr.contains(&second_id) && stderr.contains("stayos-edge init"), "{stderr}");
    let link = tests::hub::edge_rows(&node.data_dir, "node_meta", Some(("key", "hub_credential")));
    assert!(link.is_empty(), "nothing may be stored: {link:?}");
    let sync = node.get("/sync/status", Some(&owner)).await;
    assert_eq!(sync.body["state"], "disabled", "{}", sync.text);
    node.stop().await;
}
