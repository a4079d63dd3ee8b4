//! `GET /sync/status`: where this node stands with the hub, for the front desk's "is the
//! cloud up to date?" and for monitoring (the same facts are `stayos_sync_*` metrics).
//! `GET /sync/quarantine`: the changes this node refused to merge, with their reasons
//! (owners and managers).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::config;
use super::guard;
use super::{QuarantineNote, StatusView};
use crate::auth::extract::Authorized;
use crate::auth::permissions::perm;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiQuery;
use crate::http::list::numeric_cursor;
use crate::state::AppState;
use crate::time::rfc3339;

/// How many of the newest quarantined changes `/sync/status` shows.
const STATUS_RECENT: u32 = 5;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status)).routes(routes!(quarantine))
}

/// The sync agent's state: `disabled` (not enrolled), `online`, `offline` (hub unreachable)
/// or `error` (the hub refused, see `last_error`); what is still to push and to pull; the
/// changes refused on the way in (`quarantined`, the newest in `quarantine_recent`) and the
/// ones the hub refused from this node (`hub_quarantined`). `pending_push` and the
/// quarantine are counted when asked; the rest is what the agent last saw.
#[utoipa::path(get, path = "/sync/status", tag = "sync", security(("bearer" = [])),
    responses(
        (status = 200, description = "The sync status", body = StatusView),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
async fn status(
    State(state): State<AppState>,
    Authorized(_principal, _): Authorized<perm::PropertyRead>,
) -> Result<Json<StatusView>, ApiError> {
    let mut view = state.sync.snapshot();
    let (pending, (quarantined, _), recent, hub_quarantined) = state
        .db
        .read(|conn| -> Result<_, ApiError> {
            let pending = match config::load(conn) {
                Ok(Some(link)) => Some(super::agent::pending_push(conn, &link.hub_site_id)?),
                _ => None,
            };
            Ok((
                pending,
                guard::total(conn)?,
                guard::entries(conn, None, STATUS_RECENT)?,
                guard::meta_count(conn, guard::HUB_QUARANTINED_KEY)?,
            ))
        })
        .await?;
    if let Some(pending) = pending {
        view.pending_push = pending;
    }
    view.quarantined = quarantined;
    view.quarantine_recent = recent
        .into_iter()
        .map(|e| QuarantineNote {
            at: rfc3339(e.received_at),
            source: e.source,
            table: e.table,
            reason: e.reason,
        })
        .collect();
    view.hub_quarantined = hub_quarantined;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QuarantineQuery {
    /// `next_cursor` of the previous page (entries are newest first).
    pub cursor: Option<String>,
    /// At most this many entries (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// One refused change.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantineEntryView {
    pub id: i64,
    /// When it was refused (RFC 3339).
    pub received_at: String,
    /// `hub` (a pull) or `file` (`stayos-edge changes import`).
    pub source: String,
    pub table: String,
    /// The row's key, its values as SQLite literals.
    pub pk: String,
    pub cid: String,
    /// `invalid`, `malformed`, `node_scope`, `other_property`, `unknown_property` or
    /// `own_site`.
    pub reason_kind: String,
    pub reason: String,
    /// The change as a changes-file line (the line itself when it could not be read).
    pub change: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuarantinePage {
    pub items: Vec<QuarantineEntryView>,
    /// Pass as `cursor` to get the next (older) page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// Changes quarantined in all, including those the cap of 10,000 dropped.
    pub total: u64,
    /// The oldest entries dropped by the cap.
    pub dropped: u64,
}

/// The changes this node refused to merge, newest first.
#[utoipa::path(get, path = "/sync/quarantine", tag = "sync", security(("bearer" = [])),
    params(QuarantineQuery),
    responses(
        (status = 200, description = "A page of quarantined changes", body = QuarantinePage),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an owner or manager", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    ))]
async fn quarantine(
    State(state): State<AppState>,
    _auth: Authorized<perm::PropertyManage>,
    ApiQuery(query): ApiQuery<QuarantineQuery>,
) -> Result<Json<QuarantinePage>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 500"));
    }
    let before = numeric_cursor(query.cursor.as_deref())?;
    let (rows, (total, dropped)) = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            Ok((guard::entries(conn, before, limit)?, guard::total(conn)?))
        })
        .await?;
    let next_cursor =
        (rows.len() == limit as usize).then(|| rows.last().map(|r| r.id.to_string())).flatten();
    let items = rows
        .into_iter()
        .map(|e| QuarantineEntryView {
            id: e.id,
            received_at: rfc3339(e.received_at),
            source: e.source,
            table: e.table,
            pk: e.pk,
            cid: e.cid,
            reason_kind: e.reason_kind,
            reason: e.reason,
            change: e.change,
        })
        .collect();
    Ok(Json(QuarantinePage { items, next_cursor, total, dropped }))
}
