//! The waitlist: reservations taken when nothing was free, promoted to tentative (oldest
//! first) when a room of their type frees up for all their nights; and the expiry of
//! tentative holds (cancelled with reason `hold_expired`, which may in turn promote).

use rusqlite::{Connection, params};
use serde_json::json;

use super::inventory;
use super::states;
use super::store::{self, COLUMNS, Stay};
use crate::audit::{self, Actor, Entry};
use crate::db::Db;
use crate::http::error::ApiError;
use crate::property::access;

/// Promotes, oldest first, every waitlisted reservation of `room_type_id` at `property_id`
/// that now fits; records an event for each and returns their ids. Call it in the same
/// transaction as anything that frees inventory (cancel, no-show, shorter stay, a room added
/// or back in order).
pub fn promote_for_type(
    tx: &Connection,
    property_id: &str,
    room_type_id: &str,
    actor: &str,
    now: i64,
) -> Result<Vec<String>, ApiError> {
    let Some(settings) = access::settings(tx, property_id)? else { return Ok(Vec::new()) };
    let business = settings.business_date.to_string();
    let waiting: Vec<store::Reservation> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM reservations
             WHERE property_id = ?1 AND status = 'waitlisted' AND room_type_id = ?2
               AND arrival >= ?3
             ORDER BY waitlisted_at, id"
        ))?;
        let rows = stmt.query_map(params![property_id, room_type_id, business], store::from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut promoted = Vec::new();
    for r in waiting {
        let (arrival, departure) = (r.arrival_date(), r.departure_date());
        let inv = inventory::nights(tx, room_type_id, arrival, departure)?;
        if !inventory::full_nights(&inv).is_empty() {
            continue;
        }
        let stay = Stay {
            room_type_id: r.room_type_id.clone(),
            rate_plan_id: r.rate_plan_id.clone(),
            arrival,
            departure,
            adults: r.adults,
            children: r.children,
        };
        // Priced again at today's rates; a stay no longer priced stays on the waitlist.
        let Ok(price) = store::quote(tx, &settings, &stay, "", false) else { continue };
        store::hold(tx, &r.id, property_id, room_type_id, "", &price.nights)?;
        let hold_until = now + settings.tentative_hold_hours * 3_600_000;
        tx.prepare_cached(
            "UPDATE reservations SET status = 'tentative', hold_expires_at = ?2, updated_at = ?3,
                 total_minor = ?4, room_minor = ?5, vat_minor = ?6, city_tax_minor = ?7
             WHERE id = ?1",
        )?
        .execute(params![
            r.id,
            hold_until,
            now,
            price.total_minor,
            price.room_minor,
            price.vat_minor,
            price.city_tax_minor
        ])?;
        store::event(
            tx,
            &r,
            "promoted_from_waitlist",
            states::WAITLISTED,
            states::TENTATIVE,
            json!({ "hold_expires_at": crate::time::rfc3339(hold_until) }),
            actor,
            now,
        )?;
        promoted.push(r.id);
    }
    Ok(promoted)
}

/// Cancels, in the caller's transaction, every tentative reservation whose hold has expired
/// at `now` (at `property_id`, or everywhere when `None`), releasing its inventory and
/// promoting the waitlist. Returns their ids.
pub fn expire_holds_in_tx(
    tx: &Connection,
    property_id: Option<&str>,
    now: i64,
) -> Result<Vec<String>, ApiError> {
    let expired: Vec<store::Reservation> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM reservations
             WHERE status = 'tentative' AND hold_expires_at > 0 AND hold_expires_at <= ?1
               AND (?2 IS NULL OR property_id = ?2)
             ORDER BY hold_expires_at, id"
        ))?;
        let rows = stmt.query_map(params![now, property_id], store::from_row)?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut ids = Vec::with_capacity(expired.len());
    for r in expired {
        store::release(tx, &r.id, None)?;
        store::transition(
            tx,
            &r,
            states::CANCELLED,
            "cancelled",
            json!({ "reason": "hold_expired" }),
            "system",
            now,
        )?;
        audit::record(
            tx,
            Entry::new("reservation_cancelled", Actor::System)
                .subject(&r.id)
                .details(json!({ "reason": "hold_expired", "property_id": r.property_id })),
            now,
        )?;
        promote_for_type(tx, &r.property_id, &r.room_type_id, "system", now)?;
        ids.push(r.id);
    }
    Ok(ids)
}

/// Cancels every tentative reservation whose hold has expired at `now`, at every property
/// of the node. For a periodic task (and run by end of day); returns their ids.
pub async fn expire_holds(db: &Db, now: i64) -> Result<Vec<String>, ApiError> {
    db.write(move |tx| expire_holds_in_tx(tx, None, now)).await
}
