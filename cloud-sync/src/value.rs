//! Column values in an encoding whose bytewise order is cr-sqlite's value order
//! (`crdt::compare_values`), so that PostgreSQL compares cells with a plain row comparison on
//! `bytea` — the merge rule runs inside one `INSERT … ON CONFLICT … WHERE` statement instead
//! of in Rust, row by row.
//!
//! Layout: one tag byte — 0 NULL, 1 blob, 2 text, 3 real, 4 integer, in cr-sqlite's order of
//! types — then the payload:
//! - blob and text: the raw bytes (bytewise order, a prefix first, as cr-sqlite compares);
//! - real: the IEEE 754 bits big-endian, with every bit flipped for a negative number and only
//!   the sign bit flipped otherwise (the order of `f64::total_cmp`);
//! - integer: the two's complement big-endian with the sign bit flipped.

use rusqlite::types::Value;

use crate::db::HubError;

const NULL: u8 = 0;
const BLOB: u8 = 1;
const TEXT: u8 = 2;
const REAL: u8 = 3;
const INTEGER: u8 = 4;

const SIGN: u64 = 1 << 63;

/// Encodes a value so that comparing encodings bytewise is `crdt::compare_values`.
pub fn encode(v: &Value) -> Vec<u8> {
    match v {
        Value::Null => vec![NULL],
        Value::Blob(b) => tagged(BLOB, b),
        Value::Text(s) => tagged(TEXT, s.as_bytes()),
        Value::Real(f) => {
            let bits = f.to_bits();
            let ordered = if bits & SIGN != 0 { !bits } else { bits | SIGN };
            tagged(REAL, &ordered.to_be_bytes())
        }
        Value::Integer(i) => tagged(INTEGER, &((*i as u64) ^ SIGN).to_be_bytes()),
    }
}

fn tagged(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + payload.len());
    out.push(tag);
    out.extend_from_slice(payload);
    out
}

/// Decodes what [`encode`] made; anything else is refused (a corrupt cell, never a panic).
pub fn decode(bytes: &[u8]) -> Result<Value, HubError> {
    let bad = || HubError::Invalid(format!("a stored value is corrupt: {}", hex::encode(bytes)));
    let (&tag, payload) = bytes.split_first().ok_or_else(bad)?;
    let word = || -> Result<u64, HubError> {
        let arr: [u8; 8] = payload.try_into().map_err(|_| bad())?;
        Ok(u64::from_be_bytes(arr))
    };
    match tag {
        NULL if payload.is_empty() => Ok(Value::Null),
        BLOB => Ok(Value::Blob(payload.to_vec())),
        TEXT => String::from_utf8(payload.to_vec()).map(Value::Text).map_err(|_| bad()),
        REAL => {
            let ordered = word()?;
            let bits = if ordered & SIGN != 0 { ordered ^ SIGN } else { !ordered };
            Ok(Value::Real(f64::from_bits(bits)))
        }
        INTEGER => Ok(Value::Integer((word()? ^ SIGN) as i64)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Integer),
            prop_oneof![
                any::<f64>().prop_filter("SQLite has no NaN", |f| !f.is_nan()),
                Just(0.0),
                Just(-0.0),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(f64::MIN_POSITIVE),
            ]
            .prop_map(Value::Real),
            "[a-c\\x00é]{0,4}".prop_map(Value::Text),
            prop::collection::vec(prop_oneof![Just(0u8), Just(1), Just(255)], 0..4)
                .prop_map(Value::Blob),
        ]
    }

    #[test]
    fn encodings_sort_as_cr_sqlite_sorts_values() {
        let ascending = [
            Value::Null,
            Value::Blob(vec![]),
            Value::Blob(vec![0]),
            Value::Blob(vec![1, 0]),
            Value::Blob(vec![255]),
            Value::Text(String::new()),
            Value::Text("ab".into()),
            Value::Text("abc".into()),
            Value::Text("b".into()),
            Value::Real(f64::NEG_INFINITY),
            Value::Real(-1.5),
            Value::Real(-0.0),
            Value::Real(0.0),
            Value::Real(3.0),
            Value::Real(f64::INFINITY),
            Value::Integer(i64::MIN),
            Value::Integer(-1),
            Value::Integer(0),
            Value::Integer(1),
            Value::Integer(i64::MAX),
        ];
        for (i, a) in ascending.iter().enumerate() {
            for (j, b) in ascending.iter().enumerate() {
                assert_eq!(encode(a).cmp(&encode(b)), i.cmp(&j), "{a:?} vs {b:?}");
            }
            assert_eq!(decode(&encode(a)).expect("decode"), *a);
        }
    }

    #[test]
    fn corrupt_encodings_are_refused() {
        for bad in [&[][..], &[0, 1], &[3, 1, 2], &[4; 10], &[2, 0xFF], &[9]] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Bytewise order of encodings is exactly `crdt::compare_values`, and they round-trip.
        #[test]
        fn byte_order_is_crdt_value_order(a in value(), b in value()) {
            prop_assert_eq!(encode(&a).cmp(&encode(&b)), crdt::compare_values(&a, &b));
            let back = decode(&encode(&a)).expect("decode");
            prop_assert_eq!(crdt::compare_values(&back, &a), std::cmp::Ordering::Equal);
        }
    }
}
