//! Merging changesets into PostgreSQL with exactly the `crdt` rules, and pulls.
//!
//! The state is cr-sqlite's, one PostgreSQL row per register: `sync_cells` holds every
//! (row, column) register and every row sentinel with its clock, `sync_rows` each row's causal
//! length and owner. A cell wins when `(cl, col_version, val, site_id)` is larger — with `val`
//! in the order-preserving encoding of `value.rs`, that row comparison is the whole crdt rule
//! (higher causal length, then higher column version, then the larger value in cr-sqlite's
//! order, then on equal values the larger site id). A row's visible cells are those of its
//! current life (`cell.cl = row.cl`); the `replica` read tables are rebuilt from them.
//!
//! A batch is merged in one transaction, every step one statement over arrays (`unnest`), so
//! the cost per change is a few index probes inside PostgreSQL, not a round trip. Merges are
//! serialized by an advisory lock taken before the hub version is drawn: versions commit in
//! order, and a pull that has seen version `v` has seen every version before it.
//!
//! The cells each merge changed are also kept in memory (`tail`), and pulls of recent
//! versions — every caught-up node's pull — are answered from there without a query.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crdt::protocol::{Batch, OwnedBy, Pull, PushAck, Scope, WireChange};
use crdt::{Change, Changeset, SENTINEL};
use deadpool_postgres::GenericClient;
use rusqlite::types::Value;
use serde_json::Value as Json;

use crate::db::{HubError, NOTIFY_CHANNEL, Pool};
use crate::schema::{HubSchema, PgType, Table, quote_ident};
use crate::screen::{self, Refusal, Source, Verdict};
use crate::tail::{self, Tail, TailChange, TailPull};
use crate::value;

/// Transaction-level advisory lock every merge takes before drawing its version.
const MERGE_LOCK: i64 = 0x5354_4159_4f53_4d32;
/// Quarantined changes kept per property; older ones are dropped (and counted in metrics).
pub const QUARANTINE_KEEP: i64 = 10_000;
/// Rows one property may store on the hub unless the operator says otherwise
/// (`Store::with_row_quota`).
pub const DEFAULT_ROW_QUOTA: i64 = 20_000_000;
/// Largest held change the hub decodes again (a change is at most a push's decoded size).
const MAX_HELD_CHANGE: usize = 64 * 1024 * 1024;
/// Bytes of a refused change's value kept in the quarantine to show what it was.
const QUARANTINE_PREVIEW: usize = 256;
/// Rows per projection statement when a whole table is re-projected.
const REPROJECT_CHUNK: usize = 5_000;

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
    /// Rows a property may store (`sync_usage`); a push past it is refused whole (507).
    row_quota: AtomicI64,
    /// The changes of recent versions. Held only for moments, never across an await.
    tail: std::sync::RwLock<Tail>,
    /// Held from a merge's commit until its version is in `tail`: another merge of this
    /// process commits the next version only after that, so versions enter `tail` in order.
    append_order: tokio::sync::Mutex<()>,
}

/// Who writes a batch.
#[derive(Debug, Clone)]
pub struct Writer {
    pub property_id: String,
    /// `None` for a file import.
    pub node_id: Option<String>,
}

/// Why a batch was not merged. Nothing of the batch is applied in any case. A bad change is
/// not one of them: it is quarantined and the rest of its batch merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The batch itself is malformed (its site id or range) (422).
    #[error("change {index}: {reason}")]
    Invalid { index: usize, reason: String },
    /// The writer's property would store more rows than its quota (507); nothing is lost,
    /// the node keeps the changes and retries.
    #[error(
        "property {property_id} stores {stored} rows on the hub and this batch adds {adding}; \
         its quota is {quota} rows"
    )]
    QuotaExceeded { property_id: String, stored: i64, adding: i64, quota: i64 },
    #[error(transparent)]
    Hub(#[from] HubError),
}

impl From<tokio_postgres::Error> for MergeError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Hub(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for MergeError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Hub(e.into())
    }
}

/// Who owns a table's rows on the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// One property (also tables the hub does not know yet: a newer edge schema).
    Property,
    /// The chain: scope ''.
    Chain,
    /// Never leaves the node.
    Node,
}

/// How a row of a batch names its property (replication.toml `[owners]`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum RowOwner {
    Chain,
    /// The key itself is the property (`properties`).
    Key(String),
    /// A column of the row (`property_id`).
    Column,
    /// The row shares the property of the parent row at this index of the plan's lookups.
    Parent(usize),
}

/// What the hub holds of a row a merge looks up: its scope, causal length and, where the
/// table has one, its `property_id` register (encoded).
type StoredRow = (String, i64, Option<Vec<u8>>);
/// A writer as held changes name it: (property, node).
type Writer2 = (String, Option<String>);
/// Held changes of one writer: their ids and the changes.
type HeldGroup = (Vec<i64>, Vec<Change>);

/// A distinct row of a batch.
struct RowPlan<'a> {
    tbl: &'a str,
    pk: &'a [u8],
    scope: String,
    /// The causal length before the batch (`None`: a new row).
    old_cl: Option<i64>,
    new_cl: i64,
    owner: RowOwner,
    /// The batch's changes (indexes) of the row's `property_id` column.
    claims: Vec<usize>,
    /// Why the row's changes are quarantined.
    refused: Option<Refusal>,
    /// Stored by another property before ownership was derived: its state is dropped and
    /// the row starts again from this batch.
    reclaimed: bool,
}

/// What a merge wrote, before its commit.
struct Written {
    /// The sender's cursor after the batch.
    received: i64,
    /// Cells that changed.
    applied: u64,
    /// Changes refused, and kept in `sync_quarantine`.
    quarantined: u64,
    /// Changes of a newer schema, kept in `sync_held`.
    held: u64,
    /// Refusals per kind, for metrics.
    kinds: Vec<(&'static str, u64)>,
    /// The first refusal's reason, for the log.
    first_reason: String,
    tail: Vec<TailChange>,
}

/// The changes of a batch that are not merged: refused ones and those of a newer schema.
struct Aside<'a> {
    refused: Vec<(&'a Change, Refusal)>,
    held: Vec<&'a Change>,
}

/// A cell that may change: the largest change of the batch for its (row, cid).
struct Candidate<'a> {
    row: usize,
    change: &'a Change,
    /// `change.val` in the order-preserving encoding.
    val: &'a [u8],
}

/// A batch's changes and what is known of them before the merge lock is taken.
struct Plan<'a> {
    changes: Vec<&'a Change>,
    /// The distinct rows, in order of first appearance.
    rows: Vec<RowPlan<'a>>,
    /// Rows whose stored state the merge reads: `rows` in order, then the parents they
    /// reference that the batch does not hold.
    lookup_tbls: Vec<&'a str>,
    lookup_pks: Vec<Vec<u8>>,
    /// Per change, its row's index in `rows`.
    row_of: Vec<usize>,
    /// Per change, its value encoded (`value::encode`).
    vals: Vec<Vec<u8>>,
}

/// The statements of a merge, prepared before the lock is taken: each is parsed once per
/// connection (`prepare_cached`), and a merge holding the lock spends no round trip on it.
struct MergeStatements {
    lock: tokio_postgres::Statement,
    /// The sender's cursor, and the merge's version unless the batch is a replay, with the
    /// head notification: `$1` the sender's site id, `$2` the batch's `until` (both NULL for
    /// an import, which always takes a version), `$3` the channel.
    head: tokio_postgres::Statement,
    existing: tokio_postgres::Statement,
    rows: tokio_postgres::Statement,
    cells: tokio_postgres::Statement,
    reread: tokio_postgres::Statement,
    peers: tokio_postgres::Statement,
    /// Rows the writer's property stores (`$1`).
    usage: tokio_postgres::Statement,
    add_usage: tokio_postgres::Statement,
    quarantine: tokio_postgres::Statement,
    held: tokio_postgres::Statement,
    reclaim: tokio_postgres::Statement,
}

impl MergeStatements {
    async fn prepare(client: &deadpool_postgres::Object) -> Result<Self, tokio_postgres::Error> {
        let (lock, head, existing, rows, cells, reread, peers, usage, add_usage, quarantine) = tokio::try_join!(
            client.prepare_cached("SELECT pg_advisory_xact_lock($1)"),
            client.prepare_cached(
                "WITH p AS MATERIALIZED (
                     SELECT coalesce((SELECT received FROM sync_peers WHERE site_id = $1), 0)
                       AS received),
                 n AS (SELECT received,
                              CASE WHEN $2::int8 IS NULL OR received < $2
                                   THEN nextval('sync_version') END AS v
                       FROM p)
                 SELECT received, v,
                        CASE WHEN v IS NOT NULL THEN pg_notify($3, 'head:' || v) END
                 FROM n",
            ),
            client.prepare_cached(
                "SELECT u.ord::int8, r.scope, r.cl, p.val
                 FROM unnest($1::text[], $2::bytea[], $3::bool[]) WITH ORDINALITY AS u(tbl, pk, pid, ord)
                 JOIN sync_rows r ON r.tbl = u.tbl AND r.pk = u.pk
                 LEFT JOIN sync_cells p
                   ON u.pid AND p.tbl = u.tbl AND p.pk = u.pk AND p.cid = 'property_id'",
            ),
            client.prepare_cached(
                "INSERT INTO sync_rows (tbl, pk, scope, cl)
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::text[], $4::int8[])
                 ON CONFLICT (tbl, pk) DO UPDATE SET cl = excluded.cl
                 WHERE excluded.cl > sync_rows.cl",
            ),
            client.prepare_cached(
                "INSERT INTO sync_cells AS c
                     (tbl, pk, cid, val, col_version, cl, site_id, scope, version, seq)
                 SELECT u.tbl, u.pk, u.cid, u.val, u.col_version, u.cl, u.site_id, u.scope,
                        $9, u.seq
                 FROM unnest($1::text[], $2::bytea[], $3::text[], $4::bytea[], $5::int8[],
                             $6::int8[], $7::bytea[], $8::text[], $10::int4[])
                   AS u(tbl, pk, cid, val, col_version, cl, site_id, scope, seq)
                 ON CONFLICT (tbl, pk, cid) DO UPDATE SET
                     val = excluded.val, col_version = excluded.col_version,
                     cl = excluded.cl, site_id = excluded.site_id,
                     version = excluded.version, seq = excluded.seq
                 WHERE (excluded.cl, excluded.col_version, excluded.val, excluded.site_id)
                     > (c.cl, c.col_version, c.val, c.site_id)
                 RETURNING seq",
            ),
            client.prepare_cached(
                "SELECT u.ord::int8, c.cid, c.val
                 FROM unnest($1::text[], $2::bytea[]) WITH ORDINALITY AS u(tbl, pk, ord)
                 JOIN sync_rows r ON r.tbl = u.tbl AND r.pk = u.pk
                 JOIN sync_cells c ON c.tbl = u.tbl AND c.pk = u.pk AND c.cl = r.cl
                 WHERE c.cid <> '-1'",
            ),
            client.prepare_cached(
                "INSERT INTO sync_peers (site_id, node_id, received, audit_seq, audit_hash)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (site_id) DO UPDATE SET received = excluded.received,
                     node_id = coalesce(excluded.node_id, sync_peers.node_id),
                     audit_hash = CASE WHEN excluded.audit_seq > coalesce(sync_peers.audit_seq, -1)
                                       THEN excluded.audit_hash ELSE sync_peers.audit_hash END,
                     audit_seq = greatest(excluded.audit_seq, sync_peers.audit_seq)",
            ),
            client.prepare_cached(
                "SELECT coalesce((SELECT rows FROM sync_usage WHERE property_id = $1), 0)",
            ),
            client.prepare_cached(
                "INSERT INTO sync_usage (property_id, rows) VALUES ($1, $2)
                 ON CONFLICT (property_id) DO UPDATE SET rows = sync_usage.rows + excluded.rows",
            ),
            client.prepare_cached(
                "WITH ins AS (
                     INSERT INTO sync_quarantine
                         (property_id, node_id, site_id, tbl, pk, cid, kind, reason, change)
                     SELECT $1, $2, u.* FROM unnest($3::bytea[], $4::text[], $5::bytea[],
                         $6::text[], $7::text[], $8::text[], $9::text[]::jsonb[]) AS u
                     RETURNING 1)
                 DELETE FROM sync_quarantine WHERE property_id = $1 AND id <
                     (SELECT id FROM sync_quarantine WHERE property_id = $1
                      ORDER BY id DESC OFFSET $10 LIMIT 1)",
            ),
        )?;
        let (held, reclaim) = tokio::try_join!(
            client.prepare_cached(
                "INSERT INTO sync_held (property_id, node_id, schema_version, change)
                 SELECT $1, $2, $3, u FROM unnest($4::bytea[]) AS u",
            ),
            client.prepare_cached(
                "WITH u AS (SELECT * FROM unnest($1::text[], $2::bytea[]) AS u(tbl, pk)),
                      cells AS (DELETE FROM sync_cells c USING u
                                WHERE c.tbl = u.tbl AND c.pk = u.pk)
                 DELETE FROM sync_rows r USING u WHERE r.tbl = u.tbl AND r.pk = u.pk",
            ),
        )?;
        Ok(Self {
            lock,
            head,
            existing,
            rows,
            cells,
            reread,
            peers,
            usage,
            add_usage,
            quarantine,
            held,
            reclaim,
        })
    }
}

impl Store {
    /// Opens the store on a migrated database (`db::migrate`).
    pub async fn open(pool: Pool, schema: HubSchema) -> Result<Self, HubError> {
        let client = pool.get().await?;
        let site = client
            .query_opt("SELECT value FROM hub_meta WHERE key = 'site_id'", &[])
            .await?
            .map(|r| r.get::<_, Vec<u8>>(0))
            .ok_or_else(|| HubError::Invalid("the hub has no site id; run migrate".into()))?;
        let site_id: [u8; 16] = site
            .try_into()
            .map_err(|_| HubError::Invalid("hub_meta.site_id is not 16 bytes".into()))?;
        // The sequence's last value, not max(version): a version drawn by a merge that was
        // rolled back holds nothing, and saying the head is past it is harmless.
        let head: i64 = client
            .query_one(
                "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM sync_version",
                &[],
            )
            .await?
            .get(0);
        drop(client);
        let tail = Tail::new(head, tail::DEFAULT_CAPACITY);
        let (head, _) = tokio::sync::watch::channel(head);
        let store = Self {
            inner: Arc::new(Inner {
                pool,
                schema,
                site_id,
                head,
                row_quota: AtomicI64::new(DEFAULT_ROW_QUOTA),
                tail: std::sync::RwLock::new(tail),
                append_order: tokio::sync::Mutex::new(()),
            }),
        };
        store.replay_held().await?;
        Ok(store)
    }

    /// Merges the changes held for a newer edge schema that this hub now knows (it was
    /// upgraded): each as the node that pushed it wrote it, with every check of a push but
    /// the cursor, which moved when they were held. A group that cannot merge stays held.
    async fn replay_held(&self) -> Result<(), HubError> {
        let version = self.inner.schema.version();
        let client = self.inner.pool.get().await?;
        let held = client
            .query(
                "SELECT id, property_id, node_id, change FROM sync_held
                 WHERE schema_version <= $1 ORDER BY id",
                &[&version],
            )
            .await?;
        drop(client);
        let mut groups: std::collections::BTreeMap<Writer2, HeldGroup> =
            std::collections::BTreeMap::new();
        for row in &held {
            // An unreadable row (the database is not to be trusted more than a node) is left
            // where it is and named in the log; it must not keep the hub from starting.
            let change: WireChange = match crdt::protocol::decode(row.get(3), MAX_HELD_CHANGE) {
                Ok(change) => change,
                Err(e) => {
                    tracing::error!(id = row.get::<_, i64>(0), error = %e,
                        "a held change cannot be read; it stays in sync_held");
                    continue;
                }
            };
            let group = groups.entry((row.get(1), row.get(2))).or_default();
            group.0.push(row.get(0));
            group.1.push(change.into());
        }
        for ((property_id, node_id), (ids, changes)) in groups {
            let writer = Writer { property_id: property_id.clone(), node_id };
            match self.merge(&writer, None, &changes).await {
                Ok(ack) => {
                    let client = self.inner.pool.get().await?;
                    client.execute("DELETE FROM sync_held WHERE id = ANY($1)", &[&ids]).await?;
                    tracing::info!(%property_id, merged = ack.applied, quarantined = ack.quarantined,
                        "merged the changes held for this schema version");
                }
                Err(err) => {
                    tracing::error!(%property_id, error = %err, "held changes could not be merged; they stay held");
                }
            }
        }
        Ok(())
    }

    /// Keeps at most `changes` changes of recent versions in memory (the default is
    /// [`tail::DEFAULT_CAPACITY`]); what was kept is forgotten.
    pub fn with_tail_capacity(self, changes: usize) -> Self {
        let mut tail = self.tail_write();
        *tail = Tail::new(tail.range().1, changes);
        drop(tail);
        self
    }

    /// Whether versions `(since, head]` hold anything a pull of `property_id` excluding
    /// `exclude_site` would send; `None` when that is not known without the database.
    pub fn has_news(
        &self,
        property_id: &str,
        exclude_site: &[u8],
        since: i64,
        head: i64,
    ) -> Option<bool> {
        self.tail_read().has_news(property_id, exclude_site, since, head)
    }

    /// The versions `(floor, top]` pulls are answered for from memory; older cursors are
    /// answered from the database.
    pub fn tail_range(&self) -> (i64, i64) {
        self.tail_read().range()
    }

    fn tail_read(&self) -> std::sync::RwLockReadGuard<'_, Tail> {
        self.inner.tail.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tail_write(&self) -> std::sync::RwLockWriteGuard<'_, Tail> {
        self.inner.tail.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A version another process committed (its notification): long-polls wake, and pulls
    /// reach it — from the database, as the tail never saw it.
    pub fn observe_head(&self, version: i64) {
        self.raise_head(version);
    }

    fn raise_head(&self, version: i64) {
        self.inner.head.send_if_modified(|head| {
            let newer = version > *head;
            if newer {
                *head = version;
            }
            newer
        });
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub fn schema(&self) -> &HubSchema {
        &self.inner.schema
    }

    pub fn hub_site_id(&self) -> [u8; 16] {
        self.inner.site_id
    }

    /// The edge schema version the hub knows and relays. Changes of a newer one are held on
    /// the hub (`sync_held`) until it is upgraded, never relayed: a node pulls only what a
    /// hub of its own schema could check.
    pub fn schema_version(&self) -> i64 {
        self.inner.schema.version()
    }

    /// Lets each property store at most `rows` rows on the hub.
    pub fn with_row_quota(self, rows: i64) -> Self {
        self.inner.row_quota.store(rows.max(0), Ordering::Relaxed);
        self
    }

    /// The last committed hub version.
    pub fn head(&self) -> i64 {
        *self.inner.head.borrow()
    }

    /// The head, sent after each commit (long-polls wait on it).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<i64> {
        self.inner.head.subscribe()
    }

    /// Merges a batch of a node's own changes. A batch ending at or before what the hub has
    /// already received from its sender is a replay: acknowledged without merging. Otherwise
    /// the sender's cursor moves to `until` when the batch starts at or before it (no gap).
    pub async fn push(&self, writer: &Writer, batch: &Changeset) -> Result<PushAck, MergeError> {
        if batch.site_id.len() != 16 {
            return Err(MergeError::Invalid {
                index: 0,
                reason: format!("the batch's site_id has {} bytes, not 16", batch.site_id.len()),
            });
        }
        if batch.since < 0 || batch.until < batch.since {
            return Err(MergeError::Invalid {
                index: 0,
                reason: format!(
                    "the batch's range {}..{} is not a range",
                    batch.since, batch.until
                ),
            });
        }
        self.merge(writer, Some(batch), &batch.changes).await
    }

    /// Merges changes from a file: no sender, no cursor (`received` is 0). Changes of
    /// node-scope tables, which an edge export contains, are skipped (counted as ignored):
    /// the hub never keeps them.
    pub async fn import(&self, writer: &Writer, changes: &[Change]) -> Result<PushAck, MergeError> {
        self.merge(writer, None, changes).await
    }

    /// The newest audit-log entry of `site_id`'s own chain the hub has stored.
    pub async fn audit_anchor(
        &self,
        site_id: &[u8],
    ) -> Result<Option<crdt::protocol::AuditAnchor>, HubError> {
        let client = self.inner.pool.get().await?;
        let row = client
            .query_opt(
                "SELECT audit_seq, audit_hash FROM sync_peers
                 WHERE site_id = $1 AND audit_seq IS NOT NULL AND audit_hash IS NOT NULL",
                &[&site_id],
            )
            .await?;
        Ok(row.map(|r| crdt::protocol::AuditAnchor { seq: r.get(0), hash: r.get(1) }))
    }

    /// The sender's version up to which the hub has merged all its changes.
    pub async fn received(&self, site_id: &[u8]) -> Result<i64, HubError> {
        let client = self.inner.pool.get().await?;
        let row = client
            .query_opt("SELECT received FROM sync_peers WHERE site_id = $1", &[&site_id])
            .await?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    fn owner(&self, table: &str) -> Owner {
        match self.inner.schema.scope(table) {
            Some(Scope::Node) => Owner::Node,
            Some(Scope::Chain) => Owner::Chain,
            Some(Scope::Property) | None => Owner::Property,
        }
    }

    /// The distinct rows of a batch in order of first appearance, how each names its
    /// property, and each change's value encoded: work that needs no stored state, done
    /// before the merge lock is taken.
    fn plan<'a>(&'a self, writer: &Writer, changes: Vec<&'a Change>) -> Plan<'a> {
        let schema = &self.inner.schema;
        let mut row_index: HashMap<(&str, &[u8]), usize> = HashMap::new();
        let mut rows: Vec<RowPlan<'a>> = Vec::new();
        let mut row_of: Vec<usize> = Vec::with_capacity(changes.len());
        for c in &changes {
            let i = *row_index.entry((c.table.as_str(), c.pk.as_slice())).or_insert_with(|| {
                rows.push(RowPlan {
                    tbl: &c.table,
                    pk: &c.pk,
                    scope: match self.owner(&c.table) {
                        Owner::Chain => String::new(),
                        _ => writer.property_id.clone(),
                    },
                    old_cl: None,
                    new_cl: 0,
                    owner: RowOwner::Chain,
                    claims: Vec::new(),
                    refused: None,
                    reclaimed: false,
                });
                rows.len() - 1
            });
            row_of.push(i);
        }
        let vals: Vec<Vec<u8>> = changes.iter().map(|c| value::encode(&c.val)).collect();

        // How each row names its property; parents the batch does not hold are looked up.
        let mut lookup_tbls: Vec<&'a str> = rows.iter().map(|r| r.tbl).collect();
        let mut lookup_pks: Vec<Vec<u8>> = rows.iter().map(|r| r.pk.to_vec()).collect();
        for row in &mut rows {
            let (tbl, pk) = (row.tbl, row.pk);
            let owner = match (schema.scope(tbl), schema.owner(tbl), schema.table(tbl)) {
                (Some(Scope::Property), Some(owned), Some(table)) => {
                    let key = crdt::unpack(pk).unwrap_or_default();
                    let key_value = |column: &str| {
                        table
                            .key
                            .iter()
                            .position(|&k| table.columns[k].name == column)
                            .and_then(|p| key.get(p).cloned())
                    };
                    match owned {
                        OwnedBy::Column(col) => match key_value(col) {
                            Some(crdt::Value::Text(p)) => RowOwner::Key(p),
                            Some(other) => RowOwner::Key(format!("{other:?}")),
                            None => RowOwner::Column,
                        },
                        OwnedBy::Parent { column, table: parent } => {
                            let parent_pk = key_value(column)
                                .and_then(|v| crdt::pack(&[v]).ok())
                                .unwrap_or_default();
                            let at = row_index
                                .get(&(parent.as_str(), parent_pk.as_slice()))
                                .copied()
                                .unwrap_or_else(|| {
                                    lookup_tbls
                                        .push(schema.table(parent).map_or("", |t| t.name.as_str()));
                                    lookup_pks.push(parent_pk.clone());
                                    lookup_pks.len() - 1
                                });
                            RowOwner::Parent(at)
                        }
                    }
                }
                _ => RowOwner::Chain,
            };
            row.owner = owner;
        }
        for (k, (c, &r)) in changes.iter().zip(&row_of).enumerate() {
            if c.cid == "property_id" {
                rows[r].claims.push(k);
            }
        }
        Plan { changes, rows, lookup_tbls, lookup_pks, row_of, vals }
    }

    /// Decides, from what the hub holds, which property each row of a batch belongs to and
    /// whether the writer may write it (replication.toml `[owners]`): a row names its
    /// property by a column or by the parent its key references, never by who wrote it first.
    /// A row stored under another property than the one it derives (claimed by another
    /// node before ownership was derived) is reclaimed by its rightful property's next write.
    fn decide_owners(
        &self,
        writer: &Writer,
        rows: &mut [RowPlan<'_>],
        stored: &[Option<StoredRow>],
        lookup_tbls: &[&str],
        lookup_pks: &[Vec<u8>],
        vals: &[Vec<u8>],
    ) {
        let own = writer.property_id.as_str();
        let own_encoded = value::encode(&Value::Text(own.to_string()));
        let refuse = |kind, reason: String| Some(Refusal::new(kind, reason));
        // Rows that name their property themselves first: every parent is one of them.
        for children in [false, true] {
            for i in 0..rows.len() {
                if matches!(rows[i].owner, RowOwner::Parent(_)) != children {
                    continue;
                }
                let here = stored[i].as_ref();
                if let Some((scope, cl, _)) = here {
                    rows[i].scope = scope.clone();
                    rows[i].old_cl = Some(*cl);
                }
                let foreign_claim = rows[i].claims.iter().any(|&k| vals[k] != own_encoded);
                let tbl = rows[i].tbl;
                let verdict = match rows[i].owner.clone() {
                    RowOwner::Chain => match (here, here.and_then(|(_, _, p)| p.as_ref())) {
                        (_, Some(first)) if rows[i].claims.iter().any(|&k| vals[k] != *first) => {
                            refuse(
                                "other_property",
                                "the property a chain record was first seen at never changes"
                                    .into(),
                            )
                        }
                        (None, _) if foreign_claim => refuse(
                            "other_property",
                            format!(
                                "a new {tbl} record is first seen at the writer's property {own}"
                            ),
                        ),
                        _ => None,
                    },
                    RowOwner::Key(p) if p != own => refuse(
                        "other_property",
                        format!("a node writes only its own property's record, not {p}'s"),
                    ),
                    RowOwner::Key(_) => None,
                    RowOwner::Column => match here {
                        Some((scope, _, _)) if scope != own => {
                            refuse("other_property", format!("the row belongs to property {scope}"))
                        }
                        _ if foreign_claim => refuse(
                            "other_property",
                            "property_id must be the writing node's property".into(),
                        ),
                        _ => None,
                    },
                    RowOwner::Parent(at) => {
                        let parent_table = lookup_tbls.get(at).copied().unwrap_or("");
                        let parent = match rows.get(at) {
                            Some(p) if p.refused.is_some() => Err(refuse(
                                "other_property",
                                format!("its {parent_table} row was refused in the same batch"),
                            )),
                            Some(p) => Ok(p.scope.clone()),
                            None => stored.get(at).and_then(Option::as_ref).map(|s| s.0.clone()).ok_or_else(
                                || {
                                    refuse(
                                        "unknown_parent",
                                        format!(
                                            "it references {parent_table} {} which the hub does not hold",
                                            show_key(lookup_pks.get(at).map_or(&[][..], Vec::as_slice))
                                        ),
                                    )
                                },
                            ),
                        };
                        match parent {
                            Err(why) => why,
                            Ok(derived) if derived != own => refuse(
                                "other_property",
                                format!(
                                    "the row belongs to property {derived}, the property of its {parent_table} row"
                                ),
                            ),
                            Ok(_) if foreign_claim => refuse(
                                "other_property",
                                "property_id must be the property of the row it belongs to".into(),
                            ),
                            Ok(derived) => {
                                if here.is_some_and(|(scope, _, _)| *scope != derived) {
                                    rows[i].reclaimed = true;
                                    rows[i].old_cl = None;
                                    metrics::counter!("hub_rows_reclaimed_total").increment(1);
                                }
                                rows[i].scope = derived;
                                None
                            }
                        }
                    }
                };
                rows[i].refused = verdict;
            }
        }
    }

    async fn merge(
        &self,
        writer: &Writer,
        sender: Option<&Changeset>,
        all: &[Change],
    ) -> Result<PushAck, MergeError> {
        let started = std::time::Instant::now();
        let hub_site = self.inner.site_id;
        let source = Source {
            site_id: sender.map(|s| s.site_id.as_slice()),
            schema_version: sender.map_or(self.inner.schema.version(), |s| s.schema_version),
            hub_site_id: &hub_site,
        };
        let mut changes: Vec<&Change> = Vec::with_capacity(all.len());
        let mut refused: Vec<(&Change, Refusal)> = Vec::new();
        let mut held: Vec<&Change> = Vec::new();
        for c in all {
            match screen::screen(&self.inner.schema, source, c) {
                Verdict::Accept => changes.push(c),
                Verdict::Skip => {}
                Verdict::Hold => held.push(c),
                Verdict::Refuse(why) => refused.push((c, why)),
            }
        }
        let plan = self.plan(writer, changes);
        let tbls: Vec<&str> = plan.lookup_tbls.clone();
        // The stored `property_id` is needed only of chain rows the batch gives one (where a
        // guest was first seen never changes); property rows are judged by their scope.
        let mut want_pid = vec![false; plan.lookup_pks.len()];
        for (i, row) in plan.rows.iter().enumerate() {
            want_pid[i] = row.owner == RowOwner::Chain && !row.claims.is_empty();
        }

        let mut client = self.inner.pool.get().await?;
        let statements = MergeStatements::prepare(&client).await?;
        let tx = client.transaction().await?;
        // One round trip: PostgreSQL runs pipelined statements in order, so the sender's
        // cursor, the version, the batch's stored rows (and their parents) and the writer's
        // usage are read right after the lock is granted, without a trip back here in
        // between. The version is drawn only when the batch is not a replay (replays take no
        // version); the notification other hub processes wake on is sent at commit, and
        // never when the transaction rolls back.
        let site = sender.map(|s| s.site_id.as_slice());
        let until = sender.map(|s| s.until);
        let head_args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&site, &until, &NOTIFY_CHANNEL];
        let existing_args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&tbls, &plan.lookup_pks, &want_pid];
        let usage_args: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&writer.property_id];
        let (locked, head, existing, usage) = tokio::join!(
            biased;
            tx.execute(&statements.lock, &[&MERGE_LOCK]),
            tx.query_one(&statements.head, &head_args),
            tx.query(&statements.existing, &existing_args),
            tx.query_one(&statements.usage, &usage_args),
        );
        locked?;
        let head = head?;
        let received_before: i64 = head.get(0);
        let Some(version) = head.get::<_, Option<i64>>(1) else {
            metrics::counter!("hub_push_replays_total").increment(1);
            return Ok(PushAck {
                received: received_before,
                applied: 0,
                ignored: all.len() as u64,
                quarantined: 0,
                held: 0,
            });
        };
        let written = async {
            let existing = existing?;
            let usage: i64 = usage?.get(0);
            self.write_version(
                &tx,
                &statements,
                writer,
                sender,
                plan,
                Aside { refused, held },
                &existing,
                usage,
                version,
                received_before,
            )
            .await
        };
        let written = match written.await {
            Ok(written) => written,
            Err(err) => {
                // The version will never commit (the transaction rolls back when dropped, and
                // the next merge draws its version only after that): the tail knows it is
                // empty rather than a gap.
                self.tail_write().append(version, Vec::new());
                return Err(err);
            }
        };
        let order = self.inner.append_order.lock().await;
        tx.commit().await?;
        self.tail_write().append(version, written.tail);
        drop(order);
        self.raise_head(version);
        let Written { applied, quarantined, held, .. } = written;
        let ignored = (all.len() as u64).saturating_sub(applied + quarantined + held);
        metrics::counter!("hub_changes_total", "result" => "applied").increment(applied);
        metrics::counter!("hub_changes_total", "result" => "ignored").increment(ignored);
        metrics::counter!("hub_changes_total", "result" => "held").increment(held);
        for (kind, n) in &written.kinds {
            metrics::counter!(crate::server::metrics::QUARANTINED, "kind" => *kind).increment(*n);
        }
        if quarantined > 0 {
            tracing::warn!(
                property_id = %writer.property_id,
                node_id = writer.node_id.as_deref().unwrap_or("-"),
                quarantined,
                first = %written.first_reason,
                "quarantined changes of a batch; the rest was merged"
            );
        }
        metrics::histogram!("hub_merge_duration_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(version, applied, ignored, elapsed = ?started.elapsed(), "merged a batch");
        Ok(PushAck { received: written.received, applied, ignored, quarantined, held })
    }

    /// Everything a merge writes as hub version `version`, inside its transaction, up to the
    /// commit: rows, cells, read tables and the sender's cursor; and what the tail keeps.
    /// `existing` is the stored state of the plan's rows (`MergeStatements::existing`).
    #[allow(clippy::too_many_arguments)]
    async fn write_version(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        statements: &MergeStatements,
        writer: &Writer,
        sender: Option<&Changeset>,
        plan: Plan<'_>,
        aside: Aside<'_>,
        existing: &[tokio_postgres::Row],
        usage: i64,
        version: i64,
        received_before: i64,
    ) -> Result<Written, MergeError> {
        let Plan { changes, mut rows, lookup_tbls, lookup_pks, row_of, vals } = plan;
        // What the hub holds of each looked-up row: (scope, cl, property_id cell).
        let mut stored: Vec<Option<StoredRow>> = vec![None; lookup_pks.len()];
        for r in existing {
            let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
            if let Some(slot) = stored.get_mut(i) {
                *slot = Some((r.get(1), r.get(2), r.get(3)));
            }
        }
        self.decide_owners(writer, &mut rows, &stored, &lookup_tbls, &lookup_pks, &vals);

        // Refused rows keep their stored state; their changes go to the quarantine.
        let Aside { mut refused, held } = aside;
        for (c, &r) in changes.iter().zip(&row_of) {
            if let Some(why) = &rows[r].refused {
                refused.push((c, why.clone()));
            }
        }
        let reclaimed: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].reclaimed).collect();

        // The row's causal length after the batch; column changes with an even causal length
        // (which no crdt replica sends: a deleted row has no column registers) are ignored.
        let counts = |c: &Change| c.cid == SENTINEL || c.cl % 2 == 1;
        for plan in &mut rows {
            plan.new_cl = plan.old_cl.unwrap_or(0);
        }
        for (c, &r) in changes.iter().zip(&row_of) {
            if counts(c) && rows[r].refused.is_none() {
                rows[r].new_cl = rows[r].new_cl.max(c.cl);
            }
        }
        let new_rows =
            rows.iter().filter(|p| p.old_cl.is_none() && p.new_cl > 0 && !p.reclaimed).count()
                as i64;
        let quota = self.inner.row_quota.load(Ordering::Relaxed);
        if new_rows > 0 && usage + new_rows > quota {
            metrics::counter!("hub_quota_refusals_total").increment(1);
            return Err(MergeError::QuotaExceeded {
                property_id: writer.property_id.clone(),
                stored: usage,
                adding: new_rows,
                quota,
            });
        }
        // Per (row, cid), the largest change of the current life: the only one that can win.
        // Deduplicated here because ON CONFLICT cannot touch a row twice in one statement.
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        let mut cell_index: HashMap<(usize, &str), usize> = HashMap::new();
        for ((c, &r), val) in changes.iter().zip(&row_of).zip(&vals) {
            if !counts(c) || c.cl < rows[r].new_cl || rows[r].refused.is_some() {
                continue;
            }
            match cell_index.get(&(r, c.cid.as_str())) {
                Some(&k) => {
                    let best = &candidates[k];
                    let ours = (c.cl, c.col_version, val.as_slice(), c.site_id.as_slice());
                    let theirs = (
                        best.change.cl,
                        best.change.col_version,
                        best.val,
                        best.change.site_id.as_slice(),
                    );
                    if ours > theirs {
                        candidates[k] = Candidate { row: r, change: c, val };
                    }
                }
                None => {
                    cell_index.insert((r, c.cid.as_str()), candidates.len());
                    candidates.push(Candidate { row: r, change: c, val });
                }
            }
        }

        // Rows: new ones, and those whose causal length grew.
        let moved: Vec<bool> =
            rows.iter().map(|p| p.new_cl > 0 && p.old_cl.is_none_or(|o| p.new_cl > o)).collect();
        let moved_rows: Vec<&RowPlan<'_>> =
            rows.iter().zip(&moved).filter(|(_, m)| **m).map(|(p, _)| p).collect();
        let row_args = (
            moved_rows.iter().map(|p| p.tbl).collect::<Vec<&str>>(),
            moved_rows.iter().map(|p| p.pk).collect::<Vec<&[u8]>>(),
            moved_rows.iter().map(|p| p.scope.as_str()).collect::<Vec<&str>>(),
            moved_rows.iter().map(|p| p.new_cl).collect::<Vec<i64>>(),
        );
        let cell_args = (
            candidates.iter().map(|c| c.change.table.as_str()).collect::<Vec<&str>>(),
            candidates.iter().map(|c| c.change.pk.as_slice()).collect::<Vec<&[u8]>>(),
            candidates.iter().map(|c| c.change.cid.as_str()).collect::<Vec<&str>>(),
            candidates.iter().map(|c| c.val).collect::<Vec<&[u8]>>(),
            candidates.iter().map(|c| c.change.col_version).collect::<Vec<i64>>(),
            candidates.iter().map(|c| c.change.cl).collect::<Vec<i64>>(),
            candidates.iter().map(|c| c.change.site_id.as_slice()).collect::<Vec<&[u8]>>(),
            candidates.iter().map(|c| rows[c.row].scope.as_str()).collect::<Vec<&str>>(),
            (0..candidates.len())
                .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
                .collect::<Vec<i32>>(),
        );
        // The rows whose projection may have to be rebuilt from their stored cells: those of
        // a known table still in their life with a column change of the batch. Which of them
        // must be is known only once the cells are written; reading all of them in the same
        // round trip (after the cell upsert: pipelined statements run in order) costs less
        // than another trip.
        let mut may_reread: Vec<usize> = Vec::new();
        let mut marked = vec![false; rows.len()];
        for c in &candidates {
            if c.change.cid != SENTINEL
                && !moved[c.row]
                && !marked[c.row]
                && self.inner.schema.table(rows[c.row].tbl).is_some()
            {
                marked[c.row] = true;
                may_reread.push(c.row);
            }
        }
        let reread_args = (
            may_reread.iter().map(|&r| rows[r].tbl).collect::<Vec<&str>>(),
            may_reread.iter().map(|&r| rows[r].pk).collect::<Vec<&[u8]>>(),
        );

        let mut received = received_before;
        if let Some(set) = sender
            && set.since <= received_before
        {
            received = received_before.max(set.until);
        }
        // The newest audit-log entry of the sender's own chain in this batch: its anchor.
        let anchor = sender.and_then(|_| audit_anchor(&changes, &row_of, &rows));
        let (anchor_seq, anchor_hash) = match &anchor {
            Some((seq, hash)) => (Some(*seq), Some(hash.as_str())),
            None => (None, None),
        };
        let reclaim_args = (
            reclaimed.iter().map(|&r| rows[r].tbl).collect::<Vec<&str>>(),
            reclaimed.iter().map(|&r| rows[r].pk).collect::<Vec<&[u8]>>(),
        );
        let quarantine_args = (
            refused.iter().map(|(c, _)| c.site_id.as_slice()).collect::<Vec<&[u8]>>(),
            refused.iter().map(|(c, _)| c.table.as_str()).collect::<Vec<&str>>(),
            refused.iter().map(|(c, _)| c.pk.as_slice()).collect::<Vec<&[u8]>>(),
            refused.iter().map(|(c, _)| c.cid.as_str()).collect::<Vec<&str>>(),
            refused.iter().map(|(_, why)| why.kind).collect::<Vec<&str>>(),
            refused.iter().map(|(_, why)| why.reason.as_str()).collect::<Vec<&str>>(),
            refused.iter().map(|(c, _)| quarantine_json(c)).collect::<Vec<String>>(),
        );
        let held_changes: Vec<Vec<u8>> =
            held.iter().map(|c| crdt::protocol::encode(&WireChange::from(*c))).collect();
        let held_schema = sender.map_or(self.inner.schema.version(), |s| s.schema_version);

        // One round trip for every write that needs nothing read: reclaimed rows dropped
        // first, then rows, cells (RETURNING says which ones changed, by their seq, which is
        // their index in `candidates`), the re-read of `may_reread`, the sender's cursor and
        // audit anchor, the quarantine, the held changes and the property's usage.
        let (_, _, changed, reread, _, _, _, _) = tokio::try_join!(
            biased;
            async {
                if reclaimed.is_empty() {
                    return Ok(0);
                }
                let (t, k) = &reclaim_args;
                tx.execute(&statements.reclaim, &[t, k]).await
            },
            async {
                if moved_rows.is_empty() {
                    return Ok(0);
                }
                let (t, k, s, cl) = &row_args;
                tx.execute(&statements.rows, &[t, k, s, cl]).await
            },
            async {
                if candidates.is_empty() {
                    return Ok(Vec::new());
                }
                let (t, k, cid, val, cv, cl, site, scope, seq) = &cell_args;
                tx.query(
                    &statements.cells,
                    &[t, k, cid, val, cv, cl, site, scope, &version, seq],
                )
                .await
            },
            async {
                if may_reread.is_empty() {
                    return Ok(Vec::new());
                }
                let (t, k) = &reread_args;
                tx.query(&statements.reread, &[t, k]).await
            },
            async {
                let Some(set) = sender else { return Ok(0) };
                tx.execute(
                    &statements.peers,
                    &[&set.site_id, &writer.node_id, &received, &anchor_seq, &anchor_hash],
                )
                .await
            },
            async {
                if refused.is_empty() {
                    return Ok(0);
                }
                let (site, t, k, cid, kind, reason, change) = &quarantine_args;
                tx.execute(
                    &statements.quarantine,
                    &[
                        &writer.property_id,
                        &writer.node_id,
                        site,
                        t,
                        k,
                        cid,
                        kind,
                        reason,
                        change,
                        &QUARANTINE_KEEP,
                    ],
                )
                .await
            },
            async {
                if held_changes.is_empty() {
                    return Ok(0);
                }
                tx.execute(
                    &statements.held,
                    &[&writer.property_id, &writer.node_id, &held_schema, &held_changes],
                )
                .await
            },
            async {
                if new_rows == 0 {
                    return Ok(0);
                }
                tx.execute(&statements.add_usage, &[&writer.property_id, &new_rows]).await
            },
        )?;
        let mut kinds: Vec<(&'static str, u64)> = Vec::new();
        for (_, why) in &refused {
            match kinds.iter_mut().find(|(k, _)| *k == why.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((why.kind, 1)),
            }
        }
        let first_reason = refused
            .first()
            .map(|(c, why)| format!("{} {}: {}", c.table, hex::encode(&c.pk), why.reason))
            .unwrap_or_default();
        let mut changed_cells: Vec<usize> = changed
            .iter()
            .map(|r| usize::try_from(r.get::<_, i32>(0)).unwrap_or(usize::MAX))
            .collect();
        let mut stored: HashMap<usize, StoredCells> = HashMap::new();
        for row in &reread {
            let i = usize::try_from(row.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
            let Some(&r) = may_reread.get(i) else { continue };
            let val = value::decode(row.get(2))?;
            stored.entry(r).or_default().push((row.get(1), val));
        }

        self.project_batch(tx, &rows, &candidates, &changed_cells, stored).await?;

        // What the tail keeps: the cells this version changed, in seq order, as pulls send
        // them.
        changed_cells.sort_unstable();
        let tail = changed_cells
            .iter()
            .filter_map(|&k| candidates.get(k).map(|c| (k, c)))
            .map(|(k, c)| TailChange {
                scope: rows[c.row].scope.clone(),
                change: WireChange {
                    table: c.change.table.clone(),
                    pk: c.change.pk.clone(),
                    cid: c.change.cid.clone(),
                    val: (&c.change.val).into(),
                    col_version: c.change.col_version,
                    db_version: version,
                    site_id: c.change.site_id.clone(),
                    cl: c.change.cl,
                    seq: k as i64,
                },
            })
            .collect();
        Ok(Written {
            received,
            applied: changed_cells.len() as u64,
            quarantined: refused.len() as u64,
            held: held.len() as u64,
            kinds,
            first_reason,
            tail,
        })
    }

    /// Brings the read tables in line with the rows a batch changed. A row new in this batch
    /// or in a new life has only this batch's cells visible; a row changed within its life is
    /// rebuilt from its stored visible cells (`stored`, read after the cells were written, by
    /// row index; a row with none has none visible). The statements of all tables go out in
    /// one round trip.
    async fn project_batch(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        rows: &[RowPlan<'_>],
        candidates: &[Candidate<'_>],
        changed_cells: &[usize],
        stored: HashMap<usize, StoredCells>,
    ) -> Result<(), HubError> {
        let mut touched = vec![false; rows.len()];
        for (i, plan) in rows.iter().enumerate() {
            touched[i] = plan.new_cl > 0 && plan.old_cl.is_none_or(|o| plan.new_cl > o);
        }
        let mut rereads = vec![false; rows.len()];
        for &k in changed_cells {
            let Some(c) = candidates.get(k) else { continue };
            if c.change.cid != SENTINEL && !touched[c.row] {
                touched[c.row] = true;
                rereads[c.row] = true;
            }
        }
        let mut cells: Vec<Vec<(&str, &Value)>> = vec![Vec::new(); rows.len()];
        for c in candidates {
            let plan = &rows[c.row];
            if c.change.cid != SENTINEL && c.change.cl == plan.new_cl && !rereads[c.row] {
                cells[c.row].push((c.change.cid.as_str(), &c.change.val));
            }
        }
        let mut per_table: HashMap<&str, Vec<ProjectedRow<'_>>> = HashMap::new();
        for (i, plan) in rows.iter().enumerate() {
            if !touched[i] || self.inner.schema.table(plan.tbl).is_none() {
                continue;
            }
            let visible: Vec<(&str, &Value)> = if rereads[i] {
                stored
                    .get(&i)
                    .map_or_else(Vec::new, |s| s.iter().map(|(c, v)| (c.as_str(), v)).collect())
            } else {
                std::mem::take(&mut cells[i])
            };
            let row = ProjectedRow { pk: plan.pk, alive: plan.new_cl % 2 == 1, cells: visible };
            per_table.entry(plan.tbl).or_default().push(row);
        }
        let writes: Vec<_> = per_table
            .iter()
            .filter_map(|(tbl, projected)| {
                self.inner.schema.table(tbl).map(|table| project(tx, table, projected))
            })
            .collect();
        try_join_all(writes).await?;
        Ok(())
    }

    /// Everything after hub version `since` for a node of `property_id`: cells of its
    /// property's rows and of chain-level rows, without those written by `exclude_site` (the
    /// node has its own writes), in `(version, seq)` order, whole versions only, about
    /// `limit` changes (a version larger than `limit` is sent whole). From memory when the
    /// tail holds every version after `since` (`Tail::pull` cuts batches the same way), else
    /// from the database.
    pub async fn pull(
        &self,
        property_id: &str,
        exclude_site: Option<&[u8]>,
        since: i64,
        limit: usize,
    ) -> Result<Pull, HubError> {
        let head = self.head();
        let limit = limit.max(1);
        let exclude = exclude_site.unwrap_or(&[]);
        let cached = self.tail_read().pull(property_id, exclude, since, head, limit);
        if let Some(TailPull { changes, until, remaining }) = cached {
            metrics::counter!("hub_pulls_total", "source" => "memory").increment(1);
            return Ok(Pull {
                batch: Batch {
                    site_id: self.inner.site_id.to_vec(),
                    schema_version: self.schema_version(),
                    since,
                    until,
                    changes,
                },
                more: remaining > 0,
                remaining,
            });
        }
        metrics::counter!("hub_pulls_total", "source" => "database").increment(1);
        let client = self.inner.pool.get().await?;
        let mut changes =
            pull_range(&client, property_id, exclude, since, head, Some(limit + 1)).await?;
        let mut until = since.max(head);
        let mut remaining = 0u64;
        if changes.len() > limit {
            let cut = changes[limit].db_version;
            if changes[0].db_version == cut {
                // One version larger than the limit: sent whole.
                changes = pull_range(&client, property_id, exclude, cut - 1, cut, None).await?;
                until = cut;
            } else {
                changes.retain(|c| c.db_version < cut);
                until = changes.last().map_or(since, |c| c.db_version);
            }
            remaining = count_range(&client, property_id, exclude, until, head).await?;
            if remaining == 0 {
                // Nothing for this node after the batch: its cursor may move to the head.
                until = until.max(head);
            }
        }
        Ok(Pull {
            batch: Batch {
                site_id: self.inner.site_id.to_vec(),
                schema_version: self.schema_version(),
                since,
                until,
                changes: changes.iter().map(WireChange::from).collect(),
            },
            more: remaining > 0,
            remaining,
        })
    }

    /// Everything a property's node would pull from version `since`, as changes (for
    /// `changes export`).
    pub async fn export(&self, property_id: &str, since: i64) -> Result<Vec<Change>, HubError> {
        let client = self.inner.pool.get().await?;
        pull_range(&client, property_id, &[], since, self.head(), None).await
    }
}

/// A packed key as a person reads it: `101` or `r1, 2026-12-24`.
fn show_key(pk: &[u8]) -> String {
    match crdt::unpack(pk) {
        Ok(values) => values
            .iter()
            .map(|v| match v {
                crdt::Value::Text(t) => t.chars().take(80).collect(),
                crdt::Value::Integer(i) => i.to_string(),
                other => format!("{other:?}").chars().take(80).collect(),
            })
            .collect::<Vec<String>>()
            .join(", "),
        Err(_) => format!("0x{}", hex::encode(&pk[..pk.len().min(64)])),
    }
}

/// A refused change as the quarantine keeps it: everything but the value, of which a
/// preview (`QUARANTINE_PREVIEW` bytes) and its size.
fn quarantine_json(c: &Change) -> String {
    let (preview, bytes) = match &c.val {
        Value::Null => (Json::Null, 0),
        Value::Integer(i) => (Json::from(*i), 8),
        Value::Real(f) => (Json::from(*f), 8),
        Value::Text(t) => {
            let mut end = t.len().min(QUARANTINE_PREVIEW);
            while !t.is_char_boundary(end) {
                end -= 1;
            }
            (Json::from(&t[..end]), t.len())
        }
        Value::Blob(b) => {
            (Json::from(hex::encode(&b[..b.len().min(QUARANTINE_PREVIEW / 2)])), b.len())
        }
    };
    serde_json::json!({
        "table": c.table.chars().take(80).collect::<String>(),
        "pk": show_key(&c.pk),
        "cid": c.cid.chars().take(80).collect::<String>(),
        "val": preview,
        "val_bytes": bytes,
        "col_version": c.col_version,
        "db_version": c.db_version,
        "cl": c.cl,
        "seq": c.seq,
        "site_id": hex::encode(&c.site_id),
    })
    .to_string()
}

/// The newest entry (seq, hash) of the audit-log rows a batch writes.
fn audit_anchor(
    changes: &[&Change],
    row_of: &[usize],
    rows: &[RowPlan<'_>],
) -> Option<(i64, String)> {
    let mut per_row: HashMap<usize, (Option<i64>, Option<String>)> = HashMap::new();
    for (c, &r) in changes.iter().zip(row_of) {
        if rows[r].tbl != "audit_log" || rows[r].refused.is_some() {
            continue;
        }
        let entry = per_row.entry(r).or_default();
        match (c.cid.as_str(), &c.val) {
            ("seq", Value::Integer(seq)) => entry.0 = Some(*seq),
            ("hash", Value::Text(hash)) => entry.1 = Some(hash.clone()),
            _ => {}
        }
    }
    per_row.into_values().filter_map(|(seq, hash)| Some((seq?, hash?))).max_by_key(|(seq, _)| *seq)
}

const PULL_WHERE: &str = "FROM sync_cells c JOIN sync_rows r ON r.tbl = c.tbl AND r.pk = c.pk
     WHERE c.scope = ANY(ARRAY[$1::text, '']) AND c.version > $2 AND c.version <= $3
       AND c.site_id <> $4 AND c.cl = r.cl";

/// The live cells of versions `since < v <= until` a node of `property` pulls, in order.
async fn pull_range(
    client: &deadpool_postgres::Object,
    property: &str,
    exclude: &[u8],
    since: i64,
    until: i64,
    limit: Option<usize>,
) -> Result<Vec<Change>, HubError> {
    let limit = limit.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
    let stmt = client
        .prepare_cached(&format!(
            "SELECT c.tbl, c.pk, c.cid, c.val, c.col_version, c.version, c.site_id, c.cl, c.seq
             {PULL_WHERE} ORDER BY c.version, c.seq LIMIT $5"
        ))
        .await?;
    client
        .query(&stmt, &[&property, &since, &until, &exclude, &limit])
        .await?
        .iter()
        .map(|r| {
            Ok(Change {
                table: r.get(0),
                pk: r.get(1),
                cid: r.get(2),
                val: value::decode(r.get(3))?,
                col_version: r.get(4),
                db_version: r.get(5),
                site_id: r.get(6),
                cl: r.get(7),
                seq: i64::from(r.get::<_, i32>(8)),
            })
        })
        .collect()
}

async fn count_range(
    client: &deadpool_postgres::Object,
    property: &str,
    exclude: &[u8],
    since: i64,
    until: i64,
) -> Result<u64, HubError> {
    let stmt = client.prepare_cached(&format!("SELECT count(*) {PULL_WHERE}")).await?;
    let n: i64 = client.query_one(&stmt, &[&property, &since, &until, &exclude]).await?.get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Runs `futures` concurrently on this task, each polled first in order: statements on one
/// connection go out in one pipeline and PostgreSQL runs them in that order. The first error
/// ends it (the others' answers are dropped).
async fn try_join_all<F, T, E>(futures: Vec<F>) -> Result<Vec<T>, E>
where
    F: Future<Output = Result<T, E>>,
{
    let mut futures: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, out) in futures.iter_mut().zip(done.iter_mut()) {
            if out.is_some() {
                continue;
            }
            match future.as_mut().poll(cx) {
                std::task::Poll::Ready(Ok(v)) => *out = Some(v),
                std::task::Poll::Ready(Err(e)) => return std::task::Poll::Ready(Err(e)),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(Ok(done.iter_mut().filter_map(Option::take).collect()))
    })
    .await
}

/// A row's visible cells as read back from `sync_cells`: (cid, value).
type StoredCells = Vec<(String, Value)>;

/// A row to bring in line in a read table: deleted, or rebuilt from its visible cells.
struct ProjectedRow<'a> {
    pk: &'a [u8],
    alive: bool,
    cells: Vec<(&'a str, &'a Value)>,
}

/// Writes rows into `table`'s read table: one upsert for the live ones, one delete for the
/// deleted ones. Columns without a visible cell take the edge default, as a crdt replica's
/// row does; a row whose key cannot be a key of the read table is left out (its cells keep
/// the truth).
async fn project<C: GenericClient>(
    client: &C,
    table: &Table,
    rows: &[ProjectedRow<'_>],
) -> Result<(), HubError> {
    let mut upserts = Vec::new();
    let mut deletes = Vec::new();
    for row in rows {
        let Some(mut object) = key_object(table, row.pk) else {
            tracing::warn!(table = %table.name, pk = %hex::encode(row.pk),
                "a row's key does not fit its read table; not projected");
            continue;
        };
        if !row.alive {
            deletes.push(Json::Object(object));
            continue;
        }
        for (i, column) in table.columns.iter().enumerate() {
            if !table.key.contains(&i) {
                object.insert(column.name.clone(), to_json(&column.default, column.pg_type));
            }
        }
        for (cid, val) in &row.cells {
            if let Some(column) = table.column(cid)
                && !table.key.iter().any(|&k| table.columns[k].name == *cid)
            {
                object.insert(column.name.clone(), to_json(val, column.pg_type));
            }
        }
        upserts.push(Json::Object(object));
    }
    let target = table.read_table();
    // Both statements in one round trip: they touch different keys.
    tokio::try_join!(
        async {
            if upserts.is_empty() {
                return Ok(0);
            }
            let sets: Vec<String> = table
                .columns
                .iter()
                .enumerate()
                .filter(|(i, _)| !table.key.contains(i))
                .map(|(_, c)| format!("{0} = excluded.{0}", quote_ident(&c.name)))
                .collect();
            let conflict = if sets.is_empty() {
                "DO NOTHING".to_string()
            } else {
                format!("DO UPDATE SET {}", sets.join(", "))
            };
            let stmt = client
                .prepare_cached(&format!(
                    "INSERT INTO {target} SELECT * FROM json_populate_recordset(NULL::{target}, $1::text::json)
                     ON CONFLICT ({}) {conflict}",
                    table.key_list()
                ))
                .await?;
            client.execute(&stmt, &[&Json::Array(upserts).to_string()]).await
        },
        async {
            if deletes.is_empty() {
                return Ok(0);
            }
            let on: Vec<String> = table
                .key
                .iter()
                .map(|&k| format!("t.{0} = d.{0}", quote_ident(&table.columns[k].name)))
                .collect();
            let stmt = client
                .prepare_cached(&format!(
                    "DELETE FROM {target} AS t
                     USING json_populate_recordset(NULL::{target}, $1::text::json) AS d
                     WHERE {}",
                    on.join(" AND ")
                ))
                .await?;
            client.execute(&stmt, &[&Json::Array(deletes).to_string()]).await
        },
    )?;
    Ok(())
}

/// The key columns of a packed key as a JSON object, or `None` when a key value does not
/// fit its column's type.
fn key_object(table: &Table, pk: &[u8]) -> Option<serde_json::Map<String, Json>> {
    let key = crdt::unpack(pk).ok()?;
    if key.len() != table.key.len() {
        return None;
    }
    let mut object = serde_json::Map::new();
    for (&k, v) in table.key.iter().zip(key) {
        let column = &table.columns[k];
        let v = match v {
            crdt::Value::Null => Value::Null,
            crdt::Value::Integer(i) => Value::Integer(i),
            crdt::Value::Real(f) => Value::Real(f),
            crdt::Value::Text(t) => Value::Text(t),
            crdt::Value::Blob(b) => Value::Blob(b),
        };
        let json = to_json(&v, column.pg_type);
        if json.is_null() {
            return None;
        }
        object.insert(column.name.clone(), json);
    }
    Some(object)
}

/// A value as the read table's column holds it: as is when its type fits; an integer in a
/// real column becomes a real and a number in a text column its SQLite literal; anything
/// else (and text with a NUL, which PostgreSQL text cannot hold) is NULL.
pub fn project_value(v: &Value, pg_type: PgType) -> Value {
    match (pg_type, v) {
        (PgType::Text, Value::Text(s)) if !s.contains('\0') => v.clone(),
        (PgType::Text, Value::Integer(_) | Value::Real(_)) => Value::Text(crdt::wire::quote(v)),
        (PgType::BigInt, Value::Integer(_)) => v.clone(),
        (PgType::Double, Value::Real(_)) => v.clone(),
        (PgType::Double, Value::Integer(i)) => Value::Real(*i as f64),
        (PgType::Bytea, Value::Blob(_)) => v.clone(),
        _ => Value::Null,
    }
}

/// [`project_value`] as the JSON `json_populate_recordset` reads into the column.
fn to_json(v: &Value, pg_type: PgType) -> Json {
    match project_value(v, pg_type) {
        Value::Null => Json::Null,
        Value::Integer(i) => Json::from(i),
        Value::Real(f) if f.is_finite() => Json::from(f),
        Value::Real(f) => Json::from(if f > 0.0 { "Infinity" } else { "-Infinity" }),
        Value::Text(s) => Json::String(s),
        Value::Blob(b) => Json::String(format!("\\x{}", hex::encode(b))),
    }
}

/// Makes the `replica` read tables match `schema`: creates missing tables, adds missing
/// columns, and re-projects every row of a table that was created or widened (the hub kept
/// the cells of tables and columns it could not project before). Called by `db::migrate`.
pub(crate) async fn sync_read_tables(
    client: &mut deadpool_postgres::Object,
    schema: &HubSchema,
) -> Result<(), HubError> {
    let tx = client.transaction().await?;
    tx.batch_execute("CREATE SCHEMA IF NOT EXISTS replica").await?;
    let mut existing: HashMap<String, Vec<String>> = HashMap::new();
    for r in tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = 'replica'",
            &[],
        )
        .await?
    {
        existing.entry(r.get(0)).or_default().push(r.get(1));
    }
    for table in schema.tables() {
        let widened = match existing.get(&table.name) {
            None => {
                tx.batch_execute(&table.create_sql()).await?;
                true
            }
            Some(have) => {
                let mut added = false;
                for column in &table.columns {
                    if !have.contains(&column.name) {
                        tx.batch_execute(&format!(
                            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}",
                            table.read_table(),
                            quote_ident(&column.name),
                            column.pg_type.sql()
                        ))
                        .await?;
                        added = true;
                    }
                }
                added
            }
        };
        if widened {
            reproject(&tx, table).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Rebuilds every live row of `table`'s read table from the stored cells.
async fn reproject(tx: &deadpool_postgres::Transaction<'_>, table: &Table) -> Result<(), HubError> {
    let rows = tx
        .query(
            "SELECT r.pk, c.cid, c.val FROM sync_rows r
             LEFT JOIN sync_cells c
               ON c.tbl = r.tbl AND c.pk = r.pk AND c.cl = r.cl AND c.cid <> '-1'
             WHERE r.tbl = $1 AND r.cl % 2 = 1
             ORDER BY r.pk",
            &[&table.name],
        )
        .await?;
    let mut grouped: Vec<(Vec<u8>, StoredCells)> = Vec::new();
    for r in &rows {
        let pk: Vec<u8> = r.get(0);
        if grouped.last().is_none_or(|(last, _)| *last != pk) {
            grouped.push((pk, Vec::new()));
        }
        let cid: Option<String> = r.get(1);
        let val: Option<&[u8]> = r.get(2);
        if let (Some(cid), Some(val), Some((_, cells))) = (cid, val, grouped.last_mut()) {
            cells.push((cid, value::decode(val)?));
        }
    }
    tracing::info!(table = %table.name, rows = grouped.len(), "re-projecting a read table");
    for chunk in grouped.chunks(REPROJECT_CHUNK) {
        let projected: Vec<ProjectedRow<'_>> = chunk
            .iter()
            .map(|(pk, cells)| ProjectedRow {
                pk,
                alive: true,
                cells: cells.iter().map(|(c, v)| (c.as_str(), v)).collect(),
            })
            .collect();
        project(tx, table, &projected).await?;
    }
    Ok(())
}
