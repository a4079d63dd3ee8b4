//! SQL of properties. The property module owns `properties`.

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone)]
pub struct PropertyRow {
    pub id: String,
    pub name: String,
    pub timezone: String,
    pub currency: String,
    pub created_at: i64,
}

pub fn insert(conn: &Connection, p: &PropertyRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO properties (id, name, timezone, currency, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![p.id, p.name, p.timezone, p.currency, p.created_at])?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<PropertyRow>> {
    conn.prepare_cached(
        "SELECT id, name, timezone, currency, created_at FROM properties WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(PropertyRow {
            id: r.get(0)?,
            name: r.get(1)?,
            timezone: r.get(2)?,
            currency: r.get(3)?,
            created_at: r.get(4)?,
        })
    })
    .optional()
}

/// Ids of the given property ids that exist.
pub fn existing(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<String>> {
    let json = serde_json::to_string(ids).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "SELECT id FROM properties WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id",
    )?
    .query_map([json], |r| r.get(0))?
    .collect()
}
