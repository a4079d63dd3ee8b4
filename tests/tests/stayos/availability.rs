//! Availability: per room type and night, what is left to sell (rooms, out of order, sold),
//! each active rate plan's price for the occupancy and restrictions, and whether the whole
//! stay is bookable and why not; plus its speed on a 300-room hotel.

use serde_json::{Value, json};
use tests::{InventorySpec, TestNode, TypeSpec};

use crate::reservations::{day, hotel, sql};

fn plan<'a>(t: &'a Value, code: &str) -> &'a Value {
    t["rate_plans"].as_array().expect("plans").iter().find(|p| p["code"] == code).expect("plan")
}

fn reasons(p: &Value) -> Vec<(String, String)> {
    p["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| {
            (r["code"].as_str().unwrap_or("").into(), r["night"].as_str().unwrap_or("").into())
        })
        .collect()
}

#[tokio::test]
async fn availability_counts_sold_and_out_of_order_rooms_per_night() {
    let h = hotel().await;
    let pid = h.node.property_id.clone();
    h.booked(h.body(h.dbl(), 1, 1)).await;
    let room = &h.inv.room_types[0].room_ids[0];
    sql(
        &h.node,
        &format!(
            "INSERT INTO room_blocks (id, property_id, room_id, kind, from_date, to_date)
             VALUES ('b1', '{pid}', '{room}', 'out_of_order', '{}', '{}')",
            day(h.today, 1),
            day(h.today, 2)
        ),
    )
    .await;
    let a = h
        .get(&format!("/properties/{pid}/availability?from={}&to={}", h.today, day(h.today, 3)))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let dbl = &a.body["room_types"][0];
    assert_eq!(dbl["code"], "DBL");
    assert_eq!(
        dbl["nights"],
        json!([
            { "night": day(h.today, 0), "rooms": 2, "out_of_order": 0, "sold": 0, "available": 2 },
            { "night": day(h.today, 1), "rooms": 2, "out_of_order": 1, "sold": 1, "available": 0 },
            { "night": day(h.today, 2), "rooms": 2, "out_of_order": 0, "sold": 0, "available": 2 },
        ])
    );
    let flex = plan(dbl, "FLEX");
    assert_eq!(flex["bookable"], false);
    assert_eq!(reasons(flex), vec![("no_availability".to_string(), day(h.today, 1))]);
    // The stay's total is still quoted: 3 × 100.00 for one adult, city tax 3 × 2.50.
    assert_eq!(flex["total"]["room_minor"], 30_000);
    assert_eq!(flex["total"]["city_tax_minor"], 750);
    assert_eq!(flex["total"]["total_minor"], 30_750);
    let ste = &a.body["room_types"][1];
    assert_eq!(plan(ste, "NREF")["bookable"], true);
    assert_eq!(plan(ste, "NREF")["nights"][0]["price_minor"], 21_250);
}

#[tokio::test]
async fn prices_follow_the_occupancy_and_types_that_do_not_fit_say_so() {
    let h = hotel().await;
    let pid = h.node.property_id.clone();
    let a = h
        .get(&format!("/properties/{pid}/availability?from={}&adults=3&children=1", h.today))
        .await;
    assert_eq!(a.body["to"], day(h.today, 1), "to defaults to the day after from");
    let dbl = &a.body["room_types"][0];
    assert_eq!(dbl["fits"], false);
    assert_eq!(reasons(plan(dbl, "FLEX"))[0].0, "occupancy");
    let ste = &a.body["room_types"][1];
    assert_eq!(ste["fits"], true);
    // 250.00 + 1 extra adult 30.00 + 1 child 15.00.
    assert_eq!(plan(ste, "FLEX")["nights"][0]["price_minor"], 29_500);
    assert_eq!(plan(ste, "FLEX")["bookable"], true);
}

#[tokio::test]
async fn restrictions_and_missing_prices_are_shown_with_their_night() {
    let h = hotel().await;
    let pid = h.node.property_id.clone();
    let dbl = h.dbl().to_string();
    let n = |i| day(h.today, i);
    sql(&h.node, &format!("UPDATE rate_prices SET min_stay = 3, closed_to_arrival = 1 WHERE room_type_id = '{dbl}' AND night = '{}'", n(1))).await;
    sql(
        &h.node,
        &format!(
            "UPDATE rate_prices SET stop_sell = 1 WHERE room_type_id = '{dbl}' AND night = '{}'",
            n(2)
        ),
    )
    .await;
    sql(&h.node, &format!("UPDATE rate_prices SET closed_to_departure = 1 WHERE room_type_id = '{dbl}' AND night = '{}'", n(3))).await;
    sql(&h.node, &format!("DELETE FROM rate_prices WHERE rate_plan_id = '{}' AND room_type_id = '{dbl}' AND night = '{}'", h.inv.non_refundable_rate_id, n(2))).await;
    let a =
        h.get(&format!("/properties/{pid}/availability?from={}&to={}&adults=2", n(1), n(3))).await;
    let t = &a.body["room_types"][0];
    let flex = plan(t, "FLEX");
    let mut got = reasons(flex);
    got.sort();
    let mut want = vec![
        ("closed_to_arrival".to_string(), n(1)),
        ("closed_to_departure".to_string(), n(3)),
        ("min_stay".to_string(), n(1)),
        ("stop_sell".to_string(), n(2)),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(flex["nights"][0]["min_stay"], 3);
    assert_eq!(flex["nights"][1]["stop_sell"], true);
    let nref = plan(t, "NREF");
    assert!(reasons(nref).contains(&("not_priced".to_string(), n(2))));
    assert!(nref["nights"][1]["price_minor"].is_null());
    assert!(nref["total"].is_null());
}

#[tokio::test]
async fn bad_ranges_name_the_parameter_and_other_properties_are_forbidden() {
    let h = hotel().await;
    let pid = h.node.property_id.clone();
    let cases = [
        ("from=tomorrow".to_string(), "from"),
        (format!("from={}&to={}", h.today, h.today), "to"),
        (format!("from={}&to={}", h.today, day(h.today, 800)), "to"),
        (format!("from={}&adults=0", h.today), "adults"),
        (format!("from={}&children=-1", h.today), "children"),
        (format!("to={}", h.today), "from"),
    ];
    for (query, field) in cases {
        let r = h.get(&format!("/properties/{pid}/availability?{query}")).await;
        assert_eq!((r.status, r.field()), (422, field), "{query}: {}", r.text);
    }
    let r = h.get(&format!("/properties/elsewhere/availability?from={}", h.today)).await;
    assert_eq!((r.status, r.code()), (404, "not_found"));
}

#[tokio::test]
async fn a_year_of_a_300_room_hotel_is_answered_whole() {
    let node = TestNode::spawn().await;
    let token = node.owner_token().await;
    let today = node.business_date().await;
    let mut spec = InventorySpec::small(today);
    spec.nights = 366;
    let codes = ["STD", "SUP", "DLX", "FAM", "JRS", "EXE"];
    spec.types = codes
        .iter()
        .enumerate()
        .map(|(i, code)| TypeSpec {
            code,
            name: "Type",
            rooms: 50,
            first_number: 100 * (i as u32 + 1),
            base_occupancy: 2,
            max_adults: 3,
            max_children: 2,
            price_minor: 10_000 + 1_000 * i as i64,
        })
        .collect();
    node.seed_inventory(spec).await;
    let pid = node.property_id.clone();
    let path30 =
        format!("/properties/{pid}/availability?from={today}&to={}&adults=2", day(today, 30));
    let path365 =
        format!("/properties/{pid}/availability?from={today}&to={}&adults=2", day(today, 365));
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let r = node.get(&path365, Some(&token)).await;
        times.push(started.elapsed());
        assert_eq!(r.status, 200);
        let types = r.body["room_types"].as_array().expect("types");
        assert_eq!(types.len(), 6);
        assert!(types.iter().all(|t| t["nights"].as_array().map(Vec::len) == Some(365)));
        assert!(
            types
                .iter()
                .all(|t| t["nights"][0]["rooms"] == 50 && t["nights"][0]["available"] == 50)
        );
    }
    let r = node.get(&path30, Some(&token)).await;
    assert_eq!(r.body["room_types"][0]["rate_plans"][0]["total"]["room_minor"], 300_000);
    times.sort();
    eprintln!("availability 300 rooms × 365 nights, median over HTTP: {:?}", times[2]);
}
