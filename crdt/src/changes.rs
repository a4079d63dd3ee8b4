//! Reading changes out in cr-sqlite's `crsql_changes` shape: `table, pk, cid, val,
//! col_version, db_version, site_id, cl, seq`, ordered by `db_version`, then `seq`.

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use crate::capture::{CrdtError, ident, replicated_tables, shape};

/// One change: the current state of one column (or of the row sentinel, `cid = "-1"`) of one
/// row, with its clock.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: String,
    /// The row's primary key in cr-sqlite's packed encoding (`crate::pk`).
    pub pk: Vec<u8>,
    /// The column, or `-1` for the row sentinel.
    pub cid: String,
    pub val: SqlValue,
    pub col_version: i64,
    pub db_version: i64,
    pub site_id: Vec<u8>,
    /// Causal length of the row: odd while it exists, even once deleted.
    pub cl: i64,
    pub seq: i64,
}

/// The SQL selecting one table's changes with `db_version > ?1`.
fn table_changes_sql(conn: &Connection, table: &str) -> Result<String, CrdtError> {
    let s = shape(conn, table)?;
    let t = ident(table);
    let pks_t = ident(&format!("{table}__crdt_pks"));
    let clock_t = ident(&format!("{table}__crdt_clock"));
    let packed = s.pks.iter().map(|p| format!("p.{}", ident(p))).collect::<Vec<_>>().join(", ");
    let join =
        s.pks.iter().map(|p| format!("r.{0} = p.{0}", ident(p))).collect::<Vec<_>>().join(" AND ");
    let val = if s.others.is_empty() {
        "NULL".to_string()
    } else {
        let arms: String = s
            .others
            .iter()
            .map(|c| format!(" WHEN '{}' THEN r.{}", c.replace('\'', "''"), ident(c)))
            .collect();
        format!("CASE c.col_name{arms} END")
    };
    Ok(format!(
        "SELECT '{name}', crdt_pack({packed}), c.col_name, {val}, c.col_version, c.db_version,
                coalesce(s.site_id, (SELECT site_id FROM crdt_sites WHERE ordinal = 0)),
                coalesce((SELECT col_version FROM {clock_t} WHERE key = c.key AND col_name = '-1'), 1),
                c.seq
         FROM {clock_t} c
         JOIN {pks_t} p ON p.key = c.key
         LEFT JOIN {t} r ON {join}
         LEFT JOIN crdt_sites s ON s.ordinal = c.site_id
         WHERE c.db_version > ?1",
        name = table.replace('\'', "''"),
    ))
}

/// Every change with `db_version > since`, in `db_version`, `seq` order.
pub fn changes_since(conn: &Connection, since: i64) -> Result<Vec<Change>, CrdtError> {
    let tables = replicated_tables(conn)?;
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let parts = tables.iter().map(|t| table_changes_sql(conn, t)).collect::<Result<Vec<_>, _>>()?;
    let sql = format!("{} ORDER BY 6, 9", parts.join(" UNION ALL "));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([since], |r| {
        Ok(Change {
            table: r.get(0)?,
            pk: r.get(1)?,
            cid: r.get(2)?,
            val: r.get(3)?,
            col_version: r.get(4)?,
            db_version: r.get(5)?,
            site_id: r.get(6)?,
            cl: r.get(7)?,
            seq: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
