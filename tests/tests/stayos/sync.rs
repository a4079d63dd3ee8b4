//! Edge ↔ hub sync end to end: the real `stayos-hub` on the machine's real PostgreSQL, edge
//! nodes enrolled with the real `stayos-edge enroll`, their sync agents running inside
//! `serve`. Online propagation, chain-level guest profiles, an outage with concurrent edits,
//! the hub's refusals, and batches replayed out of order.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::hub::{Hub, edge_rows, enroll_ok, eventually, hub_rows};

use crate::reservations::{Hotel, hotel};

/// Tables owned by a property that carry its id in `property_id`: what an edge and the hub
/// must agree on for that property.
pub(crate) const PROPERTY_TABLES: &[&str] = &[
    "room_types",
    "rooms",
    "room_blocks",
    "room_status_events",
    "amenities",
    "cancellation_policies",
    "rate_plans",
    "reservations",
    "reservation_nights",
    "room_type_nights",
    "reservation_events",
];

/// A hotel enrolled with the hub, its first sync finished.
pub(crate) async fn enrolled(hub: &Hub) -> Hotel {
    let h = hotel().await;
    enroll_ok(hub, &h.node.data_dir, &h.node.property_id).await;
    settled(&h).await;
    h
}

pub(crate) async fn status(h: &Hotel) -> Value {
    let r = h.get("/sync/status").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Waits until the node's agent is online with nothing left to push.
pub(crate) async fn settled(h: &Hotel) {
    eventually(Duration::from_secs(30), "the node syncs and has nothing pending", || async {
        let s = status(h).await;
        (s["state"] == "online" && s["pending_push"] == 0).then_some(())
    })
    .await;
}

/// Every row of the property's tables (and its `properties` row) is the same at the edge
/// and at the hub.
pub(crate) async fn assert_property_converged(
    hub_db: &tokio_postgres::Client,
    data_dir: &std::path::Path,
    property_id: &str,
) {
    for table in PROPERTY_TABLES {
        let f = Some(("property_id", property_id));
        assert_eq!(
            edge_rows(data_dir, table, f),
            hub_rows(hub_db, table, f).await,
            "{table} differs between the edge and the hub"
        );
    }
    let f = Some(("id", property_id));
    assert_eq!(edge_rows(data_dir, "properties", f), hub_rows(hub_db, "properties", f).await);
}

async fn converged(hub_db: &tokio_postgres::Client, h: &Hotel) -> bool {
    for table in PROPERTY_TABLES {
        let f = Some(("property_id", h.node.property_id.as_str()));
        if edge_rows(&h.node.data_dir, table, f) != hub_rows(hub_db, table, f).await {
            return false;
        }
    }
    true
}

pub(crate) async fn new_guest(h: &Hotel, first: &str, last: &str) -> String {
    let r = h
        .post(
            "/guests",
            json!({ "property_id": h.node.property_id, "first_name": first, "last_name": last }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.str("id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_booking_reaches_the_hub_within_a_second_and_chain_guest_edits_travel_between_properties()
{
    let hub = Hub::start().await;
    let a = enrolled(&hub).await;
    let b = enrolled(&hub).await;
    let pg = hub.client().await;

    let res = a.booked(a.body(a.dbl(), 1, 2)).await;
    let booked_at = Instant::now();
    let id = res["id"].as_str().expect("id").to_string();
    eventually(Duration::from_secs(1), "the booking is on the hub within a second", || async {
        let rows = hub_rows(&pg, "reservations", Some(("id", id.as_str()))).await;
        (!rows.is_empty()).then_some(())
    })
    .await;
    assert!(booked_at.elapsed() < Duration::from_secs(1));
    eventually(Duration::from_secs(10), "edge A and the hub agree", || async {
        converged(&pg, &a).await.then_some(())
    })
    .await;
    assert_property_converged(&pg, &a.node.data_dir, &a.node.property_id).await;

    // A guest profile is chain-level: made at A, read and edited at B, the edit back at A.
    let guest = new_guest(&a, "Grace", "Hopper").await;
    let at_b = eventually(Duration::from_secs(5), "the profile reaches property B", || async {
        let r = b.get(&format!("/guests/{guest}")).await;
        (r.status == 200).then_some(r.body)
    })
    .await;
    assert_eq!(at_b["last_name"], "Hopper");
    assert_eq!(at_b["property_id"].as_str(), Some(a.node.property_id.as_str()));
    let r =
        b.node.put(&format!("/guests/{guest}"), Some(&b.token), json!({ "company": "Navy" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    eventually(Duration::from_secs(5), "B's edit reaches property A", || async {
        let r = a.get(&format!("/guests/{guest}")).await;
        (r.body["company"] == "Navy").then_some(())
    })
    .await;

    // A property's own records stay with it: B never receives A's reservations.
    let f = Some(("property_id", a.node.property_id.as_str()));
    assert!(edge_rows(&b.node.data_dir, "reservations", f).is_empty());
    assert!(edge_rows(&b.node.data_dir, "rooms", f).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_a_hub_outage_both_properties_keep_working_and_converge_with_one_winner() {
    let mut hub = Hub::start().await;
    let a = enrolled(&hub).await;
    let b = enrolled(&hub).await;
    let guest = new_guest(&a, "Ada", "Lovelace").await;
    eventually(Duration::from_secs(5), "the profile reaches B", || async {
        (b.get(&format!("/guests/{guest}")).await.status == 200).then_some(())
    })
    .await;

    let r = a.post(&format!("/guests/{guest}/loyalty/enroll"), json!({})).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    eventually(Duration::from_secs(5), "the loyalty account reaches B", || async {
        let r = b.get(&format!("/guests/{guest}/loyalty")).await;
        r.body["account"]["balance"].is_i64().then_some(())
    })
    .await;

    hub.stop().await;
    let mut booked = Vec::new();
    for h in [&a, &b] {
        // Bookings, a check-in and a check-out, a new guest: the front desk goes on.
        for from in 0..4 {
            booked.push((h.node.property_id.clone(), h.booked(h.body(h.dbl(), from, 1)).await));
        }
        let stay = h.booked(h.body(h.ste(), 0, 2)).await;
        let id = stay["id"].as_str().expect("id");
        let r = h.action(id, "check-in", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let r = h.action(id, "check-out", json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        new_guest(h, "Offline", "Walk-in").await;
    }
    // The same profile edited at both properties while apart: one column each, and one
    // column at both.
    for (h, phone, company) in
        [(&a, "+44 20 7946 0001", "Analytical Engines"), (&b, "+33 1 23 45 67 89", "")]
    {
        let mut patch = json!({ "phone": phone });
        if !company.is_empty() {
            patch["company"] = json!(company);
        }
        let r = h.node.put(&format!("/guests/{guest}"), Some(&h.token), patch).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r =
        b.node.put(&format!("/guests/{guest}"), Some(&b.token), json!({ "language": "fr" })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Points given at both properties while apart: both count once the chain is whole again.
    for (h, points) in [(&a, 100), (&b, 50)] {
        let r = h
            .post(
                &format!("/guests/{guest}/loyalty/adjustments"),
                json!({ "points": points, "reason": "goodwill" }),
            )
            .await;
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    for h in [&a, &b] {
        eventually(Duration::from_secs(20), "the agent notices the hub is gone", || async {
            let s = status(h).await;
            (s["state"] == "offline" && s["pending_push"].as_u64() > Some(0)).then_some(())
        })
        .await;
    }

    hub.run().await;
    let pg = hub.client().await;
    for h in [&a, &b] {
        settled(h).await;
        eventually(Duration::from_secs(30), "the property converges", || async {
            converged(&pg, h).await.then_some(())
        })
        .await;
        assert_property_converged(&pg, &h.node.data_dir, &h.node.property_id).await;
    }
    for (property, res) in &booked {
        let id = res["id"].as_str().expect("id");
        let rows = hub_rows(&pg, "reservations", Some(("id", id))).await;
        let row = rows.values().next().unwrap_or_else(|| panic!("booking {id} is on the hub"));
        assert_eq!(row["property_id"].as_str(), Some(property.as_str()));
    }
    // Chain-level profiles: the same everywhere, the concurrent phone edit with one winner.
    let hub_guests = eventually(Duration::from_secs(30), "guests converge", || async {
        let (ga, gb) = (
            edge_rows(&a.node.data_dir, "guests", None),
            edge_rows(&b.node.data_dir, "guests", None),
        );
        let gh = hub_rows(&pg, "guests", None).await;
        (ga == gb && gb == gh).then_some(gh)
    })
    .await;
    let profile =
        hub_guests.values().find(|g| g["id"] == json!(guest)).expect("the profile on the hub");
    let phone = profile["phone"].as_str().expect("phone").to_string();
    assert!(phone.starts_with("+44") || phone.starts_with("+33"), "{phone}");
    assert_eq!(profile["company"], "Analytical Engines", "A's column edit kept");
    assert_eq!(profile["language"], "fr", "B's column edit kept");
    for h in [&a, &b] {
        let g = h.get(&format!("/guests/{guest}")).await;
        assert_eq!(g.body["phone"].as_str(), Some(phone.as_str()), "the same winner everywhere");
    }
    assert_eq!(hub_guests.values().filter(|g| g["first_name"] == "Offline").count(), 2);
    for h in [&a, &b] {
        let points = eventually(Duration::from_secs(30), "loyalty converges", || async {
            let r = h.get(&format!("/guests/{guest}/loyalty")).await;
            let balance = r.body["account"]["balance"].as_i64();
            (balance == Some(150)).then_some(balance)
        })
        .await;
        assert_eq!(points, Some(150), "both properties' points count");
    }
}

/// A node that is enrolled but not serving: the test plays its agent by hand, with the
/// node's real credential and the changes of its real database.
pub(crate) struct Manual {
    pub data_dir: std::path::PathBuf,
    pub property_id: String,
    pub credential: String,
    _seeded: tests::hub::SeededDir,
}

pub(crate) async fn manual_node(hub: &Hub) -> Manual {
    let seeded = tests::hub::seeded_dir(2).await;
    // A few more transactions after the seed's one, so the changes span several versions.
    let db = edge_node::db::Db::open(&seeded.data_dir, 1).expect("open");
    for i in 0..6 {
        let property = seeded.property_id.clone();
        db.write(move |tx| {
            tx.execute(
                "INSERT INTO guests (id, property_id, first_name, last_name) VALUES (?1, ?2, 'Manual', ?3)",
                rusqlite::params![format!("manual-{i}-{property}"), property, format!("M{i}")],
            )
            .map_err(edge_node::db::DbError::from)
        })
        .await
        .expect("guest");
    }
    db.close();
    enroll_ok(hub, &seeded.data_dir, &seeded.property_id).await;
    let conn =
        rusqlite::Connection::open(seeded.data_dir.join(edge_node::db::DB_FILE)).expect("open");
    let credential: String = conn
        .query_row("SELECT value FROM node_meta WHERE key = 'hub_credential'", [], |r| r.get(0))
        .expect("the credential is stored");
    Manual {
        data_dir: seeded.data_dir.clone(),
        property_id: seeded.property_id.clone(),
        credential,
        _seeded: seeded,
    }
}

impl Manual {
    /// The node's changes as batches of about `rows` rows each, as its agent would push them.
    fn batches(&self, rows: usize) -> Vec<crdt::protocol::Batch> {
        tests::hub::outgoing_batches(&self.data_dir, rows)
    }

    pub(crate) async fn push(&self, hub: &Hub, batch: &crdt::protocol::Batch) -> tests::Resp {
        let resp = reqwest::Client::new()
            .post(format!("{}/v1/sync/push", hub.url))
            .bearer_auth(&self.credential)
            .header("content-type", crdt::protocol::CONTENT_TYPE)
            .header("content-encoding", crdt::protocol::CONTENT_ENCODING)
            .body(crdt::protocol::encode(batch))
            .send()
            .await
            .expect("push");
        tests::into_resp(resp).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reordered_and_duplicated_batches_converge_and_foreign_changes_or_revoked_pushes_are_refused()
 {
    let hub = Hub::start_with(true).await;
    let a = manual_node(&hub).await;
    let b = manual_node(&hub).await;
    let pg = hub.client().await;

    // Every batch twice, in a shuffled order (a fixed permutation: reversed halves
    // interleaved), plus the first one again at the end.
    let batches = a.batches(1);
    assert!(batches.len() >= 4, "the seed spans several batches: {}", batches.len());
    let mut order: Vec<usize> = (0..batches.len()).rev().collect();
    order.extend((0..batches.len()).step_by(2));
    order.extend((1..batches.len()).step_by(2));
    order.push(0);
    let mut received = 0;
    for i in order {
        let r = a.push(&hub, &batches[i]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        received = r.body["received"].as_i64().expect("received");
    }
    // Everything is merged, in whatever order it came...
    assert_property_converged(&pg, &a.data_dir, &a.property_id).await;
    // ...but the hub acknowledges only what it holds without a gap, so the node resumes from
    // there; the batches it sends again change nothing.
    let cells: i64 = pg.query_one("SELECT count(*) FROM sync_cells", &[]).await.expect("n").get(0);
    let resume_from = received;
    for batch in batches.iter().filter(|b| b.until > resume_from) {
        let r = a.push(&hub, batch).await;
        assert_eq!(r.status, 200, "{}", r.text);
        received = r.body["received"].as_i64().expect("received");
    }
    assert_eq!(received, batches.last().expect("batches").until, "the hub acknowledges all");
    let after: i64 = pg.query_one("SELECT count(*) FROM sync_cells", &[]).await.expect("n").get(0);
    assert_eq!(cells, after, "resent batches add nothing");
    assert_property_converged(&pg, &a.data_dir, &a.property_id).await;

    // A's credential cannot write B's rows: each of them is quarantined with its reason
    // (chain-level rows, guests, are anyone's to write), the cursor moves on, and the
    // refusal is audited.
    let foreign = b.batches(10_000).remove(0);
    let mut as_a = foreign.clone();
    let a_site = {
        let conn =
            rusqlite::Connection::open(a.data_dir.join(edge_node::db::DB_FILE)).expect("open");
        crdt::site_id(&conn).expect("site")
    };
    as_a.site_id = a_site.clone();
    for c in &mut as_a.changes {
        c.site_id = a_site.clone();
    }
    as_a.since = received;
    as_a.until = received + 1;
    let r = a.push(&hub, &as_a).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["quarantined"].as_u64().expect("quarantined") > 0, "{}", r.text);
    assert_eq!(r.body["received"].as_i64(), Some(received + 1), "{}", r.text);
    let f = Some(("property_id", b.property_id.as_str()));
    assert!(hub_rows(&pg, "reservations", f).await.is_empty());
    assert!(hub_rows(&pg, "rooms", f).await.is_empty(), "nothing of B's property is kept");
    let kinds: Vec<String> = pg
        .query(
            "SELECT DISTINCT kind FROM sync_quarantine WHERE property_id = $1",
            &[&a.property_id],
        )
        .await
        .expect("quarantine")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, vec!["other_property".to_string()]);
    // Another node's site id on the batch is refused whole.
    let r = a.push(&hub, &foreign).await;
    assert_eq!((r.status, r.code()), (403, "wrong_site"), "{}", r.text);
    let audited: i64 = pg
        .query_one("SELECT count(*) FROM hub_audit WHERE property_id = $1", &[&a.property_id])
        .await
        .expect("audit")
        .get(0);
    assert!(audited >= 2, "refusals are audited ({audited} rows)");

    // A revoked node is refused.
    let node_id = a.credential.split('.').next().expect("node id").to_string();
    let out = hub.cli(&["revoke-node", "--node-id", &node_id]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = a.push(&hub, &batches[0]).await;
    assert_eq!((r.status, r.code()), (403, "node_revoked"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_node_says_so_in_its_sync_status_and_keeps_working_locally() {
    let hub = Hub::start().await;
    let a = enrolled(&hub).await;
    let s = status(&a).await;
    let node_id = s["node_id"].as_str().expect("node id").to_string();
    let out = hub.cli(&["revoke-node", "--node-id", &node_id]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let res = a.booked(a.body(a.dbl(), 2, 1)).await;
    let s = eventually(Duration::from_secs(20), "the agent reports the revocation", || async {
        let s = status(&a).await;
        (s["state"] == "error").then_some(s)
    })
    .await;
    assert!(s["last_error"]["message"].to_string().contains("revoked"), "{s}");
    let pg = hub.client().await;
    let id = res["id"].as_str().expect("id");
    assert!(hub_rows(&pg, "reservations", Some(("id", id))).await.is_empty());
}
