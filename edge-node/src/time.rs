//! Wall-clock helpers: the node stores times as unix milliseconds (UTC) and shows them as
//! RFC 3339 strings.

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// RFC 3339 form of a unix-millisecond time in UTC, always with three fractional digits,
/// e.g. `2026-11-24T02:14:04.120Z`: one fixed shape, so clients may compare them as strings.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| timestamp(&t)).unwrap_or_default()
}

/// The API's one timestamp shape (see [`rfc3339`]) for a `jiff::Timestamp`, cut to the
/// millisecond.
pub fn timestamp(t: &jiff::Timestamp) -> String {
    let ms = jiff::Timestamp::from_millisecond(t.as_millisecond()).unwrap_or(*t);
    format!("{ms:.3}")
}

/// `#[serde(serialize_with = "crate::time::serialize")]` for a `jiff::Timestamp` field.
pub fn serialize<S: serde::Serializer>(t: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp(t))
}

/// [`serialize`] for an optional timestamp (`null` when absent).
pub fn serialize_opt<S: serde::Serializer>(
    t: &Option<jiff::Timestamp>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&timestamp(t)),
        None => s.serialize_none(),
    }
}
