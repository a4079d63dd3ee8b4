//! The demo hotel: a believable property whose reservations keep the inventory invariants.

use edge_node::demo::seed::{self, HotelSpec, HotelSummary};
use tests::TestNode;

async fn seeded(node: &TestNode) -> HotelSummary {
    let property = node.property_id.clone();
    let today = node.business_date().await;
    node.db()
        .write(move |tx| {
            seed::demo_hotel(tx, &property, today, edge_node::time::now_ms(), &HotelSpec::demo())
                .map(|h| h.summary)
                .map_err(edge_node::db::DbError::from)
        })
        .await
        .expect("seed the demo hotel")
}

async fn query_i64(node: &TestNode, sql: &'static str) -> i64 {
    node.db()
        .read(move |conn| {
            conn.query_row(sql, [], |r| r.get(0)).map_err(edge_node::db::DbError::from)
        })
        .await
        .expect(sql)
}

#[tokio::test]
async fn the_demo_hotel_has_120_rooms_of_five_types_guests_and_reservations_in_every_state() {
    let node = TestNode::spawn().await;
    let summary = seeded(&node).await;
    assert_eq!((summary.rooms, summary.room_types), (120, 5));
    assert_eq!(query_i64(&node, "SELECT COUNT(*) FROM rooms WHERE deleted_at = 0").await, 120);
    assert_eq!(query_i64(&node, "SELECT COUNT(*) FROM room_types").await, 5);
    assert_eq!(query_i64(&node, "SELECT COUNT(DISTINCT floor) FROM rooms").await, 6);
    assert_eq!(query_i64(&node, "SELECT COUNT(*) FROM rate_plans").await, 2);
    assert_eq!(query_i64(&node, "SELECT COUNT(*) FROM guests").await, 3_000);
    assert!(
        query_i64(
            &node,
            "SELECT COUNT(*) FROM guests WHERE first_name || last_name GLOB '*[^ -~]*'"
        )
        .await
            > 100,
        "names with accents"
    );
    for status in [
        "tentative",
        "confirmed",
        "checked_in",
        "checked_out",
        "cancelled",
        "no_show",
        "waitlisted",
    ] {
        assert!(
            summary.by_status.get(status).copied().unwrap_or(0) > 0,
            "no {status}: {summary:?}"
        );
    }
    assert!(summary.reservations > 3_000, "{summary:?}");
    assert_eq!(
        query_i64(&node, "SELECT COUNT(*) FROM reservations").await,
        summary.reservations as i64
    );
    node.stop().await;
}

#[tokio::test]
async fn the_demo_hotel_never_sells_a_room_night_twice_or_beyond_capacity() {
    let node = TestNode::spawn().await;
    seeded(&node).await;
    // sold == reservation_nights per type-night, everywhere.
    let mismatched = query_i64(
        &node,
        "SELECT COUNT(*) FROM (
           SELECT t.room_type_id, t.night, t.sold,
                  (SELECT COUNT(*) FROM reservation_nights n
                   WHERE n.room_type_id = t.room_type_id AND n.night = t.night) AS held
           FROM room_type_nights t) WHERE sold != held",
    )
    .await;
    assert_eq!(mismatched, 0);
    let uncounted = query_i64(
        &node,
        "SELECT COUNT(*) FROM (SELECT room_type_id, night FROM reservation_nights
           GROUP BY room_type_id, night) g
         WHERE NOT EXISTS (SELECT 1 FROM room_type_nights t
           WHERE t.room_type_id = g.room_type_id AND t.night = g.night)",
    )
    .await;
    assert_eq!(uncounted, 0);
    // Never beyond rooms minus out of order.
    let over = query_i64(
        &node,
        "SELECT COUNT(*) FROM room_type_nights t
         WHERE t.sold > (SELECT COUNT(*) FROM rooms r WHERE r.room_type_id = t.room_type_id)
             - (SELECT COUNT(*) FROM room_blocks b JOIN rooms r ON r.id = b.room_id
                WHERE r.room_type_id = t.room_type_id AND b.kind = 'out_of_order'
                  AND b.released_at = 0 AND b.from_date <= t.night AND t.night < b.to_date)",
    )
    .await;
    assert_eq!(over, 0);
    // A room-night belongs to one reservation, and every assigned night is in room_nights.
    let doubled = query_i64(
        &node,
        "SELECT COUNT(*) FROM (SELECT room_id, night FROM reservation_nights WHERE room_id != ''
           GROUP BY room_id, night HAVING COUNT(*) > 1)",
    )
    .await;
    assert_eq!(doubled, 0);
    let missing_room_nights = query_i64(
        &node,
        "SELECT COUNT(*) FROM reservation_nights n WHERE n.room_id != '' AND NOT EXISTS
           (SELECT 1 FROM room_nights rn WHERE rn.room_id = n.room_id AND rn.night = n.night
              AND rn.reservation_id = n.reservation_id)",
    )
    .await;
    assert_eq!(missing_room_nights, 0);
    // Only holding reservations hold nights, and each holds every night of its stay.
    let wrong_holders = query_i64(
        &node,
        "SELECT COUNT(*) FROM reservations r WHERE
           (r.status IN ('cancelled', 'no_show', 'waitlisted')
              AND EXISTS (SELECT 1 FROM reservation_nights n WHERE n.reservation_id = r.id))
           OR (r.status IN ('tentative', 'confirmed', 'checked_in', 'checked_out')
              AND (SELECT COUNT(*) FROM reservation_nights n WHERE n.reservation_id = r.id)
                  != julianday(r.departure) - julianday(r.arrival))",
    )
    .await;
    assert_eq!(wrong_holders, 0);
    // Money adds up: room + city tax = total, VAT inside the room price, nights sum to room.
    let bad_money = query_i64(
        &node,
        "SELECT COUNT(*) FROM reservations r WHERE r.total_minor != r.room_minor + r.city_tax_minor
           OR r.city_tax_minor != 250 * r.adults * (julianday(r.departure) - julianday(r.arrival))
           OR abs(r.vat_minor - r.room_minor * 1000.0 / 11000.0) > 1
           OR (r.status IN ('tentative', 'confirmed', 'checked_in', 'checked_out')
               AND r.room_minor != (SELECT SUM(price_minor) FROM reservation_nights n
                                    WHERE n.reservation_id = r.id))",
    )
    .await;
    assert_eq!(bad_money, 0);
    // Guests in house have a room, and the out-of-order room mirrors its block.
    assert_eq!(
        query_i64(
            &node,
            "SELECT COUNT(*) FROM reservations WHERE status = 'checked_in' AND room_id = ''"
        )
        .await,
        0
    );
    assert_eq!(
        query_i64(&node, "SELECT COUNT(*) FROM rooms WHERE status = 'out_of_order'").await,
        1
    );
    assert!(query_i64(&node, "SELECT COUNT(*) FROM rooms WHERE status = 'dirty'").await > 0);
    node.stop().await;
}

#[tokio::test]
async fn the_demo_board_shows_guests_in_house() {
    let node = TestNode::spawn().await;
    seeded(&node).await;
    let owner = node.owner_token().await;
    let board =
        node.get(&format!("/properties/{}/housekeeping", node.property_id), Some(&owner)).await;
    assert_eq!(board.status, 200, "{}", board.text);
    let in_house =
        query_i64(&node, "SELECT COUNT(*) FROM reservations WHERE status = 'checked_in'").await;
    assert_eq!(board.body["counts"]["occupied"], serde_json::json!(in_house));
    assert_eq!(board.body["items"].as_array().map(Vec::len), Some(120));
    node.stop().await;
}
