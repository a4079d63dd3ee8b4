//! The edge schema follows the replication rules from day one: every table is classified as
//! replicated or local-only, and every replicated table passes `crdt`'s schema check.

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
    let tables: Vec<String> =
        stmt.query_map([], |r| r.get(0)).expect("query").map(|r| r.expect("row")).collect();
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

fn rusqlite_open(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(edge_node::db::DB_FILE)).expect("open")
}
