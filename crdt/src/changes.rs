//! Reading changes out in cr-sqlite's `crsql_changes` shape: `table, pk, cid, val,
//! col_version, db_version, site_id, cl, seq`, ordered by `db_version`, then `seq`.
//!
//! `crdt_log` says which rows each database version touched; each such row's clock says which
//! of its registers that version wrote, and the row itself holds their values.

use std::collections::BTreeSet;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params_from_iter};

use crate::capture::CrdtError;
use crate::catalog::Catalog;
use crate::pk;

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

/// The `cid` of the row sentinel.
pub const SENTINEL: &str = "-1";

/// Every change with `db_version > since`, in `db_version`, `seq` order, leaving out those
/// written by `exclude` (a site id: the peer asking already has its own writes).
pub fn changes_since(
    conn: &Connection,
    since: i64,
    exclude: Option<&[u8]>,
) -> Result<Vec<Change>, CrdtError> {
    let mut out = Vec::new();
    for_each_change_since(conn, since, exclude, |c| {
        out.push(c);
        Ok(())
    })?;
    Ok(out)
}

/// Like [`changes_since`], handing each change to `f` instead of collecting them, one
/// database version at a time, so a large export does not sit in memory.
pub fn for_each_change_since(
    conn: &Connection,
    since: i64,
    exclude: Option<&[u8]>,
    f: impl FnMut(Change) -> Result<(), CrdtError>,
) -> Result<(), CrdtError> {
    let sites = match exclude {
        Some(site) => Sites::Except(site),
        None => Sites::All,
    };
    for_each_change_between(conn, since, i64::MAX, sites, f)
}

/// Whose changes to read.
#[derive(Debug, Clone, Copy)]
pub enum Sites<'a> {
    All,
    /// Only those written by this site (an edge pushes only its own writes).
    Only(&'a [u8]),
    /// All but those written by this site (the peer asking already has its own).
    Except(&'a [u8]),
}

impl Sites<'_> {
    fn wants(&self, site: &[u8]) -> bool {
        match self {
            Sites::All => true,
            Sites::Only(s) => *s == site,
            Sites::Except(s) => *s != site,
        }
    }
}

/// The changes of database versions `since < v <= until` written by `sites`, handed to `f`
/// in `db_version`, `seq` order.
pub fn for_each_change_between(
    conn: &Connection,
    since: i64,
    until: i64,
    sites: Sites<'_>,
    mut f: impl FnMut(Change) -> Result<(), CrdtError>,
) -> Result<(), CrdtError> {
    let catalog = Catalog::load(conn)?;
    if catalog.tables.is_empty() {
        return Ok(());
    }
    let mut log = conn.prepare(
        "SELECT db_version, rows FROM crdt_log WHERE db_version > ?1 AND db_version <= ?2 \
         ORDER BY db_version, part",
    )?;
    let mut rows = log.query([since, until])?;
    let mut version = None;
    let mut touched: BTreeSet<(u32, Vec<u8>)> = BTreeSet::new();
    loop {
        let next = rows.next()?;
        let next_version = next.map(|r| r.get::<_, i64>(0)).transpose()?;
        if let Some(v) = version
            && next_version != Some(v)
        {
            for change in version_changes(conn, &catalog, v, &touched, sites)? {
                f(change)?;
            }
            touched.clear();
        }
        let Some(row) = next else { break };
        version = next_version;
        let blob: Vec<u8> = row.get(1)?;
        touched.extend(decode_log(&blob, version)?);
    }
    Ok(())
}

fn decode_log(blob: &[u8], version: Option<i64>) -> Result<Vec<(u32, Vec<u8>)>, CrdtError> {
    postcard::from_bytes(blob)
        .map_err(|_| CrdtError::Invalid(format!("crdt_log entry {version:?} is corrupt")))
}

/// How many rows a `crdt_log` entry lists, from the length its encoding starts with: no need
/// to decode the keys themselves.
fn log_len(blob: &[u8], version: i64) -> Result<usize, CrdtError> {
    postcard::take_from_bytes::<usize>(blob)
        .map(|(n, _)| n)
        .map_err(|_| CrdtError::Invalid(format!("crdt_log entry {version} is corrupt")))
}

/// Rows written (or merged) in the database versions after `since`, a row counted once per
/// version that touched it: what a peer whose cursor is at `since` has still to receive. 0
/// for a database that replicates nothing.
pub fn rows_after(conn: &Connection, since: i64) -> Result<u64, CrdtError> {
    if !crate::capture::has_meta(conn)? {
        return Ok(0);
    }
    let mut stmt =
        conn.prepare_cached("SELECT db_version, rows FROM crdt_log WHERE db_version > ?1")?;
    let mut rows = stmt.query([since])?;
    let mut total = 0u64;
    while let Some(row) = rows.next()? {
        let blob: Vec<u8> = row.get(1)?;
        total += log_len(&blob, row.get(0)?)? as u64;
    }
    Ok(total)
}

/// The end of the next bounded batch after `since`: the largest version `until` such that
/// the versions `since < v <= until` touched at most `max_rows` rows — but always at least
/// one whole version, since a batch never splits one. `since` itself when nothing is newer.
pub fn batch_end(conn: &Connection, since: i64, max_rows: usize) -> Result<i64, CrdtError> {
    let mut log = conn.prepare_cached(
        "SELECT db_version, rows FROM crdt_log WHERE db_version > ?1 ORDER BY db_version, part",
    )?;
    let mut rows = log.query([since])?;
    let (mut until, mut taken) = (since, 0usize);
    // Takes a whole version of `n` rows, unless that would pass the bound after others.
    let take = |until: &mut i64, taken: &mut usize, v: i64, n: usize| {
        if *taken > 0 && *taken + n > max_rows {
            return false;
        }
        *taken += n;
        *until = v;
        true
    };
    let (mut current, mut n) = (None, 0usize);
    while let Some(row) = rows.next()? {
        let v: i64 = row.get(0)?;
        if let Some(c) = current
            && c != v
        {
            if !take(&mut until, &mut taken, c, n) {
                return Ok(until);
            }
            n = 0;
        }
        current = Some(v);
        let blob: Vec<u8> = row.get(1)?;
        n += log_len(&blob, v)?;
    }
    if let Some(c) = current {
        take(&mut until, &mut taken, c, n);
    }
    Ok(until)
}

/// The changes database version `version` wrote to the `touched` rows, in `seq` order.
fn version_changes(
    conn: &Connection,
    catalog: &Catalog,
    version: i64,
    touched: &BTreeSet<(u32, Vec<u8>)>,
    sites: Sites<'_>,
) -> Result<Vec<Change>, CrdtError> {
    let mut out = Vec::new();
    for (ordinal, key) in touched {
        let Some(table) = catalog.tables.get(ordinal) else { continue };
        let values = pk::unpack(key).map_err(|e| CrdtError::Invalid(e.to_string()))?;
        let mut stmt = conn.prepare_cached(&table.row_sql())?;
        let mut rows = stmt.query(params_from_iter(values.iter().map(pk::Value::to_sql)))?;
        let Some(row) = rows.next()? else { continue };
        let clock = table.clock_of(row)?;
        for (column, stamp) in clock.stamps_since(version - 1) {
            if stamp.db_version != version {
                continue;
            }
            let site = catalog.site(stamp.site)?;
            if !sites.wants(site) {
                continue;
            }
            let (cid, val, col_version) = match column {
                None => (SENTINEL.to_string(), SqlValue::Null, clock.cl),
                Some(i) => (
                    table
                        .shape
                        .others
                        .get(i)
                        .cloned()
                        .ok_or_else(|| CrdtError::CorruptClock(table.shape.name.clone()))?,
                    row.get(i + 2)?,
                    clock.cell(i).map_or(0, |c| c.version),
                ),
            };
            out.push(Change {
                table: table.shape.name.clone(),
                pk: key.clone(),
                cid,
                val,
                col_version,
                db_version: version,
                site_id: site.to_vec(),
                cl: clock.cl,
                seq: stamp.seq,
            });
        }
    }
    out.sort_by_key(|c| c.seq);
    Ok(out)
}
