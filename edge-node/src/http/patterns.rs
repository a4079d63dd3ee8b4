//! The text rules the OpenAPI document states, once each. A request field names one with
//! `#[schema(format = "stayos:<name>")]`; `contract::complete` puts the rule's pattern in
//! its place, so the long patterns are written here only (utoipa takes literal strings in
//! attributes, so they could not be shared as constants there). Each pattern says what the
//! field's validator accepts, surrounding whitespace included (the validators trim it).

/// The prefix of a named rule's `format`.
pub const PREFIX: &str = "stayos:";

const RULES: &[(&str, &str)] = &[
    // Optional text: empty, or text that does not start or end with spaces once trimmed, without control characters other than line breaks (surrounding spaces allowed; the server trims them).
    (
        "free-text",
        r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*)?$",
    ),
    // Text that is not blank, without control characters other than line breaks (surrounding spaces allowed; the server trims them).
    (
        "text",
        r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
    ),
    // One line that is not blank, without control characters (surrounding spaces allowed; the server trims them).
    (
        "line",
        r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
    ),
    // A short code: 1 to 20 letters, digits, `-` or `_` (surrounding spaces allowed).
    (
        "code",
        r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9_-]{1,20}[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
    ),
    // Holds at least one character that is not a space.
    ("non-blank", r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"),
    // Empty, or an ISO 3166-1 alpha-2 country code (surrounding spaces allowed).
    (
        "country-or-empty",
        r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([A-Za-z]{2})?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
    ),
];

/// The pattern of the rule `format` names (`stayos:<name>`), if it names one.
pub fn named(format: &str) -> Option<&'static str> {
    let name = format.strip_prefix(PREFIX)?;
    RULES.iter().find(|(n, _)| *n == name).map(|(_, pattern)| *pattern)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_is_found_by_its_format_and_nothing_else_is() {
        for (name, pattern) in super::RULES {
            assert_eq!(super::named(&format!("stayos:{name}")), Some(*pattern));
        }
        assert_eq!(super::named("stayos:nope"), None);
        assert_eq!(super::named("date"), None);
    }
}
