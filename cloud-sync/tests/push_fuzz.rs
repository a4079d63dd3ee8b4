//! The hub's push path under arbitrary batches (proptest): changes with any table, column,
//! key, value, clock, causal length, seq and site id, from two nodes of two properties, on a
//! schema shaped like the edge's (a property table, a chain table, a node table, a table keyed
//! by its parent). Whatever comes, each push is answered (merged or quarantined, never an
//! error), and the hub never stores or relays a change another node could not apply:
//!
//! - every stored cell is of a known hub table and column, its clocks within 2^53, its site id
//!   one of the writing nodes';
//! - every property row is stored under the property it derives (its `property_id`, or its
//!   parent's), and nothing of one property reaches the other's pulls;
//! - each property's pulls merge into a fresh crdt replica of the schema without an error.
//!
//! Memory per push is bounded before any of this by the decoder (a batch's decoded size and
//! its ratio to the body), which `hub_process` tests with a real zstd bomb.

mod common;

use cloud_sync::db;
use cloud_sync::schema::HubSchema;
use cloud_sync::store::{Store, Writer};
use common::TestDb;
use crdt::protocol::Scopes;
use crdt::{Change, Changeset, Replica};
use proptest::prelude::*;
use rusqlite::Connection;
use rusqlite::types::Value;

const DDL: &str = "
    CREATE TABLE properties (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL DEFAULT '');
    CREATE TABLE rooms (
        id          TEXT PRIMARY KEY NOT NULL,
        property_id TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL DEFAULT 'clean'
    );
    CREATE TABLE room_nights (
        room_id TEXT NOT NULL,
        night   TEXT NOT NULL,
        status  TEXT,
        PRIMARY KEY (room_id, night)
    );
    CREATE TABLE guests (id TEXT PRIMARY KEY NOT NULL, name TEXT,
                         property_id TEXT NOT NULL DEFAULT '');
    CREATE TABLE staff (id TEXT PRIMARY KEY NOT NULL, role TEXT);";
const SCOPES: &str = "[tables]
properties = \"property\"
rooms = \"property\"
room_nights = \"property\"
guests = \"chain\"
staff = \"node\"
[owners]
properties = \"id\"
rooms = \"property_id\"
room_nights = \"room_id -> rooms\"
";
const PROPERTIES: [&str; 2] = ["P1", "P2"];
const SITES: [[u8; 16]; 2] = [[0x11; 16], [0x22; 16]];

fn schema() -> HubSchema {
    HubSchema::from_sqlite(DDL, &Scopes::parse(SCOPES).expect("scopes")).expect("schema")
}

fn replica() -> (Connection, Replica) {
    let conn = Connection::open_in_memory().expect("open");
    let replica = Replica::install_with_site_id(&conn, Some(&[0x99; 16])).expect("install");
    conn.execute_batch(DDL).expect("ddl");
    for t in ["properties", "rooms", "room_nights", "guests", "staff"] {
        replica.make_replicated(&conn, t).expect("replicate");
    }
    replica.set_schema_version(&conn, 1).expect("schema version");
    (conn, replica)
}

fn text(s: &str) -> crdt::Value {
    crdt::Value::Text(s.into())
}

/// A key for `table`, from a small pool so that changes meet on the same rows; sometimes one
/// of the wrong shape.
fn key(table: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let ids = prop_oneof![Just("P1"), Just("P2"), Just("r1"), Just("r2"), Just("g1"), Just("x")];
    let nights = prop_oneof![Just("2026-12-24"), Just("2026-12-25")];
    let good = (ids, nights).prop_map(move |(id, night)| {
        let values =
            if table == "room_nights" { vec![text(id), text(night)] } else { vec![text(id)] };
        crdt::pack(&values).expect("pk")
    });
    prop_oneof![
        8 => good,
        1 => Just(crdt::pack(&[crdt::Value::Null]).expect("pk")),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        prop_oneof![Just("P1"), Just("P2"), Just("clean"), Just("")]
            .prop_map(|s| Value::Text(s.into())),
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Real),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Blob),
    ]
}

fn clock() -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 1..4i64,
        1 => Just(0i64),
        1 => Just(-1i64),
        1 => Just(crdt::MAX_CLOCK),
        1 => Just(crdt::MAX_CLOCK + 1),
        1 => Just(i64::MAX),
    ]
}

/// One change from node `writer` (0 or 1): mostly plausible, often hostile.
fn change(writer: usize) -> impl Strategy<Value = Change> {
    let table = prop_oneof![
        Just("rooms"),
        Just("room_nights"),
        Just("guests"),
        Just("properties"),
        Just("staff"),
        Just("minibars"),
        Just("bad name"),
    ];
    table.prop_flat_map(move |table| {
        let cid = prop_oneof![
            Just("status"),
            Just("property_id"),
            Just("name"),
            Just("-1"),
            Just("id"),
            Just("zz"),
            Just("x; DROP"),
        ];
        let site = prop_oneof![
            8 => Just(SITES[writer].to_vec()),
            1 => Just(SITES[1 - writer].to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..20),
        ];
        (key(table), cid, value(), clock(), clock(), site, prop_oneof![0..5i64, Just(-1i64)])
            .prop_map(move |(pk, cid, val, col_version, cl, site_id, seq)| Change {
                table: table.into(),
                pk,
                cid: cid.into(),
                val,
                col_version,
                db_version: 1,
                site_id,
                cl,
                seq,
            })
    })
}

/// A node's push: its changes in one batch.
fn push() -> impl Strategy<Value = (usize, i64, Vec<Change>)> {
    (0..2usize, prop_oneof![Just(1i64), Just(2i64)]).prop_flat_map(|(w, schema)| {
        (Just(w), Just(schema), prop::collection::vec(change(w), 0..16))
    })
}

async fn check(store: &Store, pushes: &[(usize, i64, Vec<Change>)]) {
    let mut until = [0i64; 2];
    for (w, schema_version, changes) in pushes {
        let batch = Changeset {
            site_id: SITES[*w].to_vec(),
            schema_version: *schema_version,
            since: until[*w],
            until: until[*w] + 1,
            changes: changes.clone(),
        };
        until[*w] += 1;
        let writer =
            Writer { property_id: PROPERTIES[*w].into(), node_id: Some(format!("node-{w}")) };
        let ack = store.push(&writer, &batch).await.expect("every push is answered");
        assert_eq!(ack.received, until[*w], "the cursor moves past whatever was refused");
        assert!(ack.applied + ack.quarantined + ack.held <= changes.len() as u64);
    }

    let client = store.pool().get().await.expect("connection");
    let schema = store.schema();
    for r in client
        .query("SELECT tbl, cid, col_version, cl, site_id, scope FROM sync_cells", &[])
        .await
        .expect("cells")
    {
        let (tbl, cid): (String, String) = (r.get(0), r.get(1));
        let table = schema.table(&tbl).unwrap_or_else(|| panic!("a cell of unknown table {tbl}"));
        assert!(cid == "-1" || table.column(&cid).is_some(), "unknown column {tbl}.{cid}");
        let (cv, cl): (i64, i64) = (r.get(2), r.get(3));
        assert!((0..=crdt::MAX_CLOCK).contains(&cv) && (1..=crdt::MAX_CLOCK).contains(&cl));
        let site: Vec<u8> = r.get(4);
        assert!(SITES.iter().any(|s| *s == site[..]), "a cell in no node's name: {site:?}");
    }
    // Property rows are stored under the property they derive.
    for r in client
        .query(
            "SELECT r.scope, c.val FROM sync_rows r JOIN sync_cells c
               ON c.tbl = r.tbl AND c.pk = r.pk AND c.cid = 'property_id'
             WHERE r.tbl = 'rooms' AND c.cl = r.cl",
            &[],
        )
        .await
        .expect("rooms")
    {
        let scope: String = r.get(0);
        let owner = cloud_sync::value::decode(r.get(1)).expect("value");
        assert_eq!(owner, Value::Text(scope.clone()), "a room stored under another property");
    }
    let scopes: std::collections::HashMap<(String, Vec<u8>), String> = client
        .query("SELECT tbl, pk, scope FROM sync_rows", &[])
        .await
        .expect("rows")
        .iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect();
    for ((tbl, pk), scope) in &scopes {
        if tbl != "room_nights" {
            continue;
        }
        let key = crdt::unpack(pk).expect("a stored key unpacks");
        let room = crdt::pack(&key[..1]).expect("pk");
        assert_eq!(
            scopes.get(&("rooms".to_string(), room)),
            Some(scope),
            "a room night stored under another property than its room's"
        );
    }
    drop(client);

    for (p, property) in PROPERTIES.iter().enumerate() {
        let (conn, replica) = replica();
        let mut since = 0;
        loop {
            let pull = store.pull(property, None, since, 7).await.expect("pull");
            for c in &pull.batch.changes {
                let scope_ok = c.site_id == SITES[p] || c.table == "guests";
                assert!(scope_ok, "{property} was sent {}'s {} row", hex(&c.site_id), c.table);
            }
            since = pull.batch.until;
            replica.merge(&conn, &pull.batch.into()).unwrap_or_else(|e| {
                panic!("{property}'s node cannot apply what the hub sent it: {e}")
            });
            if !pull.more {
                break;
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn any_batch_is_merged_or_quarantined_and_nothing_stored_is_unappliable_or_misowned() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let db = rt.block_on(TestDb::create());
    let pool = db.pool();
    rt.block_on(db::migrate_with(&pool, &schema())).expect("migrate");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&prop::collection::vec(push(), 1..8), |pushes| {
        rt.block_on(async {
            let client = pool.get().await.expect("connection");
            client
                .batch_execute(
                    "TRUNCATE sync_rows, sync_cells, sync_peers, sync_quarantine, sync_held,
                              sync_usage, replica.properties, replica.rooms,
                              replica.room_nights, replica.guests;
                     ALTER SEQUENCE sync_version RESTART",
                )
                .await
                .expect("truncate");
            drop(client);
            let store = Store::open(pool.clone(), schema()).await.expect("open");
            check(&store, &pushes).await;
        });
        Ok(())
    });
    drop(pool);
    drop(db);
    if let Err(e) = result {
        panic!("{e}");
    }
}
