//! SQL of room statuses. Other domains change a room's status through `set_status` (check-out
//! makes a room dirty), so every change leaves an event.

use rusqlite::{Connection, OptionalExtension, params};

/// The statuses a room can have.
pub const STATUSES: [&str; 5] = ["clean", "dirty", "inspected", "out_of_order", "out_of_service"];

/// Sets `room_id`'s status to `to` and records the change; returns the previous status, or
/// `None` when there is no such room. No event when the status does not change.
pub fn set_status(
    tx: &Connection,
    room_id: &str,
    to: &str,
    note: &str,
    actor: &str,
    now: i64,
) -> rusqlite::Result<Option<String>> {
    let current: Option<(String, String)> = tx
        .prepare_cached("SELECT status, property_id FROM rooms WHERE id = ?1 AND deleted_at = 0")?
        .query_row([room_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((from, property_id)) = current else { return Ok(None) };
    if from != to {
        tx.prepare_cached(
            "UPDATE rooms SET status = ?2, status_note = ?3, status_at = ?4, updated_at = ?4
             WHERE id = ?1",
        )?
        .execute(params![room_id, to, note, now])?;
        tx.prepare_cached(
            "INSERT INTO room_status_events (id, property_id, room_id, from_status, to_status,
                 note, actor, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            uuid::Uuid::now_v7().to_string(),
            property_id,
            room_id,
            from,
            to,
            note,
            actor,
            now
        ])?;
    }
    Ok(Some(from))
}
