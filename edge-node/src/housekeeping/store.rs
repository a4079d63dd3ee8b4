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

/// A room as the board and the status route show it.
#[derive(Debug, Clone)]
pub struct RoomRow {
    pub id: String,
    pub number: String,
    pub floor: String,
    pub room_type_id: String,
    pub room_type_code: String,
    pub status: String,
    pub status_note: String,
    pub status_at: i64,
}

const ROOM_COLUMNS: &str = "r.id, r.number, r.floor, r.room_type_id, COALESCE(t.code, ''),
    r.status, r.status_note, r.status_at
    FROM rooms r LEFT JOIN room_types t ON t.id = r.room_type_id";

fn room_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoomRow> {
    Ok(RoomRow {
        id: r.get(0)?,
        number: r.get(1)?,
        floor: r.get(2)?,
        room_type_id: r.get(3)?,
        room_type_code: r.get(4)?,
        status: r.get(5)?,
        status_note: r.get(6)?,
        status_at: r.get(7)?,
    })
}

/// The live rooms of a property, by number.
pub fn rooms(conn: &Connection, property_id: &str) -> rusqlite::Result<Vec<RoomRow>> {
    let sql = format!(
        "SELECT {ROOM_COLUMNS} WHERE r.property_id = ?1 AND r.deleted_at = 0
         ORDER BY length(r.number), r.number"
    );
    conn.prepare_cached(&sql)?.query_map([property_id], room_row)?.collect()
}

/// One live room of a property.
pub fn room(
    conn: &Connection,
    property_id: &str,
    room_id: &str,
) -> rusqlite::Result<Option<RoomRow>> {
    let sql = format!(
        "SELECT {ROOM_COLUMNS} WHERE r.id = ?1 AND r.property_id = ?2 AND r.deleted_at = 0"
    );
    conn.prepare_cached(&sql)?.query_row([room_id, property_id], room_row).optional()
}

/// A stay touching the board today: in house (checked in) or arriving today with a room.
#[derive(Debug, Clone)]
pub struct StayRow {
    pub reservation_id: String,
    pub room_id: String,
    pub status: String,
    pub arrival: String,
    pub departure: String,
    pub guest_name: String,
}

/// Checked-in reservations with a room, and reservations arriving on `today` with a room.
pub fn stays_today(
    conn: &Connection,
    property_id: &str,
    today: &str,
) -> rusqlite::Result<Vec<StayRow>> {
    conn.prepare_cached(
        "SELECT id, room_id, status, arrival, departure, guest_name FROM reservations
         WHERE property_id = ?1 AND status = 'checked_in' AND room_id != ''
         UNION ALL
         SELECT id, room_id, status, arrival, departure, guest_name FROM reservations
         WHERE property_id = ?1 AND arrival = ?2 AND status IN ('tentative', 'confirmed')
           AND room_id != ''",
    )?
    .query_map([property_id, today], |r| {
        Ok(StayRow {
            reservation_id: r.get(0)?,
            room_id: r.get(1)?,
            status: r.get(2)?,
            arrival: r.get(3)?,
            departure: r.get(4)?,
            guest_name: r.get(5)?,
        })
    })?
    .collect()
}

/// An out-of-order or out-of-service block.
#[derive(Debug, Clone)]
pub struct BlockRow {
    pub id: String,
    pub room_id: String,
    pub room_number: String,
    pub room_type_id: String,
    pub kind: String,
    pub from_date: String,
    pub to_date: String,
    pub reason: String,
    pub created_by: String,
    pub created_at: i64,
    pub released_at: i64,
}

const BLOCK_COLUMNS: &str = "b.id, b.room_id, COALESCE(r.number, ''), COALESCE(r.room_type_id, ''),
    b.kind, b.from_date, b.to_date, b.reason, b.created_by, b.created_at, b.released_at
    FROM room_blocks b LEFT JOIN rooms r ON r.id = b.room_id";

fn block_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRow> {
    Ok(BlockRow {
        id: r.get(0)?,
        room_id: r.get(1)?,
        room_number: r.get(2)?,
        room_type_id: r.get(3)?,
        kind: r.get(4)?,
        from_date: r.get(5)?,
        to_date: r.get(6)?,
        reason: r.get(7)?,
        created_by: r.get(8)?,
        created_at: r.get(9)?,
        released_at: r.get(10)?,
    })
}

/// Unreleased blocks of a property overlapping the nights `[from, to)`, by start date.
pub fn blocks(
    conn: &Connection,
    property_id: &str,
    from: &str,
    to: &str,
) -> rusqlite::Result<Vec<BlockRow>> {
    let sql = format!(
        "SELECT {BLOCK_COLUMNS} WHERE b.property_id = ?1 AND b.released_at = 0
           AND b.to_date > ?2 AND b.from_date < ?3
         ORDER BY b.from_date, r.number"
    );
    conn.prepare_cached(&sql)?.query_map([property_id, from, to], block_row)?.collect()
}

/// One block of a property (released or not).
pub fn block(
    conn: &Connection,
    property_id: &str,
    block_id: &str,
) -> rusqlite::Result<Option<BlockRow>> {
    let sql = format!("SELECT {BLOCK_COLUMNS} WHERE b.id = ?1 AND b.property_id = ?2");
    conn.prepare_cached(&sql)?.query_row([block_id, property_id], block_row).optional()
}

/// The first unreleased block of `room_id` overlapping `[from, to)`.
pub fn overlapping_block(
    conn: &Connection,
    room_id: &str,
    from: &str,
    to: &str,
) -> rusqlite::Result<Option<BlockRow>> {
    let sql = format!(
        "SELECT {BLOCK_COLUMNS} WHERE b.room_id = ?1 AND b.released_at = 0
           AND b.to_date > ?2 AND b.from_date < ?3 ORDER BY b.from_date LIMIT 1"
    );
    conn.prepare_cached(&sql)?.query_row([room_id, from, to], block_row).optional()
}

/// The first reservation arriving or in house (tentative, confirmed, checked in) that holds
/// `room_id` on a night of `[from, to)`: (reservation id, night).
pub fn room_in_use(
    conn: &Connection,
    room_id: &str,
    from: &str,
    to: &str,
) -> rusqlite::Result<Option<(String, String)>> {
    conn.prepare_cached(
        "SELECT rn.reservation_id, rn.night FROM room_nights rn
           JOIN reservations res ON res.id = rn.reservation_id
         WHERE rn.room_id = ?1 AND rn.night >= ?2 AND rn.night < ?3
           AND res.status IN ('tentative', 'confirmed', 'checked_in')
         ORDER BY rn.night LIMIT 1",
    )?
    .query_row([room_id, from, to], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// The first night of `[from, to)` on which taking one more room of `room_type_id` out of
/// order would leave fewer sellable rooms than are sold: (night, sold, capacity after).
pub fn would_oversell(
    conn: &Connection,
    room_type_id: &str,
    from: &str,
    to: &str,
) -> rusqlite::Result<Option<(String, i64, i64)>> {
    let (rooms, allowance): (i64, i64) = conn
        .prepare_cached(
            "SELECT (SELECT COUNT(*) FROM rooms WHERE room_type_id = ?1 AND deleted_at = 0),
                    COALESCE((SELECT overbooking_allowance FROM room_types WHERE id = ?1), 0)",
        )?
        .query_row([room_type_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let ooo: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT b.from_date, b.to_date FROM room_blocks b JOIN rooms r ON r.id = b.room_id
             WHERE r.room_type_id = ?1 AND r.deleted_at = 0 AND b.kind = 'out_of_order'
               AND b.released_at = 0 AND b.to_date > ?2 AND b.from_date < ?3",
        )?
        .query_map([room_type_id, from, to], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut sold = conn.prepare_cached(
        "SELECT night, sold FROM room_type_nights
         WHERE room_type_id = ?1 AND night >= ?2 AND night < ?3 AND sold > 0 ORDER BY night",
    )?;
    let mut rows = sold.query([room_type_id, from, to])?;
    while let Some(row) = rows.next()? {
        let night: String = row.get(0)?;
        let sold: i64 = row.get(1)?;
        let out = ooo
            .iter()
            .filter(|(f, t)| f.as_str() <= night.as_str() && night.as_str() < t.as_str())
            .count() as i64;
        let capacity = rooms - out - 1 + allowance;
        if sold > capacity {
            return Ok(Some((night, sold, capacity)));
        }
    }
    Ok(None)
}

/// Inserts a block; returns its id.
#[allow(clippy::too_many_arguments)]
pub fn insert_block(
    tx: &Connection,
    property_id: &str,
    room_id: &str,
    kind: &str,
    from: &str,
    to: &str,
    reason: &str,
    actor: &str,
    now: i64,
) -> rusqlite::Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    tx.prepare_cached(
        "INSERT INTO room_blocks (id, property_id, room_id, kind, from_date, to_date, reason,
             created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![id, property_id, room_id, kind, from, to, reason, actor, now])?;
    Ok(id)
}

/// Marks a block released at `now`.
pub fn release_block(tx: &Connection, block_id: &str, now: i64) -> rusqlite::Result<()> {
    tx.prepare_cached("UPDATE room_blocks SET released_at = ?2 WHERE id = ?1")?
        .execute(params![block_id, now])?;
    Ok(())
}

/// Brings rooms' statuses in line with the blocks on `business_date` (call it after the
/// business date moves, e.g. at end of day): a room whose out-of-order or out-of-service block
/// begins holding gets that status; a room still marked so whose block no longer holds becomes
/// dirty. Returns the rooms changed.
pub fn sync_block_statuses(
    tx: &Connection,
    property_id: &str,
    business_date: &str,
    actor: &str,
    now: i64,
) -> rusqlite::Result<Vec<String>> {
    let rows: Vec<(String, String, Option<String>, String)> = tx
        .prepare_cached(
            "SELECT r.id, r.status,
                    (SELECT b.kind FROM room_blocks b WHERE b.room_id = r.id AND b.released_at = 0
                       AND b.from_date <= ?2 AND ?2 < b.to_date ORDER BY b.kind LIMIT 1),
                    COALESCE((SELECT b.reason FROM room_blocks b WHERE b.room_id = r.id
                       AND b.released_at = 0 AND b.from_date <= ?2 AND ?2 < b.to_date
                       ORDER BY b.kind LIMIT 1), '')
             FROM rooms r WHERE r.property_id = ?1 AND r.deleted_at = 0",
        )?
        .query_map(params![property_id, business_date], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut changed = Vec::new();
    for (room_id, status, kind, reason) in rows {
        let target = match (&kind, status.as_str()) {
            (Some(kind), current) if current != kind => Some((kind.as_str(), reason.as_str())),
            (None, "out_of_order" | "out_of_service") => Some(("dirty", "block ended")),
            _ => None,
        };
        if let Some((to, note)) = target {
            set_status(tx, &room_id, to, note, actor, now)?;
            changed.push(room_id);
        }
    }
    Ok(changed)
}
