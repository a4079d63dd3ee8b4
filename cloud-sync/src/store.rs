//! Merging changesets into PostgreSQL with exactly the `crdt` rules, and pulls.

use std::sync::Arc;

use crdt::protocol::{Pull, PushAck};

use crate::db::{HubError, Pool};
use crate::schema::HubSchema;

/// The hub's replica: cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    schema: HubSchema,
    site_id: [u8; 16],
    head: tokio::sync::watch::Sender<i64>,
}

/// Who writes a batch.
#[derive(Debug, Clone)]
pub struct Writer {
    pub property_id: String,
    /// `None` for a file import.
    pub node_id: Option<String>,
}

/// Why a batch was not merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{table} row {pk}: {reason}")]
    Forbidden { table: String, pk: String, reason: String },
    #[error("change {index}: {reason}")]
    Invalid { index: usize, reason: String },
    #[error(transparent)]
    Hub(#[from] HubError),
}

impl Store {
    pub async fn open(pool: Pool, schema: HubSchema) -> Result<Self, HubError> {
        let _ = (pool, schema);
        unimplemented!()
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub fn hub_site_id(&self) -> [u8; 16] {
        self.inner.site_id
    }

    pub fn schema_version(&self) -> i64 {
        self.inner.schema.version()
    }

    pub fn head(&self) -> i64 {
        *self.inner.head.borrow()
    }

    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.head.subscribe()
    }

    pub async fn push(
        &self,
        writer: &Writer,
        batch: &crdt::Changeset,
    ) -> Result<PushAck, MergeError> {
        let _ = (writer, batch);
        unimplemented!()
    }

    pub async fn import(
        &self,
        writer: &Writer,
        changes: &[crdt::Change],
    ) -> Result<PushAck, MergeError> {
        let _ = (writer, changes);
        unimplemented!()
    }

    pub async fn received(&self, site_id: &[u8]) -> Result<i64, HubError> {
        let _ = site_id;
        unimplemented!()
    }

    pub async fn pull(
        &self,
        property_id: &str,
        exclude_site: Option<&[u8]>,
        since: i64,
        limit: usize,
    ) -> Result<Pull, HubError> {
        let _ = (property_id, exclude_site, since, limit);
        unimplemented!()
    }

    /// Everything a property's node would pull from version `since`, as changes (for
    /// `changes export`).
    pub async fn export(
        &self,
        property_id: &str,
        since: i64,
    ) -> Result<Vec<crdt::Change>, HubError> {
        let _ = (property_id, since);
        unimplemented!()
    }
}
