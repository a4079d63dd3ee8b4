//! The API as a contract a typed client can rely on: every mutable resource has an ETag and
//! refuses a stale `If-Match` with 412 and the current version; the OpenAPI document lists
//! every status the shared layers answer and says the API's version, which every response
//! carries; timestamps have one shape; bodies must be JSON objects and a wrong type is a 422
//! naming the field.

use reqwest::Method;
use serde_json::{Value, json};
use tests::{Resp, TestNode};

use crate::reservations::hotel;

fn etag(resp: &Resp) -> String {
    resp.header("etag").unwrap_or_else(|| panic!("no ETag on {}", resp.text)).to_string()
}

/// GET `path`, change it with `first` under its ETag, then try `second` under the old ETag
/// (412 with the current representation), then under the new one (accepted).
async fn stale_if_match_is_refused(
    node: &TestNode,
    token: &str,
    path: &str,
    method: Method,
    first: Value,
    second: Value,
) {
    let before = node.get(path, Some(token)).await;
    assert_eq!(before.status, 200, "GET {path}: {}", before.text);
    let old = etag(&before);
    let again = node.get(path, Some(token)).await;
    assert_eq!(etag(&again), old, "{path}: the same representation has the same tag");

    let changed = node
        .request_with(method.clone(), path, Some(token), Some(first), &[("if-match", &old)])
        .await;
    assert_eq!(changed.status, 200, "{method} {path} under the current tag: {}", changed.text);
    let new = etag(&changed);
    assert_ne!(new, old, "{path}: a change changes the tag");
    let now = node.get(path, Some(token)).await;
    assert_eq!(etag(&now), new, "{path}: the write's answer carries the tag GET serves now");

    let stale = node
        .request_with(
            method.clone(),
            path,
            Some(token),
            Some(second.clone()),
            &[("if-match", &old)],
        )
        .await;
    assert_eq!(
        (stale.status, stale.code()),
        (412, "precondition_failed"),
        "{path}: {}",
        stale.text
    );
    assert_eq!(stale.body["error"]["details"]["current"], now.body, "{path}: the current version");
    assert_eq!(stale.body["error"]["details"]["etag"], new.as_str());
    let unchanged = node.get(path, Some(token)).await;
    assert_eq!(unchanged.body, now.body, "{path}: a refused write changes nothing");

    let fresh =
        node.request_with(method, path, Some(token), Some(second), &[("if-match", &new)]).await;
    assert_eq!(fresh.status, 200, "{path} under the fresh tag: {}", fresh.text);
}

#[tokio::test]
async fn every_mutable_resource_refuses_a_stale_if_match_with_412_and_the_current_version() {
    let h = hotel().await;
    let (node, token) = (&h.node, h.token.as_str());
    let pid = node.property_id.clone();
    let put = Method::PUT;

    stale_if_match_is_refused(
        node,
        token,
        &format!("/properties/{pid}"),
        put.clone(),
        json!({ "address": "1 Quay Street" }),
        json!({ "address": "2 Quay Street" }),
    )
    .await;
    stale_if_match_is_refused(
        node,
        token,
        &format!("/properties/{pid}/room-types/{}", h.dbl()),
        put.clone(),
        json!({ "name": "Double with a view" }),
        json!({ "name": "Double, garden side" }),
    )
    .await;
    stale_if_match_is_refused(
        node,
        token,
        &format!("/properties/{pid}/rooms/{}", h.inv.room_types[0].room_ids[0]),
        put.clone(),
        json!({ "description": "Quiet corner" }),
        json!({ "description": "Next to the lift" }),
    )
    .await;
    stale_if_match_is_refused(
        node,
        token,
        &format!("/properties/{pid}/cancellation-policies/{}", h.inv.flexible_policy_id),
        put.clone(),
        json!({ "name": "Flexible 24 h" }),
        json!({ "name": "Flexible 48 h" }),
    )
    .await;
    stale_if_match_is_refused(
        node,
        token,
        &format!("/properties/{pid}/rate-plans/{}", h.flex()),
        put.clone(),
        json!({ "name": "Flexible rate" }),
        json!({ "name": "Best flexible rate" }),
    )
    .await;

    let guest = node
        .post("/guests", Some(token), json!({ "first_name": "Grace", "last_name": "Hopper" }))
        .await;
    assert_eq!(guest.status, 201, "{}", guest.text);
    let gid = guest.str("id");
    stale_if_match_is_refused(
        node,
        token,
        &format!("/guests/{gid}"),
        put.clone(),
        json!({ "email": "grace@navy.example" }),
        json!({ "email": "hopper@navy.example" }),
    )
    .await;
    stale_if_match_is_refused(
        node,
        token,
        &format!("/guests/{gid}/preferences"),
        put.clone(),
        json!({ "room": "high floor", "pillow": "", "dietary": "", "tags": [] }),
        json!({ "room": "low floor", "pillow": "", "dietary": "", "tags": [] }),
    )
    .await;

    let booked = h.booked(h.body(h.dbl(), 1, 2)).await;
    let rid = booked["id"].as_str().expect("id").to_string();
    stale_if_match_is_refused(
        node,
        token,
        &format!("/reservations/{rid}"),
        put,
        json!({ "notes": "late arrival" }),
        json!({ "notes": "arrives by train" }),
    )
    .await;

    // A delete under a stale tag is refused too, and goes ahead under the current one.
    let policy = node
        .post(
            &format!("/properties/{pid}/cancellation-policies"),
            Some(token),
            json!({ "name": "Spare", "free_until_hours": 48, "fee_kind": "none", "no_show_fee_kind": "none" }),
        )
        .await;
    assert_eq!(policy.status, 201, "{}", policy.text);
    let path = format!("/properties/{pid}/cancellation-policies/{}", policy.str("id"));
    let old = etag(&node.get(&path, Some(token)).await);
    let renamed = node
        .request_with(Method::PUT, &path, Some(token), Some(json!({ "name": "Spare 2" })), &[])
        .await;
    assert_eq!(renamed.status, 200, "a write without If-Match goes ahead: {}", renamed.text);
    let stale =
        node.request_with(Method::DELETE, &path, Some(token), None, &[("if-match", &old)]).await;
    assert_eq!((stale.status, stale.code()), (412, "precondition_failed"), "{}", stale.text);
    let current = etag(&node.get(&path, Some(token)).await);
    let deleted = node
        .request_with(Method::DELETE, &path, Some(token), None, &[("if-match", &current)])
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);

    let bad = node
        .request_with(
            Method::PUT,
            &format!("/guests/{gid}"),
            Some(token),
            Some(json!({})),
            &[("if-match", "not-quoted")],
        )
        .await;
    assert_eq!((bad.status, bad.field()), (422, "If-Match"), "{}", bad.text);
}

#[tokio::test]
async fn a_get_with_the_current_etag_in_if_none_match_is_answered_304_without_a_body() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let path = format!("/properties/{}", node.property_id);
    let first = node.get(&path, Some(&token)).await;
    let tag = etag(&first);
    let cached =
        node.request_with(Method::GET, &path, Some(&token), None, &[("if-none-match", &tag)]).await;
    assert_eq!(cached.status, 304);
    assert!(cached.text.is_empty());
    assert_eq!(cached.header("etag"), Some(tag.as_str()));
    let other = node
        .request_with(Method::GET, &path, Some(&token), None, &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!((other.status, other.body.clone()), (200, first.body));
    node.stop().await;
}

#[tokio::test]
async fn every_response_names_the_api_version_the_document_gives() {
    let node = TestNode::spawn().await;
    let doc = node.get("/openapi.json", None).await;
    let version = doc.body["info"]["version"].as_str().expect("info.version").to_string();
    assert_eq!(version, edge_node::http::contract::API_VERSION);
    for resp in [
        doc,
        node.get("/health", None).await,
        node.get("/auth/me", None).await,
        node.get("/no/such/route", None).await,
    ] {
        assert_eq!(resp.header("stayos-api-version"), Some(version.as_str()), "{}", resp.text);
    }
    let changelog = include_str!("../../../edge-node/API-CHANGELOG.md");
    assert!(
        changelog.contains(&format!("## {version}")),
        "the changelog has an entry for {version}"
    );
    node.stop().await;
}

#[tokio::test]
async fn the_document_lists_every_status_the_shared_layers_answer_and_parameters_where_they_are() {
    let node = TestNode::spawn().await;
    let doc = node.get("/openapi.json", None).await.body;
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            operations += 1;
            let name = format!("{} {path}", method.to_uppercase());
            let statuses: Vec<&str> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .map(String::as_str)
                .collect();
            let has = |s: &str| statuses.contains(&s);
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            for status in ["408", "429", "500", "503"] {
                assert!(has(status), "{name} does not document {status}: {statuses:?}");
            }
            if secured {
                assert!(has("401") && has("403"), "{name}: 401/403 {statuses:?}");
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(has(status), "{name} takes a body but does not document {status}");
                }
            }
            for p in &params {
                let (pname, place) = (p["name"].as_str().expect("name"), p["in"].as_str());
                match place {
                    Some("path") => {
                        assert!(
                            path.contains(&format!("{{{pname}}}")),
                            "{name}: {pname} is no path segment"
                        );
                        assert!(has("404") && has("422"), "{name}: a path parameter, 404/422");
                    }
                    Some("query") => {
                        assert!(!path.contains(&format!("{{{pname}}}")), "{name}: {pname}");
                        assert!(has("422"), "{name}: a query parameter, 422");
                    }
                    Some("header") if pname == "If-Match" => {
                        assert!(has("412"), "{name} takes If-Match but does not document 412");
                    }
                    other => panic!("{name}: parameter {pname} in {other:?}"),
                }
            }
            if method == "get" {
                assert!(has("304"), "{name}: 304 for If-None-Match");
            }
        }
    }
    assert!(operations > 90, "{operations} operations");
    // Named text rules are stated as their patterns, never left as a private format name.
    assert!(!doc.to_string().contains("stayos:"), "a named rule was left unresolved");
    let code = &doc["components"]["schemas"]["RoomTypeCreate"]["properties"]["code"];
    assert!(code["pattern"].as_str().is_some_and(|p| p.contains("[A-Za-z0-9_-]{1,20}")), "{code}");
    node.stop().await;
}

#[tokio::test]
async fn timestamps_are_rfc3339_utc_with_exactly_three_fractional_digits() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let property = node.get(&format!("/properties/{}", node.property_id), Some(&token)).await;
    let sessions = node.get("/auth/sessions", Some(&token)).await;
    let mut stamps = vec![property.str("created_at"), property.str("updated_at")];
    for s in sessions.body["items"].as_array().cloned().expect("sessions") {
        stamps.push(s["created_at"].as_str().expect("created_at").to_string());
    }
    for stamp in stamps {
        let b = stamp.as_bytes();
        assert_eq!(b.len(), 24, "{stamp}");
        assert!(stamp.ends_with('Z') && b[10] == b'T' && b[19] == b'.', "{stamp}");
        assert!(stamp[20..23].bytes().all(|c| c.is_ascii_digit()), "{stamp}");
        assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{stamp}");
    }
    node.stop().await;
}

#[tokio::test]
async fn a_body_must_be_a_json_object_and_an_array_never_logs_in() {
    let node = TestNode::spawn().await;
    let login = node
        .client
        .post(format!("{}/auth/login", node.url))
        .json(&json!([tests::OWNER_EMAIL, tests::OWNER_PASSWORD]))
        .send()
        .await
        .expect("send");
    let login = tests::into_resp(login).await;
    assert_eq!((login.status, login.field()), (422, "body"), "{}", login.text);
    assert!(login.body.get("access_token").is_none());

    // Nor is a list taken for a nested object: `[true]` does not mean "e-mail consent on".
    let token = node.owner_token().await;
    let guest = node
        .post("/guests", Some(&token), json!({ "first_name": "Ada", "last_name": "King" }))
        .await;
    let path = format!("/guests/{}", guest.str("id"));
    for (body, field) in [
        (json!({ "consent": [true] }), "consent"),
        (json!({ "address": ["1 Quay Street"] }), "address"),
    ] {
        let resp = node.put(&path, Some(&token), body.clone()).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{body}: {}", resp.text);
    }
    let after = node.get(&path, Some(&token)).await;
    assert_eq!(after.body["consent"]["email"], false, "nothing was written");
    node.stop().await;
}

#[tokio::test]
async fn a_wrong_type_for_an_enum_field_is_a_422_naming_it_in_plain_words() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    for role in [json!({}), json!([]), json!(7), json!("janitor")] {
        let resp = node
            .post(
                "/auth/register",
                Some(&token),
                json!({ "email": "x@grand-test.example", "name": "X", "password": tests::STAFF_PASSWORD, "role": role }),
            )
            .await;
        assert_eq!((resp.status, resp.field()), (422, "role"), "{role}: {}", resp.text);
        let message = resp.body["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("enum") && !message.contains("Role"), "{message}");
    }
    let nights = node
        .put(
            &format!("/properties/{}", node.property_id),
            Some(&token),
            json!({ "tentative_hold_hours": 48.0 }),
        )
        .await;
    assert_eq!(nights.status, 200, "48.0 is an integer: {}", nights.text);
    assert_eq!(nights.body["tentative_hold_hours"], 48);
    node.stop().await;
}

/// The 200 schema of `op`, with a `$ref` resolved against the document's components.
fn ok_schema<'a>(doc: &'a Value, op: &'a Value) -> Option<&'a Value> {
    let schema = &op["responses"]["200"]["content"]["application/json"]["schema"];
    match schema["$ref"].as_str() {
        Some(r) => doc["components"]["schemas"].get(r.trim_start_matches("#/components/schemas/")),
        None => schema.is_object().then_some(schema),
    }
}

#[tokio::test]
async fn every_list_answers_items_and_next_cursor_and_the_document_says_so() {
    let h = hotel().await;
    let (node, token) = (&h.node, h.token.as_str());
    let doc = node.get("/openapi.json", None).await.body;
    let mut lists = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let Some(schema) = item.get("get").and_then(|op| ok_schema(&doc, op)) else { continue };
        assert_ne!(schema["type"], "array", "GET {path} answers a bare array");
        if schema["properties"].get("items").is_some() {
            lists += 1;
            assert!(schema["properties"].get("next_cursor").is_some(), "GET {path}: next_cursor");
            let required = schema["required"].as_array().expect("required");
            assert!(
                required.contains(&json!("items")) && required.contains(&json!("next_cursor")),
                "GET {path}: items and next_cursor are always present"
            );
        }
    }
    assert!(lists >= 20, "{lists} lists in the document");

    let (pid, today) = (node.property_id.clone(), h.today);
    let booked = h.booked(h.body(h.dbl(), 0, 2)).await;
    let rid = booked["id"].as_str().expect("id");
    let paths = [
        "/properties".to_string(),
        format!("/properties/{pid}/room-types"),
        format!("/properties/{pid}/rooms"),
        format!("/properties/{pid}/amenities"),
        format!("/properties/{pid}/cancellation-policies"),
        format!("/properties/{pid}/rate-plans"),
        format!(
            "/properties/{pid}/rate-plans/{}/prices?from={today}&to={}",
            h.flex(),
            crate::reservations::day(today, 7)
        ),
        format!("/properties/{pid}/arrivals"),
        format!("/properties/{pid}/departures"),
        format!("/properties/{pid}/in-house"),
        format!("/properties/{pid}/housekeeping"),
        format!("/properties/{pid}/room-blocks"),
        "/guests".to_string(),
        format!("/guests/{}/documents", h.guest),
        format!("/guests/{}/duplicates", h.guest),
        "/reservations?limit=1".to_string(),
        format!("/reservations/{rid}/events"),
        "/audit?limit=2".to_string(),
        "/sync/quarantine".to_string(),
        "/auth/sessions".to_string(),
        "/auth/api-keys".to_string(),
        "/staff".to_string(),
    ];
    for path in paths {
        let resp = node.get(&path, Some(token)).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text);
        assert!(resp.body["items"].is_array(), "{path}: {}", resp.text);
        let cursor = &resp.body["next_cursor"];
        assert!(cursor.is_null() || cursor.is_string(), "{path}: next_cursor {cursor}");
    }
    // A paged list's cursor leads to the next page, and a cursor it never gave is named.
    let first = node.get("/reservations?limit=1", Some(token)).await;
    let mut seen = vec![first.body["items"][0]["id"].clone()];
    let mut cursor = first.body["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let page = node.get(&format!("/reservations?limit=1&cursor={c}"), Some(token)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(page.body["items"].as_array().expect("items").iter().cloned());
        cursor = page.body["next_cursor"].as_str().map(str::to_string);
    }
    assert!(seen.contains(&booked["id"]), "every page together holds the booking");
    for path in ["/reservations?cursor=zz", "/audit?cursor=zz", "/sync/quarantine?cursor=-1"] {
        let bad = node.get(path, Some(token)).await;
        assert_eq!((bad.status, bad.field()), (422, "cursor"), "{path}: {}", bad.text);
    }
}

#[tokio::test]
async fn what_get_serves_is_accepted_back_by_put_and_a_changed_read_only_field_is_named() {
    let h = hotel().await;
    let (node, token) = (&h.node, h.token.as_str());
    let pid = node.property_id.clone();
    let guest = node
        .post("/guests", Some(token), json!({ "first_name": "Grace", "last_name": "Hopper" }))
        .await;
    assert_eq!(guest.status, 201, "{}", guest.text);
    let booked = h.booked(h.body(h.dbl(), 1, 2)).await;
    // A checked-in stay may change only its departure, occupancy and notes; the whole of it
    // sent back unchanged is still no change.
    let in_house = h.booked(h.body(h.dbl(), 0, 2)).await;
    let in_house = in_house["id"].as_str().expect("id").to_string();
    let checked_in = h.action(&in_house, "check-in", json!({})).await;
    assert_eq!(checked_in.status, 200, "{}", checked_in.text);
    let resources = [
        format!("/properties/{pid}"),
        format!("/properties/{pid}/room-types/{}", h.dbl()),
        format!("/properties/{pid}/rooms/{}", h.inv.room_types[0].room_ids[0]),
        format!("/properties/{pid}/cancellation-policies/{}", h.inv.flexible_policy_id),
        format!("/properties/{pid}/rate-plans/{}", h.flex()),
        format!("/guests/{}", guest.str("id")),
        format!("/guests/{}/preferences", guest.str("id")),
        format!("/reservations/{}", booked["id"].as_str().expect("id")),
        format!("/reservations/{in_house}"),
    ];
    for path in resources {
        let got = node.get(&path, Some(token)).await;
        assert_eq!(got.status, 200, "{path}: {}", got.text);
        let back = node.put(&path, Some(token), got.body.clone()).await;
        assert_eq!(back.status, 200, "PUT {path} of what GET served: {}", back.text);
        let again = node.get(&path, Some(token)).await;
        assert_eq!(again.body, got.body, "{path}: sending back what was read changes nothing");
        assert_eq!(etag(&again), etag(&got), "{path}: not even its version");

        if got.body.get("id").is_some() {
            let mut forged = got.body.clone();
            forged["id"] = json!("someone-else");
            let refused = node.put(&path, Some(token), forged).await;
            assert_eq!((refused.status, refused.field()), (422, "id"), "{path}: {}", refused.text);
        }
    }
    let doc = node.get("/openapi.json", None).await.body;
    let body = &doc["paths"]["/guests/{id}"]["put"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["properties"]["id"]["readOnly"], true, "{body}");
    assert!(body["properties"]["first_name"]["readOnly"].is_null(), "{body}");
}

/// Every `""` in `value`, by its path.
fn empty_strings(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::String(s) if s.is_empty() => found.push(path.to_string()),
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                empty_strings(v, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                empty_strings(v, &format!("{path}.{k}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn no_value_is_null_never_an_empty_string_and_null_clears_a_text_field() {
    let h = hotel().await;
    let (node, token) = (&h.node, h.token.as_str());
    let pid = node.property_id.clone();
    let guest = node
        .post(
            "/guests",
            Some(token),
            json!({ "first_name": "Alan", "last_name": "Turing", "email": "alan@example.org" }),
        )
        .await;
    assert_eq!(guest.status, 201, "{}", guest.text);
    let gid = guest.str("id");
    let booked = h.booked(h.body(h.dbl(), 0, 1)).await;
    let rid = booked["id"].as_str().expect("id").to_string();
    let paths = [
        format!("/properties/{pid}"),
        format!("/properties/{pid}/room-types"),
        format!("/properties/{pid}/rooms"),
        format!("/properties/{pid}/rate-plans"),
        format!("/properties/{pid}/housekeeping"),
        format!("/properties/{pid}/arrivals"),
        format!("/guests/{gid}"),
        format!("/guests/{gid}/preferences"),
        format!("/guests/{gid}/history"),
        "/guests?q=tur".to_string(),
        format!("/reservations/{rid}"),
        "/reservations".to_string(),
        "/audit".to_string(),
        "/staff".to_string(),
    ];
    for path in &paths {
        let resp = node.get(path, Some(token)).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text);
        let mut found = Vec::new();
        empty_strings(&resp.body, "", &mut found);
        assert!(found.is_empty(), "{path} answers \"\" at {found:?}");
    }
    let g = node.get(&format!("/guests/{gid}"), Some(token)).await;
    assert_eq!(g.body["phone"], Value::Null, "a blank field is null");
    let cleared = node.put(&format!("/guests/{gid}"), Some(token), json!({ "email": null })).await;
    assert_eq!(
        (cleared.status, cleared.body["email"].clone()),
        (200, Value::Null),
        "{}",
        cleared.text
    );
    let kept = node.put(&format!("/guests/{gid}"), Some(token), json!({ "notes": "tea" })).await;
    assert_eq!(
        (kept.body["notes"].as_str(), kept.body["first_name"].as_str()),
        (Some("tea"), Some("Alan"))
    );
}

/// `schema`, with a `$ref` resolved against the document's components.
fn resolved<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")],
        None => schema,
    }
}

/// Whether `schema` (or one of its alternatives) is a closed vocabulary.
fn is_enum(doc: &Value, schema: &Value) -> bool {
    let s = resolved(doc, schema);
    s.get("enum").is_some()
        || ["oneOf", "anyOf"].iter().any(|k| {
            s[k].as_array()
                .is_some_and(|alts| alts.iter().any(|a| resolved(doc, a).get("enum").is_some()))
        })
}

#[tokio::test]
async fn every_enum_field_of_every_body_given_the_wrong_type_is_a_422_naming_it() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let doc = node.get("/openapi.json", None).await.body;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["post", "put", "patch"] {
            let Some(op) = item.get(method) else { continue };
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            let schema = resolved(&doc, body);
            let Some(properties) = schema["properties"].as_object() else { continue };
            for (field, property) in properties {
                if !is_enum(&doc, property) || property["readOnly"] == true {
                    continue;
                }
                // Bodies are read before anything is looked up, so any id will do.
                let url = path.replace(['{', '}'], "");
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                for wrong in [json!({}), json!([1]), json!(7)] {
                    let sent = json!({ field: wrong });
                    let resp =
                        node.request(m.clone(), &url, Some(&token), Some(sent.clone())).await;
                    assert_eq!(
                        (resp.status, resp.field()),
                        (422, field.as_str()),
                        "{method} {path} {sent}: {}",
                        resp.text
                    );
                    let message = resp.body["error"]["message"].as_str().unwrap_or_default();
                    assert!(!message.contains("enum "), "{method} {path}: {message}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "{checked} enum fields in request bodies");
    node.stop().await;
}
