//! `GET /properties/{id}/availability`: for every live room type of the property, each night's
//! inventory (rooms, out of order, sold, available) and, per active rate plan, each night's
//! price for the asked occupancy and restrictions, plus a `bookable` verdict for the whole
//! stay with the reasons when not.
//!
//! Every room type is listed; `fits` says whether the occupancy fits it (a type that does not
//! fit is never `bookable`, reason `occupancy`). Five cached queries whatever the range: the
//! property, the types with their room counts, out-of-order blocks, sold counters, and the
//! prices of all types (through the `(room_type_id, night)` index), then the rate plans.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use jiff::civil::Date;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::inventory;
use super::pricing::{self, NightPrice, Occupancy};
use crate::auth::extract::Authorized;
use crate::auth::permissions::perm;
use crate::dates;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiPath, ApiQuery};
use crate::property::access;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(availability))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityQuery {
    /// First night, YYYY-MM-DD.
    #[param(format = Date)]
    pub from: String,
    /// The day after the last night (the departure); default the day after `from`.
    #[param(format = Date)]
    pub to: Option<String>,
    /// Default 1.
    #[param(minimum = 1, maximum = 50)]
    pub adults: Option<i64>,
    /// Default 0.
    #[param(minimum = 0, maximum = 50)]
    pub children: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Availability {
    pub property_id: String,
    pub from: String,
    pub to: String,
    pub adults: i64,
    pub children: i64,
    pub currency: String,
    pub business_date: String,
    pub room_types: Vec<TypeAvailability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TypeAvailability {
    pub room_type_id: String,
    pub code: String,
    pub name: String,
    /// Whether `adults` and `children` fit the type's limits.
    pub fits: bool,
    pub max_adults: i64,
    pub max_children: i64,
    pub max_occupancy: i64,
    pub nights: Vec<NightAvailability>,
    pub rate_plans: Vec<PlanAvailability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NightAvailability {
    pub night: String,
    pub rooms: i64,
    pub out_of_order: i64,
    pub sold: i64,
    /// rooms − out_of_order + overbooking allowance − sold (negative when oversold).
    pub available: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanAvailability {
    pub rate_plan_id: String,
    pub code: String,
    pub name: String,
    /// Whether the whole stay can be booked now under this plan in this type.
    pub bookable: bool,
    /// Why not: codes occupancy, no_availability, not_priced, stop_sell, closed_to_arrival,
    /// closed_to_departure, min_stay, max_stay, arrival_before_business_date.
    pub reasons: Vec<Reason>,
    /// The stay's price when every night is priced.
    pub total: Option<StayTotal>,
    pub nights: Vec<PlanNight>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Reason {
    pub code: &'static str,
    pub night: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StayTotal {
    pub room_minor: i64,
    pub vat_minor: i64,
    pub city_tax_minor: i64,
    pub total_minor: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanNight {
    pub night: String,
    /// Price of the night for the occupancy; null when the plan has no price that night.
    pub price_minor: Option<i64>,
    pub min_stay: i64,
    pub max_stay: i64,
    pub closed_to_arrival: bool,
    pub closed_to_departure: bool,
    pub stop_sell: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct PriceRow {
    price: i64,
    min_stay: i64,
    max_stay: i64,
    cta: bool,
    ctd: bool,
    stop: bool,
}

struct Plan {
    id: String,
    code: String,
    name: String,
    extra_adult: i64,
    extra_child: i64,
}

/// Availability, prices and restrictions of every room type for a stay.
#[utoipa::path(get, path = "/properties/{id}/availability", tag = "reservations",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"), AvailabilityQuery),
    responses(
        (status = 200, description = "Availability per room type and night", body = Availability),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    ))]
async fn availability(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath(property_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<AvailabilityQuery>,
) -> Result<Json<Availability>, ApiError> {
    access::ensure(&principal, &property_id)?;
    let from = dates::parse("from", &query.from)?;
    let to = match &query.to {
        Some(t) => dates::parse("to", t)?,
        None => dates::next_day(from),
    };
    dates::range(from, to, "to")?;
    let adults = query.adults.unwrap_or(1);
    let children = query.children.unwrap_or(0);
    if !(1..=50).contains(&adults) {
        return Err(ApiError::invalid_field("adults", "must be between 1 and 50"));
    }
    if !(0..=50).contains(&children) {
        return Err(ApiError::invalid_field("children", "must be between 0 and 50"));
    }
    let out =
        state.db.read(move |conn| compute(conn, &property_id, from, to, adults, children)).await?;
    Ok(Json(out))
}

/// The availability answer (also for benchmarks and tests of the query plan).
pub fn compute(
    conn: &Connection,
    property_id: &str,
    from: Date,
    to: Date,
    adults: i64,
    children: i64,
) -> Result<Availability, ApiError> {
    let settings =
        access::settings(conn, property_id)?.ok_or_else(|| ApiError::not_found("property"))?;
    let types = inventory::property_nights(conn, property_id, from, to)?;
    let n = dates::nights_between(from, to) as usize;
    let night_names: Vec<String> = dates::nights(from, to).map(|d| d.to_string()).collect();
    let to_s = to.to_string();
    let plans: Vec<Plan> = {
        let mut stmt = conn.prepare_cached(
            "SELECT id, code, name, extra_adult_minor, extra_child_minor FROM rate_plans
             WHERE property_id = ?1 AND active = 1 AND deleted_at = 0 ORDER BY code, id",
        )?;
        let rows = stmt.query_map([property_id], |r| {
            Ok(Plan {
                id: r.get(0)?,
                code: r.get(1)?,
                name: r.get(2)?,
                extra_adult: r.get(3)?,
                extra_child: r.get(4)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let type_index: HashMap<&str, usize> =
        types.iter().enumerate().map(|(i, t)| (t.room_type_id.as_str(), i)).collect();
    let plan_index: HashMap<&str, usize> =
        plans.iter().enumerate().map(|(i, p)| (p.id.as_str(), i)).collect();
    // prices[type][plan][night], night n = the departure day (for closed_to_departure).
    let mut prices: Vec<Vec<Vec<Option<PriceRow>>>> =
        vec![vec![vec![None; n + 1]; plans.len()]; types.len()];
    if !plans.is_empty() && !types.is_empty() {
        let mut stmt = conn.prepare_cached(
            "SELECT p.room_type_id, p.rate_plan_id, p.night, p.price_minor, p.min_stay,
                    p.max_stay, p.closed_to_arrival, p.closed_to_departure, p.stop_sell
             FROM room_types t
             JOIN rate_prices p ON p.room_type_id = t.id AND p.night >= ?2 AND p.night <= ?3
             WHERE t.property_id = ?1 AND t.deleted_at = 0",
        )?;
        let mut rows = stmt.query(params![property_id, from.to_string(), to_s])?;
        while let Some(r) = rows.next()? {
            let t_id = r.get_ref(0)?.as_str().unwrap_or("");
            let Some(&t) = type_index.get(t_id) else { continue };
            let p_id = r.get_ref(1)?.as_str().unwrap_or("");
            let Some(&p) = plan_index.get(p_id) else { continue };
            let night = r.get_ref(2)?.as_str().unwrap_or("");
            let Ok(d) = night.parse::<Date>() else { continue };
            let Ok(i) = usize::try_from(dates::nights_between(from, d)) else { continue };
            if i > n {
                continue;
            }
            prices[t][p][i] = Some(PriceRow {
                price: r.get(3)?,
                min_stay: r.get(4)?,
                max_stay: r.get(5)?,
                cta: r.get::<_, i64>(6)? != 0,
                ctd: r.get::<_, i64>(7)? != 0,
                stop: r.get::<_, i64>(8)? != 0,
            });
        }
    }
    let length = n as i64;
    let before_business = from < settings.business_date;
    let mut room_types = Vec::with_capacity(types.len());
    for (t, ty) in types.into_iter().enumerate() {
        let fits = adults <= ty.max_adults
            && children <= ty.max_children
            && adults + children <= ty.max_occupancy;
        let full: Vec<usize> = ty
            .nights
            .iter()
            .enumerate()
            .filter(|(_, x)| x.available() < 1)
            .map(|(i, _)| i)
            .collect();
        let mut rate_plans = Vec::with_capacity(plans.len());
        for (p, plan) in plans.iter().enumerate() {
            let occupancy = Occupancy {
                adults,
                children,
                base_occupancy: ty.base_occupancy,
                extra_adult_minor: plan.extra_adult,
                extra_child_minor: plan.extra_child,
            };
            let rows = &prices[t][p];
            let mut reasons = Vec::new();
            if !fits {
                reasons.push(Reason { code: "occupancy", night: None });
            }
            if before_business {
                reasons.push(Reason { code: "arrival_before_business_date", night: None });
            }
            for &i in &full {
                reasons
                    .push(Reason { code: "no_availability", night: Some(night_names[i].clone()) });
            }
            let mut nights = Vec::with_capacity(n);
            let mut priced = Vec::with_capacity(n);
            for (i, name) in night_names.iter().enumerate() {
                let row = rows[i];
                match row {
                    None => reasons.push(Reason { code: "not_priced", night: Some(name.clone()) }),
                    Some(x) => {
                        if x.stop {
                            reasons.push(Reason { code: "stop_sell", night: Some(name.clone()) });
                        }
                        priced.push(NightPrice {
                            night: String::new(),
                            price_minor: occupancy.night_price(x.price),
                        });
                    }
                }
                let x = row.unwrap_or_default();
                nights.push(PlanNight {
                    night: name.clone(),
                    price_minor: row.map(|x| occupancy.night_price(x.price)),
                    min_stay: x.min_stay,
                    max_stay: x.max_stay,
                    closed_to_arrival: x.cta,
                    closed_to_departure: x.ctd,
                    stop_sell: x.stop,
                });
            }
            if let Some(first) = rows[0] {
                if first.cta {
                    reasons.push(Reason {
                        code: "closed_to_arrival",
                        night: Some(night_names[0].clone()),
                    });
                }
                if first.min_stay > 0 && length < first.min_stay {
                    reasons.push(Reason { code: "min_stay", night: Some(night_names[0].clone()) });
                }
                if first.max_stay > 0 && length > first.max_stay {
                    reasons.push(Reason { code: "max_stay", night: Some(night_names[0].clone()) });
                }
            }
            if rows[n].is_some_and(|x| x.ctd) {
                reasons.push(Reason { code: "closed_to_departure", night: Some(to_s.clone()) });
            }
            let total = (priced.len() == n).then(|| {
                let b = pricing::breakdown(&settings, priced, adults, children);
                StayTotal {
                    room_minor: b.room_minor,
                    vat_minor: b.vat_minor,
                    city_tax_minor: b.city_tax_minor,
                    total_minor: b.total_minor,
                }
            });
            rate_plans.push(PlanAvailability {
                rate_plan_id: plan.id.clone(),
                code: plan.code.clone(),
                name: plan.name.clone(),
                bookable: reasons.is_empty(),
                reasons,
                total,
                nights,
            });
        }
        room_types.push(TypeAvailability {
            nights: ty
                .nights
                .iter()
                .zip(night_names.iter())
                .map(|(x, name)| NightAvailability {
                    night: name.clone(),
                    rooms: x.rooms,
                    out_of_order: x.out_of_order,
                    sold: x.sold,
                    available: x.available(),
                })
                .collect(),
            room_type_id: ty.room_type_id,
            code: ty.code,
            name: ty.name,
            fits,
            max_adults: ty.max_adults,
            max_children: ty.max_children,
            max_occupancy: ty.max_occupancy,
            rate_plans,
        });
    }
    Ok(Availability {
        property_id: property_id.to_string(),
        from: from.to_string(),
        to: to_s,
        adults,
        children,
        currency: settings.currency,
        business_date: settings.business_date.to_string(),
        room_types,
    })
}
