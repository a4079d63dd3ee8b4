//! Conflict-free replicated relations on SQLite, following cr-sqlite's model and speaking its
//! changeset format (DESIGN.md, "Why no cr-sqlite binary, and what replaces it").
//!
//! Built so far: the packed primary-key encoding of `crsql_changes.pk` (`pk`), byte for byte
//! as cr-sqlite 0.16 produces it; the schema rules a replicated table must follow (`schema`);
//! change capture by triggers (`capture`); and reading changes out in `crsql_changes`' shape
//! (`changes`). Merging changes from other sites builds on these.
//!
//! This crate knows nothing about HTTP or the edge node's domains.
//!
//! # How cr-sqlite 0.16 records local writes
//!
//! What change capture must reproduce, as the real cr-sqlite behaves through the reference
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
//!   changes nothing records nothing (but still uses up a `db_version`).
//! - Delete: the sentinel only, `cl` raised to the next even number; the row's column clocks
//!   are dropped.
//! - Insert after delete: the sentinel with `cl` raised to the next odd number, then every
//!   column again from `col_version` 1.
//! - Changing the primary key: the old key's sentinel goes to an even `cl`, the column clocks
//!   move to the new key keeping their versions and `seq`, and the new key gets a sentinel.
//! - Every change of one transaction has the same `db_version`; `seq` counts changes within it.

pub mod capture;
pub mod changes;
pub mod pk;
pub mod schema;

pub use capture::{CrdtError, install, make_replicated, replicated_tables, site_id};
pub use changes::{Change, changes_since};
pub use pk::{PkError, Value, pack, unpack};
pub use schema::{SchemaError, check_replicable};
