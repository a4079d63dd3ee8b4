//! Guest search: name prefix in either order, e-mail prefix, phone-digits prefix, within one
//! property, excluding merged-away and erased profiles, keyset-paginated.
//!
//! Every search is an index range scan `col >= prefix AND col < prefix || U+FFFF` on a
//! `(property_id, col, id)` index (see the migration's "guests" section), ordered by
//! `(col, id)` so a page never sorts and the cursor is the last `(col, id)` seen. A name query
//! runs two streams: profiles whose "last first" form starts with the query, then those whose
//! "first last" form does (and the first form does not), so "smith jo" and "john sm" both
//! find John Smith and nobody appears twice.

use rusqlite::{Connection, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::normalize;
use crate::http::error::ApiError;
use crate::http::list::Page;

/// One search hit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GuestSummary {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub birth_date: Option<String>,
    pub vip: i64,
}

/// A page of guest summaries.
pub type GuestPage = Page<GuestSummary>;

/// What to search by.
#[derive(Debug, Clone)]
pub enum By {
    Name(String),
    Email(String),
    Phone(String),
}

/// The columns a stream walks: (stream tag, column, extra condition).
fn stream(by: &By, second: bool) -> (&'static str, &'static str, &'static str) {
    match (by, second) {
        (By::Name(_), false) => ("a", "search_name", ""),
        (By::Name(_), true) => {
            ("b", "search_name_first", " AND NOT (search_name >= ?2 AND search_name < ?3)")
        }
        (By::Email(_), _) => ("e", "email_norm", ""),
        (By::Phone(_), _) => ("p", "phone_digits", ""),
    }
}

fn encode_cursor(tag: &str, key: &str, id: &str) -> String {
    hex::encode(format!("{tag}\u{1f}{key}\u{1f}{id}"))
}

fn decode_cursor(cursor: &str) -> Result<(String, String, String), ApiError> {
    let bad = || ApiError::invalid_field("cursor", "not a cursor this search returned");
    let bytes = hex::decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '\u{1f}');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(t), Some(k), Some(i)) => Ok((t.into(), k.into(), i.into())),
        _ => Err(bad()),
    }
}

/// Parses the query parameters into what to search by (at most one of them).
pub fn by(q: Option<&str>, email: Option<&str>, phone: Option<&str>) -> Result<By, ApiError> {
    let given =
        [q, email, phone].iter().filter(|v| v.is_some_and(|s| !s.trim().is_empty())).count();
    if given > 1 {
        return Err(ApiError::invalid_field("q", "search by one of q, email or phone at a time"));
    }
    if let Some(e) = email.filter(|s| !s.trim().is_empty()) {
        return Ok(By::Email(e.trim().to_lowercase()));
    }
    if let Some(p) = phone.filter(|s| !s.trim().is_empty()) {
        let digits = normalize::phone_digits(p);
        if digits.is_empty() {
            return Err(ApiError::invalid_field("phone", "must contain digits"));
        }
        return Ok(By::Phone(digits));
    }
    Ok(By::Name(normalize::fold(q.unwrap_or(""))))
}

/// One page of live profiles of `property_id` matching `by`.
pub fn search(
    conn: &Connection,
    property_id: &str,
    by: &By,
    limit: usize,
    cursor: Option<&str>,
) -> Result<GuestPage, ApiError> {
    let prefix = match by {
        By::Name(p) | By::Email(p) | By::Phone(p) => p.clone(),
    };
    let upper = normalize::prefix_upper(&prefix);
    let streams: &[bool] = if matches!(by, By::Name(_)) { &[false, true] } else { &[false] };
    let mut position = match cursor {
        Some(c) => {
            let (tag, key, id) = decode_cursor(c)?;
            if !streams.iter().any(|&second| stream(by, second).0 == tag) {
                return Err(ApiError::invalid_field("cursor", "belongs to another kind of search"));
            }
            Some((tag, key, id))
        }
        None => None,
    };
    let mut guests: Vec<GuestSummary> = Vec::new();
    let mut next_cursor = None;
    let mut last_key = String::new();
    for (index, &second) in streams.iter().enumerate() {
        let (tag, col, extra) = stream(by, second);
        if position.as_ref().is_some_and(|(t, _, _)| t != tag) && !second {
            continue; // the cursor is already in the second stream
        }
        // Start after the cursor, or at the prefix itself (ids are never empty).
        let (after_key, after_id) = match position.take() {
            Some((t, k, i)) if t == tag => (k, i),
            _ => (prefix.clone(), String::new()),
        };
        let want = limit - guests.len();
        let sql = format!(
            "SELECT id, first_name, last_name, email, phone, company, city, country, birth_date,
                    vip, {col}
             FROM guests INDEXED BY guests_search_{col}
             WHERE property_id = ?1 AND {col} >= ?2 AND {col} < ?3
               AND ({col}, id) > (?4, ?5){extra}
               AND merged_into = '' AND erased_at = 0
             ORDER BY {col}, id LIMIT ?6"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows =
            stmt.query(params![property_id, prefix, upper, after_key, after_id, want as i64 + 1])?;
        let mut more = false;
        while let Some(r) = rows.next()? {
            if guests.len() == limit {
                more = true;
                break;
            }
            last_key = r.get(10)?;
            guests.push(GuestSummary {
                id: r.get(0)?,
                first_name: r.get(1)?,
                last_name: r.get(2)?,
                email: crate::http::wire::column(r, 3)?,
                phone: crate::http::wire::column(r, 4)?,
                company: crate::http::wire::column(r, 5)?,
                city: crate::http::wire::column(r, 6)?,
                country: crate::http::wire::column(r, 7)?,
                birth_date: crate::http::wire::column(r, 8)?,
                vip: r.get(9)?,
            });
        }
        let last_stream = index + 1 == streams.len();
        if more || (guests.len() == limit && !last_stream) {
            // Full page: continue after its last row (the next stream may hold more).
            let last = guests.last().expect("a full page has rows");
            next_cursor = Some(encode_cursor(tag, &last_key, &last.id));
            break;
        }
    }
    Ok(Page::new(guests, next_cursor))
}
