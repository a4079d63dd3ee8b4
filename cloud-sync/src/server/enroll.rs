//! `POST /v1/enroll`: a node trades a one-time token for its credential.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use crdt::protocol::{EnrollRequest, EnrollResponse};
use serde_json::json;

use super::HubState;
use super::error::ApiError;
use super::metrics;
use crate::nodes::{self, EnrollError};

/// Largest enrollment request body: a token, a site id, a property id and a label.
pub const ENROLL_BODY_LIMIT: usize = 16 * 1024;

pub async fn enroll(
    State(state): State<HubState>,
    body: Result<Json<EnrollRequest>, JsonRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let Json(req) = body.map_err(|rejection| {
        ApiError::new(rejection.status(), "invalid_body", rejection.body_text())
    })?;
    match nodes::enroll(state.store.pool(), &req).await {
        Ok(enrolled) => {
            tracing::info!(
                node_id = %enrolled.node_id,
                property_id = %enrolled.property_id,
                site_id = %req.site_id,
                "enrolled a node"
            );
            Ok(Json(EnrollResponse {
                node_id: enrolled.node_id,
                credential: enrolled.credential,
                property_id: enrolled.property_id,
                hub_site_id: hex::encode(state.store.hub_site_id()),
            }))
        }
        Err(err) => Err(refusal(err)),
    }
}

fn refusal(err: EnrollError) -> ApiError {
    let message = err.to_string();
    let (status, code) = match err {
        EnrollError::TokenInvalid => (StatusCode::UNAUTHORIZED, "token_invalid"),
        EnrollError::TokenUsed => (StatusCode::UNAUTHORIZED, "token_used"),
        EnrollError::TokenExpired => (StatusCode::UNAUTHORIZED, "token_expired"),
        EnrollError::PropertyMismatch { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, "property_mismatch")
        }
        EnrollError::BadRequest { field, reason } => {
            metrics::refused("enroll_invalid");
            return ApiError::invalid_field(field, reason);
        }
        EnrollError::SiteEnrolled(site) => {
            metrics::refused("site_enrolled");
            return ApiError::new(StatusCode::CONFLICT, "site_enrolled", message)
                .with_details(json!({ "site_id": site }));
        }
        EnrollError::Hub(hub) => return hub.into(),
    };
    metrics::refused(code);
    ApiError::new(status, code, message)
}
