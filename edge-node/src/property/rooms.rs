//! Room types, rooms and amenities of a property, over HTTP with their SQL.
//!
//! Inventory safety: a room's type change or deletion is refused while the room holds
//! nights from the business date on (`room_has_reservations`), and any change that lowers a
//! type's capacity (a room leaving it, a lower overbooking allowance) is refused when some
//! future night already sold more than would remain (`room_type_capacity_in_use`). Changes
//! that add capacity promote the type's waitlist in the same transaction.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
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
use crate::http::error::{ApiError, ErrorBody};
use crate::http::etag::{IfMatch, IfMatchHeader};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::list::Page;
use crate::http::representation::Representation;
use crate::reservation::waitlist;
use crate::state::AppState;
use crate::time::now_ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_room_types, create_room_type))
        .routes(routes!(get_room_type, update_room_type, delete_room_type))
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(get_room, update_room, delete_room))
        .routes(routes!(list_amenities, create_amenity))
        .routes(routes!(delete_amenity))
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

// ---- room types ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RoomTypeRecord {
    id: String,
    property_id: String,
    code: String,
    name: String,
    description: String,
    base_occupancy: i64,
    max_adults: i64,
    max_children: i64,
    max_occupancy: i64,
    overbooking_allowance: i64,
    sort_order: i64,
}

/// A room type to change: only the given fields change (a new room type is a
/// [`RoomTypeCreate`]).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomTypeInput {
    /// Short code, unique among the property's room types, e.g. `DBL`.
    #[schema(format = "stayos:code", example = "DBL")]
    pub code: Option<String>,
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 2000, format = "stayos:free-text")]
    pub description: Option<String>,
    /// Guests included in the price (default 2).
    #[schema(minimum = 1, maximum = 50)]
    pub base_occupancy: Option<i64>,
    /// Default 2.
    #[schema(minimum = 1, maximum = 50)]
    pub max_adults: Option<i64>,
    /// Default 0.
    #[schema(minimum = 0, maximum = 50)]
    pub max_children: Option<i64>,
    /// Default max_adults + max_children.
    #[schema(minimum = 1, maximum = 100)]
    pub max_occupancy: Option<i64>,
    /// Rooms that may be sold beyond the physical ones per night (default 0).
    #[schema(minimum = 0, maximum = 1000)]
    pub overbooking_allowance: Option<i64>,
    #[schema(minimum = -100_000, maximum = 100_000)]
    pub sort_order: Option<i64>,
    /// Amenities of the property this type offers (replaces the list).
    pub amenity_ids: Option<Vec<String>>,
}

/// A new room type: `code` and `name` are required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomTypeCreate {
    /// Short code, unique among the property's room types, e.g. `DBL`.
    #[schema(format = "stayos:code", example = "DBL")]
    pub code: String,
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: String,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 2000, format = "stayos:free-text")]
    pub description: Option<String>,
    /// Guests included in the price (default 2).
    #[schema(minimum = 1, maximum = 50)]
    pub base_occupancy: Option<i64>,
    /// Default 2.
    #[schema(minimum = 1, maximum = 50)]
    pub max_adults: Option<i64>,
    /// Default 0.
    #[schema(minimum = 0, maximum = 50)]
    pub max_children: Option<i64>,
    /// Default max_adults + max_children.
    #[schema(minimum = 1, maximum = 100)]
    pub max_occupancy: Option<i64>,
    /// Rooms that may be sold beyond the physical ones per night (default 0).
    #[schema(minimum = 0, maximum = 1000)]
    pub overbooking_allowance: Option<i64>,
    #[schema(minimum = -100_000, maximum = 100_000)]
    pub sort_order: Option<i64>,
    /// Amenities of the property this type offers.
    pub amenity_ids: Option<Vec<String>>,
}

impl From<RoomTypeCreate> for RoomTypeInput {
    fn from(c: RoomTypeCreate) -> Self {
        RoomTypeInput {
            code: Some(c.code),
            name: Some(c.name),
            description: c.description,
            base_occupancy: c.base_occupancy,
            max_adults: c.max_adults,
            max_children: c.max_children,
            max_occupancy: c.max_occupancy,
            overbooking_allowance: c.overbooking_allowance,
            sort_order: c.sort_order,
            amenity_ids: c.amenity_ids,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomTypeView {
    pub id: String,
    pub property_id: String,
    pub code: String,
    pub name: String,
    pub description: Option<String>,
    pub base_occupancy: i64,
    pub max_adults: i64,
    pub max_children: i64,
    pub max_occupancy: i64,
    pub overbooking_allowance: i64,
    pub sort_order: i64,
    pub amenity_ids: Vec<String>,
    /// Live rooms of this type.
    pub room_count: i64,
}

const TYPE_COLUMNS: &str = "id, property_id, code, name, description, base_occupancy,
    max_adults, max_children, max_occupancy, overbooking_allowance, sort_order";

fn type_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoomTypeRecord> {
    Ok(RoomTypeRecord {
        id: r.get(0)?,
        property_id: r.get(1)?,
        code: r.get(2)?,
        name: r.get(3)?,
        description: r.get(4)?,
        base_occupancy: r.get(5)?,
        max_adults: r.get(6)?,
        max_children: r.get(7)?,
        max_occupancy: r.get(8)?,
        overbooking_allowance: r.get(9)?,
        sort_order: r.get(10)?,
    })
}

fn get_type(conn: &Connection, property_id: &str, id: &str) -> Result<RoomTypeRecord, ApiError> {
    conn.prepare_cached(&format!(
        "SELECT {TYPE_COLUMNS} FROM room_types WHERE id = ?1 AND property_id = ?2 AND deleted_at = 0"
    ))?
    .query_row([id, property_id], type_record)
    .optional()?
    .ok_or_else(|| ApiError::not_found("room type"))
}

fn type_view(conn: &Connection, t: RoomTypeRecord) -> Result<RoomTypeView, ApiError> {
    let amenity_ids = conn
        .prepare_cached(
            "SELECT a.id FROM room_type_amenities x JOIN amenities a ON a.id = x.amenity_id
             WHERE x.room_type_id = ?1 AND a.deleted_at = 0 ORDER BY a.code",
        )?
        .query_map([&t.id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let room_count = live_rooms_of_type(conn, &t.id)?;
    Ok(RoomTypeView {
        id: t.id,
        property_id: t.property_id,
        code: t.code,
        name: t.name,
        description: crate::http::wire::text(&t.description),
        base_occupancy: t.base_occupancy,
        max_adults: t.max_adults,
        max_children: t.max_children,
        max_occupancy: t.max_occupancy,
        overbooking_allowance: t.overbooking_allowance,
        sort_order: t.sort_order,
        amenity_ids,
        room_count,
    })
}

fn live_rooms_of_type(conn: &Connection, room_type_id: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT count(*) FROM rooms WHERE room_type_id = ?1 AND deleted_at = 0")?
        .query_row([room_type_id], |r| r.get(0))
}

/// Checks and applies `input` to `t` (without amenities); returns the changed fields.
fn apply_type(
    t: &mut RoomTypeRecord,
    input: &RoomTypeInput,
    creating: bool,
) -> Result<Vec<&'static str>, ApiError> {
    let mut changed = Vec::new();
    if let Some(v) = &input.code {
        set(&mut t.code, validate::code("code", v)?, "code", &mut changed);
    }
    if let Some(v) = &input.name {
        set(&mut t.name, validate::text("name", v, 200)?, "name", &mut changed);
    }
    if let Some(v) = &input.description {
        set(
            &mut t.description,
            validate::free_text("description", v, 2000)?,
            "description",
            &mut changed,
        );
    }
    let ints: [(&'static str, Option<i64>, &mut i64, i64, i64); 6] = [
        ("base_occupancy", input.base_occupancy, &mut t.base_occupancy, 1, 50),
        ("max_adults", input.max_adults, &mut t.max_adults, 1, 50),
        ("max_children", input.max_children, &mut t.max_children, 0, 50),
        ("max_occupancy", input.max_occupancy, &mut t.max_occupancy, 1, 100),
        (
            "overbooking_allowance",
            input.overbooking_allowance,
            &mut t.overbooking_allowance,
            0,
            1000,
        ),
        ("sort_order", input.sort_order, &mut t.sort_order, -100_000, 100_000),
    ];
    for (name, value, slot, lo, hi) in ints {
        if let Some(v) = value {
            set(slot, validate::int(name, v, lo, hi)?, name, &mut changed);
        }
    }
    if creating && input.max_occupancy.is_none() {
        t.max_occupancy = t.max_adults + t.max_children;
    }
    if t.max_occupancy < t.max_adults {
        return Err(ApiError::invalid_field("max_occupancy", "must be at least max_adults"));
    }
    if t.max_occupancy > t.max_adults + t.max_children {
        return Err(ApiError::invalid_field(
            "max_occupancy",
            "must be at most max_adults + max_children",
        ));
    }
    if t.base_occupancy > t.max_occupancy {
        return Err(ApiError::invalid_field("base_occupancy", "must be at most max_occupancy"));
    }
    Ok(changed)
}

fn save_type(conn: &Connection, t: &RoomTypeRecord, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO room_types (id, property_id, code, name, description, base_occupancy,
             max_adults, max_children, max_occupancy, overbooking_allowance, sort_order,
             created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)
         ON CONFLICT (id) DO UPDATE SET code = excluded.code, name = excluded.name,
             description = excluded.description, base_occupancy = excluded.base_occupancy,
             max_adults = excluded.max_adults, max_children = excluded.max_children,
             max_occupancy = excluded.max_occupancy,
             overbooking_allowance = excluded.overbooking_allowance,
             sort_order = excluded.sort_order, updated_at = excluded.updated_at",
    )?
    .execute(params![
        t.id,
        t.property_id,
        t.code,
        t.name,
        t.description,
        t.base_occupancy,
        t.max_adults,
        t.max_children,
        t.max_occupancy,
        t.overbooking_allowance,
        t.sort_order,
        now
    ])?;
    Ok(())
}

fn ensure_type_code_free(conn: &Connection, t: &RoomTypeRecord) -> Result<(), ApiError> {
    let taken: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM room_types WHERE property_id = ?1 AND code = ?2 AND id != ?3
                 AND deleted_at = 0 LIMIT 1",
        )?
        .query_row([&t.property_id, &t.code, &t.id], |r| r.get(0))
        .optional()?;
    match taken {
        Some(other) => Err(ApiError::conflict(
            "room_type_code_taken",
            format!("another room type of this property has the code {}", t.code),
        )
        .with_details(json!({ "field": "code", "room_type_id": other }))),
        None => Ok(()),
    }
}

fn set_amenities(
    conn: &Connection,
    property_id: &str,
    room_type_id: &str,
    ids: &[String],
) -> Result<(), ApiError> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    if let Some(missing) = validate::missing_ids(conn, "amenities", property_id, &ids)?.first() {
        return Err(ApiError::invalid_field("amenity_ids", format!("no amenity {missing} here")));
    }
    conn.prepare_cached("DELETE FROM room_type_amenities WHERE room_type_id = ?1")?
        .execute([room_type_id])?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO room_type_amenities (room_type_id, amenity_id) VALUES (?1, ?2)",
    )?;
    for id in &ids {
        insert.execute([room_type_id, id])?;
    }
    Ok(())
}

/// 409 when some night from `from` on has sold more rooms of the type than its capacity
/// (live rooms not out of order that night, plus the overbooking allowance) now allows. Run
/// after a change that lowers capacity, in the same transaction, so the change rolls back.
fn ensure_capacity(conn: &Connection, room_type_id: &str, from: &str) -> Result<(), ApiError> {
    let over: Option<(String, i64, i64)> = conn
        .prepare_cached(
            "SELECT night, sold, capacity FROM (
                 SELECT n.night, n.sold,
                     (SELECT count(*) FROM rooms r WHERE r.room_type_id = ?1 AND r.deleted_at = 0
                         AND NOT EXISTS (SELECT 1 FROM room_blocks b WHERE b.room_id = r.id
                             AND b.kind = 'out_of_order' AND b.released_at = 0
                             AND b.from_date <= n.night AND b.to_date > n.night))
                     + (SELECT overbooking_allowance FROM room_types WHERE id = ?1) AS capacity
                 FROM room_type_nights n WHERE n.room_type_id = ?1 AND n.night >= ?2 AND n.sold > 0)
             WHERE sold > capacity ORDER BY night LIMIT 1",
        )?
        .query_row([room_type_id, from], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    match over {
        Some((night, sold, capacity)) => Err(ApiError::conflict(
            "room_type_capacity_in_use",
            format!(
                "{sold} rooms of this type are sold for the night of {night}; only {capacity} would remain"
            ),
        )
        .with_details(json!({ "room_type_id": room_type_id, "night": night, "sold": sold,
            "capacity": capacity }))),
        None => Ok(()),
    }
}

/// The property's room types, in their sort order.
#[utoipa::path(get, path = "/properties/{id}/room-types", tag = "properties", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses(
        (status = 200, description = "Room types", body = Page<RoomTypeView>),
        (status = 404, description = "No such property", body = ErrorBody),
    ))]
async fn list_room_types(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Page<RoomTypeView>>, ApiError> {
    access::ensure(&principal, &id)?;
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            let types = conn
                .prepare_cached(&format!(
                    "SELECT {TYPE_COLUMNS} FROM room_types WHERE property_id = ?1 AND deleted_at = 0
                     ORDER BY sort_order, code"
                ))?
                .query_map([&id], type_record)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            types.into_iter().map(|t| type_view(conn, t)).collect()
        })
        .await?;
    Ok(Json(Page::all(list)))
}

/// Create a room type.
#[utoipa::path(post, path = "/properties/{id}/room-types", tag = "properties", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    request_body = RoomTypeCreate,
    responses(
        (status = 201, description = "Room type created", body = RoomTypeView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 409, description = "Code taken (`room_type_code_taken`)", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    ))]
async fn create_room_type(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<RoomTypeCreate>,
) -> Result<(StatusCode, Json<RoomTypeView>), ApiError> {
    access::ensure(&principal, &id)?;
    let input = RoomTypeInput::from(input);
    let mut t = RoomTypeRecord {
        id: new_id(),
        property_id: id.clone(),
        code: String::new(),
        name: String::new(),
        description: String::new(),
        base_occupancy: 2,
        max_adults: 2,
        max_children: 0,
        max_occupancy: 2,
        overbooking_allowance: 0,
        sort_order: 0,
    };
    apply_type(&mut t, &input, true)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            ensure_type_code_free(tx, &t)?;
            save_type(tx, &t, now)?;
            if let Some(ids) = &input.amenity_ids {
                set_amenities(tx, &id, &t.id, ids)?;
            }
            audit::record(
                tx,
                Entry::new("room_type_created", actor)
                    .subject(&t.id)
                    .details(json!({ "property_id": id, "code": t.code })),
                now,
            )?;
            type_view(tx, t)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A room type with its amenities and room count.
#[utoipa::path(get, path = "/properties/{id}/room-types/{room_type_id}", tag = "properties",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"),
        ("room_type_id" = String, Path, description = "Room type id")),
    responses(
        (status = 200, description = "The room type", body = RoomTypeView),
        (status = 404, description = "No such property or room type", body = ErrorBody),
    ))]
async fn get_room_type(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath((id, type_id)): ApiPath<(String, String)>,
) -> Result<Json<RoomTypeView>, ApiError> {
    access::ensure(&principal, &id)?;
    let view = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            let t = get_type(conn, &id, &type_id)?;
            type_view(conn, t)
        })
        .await?;
    Ok(Json(view))
}

/// Change some fields of a room type. Lowering the overbooking allowance is refused while
/// a future night has sold more than would remain.
#[utoipa::path(put, path = "/properties/{id}/room-types/{room_type_id}", tag = "properties",
    security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id"),
        ("room_type_id" = String, Path, description = "Room type id")),
    request_body = RoomTypeInput,
    responses(
        (status = 200, description = "The room type after the change", body = RoomTypeView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or room type", body = ErrorBody),
        (status = 409, description = "Code taken or capacity in use", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn update_room_type(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, type_id)): ApiPath<(String, String)>,
    if_match: IfMatch,
    put: Representation<RoomTypeInput>,
) -> Result<Json<RoomTypeView>, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let settings = live_property(tx, &id)?;
            let mut t = get_type(tx, &id, &type_id)?;
            put.check(&if_match, || type_view(tx, t.clone()))?;
            let input = put.input;
            let before_allowance = t.overbooking_allowance;
            let mut changed = apply_type(&mut t, &input, false)?;
            if changed.contains(&"code") {
                ensure_type_code_free(tx, &t)?;
            }
            if !changed.is_empty() {
                save_type(tx, &t, now)?;
            }
            if let Some(ids) = &input.amenity_ids {
                set_amenities(tx, &id, &t.id, ids)?;
                changed.push("amenity_ids");
            }
            if t.overbooking_allowance < before_allowance {
                ensure_capacity(tx, &t.id, &settings.business_date.to_string())?;
            } else if t.overbooking_allowance > before_allowance {
                waitlist::promote_for_type(tx, &id, &t.id, &actor.label(), now)?;
            }
            if !changed.is_empty() {
                audit::record(
                    tx,
                    Entry::new("room_type_updated", actor)
                        .subject(&t.id)
                        .details(json!({ "property_id": id, "changed": changed })),
                    now,
                )?;
            }
            type_view(tx, t)
        })
        .await?;
    Ok(Json(view))
}

/// Delete a room type: refused while live rooms are of this type or reservations hold it.
#[utoipa::path(delete, path = "/properties/{id}/room-types/{room_type_id}", tag = "properties",
    security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id"),
        ("room_type_id" = String, Path, description = "Room type id")),
    responses(
        (status = 204, description = "Room type deleted"),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or room type", body = ErrorBody),
        (status = 409, description = "`room_type_has_rooms` or `room_type_has_reservations`", body = ErrorBody),
    ))]
async fn delete_room_type(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, type_id)): ApiPath<(String, String)>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            let t = get_type(tx, &id, &type_id)?;
            if_match.check(|| type_view(tx, t.clone()))?;
            let rooms = live_rooms_of_type(tx, &t.id)?;
            if rooms > 0 {
                return Err(ApiError::conflict(
                    "room_type_has_rooms",
                    format!("{rooms} rooms are of this type; move or delete them first"),
                )
                .with_details(json!({ "rooms": rooms })));
            }
            let holding: i64 = tx
                .prepare_cached(
                    "SELECT count(*) FROM reservations WHERE property_id = ?1 AND room_type_id = ?2
                         AND status IN ('tentative', 'confirmed', 'checked_in', 'waitlisted')",
                )?
                .query_row([&id, &t.id], |r| r.get(0))?;
            if holding > 0 {
                return Err(ApiError::conflict(
                    "room_type_has_reservations",
                    format!("{holding} open reservations are for this room type"),
                )
                .with_details(json!({ "reservations": holding })));
            }
            tx.prepare_cached(
                "UPDATE room_types SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1",
            )?
            .execute(params![t.id, now])?;
            audit::record(
                tx,
                Entry::new("room_type_deleted", actor)
                    .subject(&t.id)
                    .details(json!({ "property_id": id, "code": t.code })),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- rooms --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RoomRecord {
    id: String,
    property_id: String,
    room_type_id: String,
    number: String,
    floor: String,
    description: String,
    status: String,
}

/// A room to change: only the given fields change (a new room is a [`RoomCreate`]).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomInput {
    /// Unique among the property's rooms, e.g. `101`.
    #[schema(min_length = 1, max_length = 20, format = "stayos:text", example = "101")]
    pub number: Option<String>,
    /// A room type of the same property.
    pub room_type_id: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 20, format = "stayos:free-text")]
    pub floor: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 2000, format = "stayos:free-text")]
    pub description: Option<String>,
}

/// A new room: `number` and `room_type_id` are required.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomCreate {
    /// Unique among the property's rooms, e.g. `101`.
    #[schema(min_length = 1, max_length = 20, format = "stayos:text", example = "101")]
    pub number: String,
    /// A room type of the same property.
    pub room_type_id: String,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 20, format = "stayos:free-text")]
    pub floor: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 2000, format = "stayos:free-text")]
    pub description: Option<String>,
}

impl From<RoomCreate> for RoomInput {
    fn from(c: RoomCreate) -> Self {
        RoomInput {
            number: Some(c.number),
            room_type_id: Some(c.room_type_id),
            floor: c.floor,
            description: c.description,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    pub id: String,
    pub property_id: String,
    pub room_type_id: String,
    pub room_type_code: String,
    pub number: String,
    pub floor: Option<String>,
    pub description: Option<String>,
    /// Housekeeping status.
    #[schema(value_type = crate::vocabulary::RoomStatus)]
    pub status: String,
    pub status_note: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RoomQuery {
    /// Only rooms of this type.
    pub room_type_id: Option<String>,
    /// Only rooms with this housekeeping status.
    #[param(value_type = Option<crate::vocabulary::RoomStatus>)]
    pub status: Option<String>,
}

/// Where an amenity belongs (`vocabulary::AmenityScope`).
pub(crate) const AMENITY_SCOPES: [&str; 2] = ["property", "room"];

const ROOM_STATUSES: [&str; 5] = ["clean", "dirty", "inspected", "out_of_order", "out_of_service"];

const ROOM_COLUMNS: &str = "r.id, r.property_id, r.room_type_id, r.number, r.floor,
    r.description, r.status, r.status_note, coalesce(t.code, '')";

fn room_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RoomView> {
    Ok(RoomView {
        id: r.get(0)?,
        property_id: r.get(1)?,
        room_type_id: r.get(2)?,
        number: r.get(3)?,
        floor: crate::http::wire::column(r, 4)?,
        description: crate::http::wire::column(r, 5)?,
        status: r.get(6)?,
        status_note: crate::http::wire::column(r, 7)?,
        room_type_code: r.get(8)?,
    })
}

fn room_view(conn: &Connection, property_id: &str, id: &str) -> Result<RoomView, ApiError> {
    conn.prepare_cached(&format!(
        "SELECT {ROOM_COLUMNS} FROM rooms r LEFT JOIN room_types t ON t.id = r.room_type_id
         WHERE r.id = ?1 AND r.property_id = ?2 AND r.deleted_at = 0"
    ))?
    .query_row([id, property_id], room_row)
    .optional()?
    .ok_or_else(|| ApiError::not_found("room"))
}

fn get_room_record(conn: &Connection, property_id: &str, id: &str) -> Result<RoomRecord, ApiError> {
    let v = room_view(conn, property_id, id)?;
    Ok(RoomRecord {
        id: v.id,
        property_id: v.property_id,
        room_type_id: v.room_type_id,
        number: v.number,
        floor: v.floor.unwrap_or_default(),
        description: v.description.unwrap_or_default(),
        status: v.status,
    })
}

fn apply_room(r: &mut RoomRecord, input: &RoomInput) -> Result<Vec<&'static str>, ApiError> {
    let mut changed = Vec::new();
    if let Some(v) = &input.number {
        let number = validate::text("number", v, 20)?;
        set(&mut r.number, number, "number", &mut changed);
    }
    if let Some(v) = &input.room_type_id {
        set(&mut r.room_type_id, v.trim().to_string(), "room_type_id", &mut changed);
    }
    if let Some(v) = &input.floor {
        set(&mut r.floor, validate::free_text("floor", v, 20)?, "floor", &mut changed);
    }
    if let Some(v) = &input.description {
        set(
            &mut r.description,
            validate::free_text("description", v, 2000)?,
            "description",
            &mut changed,
        );
    }
    Ok(changed)
}

fn ensure_room_refs(conn: &Connection, r: &RoomRecord) -> Result<(), ApiError> {
    if !validate::missing_ids(
        conn,
        "room_types",
        &r.property_id,
        std::slice::from_ref(&r.room_type_id),
    )?
    .is_empty()
    {
        return Err(ApiError::invalid_field("room_type_id", "no such room type at this property"));
    }
    let taken: Option<String> = conn
        .prepare_cached(
            "SELECT id FROM rooms WHERE property_id = ?1 AND number = ?2 COLLATE NOCASE
                 AND id != ?3 AND deleted_at = 0 LIMIT 1",
        )?
        .query_row([&r.property_id, &r.number, &r.id], |row| row.get(0))
        .optional()?;
    if let Some(other) = taken {
        return Err(ApiError::conflict(
            "room_number_taken",
            format!("another room of this property has the number {}", r.number),
        )
        .with_details(json!({ "field": "number", "room_id": other })));
    }
    Ok(())
}

fn save_room(conn: &Connection, r: &RoomRecord, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO rooms (id, property_id, room_type_id, number, floor, description, status,
             status_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?8)
         ON CONFLICT (id) DO UPDATE SET room_type_id = excluded.room_type_id,
             number = excluded.number, floor = excluded.floor,
             description = excluded.description, updated_at = excluded.updated_at",
    )?
    .execute(params![
        r.id,
        r.property_id,
        r.room_type_id,
        r.number,
        r.floor,
        r.description,
        r.status,
        now
    ])?;
    Ok(())
}

/// 409 `room_has_reservations` when the room holds a night from `from` on.
fn ensure_room_free_from(conn: &Connection, room_id: &str, from: &str) -> Result<(), ApiError> {
    let held: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT night, reservation_id FROM room_nights WHERE room_id = ?1 AND night >= ?2
                 AND reservation_id != '' ORDER BY night LIMIT 1",
        )?
        .query_row([room_id, from], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match held {
        Some((night, reservation_id)) => Err(ApiError::conflict(
            "room_has_reservations",
            format!("the room is assigned to a reservation for the night of {night}"),
        )
        .with_details(json!({ "night": night, "reservation_id": reservation_id }))),
        None => Ok(()),
    }
}

/// The property's rooms by number, optionally of one type or housekeeping status.
#[utoipa::path(get, path = "/properties/{id}/rooms", tag = "properties", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"), RoomQuery),
    responses(
        (status = 200, description = "Rooms", body = Page<RoomView>),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 422, description = "A filter is invalid", body = ErrorBody),
    ))]
async fn list_rooms(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<RoomQuery>,
) -> Result<Json<Page<RoomView>>, ApiError> {
    access::ensure(&principal, &id)?;
    if let Some(status) = &query.status
        && !ROOM_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::invalid_field(
            "status",
            format!("must be one of {}", ROOM_STATUSES.join(", ")),
        ));
    }
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            let rooms = conn
                .prepare_cached(&format!(
                    "SELECT {ROOM_COLUMNS} FROM rooms r LEFT JOIN room_types t ON t.id = r.room_type_id
                     WHERE r.property_id = ?1 AND r.deleted_at = 0
                         AND (?2 IS NULL OR r.room_type_id = ?2) AND (?3 IS NULL OR r.status = ?3)
                     ORDER BY length(r.number), r.number"
                ))?
                .query_map(params![id, query.room_type_id, query.status], room_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rooms)
        })
        .await?;
    Ok(Json(Page::all(list)))
}

/// Add a room. Its nights become sellable at once; the type's waitlist is promoted.
#[utoipa::path(post, path = "/properties/{id}/rooms", tag = "properties", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    request_body = RoomCreate,
    responses(
        (status = 201, description = "Room created", body = RoomView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 409, description = "Number taken (`room_number_taken`)", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    ))]
async fn create_room(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<RoomCreate>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    access::ensure(&principal, &id)?;
    let input = RoomInput::from(input);
    let mut r = RoomRecord {
        id: new_id(),
        property_id: id.clone(),
        room_type_id: String::new(),
        number: String::new(),
        floor: String::new(),
        description: String::new(),
        status: "clean".into(),
    };
    apply_room(&mut r, &input)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            ensure_room_refs(tx, &r)?;
            save_room(tx, &r, now)?;
            waitlist::promote_for_type(tx, &id, &r.room_type_id, &actor.label(), now)?;
            audit::record(
                tx,
                Entry::new("room_created", actor).subject(&r.id).details(json!({
                    "property_id": id, "number": r.number, "room_type_id": r.room_type_id })),
                now,
            )?;
            room_view(tx, &id, &r.id)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// A room with its type and housekeeping status.
#[utoipa::path(get, path = "/properties/{id}/rooms/{room_id}", tag = "properties", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"),
        ("room_id" = String, Path, description = "Room id")),
    responses(
        (status = 200, description = "The room", body = RoomView),
        (status = 404, description = "No such property or room", body = ErrorBody),
    ))]
async fn get_room(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath((id, room_id)): ApiPath<(String, String)>,
) -> Result<Json<RoomView>, ApiError> {
    access::ensure(&principal, &id)?;
    let view = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            room_view(conn, &id, &room_id)
        })
        .await?;
    Ok(Json(view))
}

/// Change a room's number, type, floor or description. A type change is refused while the
/// room holds nights from the business date on, or when its old type would be oversold.
#[utoipa::path(put, path = "/properties/{id}/rooms/{room_id}", tag = "properties", security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id"),
        ("room_id" = String, Path, description = "Room id")),
    request_body = RoomInput,
    responses(
        (status = 200, description = "The room after the change", body = RoomView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or room", body = ErrorBody),
        (status = 409, description = "Number taken, or the room/type is in use", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn update_room(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, room_id)): ApiPath<(String, String)>,
    if_match: IfMatch,
    put: Representation<RoomInput>,
) -> Result<Json<RoomView>, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let settings = live_property(tx, &id)?;
            let mut r = get_room_record(tx, &id, &room_id)?;
            put.check(&if_match, || room_view(tx, &id, &r.id))?;
            let input = put.input;
            let old_type = r.room_type_id.clone();
            let changed = apply_room(&mut r, &input)?;
            if changed.is_empty() {
                return room_view(tx, &id, &r.id);
            }
            ensure_room_refs(tx, &r)?;
            let from = settings.business_date.to_string();
            let type_changed = r.room_type_id != old_type;
            if type_changed {
                ensure_room_free_from(tx, &r.id, &from)?;
            }
            save_room(tx, &r, now)?;
            if type_changed {
                ensure_capacity(tx, &old_type, &from)?;
                waitlist::promote_for_type(tx, &id, &r.room_type_id, &actor.label(), now)?;
            }
            audit::record(
                tx,
                Entry::new("room_updated", actor)
                    .subject(&r.id)
                    .details(json!({ "property_id": id, "changed": changed })),
                now,
            )?;
            room_view(tx, &id, &r.id)
        })
        .await?;
    Ok(Json(view))
}

/// Delete a room: refused while it holds nights from the business date on, or when its
/// type would be oversold without it.
#[utoipa::path(delete, path = "/properties/{id}/rooms/{room_id}", tag = "properties", security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Property id"),
        ("room_id" = String, Path, description = "Room id")),
    responses(
        (status = 204, description = "Room deleted"),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or room", body = ErrorBody),
        (status = 409, description = "`room_has_reservations` or `room_type_capacity_in_use`", body = ErrorBody),
    ))]
async fn delete_room(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, room_id)): ApiPath<(String, String)>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let settings = live_property(tx, &id)?;
            let r = get_room_record(tx, &id, &room_id)?;
            if_match.check(|| room_view(tx, &id, &r.id))?;
            let from = settings.business_date.to_string();
            ensure_room_free_from(tx, &r.id, &from)?;
            tx.prepare_cached("UPDATE rooms SET deleted_at = ?2, updated_at = ?2 WHERE id = ?1")?
                .execute(params![r.id, now])?;
            ensure_capacity(tx, &r.room_type_id, &from)?;
            audit::record(
                tx,
                Entry::new("room_deleted", actor)
                    .subject(&r.id)
                    .details(json!({ "property_id": id, "number": r.number })),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- amenities ----------------------------------------------------------------------------

/// An amenity: of the property (pool, parking) or of rooms (balcony, bathtub).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmenityInput {
    /// Unique among the property's amenities, e.g. `BALCONY`.
    #[schema(format = "stayos:code", example = "BALCONY")]
    pub code: String,
    #[schema(min_length = 1, max_length = 200, format = "stayos:text")]
    pub name: String,
    /// Default `room`.
    #[schema(value_type = Option<crate::vocabulary::AmenityScope>)]
    pub scope: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AmenityView {
    pub id: String,
    pub property_id: String,
    pub code: String,
    pub name: String,
    #[schema(value_type = crate::vocabulary::AmenityScope)]
    pub scope: String,
}

/// The property's amenities by code.
#[utoipa::path(get, path = "/properties/{id}/amenities", tag = "properties", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses(
        (status = 200, description = "Amenities", body = Page<AmenityView>),
        (status = 404, description = "No such property", body = ErrorBody),
    ))]
async fn list_amenities(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Page<AmenityView>>, ApiError> {
    access::ensure(&principal, &id)?;
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            live_property(conn, &id)?;
            let list = conn
                .prepare_cached(
                    "SELECT id, property_id, code, name, scope FROM amenities
                     WHERE property_id = ?1 AND deleted_at = 0 ORDER BY code",
                )?
                .query_map([&id], |r| {
                    Ok(AmenityView {
                        id: r.get(0)?,
                        property_id: r.get(1)?,
                        code: r.get(2)?,
                        name: r.get(3)?,
                        scope: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(list)
        })
        .await?;
    Ok(Json(Page::all(list)))
}

/// Create an amenity.
#[utoipa::path(post, path = "/properties/{id}/amenities", tag = "properties", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    request_body = AmenityInput,
    responses(
        (status = 201, description = "Amenity created", body = AmenityView),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 409, description = "Code taken (`amenity_code_taken`)", body = ErrorBody),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    ))]
async fn create_amenity(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<AmenityInput>,
) -> Result<(StatusCode, Json<AmenityView>), ApiError> {
    access::ensure(&principal, &id)?;
    let code = validate::code("code", &input.code)?;
    let name = validate::text("name", &input.name, 200)?;
    let scope = input.scope.unwrap_or_else(|| "room".into());
    if !AMENITY_SCOPES.contains(&scope.as_str()) {
        return Err(ApiError::invalid_field("scope", "must be property or room"));
    }
    let view = AmenityView { id: new_id(), property_id: id.clone(), code, name, scope };
    let actor = principal.actor();
    let now = now_ms();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            let taken: Option<String> = tx
                .prepare_cached(
                    "SELECT id FROM amenities WHERE property_id = ?1 AND code = ?2
                         AND deleted_at = 0 LIMIT 1",
                )?
                .query_row([&id, &view.code], |r| r.get(0))
                .optional()?;
            if taken.is_some() {
                return Err(ApiError::conflict(
                    "amenity_code_taken",
                    format!("another amenity of this property has the code {}", view.code),
                )
                .with_details(json!({ "field": "code" })));
            }
            tx.prepare_cached(
                "INSERT INTO amenities (id, property_id, code, name, scope, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![view.id, id, view.code, view.name, view.scope, now])?;
            audit::record(
                tx,
                Entry::new("amenity_created", actor)
                    .subject(&view.id)
                    .details(json!({ "property_id": id, "code": view.code })),
                now,
            )?;
            Ok(view)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Delete an amenity; room types stop listing it.
#[utoipa::path(delete, path = "/properties/{id}/amenities/{amenity_id}", tag = "properties",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"),
        ("amenity_id" = String, Path, description = "Amenity id")),
    responses(
        (status = 204, description = "Amenity deleted"),
        (status = 403, description = "The caller's role does not allow this", body = ErrorBody),
        (status = 404, description = "No such property or amenity", body = ErrorBody),
    ))]
async fn delete_amenity(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::PropertyManage>,
    ApiPath((id, amenity_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    access::ensure(&principal, &id)?;
    let actor = principal.actor();
    let now = now_ms();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            live_property(tx, &id)?;
            let n = tx
                .prepare_cached(
                    "UPDATE amenities SET deleted_at = ?3
                     WHERE id = ?1 AND property_id = ?2 AND deleted_at = 0",
                )?
                .execute(params![amenity_id, id, now])?;
            if n == 0 {
                return Err(ApiError::not_found("amenity"));
            }
            tx.prepare_cached("DELETE FROM room_type_amenities WHERE amenity_id = ?1")?
                .execute([&amenity_id])?;
            audit::record(
                tx,
                Entry::new("amenity_deleted", actor)
                    .subject(&amenity_id)
                    .details(json!({ "property_id": id })),
                now,
            )?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
