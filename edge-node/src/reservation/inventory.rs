//! Inventory per room type and night: rooms, out of order, sold, and what is left.

use jiff::civil::Date;
use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::dates;

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

/// `room_type_id`'s inventory for each night of `[from, to)` (empty when `to <= from`).
/// Four cached queries: the type, its live rooms, its active out-of-order blocks overlapping
/// the range, and its sold counters.
pub fn nights(
    conn: &Connection,
    room_type_id: &str,
    from: Date,
    to: Date,
) -> rusqlite::Result<Vec<NightInventory>> {
    let days: Vec<Date> = dates::nights(from, to).collect();
    if days.is_empty() {
        return Ok(Vec::new());
    }
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let allowance: i64 = conn
        .prepare_cached("SELECT overbooking_allowance FROM room_types WHERE id = ?1")?
        .query_row([room_type_id], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let rooms: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM rooms WHERE room_type_id = ?1 AND deleted_at = 0")?
        .query_row([room_type_id], |r| r.get(0))?;
    let mut out: Vec<NightInventory> = days
        .iter()
        .map(|night| NightInventory {
            night: *night,
            rooms,
            out_of_order: 0,
            sold: 0,
            overbooking_allowance: allowance,
        })
        .collect();
    let index = |night: &str| -> Option<usize> {
        let d = night.parse::<Date>().ok()?;
        usize::try_from(dates::nights_between(from, d)).ok().filter(|i| *i < days.len())
    };
    let mut blocks = conn.prepare_cached(
        "SELECT b.room_id, b.from_date, b.to_date FROM room_blocks b
         JOIN rooms r ON r.id = b.room_id
         WHERE r.room_type_id = ?1 AND r.deleted_at = 0 AND b.kind = 'out_of_order'
           AND b.released_at = 0 AND b.from_date < ?3 AND b.to_date > ?2",
    )?;
    let mut ooo: Vec<Vec<String>> = vec![Vec::new(); days.len()];
    let rows = blocks.query_map(params![room_type_id, from_s, to_s], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
    })?;
    for row in rows {
        let (room, bfrom, bto) = row?;
        mark_block(&mut ooo, &room, &bfrom, &bto, from, days.len());
    }
    for (slot, rooms) in out.iter_mut().zip(ooo.iter()) {
        slot.out_of_order = rooms.len() as i64;
    }
    let mut sold = conn.prepare_cached(
        "SELECT night, sold FROM room_type_nights
         WHERE room_type_id = ?1 AND night >= ?2 AND night < ?3",
    )?;
    let rows = sold.query_map(params![room_type_id, from_s, to_s], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (night, n) = row?;
        if let Some(i) = index(&night) {
            out[i].sold = n;
        }
    }
    Ok(out)
}

/// Adds `room` to the out-of-order set of every night of `[bfrom, bto)` inside the range.
fn mark_block(ooo: &mut [Vec<String>], room: &str, bfrom: &str, bto: &str, from: Date, len: usize) {
    let (Ok(bf), Ok(bt)) = (bfrom.parse::<Date>(), bto.parse::<Date>()) else { return };
    let start = dates::nights_between(from, bf).max(0);
    let end = dates::nights_between(from, bt).min(len as i64);
    for i in start..end {
        let set = &mut ooo[i as usize];
        if !set.iter().any(|r| r == room) {
            set.push(room.to_string());
        }
    }
}

/// One room type of a property with its inventory over a range.
#[derive(Debug, Clone)]
pub struct TypeInventory {
    pub room_type_id: String,
    pub code: String,
    pub name: String,
    pub base_occupancy: i64,
    pub max_adults: i64,
    pub max_children: i64,
    pub max_occupancy: i64,
    pub nights: Vec<NightInventory>,
}

/// Every live room type of `property_id` with its inventory for each night of `[from, to)`:
/// one query per table for the whole range and all types (for availability).
pub fn property_nights(
    conn: &Connection,
    property_id: &str,
    from: Date,
    to: Date,
) -> rusqlite::Result<Vec<TypeInventory>> {
    let days: Vec<Date> = dates::nights(from, to).collect();
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let mut types: Vec<TypeInventory> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT t.id, t.code, t.name, t.base_occupancy, t.max_adults, t.max_children,
                    t.max_occupancy, t.overbooking_allowance,
                    (SELECT COUNT(*) FROM rooms r WHERE r.room_type_id = t.id AND r.deleted_at = 0)
             FROM room_types t WHERE t.property_id = ?1 AND t.deleted_at = 0
             ORDER BY t.sort_order, t.code",
        )?;
        let mut rows = stmt.query([property_id])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let allowance: i64 = r.get(7)?;
            let rooms: i64 = r.get(8)?;
            by_id.insert(id.clone(), types.len());
            types.push(TypeInventory {
                room_type_id: id,
                code: r.get(1)?,
                name: r.get(2)?,
                base_occupancy: r.get(3)?,
                max_adults: r.get(4)?,
                max_children: r.get(5)?,
                max_occupancy: r.get(6)?,
                nights: days
                    .iter()
                    .map(|night| NightInventory {
                        night: *night,
                        rooms,
                        out_of_order: 0,
                        sold: 0,
                        overbooking_allowance: allowance,
                    })
                    .collect(),
            });
        }
    }
    if days.is_empty() || types.is_empty() {
        return Ok(types);
    }
    {
        let mut ooo: Vec<Vec<Vec<String>>> = vec![vec![Vec::new(); days.len()]; types.len()];
        let mut stmt = conn.prepare_cached(
            "SELECT r.room_type_id, b.room_id, b.from_date, b.to_date FROM room_blocks b
             JOIN rooms r ON r.id = b.room_id
             WHERE b.property_id = ?1 AND b.to_date > ?2 AND b.from_date < ?3
               AND b.kind = 'out_of_order' AND b.released_at = 0 AND r.deleted_at = 0",
        )?;
        let mut rows = stmt.query(params![property_id, from_s, to_s])?;
        while let Some(r) = rows.next()? {
            let type_id: String = r.get(0)?;
            let Some(&t) = by_id.get(&type_id) else { continue };
            let room: String = r.get(1)?;
            let (bf, bt): (String, String) = (r.get(2)?, r.get(3)?);
            mark_block(&mut ooo[t], &room, &bf, &bt, from, days.len());
        }
        for (t, per_night) in ooo.iter().enumerate() {
            for (i, rooms) in per_night.iter().enumerate() {
                types[t].nights[i].out_of_order = rooms.len() as i64;
            }
        }
    }
    {
        let mut stmt = conn.prepare_cached(
            "SELECT n.room_type_id, n.night, n.sold FROM room_types t
             JOIN room_type_nights n ON n.room_type_id = t.id AND n.night >= ?2 AND n.night < ?3
             WHERE t.property_id = ?1 AND t.deleted_at = 0 AND n.sold != 0",
        )?;
        let mut rows = stmt.query(params![property_id, from_s, to_s])?;
        while let Some(r) = rows.next()? {
            let type_id: String = r.get(0)?;
            let Some(&t) = by_id.get(&type_id) else { continue };
            let night: String = r.get(1)?;
            let Ok(d) = night.parse::<Date>() else { continue };
            let i = dates::nights_between(from, d);
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| types[t].nights.get_mut(i)) {
                slot.sold = r.get(2)?;
            }
        }
    }
    Ok(types)
}

/// The nights of `inventory` with nothing left to sell (for a 409 `no_availability`).
pub fn full_nights(inventory: &[NightInventory]) -> Vec<String> {
    inventory.iter().filter(|n| n.available() < 1).map(|n| n.night.to_string()).collect()
}
