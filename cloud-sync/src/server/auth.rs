//! The authenticated node as an extractor: a sync handler that takes an [`AuthNode`] cannot
//! run for anyone else. `Authorization: Bearer <node_id>.<secret>`, checked against the
//! database, a success remembered briefly (`nodes::CredentialCache`); a revocation drops it
//! when its notification arrives, so it takes effect at once.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use crdt::protocol::CREDENTIAL_PREFIX;
use serde_json::json;

use super::HubState;
use super::error::ApiError;
use super::metrics;
use crate::nodes::{self, Auth, Node};

/// The node making this request.
#[derive(Debug, Clone)]
pub struct AuthNode(pub Node);

impl FromRequestParts<HubState> for AuthNode {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &HubState) -> Result<Self, ApiError> {
        let Some(credential) = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix(CREDENTIAL_PREFIX))
            .map(str::trim)
        else {
            metrics::refused("unauthenticated");
            return Err(ApiError::unauthenticated(
                "send the node credential as `Authorization: Bearer <credential>`",
            ));
        };
        match nodes::authenticate_cached(state.store.pool(), &state.credentials, credential).await?
        {
            Auth::Node(node) => {
                if state.seen.allow(&node.id) {
                    // Off the request path: a failed last-seen write must not fail a sync.
                    let pool = state.store.pool().clone();
                    let id = node.id.clone();
                    tokio::spawn(async move {
                        if let Err(err) = nodes::touch(&pool, &id).await {
                            tracing::warn!(node_id = %id, error = %err, "failed to record last seen");
                        }
                    });
                }
                Ok(AuthNode(node))
            }
            Auth::Revoked(node) => {
                metrics::refused("node_revoked");
                if state.revoked_audit.allow(&node.id) {
                    let audited = nodes::audit_pool(
                        state.store.pool(),
                        nodes::EV_REVOKED_REFUSED,
                        Some(&node.id),
                        Some(&node.property_id),
                        json!({ "path": parts.uri.path() }),
                    )
                    .await;
                    if let Err(err) = audited {
                        tracing::warn!(node_id = %node.id, error = %err, "failed to audit a revoked node");
                    }
                }
                tracing::warn!(node_id = %node.id, "refused a revoked node");
                Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "node_revoked",
                    "this node's enrollment was revoked; enroll it again with a new token",
                ))
            }
            Auth::Unknown => {
                metrics::refused("unauthenticated");
                Err(ApiError::unauthenticated("the node credential is not valid"))
            }
        }
    }
}
