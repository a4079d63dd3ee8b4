//! Seeding a property's inventory: room types with rooms, cancellation policies, rate plans
//! and a calendar of prices. The demo and the tests use it; it writes through the caller's
//! transaction (the single write path), so every row is captured for replication.

use jiff::civil::Date;
use rusqlite::{Connection, params};

use crate::dates;

/// One room type to create, with `rooms` rooms numbered from `first_number`.
#[derive(Debug, Clone)]
pub struct TypeSpec {
    pub code: &'static str,
    pub name: &'static str,
    pub rooms: usize,
    pub first_number: u32,
    pub base_occupancy: i64,
    pub max_adults: i64,
    pub max_children: i64,
    /// Nightly price of the flexible plan; the non-refundable plan sells at 85 % of it.
    pub price_minor: i64,
}

#[derive(Debug, Clone)]
pub struct InventorySpec {
    pub types: Vec<TypeSpec>,
    /// Prices are written for the nights `[from, from + nights)`.
    pub from: Date,
    pub nights: i64,
    /// VAT in basis points (inclusive) and city tax per adult-night.
    pub vat_rate_bp: i64,
    pub city_tax_minor: i64,
}

impl InventorySpec {
    /// A small hotel for tests: 2 doubles at 100.00, 1 suite at 250.00, 10 % VAT included,
    /// 2.50 city tax, prices for 400 nights from `from`.
    pub fn small(from: Date) -> InventorySpec {
        InventorySpec {
            types: vec![
                TypeSpec {
                    code: "DBL",
                    name: "Double",
                    rooms: 2,
                    first_number: 101,
                    base_occupancy: 2,
                    max_adults: 2,
                    max_children: 1,
                    price_minor: 10_000,
                },
                TypeSpec {
                    code: "STE",
                    name: "Suite",
                    rooms: 1,
                    first_number: 201,
                    base_occupancy: 2,
                    max_adults: 4,
                    max_children: 2,
                    price_minor: 25_000,
                },
            ],
            from,
            nights: 400,
            vat_rate_bp: 1_000,
            city_tax_minor: 250,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SeededType {
    pub id: String,
    pub code: String,
    pub room_ids: Vec<String>,
    pub room_numbers: Vec<String>,
}

/// What was created, by id.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeededInventory {
    pub room_types: Vec<SeededType>,
    /// Flexible (free cancellation until 24 h before, then first night): code `FLEX`.
    pub flexible_rate_id: String,
    /// Non-refundable (full stay charged on cancellation): code `NREF`.
    pub non_refundable_rate_id: String,
    pub flexible_policy_id: String,
    pub non_refundable_policy_id: String,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Creates the inventory of `spec` at `property_id` and sets its tax settings.
pub fn inventory(
    tx: &Connection,
    property_id: &str,
    spec: &InventorySpec,
    now: i64,
) -> rusqlite::Result<SeededInventory> {
    tx.execute(
        "UPDATE properties SET vat_rate_bp = ?2, vat_inclusive = 1, city_tax_minor = ?3,
                updated_at = ?4 WHERE id = ?1",
        params![property_id, spec.vat_rate_bp, spec.city_tax_minor, now],
    )?;
    let flexible_policy_id = new_id();
    let non_refundable_policy_id = new_id();
    let mut policy = tx.prepare_cached(
        "INSERT INTO cancellation_policies (id, property_id, name, free_until_hours, fee_kind,
             no_show_fee_kind, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
    )?;
    policy.execute(params![
        flexible_policy_id,
        property_id,
        "Free cancellation until 24 hours before arrival",
        24,
        "first_night",
        "first_night",
        now
    ])?;
    policy.execute(params![
        non_refundable_policy_id,
        property_id,
        "Non-refundable",
        0,
        "full",
        "full",
        now
    ])?;
    let flexible_rate_id = new_id();
    let non_refundable_rate_id = new_id();
    let mut plan = tx.prepare_cached(
        "INSERT INTO rate_plans (id, property_id, code, name, cancellation_policy_id,
             breakfast_included, extra_adult_minor, extra_child_minor, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?;
    plan.execute(params![
        flexible_rate_id,
        property_id,
        "FLEX",
        "Flexible, breakfast included",
        flexible_policy_id,
        1,
        3_000,
        1_500,
        now
    ])?;
    plan.execute(params![
        non_refundable_rate_id,
        property_id,
        "NREF",
        "Non-refundable, room only",
        non_refundable_policy_id,
        0,
        2_500,
        1_000,
        now
    ])?;

    let mut room_type = tx.prepare_cached(
        "INSERT INTO room_types (id, property_id, code, name, base_occupancy, max_adults,
             max_children, max_occupancy, sort_order, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)",
    )?;
    let mut room = tx.prepare_cached(
        "INSERT INTO rooms (id, property_id, room_type_id, number, floor, status, status_at,
             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'clean', ?6, ?6, ?6)",
    )?;
    let mut price = tx.prepare_cached(
        "INSERT INTO rate_prices (rate_plan_id, room_type_id, night, price_minor)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    let to = spec.from.checked_add(jiff::Span::new().days(spec.nights)).unwrap_or(spec.from);
    let mut types = Vec::with_capacity(spec.types.len());
    for (order, t) in spec.types.iter().enumerate() {
        let id = new_id();
        room_type.execute(params![
            id,
            property_id,
            t.code,
            t.name,
            t.base_occupancy,
            t.max_adults,
            t.max_children,
            t.max_adults + t.max_children,
            order as i64,
            now
        ])?;
        let mut room_ids = Vec::with_capacity(t.rooms);
        let mut room_numbers = Vec::with_capacity(t.rooms);
        for n in 0..t.rooms {
            let room_id = new_id();
            let number = (t.first_number + n as u32).to_string();
            let floor = number[..number.len().saturating_sub(2)].to_string();
            room.execute(params![room_id, property_id, id, number, floor, now])?;
            room_ids.push(room_id);
            room_numbers.push(number);
        }
        for night in dates::nights(spec.from, to) {
            let night = night.to_string();
            price.execute(params![flexible_rate_id, id, night, t.price_minor])?;
            price.execute(params![non_refundable_rate_id, id, night, t.price_minor * 85 / 100])?;
        }
        types.push(SeededType { id, code: t.code.to_string(), room_ids, room_numbers });
    }
    Ok(SeededInventory {
        room_types: types,
        flexible_rate_id,
        non_refundable_rate_id,
        flexible_policy_id,
        non_refundable_policy_id,
    })
}
