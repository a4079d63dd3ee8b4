//! The property service over HTTP: the properties themselves here; room types, rooms and
//! amenities in `rooms.rs`; cancellation policies, rate plans and prices in `rates.rs`.
//! Every route under `/properties/{id}` first checks that the caller belongs to the property
//! (404 otherwise, as if it did not exist), then that it exists (404).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, PropertyRecord};
use super::validate::{self, set};
use super::{access, rates, rooms};
use crate::audit::{self, Entry};
use crate::auth::extract::Authorized;
use crate::auth::permissions::perm;
use crate::dates;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::etag::{IfMatch, IfMatchHeader};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::list::Page;
use crate::http::representation::Representation;
use crate::state::AppState;
use crate::time::{now_ms, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_properties, create_property))
        .routes(routes!(get_property, update_property, delete_property))
        .merge(rooms::router())
        .merge(rates::router())
}

/// The settings of a live property, or 404 `property`. Call after `access::ensure`.
pub(super) fn live_property(conn: &Connection, id: &str) -> Result<access::Settings, ApiError> {
    access::settings(conn, id)?.ok_or_else(|| ApiError::not_found("property"))
}

/// A property's settings to change: every field is optional and only the given ones change
/// (a new property is a [`PropertyCreate`]).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyInput {
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: Option<String>,
    /// IANA time zone, e.g. `Europe/Vienna`.
    #[schema(
        min_length = 1,
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z][A-Za-z0-9/_+-]*[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "Europe/Vienna"
    )]
    pub timezone: Option<String>,
    /// ISO 4217 code, e.g. `EUR`.
    #[schema(pattern = r"^[A-Z]{3}$", example = "EUR")]
    pub currency: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 500, format = "stayos:free-text")]
    pub address: Option<String>,
    /// `HH:MM`.
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "15:00")]
    pub check_in_time: Option<String>,
    /// `HH:MM`.
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "11:00")]
    pub check_out_time: Option<String>,
    /// VAT in basis points (1000 = 10 %), 0 to 10000.
    #[schema(minimum = 0, maximum = 10_000)]
    pub vat_rate_bp: Option<i64>,
    /// Whether prices include VAT.
    pub vat_inclusive: Option<bool>,
    /// City tax per person-night in minor units.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub city_tax_minor: Option<i64>,
    /// Whether children pay city tax too.
    pub city_tax_children: Option<bool>,
    /// How long a tentative reservation is held, 1 to 720 hours.
    #[schema(minimum = 1, maximum = 720)]
    pub tentative_hold_hours: Option<i64>,
    /// How guests earn points here; `null` removes the rule (no points are earned).
    #[serde(default, deserialize_with = "crate::http::wire::present")]
    #[schema(value_type = Option<LoyaltyRule>)]
    pub loyalty_rule: Option<Value>,
}

/// A new property: `name`, `timezone` and `currency` are required; the other settings take
/// their defaults when left out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyCreate {
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: String,
    /// IANA time zone, e.g. `Europe/Vienna`.
    #[schema(
        min_length = 1,
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z][A-Za-z0-9/_+-]*[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "Europe/Vienna"
    )]
    pub timezone: String,
    /// ISO 4217 code, e.g. `EUR`.
    #[schema(pattern = r"^[A-Z]{3}$", example = "EUR")]
    pub currency: String,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 500, format = "stayos:free-text")]
    pub address: Option<String>,
    /// `HH:MM` (default `15:00`).
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "15:00")]
    pub check_in_time: Option<String>,
    /// `HH:MM` (default `11:00`).
    #[schema(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "11:00")]
    pub check_out_time: Option<String>,
    /// VAT in basis points (1000 = 10 %), 0 to 10000.
    #[schema(minimum = 0, maximum = 10_000)]
    pub vat_rate_bp: Option<i64>,
    /// Whether prices include VAT.
    pub vat_inclusive: Option<bool>,
    /// City tax per person-night in minor units.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub city_tax_minor: Option<i64>,
    /// Whether children pay city tax too.
    pub city_tax_children: Option<bool>,
    /// How long a tentative reservation is held, 1 to 720 hours.
    #[schema(minimum = 1, maximum = 720)]
    pub tentative_hold_hours: Option<i64>,
    /// How guests earn points here; `null` or left out: no points are earned.
    #[serde(default, deserialize_with = "crate::http::wire::present")]
    #[schema(value_type = Option<LoyaltyRule>)]
    pub loyalty_rule: Option<Value>,
}

impl From<PropertyCreate> for PropertyInput {
    fn from(c: PropertyCreate) -> Self {
        PropertyInput {
            name: Some(c.name),
            timezone: Some(c.timezone),
            currency: Some(c.currency),
            address: c.address,
            check_in_time: c.check_in_time,
            check_out_time: c.check_out_time,
            vat_rate_bp: c.vat_rate_bp,
            vat_inclusive: c.vat_inclusive,
            city_tax_minor: c.city_tax_minor,
            city_tax_children: c.city_tax_children,
            tentative_hold_hours: c.tentative_hold_hours,
            loyalty_rule: c.loyalty_rule,
        }
    }
}

/// How guests earn loyalty points at a property (checked by `validate::loyalty_rule`: tier
/// names unique, `min_points` ascending).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct LoyaltyRule {
    /// Points per major unit of the currency spent, credited at check-out.
    #[schema(minimum = 0, maximum = 1_000_000)]
    points_per_unit: i64,
    /// Tiers by lifetime points, in ascending `min_points`.
    #[serde(default)]
    tiers: Vec<LoyaltyTier>,
}

/// A loyalty tier.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct LoyaltyTier {
    #[schema(min_length = 1, max_length = 50)]
    name: String,
    #[schema(minimum = 0)]
    min_points: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PropertyView {
    pub id: String,
    pub name: String,
    pub timezone: String,
    pub currency: String,
    pub address: Option<String>,
    pub check_in_time: String,
    pub check_out_time: String,
    pub vat_rate_bp: i64,
    pub vat_inclusive: bool,
    pub city_tax_minor: i64,
    pub city_tax_children: bool,
    /// The day the front desk works on; moves on at end of day.
    pub business_date: String,
    pub tentative_hold_hours: i64,
    /// How guests earn points here; `null` when they earn none.
    #[schema(value_type = Option<LoyaltyRule>)]
    pub loyalty_rule: Option<Value>,
    pub created_at: String,
    pub updated_at: String,
}

fn view(conn: &Connection, p: PropertyRecord) -> Result<PropertyView, ApiError> {
    let business_date = match access::settings(conn, &p.id)? {
        Some(s) => s.business_date.to_string(),
        None => p.business_date.clone(),
    };
    Ok(PropertyView {
        loyalty_rule: serde_json::from_str(&p.loyalty_rule).ok(),
        id: p.id,
        name: p.name,
        timezone: p.timezone,
        currency: p.currency,
        address: crate::http::wire::text(&p.address),
        check_in_time: p.check_in_time,
        check_out_time: p.check_out_time,
        vat_rate_bp: p.vat_rate_bp,
        vat_inclusive: p.vat_inclusive,
        city_tax_minor: p.city_tax_minor,
        city_tax_children: p.city_tax_children,
        business_date,
        tentative_hold_hours: p.tentative_hold_hours,
        created_at: rfc3339(p.created_at),
        updated_at: rfc3339(p.updated_at),
    })
}

/// Applies the given settings to `p` after checking them; returns the changed fields.
fn apply(p: &mut PropertyRecord, input: PropertyInput) -> Result<Vec<&'static str>, ApiError> {
    let mut changed = Vec::new();
    if let Some(v) = input.name {
        set(&mut p.name, validate::text("name", &v, 200)?, "name", &mut changed);
    }
    if let Some(v) = input.timezone {
        set(&mut p.timezone, validate::timezone(&v)?, "timezone", &mut changed);
    }
    if let Some(v) = input.currency {
        set(&mut p.currency, validate::currency(&v)?, "currency", &mut changed);
    }
    if let Some(v) = input.address {
        set(&mut p.address, validate::free_text("address", &v, 500)?, "address", &mut changed);
    }
    if let Some(v) = input.check_in_time {
        set(
            &mut p.check_in_time,
            validate::hhmm("check_in_time", &v)?,
            "check_in_time",
            &mut changed,
        );
    }
    if let Some(v) = input.check_out_time {
        set(
            &mut p.check_out_time,
            validate::hhmm("check_out_time", &v)?,
            "check_out_time",
            &mut changed,
        );
    }
    if let Some(v) = input.vat_rate_bp {
        set(
            &mut p.vat_rate_bp,
            validate::int("vat_rate_bp", v, 0, 10_000)?,
            "vat_rate_bp",
            &mut changed,
        );
    }
    if let Some(v) = input.vat_inclusive {
        set(&mut p.vat_inclusive, v, "vat_inclusive", &mut changed);
    }
    if let Some(v) = input.city_tax_minor {
        set(
            &mut p.city_tax_minor,
            validate::int("city_tax_minor", v, 0, 100_000_000)?,
            "city_tax_minor",
            &mut changed,
        );
    }
    if let Some(v) = input.city_tax_children {
        set(&mut p.city_tax_children, v, "city_tax_children", &mut changed);
    }
    if let Some(v) = input.tentative_hold_hours {
        set(
            &mut p.tentative_hold_hours,
            validate::int("tentative_hold_hours", v, 1, 720)?,
            "tentative_hold_hours",
            &mut changed,
        );
    }
    if let Some(v) = input.loyalty_rule {
        let rule = if v.is_null() { String::new() } else { validate::loyalty_rule(&v)? };
        set(&mut p.loyalty_rule, rule, "loyalty_rule", &mut changed);
    }
    Ok(changed)
}

/// 409 `node_enrolled` once the node has a hub link: the hub takes from a node the rows of
/// the property it is enrolled for and refuses any other's, so a second property here could
/// never sync and would hold up the node's own pushes.
fn ensure_not_enrolled(conn: &Connection, own: &str) -> Result<(), ApiError> {
    let enrolled = match crate::sync::config::load(conn) {
        Ok(link) => link.is_some(),
        // A damaged link is still an enrollment; `enroll --force` replaces it.
        Err(crate::sync::config::LinkError::Corrupt(_)) => true,
        Err(crate::sync::config::LinkError::Sqlite(e)) => return Err(e.into()),
    };
    if enrolled {
        return Err(ApiError::conflict(
            "node_enrolled",
            format!(
                "this node is enrolled for property {own}; a node serves exactly the property \
                 it is enrolled for, so create the new property on a node of its own \
                 (`stayos-edge init`) and enroll that node for it"
            ),
        )
        .with_details(json!({ "property_id": own })));
    }
    Ok(())
}

/// The properties the caller belongs to.
#[utoipa::path(get, path = "/properties", tag = "properties", security(("bearer" = [])),
    responses((status = 200, description = "The caller's properties, by name", body = Page<PropertyView>)))]
async fn list_properties(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
) -> Result<Json<Page<PropertyView>>, ApiError> {
    let ids = principal.properties.clone();
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            store::list_records(conn, &ids)?.into_iter().map(|p| view(conn, p)).collect()
        })
        .await?;
    Ok(Json(Page::all(list)))
}

/// Create a property (owners). The creating staff member gets access to it; API keys may
/// not create properties. A node enrolled with the hub serves exactly the property it is
/// enrolled for, so there this answers 409 `node_enrolled`.
#[utoipa::path(post, path = "/properties", tag = "properties", security(("bearer" = [])),
    request_body = PropertyCreate,
    responses(
        (status = 201, description = "Property created", body = PropertyView),
        (status = 403, description = "Not an owner, or an API key", body = ErrorBody),
        (status = 409, description = "The node is enrolled for its own property (`node_enrolled`)", body = ErrorBody),
        (status = 422, description = "A setting is missing or invalid", body = ErrorBody),
    ))]
async fn create_property(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyAdmin>,
    ApiJson(input): ApiJson<PropertyCreate>,
) -> Result<(StatusCode, Json<PropertyView>), ApiError> {
    let (staff_id, _) = principal.staff_session()?;
    let staff_id = staff_id.to_string();
    let input = PropertyInput::from(input);
    let now = now_ms();
    let mut p = PropertyRecord::new(uuid::Uuid::now_v7().to_string(), now);
    apply(&mut p, input)?;
    p.business_date = dates::today_in(&p.timezone).to_string();
    let actor = principal.actor();
    let own = state.node.property_id.clone();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            // Checked in the write transaction, so an enrollment committed a moment ago counts.
            ensure_not_enrolled(tx, &own)?;
            store::save_record(tx, &p)?;
            store::grant(tx, &staff_id, &p.id)?;
            audit::record(
                tx,
                Entry::new("property_created", actor)
                    .subject(&p.id)
                    .property(&p.id)
                    .details(json!({
                    "name": p.name, "timezone": p.timezone, "currency": p.currency })),
                now,
            )?;
            view(tx, p)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A property with all its settings.
#[utoipa::path(get, path = "/properties/{id}", tag = "properties", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses(
        (status = 200, description = "The property", body = PropertyView),
        (status = 404, description = "No such property", body = ErrorBody),
    ))]
async fn get_property(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PropertyView>, ApiError> {
    access::ensure(&principal, &id)?;
    let view = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let p = store::get_record(conn, &id)?.ok_or_else(|| ApiError::not_found("property"))?;
            view(conn, p)
        })
        .await?;
    Ok(Json(view))
}

/// Change some of a property's settings (owners, managers). The business date is not
/// editable: it moves at end of day.
#[utoipa::path(put, path = "/properties/{id}", tag = "properties", security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id")),
    request_body = PropertyInput,
    responses(
        (status = 200, description = "The property after the change", body = PropertyView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 422, description = "A setting is invalid", body = ErrorBody),
    ))]
async fn update_property(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath(id): ApiPath<String>,
    if_match: IfMatch,
    put: Representation<PropertyInput>,
) -> Result<Json<PropertyView>, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let mut p =
                store::get_record(tx, &id)?.ok_or_else(|| ApiError::not_found("property"))?;
            put.check(&if_match, || view(tx, p.clone()))?;
            let input = put.input;
            let changed = apply(&mut p, input)?;
            if !changed.is_empty() {
                p.updated_at = now;
                store::save_record(tx, &p)?;
                audit::record(
                    tx,
                    Entry::new("property_updated", actor)
                        .subject(&id)
                        .property(&id)
                        .details(json!({ "changed": changed })),
                    now,
                )?;
            }
            view(tx, p)
        })
        .await?;
    Ok(Json(view))
}

/// Delete a property (owners): refused while it has reservations that hold or will hold
/// rooms. The property disappears from lists; its history stays.
#[utoipa::path(delete, path = "/properties/{id}", tag = "properties", security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id")),
    responses(
        (status = 204, description = "Property deleted"),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 409, description = "Open reservations (`property_has_reservations`)", body = ErrorBody),
    ))]
async fn delete_property(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyAdmin>,
    ApiPath(id): ApiPath<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            if_match.check(|| {
                let p =
                    store::get_record(tx, &id)?.ok_or_else(|| ApiError::not_found("property"))?;
                view(tx, p)
            })?;
            let open = store::open_reservations(tx, &id)?;
            if open > 0 {
                return Err(ApiError::conflict(
                    "property_has_reservations",
                    format!(
                        "the property has {open} open reservations; cancel or finish them first"
                    ),
                )
                .with_details(json!({ "reservations": open })));
            }
            store::soft_delete(tx, &id, now)?;
            audit::record(
                tx,
                Entry::new("property_deleted", actor).subject(&id).property(&id),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
