//! A hostile enrolled node against the real `stayos-hub` on the real PostgreSQL: node C has
//! a valid credential of its own property and pushes what no honest node would — a column
//! that does not exist, a clock at 2^63-1, another property's room nights, a change in
//! another node's name, a staff row. Each is quarantined with its reason; nodes D and E, two
//! other properties with their sync agents running, keep syncing with nothing pending, and
//! nothing C tried reaches them.

use std::time::Duration;

use crdt::protocol::{Batch, WireChange, WireValue};
use serde_json::json;
use tests::hub::{Hub, eventually, hub_rows};

use crate::reservations::day;
use crate::sync::{enrolled, manual_node, new_guest, settled, status};

fn text(s: &str) -> crdt::Value {
    crdt::Value::Text(s.into())
}

/// A change of C's as its agent would write it, unless the test says otherwise.
fn change(site: &[u8], table: &str, key: &[crdt::Value], cid: &str, val: WireValue) -> WireChange {
    WireChange {
        table: table.into(),
        pk: crdt::pack(key).expect("pk"),
        cid: cid.into(),
        val,
        col_version: 1,
        db_version: 1,
        site_id: site.to_vec(),
        cl: 1,
        seq: 0,
    }
}

fn site_of(data_dir: &std::path::Path) -> Vec<u8> {
    let conn = rusqlite::Connection::open(data_dir.join(edge_node::db::DB_FILE)).expect("open");
    crdt::site_id(&conn).expect("site id")
}

fn one_room(data_dir: &std::path::Path, room_type: &str) -> String {
    let conn = rusqlite::Connection::open(data_dir.join(edge_node::db::DB_FILE)).expect("open");
    conn.query_row("SELECT id FROM rooms WHERE room_type_id = ?1 LIMIT 1", [room_type], |r| {
        r.get(0)
    })
    .expect("a room of the type")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_node_is_quarantined_change_by_change_and_the_other_nodes_keep_syncing() {
    let hub = Hub::start_with(true).await;
    let d = enrolled(&hub).await;
    let e = enrolled(&hub).await;
    let c = manual_node(&hub).await;
    let pg = hub.client().await;

    // A guest of D's, which every property shares (chain level).
    let guest = new_guest(&d, "Grace", "Hopper").await;
    eventually(Duration::from_secs(10), "the guest reaches E", || async {
        (e.get(&format!("/guests/{guest}")).await.status == 200).then_some(())
    })
    .await;

    let c_site = site_of(&c.data_dir);
    let e_site = site_of(&e.node.data_dir);
    let d_room = one_room(&d.node.data_dir, d.dbl());
    let night = day(d.today, 3);
    let g = [text(&guest)];
    let mut max_clock =
        change(&c_site, "guests", &g, "first_name", WireValue::Text("Pwned".into()));
    max_clock.col_version = i64::MAX;
    let mut forged = change(&c_site, "guests", &g, "last_name", WireValue::Text("Forged".into()));
    forged.site_id = e_site.clone();
    let own_guest = format!("c-guest-{}", c.property_id);
    let hostile = vec![
        change(&c_site, "guests", &g, "zz", WireValue::Text("x".into())),
        max_clock,
        change(
            &c_site,
            "room_type_nights",
            &[text(d.dbl()), text(&night)],
            "sold",
            WireValue::Integer(99),
        ),
        change(
            &c_site,
            "room_nights",
            &[text(&d_room), text(&night)],
            "reservation_id",
            WireValue::Text("mine".into()),
        ),
        forged,
        change(
            &c_site,
            "staff_properties",
            &[text("s1"), text(&d.node.property_id)],
            "role",
            WireValue::Text("owner".into()),
        ),
        // And one honest change of C's own, which is merged.
        change(
            &c_site,
            "guests",
            &[text(&own_guest)],
            "property_id",
            WireValue::Text(c.property_id.clone()),
        ),
    ];
    let n = hostile.len() as u64;
    let batch =
        Batch { site_id: c_site.clone(), schema_version: 1, since: 0, until: 1, changes: hostile };
    let r = c.push(&hub, &batch).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["quarantined"], json!(n - 1), "{}", r.text);
    assert_eq!(r.body["applied"], json!(1), "{}", r.text);
    assert_eq!(r.body["received"], json!(1), "C's own cursor moves on: {}", r.text);
    let kinds: Vec<String> = pg
        .query(
            "SELECT kind FROM sync_quarantine WHERE property_id = $1 ORDER BY id",
            &[&c.property_id],
        )
        .await
        .expect("quarantine")
        .iter()
        .map(|r| r.get(0))
        .collect();
    for kind in ["unknown_column", "invalid", "other_property", "forged_site", "node_scope"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }

    // D books the night C tried to claim and edits the guest C tried to poison; E edits it
    // too. Both push and pull as ever, and nothing stays pending.
    let res = d.booked(d.body(d.dbl(), 3, 1)).await;
    let r =
        d.node.put(&format!("/guests/{guest}"), Some(&d.token), json!({ "company": "Navy" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r =
        e.node.put(&format!("/guests/{guest}"), Some(&e.token), json!({ "language": "en" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for h in [&d, &e] {
        settled(h).await;
        let s = status(h).await;
        assert!(s["last_error"].is_null(), "{s}");
    }
    let id = res["id"].as_str().expect("id");
    eventually(Duration::from_secs(10), "D's booking is on the hub", || async {
        (!hub_rows(&pg, "reservations", Some(("id", id))).await.is_empty()).then_some(())
    })
    .await;
    for h in [&d, &e] {
        let g = eventually(Duration::from_secs(10), "both edits reach both properties", || async {
            let r = h.get(&format!("/guests/{guest}")).await;
            (r.body["company"] == "Navy" && r.body["language"] == "en").then_some(r.body)
        })
        .await;
        assert_eq!(g["first_name"], "Grace", "the poisoned clock never arrived");
        assert_eq!(g["last_name"], "Hopper", "the forged change never arrived");
    }
    // The night is D's on the hub, and D's inventory counts its one booking.
    let sold: Vec<String> = pg
        .query(
            "SELECT r.scope FROM sync_rows r WHERE r.tbl = 'room_type_nights'
             AND r.pk = $1",
            &[&crdt::pack(&[text(d.dbl()), text(&night)]).expect("pk")],
        )
        .await
        .expect("rows")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(sold, vec![d.node.property_id.clone()]);
    let nights =
        hub_rows(&pg, "room_type_nights", Some(("property_id", d.node.property_id.as_str()))).await;
    assert!(
        nights.values().all(|row| row["sold"] != json!(99)),
        "C's count never landed: {nights:?}"
    );
    // C's one honest change is there.
    assert_eq!(hub_rows(&pg, "guests", Some(("id", own_guest.as_str()))).await.len(), 1);
}
