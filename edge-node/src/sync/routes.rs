//! `GET /sync/status`: where this node stands with the hub, for the front desk's "is the
//! cloud up to date?" and for monitoring (the same facts are `stayos_sync_*` metrics).

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::StatusView;
use super::config;
use crate::auth::extract::Authorized;
use crate::auth::permissions::perm;
use crate::http::error::{ApiError, ErrorBody};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// The sync agent's state: `disabled` (not enrolled), `online`, `offline` (hub unreachable)
/// or `error` (the hub refused, see `last_error`); what is still to push and to pull.
/// `pending_push` is counted when asked; the rest is what the agent last saw.
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
    let pending = state
        .db
        .read(|conn| -> Result<_, ApiError> {
            let Ok(Some(link)) = config::load(conn) else { return Ok(None) };
            Ok(Some(super::agent::pending_push(conn, &link.hub_site_id)?))
        })
        .await?;
    if let Some(pending) = pending {
        view.pending_push = pending;
    }
    Ok(Json(view))
}
