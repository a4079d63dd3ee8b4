//! Sync with the hub: the edge side of the star (COMMON protocol in `crdt::protocol`).
//!
//! - `enroll`: `stayos-edge enroll` trades a one-time token for this node's credential and
//!   stores the hub link (`config`) in `node_meta`.
//! - `agent`: a task inside `stayos-edge serve` that pushes this node's own writes and pulls
//!   everything the hub holds for its property and the chain, through `client`.
//! - `guard`: the boundary for incoming changes (pulls and changes files): each change is
//!   screened before it is merged, and a refused one goes to the local `sync_quarantine`
//!   with its reason while the rest are merged.
//! - `routes`: `GET /sync/status`, `GET /sync/quarantine`; the same facts as Prometheus
//!   metrics.
//!
//! Architecture invariant: the agent never slows local work. It reads on the read pool, its
//! writes are small (a cursor, or one merge of at most `agent::PULL_LIMIT` changes), and
//! nothing a handler does waits for it.

pub mod agent;
pub mod client;
pub mod config;
pub mod enroll;
pub mod guard;
pub mod routes;

use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use utoipa::ToSchema;

use self::client::HubError;

/// Where the agent stands with the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Not enrolled: nothing to sync with.
    Disabled,
    /// The last exchange with the hub succeeded.
    Online,
    /// The hub could not be reached (network down, hub stopped); retrying.
    Offline,
    /// The hub answered with an error (revoked, refused a batch, ...) or this node could not
    /// apply what it got; retrying, but a person probably needs to look.
    Error,
}

impl SyncState {
    const ALL: [SyncState; 4] =
        [SyncState::Disabled, SyncState::Online, SyncState::Offline, SyncState::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Disabled => "disabled",
            SyncState::Online => "online",
            SyncState::Offline => "offline",
            SyncState::Error => "error",
        }
    }
}

/// The most recent failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct LastError {
    /// RFC 3339.
    #[schema(value_type = String, format = DateTime)]
    #[serde(serialize_with = "crate::time::serialize")]
    pub at: jiff::Timestamp,
    pub message: String,
    /// The hub's error code when the hub answered with an error (e.g. `node_revoked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// What the agent knows, as `GET /sync/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StatusView {
    pub state: SyncState,
    pub hub_url: Option<String>,
    pub node_id: Option<String>,
    /// The last successful exchange with the hub (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(serialize_with = "crate::time::serialize_opt")]
    pub last_success: Option<jiff::Timestamp>,
    /// The most recent failure; kept after recovery, so an operator can see what happened.
    pub last_error: Option<LastError>,
    /// Rows written on this node and not yet acknowledged by the hub.
    pub pending_push: u64,
    /// Changes the hub still held for this node after the last pull.
    pub pending_pull: u64,
    /// Changes pushed since this process started.
    pub pushed_total: u64,
    /// Changes pulled since this process started.
    pub pulled_total: u64,
    /// Changes this node refused to merge (pulled from the hub or imported from a file), in
    /// all: those in the quarantine (`GET /sync/quarantine`) and those its cap dropped.
    pub quarantined: u64,
    /// The newest quarantined changes (at most five), newest first.
    pub quarantine_recent: Vec<QuarantineNote>,
    /// This node's changes the hub refused and quarantined, as its last acknowledgement said.
    pub hub_quarantined: u64,
}

/// One quarantined change in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QuarantineNote {
    /// RFC 3339.
    pub at: String,
    /// `hub` or `file`.
    pub source: String,
    pub table: String,
    pub reason: String,
}

/// The agent's status, shared with the HTTP handlers. Every update also sets the
/// `stayos_sync_*` metrics.
#[derive(Debug, Clone)]
pub struct SyncStatus {
    inner: Arc<Mutex<StatusView>>,
}

impl Default for SyncStatus {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(StatusView {
                state: SyncState::Disabled,
                hub_url: None,
                node_id: None,
                last_success: None,
                last_error: None,
                pending_push: 0,
                pending_pull: 0,
                pushed_total: 0,
                pulled_total: 0,
                quarantined: 0,
                quarantine_recent: Vec::new(),
                hub_quarantined: 0,
            })),
        }
    }
}

impl SyncStatus {
    fn lock(&self) -> MutexGuard<'_, StatusView> {
        // The view is plain data: a panic elsewhere cannot leave it half-updated in a way
        // that matters, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> StatusView {
        self.lock().clone()
    }

    fn set_state(view: &mut StatusView, state: SyncState) {
        view.state = state;
        for s in SyncState::ALL {
            metrics::gauge!("stayos_sync_state", "state" => s.as_str()).set(if s == state {
                1.0
            } else {
                0.0
            });
        }
    }

    pub(crate) fn disabled(&self) {
        let mut view = self.lock();
        view.hub_url = None;
        view.node_id = None;
        Self::set_state(&mut view, SyncState::Disabled);
    }

    /// A hub link was found; until the first exchange the node counts as offline.
    pub(crate) fn linked(&self, url: &str, node_id: &str) {
        let mut view = self.lock();
        view.hub_url = Some(url.to_string());
        view.node_id = Some(node_id.to_string());
        if view.state == SyncState::Disabled {
            Self::set_state(&mut view, SyncState::Offline);
        }
    }

    pub(crate) fn success(&self) {
        let now = jiff::Timestamp::now();
        let mut view = self.lock();
        view.last_success = Some(now);
        Self::set_state(&mut view, SyncState::Online);
        metrics::gauge!("stayos_sync_last_success_timestamp_seconds")
            .set(now.as_millisecond() as f64 / 1000.0);
    }

    pub(crate) fn failure(&self, err: &HubError) {
        let state = if err.is_network() { SyncState::Offline } else { SyncState::Error };
        self.fail(state, err.to_string(), err.code().map(str::to_string));
    }

    /// A failure on this side (the database, a change that cannot be merged).
    pub(crate) fn local_failure(&self, message: String) {
        self.fail(SyncState::Error, message, None);
    }

    fn fail(&self, state: SyncState, message: String, code: Option<String>) {
        metrics::counter!("stayos_sync_errors_total").increment(1);
        let mut view = self.lock();
        view.last_error = Some(LastError { at: jiff::Timestamp::now(), message, code });
        Self::set_state(&mut view, state);
    }

    pub(crate) fn pushed(&self, changes: u64) {
        metrics::counter!("stayos_sync_pushed_changes_total").increment(changes);
        self.lock().pushed_total += changes;
    }

    pub(crate) fn pulled(&self, changes: u64, remaining: u64) {
        metrics::counter!("stayos_sync_pulled_changes_total").increment(changes);
        metrics::gauge!("stayos_sync_pending_pull").set(remaining as f64);
        let mut view = self.lock();
        view.pulled_total += changes;
        view.pending_pull = remaining;
    }

    pub(crate) fn pending_push(&self, rows: u64) {
        metrics::gauge!("stayos_sync_pending_push").set(rows as f64);
        self.lock().pending_push = rows;
    }
}
