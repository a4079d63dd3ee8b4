//! Calendar dates of the hotel: nights and stays are `YYYY-MM-DD` dates in the property's own
//! calendar (jiff's `civil::Date`), parsed here with the field named on error.

use jiff::civil::Date;

use crate::http::error::ApiError;

/// The longest stay or date range a request may ask about, in nights.
pub const MAX_RANGE_NIGHTS: i64 = 731;

/// Parses `YYYY-MM-DD` strictly; 422 naming `field` otherwise.
pub fn parse(field: &str, text: &str) -> Result<Date, ApiError> {
    let ok = text.len() == 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    let date = if ok { text.parse::<Date>().ok() } else { None };
    date.ok_or_else(|| ApiError::invalid_field(field, "expected a date as YYYY-MM-DD"))
}

/// A stay or range `[from, to)`: `to` after `from`, at most `MAX_RANGE_NIGHTS` nights.
/// Errors name `to_field`.
pub fn range(from: Date, to: Date, to_field: &str) -> Result<i64, ApiError> {
    let nights = nights_between(from, to);
    if nights < 1 {
        return Err(ApiError::invalid_field(to_field, "must be after the start date"));
    }
    if nights > MAX_RANGE_NIGHTS {
        return Err(ApiError::invalid_field(
            to_field,
            format!("a range may span at most {MAX_RANGE_NIGHTS} nights"),
        ));
    }
    Ok(nights)
}

/// Number of nights from `from` to `to` (negative when `to` is earlier).
pub fn nights_between(from: Date, to: Date) -> i64 {
    from.duration_until(to).as_secs() / 86_400
}

/// The nights `[from, to)` in order.
pub fn nights(from: Date, to: Date) -> impl Iterator<Item = Date> {
    from.series(jiff::ToSpan::days(1)).take_while(move |d| *d < to)
}

/// The day after `date` (saturating at the end of jiff's calendar).
pub fn next_day(date: Date) -> Date {
    date.tomorrow().unwrap_or(date)
}

/// Today in the IANA time zone `tz` (UTC if the zone is unknown).
pub fn today_in(tz: &str) -> Date {
    let zone = jiff::tz::TimeZone::get(tz).unwrap_or(jiff::tz::TimeZone::UTC);
    jiff::Timestamp::now().to_zoned_datetime(zone).date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_full_iso_dates() {
        assert_eq!(parse("arrival", "2026-03-01").ok(), Some(jiff::civil::date(2026, 3, 1)));
        for bad in ["2026-3-1", "2026-02-30", "01/03/2026", "", "2026-03-01T00:00"] {
            let err = parse("arrival", bad).expect_err(bad);
            assert_eq!(err.code(), "validation_failed", "{bad}");
        }
    }

    #[test]
    fn counts_nights_across_months_and_leap_days() {
        let (a, b) = (jiff::civil::date(2028, 2, 27), jiff::civil::date(2028, 3, 2));
        assert_eq!(nights_between(a, b), 4);
        assert_eq!(nights(a, b).count(), 4);
        assert_eq!(range(a, b, "departure").ok(), Some(4));
        assert!(range(b, a, "departure").is_err());
        assert!(range(a, a, "departure").is_err());
    }
}
