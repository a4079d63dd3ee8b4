//! Storage behaviour the rest of the node relies on.

use super::*;

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(dir.path(), 2).expect("open");
    (dir, db)
}

#[tokio::test]
async fn a_failed_write_closure_rolls_back_everything_it_did() {
    let (_dir, db) = open();
    let result: Result<(), DbError> = db
        .write(|tx| {
            tx.execute("INSERT INTO node_meta (key, value) VALUES ('k', 'v')", [])?;
            Err(DbError::Closed)
        })
        .await;
    assert!(result.is_err());
    let count: i64 = db
        .read(|c| {
            Ok::<_, DbError>(c.query_row("SELECT count(*) FROM node_meta", [], |r| r.get(0))?)
        })
        .await
        .expect("read");
    assert_eq!(count, 0);
    db.close();
}

#[tokio::test]
async fn a_panicking_closure_does_not_stop_the_writer() {
    let (_dir, db) = open();
    let panicked: Result<(), DbError> = db.write(|_| panic!("bug in a handler")).await;
    assert!(matches!(panicked, Err(DbError::Panicked)));
    let ok: Result<usize, DbError> = db
        .write(|tx| Ok(tx.execute("INSERT INTO node_meta (key, value) VALUES ('k', 'v')", [])?))
        .await;
    assert_eq!(ok.expect("writer still serves"), 1);
    db.close();
}

#[tokio::test]
async fn readers_cannot_write() {
    let (_dir, db) = open();
    let result: Result<usize, DbError> = db
        .read(|c| Ok(c.execute("INSERT INTO node_meta (key, value) VALUES ('k', 'v')", [])?))
        .await;
    assert!(result.is_err());
    db.close();
}

#[tokio::test]
async fn concurrent_read_modify_writes_lose_nothing() {
    let (_dir, db) = open();
    db.write(|tx| {
        Ok::<_, DbError>(tx.execute("INSERT INTO node_meta (key, value) VALUES ('n', 0)", [])?)
    })
    .await
    .expect("seed");
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(|tx| {
                    let n: i64 =
                        tx.query_row("SELECT value FROM node_meta WHERE key = 'n'", [], |r| {
                            r.get(0)
                        })?;
                    tx.execute("UPDATE node_meta SET value = ?1 WHERE key = 'n'", [n + 1])?;
                    Ok::<_, DbError>(())
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("join").expect("write");
    }
    let n: i64 = db
        .read(|c| {
            Ok::<_, DbError>(c.query_row(
                "SELECT value FROM node_meta WHERE key = 'n'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
        .expect("read");
    assert_eq!(n, 200);
    db.close();
}

#[tokio::test]
async fn migrations_are_a_no_op_when_current_and_a_newer_schema_is_refused() {
    let (dir, db) = open();
    db.close();
    let db = Db::open(dir.path(), 1).expect("reopen");
    db.close();
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("open");
    conn.pragma_update(None, "user_version", 999).expect("bump");
    drop(conn);
    assert!(matches!(Db::open(dir.path(), 1), Err(DbError::SchemaTooNew { found: 999, .. })));
}

#[tokio::test]
async fn after_close_calls_fail_cleanly() {
    let (_dir, db) = open();
    db.close();
    let result: Result<(), DbError> = db.read(|_| Ok(())).await;
    assert!(matches!(result, Err(DbError::Closed)));
}

#[test]
fn replicated_tables_are_exactly_the_tables_replication_toml_names() {
    let text =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/edge/replication.toml"));
    let scopes = crdt::protocol::Scopes::parse(text).expect("replication.toml parses");
    let mut in_toml: Vec<&str> = scopes.iter().map(|(table, _)| table).collect();
    let mut ours = REPLICATED_TABLES.to_vec();
    in_toml.sort_unstable();
    ours.sort_unstable();
    assert_eq!(
        ours, in_toml,
        "db::REPLICATED_TABLES and replication.toml must name the same tables"
    );
    let mut deduped = ours.clone();
    deduped.dedup();
    assert_eq!(deduped, ours, "REPLICATED_TABLES names a table twice");
}

#[tokio::test]
async fn every_committed_write_is_announced_and_a_rolled_back_one_is_not() {
    let (_dir, db) = open();
    let mut commits = db.commits();
    let before = *commits.borrow_and_update();
    let ok: Result<usize, DbError> = db
        .write(|tx| Ok(tx.execute("INSERT INTO node_meta (key, value) VALUES ('a', 'v')", [])?))
        .await;
    ok.expect("write");
    assert!(commits.has_changed().expect("sender alive"));
    assert_eq!(*commits.borrow_and_update(), before + 1);
    let failed: Result<(), DbError> = db.write(|_| Err(DbError::Closed)).await;
    assert!(failed.is_err());
    assert!(!commits.has_changed().expect("sender alive"), "a rollback is not a commit");
    db.close();
}
