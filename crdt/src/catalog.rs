//! What a database's replication metadata says: its replicated tables with their columns,
//! and the sites it has heard of. Loaded once per read or merge.

use std::collections::HashMap;

use rusqlite::Connection;

use crate::capture::{CrdtError, TableShape, has_meta, shape};

/// One replicated table.
#[derive(Debug)]
pub(crate) struct Table {
    pub ordinal: u32,
    pub shape: TableShape,
    /// Column name → index among the non-key columns.
    pub column_index: HashMap<String, usize>,
}

#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub tables: HashMap<u32, Table>,
    pub by_name: HashMap<String, u32>,
    /// Site ordinal → site id; ordinal 0 is this database.
    pub sites: HashMap<u32, Vec<u8>>,
    pub site_ordinals: HashMap<Vec<u8>, u32>,
}

impl Catalog {
    pub fn load(conn: &Connection) -> Result<Self, CrdtError> {
        let mut catalog = Self::default();
        if !has_meta(conn)? {
            return Ok(catalog);
        }
        let mut stmt = conn.prepare("SELECT ordinal, name FROM crdt_tables")?;
        let rows: Vec<(u32, String)> =
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        for (ordinal, name) in rows {
            let shape = shape(conn, &name)?;
            let column_index =
                shape.others.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
            catalog.by_name.insert(name, ordinal);
            catalog.tables.insert(ordinal, Table { ordinal, shape, column_index });
        }
        let mut stmt = conn.prepare("SELECT ordinal, site_id FROM crdt_sites")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?)))? {
            let (ordinal, site) = row?;
            catalog.site_ordinals.insert(site.clone(), ordinal);
            catalog.sites.insert(ordinal, site);
        }
        Ok(catalog)
    }

    pub fn table(&self, name: &str) -> Option<&Table> {
        self.by_name.get(name).and_then(|o| self.tables.get(o))
    }

    /// The site id of an ordinal.
    pub fn site(&self, ordinal: u32) -> Result<&[u8], CrdtError> {
        self.sites
            .get(&ordinal)
            .map(Vec::as_slice)
            .ok_or_else(|| CrdtError::Invalid(format!("site ordinal {ordinal} is not known")))
    }
}

impl Table {
    /// The clock in column 0 of a `row_sql()` row.
    pub fn clock_of(&self, row: &rusqlite::Row<'_>) -> Result<crate::clock::RowClock, CrdtError> {
        row.get_ref(0)?
            .as_blob()
            .ok()
            .and_then(|b| crate::clock::RowClock::decode(b).ok())
            .ok_or_else(|| CrdtError::CorruptClock(self.shape.name.clone()))
    }

    /// `SELECT clock, <row exists>, <columns> FROM clock LEFT JOIN table WHERE key = ?…`: a
    /// row's clock, whether the row exists, and its current values.
    pub fn row_sql(&self) -> String {
        use crate::capture::ident;
        let s = &self.shape;
        let cols: String = s.others.iter().map(|c| format!(", r.{}", ident(c))).collect();
        let cond = s.key_params("c.");
        format!(
            "SELECT c.clock, r.{} IS NOT NULL{cols} FROM {} c LEFT JOIN {} r ON {} WHERE {cond}",
            ident(&s.pks[0].0),
            ident(&s.clock_table()),
            ident(&s.name),
            s.key_match("r.", "c."),
        )
    }
}
