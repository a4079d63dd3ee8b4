//! Input checks of the property service: each failure is a 422 naming the field. Update
//! bodies are patches (every field optional; a create's required fields are required by its
//! own wire type, so serde names a missing one); `set` applies a checked value to a record
//! and remembers which fields really changed, for the audit trail.

use rusqlite::Connection;
use serde_json::Value;

use crate::http::error::ApiError;

/// Trimmed, non-empty text of at most `max` characters as sent.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let value = free_text(field, value, max)?;
    if value.is_empty() {
        return Err(ApiError::invalid_field(field, "must not be empty"));
    }
    Ok(value)
}

/// Trimmed text (may be empty) of at most `max` characters as sent (surrounding spaces
/// count, as the document's `maxLength` counts them).
pub fn free_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let sent = value.chars().count();
    let value = value.trim();
    if sent > max {
        return Err(ApiError::invalid_field(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::invalid_field(field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

/// A short code (room type, rate plan, amenity): 1 to 20 letters, digits, `-` or `_`,
/// stored upper-case.
pub fn code(field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    let ok = (1..=20).contains(&value.len())
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(ApiError::invalid_field(field, "must be 1 to 20 letters, digits, '-' or '_'"));
    }
    Ok(value.to_ascii_uppercase())
}

/// An integer within `lo..=hi`.
pub fn int(field: &str, value: i64, lo: i64, hi: i64) -> Result<i64, ApiError> {
    if value < lo || value > hi {
        return Err(ApiError::invalid_field(field, format!("must be between {lo} and {hi}")));
    }
    Ok(value)
}

/// A time of day as `HH:MM` (24 hours).
pub fn hhmm(field: &str, value: &str) -> Result<String, ApiError> {
    let b = value.as_bytes();
    let ok = b.len() == 5
        && b[2] == b':'
        && [0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit())
        && value[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && value[3..].parse::<u8>().is_ok_and(|m| m < 60);
    if !ok {
        return Err(ApiError::invalid_field(field, "expected a time of day as HH:MM"));
    }
    Ok(value.to_string())
}

/// An IANA time zone name known to this build, e.g. `Europe/Vienna`.
pub fn timezone(value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || jiff::tz::TimeZone::get(value).is_err() {
        return Err(ApiError::invalid_field(
            "timezone",
            "expected an IANA time zone name such as Europe/Vienna",
        ));
    }
    Ok(value.to_string())
}

/// An ISO 4217 currency code: three upper-case letters.
pub fn currency(value: &str) -> Result<String, ApiError> {
    if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::invalid_field(
            "currency",
            "expected an ISO 4217 code of three upper-case letters, e.g. EUR",
        ));
    }
    Ok(value.to_string())
}

/// The loyalty rule `{"points_per_unit": N, "tiers": [{"name": "...", "min_points": N}]}`,
/// returned as compact JSON for storage. Tier names are unique and thresholds ascend.
pub fn loyalty_rule(value: &Value) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::invalid_field("loyalty_rule", why.to_string());
    let obj = value.as_object().ok_or_else(|| bad("expected an object"))?;
    if let Some(key) = obj.keys().find(|k| !matches!(k.as_str(), "points_per_unit" | "tiers")) {
        return Err(bad(&format!("unknown key {key}")));
    }
    let points = obj
        .get("points_per_unit")
        .and_then(Value::as_i64)
        .filter(|p| (0..=1_000_000).contains(p))
        .ok_or_else(|| bad("points_per_unit must be an integer from 0 to 1000000"))?;
    let tiers = match obj.get("tiers") {
        None => Vec::new(),
        Some(t) => t.as_array().ok_or_else(|| bad("tiers must be a list"))?.clone(),
    };
    let mut names: Vec<String> = Vec::new();
    let mut last = -1;
    let mut clean = Vec::with_capacity(tiers.len());
    for tier in &tiers {
        let t = tier.as_object().ok_or_else(|| bad("each tier must be an object"))?;
        if let Some(key) = t.keys().find(|k| !matches!(k.as_str(), "name" | "min_points")) {
            return Err(bad(&format!("unknown tier key {key}")));
        }
        let name = t
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| n.chars().count() <= 50)
            .map(str::trim)
            .filter(|n| !n.is_empty() && !n.chars().any(char::is_control))
            .ok_or_else(|| {
                bad("each tier needs a name of 1 to 50 characters, no control characters")
            })?;
        let min = t
            .get("min_points")
            .and_then(Value::as_i64)
            .filter(|p| *p >= 0)
            .ok_or_else(|| bad("each tier needs min_points, an integer >= 0"))?;
        if names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(bad(&format!("tier {name} appears twice")));
        }
        if min <= last {
            return Err(bad("tiers must be listed by ascending min_points"));
        }
        last = min;
        names.push(name.to_string());
        clean.push(serde_json::json!({ "name": name, "min_points": min }));
    }
    Ok(serde_json::json!({ "points_per_unit": points, "tiers": clean }).to_string())
}

/// Puts `value` into `slot`, noting `name` in `changed` when it differs.
pub fn set<T: PartialEq>(
    slot: &mut T,
    value: T,
    name: &'static str,
    changed: &mut Vec<&'static str>,
) {
    if *slot != value {
        *slot = value;
        changed.push(name);
    }
}

/// The ids in `ids` that are not live rows of `table` at `property_id`. `table` is one of
/// this module's own table names, never caller input.
pub fn missing_ids(
    conn: &Connection,
    table: &str,
    property_id: &str,
    ids: &[String],
) -> rusqlite::Result<Vec<String>> {
    let sql = format!(
        "SELECT value FROM json_each(?2) WHERE value NOT IN
             (SELECT id FROM {table} WHERE property_id = ?1 AND deleted_at = 0)"
    );
    let json = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(&sql)?
        .query_map(rusqlite::params![property_id, json], |r| r.get(0))?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day_are_strict() {
        assert!(hhmm("t", "15:00").is_ok());
        assert!(hhmm("t", "23:59").is_ok());
        for bad in ["24:00", "7:00", "12:60", "12-00", "", "12:00:00"] {
            assert!(hhmm("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loyalty_rules_are_checked_and_normalised() {
        let ok = serde_json::json!({"points_per_unit": 1, "tiers": [
            {"name": "Silver", "min_points": 0}, {"name": "Gold", "min_points": 1000}]});
        assert!(loyalty_rule(&ok).is_ok());
        for bad in [
            serde_json::json!([]),
            serde_json::json!({"points_per_unit": -1}),
            serde_json::json!({"points_per_unit": 1, "tiers": [{"name": "A", "min_points": 5},
                {"name": "B", "min_points": 5}]}),
            serde_json::json!({"points_per_unit": 1, "extra": 1}),
        ] {
            assert!(loyalty_rule(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn currencies_and_time_zones() {
        assert!(currency("EUR").is_ok());
        assert!(currency("eur").is_err());
        assert!(timezone("Europe/Vienna").is_ok());
        assert!(timezone("Mars/Olympus").is_err());
    }
}
