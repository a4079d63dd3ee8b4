//! Change capture: turning a table into a replicated one, and recording every local insert,
//! update and delete in its clock in the same statement as the write, by triggers — so
//! nothing can write a replicated table without being captured. A connection that has not
//! been set up with [`Replica::install`] cannot write a replicated table at all: the triggers
//! call functions only `install` registers, and the write fails.
//!
//! Each transaction that writes replicated rows gets one database version; the triggers also
//! note which rows it touched, and [`Replica::flush`] (called by the write path just before
//! `COMMIT`) appends that list to `crdt_log`, which is how changes since a version are found
//! without an index on every clock. A commit with unflushed notes is refused (turned into a
//! rollback), so forgetting the flush loses the transaction loudly, never its capture.
//!
//! The records follow cr-sqlite 0.16 (see the crate documentation for the exact behaviour);
//! the test suite compares them with the real cr-sqlite over random write sequences.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};

use crate::clock::{Cell, RowClock, Stamp};
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
    #[error(
        "replicated table {table} changed in a way replicas cannot follow ({reason}); replicated \
         schema changes must be additive: new columns at the end, keys unchanged"
    )]
    NotAdditive { table: String, reason: String },
    #[error("the clock of a row of {0} is corrupt")]
    CorruptClock(String),
    #[error("change {index}: {reason}")]
    BadChange { index: usize, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// Per-connection capture state shared by the SQL functions, the hooks and the merge.
#[derive(Debug)]
pub(crate) struct State {
    /// The last committed database version.
    committed: i64,
    /// The version of the open transaction, once it has written a replicated row.
    pending: Option<i64>,
    /// The next `seq` in the open transaction.
    seq: i64,
    /// Rows the open transaction touched and `flush` has not logged yet.
    hints: Vec<(u32, Vec<u8>)>,
    /// How many parts of the open transaction's log entry are written.
    log_parts: i64,
    /// The last `crdt_ins` for a row without a clock: its table, key and first `seq`. If the
    /// insert turns out to conflict, the next call is for the same row with its clock, and
    /// it reuses those stamps, so `seq` has no gaps.
    provisional: Option<(u32, Vec<u8>, i64)>,
}

impl State {
    /// The open transaction's database version, allocating it on first use.
    pub(crate) fn db_version(&mut self) -> i64 {
        let next = self.committed + 1;
        *self.pending.get_or_insert(next)
    }

    /// A fresh stamp for a write by `site` in the open transaction.
    pub(crate) fn stamp(&mut self, site: u32) -> Stamp {
        let db_version = self.db_version();
        let seq = self.seq;
        self.seq += 1;
        Stamp { db_version, seq, site }
    }

    pub(crate) fn note(&mut self, table: u32, pk: Vec<u8>) {
        self.hints.push((table, pk));
    }

    fn reset(&mut self) {
        self.pending = None;
        self.seq = 0;
        self.hints.clear();
        self.log_parts = 0;
        self.provisional = None;
    }
}

/// The handle of a connection set up for replicated tables. Keep it with the connection:
/// its methods must be given the connection it was installed on.
#[derive(Debug, Clone)]
pub struct Replica {
    pub(crate) state: Arc<Mutex<State>>,
    /// Whether local writes are captured; off while a merge writes rows.
    pub(crate) capturing: Arc<AtomicBool>,
}

/// Quotes an identifier for SQL.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn to_pk_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn user_error(e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(e))
}

/// The tables this crate keeps in every replicated database.
const META_DDL: &str = "
    CREATE TABLE IF NOT EXISTS crdt_sites (
        ordinal INTEGER PRIMARY KEY NOT NULL,
        site_id BLOB NOT NULL UNIQUE
    );
    INSERT INTO crdt_sites (ordinal, site_id)
        SELECT 0, randomblob(16) WHERE NOT EXISTS (SELECT 1 FROM crdt_sites WHERE ordinal = 0);
    CREATE TABLE IF NOT EXISTS crdt_tables (
        ordinal INTEGER PRIMARY KEY NOT NULL,
        name TEXT NOT NULL UNIQUE,
        key_columns TEXT NOT NULL,
        columns TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS crdt_log (
        db_version INTEGER NOT NULL,
        part INTEGER NOT NULL,
        rows BLOB NOT NULL,
        PRIMARY KEY (db_version, part)
    );
    CREATE TABLE IF NOT EXISTS crdt_meta (key TEXT PRIMARY KEY NOT NULL, value ANY);
    CREATE TABLE IF NOT EXISTS crdt_peers (
        site_id BLOB PRIMARY KEY NOT NULL,
        received INTEGER NOT NULL DEFAULT 0,
        acked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS crdt_held (
        id INTEGER PRIMARY KEY NOT NULL,
        schema_version INTEGER NOT NULL,
        change TEXT NOT NULL
    );";

/// Reads the clock argument of a capture function: NULL for a row without one.
fn clock_arg(ctx: &Context<'_>, i: usize) -> rusqlite::Result<RowClock> {
    match ctx.get_raw(i) {
        ValueRef::Null => Ok(RowClock::default()),
        ValueRef::Blob(b) => RowClock::decode(b).map_err(user_error),
        _ => Err(user_error(crate::clock::ClockError)),
    }
}

/// Packs the key arguments `from..` of a capture function.
fn key_arg(ctx: &Context<'_>, from: usize) -> rusqlite::Result<Vec<u8>> {
    let values: Vec<Value> = (from..ctx.len()).map(|i| to_pk_value(ctx.get_raw(i))).collect();
    pk::pack(&values).map_err(user_error)
}

/// A clock that cannot move on: a peer gave it a value no honest replica reaches. Merges
/// refuse clocks past [`crate::MAX_CLOCK`], so this needs a database written around them.
#[derive(Debug, thiserror::Error)]
#[error("a clock of this row is exhausted (at {0}); the row cannot be written")]
pub struct ClockExhausted(i64);

/// `v + 1`, or an error instead of wrapping around.
fn next(v: i64) -> rusqlite::Result<i64> {
    v.checked_add(1).ok_or_else(|| user_error(ClockExhausted(v)))
}

/// The clock after a local insert of a row whose clock was `old`.
fn inserted(state: &mut State, mut clock: RowClock, columns: usize) -> rusqlite::Result<RowClock> {
    if clock.alive() {
        // INSERT OR REPLACE over a live row: every column is written again.
        for i in 0..columns {
            let version = next(clock.cell(i).map_or(0, |c| c.version))?;
            clock.set_cell(i, Some(Cell { version, stamp: state.stamp(0) }));
        }
        return Ok(clock);
    }
    let resurrected = clock.cl > 0;
    clock.cl = next(clock.cl)?;
    // cr-sqlite writes a sentinel for a key-only table or a resurrection, not for a row's
    // first insert.
    clock.sentinel = (resurrected || columns == 0).then(|| state.stamp(0));
    clock.cells = (0..columns).map(|_| Some(Cell { version: 1, stamp: state.stamp(0) })).collect();
    Ok(clock)
}

/// The clock after a local delete.
fn deleted(state: &mut State, mut clock: RowClock) -> rusqlite::Result<RowClock> {
    if clock.cl == 0 {
        clock.cl = 1;
    }
    if clock.alive() {
        clock.cl = next(clock.cl)?;
        clock.sentinel = Some(state.stamp(0));
        clock.cells.clear();
    }
    Ok(clock)
}

/// The clock after a local update of the columns whose bits are set in `masks` (62 columns
/// per mask).
fn updated(
    state: &mut State,
    mut clock: RowClock,
    columns: usize,
    masks: &[i64],
) -> rusqlite::Result<RowClock> {
    if clock.cl == 0 {
        clock.cl = 1;
    }
    for i in 0..columns {
        if masks[i / MASK_BITS] & (1 << (i % MASK_BITS)) != 0 {
            let version = next(clock.cell(i).map_or(0, |c| c.version))?;
            clock.set_cell(i, Some(Cell { version, stamp: state.stamp(0) }));
        }
    }
    Ok(clock)
}

/// Columns per integer mask argument of `crdt_upd`.
const MASK_BITS: usize = 62;

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Replica {
    /// Sets a connection up for replicated tables: creates this crate's tables (with this
    /// database's random 16-byte site id) if needed, and registers the functions and hooks
    /// the capture triggers use. Call on the connection that writes, before it writes.
    pub fn install(conn: &Connection) -> Result<Self, CrdtError> {
        Self::install_with_site_id(conn, None)
    }

    /// Like [`Replica::install`], giving a new database the site id `site` instead of a
    /// random one. A database that already has a different site id is refused: a site id
    /// never changes.
    pub fn install_with_site_id(conn: &Connection, site: Option<&[u8]>) -> Result<Self, CrdtError> {
        if let Some(site) = site {
            if site.len() != 16 {
                return Err(CrdtError::Invalid(format!(
                    "a site id has 16 bytes, not {}",
                    site.len()
                )));
            }
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS crdt_sites (
                     ordinal INTEGER PRIMARY KEY NOT NULL,
                     site_id BLOB NOT NULL UNIQUE
                 )",
            )?;
            conn.execute(
                "INSERT INTO crdt_sites (ordinal, site_id) SELECT 0, ?1
                 WHERE NOT EXISTS (SELECT 1 FROM crdt_sites WHERE ordinal = 0)",
                [site],
            )?;
            let existing = site_id(conn)?;
            if existing != site {
                return Err(CrdtError::Invalid(format!(
                    "this database's site id is {}, not {}",
                    hex::encode(existing),
                    hex::encode(site)
                )));
            }
        }
        conn.execute_batch(META_DDL)?;
        let committed: i64 =
            conn.query_row("SELECT coalesce(max(db_version), 0) FROM crdt_log", [], |r| r.get(0))?;
        let state = Arc::new(Mutex::new(State {
            committed,
            pending: None,
            seq: 0,
            hints: Vec::new(),
            log_parts: 0,
            provisional: None,
        }));

        let capturing = Arc::new(AtomicBool::new(true));
        let c = capturing.clone();
        conn.create_scalar_function("crdt_capturing", 0, FunctionFlags::SQLITE_UTF8, move |_| {
            Ok(c.load(Ordering::Relaxed))
        })?;
        // crdt_ins(table, columns, clock, key...), crdt_del(table, columns, clock, key...)
        // and crdt_upd(table, columns, clock, mask..., key...) return the row's new clock.
        for (name, op) in [("crdt_ins", 0u8), ("crdt_del", 1), ("crdt_upd", 2)] {
            let s = state.clone();
            conn.create_scalar_function(name, -1, FunctionFlags::SQLITE_UTF8, move |ctx| {
                let table: u32 = ctx.get(0)?;
                let columns = usize::try_from(ctx.get::<i64>(1)?).unwrap_or(0);
                let fresh = ctx.get_raw(2) == ValueRef::Null;
                let clock = clock_arg(ctx, 2)?;
                let mut state = lock(&s);
                let provisional = state.provisional.take();
                let (clock, key) = match op {
                    0 => {
                        let key = key_arg(ctx, 3)?;
                        match provisional {
                            Some((t, k, seq)) if !fresh && t == table && k == key => {
                                state.seq = seq
                            }
                            _ if fresh => state.provisional = Some((table, key.clone(), state.seq)),
                            _ => {}
                        }
                        (inserted(&mut state, clock, columns)?, key)
                    }
                    1 => (deleted(&mut state, clock)?, key_arg(ctx, 3)?),
                    _ => {
                        let n = columns.div_ceil(MASK_BITS);
                        let masks: Vec<i64> =
                            (3..3 + n).map(|i| ctx.get(i)).collect::<Result<_, _>>()?;
                        (updated(&mut state, clock, columns, &masks)?, key_arg(ctx, 3 + n)?)
                    }
                };
                state.note(table, key);
                Ok(clock.encode())
            })?;
        }
        let s = state.clone();
        conn.commit_hook(Some(move || {
            let mut state = lock(&s);
            let unflushed = !state.hints.is_empty();
            if !unflushed && let Some(version) = state.pending {
                state.committed = version;
            }
            state.reset();
            // A commit whose captured rows are not in the log is turned into a rollback.
            unflushed
        }))?;
        let s = state.clone();
        conn.rollback_hook(Some(move || lock(&s).reset()))?;
        Ok(Self { state, capturing })
    }

    /// Catches up with versions another connection or process committed. The write path calls
    /// it first in every write transaction (after taking the write lock), so two processes
    /// writing one database never hand out the same version.
    pub fn refresh(&self, conn: &Connection) -> Result<(), CrdtError> {
        let latest: i64 = conn
            .prepare_cached("SELECT coalesce(max(db_version), 0) FROM crdt_log")?
            .query_row([], |r| r.get(0))?;
        let mut state = self.lock();
        if state.pending.is_none() {
            state.committed = state.committed.max(latest);
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Appends the rows the open transaction touched to `crdt_log`. The write path calls it
    /// last before `COMMIT`; a commit without it is refused.
    pub fn flush(&self, conn: &Connection) -> Result<(), CrdtError> {
        let (version, part, rows) = {
            let mut state = self.lock();
            if state.hints.is_empty() {
                return Ok(());
            }
            let mut rows = std::mem::take(&mut state.hints);
            rows.sort_unstable();
            rows.dedup();
            let version = state.db_version();
            state.log_parts += 1;
            (version, state.log_parts - 1, rows)
        };
        let blob = postcard::to_allocvec(&rows).expect("serialising into a Vec cannot fail");
        conn.prepare_cached("INSERT INTO crdt_log (db_version, part, rows) VALUES (?1, ?2, ?3)")?
            .execute(rusqlite::params![version, part, blob])?;
        Ok(())
    }

    /// Makes `table` a replicated table: checks cr-sqlite's schema rules, creates its clock
    /// table and the capture triggers. Rows already in the table are recorded as inserted.
    ///
    /// Idempotent. After an additive `ALTER TABLE ... ADD COLUMN` call it again: the new
    /// columns are captured from then on and every clock is kept. Any other change to a
    /// replicated table's columns is refused.
    pub fn make_replicated(&self, conn: &Connection, table: &str) -> Result<(), CrdtError> {
        if table.is_empty() || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(CrdtError::BadName(table.to_string()));
        }
        schema::check_replicable(conn, table)?;
        let s = shape(conn, table)?;
        let keys = s.pks.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>().join(",");
        let columns = s.others.join(",");
        let known: Option<(u32, String, String)> = conn
            .query_row(
                "SELECT ordinal, key_columns, columns FROM crdt_tables WHERE name = ?1",
                [table],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        conn.execute_batch("SAVEPOINT crdt_make_replicated")?;
        let result = (|| {
            self.refresh(conn)?;
            let ordinal = match known {
                Some((ordinal, old_keys, old_columns)) => {
                    let not_additive =
                        |reason: String| CrdtError::NotAdditive { table: table.into(), reason };
                    if old_keys != keys {
                        return Err(not_additive(format!(
                            "primary key was ({old_keys}), is now ({keys})"
                        )));
                    }
                    let old: Vec<&str> = old_columns.split(',').filter(|c| !c.is_empty()).collect();
                    if !s.others.iter().map(String::as_str).take(old.len()).eq(old.clone()) {
                        return Err(not_additive(format!(
                            "columns were ({old_columns}), are now ({columns})"
                        )));
                    }
                    if old_columns == columns {
                        return Ok(());
                    }
                    conn.execute(
                        "UPDATE crdt_tables SET columns = ?1 WHERE ordinal = ?2",
                        rusqlite::params![columns, ordinal],
                    )?;
                    ordinal
                }
                None => {
                    conn.execute(
                        "INSERT INTO crdt_tables (name, key_columns, columns) VALUES (?1, ?2, ?3)",
                        [table, &keys, &columns],
                    )?;
                    let ordinal = u32::try_from(conn.last_insert_rowid())
                        .map_err(|_| CrdtError::Invalid("too many replicated tables".into()))?;
                    let key_defs: Vec<String> =
                        s.pks.iter().map(|(n, ty)| format!("{} {ty} NOT NULL", ident(n))).collect();
                    conn.execute_batch(&format!(
                        "CREATE TABLE {} ({}, clock BLOB NOT NULL, PRIMARY KEY ({})) WITHOUT ROWID",
                        ident(&s.clock_table()),
                        key_defs.join(", "),
                        s.key_list(""),
                    ))?;
                    ordinal
                }
            };
            conn.execute_batch(&triggers(&s, ordinal))?;
            backfill(conn, &s, ordinal)?;
            self.flush(conn)
        })();
        match result {
            Ok(()) => Ok(conn.execute_batch("RELEASE crdt_make_replicated")?),
            Err(e) => {
                conn.execute_batch(
                    "ROLLBACK TO crdt_make_replicated; RELEASE crdt_make_replicated",
                )?;
                Err(e)
            }
        }
    }
}

/// This database's site id.
pub fn site_id(conn: &Connection) -> Result<Vec<u8>, CrdtError> {
    Ok(conn.query_row("SELECT site_id FROM crdt_sites WHERE ordinal = 0", [], |r| r.get(0))?)
}

/// Names of the replicated tables.
pub fn replicated_tables(conn: &Connection) -> Result<Vec<String>, CrdtError> {
    if !has_meta(conn)? {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare("SELECT name FROM crdt_tables ORDER BY name")?;
    let names = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(names)
}

/// Whether this crate's tables exist in the database.
pub(crate) fn has_meta(conn: &Connection) -> Result<bool, CrdtError> {
    let exists: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'crdt_tables'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(exists.is_some())
}

/// A table's key columns (name, declared type) in key order, and its other columns in
/// declaration order.
#[derive(Debug, Clone)]
pub(crate) struct TableShape {
    pub name: String,
    pub pks: Vec<(String, String)>,
    pub others: Vec<String>,
    /// For each of `others`, whether it is declared `NOT NULL` (a NULL from a peer could
    /// never be written, and would fail the whole merge).
    pub not_null: Vec<bool>,
}

impl TableShape {
    pub fn clock_table(&self) -> String {
        format!("{}__crdt_clock", self.name)
    }

    /// The key columns, each prefixed (`"NEW."`, `"c."`, …), comma-separated.
    pub fn key_list(&self, prefix: &str) -> String {
        self.pks.iter().map(|(n, _)| format!("{prefix}{}", ident(n))).collect::<Vec<_>>().join(", ")
    }

    /// `a.k1 = ?1 AND a.k2 = ?2 …`: the key columns bound to the first parameters.
    pub fn key_params(&self, a: &str) -> String {
        self.pks
            .iter()
            .enumerate()
            .map(|(i, (p, _))| format!("{a}{} = ?{}", ident(p), i + 1))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `a.k1 = b.k1 AND …` over the key columns.
    pub fn key_match(&self, a: &str, b: &str) -> String {
        self.pks
            .iter()
            .map(|(n, _)| format!("{a}{0} = {b}{0}", ident(n)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

pub(crate) fn shape(conn: &Connection, table: &str) -> Result<TableShape, CrdtError> {
    let mut stmt =
        conn.prepare("SELECT name, type, pk, \"notnull\" FROM pragma_table_info(?1) ORDER BY cid")?;
    let mut pks: Vec<(i64, String, String)> = Vec::new();
    let mut others = Vec::new();
    let mut not_null = Vec::new();
    let rows = stmt.query_map([table], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, bool>(3)?,
        ))
    })?;
    for row in rows {
        let (name, ty, pk, nn) = row?;
        if pk > 0 {
            pks.push((pk, name, ty));
        } else {
            others.push(name);
            not_null.push(nn);
        }
    }
    pks.sort();
    Ok(TableShape {
        name: table.to_string(),
        pks: pks.into_iter().map(|(_, n, ty)| (n, ty)).collect(),
        others,
        not_null,
    })
}

/// The capture triggers of a table, replacing any earlier ones.
fn triggers(s: &TableShape, ordinal: u32) -> String {
    let t = ident(&s.name);
    let clock_t = ident(&s.clock_table());
    let n = s.others.len();
    let keys = s.key_list("");
    // Writes the row's new clock, computed by `f` from the clock it has now.
    let upsert = |row: &str, f: &str, extra: &str| {
        format!(
            "INSERT INTO {clock_t} ({keys}, clock) SELECT {}, {f}({ordinal}, {n}, \
                 (SELECT clock FROM {clock_t} WHERE {}){extra}, {}) WHERE true \
             ON CONFLICT ({keys}) DO UPDATE SET clock = excluded.clock;\n",
            s.key_list(&format!("{row}.")),
            s.key_match("", &format!("{row}.")),
            s.key_list(&format!("{row}.")),
        )
    };
    let key_changed = s
        .pks
        .iter()
        .map(|(p, _)| format!("NEW.{0} IS NOT OLD.{0}", ident(p)))
        .collect::<Vec<_>>()
        .join(" OR ");
    let masks: String = s
        .others
        .chunks(MASK_BITS)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .map(|(i, c)| format!("((NEW.{0} IS NOT OLD.{0}) << {i})", ident(c)))
                .collect::<Vec<_>>()
                .join(" | ");
            format!(", ({bits})")
        })
        .collect();
    let changed_any = if n == 0 {
        "0".to_string()
    } else {
        s.others
            .iter()
            .map(|c| format!("NEW.{0} IS NOT OLD.{0}", ident(c)))
            .collect::<Vec<_>>()
            .join(" OR ")
    };
    let trigger = |suffix: &str, event: &str, when: &str, body: &str| {
        let name = ident(&format!("{}__crdt_{suffix}", s.name));
        format!(
            "DROP TRIGGER IF EXISTS {name};\n\
             CREATE TRIGGER {name} AFTER {event} ON {t} FOR EACH ROW WHEN crdt_capturing(){when} \
             BEGIN\n{body}END;\n"
        )
    };
    [
        // The insert is optimistic: a new row's clock needs no lookup. When the key has a
        // clock already (a re-insert), the upsert calls crdt_ins again with it; that second
        // call takes back the stamps of the first (see `State::provisional`).
        trigger(
            "insert",
            "INSERT",
            "",
            &format!(
                "INSERT INTO {clock_t} ({keys}, clock) VALUES ({new}, crdt_ins({ordinal}, {n}, NULL, {new})) \
                 ON CONFLICT ({keys}) DO UPDATE SET clock = crdt_ins({ordinal}, {n}, clock, {new});\n",
                new = s.key_list("NEW."),
            ),
        ),
        trigger("delete", "DELETE", "", &upsert("OLD", "crdt_del", "")),
        // A key change is a delete of the old key and an insert of the new one.
        trigger(
            "rekey",
            "UPDATE",
            &format!(" AND ({key_changed})"),
            &(upsert("OLD", "crdt_del", "") + &upsert("NEW", "crdt_ins", "")),
        ),
        trigger(
            "update",
            "UPDATE",
            &format!(" AND NOT ({key_changed}) AND ({changed_any})"),
            &upsert("NEW", "crdt_upd", &masks),
        ),
    ]
    .concat()
}

/// Records the rows a table holds without a clock as inserted, so replicas receive them.
fn backfill(conn: &Connection, s: &TableShape, ordinal: u32) -> Result<(), CrdtError> {
    let n = s.others.len();
    conn.execute(
        &format!(
            "INSERT INTO {clock_t} ({keys}, clock)
             SELECT {keys}, crdt_ins({ordinal}, {n}, NULL, {keys}) FROM {t} AS r
             WHERE NOT EXISTS (SELECT 1 FROM {clock_t} c WHERE {matching})",
            clock_t = ident(&s.clock_table()),
            keys = s.key_list(""),
            t = ident(&s.name),
            matching = s.key_match("c.", "r."),
        ),
        [],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::changes_since;

    const DDL: &str = "CREATE TABLE rooms (id TEXT PRIMARY KEY NOT NULL, status TEXT NOT NULL DEFAULT 'clean', floor INTEGER)";

    fn replicated(conn: &Connection) -> Replica {
        let replica = Replica::install(conn).expect("install");
        conn.execute_batch(DDL).expect("ddl");
        replica.make_replicated(conn, "rooms").expect("replicate");
        replica
    }

    /// Runs `sql` in one transaction, flushed as the write path does.
    fn write(replica: &Replica, conn: &Connection, sql: &str) {
        conn.execute_batch("BEGIN").expect("begin");
        conn.execute_batch(sql).expect(sql);
        replica.flush(conn).expect("flush");
        conn.execute_batch("COMMIT").expect("commit");
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
    fn a_commit_without_flush_is_refused_and_leaves_nothing() {
        let conn = Connection::open_in_memory().expect("open");
        let replica = replicated(&conn);
        let err = conn.execute("INSERT INTO rooms (id) VALUES ('101')", []).expect_err("refused");
        assert!(err.to_string().contains("constraint"), "{err}");
        let count: i64 =
            conn.query_row("SELECT count(*) FROM rooms", [], |r| r.get(0)).expect("count");
        assert_eq!(count, 0);
        // The next, flushed transaction works and gets the first version.
        write(&replica, &conn, "INSERT INTO rooms (id) VALUES ('102')");
        let versions: Vec<i64> =
            changes_since(&conn, 0, None).expect("changes").iter().map(|c| c.db_version).collect();
        assert_eq!(versions, [1, 1]);
    }

    #[test]
    fn one_transaction_is_one_db_version_and_seq_counts_its_changes() {
        let conn = Connection::open_in_memory().expect("open");
        let replica = replicated(&conn);
        write(
            &replica,
            &conn,
            "INSERT INTO rooms VALUES ('101', 'dirty', 1); INSERT INTO rooms VALUES ('102', 'clean', 1);",
        );
        write(&replica, &conn, "UPDATE rooms SET status = 'clean' WHERE id = '101'");
        let changes = changes_since(&conn, 0, None).expect("changes");
        let clocks: Vec<(i64, i64)> = changes.iter().map(|c| (c.db_version, c.seq)).collect();
        assert_eq!(clocks, [(1, 1), (1, 2), (1, 3), (2, 0)]);
        assert_eq!(changes_since(&conn, 1, None).expect("since 1").len(), 1);
    }

    #[test]
    fn a_rolled_back_transaction_leaves_no_changes_and_no_version_behind() {
        let conn = Connection::open_in_memory().expect("open");
        let replica = replicated(&conn);
        conn.execute_batch("BEGIN; INSERT INTO rooms VALUES ('101', 'dirty', 1); ROLLBACK;")
            .expect("rollback");
        assert!(changes_since(&conn, 0, None).expect("changes").is_empty());
        write(&replica, &conn, "INSERT INTO rooms VALUES ('102', 'clean', 2)");
        let versions: Vec<i64> =
            changes_since(&conn, 0, None).expect("changes").iter().map(|c| c.db_version).collect();
        assert_eq!(versions, [1, 1]);
    }

    #[test]
    fn a_statement_that_fails_half_way_captures_nothing_of_it() {
        let conn = Connection::open_in_memory().expect("open");
        let replica = replicated(&conn);
        write(&replica, &conn, "INSERT INTO rooms VALUES ('102', 'clean', 2)");
        conn.execute_batch("BEGIN").expect("begin");
        conn.execute_batch("INSERT INTO rooms VALUES ('101', 'dirty', 1), ('102', 'x', 1)")
            .expect_err("duplicate key");
        conn.execute_batch("INSERT INTO rooms VALUES ('103', 'dirty', 3)").expect("insert");
        replica.flush(&conn).expect("flush");
        conn.execute_batch("COMMIT").expect("commit");
        let rows: Vec<Vec<Value>> = changes_since(&conn, 1, None)
            .expect("changes")
            .into_iter()
            .map(|c| crate::pk::unpack(&c.pk).expect("key"))
            .collect();
        assert_eq!(rows, [[Value::Text("103".into())], [Value::Text("103".into())]]);
    }

    #[test]
    fn versions_continue_after_reopening_the_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db.sqlite");
        {
            let conn = Connection::open(&path).expect("open");
            let replica = replicated(&conn);
            write(&replica, &conn, "INSERT INTO rooms VALUES ('101', 'dirty', 1)");
        }
        let conn = Connection::open(&path).expect("reopen");
        let replica = Replica::install(&conn).expect("install");
        replica.make_replicated(&conn, "rooms").expect("idempotent");
        write(&replica, &conn, "UPDATE rooms SET floor = 2 WHERE id = '101'");
        let last = changes_since(&conn, 1, None).expect("changes");
        assert_eq!(
            last.iter().map(|c| (c.cid.as_str(), c.db_version)).collect::<Vec<_>>(),
            [("floor", 2)]
        );
        assert_eq!(site_id(&conn).expect("site").len(), 16);
    }

    #[test]
    fn rows_that_existed_before_replication_are_recorded() {
        let conn = Connection::open_in_memory().expect("open");
        let replica = Replica::install(&conn).expect("install");
        conn.execute_batch(&format!("{DDL}; INSERT INTO rooms VALUES ('101', 'dirty', 1);"))
            .expect("seed");
        replica.make_replicated(&conn, "rooms").expect("replicate");
        let cols: Vec<String> =
            changes_since(&conn, 0, None).expect("changes").into_iter().map(|c| c.cid).collect();
        assert_eq!(cols, ["status", "floor"]);
    }

    #[test]
    fn an_added_column_is_captured_and_the_old_clocks_are_kept() {
        let conn = Connection::open_in_memory().expect("open");
        let replica = replicated(&conn);
        write(&replica, &conn, "INSERT INTO rooms VALUES ('101', 'dirty', 1)");
        write(&replica, &conn, "UPDATE rooms SET status = 'clean' WHERE id = '101'");
        conn.execute_batch("ALTER TABLE rooms ADD COLUMN beds INTEGER NOT NULL DEFAULT 2")
            .expect("alter");
        replica.make_replicated(&conn, "rooms").expect("pick up the column");
        write(&replica, &conn, "UPDATE rooms SET beds = 3, floor = 4 WHERE id = '101'");
        let clocks: Vec<(String, i64, i64)> = changes_since(&conn, 0, None)
            .expect("changes")
            .into_iter()
            .map(|c| (c.cid, c.col_version, c.db_version))
            .collect();
        assert_eq!(
            clocks,
            [("status".into(), 2, 2), ("floor".into(), 2, 3), ("beds".into(), 1, 3)]
        );
    }

    #[test]
    fn changes_to_a_replicated_table_that_are_not_additive_are_refused() {
        let conn = Connection::open_in_memory().expect("open");
        let replica = replicated(&conn);
        conn.execute_batch(
            "DROP TABLE rooms; CREATE TABLE rooms (id TEXT PRIMARY KEY NOT NULL, floor INTEGER)",
        )
        .expect("rebuild without a column");
        let err = replica.make_replicated(&conn, "rooms").expect_err("refused");
        assert!(matches!(err, CrdtError::NotAdditive { .. }), "{err}");
        assert!(err.to_string().contains("columns were (status,floor), are now (floor)"), "{err}");
    }

    #[test]
    fn tables_cr_sqlite_would_refuse_are_refused() {
        let conn = Connection::open_in_memory().expect("open");
        let replica = Replica::install(&conn).expect("install");
        conn.execute_batch("CREATE TABLE bad (id TEXT, x TEXT)").expect("ddl");
        assert!(matches!(replica.make_replicated(&conn, "bad"), Err(CrdtError::Schema(_))));
        assert!(matches!(
            replica.make_replicated(&conn, "x; DROP TABLE bad"),
            Err(CrdtError::BadName(_))
        ));
    }
}
