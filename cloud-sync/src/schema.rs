//! The edge schema the hub mirrors: each replicated table's scope, columns and key, and the
//! PostgreSQL read table built from it.

use crdt::protocol::Scopes;

use crate::db::HubError;

/// The replicated edge tables the hub knows.
#[derive(Debug, Clone)]
pub struct HubSchema {
    pub(crate) tables: Vec<()>,
    pub(crate) version: i64,
}

impl HubSchema {
    /// The edge schema embedded in this binary: `migrations/edge/` and `replication.toml`.
    pub fn edge() -> Result<Self, HubError> {
        unimplemented!()
    }

    /// A schema from SQLite DDL and scopes (tests use their own tables).
    pub fn from_sqlite(ddl: &str, scopes: &Scopes) -> Result<Self, HubError> {
        let _ = (ddl, scopes);
        unimplemented!()
    }

    /// The edge's replicated schema version this schema is.
    pub fn version(&self) -> i64 {
        self.version
    }
}
