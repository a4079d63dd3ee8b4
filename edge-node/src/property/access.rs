//! Which properties a caller may act on, and the property facts other domains read: its
//! business date and settings. Staff only see and change the properties they belong to.

use jiff::civil::Date;
use rusqlite::{Connection, OptionalExtension};

use crate::auth::extract::Principal;
use crate::dates;
use crate::http::error::ApiError;

/// 404 `not_found` unless `principal` belongs to `property_id`: a property that is not
/// yours is answered exactly like one that does not exist, wherever it is named (path,
/// query or body), and asked before any lookup, so a caller cannot learn whether another
/// property exists.
pub fn ensure(principal: &Principal, property_id: &str) -> Result<(), ApiError> {
    if principal.properties.iter().any(|p| p == property_id) {
        Ok(())
    } else {
        Err(ApiError::not_found("property")
            .with_details(serde_json::json!({ "property_id": property_id })))
    }
}

/// The settings of a property that pricing and the front desk read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub id: String,
    pub timezone: String,
    pub currency: String,
    pub check_in_time: String,
    pub check_out_time: String,
    pub vat_rate_bp: i64,
    pub vat_inclusive: bool,
    pub city_tax_minor: i64,
    pub city_tax_children: bool,
    /// The hotel's business date: the day the front desk is working on, which moves on at
    /// end of day (not at midnight).
    pub business_date: Date,
    pub tentative_hold_hours: i64,
    pub loyalty_rule: String,
}

/// A live (not deleted) property's settings; `None` when there is none.
pub fn settings(conn: &Connection, property_id: &str) -> rusqlite::Result<Option<Settings>> {
    conn.prepare_cached(
        "SELECT id, timezone, currency, check_in_time, check_out_time, vat_rate_bp,
                vat_inclusive, city_tax_minor, city_tax_children, business_date,
                tentative_hold_hours, loyalty_rule
         FROM properties WHERE id = ?1 AND deleted_at = 0",
    )?
    .query_row([property_id], |r| {
        let timezone: String = r.get(1)?;
        let stored: String = r.get(9)?;
        let business_date = stored.parse::<Date>().unwrap_or_else(|_| dates::today_in(&timezone));
        Ok(Settings {
            id: r.get(0)?,
            currency: r.get(2)?,
            check_in_time: r.get(3)?,
            check_out_time: r.get(4)?,
            vat_rate_bp: r.get(5)?,
            vat_inclusive: r.get::<_, i64>(6)? != 0,
            city_tax_minor: r.get(7)?,
            city_tax_children: r.get::<_, i64>(8)? != 0,
            business_date,
            tentative_hold_hours: r.get(10)?,
            loyalty_rule: r.get(11)?,
            timezone,
        })
    })
    .optional()
}

/// Settings of a property the caller may act on: 404 without access or when it is gone.
pub fn settings_for(
    conn: &Connection,
    principal: &Principal,
    property_id: &str,
) -> Result<Settings, ApiError> {
    ensure(principal, property_id)?;
    settings(conn, property_id)?.ok_or_else(|| ApiError::not_found("property"))
}
