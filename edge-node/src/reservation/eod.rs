//! End of day (night audit): `POST /properties/{id}/end-of-day` closes the business date in
//! one transaction. It refuses (409 `departures_pending`, listing them) while a checked-in
//! guest due to depart on or before the business date has not checked out; otherwise it marks
//! no-show every tentative or confirmed reservation arriving on or before the business date
//! (with the rate plan's no-show fee), cancels expired tentative holds, cancels waitlisted
//! reservations whose arrival has come (reason `waitlist_expired`), advances the business
//! date by one day, brings room statuses in line with their blocks on the new date
//! (housekeeping's `sync_block_statuses`), and audits what it did.

use axum::Json;
use axum::extract::State;
use rusqlite::params;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::states;
use super::store::{self, COLUMNS, FeeFor};
use super::waitlist;
use crate::audit::{self, Entry};
use crate::auth::extract::Authorized;
use crate::auth::permissions::perm;
use crate::dates;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiPath;
use crate::property::access;
use crate::state::AppState;
use crate::time::now_ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(end_of_day))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NoShow {
    pub id: String,
    pub confirmation_code: String,
    pub guest_name: String,
    pub fee_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndOfDayReport {
    pub property_id: String,
    /// The business date that was closed.
    pub closed_date: String,
    /// The new business date.
    pub business_date: String,
    pub no_shows: Vec<NoShow>,
    /// Tentative reservations cancelled because their hold had expired.
    pub expired_holds: Vec<String>,
    /// Waitlisted reservations cancelled because their arrival came without a room.
    pub waitlist_expired: Vec<String>,
    /// Rooms whose housekeeping status followed their out-of-order / out-of-service blocks
    /// on the new business date.
    pub rooms_status_changed: Vec<String>,
}

/// Close the business day: no-shows, expired holds, then the next business date.
#[utoipa::path(post, path = "/properties/{id}/end-of-day", tag = "reservations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses(
        (status = 200, description = "What end of day did", body = EndOfDayReport),
        (status = 409, description = "`departures_pending`: guests due out are still checked in", body = ErrorBody),
    ))]
async fn end_of_day(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::EndOfDay>,
    ApiPath(property_id): ApiPath<String>,
) -> Result<Json<EndOfDayReport>, ApiError> {
    access::ensure(&principal, &property_id)?;
    let actor = principal.actor();
    let label = actor.label();
    let now = now_ms();
    let report = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let settings = access::settings(tx, &property_id)?
                .ok_or_else(|| ApiError::not_found("property"))?;
            let bd = settings.business_date.to_string();
            let pending: Vec<serde_json::Value> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT r.id, r.confirmation_code, r.guest_name, r.departure,
                            COALESCE(m.number, '')
                     FROM reservations r LEFT JOIN rooms m ON m.id = r.room_id
                     WHERE r.property_id = ?1 AND r.status = 'checked_in' AND r.departure <= ?2
                     ORDER BY m.number",
                )?;
                let rows = stmt.query_map(params![property_id, bd], |r| {
                    Ok(json!({
                        "id": r.get::<_, String>(0)?,
                        "confirmation_code": r.get::<_, String>(1)?,
                        "guest_name": r.get::<_, String>(2)?,
                        "departure": r.get::<_, String>(3)?,
                        "room_number": r.get::<_, String>(4)?,
                    }))
                })?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            if !pending.is_empty() {
                return Err(ApiError::conflict(
                    "departures_pending",
                    format!(
                        "{} checked-in guest(s) due to depart by {bd} have not checked out",
                        pending.len()
                    ),
                )
                .with_details(json!({ "business_date": bd, "reservations": pending })));
            }
            let arriving: Vec<store::Reservation> = {
                let mut stmt = tx.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM reservations
                     WHERE property_id = ?1 AND status IN ('tentative', 'confirmed', 'waitlisted')
                       AND arrival <= ?2 ORDER BY arrival, id"
                ))?;
                let rows = stmt.query_map(params![property_id, bd], store::from_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut no_shows = Vec::new();
            let mut waitlist_expired = Vec::new();
            let mut types = Vec::new();
            for r in arriving {
                if r.status == states::WAITLISTED {
                    store::transition(
                        tx,
                        &r,
                        states::CANCELLED,
                        "cancelled",
                        json!({ "reason": "waitlist_expired" }),
                        &label,
                        now,
                    )?;
                    waitlist_expired.push(r.id);
                    continue;
                }
                let fee = store::fee(tx, &settings, &r, now, FeeFor::NoShow)?;
                store::release(tx, &r.id, None)?;
                tx.prepare_cached(
                    "UPDATE reservations SET cancellation_fee_minor = ?2, hold_expires_at = 0
                     WHERE id = ?1",
                )?
                .execute(params![r.id, fee])?;
                store::transition(
                    tx,
                    &r,
                    states::NO_SHOW,
                    "no_show",
                    json!({ "fee_minor": fee, "by": "end_of_day" }),
                    &label,
                    now,
                )?;
                if !types.contains(&r.room_type_id) {
                    types.push(r.room_type_id.clone());
                }
                no_shows.push(NoShow {
                    id: r.id,
                    confirmation_code: r.confirmation_code,
                    guest_name: r.guest_name,
                    fee_minor: fee,
                });
            }
            for t in &types {
                waitlist::promote_for_type(tx, &property_id, t, &label, now)?;
            }
            let expired_holds = waitlist::expire_holds_in_tx(tx, Some(&property_id), now)?;
            let next = dates::next_day(settings.business_date).to_string();
            tx.prepare_cached(
                "UPDATE properties SET business_date = ?2, updated_at = ?3 WHERE id = ?1",
            )?
            .execute(params![property_id, next, now])?;
            let rooms_changed = crate::housekeeping::store::sync_block_statuses(
                tx,
                &property_id,
                &next,
                &label,
                now,
            )?;
            let report = EndOfDayReport {
                rooms_status_changed: rooms_changed,
                property_id: property_id.clone(),
                closed_date: bd,
                business_date: next,
                no_shows,
                expired_holds,
                waitlist_expired,
            };
            audit::record(
                tx,
                Entry::new("end_of_day", actor)
                    .subject(&property_id)
                    .property(&property_id)
                    .details(serde_json::to_value(&report).unwrap_or_default()),
                now,
            )?;
            Ok(report)
        })
        .await?;
    Ok(Json(report))
}
