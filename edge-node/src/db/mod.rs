//! Storage: one SQLite database in WAL mode, written by exactly one thread and read by a small
//! pool of read-only connections, each on a thread of its own.
//!
//! rusqlite never runs on an async worker: `Db::write` and `Db::read` ship a closure to a
//! storage thread and await its answer. Every write closure runs inside one
//! `BEGIN IMMEDIATE` transaction on the single writer, so a check and the write that follows
//! it (e.g. "is this e-mail taken?" then "insert") are atomic with respect to every other
//! write on this node.

pub mod migrations;

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::{oneshot, watch};

/// Name of the database file inside a data directory.
pub const DB_FILE: &str = "stayos.db";

/// Tables that replicate to the hub and other sites; each must pass `crdt`'s schema rules.
pub const REPLICATED_TABLES: &[&str] = &[
    "properties",
    "staff",
    "staff_emails",
    "staff_properties",
    "audit_log",
    "room_types",
    "rooms",
    "room_blocks",
    "room_status_events",
    "amenities",
    "room_type_amenities",
    "cancellation_policies",
    "rate_plans",
    "rate_prices",
    "reservations",
    "reservation_nights",
    "room_type_nights",
    "room_nights",
    "reservation_events",
    "guests",
    "guest_documents",
    "loyalty_accounts",
    "loyalty_ledger",
];

/// Tables that never leave this node: its identity, and sessions, tokens, throttling
/// counters and API keys, which only mean something here.
/// `guest_document_numbers` holds identity-document numbers in full: they stay on the node
/// that saw the document (the replicated `guest_documents` row carries them masked).
/// The sync quarantine (`sync::guard`) holds what other sites sent that this node refused.
pub const LOCAL_TABLES: &[&str] = &[
    "node_meta",
    "sessions",
    "refresh_tokens",
    "mfa_challenges",
    "login_throttle",
    "api_keys",
    "guest_document_numbers",
    "sync_quarantine",
];

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migrations: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("replication: {0}")]
    Crdt(#[from] crdt::CrdtError),
    #[error(
        "the database is at schema version {found}, newer than this binary knows ({latest}); \
         upgrade stayos-edge"
    )]
    SchemaTooNew { found: usize, latest: usize },
    #[error(transparent)]
    AuditKey(#[from] crate::audit::key::KeyError),
    #[error("could not start a storage thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the storage threads have stopped")]
    Closed,
    #[error("a storage closure panicked")]
    Panicked,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

enum Msg {
    Run(Job),
    Stop,
}

/// Cheap to clone handle to the node's database.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    replica: crdt::Replica,
    writer: Sender<Msg>,
    readers: Sender<Msg>,
    checkpointer: Sender<Msg>,
    reader_count: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Counts committed write transactions, so the sync agent wakes as soon as there is
    /// something to push instead of polling the database.
    commits: Arc<watch::Sender<u64>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

/// The writer connection's settings; also used by `init`, which runs before any server.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, DbError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // WAL + NORMAL: a commit is durable against a process crash, and against power loss up to
    // the last checkpoint; this is SQLite's recommended setting for WAL.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// Brings the writer connection's database up to date: sets change capture up (keeping the
/// site id `node_meta` already names, for a database made before capture existed), applies
/// pending migrations, makes every table of `REPLICATED_TABLES` a replicated table (picking
/// up added columns), records the schema version that changesets carry and applies the
/// changes held for it. Also used by `init`.
pub(crate) fn prepare(conn: &mut Connection) -> Result<crdt::Replica, DbError> {
    let site =
        crate::node::load(conn).ok().flatten().and_then(|info| hex::decode(info.site_id).ok());
    let replica = crdt::Replica::install_with_site_id(conn, site.as_deref())?;
    migrations::apply(conn)?;
    let version = migrations::current_version(conn)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for table in REPLICATED_TABLES {
        replica.make_replicated(&tx, table)?;
    }
    // Data steps of migrations go through capture, like any write (migrations themselves
    // must not write replicated rows): clear document numbers move to the local table.
    crate::guest::documents::keep_numbers_home(&tx)?;
    replica.set_schema_version(&tx, i64::try_from(version).unwrap_or(i64::MAX))?;
    replica.flush(&tx)?;
    tx.commit()?;
    Ok(replica)
}

fn open_reader(path: &Path) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn spawn_worker(
    name: String,
    mut conn: Connection,
    rx: Receiver<Msg>,
    writer: bool,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(name).spawn(move || {
        while let Ok(Msg::Run(job)) = rx.recv() {
            // A panicking closure must not take the writer down with it: the caller sees its
            // reply channel dropped (DbError::Panicked) and the thread goes on serving.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
        }
        if writer && let Err(err) = conn.execute_batch("PRAGMA optimize;") {
            tracing::warn!(error = %err, "PRAGMA optimize failed on close");
        }
        if let Err((_, err)) = conn.close() {
            tracing::warn!(error = %err, "closing a database connection failed");
        }
    })
}

/// How often the checkpointer copies committed WAL frames into the database file.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(250);

/// The writer's own auto-checkpoint threshold (pages), a backstop for when the checkpointer
/// falls behind; SQLite's default of 1,000 would put a checkpoint, with its fsync, inside
/// the commit of every thousandth page written.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_000;

/// Checkpoints the WAL on a connection and thread of its own (PASSIVE: it never blocks the
/// writer or readers), so commits on the single writer only append to the WAL. Without it,
/// SQLite runs the checkpoint inside the commit that crosses the threshold — in a booking
/// profile 15 % of the writer's time.
fn spawn_checkpointer(path: &Path, stop: Receiver<Msg>) -> Result<JoinHandle<()>, DbError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_millis(100))?;
    Ok(std::thread::Builder::new().name("db-checkpointer".into()).spawn(move || {
        // Runs until told to stop or until the `Db` is gone (the channel disconnects).
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
            stop.recv_timeout(CHECKPOINT_PERIOD)
        {
            let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            if let Err(err) = done {
                tracing::debug!(error = %err, "a passive WAL checkpoint did not run");
            }
        }
        if let Err((_, err)) = conn.close() {
            tracing::warn!(error = %err, "closing the checkpointer's connection failed");
        }
    })?)
}

impl Db {
    /// Opens (creating if needed) `DIR/stayos.db`, applies pending migrations in one
    /// transaction, and starts the writer, `readers` reader threads and the checkpointer.
    pub fn open(data_dir: &Path, readers: usize) -> Result<Db, DbError> {
        let path = data_dir.join(DB_FILE);
        let mut writer_conn = open_writer(&path)?;
        let replica = prepare(&mut writer_conn)?;
        // Every connection gets the audit key (`audit::record` on the writer, `verify` on
        // the readers); then the append-only triggers are checked, with the key in place to
        // audit their restoration.
        let audit_key = crate::audit::key::load_or_create(data_dir, &writer_conn)?;
        crate::audit::key::install(&writer_conn, &audit_key)?;
        {
            let tx = writer_conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            replica.refresh(&tx)?;
            crate::audit::store::ensure_append_only(&tx, crate::time::now_ms())?;
            replica.flush(&tx)?;
            tx.commit()?;
        }
        writer_conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;

        let reader_count = readers.max(1);
        let (writer_tx, writer_rx) = crossbeam_channel::unbounded();
        let (readers_tx, readers_rx) = crossbeam_channel::unbounded();
        let (checkpointer_tx, checkpointer_rx) = crossbeam_channel::bounded(1);
        let mut threads = Vec::with_capacity(reader_count + 2);
        threads.push(spawn_checkpointer(&path, checkpointer_rx)?);
        threads.push(spawn_worker("db-writer".into(), writer_conn, writer_rx, true)?);
        for i in 0..reader_count {
            let conn = open_reader(&path)?;
            crate::audit::key::install(&conn, &audit_key)?;
            threads.push(spawn_worker(format!("db-reader-{i}"), conn, readers_rx.clone(), false)?);
        }
        Ok(Db {
            inner: Arc::new(Inner {
                path,
                replica,
                writer: writer_tx,
                readers: readers_tx,
                checkpointer: checkpointer_tx,
                reader_count,
                threads: Mutex::new(threads),
                commits: Arc::new(watch::Sender::new(0)),
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The writer connection's change capture, for merging changes inside a `write`.
    pub fn replica(&self) -> &crdt::Replica {
        &self.inner.replica
    }

    /// A receiver that sees a new value after every committed write transaction. Marking it
    /// costs the writer one uncontended lock, never a wait on a reader.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.inner.commits.subscribe()
    }

    /// Merges a changeset from a peer on the writer, in one transaction: the rows and the
    /// peer's cursor (`crdt_peers.received`) move together or not at all, so a merge that is
    /// cut off is simply pulled again.
    pub async fn merge(&self, set: crdt::Changeset) -> Result<crdt::MergeReport, DbError> {
        let replica = self.inner.replica.clone();
        self.write(move |tx| Ok(replica.merge(tx, &set)?)).await
    }

    /// Merges a batch pulled from the hub like [`Db::merge`], screened by `sync::guard` in
    /// the same transaction: refused changes go to the quarantine, the rest are merged, and
    /// the cursor moves to the batch's end. Also answers how many were refused.
    pub async fn merge_from_hub(
        &self,
        set: crdt::Changeset,
        scopes: Arc<crdt::protocol::Scopes>,
    ) -> Result<(crdt::MergeReport, usize), DbError> {
        let replica = self.inner.replica.clone();
        self.write(move |tx| crate::sync::guard::merge_from_hub(tx, &replica, &scopes, set)).await
    }

    /// Runs `f` on the single writer inside one `BEGIN IMMEDIATE` transaction. The transaction
    /// commits when `f` returns `Ok` and rolls back when it returns `Err`. Writes to
    /// replicated tables are captured in the same transaction.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let replica = self.inner.replica.clone();
        let commits = Arc::clone(&self.inner.commits);
        let job: Job = Box::new(move |conn: &mut Connection| {
            let result = (|| {
                let txn = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(DbError::from)?;
                replica.refresh(&txn).map_err(DbError::from)?;
                let out = f(&txn)?;
                replica.flush(&txn).map_err(DbError::from)?;
                txn.commit().map_err(DbError::from)?;
                commits.send_modify(|n| *n = n.wrapping_add(1));
                Ok(out)
            })();
            let _ = tx.send(result);
        });
        self.inner.writer.send(Msg::Run(job)).map_err(|_| DbError::Closed)?;
        rx.await.map_err(|_| DbError::Panicked)?
    }

    /// Runs `f` on one of the read-only connections.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn: &mut Connection| {
            let _ = tx.send(f(conn));
        });
        self.inner.readers.send(Msg::Run(job)).map_err(|_| DbError::Closed)?;
        rx.await.map_err(|_| DbError::Panicked)?
    }

    /// Finishes every queued job, then closes all connections (the last one checkpoints the
    /// WAL). Later calls to `read`/`write` fail with `DbError::Closed`.
    pub fn close(&self) {
        let _ = self.inner.writer.send(Msg::Stop);
        let _ = self.inner.checkpointer.try_send(Msg::Stop);
        for _ in 0..self.inner.reader_count {
            let _ = self.inner.readers.send(Msg::Stop);
        }
        let threads = match self.inner.threads.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for handle in threads {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests;
