//! `kill -9` of an edge or of the hub at random points while they sync, many times over:
//! every booking the edge confirmed reaches the hub, the hub ends with exactly the edge's
//! rows (nothing lost, nothing applied twice), and chain-level profiles written meanwhile at
//! another property reach the killed edge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tests::hub::{EdgeProcess, Hub, edge_rows, enroll_ok, eventually, hub_rows, seeded_dir};
use tokio::sync::Mutex;

use crate::sync::assert_property_converged;

/// A small deterministic generator; the seed is printed so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 =
            self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

async fn login(client: &reqwest::Client, url: &str) -> String {
    let r = client
        .post(format!("{url}/auth/login"))
        .json(&json!({ "email": tests::OWNER_EMAIL, "password": tests::OWNER_PASSWORD }))
        .send()
        .await
        .expect("login");
    let body: Value = r.json().await.expect("json");
    body["access_token"].as_str().expect("access token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_edge_or_the_hub_during_sync_loses_nothing_and_applies_nothing_twice() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    println!("fault schedule seed: {seed}");
    let mut rng = Lcg(seed);

    let mut hub = Hub::start().await;
    let seeded = seeded_dir(40).await;
    enroll_ok(&hub, &seeded.data_dir, &seeded.property_id).await;
    let mut edge = EdgeProcess::start(&seeded.data_dir).await;
    // Another property writes chain-level profiles throughout; the killed edge must get them.
    let other = crate::reservations::hotel().await;
    enroll_ok(&hub, &other.node.data_dir, &other.node.property_id).await;

    let client = reqwest::Client::new();
    let token = login(&client, &edge.url).await;
    let r = client
        .post(format!("{}/guests", edge.url))
        .bearer_auth(&token)
        .json(
            &json!({ "property_id": seeded.property_id, "first_name": "Kim", "last_name": "Ill" }),
        )
        .send()
        .await
        .expect("guest");
    let guest: Value = r.json().await.expect("guest json");
    let guest_id = guest["id"].as_str().expect("guest id").to_string();

    // Bookings run all the time, through the kills; only confirmed ones are counted.
    let confirmed = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let booker = {
        let (confirmed, stop, client, url) =
            (confirmed.clone(), stop.clone(), client.clone(), edge.url.clone());
        let (property, room_type, rate) = (
            seeded.property_id.clone(),
            seeded.inventory.room_types[0].id.clone(),
            seeded.inventory.flexible_rate_id.clone(),
        );
        let start = seeded.business_date;
        tokio::spawn(async move {
            let mut n: i64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let from = start.checked_add(jiff::Span::new().days(n % 300)).expect("date");
                let to = from.checked_add(jiff::Span::new().days(1)).expect("date");
                let sent = client
                    .post(format!("{url}/reservations"))
                    .bearer_auth(&token)
                    .json(&json!({
                        "property_id": property, "room_type_id": room_type, "rate_plan_id": rate,
                        "arrival": from.to_string(), "departure": to.to_string(), "adults": 1,
                        "guest_id": guest_id,
                    }))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 201 => {
                        let body: Value = r.json().await.unwrap_or_default();
                        if let Some(id) = body["id"].as_str() {
                            confirmed.lock().await.push(id.to_string());
                        }
                    }
                    // The edge is down, or the day is full: try the next one.
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
    };

    let mut profiles = 0;
    for round in 0..8 {
        let r = other.post("/guests", json!({
            "property_id": other.node.property_id, "first_name": "Round", "last_name": format!("R{round}") })).await;
        assert_eq!(r.status, 201, "{}", r.text);
        profiles += 1;
        tokio::time::sleep(Duration::from_millis(100 + rng.next(700))).await;
        if rng.next(2) == 0 {
            hub.kill9().await;
            tokio::time::sleep(Duration::from_millis(rng.next(800))).await;
            hub.run().await;
        } else {
            edge.kill9().await;
            tokio::time::sleep(Duration::from_millis(rng.next(300))).await;
            edge.run().await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    booker.await.expect("booker");
    let confirmed = confirmed.lock().await.clone();
    assert!(confirmed.len() >= 20, "bookings kept being made: {}", confirmed.len());

    let pg = hub.client().await;
    let f = Some(("property_id", seeded.property_id.as_str()));
    eventually(Duration::from_secs(60), "the hub holds exactly the edge's bookings", || async {
        let (at_edge, at_hub) = (
            edge_rows(&seeded.data_dir, "reservations", f),
            hub_rows(&pg, "reservations", f).await,
        );
        (at_edge == at_hub).then_some(())
    })
    .await;
    let at_hub = hub_rows(&pg, "reservations", f).await;
    let ids: std::collections::BTreeSet<&str> =
        at_hub.values().filter_map(|r| r["id"].as_str()).collect();
    for id in &confirmed {
        assert!(ids.contains(id.as_str()), "confirmed booking {id} reached the hub");
    }
    eventually(Duration::from_secs(60), "every property table converges", || async {
        let mut same = true;
        for table in crate::sync::PROPERTY_TABLES {
            same &= edge_rows(&seeded.data_dir, table, f) == hub_rows(&pg, table, f).await;
        }
        same.then_some(())
    })
    .await;
    assert_property_converged(&pg, &seeded.data_dir, &seeded.property_id).await;
    // The sold counters still match the nights held: nothing was applied twice.
    let conn =
        rusqlite::Connection::open(seeded.data_dir.join(edge_node::db::DB_FILE)).expect("db");
    let off: i64 = conn
        .query_row(
            "SELECT count(*) FROM room_type_nights t WHERE t.sold != (SELECT count(*) FROM
               reservation_nights n WHERE n.room_type_id = t.room_type_id AND n.night = t.night)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(off, 0);
    // The other property's profiles, written during the kills, reached the killed edge.
    eventually(Duration::from_secs(60), "chain profiles reach the killed edge", || async {
        let guests = edge_rows(&seeded.data_dir, "guests", None);
        let rounds = guests.values().filter(|g| g["first_name"] == "Round").count();
        (rounds == profiles).then_some(())
    })
    .await;
    edge.kill9().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_restored_from_a_backup_older_than_its_last_sync_stops_syncing_and_says_why() {
    let hub = Hub::start().await;
    let seeded = seeded_dir(4).await;
    enroll_ok(&hub, &seeded.data_dir, &seeded.property_id).await;
    // The backup: taken now, before the node's first sync.
    let db_file = seeded.data_dir.join(edge_node::db::DB_FILE);
    let backup = seeded.data_dir.join("backup.db");
    std::fs::copy(&db_file, &backup).expect("backup");

    let mut edge = EdgeProcess::start(&seeded.data_dir).await;
    let client = reqwest::Client::new();
    let token = login(&client, &edge.url).await;
    let status = |client: reqwest::Client, url: String, token: String| async move {
        let r = client.get(format!("{url}/sync/status")).bearer_auth(&token).send().await.ok()?;
        r.json::<Value>().await.ok()
    };
    let r = client
        .post(format!("{}/guests", edge.url))
        .bearer_auth(&token)
        .json(&json!({ "property_id": seeded.property_id, "first_name": "Before", "last_name": "Restore" }))
        .send()
        .await
        .expect("guest");
    assert_eq!(r.status(), 201);
    eventually(Duration::from_secs(30), "the node syncs", || {
        let (c, u, t) = (client.clone(), edge.url.clone(), token.clone());
        async move {
            let s = status(c, u, t).await?;
            (s["state"] == "online" && s["pending_push"] == 0).then_some(())
        }
    })
    .await;

    // The disk dies; the IT person restores last night's backup.
    edge.kill9().await;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(
            seeded.data_dir.join(format!("{}{suffix}", edge_node::db::DB_FILE)),
        );
    }
    std::fs::copy(&backup, &db_file).expect("restore");
    edge.run().await;
    let token = login(&client, &edge.url).await;
    let s = eventually(Duration::from_secs(30), "the node refuses to sync", || {
        let (c, u, t) = (client.clone(), edge.url.clone(), token.clone());
        async move {
            let s = status(c, u, t).await?;
            (s["state"] == "error").then_some(s)
        }
    })
    .await;
    assert!(s["last_error"]["message"].to_string().contains("restored from a backup"), "{s}");
    // The front desk goes on.
    let r = client
        .post(format!("{}/guests", edge.url))
        .bearer_auth(&token)
        .json(&json!({ "property_id": seeded.property_id, "first_name": "After", "last_name": "Restore" }))
        .send()
        .await
        .expect("guest");
    assert_eq!(r.status(), 201);
    edge.kill9().await;
}
