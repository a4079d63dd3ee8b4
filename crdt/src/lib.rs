//! Conflict-free replicated relations on SQLite, following cr-sqlite's model and speaking its
//! changeset format (DESIGN.md, "Why no cr-sqlite binary, and what replaces it").
//!
//! Built so far: the packed primary-key encoding of `crsql_changes.pk` (`pk`), byte for byte
//! as cr-sqlite 0.16 produces it, and the schema rules a replicated table must follow
//! (`schema`). Change capture, merge and changesets build on these.
//!
//! This crate knows nothing about HTTP or the edge node's domains.

pub mod pk;
pub mod schema;

pub use pk::{PkError, Value, pack, unpack};
pub use schema::{SchemaError, check_replicable};
