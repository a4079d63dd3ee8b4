//! Reservations end to end: booking with prices and taxes, every bad input named, restrictions,
//! no availability and the waitlist, group bookings all or none, every state action allowed
//! and refused, fees, check-in and check-out with rooms, end of day, lists and the timeline.
//! After each test the inventory invariants hold: sold counters equal the nights held, and
//! a reservation holds rows exactly while it is tentative, confirmed, checked in or out.

use edge_node::db::DbError;
use jiff::civil::Date;
use serde_json::{Value, json};
use tests::{InventorySpec, Resp, SeededInventory, TestNode, TypeSpec};

pub(crate) struct Hotel {
    pub node: TestNode,
    pub token: String,
    pub inv: SeededInventory,
    pub today: Date,
    pub guest: String,
}

pub(crate) fn day(from: Date, n: i64) -> String {
    from.checked_add(jiff::Span::new().days(n)).expect("date").to_string()
}

pub(crate) async fn hotel() -> Hotel {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let inv = node.seed_small_hotel().await;
    finish(node, token, inv).await
}

pub(crate) async fn finish(node: TestNode, token: String, inv: SeededInventory) -> Hotel {
    let today = node.business_date().await;
    let guest = insert_guest(&node, "Ada", "Lovelace").await;
    Hotel { node, token, inv, today, guest }
}

/// A guest profile written straight into the database (independent of the guest routes).
pub(crate) async fn insert_guest(node: &TestNode, first: &str, last: &str) -> String {
    // Unique per property: guest profiles are chain-level, so two hotels syncing with one hub
    // must not share an id.
    let tail = &node.property_id[node.property_id.len().saturating_sub(12)..];
    let id = format!("guest-{first}-{last}-{tail}").to_lowercase();
    let (gid, p, f, l) =
        (id.clone(), node.property_id.clone(), first.to_string(), last.to_string());
    node.db()
        .write(move |tx| {
            tx.execute(
                "INSERT INTO guests (id, property_id, first_name, last_name) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![gid, p, f, l],
            )
            .map_err(DbError::from)
        })
        .await
        .expect("guest");
    id
}

pub(crate) async fn sql(node: &TestNode, statement: &str) {
    let s = statement.to_string();
    node.db().write(move |tx| tx.execute_batch(&s).map_err(DbError::from)).await.expect("sql");
}

pub(crate) async fn count(node: &TestNode, query: &str) -> i64 {
    let q = query.to_string();
    node.db()
        .read(move |c| c.query_row(&q, [], |r| r.get::<_, i64>(0)).map_err(DbError::from))
        .await
        .expect("count")
}

/// The inventory invariants of the brief, checked over the whole database.
pub(crate) async fn assert_invariants(node: &TestNode) {
    let counters_off = count(
        node,
        "SELECT COUNT(*) FROM room_type_nights t WHERE t.sold != (SELECT COUNT(*) FROM
           reservation_nights n WHERE n.room_type_id = t.room_type_id AND n.night = t.night)",
    )
    .await;
    assert_eq!(counters_off, 0, "sold counters differ from the nights held");
    let stray = count(
        node,
        "SELECT COUNT(*) FROM reservation_nights n JOIN reservations r ON r.id = n.reservation_id
         WHERE r.status NOT IN ('tentative', 'confirmed', 'checked_in', 'checked_out')",
    )
    .await;
    assert_eq!(stray, 0, "a cancelled, no-show or waitlisted reservation holds nights");
    let wrong_length = count(
        node,
        "SELECT COUNT(*) FROM reservations r WHERE r.status IN ('tentative', 'confirmed', 'checked_in')
           AND (SELECT COUNT(*) FROM reservation_nights n WHERE n.reservation_id = r.id)
               != CAST(julianday(r.departure) - julianday(r.arrival) AS INTEGER)",
    )
    .await;
    assert_eq!(wrong_length, 0, "a reservation holds a different number of nights than its stay");
    let room_mismatch = count(
        node,
        "SELECT COUNT(*) FROM room_nights m LEFT JOIN reservation_nights n
           ON n.reservation_id = m.reservation_id AND n.night = m.night
         WHERE n.room_id IS NULL OR n.room_id != m.room_id",
    )
    .await;
    assert_eq!(room_mismatch, 0, "room-nights and reservation nights disagree");
}

impl Hotel {
    pub fn dbl(&self) -> &str {
        &self.inv.room_types[0].id
    }
    pub fn ste(&self) -> &str {
        &self.inv.room_types[1].id
    }
    pub fn flex(&self) -> &str {
        &self.inv.flexible_rate_id
    }

    pub fn body(&self, room_type: &str, from: i64, nights: i64) -> Value {
        json!({
            "property_id": self.node.property_id,
            "room_type_id": room_type,
            "rate_plan_id": self.flex(),
            "arrival": day(self.today, from),
            "departure": day(self.today, from + nights),
            "adults": 2,
            "guest_id": self.guest,
        })
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.node.post(path, Some(&self.token), body).await
    }

    pub async fn book(&self, body: Value) -> Resp {
        self.post("/reservations", body).await
    }

    /// Books and asserts 201; returns the reservation.
    pub async fn booked(&self, body: Value) -> Value {
        let r = self.book(body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body
    }

    pub async fn action(&self, id: &str, action: &str, body: Value) -> Resp {
        self.post(&format!("/reservations/{id}/{action}"), body).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.node.get(path, Some(&self.token)).await
    }
}

fn with(mut body: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            body.as_object_mut().expect("object").remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

#[tokio::test]
async fn a_booking_is_confirmed_with_a_short_code_and_vat_included_city_tax_on_top() {
    let h = hotel().await;
    let r = h.booked(h.body(h.dbl(), 0, 2)).await;
    assert_eq!(r["status"], "confirmed");
    let code = r["confirmation_code"].as_str().expect("code");
    assert_eq!(code.len(), 8);
    assert!(code.chars().all(|c| "ACDEFGHJKMNPQRTUVWXY34679".contains(c)), "{code}");
    assert_eq!(r["guest_name"], "Ada Lovelace");
    let p = &r["price"];
    assert_eq!(
        p["nights"],
        json!([
            { "night": day(h.today, 0), "price_minor": 10_000 },
            { "night": day(h.today, 1), "price_minor": 10_000 },
        ])
    );
    // 20000 × 1000 / 11000 = 1818.18 → 1818 included; city tax 2.50 × 2 adults × 2 nights.
    assert_eq!((p["room_minor"].as_i64(), p["vat_minor"].as_i64()), (Some(20_000), Some(1_818)));
    assert_eq!(
        (p["city_tax_minor"].as_i64(), p["total_minor"].as_i64()),
        (Some(1_000), Some(21_000))
    );
    let got = h.get(&format!("/reservations/{}", r["id"].as_str().expect("id"))).await;
    assert_eq!(got.body["price"], *p);
    let audited = count(
        &h.node,
        &format!(
            "SELECT COUNT(*) FROM audit_log WHERE event = 'reservation_created' AND subject_id = '{}'",
            r["id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(audited, 1);
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn extra_persons_are_priced_and_exclusive_vat_is_added_on_top() {
    let h = hotel().await;
    // Suite: base 2, 3 adults and 1 child → 250.00 + 30.00 + 15.00 a night.
    let body = with(h.body(h.ste(), 0, 1), json!({ "adults": 3, "children": 1 }));
    let r = h.booked(body.clone()).await;
    assert_eq!(r["price"]["room_minor"], 29_500);
    assert_eq!(r["price"]["city_tax_minor"], 750, "children pay no city tax by default");
    h.action(r["id"].as_str().expect("id"), "cancel", json!({})).await;

    sql(&h.node, "UPDATE properties SET vat_inclusive = 0, city_tax_children = 1").await;
    let r = h.booked(body).await;
    // 29500 × 1000 / 10000 = 2950 on top; city tax for 4 persons.
    assert_eq!(r["price"]["vat_minor"], 2_950);
    assert_eq!(r["price"]["city_tax_minor"], 1_000);
    assert_eq!(r["price"]["total_minor"], 29_500 + 2_950 + 1_000);
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn every_bad_input_is_refused_naming_the_field_and_nothing_is_written() {
    let h = hotel().await;
    let b = h.body(h.dbl(), 1, 2);
    let cases: Vec<(Value, &str)> = vec![
        (with(b.clone(), json!({ "room_type_id": null })), "room_type_id"),
        (with(b.clone(), json!({ "rate_plan_id": null })), "rate_plan_id"),
        (with(b.clone(), json!({ "arrival": "2026-13-01" })), "arrival"),
        (with(b.clone(), json!({ "arrival": day(h.today, -1) })), "arrival"),
        (with(b.clone(), json!({ "departure": day(h.today, 1) })), "departure"),
        (with(b.clone(), json!({ "departure": day(h.today, 367) })), "departure"),
        (with(b.clone(), json!({ "adults": 3 })), "adults"),
        (with(b.clone(), json!({ "adults": 0 })), "adults"),
        (with(b.clone(), json!({ "children": 2 })), "children"),
        (with(b.clone(), json!({ "adults": "two" })), "adults"),
        (with(b.clone(), json!({ "room_type_id": "nope" })), "room_type_id"),
        (with(b.clone(), json!({ "rate_plan_id": "nope" })), "rate_plan_id"),
        (with(b.clone(), json!({ "guest_id": null })), "guest_id"),
        (with(b.clone(), json!({ "guest_id": "nobody" })), "guest_id"),
        (with(b.clone(), json!({ "colour": "blue" })), "colour"),
        (with(b.clone(), json!({ "rooms": [] })), "room_type_id"),
    ];
    for (body, field) in cases {
        let r = h.book(body.clone()).await;
        assert_eq!((r.status, r.field()), (422, field), "{body}: {}", r.text);
    }
    let other = with(b.clone(), json!({ "property_id": "someone-elses" }));
    let r = h.book(other).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
    assert_eq!(count(&h.node, "SELECT COUNT(*) FROM reservations").await, 0);
    assert_eq!(count(&h.node, "SELECT COUNT(*) FROM room_type_nights WHERE sold > 0").await, 0);
}

#[tokio::test]
async fn a_night_without_a_price_names_the_rate_plan_and_the_night() {
    let h = hotel().await;
    let night = day(h.today, 2);
    sql(
        &h.node,
        &format!(
            "DELETE FROM rate_prices WHERE room_type_id = '{}' AND night = '{night}'",
            h.dbl()
        ),
    )
    .await;
    let r = h.book(h.body(h.dbl(), 1, 3)).await;
    assert_eq!((r.status, r.field()), (422, "rate_plan_id"), "{}", r.text);
    assert_eq!(r.body["error"]["details"]["night"], night);
}

#[tokio::test]
async fn restrictions_refuse_the_stay_naming_the_restriction_and_night() {
    let h = hotel().await;
    let set = |column: &str, value: i64, n: i64| {
        format!(
            "UPDATE rate_prices SET {column} = {value} WHERE room_type_id = '{}' AND night = '{}'",
            h.dbl(),
            day(h.today, n)
        )
    };
    let cases = [
        (set("stop_sell", 1, 3), "stop_sell", 3),
        (set("min_stay", 4, 1), "min_stay", 1),
        (set("max_stay", 2, 1), "max_stay", 1),
        (set("closed_to_arrival", 1, 1), "closed_to_arrival", 1),
        (set("closed_to_departure", 1, 4), "closed_to_departure", 4),
    ];
    for (statement, restriction, n) in cases {
        sql(&h.node, &statement).await;
        let r = h.book(h.body(h.dbl(), 1, 3)).await;
        assert_eq!((r.status, r.code()), (409, "restricted"), "{restriction}: {}", r.text);
        assert_eq!(r.body["error"]["details"]["restriction"], restriction);
        assert_eq!(r.body["error"]["details"]["night"], day(h.today, n));
        sql(
            &h.node,
            "UPDATE rate_prices SET stop_sell = 0, min_stay = 0, max_stay = 0,
               closed_to_arrival = 0, closed_to_departure = 0",
        )
        .await;
    }
    h.booked(h.body(h.dbl(), 1, 3)).await;
}

#[tokio::test]
async fn a_full_type_is_refused_naming_the_nights_or_taken_on_the_waitlist() {
    let h = hotel().await;
    h.booked(h.body(h.ste(), 2, 1)).await;
    let r = h.book(h.body(h.ste(), 1, 3)).await;
    assert_eq!((r.status, r.code()), (409, "no_availability"), "{}", r.text);
    assert_eq!(r.body["error"]["details"]["nights"], json!([day(h.today, 2)]));
    assert_eq!(r.body["error"]["details"]["room_type_id"], h.ste());

    let w = h.booked(with(h.body(h.ste(), 1, 3), json!({ "waitlist_if_full": true }))).await;
    assert_eq!(w["status"], "waitlisted");
    let held: i64 = count(
        &h.node,
        &format!(
            "SELECT COUNT(*) FROM reservation_nights WHERE reservation_id = '{}'",
            w["id"].as_str().expect("id")
        ),
    )
    .await;
    assert_eq!(held, 0);
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn cancelling_promotes_the_oldest_waitlisted_reservation_that_fits() {
    let h = hotel().await;
    let first = h.booked(h.body(h.ste(), 1, 2)).await;
    let wait = with(h.body(h.ste(), 1, 2), json!({ "waitlist_if_full": true }));
    let older = h.booked(wait.clone()).await;
    let younger = h.booked(wait).await;
    let cancelled = h
        .action(first["id"].as_str().expect("id"), "cancel", json!({ "reason": "plans changed" }))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.body["status"], "cancelled");

    let older = h.get(&format!("/reservations/{}", older["id"].as_str().expect("id"))).await;
    assert_eq!(older.body["status"], "tentative");
    assert!(older.body["hold_expires_at"].is_string());
    assert_eq!(older.body["price"]["nights"].as_array().map(Vec::len), Some(2));
    let younger = h.get(&format!("/reservations/{}", younger["id"].as_str().expect("id"))).await;
    assert_eq!(younger.body["status"], "waitlisted");
    let events = h.get(&format!("/reservations/{}/events", older.str("id"))).await;
    let kinds: Vec<&str> = events.body["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["created", "promoted_from_waitlist"]);
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn a_group_is_booked_all_or_none() {
    let h = hotel().await;
    let room = |t: &str, adults: i64| json!({ "room_type_id": t, "rate_plan_id": h.flex(), "adults": adults });
    let group = |rooms: Value| {
        json!({
            "property_id": h.node.property_id,
            "arrival": day(h.today, 1),
            "departure": day(h.today, 3),
            "guest_id": h.guest,
            "rooms": rooms,
        })
    };
    // One suite too many: nothing is written.
    let r = h.book(group(json!([room(h.dbl(), 2), room(h.ste(), 2), room(h.ste(), 1)]))).await;
    assert_eq!((r.status, r.code()), (409, "no_availability"), "{}", r.text);
    assert_eq!(count(&h.node, "SELECT COUNT(*) FROM reservations").await, 0);
    assert_eq!(count(&h.node, "SELECT COALESCE(SUM(sold), 0) FROM room_type_nights").await, 0);
    // A bad room names its index.
    let r = h.book(group(json!([room(h.dbl(), 2), room(h.dbl(), 5)]))).await;
    assert_eq!((r.status, r.field()), (422, "rooms[1].adults"), "{}", r.text);

    let r = h.book(group(json!([room(h.dbl(), 2), room(h.dbl(), 1), room(h.ste(), 2)]))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let members = r.body["reservations"].as_array().expect("reservations");
    assert_eq!(members.len(), 3);
    assert!(
        members.iter().all(|m| m["group_id"] == r.body["group_id"] && m["status"] == "confirmed")
    );
    let full = h.book(h.body(h.dbl(), 2, 1)).await;
    assert_eq!(full.code(), "no_availability");
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn a_tentative_booking_holds_until_confirmed_or_its_hold_expires() {
    let h = hotel().await;
    let t = h.booked(with(h.body(h.ste(), 1, 1), json!({ "tentative": true }))).await;
    assert_eq!(t["status"], "tentative");
    assert!(t["hold_expires_at"].is_string(), "{t}");
    let c = h.action(t["id"].as_str().expect("id"), "confirm", json!({})).await;
    assert_eq!((c.status, c.str("status")), (200, "confirmed".to_string()), "{}", c.text);
    assert!(c.body["hold_expires_at"].is_null());

    let t2 = h.booked(with(h.body(h.ste(), 3, 1), json!({ "tentative": true }))).await;
    let later = edge_node::time::now_ms() + 25 * 3_600_000;
    let expired =
        edge_node::reservation::waitlist::expire_holds(h.node.db(), later).await.expect("expire");
    assert_eq!(expired, vec![t2["id"].as_str().expect("id").to_string()]);
    let after = h.get(&format!("/reservations/{}", t2["id"].as_str().expect("id"))).await;
    assert_eq!(after.str("status"), "cancelled");
    let events = h.get(&format!("/reservations/{}/events", after.str("id"))).await;
    assert_eq!(events.body["items"][1]["details"]["reason"], "hold_expired");
    assert_invariants(&h.node).await;
}

/// A bigger hotel for the state table: 60 doubles, and a type with no rooms (always full).
async fn big_hotel() -> Hotel {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let today = node.business_date().await;
    let mut spec = InventorySpec::small(today);
    spec.nights = 30;
    spec.types[0].rooms = 60;
    spec.types.push(TypeSpec {
        code: "NON",
        name: "Sold out",
        rooms: 0,
        first_number: 900,
        base_occupancy: 2,
        max_adults: 2,
        max_children: 0,
        price_minor: 5_000,
    });
    let inv = node.seed_inventory(spec).await;
    finish(node, token, inv).await
}

/// A reservation arriving today brought to `status` through the API.
async fn in_state(h: &Hotel, status: &str) -> String {
    let base = h.body(h.dbl(), 0, 1);
    let body = match status {
        "tentative" => with(base, json!({ "tentative": true })),
        "waitlisted" => {
            with(base, json!({ "room_type_id": h.inv.room_types[2].id, "waitlist_if_full": true }))
        }
        _ => base,
    };
    let r = h.booked(body).await;
    let id = r["id"].as_str().expect("id").to_string();
    let step = |a: &'static str| a;
    let path: &[&str] = match status {
        "checked_in" => &[step("check-in")],
        "checked_out" => &["check-in", "check-out"],
        "cancelled" => &["cancel"],
        "no_show" => &["no-show"],
        _ => &[],
    };
    for a in path {
        let r = h.action(&id, a, json!({})).await;
        assert_eq!(r.status, 200, "{status} via {a}: {}", r.text);
    }
    assert_eq!(h.get(&format!("/reservations/{id}")).await.str("status"), status);
    id
}

#[tokio::test]
async fn every_action_is_allowed_or_refused_by_state() {
    let h = big_hotel().await;
    let allowed: &[(&str, &[&str])] = &[
        (
            "tentative",
            &["confirm", "cancel", "no-show", "assign-room", "unassign-room", "update", "delete"],
        ),
        ("confirmed", &["cancel", "check-in", "no-show", "assign-room", "unassign-room", "update"]),
        ("checked_in", &["check-out", "reverse-check-in", "assign-room", "update"]),
        ("checked_out", &["update"]),
        ("cancelled", &["update"]),
        ("no_show", &["update"]),
        ("waitlisted", &["cancel", "update", "delete"]),
    ];
    let actions = [
        "confirm",
        "cancel",
        "check-in",
        "check-out",
        "no-show",
        "reverse-check-in",
        "assign-room",
        "unassign-room",
        "update",
        "delete",
    ];
    let rooms = &h.inv.room_types[0].room_ids;
    let mut next_room = rooms.len();
    for (status, ok) in allowed {
        for action in actions {
            let id = in_state(&h, status).await;
            let r = match action {
                "update" => {
                    h.node
                        .put(
                            &format!("/reservations/{id}"),
                            Some(&h.token),
                            json!({ "notes": "late" }),
                        )
                        .await
                }
                "delete" => h.node.delete(&format!("/reservations/{id}"), Some(&h.token)).await,
                "assign-room" => {
                    next_room -= 1;
                    h.action(&id, action, json!({ "room_id": rooms[next_room] })).await
                }
                _ => h.action(&id, action, json!({})).await,
            };
            if ok.contains(&action) {
                assert!(r.status == 200 || r.status == 204, "{status} {action}: {}", r.text);
            } else {
                assert_eq!(
                    (r.status, r.code()),
                    (409, "invalid_state"),
                    "{status} {action}: {}",
                    r.text
                );
                let details = &r.body["error"]["details"];
                assert_eq!(details["status"], *status);
                assert!(details["allowed_actions"].is_array());
            }
        }
    }
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn check_in_is_on_the_arrival_day_into_a_clean_room_and_check_out_leaves_it_dirty() {
    let h = hotel().await;
    let future = h.booked(h.body(h.dbl(), 3, 1)).await;
    let r = h.action(future["id"].as_str().expect("id"), "check-in", json!({})).await;
    assert_eq!((r.status, r.code()), (409, "not_arrival_day"));

    let res = h.booked(h.body(h.dbl(), 0, 2)).await;
    let id = res["id"].as_str().expect("id");
    let dirty = &h.inv.room_types[0].room_ids[0];
    sql(&h.node, &format!("UPDATE rooms SET status = 'dirty' WHERE id = '{dirty}'")).await;
    let r = h.action(id, "check-in", json!({ "room_id": dirty })).await;
    assert_eq!((r.status, r.code()), (409, "room_not_ready"), "{}", r.text);
    assert_eq!(r.body["error"]["details"]["status"], "dirty");
    let r = h.action(id, "check-in", json!({ "room_id": h.inv.room_types[1].room_ids[0] })).await;
    assert_eq!((r.status, r.field()), (422, "room_id"));

    // Without a room the clean one is picked.
    let r = h.action(id, "check-in", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let room = h.inv.room_types[0].room_ids[1].clone();
    assert_eq!((r.str("status"), r.str("room_id")), ("checked_in".to_string(), room.clone()));
    assert_eq!(r.str("room_number"), "102");
    let nights =
        count(&h.node, &format!("SELECT COUNT(*) FROM room_nights WHERE room_id = '{room}'")).await;
    assert_eq!(nights, 2);

    // Nobody else can have the room those nights.
    let other = h.booked(h.body(h.dbl(), 1, 1)).await;
    let r = h
        .action(other["id"].as_str().expect("id"), "assign-room", json!({ "room_id": room }))
        .await;
    assert_eq!((r.status, r.code()), (409, "room_unavailable"), "{}", r.text);

    let out = h.action(id, "check-out", json!({})).await;
    assert_eq!(out.status, 200, "{}", out.text);
    let status =
        count(&h.node, &format!("SELECT status = 'dirty' FROM rooms WHERE id = '{room}'")).await;
    assert_eq!(status, 1, "the room is dirty after check-out");
    // Left on the arrival day: the first night is charged, the second is freed.
    assert_eq!(out.body["price"]["room_minor"], 10_000);
    assert_eq!(out.str("departure"), day(h.today, 1));
    h.booked(h.body(h.dbl(), 1, 1)).await;
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn leaving_early_releases_the_remaining_nights_and_reprices() {
    let h = hotel().await;
    let res = h.booked(h.body(h.ste(), 0, 3)).await;
    let id = res["id"].as_str().expect("id");
    assert_eq!(h.action(id, "check-in", json!({})).await.status, 200);
    let eod = h.post(&format!("/properties/{}/end-of-day", h.node.property_id), json!({})).await;
    assert_eq!(eod.status, 200, "{}", eod.text);
    assert_eq!(eod.str("business_date"), day(h.today, 1));
    let out = h.action(id, "check-out", json!({})).await;
    assert_eq!(out.status, 200, "{}", out.text);
    assert_eq!(out.str("departure"), day(h.today, 1));
    assert_eq!(out.body["price"]["room_minor"], 25_000);
    assert_eq!(out.body["price"]["nights"].as_array().map(Vec::len), Some(1));
    // The freed nights sell again.
    h.booked(h.body(h.ste(), 1, 2)).await;
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn cancellation_fees_follow_the_rate_plans_policy() {
    let h = hotel().await;
    // FLEX: free until 24 h before the arrival day's check-in; arriving today → first night.
    let soon = h.booked(h.body(h.dbl(), 0, 2)).await;
    let r = h.action(soon["id"].as_str().expect("id"), "cancel", json!({})).await;
    assert_eq!(r.body["cancellation_fee_minor"], 10_000, "{}", r.text);
    let later = h.booked(h.body(h.dbl(), 10, 2)).await;
    let r = h.action(later["id"].as_str().expect("id"), "cancel", json!({})).await;
    assert_eq!(r.body["cancellation_fee_minor"], 0);
    // NREF: the full stay.
    let nref = h
        .booked(with(
            h.body(h.dbl(), 10, 2),
            json!({ "rate_plan_id": h.inv.non_refundable_rate_id }),
        ))
        .await;
    let total = nref["price"]["total_minor"].clone();
    let r = h.action(nref["id"].as_str().expect("id"), "cancel", json!({})).await;
    assert_eq!(r.body["cancellation_fee_minor"], total);
    // No-show: not before the arrival; then the plan's no-show fee.
    let ns = h.booked(h.body(h.dbl(), 1, 1)).await;
    let r = h.action(ns["id"].as_str().expect("id"), "no-show", json!({})).await;
    assert_eq!((r.status, r.code()), (409, "not_arrived_yet"));
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn end_of_day_marks_no_shows_and_refuses_while_departures_are_pending() {
    let h = hotel().await;
    let pid = h.node.property_id.clone();
    let stay = h.booked(h.body(h.dbl(), 0, 1)).await;
    let missing = h.booked(h.body(h.ste(), 0, 2)).await;
    let stay_id = stay["id"].as_str().expect("id");
    assert_eq!(h.action(stay_id, "check-in", json!({})).await.status, 200);

    let eod = h.post(&format!("/properties/{pid}/end-of-day"), json!({})).await;
    assert_eq!(eod.status, 200, "{}", eod.text);
    assert_eq!(eod.body["no_shows"][0]["id"], missing["id"]);
    assert_eq!(eod.body["no_shows"][0]["fee_minor"], 25_000);
    let ns = h.get(&format!("/reservations/{}", missing["id"].as_str().expect("id"))).await;
    assert_eq!(ns.str("status"), "no_show");

    // The checked-in guest was due today (the new business date): end of day waits for them.
    let eod = h.post(&format!("/properties/{pid}/end-of-day"), json!({})).await;
    assert_eq!((eod.status, eod.code()), (409, "departures_pending"), "{}", eod.text);
    assert_eq!(eod.body["error"]["details"]["reservations"][0]["id"], stay["id"]);
    assert_eq!(h.node.business_date().await.to_string(), day(h.today, 1));
    assert_eq!(h.action(stay_id, "check-out", json!({})).await.status, 200);
    let eod = h.post(&format!("/properties/{pid}/end-of-day"), json!({})).await;
    assert_eq!(eod.status, 200, "{}", eod.text);
    assert_eq!(h.node.business_date().await.to_string(), day(h.today, 2));
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn an_update_reprices_and_rechecks_inventory_in_one_step() {
    let h = hotel().await;
    let r = h.booked(h.body(h.dbl(), 1, 1)).await;
    let id = r["id"].as_str().expect("id");
    let path = format!("/reservations/{id}");
    let up = h.node.put(&path, Some(&h.token), json!({ "departure": day(h.today, 4) })).await;
    assert_eq!(up.status, 200, "{}", up.text);
    assert_eq!(up.body["price"]["room_minor"], 30_000);
    // To the suite: re-priced; then the suite is full for anyone else.
    let up = h.node.put(&path, Some(&h.token), json!({ "room_type_id": h.ste() })).await;
    assert_eq!(up.body["price"]["room_minor"], 75_000, "{}", up.text);
    let other = h.booked(h.body(h.dbl(), 1, 3)).await;
    let r2 = h
        .node
        .put(
            &format!("/reservations/{}", other["id"].as_str().expect("id")),
            Some(&h.token),
            json!({ "room_type_id": h.ste() }),
        )
        .await;
    assert_eq!((r2.status, r2.code()), (409, "no_availability"), "{}", r2.text);
    assert_eq!(
        h.get(&format!("/reservations/{}", other["id"].as_str().expect("id"))).await.body["room_type_id"],
        h.dbl()
    );
    // After cancellation only notes may change.
    h.action(id, "cancel", json!({})).await;
    let bad = h.node.put(&path, Some(&h.token), json!({ "adults": 1 })).await;
    assert_eq!((bad.status, bad.code()), (409, "invalid_state"));
    assert_eq!(bad.body["error"]["details"]["field"], "adults");
    let ok = h.node.put(&path, Some(&h.token), json!({ "notes": "called back" })).await;
    assert_eq!(ok.str("notes"), "called back");
    let bad = h.node.put(&path, Some(&h.token), json!({ "departure": "soon" })).await;
    assert_eq!((bad.status, bad.field()), (422, "departure"));
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn lists_search_and_page_and_the_day_lists_follow_the_business_date() {
    let h = hotel().await;
    let grace = insert_guest(&h.node, "Grace", "Hopper").await;
    let a = h.booked(with(h.body(h.dbl(), 0, 1), json!({ "guest_id": grace }))).await;
    let b = h.booked(h.body(h.dbl(), 0, 2)).await;
    let _c = h.booked(h.body(h.ste(), 3, 1)).await;

    let found = h.get("/reservations?q=hop").await;
    assert_eq!(found.body["items"].as_array().map(Vec::len), Some(1), "{}", found.text);
    assert_eq!(found.body["items"][0]["id"], a["id"]);
    let by_first_name = h.get("/reservations?q=grace").await;
    assert_eq!(by_first_name.body["items"][0]["id"], a["id"]);
    let code = b["confirmation_code"].as_str().expect("code").to_lowercase();
    let by_code = h.get(&format!("/reservations?q={code}")).await;
    assert_eq!(by_code.body["items"][0]["id"], b["id"]);

    let first = h.get("/reservations?limit=2").await;
    assert_eq!(first.body["items"].as_array().map(Vec::len), Some(2));
    let cursor = first.str("next_cursor");
    assert!(!cursor.is_empty());
    let second = h.get(&format!("/reservations?limit=2&cursor={cursor}")).await;
    assert_eq!(second.body["items"].as_array().map(Vec::len), Some(1));
    assert!(second.body["next_cursor"].is_null());
    assert_eq!(h.get("/reservations?limit=0").await.field(), "limit");
    assert_eq!(h.get("/reservations?status=gone").await.field(), "status");
    assert_eq!(h.get("/reservations?property_id=elsewhere").await.code(), "not_found");

    let pid = &h.node.property_id;
    let arrivals = h.get(&format!("/properties/{pid}/arrivals")).await;
    assert_eq!(arrivals.body["items"].as_array().map(Vec::len), Some(2));
    h.action(a["id"].as_str().expect("id"), "check-in", json!({})).await;
    let in_house = h.get(&format!("/properties/{pid}/in-house")).await;
    assert_eq!(in_house.body["items"][0]["id"], a["id"]);
    let departures = h.get(&format!("/properties/{pid}/departures")).await;
    assert_eq!(departures.body["items"].as_array().map(Vec::len), Some(0));
    let status = h.get(&format!("/reservations?status=checked_in&guest_id={grace}")).await;
    assert_eq!(status.body["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_inline_guest_is_created_with_the_booking() {
    let h = hotel().await;
    let body = with(
        h.body(h.dbl(), 1, 1),
        json!({ "guest_id": null, "guest": { "first_name": "Alan", "last_name": "Turing" } }),
    );
    let r = h.book(body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.str("guest_name"), "Alan Turing");
    let guest_id = r.str("guest_id");
    let profiles =
        count(&h.node, &format!("SELECT COUNT(*) FROM guests WHERE id = '{guest_id}'")).await;
    assert_eq!(profiles, 1);
    // A bad inline guest names the field inside `guest` and writes nothing.
    let bad = with(
        h.body(h.dbl(), 1, 1),
        json!({ "guest_id": null, "guest": { "first_name": "", "last_name": "Turing" } }),
    );
    let r = h.book(bad).await;
    assert_eq!((r.status, r.field()), (422, "guest.first_name"), "{}", r.text);
    assert_eq!(count(&h.node, "SELECT COUNT(*) FROM reservations").await, 1);
    let both =
        with(h.body(h.dbl(), 1, 1), json!({ "guest": { "first_name": "A", "last_name": "B" } }));
    assert_eq!(h.book(both).await.field(), "guest");
}

#[tokio::test]
async fn only_a_live_guest_of_the_property_can_be_booked_by_id() {
    let h = hotel().await;
    let elsewhere = insert_guest(&h.node, "Ada", "Elsewhere").await;
    sql(
        &h.node,
        &format!("UPDATE guests SET property_id = 'another-hotel' WHERE id = '{elsewhere}'"),
    )
    .await;
    let merged = insert_guest(&h.node, "Bea", "Merged").await;
    sql(&h.node, &format!("UPDATE guests SET merged_into = '{}' WHERE id = '{merged}'", h.guest))
        .await;
    for guest in [elsewhere, merged, "no-such-guest".to_string()] {
        let r = h.book(with(h.body(h.dbl(), 1, 1), json!({ "guest_id": guest }))).await;
        assert_eq!((r.status, r.field()), (422, "guest_id"), "{guest}: {}", r.text);
    }
    assert_eq!(count(&h.node, "SELECT COUNT(*) FROM reservations").await, 0);
    let ok = h.book(h.body(h.dbl(), 1, 1)).await;
    assert_eq!(ok.status, 201, "{}", ok.text);
}

#[tokio::test]
async fn staff_without_the_permission_cannot_book() {
    let h = hotel().await;
    h.node.register(&h.token, "hk@grand-test.example", "housekeeping").await;
    let (hk, _) = h.node.tokens("hk@grand-test.example", tests::STAFF_PASSWORD).await;
    let r = h.node.post("/reservations", Some(&hk), h.body(h.dbl(), 1, 1)).await;
    assert_eq!((r.status, r.code()), (403, "missing_permission"));
    let r = h.node.post("/reservations", None, h.body(h.dbl(), 1, 1)).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn an_in_house_guest_extends_in_the_same_room_but_not_into_someone_elses_night() {
    let h = hotel().await;
    let r = h.booked(h.body(h.ste(), 0, 1)).await;
    let id = r["id"].as_str().expect("id");
    assert_eq!(h.action(id, "check-in", json!({})).await.status, 200);
    let path = format!("/reservations/{id}");
    let up = h.node.put(&path, Some(&h.token), json!({ "departure": day(h.today, 3) })).await;
    assert_eq!(up.status, 200, "{}", up.text);
    assert_eq!((up.str("status"), up.str("room_number")), ("checked_in".into(), "201".into()));
    assert_eq!(up.body["price"]["room_minor"], 75_000);
    let room = &h.inv.room_types[1].room_ids[0];
    let nights =
        count(&h.node, &format!("SELECT COUNT(*) FROM room_nights WHERE room_id = '{room}'")).await;
    assert_eq!(nights, 3);
    // The suite is sold on night 4: no extension over it, and nothing changes.
    h.booked(h.body(h.ste(), 3, 1)).await;
    let up = h.node.put(&path, Some(&h.token), json!({ "departure": day(h.today, 5) })).await;
    assert_eq!((up.status, up.code()), (409, "no_availability"), "{}", up.text);
    assert_eq!(h.get(&path).await.str("departure"), day(h.today, 3));
    // The arrival of a guest in house is history.
    let up = h.node.put(&path, Some(&h.token), json!({ "arrival": day(h.today, 1) })).await;
    assert_eq!((up.status, up.code()), (409, "invalid_state"));
    assert_invariants(&h.node).await;
}

#[tokio::test]
async fn the_overbooking_allowance_lets_a_type_sell_beyond_its_rooms_and_no_further() {
    let h = hotel().await;
    sql(
        &h.node,
        &format!("UPDATE room_types SET overbooking_allowance = 1 WHERE id = '{}'", h.ste()),
    )
    .await;
    h.booked(h.body(h.ste(), 1, 1)).await;
    h.booked(h.body(h.ste(), 1, 1)).await;
    let r = h.book(h.body(h.ste(), 1, 1)).await;
    assert_eq!((r.status, r.code()), (409, "no_availability"));
    assert_invariants(&h.node).await;
}
