//! The audit log: auth events are recorded, readable by owners and auditors, and the hash
//! chain verifies.

use serde_json::json;
use tests::{OWNER_EMAIL, OWNER_PASSWORD, STAFF_PASSWORD, TestNode};

#[tokio::test]
async fn auth_events_are_in_the_audit_log_newest_first_and_the_chain_is_intact() {
    let node = TestNode::spawn().await;
    node.login(OWNER_EMAIL, "a-wrong-password-here").await;
    let (owner, refresh) = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await;
    node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let rotated = node.post("/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    node.post("/auth/refresh", None, json!({ "refresh_token": refresh })).await;
    let owner = node.tokens(OWNER_EMAIL, OWNER_PASSWORD).await.0;
    assert_eq!(rotated.status, 200);

    let page = node.get("/audit", Some(&owner)).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let events: Vec<&str> = page.body["items"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["event"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        events,
        [
            "login_succeeded",
            "refresh_token_reuse",
            "staff_registered",
            "login_succeeded",
            "login_failed",
            "staff_registered",
            "node_initialised"
        ]
    );
    let failed = &page.body["items"][4];
    assert_eq!(failed["details"]["reason"], "wrong_password");
    assert_eq!(failed["ip"], "127.0.0.1");

    let only_failures = node.get("/audit?event=login_failed", Some(&owner)).await;
    assert_eq!(only_failures.body["items"].as_array().map(Vec::len), Some(1));
    let paged = node.get("/audit?limit=2", Some(&owner)).await;
    let cursor = paged.body["next_cursor"].as_str().expect("next page");
    let older = node.get(&format!("/audit?limit=2&cursor={cursor}"), Some(&owner)).await;
    assert_eq!(older.body["items"][0]["event"], "staff_registered");

    let verify = node.get("/audit/verify", Some(&owner)).await;
    assert_eq!(
        (verify.body["intact"].as_bool(), verify.body["entries"].as_u64()),
        (Some(true), Some(7))
    );
    node.stop().await;
}

#[tokio::test]
async fn auditors_read_the_log_and_clerks_do_not() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    node.register(&owner, "ada@grand-test.example", "auditor").await;
    node.register(&owner, "nia@grand-test.example", "front_desk").await;
    let (auditor, _) = node.tokens("ada@grand-test.example", STAFF_PASSWORD).await;
    let (clerk, _) = node.tokens("nia@grand-test.example", STAFF_PASSWORD).await;
    assert_eq!(node.get("/audit", Some(&auditor)).await.status, 200);
    let denied = node.get("/audit", Some(&clerk)).await;
    assert_eq!((denied.status, denied.code()), (403, "missing_permission"));
    assert_eq!(denied.body["error"]["details"]["permission"], "audit.read");
    node.stop().await;
}

#[tokio::test]
async fn bad_audit_queries_name_the_parameter() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    for (query, field) in
        [("limit=0", "limit"), ("limit=abc", "limit"), ("cursor=x", "cursor"), ("sort=asc", "sort")]
    {
        let resp = node.get(&format!("/audit?{query}"), Some(&owner)).await;
        assert_eq!((resp.status, resp.field()), (422, field), "{query}: {}", resp.text);
    }
    node.stop().await;
}

fn entries(resp: &tests::Resp) -> Vec<serde_json::Value> {
    resp.body["items"].as_array().expect("entries").clone()
}

#[tokio::test]
async fn every_entry_names_its_property_and_an_auditor_of_one_property_reads_only_that() {
    let node = TestNode::spawn().await;
    let home = node.property_id.clone();
    let owner = node.owner_token().await;
    let created = node
        .post(
            "/properties",
            Some(&owner),
            json!({ "name": "Second House", "timezone": "Europe/Paris", "currency": "EUR" }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let second = created.str("id");
    let updated = node
        .put(&format!("/properties/{second}"), Some(&owner), json!({ "name": "Second House II" }))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    let auditor = node
        .post(
            "/auth/register",
            Some(&owner),
            json!({ "email": "ada@grand-test.example", "name": "Ada Auditor",
                    "password": STAFF_PASSWORD, "role": "auditor", "properties": [second] }),
        )
        .await;
    assert_eq!(auditor.status, 201, "{}", auditor.text);
    let (auditor, _) = node.tokens("ada@grand-test.example", STAFF_PASSWORD).await;

    // The owner reads everything; each entry says which property it is filed under.
    let all = node.get("/audit", Some(&owner)).await;
    assert_eq!(all.status, 200, "{}", all.text);
    let by_event = |event: &str| {
        entries(&all)
            .into_iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} in {}", all.text))["property_id"]
            .clone()
    };
    assert_eq!(by_event("node_initialised"), json!(home));
    assert_eq!(by_event("property_created"), json!(second));
    assert_eq!(by_event("property_updated"), json!(second));
    // Once the node holds two properties (not enrolled), node-level events belong to none.
    assert_eq!(by_event("staff_registered"), json!(null));

    // The auditor of the second property reads its entries only.
    let theirs = node.get("/audit", Some(&auditor)).await;
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    let events: Vec<_> = entries(&theirs).iter().map(|e| e["event"].clone()).collect();
    assert_eq!(events, [json!("property_updated"), json!("property_created")]);
    let filtered = node.get(&format!("/audit?property_id={second}"), Some(&owner)).await;
    assert_eq!(entries(&filtered).len(), 2, "{}", filtered.text);
    assert!(entries(&filtered).iter().all(|e| e["property_id"] == json!(second)));
    let home_only = node.get(&format!("/audit?property_id={home}"), Some(&owner)).await;
    assert!(entries(&home_only).iter().all(|e| e["property_id"] == json!(home)));
    assert!(entries(&home_only).iter().any(|e| e["event"] == "node_initialised"));

    let foreign = node.get(&format!("/audit?property_id={home}"), Some(&auditor)).await;
    assert_eq!((foreign.status, foreign.code()), (404, "not_found"), "{}", foreign.text);
    let empty = node.get("/audit?property_id=", Some(&owner)).await;
    assert_eq!((empty.status, empty.field()), (422, "property_id"));
    node.stop().await;
}

#[tokio::test]
async fn the_audit_key_is_a_private_file_and_every_entry_is_keyed_from_the_first() {
    let node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    let path = node.data_dir.join(edge_node::audit::key::AUDIT_KEY_FILE);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("audit key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let verify = node.get("/audit/verify", Some(&owner)).await;
    assert_eq!(verify.status, 200, "{}", verify.text);
    assert_eq!(
        (&verify.body["intact"], &verify.body["keyed_from_seq"], &verify.body["unkeyed_entries"]),
        (&json!(true), &json!(1), &json!(0))
    );
    assert_eq!(verify.body["anchor"], "none");
    node.stop().await;
}

/// Opens a stopped node's database as someone with the disk would.
fn offline_db(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(edge_node::db::DB_FILE)).expect("open offline")
}

#[tokio::test]
async fn dropped_append_only_triggers_are_back_after_a_restart_with_a_warning_entry() {
    let mut node = TestNode::spawn().await;
    node.restart(|dir| {
        offline_db(dir)
            .execute_batch(
                "DROP TRIGGER audit_log_is_append_only_update;
                 DROP TRIGGER audit_log_is_append_only_delete;",
            )
            .expect("drop the triggers");
    })
    .await;
    let owner = node.owner_token().await;
    let restored = node.get("/audit?event=audit_triggers_restored", Some(&owner)).await;
    assert_eq!(entries(&restored).len(), 1, "{}", restored.text);
    assert_eq!(restored.body["items"][0]["details"]["triggers"].as_array().map(Vec::len), Some(2));
    for sql in ["UPDATE audit_log SET event = 'nothing' WHERE seq = 1", "DELETE FROM audit_log"] {
        let refused = node
            .db()
            .write(move |tx| -> Result<_, edge_node::db::DbError> { Ok(tx.execute(sql, [])?) })
            .await;
        assert!(
            refused.as_ref().is_err_and(|e| e.to_string().contains("append-only")),
            "{sql}: {refused:?}"
        );
    }
    let verify = node.get("/audit/verify", Some(&owner)).await;
    assert_eq!(verify.body["intact"], true, "{}", verify.text);
    node.stop().await;
}

#[tokio::test]
async fn deleting_the_newest_entries_fails_verification_against_the_hubs_anchor() {
    let mut node = TestNode::spawn().await;
    let owner = node.owner_token().await;
    for email in ["a@grand-test.example", "b@grand-test.example", "c@grand-test.example"] {
        node.register(&owner, email, "front_desk").await;
    }
    // The hub's anchor: the newest entry it stored, as the sync agent records it.
    let head = node.get("/audit?limit=1", Some(&owner)).await;
    let (seq, hash) = (
        head.body["items"][0]["seq"].as_i64().expect("seq"),
        head.body["items"][0]["hash"].as_str().expect("hash").to_string(),
    );
    let anchor = json!({ "seq": seq, "hash": hash }).to_string();
    node.db()
        .write(move |tx| -> Result<_, edge_node::db::DbError> {
            tx.execute(
                "INSERT OR REPLACE INTO node_meta (key, value) VALUES ('audit_anchor', ?1)",
                [anchor],
            )?;
            Ok(())
        })
        .await
        .expect("anchor");
    let verify = node.get("/audit/verify", Some(&owner)).await;
    assert_eq!((&verify.body["intact"], &verify.body["anchor"]), (&json!(true), &json!("held")));

    // Someone with the disk deletes the three newest entries (the chain that is left is
    // internally consistent).
    node.restart(|dir| {
        let conn = offline_db(dir);
        // Capture triggers too: they call functions only the node registers.
        let triggers: Vec<String> = conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .expect("triggers");
        for name in triggers {
            conn.execute_batch(&format!("DROP TRIGGER \"{name}\";")).expect("drop");
        }
        conn.execute("DELETE FROM audit_log WHERE seq > ?1", [seq - 3]).expect("truncate");
    })
    .await;
    let owner = node.owner_token().await;
    let verify = node.get("/audit/verify", Some(&owner)).await;
    assert_eq!(verify.status, 200, "{}", verify.text);
    assert_eq!(verify.body["intact"], false, "{}", verify.text);
    assert_eq!(verify.body["first_broken_seq"], json!(null));
    assert_eq!(verify.body["anchor"], "truncated", "{}", verify.text);
    let problem = verify.str("problem");
    assert!(problem.contains(&format!("the hub holds entry {seq}")), "{problem}");
    node.stop().await;
}
