//! Operational endpoints: liveness, readiness and Prometheus metrics. These are public: a
//! load balancer or monitoring agent calls them without credentials, and they reveal nothing
//! about guests or staff.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use crate::db::migrations;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: the process is up and answering.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    pub status: &'static str,
    pub schema_version: usize,
    pub property_id: String,
}

/// Readiness: the database answers and its schema is the one this binary expects.
#[utoipa::path(get, path = "/ready", tag = "ops", responses(
    (status = 200, body = Ready),
    (status = 503, description = "Database unreachable or schema not current", body = ErrorBody),
))]
async fn ready(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    let version = state
        .db
        .read(|conn| -> Result<_, ApiError> { Ok(migrations::current_version(conn)?) })
        .await
        .map_err(|err| {
            tracing::warn!(error = %err, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "the database is not reachable",
            )
        })?;
    if version != migrations::latest_version() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("schema version {version}, expected {}", migrations::latest_version()),
        ));
    }
    Ok(Json(Ready {
        status: "ready",
        schema_version: version,
        property_id: state.node.property_id.clone(),
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
