//! Many writers through the edge node's write path while a sync merges a large batch from
//! another property: nothing is lost and nothing is captured twice.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use edge_node::db::{Db, DbError};

/// Property rows written on a node: `(id, name)`.
async fn write_properties(db: &Db, ids: Vec<(String, String)>) {
    db.write(move |tx| {
        for (id, name) in &ids {
            tx.execute("INSERT INTO properties (id, name) VALUES (?1, ?2)", [id, name])?;
        }
        Ok::<_, DbError>(())
    })
    .await
    .expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_and_a_large_merge_at_once_lose_nothing_and_capture_nothing_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    tests::init_dir(&a_dir).expect("init a");
    tests::init_dir(&b_dir).expect("init b");

    // The other property writes 4,000 rows: 20,000 changes to merge.
    let b = Db::open(&b_dir, 1).expect("open b");
    let remote: Vec<(String, String)> =
        (0..4000).map(|i| (format!("b-{i:05}"), format!("remote {i}"))).collect();
    write_properties(&b, remote.clone()).await;
    let incoming = b
        .read(|c| Ok::<_, DbError>(crdt::changeset_since(c, 0, None)?))
        .await
        .expect("b's changes");
    assert!(incoming.changes.len() >= 20_000, "{}", incoming.changes.len());
    b.close();

    let a = Arc::new(Db::open(&a_dir, 2).expect("open a"));
    let before: i64 = a
        .read(|c| {
            Ok::<_, DbError>(c.query_row("SELECT max(db_version) FROM crdt_log", [], |r| r.get(0))?)
        })
        .await
        .expect("version");

    // 16 tasks each write 50 single-row transactions while the merge runs in 5 batches.
    let mut tasks = Vec::new();
    for t in 0..16 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                write_properties(&a, vec![(format!("a-{t:02}-{i:02}"), format!("local {t} {i}"))])
                    .await;
            }
        }));
    }
    for chunk in incoming.changes.chunks(4000) {
        let a = a.clone();
        let mut batch = incoming.clone();
        batch.changes = chunk.to_vec();
        let replica = a.replica().clone();
        a.write(move |tx| Ok::<_, DbError>(replica.merge(tx, &batch)?)).await.expect("merge");
    }
    for task in tasks {
        task.await.expect("writer");
    }

    let changes = a
        .read(move |c| Ok::<_, DbError>(crdt::changes_since(c, before, None)?))
        .await
        .expect("changes");
    let names: BTreeMap<String, String> = a
        .read(|c| {
            let mut stmt = c.prepare("SELECT id, name FROM properties")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok::<_, DbError>(rows.collect::<Result<_, _>>()?)
        })
        .await
        .expect("rows");

    // Every local and every merged row is there with its value.
    for t in 0..16 {
        for i in 0..50 {
            assert_eq!(names.get(&format!("a-{t:02}-{i:02}")), Some(&format!("local {t} {i}")));
        }
    }
    for (id, name) in &remote {
        assert_eq!(names.get(id), Some(name), "{id} was lost");
    }
    // Each (row, column) appears once, and each local write has a version of its own.
    let mut seen = HashSet::new();
    for c in &changes {
        assert!(seen.insert((c.pk.clone(), c.cid.clone())), "{:?} captured twice", c);
    }
    let local_versions: HashSet<i64> = changes
        .iter()
        .filter(|c| c.cid == "name" && names_local(&c.val))
        .map(|c| c.db_version)
        .collect();
    assert_eq!(local_versions.len(), 16 * 50);
    // Every non-key column of each of the 800 local rows, and every merged change (all new).
    let columns: usize = a
        .read(|c| {
            let n: i64 = c.query_row(
                "SELECT count(*) FROM pragma_table_info('properties') WHERE pk = 0",
                [],
                |r| r.get(0),
            )?;
            Ok::<_, DbError>(usize::try_from(n).expect("a count"))
        })
        .await
        .expect("columns");
    assert!(columns >= 5, "{columns}");
    assert_eq!(changes.len(), 800 * columns + incoming.changes.len());
    a.close();
}

fn names_local(v: &rusqlite::types::Value) -> bool {
    matches!(v, rusqlite::types::Value::Text(t) if t.starts_with("local "))
}
