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
        let bytes: Vec<u8> = (0..theirs.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&theirs[i..i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(&unpack(&bytes).expect("unpack cr-sqlite's bytes"), key, "reading {theirs}");
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
        .map(|r| {
            let hex = r[0].as_str().expect("hex");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            unpack(&bytes).expect("unpack")
        })
        .collect();
    let expected = [("p-1", 101), ("p-1", 300), ("p-2", -7)]
        .map(|(p, n)| vec![Value::Text(p.into()), Value::Integer(n)]);
    assert_eq!(keys, expected);
}
