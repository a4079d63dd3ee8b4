//! Change capture: turning a table into a replicated one, and recording every local insert,
//! update and delete in its clock table in the same transaction as the write, by triggers —
//! so nothing can write a replicated table without being captured. A connection that has not
//! been set up with `install` cannot write a replicated table at all: the triggers call
//! functions only `install` registers, and the write fails.
//!
//! The records follow cr-sqlite 0.16 (see the crate documentation for the exact behaviour);
//! the test suite compares them with the real cr-sqlite over random write sequences.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use crate::pk::{self, Value};
use crate::schema::{self, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum CrdtError {
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("table name {0:?} cannot be replicated: use letters, digits and underscores")]
    BadName(String),
}

/// The database version handed out to the open transaction, and the next `seq` in it.
#[derive(Debug, Default)]
struct TxClock {
    committed: i64,
    pending: Option<i64>,
    seq: i64,
}

/// Quotes an identifier for SQL.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn to_pk_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// Sets a connection up for replicated tables: creates the site table (with this database's
/// random 16-byte site id) if needed, and registers the functions and hooks the capture
/// triggers use. Call on every connection that writes, before it writes.
pub fn install(conn: &Connection) -> Result<(), CrdtError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS crdt_sites (
             ordinal INTEGER PRIMARY KEY NOT NULL,
             site_id BLOB NOT NULL
         );
         INSERT INTO crdt_sites (ordinal, site_id)
             SELECT 0, randomblob(16) WHERE NOT EXISTS (SELECT 1 FROM crdt_sites WHERE ordinal = 0);
         CREATE TABLE IF NOT EXISTS crdt_tables (name TEXT PRIMARY KEY NOT NULL);",
    )?;
    let clock =
        Arc::new(Mutex::new(TxClock { committed: max_db_version(conn)?, ..TxClock::default() }));

    let c = clock.clone();
    conn.create_scalar_function("crdt_db_version", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        let mut clock = c.lock().unwrap_or_else(PoisonError::into_inner);
        let next = clock.committed + 1;
        Ok(*clock.pending.get_or_insert(next))
    })?;
    let c = clock.clone();
    conn.create_scalar_function("crdt_seq", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        let mut clock = c.lock().unwrap_or_else(PoisonError::into_inner);
        clock.seq += 1;
        Ok(clock.seq - 1)
    })?;
    conn.create_scalar_function(
        "crdt_pack",
        -1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let values: Vec<Value> = (0..ctx.len()).map(|i| to_pk_value(ctx.get_raw(i))).collect();
            pk::pack(&values).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
        },
    )?;
    let c = clock.clone();
    conn.commit_hook(Some(move || {
        let mut clock = c.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(version) = clock.pending.take() {
            clock.committed = version;
        }
        clock.seq = 0;
        false
    }))?;
    let c = clock;
    conn.rollback_hook(Some(move || {
        let mut clock = c.lock().unwrap_or_else(PoisonError::into_inner);
        clock.pending = None;
        clock.seq = 0;
    }))?;
    Ok(())
}

/// This database's site id.
pub fn site_id(conn: &Connection) -> Result<Vec<u8>, CrdtError> {
    Ok(conn.query_row("SELECT site_id FROM crdt_sites WHERE ordinal = 0", [], |r| r.get(0))?)
}

/// Names of the replicated tables.
pub fn replicated_tables(conn: &Connection) -> Result<Vec<String>, CrdtError> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'crdt_tables'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT name FROM crdt_tables ORDER BY name")?;
    let names = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(names)
}

fn max_db_version(conn: &Connection) -> Result<i64, CrdtError> {
    let mut max = 0;
    for table in replicated_tables(conn)? {
        let v: Option<i64> = conn.query_row(
            &format!("SELECT max(db_version) FROM {}", ident(&format!("{table}__crdt_clock"))),
            [],
            |r| r.get(0),
        )?;
        max = max.max(v.unwrap_or(0));
    }
    Ok(max)
}

/// A table's key and other columns, in declaration order.
pub(crate) struct TableShape {
    pub name: String,
    pub pks: Vec<String>,
    pub others: Vec<String>,
}

pub(crate) fn shape(conn: &Connection, table: &str) -> Result<TableShape, CrdtError> {
    let mut stmt = conn.prepare("SELECT name, pk FROM pragma_table_info(?1) ORDER BY cid")?;
    let mut pks: Vec<(i64, String)> = Vec::new();
    let mut others = Vec::new();
    for row in stmt.query_map([table], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (name, pk) = row?;
        if pk > 0 { pks.push((pk, name)) } else { others.push(name) }
    }
    pks.sort();
    Ok(TableShape {
        name: table.to_string(),
        pks: pks.into_iter().map(|(_, n)| n).collect(),
        others,
    })
}

/// Makes `table` a replicated table: checks cr-sqlite's schema rules, creates its key and
/// clock tables and the capture triggers. Rows already in the table are recorded as inserted.
/// Idempotent.
pub fn make_replicated(conn: &Connection, table: &str) -> Result<(), CrdtError> {
    if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(CrdtError::BadName(table.to_string()));
    }
    schema::check_replicable(conn, table)?;
    if replicated_tables(conn)?.iter().any(|t| t == table) {
        return Ok(());
    }
    let s = shape(conn, table)?;
    let t = ident(table);
    let pks_t = ident(&format!("{table}__crdt_pks"));
    let clock_t = ident(&format!("{table}__crdt_clock"));
    let pk_list = s.pks.iter().map(|p| ident(p)).collect::<Vec<_>>().join(", ");
    let key_of = |prefix: &str| {
        let cond = s
            .pks
            .iter()
            .map(|p| format!("{} = {prefix}.{}", ident(p), ident(p)))
            .collect::<Vec<_>>()
            .join(" AND ");
        format!("(SELECT key FROM {pks_t} WHERE {cond})")
    };
    let pk_changed = s
        .pks
        .iter()
        .map(|p| format!("NEW.{0} IS NOT OLD.{0}", ident(p)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let new_pks = s.pks.iter().map(|p| format!("NEW.{}", ident(p))).collect::<Vec<_>>().join(", ");

    // Upserts of one clock row. A sentinel moves to the next odd (created) or even (deleted)
    // causal length; a column's version goes up by one.
    let upsert_tail = "db_version = excluded.db_version, seq = excluded.seq, site_id = 0";
    let created = format!(
        "ON CONFLICT (key, col_name) DO UPDATE SET
             col_version = CASE col_version % 2 WHEN 0 THEN col_version + 1 ELSE col_version END, {upsert_tail}"
    );
    let deleted = format!(
        "ON CONFLICT (key, col_name) DO UPDATE SET
             col_version = CASE col_version % 2 WHEN 1 THEN col_version + 1 ELSE col_version END, {upsert_tail}"
    );
    let bumped = format!(
        "ON CONFLICT (key, col_name) DO UPDATE SET col_version = col_version + 1, {upsert_tail}"
    );
    let clock_row = |key: &str, col: &str, version: i64, when: &str, conflict: &str| {
        format!(
            "INSERT INTO {clock_t} (key, col_name, col_version, db_version, seq, site_id)
                 SELECT {key}, '{col}', {version}, crdt_db_version(), crdt_seq(), 0 WHERE {when} {conflict};"
        )
    };

    let new_key = key_of("NEW");
    let old_key = key_of("OLD");
    let has_others = !s.others.is_empty();
    let mut insert_body =
        format!("INSERT INTO {pks_t} ({pk_list}) VALUES ({new_pks}) ON CONFLICT DO NOTHING;\n");
    // cr-sqlite writes no sentinel for a first insert into a table with other columns; it does
    // for a key-only table, and when the row is resurrected (a sentinel exists).
    let sentinel_when = if has_others {
        format!("EXISTS (SELECT 1 FROM {clock_t} WHERE key = {new_key} AND col_name = '-1')")
    } else {
        "1".to_string()
    };
    insert_body += &clock_row(&new_key, "-1", 1, &sentinel_when, &created);
    for col in &s.others {
        insert_body += &clock_row(&new_key, &col.replace('\'', "''"), 1, "1", &bumped);
    }

    let mut update_body = String::new();
    update_body += &clock_row(&old_key, "-1", 2, &format!("({pk_changed})"), &deleted);
    update_body += &format!(
        "INSERT INTO {pks_t} ({pk_list}) SELECT {new_pks} WHERE ({pk_changed}) ON CONFLICT DO NOTHING;\n\
         UPDATE {clock_t} SET key = {new_key} WHERE key = {old_key} AND col_name <> '-1' AND ({pk_changed});\n"
    );
    update_body += &clock_row(&new_key, "-1", 1, &format!("({pk_changed})"), &created);
    for col in &s.others {
        let c = ident(col);
        update_body += &clock_row(
            &new_key,
            &col.replace('\'', "''"),
            1,
            &format!("NEW.{c} IS NOT OLD.{c}"),
            &bumped,
        );
    }

    let delete_body = format!(
        "{}DELETE FROM {clock_t} WHERE key = {old_key} AND col_name <> '-1';\n",
        clock_row(&old_key, "-1", 2, "1", &deleted)
    );

    let trigger = |suffix: &str, event: &str, body: &str| {
        format!(
            "CREATE TRIGGER {} AFTER {event} ON {t} FOR EACH ROW BEGIN\n{body}END;\n",
            ident(&format!("{table}__crdt_{suffix}"))
        )
    };
    let ddl = format!(
        "CREATE TABLE {pks_t} (key INTEGER PRIMARY KEY NOT NULL, {pk_list});
         CREATE UNIQUE INDEX {} ON {pks_t} ({pk_list});
         CREATE TABLE {clock_t} (
             key INTEGER NOT NULL,
             col_name TEXT NOT NULL,
             col_version INTEGER NOT NULL,
             db_version INTEGER NOT NULL,
             site_id INTEGER NOT NULL DEFAULT 0,
             seq INTEGER NOT NULL,
             PRIMARY KEY (key, col_name)
         ) WITHOUT ROWID, STRICT;
         CREATE INDEX {} ON {clock_t} (db_version);
         {}{}{}
         INSERT INTO crdt_tables (name) VALUES ('{table}');",
        ident(&format!("{table}__crdt_pks_pks")),
        ident(&format!("{table}__crdt_clock_dbv")),
        trigger("insert", "INSERT", &insert_body),
        trigger("update", "UPDATE", &update_body),
        trigger("delete", "DELETE", &delete_body),
    );
    conn.execute_batch(&ddl)?;
    backfill(conn, &s)?;
    Ok(())
}

/// Records the rows a table already holds as inserted, so replicas receive them.
fn backfill(conn: &Connection, s: &TableShape) -> Result<(), CrdtError> {
    let t = ident(&s.name);
    let pk_list = s.pks.iter().map(|p| ident(p)).collect::<Vec<_>>().join(", ");
    let pks_t = ident(&format!("{}__crdt_pks", s.name));
    let clock_t = ident(&format!("{}__crdt_clock", s.name));
    conn.execute(&format!("INSERT INTO {pks_t} ({pk_list}) SELECT {pk_list} FROM {t} WHERE true ON CONFLICT DO NOTHING"), [])?;
    let cols: Vec<String> = if s.others.is_empty() { vec!["-1".into()] } else { s.others.clone() };
    for col in cols {
        conn.execute(
            &format!(
                "INSERT INTO {clock_t} (key, col_name, col_version, db_version, seq, site_id)
                 SELECT key, ?1, 1, crdt_db_version(), crdt_seq(), 0 FROM {pks_t} WHERE true
                 ON CONFLICT DO NOTHING"
            ),
            [&col],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::changes_since;

    const DDL: &str = "CREATE TABLE rooms (id TEXT PRIMARY KEY NOT NULL, status TEXT NOT NULL DEFAULT 'clean', floor INTEGER)";

    fn replicated(conn: &Connection) {
        install(conn).expect("install");
        conn.execute_batch(DDL).expect("ddl");
        make_replicated(conn, "rooms").expect("replicate");
    }

    #[test]
    fn a_connection_without_install_cannot_write_a_replicated_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        replicated(&Connection::open(&path).expect("open"));
        let plain = Connection::open(&path).expect("open again");
        let err = plain
            .execute("INSERT INTO rooms (id) VALUES ('101')", [])
            .expect_err("uncaptured write");
        assert!(err.to_string().contains("crdt_"), "{err}");
        let count: i64 =
            plain.query_row("SELECT count(*) FROM rooms", [], |r| r.get(0)).expect("count");
        assert_eq!(count, 0);
    }

    #[test]
    fn one_transaction_is_one_db_version_and_seq_counts_its_changes() {
        let conn = Connection::open_in_memory().expect("open");
        replicated(&conn);
        conn.execute_batch(
            "BEGIN; INSERT INTO rooms VALUES ('101', 'dirty', 1); INSERT INTO rooms VALUES ('102', 'clean', 1); COMMIT;
             UPDATE rooms SET status = 'clean' WHERE id = '101';",
        )
        .expect("writes");
        let changes = changes_since(&conn, 0).expect("changes");
        let clocks: Vec<(i64, i64)> = changes.iter().map(|c| (c.db_version, c.seq)).collect();
        assert_eq!(clocks, [(1, 1), (1, 2), (1, 3), (2, 0)]);
        assert_eq!(changes_since(&conn, 1).expect("since 1").len(), 1);
    }

    #[test]
    fn a_rolled_back_transaction_leaves_no_changes_and_no_version_behind() {
        let conn = Connection::open_in_memory().expect("open");
        replicated(&conn);
        conn.execute_batch("BEGIN; INSERT INTO rooms VALUES ('101', 'dirty', 1); ROLLBACK;")
            .expect("rollback");
        assert!(changes_since(&conn, 0).expect("changes").is_empty());
        conn.execute("INSERT INTO rooms VALUES ('102', 'clean', 2)", []).expect("insert");
        let versions: Vec<i64> =
            changes_since(&conn, 0).expect("changes").iter().map(|c| c.db_version).collect();
        assert_eq!(versions, [1, 1]);
    }

    #[test]
    fn versions_continue_after_reopening_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            replicated(&conn);
            conn.execute("INSERT INTO rooms VALUES ('101', 'dirty', 1)", []).expect("insert");
        }
        let conn = Connection::open(&path).expect("reopen");
        install(&conn).expect("install");
        make_replicated(&conn, "rooms").expect("idempotent");
        conn.execute("UPDATE rooms SET floor = 2 WHERE id = '101'", []).expect("update");
        let last = changes_since(&conn, 1).expect("changes");
        assert_eq!(
            last.iter().map(|c| (c.cid.as_str(), c.db_version)).collect::<Vec<_>>(),
            [("floor", 2)]
        );
        assert_eq!(site_id(&conn).expect("site").len(), 16);
    }

    #[test]
    fn rows_that_existed_before_replication_are_recorded() {
        let conn = Connection::open_in_memory().expect("open");
        install(&conn).expect("install");
        conn.execute_batch(&format!("{DDL}; INSERT INTO rooms VALUES ('101', 'dirty', 1);"))
            .expect("seed");
        make_replicated(&conn, "rooms").expect("replicate");
        let cols: Vec<String> =
            changes_since(&conn, 0).expect("changes").into_iter().map(|c| c.cid).collect();
        assert_eq!(cols, ["status", "floor"]);
    }

    #[test]
    fn tables_cr_sqlite_would_refuse_are_refused() {
        let conn = Connection::open_in_memory().expect("open");
        install(&conn).expect("install");
        conn.execute_batch("CREATE TABLE bad (id TEXT, x TEXT)").expect("ddl");
        assert!(matches!(make_replicated(&conn, "bad"), Err(CrdtError::Schema(_))));
        assert!(matches!(make_replicated(&conn, "x; DROP TABLE bad"), Err(CrdtError::BadName(_))));
    }
}
