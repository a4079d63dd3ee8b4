//! Reading and verifying the audit log over HTTP (owners and auditors).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, VerifyReport};
use crate::auth::extract::Authorized;
use crate::auth::permissions::perm;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiQuery;
use crate::state::AppState;
use crate::time::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(verify))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries with a sequence number below this (for paging backwards).
    pub before: Option<i64>,
    /// Only this event, e.g. `login_failed`.
    pub event: Option<String>,
    /// At most this many entries (1 to 500, default 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub id: String,
    pub at: String,
    pub event: String,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub ip: Option<String>,
    pub details: serde_json::Value,
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntryView>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Audit entries, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    _auth: Authorized<perm::AuditRead>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 500"));
    }
    let rows = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            Ok(store::page(conn, query.before, query.event.as_deref(), limit)?)
        })
        .await?;
    let next_before = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.seq)).flatten();
    let entries = rows
        .into_iter()
        .map(|r| AuditEntryView {
            seq: r.seq,
            id: r.id,
            at: rfc3339(r.at),
            event: r.event,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            subject_id: r.subject_id,
            ip: r.ip,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            hash: r.hash,
        })
        .collect();
    Ok(Json(AuditPage { entries, next_before }))
}

/// Walk the whole hash chain and report whether it is intact.
#[utoipa::path(get, path = "/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "The verification result", body = VerifyReport)))]
async fn verify(
    State(state): State<AppState>,
    _auth: Authorized<perm::AuditRead>,
) -> Result<Json<VerifyReport>, ApiError> {
    Ok(Json(state.db.read(|conn| -> Result<_, ApiError> { Ok(store::verify(conn)?) }).await?))
}
