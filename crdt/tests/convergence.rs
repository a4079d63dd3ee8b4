//! Replicas that write concurrently and exchange changes in any way converge: after a full
//! exchange every replica has identical rows and identical clock metadata. And the merge is a
//! join: idempotent, commutative and associative.

use std::collections::HashMap;

use crdt::clock::RowClock;
use crdt::{Change, Replica};
use proptest::prelude::*;
use proptest::sample::Index;
use rusqlite::Connection;
use rusqlite::types::Value;

const SCHEMA: &str = "
    CREATE TABLE a (id TEXT PRIMARY KEY NOT NULL, x TEXT, y INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE b (k1 INTEGER NOT NULL, k2 TEXT NOT NULL, v ANY, PRIMARY KEY (k1, k2));
    CREATE TABLE c (id TEXT PRIMARY KEY NOT NULL);";
const TABLES: [&str; 3] = ["a", "b", "c"];

struct Node {
    conn: Connection,
    replica: Replica,
}

impl Node {
    fn new() -> Self {
        let conn = Connection::open_in_memory().expect("open");
        let replica = Replica::install(&conn).expect("install");
        conn.execute_batch(SCHEMA).expect("schema");
        for t in TABLES {
            replica.make_replicated(&conn, t).expect("replicate");
        }
        Node { conn, replica }
    }

    /// Runs statements in one transaction through the write path.
    fn write(&self, statements: &[String]) {
        self.conn.execute_batch("BEGIN").expect("begin");
        for s in statements {
            self.conn.execute_batch(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        }
        self.replica.flush(&self.conn).expect("flush");
        self.conn.execute_batch("COMMIT").expect("commit");
    }

    fn changes(&self) -> Vec<Change> {
        crdt::changes_since(&self.conn, 0, None).expect("changes")
    }

    fn merge(&self, changes: &[Change]) {
        self.conn.execute_batch("BEGIN").expect("begin");
        self.replica.merge_changes(&self.conn, changes, |_| None).expect("merge");
        self.conn.execute_batch("COMMIT").expect("commit");
    }

    /// Every table's rows, and every row's clock with site ordinals replaced by site ids and
    /// the local stamps (`db_version`, `seq`) left out.
    fn state(&self) -> Vec<String> {
        let sites: HashMap<u32, Vec<u8>> = self
            .conn
            .prepare("SELECT ordinal, site_id FROM crdt_sites")
            .expect("sites")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("sites")
            .collect::<Result<_, _>>()
            .expect("sites");
        let site = |o: u32| hex(&sites[&o]);
        let mut out = Vec::new();
        for t in TABLES {
            let mut stmt = self
                .conn
                .prepare(&format!(
                    "SELECT * FROM {t} ORDER BY {}",
                    if t == "c" { "1" } else { "1, 2" }
                ))
                .expect("rows");
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>()
                })
                .expect("rows");
            for row in rows {
                out.push(format!("{t} row {:?}", row.expect("row")));
            }
            let keys = if t == "b" { "k1, k2" } else { "id" };
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT {keys}, clock FROM {t}__crdt_clock ORDER BY {keys}"))
                .expect("clocks");
            let n = stmt.column_count();
            let clocks = stmt
                .query_map([], |r| {
                    let key =
                        (0..n - 1).map(|i| r.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>()?;
                    Ok((key, r.get::<_, Vec<u8>>(n - 1)?))
                })
                .expect("clocks");
            for row in clocks {
                let (key, blob) = row.expect("clock");
                let clock = RowClock::decode(&blob).expect("decode");
                let cells: Vec<Option<(i64, String)>> = clock
                    .cells
                    .iter()
                    .map(|c| c.map(|c| (c.version, site(c.stamp.site))))
                    .collect();
                let cells_len = cells.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
                out.push(format!(
                    "{t} clock {key:?} cl={} sentinel={:?} cells={:?}",
                    clock.cl,
                    clock.sentinel.map(|s| site(s.site)),
                    &cells[..cells_len],
                ));
            }
        }
        out
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One generated write.
#[derive(Debug, Clone)]
enum Op {
    InsertA { id: u8, x: Option<u8>, y: u8 },
    UpsertA { id: u8, x: Option<u8> },
    UpdateAx { id: u8, x: Option<u8> },
    UpdateAy { id: u8, y: u8 },
    DeleteA { id: u8 },
    InsertB { k1: u8, k2: u8, v: u8 },
    UpdateB { k1: u8, k2: u8, v: u8 },
    DeleteB { k1: u8, k2: u8 },
    InsertC { id: u8 },
    DeleteC { id: u8 },
}

impl Op {
    fn sql(&self) -> String {
        let text = |x: &Option<u8>| x.map_or("NULL".into(), |x| format!("'v{x}'"));
        // `v` mixes types so that value order across types is exercised.
        let any = |v: u8| match v % 4 {
            0 => "NULL".to_string(),
            1 => format!("{v}"),
            2 => format!("'{v}'"),
            _ => format!("{v}.5"),
        };
        match self {
            Op::InsertA { id, x, y } => {
                format!("INSERT OR IGNORE INTO a VALUES ('k{id}', {}, {y})", text(x))
            }
            Op::UpsertA { id, x } => format!(
                "INSERT INTO a (id, x) VALUES ('k{id}', {}) ON CONFLICT (id) DO UPDATE SET x = excluded.x",
                text(x)
            ),
            Op::UpdateAx { id, x } => format!("UPDATE a SET x = {} WHERE id = 'k{id}'", text(x)),
            Op::UpdateAy { id, y } => format!("UPDATE a SET y = {y} WHERE id = 'k{id}'"),
            Op::DeleteA { id } => format!("DELETE FROM a WHERE id = 'k{id}'"),
            Op::InsertB { k1, k2, v } => {
                format!("INSERT OR IGNORE INTO b VALUES ({k1}, 'k{k2}', {})", any(*v))
            }
            Op::UpdateB { k1, k2, v } => {
                format!("UPDATE b SET v = {} WHERE k1 = {k1} AND k2 = 'k{k2}'", any(*v))
            }
            Op::DeleteB { k1, k2 } => format!("DELETE FROM b WHERE k1 = {k1} AND k2 = 'k{k2}'"),
            Op::InsertC { id } => format!("INSERT OR IGNORE INTO c VALUES ('k{id}')"),
            Op::DeleteC { id } => format!("DELETE FROM c WHERE id = 'k{id}'"),
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    // Three keys per table: conflicts are frequent.
    let k = || 0u8..3;
    let x = || prop::option::of(0u8..3);
    prop_oneof![
        3 => (k(), x(), 0u8..3).prop_map(|(id, x, y)| Op::InsertA { id, x, y }),
        1 => (k(), x()).prop_map(|(id, x)| Op::UpsertA { id, x }),
        2 => (k(), x()).prop_map(|(id, x)| Op::UpdateAx { id, x }),
        2 => (k(), 0u8..3).prop_map(|(id, y)| Op::UpdateAy { id, y }),
        2 => k().prop_map(|id| Op::DeleteA { id }),
        2 => (0u8..2, k(), 0u8..8).prop_map(|(k1, k2, v)| Op::InsertB { k1, k2, v }),
        2 => (0u8..2, k(), 0u8..8).prop_map(|(k1, k2, v)| Op::UpdateB { k1, k2, v }),
        1 => (0u8..2, k()).prop_map(|(k1, k2)| Op::DeleteB { k1, k2 }),
        1 => k().prop_map(|id| Op::InsertC { id }),
        1 => k().prop_map(|id| Op::DeleteC { id }),
    ]
}

/// How a partial sync picks from the sender's changes.
#[derive(Debug, Clone)]
enum Delivery {
    /// Any selection: dropped, duplicated and reordered changes.
    Picked(Vec<Index>),
    /// The first part only, as a cut-off transfer.
    Truncated(Index),
    /// All of it, in several batches.
    Batches(Vec<Index>),
}

#[derive(Debug, Clone)]
enum Step {
    Write { node: Index, ops: Vec<Op> },
    Sync { from: Index, to: Index, delivery: Delivery },
}

fn step() -> impl Strategy<Value = Step> {
    let delivery = prop_oneof![
        prop::collection::vec(any::<Index>(), 0..30).prop_map(Delivery::Picked),
        any::<Index>().prop_map(Delivery::Truncated),
        prop::collection::vec(any::<Index>(), 1..4).prop_map(Delivery::Batches),
    ];
    prop_oneof![
        3 => (any::<Index>(), prop::collection::vec(op(), 1..4))
            .prop_map(|(node, ops)| Step::Write { node, ops }),
        2 => (any::<Index>(), any::<Index>(), delivery)
            .prop_map(|(from, to, delivery)| Step::Sync { from, to, delivery }),
    ]
}

fn deliver(changes: &[Change], delivery: &Delivery) -> Vec<Vec<Change>> {
    if changes.is_empty() {
        return Vec::new();
    }
    match delivery {
        Delivery::Picked(picks) => {
            vec![picks.iter().map(|i| changes[i.index(changes.len())].clone()).collect()]
        }
        Delivery::Truncated(at) => vec![changes[..at.index(changes.len() + 1)].to_vec()],
        Delivery::Batches(cuts) => {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(changes.len() + 1)).collect();
            cuts.push(0);
            cuts.push(changes.len());
            cuts.sort_unstable();
            cuts.windows(2).map(|w| changes[w[0]..w[1]].to_vec()).collect()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_to_identical_rows_and_clocks(
        replicas in 2usize..=7,
        steps in prop::collection::vec(step(), 1..40),
    ) {
        let nodes: Vec<Node> = (0..replicas).map(|_| Node::new()).collect();
        for step in &steps {
            match step {
                Step::Write { node, ops } => {
                    let sql: Vec<String> = ops.iter().map(Op::sql).collect();
                    nodes[node.index(replicas)].write(&sql);
                }
                Step::Sync { from, to, delivery } => {
                    let (from, to) = (from.index(replicas), to.index(replicas));
                    for batch in deliver(&nodes[from].changes(), delivery) {
                        nodes[to].merge(&batch);
                    }
                }
            }
        }
        // Full exchange: every replica sends everything it has to every other.
        for from in 0..replicas {
            for to in 0..replicas {
                if from != to {
                    nodes[to].merge(&nodes[from].changes());
                }
            }
        }
        let reference = nodes[0].state();
        for (i, node) in nodes.iter().enumerate().skip(1) {
            prop_assert_eq!(&node.state(), &reference, "replica {} differs from replica 0", i);
        }
        // And the rows are what the replicas' changes say: a fresh replica that only merges
        // arrives at the same state.
        let fresh = Node::new();
        fresh.merge(&nodes[replicas - 1].changes());
        prop_assert_eq!(fresh.state(), reference);
    }

    /// Merging is a join: applying the same changes twice, in another order, or grouped
    /// differently, gives the same state.
    #[test]
    fn merge_is_idempotent_commutative_and_associative(
        writes in prop::collection::vec((0usize..3, prop::collection::vec(op(), 1..4)), 1..16),
        order in Just(()).prop_perturb(|_, mut rng| {
            let mut v: Vec<usize> = (0..3).collect();
            for i in (1..v.len()).rev() { v.swap(i, (rng.next_u32() as usize) % (i + 1)); }
            v
        }),
    ) {
        let sources: Vec<Node> = (0..3).map(|_| Node::new()).collect();
        for (node, ops) in &writes {
            sources[*node].write(&ops.iter().map(Op::sql).collect::<Vec<_>>());
        }
        let sets: Vec<Vec<Change>> = sources.iter().map(Node::changes).collect();

        let base = Node::new();
        for s in &sets { base.merge(s); }
        let reference = base.state();

        let twice = Node::new();
        for s in sets.iter().chain(&sets) { twice.merge(s); }
        prop_assert_eq!(twice.state(), reference.clone(), "idempotence");

        let permuted = Node::new();
        for &i in &order { permuted.merge(&sets[i]); }
        prop_assert_eq!(permuted.state(), reference.clone(), "commutativity");

        let grouped = Node::new();
        let all: Vec<Change> = sets.iter().flatten().cloned().collect();
        grouped.merge(&all);
        prop_assert_eq!(grouped.state(), reference.clone(), "associativity: one batch");

        let reversed = Node::new();
        let rev: Vec<Change> = all.iter().rev().cloned().collect();
        reversed.merge(&rev);
        prop_assert_eq!(reversed.state(), reference, "any order within a batch");
    }
}
