//! Prometheus metrics of the hub: a counter and a latency histogram per method, route template
//! and status (as the edge has), and the sync counters an operator watches — merged changes,
//! push outcomes, refusals by reason, the head version and the nodes long-polling right now.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const CHANGES_MERGED: &str = "stayos_hub_changes_merged_total";
pub const PUSH_BATCHES: &str = "stayos_hub_push_batches_total";
pub const HEAD_VERSION: &str = "stayos_hub_head_version";
pub const NODES_CONNECTED: &str = "stayos_hub_nodes_connected";
pub const REFUSED: &str = "stayos_hub_refused_total";
/// Changes quarantined, by kind (`screen::Refusal::kind`); recorded by the store.
pub const QUARANTINED: &str = "stayos_hub_quarantined_total";
pub const PUSHES_IN_FLIGHT: &str = "stayos_hub_pushes_in_flight";
pub const PUSH_MEMORY_KIB: &str = "stayos_hub_push_memory_reserved_kib";
pub const PUSHES_WAITING: &str = "stayos_hub_pushes_waiting_for_memory";

/// The process-wide recorder. `metrics` has one global recorder per process, so every server
/// started in this process shares it.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        10.0, 30.0,
                    ],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if ::metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
}

/// Descriptions, and zero values for the counters, so a dashboard sees every series from the
/// start rather than only after the first refusal.
fn describe() {
    ::metrics::describe_counter!(CHANGES_MERGED, "changes in push batches the hub merged");
    ::metrics::describe_counter!(PUSH_BATCHES, "push batches by result");
    ::metrics::describe_gauge!(HEAD_VERSION, "the hub's last committed merge version");
    ::metrics::describe_gauge!(NODES_CONNECTED, "nodes waiting in a long-poll pull right now");
    ::metrics::describe_counter!(REFUSED, "requests refused, by reason");
    ::metrics::describe_counter!(
        QUARANTINED,
        "changes refused and kept in the quarantine with their reason, by kind"
    );
    ::metrics::counter!(CHANGES_MERGED).increment(0);
    for kind in crate::screen::KINDS {
        ::metrics::counter!(QUARANTINED, "kind" => *kind).increment(0);
    }
    for result in ["ok", "partly_quarantined", "forbidden", "invalid", "quota_exceeded", "error"] {
        ::metrics::counter!(PUSH_BATCHES, "result" => result).increment(0);
    }
    ::metrics::gauge!(NODES_CONNECTED).set(0.0);
    ::metrics::describe_gauge!(PUSHES_IN_FLIGHT, "pushes admitted and not yet answered");
    ::metrics::describe_gauge!(PUSH_MEMORY_KIB, "KiB reserved for push bodies and batches");
    ::metrics::describe_gauge!(PUSHES_WAITING, "admitted pushes waiting for memory");
    for gauge in [PUSHES_IN_FLIGHT, PUSH_MEMORY_KIB, PUSHES_WAITING] {
        ::metrics::gauge!(gauge).set(0.0);
    }
}

/// Moves the count of pushes admitted and not yet answered.
pub fn pushes_in_flight(delta: f64) {
    ::metrics::gauge!(PUSHES_IN_FLIGHT).increment(delta);
}

/// Moves the KiB reserved for pushes.
pub fn push_memory_kib(delta: f64) {
    ::metrics::gauge!(PUSH_MEMORY_KIB).increment(delta);
}

/// An admitted push waiting for memory, counted while it lives.
pub struct WaitingForMemory(());

impl WaitingForMemory {
    pub fn start() -> Self {
        ::metrics::gauge!(PUSHES_WAITING).increment(1.0);
        Self(())
    }
}

impl Drop for WaitingForMemory {
    fn drop(&mut self) {
        ::metrics::gauge!(PUSHES_WAITING).decrement(1.0);
    }
}

/// Counts a refused request.
pub fn refused(reason: &'static str) {
    ::metrics::counter!(REFUSED, "reason" => reason).increment(1);
}

/// Holds `stayos_hub_nodes_connected` up while a long-poll waits, and lowers it however the
/// wait ends (answer, timeout, client gone).
pub struct Waiting(());

impl Waiting {
    pub fn start() -> Self {
        ::metrics::gauge!(NODES_CONNECTED).increment(1.0);
        Waiting(())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        ::metrics::gauge!(NODES_CONNECTED).decrement(1.0);
    }
}

pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = req.method().as_str().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    ::metrics::counter!("http_requests_total", &labels).increment(1);
    ::metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// Counts a push batch by its result: `ok`, `forbidden`, `invalid`, `error`.
pub fn push_batch(result: &'static str) {
    ::metrics::counter!(PUSH_BATCHES, "result" => result).increment(1);
}

/// Counts changes merged from push batches.
pub fn merged(changes: u64) {
    ::metrics::counter!(CHANGES_MERGED).increment(changes);
}

/// Publishes the hub's head version.
pub fn head(version: i64) {
    #[allow(clippy::cast_precision_loss)] // versions stay far below 2^53
    ::metrics::gauge!(HEAD_VERSION).set(version as f64);
}
