//! Guest profiles: creating and validating them, finding them again by name, e-mail or phone,
//! duplicates and merge, preferences, identity documents, booking history, export, erasure,
//! and staying inside one's own property.

use edge_node::http::error::ApiError;
use serde_json::{Value, json};
use tests::TestNode;

async fn create(node: &TestNode, token: &str, body: Value) -> Value {
    let resp = node.post("/guests", Some(token), body).await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.body
}

async fn guest(node: &TestNode, token: &str, first: &str, last: &str) -> String {
    create(node, token, json!({ "first_name": first, "last_name": last })).await["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// Inserts a reservation row directly (the reservation API is another area's).
async fn reservation(
    node: &TestNode,
    guest_id: &str,
    status: &str,
    arrival: &str,
    departure: &str,
    total: i64,
) -> String {
    let (id, property, guest_id) = (uuid_like(), node.property_id.clone(), guest_id.to_string());
    let (status, arrival, departure) =
        (status.to_string(), arrival.to_string(), departure.to_string());
    let rid = id.clone();
    node.db()
        .write(move |tx| -> Result<_, ApiError> {
            tx.execute(
                "INSERT INTO reservations (id, property_id, status, arrival, departure, guest_id,
                    guest_name, total_minor, currency) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'Some Name', ?7, 'EUR')",
                rusqlite::params![rid, property, status, arrival, departure, guest_id, total],
            )?;
            Ok(())
        })
        .await
        .expect("insert reservation");
    id
}

/// A fresh id for rows inserted directly.
fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("0190aaaa-0000-7000-8000-{n:012}")
}

async fn sql_text(node: &TestNode, sql: &str, id: &str) -> Vec<String> {
    let (sql, id) = (sql.to_string(), id.to_string());
    node.db()
        .read(move |conn| -> Result<_, ApiError> {
            let mut stmt = conn.prepare(&sql)?;
            let n = stmt.column_count();
            Ok(stmt
                .query_row([id], |r| {
                    (0..n)
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect::<Result<Vec<_>, _>>()
                })?
                .into_iter()
                .map(|v| match v {
                    rusqlite::types::Value::Text(t) => t,
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    other => format!("{other:?}"),
                })
                .collect())
        })
        .await
        .expect("sql")
}

fn names(resp: &tests::Resp) -> Vec<String> {
    resp.body["items"]
        .as_array()
        .expect("guests")
        .iter()
        .map(|g| {
            format!(
                "{} {}",
                g["first_name"].as_str().unwrap_or(""),
                g["last_name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test]
async fn a_full_profile_is_stored_with_normalised_search_columns() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let g = create(
        &node,
        &owner,
        json!({
            "first_name": "  Anna ", "last_name": "Müller-Lüdenscheidt",
            "email": "Anna.Mueller@Example.COM", "phone": "+49 30 1234-5678",
            "address": { "line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "de" },
            "language": "de-de", "company": "ACME", "vip": 2, "notes": "likes quiet rooms",
            "birth_date": "1980-05-17", "nationality": "DE",
            "consent": { "email": true, "post": true }
        }),
    )
    .await;
    assert_eq!(g["first_name"], "Anna");
    assert_eq!(g["email"], "Anna.Mueller@Example.COM");
    assert_eq!(g["phone"], "+49 30 1234-5678");
    assert_eq!(g["address"]["country"], "DE");
    assert_eq!(g["language"], "de-DE");
    assert_eq!(g["vip"], 2);
    assert_eq!(g["consent"], json!({ "email": true, "sms": false, "phone": false, "post": true }));
    assert_eq!(g["property_id"], node.property_id.as_str());
    assert_eq!(g["possible_duplicates"], json!([]));
    let id = g["id"].as_str().expect("id");
    let stored = sql_text(
        &node,
        "SELECT search_name, search_name_first, email_norm, phone_digits FROM guests WHERE id = ?1",
        id,
    )
    .await;
    assert_eq!(
        stored,
        [
            "muller ludenscheidt anna",
            "anna muller ludenscheidt",
            "anna.mueller@example.com",
            "493012345678"
        ]
    );
    let read = node.get(&format!("/guests/{id}"), Some(&owner)).await;
    assert_eq!((read.status, read.str("company")), (200, "ACME".to_string()));

    let vip_level =
        create(&node, &owner, json!({ "first_name": "B", "last_name": "C", "vip": 1 })).await;
    assert_eq!(vip_level["vip"], 1);
    node.stop().await;
}

#[tokio::test]
async fn every_bad_field_is_refused_by_name() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let base = || json!({ "first_name": "Anna", "last_name": "Smith" });
    let with = |key: &str, value: Value| {
        let mut body = base();
        body[key] = value;
        body
    };
    let long = "x".repeat(101);
    let cases = [
        (json!({ "last_name": "Smith" }), "first_name"),
        (with("first_name", json!("  ")), "first_name"),
        (with("last_name", json!(long)), "last_name"),
        (with("email", json!("not-an-email")), "email"),
        (with("phone", json!("call me maybe")), "phone"),
        (with("phone", json!("+1 23")), "phone"),
        (with("address", json!({ "country": "Germany" })), "address.country"),
        (with("address", json!({ "postal_code": "10115!" })), "address.postal_code"),
        (with("address", json!({ "street": "x" })), "address.street"),
        (with("language", json!("english please")), "language"),
        (with("vip", json!("yes")), "vip"),
        (with("vip", json!(12)), "vip"),
        (with("vip", json!(true)), "vip"),
        (with("birth_date", json!("17.05.1980")), "birth_date"),
        (with("birth_date", json!("2999-01-01")), "birth_date"),
        (with("nationality", json!("XYZ")), "nationality"),
        (with("consent", json!({ "email": "yes" })), "consent.email"),
        (with("favourite_colour", json!("red")), "favourite_colour"),
    ];
    for (body, field) in cases {
        let resp = node.post("/guests", Some(&owner), body.clone()).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{body} → {}", resp.text);
    }
    let count = node
        .db()
        .read(|conn| -> Result<i64, ApiError> {
            Ok(conn.query_row("SELECT count(*) FROM guests", [], |r| r.get(0))?)
        })
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing half-written");

    let id = guest(&node, &owner, "Anna", "Smith").await;
    let bad = node.put(&format!("/guests/{id}"), Some(&owner), json!({ "email": "nope" })).await;
    assert_eq!((bad.status, bad.field()), (422, "email"));
    node.stop().await;
}

#[tokio::test]
async fn guests_are_found_by_name_in_either_order_and_without_accents() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    guest(&node, &owner, "John", "Smith").await;
    guest(&node, &owner, "Johanna", "Smithers").await;
    guest(&node, &owner, "Anna", "Müller").await;
    guest(&node, &owner, "Zoë", "Ångström").await;
    let search = |q: &str| {
        let path = format!("/guests?q={}", q.replace(' ', "%20"));
        let (node, owner) = (&node, owner.clone());
        async move { node.get(&path, Some(&owner)).await }
    };
    assert_eq!(names(&search("smith jo").await), ["John Smith"]);
    assert_eq!(names(&search("john sm").await), ["John Smith"]);
    assert_eq!(names(&search("SMITH").await), ["John Smith", "Johanna Smithers"]);
    assert_eq!(names(&search("jo").await), ["Johanna Smithers", "John Smith"]);
    assert_eq!(names(&search("muller").await), ["Anna Müller"]);
    assert_eq!(names(&search("M%C3%BCller").await), ["Anna Müller"]);
    assert_eq!(names(&search("angstrom zo").await), ["Zoë Ångström"]);
    assert_eq!(names(&search("nobody").await), Vec::<String>::new());
    node.stop().await;
}

#[tokio::test]
async fn guests_are_found_by_email_and_phone_prefix() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    create(&node, &owner, json!({ "first_name": "A", "last_name": "One", "email": "Ann@Example.com", "phone": "+44 20 7946 0958" })).await;
    create(&node, &owner, json!({ "first_name": "B", "last_name": "Two", "email": "bob@example.com", "phone": "+49 30 123456" })).await;
    let by_email = node.get("/guests?email=ANN@example.com", Some(&owner)).await;
    assert_eq!(names(&by_email), ["A One"]);
    let by_email_prefix = node.get("/guests?email=b", Some(&owner)).await;
    assert_eq!(names(&by_email_prefix), ["B Two"]);
    let by_phone = node.get("/guests?phone=%2B44%2020", Some(&owner)).await;
    assert_eq!(names(&by_phone), ["A One"]);
    let by_digits = node.get("/guests?phone=4930", Some(&owner)).await;
    assert_eq!(names(&by_digits), ["B Two"]);
    let both = node.get("/guests?email=a&phone=44", Some(&owner)).await;
    assert_eq!((both.status, both.field()), (422, "q"));
    let bad_limit = node.get("/guests?limit=0", Some(&owner)).await;
    assert_eq!((bad_limit.status, bad_limit.field()), (422, "limit"));
    node.stop().await;
}

#[tokio::test]
async fn search_pages_through_both_name_orders_without_repeats() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    // Three whose last name starts with "lee", two whose first name does.
    for (first, last) in
        [("Amy", "Leeds"), ("Bo", "Lee"), ("Cy", "Leeman"), ("Lee", "Brown"), ("Leela", "Adams")]
    {
        guest(&node, &owner, first, last).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/guests?q=lee&limit=2&cursor={c}"),
            None => "/guests?q=lee&limit=2".to_string(),
        };
        let page = node.get(&path, Some(&owner)).await;
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(names(&page));
        cursor = page.body["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, ["Bo Lee", "Amy Leeds", "Cy Leeman", "Lee Brown", "Leela Adams"]);
    let bad = node.get("/guests?q=lee&cursor=zz", Some(&owner)).await;
    assert_eq!((bad.status, bad.field()), (422, "cursor"));
    node.stop().await;
}

#[tokio::test]
async fn search_reads_a_page_straight_off_an_index() {
    let node = TestNode::spawn().await;
    let plans = node
        .db()
        .read(|conn| -> Result<Vec<String>, ApiError> {
            let mut out = Vec::new();
            for (col, extra) in [
                ("search_name", ""),
                ("search_name_first", " AND NOT (search_name >= ?2 AND search_name < ?3)"),
                ("email_norm", ""),
                ("phone_digits", ""),
            ] {
                let sql = format!(
                    "EXPLAIN QUERY PLAN SELECT id FROM guests INDEXED BY guests_search_{col}
                     WHERE property_id = ?1 AND {col} >= ?2 AND {col} < ?3
                       AND ({col}, id) > (?4, ?5){extra} AND merged_into = '' AND erased_at = 0
                     ORDER BY {col}, id LIMIT ?6"
                );
                let mut stmt = conn.prepare(&sql)?;
                let detail: Vec<String> = stmt
                    .query_map(rusqlite::params!["p", "a", "b", "a", "", 21], |r| {
                        r.get::<_, String>(3)
                    })?
                    .collect::<Result<_, _>>()?;
                out.push(detail.join(" | "));
            }
            Ok(out)
        })
        .await
        .expect("plans");
    for plan in plans {
        assert!(plan.contains("USING INDEX guests_search_"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "a page must not sort: {plan}");
    }
    node.stop().await;
}

#[tokio::test]
async fn likely_duplicates_are_flagged_but_the_profile_is_still_created() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let first = create(&node, &owner, json!({ "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com", "birth_date": "1990-01-02" })).await;
    let same_email = create(
        &node,
        &owner,
        json!({ "first_name": "Annie", "last_name": "Leigh", "email": "ANN@example.com" }),
    )
    .await;
    assert_eq!(same_email["possible_duplicates"][0]["id"], first["id"]);
    assert_eq!(same_email["possible_duplicates"][0]["reasons"], json!(["email"]));
    let same_name = create(
        &node,
        &owner,
        json!({ "first_name": "ann", "last_name": "LEE", "birth_date": "1990-01-02" }),
    )
    .await;
    assert_eq!(same_name["possible_duplicates"][0]["reasons"], json!(["name_and_birth_date"]));
    let other = create(&node, &owner, json!({ "first_name": "Ann", "last_name": "Lee" })).await;
    assert_eq!(other["possible_duplicates"], json!([]), "same name alone is not enough");
    let dups = node
        .get(&format!("/guests/{}/duplicates", first["id"].as_str().expect("id")), Some(&owner))
        .await;
    assert_eq!(dups.body["items"].as_array().expect("list").len(), 2, "{}", dups.text);
    node.stop().await;
}

#[tokio::test]
async fn merging_moves_reservations_documents_and_points_and_retires_the_other_profile() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let keep = create(
        &node,
        &owner,
        json!({ "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com" }),
    )
    .await;
    let other = create(&node, &owner, json!({ "first_name": "Ann", "last_name": "Lee", "phone": "+44 20 7946 0958", "company": "ACME" })).await;
    let (keep_id, other_id) = (
        keep["id"].as_str().expect("id").to_string(),
        other["id"].as_str().expect("id").to_string(),
    );
    let res =
        reservation(&node, &other_id, "checked_out", "2026-01-01", "2026-01-03", 20_000).await;
    let doc = node
        .post(&format!("/guests/{other_id}/documents"), Some(&owner), json!({ "kind": "passport", "number": "C01X00T47", "issuing_country": "GB", "expires_on": "2099-01-01" }))
        .await;
    assert_eq!(doc.status, 201, "{}", doc.text);
    for (id, points) in [(&keep_id, 100), (&other_id, 250)] {
        let adj = node
            .post(
                &format!("/guests/{id}/loyalty/adjustments"),
                Some(&owner),
                json!({ "points": points, "reason": "welcome" }),
            )
            .await;
        assert_eq!(adj.status, 201, "{}", adj.text);
    }

    let merged = node
        .post(
            &format!("/guests/{keep_id}/merge"),
            Some(&owner),
            json!({ "from_guest_id": other_id }),
        )
        .await;
    assert_eq!(merged.status, 200, "{}", merged.text);
    assert_eq!(merged.body["reservations_moved"], 1);
    assert_eq!(merged.body["documents_moved"], 1);
    assert_eq!(merged.body["guest"]["phone"], "+44 20 7946 0958", "empty fields filled");
    assert_eq!(merged.body["guest"]["company"], "ACME");
    assert_eq!(merged.body["guest"]["email"], "ann@example.com");

    let moved =
        sql_text(&node, "SELECT guest_id, guest_name FROM reservations WHERE id = ?1", &res).await;
    assert_eq!(moved, [keep_id.clone(), "Ann Lee".to_string()]);
    let history = node.get(&format!("/guests/{keep_id}/history"), Some(&owner)).await;
    assert_eq!(history.body["totals"]["stays"], 1);
    let docs = node.get(&format!("/guests/{keep_id}/documents"), Some(&owner)).await;
    assert_eq!(docs.body["items"].as_array().expect("docs").len(), 1);
    let loyalty = node.get(&format!("/guests/{keep_id}/loyalty"), Some(&owner)).await;
    assert_eq!(loyalty.body["account"]["balance"], 350);
    assert_eq!(loyalty.body["ledger"][0]["kind"], "merge");

    let gone = node.get(&format!("/guests/{other_id}"), Some(&owner)).await;
    assert_eq!((gone.status, gone.code()), (409, "guest_merged"));
    assert_eq!(gone.body["error"]["details"]["merged_into"], keep_id.as_str());
    let listed = node.get("/guests?q=lee", Some(&owner)).await;
    assert_eq!(listed.body["items"].as_array().expect("list").len(), 1);
    let again = node
        .post(
            &format!("/guests/{keep_id}/merge"),
            Some(&owner),
            json!({ "from_guest_id": other_id }),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "guest_merged"));
    let itself = node
        .post(
            &format!("/guests/{keep_id}/merge"),
            Some(&owner),
            json!({ "from_guest_id": keep_id }),
        )
        .await;
    assert_eq!((itself.status, itself.field()), (422, "from_guest_id"));
    node.stop().await;
}

#[tokio::test]
async fn preferences_round_trip_and_tags_are_limited() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = guest(&node, &owner, "Ann", "Lee").await;
    let path = format!("/guests/{id}/preferences");
    let put = node
        .put(&path, Some(&owner), json!({ "room": "high floor", "pillow": "feather", "dietary": "vegan", "tags": ["quiet", " late-checkout ", "quiet"] }))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    let got = node.get(&path, Some(&owner)).await;
    assert_eq!(
        got.body,
        json!({ "room": "high floor", "pillow": "feather", "dietary": "vegan", "tags": ["quiet", "late-checkout"] })
    );
    let too_many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let bad = node.put(&path, Some(&owner), json!({ "tags": too_many })).await;
    assert_eq!((bad.status, bad.field()), (422, "tags"));
    let long = node.put(&path, Some(&owner), json!({ "tags": ["x".repeat(41)] })).await;
    assert_eq!((long.status, long.field()), (422, "tags[0]"));
    node.stop().await;
}

#[tokio::test]
async fn document_numbers_are_masked_and_expired_documents_refused() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = guest(&node, &owner, "Ann", "Lee").await;
    let path = format!("/guests/{id}/documents");
    let doc = node
        .post(&path, Some(&owner), json!({ "kind": "passport", "number": "C01X00T47", "issuing_country": "gb", "expires_on": "2099-12-31" }))
        .await;
    assert_eq!(doc.status, 201, "{}", doc.text);
    assert_eq!(doc.str("number"), "•••••0T47");
    assert_eq!(doc.str("issuing_country"), "GB");
    assert!(!doc.text.contains("C01X00T47"));
    let list = node.get(&path, Some(&owner)).await;
    assert!(!list.text.contains("C01X00T47") && list.text.contains("•••••0T47"));
    let expired = node
        .post(&path, Some(&owner), json!({ "kind": "passport", "number": "C01X00T47", "issuing_country": "GB", "expires_on": "2001-01-01" }))
        .await;
    assert_eq!((expired.status, expired.field()), (422, "expires_on"));
    let kind = node
        .post(&path, Some(&owner), json!({ "kind": "library_card", "number": "123456", "issuing_country": "GB", "expires_on": "2099-01-01" }))
        .await;
    assert_eq!((kind.status, kind.field()), (422, "kind"));
    let reservation = node
        .post(&path, Some(&owner), json!({ "kind": "id_card", "number": "123456", "issuing_country": "GB", "expires_on": "2099-01-01", "reservation_id": "nope" }))
        .await;
    assert_eq!((reservation.status, reservation.field()), (422, "reservation_id"));
    node.stop().await;
}

#[tokio::test]
async fn history_lists_stays_with_totals() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = guest(&node, &owner, "Ann", "Lee").await;
    reservation(&node, &id, "checked_out", "2026-01-01", "2026-01-04", 30_000).await;
    reservation(&node, &id, "checked_out", "2026-02-01", "2026-02-03", 12_345).await;
    reservation(&node, &id, "confirmed", "2027-01-01", "2027-01-02", 9_000).await;
    reservation(&node, &id, "cancelled", "2026-03-01", "2026-03-02", 9_000).await;
    reservation(&node, &id, "no_show", "2026-04-01", "2026-04-02", 9_000).await;
    let h = node.get(&format!("/guests/{id}/history"), Some(&owner)).await;
    assert_eq!(h.status, 200, "{}", h.text);
    assert_eq!(
        h.body["totals"],
        json!({ "stays": 2, "nights": 5, "spend_minor": 42_345, "upcoming": 1, "in_house": 0, "cancellations": 1, "no_shows": 1 })
    );
    assert_eq!(h.body["stays"].as_array().expect("stays").len(), 5);
    assert_eq!(h.body["stays"][0]["arrival"], "2027-01-01", "newest first");

    let renamed =
        node.put(&format!("/guests/{id}"), Some(&owner), json!({ "last_name": "Lee-Park" })).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let named =
        sql_text(&node, "SELECT DISTINCT guest_name FROM reservations WHERE guest_id = ?1", &id)
            .await;
    assert_eq!(named, ["Ann Lee-Park"], "reservations carry the new name");
    node.stop().await;
}

#[tokio::test]
async fn an_export_contains_everything_stored_about_the_guest() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let g = create(&node, &owner, json!({ "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com", "consent": { "sms": true } })).await;
    let id = g["id"].as_str().expect("id");
    node.put(
        &format!("/guests/{id}/preferences"),
        Some(&owner),
        json!({ "pillow": "foam", "tags": ["quiet"] }),
    )
    .await;
    node.post(&format!("/guests/{id}/documents"), Some(&owner), json!({ "kind": "id_card", "number": "X1234567", "issuing_country": "FR", "expires_on": "2099-01-01" })).await;
    reservation(&node, id, "checked_out", "2026-01-01", "2026-01-02", 10_000).await;
    node.post(
        &format!("/guests/{id}/loyalty/adjustments"),
        Some(&owner),
        json!({ "points": 42, "reason": "sorry for the noise" }),
    )
    .await;

    let export = node.get(&format!("/guests/{id}/export"), Some(&owner)).await;
    assert_eq!(export.status, 200, "{}", export.text);
    let e = &export.body;
    assert_eq!(e["profile"]["email"], "ann@example.com");
    assert_eq!(e["profile"]["consent"]["sms"], true);
    assert_eq!(e["profile"]["preferences"]["pillow"], "foam");
    assert_eq!(e["documents"][0]["kind"], "id_card");
    assert_eq!(e["documents"][0]["number"], "•••••4567");
    assert_eq!(e["history"]["stays"][0]["total_minor"], 10_000);
    assert_eq!(e["loyalty_account"]["balance"], 42);
    assert_eq!(e["loyalty_ledger"][0]["reason"], "sorry for the noise");

    let clerk_email = "nia@grand-test.example";
    node.register(&owner, clerk_email, "front_desk").await;
    let (clerk, _) = node.tokens(clerk_email, tests::STAFF_PASSWORD).await;
    let denied = node.get(&format!("/guests/{id}/export"), Some(&clerk)).await;
    assert_eq!((denied.status, denied.code()), (403, "missing_permission"));
    node.stop().await;
}

#[tokio::test]
async fn erasure_overwrites_personal_data_in_the_rows_and_keeps_bookings() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let g = create(
        &node,
        &owner,
        json!({ "first_name": "Ann", "last_name": "Lee", "email": "ann@example.com", "phone": "+44 20 7946 0958",
                "address": { "line1": "1 Road", "city": "Leeds", "country": "GB" }, "birth_date": "1990-01-02",
                "notes": "allergic to cats", "consent": { "email": true } }),
    )
    .await;
    let id = g["id"].as_str().expect("id").to_string();
    let res = reservation(&node, &id, "checked_out", "2026-01-01", "2026-01-02", 10_000).await;
    node.post(&format!("/guests/{id}/documents"), Some(&owner), json!({ "kind": "passport", "number": "C01X00T47", "issuing_country": "GB", "expires_on": "2099-01-01" })).await;

    let erased = node.post(&format!("/guests/{id}/erase"), Some(&owner), json!({})).await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    assert_eq!(erased.body["newly_erased"], true);

    let row = sql_text(
        &node,
        "SELECT first_name, last_name, email, email_norm, phone, phone_digits, address_line1, city,
                country, birth_date, notes, search_name, consent_email, erased_at > 0
         FROM guests WHERE id = ?1",
        &id,
    )
    .await;
    assert_eq!(row, ["Erased", "Guest", "", "", "", "", "", "", "", "", "", "", "0", "1"]);
    let doc = sql_text(
        &node,
        "SELECT number, issuing_country, expires_on FROM guest_documents WHERE guest_id = ?1",
        &id,
    )
    .await;
    assert_eq!(doc, ["", "", ""]);
    let booking =
        sql_text(&node, "SELECT guest_name, total_minor FROM reservations WHERE id = ?1", &res)
            .await;
    assert_eq!(booking, ["Erased guest", "10000"]);

    let read = node.get(&format!("/guests/{id}"), Some(&owner)).await;
    assert_eq!(
        (read.status, read.body["erased"].clone(), read.str("email")),
        (200, json!(true), String::new())
    );
    let search = node.get("/guests?q=lee", Some(&owner)).await;
    assert_eq!(names(&search), Vec::<String>::new());
    let by_erased_name = node.get("/guests?q=erased", Some(&owner)).await;
    assert_eq!(names(&by_erased_name), Vec::<String>::new());
    let edit =
        node.put(&format!("/guests/{id}"), Some(&owner), json!({ "first_name": "Ann" })).await;
    assert_eq!((edit.status, edit.code()), (409, "guest_erased"));
    let again = node.post(&format!("/guests/{id}/erase"), Some(&owner), json!({})).await;
    assert_eq!((again.status, again.body["newly_erased"].clone()), (200, json!(false)));

    let audit = node.get("/audit?event=guest_erased", Some(&owner)).await;
    assert_eq!(audit.body["items"].as_array().expect("entries").len(), 1);
    assert!(!audit.text.contains("ann@example.com") && !audit.text.contains("Lee"));
    node.stop().await;
}

#[tokio::test]
async fn guests_of_other_properties_open_by_id_but_list_only_at_their_own_property() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    // A profile from another property of the chain, as sync brings it to this node.
    let foreign = uuid_like();
    let foreign_id = foreign.clone();
    node.db()
        .write(move |tx| -> Result<_, ApiError> {
            tx.execute(
                "INSERT INTO guests (id, property_id, first_name, last_name, search_name, search_name_first)
                 VALUES (?1, 'another-property', 'Far', 'Away', 'away far', 'far away')",
                [&foreign_id],
            )?;
            Ok(())
        })
        .await
        .expect("insert");
    // Guest profiles are chain-level records (DESIGN.md): any property's staff with the
    // guest permission reads and edits them by id — this used to be 403 when a profile
    // belonged to one property only. The profile keeps its home property.
    let read = node.get(&format!("/guests/{foreign}"), Some(&owner)).await;
    assert_eq!(read.status, 200, "{}", read.text);
    let edit = node.put(&format!("/guests/{foreign}"), Some(&owner), json!({ "notes": "x" })).await;
    assert_eq!(edit.status, 200, "{}", edit.text);
    assert_eq!(edit.body["property_id"], "another-property");
    assert_eq!(edit.body["notes"], "x");
    let history = node.get(&format!("/guests/{foreign}/history"), Some(&owner)).await;
    assert_eq!(history.status, 200, "{}", history.text);
    let loyalty = node.get(&format!("/guests/{foreign}/loyalty"), Some(&owner)).await;
    assert_eq!(loyalty.status, 200, "{}", loyalty.text);
    // Listing, search and creation stay per property.
    for resp in [
        node.get("/guests?property_id=another-property", Some(&owner)).await,
        node.post(
            "/guests",
            Some(&owner),
            json!({ "property_id": "another-property", "first_name": "A", "last_name": "B" }),
        )
        .await,
    ] {
        assert_eq!((resp.status, resp.code()), (404, "not_found"), "{}", resp.text);
    }
    let mine = node.get("/guests?q=away", Some(&owner)).await;
    assert_eq!(names(&mine), Vec::<String>::new(), "not listed at my property");
    let missing = node.get(&format!("/guests/{}", uuid_like()), Some(&owner)).await;
    assert_eq!(missing.status, 404);

    node.register(&owner, "hk@grand-test.example", "housekeeping").await;
    let (hk, _) = node.tokens("hk@grand-test.example", tests::STAFF_PASSWORD).await;
    let denied = node.get("/guests", Some(&hk)).await;
    assert_eq!((denied.status, denied.code()), (403, "missing_permission"));
    let anonymous = node.get("/guests", None).await;
    assert_eq!(anonymous.status, 401);
    node.stop().await;
}

#[tokio::test]
async fn document_numbers_stay_on_the_node_and_only_their_masked_form_replicates() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let id = guest(&node, &owner, "Ann", "Lee").await;
    let doc = node
        .post(&format!("/guests/{id}/documents"), Some(&owner), json!({ "kind": "passport", "number": "C01X00T47", "issuing_country": "GB", "expires_on": "2099-12-31" }))
        .await;
    assert_eq!(doc.status, 201, "{}", doc.text);
    let doc_id = doc.str("id");
    let replicated =
        sql_text(&node, "SELECT number FROM guest_documents WHERE id = ?1", &doc_id).await;
    assert_eq!(replicated, ["•••••0T47"], "the chain-scope row holds the masked form");
    let kept = sql_text(
        &node,
        "SELECT number FROM guest_document_numbers WHERE document_id = ?1",
        &doc_id,
    )
    .await;
    assert_eq!(kept, ["C01X00T47"], "the number in full stays on this node");
    assert!(edge_node::db::LOCAL_TABLES.contains(&"guest_document_numbers"));
    let changes = node
        .db()
        .read(|conn| crdt::changes_since(conn, 0, None).map_err(edge_node::db::DbError::from))
        .await
        .expect("changes");
    assert!(changes.iter().all(|c| c.table != "guest_document_numbers"));
    assert!(!format!("{changes:?}").contains("C01X00T47"), "no change carries the number");

    let erased = node.post(&format!("/guests/{id}/erase"), Some(&owner), json!({})).await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    let count = sql_text(
        &node,
        "SELECT count(*) FROM guest_document_numbers WHERE document_id = ?1",
        &doc_id,
    )
    .await;
    assert_eq!(count, ["0"], "erasure forgets the number");
    node.stop().await;
}

#[tokio::test]
async fn clear_numbers_recorded_before_are_moved_home_at_start_and_others_left_to_their_node() {
    let mut node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let mine = guest(&node, &owner, "Ann", "Lee").await;
    let (foreign, mine_id) = (uuid_like(), mine.clone());
    let foreign_id = foreign.clone();
    // As a node older than the number table wrote them: numbers in clear in the replicated
    // rows, for a guest of this property and one first seen at another property.
    node.db()
        .write(move |tx| -> Result<_, ApiError> {
            tx.execute(
                "INSERT INTO guests (id, property_id, first_name, last_name)
                 VALUES (?1, 'another-property', 'Far', 'Away')",
                [&foreign_id],
            )?;
            for (doc, guest, number) in
                [("doc-mine", &mine_id, "X1234567"), ("doc-theirs", &foreign_id, "Y7654321")]
            {
                tx.execute(
                    "INSERT INTO guest_documents (id, guest_id, kind, number, issuing_country,
                        expires_on) VALUES (?1, ?2, 'id_card', ?3, 'FR', '2099-01-01')",
                    [doc, guest, number],
                )?;
            }
            Ok(())
        })
        .await
        .expect("old rows");
    node.restart(|_| {}).await;
    let owner = node.owner_token().await;
    let number = |doc: &'static str| {
        let node = &node;
        async move {
            (
                sql_text(node, "SELECT number FROM guest_documents WHERE id = ?1", doc).await,
                sql_text(
                    node,
                    "SELECT count(*) FROM guest_document_numbers WHERE document_id = ?1",
                    doc,
                )
                .await,
            )
        }
    };
    assert_eq!(number("doc-mine").await, (vec!["•••••4567".to_string()], vec!["1".to_string()]));
    let kept = sql_text(
        &node,
        "SELECT number FROM guest_document_numbers WHERE document_id = ?1",
        "doc-mine",
    )
    .await;
    assert_eq!(kept, ["X1234567"], "nothing is lost");
    // Another property's document is its own node's to move; here it is only shown masked.
    assert_eq!(number("doc-theirs").await, (vec!["Y7654321".to_string()], vec!["0".to_string()]));
    let shown = node.get(&format!("/guests/{foreign}/documents"), Some(&owner)).await;
    assert_eq!(shown.body["items"][0]["number"], "•••••4321", "{}", shown.text);
    node.stop().await;
}

/// A second property on the test node, a manager of the first one only, and a guest of the
/// first property with a stay at each.
async fn two_properties(node: &TestNode, owner: &str) -> (String, String, String) {
    let created = node
        .post(
            "/properties",
            Some(owner),
            json!({ "name": "Second House", "timezone": "Europe/Paris", "currency": "EUR" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let second = created.str("id");
    let registered = node
        .post(
            "/auth/register",
            Some(owner),
            json!({ "email": "max@grand-test.example", "name": "Max Manager",
                    "password": tests::STAFF_PASSWORD, "role": "manager",
                    "properties": [node.property_id] }),
        )
        .await;
    assert_eq!(registered.status, 201, "{}", registered.text);
    let (manager, _) = node.tokens("max@grand-test.example", tests::STAFF_PASSWORD).await;
    let id = guest(node, &manager, "Ann", "Lee").await;
    (second, manager, id)
}

#[tokio::test]
async fn another_propertys_stays_are_shown_without_amounts_or_codes() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let (second, manager, id) = two_properties(&node, &owner).await;
    reservation(&node, &id, "checked_out", "2026-01-01", "2026-01-03", 20_000).await;
    let theirs = reservation(&node, &id, "checked_out", "2026-02-01", "2026-02-02", 55_555).await;
    let (rid, property) = (theirs.clone(), second.clone());
    node.db()
        .write(move |tx| -> Result<_, ApiError> {
            tx.execute(
                "UPDATE reservations SET property_id = ?2, confirmation_code = 'SECRET1'
                 WHERE id = ?1",
                [&rid, &property],
            )?;
            Ok(())
        })
        .await
        .expect("move the stay");

    let h = node.get(&format!("/guests/{id}/history"), Some(&manager)).await;
    assert_eq!(h.status, 200, "{}", h.text);
    let stays = h.body["stays"].as_array().expect("stays");
    let other = stays.iter().find(|s| s["property_id"] == json!(second)).expect("their stay");
    assert_eq!((&other["total_minor"], &other["confirmation_code"]), (&json!(null), &json!(null)));
    assert_eq!(other["arrival"], "2026-02-01", "the stay itself is shown");
    let own = stays.iter().find(|s| s["property_id"] == json!(node.property_id)).expect("own");
    assert_eq!(own["total_minor"], 20_000);
    assert_eq!(h.body["totals"]["stays"], 2);
    assert_eq!(h.body["totals"]["spend_minor"], 20_000, "only amounts the caller may see");
    assert!(!h.text.contains("55555") && !h.text.contains("SECRET1"));

    let full = node.get(&format!("/guests/{id}/history"), Some(&owner)).await;
    assert_eq!(full.body["totals"]["spend_minor"], 75_555, "owners act for the chain");
    assert!(full.text.contains("SECRET1"));
    node.stop().await;
}

#[tokio::test]
async fn another_propertys_guest_is_exported_erased_or_credited_only_with_the_chain_permission() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let (_, manager, _) = two_properties(&node, &owner).await;
    // A profile first seen at another property of the chain, as sync brings it.
    let foreign = uuid_like();
    let foreign_id = foreign.clone();
    node.db()
        .write(move |tx| -> Result<_, ApiError> {
            tx.execute(
                "INSERT INTO guests (id, property_id, first_name, last_name)
                 VALUES (?1, 'another-property', 'Far', 'Away')",
                [&foreign_id],
            )?;
            Ok(())
        })
        .await
        .expect("insert");
    let adjust = json!({ "points": 500, "reason": "goodwill" });
    let export = format!("/guests/{foreign}/export");
    let erase = format!("/guests/{foreign}/erase");
    let points = format!("/guests/{foreign}/loyalty/adjustments");
    for resp in [
        node.get(&export, Some(&manager)).await,
        node.post(&erase, Some(&manager), json!({})).await,
        node.post(&points, Some(&manager), adjust.clone()).await,
    ] {
        assert_eq!((resp.status, resp.code()), (403, "missing_permission"), "{}", resp.text);
        assert_eq!(resp.body["error"]["details"]["permission"], "guest.chain");
    }
    let read = node.get(&format!("/guests/{foreign}"), Some(&manager)).await;
    assert_eq!((read.status, read.body["erased"].clone()), (200, json!(false)), "nothing done");

    assert_eq!(node.post(&points, Some(&owner), adjust).await.status, 201);
    assert_eq!(node.get(&export, Some(&owner)).await.status, 200);
    assert_eq!(node.post(&erase, Some(&owner), json!({})).await.status, 200);
    for event in ["loyalty_adjusted", "guest_exported", "guest_erased"] {
        let audit = node.get(&format!("/audit?event={event}"), Some(&owner)).await;
        let entry = &audit.body["items"][0];
        assert_eq!(entry["subject_id"], json!(foreign), "{event}: {}", audit.text);
        assert_eq!(entry["details"]["chain"], true, "{event}");
        assert_eq!(entry["details"]["guest_property_id"], "another-property", "{event}");
        assert_ne!(entry["property_id"], "another-property", "{event}: filed where it was done");
    }
    node.stop().await;
}
