//! SQL of reservations: loading and showing them, quoting a stay (validation, rate plan,
//! restrictions, price), holding and releasing inventory, room-night claims, events, fees.
//!
//! Inventory invariant kept here: a reservation in tentative, confirmed, checked_in or
//! checked_out has one `reservation_nights` row per night, counted in `room_type_nights.sold`,
//! and, when it has a room, one `room_nights` row per night. `hold` checks availability and
//! writes all of them in the caller's transaction; `release` removes them.

use jiff::civil::Date;
use rand::Rng as _;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::inventory;
use super::pricing::{self, Breakdown, NightPrice, Occupancy};
use super::states;
use crate::dates;
use crate::http::error::ApiError;
use crate::property::access::Settings;
use crate::time::rfc3339;

/// The longest stay a reservation may have, in nights.
pub const MAX_STAY_NIGHTS: i64 = 365;

/// A reservation row.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub id: String,
    pub property_id: String,
    pub group_id: String,
    pub confirmation_code: String,
    pub status: String,
    pub room_type_id: String,
    pub room_id: String,
    pub rate_plan_id: String,
    pub arrival: String,
    pub departure: String,
    pub adults: i64,
    pub children: i64,
    pub guest_id: String,
    pub guest_name: String,
    pub currency: String,
    pub total_minor: i64,
    pub room_minor: i64,
    pub vat_minor: i64,
    pub city_tax_minor: i64,
    pub cancellation_fee_minor: i64,
    pub hold_expires_at: i64,
    pub notes: String,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub confirmed_at: i64,
    pub checked_in_at: i64,
    pub checked_out_at: i64,
    pub cancelled_at: i64,
    pub waitlisted_at: i64,
}

pub const COLUMNS: &str = "id, property_id, group_id, confirmation_code, status, room_type_id,
    room_id, rate_plan_id, arrival, departure, adults, children, guest_id, guest_name, currency,
    total_minor, room_minor, vat_minor, city_tax_minor, cancellation_fee_minor, hold_expires_at,
    notes, created_by, created_at, updated_at, confirmed_at, checked_in_at, checked_out_at,
    cancelled_at, waitlisted_at";

pub fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Reservation> {
    Ok(Reservation {
        id: r.get(0)?,
        property_id: r.get(1)?,
        group_id: r.get(2)?,
        confirmation_code: r.get(3)?,
        status: r.get(4)?,
        room_type_id: r.get(5)?,
        room_id: r.get(6)?,
        rate_plan_id: r.get(7)?,
        arrival: r.get(8)?,
        departure: r.get(9)?,
        adults: r.get(10)?,
        children: r.get(11)?,
        guest_id: r.get(12)?,
        guest_name: r.get(13)?,
        currency: r.get(14)?,
        total_minor: r.get(15)?,
        room_minor: r.get(16)?,
        vat_minor: r.get(17)?,
        city_tax_minor: r.get(18)?,
        cancellation_fee_minor: r.get(19)?,
        hold_expires_at: r.get(20)?,
        notes: r.get(21)?,
        created_by: r.get(22)?,
        created_at: r.get(23)?,
        updated_at: r.get(24)?,
        confirmed_at: r.get(25)?,
        checked_in_at: r.get(26)?,
        checked_out_at: r.get(27)?,
        cancelled_at: r.get(28)?,
        waitlisted_at: r.get(29)?,
    })
}

impl Reservation {
    pub fn arrival_date(&self) -> Date {
        self.arrival.parse().unwrap_or_default()
    }

    pub fn departure_date(&self) -> Date {
        self.departure.parse().unwrap_or_default()
    }
}

pub fn load(conn: &Connection, id: &str) -> rusqlite::Result<Option<Reservation>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM reservations WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// The reservation `id` if it is at one of `properties`; 404 otherwise (a caller does not
/// learn whether another property's reservation exists).
pub fn load_for(
    conn: &Connection,
    properties: &[String],
    id: &str,
) -> Result<Reservation, ApiError> {
    match load(conn, id)? {
        Some(r) if properties.contains(&r.property_id) => Ok(r),
        _ => Err(ApiError::not_found("reservation")),
    }
}

/// A reservation as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReservationView {
    pub id: String,
    pub property_id: String,
    /// null for a single reservation.
    pub group_id: Option<String>,
    pub confirmation_code: String,
    /// tentative, confirmed, checked_in, checked_out, cancelled, no_show, waitlisted.
    #[schema(value_type = crate::vocabulary::ReservationStatus)]
    pub status: String,
    pub room_type_id: String,
    /// null when no room is assigned.
    pub room_id: Option<String>,
    pub room_number: Option<String>,
    pub rate_plan_id: String,
    pub arrival: String,
    pub departure: String,
    pub adults: i64,
    pub children: i64,
    pub guest_id: String,
    pub guest_name: String,
    pub notes: Option<String>,
    /// When a tentative hold lapses (RFC 3339), if it is tentative.
    pub hold_expires_at: Option<String>,
    pub cancellation_fee_minor: i64,
    /// The price; `nights` is empty in lists and for reservations holding no inventory.
    pub price: Breakdown,
    pub allowed_actions: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub confirmed_at: Option<String>,
    pub checked_in_at: Option<String>,
    pub checked_out_at: Option<String>,
    pub cancelled_at: Option<String>,
    pub waitlisted_at: Option<String>,
}

fn opt_time(ms: i64) -> Option<String> {
    (ms > 0).then(|| rfc3339(ms))
}

/// The view of `r`; with its nightly prices when `with_nights`.
pub fn view(
    conn: &Connection,
    r: Reservation,
    with_nights: bool,
) -> rusqlite::Result<ReservationView> {
    let nights = if with_nights { night_prices(conn, &r.id)? } else { Vec::new() };
    let room_number = if r.room_id.is_empty() {
        String::new()
    } else {
        conn.prepare_cached("SELECT number FROM rooms WHERE id = ?1")?
            .query_row([&r.room_id], |row| row.get(0))
            .optional()?
            .unwrap_or_default()
    };
    Ok(ReservationView {
        allowed_actions: states::allowed_actions(&r.status).iter().map(|s| s.to_string()).collect(),
        hold_expires_at: (r.status == states::TENTATIVE)
            .then(|| opt_time(r.hold_expires_at))
            .flatten(),
        price: Breakdown {
            nights,
            room_minor: r.room_minor,
            vat_minor: r.vat_minor,
            city_tax_minor: r.city_tax_minor,
            total_minor: r.total_minor,
            currency: r.currency,
        },
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
        confirmed_at: opt_time(r.confirmed_at),
        checked_in_at: opt_time(r.checked_in_at),
        checked_out_at: opt_time(r.checked_out_at),
        cancelled_at: opt_time(r.cancelled_at),
        waitlisted_at: opt_time(r.waitlisted_at),
        id: r.id,
        property_id: r.property_id,
        group_id: crate::http::wire::text(&r.group_id),
        confirmation_code: r.confirmation_code,
        status: r.status,
        room_type_id: r.room_type_id,
        room_id: crate::http::wire::text(&r.room_id),
        room_number: crate::http::wire::text(&room_number),
        rate_plan_id: r.rate_plan_id,
        arrival: r.arrival,
        departure: r.departure,
        adults: r.adults,
        children: r.children,
        guest_id: r.guest_id,
        guest_name: r.guest_name,
        notes: crate::http::wire::text(&r.notes),
        cancellation_fee_minor: r.cancellation_fee_minor,
    })
}

pub fn night_prices(conn: &Connection, reservation_id: &str) -> rusqlite::Result<Vec<NightPrice>> {
    let mut stmt = conn.prepare_cached(
        "SELECT night, price_minor FROM reservation_nights WHERE reservation_id = ?1 ORDER BY night",
    )?;
    let rows = stmt.query_map([reservation_id], |r| {
        Ok(NightPrice { night: r.get(0)?, price_minor: r.get(1)? })
    })?;
    rows.collect()
}

/// What a stay asks for.
#[derive(Debug, Clone)]
pub struct Stay {
    pub room_type_id: String,
    pub rate_plan_id: String,
    pub arrival: Date,
    pub departure: Date,
    pub adults: i64,
    pub children: i64,
}

/// The room type's facts a quote needs.
struct TypeFacts {
    base_occupancy: i64,
    max_adults: i64,
    max_children: i64,
    max_occupancy: i64,
}

/// Validates `stay` at `settings`' property (room type, occupancy, rate plan, a price for
/// every night, and restrictions when `restrictions`) and prices it. Errors name fields with
/// `prefix` (e.g. `rooms[1].`): 422 for bad input, 409 `restricted` for a restriction.
pub fn quote(
    conn: &Connection,
    settings: &Settings,
    stay: &Stay,
    prefix: &str,
    restrictions: bool,
) -> Result<Breakdown, ApiError> {
    let f = |name: &str| format!("{prefix}{name}");
    let facts = conn
        .prepare_cached(
            "SELECT base_occupancy, max_adults, max_children, max_occupancy FROM room_types
             WHERE id = ?1 AND property_id = ?2 AND deleted_at = 0",
        )?
        .query_row(params![stay.room_type_id, settings.id], |r| {
            Ok(TypeFacts {
                base_occupancy: r.get(0)?,
                max_adults: r.get(1)?,
                max_children: r.get(2)?,
                max_occupancy: r.get(3)?,
            })
        })
        .optional()?
        .ok_or_else(|| {
            ApiError::invalid_field(&f("room_type_id"), "no such room type at this property")
        })?;
    if stay.adults < 1 {
        return Err(ApiError::invalid_field(&f("adults"), "at least one adult"));
    }
    if stay.children < 0 {
        return Err(ApiError::invalid_field(&f("children"), "cannot be negative"));
    }
    if stay.adults > facts.max_adults {
        return Err(ApiError::invalid_field(
            &f("adults"),
            format!("this room type takes at most {} adults", facts.max_adults),
        ));
    }
    if stay.children > facts.max_children {
        return Err(ApiError::invalid_field(
            &f("children"),
            format!("this room type takes at most {} children", facts.max_children),
        ));
    }
    if stay.adults + stay.children > facts.max_occupancy {
        return Err(ApiError::invalid_field(
            &f("adults"),
            format!("this room type takes at most {} persons", facts.max_occupancy),
        ));
    }
    let plan: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT extra_adult_minor, extra_child_minor FROM rate_plans
             WHERE id = ?1 AND property_id = ?2 AND active = 1 AND deleted_at = 0",
        )?
        .query_row(params![stay.rate_plan_id, settings.id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (extra_adult_minor, extra_child_minor) = plan.ok_or_else(|| {
        ApiError::invalid_field(&f("rate_plan_id"), "no such active rate plan at this property")
    })?;
    let occupancy = Occupancy {
        adults: stay.adults,
        children: stay.children,
        base_occupancy: facts.base_occupancy,
        extra_adult_minor,
        extra_child_minor,
    };
    let length = dates::nights_between(stay.arrival, stay.departure);
    let (from_s, to_s) = (stay.arrival.to_string(), stay.departure.to_string());
    let mut stmt = conn.prepare_cached(
        "SELECT night, price_minor, min_stay, max_stay, closed_to_arrival, closed_to_departure,
                stop_sell
         FROM rate_prices WHERE rate_plan_id = ?1 AND room_type_id = ?2
           AND night >= ?3 AND night <= ?4 ORDER BY night",
    )?;
    let mut rows = stmt.query(params![stay.rate_plan_id, stay.room_type_id, from_s, to_s])?;
    let mut priced: Vec<(String, i64, [i64; 5])> = Vec::with_capacity(length as usize + 1);
    while let Some(r) = rows.next()? {
        priced.push((
            r.get(0)?,
            r.get(1)?,
            [r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?],
        ));
    }
    let mut nights = Vec::with_capacity(length as usize);
    let mut it = priced.iter().peekable();
    for night in dates::nights(stay.arrival, stay.departure) {
        let night_s = night.to_string();
        while it.peek().is_some_and(|p| p.0 < night_s) {
            it.next();
        }
        let Some(p) = it.peek().filter(|p| p.0 == night_s) else {
            return Err(ApiError::invalid_field(
                &f("rate_plan_id"),
                format!("the rate plan has no price for the night of {night_s}"),
            )
            .with_details(json!({
                "field": f("rate_plan_id"),
                "reason": "no price for a night of the stay",
                "rate_plan_id": stay.rate_plan_id,
                "night": night_s,
            })));
        };
        if restrictions {
            let [min_stay, max_stay, cta, _ctd, stop] = p.2;
            let restricted = |what: &str, message: String| {
                ApiError::conflict("restricted", message).with_details(json!({
                    "restriction": what,
                    "night": night_s,
                    "rate_plan_id": stay.rate_plan_id,
                    "room_type_id": stay.room_type_id,
                }))
            };
            if stop != 0 {
                return Err(restricted("stop_sell", format!("sales are stopped for {night_s}")));
            }
            if night == stay.arrival {
                if cta != 0 {
                    return Err(restricted(
                        "closed_to_arrival",
                        format!("arrivals on {night_s} are closed"),
                    ));
                }
                if min_stay > 0 && length < min_stay {
                    return Err(restricted(
                        "min_stay",
                        format!("arrivals on {night_s} must stay at least {min_stay} nights"),
                    ));
                }
                if max_stay > 0 && length > max_stay {
                    return Err(restricted(
                        "max_stay",
                        format!("arrivals on {night_s} may stay at most {max_stay} nights"),
                    ));
                }
            }
        }
        nights.push(NightPrice { night: night_s, price_minor: occupancy.night_price(p.1) });
    }
    if restrictions
        && let Some(d) = priced.iter().find(|p| p.0 == to_s)
        && d.2[3] != 0
    {
        return Err(ApiError::conflict("restricted", format!("departures on {to_s} are closed"))
            .with_details(json!({
                "restriction": "closed_to_departure",
                "night": to_s,
                "rate_plan_id": stay.rate_plan_id,
                "room_type_id": stay.room_type_id,
            })));
    }
    Ok(pricing::breakdown(settings, nights, stay.adults, stay.children))
}

/// Validates a stay's dates: arrival not before `business_date` (unless `allow_past`),
/// departure after arrival, at most `MAX_STAY_NIGHTS` nights.
pub fn check_dates(
    arrival: Date,
    departure: Date,
    business_date: Date,
    prefix: &str,
    allow_past: bool,
) -> Result<(), ApiError> {
    if !allow_past && arrival < business_date {
        return Err(ApiError::invalid_field(
            &format!("{prefix}arrival"),
            format!("cannot be before the business date {business_date}"),
        ));
    }
    let n = dates::nights_between(arrival, departure);
    if n < 1 {
        return Err(ApiError::invalid_field(
            &format!("{prefix}departure"),
            "must be after the arrival",
        ));
    }
    if n > MAX_STAY_NIGHTS {
        return Err(ApiError::invalid_field(
            &format!("{prefix}departure"),
            format!("a stay may last at most {MAX_STAY_NIGHTS} nights"),
        ));
    }
    Ok(())
}

/// 409 `no_availability` unless every night of `[from, to)` has a room of the type left.
pub fn ensure_available(
    conn: &Connection,
    room_type_id: &str,
    from: Date,
    to: Date,
) -> Result<(), ApiError> {
    let inv = inventory::nights(conn, room_type_id, from, to)?;
    let full = inventory::full_nights(&inv);
    if full.is_empty() {
        return Ok(());
    }
    Err(ApiError::conflict(
        "no_availability",
        format!("no room of the type is left for {}", full.join(", ")),
    )
    .with_details(json!({ "room_type_id": room_type_id, "nights": full })))
}

/// Checks availability and writes the inventory rows of `reservation_id` for `nights`
/// (and its room's room-nights when `room_id` is not empty).
pub fn hold(
    tx: &Connection,
    reservation_id: &str,
    property_id: &str,
    room_type_id: &str,
    room_id: &str,
    nights: &[NightPrice],
) -> Result<(), ApiError> {
    let (Some(first), Some(last)) = (nights.first(), nights.last()) else { return Ok(()) };
    let from: Date = first.night.parse().map_err(ApiError::internal)?;
    let to = dates::next_day(last.night.parse().map_err(ApiError::internal)?);
    ensure_available(tx, room_type_id, from, to)?;
    let mut sold = tx.prepare_cached(
        "INSERT INTO room_type_nights (room_type_id, night, property_id, sold)
         VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (room_type_id, night) DO UPDATE SET sold = sold + 1",
    )?;
    let mut row = tx.prepare_cached(
        "INSERT INTO reservation_nights (reservation_id, night, property_id, room_type_id,
             room_id, price_minor)
         VALUES (?1, ?2, ?3, ?4, '', ?5)",
    )?;
    for n in nights {
        sold.execute(params![room_type_id, n.night, property_id])?;
        row.execute(params![reservation_id, n.night, property_id, room_type_id, n.price_minor])?;
    }
    if !room_id.is_empty() {
        claim_room(tx, reservation_id, room_id, from, to)?;
    }
    Ok(())
}

/// Releases `reservation_id`'s inventory for the nights on or after `from_night` (all when
/// `None`): sold counters, room-nights and its nights. Returns how many nights were freed.
pub fn release(
    tx: &Connection,
    reservation_id: &str,
    from_night: Option<&str>,
) -> Result<usize, ApiError> {
    let from = from_night.unwrap_or("");
    let nights: Vec<(String, String)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT night, room_type_id FROM reservation_nights
             WHERE reservation_id = ?1 AND night >= ?2",
        )?;
        let rows = stmt.query_map(params![reservation_id, from], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut dec = tx.prepare_cached(
        "UPDATE room_type_nights SET sold = MAX(sold - 1, 0) WHERE room_type_id = ?1 AND night = ?2",
    )?;
    for (night, type_id) in &nights {
        dec.execute(params![type_id, night])?;
    }
    tx.prepare_cached("DELETE FROM room_nights WHERE reservation_id = ?1 AND night >= ?2")?
        .execute(params![reservation_id, from])?;
    tx.prepare_cached("DELETE FROM reservation_nights WHERE reservation_id = ?1 AND night >= ?2")?
        .execute(params![reservation_id, from])?;
    Ok(nights.len())
}

/// Claims `room_id`'s nights `[from, to)` for `reservation_id`: 409 `room_unavailable` when
/// another reservation has one of them or the room is out of order then. Moves the
/// reservation's nights and row to the room.
pub fn claim_room(
    tx: &Connection,
    reservation_id: &str,
    room_id: &str,
    from: Date,
    to: Date,
) -> Result<(), ApiError> {
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let taken: Vec<String> = {
        let mut stmt = tx.prepare_cached(
            "SELECT night FROM room_nights WHERE room_id = ?1 AND night >= ?2 AND night < ?3
               AND reservation_id != ?4 ORDER BY night",
        )?;
        let rows = stmt.query_map(params![room_id, from_s, to_s, reservation_id], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    if !taken.is_empty() {
        return Err(ApiError::conflict(
            "room_unavailable",
            format!("the room is taken by another reservation on {}", taken.join(", ")),
        )
        .with_details(json!({ "room_id": room_id, "reason": "occupied", "nights": taken })));
    }
    let blocked: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT from_date, to_date FROM room_blocks WHERE room_id = ?1 AND kind = 'out_of_order'
               AND released_at = 0 AND from_date < ?3 AND to_date > ?2 LIMIT 1",
        )?
        .query_row(params![room_id, from_s, to_s], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((bf, bt)) = blocked {
        return Err(ApiError::conflict(
            "room_unavailable",
            format!("the room is out of order from {bf} to {bt}"),
        )
        .with_details(
            json!({ "room_id": room_id, "reason": "out_of_order", "from": bf, "to": bt }),
        ));
    }
    tx.prepare_cached("DELETE FROM room_nights WHERE reservation_id = ?1")?
        .execute([reservation_id])?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO room_nights (room_id, night, reservation_id) VALUES (?1, ?2, ?3)",
    )?;
    for night in dates::nights(from, to) {
        ins.execute(params![room_id, night.to_string(), reservation_id])?;
    }
    tx.prepare_cached("UPDATE reservation_nights SET room_id = ?2 WHERE reservation_id = ?1")?
        .execute(params![reservation_id, room_id])?;
    tx.prepare_cached("UPDATE reservations SET room_id = ?2 WHERE id = ?1")?
        .execute(params![reservation_id, room_id])?;
    Ok(())
}

/// Drops `reservation_id`'s room: its room-nights go, its nights keep the type.
pub fn unclaim_room(tx: &Connection, reservation_id: &str) -> Result<(), ApiError> {
    tx.prepare_cached("DELETE FROM room_nights WHERE reservation_id = ?1")?
        .execute([reservation_id])?;
    tx.prepare_cached("UPDATE reservation_nights SET room_id = '' WHERE reservation_id = ?1")?
        .execute([reservation_id])?;
    tx.prepare_cached("UPDATE reservations SET room_id = '' WHERE id = ?1")?
        .execute([reservation_id])?;
    Ok(())
}

/// A room of the property with its type and status; 422 naming `field` when there is none.
pub fn room(
    conn: &Connection,
    property_id: &str,
    room_id: &str,
    field: &str,
) -> Result<(String, String), ApiError> {
    conn.prepare_cached(
        "SELECT room_type_id, status FROM rooms WHERE id = ?1 AND property_id = ?2 AND deleted_at = 0",
    )?
    .query_row(params![room_id, property_id], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()?
    .ok_or_else(|| ApiError::invalid_field(field, "no such room at this property"))
}

/// Records one entry of a reservation's timeline.
#[allow(clippy::too_many_arguments)]
pub fn event(
    tx: &Connection,
    r: &Reservation,
    kind: &str,
    from_status: &str,
    to_status: &str,
    details: Value,
    actor: &str,
    now: i64,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO reservation_events (id, reservation_id, property_id, kind, from_status,
             to_status, details, actor, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        uuid::Uuid::now_v7().to_string(),
        r.id,
        r.property_id,
        kind,
        from_status,
        to_status,
        details.to_string(),
        actor,
        now
    ])?;
    Ok(())
}

/// A new confirmation code: 8 characters from an alphabet without look-alikes (no 0/O,
/// 1/I/L, 2/Z, 5/S, 8/B), checked unused at this node.
pub fn confirmation_code(conn: &Connection) -> rusqlite::Result<String> {
    const ALPHABET: &[u8] = b"ACDEFGHJKMNPQRTUVWXY34679";
    let mut rng = rand::rng();
    loop {
        let code: String =
            (0..8).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
        let used: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM reservations WHERE confirmation_code = ?1)",
            )?
            .query_row([&code], |r| r.get(0))?;
        if !used {
            return Ok(code);
        }
    }
}

/// The display name of a guest of `property_id` that can be booked: 422 naming `field` when
/// there is no such guest at the property, or it was erased or merged into another profile.
pub fn guest_name(
    conn: &Connection,
    property_id: &str,
    guest_id: &str,
    field: &str,
) -> Result<String, ApiError> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached(
            "SELECT first_name, last_name, merged_into FROM guests
             WHERE id = ?1 AND property_id = ?2 AND erased_at = 0",
        )?
        .query_row([guest_id, property_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let (first, last, merged_into) =
        row.ok_or_else(|| ApiError::invalid_field(field, "no such guest at this property"))?;
    if !merged_into.is_empty() {
        return Err(ApiError::invalid_field(
            field,
            format!("this profile was merged into guest {merged_into}; book that one"),
        ));
    }
    Ok(format!("{first} {last}").trim().to_string())
}

/// Which fee applies: cancellation (with its free window) or no-show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeeFor {
    Cancellation,
    NoShow,
}

/// The fee the rate plan's cancellation policy charges for cancelling `r` at `now` (free
/// until `free_until_hours` before the arrival day's check-in time in the property's time
/// zone; a policy with 0 hours has no free window) or for its no-show. Kinds: none, first_night, percent (of the total), full.
pub fn fee(
    conn: &Connection,
    settings: &Settings,
    r: &Reservation,
    now: i64,
    why: FeeFor,
) -> Result<i64, ApiError> {
    let policy: Option<(i64, String, i64, String)> = conn
        .prepare_cached(
            "SELECT c.free_until_hours, c.fee_kind, c.fee_percent_bp, c.no_show_fee_kind
             FROM rate_plans p JOIN cancellation_policies c ON c.id = p.cancellation_policy_id
             WHERE p.id = ?1",
        )?
        .query_row([&r.rate_plan_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    let Some((free_hours, fee_kind, percent_bp, no_show_kind)) = policy else { return Ok(0) };
    let kind = match why {
        FeeFor::Cancellation => {
            // `free_until_hours` 0 (or less) means no free window at all (non-refundable).
            let deadline = check_in_instant(settings, r.arrival_date()) - free_hours * 3_600_000;
            if free_hours > 0 && now < deadline {
                return Ok(0);
            }
            fee_kind
        }
        FeeFor::NoShow => no_show_kind,
    };
    let first_night = conn
        .prepare_cached(
            "SELECT price_minor FROM reservation_nights WHERE reservation_id = ?1
             ORDER BY night LIMIT 1",
        )?
        .query_row([&r.id], |row| row.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0);
    Ok(match kind.as_str() {
        "first_night" => first_night,
        "percent" => {
            pricing::div_round_half_even(i128::from(r.total_minor) * i128::from(percent_bp), 10_000)
        }
        "full" => r.total_minor,
        _ => 0,
    })
}

/// The arrival day's check-in time in the property's time zone, as unix ms.
pub fn check_in_instant(settings: &Settings, arrival: Date) -> i64 {
    let (h, m) = settings
        .check_in_time
        .split_once(':')
        .and_then(|(h, m)| Some((h.parse::<i8>().ok()?, m.parse::<i8>().ok()?)))
        .unwrap_or((15, 0));
    let zone = jiff::tz::TimeZone::get(&settings.timezone).unwrap_or(jiff::tz::TimeZone::UTC);
    arrival
        .at(h, m, 0, 0)
        .to_zoned_datetime(zone)
        .map(|z| z.timestamp().as_millisecond())
        .unwrap_or(0)
}

/// Moves `r` to `to` (stamping the matching `*_at` column) and records the event.
#[allow(clippy::too_many_arguments)]
pub fn transition(
    tx: &Connection,
    r: &Reservation,
    to: &str,
    kind: &str,
    details: Value,
    actor: &str,
    now: i64,
) -> Result<(), ApiError> {
    let column = match to {
        states::CONFIRMED => "confirmed_at",
        states::CHECKED_IN => "checked_in_at",
        states::CHECKED_OUT => "checked_out_at",
        states::CANCELLED | states::NO_SHOW => "cancelled_at",
        states::WAITLISTED => "waitlisted_at",
        _ => "updated_at",
    };
    tx.prepare_cached(&format!(
        "UPDATE reservations SET status = ?2, {column} = ?3, updated_at = ?3 WHERE id = ?1"
    ))?
    .execute(params![r.id, to, now])?;
    event(tx, r, kind, &r.status, to, details, actor, now)?;
    Ok(())
}
