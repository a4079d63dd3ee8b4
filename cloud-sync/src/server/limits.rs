//! What pushes may cost the hub: how many run at once per node and in all, and how much
//! memory their bodies and decoded batches may hold together — all decided before the body
//! is read, so a node that floods the hub is answered "later" (429 `too_many_pushes`, 503
//! `hub_busy`, both with `Retry-After`) instead of being buffered. The body is then decoded
//! with a ratio limit ([`crdt::protocol::decode_bounded`]), so a decompression bomb is
//! refused (413 `batch_too_large`) having cost no more than it was allowed.
//!
//! Memory is a weighted semaphore whose permits are KiB: a push reserves its compressed
//! size plus the most that size may decode to, and holds the reservation until it has been
//! merged. A push that finds the budget spent waits for it (at most [`MEMORY_WAIT`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use crdt::protocol::{self, Batch, DecodeBounds, ProtocolError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::HubState;
use super::auth::AuthNode;
use super::error::ApiError;
use super::metrics;
use crate::nodes::Node;

/// Largest compressed push body: zstd never makes a batch bigger than this, so a larger
/// body cannot be a batch the hub would decode.
pub const PUSH_BODY_LIMIT: usize =
    protocol::MAX_PUSH_DECODED_BYTES + protocol::MAX_PUSH_DECODED_BYTES / 128 + 4096;
/// How long a push waits for memory before it is told to come back.
pub const MEMORY_WAIT: Duration = Duration::from_secs(10);
/// `Retry-After` of a node over its own cap: one of its pushes is running; soon done.
const RETRY_AFTER_NODE_SECS: u32 = 1;
/// `Retry-After` of a busy hub.
const RETRY_AFTER_BUSY_SECS: u32 = 2;

/// The bounds of pushes, set by `stayos-hub serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushLimits {
    /// Bytes of push bodies and their decoded batches held at once, hub-wide.
    pub memory_bytes: usize,
    /// Pushes of one node running at once.
    pub per_node: usize,
    /// Pushes running at once, hub-wide.
    pub in_flight: usize,
}

impl Default for PushLimits {
    fn default() -> Self {
        Self { memory_bytes: 256 * 1024 * 1024, per_node: 2, in_flight: 32 }
    }
}

/// The hub's push admission: the counters [`PushLimits`] bound.
#[derive(Debug)]
pub struct PushGate {
    limits: PushLimits,
    memory: Arc<Semaphore>,
    memory_kib: u32,
    in_flight: Arc<Semaphore>,
    per_node: Mutex<HashMap<String, usize>>,
}

impl PushGate {
    pub fn new(limits: PushLimits) -> Self {
        let memory_kib = u32::try_from(limits.memory_bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        Self {
            limits,
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
            in_flight: Arc::new(Semaphore::new(limits.in_flight)),
            per_node: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.per_node.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for one push of `node_id`, or the answer that says to come back later.
    fn admit(self: &Arc<Self>, node_id: &str) -> Result<PushSlot, ApiError> {
        {
            let mut per_node = self.lock();
            let running = per_node.entry(node_id.to_string()).or_insert(0);
            if *running >= self.limits.per_node {
                metrics::refused("too_many_pushes");
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_pushes",
                    format!(
                        "this node already has {} pushes running; send the next one when one \
                         of them has been answered",
                        self.limits.per_node
                    ),
                )
                .with_retry_after(RETRY_AFTER_NODE_SECS));
            }
            *running += 1;
        }
        // From here the slot's drop gives the node's count back, whatever happens next.
        let mut slot = PushSlot { gate: self.clone(), node_id: node_id.to_string(), total: None };
        match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => slot.total = Some(permit),
            Err(_) => {
                metrics::refused("hub_busy");
                return Err(busy(format!(
                    "the hub is merging {} pushes already; try again shortly",
                    self.limits.in_flight
                )));
            }
        }
        metrics::pushes_in_flight(1.0);
        Ok(slot)
    }

    /// Reserves memory for a body of `body_bytes` and what it may decode to, waiting for
    /// it at most [`MEMORY_WAIT`]. A reservation larger than the whole budget is cut to the
    /// budget: such a push runs alone rather than never.
    async fn reserve(&self, body_bytes: usize) -> Result<MemoryReservation, ApiError> {
        let bytes = body_bytes.saturating_add(DecodeBounds::PUSH.decoded_limit(body_bytes));
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX).min(self.memory_kib);
        let waited = {
            let _waiting = metrics::WaitingForMemory::start();
            tokio::time::timeout(MEMORY_WAIT, self.memory.clone().acquire_many_owned(kib)).await
        };
        match waited {
            Ok(Ok(permit)) => {
                metrics::push_memory_kib(f64::from(kib));
                Ok(MemoryReservation { kib, _permit: permit })
            }
            // The semaphore is never closed; treat it as busy all the same.
            Ok(Err(_)) | Err(_) => {
                metrics::refused("hub_busy");
                Err(busy("the hub's memory for pushes is in use; try again shortly".into()))
            }
        }
    }
}

fn busy(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "hub_busy", message)
        .with_retry_after(RETRY_AFTER_BUSY_SECS)
}

/// One running push of a node; dropping it frees the slot.
#[derive(Debug)]
pub struct PushSlot {
    gate: Arc<PushGate>,
    node_id: String,
    total: Option<OwnedSemaphorePermit>,
}

impl Drop for PushSlot {
    fn drop(&mut self) {
        if self.total.take().is_some() {
            metrics::pushes_in_flight(-1.0);
        }
        let mut per_node = self.gate.lock();
        if let Some(running) = per_node.get_mut(&self.node_id) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                per_node.remove(&self.node_id);
            }
        }
    }
}

/// Memory held for one push until it has been answered.
#[derive(Debug)]
pub struct MemoryReservation {
    kib: u32,
    _permit: OwnedSemaphorePermit,
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        metrics::push_memory_kib(-f64::from(self.kib));
    }
}

/// The authenticated node, admitted to push: its slot and its memory are held for as long as
/// this lives. Taken before the body is read.
#[derive(Debug)]
pub struct AdmittedPush {
    pub node: Node,
    pub slot: PushSlot,
    pub memory: MemoryReservation,
}

impl FromRequestParts<HubState> for AdmittedPush {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HubState) -> Result<Self, ApiError> {
        let AuthNode(node) = AuthNode::from_request_parts(parts, state).await?;
        // A body that declares more than any batch can be is refused before anything is
        // held for it; without a length, the most a body may be is reserved.
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        if declared.is_some_and(|n| n > PUSH_BODY_LIMIT) {
            metrics::refused("batch_too_large");
            return Err(too_large(format!(
                "the body is larger than the {PUSH_BODY_LIMIT} bytes a push may be"
            )));
        }
        let slot = state.pushes.admit(&node.id)?;
        let memory = state.pushes.reserve(declared.unwrap_or(PUSH_BODY_LIMIT)).await?;
        Ok(AdmittedPush { node, slot, memory })
    }
}

fn too_large(message: String) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "batch_too_large", message)
}

/// Decodes a push body within [`DecodeBounds::PUSH`], off the async workers (it is CPU
/// work): 413 `batch_too_large` past the bounds, 422 `invalid_body` for anything that is
/// not a batch.
pub async fn decode_push(body: axum::body::Bytes) -> Result<Batch, ApiError> {
    let decoded = tokio::task::spawn_blocking(move || {
        protocol::decode_bounded::<Batch>(&body, &DecodeBounds::PUSH)
    })
    .await
    .map_err(ApiError::internal)?;
    decoded.map_err(|err| {
        metrics::push_batch("invalid");
        match err {
            ProtocolError::TooLarge(_) | ProtocolError::Ratio { .. } => {
                metrics::refused("batch_too_large");
                too_large(format!(
                    "{err}; nothing was applied. A batch may decode to at most {} bytes, and \
                     to more than {} bytes only within {}× its compressed size: send smaller \
                     batches",
                    protocol::MAX_PUSH_DECODED_BYTES,
                    protocol::PUSH_RATIO_FREE_BYTES,
                    protocol::MAX_PUSH_RATIO
                ))
            }
            other => {
                metrics::refused("invalid_body");
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    format!("the body is not a change batch: {other}"),
                )
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_node_gets_its_cap_of_slots_and_the_hub_its_total_and_dropping_frees_them() {
        let gate = Arc::new(PushGate::new(PushLimits {
            memory_bytes: 1 << 30,
            per_node: 2,
            in_flight: 3,
        }));
        let a1 = gate.admit("a").expect("a1");
        let a2 = gate.admit("a").expect("a2");
        let err = gate.admit("a").expect_err("a3");
        assert_eq!((err.status(), err.code()), (StatusCode::TOO_MANY_REQUESTS, "too_many_pushes"));
        let b1 = gate.admit("b").expect("b1");
        let err = gate.admit("c").expect_err("c1: the hub is full");
        assert_eq!((err.status(), err.code()), (StatusCode::SERVICE_UNAVAILABLE, "hub_busy"));
        // A refusal for the total gave the node's count back.
        drop(b1);
        let _c1 = gate.admit("c").expect("c1 after b1");
        drop(a1);
        let _a3 = gate.admit("a").expect("a3 after a1");
        drop(a2);
        assert_eq!(gate.lock().get("a"), Some(&1));
    }

    #[tokio::test]
    async fn memory_is_reserved_for_the_body_and_what_it_may_decode_to() {
        let gate = PushGate::new(PushLimits { memory_bytes: 8 << 20, ..PushLimits::default() });
        // 100 KB may decode to 6.4 MB: nearly the whole budget.
        let big = gate.reserve(100_000).await.expect("first");
        assert_eq!(big.kib, (100_000 + 6_400_000u32).div_ceil(1024));
        assert!(gate.memory.available_permits() < 2048);
        drop(big);
        // More than the budget is cut to the budget, so it can run alone.
        let all = gate.reserve(protocol::MAX_PUSH_DECODED_BYTES).await.expect("alone");
        assert_eq!(all.kib, 8 * 1024);
        assert_eq!(gate.memory.available_permits(), 0);
    }
}
