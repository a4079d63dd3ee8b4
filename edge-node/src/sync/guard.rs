//! The edge's boundary for incoming changes: every change pulled from the hub or read from a
//! changes file is screened here before it is merged, inside the same write transaction as
//! the merge, and a refused change is kept aside in the local `sync_quarantine` table with
//! its reason instead of failing the batch — the good changes are merged as before, the
//! pull cursor moves past the refused ones, and sync goes on.
//!
//! A change is refused when
//! - `crdt` would refuse it (`Replica::screen`: unknown table or column of our schema, a
//!   clock past 2^53, a malformed key) — changes of a newer schema are held by crdt as
//!   before, not refused;
//! - it carries this node's own site id: nobody else may write as us, and a change "from us"
//!   that we did not write would never be sent on (divergence, false attribution);
//! - its table is node-scope (`replication.toml`): staff accounts are never accepted from the
//!   hub or a file, so one changes-file line cannot turn a clerk into an owner;
//! - its table is property-scope and the row is not of one of this node's own properties.
//!   The row's property is derived as `replication.toml [owners]` says — the owner column's
//!   value from the change itself, another change of the same row in the batch, or the local
//!   row (a key column: the key); for `key -> parent`, the parent row's property from the
//!   batch or the local database, and the row's own `property_id`, where it has one, must
//!   agree. A row whose property cannot be told is refused too.
//!
//! Chain-scope rows (guest profiles, loyalty) are accepted from anywhere.
//!
//! This node's own properties: the property in `node_meta` (the one it was initialised for
//! and, once enrolled, the one the hub authenticates it as). A node that is not enrolled
//! also owns every property in its local `properties` table (rows it created itself, or that
//! passed this guard).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};

use crdt::protocol::{OwnedBy, Scope, Scopes};
use crdt::{Change, MergeReport, SENTINEL};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::DbError;

/// The most quarantined changes kept; older ones are dropped (and counted), so a hostile hub
/// or file cannot fill the disk.
pub const QUARANTINE_CAP: i64 = 10_000;
/// The longest unreadable file line kept in the quarantine (the rest is cut).
const MAX_RAW_LINE: usize = 8 * 1024;
/// `node_meta` key counting the quarantined changes dropped by the cap.
pub const DROPPED_KEY: &str = "sync_quarantine_dropped";
/// `node_meta` key holding the number of this node's changes the hub said it quarantined.
pub const HUB_QUARANTINED_KEY: &str = "hub_quarantined";

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Hub,
    File,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hub => "hub",
            Source::File => "file",
        }
    }
}

/// Why a change was refused, as a metrics label and in `sync_quarantine.reason_kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonKind {
    /// crdt refuses it (schema, bounds, key).
    Invalid,
    /// A file line that is not a change at all.
    Malformed,
    /// A node-scope table (staff accounts).
    NodeScope,
    /// A row of another property.
    OtherProperty,
    /// A property-scope row whose property cannot be told.
    UnknownProperty,
    /// Written with this node's own site id.
    OwnSite,
}

impl ReasonKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::Invalid => "invalid",
            ReasonKind::Malformed => "malformed",
            ReasonKind::NodeScope => "node_scope",
            ReasonKind::OtherProperty => "other_property",
            ReasonKind::UnknownProperty => "unknown_property",
            ReasonKind::OwnSite => "own_site",
        }
    }
}

/// A refused change's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: ReasonKind,
    pub reason: String,
}

impl Refusal {
    fn new(kind: ReasonKind, reason: impl Into<String>) -> Self {
        Self { kind, reason: reason.into() }
    }
}

/// Who this node is, as the guard needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub site_id: Vec<u8>,
    pub properties: BTreeSet<String>,
}

impl Identity {
    /// This node's site id and own properties (see the module documentation).
    pub fn load(conn: &Connection) -> Result<Identity, DbError> {
        let site_id = crdt::site_id(conn)?;
        let mut properties = BTreeSet::new();
        if let Some(node) = crate::node::load(conn)? {
            properties.insert(node.property_id);
        }
        // A damaged link counts as enrolled: the stricter reading.
        let enrolled = !matches!(super::config::load(conn), Ok(None));
        if !enrolled {
            let mut stmt = conn.prepare_cached("SELECT id FROM properties")?;
            for id in stmt.query_map([], |r| r.get::<_, String>(0))? {
                properties.insert(id?);
            }
        }
        Ok(Identity { site_id, properties })
    }
}

/// A table's columns as this database has them.
struct TableInfo {
    /// Key columns in key order (the order of the packed `pk`).
    keys: Vec<String>,
    columns: BTreeSet<String>,
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn table_info(conn: &Connection, table: &str) -> Result<Option<TableInfo>, DbError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", ident(table)))?;
    let mut cols: Vec<(i64, String)> = Vec::new();
    let mut columns = BTreeSet::new();
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))? {
        let (name, pk) = row?;
        if pk > 0 {
            cols.push((pk, name.clone()));
        }
        columns.insert(name);
    }
    if columns.is_empty() {
        return Ok(None);
    }
    cols.sort();
    Ok(Some(TableInfo { keys: cols.into_iter().map(|(_, n)| n).collect(), columns }))
}

fn to_sql(v: &crdt::Value) -> SqlValue {
    match v {
        crdt::Value::Null => SqlValue::Null,
        crdt::Value::Integer(i) => SqlValue::Integer(*i),
        crdt::Value::Real(f) => SqlValue::Real(*f),
        crdt::Value::Text(s) => SqlValue::Text(s.clone()),
        crdt::Value::Blob(b) => SqlValue::Blob(b.clone()),
    }
}

/// A row's key as people read it: its values as SQLite literals, or the packed key in hex
/// when it does not unpack.
pub fn readable_pk(pk: &[u8]) -> String {
    match crdt::unpack(pk) {
        Ok(values) => {
            values.iter().map(|v| crdt::wire::quote(&to_sql(v))).collect::<Vec<_>>().join(", ")
        }
        Err(_) => format!("X'{}'", hex::encode_upper(pk)),
    }
}

/// Derives rows' properties for one batch, remembering what it looked up.
struct Owners<'a> {
    conn: &'a Connection,
    scopes: &'a Scopes,
    /// Values of owner-relevant columns the batch carries, per (table, pk, column).
    batch: HashMap<(&'a str, &'a [u8], &'a str), Vec<&'a SqlValue>>,
    tables: HashMap<String, Option<TableInfo>>,
}

/// The column that names a row's property where it has one of its own, besides `[owners]`.
const PROPERTY_COLUMN: &str = "property_id";

impl<'a> Owners<'a> {
    fn new(conn: &'a Connection, scopes: &'a Scopes, changes: &'a [Change]) -> Self {
        let mut relevant: BTreeSet<&str> = BTreeSet::from([PROPERTY_COLUMN]);
        for (table, _) in scopes.iter() {
            match scopes.owner(table) {
                Some(OwnedBy::Column(c)) => relevant.insert(c.as_str()),
                Some(OwnedBy::Parent { column, .. }) => relevant.insert(column.as_str()),
                None => false,
            };
        }
        let mut batch: HashMap<_, Vec<&SqlValue>> = HashMap::new();
        for c in changes {
            if c.cid != SENTINEL && relevant.contains(c.cid.as_str()) {
                batch
                    .entry((c.table.as_str(), c.pk.as_slice(), c.cid.as_str()))
                    .or_default()
                    .push(&c.val);
            }
        }
        Self { conn, scopes, batch, tables: HashMap::new() }
    }

    fn info(&mut self, table: &str) -> Result<Option<&TableInfo>, DbError> {
        if !self.tables.contains_key(table) {
            let info = table_info(self.conn, table)?;
            self.tables.insert(table.to_string(), info);
        }
        Ok(self.tables.get(table).and_then(Option::as_ref))
    }

    /// Every value the row `(table, pk)` is known to have in `column`: the key's own value
    /// for a key column, else the batch's values and the local row's.
    fn values(&mut self, table: &str, pk: &[u8], column: &str) -> Result<Vec<SqlValue>, DbError> {
        let Some(info) = self.info(table)? else { return Ok(Vec::new()) };
        let key = crdt::unpack(pk).ok().filter(|k| k.len() == info.keys.len());
        if let Some(i) = info.keys.iter().position(|k| k == column) {
            return Ok(key.map(|k| vec![to_sql(&k[i])]).unwrap_or_default());
        }
        if !info.columns.contains(column) {
            return Ok(Vec::new());
        }
        let where_clause = info
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} IS ?{}", ident(k), i + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!("SELECT {} FROM {} WHERE {where_clause}", ident(column), ident(table));
        let mut out: Vec<SqlValue> = self
            .batch
            .get(&(table, pk, column))
            .map(|vs| vs.iter().map(|v| (*v).clone()).collect())
            .unwrap_or_default();
        if let Some(key) = key {
            let local: Option<SqlValue> = self
                .conn
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(key.iter().map(to_sql)), |r| r.get(0))
                .optional()?;
            out.extend(local);
        }
        Ok(out)
    }

    /// The properties the row `(table, pk)` of a property-scope table is known to belong to
    /// (several when the sources disagree); empty when nothing says.
    fn properties(&mut self, table: &str, pk: &[u8]) -> Result<Vec<SqlValue>, DbError> {
        match self.scopes.owner(table).cloned() {
            None => Ok(Vec::new()),
            Some(OwnedBy::Column(column)) => self.values(table, pk, &column),
            Some(OwnedBy::Parent { column, table: parent }) => {
                let Some(OwnedBy::Column(parent_column)) = self.scopes.owner(&parent).cloned()
                else {
                    return Ok(Vec::new());
                };
                let mut found = Vec::new();
                for parent_id in self.values(table, pk, &column)? {
                    let Ok(parent_pk) = crdt::pack(&[match parent_id {
                        SqlValue::Text(s) => crdt::Value::Text(s),
                        SqlValue::Integer(i) => crdt::Value::Integer(i),
                        SqlValue::Blob(b) => crdt::Value::Blob(b),
                        _ => continue,
                    }]) else {
                        continue;
                    };
                    found.extend(self.values(&parent, &parent_pk, &parent_column)?);
                }
                if found.is_empty() {
                    return Ok(found);
                }
                // The row's own property column, where it has one and it is set, must agree.
                if column != PROPERTY_COLUMN {
                    found.extend(
                        self.values(table, pk, PROPERTY_COLUMN)?
                            .into_iter()
                            .filter(|v| !matches!(v, SqlValue::Text(s) if s.is_empty())),
                    );
                }
                Ok(found)
            }
        }
    }
}

fn shown(v: &SqlValue) -> String {
    match v {
        SqlValue::Text(s) => s.clone(),
        other => crdt::wire::quote(other),
    }
}

/// The verdict on a property-scope row of `table` known to belong to `found`.
fn row_verdict(table: &str, found: &[SqlValue], me: &Identity) -> Option<Refusal> {
    if found.is_empty() {
        return Some(Refusal::new(
            ReasonKind::UnknownProperty,
            format!(
                "the property of this {table} row is not known (not in the change, its batch \
                 or this database)"
            ),
        ));
    }
    found.iter().find(|v| !matches!(v, SqlValue::Text(s) if me.properties.contains(s))).map(
        |other| {
            Refusal::new(
                ReasonKind::OtherProperty,
                format!("this {table} row belongs to property {}, not this node's", shown(other)),
            )
        },
    )
}

/// Screens `changes` (change `i` written in schema `schema_of(i)`, `None`: ours): per change
/// `None` when it may be merged (or held for a newer schema), or why not.
pub fn screen(
    conn: &Connection,
    replica: &crdt::Replica,
    scopes: &Scopes,
    me: &Identity,
    changes: &[Change],
    schema_of: impl Fn(usize) -> Option<i64>,
) -> Result<Vec<Option<Refusal>>, DbError> {
    let crdt_verdicts = replica.screen(conn, changes, schema_of)?;
    let mut owners = Owners::new(conn, scopes, changes);
    let mut rows: HashMap<(&str, &[u8]), Option<Refusal>> = HashMap::new();
    let mut out = Vec::with_capacity(changes.len());
    for (c, verdict) in changes.iter().zip(crdt_verdicts) {
        if let Some(reason) = verdict {
            out.push(Some(Refusal::new(ReasonKind::Invalid, reason)));
            continue;
        }
        if c.site_id == me.site_id {
            out.push(Some(Refusal::new(
                ReasonKind::OwnSite,
                format!(
                    "written with this node's own site id {}, but not by this node",
                    hex::encode(&c.site_id)
                ),
            )));
            continue;
        }
        match scopes.get(&c.table) {
            // A table of a newer schema, which crdt holds until we migrate: its scope is not
            // known yet.
            None if owners.info(&c.table)?.is_none() => out.push(None),
            None => out.push(Some(Refusal::new(
                ReasonKind::Invalid,
                format!("table {} is not replicated (not in replication.toml)", c.table),
            ))),
            Some(Scope::Chain) => out.push(None),
            Some(Scope::Node) => out.push(Some(Refusal::new(
                ReasonKind::NodeScope,
                format!(
                    "table {} is kept on each node (staff accounts); it is never accepted from \
                     the hub or a file",
                    c.table
                ),
            ))),
            Some(Scope::Property) => {
                let verdict = match rows.entry((c.table.as_str(), c.pk.as_slice())) {
                    Entry::Occupied(known) => known.get().clone(),
                    Entry::Vacant(slot) => {
                        let found = owners.properties(&c.table, &c.pk)?;
                        slot.insert(row_verdict(&c.table, &found, me)).clone()
                    }
                };
                out.push(verdict);
            }
        }
    }
    Ok(out)
}

/// What to keep of one refused change.
pub struct Quarantined<'a> {
    pub table: &'a str,
    pub pk: String,
    pub cid: &'a str,
    /// The change as a changes-file line, or an unreadable line as it was.
    pub change: String,
    pub refusal: &'a Refusal,
}

/// Writes refused changes to `sync_quarantine`, counts them in
/// `stayos_sync_quarantined_total`, and drops the oldest past [`QUARANTINE_CAP`].
pub fn quarantine<'a>(
    conn: &Connection,
    source: Source,
    entries: impl IntoIterator<Item = Quarantined<'a>>,
) -> Result<u64, DbError> {
    let now = crate::time::now_ms();
    let mut count = 0;
    {
        let mut stmt = conn.prepare_cached(
            "INSERT INTO sync_quarantine
                 (received_at, source, table_name, pk, cid, change, reason_kind, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for e in entries {
            let mut change = e.change;
            if change.len() > MAX_RAW_LINE {
                let mut end = MAX_RAW_LINE;
                while !change.is_char_boundary(end) {
                    end -= 1;
                }
                change.truncate(end);
            }
            stmt.execute(params![
                now,
                source.as_str(),
                e.table,
                e.pk,
                e.cid,
                change,
                e.refusal.kind.as_str(),
                e.refusal.reason
            ])?;
            metrics::counter!(
                "stayos_sync_quarantined_total",
                "source" => source.as_str(),
                "reason_kind" => e.refusal.kind.as_str()
            )
            .increment(1);
            count += 1;
        }
    }
    if count > 0 {
        let dropped = conn.execute(
            "DELETE FROM sync_quarantine WHERE id <= (SELECT max(id) FROM sync_quarantine) - ?1",
            [QUARANTINE_CAP],
        )?;
        if dropped > 0 {
            add_meta_count(conn, DROPPED_KEY, dropped as i64)?;
        }
    }
    Ok(count)
}

fn add_meta_count(conn: &Connection, key: &str, n: i64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO node_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
        params![key, n],
    )?;
    Ok(())
}

/// A counter kept in `node_meta` (0 when absent).
pub fn meta_count(conn: &Connection, key: &str) -> Result<u64, DbError> {
    let v: Option<i64> = conn
        .query_row("SELECT CAST(value AS INTEGER) FROM node_meta WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

/// Adds changes of this node the hub quarantined (from one push acknowledgement) to the count
/// `/sync/status` shows.
pub fn add_hub_quarantined(conn: &Connection, count: u64) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO node_meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
        params![HUB_QUARANTINED_KEY, i64::try_from(count).unwrap_or(i64::MAX)],
    )?;
    Ok(())
}

/// What [`admit`] let through, and what it refused.
#[derive(Debug)]
pub struct Admitted {
    /// The accepted changes, in their order.
    pub changes: Vec<Change>,
    /// The schema version of each accepted change.
    pub schemas: Vec<Option<i64>>,
    /// The refused changes' indexes in the input, with why.
    pub refused: Vec<(usize, Refusal)>,
}

/// Screens `changes`, quarantines the refused ones and returns the rest with their schema
/// versions (in order).
pub fn admit(
    conn: &Connection,
    replica: &crdt::Replica,
    scopes: &Scopes,
    source: Source,
    changes: Vec<Change>,
    schemas: Vec<Option<i64>>,
) -> Result<Admitted, DbError> {
    let me = Identity::load(conn)?;
    let verdicts = screen(conn, replica, scopes, &me, &changes, |i| schemas[i])?;
    if verdicts.iter().all(Option::is_none) {
        return Ok(Admitted { changes, schemas, refused: Vec::new() });
    }
    let refused: Vec<(usize, Refusal)> =
        verdicts.iter().enumerate().filter_map(|(i, v)| v.clone().map(|r| (i, r))).collect();
    quarantine(
        conn,
        source,
        refused.iter().map(|(i, refusal)| {
            let c = &changes[*i];
            Quarantined {
                table: &c.table,
                pk: readable_pk(&c.pk),
                cid: &c.cid,
                change: crdt::wire::change_line_with_schema(c, schemas[*i]),
                refusal,
            }
        }),
    )?;
    let mut kept = Vec::with_capacity(changes.len() - refused.len());
    let mut kept_schemas = Vec::with_capacity(kept.capacity());
    for ((c, s), v) in changes.into_iter().zip(schemas).zip(verdicts) {
        if v.is_none() {
            kept.push(c);
            kept_schemas.push(s);
        }
    }
    Ok(Admitted { changes: kept, schemas: kept_schemas, refused })
}

/// Merges a batch pulled from the hub: screened, the refused changes quarantined, the rest
/// merged by crdt with the cursor moving to the batch's end (past the refused ones too).
/// A batch with nothing refused merges exactly as `Replica::merge` would.
pub fn merge_from_hub(
    conn: &Connection,
    replica: &crdt::Replica,
    scopes: &Scopes,
    mut set: crdt::Changeset,
) -> Result<(MergeReport, usize), DbError> {
    let schemas = vec![Some(set.schema_version); set.changes.len()];
    let changes = std::mem::take(&mut set.changes);
    let Admitted { changes: kept, refused, .. } =
        admit(conn, replica, scopes, Source::Hub, changes, schemas)?;
    if !refused.is_empty() {
        tracing::warn!(
            refused = refused.len(),
            first = %refused[0].1.reason,
            "sync: changes from the hub quarantined"
        );
    }
    set.changes = kept;
    Ok((replica.merge(conn, &set)?, refused.len()))
}

/// One quarantined change as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub id: i64,
    pub received_at: i64,
    pub source: String,
    pub table: String,
    pub pk: String,
    pub cid: String,
    pub change: String,
    pub reason_kind: String,
    pub reason: String,
}

/// Quarantined changes, newest first: at most `limit`, with an id below `before`.
pub fn entries(
    conn: &Connection,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<QuarantineEntry>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, received_at, source, table_name, pk, cid, change, reason_kind, reason
         FROM sync_quarantine WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![before.unwrap_or(i64::MAX), limit], |r| {
            Ok(QuarantineEntry {
                id: r.get(0)?,
                received_at: r.get(1)?,
                source: r.get(2)?,
                table: r.get(3)?,
                pk: r.get(4)?,
                cid: r.get(5)?,
                change: r.get(6)?,
                reason_kind: r.get(7)?,
                reason: r.get(8)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// How many changes this node has quarantined in all: those kept and those dropped by the
/// cap.
pub fn total(conn: &Connection) -> Result<(u64, u64), DbError> {
    let kept: i64 = conn.query_row("SELECT count(*) FROM sync_quarantine", [], |r| r.get(0))?;
    let dropped = meta_count(conn, DROPPED_KEY)?;
    Ok((kept.max(0) as u64 + dropped, dropped))
}

#[cfg(test)]
mod tests;
