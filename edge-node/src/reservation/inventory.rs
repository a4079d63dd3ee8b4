//! Inventory per room type and night: rooms, out of order, sold, and what is left.

use jiff::civil::Date;
use rusqlite::Connection;

/// One room type's inventory on one night.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NightInventory {
    pub night: Date,
    /// Rooms of the type (not deleted).
    pub rooms: i64,
    /// Rooms of the type out of order that night (out of inventory).
    pub out_of_order: i64,
    /// Rooms sold that night (reservations holding inventory).
    pub sold: i64,
    /// How far the type may be sold beyond its rooms.
    pub overbooking_allowance: i64,
}

impl NightInventory {
    /// Rooms that can still be sold (negative when oversold, e.g. after a room broke).
    pub fn available(&self) -> i64 {
        self.rooms - self.out_of_order + self.overbooking_allowance - self.sold
    }
}

/// `room_type_id`'s inventory for each night of `[from, to)`.
pub fn nights(
    conn: &Connection,
    room_type_id: &str,
    from: Date,
    to: Date,
) -> rusqlite::Result<Vec<NightInventory>> {
    let _ = (conn, room_type_id, from, to);
    Ok(Vec::new())
}
