//! The one list shape of the API: `{"items": [...], "next_cursor": "<opaque>" | null}`.
//!
//! A list that pages takes `limit` (bounded, documented on its query) and `cursor` (the
//! `next_cursor` of the page before, opaque to clients); `next_cursor` is `null` on the last
//! page. A list small by nature (room types, rate plans, a guest's documents) answers all its
//! items at once in the same shape, with `next_cursor` always `null`, so one client routine
//! reads every list. Lists that also report something about the whole (the housekeeping
//! board's counts, the quarantine's total) carry those fields beside `items`.

use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;

/// A page of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A whole list in one page.
    pub fn all(items: Vec<T>) -> Self {
        Page { items, next_cursor: None }
    }

    /// A page and where the next one starts (`None` on the last page).
    pub fn new(items: Vec<T>, next_cursor: Option<String>) -> Self {
        Page { items, next_cursor }
    }
}

/// A cursor that is a position in a sequence (an audit entry's or a quarantined change's
/// number): opaque to clients, but a number here; anything else is a 422 naming `cursor`.
pub fn numeric_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor
        .map(|c| {
            c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::invalid_field(
                    "cursor",
                    "not a cursor this list gave; start from the first page",
                )
            })
        })
        .transpose()
}
