//! `/health` (the process answers), `/ready` (and its database does), `/metrics`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::HubState;
use super::error::ApiError;

/// How long `/ready` waits for PostgreSQL before calling the hub not ready. Short, so a load
/// balancer's probe gets a quick answer when the database is gone.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn ready(State(state): State<HubState>) -> Result<Json<Value>, ApiError> {
    let pool = state.store.pool().clone();
    let check = async move {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        client.query_one("SELECT 1", &[]).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let unavailable = |why: String| {
        tracing::warn!(reason = %why, "not ready");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the hub cannot reach its database",
        )
    };
    match tokio::time::timeout(READY_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready", "head": state.store.head() }))),
        Ok(Err(why)) => Err(unavailable(why)),
        Err(_) => Err(unavailable(format!("no answer within {READY_TIMEOUT:?}"))),
    }
}

pub async fn metrics(State(state): State<HubState>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))],
        state.metrics.render(),
    )
        .into_response()
}
