//! Cancellation policies, rate plans, and the nightly prices and restrictions of a rate
//! plan per room type, over HTTP with their SQL.
//!
//! `rate_prices` has one row per (plan, room type, night); no row means not sellable under
//! that plan that night. `PUT .../prices` upserts a range of nights in one transaction and
//! changes only the fields it is given on nights that already have a row.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::civil::Weekday;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::access;
use super::routes::live_property;
use super::validate::{self, set};
use crate::audit::{self, Entry};
use crate::auth::extract::Authorized;
use crate::auth::permissions::perm;
use crate::dates;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::etag::{IfMatch, IfMatchHeader};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::list::Page;
use crate::http::representation::Representation;
use crate::state::AppState;
use crate::time::now_ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_policies, create_policy))
        .routes(routes!(get_policy_route, update_policy, delete_policy))
        .routes(routes!(list_rate_plans, create_rate_plan))
        .routes(routes!(get_rate_plan, update_rate_plan, delete_rate_plan))
        .routes(routes!(list_prices, set_prices))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

// ---- cancellation policies ----------------------------------------------------------------

pub(crate) const FEE_KINDS: [&str; 4] = ["none", "first_night", "percent", "full"];

/// A cancellation policy to change: only the given fields change (a new policy is a
/// [`PolicyCreate`]).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: Option<String>,
    /// Free cancellation until this many hours before the arrival day's check-in (default 24).
    #[schema(minimum = 0, maximum = 8784)]
    pub free_until_hours: Option<i64>,
    /// Fee after that (default `first_night`; `percent` of the stay).
    #[schema(value_type = Option<crate::vocabulary::FeeKind>)]
    pub fee_kind: Option<String>,
    /// Basis points of the stay's total for `percent` (1 to 10000; 0 when no fee kind is
    /// `percent`).
    #[schema(minimum = 0, maximum = 10_000)]
    pub fee_percent_bp: Option<i64>,
    /// Fee for a no-show (default `first_night`).
    #[schema(value_type = Option<crate::vocabulary::FeeKind>)]
    pub no_show_fee_kind: Option<String>,
}

/// A new cancellation policy: `name` is required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyCreate {
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: String,
    /// Free cancellation until this many hours before the arrival day's check-in (default 24).
    #[schema(minimum = 0, maximum = 8784)]
    pub free_until_hours: Option<i64>,
    /// Fee after that (default `first_night`; `percent` of the stay).
    #[schema(value_type = Option<crate::vocabulary::FeeKind>)]
    pub fee_kind: Option<String>,
    /// Basis points of the stay's total for `percent` (1 to 10000; 0 when no fee kind is
    /// `percent`).
    #[schema(minimum = 0, maximum = 10_000)]
    pub fee_percent_bp: Option<i64>,
    /// Fee for a no-show (default `first_night`).
    #[schema(value_type = Option<crate::vocabulary::FeeKind>)]
    pub no_show_fee_kind: Option<String>,
}

impl From<PolicyCreate> for PolicyInput {
    fn from(c: PolicyCreate) -> Self {
        PolicyInput {
            name: Some(c.name),
            free_until_hours: c.free_until_hours,
            fee_kind: c.fee_kind,
            fee_percent_bp: c.fee_percent_bp,
            no_show_fee_kind: c.no_show_fee_kind,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PolicyView {
    pub id: String,
    pub property_id: String,
    pub name: String,
    pub free_until_hours: i64,
    #[schema(value_type = crate::vocabulary::FeeKind)]
    pub fee_kind: String,
    pub fee_percent_bp: i64,
    #[schema(value_type = crate::vocabulary::FeeKind)]
    pub no_show_fee_kind: String,
}

fn policy_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PolicyView> {
    Ok(PolicyView {
        id: r.get(0)?,
        property_id: r.get(1)?,
        name: r.get(2)?,
        free_until_hours: r.get(3)?,
        fee_kind: r.get(4)?,
        fee_percent_bp: r.get(5)?,
        no_show_fee_kind: r.get(6)?,
    })
}

const POLICY_COLUMNS: &str =
    "id, property_id, name, free_until_hours, fee_kind, fee_percent_bp, no_show_fee_kind";

fn get_policy(conn: &Connection, property_id: &str, id: &str) -> Result<PolicyView, ApiError> {
    conn.prepare_cached(&format!(
        "SELECT {POLICY_COLUMNS} FROM cancellation_policies
         WHERE id = ?1 AND property_id = ?2 AND deleted_at = 0"
    ))?
    .query_row([id, property_id], policy_row)
    .optional()?
    .ok_or_else(|| ApiError::not_found("cancellation policy"))
}

fn fee_kind(field: &str, value: &str) -> Result<String, ApiError> {
    if FEE_KINDS.contains(&value) {
        Ok(value.to_string())
    } else {
        Err(ApiError::invalid_field(field, format!("must be one of {}", FEE_KINDS.join(", "))))
    }
}

fn apply_policy(p: &mut PolicyView, input: PolicyInput) -> Result<Vec<&'static str>, ApiError> {
    let mut changed = Vec::new();
    if let Some(v) = input.name {
        set(&mut p.name, validate::text("name", &v, 200)?, "name", &mut changed);
    }
    if let Some(v) = input.free_until_hours {
        set(
            &mut p.free_until_hours,
            validate::int("free_until_hours", v, 0, 24 * 366)?,
            "free_until_hours",
            &mut changed,
        );
    }
    if let Some(v) = input.fee_kind {
        set(&mut p.fee_kind, fee_kind("fee_kind", &v)?, "fee_kind", &mut changed);
    }
    if let Some(v) = input.no_show_fee_kind {
        set(
            &mut p.no_show_fee_kind,
            fee_kind("no_show_fee_kind", &v)?,
            "no_show_fee_kind",
            &mut changed,
        );
    }
    if let Some(v) = input.fee_percent_bp {
        set(
            &mut p.fee_percent_bp,
            validate::int("fee_percent_bp", v, 0, 10_000)?,
            "fee_percent_bp",
            &mut changed,
        );
    }
    let percent = p.fee_kind == "percent" || p.no_show_fee_kind == "percent";
    if percent && p.fee_percent_bp == 0 {
        return Err(ApiError::invalid_field(
            "fee_percent_bp",
            "is required (1 to 10000) when a fee kind is percent",
        ));
    }
    Ok(changed)
}

fn save_policy(conn: &Connection, p: &PolicyView, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO cancellation_policies (id, property_id, name, free_until_hours, fee_kind,
             fee_percent_bp, no_show_fee_kind, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name,
             free_until_hours = excluded.free_until_hours, fee_kind = excluded.fee_kind,
             fee_percent_bp = excluded.fee_percent_bp,
             no_show_fee_kind = excluded.no_show_fee_kind, updated_at = excluded.updated_at",
    )?
    .execute(params![
        p.id,
        p.property_id,
        p.name,
        p.free_until_hours,
        p.fee_kind,
        p.fee_percent_bp,
        p.no_show_fee_kind,
        now
    ])?;
    Ok(())
}

/// The property's cancellation policies by name.
#[utoipa::path(get, path = "/properties/{id}/cancellation-policies", tag = "rates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses(
        (status = 200, description = "Policies", body = Page<PolicyView>),
        (status = 404, description = "No such property", body = ErrorBody),
    ))]
async fn list_policies(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Page<PolicyView>>, ApiError> {
    access::ensure(&principal, &id)?;
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            let list = conn
                .prepare_cached(&format!(
                    "SELECT {POLICY_COLUMNS} FROM cancellation_policies
                     WHERE property_id = ?1 AND deleted_at = 0 ORDER BY name, id"
                ))?
                .query_map([&id], policy_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(list)
        })
        .await?;
    Ok(Json(Page::all(list)))
}

/// Create a cancellation policy.
#[utoipa::path(post, path = "/properties/{id}/cancellation-policies", tag = "rates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    request_body = PolicyCreate,
    responses(
        (status = 201, description = "Policy created", body = PolicyView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    ))]
async fn create_policy(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<PolicyCreate>,
) -> Result<(StatusCode, Json<PolicyView>), ApiError> {
    access::ensure(&principal, &id)?;
    let input = PolicyInput::from(input);
    let mut p = PolicyView {
        id: new_id(),
        property_id: id.clone(),
        name: String::new(),
        free_until_hours: 24,
        fee_kind: "first_night".into(),
        fee_percent_bp: 0,
        no_show_fee_kind: "first_night".into(),
    };
    apply_policy(&mut p, input)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            save_policy(tx, &p, now)?;
            audit::record(
                tx,
                Entry::new("cancellation_policy_created", actor)
                    .subject(&p.id)
                    .details(json!({ "property_id": id, "name": p.name })),
                now,
            )?;
            Ok(p)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A cancellation policy.
#[utoipa::path(get, path = "/properties/{id}/cancellation-policies/{policy_id}", tag = "rates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"),
        ("policy_id" = String, Path, description = "Policy id")),
    responses(
        (status = 200, description = "The policy", body = PolicyView),
        (status = 404, description = "No such property or policy", body = ErrorBody),
    ))]
async fn get_policy_route(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath((id, policy_id)): ApiPath<(String, String)>,
) -> Result<Json<PolicyView>, ApiError> {
    access::ensure(&principal, &id)?;
    let view = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            get_policy(conn, &id, &policy_id)
        })
        .await?;
    Ok(Json(view))
}

/// Change some fields of a cancellation policy. Reservations already made keep the fee
/// terms they were priced with only if the reservation service snapshots them.
#[utoipa::path(put, path = "/properties/{id}/cancellation-policies/{policy_id}", tag = "rates",
    security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id"),
        ("policy_id" = String, Path, description = "Policy id")),
    request_body = PolicyInput,
    responses(
        (status = 200, description = "The policy after the change", body = PolicyView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or policy", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn update_policy(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, policy_id)): ApiPath<(String, String)>,
    if_match: IfMatch,
    put: Representation<PolicyInput>,
) -> Result<Json<PolicyView>, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            let mut p = get_policy(tx, &id, &policy_id)?;
            put.check(&if_match, || Ok(p.clone()))?;
            let input = put.input;
            let changed = apply_policy(&mut p, input)?;
            if !changed.is_empty() {
                save_policy(tx, &p, now)?;
                audit::record(
                    tx,
                    Entry::new("cancellation_policy_updated", actor)
                        .subject(&p.id)
                        .details(json!({ "property_id": id, "changed": changed })),
                    now,
                )?;
            }
            Ok(p)
        })
        .await?;
    Ok(Json(view))
}

/// Delete a cancellation policy: refused while a live rate plan uses it.
#[utoipa::path(delete, path = "/properties/{id}/cancellation-policies/{policy_id}", tag = "rates",
    security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id"),
        ("policy_id" = String, Path, description = "Policy id")),
    responses(
        (status = 204, description = "Policy deleted"),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or policy", body = ErrorBody),
        (status = 409, description = "A rate plan uses it (`policy_in_use`)", body = ErrorBody),
    ))]
async fn delete_policy(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, policy_id)): ApiPath<(String, String)>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            let p = get_policy(tx, &id, &policy_id)?;
            if_match.check(|| Ok(p.clone()))?;
            let plans: Vec<String> = tx
                .prepare_cached(
                    "SELECT code FROM rate_plans WHERE property_id = ?1
                         AND cancellation_policy_id = ?2 AND deleted_at = 0 ORDER BY code",
                )?
                .query_map([&id, &p.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if !plans.is_empty() {
                return Err(ApiError::conflict(
                    "policy_in_use",
                    format!("rate plans use this policy: {}", plans.join(", ")),
                )
                .with_details(json!({ "rate_plans": plans })));
            }
            tx.prepare_cached(
                "UPDATE cancellation_policies SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![p.id, now])?;
            audit::record(
                tx,
                Entry::new("cancellation_policy_deleted", actor)
                    .subject(&p.id)
                    .details(json!({ "property_id": id })),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- rate plans ---------------------------------------------------------------------------

/// A rate plan to change: only the given fields change (a new rate plan is a
/// [`RatePlanCreate`]).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatePlanInput {
    /// Unique among the property's rate plans, e.g. `FLEX`.
    #[schema(format = "stayos:code", example = "FLEX")]
    pub code: Option<String>,
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 2000, format = "stayos:free-text")]
    pub description: Option<String>,
    /// A cancellation policy of the same property.
    pub cancellation_policy_id: Option<String>,
    pub breakfast_included: Option<bool>,
    /// Per adult-night above the room type's base occupancy, minor units.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub extra_adult_minor: Option<i64>,
    /// Per child-night above the base occupancy, minor units.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub extra_child_minor: Option<i64>,
    /// Inactive plans are not sold (default true).
    pub active: Option<bool>,
}

/// A new rate plan: `code`, `name` and `cancellation_policy_id` are required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatePlanCreate {
    /// Unique among the property's rate plans, e.g. `FLEX`.
    #[schema(format = "stayos:code", example = "FLEX")]
    pub code: String,
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: String,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 2000, format = "stayos:free-text")]
    pub description: Option<String>,
    /// A cancellation policy of the same property.
    pub cancellation_policy_id: String,
    pub breakfast_included: Option<bool>,
    /// Per adult-night above the room type's base occupancy, minor units.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub extra_adult_minor: Option<i64>,
    /// Per child-night above the base occupancy, minor units.
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub extra_child_minor: Option<i64>,
    /// Inactive plans are not sold (default true).
    pub active: Option<bool>,
}

impl From<RatePlanCreate> for RatePlanInput {
    fn from(c: RatePlanCreate) -> Self {
        RatePlanInput {
            code: Some(c.code),
            name: Some(c.name),
            description: c.description,
            cancellation_policy_id: Some(c.cancellation_policy_id),
            breakfast_included: c.breakfast_included,
            extra_adult_minor: c.extra_adult_minor,
            extra_child_minor: c.extra_child_minor,
            active: c.active,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RatePlanView {
    pub id: String,
    pub property_id: String,
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub cancellation_policy_id: String,
    pub breakfast_included: bool,
    pub extra_adult_minor: i64,
    pub extra_child_minor: i64,
    pub active: bool,
}

const PLAN_COLUMNS: &str = "id, property_id, code, name, description, cancellation_policy_id,
    breakfast_included, extra_adult_minor, extra_child_minor, active";

fn plan_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RatePlanView> {
    Ok(RatePlanView {
        id: r.get(0)?,
        property_id: r.get(1)?,
        code: r.get(2)?,
        name: r.get(3)?,
        description: crate::http::wire::column(r, 4)?,
        cancellation_policy_id: r.get(5)?,
        breakfast_included: r.get::<_, i64>(6)? != 0,
        extra_adult_minor: r.get(7)?,
        extra_child_minor: r.get(8)?,
        active: r.get::<_, i64>(9)? != 0,
    })
}

fn get_plan(conn: &Connection, property_id: &str, id: &str) -> Result<RatePlanView, ApiError> {
    conn.prepare_cached(&format!(
        "SELECT {PLAN_COLUMNS} FROM rate_plans WHERE id = ?1 AND property_id = ?2 AND deleted_at = 0"
    ))?
    .query_row([id, property_id], plan_row)
    .optional()?
    .ok_or_else(|| ApiError::not_found("rate plan"))
}

fn apply_plan(p: &mut RatePlanView, input: RatePlanInput) -> Result<Vec<&'static str>, ApiError> {
    let mut changed = Vec::new();
    if let Some(v) = input.code {
        set(&mut p.code, validate::code("code", &v)?, "code", &mut changed);
    }
    if let Some(v) = input.name {
        set(&mut p.name, validate::text("name", &v, 200)?, "name", &mut changed);
    }
    if let Some(v) = input.description {
        set(
            &mut p.description,
            crate::http::wire::text(&validate::free_text("description", &v, 2000)?),
            "description",
            &mut changed,
        );
    }
    if let Some(v) = input.cancellation_policy_id {
        set(
            &mut p.cancellation_policy_id,
            v.trim().to_string(),
            "cancellation_policy_id",
            &mut changed,
        );
    }
    if let Some(v) = input.breakfast_included {
        set(&mut p.breakfast_included, v, "breakfast_included", &mut changed);
    }
    if let Some(v) = input.extra_adult_minor {
        set(
            &mut p.extra_adult_minor,
            validate::int("extra_adult_minor", v, 0, 100_000_000)?,
            "extra_adult_minor",
            &mut changed,
        );
    }
    if let Some(v) = input.extra_child_minor {
        set(
            &mut p.extra_child_minor,
            validate::int("extra_child_minor", v, 0, 100_000_000)?,
            "extra_child_minor",
            &mut changed,
        );
    }
    if let Some(v) = input.active {
        set(&mut p.active, v, "active", &mut changed);
    }
    Ok(changed)
}

/// Code unique and policy live at the property.
fn ensure_plan_refs(conn: &Connection, p: &RatePlanView) -> Result<(), ApiError> {
    let policy = std::slice::from_ref(&p.cancellation_policy_id);
    if !validate::missing_ids(conn, "cancellation_policies", &p.property_id, policy)?.is_empty() {
        return Err(ApiError::invalid_field(
            "cancellation_policy_id",
            "no such cancellation policy at this property",
        ));
    }
    let taken: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM rate_plans WHERE property_id = ?1 AND code = ?2 AND id != ?3
                 AND deleted_at = 0 LIMIT 1",
        )?
        .query_row([&p.property_id, &p.code, &p.id], |r| r.get(0))
        .optional()?;
    if let Some(other) = taken {
        return Err(ApiError::conflict(
            "rate_plan_code_taken",
            format!("another rate plan of this property has the code {}", p.code),
        )
        .with_details(json!({ "field": "code", "rate_plan_id": other })));
    }
    Ok(())
}

fn save_plan(conn: &Connection, p: &RatePlanView, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO rate_plans (id, property_id, code, name, description,
             cancellation_policy_id, breakfast_included, extra_adult_minor, extra_child_minor,
             active, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
         ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name,
             description = excluded.description,
             cancellation_policy_id = excluded.cancellation_policy_id,
             breakfast_included = excluded.breakfast_included,
             extra_adult_minor = excluded.extra_adult_minor,
             extra_child_minor = excluded.extra_child_minor, active = excluded.active,
             updated_at = excluded.updated_at",
    )?
    .execute(params![
        p.id,
        p.property_id,
        p.code,
        p.name,
        p.description.as_deref().unwrap_or(""),
        p.cancellation_policy_id,
        p.breakfast_included as i64,
        p.extra_adult_minor,
        p.extra_child_minor,
        p.active as i64,
        now
    ])?;
    Ok(())
}

/// The property's rate plans by code.
#[utoipa::path(get, path = "/properties/{id}/rate-plans", tag = "rates", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses(
        (status = 200, description = "Rate plans", body = Page<RatePlanView>),
        (status = 404, description = "No such property", body = ErrorBody),
    ))]
async fn list_rate_plans(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Page<RatePlanView>>, ApiError> {
    access::ensure(&principal, &id)?;
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            let list = conn
                .prepare_cached(&format!(
                    "SELECT {PLAN_COLUMNS} FROM rate_plans WHERE property_id = ?1 AND deleted_at = 0
                     ORDER BY code"
                ))?
                .query_map([&id], plan_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(list)
        })
        .await?;
    Ok(Json(Page::all(list)))
}

/// Create a rate plan.
#[utoipa::path(post, path = "/properties/{id}/rate-plans", tag = "rates", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    request_body = RatePlanCreate,
    responses(
        (status = 201, description = "Rate plan created", body = RatePlanView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 409, description = "Code taken (`rate_plan_code_taken`)", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    ))]
async fn create_rate_plan(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<RatePlanCreate>,
) -> Result<(StatusCode, Json<RatePlanView>), ApiError> {
    access::ensure(&principal, &id)?;
    let input = RatePlanInput::from(input);
    let mut p = RatePlanView {
        id: new_id(),
        property_id: id.clone(),
        code: String::new(),
        name: String::new(),
        description: None,
        cancellation_policy_id: String::new(),
        breakfast_included: false,
        extra_adult_minor: 0,
        extra_child_minor: 0,
        active: true,
    };
    apply_plan(&mut p, input)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            ensure_plan_refs(tx, &p)?;
            save_plan(tx, &p, now)?;
            audit::record(
                tx,
                Entry::new("rate_plan_created", actor)
                    .subject(&p.id)
                    .details(json!({ "property_id": id, "code": p.code })),
                now,
            )?;
            Ok(p)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A rate plan.
#[utoipa::path(get, path = "/properties/{id}/rate-plans/{rate_plan_id}", tag = "rates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"),
        ("rate_plan_id" = String, Path, description = "Rate plan id")),
    responses(
        (status = 200, description = "The rate plan", body = RatePlanView),
        (status = 404, description = "No such property or rate plan", body = ErrorBody),
    ))]
async fn get_rate_plan(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath((id, plan_id)): ApiPath<(String, String)>,
) -> Result<Json<RatePlanView>, ApiError> {
    access::ensure(&principal, &id)?;
    let view = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            get_plan(conn, &id, &plan_id)
        })
        .await?;
    Ok(Json(view))
}

/// Change some fields of a rate plan.
#[utoipa::path(put, path = "/properties/{id}/rate-plans/{rate_plan_id}", tag = "rates",
    security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id"),
        ("rate_plan_id" = String, Path, description = "Rate plan id")),
    request_body = RatePlanInput,
    responses(
        (status = 200, description = "The rate plan after the change", body = RatePlanView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or rate plan", body = ErrorBody),
        (status = 409, description = "Code taken (`rate_plan_code_taken`)", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn update_rate_plan(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, plan_id)): ApiPath<(String, String)>,
    if_match: IfMatch,
    put: Representation<RatePlanInput>,
) -> Result<Json<RatePlanView>, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            let mut p = get_plan(tx, &id, &plan_id)?;
            put.check(&if_match, || Ok(p.clone()))?;
            let input = put.input;
            let changed = apply_plan(&mut p, input)?;
            if !changed.is_empty() {
                ensure_plan_refs(tx, &p)?;
                save_plan(tx, &p, now)?;
                audit::record(
                    tx,
                    Entry::new("rate_plan_updated", actor)
                        .subject(&p.id)
                        .details(json!({ "property_id": id, "changed": changed })),
                    now,
                )?;
            }
            Ok(p)
        })
        .await?;
    Ok(Json(view))
}

/// Delete a rate plan: refused while open reservations (tentative, confirmed, checked in,
/// waitlisted) are booked on it; deactivate it instead to stop selling.
#[utoipa::path(delete, path = "/properties/{id}/rate-plans/{rate_plan_id}", tag = "rates",
    security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id"),
        ("rate_plan_id" = String, Path, description = "Rate plan id")),
    responses(
        (status = 204, description = "Rate plan deleted"),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or rate plan", body = ErrorBody),
        (status = 409, description = "Open reservations use it (`rate_plan_has_reservations`)", body = ErrorBody),
    ))]
async fn delete_rate_plan(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, plan_id)): ApiPath<(String, String)>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            let p = get_plan(tx, &id, &plan_id)?;
            if_match.check(|| Ok(p.clone()))?;
            let open: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM reservations WHERE property_id = ?1 AND rate_plan_id = ?2
                         AND status IN ('tentative', 'confirmed', 'checked_in', 'waitlisted')",
                )?
                .query_row([&id, &p.id], |r| r.get(0))?;
            if open > 0 {
                return Err(ApiError::conflict(
                    "rate_plan_has_reservations",
                    format!("{open} open reservations are booked on this rate plan; deactivate it instead"),
                )
                .with_details(json!({ "reservations": open })));
            }
            tx.prepare_cached("UPDATE rate_plans SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1")?
                .execute(params![p.id, now])?;
            audit::record(
                tx,
                Entry::new("rate_plan_deleted", actor)
                    .subject(&p.id)
                    .details(json!({ "property_id": id, "code": p.code })),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- prices and restrictions --------------------------------------------------------------

/// Prices and restrictions for the nights `[from, to)` of one room type, optionally only on
/// some weekdays. Fields left out keep their value on nights that already have a row; a
/// night without a row needs `price_minor`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPricesInput {
    pub room_type_id: String,
    /// First night, `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub from: String,
    /// The night after the last one (exclusive), at most 731 nights after `from`.
    #[schema(format = Date)]
    pub to: String,
    /// Only these weekdays.
    #[schema(value_type = Option<Vec<crate::vocabulary::Weekday>>, min_items = 1)]
    pub weekdays: Option<Vec<String>>,
    /// Price of the night in minor units.
    #[schema(minimum = 0, maximum = 100_000_000_000_i64)]
    pub price_minor: Option<i64>,
    /// Minimum stay in nights for an arrival that night (0 = none).
    #[schema(minimum = 0, maximum = 731)]
    pub min_stay: Option<i64>,
    /// Maximum stay in nights for an arrival that night (0 = none).
    #[schema(minimum = 0, maximum = 731)]
    pub max_stay: Option<i64>,
    pub closed_to_arrival: Option<bool>,
    pub closed_to_departure: Option<bool>,
    pub stop_sell: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetPricesResult {
    /// Nights written (created or changed).
    pub nights: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PricesQuery {
    /// Only this room type.
    pub room_type_id: Option<String>,
    /// First night, `YYYY-MM-DD`.
    #[param(format = Date)]
    pub from: String,
    /// The night after the last one (exclusive).
    #[param(format = Date)]
    pub to: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceNight {
    pub room_type_id: String,
    pub night: String,
    pub price_minor: i64,
    pub min_stay: i64,
    pub max_stay: i64,
    pub closed_to_arrival: bool,
    pub closed_to_departure: bool,
    pub stop_sell: bool,
}

/// The names `weekdays` takes (`vocabulary::Weekday`).
pub(crate) const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn weekday(text: &str) -> Option<Weekday> {
    use Weekday::*;
    let day = WEEKDAYS.iter().position(|d| *d == text)?;
    [Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday].get(day).copied()
}

/// The nights of a rate plan, by room type and night.
#[utoipa::path(get, path = "/properties/{id}/rate-plans/{rate_plan_id}/prices", tag = "rates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"),
        ("rate_plan_id" = String, Path, description = "Rate plan id"), PricesQuery),
    responses(
        (status = 200, description = "Priced nights", body = Page<PriceNight>),
        (status = 404, description = "No such property or rate plan", body = ErrorBody),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    ))]
async fn list_prices(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath((id, plan_id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<PricesQuery>,
) -> Result<Json<Page<PriceNight>>, ApiError> {
    access::ensure(&principal, &id)?;
    let from = dates::parse("from", &query.from)?;
    let to = dates::parse("to", &query.to)?;
    dates::range(from, to, "to")?;
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            get_plan(conn, &id, &plan_id)?;
            let list = conn
                .prepare_cached(
                    "SELECT room_type_id, night, price_minor, min_stay, max_stay,
                         closed_to_arrival, closed_to_departure, stop_sell
                     FROM rate_prices WHERE rate_plan_id = ?1 AND night >= ?2 AND night < ?3
                         AND (?4 IS NULL OR room_type_id = ?4)
                         AND room_type_id IN (SELECT id FROM room_types
                             WHERE property_id = ?5 AND deleted_at = 0)
                     ORDER BY room_type_id, night",
                )?
                .query_map(
                    params![plan_id, from.to_string(), to.to_string(), query.room_type_id, id],
                    |r| {
                        Ok(PriceNight {
                            room_type_id: r.get(0)?,
                            night: r.get(1)?,
                            price_minor: r.get(2)?,
                            min_stay: r.get(3)?,
                            max_stay: r.get(4)?,
                            closed_to_arrival: r.get::<_, i64>(5)? != 0,
                            closed_to_departure: r.get::<_, i64>(6)? != 0,
                            stop_sell: r.get::<_, i64>(7)? != 0,
                        })
                    },
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(list)
        })
        .await?;
    Ok(Json(Page::all(list)))
}

/// Set prices and restrictions for a range of nights of one room type.
#[utoipa::path(put, path = "/properties/{id}/rate-plans/{rate_plan_id}/prices", tag = "rates",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"),
        ("rate_plan_id" = String, Path, description = "Rate plan id")),
    request_body = SetPricesInput,
    responses(
        (status = 200, description = "How many nights were written", body = SetPricesResult),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or rate plan", body = ErrorBody),
        (status = 422, description = "A field is invalid, or a new night lacks a price", body = ErrorBody),
    ))]
async fn set_prices(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, plan_id)): ApiPath<(String, String)>,
    ApiJson(input): ApiJson<SetPricesInput>,
) -> Result<Json<SetPricesResult>, ApiError> {
    access::ensure(&principal, &id)?;
    let from = dates::parse("from", &input.from)?;
    let to = dates::parse("to", &input.to)?;
    dates::range(from, to, "to")?;
    let weekdays = match &input.weekdays {
        None => None,
        Some(list) => {
            let days = list
                .iter()
                .map(|d| weekday(d))
                .collect::<Option<Vec<_>>>()
                .filter(|d| !d.is_empty())
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "weekdays",
                        "expected a non-empty list of mon, tue, wed, thu, fri, sat, sun",
                    )
                })?;
            Some(days)
        }
    };
    if let Some(v) = input.price_minor {
        validate::int("price_minor", v, 0, 100_000_000_000)?;
    }
    if let Some(v) = input.min_stay {
        validate::int("min_stay", v, 0, dates::MAX_RANGE_NIGHTS)?;
    }
    if let Some(v) = input.max_stay {
        validate::int("max_stay", v, 0, dates::MAX_RANGE_NIGHTS)?;
    }
    let fields: Vec<&str> = [
        ("price_minor", input.price_minor.is_some()),
        ("min_stay", input.min_stay.is_some()),
        ("max_stay", input.max_stay.is_some()),
        ("closed_to_arrival", input.closed_to_arrival.is_some()),
        ("closed_to_departure", input.closed_to_departure.is_some()),
        ("stop_sell", input.stop_sell.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, given)| given.then_some(name))
    .collect();
    if fields.is_empty() {
        return Err(ApiError::invalid_field(
            "price_minor",
            "give a price or at least one restriction to set",
        ));
    }
    let nights: Vec<String> = dates::nights(from, to)
        .filter(|d| weekdays.as_ref().is_none_or(|w| w.contains(&d.weekday())))
        .map(|d| d.to_string())
        .collect();
    let actor = principal.actor();
    let now = now_ms();
    let written = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            let plan = get_plan(tx, &id, &plan_id)?;
            let room_type = std::slice::from_ref(&input.room_type_id);
            if !validate::missing_ids(tx, "room_types", &id, room_type)?.is_empty() {
                return Err(ApiError::invalid_field("room_type_id", "no such room type at this property"));
            }
            let mut exists = tx.prepare_cached(
                "SELECT 1 FROM rate_prices WHERE rate_plan_id = ?1 AND room_type_id = ?2 AND night = ?3",
            )?;
            let mut upsert = tx.prepare_cached(
                "INSERT INTO rate_prices (rate_plan_id, room_type_id, night, price_minor, min_stay,
                     max_stay, closed_to_arrival, closed_to_departure, stop_sell)
                 VALUES (?1, ?2, ?3, coalesce(?4, 0), coalesce(?5, 0), coalesce(?6, 0),
                     coalesce(?7, 0), coalesce(?8, 0), coalesce(?9, 0))
                 ON CONFLICT (rate_plan_id, room_type_id, night) DO UPDATE SET
                     price_minor = coalesce(?4, price_minor), min_stay = coalesce(?5, min_stay),
                     max_stay = coalesce(?6, max_stay),
                     closed_to_arrival = coalesce(?7, closed_to_arrival),
                     closed_to_departure = coalesce(?8, closed_to_departure),
                     stop_sell = coalesce(?9, stop_sell)",
            )?;
            let mut check = tx.prepare_cached(
                "SELECT min_stay, max_stay FROM rate_prices
                 WHERE rate_plan_id = ?1 AND room_type_id = ?2 AND night = ?3",
            )?;
            for night in &nights {
                let key = params![plan.id, input.room_type_id, night];
                if input.price_minor.is_none() && !exists.exists(key)? {
                    return Err(ApiError::invalid_field(
                        "price_minor",
                        format!("the night of {night} has no price yet; give price_minor"),
                    ));
                }
                upsert.execute(params![
                    plan.id,
                    input.room_type_id,
                    night,
                    input.price_minor,
                    input.min_stay,
                    input.max_stay,
                    input.closed_to_arrival.map(i64::from),
                    input.closed_to_departure.map(i64::from),
                    input.stop_sell.map(i64::from)
                ])?;
                let (min, max): (i64, i64) = check.query_row(key, |r| Ok((r.get(0)?, r.get(1)?)))?;
                if max > 0 && max < min {
                    let field = if input.max_stay.is_some() { "max_stay" } else { "min_stay" };
                    return Err(ApiError::invalid_field(
                        field,
                        format!("the night of {night} would have max_stay {max} below min_stay {min}"),
                    ));
                }
            }
            audit::record(
                tx,
                Entry::new("rate_prices_set", actor).subject(&plan.id).details(json!({
                    "property_id": id,
                    "room_type_id": input.room_type_id,
                    "from": input.from,
                    "to": input.to,
                    "weekdays": input.weekdays,
                    "fields": fields,
                    "nights": nights.len(),
                })),
                now,
            )?;
            Ok(nights.len() as i64)
        })
        .await?;
    Ok(Json(SetPricesResult { nights: written }))
}
