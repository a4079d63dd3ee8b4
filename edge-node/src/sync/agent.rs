//! The sync agent: a task inside `stayos-edge serve` that keeps this node and the hub in
//! step.
//!
//! - Not enrolled: state `disabled`; `node_meta` is checked again every 2 s, so an
//!   `enroll` run while serving is picked up without a restart (and a re-enrollment with
//!   `--force` replaces the link the same way).
//! - On (re)connect, `hello` aligns the cursors with the hub: the hub may hold more of this
//!   node's changes than acknowledged (an acknowledgement lost on the way), or fewer (the hub
//!   was restored from a backup — `acked` is forced back so they are sent again).
//! - Push: this node's own writes (`Sites::Only(own site)`) after `acked`, in batches of at
//!   most [`PUSH_ROWS`] rows read on the read pool, without the tables kept on the node
//!   (`replication.toml` scope "node"); `acked` moves on each `PushAck`. Wakes on every
//!   local commit and every second.
//! - Pull: long-polls the hub after `received` and merges each batch in one write
//!   transaction together with the cursor — exactly once, and resumable after a crash. Each
//!   batch passes `guard` first: refused changes are quarantined, the rest merged, and the
//!   cursor moves past both, so one bad change never stops the pulls.
//! - The hub's acknowledgement says how many changes of the push it quarantined; the agent
//!   adds them up in `node_meta` (`hub_quarantined`, on `/sync/status`).
//! - Failures back off with full jitter, 250 ms doubling to 30 s, reset on success.

use std::sync::Arc;
use std::time::Duration;

use crdt::protocol::{Batch, Scope, Scopes};
use rusqlite::Connection;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SyncStatus;
use super::client::{HubClient, HubError};
use super::config::{self, HubLink};
use crate::db::{Db, DbError};
use crate::node::NodeInfo;

/// How often a node that is not enrolled looks for a hub link, and an enrolled one for a
/// changed link.
pub const LINK_CHECK: Duration = Duration::from_secs(2);
/// The push loop's wake-up when no commit woke it.
pub const PUSH_TICK: Duration = Duration::from_secs(1);
/// The most rows one push batch touches (a bigger single transaction is sent whole).
pub const PUSH_ROWS: usize = 2_000;
/// The most changes one pull asks for, so one merge stays a short write.
pub const PULL_LIMIT: u32 = 5_000;
/// How long a pull waits at the hub for something new.
pub const PULL_WAIT: Duration = Duration::from_secs(20);
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The scopes of `migrations/edge/replication.toml`, which the hub holds too.
/// The next batch this node pushes after its version `since`: its own writes only (changes
/// merged from the hub went the other way), whole versions of at most `max_rows` rows, and
/// nothing of the tables kept on the node (`replication.toml`, scope "node").
pub fn outgoing_batch(
    conn: &Connection,
    scopes: &Scopes,
    own_site: &[u8],
    since: i64,
    max_rows: usize,
) -> Result<Batch, DbError> {
    let set = crdt::changeset_batch(conn, since, max_rows, crdt::Sites::Only(own_site))?;
    Ok(Batch {
        site_id: own_site.to_vec(),
        schema_version: set.schema_version,
        since,
        until: set.until.max(since),
        changes: set
            .changes
            .iter()
            .filter(|c| scopes.get(&c.table) != Some(Scope::Node))
            .map(crdt::protocol::WireChange::from)
            .collect(),
    })
}

/// The scope of every replicated table, from `migrations/edge/replication.toml`.
pub fn scopes() -> Scopes {
    const TEXT: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/edge/replication.toml"));
    // db::tests checks the file parses and names every replicated table.
    Scopes::parse(TEXT).unwrap_or_else(|_| {
        Scopes::parse("[tables]\n").unwrap_or_else(|_| unreachable!("an empty table list parses"))
    })
}

/// Full-jitter exponential backoff: each wait is uniform in `[0, min(cap, first * 2^n)]`,
/// so nodes that lost the hub together do not come back in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self { attempt: 0 }
    }

    /// The largest wait of the next attempt.
    pub fn ceiling(&self) -> Duration {
        BACKOFF_FIRST.saturating_mul(1u32 << self.attempt.min(16)).min(BACKOFF_MAX)
    }

    /// The wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        use rand::Rng as _;
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Rows written on this node (or merged into it) after the hub's acknowledged version:
/// what is still to go. Merged rows are counted until the push loop steps over them, which
/// it does at once.
pub fn pending_push(conn: &Connection, hub_site: &[u8]) -> Result<u64, DbError> {
    let acked = crdt::peer_cursor(conn, hub_site)?.acked;
    Ok(crdt::rows_after(conn, acked)?)
}

/// The running agent; [`Agent::stop`] ends it.
#[derive(Debug)]
pub struct Agent {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Agent {
    /// Starts the agent for the node `node` on `db`, reporting into `status`.
    pub fn spawn(db: Db, node: Arc<NodeInfo>, status: SyncStatus) -> Agent {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let own_site = match hex::decode(&node.site_id) {
                Ok(site) => site,
                Err(_) => {
                    status.local_failure("this node's site id is not hex".into());
                    return;
                }
            };
            tokio::select! {
                () = supervise(db, own_site, status) => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        });
        Agent { stop, task }
    }

    /// Stops the agent and waits until it has. A write it had already handed to the
    /// database still completes there (each is one whole transaction).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

async fn load_link(db: &Db) -> Result<Option<HubLink>, String> {
    db.read(|conn| Ok::<_, DbError>(config::load(conn)))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Finds the hub link and runs a session with it; starts over when the link changes.
async fn supervise(db: Db, own_site: Vec<u8>, status: SyncStatus) {
    let scopes = Arc::new(scopes());
    loop {
        let link = match load_link(&db).await {
            Ok(Some(link)) => link,
            Ok(None) => {
                status.disabled();
                tokio::time::sleep(LINK_CHECK).await;
                continue;
            }
            Err(message) => {
                status.local_failure(message);
                tokio::time::sleep(LINK_CHECK).await;
                continue;
            }
        };
        status.linked(&link.url, &link.node_id);
        let client = match HubClient::new(&link.url, &link.pin, Some(link.credential.clone())) {
            Ok(client) => client,
            Err(err) => {
                status.failure(&err);
                wait_for_link_change(&db, &link).await;
                continue;
            }
        };
        tracing::info!(hub = %link.url, node_id = %link.node_id, "sync: linked to the hub");
        let session = Session {
            db: db.clone(),
            client,
            link: link.clone(),
            own_site: own_site.clone(),
            status: status.clone(),
            scopes: scopes.clone(),
            hub_received: std::sync::atomic::AtomicI64::new(-1),
        };
        tokio::select! {
            () = session.run() => {}
            () = wait_for_link_change(&db, &link) => {
                tracing::info!("sync: the hub link changed; reconnecting");
            }
        }
    }
}

async fn wait_for_link_change(db: &Db, link: &HubLink) {
    loop {
        tokio::time::sleep(LINK_CHECK).await;
        match load_link(db).await {
            Ok(Some(now)) if now == *link => {}
            // A read that failed says nothing about the link; look again.
            Err(_) => {}
            _ => return,
        }
    }
}

/// An error of one step: the hub's, or this node's own.
enum StepError {
    Hub(HubError),
    Local(String),
}

impl From<HubError> for StepError {
    fn from(e: HubError) -> Self {
        StepError::Hub(e)
    }
}

impl From<DbError> for StepError {
    fn from(e: DbError) -> Self {
        StepError::Local(format!("the local database: {e}"))
    }
}

struct Session {
    db: Db,
    client: HubClient,
    link: HubLink,
    own_site: Vec<u8>,
    status: SyncStatus,
    scopes: Arc<Scopes>,
    /// This node's version up to which the hub has its changes, as the hub last said (hello
    /// or an acknowledgement); -1 before it has. The local `acked` may run ahead of it over
    /// versions with nothing to send, which are acknowledged here without a request; the next
    /// batch then starts at the hub's word, so its range covers them and leaves the hub's
    /// cursor no gap to stop at.
    hub_received: std::sync::atomic::AtomicI64,
}

impl Session {
    fn report(&self, err: &StepError) {
        match err {
            StepError::Hub(e) => {
                if e.is_network() {
                    tracing::debug!(error = %e, "sync: the hub is unreachable");
                } else {
                    tracing::warn!(error = %e, "sync: the hub answered with an error");
                }
                self.status.failure(e);
            }
            StepError::Local(message) => {
                tracing::warn!(error = %message, "sync: failed on this node");
                self.status.local_failure(message.clone());
            }
        }
    }

    /// Hello until it works, then the push and pull loops, for as long as the link stands.
    async fn run(self) {
        let mut backoff = Backoff::new();
        loop {
            match self.hello().await {
                Ok(()) => break,
                Err(err) => {
                    self.report(&err);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
        tokio::join!(self.push_loop(), self.pull_loop());
    }

    /// Aligns the cursors with where the hub stands.
    async fn hello(&self) -> Result<(), StepError> {
        let hello = self.client.hello().await?;
        if hex::decode(&hello.hub_site_id).ok().as_deref() != Some(&self.link.hub_site_id[..]) {
            return Err(StepError::Hub(HubError::Protocol(format!(
                "the hub's site id is {}, not the {} this node enrolled with; enroll again",
                hello.hub_site_id,
                hex::encode(&self.link.hub_site_id)
            ))));
        }
        self.status.success();
        // A database restored from a backup older than its last sync is behind what the hub
        // holds from it: its next writes would reuse version numbers the hub has already
        // acknowledged, and would never be sent. Refuse to sync rather than lose them.
        let newest = self
            .db
            .read(|conn| {
                Ok::<i64, DbError>(conn.query_row(
                    "SELECT coalesce(max(db_version), 0) FROM crdt_log",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await?;
        if hello.received > newest {
            return Err(StepError::Local(format!(
                "this database is older than what the hub holds from it (the hub has this \
                 node's changes up to version {}, the database only goes to {newest}): it was \
                 restored from a backup taken before its last sync. Syncing is stopped so that \
                 new bookings are not lost; keep the node running and contact support to \
                 re-enroll it as a new site",
                hello.received
            )));
        }
        self.hub_received.store(hello.received, std::sync::atomic::Ordering::Relaxed);
        let hub = self.link.hub_site_id.clone();
        // The newest entry of this node's audit chain the hub holds: `/audit/verify` checks
        // the chain still reaches it, so deleting the newest entries is found.
        let anchor = hello.audit_anchor.as_ref().and_then(|a| serde_json::to_string(a).ok());
        let (acked, received) = self
            .db
            .write(move |tx| -> Result<_, DbError> {
                if let Some(anchor) = &anchor {
                    tx.execute(
                        "INSERT INTO node_meta (key, value) VALUES ('audit_anchor', ?1)
                         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        [anchor],
                    )?;
                }
                let cursor = crdt::peer_cursor(tx, &hub)?;
                tx.execute("INSERT OR IGNORE INTO crdt_peers (site_id) VALUES (?1)", [&hub])?;
                if hello.received != cursor.acked {
                    // Either way the hub's word is the truth about what it holds: more (an
                    // acknowledgement lost on the way) or less (restored from a backup — the
                    // changes after it are sent again).
                    tx.execute(
                        "UPDATE crdt_peers SET acked = ?2 WHERE site_id = ?1",
                        rusqlite::params![hub, hello.received],
                    )?;
                }
                if hello.head < cursor.received {
                    // A hub restored from a backup numbers new versions from its head again;
                    // pulling from there re-merges what is known (idempotent) and misses
                    // nothing.
                    tx.execute(
                        "UPDATE crdt_peers SET received = ?2 WHERE site_id = ?1",
                        rusqlite::params![hub, hello.head],
                    )?;
                }
                Ok(((cursor.acked, hello.received), (cursor.received, hello.head)))
            })
            .await?;
        if acked.1 < acked.0 {
            tracing::warn!(
                local_acked = acked.0,
                hub_received = acked.1,
                "sync: the hub holds fewer of this node's changes than it acknowledged \
                 (restored from a backup?); sending them again"
            );
        }
        if received.1 < received.0 {
            tracing::warn!(
                local_received = received.0,
                hub_head = received.1,
                "sync: the hub is behind what this node pulled (restored from a backup?); \
                 pulling from its head"
            );
        }
        Ok(())
    }

    async fn push_loop(&self) {
        let mut commits = self.db.commits();
        let mut backoff = Backoff::new();
        let mut needs_hello = false;
        loop {
            let pushed = async {
                if needs_hello {
                    self.hello().await?;
                }
                self.push_all().await
            }
            .await;
            match pushed {
                Ok(()) => {
                    needs_hello = false;
                    backoff.reset();
                }
                Err(err) => {
                    self.report(&err);
                    needs_hello = true;
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
            }
            tokio::select! {
                changed = commits.changed() => {
                    if changed.is_err() {
                        // The database is closing; the tick paces the loop until we are stopped.
                        tokio::time::sleep(PUSH_TICK).await;
                    }
                }
                () = tokio::time::sleep(PUSH_TICK) => {}
            }
        }
    }

    /// Pushes batches until the hub has acknowledged everything this node wrote.
    async fn push_all(&self) -> Result<(), StepError> {
        // The backlog is counted on the first round and once caught up (where it is cheap),
        // not per batch: a long catch-up would otherwise rescan the log for every batch.
        let mut count_pending = true;
        loop {
            let hub = self.link.hub_site_id.clone();
            let scopes = self.scopes.clone();
            let own = self.own_site.clone();
            let (batch, pending) = self
                .db
                .read(move |conn| -> Result<_, DbError> {
                    let acked = crdt::peer_cursor(conn, &hub)?.acked;
                    let batch = outgoing_batch(conn, &scopes, &own, acked, PUSH_ROWS)?;
                    let caught_up = batch.until <= acked;
                    let pending = if count_pending || caught_up {
                        Some(pending_push(conn, &hub)?)
                    } else {
                        None
                    };
                    Ok((batch, pending))
                })
                .await?;
            count_pending = false;
            if let Some(pending) = pending {
                self.status.pending_push(pending);
            }
            if batch.until <= batch.since {
                return Ok(());
            }
            if batch.changes.is_empty() {
                // Versions holding nothing to send (merged from the hub, or node-only
                // tables): stepping over them needs no word from the hub.
                self.set_acked(batch.until).await?;
                continue;
            }
            let mut batch = batch;
            let hub_received = self.hub_received.load(std::sync::atomic::Ordering::Relaxed);
            if (0..batch.since).contains(&hub_received) {
                batch.since = hub_received;
            }
            let count = batch.changes.len() as u64;
            let ack = self.client.push(&batch).await?;
            self.hub_received.store(ack.received, std::sync::atomic::Ordering::Relaxed);
            self.status.success();
            if ack.received < batch.since {
                // The hub lost track of us mid-session (restored); hello realigns.
                return Err(StepError::Hub(HubError::Protocol(format!(
                    "the hub has this node's changes only up to {}, before this batch's {}",
                    ack.received, batch.since
                ))));
            }
            if ack.received < batch.until {
                return Err(StepError::Hub(HubError::Protocol(format!(
                    "the hub acknowledged up to {} of a batch ending at {}",
                    ack.received, batch.until
                ))));
            }
            self.status.pushed(count);
            self.set_acked(ack.received).await?;
            if ack.quarantined > 0 {
                let count = ack.quarantined;
                tracing::warn!(count, "the hub quarantined changes of this node's push");
                self.db.write(move |tx| super::guard::add_hub_quarantined(tx, count)).await?;
            }
        }
    }

    async fn set_acked(&self, version: i64) -> Result<(), DbError> {
        let hub = self.link.hub_site_id.clone();
        self.db.write(move |tx| Ok(crdt::set_acked(tx, &hub, version)?)).await
    }

    async fn pull_loop(&self) {
        let mut backoff = Backoff::new();
        let mut wait = PULL_WAIT;
        loop {
            match self.pull_once(wait).await {
                Ok(more) => {
                    backoff.reset();
                    wait = if more { Duration::ZERO } else { PULL_WAIT };
                }
                Err(err) => {
                    self.report(&err);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// One pull and its merge; whether more is waiting.
    async fn pull_once(&self, wait: Duration) -> Result<bool, StepError> {
        let hub = self.link.hub_site_id.clone();
        let since = self
            .db
            .read(move |conn| Ok::<_, DbError>(crdt::peer_cursor(conn, &hub)?.received))
            .await?;
        let pull = self.client.pull(since, PULL_LIMIT, wait).await?;
        self.status.success();
        if pull.batch.site_id != self.link.hub_site_id {
            return Err(StepError::Hub(HubError::Protocol(
                "the pulled batch is not the hub's".into(),
            )));
        }
        if pull.batch.since > since {
            return Err(StepError::Hub(HubError::Protocol(format!(
                "asked for changes after {since}, got a batch after {}",
                pull.batch.since
            ))));
        }
        let count = pull.batch.changes.len() as u64;
        if pull.batch.until > since || count > 0 {
            let set = crdt::Changeset::from(pull.batch);
            self.db
                .merge_from_hub(set, self.scopes.clone())
                .await
                .map_err(|e| StepError::Local(format!("merging the hub's changes failed: {e}")))?;
        }
        self.status.pulled(count, if pull.more { pull.remaining } else { 0 });
        Ok(pull.more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_quarter_second_to_thirty_and_resets() {
        let mut b = Backoff::new();
        let ceilings: Vec<u128> = (0..10)
            .map(|_| {
                let c = b.ceiling();
                let d = b.next_delay();
                assert!(d <= c, "{d:?} within {c:?}");
                c.as_millis()
            })
            .collect();
        assert_eq!(ceilings, [250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        for _ in 0..100 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), BACKOFF_MAX, "no overflow after many failures");
        b.reset();
        assert_eq!(b.ceiling(), BACKOFF_FIRST);
    }

    #[test]
    fn full_jitter_spreads_the_waits() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let mut b = Backoff { attempt: 7 };
            seen.insert(b.next_delay().as_millis() / 1000);
        }
        assert!(seen.len() > 5, "waits spread over the range: {seen:?}");
    }

    #[test]
    fn node_scoped_tables_are_known_from_replication_toml() {
        let scopes = scopes();
        assert_eq!(scopes.get("staff"), Some(Scope::Node));
        assert_eq!(scopes.get("guests"), Some(Scope::Chain));
        assert_eq!(scopes.get("reservations"), Some(Scope::Property));
    }

    #[tokio::test]
    async fn pending_push_counts_the_rows_written_after_the_acknowledged_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), 1).expect("open");
        let hub = vec![7u8; 16];
        let write = |sql: &'static str| {
            db.write(move |tx| -> Result<_, DbError> { Ok(tx.execute_batch(sql)?) })
        };
        let hub_for = hub.clone();
        let base = db.read(move |c| pending_push(c, &hub_for)).await.expect("pending");
        write("INSERT INTO guests (id, property_id) VALUES ('g1', 'p'), ('g2', 'p')")
            .await
            .expect("write");
        let hub_for = hub.clone();
        let (pending, version) = db
            .read(move |c| -> Result<_, DbError> {
                let v: i64 =
                    c.query_row("SELECT max(db_version) FROM crdt_log", [], |r| r.get(0))?;
                Ok((pending_push(c, &hub_for)?, v))
            })
            .await
            .expect("pending");
        assert_eq!(pending, base + 2);
        let hub_for = hub.clone();
        db.write(move |tx| Ok::<_, DbError>(crdt::set_acked(tx, &hub_for, version)?))
            .await
            .expect("ack");
        let hub_for = hub.clone();
        assert_eq!(db.read(move |c| pending_push(c, &hub_for)).await.expect("pending"), 0);
        db.close();
    }
}
