//! The hub merges exactly as the `crdt` SQLite replica does: random writes at several crdt
//! replicas, relayed between them, end in the same rows and the same clocks whether merged by
//! a crdt replica or pushed to the hub on PostgreSQL in any grouping, order and duplication —
//! and a replica fed by the hub's pulls ends the same too. Plus the hub's own rules: who may
//! write what, replays, pulls in whole versions, tables of a newer schema.

mod common;

use std::collections::BTreeMap;

use cloud_sync::db;
use cloud_sync::schema::{HubSchema, PgType, Table};
use cloud_sync::store::{MergeError, Store, Writer, project_value};
use cloud_sync::value;
use common::TestDb;
use crdt::protocol::Scopes;
use crdt::{Change, Changeset, Replica};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rusqlite::Connection;
use rusqlite::types::Value;

const DDL: &str = "
    CREATE TABLE items (
        id    TEXT PRIMARY KEY NOT NULL,
        name  TEXT,
        qty   INTEGER DEFAULT 0,
        price REAL,
        data  BLOB,
        note  DEFAULT 'n',
        property_id TEXT NOT NULL DEFAULT 'P1'
    );
    CREATE TABLE links (
        a TEXT NOT NULL,
        b INTEGER NOT NULL,
        v,
        w TEXT DEFAULT 'x',
        PRIMARY KEY (a, b)
    );";
const SCOPES: &str =
    "[tables]\nitems = \"property\"\nlinks = \"chain\"\n[owners]\nitems = \"property_id\"\n";
const PROPERTY: &str = "P1";

/// The test tables: name, key values per key slot, non-key columns.
fn keys(table: usize) -> Vec<Vec<Value>> {
    if table == 0 {
        ["k0", "k1", "k2"].iter().map(|k| vec![Value::Text((*k).into())]).collect()
    } else {
        vec![
            vec![Value::Text("a".into()), Value::Integer(1)],
            vec![Value::Text("a".into()), Value::Integer(2)],
            vec![Value::Text("b".into()), Value::Integer(1)],
        ]
    }
}

fn table_name(table: usize) -> &'static str {
    if table == 0 { "items" } else { "links" }
}

fn key_columns(table: usize) -> &'static [&'static str] {
    if table == 0 { &["id"] } else { &["a", "b"] }
}

/// Every non-key column, in table order: what the states compare (`items.property_id` is
/// written only by its default, the writer's property, as an edge writes it).
fn state_columns(table: usize) -> &'static [&'static str] {
    if table == 0 { &["name", "qty", "price", "data", "note", "property_id"] } else { &["v", "w"] }
}

/// The columns the random writes set.
fn value_columns(table: usize) -> &'static [&'static str] {
    if table == 0 { &["name", "qty", "price", "data", "note"] } else { &["v", "w"] }
}

fn schema() -> HubSchema {
    HubSchema::from_sqlite(DDL, &Scopes::parse(SCOPES).expect("scopes")).expect("schema")
}

fn replica(site: u8) -> (Connection, Replica) {
    let conn = Connection::open_in_memory().expect("open");
    let replica = Replica::install_with_site_id(&conn, Some(&[site; 16])).expect("install");
    conn.execute_batch(DDL).expect("ddl");
    for t in ["items", "links"] {
        replica.make_replicated(&conn, t).expect("replicate");
    }
    replica.set_schema_version(&conn, 1).expect("schema version");
    (conn, replica)
}

fn pk(key: &[Value]) -> Vec<u8> {
    let values: Vec<crdt::Value> = key
        .iter()
        .map(|v| match v {
            Value::Null => crdt::Value::Null,
            Value::Integer(i) => crdt::Value::Integer(*i),
            Value::Real(f) => crdt::Value::Real(*f),
            Value::Text(t) => crdt::Value::Text(t.clone()),
            Value::Blob(b) => crdt::Value::Blob(b.clone()),
        })
        .collect();
    crdt::pack(&values).expect("pack")
}

#[derive(Debug, Clone)]
enum Op {
    /// Sets columns of a row at a site: an insert when the row is not there (a re-insert
    /// after a delete), an update otherwise.
    Write {
        site: usize,
        table: usize,
        key: usize,
        values: Vec<(usize, Value)>,
    },
    Delete {
        site: usize,
        table: usize,
        key: usize,
    },
    /// Merges everything `from` has into `to`, relayed changes included.
    Sync {
        from: usize,
        to: usize,
    },
}

fn value() -> impl Strategy<Value = Value> {
    // A small domain, so that two sites often write equal values.
    prop_oneof![
        Just(Value::Null),
        prop_oneof![Just(-1i64), Just(0), Just(2), Just(i64::MAX)].prop_map(Value::Integer),
        prop_oneof![Just(-1.5f64), Just(0.5), Just(2.0), Just(1e300)].prop_map(Value::Real),
        prop_oneof![Just(""), Just("a"), Just("b"), Just("it's")]
            .prop_map(|s| Value::Text(s.to_string())),
        prop_oneof![Just(vec![]), Just(vec![0u8]), Just(vec![1, 2])].prop_map(Value::Blob),
    ]
}

fn op(sites: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..sites, 0..2usize, 0..3usize, prop::collection::vec((0..5usize, value()), 1..4))
            .prop_map(|(site, table, key, values)| Op::Write { site, table, key, values }),
        2 => (0..sites, 0..2usize, 0..3usize)
            .prop_map(|(site, table, key)| Op::Delete { site, table, key }),
        2 => (0..sites, 0..sites).prop_map(|(from, to)| Op::Sync { from, to }),
    ]
}

fn apply(replicas: &[(Connection, Replica)], op: &Op) {
    match op {
        Op::Write { site, table, key, values } => {
            let (conn, replica) = &replicas[*site];
            let t = table_name(*table);
            let key_values = &keys(*table)[*key];
            let cols = value_columns(*table);
            let cond: Vec<String> = key_columns(*table)
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{k} = ?{}", i + 1))
                .collect();
            let cond = cond.join(" AND ");
            conn.execute_batch("BEGIN").expect("begin");
            let exists: bool = conn
                .query_row(
                    &format!("SELECT count(*) > 0 FROM {t} WHERE {cond}"),
                    rusqlite::params_from_iter(key_values),
                    |r| r.get(0),
                )
                .expect("exists");
            let mut values: Vec<(usize, Value)> = values.clone();
            values.iter_mut().for_each(|(c, _)| *c %= cols.len());
            values.sort_by_key(|(c, _)| *c);
            values.dedup_by_key(|(c, _)| *c);
            let n = key_values.len();
            if exists {
                let sets: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| format!("{} = ?{}", cols[*c], n + i + 1))
                    .collect();
                let params = key_values.iter().chain(values.iter().map(|(_, v)| v));
                conn.execute(
                    &format!("UPDATE {t} SET {} WHERE {cond}", sets.join(", ")),
                    rusqlite::params_from_iter(params),
                )
                .expect("update");
            } else {
                let names: Vec<&str> = key_columns(*table)
                    .iter()
                    .copied()
                    .chain(values.iter().map(|(c, _)| cols[*c]))
                    .collect();
                let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
                let params = key_values.iter().chain(values.iter().map(|(_, v)| v));
                conn.execute(
                    &format!(
                        "INSERT INTO {t} ({}) VALUES ({})",
                        names.join(", "),
                        marks.join(", ")
                    ),
                    rusqlite::params_from_iter(params),
                )
                .expect("insert");
            }
            replica.flush(conn).expect("flush");
            conn.execute_batch("COMMIT").expect("commit");
        }
        Op::Delete { site, table, key } => {
            let (conn, replica) = &replicas[*site];
            let cond: Vec<String> = key_columns(*table)
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{k} = ?{}", i + 1))
                .collect();
            conn.execute_batch("BEGIN").expect("begin");
            conn.execute(
                &format!("DELETE FROM {} WHERE {}", table_name(*table), cond.join(" AND ")),
                rusqlite::params_from_iter(&keys(*table)[*key]),
            )
            .expect("delete");
            replica.flush(conn).expect("flush");
            conn.execute_batch("COMMIT").expect("commit");
        }
        Op::Sync { from, to } => {
            if from == to {
                return;
            }
            let set = crdt::changeset_since(&replicas[*from].0, 0, None).expect("changeset");
            let (conn, replica) = &replicas[*to];
            replica.merge(conn, &set).expect("merge");
        }
    }
}

/// One row's replicated state: causal length, live column registers (col_version, encoded
/// value, writer site), and the values of a live row as the read table should hold them.
#[derive(Debug, Clone, PartialEq)]
struct RowState {
    cl: i64,
    cells: BTreeMap<String, (i64, Vec<u8>, Vec<u8>)>,
    values: Option<BTreeMap<String, Value>>,
}

type State = BTreeMap<(usize, Vec<u8>), RowState>;

/// The state of a crdt replica, read from its rows and `<table>__crdt_clock` blobs.
fn crdt_state(conn: &Connection, schema: &HubSchema) -> State {
    let sites: BTreeMap<u32, Vec<u8>> = conn
        .prepare("SELECT ordinal, site_id FROM crdt_sites")
        .expect("sites")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("sites")
        .collect::<Result<_, _>>()
        .expect("sites");
    let mut state = State::new();
    for table in 0..2 {
        let t = table_name(table);
        let hub_table = schema.table(t).expect("hub table");
        let kc = key_columns(table);
        let cols = state_columns(table);
        let mut stmt = conn
            .prepare(&format!("SELECT {}, clock FROM {t}__crdt_clock", kc.join(", ")))
            .expect("clocks");
        let clocks: Vec<(Vec<Value>, Vec<u8>)> = stmt
            .query_map([], |r| {
                let key = (0..kc.len()).map(|i| r.get(i)).collect::<Result<Vec<Value>, _>>()?;
                Ok((key, r.get(kc.len())?))
            })
            .expect("clocks")
            .collect::<Result<_, _>>()
            .expect("clocks");
        for (key, blob) in clocks {
            let clock = crdt::clock::RowClock::decode(&blob).expect("clock");
            let cond: Vec<String> =
                kc.iter().enumerate().map(|(i, k)| format!("{k} = ?{}", i + 1)).collect();
            let row: Option<Vec<Value>> = conn
                .query_row(
                    &format!("SELECT {} FROM {t} WHERE {}", cols.join(", "), cond.join(" AND ")),
                    rusqlite::params_from_iter(&key),
                    |r| (0..cols.len()).map(|i| r.get(i)).collect(),
                )
                .ok();
            assert_eq!(row.is_some(), clock.alive(), "{t} {key:?}: row and clock disagree");
            let mut cells = BTreeMap::new();
            if let Some(row) = &row {
                for (i, cell) in clock.cells.iter().enumerate() {
                    if let Some(cell) = cell {
                        let site = sites.get(&cell.stamp.site).cloned().expect("site");
                        cells.insert(
                            cols[i].to_string(),
                            (cell.version, value::encode(&row[i]), site),
                        );
                    }
                }
            }
            let values = row.map(|row| {
                cols.iter()
                    .zip(row)
                    .map(|(c, v)| {
                        let column = hub_table.column(c).expect("column");
                        (c.to_string(), project_value(&v, column.pg_type))
                    })
                    .collect()
            });
            state.insert((table, pk(&key)), RowState { cl: clock.cl, cells, values });
        }
    }
    state
}

/// The hub's state: `sync_rows`, the live cells of `sync_cells`, the `replica` read tables.
async fn hub_state(store: &Store, schema: &HubSchema) -> State {
    let client = store.pool().get().await.expect("connection");
    let mut state = State::new();
    for table in 0..2 {
        let t = table_name(table);
        let rows = client
            .query(
                "SELECT r.pk, r.cl, c.cid, c.val, c.col_version, c.site_id FROM sync_rows r
                 LEFT JOIN sync_cells c
                   ON c.tbl = r.tbl AND c.pk = r.pk AND c.cl = r.cl AND c.cid <> '-1'
                 WHERE r.tbl = $1",
                &[&t],
            )
            .await
            .expect("cells");
        for r in rows {
            let entry = state.entry((table, r.get(0))).or_insert_with(|| RowState {
                cl: r.get(1),
                cells: BTreeMap::new(),
                values: None,
            });
            if let Some(cid) = r.get::<_, Option<String>>(2) {
                entry.cells.insert(cid, (r.get(4), r.get(3), r.get(5)));
            }
        }
        let hub_table = schema.table(t).expect("table");
        for (key, values) in read_table(&client, hub_table, table).await {
            match state.get_mut(&(table, key.clone())) {
                Some(row) => row.values = Some(values),
                None => panic!("{t} {key:?} is in the read table but not in sync_rows"),
            }
        }
    }
    state
}

/// Every row of a read table, keyed by its packed key.
async fn read_table(
    client: &tokio_postgres::Client,
    table: &Table,
    index: usize,
) -> Vec<(Vec<u8>, BTreeMap<String, Value>)> {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let rows = client
        .query(&format!("SELECT {} FROM replica.{}", columns.join(", "), table.name), &[])
        .await
        .expect("read table");
    rows.iter()
        .map(|r| {
            let mut values = BTreeMap::new();
            let mut key = Vec::new();
            for (i, column) in table.columns.iter().enumerate() {
                let v = match column.pg_type {
                    PgType::Text => r.get::<_, Option<String>>(i).map(Value::Text),
                    PgType::BigInt => r.get::<_, Option<i64>>(i).map(Value::Integer),
                    PgType::Double => r.get::<_, Option<f64>>(i).map(Value::Real),
                    PgType::Bytea => r.get::<_, Option<Vec<u8>>>(i).map(Value::Blob),
                }
                .unwrap_or(Value::Null);
                if table.key.contains(&i) {
                    key.push((table.key.iter().position(|&k| k == i), v));
                } else if state_columns(index).contains(&column.name.as_str()) {
                    values.insert(column.name.clone(), v);
                }
            }
            key.sort_by_key(|(p, _)| *p);
            (pk(&key.into_iter().map(|(_, v)| v).collect::<Vec<_>>()), values)
        })
        .collect()
}

/// Compares two states. Sentinel sites are not compared (they are not part of `State`):
/// crdt's own sentinel stamp is order-dependent when a row's new life reaches a replica
/// first through a column change of another site (merge.rs stamps the sentinel with that
/// change's site, and a later sentinel at the same `cl` only replaces a smaller site), so two
/// crdt replicas can already differ there; rows, causal lengths and column registers may not.
fn assert_same(what: &str, expected: &State, actual: &State) {
    for (key, want) in expected {
        let got = actual.get(key);
        assert_eq!(got, Some(want), "{what}: row {key:?} differs");
    }
    for key in actual.keys() {
        assert!(expected.contains_key(key), "{what}: row {key:?} should not exist");
    }
}

fn writer() -> Writer {
    Writer { property_id: PROPERTY.into(), node_id: Some("node-1".into()) }
}

/// A fresh hub: the database emptied and the version sequence restarted, then a store
/// opened on it (a store's memory of recent versions must not outlive its database's state).
async fn fresh_hub(pool: &db::Pool, tail_capacity: usize) -> Store {
    let client = pool.get().await.expect("connection");
    client
        .batch_execute(
            "TRUNCATE sync_rows, sync_cells, sync_peers, replica.items, replica.links;
             ALTER SEQUENCE sync_version RESTART",
        )
        .await
        .expect("truncate");
    drop(client);
    Store::open(pool.clone(), schema()).await.expect("open").with_tail_capacity(tail_capacity)
}

/// Pulls from `since` until nothing is left, into a fresh crdt replica; returns its state
/// and the cursor reached.
async fn pull_all(store: &Store, limit: usize) -> (State, i64) {
    let (pulled, pulled_replica) = replica(8);
    let mut since = 0;
    loop {
        let pull = store.pull(PROPERTY, None, since, limit).await.expect("pull");
        assert_eq!(pull.batch.since, since);
        since = pull.batch.until;
        pulled_replica.merge(&pulled, &pull.batch.into()).expect("merge pull");
        if !pull.more {
            break;
        }
    }
    (crdt_state(&pulled, &schema()), since)
}

/// A site's changes split into whole-version batches at random boundaries.
fn batches(set: &Changeset, rng: &mut StdRng) -> Vec<Changeset> {
    let mut out = Vec::new();
    let mut since = set.since;
    let mut current: Vec<Change> = Vec::new();
    for (i, c) in set.changes.iter().enumerate() {
        current.push(c.clone());
        let version_ends =
            set.changes.get(i + 1).is_none_or(|next| next.db_version != c.db_version);
        if version_ends && rng.random_bool(0.4) {
            out.push(Changeset {
                site_id: set.site_id.clone(),
                schema_version: set.schema_version,
                since,
                until: c.db_version,
                changes: std::mem::take(&mut current),
            });
            since = c.db_version;
        }
    }
    // The last batch ends where the changeset does: versions with nothing to send count.
    out.push(Changeset {
        site_id: set.site_id.clone(),
        schema_version: set.schema_version,
        since,
        until: set.until,
        changes: current,
    });
    out
}

async fn check_case(pool: &db::Pool, ops: &[Op], seed: u64, import_too: bool, case: Limits) {
    let Limits { pull: limit, tail: tail_capacity } = case;
    let mut rng = StdRng::seed_from_u64(seed);
    let schema = schema();
    let sites: Vec<(Connection, Replica)> = (1..=3).map(replica).collect();
    for op in ops {
        apply(&sites, op);
    }
    let sets: Vec<Changeset> =
        sites.iter().map(|(c, _)| crdt::changeset_since(c, 0, None).expect("changes")).collect();
    // What each site pushes: its own writes (the edge's push), never what it merged from the
    // others, which the hub refuses as written in another site's name.
    let own: Vec<Changeset> = sets
        .iter()
        .map(|s| Changeset {
            changes: s.changes.iter().filter(|c| c.site_id == s.site_id).cloned().collect(),
            ..s.clone()
        })
        .collect();

    // The reference: a fresh crdt replica merges every site's changeset.
    let (reference, reference_replica) = replica(9);
    for set in &sets {
        reference_replica.merge(&reference, set).expect("reference merge");
    }
    let expected = crdt_state(&reference, &schema);

    // The hub: whole-version batches of every site, shuffled, some pushed twice.
    let store = &fresh_hub(pool, tail_capacity).await;
    let mut pushes: Vec<Changeset> = own.iter().flat_map(|s| batches(s, &mut rng)).collect();
    let again: Vec<Changeset> = pushes.iter().filter(|_| rng.random_bool(0.3)).cloned().collect();
    pushes.extend(again);
    pushes.shuffle(&mut rng);
    for set in &pushes {
        let ack = store.push(&writer(), set).await.expect("push");
        assert_eq!(ack.quarantined, 0, "an honest site's writes are never refused");
    }
    // Then each site resumes from where the hub's cursor stands, as the sync agent does:
    // batches at or before it are replays, the rest close the gaps.
    for set in &own {
        for batch in batches(set, &mut rng) {
            let received = store.received(&set.site_id).await.expect("received");
            let ack = store.push(&writer(), &batch).await.expect("push");
            if batch.until <= received {
                assert_eq!((ack.received, ack.applied), (received, 0), "a replay changes nothing");
            }
        }
    }
    if import_too {
        // Every change again, in any order and grouping, as files would bring them.
        let mut all: Vec<Change> = sets.iter().flat_map(|s| s.changes.clone()).collect();
        all.shuffle(&mut rng);
        for group in all.chunks(rng.random_range(1..8)) {
            let ack = store.import(&writer(), group).await.expect("import");
            assert_eq!(ack.quarantined, 0, "a file of relayed writes is never refused");
        }
    }
    for set in &sets {
        assert_eq!(
            store.received(&set.site_id).await.expect("received"),
            set.until,
            "the cursor covers every version"
        );
    }
    assert_same("hub", &expected, &hub_state(store, &schema).await);

    // A replica fed only by the hub's pulls ends the same: pulled through the store that
    // merged (recent versions from memory, older ones — when its capacity made it forget
    // them — from the database) ...
    let (state, since) = pull_all(store, limit).await;
    assert_eq!(since, store.head(), "a caught-up pull ends at the head");
    assert_same("replica pulled from memory", &expected, &state);
    // ... and through a store opened afterwards, which remembers nothing: the database.
    let reopened = Store::open(pool.clone(), crate::schema()).await.expect("open");
    assert_eq!(reopened.tail_range(), (store.head(), store.head()));
    let (state, since) = pull_all(&reopened, limit).await;
    assert_eq!(since, store.head());
    assert_same("replica pulled from the database", &expected, &state);
}

/// A case's pull limit and the capacity of the store's memory of recent versions.
#[derive(Debug, Clone, Copy)]
struct Limits {
    pull: usize,
    tail: usize,
}

fn tail_default() -> usize {
    cloud_sync::tail::DEFAULT_CAPACITY
}

/// Random writes, deletes, re-inserts and relays at three crdt replicas: the hub ends with
/// the rows and clocks a crdt replica ends with, whatever the batches' order, grouping and
/// duplication, and a replica fed by its pulls ends the same, whether the pulls are answered
/// from the hub's memory of recent versions or from its database.
#[test]
fn the_hub_merges_exactly_as_a_crdt_replica_does() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    // One database for every case (each case truncates it first), dropped at the end even
    // when a case fails.
    let db = rt.block_on(TestDb::create());
    let pool = db.pool();
    rt.block_on(db::migrate_with(&pool, &schema())).expect("migrate");
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let limits = (1..20usize, prop_oneof![1..60usize, Just(tail_default())])
        .prop_map(|(pull, tail)| Limits { pull, tail });
    let strategy = (prop::collection::vec(op(3), 1..40), any::<u64>(), any::<bool>(), limits);
    let result = runner.run(&strategy, |(ops, seed, import_too, limits)| {
        rt.block_on(check_case(&pool, &ops, seed, import_too, limits));
        Ok(())
    });
    drop(pool);
    drop(db);
    if let Err(e) = result {
        panic!("{e}");
    }
}

// Focused rules of the hub, on a schema shaped like the edge's.

const RULES_DDL: &str = "
    CREATE TABLE properties (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL DEFAULT '');
    CREATE TABLE rooms (
        id          TEXT PRIMARY KEY NOT NULL,
        property_id TEXT NOT NULL DEFAULT '',
        status      TEXT NOT NULL DEFAULT 'clean'
    );
    CREATE TABLE staff (id TEXT PRIMARY KEY NOT NULL, password_hash TEXT);
    CREATE TABLE guests (id TEXT PRIMARY KEY NOT NULL, name TEXT,
                         property_id TEXT NOT NULL DEFAULT '');
    CREATE TABLE room_nights (
        room_id TEXT NOT NULL,
        night   TEXT NOT NULL,
        status  TEXT NOT NULL DEFAULT 'free',
        PRIMARY KEY (room_id, night)
    );";
const RULES_SCOPES: &str = "[tables]\nproperties = \"property\"\nrooms = \"property\"\n\
    staff = \"node\"\nguests = \"chain\"\nroom_nights = \"property\"\n";
const RULES_OWNERS: &str = "[owners]\nproperties = \"id\"\nrooms = \"property_id\"\n\
    room_nights = \"room_id -> rooms\"\n";
const SITE_A: [u8; 16] = [0xA; 16];
const SITE_B: [u8; 16] = [0xB; 16];

fn rules_schema(extra_ddl: &str, extra_scopes: &str) -> HubSchema {
    let scopes =
        Scopes::parse(&format!("{RULES_SCOPES}{extra_scopes}{RULES_OWNERS}")).expect("scopes");
    HubSchema::from_sqlite(&format!("{RULES_DDL}{extra_ddl}"), &scopes).expect("schema")
}

async fn rules_hub(db: &TestDb) -> Store {
    let pool = db.pool();
    db::migrate_with(&pool, &rules_schema("", "")).await.expect("migrate");
    Store::open(pool, rules_schema("", "")).await.expect("open")
}

fn change(table: &str, id: &str, cid: &str, val: &str, site: [u8; 16], db_version: i64) -> Change {
    Change {
        table: table.into(),
        pk: pk(&[Value::Text(id.into())]),
        cid: cid.into(),
        val: Value::Text(val.into()),
        col_version: 1,
        db_version,
        site_id: site.to_vec(),
        cl: 1,
        seq: 0,
    }
}

fn batch(site: [u8; 16], since: i64, until: i64, changes: Vec<Change>) -> Changeset {
    Changeset { site_id: site.to_vec(), schema_version: 1, since, until, changes }
}

fn node(property: &str) -> Writer {
    Writer { property_id: property.into(), node_id: Some(format!("node-of-{property}")) }
}

async fn query_texts(store: &Store, sql: &str) -> Vec<String> {
    let client = store.pool().get().await.expect("connection");
    client.query(sql, &[]).await.expect("query").iter().map(|r| r.get(0)).collect()
}

async fn quarantined(store: &Store, property: &str) -> Vec<(String, String)> {
    let client = store.pool().get().await.expect("connection");
    client
        .query(
            "SELECT kind, reason FROM sync_quarantine WHERE property_id = $1 ORDER BY id",
            &[&property],
        )
        .await
        .expect("quarantine")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn a_change_another_property_may_not_make_is_quarantined_and_the_rest_is_merged() {
    let db = TestDb::create().await;
    let store = rules_hub(&db).await;
    let room = |id: &str, cid: &str, val: &str, site, v| change("rooms", id, cid, val, site, v);
    store
        .push(&node("P1"), &batch(SITE_A, 0, 1, vec![room("r1", "property_id", "P1", SITE_A, 1)]))
        .await
        .expect("P1 creates its room");

    let refusals = [
        (room("r1", "status", "dirty", SITE_B, 1), "belongs to property P1"),
        (room("r3", "property_id", "P1", SITE_B, 1), "property_id"),
        (change("staff", "s1", "password_hash", "x", SITE_B, 1), "kept on the node"),
        (change("properties", "P1", "name", "Mine now", SITE_B, 1), "own property"),
    ];
    for (i, (bad, reason)) in refusals.into_iter().enumerate() {
        let v = i as i64 + 1;
        // Each bad change rides with a good one of P2's own: the good one is merged, the
        // cursor moves past both, and the bad one waits in the quarantine with its reason.
        let own = room(&format!("p2-{v}"), "property_id", "P2", SITE_B, v);
        let ack = store
            .push(&node("P2"), &batch(SITE_B, v - 1, v, vec![bad, own]))
            .await
            .expect("the batch is answered");
        assert_eq!((ack.received, ack.applied, ack.quarantined), (v, 1, 1), "{reason}");
        let (_, why) = quarantined(&store, "P2").await.pop().expect("quarantined");
        assert!(why.contains(reason), "{why:?} should say {reason:?}");
    }
    assert_eq!(
        query_texts(&store, "SELECT id FROM replica.rooms ORDER BY id").await,
        vec!["p2-1", "p2-2", "p2-3", "p2-4", "r1"]
    );
    assert_eq!(
        query_texts(&store, "SELECT status FROM replica.rooms WHERE id = 'r1'").await,
        vec!["clean"],
        "P1's room was left alone"
    );
    assert!(
        store
            .pull("P1", None, 0, 100)
            .await
            .expect("pull")
            .batch
            .changes
            .iter()
            .all(|c| c.site_id == SITE_A),
        "nothing P2 tried on P1's rows reaches P1's nodes"
    );

    // Chain-level rows are anyone's to edit.
    let guest = |val: &str, site, v| change("guests", "g1", "name", val, site, v);
    store.push(&node("P1"), &batch(SITE_A, 1, 2, vec![guest("Ann", SITE_A, 2)])).await.expect("P1");
    let mut edit = guest("Anne", SITE_B, 5);
    edit.col_version = 2;
    store.push(&node("P2"), &batch(SITE_B, 4, 5, vec![edit])).await.expect("P2 edits a guest");
    assert_eq!(query_texts(&store, "SELECT name FROM replica.guests").await, vec!["Anne"]);
}

#[tokio::test]
async fn a_replayed_batch_is_acknowledged_without_being_merged() {
    let db = TestDb::create().await;
    let store = rules_hub(&db).await;
    let status = |val: &str, v| change("rooms", "r1", "status", val, SITE_A, v);
    let first = batch(SITE_A, 0, 5, vec![status("clean", 5)]);
    let ack = store.push(&node("P1"), &first).await.expect("push");
    assert_eq!((ack.received, ack.applied, ack.ignored), (5, 1, 0));
    let head = store.head();

    // Same range, other content: a replay is not merged at all.
    let mut replay = batch(SITE_A, 0, 5, vec![status("dirty", 5)]);
    replay.changes[0].col_version = 9;
    let ack = store.push(&node("P1"), &replay).await.expect("replay");
    assert_eq!((ack.received, ack.applied, ack.ignored), (5, 0, 1));
    assert_eq!(store.head(), head, "a replay takes no hub version");
    assert_eq!(query_texts(&store, "SELECT status FROM replica.rooms").await, vec!["clean"]);

    // A batch after a gap is merged but leaves the cursor; closing the gap moves it on.
    let mut later = batch(SITE_A, 7, 9, vec![status("dirty", 9)]);
    later.changes[0].col_version = 3;
    assert_eq!(store.push(&node("P1"), &later).await.expect("gap").received, 5);
    assert_eq!(query_texts(&store, "SELECT status FROM replica.rooms").await, vec!["dirty"]);
    let ack = store.push(&node("P1"), &batch(SITE_A, 5, 7, vec![])).await.expect("fill");
    assert_eq!(ack.received, 7);
}

#[tokio::test]
async fn pulls_send_whole_versions_and_leave_out_the_askers_own_changes() {
    let db = TestDb::create().await;
    let store = rules_hub(&db).await;
    let rooms = |site: [u8; 16], ids: &[&str]| -> Vec<Change> {
        ids.iter().map(|id| change("rooms", id, "status", "clean", site, 1)).collect()
    };
    let mut subscription = store.subscribe();
    store
        .push(&node("P1"), &batch(SITE_A, 0, 1, rooms(SITE_A, &["a1", "a2", "a3"])))
        .await
        .expect("v1");
    let v1 = store.head();
    assert!(subscription.has_changed().expect("watch"), "a commit wakes long-polls");
    assert_eq!(*subscription.borrow_and_update(), v1);
    store
        .push(&node("P1"), &batch(SITE_B, 0, 1, rooms(SITE_B, &["b1", "b2", "b3", "b4"])))
        .await
        .expect("v2");
    let v2 = store.head();
    store.push(&node("P1"), &batch(SITE_A, 1, 2, rooms(SITE_A, &["a4", "a5"]))).await.expect("v3");
    let v3 = store.head();
    assert!(v1 < v2 && v2 < v3);

    // A limit smaller than the first version still sends it whole.
    let pull = store.pull("P1", None, 0, 2).await.expect("pull");
    assert_eq!(pull.batch.changes.len(), 3);
    assert!(pull.batch.changes.iter().all(|c| c.db_version == v1));
    assert_eq!((pull.batch.since, pull.batch.until, pull.more, pull.remaining), (0, v1, true, 6));
    assert_eq!(pull.batch.site_id, store.hub_site_id().to_vec());
    // A version that does not fit after another waits for the next pull.
    let pull = store.pull("P1", None, v1, 5).await.expect("pull");
    assert_eq!(pull.batch.changes.len(), 4);
    assert_eq!((pull.batch.until, pull.more, pull.remaining), (v2, true, 2));
    // The asker's own writes are left out; the cursor still reaches the head.
    let pull = store.pull("P1", Some(&SITE_A), 0, 100).await.expect("pull");
    assert_eq!(pull.batch.changes.len(), 4);
    assert!(pull.batch.changes.iter().all(|c| c.site_id == SITE_B));
    assert_eq!((pull.batch.until, pull.more, pull.remaining), (v3, false, 0));
    // Another property sees none of P1's rows.
    let pull = store.pull("P2", None, 0, 100).await.expect("pull");
    assert!(pull.batch.changes.is_empty());
    assert_eq!(pull.batch.until, v3, "its cursor moves past versions with nothing for it");
    assert_eq!(store.export("P1", 0).await.expect("export").len(), 9);
}

/// The hub answers pulls of recent versions from memory; a cursor older than what it still
/// remembers, or a version another hub process merged, is answered from the database, and
/// its memory starts again after such a version.
#[tokio::test]
async fn pulls_before_the_remembered_versions_or_across_another_process_merge_still_work() {
    let db = TestDb::create().await;
    let store = rules_hub(&db).await.with_tail_capacity(4);
    let rooms = |site: [u8; 16], ids: &[&str]| -> Vec<Change> {
        ids.iter().map(|id| change("rooms", id, "status", "clean", site, 1)).collect()
    };
    let ids = |pull: &crdt::protocol::Pull| -> Vec<Vec<u8>> {
        pull.batch.changes.iter().map(|c| c.pk.clone()).collect()
    };
    store
        .push(&node("P1"), &batch(SITE_A, 0, 1, rooms(SITE_A, &["a1", "a2", "a3"])))
        .await
        .expect("v1");
    let v1 = store.head();
    store.push(&node("P1"), &batch(SITE_B, 0, 1, rooms(SITE_B, &["b1", "b2"]))).await.expect("v2");
    let v2 = store.head();
    assert_eq!(store.tail_range(), (v1, v2), "v1 made room for v2");

    let pull = store.pull("P1", None, 0, 100).await.expect("pull from before the memory");
    assert_eq!((pull.batch.changes.len(), pull.batch.until, pull.more), (5, v2, false));
    let pull = store.pull("P1", None, v1, 100).await.expect("pull from memory");
    assert_eq!(ids(&pull), vec![pk(&[Value::Text("b1".into())]), pk(&[Value::Text("b2".into())])]);
    assert_eq!(pull.batch.until, v2);

    // Another hub process on the same database merges v3; this one learns of it by its
    // notification, and answers pulls across it from the database.
    let other = Store::open(db.pool(), rules_schema("", "")).await.expect("second process");
    let site_c = [0xC; 16];
    other.push(&node("P1"), &batch(site_c, 0, 1, rooms(site_c, &["c1"]))).await.expect("v3");
    let v3 = other.head();
    store.observe_head(v3);
    assert_eq!(store.head(), v3);
    let pull = store.pull("P1", None, v2, 100).await.expect("pull across the other's version");
    assert_eq!((ids(&pull), pull.batch.until), (vec![pk(&[Value::Text("c1".into())])], v3));

    // The next merge here follows a version this process never saw: memory starts after it.
    store.push(&node("P1"), &batch(SITE_A, 1, 2, rooms(SITE_A, &["a4"]))).await.expect("v4");
    let v4 = store.head();
    assert_eq!(store.tail_range(), (v3, v4));
    let pull = store.pull("P1", Some(&SITE_A), v2, 100).await.expect("pull from the database");
    assert_eq!((ids(&pull), pull.batch.until), (vec![pk(&[Value::Text("c1".into())])], v4));
    let pull = store.pull("P1", None, v3, 100).await.expect("pull from memory");
    assert_eq!((ids(&pull), pull.batch.until), (vec![pk(&[Value::Text("a4".into())])], v4));
}

#[tokio::test]
async fn a_table_of_a_newer_schema_is_held_never_relayed_and_merged_once_the_hub_knows_it() {
    let db = TestDb::create().await;
    let store = rules_hub(&db).await;
    let mut newer = batch(
        SITE_A,
        0,
        1,
        vec![
            change("minibars", "m1", "brand", "Acme", SITE_A, 1),
            change("rooms", "r1", "floor", "3", SITE_A, 1),
            change("rooms", "r1", "status", "clean", SITE_A, 1),
        ],
    );
    newer.schema_version = 2;
    let ack = store.push(&node("P1"), &newer).await.expect("a newer schema's changes are held");
    assert_eq!((ack.received, ack.applied, ack.held, ack.quarantined), (1, 1, 2, 0));
    assert_eq!(store.schema_version(), 1, "the hub relays only the schema it knows");
    let pull = store.pull("P1", None, 0, 100).await.expect("pull");
    assert_eq!(pull.batch.schema_version, 1);
    assert_eq!(pull.batch.changes.len(), 1, "held changes are never relayed");
    assert_eq!(pull.batch.changes[0].cid, "status");

    // The same unknown table from a node of the hub's own schema is refused, not held.
    let theirs = batch(SITE_B, 0, 1, vec![change("minibars", "m2", "brand", "Other", SITE_B, 1)]);
    let ack = store.push(&node("P2"), &theirs).await.expect("answered");
    assert_eq!((ack.received, ack.quarantined, ack.held), (1, 1, 0));
    assert_eq!(quarantined(&store, "P2").await[0].0, "unknown_table");

    // A hub upgraded to the newer schema merges what it held when it opens; migrating and
    // opening again are idempotent.
    let schema2 = {
        let scopes = Scopes::parse(&format!(
            "{RULES_SCOPES}minibars = \"property\"\n{RULES_OWNERS}minibars = \"property_id\"\n"
        ))
        .expect("scopes");
        HubSchema::from_sqlite(
            &format!(
                "{RULES_DDL}CREATE TABLE minibars (id TEXT PRIMARY KEY NOT NULL, brand TEXT,
                    property_id TEXT NOT NULL DEFAULT '');
                 ALTER TABLE rooms ADD COLUMN floor INTEGER;"
            ),
            &scopes,
        )
        .expect("schema")
        .with_version(2)
    };
    for _ in 0..2 {
        db::migrate_with(store.pool(), &schema2).await.expect("migrate");
        Store::open(store.pool().clone(), schema2.clone()).await.expect("open merges what it held");
    }
    assert_eq!(query_texts(&store, "SELECT brand FROM replica.minibars").await, vec!["Acme"]);
    assert_eq!(query_texts(&store, "SELECT count(*)::text FROM sync_held").await, vec!["0"]);
    assert_eq!(
        query_texts(
            &store,
            "SELECT status || '/' || coalesce(floor::text, 'null') FROM replica.rooms"
        )
        .await,
        vec!["clean/null"],
        "the text '3' does not fit an INTEGER column (SQLite would have stored 3): NULL"
    );
}

#[tokio::test]
async fn invalid_changes_are_quarantined_with_their_reason_and_the_rest_is_merged() {
    let db = TestDb::create().await;
    let store = rules_hub(&db).await;
    let good = change("rooms", "r1", "status", "clean", SITE_A, 1);
    let mut short_site = good.clone();
    short_site.site_id = vec![1, 2];
    let mut no_cl = good.clone();
    no_cl.cl = 0;
    let mut poisoned = good.clone();
    poisoned.col_version = i64::MAX;
    let mut bad_pk = good.clone();
    bad_pk.pk = vec![2, 0x0B, 1, b'x'];
    let mut bad_name = good.clone();
    bad_name.cid = "status; DROP TABLE x".into();
    let mut unknown = good.clone();
    unknown.cid = "zz".into();
    let mut forged = good.clone();
    forged.site_id = SITE_B.to_vec();
    let cases = [
        (short_site, "site_id"),
        (no_cl, "cl 0"),
        (poisoned, "col_version"),
        (bad_pk, "pk"),
        (bad_name, "identifier"),
        (unknown, "no column zz"),
        (forged, "names site"),
    ];
    for (v, (bad, reason)) in (1..).zip(cases) {
        let ack = store
            .push(&node("P1"), &batch(SITE_A, v - 1, v, vec![bad, good.clone()]))
            .await
            .expect("answered");
        assert_eq!((ack.received, ack.quarantined), (v, 1), "{reason}");
        let (_, why) = quarantined(&store, "P1").await.pop().expect("quarantined");
        assert!(why.contains(reason), "{why:?} should say {reason:?}");
    }
    assert_eq!(query_texts(&store, "SELECT status FROM replica.rooms").await, vec!["clean"]);
    let pulled = store.pull("P2", None, 0, 100).await.expect("pull").batch.changes;
    assert!(pulled.is_empty(), "another property is sent nothing of it");
    let pulled = store.pull("P1", Some(&SITE_B), 0, 100).await.expect("pull").batch.changes;
    assert!(pulled.iter().all(|c| c.cid == "status" && c.col_version == 1), "{pulled:?}");
}

fn night(room: &str, night: &str, status: &str, site: [u8; 16], db_version: i64) -> Change {
    Change {
        pk: pk(&[Value::Text(room.into()), Value::Text(night.into())]),
        ..change("room_nights", "", "status", status, site, db_version)
    }
}

/// A room night belongs to its room's property, whoever writes it first: a node that knows
/// another property's room ids cannot claim its nights, and nights claimed so before this
/// rule (stored under the claimer's property) return to the room's property at its next
/// write.
#[tokio::test]
async fn rows_keyed_by_a_parent_belong_to_the_parents_property_not_to_their_first_writer() {
    let db = TestDb::create().await;
    let store = rules_hub(&db).await;
    let room = |id: &str, p: &str, site, v| change("rooms", id, "property_id", p, site, v);
    store
        .push(&node("P1"), &batch(SITE_A, 0, 1, vec![room("r1", "P1", SITE_A, 1)]))
        .await
        .expect("r1");

    // P2 tries P1's nights, and one of a room nobody has; its own room and night, in the
    // same batch, are merged.
    let ack = store
        .push(
            &node("P2"),
            &batch(
                SITE_B,
                0,
                1,
                vec![
                    night("r1", "2026-12-24", "sold", SITE_B, 1),
                    night("r-none", "2026-12-24", "sold", SITE_B, 1),
                    room("r2", "P2", SITE_B, 1),
                    night("r2", "2026-12-24", "sold", SITE_B, 1),
                ],
            ),
        )
        .await
        .expect("answered");
    assert_eq!((ack.received, ack.applied, ack.quarantined), (1, 2, 2));
    let reasons: Vec<String> =
        quarantined(&store, "P2").await.into_iter().map(|(_, r)| r).collect();
    assert!(
        reasons[0].contains("belongs to property P1, the property of its rooms row"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("references rooms r-none which the hub does not hold"),
        "{reasons:?}"
    );

    // The night P2 tried is still P1's to write.
    let ack = store
        .push(&node("P1"), &batch(SITE_A, 1, 2, vec![night("r1", "2026-12-24", "sold", SITE_A, 2)]))
        .await
        .expect("P1's night");
    assert_eq!((ack.applied, ack.quarantined), (1, 0));

    // A night a node of P2 claimed before ownership was derived: stored under P2.
    let claimed = pk(&[Value::Text("r1".into()), Value::Text("2026-12-25".into())]);
    let client = store.pool().get().await.expect("connection");
    client
        .execute(
            "INSERT INTO sync_rows (tbl, pk, scope, cl) VALUES ('room_nights', $1, 'P2', 1)",
            &[&claimed],
        )
        .await
        .expect("claim");
    client
        .execute(
            "INSERT INTO sync_cells (tbl, pk, cid, val, col_version, cl, site_id, scope, version, seq)
             VALUES ('room_nights', $1, 'status', $2, 9, 1, $3, 'P2', 0, 0)",
            &[&claimed, &value::encode(&Value::Text("blocked".into())), &SITE_B.as_slice()],
        )
        .await
        .expect("claim");
    drop(client);
    let ack = store
        .push(&node("P1"), &batch(SITE_A, 2, 3, vec![night("r1", "2026-12-25", "sold", SITE_A, 3)]))
        .await
        .expect("P1 writes its night");
    assert_eq!((ack.applied, ack.quarantined), (1, 0), "P1's write wins over the claim's clock");
    let client = store.pool().get().await.expect("connection");
    let row = client
        .query_one(
            "SELECT r.scope, c.val, c.col_version FROM sync_rows r JOIN sync_cells c
               ON c.tbl = r.tbl AND c.pk = r.pk AND c.cid = 'status'
             WHERE r.tbl = 'room_nights' AND r.pk = $1",
            &[&claimed],
        )
        .await
        .expect("the night");
    assert_eq!(row.get::<_, String>(0), "P1", "the night is its room's property's again");
    assert_eq!(value::decode(row.get(1)).expect("value"), Value::Text("sold".into()));
    assert_eq!(row.get::<_, i64>(2), 1, "the claim's clock is gone with it");
    let p1 = store.pull("P1", Some(&SITE_A), 0, 100).await.expect("pull").batch.changes;
    assert!(p1.is_empty(), "P1's nodes are sent nothing P2 wrote: {p1:?}");
    let p2 = store.pull("P2", Some(&SITE_B), 0, 100).await.expect("pull").batch.changes;
    assert!(
        p2.iter().all(|c| c.table == "rooms" || c.pk != claimed),
        "P2's nodes no longer see the night"
    );
}

/// A property stores at most its quota of rows: a push that would add more is refused whole,
/// so the node keeps its changes, while edits of rows it already has still merge, and other
/// properties are not affected.
#[tokio::test]
async fn a_property_past_its_row_quota_is_refused_whole_and_others_are_not() {
    let db = TestDb::create().await;
    let store = rules_hub(&db).await.with_row_quota(2);
    let room = |id: &str, site, v| change("rooms", id, "status", "clean", site, v);
    let ack = store
        .push(&node("P1"), &batch(SITE_A, 0, 1, vec![room("r1", SITE_A, 1), room("r2", SITE_A, 1)]))
        .await
        .expect("two rows fit");
    assert_eq!(ack.applied, 2);
    match store.push(&node("P1"), &batch(SITE_A, 1, 2, vec![room("r3", SITE_A, 2)])).await {
        Err(MergeError::QuotaExceeded { stored: 2, adding: 1, quota: 2, .. }) => {}
        other => panic!("expected the quota refusal, got {other:?}"),
    }
    assert_eq!(store.received(&SITE_A).await.expect("received"), 1, "the node keeps the batch");
    let mut edit = change("rooms", "r1", "status", "dirty", SITE_A, 2);
    edit.col_version = 2;
    let ack = store.push(&node("P1"), &batch(SITE_A, 1, 2, vec![edit])).await.expect("an edit");
    assert_eq!((ack.received, ack.applied), (2, 1));
    let ack = store
        .push(&node("P2"), &batch(SITE_B, 0, 1, vec![room("q1", SITE_B, 1)]))
        .await
        .expect("another property has its own quota");
    assert_eq!(ack.applied, 1);
}
