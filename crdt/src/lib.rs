//! Conflict-free replicated relations on SQLite, following cr-sqlite's model and speaking its
//! changeset format (DESIGN.md, "Why no cr-sqlite binary, and what replaces it").
//!
//! - `pk`: the packed primary-key encoding of `crsql_changes.pk`, byte for byte as cr-sqlite
//!   0.16 produces it.
//! - `schema`: the rules a replicated table must follow.
//! - `capture` and `clock`: recording local writes by triggers, one clock per row.
//! - `changes`: reading changes out in `crsql_changes`' shape.
//! - `merge`: applying other sites' changes; per-peer cursors; changes held for a newer
//!   schema.
//! - `wire`: the JSON Lines changeset format.
//!
//! This crate knows nothing about HTTP or the edge node's domains.
//!
//! # Using it
//!
//! ```
//! # fn main() -> Result<(), crdt::CrdtError> {
//! let conn = rusqlite::Connection::open_in_memory()?;
//! let replica = crdt::Replica::install(&conn)?;
//! conn.execute_batch("CREATE TABLE rooms (id TEXT PRIMARY KEY NOT NULL, status TEXT)")?;
//! replica.make_replicated(&conn, "rooms")?;
//! // Every write transaction flushes before it commits; a commit without it is refused.
//! conn.execute_batch("BEGIN; INSERT INTO rooms VALUES ('101', 'clean');")?;
//! replica.flush(&conn)?;
//! conn.execute_batch("COMMIT")?;
//! let changes = crdt::changes_since(&conn, 0, None)?;
//! assert_eq!(changes[0].cid, "status");
//! # Ok(()) }
//! ```
//!
//! # How cr-sqlite 0.16 records local writes
//!
//! What change capture reproduces, as the real cr-sqlite behaves through the reference
//! peer (`tests/crsqlite/peer.mjs`; `SELECT ... FROM crsql_changes ORDER BY db_version, seq`
//! after each step). Per table it keeps `T__crsql_pks` (an integer key per primary key) and
//! `T__crsql_clock (key, col_name, col_version, db_version, site_id, seq, PRIMARY KEY (key,
//! col_name))`, with `col_name = '-1'` for the row sentinel, whose `col_version` is the causal
//! length `cl`.
//!
//! - Insert of a new row: one change per non-key column, `col_version` 1, `cl` 1, `seq`
//!   0, 1, … in column order; no sentinel change — unless the table has only key columns, then
//!   just the sentinel with `cl` 1.
//! - Update: one change per column whose value changed, `col_version` + 1; an update that
//!   changes nothing records nothing.
//! - Delete: the sentinel only, `cl` raised to the next even number; the row's column clocks
//!   are dropped.
//! - Insert after delete: the sentinel with `cl` raised to the next odd number, then every
//!   column again from `col_version` 1.
//! - Every change of one transaction has the same `db_version`; `seq` counts changes within it.
//!
//! One deliberate difference: cr-sqlite moves a row's column clocks to the new key when the
//! primary key changes, keeping their old `db_version`, so a peer that synced before never
//! receives the row's values under the new key. Here a key change is a delete of the old key
//! and an insert of the new one, and every column travels again.

pub mod capture;
mod catalog;
pub mod changes;
pub mod clock;
pub mod merge;
pub mod pk;
pub mod protocol;
pub mod schema;
pub mod wire;

pub use capture::{CrdtError, Replica, replicated_tables, site_id};
pub use changes::{
    Change, SENTINEL, Sites, batch_end, changes_since, for_each_change_between,
    for_each_change_since, rows_after,
};
pub use merge::{
    Changeset, MergeReport, PeerCursor, changeset_batch, changeset_since, compare_values,
    peer_cursor, schema_version, set_acked,
};
pub use pk::{PkError, Value, pack, unpack};

/// The largest `cl`, `col_version` or `db_version` a change from another site may carry:
/// 2^53, far beyond what any replica reaches by counting its writes (one a microsecond for
/// 285 years), and small enough that a local write after it never overflows and the value
/// survives every JSON reader. A change past it is refused at every boundary, so nobody can
/// poison a row's clock so that the next honest write overflows or can never win.
pub const MAX_CLOCK: i64 = 1 << 53;
/// The largest `seq` a change may carry (the hub stores it as a 32-bit integer).
pub const MAX_SEQ: i64 = i32::MAX as i64;

/// Why a change from another site is not acceptable on its own (before any schema or stored
/// state is looked at): the checks every boundary runs, with a reason a person can read.
pub fn check_bounds(c: &Change) -> Result<(), String> {
    if c.site_id.len() != 16 {
        return Err(format!("site_id has {} bytes, not 16", c.site_id.len()));
    }
    if !(1..=MAX_CLOCK).contains(&c.cl) {
        return Err(format!("cl {} is not a causal length from 1 to 2^53", c.cl));
    }
    if !(0..=MAX_CLOCK).contains(&c.col_version) {
        return Err(format!("col_version {} is outside 0 to 2^53", c.col_version));
    }
    if !(0..=MAX_CLOCK).contains(&c.db_version) {
        return Err(format!("db_version {} is outside 0 to 2^53", c.db_version));
    }
    if !(0..=MAX_SEQ).contains(&c.seq) {
        return Err(format!("seq {} is outside 0 to 2^31-1", c.seq));
    }
    Ok(())
}
pub use schema::{SchemaError, check_replicable};
