//! Pricing of a stay in exact integer minor units.
//!
//! Nightly price for an occupancy = the rate's price for the night + extra adults above the
//! room type's base occupancy × `extra_adult_minor` + children × `extra_child_minor`.
//! VAT is computed once on the room total and rounded half to even: inclusive VAT is the part
//! `room × bp / (10000 + bp)` of the room total; exclusive VAT is `room × bp / 10000` added on
//! top. City tax (`city_tax_minor` per adult-night, children too when the property says so)
//! is outside VAT.

use serde::Serialize;
use utoipa::ToSchema;

use crate::property::access::Settings;

/// The price of one night of a stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NightPrice {
    pub night: String,
    pub price_minor: i64,
}

/// What a stay costs, and the parts of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Breakdown {
    pub nights: Vec<NightPrice>,
    /// Sum of the nightly prices (VAT included when the property's prices include VAT).
    pub room_minor: i64,
    pub vat_minor: i64,
    pub city_tax_minor: i64,
    /// What the guest pays: room (+ VAT when exclusive) + city tax.
    pub total_minor: i64,
    pub currency: String,
}

/// The rate-plan and room-type facts that turn a night's base price into an occupancy price.
#[derive(Debug, Clone, Copy)]
pub struct Occupancy {
    pub adults: i64,
    pub children: i64,
    pub base_occupancy: i64,
    pub extra_adult_minor: i64,
    pub extra_child_minor: i64,
}

impl Occupancy {
    /// The price of a night whose rate price is `base_minor`, for this occupancy.
    pub fn night_price(&self, base_minor: i64) -> i64 {
        let extra_adults = (self.adults - self.base_occupancy).max(0);
        base_minor + extra_adults * self.extra_adult_minor + self.children * self.extra_child_minor
    }
}

/// `n / d` rounded to the nearest integer, ties to even (banker's rounding). `d > 0`.
pub fn div_round_half_even(n: i128, d: i128) -> i64 {
    let q = n.div_euclid(d);
    let r = n.rem_euclid(d);
    let twice = 2 * r;
    let q = if twice > d || (twice == d && q % 2 != 0) { q + 1 } else { q };
    q as i64
}

/// VAT of `room_minor` at `bp` basis points, included in it or added on top.
pub fn vat(room_minor: i64, bp: i64, inclusive: bool) -> i64 {
    if bp <= 0 {
        return 0;
    }
    let room = i128::from(room_minor);
    let bp = i128::from(bp);
    if inclusive {
        div_round_half_even(room * bp, 10_000 + bp)
    } else {
        div_round_half_even(room * bp, 10_000)
    }
}

/// City tax for the stay.
pub fn city_tax(settings: &Settings, adults: i64, children: i64, nights: i64) -> i64 {
    let persons = adults + if settings.city_tax_children { children } else { 0 };
    settings.city_tax_minor * persons * nights
}

/// The breakdown of a stay whose nights cost `nights` (occupancy prices already applied).
pub fn breakdown(
    settings: &Settings,
    nights: Vec<NightPrice>,
    adults: i64,
    children: i64,
) -> Breakdown {
    let room_minor: i64 = nights.iter().map(|n| n.price_minor).sum();
    let vat_minor = vat(room_minor, settings.vat_rate_bp, settings.vat_inclusive);
    let city_tax_minor = city_tax(settings, adults, children, nights.len() as i64);
    let total_minor =
        room_minor + if settings.vat_inclusive { 0 } else { vat_minor } + city_tax_minor;
    Breakdown {
        nights,
        room_minor,
        vat_minor,
        city_tax_minor,
        total_minor,
        currency: settings.currency.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(bp: i64, inclusive: bool, city: i64, children: bool) -> Settings {
        Settings {
            id: "p".into(),
            timezone: "UTC".into(),
            currency: "EUR".into(),
            check_in_time: "15:00".into(),
            check_out_time: "11:00".into(),
            vat_rate_bp: bp,
            vat_inclusive: inclusive,
            city_tax_minor: city,
            city_tax_children: children,
            business_date: jiff::civil::date(2026, 1, 1),
            tentative_hold_hours: 24,
            loyalty_rule: String::new(),
        }
    }

    fn nights(prices: &[i64]) -> Vec<NightPrice> {
        prices
            .iter()
            .enumerate()
            .map(|(i, p)| NightPrice { night: format!("2026-01-0{}", i + 1), price_minor: *p })
            .collect()
    }

    #[test]
    fn rounds_half_to_even() {
        assert_eq!(div_round_half_even(5, 2), 2);
        assert_eq!(div_round_half_even(7, 2), 4);
        assert_eq!(div_round_half_even(9, 4), 2);
        assert_eq!(div_round_half_even(11, 4), 3);
        assert_eq!(div_round_half_even(10, 4), 2);
        assert_eq!(div_round_half_even(14, 4), 4);
        assert_eq!(div_round_half_even(0, 7), 0);
        assert_eq!(div_round_half_even(-5, 2), -2);
    }

    #[test]
    fn inclusive_vat_is_the_part_of_the_room_total() {
        // 200.00 at 10 %: 20000 × 1000 / 11000 = 1818.18… → 1818.
        assert_eq!(vat(20_000, 1_000, true), 1_818);
        // 110.00 at 10 % → exactly 10.00.
        assert_eq!(vat(11_000, 1_000, true), 1_000);
        // A tie: 21 × 1000 / 11000 … no tie; 105 at 5 % exclusive = 5.25 → 5.
        let s = settings(1_000, true, 250, false);
        let b = breakdown(&s, nights(&[10_000, 10_000]), 2, 1);
        assert_eq!((b.room_minor, b.vat_minor, b.city_tax_minor), (20_000, 1_818, 1_000));
        assert_eq!(b.total_minor, 21_000);
    }

    #[test]
    fn exclusive_vat_is_added_on_top_with_banker_rounding() {
        // 105 × 500 / 10000 = 5.25 → 5; 110 × 500 / 10000 = 5.5 → 6 (even); 130 → 6.5 → 6.
        assert_eq!(vat(105, 500, false), 5);
        assert_eq!(vat(110, 500, false), 6);
        assert_eq!(vat(130, 500, false), 6);
        assert_eq!(vat(150, 500, false), 8);
        let s = settings(700, false, 100, true);
        let b = breakdown(&s, nights(&[12_345, 12_345, 12_345]), 2, 2);
        // 37035 × 700 / 10000 = 2592.45 → 2592; city tax 100 × 4 persons × 3 nights.
        assert_eq!((b.room_minor, b.vat_minor, b.city_tax_minor), (37_035, 2_592, 1_200));
        assert_eq!(b.total_minor, 37_035 + 2_592 + 1_200);
    }

    #[test]
    fn occupancy_adds_extra_adults_above_base_and_every_child() {
        let o = Occupancy {
            adults: 3,
            children: 2,
            base_occupancy: 2,
            extra_adult_minor: 3_000,
            extra_child_minor: 1_500,
        };
        assert_eq!(o.night_price(25_000), 25_000 + 3_000 + 3_000);
        let single = Occupancy { adults: 1, children: 0, ..o };
        assert_eq!(single.night_price(10_000), 10_000);
    }

    #[test]
    fn no_vat_rate_means_no_vat() {
        assert_eq!(vat(12_345, 0, true), 0);
        assert_eq!(vat(12_345, 0, false), 0);
    }
}
