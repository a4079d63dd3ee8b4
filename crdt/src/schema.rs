//! The rules a table must follow to be replicated — cr-sqlite's own, kept (DESIGN.md): a
//! primary key whose columns are NOT NULL, no AUTOINCREMENT, no UNIQUE index besides the
//! primary key, no enforced REFERENCES, and a DEFAULT on every other NOT NULL column.
//!
//! Each rule exists because of how replicas meet: rows arrive column by column and in any
//! order, from sites that allocated keys independently, so anything that can make a valid
//! change from one site fail at another is refused up front, with the reason.

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("table {0} does not exist")]
    NoSuchTable(String),
    #[error(
        "table {0} has no primary key; a replicated table needs one to identify rows across sites"
    )]
    NoPrimaryKey(String),
    #[error("primary key column {table}.{column} may be NULL; declare it NOT NULL")]
    NullablePrimaryKey { table: String, column: String },
    #[error(
        "table {0} uses AUTOINCREMENT; sites would hand out the same keys — use UUIDv7 text keys"
    )]
    Autoincrement(String),
    #[error(
        "table {table} has the UNIQUE index {index} besides its primary key; concurrent writes at \
         two sites could both pass it — make the unique value the primary key of a table of its own"
    )]
    Unique { table: String, index: String },
    #[error(
        "table {table} has an enforced REFERENCES to {target}; a replica may receive a row before \
         the row it refers to — check references in the owning module instead"
    )]
    ForeignKey { table: String, target: String },
    #[error(
        "column {table}.{column} is NOT NULL without a DEFAULT; a replica receiving the row column \
         by column needs a value to start from"
    )]
    NotNullWithoutDefault { table: String, column: String },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

struct Column {
    name: String,
    not_null: bool,
    has_default: bool,
    pk: bool,
}

/// Checks that `table` can be a replicated table; the error names the first rule it breaks.
pub fn check_replicable(conn: &Connection, table: &str) -> Result<(), SchemaError> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            other => Err(other),
        })?;
    let Some(sql) = sql else {
        return Err(SchemaError::NoSuchTable(table.to_string()));
    };

    let columns: Vec<Column> = conn
        .prepare("SELECT name, \"notnull\", dflt_value IS NOT NULL, pk FROM pragma_table_info(?1)")?
        .query_map([table], |r| {
            Ok(Column {
                name: r.get(0)?,
                not_null: r.get(1)?,
                has_default: r.get(2)?,
                pk: r.get::<_, i64>(3)? > 0,
            })
        })?
        .collect::<Result<_, _>>()?;

    if !columns.iter().any(|c| c.pk) {
        return Err(SchemaError::NoPrimaryKey(table.to_string()));
    }
    if let Some(c) = columns.iter().find(|c| c.pk && !c.not_null) {
        return Err(SchemaError::NullablePrimaryKey {
            table: table.to_string(),
            column: c.name.clone(),
        });
    }
    if sql.to_ascii_uppercase().contains("AUTOINCREMENT") {
        return Err(SchemaError::Autoincrement(table.to_string()));
    }
    let unique: Option<String> = conn
        .prepare(
            "SELECT name FROM pragma_index_list(?1) WHERE \"unique\" AND origin <> 'pk' LIMIT 1",
        )?
        .query_map([table], |r| r.get(0))?
        .next()
        .transpose()?;
    if let Some(index) = unique {
        return Err(SchemaError::Unique { table: table.to_string(), index });
    }
    let target: Option<String> = conn
        .prepare("SELECT \"table\" FROM pragma_foreign_key_list(?1) LIMIT 1")?
        .query_map([table], |r| r.get(0))?
        .next()
        .transpose()?;
    if let Some(target) = target {
        return Err(SchemaError::ForeignKey { table: table.to_string(), target });
    }
    if let Some(c) = columns.iter().find(|c| !c.pk && c.not_null && !c.has_default) {
        return Err(SchemaError::NotNullWithoutDefault {
            table: table.to_string(),
            column: c.name.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ddl: &str) -> Result<(), SchemaError> {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE other (id TEXT PRIMARY KEY NOT NULL);").expect("other");
        conn.execute_batch(ddl).expect("ddl");
        check_replicable(&conn, "t")
    }

    #[test]
    fn a_table_made_for_replication_passes() {
        check(
            "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL DEFAULT '', note TEXT);
             CREATE INDEX t_by_name ON t (name);",
        )
        .expect("replicable");
        check("CREATE TABLE t (a TEXT NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b))")
            .expect("composite key");
    }

    /// Whether an error is the one a case expects.
    type Expected = fn(&SchemaError) -> bool;

    #[test]
    fn each_rule_is_refused_with_its_reason() {
        let cases: [(&str, Expected); 7] = [
            ("CREATE TABLE t (id TEXT, x TEXT)", |e| matches!(e, SchemaError::NoPrimaryKey(_))),
            (
                "CREATE TABLE t (id TEXT PRIMARY KEY, x TEXT)",
                |e| matches!(e, SchemaError::NullablePrimaryKey { column, .. } if column == "id"),
            ),
            ("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL)", |e| {
                matches!(e, SchemaError::Autoincrement(_))
            }),
            ("CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, email TEXT UNIQUE)", |e| {
                matches!(e, SchemaError::Unique { .. })
            }),
            (
                "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, e TEXT); CREATE UNIQUE INDEX t_e ON t (e);",
                |e| matches!(e, SchemaError::Unique { index, .. } if index == "t_e"),
            ),
            (
                "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, o TEXT REFERENCES other (id))",
                |e| matches!(e, SchemaError::ForeignKey { target, .. } if target == "other"),
            ),
            (
                "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL)",
                |e| matches!(e, SchemaError::NotNullWithoutDefault { column, .. } if column == "name"),
            ),
        ];
        for (ddl, expected) in cases {
            let err = check(ddl).expect_err(ddl);
            assert!(expected(&err), "{ddl}: {err}");
        }
    }

    #[test]
    fn a_missing_table_is_named() {
        let conn = Connection::open_in_memory().expect("open");
        assert!(
            matches!(check_replicable(&conn, "nope"), Err(SchemaError::NoSuchTable(t)) if t == "nope")
        );
    }
}
