//! The edge schema the hub mirrors: each replicated table's scope, columns and key, and the
//! PostgreSQL read table (`replica.<table>`) built from it.
//!
//! The hub does not keep its own copy of the edge DDL: it runs the edge's own migrations on
//! an in-memory SQLite and reads `PRAGMA table_info`, so a new edge migration is mirrored by
//! rebuilding the hub, with no second schema to keep in step.

use std::collections::BTreeMap;

use crdt::protocol::{OwnedBy, Scope, Scopes};
use include_dir::{Dir, include_dir};
use rusqlite::Connection;
use rusqlite::types::Value;

use crate::db::HubError;

static EDGE_MIGRATIONS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../migrations/edge");

/// The PostgreSQL type of a read-table column, from the edge column's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Text,
    BigInt,
    Double,
    Bytea,
}

impl PgType {
    fn from_sqlite(decl: &str) -> Self {
        match decl.trim().to_ascii_uppercase().as_str() {
            "INTEGER" => Self::BigInt,
            "REAL" => Self::Double,
            "BLOB" => Self::Bytea,
            _ => Self::Text,
        }
    }

    pub fn sql(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::BigInt => "bigint",
            Self::Double => "double precision",
            Self::Bytea => "bytea",
        }
    }
}

/// One column of a replicated table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub pg_type: PgType,
    /// The value SQLite gives the column when a row is inserted without it (its `DEFAULT`
    /// literal after the column's type affinity); NULL without one.
    pub default: Value,
    /// Declared `NOT NULL` on the edge: no node could apply a NULL for it.
    pub not_null: bool,
}

/// One replicated table (scope property or chain; node-scope tables never reach the hub).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    pub scope: Scope,
    /// Every column, in the edge's order.
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the primary key, in key order.
    pub key: Vec<usize>,
}

impl Table {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// `"a", "b"` for the key columns.
    pub(crate) fn key_list(&self) -> String {
        self.key.iter().map(|&i| quote_ident(&self.columns[i].name)).collect::<Vec<_>>().join(", ")
    }

    /// `replica."name"`.
    pub(crate) fn read_table(&self) -> String {
        format!("replica.{}", quote_ident(&self.name))
    }

    /// The read table's `CREATE TABLE IF NOT EXISTS`.
    pub(crate) fn create_sql(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let not_null = if self.key.contains(&i) { " NOT NULL" } else { "" };
                format!("{} {}{not_null}", quote_ident(&c.name), c.pg_type.sql())
            })
            .collect();
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY ({}))",
            self.read_table(),
            columns.join(", "),
            self.key_list()
        )
    }
}

/// The replicated edge tables the hub knows, and the edge schema version they are.
#[derive(Debug, Clone)]
pub struct HubSchema {
    tables: BTreeMap<String, Table>,
    scopes: Scopes,
    version: i64,
}

impl HubSchema {
    /// The edge schema embedded in this binary: `migrations/edge/*/up.sql` in name order and
    /// `migrations/edge/replication.toml`.
    pub fn edge() -> Result<Self, HubError> {
        let scopes_file = EDGE_MIGRATIONS
            .get_file("replication.toml")
            .and_then(|f| f.contents_utf8())
            .ok_or_else(|| {
                HubError::Invalid("migrations/edge/replication.toml is missing".into())
            })?;
        let scopes = Scopes::parse(scopes_file).map_err(|e| HubError::Invalid(e.to_string()))?;
        let mut dirs: Vec<&Dir<'_>> = EDGE_MIGRATIONS.dirs().collect();
        dirs.sort_by_key(|d| d.path());
        let conn = Connection::open_in_memory().map_err(sqlite)?;
        for dir in &dirs {
            let sql = dir
                .get_file(dir.path().join("up.sql"))
                .and_then(|f| f.contents_utf8())
                .ok_or_else(|| HubError::Invalid(format!("{}: no up.sql", dir.path().display())))?;
            conn.execute_batch(sql).map_err(|e| {
                HubError::Invalid(format!("edge migration {}: {e}", dir.path().display()))
            })?;
        }
        let version = i64::try_from(dirs.len()).unwrap_or(i64::MAX);
        Self::build(&conn, scopes, version)
    }

    /// A schema from SQLite DDL and scopes, version 1 (tests use their own tables).
    pub fn from_sqlite(ddl: &str, scopes: &Scopes) -> Result<Self, HubError> {
        let conn = Connection::open_in_memory().map_err(sqlite)?;
        conn.execute_batch(ddl).map_err(sqlite)?;
        Self::build(&conn, scopes.clone(), 1)
    }

    fn build(conn: &Connection, scopes: Scopes, version: i64) -> Result<Self, HubError> {
        let mut tables = BTreeMap::new();
        for (name, scope) in scopes.iter() {
            if scope == Scope::Node {
                continue;
            }
            check_ident(name)?;
            tables.insert(name.to_string(), read_table(conn, name, scope)?);
        }
        // Each owner names a column the table has; a parent's column is part of the key (a
        // row's property can never change) and the parent table keyed by that one column.
        for (name, table) in &tables {
            let bad =
                |why: String| HubError::Invalid(format!("replication.toml owners.{name}: {why}"));
            match scopes.owner(name) {
                Some(OwnedBy::Column(col)) if table.column(col).is_none() => {
                    return Err(bad(format!("{name} has no column {col}")));
                }
                None | Some(OwnedBy::Column(_)) => {}
                Some(OwnedBy::Parent { column, table: parent }) => {
                    let in_key = table.key.iter().any(|&k| table.columns[k].name == *column);
                    if !in_key {
                        return Err(bad(format!("{column} is not a key column of {name}")));
                    }
                    if tables.get(parent).is_none_or(|p| p.key.len() != 1) {
                        return Err(bad(format!("{parent} is not a table with a one-column key")));
                    }
                }
            }
        }
        Ok(Self { tables, scopes, version })
    }

    /// The same schema said to be edge schema version `version` (tests of upgrades).
    pub fn with_version(mut self, version: i64) -> Self {
        self.version = version;
        self
    }

    /// How rows of a property-scope table name their property (replication.toml `[owners]`).
    pub fn owner(&self, table: &str) -> Option<&OwnedBy> {
        self.scopes.owner(table)
    }

    /// The edge's replicated schema version this schema is.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The read table of `name`, if the hub projects it (scope property or chain).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    /// Every projected table, by name.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// The scope of a table the edge schema names (including node-scope tables).
    pub fn scope(&self, name: &str) -> Option<Scope> {
        self.scopes.get(name)
    }
}

fn sqlite(e: rusqlite::Error) -> HubError {
    HubError::Invalid(format!("edge schema: {e}"))
}

/// Double-quotes an identifier for PostgreSQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether `name` is a plain SQL identifier (what every edge table and column name is).
pub(crate) fn is_ident(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.len() <= 63
}

fn check_ident(name: &str) -> Result<(), HubError> {
    if is_ident(name) {
        Ok(())
    } else {
        Err(HubError::Invalid(format!("{name:?} is not a plain identifier")))
    }
}

fn read_table(conn: &Connection, name: &str, scope: Scope) -> Result<Table, HubError> {
    let mut stmt = conn
        .prepare("SELECT name, type, dflt_value, pk, \"notnull\" FROM pragma_table_info(?1)")
        .map_err(sqlite)?;
    let rows: Vec<(String, String, Option<String>, i64, bool)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .map_err(sqlite)?
        .collect::<Result<_, _>>()
        .map_err(sqlite)?;
    if rows.is_empty() {
        return Err(HubError::Invalid(format!(
            "replication.toml names table {name}, which the edge schema does not have"
        )));
    }
    let mut columns = Vec::with_capacity(rows.len());
    let mut key: Vec<(i64, usize)> = Vec::new();
    for (i, (column, decl, default, pk, not_null)) in rows.into_iter().enumerate() {
        check_ident(&column)?;
        if pk > 0 {
            key.push((pk, i));
        }
        let default = match default {
            Some(literal) => stored_default(conn, &decl, &literal)?,
            None => Value::Null,
        };
        let pg_type = PgType::from_sqlite(&decl);
        columns.push(Column { name: column, pg_type, default, not_null });
    }
    if key.is_empty() {
        return Err(HubError::Invalid(format!("table {name} has no primary key")));
    }
    key.sort_unstable();
    Ok(Table {
        name: name.to_string(),
        scope,
        columns,
        key: key.into_iter().map(|(_, i)| i).collect(),
    })
}

/// The value SQLite stores for a column's `DEFAULT` literal: the literal after the column's
/// type affinity (`INTEGER DEFAULT '0'` stores the integer 0), as the crdt replica's rows
/// get it. A default that is not a literal (an expression) cannot be reproduced: NULL.
fn stored_default(conn: &Connection, decl: &str, literal: &str) -> Result<Value, HubError> {
    let Ok(value) = crdt::wire::unquote(literal) else {
        tracing::warn!(
            default = literal,
            "an edge column default is not a literal; the hub uses NULL"
        );
        return Ok(Value::Null);
    };
    // A one-column probe with the same declared type applies SQLite's own affinity rules.
    let decl = if decl.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'_') {
        decl
    } else {
        ""
    };
    conn.execute_batch(&format!(
        "CREATE TEMP TABLE hub_default_probe (c {decl} DEFAULT {}); \
         INSERT INTO hub_default_probe DEFAULT VALUES;",
        crdt::wire::quote(&value)
    ))
    .map_err(sqlite)?;
    let stored = conn.query_row("SELECT c FROM hub_default_probe", [], |r| r.get(0));
    conn.execute_batch("DROP TABLE hub_default_probe").map_err(sqlite)?;
    stored.map_err(sqlite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_edge_schema_mirrors_every_hub_synced_table() {
        let schema = HubSchema::edge().expect("edge schema");
        assert!(schema.version() >= 2);
        let reservations = schema.table("reservations").expect("reservations");
        assert_eq!(reservations.scope, Scope::Property);
        assert!(schema.table("staff").is_none(), "node scope stays on the node");
        assert_eq!(schema.scope("staff"), Some(Scope::Node));
        let guests = schema.table("guests").expect("guests");
        assert_eq!(guests.scope, Scope::Chain);
        let properties = schema.table("properties").expect("properties");
        assert_eq!(
            properties.column("currency").map(|c| c.default.clone()),
            Some(Value::Text("EUR".into()))
        );
        assert_eq!(properties.column("created_at").map(|c| c.pg_type), Some(PgType::BigInt));
    }

    #[test]
    fn defaults_follow_sqlite_affinity_and_keys_keep_their_order() {
        let scopes =
            Scopes::parse("[tables]\nt = \"property\"\n[owners]\nt = \"b\"\n").expect("scopes");
        let schema = HubSchema::from_sqlite(
            "CREATE TABLE t (b TEXT NOT NULL, a INTEGER NOT NULL, n INTEGER DEFAULT '7', \
             r REAL DEFAULT 2, x DEFAULT 'x', PRIMARY KEY (a, b))",
            &scopes,
        )
        .expect("schema");
        let t = schema.table("t").expect("t");
        assert_eq!(t.key, vec![1, 0]);
        assert_eq!(t.column("n").map(|c| c.default.clone()), Some(Value::Integer(7)));
        assert_eq!(t.column("r").map(|c| c.default.clone()), Some(Value::Real(2.0)));
        assert_eq!(
            t.column("x").map(|c| (c.pg_type, c.default.clone())),
            Some((PgType::Text, Value::Text("x".into())))
        );
        assert_eq!(schema.version(), 1);
    }
}
