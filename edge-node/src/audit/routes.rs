//! Reading and verifying the audit log over HTTP (owners and auditors).
//!
//! A reader sees the entries of the properties they belong to. Node-level entries (logins,
//! staff accounts, API keys) are filed under the property the node serves, so whoever may
//! read that property's log reads them; the few filed under no property (`''`: a node that
//! is not enrolled and holds several properties, or entries older than the property
//! column) are for owners only.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, VerifyReport, Visible};
use crate::auth::extract::Authorized;
use crate::auth::permissions::{Role, perm};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiQuery;
use crate::http::list::{Page, numeric_cursor};
use crate::property::access;
use crate::state::AppState;
use crate::time::rfc3339;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit)).routes(routes!(verify))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// `next_cursor` of the previous page (entries are newest first).
    pub cursor: Option<String>,
    /// Only this event, e.g. `login_failed`.
    pub event: Option<String>,
    /// At most this many entries (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Only entries of this property (one you belong to).
    #[param(min_length = 1, format = "stayos:non-blank")]
    pub property_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    pub seq: i64,
    pub id: String,
    pub at: String,
    /// The property the entry is filed under (`null` for node-level entries of a node that
    /// serves no single property).
    pub property_id: Option<String>,
    pub event: String,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub subject_id: Option<String>,
    pub ip: Option<String>,
    pub details: serde_json::Value,
    pub hash: String,
}

/// Audit entries of the properties you belong to, newest first.
#[utoipa::path(get, path = "/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = Page<AuditEntryView>),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    ))]
async fn list_audit(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::AuditRead>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditEntryView>>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 500"));
    }
    let visible = match query.property_id.as_deref().map(str::trim) {
        Some("") => return Err(ApiError::invalid_field("property_id", "must not be empty")),
        Some(id) => {
            access::ensure(&principal, id)?;
            Visible { properties: vec![id.to_string()], node_level: false }
        }
        None => Visible {
            properties: principal.properties.clone(),
            node_level: principal.role == Role::Owner,
        },
    };
    let before = numeric_cursor(query.cursor.as_deref())?;
    let rows = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            Ok(store::page(conn, before, query.event.as_deref(), &visible, limit)?)
        })
        .await?;
    let next_cursor =
        (rows.len() == limit as usize).then(|| rows.last().map(|r| r.seq.to_string())).flatten();
    let entries = rows
        .into_iter()
        .map(|r| AuditEntryView {
            seq: r.seq,
            id: r.id,
            at: rfc3339(r.at),
            property_id: crate::http::wire::text(&r.property_id),
            event: r.event,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            subject_id: r.subject_id,
            ip: r.ip,
            details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            hash: r.hash,
        })
        .collect();
    Ok(Json(Page::new(entries, next_cursor)))
}

/// Walk the whole hash chain and report whether it is intact: every keyed entry's HMAC, the
/// links, and that the chain still holds the newest entry the hub stored (`anchor`).
#[utoipa::path(get, path = "/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "The verification result", body = VerifyReport)))]
async fn verify(
    State(state): State<AppState>,
    _auth: Authorized<perm::AuditRead>,
) -> Result<Json<VerifyReport>, ApiError> {
    Ok(Json(state.db.read(|conn| -> Result<_, ApiError> { Ok(store::verify(conn)?) }).await?))
}
