//! Normalised forms of what guests are searched and matched by: names folded to lower-case
//! ASCII without accents ("Müller" → "muller", "Łukasz" → "lukasz"), e-mail lower-cased,
//! phone numbers reduced to their digits. The folding table covers Latin-1 and Latin
//! Extended-A (the letters of European names) without an extra dependency; other scripts are
//! lower-cased and kept as they are.

/// The ASCII letters an accented Latin letter folds to; `None` for a character kept as is.
fn fold_char(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

/// Lower-case, accents folded, punctuation (`-`, `'`, `.`, `,`) as spaces, single spaces,
/// trimmed: the form names are stored and searched in.
pub fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        if let Some(ascii) = fold_char(c) {
            out.push_str(ascii);
        } else if c.is_whitespace() || matches!(c, '-' | '\'' | '’' | '.' | ',' | '_') {
            out.push(' ');
        } else if !c.is_control() && !matches!(c, '\u{300}'..='\u{36f}') {
            out.push(c);
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
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
