//! The sync endpoints a node calls: `hello` (where the hub stands with it), `push` (its own
//! changes) and `pull` (everything for its property and the chain, long-polling when there is
//! nothing new). Handlers check the wire and the node; the merge rules live in `store`.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crdt::protocol::{self, CONTENT_ENCODING, CONTENT_TYPE, Hello, PushAck};
use serde::Deserialize;
use serde_json::json;

use super::HubState;
use super::auth::AuthNode;
use super::error::ApiError;
use super::limits::{self, AdmittedPush};
use super::metrics;
use crate::nodes;
use crate::store::{MergeError, Writer};

pub const PULL_LIMIT_DEFAULT: usize = 5_000;
pub const PULL_LIMIT_MAX: usize = 50_000;
pub const PULL_WAIT_MAX_SECS: u64 = 30;

pub async fn hello(
    State(state): State<HubState>,
    AuthNode(node): AuthNode,
) -> Result<Json<Hello>, ApiError> {
    let received = state.store.received(&node.site_id).await?;
    let audit_anchor = state.store.audit_anchor(&node.site_id).await?;
    Ok(Json(Hello {
        hub_site_id: hex::encode(state.store.hub_site_id()),
        schema_version: state.store.schema_version(),
        node_id: node.id,
        property_id: node.property_id,
        received,
        head: state.store.head(),
        audit_anchor,
    }))
}

/// True when `value` is `expected`, ignoring parameters (`; charset=…`) and case.
fn header_is(headers: &HeaderMap, name: header::HeaderName, expected: &str) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(expected))
}

pub async fn push(
    State(state): State<HubState>,
    // Admitted before the body is read: a slot of the node's and the hub's, and memory.
    AdmittedPush { node, slot: _slot, memory: _memory }: AdmittedPush,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PushAck>, ApiError> {
    if !header_is(&headers, header::CONTENT_TYPE, CONTENT_TYPE)
        || !header_is(&headers, header::CONTENT_ENCODING, CONTENT_ENCODING)
    {
        metrics::refused("unsupported_media_type");
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send the batch as content-type {CONTENT_TYPE} with content-encoding {CONTENT_ENCODING}"
            ),
        ));
    }
    let batch = limits::decode_push(body).await?;
    if batch.site_id != node.site_id {
        metrics::refused("wrong_site");
        metrics::push_batch("forbidden");
        let details = json!({
            "reason": "wrong_site",
            "batch_site_id": hex::encode(&batch.site_id),
            "enrolled_site_id": hex::encode(node.site_id),
        });
        audit_refusal(&state, &node, details.clone()).await;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_site",
            "a node pushes only the batches of the site id it enrolled with",
        )
        .with_details(details));
    }
    let count = batch.changes.len() as u64;
    let writer = Writer { property_id: node.property_id.clone(), node_id: Some(node.id.clone()) };
    match state.store.push(&writer, &batch.into()).await {
        Ok(ack) => {
            metrics::push_batch(if ack.quarantined > 0 { "partly_quarantined" } else { "ok" });
            metrics::merged(count);
            if ack.quarantined > 0 {
                // One audit row per batch, not per change: what a hostile node costs the
                // hub's audit log is bounded by its push rate.
                let details = json!({
                    "reason": "quarantined",
                    "quarantined": ack.quarantined,
                    "merged": ack.applied,
                });
                audit_refusal(&state, &node, details).await;
            }
            Ok(Json(ack))
        }
        Err(err @ MergeError::QuotaExceeded { .. }) => {
            metrics::refused("quota_exceeded");
            metrics::push_batch("quota_exceeded");
            tracing::warn!(node_id = %node.id, error = %err, "refused a push over the property's quota");
            Err(ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "quota_exceeded",
                format!("{err}; nothing of this batch was applied, the node keeps it"),
            ))
        }
        Err(MergeError::Invalid { index, reason }) => {
            metrics::refused("invalid_change");
            metrics::push_batch("invalid");
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_change",
                format!("change {index}: {reason}; nothing of this batch was applied"),
            )
            .with_details(json!({ "index": index, "reason": reason })))
        }
        Err(MergeError::Hub(err)) => {
            metrics::push_batch("error");
            Err(err.into())
        }
    }
}

/// Audits a refused push; a failure to audit is logged, never turned into a different answer.
async fn audit_refusal(state: &HubState, node: &nodes::Node, details: serde_json::Value) {
    let audited = nodes::audit_pool(
        state.store.pool(),
        nodes::EV_PUSH_REFUSED,
        Some(&node.id),
        Some(&node.property_id),
        details,
    )
    .await;
    if let Err(err) = audited {
        tracing::error!(node_id = %node.id, error = %err, "failed to audit a refused push");
    }
}

/// `?since=&limit=&wait=` as text, so a bad value is answered with the field's name.
#[derive(Debug, Deserialize)]
pub struct PullQuery {
    since: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PullParams {
    since: i64,
    limit: usize,
    wait: Duration,
}

impl PullParams {
    fn parse(q: &PullQuery) -> Result<Self, ApiError> {
        let since = match q.since.as_deref() {
            None | Some("") => 0,
            Some(s) => s
                .parse::<i64>()
                .ok()
                .filter(|v| *v >= 0)
                .ok_or_else(|| ApiError::invalid_field("since", "a hub version, 0 or more"))?,
        };
        let limit = match q.limit.as_deref() {
            None | Some("") => PULL_LIMIT_DEFAULT,
            Some(s) => {
                s.parse::<usize>().ok().filter(|v| (1..=PULL_LIMIT_MAX).contains(v)).ok_or_else(
                    || ApiError::invalid_field("limit", format!("1 to {PULL_LIMIT_MAX} changes")),
                )?
            }
        };
        let wait = match q.wait.as_deref() {
            None | Some("") => 0,
            Some(s) => {
                s.parse::<u64>().ok().filter(|v| *v <= PULL_WAIT_MAX_SECS).ok_or_else(|| {
                    ApiError::invalid_field("wait", format!("0 to {PULL_WAIT_MAX_SECS} seconds"))
                })?
            }
        };
        Ok(Self { since, limit, wait: Duration::from_secs(wait) })
    }
}

pub async fn pull(
    State(state): State<HubState>,
    AuthNode(node): AuthNode,
    Query(query): Query<PullQuery>,
) -> Result<Response, ApiError> {
    let params = PullParams::parse(&query)?;
    let head = state.store.head();
    if params.since > head {
        // The node has seen hub versions this hub does not have: the hub's database was
        // restored from an older backup. Answer what there is; the operator must know.
        if state.ahead_warned.allow(&node.id) {
            tracing::warn!(
                node_id = %node.id,
                since = params.since,
                head,
                "a node has pulled past this hub's head; was the hub database restored from a backup?"
            );
        }
    }
    // A node ahead of the head waits too: answering it at once would turn its long-poll loop
    // into a busy loop until the hub's versions catch up.
    if params.since >= head && !params.wait.is_zero() {
        wait_for_news(&state, &node, params.since, params.wait).await;
    }
    let pull = state
        .store
        .pull(&node.property_id, Some(&node.site_id), params.since, params.limit)
        .await?;
    let body = tokio::task::spawn_blocking(move || protocol::encode(&pull))
        .await
        .map_err(ApiError::internal)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)),
            (header::CONTENT_ENCODING, HeaderValue::from_static(CONTENT_ENCODING)),
        ],
        body,
    )
        .into_response())
}

/// Waits until a version after `since` holds something for `node`, `wait` runs out, or the
/// hub shuts down — holding no database connection, only a watch receiver, so thousands of
/// nodes can wait at once. Versions with nothing for the node (another property's writes,
/// its own) do not end the wait when the store's memory says so: a thousand nodes answered
/// after every merge would keep the hub busy answering empty pulls. The answer after the wait
/// still reaches the head, so the node's cursor steps over them.
async fn wait_for_news(state: &HubState, node: &nodes::Node, since: i64, wait: Duration) {
    let _waiting = metrics::Waiting::start();
    let deadline = tokio::time::Instant::now() + wait;
    let mut head = state.store.subscribe();
    let mut shutdown = state.shutdown.clone();
    let mut seen = since;
    loop {
        tokio::select! {
            woke = tokio::time::timeout_at(deadline, head.wait_for(|h| *h > seen)) => {
                let Ok(Ok(version)) = woke else { return };
                let version = *version;
                let news =
                    state.store.has_news(&node.property_id, &node.site_id, since, version);
                if news != Some(false) {
                    return;
                }
                seen = version;
            }
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(since: Option<&str>, limit: Option<&str>, wait: Option<&str>) -> PullQuery {
        PullQuery {
            since: since.map(String::from),
            limit: limit.map(String::from),
            wait: wait.map(String::from),
        }
    }

    #[test]
    fn pull_parameters_default_and_refuse_out_of_range_values_by_name() {
        let p = PullParams::parse(&q(None, None, None)).expect("defaults");
        assert_eq!(p, PullParams { since: 0, limit: 5_000, wait: Duration::ZERO });
        let p = PullParams::parse(&q(Some("7"), Some("50000"), Some("30"))).expect("max");
        assert_eq!(p, PullParams { since: 7, limit: 50_000, wait: Duration::from_secs(30) });
        for (query, field) in [
            (q(Some("-1"), None, None), "since"),
            (q(Some("x"), None, None), "since"),
            (q(None, Some("0"), None), "limit"),
            (q(None, Some("50001"), None), "limit"),
            (q(None, None, Some("31")), "wait"),
        ] {
            let err = PullParams::parse(&query).expect_err("refused");
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
            assert!(err.to_string().contains(field), "{err} names {field}");
        }
    }
}
