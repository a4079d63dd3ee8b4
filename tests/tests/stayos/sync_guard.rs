//! The edge's boundary for incoming changes (`edge_node::sync::guard`), end to end: what a
//! changes file or the hub's database slips in — a staff account made owner, another
//! property's row, a poisoned clock — is refused and quarantined with its reason, the good
//! changes next to it are applied, and sync goes on. The hub is the real `stayos-hub` on the
//! real PostgreSQL; the hostile rows are written straight into its database, as anyone who
//! can write there could.

use std::process::{Command, Output};
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use serde_json::{Value, json};
use tests::edge_binary;
use tests::hub::{Hub, edge_rows, enroll_ok, eventually, hub_rows};

use crate::reservations::{Hotel, hotel};

fn edge(args: &[&str]) -> Output {
    let mut cmd = Command::new(edge_binary().expect("stayos-edge binary"));
    for (key, _) in std::env::vars() {
        if key.starts_with("STAYOS_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args).output().expect("run stayos-edge")
}

fn pk(id: &str) -> Vec<u8> {
    crdt::pack(&[crdt::Value::Text(id.into())]).expect("pack")
}

const STRANGER: [u8; 16] = [0xE1; 16];

/// A change as another site wrote it.
fn change(table: &str, id: &str, cid: &str, val: SqlValue, col_version: i64) -> crdt::Change {
    crdt::Change {
        table: table.into(),
        pk: pk(id),
        cid: cid.into(),
        val,
        col_version,
        db_version: 7,
        site_id: STRANGER.to_vec(),
        cl: 1,
        seq: 0,
    }
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.into())
}

fn staff_role(h: &Hotel, id: &str) -> Value {
    let rows = edge_rows(&h.node.data_dir, "staff", Some(("id", id)));
    rows.values().next().expect("the account")["role"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changes_file_cannot_make_a_front_desk_account_an_owner_and_its_good_lines_apply() {
    let h = hotel().await;
    let clerk = h.node.register(&h.token, "fd@grand-test.example", "front_desk").await;
    let clerk_id = clerk["id"].as_str().expect("id").to_string();
    let lines = [
        // The attack: one line, the clerk's role with a clock that wins.
        crdt::wire::change_line(&change("staff", &clerk_id, "role", text("owner"), 1000)),
        // A guest profile from another property's node: chain-level, welcome.
        crdt::wire::change_line(&change("guests", "g-file", "first_name", text("Filed"), 1)),
        // A column this schema does not have.
        crdt::wire::change_line(&change("guests", "g-file", "zz", text("x"), 1)),
        // Another property's room.
        crdt::wire::change_line(&change("rooms", "r-x", "property_id", text("elsewhere"), 1)),
        // Not a change at all.
        "{\"table\":".to_string(),
    ];
    let file = h.node.data_dir.join("../hostile.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").expect("write");
    let out = edge(&[
        "changes",
        "import",
        "--data-dir",
        h.node.data_dir.to_str().expect("utf-8"),
        file.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    for expected in [
        "line 1: refused (node_scope)",
        "line 3: refused (invalid): unknown column",
        "line 4: refused (other_property)",
        "line 5: refused (malformed)",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
    assert!(!stderr.contains("line 2:"), "{stderr}");

    assert_eq!(staff_role(&h, &clerk_id), "front_desk");
    let (clerk_token, _) = h.node.tokens("fd@grand-test.example", tests::STAFF_PASSWORD).await;
    assert_eq!(h.node.get("/auth/me", Some(&clerk_token)).await.str("role"), "front_desk");
    let guest = edge_rows(&h.node.data_dir, "guests", Some(("id", "g-file")));
    assert_eq!(guest.values().next().expect("the good line applied")["first_name"], "Filed");
    assert!(edge_rows(&h.node.data_dir, "rooms", Some(("id", "r-x"))).is_empty());

    // Owners and managers see what was refused, newest first; a clerk may not.
    let q = h.get("/sync/quarantine").await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.body["total"], 4);
    let entries = q.body["items"].as_array().expect("entries");
    let kinds: Vec<&str> = entries.iter().map(|e| e["reason_kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["malformed", "other_property", "invalid", "node_scope"]);
    let staff = &entries[3];
    assert_eq!((staff["source"].as_str(), staff["table"].as_str()), (Some("file"), Some("staff")));
    assert_eq!(staff["cid"], "role");
    let (kept, _) =
        crdt::wire::parse_line(staff["change"].as_str().expect("change")).expect("line");
    assert_eq!(kept.val, text("owner"), "the refused change is kept whole");
    assert_eq!(h.node.get("/sync/quarantine", Some(&clerk_token)).await.status, 403);
    let bad_limit = h.get("/sync/quarantine?limit=0").await;
    assert_eq!(bad_limit.status, 422, "{}", bad_limit.text);
    assert!(bad_limit.text.contains("limit"), "{}", bad_limit.text);
    let page = h.get("/sync/quarantine?limit=2").await;
    assert_eq!(page.body["items"].as_array().expect("entries").len(), 2);
    let cursor = page.body["next_cursor"].as_str().expect("next page");
    let older = h.get(&format!("/sync/quarantine?cursor={cursor}")).await;
    assert_eq!(older.body["items"][0]["reason_kind"], "invalid");

    let status = h.get("/sync/status").await.body;
    assert_eq!(status["quarantined"], 4, "{status}");
    assert_eq!(status["quarantine_recent"][0]["source"], "file");
    assert_eq!(status["hub_quarantined"], 0);
    h.node.stop().await;
}

/// The hub's merge lock (cloud-sync's `store::MERGE_LOCK`): a version drawn under it commits
/// in order, so pulls never skip it.
const HUB_MERGE_LOCK: i64 = 0x5354_4159_4f53_4d32;

/// Writes cells straight into the hub's database as one new hub version, for the property
/// `scope` ('' for chain-level rows), and tells the hub about the new head.
async fn inject(pg: &mut tokio_postgres::Client, cells: &[(&str, crdt::Change)]) {
    let tx = pg.transaction().await.expect("begin");
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&HUB_MERGE_LOCK]).await.expect("lock");
    let version: i64 =
        tx.query_one("SELECT nextval('sync_version')", &[]).await.expect("version").get(0);
    for (seq, (scope, c)) in cells.iter().enumerate() {
        tx.execute(
            "INSERT INTO sync_rows (tbl, pk, scope, cl) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tbl, pk) DO NOTHING",
            &[&c.table, &c.pk, scope, &c.cl],
        )
        .await
        .expect("row");
        tx.execute(
            "INSERT INTO sync_cells (tbl, pk, cid, val, col_version, cl, site_id, scope, version, seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (tbl, pk, cid) DO UPDATE SET val = excluded.val,
               col_version = excluded.col_version, site_id = excluded.site_id,
               version = excluded.version, seq = excluded.seq",
            &[
                &c.table,
                &c.pk,
                &c.cid,
                &cloud_sync::value::encode(&c.val),
                &c.col_version,
                &c.cl,
                &c.site_id,
                scope,
                &version,
                &(seq as i32),
            ],
        )
        .await
        .expect("cell");
    }
    tx.execute("SELECT pg_notify('stayos_hub', $1)", &[&format!("head:{version}")])
        .await
        .expect("notify");
    tx.commit().await.expect("commit");
}

async fn status(h: &Hotel) -> Value {
    let r = h.get("/sync/status").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_rows_in_the_hubs_database_are_quarantined_and_the_node_keeps_syncing() {
    let hub = Hub::start_with(true).await;
    let h = hotel().await;
    let owner_id = h.get("/auth/me").await.str("id");
    enroll_ok(&hub, &h.node.data_dir, &h.node.property_id).await;
    eventually(Duration::from_secs(60), "the first sync", || async {
        let s = status(&h).await;
        (s["state"] == "online" && s["pending_push"] == 0).then_some(())
    })
    .await;

    let ours = h.node.property_id.as_str();
    let tail = &ours[ours.len() - 12..];
    let chain_guest = format!("guest-chain-{tail}");
    let mut pg = hub.client().await;
    inject(
        &mut pg,
        &[
            // A room of another property, filed under ours.
            (ours, change("rooms", "r-evil", "property_id", text("another-property"), 1)),
            (ours, change("rooms", "r-evil", "number", text("666"), 1)),
            // The owner demoted (or anyone's account changed): staff rows never come in.
            (ours, change("staff", &owner_id, "role", text("housekeeping"), 1000)),
            // A poisoned clock on our guest.
            ("", change("guests", &h.guest, "first_name", text("Poison"), i64::MAX)),
            // And an honest chain-level guest, in the same version.
            ("", change("guests", &chain_guest, "first_name", text("Chain"), 1)),
        ],
    )
    .await;

    let arrived = eventually(Duration::from_secs(30), "the good change arrives", || async {
        let rows = edge_rows(&h.node.data_dir, "guests", Some(("id", chain_guest.as_str())));
        rows.values().next().cloned()
    })
    .await;
    assert_eq!(arrived["first_name"], "Chain");
    assert_eq!(staff_role(&h, &owner_id), "owner");
    assert!(edge_rows(&h.node.data_dir, "rooms", Some(("id", "r-evil"))).is_empty());
    let ada = edge_rows(&h.node.data_dir, "guests", Some(("id", h.guest.as_str())));
    assert_eq!(ada.values().next().expect("our guest")["first_name"], "Ada");

    let s = status(&h).await;
    assert_eq!(s["quarantined"], 4, "{s}");
    let reasons: Vec<&str> = s["quarantine_recent"]
        .as_array()
        .expect("recent")
        .iter()
        .map(|n| n["reason"].as_str().expect("reason"))
        .collect();
    assert!(reasons.iter().any(|r| r.contains("another-property")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("kept on each node")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("col_version")), "{reasons:?}");
    let q = h.get("/sync/quarantine").await.body;
    assert!(q["items"].as_array().expect("entries").iter().all(|e| e["source"] == "hub"));
    let metrics = h.node.get("/metrics", None).await.text;
    assert!(
        metrics.lines().any(|l| l.starts_with("stayos_sync_quarantined_total")
            && l.contains("source=\"hub\"")
            && l.contains("reason_kind=\"node_scope\"")),
        "{metrics}"
    );

    // Sync goes on both ways: the node's next writes reach the hub and nothing stays
    // pending; the hub's next version arrives (the cursor moved past the refused ones).
    let r = h
        .post(
            "/guests",
            json!({ "property_id": ours, "first_name": "After", "last_name": "Wards" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let after = r.str("id");
    eventually(Duration::from_secs(30), "the node's new guest reaches the hub", || async {
        let on_hub = hub_rows(&pg, "guests", Some(("id", after.as_str()))).await;
        let s = status(&h).await;
        (!on_hub.is_empty() && s["pending_push"] == 0 && s["state"] == "online").then_some(())
    })
    .await;
    let later = format!("guest-later-{tail}");
    inject(&mut pg, &[("", change("guests", &later, "first_name", text("Later"), 1))]).await;
    eventually(Duration::from_secs(30), "the hub's next version arrives", || async {
        let rows = edge_rows(&h.node.data_dir, "guests", Some(("id", later.as_str())));
        (!rows.is_empty()).then_some(())
    })
    .await;
    assert_eq!(status(&h).await["quarantined"], 4, "nothing refused twice");
    h.node.stop().await;
}
