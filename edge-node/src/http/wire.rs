//! The API's conventions for absent values: a text field with no value is `null` in every
//! response, never `""`; in a request, `null` (or `""`) clears an optional text field and
//! leaving the field out keeps it.

use serde::{Deserialize, Deserializer};

/// A stored text as the API shows it: `None` (JSON `null`) when it is empty.
pub fn text(stored: &str) -> Option<String> {
    (!stored.is_empty()).then(|| stored.to_string())
}

/// A text column as the API shows it: `None` for SQL `NULL` and for `''`.
pub fn column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<String>> {
    Ok(row.get::<_, Option<String>>(index)?.filter(|s| !s.is_empty()))
}

/// For an optional text field of a request body, with `#[serde(default, deserialize_with =
/// "crate::http::wire::clearable")]`: absent → `None` (unchanged), `null` → `Some("")`
/// (cleared), a string → itself.
pub fn clearable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?.unwrap_or_default()))
}

/// For a field whose `null` means something (clear it), with `#[serde(default,
/// deserialize_with = "crate::http::wire::present")]`: absent → `None`, anything given,
/// `null` included, → `Some`.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Patch {
        #[serde(default, deserialize_with = "super::clearable")]
        notes: Option<String>,
    }

    #[test]
    fn absent_keeps_null_clears_and_a_string_sets() {
        let parse = |s: &str| serde_json::from_str::<Patch>(s).expect("parse").notes;
        assert_eq!(parse("{}"), None);
        assert_eq!(parse(r#"{"notes":null}"#), Some(String::new()));
        assert_eq!(parse(r#"{"notes":"late"}"#), Some("late".into()));
        assert_eq!(super::text(""), None);
        assert_eq!(super::text("x").as_deref(), Some("x"));
    }
}
