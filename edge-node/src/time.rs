//! Wall-clock helpers: the node stores times as unix milliseconds (UTC) and shows them as
//! RFC 3339 strings.

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// RFC 3339 form of a unix-millisecond time, e.g. `2026-11-24T02:14:04.123Z`.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_default()
}
