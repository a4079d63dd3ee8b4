//! Housekeeping: the board, room status changes, out-of-order blocks and who may do what.

use edge_node::demo::seed::SeededInventory;
use serde_json::json;
use tests::TestNode;

/// Inserts a reservation of `room_id` (of `room_type_id`) for `[arrival, departure)` with the
/// inventory rows the reservation write path keeps (reservation_nights, sold, room_nights).
async fn put_stay(
    node: &TestNode,
    room_type_id: &str,
    room_id: &str,
    status: &str,
    arrival: jiff::civil::Date,
    departure: jiff::civil::Date,
    guest: &str,
) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = format!("res-{}", NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let (property, rt, room, status, guest, rid) = (
        node.property_id.clone(),
        room_type_id.to_string(),
        room_id.to_string(),
        status.to_string(),
        guest.to_string(),
        id.clone(),
    );
    node.db()
        .write(move |tx| {
            tx.execute(
                "INSERT INTO reservations (id, property_id, status, room_type_id, room_id,
                     arrival, departure, adults, guest_name, currency)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 2, ?8, 'EUR')",
                rusqlite::params![
                    rid,
                    property,
                    status,
                    rt,
                    room,
                    arrival.to_string(),
                    departure.to_string(),
                    guest
                ],
            )?;
            for night in edge_node::dates::nights(arrival, departure) {
                let night = night.to_string();
                tx.execute(
                    "INSERT INTO reservation_nights (reservation_id, night, property_id,
                         room_type_id, room_id, price_minor) VALUES (?1, ?2, ?3, ?4, ?5, 10000)",
                    rusqlite::params![rid, night, property, rt, room],
                )?;
                tx.execute(
                    "INSERT INTO room_type_nights (room_type_id, night, property_id, sold)
                     VALUES (?1, ?2, ?3, 1)
                     ON CONFLICT (room_type_id, night) DO UPDATE SET sold = sold + 1",
                    rusqlite::params![rt, night, property],
                )?;
                tx.execute(
                    "INSERT INTO room_nights (room_id, night, reservation_id) VALUES (?1, ?2, ?3)",
                    rusqlite::params![room, night, rid],
                )?;
            }
            Ok::<_, edge_node::db::DbError>(())
        })
        .await
        .expect("insert stay");
    id
}

fn days(date: jiff::civil::Date, n: i64) -> jiff::civil::Date {
    date.checked_add(jiff::Span::new().days(n)).expect("date in range")
}

struct Hotel {
    node: TestNode,
    owner: String,
    inv: SeededInventory,
    today: jiff::civil::Date,
}

impl Hotel {
    async fn new() -> Hotel {
        let node = TestNode::spawn().await;
        let owner = node.owner_token().await;
        let inv = node.seed_small_hotel().await;
        let today = node.business_date().await;
        Hotel { node, owner, inv, today }
    }

    fn double(&self, i: usize) -> (String, String) {
        (self.inv.room_types[0].id.clone(), self.inv.room_types[0].room_ids[i].clone())
    }

    fn status_path(&self, room_id: &str) -> String {
        format!("/properties/{}/rooms/{room_id}/status", self.node.property_id)
    }

    fn blocks_path(&self, room_id: &str) -> String {
        format!("/properties/{}/rooms/{room_id}/blocks", self.node.property_id)
    }

    async fn board(&self, query: &str) -> tests::Resp {
        let path = format!("/properties/{}/housekeeping{query}", self.node.property_id);
        self.node.get(&path, Some(&self.owner)).await
    }

    async fn sold(&self, room_type_id: &str, night: jiff::civil::Date) -> (i64, i64, i64) {
        let (rt, night) = (room_type_id.to_string(), night.to_string());
        self.node
            .db()
            .read(move |conn| {
                let sold: i64 = conn.query_row(
                    "SELECT COALESCE((SELECT sold FROM room_type_nights
                          WHERE room_type_id = ?1 AND night = ?2), 0)",
                    [&rt, &night],
                    |r| r.get(0),
                )?;
                let rooms: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM rooms WHERE room_type_id = ?1 AND deleted_at = 0",
                    [&rt],
                    |r| r.get(0),
                )?;
                let ooo: i64 = conn.query_row(
                    "SELECT COUNT(*) FROM room_blocks b JOIN rooms r ON r.id = b.room_id
                     WHERE r.room_type_id = ?1 AND b.kind = 'out_of_order' AND b.released_at = 0
                       AND b.from_date <= ?2 AND ?2 < b.to_date",
                    [&rt, &night],
                    |r| r.get(0),
                )?;
                Ok::<_, edge_node::db::DbError>((rooms, ooo, sold))
            })
            .await
            .expect("inventory")
    }
}

#[tokio::test]
async fn a_room_goes_dirty_clean_inspected_and_inspected_needs_clean_first() {
    let h = Hotel::new().await;
    let (_, room) = h.double(0);
    let path = h.status_path(&room);
    let dirty =
        h.node.put(&path, Some(&h.owner), json!({ "status": "dirty", "note": "guest left" })).await;
    assert_eq!(dirty.status, 200, "{}", dirty.text);
    assert_eq!(
        (dirty.str("status"), dirty.str("previous_status")),
        ("dirty".into(), "clean".into())
    );

    let too_early = h.node.put(&path, Some(&h.owner), json!({ "status": "inspected" })).await;
    assert_eq!((too_early.status, too_early.code()), (409, "invalid_status_transition"));

    assert_eq!(h.node.put(&path, Some(&h.owner), json!({ "status": "clean" })).await.status, 200);
    let inspected = h.node.put(&path, Some(&h.owner), json!({ "status": "inspected" })).await;
    assert_eq!((inspected.status, inspected.str("status")), (200, "inspected".into()));

    let events: i64 = h
        .node
        .db()
        .read(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM room_status_events WHERE room_id = ?1",
                [&room],
                |r| r.get(0),
            )
            .map_err(edge_node::db::DbError::from)
        })
        .await
        .expect("events");
    assert_eq!(events, 3, "each change leaves an event");
    h.node.stop().await;
}

#[tokio::test]
async fn out_of_order_cannot_be_set_by_hand_and_unknown_statuses_are_named() {
    let h = Hotel::new().await;
    let (_, room) = h.double(0);
    let path = h.status_path(&room);
    let ooo = h.node.put(&path, Some(&h.owner), json!({ "status": "out_of_order" })).await;
    assert_eq!((ooo.status, ooo.field()), (422, "status"));
    assert!(ooo.text.contains("blocks"), "hints at blocks: {}", ooo.text);
    let odd = h.node.put(&path, Some(&h.owner), json!({ "status": "sparkling" })).await;
    assert_eq!((odd.status, odd.field()), (422, "status"));
    let extra =
        h.node.put(&path, Some(&h.owner), json!({ "status": "clean", "colour": "x" })).await;
    assert_eq!((extra.status, extra.field()), (422, "colour"));
    let missing = h
        .node
        .put(&h.status_path("no-such-room"), Some(&h.owner), json!({ "status": "clean" }))
        .await;
    assert_eq!(missing.status, 404);
    h.node.stop().await;
}

#[tokio::test]
async fn the_board_counts_statuses_and_shows_who_is_in_which_room() {
    let h = Hotel::new().await;
    let (dbl, room101) = h.double(0);
    let (_, room102) = h.double(1);
    put_stay(
        &h.node,
        &dbl,
        &room101,
        "checked_in",
        days(h.today, -2),
        days(h.today, 0),
        "Ana Souza",
    )
    .await;
    put_stay(&h.node, &dbl, &room102, "confirmed", h.today, days(h.today, 3), "Émile Zola").await;
    h.node.put(&h.status_path(&room102), Some(&h.owner), json!({ "status": "dirty" })).await;

    let board = h.board("").await;
    assert_eq!(board.status, 200, "{}", board.text);
    assert_eq!(board.str("business_date"), h.today.to_string());
    let rooms = board.body["items"].as_array().expect("rooms");
    assert_eq!(rooms.len(), 3);
    let r101 = rooms.iter().find(|r| r["number"] == "101").expect("101");
    assert_eq!(r101["occupied"], true);
    assert_eq!(r101["departure_today"], true);
    assert_eq!(r101["guest_name"], "Ana Souza");
    assert_eq!(r101["room_type_code"], "DBL");
    let r102 = rooms.iter().find(|r| r["number"] == "102").expect("102");
    assert_eq!(
        (r102["occupied"].clone(), r102["arrival_today"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(r102["guest_name"], "Émile Zola");
    let counts = &board.body["counts"];
    assert_eq!(counts["by_status"]["clean"], 2);
    assert_eq!(counts["by_status"]["dirty"], 1);
    assert_eq!(counts["by_status"]["out_of_order"], 0);
    assert_eq!((counts["occupied"].clone(), counts["vacant"].clone()), (json!(1), json!(2)));
    assert_eq!((counts["arrivals"].clone(), counts["departures"].clone()), (json!(1), json!(1)));

    let dirty = h.board("?status=dirty").await;
    let numbers: Vec<_> = dirty.body["items"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| r["number"].clone())
        .collect();
    assert_eq!(numbers, vec![json!("102")]);
    assert_eq!(dirty.body["counts"]["by_status"]["clean"], 2, "counts cover every room");
    let floor2 = h.board("?floor=2").await;
    assert_eq!(floor2.body["items"][0]["number"], "201");
    assert_eq!(floor2.body["items"].as_array().map(Vec::len), Some(1));
    let bad = h.board("?status=shiny").await;
    assert_eq!((bad.status, bad.field()), (422, "status"));
    h.node.stop().await;
}

#[tokio::test]
async fn a_room_assigned_to_a_coming_guest_cannot_go_out_of_order() {
    let h = Hotel::new().await;
    let (dbl, room) = h.double(0);
    let reservation =
        put_stay(&h.node, &dbl, &room, "confirmed", days(h.today, 5), days(h.today, 8), "Jo Ito")
            .await;
    let refused = h
        .node
        .post(
            &h.blocks_path(&room),
            Some(&h.owner),
            json!({ "kind": "out_of_order", "from": days(h.today, 7).to_string(),
                    "to": days(h.today, 10).to_string(), "reason": "leaking pipe" }),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (409, "room_in_use"), "{}", refused.text);
    assert_eq!(refused.body["error"]["details"]["reservation_id"], json!(reservation));
    // Out of service keeps the room sellable, so it is allowed.
    let oos = h
        .node
        .post(
            &h.blocks_path(&room),
            Some(&h.owner),
            json!({ "kind": "out_of_service", "from": days(h.today, 7).to_string(),
                    "to": days(h.today, 10).to_string(), "reason": "repainting" }),
        )
        .await;
    assert_eq!(oos.status, 201, "{}", oos.text);
    h.node.stop().await;
}

#[tokio::test]
async fn out_of_order_is_refused_when_the_type_is_sold_out_that_night() {
    let h = Hotel::new().await;
    let (dbl, room101) = h.double(0);
    let (_, room102) = h.double(1);
    let night = days(h.today, 20);
    // Both doubles sold that night, one of them without a room yet.
    put_stay(&h.node, &dbl, &room102, "confirmed", night, days(h.today, 21), "A One").await;
    put_stay(&h.node, &dbl, "", "confirmed", night, days(h.today, 21), "B Two").await;
    let refused = h
        .node
        .post(
            &h.blocks_path(&room101),
            Some(&h.owner),
            json!({ "kind": "out_of_order", "from": days(h.today, 18).to_string(),
                    "to": days(h.today, 25).to_string(), "reason": "new carpet" }),
        )
        .await;
    assert_eq!((refused.status, refused.code()), (409, "would_oversell"), "{}", refused.text);
    assert_eq!(refused.body["error"]["details"]["night"], json!(night.to_string()));
    h.node.stop().await;
}

#[tokio::test]
async fn out_of_order_takes_the_room_out_of_inventory_until_released() {
    let h = Hotel::new().await;
    let (dbl, room) = h.double(0);
    let block = h
        .node
        .post(
            &h.blocks_path(&room),
            Some(&h.owner),
            json!({ "kind": "out_of_order", "from": h.today.to_string(),
                    "to": days(h.today, 3).to_string(), "reason": "broken window" }),
        )
        .await;
    assert_eq!(block.status, 201, "{}", block.text);
    assert_eq!(
        (block.str("kind"), block.str("reason")),
        ("out_of_order".into(), "broken window".into())
    );
    assert_eq!(h.sold(&dbl, h.today).await, (2, 1, 0), "one of two doubles out of inventory");

    let board = h.board("?status=out_of_order").await;
    assert_eq!(board.body["items"][0]["room_id"], json!(room));
    assert_eq!(board.body["items"][0]["block"]["id"], block.body["id"]);
    let by_hand =
        h.node.put(&h.status_path(&room), Some(&h.owner), json!({ "status": "clean" })).await;
    assert_eq!((by_hand.status, by_hand.code()), (409, "room_out_of_order"));

    let overlap = h
        .node
        .post(
            &h.blocks_path(&room),
            Some(&h.owner),
            json!({ "kind": "out_of_service", "from": days(h.today, 2).to_string(),
                    "to": days(h.today, 4).to_string(), "reason": "again" }),
        )
        .await;
    assert_eq!((overlap.status, overlap.code()), (409, "block_overlaps"));

    let listed = h
        .node
        .get(&format!("/properties/{}/room-blocks", h.node.property_id), Some(&h.owner))
        .await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1), "{}", listed.text);

    let released = h
        .node
        .delete(
            &format!("/properties/{}/room-blocks/{}", h.node.property_id, block.str("id")),
            Some(&h.owner),
        )
        .await;
    assert_eq!(released.status, 200, "{}", released.text);
    assert!(released.body["released_at"].is_string());
    assert_eq!(h.sold(&dbl, h.today).await, (2, 0, 0), "back in inventory");
    let after = h.board("").await;
    let r = after.body["items"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["room_id"] == json!(room))
        .cloned();
    assert_eq!(r.map(|r| r["status"].clone()), Some(json!("dirty")), "needs cleaning after repair");
    let again = h
        .node
        .delete(
            &format!("/properties/{}/room-blocks/{}", h.node.property_id, block.str("id")),
            Some(&h.owner),
        )
        .await;
    assert_eq!((again.status, again.code()), (409, "block_released"));
    h.node.stop().await;
}

#[tokio::test]
async fn a_block_needs_a_reason_a_kind_and_a_proper_range() {
    let h = Hotel::new().await;
    let (_, room) = h.double(0);
    let path = h.blocks_path(&room);
    let from = h.today.to_string();
    let to = days(h.today, 2).to_string();
    for (body, field) in [
        (json!({ "kind": "out_of_order", "from": from, "to": to, "reason": "  " }), "reason"),
        (json!({ "kind": "closed", "from": from, "to": to, "reason": "x" }), "kind"),
        (json!({ "kind": "out_of_order", "from": to, "to": from, "reason": "x" }), "to"),
        (json!({ "kind": "out_of_order", "from": "tomorrow", "to": to, "reason": "x" }), "from"),
        (json!({ "kind": "out_of_order", "from": from, "to": to }), "reason"),
    ] {
        let resp = h.node.post(&path, Some(&h.owner), body).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{}", resp.text);
    }
    h.node.stop().await;
}

#[tokio::test]
async fn housekeepers_change_statuses_but_waiters_and_other_properties_cannot() {
    let h = Hotel::new().await;
    let (_, room) = h.double(0);
    h.node.register(&h.owner, "hk@grand-test.example", "housekeeping").await;
    h.node.register(&h.owner, "pos@grand-test.example", "pos_server").await;
    let (hk, _) = h.node.tokens("hk@grand-test.example", tests::STAFF_PASSWORD).await;
    let (pos, _) = h.node.tokens("pos@grand-test.example", tests::STAFF_PASSWORD).await;

    let by_hk = h.node.put(&h.status_path(&room), Some(&hk), json!({ "status": "dirty" })).await;
    assert_eq!(by_hk.status, 200, "{}", by_hk.text);
    let board =
        h.node.get(&format!("/properties/{}/housekeeping", h.node.property_id), Some(&hk)).await;
    assert_eq!(board.status, 200);

    let by_pos = h.node.put(&h.status_path(&room), Some(&pos), json!({ "status": "clean" })).await;
    assert_eq!((by_pos.status, by_pos.code()), (403, "missing_permission"));
    let board_pos =
        h.node.get(&format!("/properties/{}/housekeeping", h.node.property_id), Some(&pos)).await;
    assert_eq!(board_pos.status, 403);

    let other = "0190aaaa-0000-7000-8000-000000000000";
    let elsewhere = h.node.get(&format!("/properties/{other}/housekeeping"), Some(&h.owner)).await;
    assert_eq!((elsewhere.status, elsewhere.code()), (404, "not_found"));
    let elsewhere_put = h
        .node
        .put(
            &format!("/properties/{other}/rooms/{room}/status"),
            Some(&h.owner),
            json!({ "status": "clean" }),
        )
        .await;
    assert_eq!((elsewhere_put.status, elsewhere_put.code()), (404, "not_found"));
    let anonymous =
        h.node.get(&format!("/properties/{}/housekeeping", h.node.property_id), None).await;
    assert_eq!(anonymous.status, 401);
    h.node.stop().await;
}

#[tokio::test]
async fn a_future_block_marks_the_room_when_its_first_night_comes_and_clears_after() {
    let h = Hotel::new().await;
    let (_, room) = h.double(0);
    let block = h
        .node
        .post(
            &h.blocks_path(&room),
            Some(&h.owner),
            json!({ "kind": "out_of_order", "from": days(h.today, 1).to_string(),
                    "to": days(h.today, 2).to_string(), "reason": "new mattress" }),
        )
        .await;
    assert_eq!(block.status, 201, "{}", block.text);
    assert_eq!(status_on(&h, &room, h.today).await, "clean", "not yet");
    assert_eq!(status_on(&h, &room, days(h.today, 1)).await, "out_of_order");
    assert_eq!(
        status_on(&h, &room, days(h.today, 2)).await,
        "dirty",
        "after the block it needs cleaning"
    );
    h.node.stop().await;
}

/// Runs the block/status sync for `date` and returns `room`'s status.
async fn status_on(h: &Hotel, room: &str, date: jiff::civil::Date) -> String {
    let (property, room) = (h.node.property_id.clone(), room.to_string());
    h.node
        .db()
        .write(move |tx| {
            edge_node::housekeeping::store::sync_block_statuses(
                tx,
                &property,
                &date.to_string(),
                "system",
                1,
            )?;
            tx.query_row("SELECT status FROM rooms WHERE id = ?1", [&room], |r| {
                r.get::<_, String>(0)
            })
            .map_err(edge_node::db::DbError::from)
        })
        .await
        .expect("sync")
}
