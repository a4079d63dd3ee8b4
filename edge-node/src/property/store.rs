//! SQL of properties. The property module owns `properties`; the SQL of room types, rooms,
//! amenities, policies and rates lives next to their routes (rooms.rs, rates.rs).

use rusqlite::{Connection, OptionalExtension, params};

/// Ids of the given property ids that exist and are not deleted.
pub fn existing(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<String>> {
    let json = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "SELECT id FROM properties WHERE id IN (SELECT value FROM json_each(?1))
             AND deleted_at = 0 ORDER BY id",
    )?
    .query_map([json], |r| r.get(0))?
    .collect()
}

/// Every setting of a property, as stored (`business_date` may be '' before the first end
/// of day; `access::settings` gives the effective one).
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyRecord {
    pub id: String,
    pub name: String,
    pub timezone: String,
    pub currency: String,
    pub address: String,
    pub check_in_time: String,
    pub check_out_time: String,
    pub vat_rate_bp: i64,
    pub vat_inclusive: bool,
    pub city_tax_minor: i64,
    pub city_tax_children: bool,
    pub business_date: String,
    pub tentative_hold_hours: i64,
    pub loyalty_rule: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PropertyRecord {
    /// A new property's defaults (the schema's).
    pub fn new(id: String, now: i64) -> PropertyRecord {
        PropertyRecord {
            id,
            name: String::new(),
            timezone: "UTC".into(),
            currency: "EUR".into(),
            address: String::new(),
            check_in_time: "15:00".into(),
            check_out_time: "11:00".into(),
            vat_rate_bp: 0,
            vat_inclusive: true,
            city_tax_minor: 0,
            city_tax_children: false,
            business_date: String::new(),
            tentative_hold_hours: 24,
            loyalty_rule: String::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

const RECORD_COLUMNS: &str = "id, name, timezone, currency, address, check_in_time,
    check_out_time, vat_rate_bp, vat_inclusive, city_tax_minor, city_tax_children,
    business_date, tentative_hold_hours, loyalty_rule, created_at, updated_at";

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<PropertyRecord> {
    Ok(PropertyRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        timezone: r.get(2)?,
        currency: r.get(3)?,
        address: r.get(4)?,
        check_in_time: r.get(5)?,
        check_out_time: r.get(6)?,
        vat_rate_bp: r.get(7)?,
        vat_inclusive: r.get::<_, i64>(8)? != 0,
        city_tax_minor: r.get(9)?,
        city_tax_children: r.get::<_, i64>(10)? != 0,
        business_date: r.get(11)?,
        tentative_hold_hours: r.get(12)?,
        loyalty_rule: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
    })
}

/// A live property's settings.
pub fn get_record(conn: &Connection, id: &str) -> rusqlite::Result<Option<PropertyRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM properties WHERE id = ?1 AND deleted_at = 0"
    ))?
    .query_row([id], record)
    .optional()
}

/// The live properties among `ids`, by name.
pub fn list_records(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<PropertyRecord>> {
    let json = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM properties
         WHERE id IN (SELECT value FROM json_each(?1)) AND deleted_at = 0 ORDER BY name, id"
    ))?
    .query_map([json], record)?
    .collect()
}

/// Inserts a new property or overwrites every setting of an existing one.
pub fn save_record(conn: &Connection, p: &PropertyRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO properties (id, name, timezone, currency, address, check_in_time,
             check_out_time, vat_rate_bp, vat_inclusive, city_tax_minor, city_tax_children,
             business_date, tentative_hold_hours, loyalty_rule, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, timezone = excluded.timezone,
             currency = excluded.currency, address = excluded.address,
             check_in_time = excluded.check_in_time, check_out_time = excluded.check_out_time,
             vat_rate_bp = excluded.vat_rate_bp, vat_inclusive = excluded.vat_inclusive,
             city_tax_minor = excluded.city_tax_minor,
             city_tax_children = excluded.city_tax_children,
             tentative_hold_hours = excluded.tentative_hold_hours,
             loyalty_rule = excluded.loyalty_rule, updated_at = excluded.updated_at",
    )?
    .execute(params![
        p.id,
        p.name,
        p.timezone,
        p.currency,
        p.address,
        p.check_in_time,
        p.check_out_time,
        p.vat_rate_bp,
        p.vat_inclusive as i64,
        p.city_tax_minor,
        p.city_tax_children as i64,
        p.business_date,
        p.tentative_hold_hours,
        p.loyalty_rule,
        p.created_at,
        p.updated_at
    ])?;
    Ok(())
}

/// Gives a staff member access to a property.
pub fn grant(conn: &Connection, staff_id: &str, property_id: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO staff_properties (staff_id, property_id) VALUES (?1, ?2)
         ON CONFLICT DO NOTHING",
    )?
    .execute([staff_id, property_id])?;
    Ok(())
}

pub fn soft_delete(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<bool> {
    Ok(conn
        .prepare_cached(
            "UPDATE properties SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1 AND deleted_at = 0",
        )?
        .execute(params![id, now])?
        > 0)
}

/// How many reservations of the property still hold or will hold rooms (tentative,
/// confirmed or checked in).
pub fn open_reservations(conn: &Connection, property_id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM reservations WHERE property_id = ?1
             AND status IN ('tentative', 'confirmed', 'checked_in')",
    )?
    .query_row([property_id], |r| r.get(0))
}
