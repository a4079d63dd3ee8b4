//! The edge schema follows the replication rules: every table is classified as replicated or
//! local-only, every replicated table passes `crdt`'s schema check and is replicated, and the
//! node's writes to them are captured.

#[test]
fn every_replicated_edge_table_passes_crdts_schema_rules() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    tests::init_dir(&dir).expect("init");
    let conn = rusqlite_open(&dir);
    for table in edge_node::db::REPLICATED_TABLES {
        if let Err(err) = crdt::check_replicable(&conn, table) {
            panic!("{table}: {err}");
        }
    }
}

#[test]
fn every_edge_table_is_declared_replicated_or_local() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    tests::init_dir(&dir).expect("init");
    let conn = rusqlite_open(&dir);
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("prepare");
    // The crdt crate's own bookkeeping (crdt_*, <table>__crdt_clock) is neither.
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .filter(|t: &String| !t.starts_with("crdt_") && !t.ends_with("__crdt_clock"))
        .collect();
    for table in &tables {
        let replicated = edge_node::db::REPLICATED_TABLES.contains(&table.as_str());
        let local = edge_node::db::LOCAL_TABLES.contains(&table.as_str());
        assert!(
            replicated ^ local,
            "{table} must be in exactly one of REPLICATED_TABLES and LOCAL_TABLES"
        );
    }
    assert_eq!(
        tables.len(),
        edge_node::db::REPLICATED_TABLES.len() + edge_node::db::LOCAL_TABLES.len()
    );
}

#[test]
fn the_replicated_tables_are_replicated_and_the_nodes_writes_are_captured() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("node");
    let report = tests::init_dir(&dir).expect("init");
    let conn = rusqlite_open(&dir);
    let mut declared: Vec<&str> = edge_node::db::REPLICATED_TABLES.to_vec();
    declared.sort_unstable();
    assert_eq!(crdt::replicated_tables(&conn).expect("tables"), declared);
    // The node's site id is the site id its changes carry.
    let site: String =
        crdt::site_id(&conn).expect("site").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(site, report.site_id);
    let changes = crdt::changes_since(&conn, 0, None).expect("changes");
    let tables: std::collections::BTreeSet<&str> =
        changes.iter().map(|c| c.table.as_str()).collect();
    assert_eq!(
        tables.into_iter().collect::<Vec<_>>(),
        ["audit_log", "properties", "staff", "staff_emails", "staff_properties"]
    );
    let property_name =
        changes.iter().find(|c| c.table == "properties" && c.cid == "name").map(|c| c.val.clone());
    assert_eq!(property_name, Some(rusqlite::types::Value::Text("Grand Test Hotel".into())));
}

fn rusqlite_open(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(edge_node::db::DB_FILE)).expect("open")
}
