//! The changeset file format of DESIGN.md (also what `stayos-edge changes export|import`
//! reads and writes): JSON Lines, one change per line —
//! `{"table":…,"pk":"<hex>","cid":…,"val":"<SQLite quote() literal>","col_version":n,
//! "db_version":n,"site_id":"<hex>","cl":n,"seq":n,"schema_version":n}`.
//! `schema_version` (the writer's replicated schema version) is this project's addition; a
//! line without it is taken to be of the reader's own schema.

use rusqlite::types::Value as SqlValue;
use serde::{Deserialize, Serialize};

use crate::changes::Change;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    table: String,
    pk: String,
    cid: String,
    val: String,
    col_version: i64,
    db_version: i64,
    site_id: String,
    cl: i64,
    seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schema_version: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("not a change: {0}")]
    Json(String),
    #[error("{field} is not hex: {reason}")]
    Hex { field: &'static str, reason: String },
    #[error("val {0:?} is not an SQLite literal (NULL, a number, 'text' or X'hex')")]
    Literal(String),
}

/// SQLite's `quote()` of a value: the literal that reads back as the same value.
pub fn quote(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => "NULL".into(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(f) if f.is_infinite() => {
            if *f > 0.0 {
                "9.0e+999".into()
            } else {
                "-9.0e+999".into()
            }
        }
        SqlValue::Real(f) => {
            // Rust prints the shortest text that reads back as the same double; SQLite needs
            // a '.' or an exponent to read it as a real.
            let s = format!("{f:?}");
            if s.contains(['.', 'e', 'E']) { s } else { format!("{s}.0") }
        }
        SqlValue::Text(s) => format!("'{}'", s.replace('\'', "''")),
        SqlValue::Blob(b) => format!("X'{}'", hex::encode_upper(b)),
    }
}

/// Reads an SQLite literal as `quote()` writes it.
pub fn unquote(s: &str) -> Result<SqlValue, WireError> {
    let bad = || WireError::Literal(s.to_string());
    if s.eq_ignore_ascii_case("NULL") {
        return Ok(SqlValue::Null);
    }
    if let Some(body) = s.strip_prefix(['X', 'x']).and_then(|r| r.strip_prefix('\'')) {
        let hex = body.strip_suffix('\'').ok_or_else(bad)?;
        return hex::decode(hex).map(SqlValue::Blob).map_err(|_| bad());
    }
    if let Some(body) = s.strip_prefix('\'') {
        let inner = body.strip_suffix('\'').ok_or_else(bad)?;
        // Every quote inside must be doubled.
        if inner.replace("''", "").contains('\'') {
            return Err(bad());
        }
        return Ok(SqlValue::Text(inner.replace("''", "'")));
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(match s.parse::<i64>() {
            Ok(i) => SqlValue::Integer(i),
            // Like SQLite, an integer too large for 64 bits is a real.
            Err(_) => SqlValue::Real(s.parse().map_err(|_| bad())?),
        });
    }
    let numeric = digits.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b));
    if numeric && digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return s.parse::<f64>().map(SqlValue::Real).map_err(|_| bad());
    }
    Err(bad())
}

/// One change as a line of the file format (without the newline).
pub fn change_line_with_schema(c: &Change, schema_version: Option<i64>) -> String {
    let line = Line {
        table: c.table.clone(),
        pk: hex::encode_upper(&c.pk),
        cid: c.cid.clone(),
        val: quote(&c.val),
        col_version: c.col_version,
        db_version: c.db_version,
        site_id: hex::encode_upper(&c.site_id),
        cl: c.cl,
        seq: c.seq,
        schema_version,
    };
    serde_json::to_string(&line).expect("serialising strings and integers cannot fail")
}

/// One change as a line, without a schema version.
pub fn change_line(c: &Change) -> String {
    change_line_with_schema(c, None)
}

/// Reads one line of the file format: the change and the schema version it names.
pub fn parse_line(line: &str) -> Result<(Change, Option<i64>), WireError> {
    let l: Line = serde_json::from_str(line).map_err(|e| WireError::Json(e.to_string()))?;
    let pk =
        hex::decode(&l.pk).map_err(|e| WireError::Hex { field: "pk", reason: e.to_string() })?;
    let site_id = hex::decode(&l.site_id)
        .map_err(|e| WireError::Hex { field: "site_id", reason: e.to_string() })?;
    let change = Change {
        table: l.table,
        pk,
        cid: l.cid,
        val: unquote(&l.val)?,
        col_version: l.col_version,
        db_version: l.db_version,
        site_id,
        cl: l.cl,
        seq: l.seq,
    };
    Ok((change, l.schema_version))
}

/// Reads one line, ignoring its schema version.
pub fn parse_change(line: &str) -> Result<Change, WireError> {
    parse_line(line).map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = SqlValue> {
        prop_oneof![
            Just(SqlValue::Null),
            any::<i64>().prop_map(SqlValue::Integer),
            any::<f64>().prop_filter("SQLite has no NaN", |f| !f.is_nan()).prop_map(SqlValue::Real),
            // SQL text cannot hold a NUL character, so neither can a literal.
            "[^\\x00]*".prop_map(SqlValue::Text),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(SqlValue::Blob),
        ]
    }

    proptest! {
        /// Our literals read back as the same values, in SQLite itself as well as here.
        #[test]
        fn literals_read_back_as_the_same_value_in_sqlite(v in value()) {
            let literal = quote(&v);
            prop_assert_eq!(unquote(&literal).expect("unquote"), v.clone());
            let conn = rusqlite::Connection::open_in_memory().expect("open");
            let sqlite: SqlValue = conn
                .query_row(&format!("SELECT {literal}"), [], |r| r.get(0))
                .expect("SQLite reads the literal");
            prop_assert_eq!(sqlite, v);
        }

        /// SQLite's own quote() output reads back as the value.
        #[test]
        fn sqlite_quote_output_is_read(v in value()) {
            let conn = rusqlite::Connection::open_in_memory().expect("open");
            let theirs: String =
                conn.query_row("SELECT quote(?1)", [&v], |r| r.get(0)).expect("quote");
            prop_assert_eq!(unquote(&theirs).expect("unquote"), v);
        }
    }

    #[test]
    fn malformed_literals_are_refused() {
        for bad in
            ["", "'open", "X'ABC'", "X'zz'", "'a'b'", "1; DROP TABLE t", "abc", "--1", "1.2.3"]
        {
            assert!(unquote(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_line_round_trips_and_unknown_fields_are_refused() {
        let change = Change {
            table: "rooms".into(),
            pk: crate::pk::pack(&[crate::pk::Value::Text("101".into())]).expect("pack"),
            cid: "status".into(),
            val: SqlValue::Text("it's clean".into()),
            col_version: 2,
            db_version: 7,
            site_id: vec![0xAB; 16],
            cl: 1,
            seq: 3,
        };
        let line = change_line_with_schema(&change, Some(4));
        assert_eq!(parse_line(&line).expect("parse"), (change, Some(4)));
        let extra = line.replacen('{', "{\"colour\":1,", 1);
        assert!(matches!(parse_line(&extra), Err(WireError::Json(m)) if m.contains("colour")));
    }
}
