//! The node's identity, kept in the local-only `node_meta` table: its 16-byte site id (the
//! CRDT replica id) and the property it serves.

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// 16 random bytes, hex-encoded; unique per database.
    pub site_id: String,
    pub property_id: String,
}

fn get(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM node_meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

fn set(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO node_meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

pub fn load(conn: &Connection) -> rusqlite::Result<Option<NodeInfo>> {
    let (Some(site_id), Some(property_id)) = (get(conn, "site_id")?, get(conn, "property_id")?)
    else {
        return Ok(None);
    };
    Ok(Some(NodeInfo { site_id, property_id }))
}

pub fn store(conn: &Connection, info: &NodeInfo) -> rusqlite::Result<()> {
    set(conn, "site_id", &info.site_id)?;
    set(conn, "property_id", &info.property_id)
}
