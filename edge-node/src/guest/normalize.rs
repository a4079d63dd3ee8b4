//! Normalised forms of what guests are searched and matched by: names transliterated to
//! lower-case ASCII by `deunicode` ("Müller" → "muller", "Łukasz" → "lukasz", "Иванов" →
//! "ivanov"), e-mail lower-cased, phone numbers reduced to their digits.

/// Lower-case ASCII transliteration, punctuation (`-`, `'`, `.`, `,`, `_`) as spaces, single
/// spaces, trimmed: the form names are stored and searched in.
pub fn fold(text: &str) -> String {
    let ascii = deunicode::deunicode_with_tofu(text, "").to_lowercase();
    let spaced: String = ascii
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if matches!(c, '-' | '\'' | '.' | ',' | '_') { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `search_name` ("last first") and `search_name_first` ("first last").
pub fn search_names(first: &str, last: &str) -> (String, String) {
    let (first, last) = (fold(first), fold(last));
    let join = |a: &str, b: &str| format!("{a} {b}").trim().to_string();
    (join(&last, &first), join(&first, &last))
}

/// The digits of a phone number, country code included (`+44 20 7946-0958` → `442079460958`;
/// a leading `00` international prefix is dropped).
pub fn phone_digits(phone: &str) -> String {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    match digits.strip_prefix("00") {
        Some(rest) if phone.trim_start().starts_with("00") => rest.to_string(),
        _ => digits,
    }
}

/// The exclusive upper bound of every string starting with `prefix`, for index range scans
/// (`col >= prefix AND col < upper`): SQLite compares TEXT bytewise, so appending U+10FFFF
/// (bytes F4 8F BF BF, the largest a valid UTF-8 character can start with) sorts after every
/// continuation a stored value can have, astral characters included.
pub fn prefix_upper(prefix: &str) -> String {
    format!("{prefix}\u{10ffff}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_accents_case_and_spacing() {
        assert_eq!(fold("  Müller-Lüdenscheidt "), "muller ludenscheidt");
        assert_eq!(fold("ŁUKASZ  Żółć"), "lukasz zolc");
        assert_eq!(fold("O'Brien"), "o brien");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(search_names("José", "García"), ("garcia jose".into(), "jose garcia".into()));
        assert_eq!(fold("Иванов"), "ivanov");
    }

    #[test]
    fn phone_digits_keep_the_country_code() {
        assert_eq!(phone_digits("+44 20 7946-0958"), "442079460958");
        assert_eq!(phone_digits("0049 30 123456"), "4930123456");
        assert_eq!(phone_digits("030 123456"), "030123456");
    }

    #[test]
    fn the_prefix_bound_is_above_every_continuation() {
        let upper = prefix_upper("li");
        for name in ["li", "li wei", "liz", "li\u{ffff}", "li😀"] {
            assert!(name >= "li" && name < upper.as_str(), "{name}");
        }
        assert!("lj" > upper.as_str());
    }
}
