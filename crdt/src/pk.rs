//! cr-sqlite's packed column encoding, used for the `pk` of every change.
//!
//! Layout: one byte with the number of columns, then per column one byte whose low three bits
//! are SQLite's type code (1 integer, 2 float, 3 text, 4 blob, 5 null) and whose high five bits
//! are a byte count `n`, followed by
//! - integer: the value big-endian in `n` bytes, `n` as small as cr-sqlite makes it (0 bytes
//!   for 0, 8 bytes for any negative number);
//! - float: 8 bytes, big-endian IEEE 754 (`n` is 0);
//! - text and blob: the length big-endian in `n` bytes (sized as a 32-bit integer), then the
//!   bytes;
//! - null: nothing.
//!
//! `pack` reproduces cr-sqlite 0.16's bytes exactly, including its sizing rules; the test suite
//! checks that against the real cr-sqlite running as WebAssembly. `unpack` accepts exactly what
//! `pack` produces and refuses anything malformed with an error, never a panic.

/// One SQLite value, as a primary-key column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// The value as rusqlite binds it.
    pub fn to_sql(&self) -> rusqlite::types::ToSqlOutput<'_> {
        use rusqlite::types::ValueRef;
        rusqlite::types::ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        })
    }
}

const INTEGER: u8 = 1;
const FLOAT: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;
const NULL: u8 = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkError {
    #[error("a packed key has at most 255 columns, not {0}")]
    TooManyColumns(usize),
    #[error("a text or blob key column is longer than 2 GiB")]
    TooLong,
    #[error("the packed key is empty")]
    Empty,
    #[error("the packed key ends inside column {column}")]
    Truncated { column: usize },
    #[error("column {column} has unknown type code {code}")]
    UnknownType { column: usize, code: u8 },
    #[error("column {column} declares {bytes} length bytes; at most 8 are possible")]
    BadLength { column: usize, bytes: usize },
    #[error("column {column} is text but not valid UTF-8")]
    NotUtf8 { column: usize },
    #[error("{0} bytes follow the last column")]
    TrailingBytes(usize),
}

/// Bytes cr-sqlite uses for a value it sizes as a 32-bit integer (text and blob lengths, and
/// integers whose upper four bytes are zero). Note the last test: cr-sqlite multiplies where a
/// mask was meant, which gives the same answer (non-zero) for every value that reaches it.
fn bytes_for_i32(v: i32) -> u8 {
    if v as u32 & 0xFF00_0000 != 0 {
        4
    } else if v & 0x00FF_0000 != 0 {
        3
    } else if v & 0x0000_FF00 != 0 {
        2
    } else if v != 0 {
        1
    } else {
        0
    }
}

fn bytes_for_i64(v: i64) -> u8 {
    let u = v as u64;
    if u & 0xFF00_0000_0000_0000 != 0 {
        8
    } else if u & 0x00FF_0000_0000_0000 != 0 {
        7
    } else if u & 0x0000_FF00_0000_0000 != 0 {
        6
    } else if u & 0x0000_00FF_0000_0000 != 0 {
        5
    } else {
        // The low four bytes, reinterpreted as i32 exactly as cr-sqlite does.
        bytes_for_i32(u as u32 as i32)
    }
}

fn put_be(buf: &mut Vec<u8>, v: u64, n: u8) {
    buf.extend_from_slice(&v.to_be_bytes()[8 - usize::from(n)..]);
}

/// Packs key columns the way cr-sqlite's `crsql_pack_columns` does.
pub fn pack(columns: &[Value]) -> Result<Vec<u8>, PkError> {
    let count = u8::try_from(columns.len()).map_err(|_| PkError::TooManyColumns(columns.len()))?;
    let mut buf = Vec::with_capacity(1 + columns.len() * 9);
    buf.push(count);
    for value in columns {
        match value {
            Value::Null => buf.push(NULL),
            Value::Integer(v) => {
                let n = bytes_for_i64(*v);
                buf.push(n << 3 | INTEGER);
                put_be(&mut buf, *v as u64, n);
            }
            Value::Real(f) => {
                buf.push(FLOAT);
                buf.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Value::Text(s) => put_bytes(&mut buf, TEXT, s.as_bytes())?,
            Value::Blob(b) => put_bytes(&mut buf, BLOB, b)?,
        }
    }
    Ok(buf)
}

fn put_bytes(buf: &mut Vec<u8>, code: u8, bytes: &[u8]) -> Result<(), PkError> {
    let len = i32::try_from(bytes.len()).map_err(|_| PkError::TooLong)?;
    let n = bytes_for_i32(len);
    buf.push(n << 3 | code);
    put_be(buf, len as u64, n);
    buf.extend_from_slice(bytes);
    Ok(())
}

/// Reads a packed key front to back.
struct Cursor<'a> {
    data: &'a [u8],
    column: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], PkError> {
        if self.data.len() < len {
            return Err(PkError::Truncated { column: self.column });
        }
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        Ok(head)
    }

    /// A big-endian unsigned number of `n` bytes. Zero-extended: `pack` gives every negative
    /// integer all 8 bytes, so a shorter field always holds a non-negative value.
    fn uint(&mut self, n: usize) -> Result<u64, PkError> {
        if n > 8 {
            return Err(PkError::BadLength { column: self.column, bytes: n });
        }
        Ok(self.take(n)?.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    }
}

/// Unpacks a key packed by `pack` or by cr-sqlite.
pub fn unpack(data: &[u8]) -> Result<Vec<Value>, PkError> {
    let (&count, rest) = data.split_first().ok_or(PkError::Empty)?;
    let mut cur = Cursor { data: rest, column: 0 };
    let mut out = Vec::with_capacity(usize::from(count));
    for column in 0..usize::from(count) {
        cur.column = column;
        let tag = cur.take(1)?[0];
        let n = usize::from(tag >> 3);
        let value = match tag & 0x07 {
            INTEGER => Value::Integer(cur.uint(n)? as i64),
            FLOAT => Value::Real(f64::from_bits(cur.uint(8)?)),
            code @ (TEXT | BLOB) => {
                let len =
                    usize::try_from(cur.uint(n)?).map_err(|_| PkError::Truncated { column })?;
                let bytes = cur.take(len)?.to_vec();
                if code == TEXT {
                    Value::Text(String::from_utf8(bytes).map_err(|_| PkError::NotUtf8 { column })?)
                } else {
                    Value::Blob(bytes)
                }
            }
            NULL => Value::Null,
            code => return Err(PkError::UnknownType { column, code }),
        };
        out.push(value);
    }
    if !cur.data.is_empty() {
        return Err(PkError::TrailingBytes(cur.data.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            (0i64..70_000).prop_map(Value::Integer),
            any::<f64>()
                .prop_filter("NaN has no single bit pattern in SQLite", |f| !f.is_nan())
                .prop_map(Value::Real),
            ".{0,40}".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..300).prop_map(Value::Blob),
        ]
    }

    proptest! {
        #[test]
        fn every_key_survives_a_round_trip(columns in proptest::collection::vec(value(), 0..6)) {
            let packed = pack(&columns).unwrap();
            prop_assert_eq!(unpack(&packed).unwrap(), columns);
        }

        #[test]
        fn no_byte_string_makes_unpack_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = unpack(&bytes);
        }
    }

    #[test]
    fn integers_take_as_few_bytes_as_cr_sqlite_gives_them() {
        let len = |v: i64| pack(&[Value::Integer(v)]).unwrap().len() - 2;
        assert_eq!(len(0), 0);
        assert_eq!(len(255), 1);
        assert_eq!(len(256), 2);
        assert_eq!(len(1 << 31), 4);
        assert_eq!(len(1 << 32), 5);
        assert_eq!(len(-1), 8);
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason() {
        assert_eq!(unpack(&[]), Err(PkError::Empty));
        assert_eq!(unpack(&[1]), Err(PkError::Truncated { column: 0 }));
        assert_eq!(unpack(&[1, 0x0B, 5, b'a']), Err(PkError::Truncated { column: 0 }));
        assert_eq!(unpack(&[1, 0x07]), Err(PkError::UnknownType { column: 0, code: 7 }));
        assert_eq!(unpack(&[1, 0x05, 0]), Err(PkError::TrailingBytes(1)));
        assert_eq!(unpack(&[1, 0x0B, 1, 0xFF]), Err(PkError::NotUtf8 { column: 0 }));
        assert!(matches!(unpack(&[1, 0x49, 0]), Err(PkError::BadLength { .. })));
    }
}
