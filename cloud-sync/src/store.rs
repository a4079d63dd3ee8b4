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

use crdt::protocol::{Batch, Pull, PushAck, Scope, WireChange};
use crdt::{Change, Changeset, SENTINEL};
use deadpool_postgres::GenericClient;
use rusqlite::types::Value;
use serde_json::Value as Json;

use crate::db::{HubError, NOTIFY_CHANNEL, Pool};
use crate::schema::{HubSchema, PgType, Table, is_ident, quote_ident};
use crate::tail::{self, Tail, TailChange, TailPull};
use crate::value;

/// Transaction-level advisory lock every merge takes before drawing its version.
const MERGE_LOCK: i64 = 0x5354_4159_4f53_4d32;
/// `hub_meta` key of the newest edge schema version pushed to the hub (i64, big-endian).
const PUSHED_SCHEMA: &str = "pushed_schema_version";
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
    pushed_schema: AtomicI64,
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

/// Why a batch was not merged. Nothing of the batch is applied in any case.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The writer may not write this row (403).
    #[error("{table} row {pk}: {reason}")]
    Forbidden { table: String, pk: String, reason: String },
    /// A change that cannot be valid (422).
    #[error("change {index}: {reason}")]
    Invalid { index: usize, reason: String },
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

/// A distinct row of a batch.
struct RowPlan<'a> {
    tbl: &'a str,
    pk: &'a [u8],
    scope: String,
    /// The causal length before the batch (`None`: a new row).
    old_cl: Option<i64>,
    new_cl: i64,
}

/// What a merge wrote, before its commit.
struct Written {
    /// The sender's cursor after the batch.
    received: i64,
    /// Cells that changed.
    applied: u64,
    tail: Vec<TailChange>,
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
    meta: tokio_postgres::Statement,
}

impl MergeStatements {
    async fn prepare(client: &deadpool_postgres::Object) -> Result<Self, tokio_postgres::Error> {
        let (lock, head, existing, rows, cells, reread, peers, meta) = tokio::try_join!(
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
                "SELECT u.ord::int8, r.scope, r.cl FROM unnest($1::text[], $2::bytea[])
                   WITH ORDINALITY AS u(tbl, pk, ord)
                 JOIN sync_rows r ON r.tbl = u.tbl AND r.pk = u.pk",
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
                "INSERT INTO sync_peers (site_id, node_id, received) VALUES ($1, $2, $3)
                 ON CONFLICT (site_id) DO UPDATE SET received = excluded.received,
                     node_id = coalesce(excluded.node_id, sync_peers.node_id)",
            ),
            client.prepare_cached(
                "INSERT INTO hub_meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            ),
        )?;
        Ok(Self { lock, head, existing, rows, cells, reread, peers, meta })
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
        let pushed = client
            .query_opt("SELECT value FROM hub_meta WHERE key = $1", &[&PUSHED_SCHEMA])
            .await?
            .and_then(|r| r.get::<_, Vec<u8>>(0).try_into().ok())
            .map_or(0, i64::from_be_bytes);
        drop(client);
        let tail = Tail::new(head, tail::DEFAULT_CAPACITY);
        let (head, _) = tokio::sync::watch::channel(head);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                schema,
                site_id,
                head,
                pushed_schema: AtomicI64::new(pushed),
                tail: std::sync::RwLock::new(tail),
                append_order: tokio::sync::Mutex::new(()),
            }),
        })
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

    /// The newest replicated schema version the hub knows: its own edge schema's or the
    /// newest any node pushed (the hub keeps changes of tables it cannot project yet, and a
    /// pulling node must hold them rather than refuse them).
    pub fn schema_version(&self) -> i64 {
        self.inner.schema.version().max(self.inner.pushed_schema.load(Ordering::Relaxed))
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

    /// Checks what can be checked of one change without the database.
    fn validate(&self, index: usize, c: &Change) -> Result<(), MergeError> {
        let bad = |reason: String| MergeError::Invalid { index, reason };
        if c.site_id.len() != 16 {
            return Err(bad(format!("site_id has {} bytes, not 16", c.site_id.len())));
        }
        if c.cl < 1 {
            return Err(bad(format!("cl {} is not a causal length (1 or more)", c.cl)));
        }
        if c.col_version < 0 || c.db_version < 0 || c.seq < 0 {
            return Err(bad("col_version, db_version and seq cannot be negative".into()));
        }
        if !is_ident(&c.table) {
            return Err(bad(format!("table {:?} is not an identifier", c.table)));
        }
        if c.cid != SENTINEL && !is_ident(&c.cid) {
            return Err(bad(format!("column {:?} is not an identifier", c.cid)));
        }
        let key = crdt::unpack(&c.pk).map_err(|e| bad(format!("pk: {e}")))?;
        if key.contains(&crdt::Value::Null) {
            return Err(bad("pk has a NULL column".into()));
        }
        if let Some(table) = self.inner.schema.table(&c.table) {
            if key.len() != table.key.len() {
                return Err(bad(format!(
                    "pk has {} columns; the key of {} has {}",
                    key.len(),
                    c.table,
                    table.key.len()
                )));
            }
            if table.key.iter().any(|&k| table.columns[k].name == c.cid) {
                return Err(bad(format!("{} is a key column of {}", c.cid, c.table)));
            }
        }
        Ok(())
    }

    /// Ownership rules that need no stored state.
    fn check_static(&self, writer: &Writer, c: &Change) -> Result<(), MergeError> {
        if self.owner(&c.table) != Owner::Property {
            return Ok(());
        }
        let own = Value::Text(writer.property_id.clone());
        if c.cid == "property_id" && c.val != own {
            return Err(forbidden(c, "property_id must be the writing node's property"));
        }
        if c.table == "properties" {
            let key = crdt::unpack(&c.pk).unwrap_or_default();
            if key != [crdt::Value::Text(writer.property_id.clone())] {
                return Err(forbidden(c, "a node writes only its own property's record"));
            }
        }
        Ok(())
    }

    /// The distinct rows of a batch in order of first appearance, and each change's value
    /// encoded: work that needs no stored state, done before the merge lock is taken.
    fn plan<'a>(&self, writer: &Writer, changes: Vec<&'a Change>) -> Plan<'a> {
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
                });
                rows.len() - 1
            });
            row_of.push(i);
        }
        let vals = changes.iter().map(|c| value::encode(&c.val)).collect();
        Plan { changes, rows, row_of, vals }
    }

    async fn merge(
        &self,
        writer: &Writer,
        sender: Option<&Changeset>,
        all: &[Change],
    ) -> Result<PushAck, MergeError> {
        let started = std::time::Instant::now();
        for (i, c) in all.iter().enumerate() {
            self.validate(i, c)?;
        }
        let mut changes: Vec<&Change> = Vec::with_capacity(all.len());
        for c in all {
            if self.owner(&c.table) == Owner::Node {
                if sender.is_some() {
                    return Err(forbidden(c, "the table is kept on the node"));
                }
                continue;
            }
            self.check_static(writer, c)?;
            changes.push(c);
        }
        let plan = self.plan(writer, changes);
        let tbls: Vec<&str> = plan.rows.iter().map(|r| r.tbl).collect();
        let pks: Vec<&[u8]> = plan.rows.iter().map(|r| r.pk).collect();

        let mut client = self.inner.pool.get().await?;
        let statements = MergeStatements::prepare(&client).await?;
        let tx = client.transaction().await?;
        // One round trip: PostgreSQL runs pipelined statements in order, so the sender's
        // cursor, the version and the batch's stored rows are read right after the lock is
        // granted, without a trip back here in between. The version is drawn only when the
        // batch is not a replay (replays take no version); the notification other hub
        // processes wake on is sent at commit, and never when the transaction rolls back.
        let site = sender.map(|s| s.site_id.as_slice());
        let until = sender.map(|s| s.until);
        let head_args: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&site, &until, &NOTIFY_CHANNEL];
        let existing_args: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&tbls, &pks];
        let (locked, head, existing) = tokio::join!(
            biased;
            tx.execute(&statements.lock, &[&MERGE_LOCK]),
            tx.query_one(&statements.head, &head_args),
            tx.query(&statements.existing, &existing_args),
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
            });
        };
        let written = async {
            let existing = existing?;
            self.write_version(
                &tx,
                &statements,
                writer,
                sender,
                plan,
                &existing,
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
        if let Some(set) = sender {
            self.inner.pushed_schema.fetch_max(set.schema_version, Ordering::Relaxed);
        }
        self.raise_head(version);
        let applied = written.applied;
        let ignored = all.len() as u64 - applied;
        metrics::counter!("hub_changes_total", "result" => "applied").increment(applied);
        metrics::counter!("hub_changes_total", "result" => "ignored").increment(ignored);
        metrics::histogram!("hub_merge_duration_seconds").record(started.elapsed().as_secs_f64());
        tracing::debug!(version, applied, ignored, elapsed = ?started.elapsed(), "merged a batch");
        Ok(PushAck { received: written.received, applied, ignored, quarantined: 0 })
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
        existing: &[tokio_postgres::Row],
        version: i64,
        received_before: i64,
    ) -> Result<Written, MergeError> {
        let Plan { changes, mut rows, row_of, vals } = plan;
        for r in existing {
            let i = usize::try_from(r.get::<_, i64>(0) - 1).unwrap_or(usize::MAX);
            let Some(plan) = rows.get_mut(i) else { continue };
            let scope: String = r.get(1);
            if self.owner(plan.tbl) == Owner::Property && scope != writer.property_id {
                return Err(MergeError::Forbidden {
                    table: plan.tbl.to_string(),
                    pk: hex::encode(plan.pk),
                    reason: "the row belongs to another property".into(),
                });
            }
            plan.scope = scope;
            plan.old_cl = Some(r.get(2));
        }

        // The row's causal length after the batch; column changes with an even causal length
        // (which no crdt replica sends: a deleted row has no column registers) are ignored.
        let counts = |c: &Change| c.cid == SENTINEL || c.cl % 2 == 1;
        for plan in &mut rows {
            plan.new_cl = plan.old_cl.unwrap_or(0);
        }
        for (c, &r) in changes.iter().zip(&row_of) {
            if counts(c) {
                rows[r].new_cl = rows[r].new_cl.max(c.cl);
            }
        }
        // Per (row, cid), the largest change of the current life: the only one that can win.
        // Deduplicated here because ON CONFLICT cannot touch a row twice in one statement.
        let mut candidates: Vec<Candidate<'_>> = Vec::new();
        let mut cell_index: HashMap<(usize, &str), usize> = HashMap::new();
        for ((c, &r), val) in changes.iter().zip(&row_of).zip(&vals) {
            if !counts(c) || c.cl < rows[r].new_cl {
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
        let newer_schema = sender
            .map(|set| set.schema_version)
            .filter(|&v| v > self.inner.pushed_schema.load(Ordering::Relaxed));

        // One round trip for every write that needs nothing read: rows, cells (RETURNING says
        // which ones changed, by their seq, which is their index in `candidates`), the
        // re-read of `may_reread`, and the sender's cursor.
        let (_, changed, reread, _, _) = tokio::try_join!(
            biased;
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
                tx.execute(&statements.peers, &[&set.site_id, &writer.node_id, &received]).await
            },
            async {
                let Some(v) = newer_schema else { return Ok(0) };
                tx.execute(&statements.meta, &[&PUSHED_SCHEMA, &v.to_be_bytes().as_slice()])
                    .await
            },
        )?;
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
        Ok(Written { received, applied: changed_cells.len() as u64, tail })
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

fn forbidden(c: &Change, reason: &str) -> MergeError {
    MergeError::Forbidden {
        table: c.table.clone(),
        pk: hex::encode(&c.pk),
        reason: reason.to_string(),
    }
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
