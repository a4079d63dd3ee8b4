//! The `crdt` crate against the real cr-sqlite 0.16 (WebAssembly under Node): the packed
//! primary keys of changesets must be the same bytes in both, or the two cannot exchange
//! changes. Checked in both directions over a corpus of boundary values and composite keys.

use crdt::{Value, pack, unpack};

/// SQLite literal for a value, as the reference peer's SQL sees it.
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        // The corpus uses only reals that are exact in decimal, so parsing is exact too.
        Value::Real(f) => format!("{f:?}"),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Blob(b) => {
            format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>())
        }
    }
}

fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

fn corpus() -> Vec<Vec<Value>> {
    let mut ints: Vec<i64> = vec![0, 1, -1, i64::MAX, i64::MIN, 127, 128, 255, 256, 32_767, 65_535];
    for shift in 0..63 {
        let p = 1i64 << shift;
        ints.extend([p, p - 1, p + 1, -p, -p - 1]);
    }
    let mut keys: Vec<Vec<Value>> = ints.into_iter().map(|i| vec![Value::Integer(i)]).collect();
    for len in [0usize, 1, 2, 127, 255, 256, 1000, 65_535, 65_536, 70_000] {
        keys.push(vec![Value::Text("é".repeat(len / 2) + &"x".repeat(len % 2))]);
        keys.push(vec![Value::Blob((0..len).map(|i| (i % 251) as u8).collect())]);
    }
    for f in [0.0, -0.0, 1.5, -2.25, 1e300, -1e-300, 0.125, 123_456.5] {
        keys.push(vec![Value::Real(f)]);
    }
    keys.push(vec![Value::Text("O'Brien".into())]);
    keys.push(vec![Value::Null]);
    keys.push(vec![
        Value::Text("01900000-0000-7000-8000-000000000001".into()),
        Value::Text("2026-11-24".into()),
    ]);
    keys.push(vec![
        Value::Integer(42),
        Value::Text("room".into()),
        Value::Blob(vec![1, 2, 3]),
        Value::Null,
        Value::Real(2.5),
    ]);
    keys
}

#[test]
fn packed_keys_are_the_same_bytes_as_cr_sqlite_makes_and_read_back_the_same_values() {
    let keys = corpus();
    let statements: Vec<String> = keys
        .iter()
        .map(|k| {
            let args: Vec<String> = k.iter().map(literal).collect();
            format!("SELECT hex(crsql_pack_columns({}))", args.join(", "))
        })
        .collect();
    let results = tests::crsqlite(&statements).expect("reference peer");
    assert_eq!(results.len(), keys.len());
    for (key, result) in keys.iter().zip(results) {
        let rows = result.unwrap_or_else(|e| panic!("cr-sqlite refused {key:?}: {e}"));
        let theirs = rows[0][0].as_str().expect("hex").to_string();
        let ours: String = pack(key).expect("pack").iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(ours, theirs, "packing {key:?}");
        assert_eq!(
            &unpack(&from_hex(&theirs)).expect("unpack cr-sqlite's bytes"),
            key,
            "reading {theirs}"
        );
    }
}

#[test]
fn the_keys_cr_sqlite_puts_in_its_changes_unpack_to_the_rows_keys() {
    let statements = [
        "CREATE TABLE rooms (property TEXT NOT NULL, number INTEGER NOT NULL, name TEXT, PRIMARY KEY (property, number))",
        "SELECT crsql_as_crr('rooms')",
        "INSERT INTO rooms VALUES ('p-1', 101, 'Sea view'), ('p-1', 300, NULL), ('p-2', -7, 'x')",
        "SELECT hex(pk) FROM crsql_changes WHERE cid = 'name' ORDER BY db_version, seq",
    ]
    .map(String::from);
    let results = tests::crsqlite(&statements).expect("reference peer");
    let rows = results[3].as_ref().expect("changes");
    let keys: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| unpack(&from_hex(r[0].as_str().expect("hex"))).expect("unpack"))
        .collect();
    let expected = [("p-1", 101), ("p-1", 300), ("p-2", -7)]
        .map(|(p, n)| vec![Value::Text(p.into()), Value::Integer(n)]);
    assert_eq!(keys, expected);
}

/// A small deterministic generator (SplitMix64), so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Random valid writes to `table`: inserts, updates (some changing nothing), deletes and
/// re-inserts over a small key space, some grouped in transactions. (Key changes are left
/// out: there `crdt` deliberately differs, see the crate documentation.)
fn write_sequence(rng: &mut Rng, table: &str, ops: usize) -> Vec<String> {
    let keys = ["k0", "k1", "k2", "k3"];
    let texts = ["NULL", "'x'", "'y'", "'it''s'"];
    let mut present = [false; 4];
    let mut out = Vec::new();
    let mut in_tx = false;
    for _ in 0..ops {
        if rng.below(6) == 0 {
            out.push(if in_tx { "COMMIT" } else { "BEGIN" }.to_string());
            in_tx = !in_tx;
        }
        let k = rng.below(keys.len());
        let (a, b) = (texts[rng.below(texts.len())], rng.below(3));
        let stmt = if !present[k] {
            present[k] = true;
            format!("INSERT INTO {table} VALUES ('{}', {a}, {b})", keys[k])
        } else {
            match rng.below(4) {
                0 => format!("UPDATE {table} SET a = {a} WHERE id = '{}'", keys[k]),
                1 => format!("UPDATE {table} SET a = {a}, b = {b} WHERE id = '{}'", keys[k]),
                2 => format!("UPDATE {table} SET b = b WHERE id = '{}'", keys[k]),
                _ => {
                    present[k] = false;
                    format!("DELETE FROM {table} WHERE id = '{}'", keys[k])
                }
            }
        };
        out.push(stmt);
    }
    if in_tx {
        out.push("COMMIT".into());
    }
    out
}

/// SQLite's `quote()` of a value, for comparing with the peer's output.
fn quote(v: &rusqlite::types::Value) -> String {
    use rusqlite::types::Value as V;
    match v {
        V::Null => "NULL".into(),
        V::Integer(i) => i.to_string(),
        V::Real(f) => format!("{f}"),
        V::Text(s) => format!("'{}'", s.replace('\'', "''")),
        V::Blob(b) => format!("X'{}'", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
    }
}

/// A change as compared: table, pk (hex), cid, quote(val), col_version, db_version, cl, seq.
type ChangeRow = (String, String, String, String, i64, i64, i64, i64);

/// Replaces each db_version by its rank among the versions present, so implementations that
/// number transactions with different gaps compare equal.
fn ranked(mut rows: Vec<ChangeRow>) -> Vec<ChangeRow> {
    let mut versions: Vec<i64> = rows.iter().map(|r| r.5).collect();
    versions.sort_unstable();
    versions.dedup();
    for r in &mut rows {
        r.5 = versions.binary_search(&r.5).expect("present") as i64;
    }
    rows
}

#[test]
fn local_writes_are_captured_exactly_as_cr_sqlite_captures_them() {
    let mut rng = Rng(0x5EED_2026);
    let ddl = |t: &str| {
        format!(
            "CREATE TABLE {t} (id TEXT PRIMARY KEY NOT NULL, a TEXT, b INTEGER NOT NULL DEFAULT 0)"
        )
    };
    let mut peer = Vec::new();
    let ours = rusqlite::Connection::open_in_memory().expect("open");
    let replica = crdt::Replica::install(&ours).expect("install");
    // Statements run as the write path runs them: flushed before every commit.
    let mut in_tx = false;
    let mut run = |sql: &str| match sql {
        "BEGIN" => {
            in_tx = true;
            ours.execute_batch(sql).expect("begin");
        }
        "COMMIT" => {
            in_tx = false;
            replica.flush(&ours).expect("flush");
            ours.execute_batch(sql).expect("commit");
        }
        _ if in_tx => ours.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}")),
        _ => {
            ours.execute_batch("BEGIN").expect("begin");
            ours.execute_batch(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
            replica.flush(&ours).expect("flush");
            ours.execute_batch("COMMIT").expect("commit");
        }
    };
    for case in 0..30 {
        let table = format!("t{case}");
        let writes = write_sequence(&mut rng, &table, 25);
        peer.push(ddl(&table));
        peer.push(format!("SELECT crsql_as_crr('{table}')"));
        peer.extend(writes.iter().cloned());
        ours.execute_batch(&ddl(&table)).expect("create");
        replica.make_replicated(&ours, &table).expect("replicate");
        for w in &writes {
            run(w);
        }
    }
    peer.push(
        "SELECT [table], hex(pk), cid, quote(val), col_version, db_version, cl, seq FROM crsql_changes ORDER BY db_version, seq"
            .into(),
    );
    let results = tests::crsqlite(&peer).expect("reference peer");
    for (stmt, result) in peer.iter().zip(&results) {
        assert!(result.is_ok(), "cr-sqlite refused {stmt}: {result:?}");
    }
    let theirs: Vec<_> = results
        .last()
        .expect("rows")
        .as_ref()
        .expect("changes")
        .iter()
        .map(|r| {
            let s =
                |i: usize| r[i].as_str().map(str::to_string).unwrap_or_else(|| r[i].to_string());
            let n = |i: usize| r[i].as_i64().expect("integer");
            (s(0), s(1), s(2), s(3), n(4), n(5), n(6), n(7))
        })
        .collect();
    let mine: Vec<_> = crdt::changes_since(&ours, 0, None)
        .expect("changes")
        .into_iter()
        .map(|c| {
            let pk = c.pk.iter().map(|b| format!("{b:02X}")).collect::<String>();
            (c.table, pk, c.cid, quote(&c.val), c.col_version, c.db_version, c.cl, c.seq)
        })
        .collect();
    assert!(theirs.len() > 100, "too few changes to mean much: {}", theirs.len());
    let (theirs, mine) = (ranked(theirs), ranked(mine));
    for (i, (t, m)) in theirs.iter().zip(&mine).enumerate() {
        assert_eq!(m, t, "change {i} differs (ours, then cr-sqlite's)");
    }
    assert_eq!(mine.len(), theirs.len());
}
