//! The reservation service over HTTP: create (single or group, with waitlist), read, update,
//! delete, the state actions (confirm, cancel, check-in, check-out, no-show, reverse
//! check-in, assign/unassign room), lists and the front desk's day lists, the timeline;
//! availability (`availability.rs`) and end of day (`eod.rs`) are merged in here.
//!
//! Every write is one transaction on the single writer: inventory is checked and moved in the
//! same transaction as the reservation, so two clerks selling the last room get one 201 and
//! one 409 `no_availability`, never a double booking.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::states;
use super::store::{self, COLUMNS, FeeFor, Reservation, ReservationView, Stay};
use super::waitlist;
use crate::audit::{self, Actor, Entry};
use crate::auth::extract::{Authorized, Principal};
use crate::auth::permissions::perm;
use crate::dates;
use crate::guest::GuestInput;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::etag::{IfMatch, IfMatchHeader};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, parse_json};
use crate::http::list::Page;
use crate::http::representation::Representation;
use crate::property::access::{self, Settings};
use crate::state::AppState;
use crate::time::now_ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list_reservations))
        .routes(routes!(get_one, update, delete_one))
        .routes(routes!(events))
        .routes(routes!(confirm))
        .routes(routes!(cancel))
        .routes(routes!(check_in))
        .routes(routes!(check_out))
        .routes(routes!(no_show))
        .routes(routes!(reverse_check_in))
        .routes(routes!(assign_room))
        .routes(routes!(unassign_room))
        .routes(routes!(arrivals))
        .routes(routes!(departures))
        .routes(routes!(in_house))
        .merge(super::availability::router())
        .merge(super::eod::router())
}

// ---------------------------------------------------------------------------------------
// Create

/// One room of a group booking.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRoom {
    pub room_type_id: String,
    pub rate_plan_id: String,
    /// Default 1.
    #[schema(minimum = 1)]
    pub adults: Option<i64>,
    /// Default 0.
    #[schema(minimum = 0)]
    pub children: Option<i64>,
}

/// A new reservation; with `rooms` a group booking (then `room_type_id`, `rate_plan_id`,
/// `adults`, `children` and `waitlist_if_full` are not given).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "property_id": "0193a1b2-0000-7000-8000-000000000001",
    "room_type_id": "0193a1b2-0000-7000-8000-0000000000d1",
    "rate_plan_id": "0193a1b2-0000-7000-8000-0000000000f1",
    "arrival": "2026-12-24",
    "departure": "2026-12-27",
    "adults": 2,
    "guest": { "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org" },
    "notes": "Late arrival, around 23:00"
}))]
pub struct CreateReservation {
    pub property_id: String,
    pub room_type_id: Option<String>,
    pub rate_plan_id: Option<String>,
    /// YYYY-MM-DD, not before the property's business date.
    #[schema(format = Date)]
    pub arrival: String,
    /// YYYY-MM-DD, after the arrival, at most 365 nights later.
    #[schema(format = Date)]
    pub departure: String,
    /// Default 1.
    #[schema(minimum = 1)]
    pub adults: Option<i64>,
    /// Default 0.
    #[schema(minimum = 0)]
    pub children: Option<i64>,
    /// An existing guest profile; or give `guest` to create one.
    pub guest_id: Option<String>,
    pub guest: Option<GuestInput>,
    #[schema(max_length = 4000, format = "stayos:free-text")]
    pub notes: Option<String>,
    /// A tentative reservation holds its rooms until `hold_expires_at` (property's
    /// `tentative_hold_hours`), then is cancelled unless confirmed. Default false.
    pub tentative: Option<bool>,
    /// When the type is full, take the reservation on the waitlist (status `waitlisted`)
    /// instead of a 409. Default false; single reservations only.
    pub waitlist_if_full: Option<bool>,
    /// The rooms of a group booking, 1 to 100.
    #[schema(min_items = 1, max_items = 100)]
    pub rooms: Option<Vec<GroupRoom>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupCreated {
    pub group_id: String,
    pub reservations: Vec<ReservationView>,
}

/// Who acts, and when.
#[derive(Debug, Clone)]
struct Ctx {
    actor: Actor,
    label: String,
    now: i64,
    properties: Vec<String>,
}

impl Ctx {
    fn of(principal: &Principal) -> Ctx {
        let actor = principal.actor();
        Ctx { label: actor.label(), actor, now: now_ms(), properties: principal.properties.clone() }
    }
}

/// Create a reservation (or a group of them, all or none).
///
/// 201 with the reservation (status `confirmed`, or `tentative` with `hold_expires_at`, or
/// `waitlisted`), its confirmation code and price breakdown; for a group
/// `{group_id, reservations}`. 409 `no_availability` (details: room_type_id, nights),
/// 409 `restricted` (details: restriction, night, rate_plan_id), 422 naming the field.
#[utoipa::path(post, path = "/reservations", tag = "reservations", security(("bearer" = [])),
    request_body = CreateReservation,
    responses(
        (status = 201, description = "Created (a group answers {group_id, reservations})", body = ReservationView),
        (status = 409, description = "no_availability or restricted", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiJson(body): ApiJson<CreateReservation>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    access::ensure(&principal, &body.property_id)?;
    let arrival = dates::parse("arrival", &body.arrival)?;
    let departure = dates::parse("departure", &body.departure)?;
    let mut stays = Vec::new();
    let group = body.rooms.is_some();
    if let Some(rooms) = &body.rooms {
        for (field, given) in [
            ("room_type_id", body.room_type_id.is_some()),
            ("rate_plan_id", body.rate_plan_id.is_some()),
            ("adults", body.adults.is_some()),
            ("children", body.children.is_some()),
            ("waitlist_if_full", body.waitlist_if_full.is_some()),
        ] {
            if given {
                return Err(ApiError::invalid_field(
                    field,
                    "not allowed with `rooms`; give it per room of the group",
                ));
            }
        }
        if rooms.is_empty() || rooms.len() > 100 {
            return Err(ApiError::invalid_field("rooms", "give between 1 and 100 rooms"));
        }
        for room in rooms {
            stays.push(Stay {
                room_type_id: room.room_type_id.clone(),
                rate_plan_id: room.rate_plan_id.clone(),
                arrival,
                departure,
                adults: room.adults.unwrap_or(1),
                children: room.children.unwrap_or(0),
            });
        }
    } else {
        let room_type_id = body
            .room_type_id
            .clone()
            .ok_or_else(|| ApiError::invalid_field("room_type_id", "required"))?;
        let rate_plan_id = body
            .rate_plan_id
            .clone()
            .ok_or_else(|| ApiError::invalid_field("rate_plan_id", "required"))?;
        stays.push(Stay {
            room_type_id,
            rate_plan_id,
            arrival,
            departure,
            adults: body.adults.unwrap_or(1),
            children: body.children.unwrap_or(0),
        });
    }
    if body.guest_id.is_some() && body.guest.is_some() {
        return Err(ApiError::invalid_field("guest", "give guest_id or guest, not both"));
    }
    if body.guest_id.is_none() && body.guest.is_none() {
        return Err(ApiError::invalid_field("guest_id", "required: give guest_id or guest"));
    }
    let notes = crate::property::validate::free_text(
        "notes",
        body.notes.as_deref().unwrap_or_default(),
        4000,
    )?;
    let ctx = Ctx::of(&principal);
    let out = state
        .db
        .write(move |tx| -> Result<Value, ApiError> {
            let settings = access::settings(tx, &body.property_id)?
                .ok_or_else(|| ApiError::not_found("property"))?;
            store::check_dates(arrival, departure, settings.business_date, "", false)?;
            // Validate and price every room before writing anything.
            let mut quotes = Vec::with_capacity(stays.len());
            for (i, stay) in stays.iter().enumerate() {
                let prefix = if group { format!("rooms[{i}].") } else { String::new() };
                quotes.push(store::quote(tx, &settings, stay, &prefix, true)?);
            }
            let (guest_id, guest_name) = match (&body.guest_id, &body.guest) {
                (Some(id), _) => (id.clone(), store::guest_name(tx, &settings.id, id, "guest_id")?),
                (None, Some(input)) => {
                    let id = crate::guest::create_in_tx(
                        tx,
                        input,
                        "guest.",
                        &body.property_id,
                        ctx.now,
                    )?;
                    (id, format!("{} {}", input.first_name.trim(), input.last_name.trim()))
                }
                (None, None) => return Err(ApiError::invalid_field("guest_id", "required")),
            };
            let group_id = if group { uuid::Uuid::now_v7().to_string() } else { String::new() };
            let mut made = Vec::with_capacity(stays.len());
            for (stay, price) in stays.iter().zip(quotes) {
                let r = insert(
                    tx,
                    &settings,
                    &ctx,
                    NewRow {
                        stay,
                        price,
                        group_id: &group_id,
                        guest_id: &guest_id,
                        guest_name: &guest_name,
                        notes: &notes,
                        tentative: body.tentative.unwrap_or(false),
                        waitlist_if_full: body.waitlist_if_full.unwrap_or(false),
                    },
                )?;
                made.push(store::view(tx, r, true)?);
            }
            if group {
                Ok(serde_json::to_value(GroupCreated { group_id, reservations: made })
                    .map_err(ApiError::internal)?)
            } else {
                serde_json::to_value(made.pop()).map_err(ApiError::internal)
            }
        })
        .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

struct NewRow<'a> {
    stay: &'a Stay,
    price: super::pricing::Breakdown,
    group_id: &'a str,
    guest_id: &'a str,
    guest_name: &'a str,
    notes: &'a str,
    tentative: bool,
    waitlist_if_full: bool,
}

/// Writes one reservation with its inventory (or on the waitlist), its event and audit entry.
fn insert(
    tx: &Connection,
    settings: &Settings,
    ctx: &Ctx,
    new: NewRow<'_>,
) -> Result<Reservation, ApiError> {
    let stay = new.stay;
    let full = store::ensure_available(tx, &stay.room_type_id, stay.arrival, stay.departure);
    let status = match (&full, new.waitlist_if_full, new.tentative) {
        (Err(_), true, _) => states::WAITLISTED,
        (Err(_), false, _) => return Err(full.expect_err("checked")),
        (Ok(()), _, true) => states::TENTATIVE,
        (Ok(()), _, false) => states::CONFIRMED,
    };
    let id = uuid::Uuid::now_v7().to_string();
    let code = store::confirmation_code(tx)?;
    let now = ctx.now;
    let hold = if status == states::TENTATIVE {
        now + settings.tentative_hold_hours * 3_600_000
    } else {
        0
    };
    tx.prepare_cached(
        "INSERT INTO reservations (id, property_id, group_id, confirmation_code, status,
             room_type_id, room_id, rate_plan_id, arrival, departure, adults, children, guest_id,
             guest_name, currency, total_minor, room_minor, vat_minor, city_tax_minor,
             hold_expires_at, notes, created_by, created_at, updated_at, confirmed_at,
             waitlisted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18, ?19, ?20, ?21, ?22, ?22, ?23, ?24)",
    )?
    .execute(params![
        id,
        settings.id,
        new.group_id,
        code,
        status,
        stay.room_type_id,
        stay.rate_plan_id,
        stay.arrival.to_string(),
        stay.departure.to_string(),
        stay.adults,
        stay.children,
        new.guest_id,
        new.guest_name,
        settings.currency,
        new.price.total_minor,
        new.price.room_minor,
        new.price.vat_minor,
        new.price.city_tax_minor,
        hold,
        new.notes,
        ctx.label,
        now,
        if status == states::CONFIRMED { now } else { 0 },
        if status == states::WAITLISTED { now } else { 0 },
    ])?;
    if status != states::WAITLISTED {
        store::hold(tx, &id, &settings.id, &stay.room_type_id, "", &new.price.nights)?;
    }
    let r = store::load(tx, &id)?.ok_or_else(|| ApiError::internal("reservation vanished"))?;
    store::event(
        tx,
        &r,
        "created",
        "",
        status,
        json!({ "total_minor": r.total_minor, "group_id": new.group_id }),
        &ctx.label,
        now,
    )?;
    audit::record(
        tx,
        Entry::new("reservation_created", ctx.actor.clone()).subject(&id).details(json!({
            "property_id": settings.id,
            "confirmation_code": code,
            "status": status,
            "arrival": r.arrival,
            "departure": r.departure,
            "room_type_id": r.room_type_id,
            "total_minor": r.total_minor,
        })),
        now,
    )?;
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// Read, update, delete

/// One reservation with its nightly prices and the actions allowed now.
#[utoipa::path(get, path = "/reservations/{id}", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, description = "The reservation", body = ReservationView),
        (status = 404, description = "No such reservation at your properties", body = ErrorBody),
    ))]
async fn get_one(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationView>, ApiError> {
    let properties = principal.properties.clone();
    let view = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let r = store::load_for(conn, &properties, &id)?;
            Ok(store::view(conn, r, true)?)
        })
        .await?;
    Ok(Json(view))
}

/// Changes to a reservation; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateReservation {
    #[schema(format = Date)]
    pub arrival: Option<String>,
    #[schema(format = Date)]
    pub departure: Option<String>,
    pub room_type_id: Option<String>,
    pub rate_plan_id: Option<String>,
    #[schema(minimum = 1)]
    pub adults: Option<i64>,
    #[schema(minimum = 0)]
    pub children: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 4000, format = "stayos:free-text")]
    pub notes: Option<String>,
}

/// The fields `status` lets a caller change.
fn editable_fields(status: &str) -> &'static [&'static str] {
    match status {
        states::TENTATIVE | states::CONFIRMED | states::WAITLISTED => {
            &["arrival", "departure", "room_type_id", "rate_plan_id", "adults", "children", "notes"]
        }
        states::CHECKED_IN => &["departure", "adults", "children", "notes"],
        _ => &["notes"],
    }
}

/// Change dates, room type, occupancy, rate plan or notes: re-priced and inventory
/// re-checked in one transaction (the old nights are released first). What may change
/// depends on the status: everything while tentative, confirmed or waitlisted; departure,
/// occupancy and notes while checked in (departure not before the business date); only notes
/// afterwards. A field that may not change: 409 `invalid_state` naming it.
#[utoipa::path(put, path = "/reservations/{id}", tag = "reservations", security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Reservation id")),
    request_body = UpdateReservation,
    responses(
        (status = 200, description = "The changed reservation", body = ReservationView),
        (status = 404, description = "No such reservation", body = ErrorBody),
        (status = 409, description = "invalid_state, no_availability, restricted, room_unavailable", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn update(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
    if_match: IfMatch,
    put: Representation<UpdateReservation>,
) -> Result<Json<ReservationView>, ApiError> {
    let (body, read_only) = put.split();
    let arrival = body.arrival.as_deref().map(|a| dates::parse("arrival", a)).transpose()?;
    let departure = body.departure.as_deref().map(|d| dates::parse("departure", d)).transpose()?;
    if let Some(notes) = &body.notes {
        crate::property::validate::free_text("notes", notes, 4000)?;
    }
    let ctx = Ctx::of(&principal);
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let r = store::load_for(tx, &ctx.properties, &id)?;
            read_only.check(&if_match, || Ok(store::view(tx, r.clone(), true)?))?;
            // A field sent with the value it has is no change: a client may send back the
            // whole reservation it read, whatever its state lets change.
            let (mut body, mut arrival, mut departure) = (body, arrival, departure);
            if arrival == Some(r.arrival_date()) {
                (body.arrival, arrival) = (None, None);
            }
            if departure == Some(r.departure_date()) {
                (body.departure, departure) = (None, None);
            }
            if body.room_type_id.as_ref() == Some(&r.room_type_id) {
                body.room_type_id = None;
            }
            if body.rate_plan_id.as_ref() == Some(&r.rate_plan_id) {
                body.rate_plan_id = None;
            }
            if body.adults == Some(r.adults) {
                body.adults = None;
            }
            if body.children == Some(r.children) {
                body.children = None;
            }
            if body.notes.as_ref() == Some(&r.notes) {
                body.notes = None;
            }
            if body == UpdateReservation::default() {
                return Ok(store::view(tx, r, true)?);
            }
            let editable = editable_fields(&r.status);
            for (field, given) in [
                ("arrival", body.arrival.is_some()),
                ("departure", body.departure.is_some()),
                ("room_type_id", body.room_type_id.is_some()),
                ("rate_plan_id", body.rate_plan_id.is_some()),
                ("adults", body.adults.is_some()),
                ("children", body.children.is_some()),
                ("notes", body.notes.is_some()),
            ] {
                if given && !editable.contains(&field) {
                    return Err(ApiError::conflict(
                        "invalid_state",
                        format!("the {field} of a {} reservation cannot be changed", r.status),
                    )
                    .with_details(json!({
                        "status": r.status,
                        "field": field,
                        "editable_fields": editable,
                        "allowed_actions": states::allowed_actions(&r.status),
                    })));
                }
            }
            let settings = access::settings(tx, &r.property_id)?
                .ok_or_else(|| ApiError::not_found("property"))?;
            let stay = Stay {
                room_type_id: body.room_type_id.clone().unwrap_or_else(|| r.room_type_id.clone()),
                rate_plan_id: body.rate_plan_id.clone().unwrap_or_else(|| r.rate_plan_id.clone()),
                arrival: arrival.unwrap_or_else(|| r.arrival_date()),
                departure: departure.unwrap_or_else(|| r.departure_date()),
                adults: body.adults.unwrap_or(r.adults),
                children: body.children.unwrap_or(r.children),
            };
            let stay_changed = body.arrival.is_some()
                || body.departure.is_some()
                || body.room_type_id.is_some()
                || body.rate_plan_id.is_some()
                || body.adults.is_some()
                || body.children.is_some();
            let mut changes = serde_json::Map::new();
            if stay_changed {
                let checked_in = r.status == states::CHECKED_IN;
                if checked_in && stay.departure < settings.business_date {
                    return Err(ApiError::invalid_field(
                        "departure",
                        format!("cannot be before the business date {}", settings.business_date),
                    ));
                }
                let past_arrival_kept = body.arrival.is_none() && stay.arrival == r.arrival_date();
                store::check_dates(
                    stay.arrival,
                    stay.departure,
                    settings.business_date,
                    "",
                    checked_in || past_arrival_kept,
                )?;
                let price = store::quote(tx, &settings, &stay, "", !checked_in)?;
                if states::holds_inventory(&r.status) {
                    store::release(tx, &r.id, None)?;
                    store::hold(tx, &r.id, &r.property_id, &stay.room_type_id, "", &price.nights)?;
                    if !r.room_id.is_empty() {
                        if stay.room_type_id == r.room_type_id {
                            store::claim_room(tx, &r.id, &r.room_id, stay.arrival, stay.departure)?;
                        } else {
                            store::unclaim_room(tx, &r.id)?;
                        }
                    }
                }
                tx.prepare_cached(
                    "UPDATE reservations SET arrival = ?2, departure = ?3, room_type_id = ?4,
                         rate_plan_id = ?5, adults = ?6, children = ?7, total_minor = ?8,
                         room_minor = ?9, vat_minor = ?10, city_tax_minor = ?11, updated_at = ?12
                     WHERE id = ?1",
                )?
                .execute(params![
                    r.id,
                    stay.arrival.to_string(),
                    stay.departure.to_string(),
                    stay.room_type_id,
                    stay.rate_plan_id,
                    stay.adults,
                    stay.children,
                    price.total_minor,
                    price.room_minor,
                    price.vat_minor,
                    price.city_tax_minor,
                    ctx.now
                ])?;
                for (k, old, new) in [
                    ("arrival", r.arrival.clone(), stay.arrival.to_string()),
                    ("departure", r.departure.clone(), stay.departure.to_string()),
                    ("room_type_id", r.room_type_id.clone(), stay.room_type_id.clone()),
                    ("rate_plan_id", r.rate_plan_id.clone(), stay.rate_plan_id.clone()),
                    ("adults", r.adults.to_string(), stay.adults.to_string()),
                    ("children", r.children.to_string(), stay.children.to_string()),
                    ("total_minor", r.total_minor.to_string(), price.total_minor.to_string()),
                ] {
                    if old != new {
                        changes.insert(k.to_string(), json!({ "from": old, "to": new }));
                    }
                }
            }
            if let Some(notes) = &body.notes {
                tx.prepare_cached(
                    "UPDATE reservations SET notes = ?2, updated_at = ?3 WHERE id = ?1",
                )?
                .execute(params![r.id, notes, ctx.now])?;
                changes.insert("notes".into(), json!({ "changed": true }));
            }
            let details = Value::Object(changes);
            store::event(
                tx,
                &r,
                "updated",
                &r.status,
                &r.status,
                details.clone(),
                &ctx.label,
                ctx.now,
            )?;
            audit::record(
                tx,
                Entry::new("reservation_updated", ctx.actor.clone())
                    .subject(&r.id)
                    .details(json!({ "property_id": r.property_id, "changes": details })),
                ctx.now,
            )?;
            if stay_changed {
                waitlist::promote_for_type(
                    tx,
                    &r.property_id,
                    &r.room_type_id,
                    &ctx.label,
                    ctx.now,
                )?;
                if stay.room_type_id != r.room_type_id {
                    waitlist::promote_for_type(
                        tx,
                        &r.property_id,
                        &stay.room_type_id,
                        &ctx.label,
                        ctx.now,
                    )?;
                }
            }
            let after =
                store::load(tx, &r.id)?.ok_or_else(|| ApiError::not_found("reservation"))?;
            Ok(store::view(tx, after, true)?)
        })
        .await?;
    Ok(Json(view))
}

/// Delete a tentative or waitlisted reservation: it becomes cancelled without a fee (other
/// reservations are cancelled with `/cancel`).
#[utoipa::path(delete, path = "/reservations/{id}", tag = "reservations", security(("bearer" = [])),
    params(IfMatchHeader, ("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 404, description = "No such reservation", body = ErrorBody),
        (status = 409, description = "invalid_state", body = ErrorBody),
    ))]
async fn delete_one(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let _ =
        act(&state, &principal, id, "delete", "reservation_cancelled", move |tx, _s, r, ctx| {
            if_match.check(|| Ok(store::view(tx, r.clone(), true)?))?;
            store::release(tx, &r.id, None)?;
            store::transition(
                tx,
                r,
                states::CANCELLED,
                "cancelled",
                json!({ "reason": "deleted", "fee_minor": 0 }),
                &ctx.label,
                ctx.now,
            )?;
            waitlist::promote_for_type(tx, &r.property_id, &r.room_type_id, &ctx.label, ctx.now)?;
            Ok(json!({ "reason": "deleted" }))
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------
// Actions

/// Runs `action` on reservation `id` in one transaction: loads it (404 unless at one of the
/// caller's properties), checks the state allows the action (409 `invalid_state`), runs `f`,
/// audits `audit_event` with what `f` returned, and answers the reservation as it is after.
async fn act<F>(
    state: &AppState,
    principal: &Principal,
    id: String,
    action: &'static str,
    audit_event: &'static str,
    f: F,
) -> Result<Json<ReservationView>, ApiError>
where
    F: FnOnce(&Connection, &Settings, &Reservation, &Ctx) -> Result<Value, ApiError>
        + Send
        + 'static,
{
    let ctx = Ctx::of(principal);
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let r = store::load_for(tx, &ctx.properties, &id)?;
            states::ensure(&r.status, action)?;
            let settings = access::settings(tx, &r.property_id)?
                .ok_or_else(|| ApiError::not_found("property"))?;
            let details = f(tx, &settings, &r, &ctx)?;
            audit::record(
                tx,
                Entry::new(audit_event, ctx.actor.clone()).subject(&r.id).details(json!({
                    "property_id": r.property_id,
                    "confirmation_code": r.confirmation_code,
                    "from_status": r.status,
                    "details": details,
                })),
                ctx.now,
            )?;
            let after =
                store::load(tx, &r.id)?.ok_or_else(|| ApiError::not_found("reservation"))?;
            Ok(store::view(tx, after, true)?)
        })
        .await?;
    Ok(Json(view))
}

/// An optional JSON body: empty → `T::default()`.
fn optional_body<T: DeserializeOwned + Default + utoipa::ToSchema>(
    bytes: &Bytes,
) -> Result<T, ApiError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) { Ok(T::default()) } else { parse_json(bytes) }
}

/// Confirm a tentative reservation (its hold no longer expires).
#[utoipa::path(post, path = "/reservations/{id}/confirm", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, description = "Confirmed", body = ReservationView),
        (status = 409, description = "invalid_state", body = ErrorBody),
    ))]
async fn confirm(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationView>, ApiError> {
    act(&state, &principal, id, "confirm", "reservation_confirmed", |tx, _s, r, ctx| {
        tx.prepare_cached("UPDATE reservations SET hold_expires_at = 0 WHERE id = ?1")?
            .execute([&r.id])?;
        store::transition(tx, r, states::CONFIRMED, "confirmed", json!({}), &ctx.label, ctx.now)?;
        Ok(json!({}))
    })
    .await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    #[schema(max_length = 500, format = "stayos:free-text")]
    pub reason: Option<String>,
}

/// Cancel: releases the rooms, promotes the waitlist, and charges the rate plan's
/// cancellation fee when past the free-cancellation deadline (free_until_hours before the
/// arrival day's check-in time in the property's time zone; tentative and waitlisted
/// reservations cancel free). The fee is in `cancellation_fee_minor`.
#[utoipa::path(post, path = "/reservations/{id}/cancel", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    request_body(content = Option<CancelBody>, description = "Optional"),
    responses(
        (status = 200, description = "Cancelled", body = ReservationView),
        (status = 409, description = "invalid_state", body = ErrorBody),
    ))]
async fn cancel(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
    bytes: Bytes,
) -> Result<Json<ReservationView>, ApiError> {
    let body: CancelBody = optional_body(&bytes)?;
    let reason = crate::property::validate::free_text(
        "reason",
        body.reason.as_deref().unwrap_or_default(),
        500,
    )?;
    act(&state, &principal, id, "cancel", "reservation_cancelled", move |tx, settings, r, ctx| {
        let fee = if r.status == states::CONFIRMED {
            store::fee(tx, settings, r, ctx.now, FeeFor::Cancellation)?
        } else {
            0
        };
        store::release(tx, &r.id, None)?;
        tx.prepare_cached(
            "UPDATE reservations SET cancellation_fee_minor = ?2, hold_expires_at = 0 WHERE id = ?1",
        )?
        .execute(params![r.id, fee])?;
        let details = json!({ "reason": reason, "fee_minor": fee });
        store::transition(tx, r, states::CANCELLED, "cancelled", details.clone(), &ctx.label, ctx.now)?;
        waitlist::promote_for_type(tx, &r.property_id, &r.room_type_id, &ctx.label, ctx.now)?;
        Ok(details)
    })
    .await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomBody {
    pub room_id: Option<String>,
}

/// Check in on the arrival day (= the business date). Takes `room_id`, else the assigned
/// room, else the first clean or inspected free room of the type. The room must be clean or
/// inspected (409 `room_not_ready` naming its status) and free for every night (409
/// `room_unavailable`).
#[utoipa::path(post, path = "/reservations/{id}/check-in", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    request_body(content = Option<RoomBody>, description = "Optional"),
    responses(
        (status = 200, description = "Checked in", body = ReservationView),
        (status = 409, description = "invalid_state, not_arrival_day, room_not_ready, room_unavailable, no_room_ready", body = ErrorBody),
        (status = 422, description = "room_id is not a room of the type", body = ErrorBody),
    ))]
async fn check_in(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
    bytes: Bytes,
) -> Result<Json<ReservationView>, ApiError> {
    let body: RoomBody = optional_body(&bytes)?;
    act(&state, &principal, id, "check_in", "reservation_checked_in", move |tx, settings, r, ctx| {
        if r.arrival_date() != settings.business_date {
            return Err(ApiError::conflict(
                "not_arrival_day",
                format!(
                    "check-in is on the arrival day {}; the business date is {}",
                    r.arrival, settings.business_date
                ),
            )
            .with_details(json!({ "arrival": r.arrival, "business_date": settings.business_date.to_string() })));
        }
        let room_id = match body.room_id.clone().filter(|s| !s.is_empty()) {
            Some(id) => id,
            None if !r.room_id.is_empty() => r.room_id.clone(),
            None => pick_room(tx, r)?,
        };
        let (type_id, status) = store::room(tx, &r.property_id, &room_id, "room_id")?;
        if type_id != r.room_type_id {
            return Err(ApiError::invalid_field(
                "room_id",
                "the room is of another room type; change the reservation's room type first",
            ));
        }
        if status != "clean" && status != "inspected" {
            return Err(ApiError::conflict(
                "room_not_ready",
                format!("the room is {status}; a guest checks in to a clean or inspected room"),
            )
            .with_details(json!({ "room_id": room_id, "status": status })));
        }
        store::claim_room(tx, &r.id, &room_id, r.arrival_date(), r.departure_date())?;
        store::transition(tx, r, states::CHECKED_IN, "checked_in", json!({ "room_id": room_id }), &ctx.label, ctx.now)?;
        Ok(json!({ "room_id": room_id }))
    })
    .await
}

/// The first clean or inspected room of `r`'s type, free for all its nights and not out of
/// order; 409 `no_room_ready` when none.
fn pick_room(tx: &Connection, r: &Reservation) -> Result<String, ApiError> {
    let found: Option<String> = tx
        .prepare_cached(
            "SELECT m.id FROM rooms m
             WHERE m.room_type_id = ?1 AND m.property_id = ?2 AND m.deleted_at = 0
               AND m.status IN ('clean', 'inspected')
               AND NOT EXISTS (SELECT 1 FROM room_nights n WHERE n.room_id = m.id
                               AND n.night >= ?3 AND n.night < ?4 AND n.reservation_id != ?5)
               AND NOT EXISTS (SELECT 1 FROM room_blocks b WHERE b.room_id = m.id
                               AND b.kind = 'out_of_order' AND b.released_at = 0
                               AND b.from_date < ?4 AND b.to_date > ?3)
             ORDER BY m.status = 'inspected' DESC, m.number LIMIT 1",
        )?
        .query_row(params![r.room_type_id, r.property_id, r.arrival, r.departure, r.id], |row| {
            row.get(0)
        })
        .optional()?;
    found.ok_or_else(|| {
        ApiError::conflict(
            "no_room_ready",
            "no clean or inspected room of the type is free for the whole stay",
        )
        .with_details(json!({ "room_type_id": r.room_type_id }))
    })
}

/// Check out: the room becomes dirty; leaving before the departure releases the remaining
/// nights from the business date on (at least the first night stays charged), re-priced to
/// the nights kept, and promotes the waitlist; loyalty points are
/// earned on the room revenue.
#[utoipa::path(post, path = "/reservations/{id}/check-out", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, description = "Checked out", body = ReservationView),
        (status = 409, description = "invalid_state", body = ErrorBody),
    ))]
async fn check_out(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationView>, ApiError> {
    act(&state, &principal, id, "check_out", "reservation_checked_out", |tx, settings, r, ctx| {
        let bd = settings.business_date;
        let mut details = json!({});
        // A stay that began is charged at least its first night (a guest leaving on the
        // arrival day used the room); nights from the business date on are released.
        let keep_from = bd.max(dates::next_day(r.arrival_date()));
        if keep_from < r.departure_date() {
            let from = keep_from.to_string();
            let freed = store::release(tx, &r.id, Some(&from))?;
            let nights = store::night_prices(tx, &r.id)?;
            let price = super::pricing::breakdown(settings, nights, r.adults, r.children);
            tx.prepare_cached(
                "UPDATE reservations SET departure = ?2, total_minor = ?3, room_minor = ?4,
                     vat_minor = ?5, city_tax_minor = ?6 WHERE id = ?1",
            )?
            .execute(params![r.id, from, price.total_minor, price.room_minor, price.vat_minor, price.city_tax_minor])?;
            details = json!({ "early": true, "planned_departure": r.departure, "nights_released": freed });
        }
        if !r.room_id.is_empty() {
            crate::housekeeping::store::set_status(tx, &r.room_id, "dirty", "check-out", &ctx.label, ctx.now)?;
        }
        store::transition(tx, r, states::CHECKED_OUT, "checked_out", details.clone(), &ctx.label, ctx.now)?;
        let after = store::load(tx, &r.id)?.ok_or_else(|| ApiError::not_found("reservation"))?;
        if !r.guest_id.is_empty() {
            crate::guest::loyalty::earn_on_checkout(
                tx,
                &r.property_id,
                &r.guest_id,
                &r.id,
                after.room_minor,
                &ctx.label,
                ctx.now,
            )?;
        }
        waitlist::promote_for_type(tx, &r.property_id, &r.room_type_id, &ctx.label, ctx.now)?;
        Ok(details)
    })
    .await
}

/// Mark a no-show (tentative or confirmed, arrival on or before the business date): the
/// rooms are released, the rate plan's no-show fee is charged.
#[utoipa::path(post, path = "/reservations/{id}/no-show", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, description = "Marked no-show", body = ReservationView),
        (status = 409, description = "invalid_state, not_arrived_yet", body = ErrorBody),
    ))]
async fn no_show(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationView>, ApiError> {
    act(&state, &principal, id, "no_show", "reservation_no_show", |tx, settings, r, ctx| {
        if r.arrival_date() > settings.business_date {
            return Err(ApiError::conflict(
                "not_arrived_yet",
                format!("the arrival {} is after the business date {}", r.arrival, settings.business_date),
            )
            .with_details(json!({ "arrival": r.arrival, "business_date": settings.business_date.to_string() })));
        }
        let fee = store::fee(tx, settings, r, ctx.now, FeeFor::NoShow)?;
        store::release(tx, &r.id, None)?;
        tx.prepare_cached(
            "UPDATE reservations SET cancellation_fee_minor = ?2, hold_expires_at = 0 WHERE id = ?1",
        )?
        .execute(params![r.id, fee])?;
        let details = json!({ "fee_minor": fee });
        store::transition(tx, r, states::NO_SHOW, "no_show", details.clone(), &ctx.label, ctx.now)?;
        waitlist::promote_for_type(tx, &r.property_id, &r.room_type_id, &ctx.label, ctx.now)?;
        Ok(details)
    })
    .await
}

/// Undo a check-in made by mistake, on the same business day: back to confirmed, the room
/// stays assigned and keeps its housekeeping status (check-in does not change it).
#[utoipa::path(post, path = "/reservations/{id}/reverse-check-in", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, description = "Back to confirmed", body = ReservationView),
        (status = 409, description = "invalid_state, too_late_to_reverse", body = ErrorBody),
    ))]
async fn reverse_check_in(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationView>, ApiError> {
    act(&state, &principal, id, "reverse_check_in", "reservation_check_in_reversed", |tx, settings, r, ctx| {
        if r.arrival_date() != settings.business_date {
            return Err(ApiError::conflict(
                "too_late_to_reverse",
                "a check-in can only be reversed on the business day it happened",
            )
            .with_details(json!({ "arrival": r.arrival, "business_date": settings.business_date.to_string() })));
        }
        tx.prepare_cached("UPDATE reservations SET checked_in_at = 0 WHERE id = ?1")?.execute([&r.id])?;
        store::transition(tx, r, states::CONFIRMED, "check_in_reversed", json!({}), &ctx.label, ctx.now)?;
        Ok(json!({}))
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRoom {
    pub room_id: String,
}

/// Assign a room of the reservation's type, or move to another one (also while checked in:
/// from the business date on, and the room left becomes dirty). The room must be free for
/// the nights (409 `room_unavailable`).
#[utoipa::path(post, path = "/reservations/{id}/assign-room", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    request_body = AssignRoom,
    responses(
        (status = 200, description = "Assigned", body = ReservationView),
        (status = 409, description = "invalid_state, room_unavailable", body = ErrorBody),
        (status = 422, description = "room_id is not a room of the type", body = ErrorBody),
    ))]
async fn assign_room(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<AssignRoom>,
) -> Result<Json<ReservationView>, ApiError> {
    act(
        &state,
        &principal,
        id,
        "assign_room",
        "reservation_room_assigned",
        move |tx, settings, r, ctx| {
            let (type_id, _status) = store::room(tx, &r.property_id, &body.room_id, "room_id")?;
            if type_id != r.room_type_id {
                return Err(ApiError::invalid_field(
                    "room_id",
                    "the room is of another room type; change the reservation's room type first",
                ));
            }
            let checked_in = r.status == states::CHECKED_IN;
            if checked_in && body.room_id != r.room_id {
                // Keep the nights already spent in the old room; move the rest.
                let from = settings.business_date.max(r.arrival_date());
                move_room(tx, r, &body.room_id, from)?;
                if !r.room_id.is_empty() {
                    crate::housekeeping::store::set_status(
                        tx,
                        &r.room_id,
                        "dirty",
                        "room move",
                        &ctx.label,
                        ctx.now,
                    )?;
                }
            } else {
                store::claim_room(tx, &r.id, &body.room_id, r.arrival_date(), r.departure_date())?;
            }
            let details = json!({ "room_id": body.room_id, "previous_room_id": r.room_id });
            store::event(
                tx,
                r,
                "room_assigned",
                &r.status,
                &r.status,
                details.clone(),
                &ctx.label,
                ctx.now,
            )?;
            Ok(details)
        },
    )
    .await
}

/// Moves a checked-in reservation to `room_id` for the nights from `from` on.
fn move_room(
    tx: &Connection,
    r: &Reservation,
    room_id: &str,
    from: jiff::civil::Date,
) -> Result<(), ApiError> {
    let to = r.departure_date();
    if from >= to {
        return Err(ApiError::conflict("no_nights_left", "the stay has no nights left to move"));
    }
    let from_s = from.to_string();
    // Free the old room's remaining nights, then claim the new room's.
    tx.prepare_cached("DELETE FROM room_nights WHERE reservation_id = ?1 AND night >= ?2")?
        .execute(params![r.id, from_s])?;
    let kept: Vec<(String, String)> = {
        let mut stmt =
            tx.prepare_cached("SELECT room_id, night FROM room_nights WHERE reservation_id = ?1")?;
        let rows = stmt.query_map([&r.id], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    store::claim_room(tx, &r.id, room_id, from, to)?;
    // claim_room replaced all of the reservation's room-nights; put the spent ones back.
    let mut ins = tx.prepare_cached(
        "INSERT INTO room_nights (room_id, night, reservation_id) VALUES (?1, ?2, ?3)",
    )?;
    let mut night_room = tx.prepare_cached(
        "UPDATE reservation_nights SET room_id = ?3 WHERE reservation_id = ?1 AND night = ?2",
    )?;
    for (room, night) in kept {
        ins.execute(params![room, night, r.id])?;
        night_room.execute(params![r.id, night, room])?;
    }
    Ok(())
}

/// Drop the room assignment of a tentative or confirmed reservation.
#[utoipa::path(post, path = "/reservations/{id}/unassign-room", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    responses(
        (status = 200, description = "Unassigned", body = ReservationView),
        (status = 409, description = "invalid_state", body = ErrorBody),
    ))]
async fn unassign_room(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationWrite>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ReservationView>, ApiError> {
    act(&state, &principal, id, "unassign_room", "reservation_room_unassigned", |tx, _s, r, ctx| {
        store::unclaim_room(tx, &r.id)?;
        let details = json!({ "previous_room_id": r.room_id });
        store::event(
            tx,
            r,
            "room_unassigned",
            &r.status,
            &r.status,
            details.clone(),
            &ctx.label,
            ctx.now,
        )?;
        Ok(details)
    })
    .await
}

// ---------------------------------------------------------------------------------------
// Lists and timeline

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Default: all of the caller's properties.
    pub property_id: Option<String>,
    #[param(value_type = Option<crate::vocabulary::ReservationStatus>)]
    pub status: Option<String>,
    /// Exact arrival date.
    #[param(format = Date)]
    pub arrival: Option<String>,
    /// Exact departure date.
    #[param(format = Date)]
    pub departure: Option<String>,
    /// Only checked-in reservations.
    pub in_house: Option<bool>,
    pub guest_id: Option<String>,
    /// Guest name prefix (case-insensitive) or exact confirmation code.
    pub q: Option<String>,
    /// At most this many reservations (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Search and list reservations (keyset pages ordered by arrival then id; without nightly
/// prices).
#[utoipa::path(get, path = "/reservations", tag = "reservations", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of reservations", body = Page<ReservationView>),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    ))]
async fn list_reservations(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationRead>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Page<ReservationView>>, ApiError> {
    let properties = match &query.property_id {
        Some(p) => {
            access::ensure(&principal, p)?;
            vec![p.clone()]
        }
        None => principal.properties.clone(),
    };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 500"));
    }
    let mut sql = format!("SELECT {COLUMNS} FROM reservations WHERE property_id IN (");
    let mut args: Vec<String> = Vec::new();
    for (i, p) in properties.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        args.push(p.clone());
        sql.push_str(&format!("?{}", args.len()));
    }
    sql.push(')');
    if properties.is_empty() {
        return Ok(Json(Page::all(Vec::new())));
    }
    let mut push = |sql: &mut String, clause: &str, value: String| {
        args.push(value);
        sql.push_str(&clause.replace("?#", &format!("?{}", args.len())));
    };
    if let Some(s) = &query.status {
        if !states::STATUSES.contains(&s.as_str()) {
            return Err(ApiError::invalid_field(
                "status",
                format!("one of {}", states::STATUSES.join(", ")),
            ));
        }
        push(&mut sql, " AND status = ?#", s.clone());
    }
    if let Some(a) = &query.arrival {
        push(&mut sql, " AND arrival = ?#", dates::parse("arrival", a)?.to_string());
    }
    if let Some(d) = &query.departure {
        push(&mut sql, " AND departure = ?#", dates::parse("departure", d)?.to_string());
    }
    if query.in_house == Some(true) {
        sql.push_str(" AND status = 'checked_in'");
    }
    if let Some(g) = &query.guest_id {
        push(&mut sql, " AND guest_id = ?#", g.clone());
    }
    if let Some(q) = query.q.as_ref().map(|q| q.trim()).filter(|q| !q.is_empty()) {
        let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        args.push(format!("{escaped}%"));
        let n1 = args.len();
        args.push(q.to_uppercase());
        let n2 = args.len();
        sql.push_str(&format!(
            " AND (guest_name LIKE ?{n1} ESCAPE '\\' OR confirmation_code = ?{n2}
               OR (' ' || guest_name) LIKE ('% ' || ?{n1}) ESCAPE '\\')"
        ));
    }
    if let Some(c) = &query.cursor {
        let (a, id) = c
            .split_once('~')
            .filter(|(a, _)| a.parse::<jiff::civil::Date>().is_ok())
            .ok_or_else(|| ApiError::invalid_field("cursor", "not a cursor this node gave"))?;
        args.push(a.to_string());
        let n1 = args.len();
        args.push(id.to_string());
        let n2 = args.len();
        sql.push_str(&format!(" AND (arrival > ?{n1} OR (arrival = ?{n1} AND id > ?{n2}))"));
    }
    sql.push_str(&format!(" ORDER BY arrival, id LIMIT {}", limit + 1));
    let page = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), store::from_row)?;
            let mut found: Vec<Reservation> = rows.collect::<rusqlite::Result<_>>()?;
            let next_cursor = if found.len() > limit as usize {
                found.truncate(limit as usize);
                found.last().map(|r| format!("{}~{}", r.arrival, r.id))
            } else {
                None
            };
            let reservations = found
                .into_iter()
                .map(|r| store::view(conn, r, false))
                .collect::<rusqlite::Result<_>>()?;
            Ok(Page::new(reservations, next_cursor))
        })
        .await?;
    Ok(Json(page))
}

/// One business day's arrivals, departures or guests in house: all of them, by guest name.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayList {
    pub property_id: String,
    pub business_date: String,
    pub items: Vec<ReservationView>,
    /// Always `null`: the whole day is one page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

async fn day_list(
    state: &AppState,
    principal: &Principal,
    property_id: String,
    which: &'static str,
) -> Result<Json<DayList>, ApiError> {
    access::ensure(principal, &property_id)?;
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let settings = access::settings(conn, &property_id)?
                .ok_or_else(|| ApiError::not_found("property"))?;
            let bd = settings.business_date.to_string();
            let filter = match which {
                "arrivals" => "arrival = ?2 AND status IN ('tentative', 'confirmed', 'checked_in')",
                "departures" => "departure = ?2 AND status IN ('checked_in', 'checked_out')",
                _ => "status = 'checked_in' AND ?2 = ?2",
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM reservations WHERE property_id = ?1 AND {filter}
                 ORDER BY guest_name, id"
            ))?;
            let rows = stmt.query_map(params![property_id, bd], store::from_row)?;
            let found: Vec<Reservation> = rows.collect::<rusqlite::Result<_>>()?;
            let reservations = found
                .into_iter()
                .map(|r| store::view(conn, r, false))
                .collect::<rusqlite::Result<_>>()?;
            Ok(DayList { property_id, business_date: bd, items: reservations, next_cursor: None })
        })
        .await?;
    Ok(Json(list))
}

/// Today's arrivals (business date): tentative, confirmed and already checked in.
#[utoipa::path(get, path = "/properties/{id}/arrivals", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses((status = 200, description = "Arrivals", body = DayList)))]
async fn arrivals(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DayList>, ApiError> {
    day_list(&state, &principal, id, "arrivals").await
}

/// Today's departures (business date): checked in and already checked out.
#[utoipa::path(get, path = "/properties/{id}/departures", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses((status = 200, description = "Departures", body = DayList)))]
async fn departures(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DayList>, ApiError> {
    day_list(&state, &principal, id, "departures").await
}

/// Guests in house (checked in).
#[utoipa::path(get, path = "/properties/{id}/in-house", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id")),
    responses((status = 200, description = "In house", body = DayList)))]
async fn in_house(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DayList>, ApiError> {
    day_list(&state, &principal, id, "in_house").await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: String,
    pub kind: String,
    pub from_status: String,
    pub to_status: String,
    pub details: Value,
    pub actor: String,
    pub at: String,
}

/// A reservation's timeline, oldest first.
#[utoipa::path(get, path = "/reservations/{id}/events", tag = "reservations", security(("bearer" = [])),
    params(("id" = String, Path, description = "Reservation id")),
    responses((status = 200, description = "The timeline", body = Page<EventView>),
        (status = 404, description = "No such reservation", body = ErrorBody)))]
async fn events(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::ReservationRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Page<EventView>>, ApiError> {
    let properties = principal.properties.clone();
    let list = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let r = store::load_for(conn, &properties, &id)?;
            let mut stmt = conn.prepare_cached(
                "SELECT id, kind, from_status, to_status, details, actor, at
                 FROM reservation_events WHERE reservation_id = ?1 ORDER BY at, id",
            )?;
            let rows = stmt.query_map([&r.id], |row| {
                Ok(EventView {
                    id: row.get(0)?,
                    kind: row.get(1)?,
                    from_status: row.get(2)?,
                    to_status: row.get(3)?,
                    details: serde_json::from_str(&row.get::<_, String>(4)?).unwrap_or(Value::Null),
                    actor: row.get(5)?,
                    at: crate::time::rfc3339(row.get(6)?),
                })
            })?;
            Ok(Page::all(rows.collect::<rusqlite::Result<_>>()?))
        })
        .await?;
    Ok(Json(list))
}
