//! Column values in an encoding whose bytewise order is cr-sqlite's value order.

use rusqlite::types::Value;

use crate::db::HubError;

/// Encodes a value so that comparing encodings bytewise is `crdt::compare_values`.
pub fn encode(v: &Value) -> Vec<u8> {
    let _ = v;
    unimplemented!()
}

/// Decodes what [`encode`] made.
pub fn decode(bytes: &[u8]) -> Result<Value, HubError> {
    let _ = bytes;
    unimplemented!()
}
