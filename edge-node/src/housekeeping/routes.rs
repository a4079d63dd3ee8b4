//! The housekeeping service over HTTP: the board of a property's rooms for its business date,
//! room status changes, and out-of-order / out-of-service blocks.
//!
//! Out of order takes a room out of inventory for the nights `[from, to)`; it is refused
//! while a reservation arriving or in house holds the room on one of those nights
//! (`room_in_use`) and when the type would then be sold beyond its rooms (`would_oversell`).
//! A block covering the business date sets the room's status at once; releasing it makes the
//! room dirty and lets the waitlist take the freed inventory.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, BlockRow, RoomRow};
use crate::audit::{self, Entry};
use crate::auth::extract::Authorized;
use crate::auth::permissions::perm;
use crate::dates;
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::list::Page;
use crate::property::access;
use crate::state::AppState;
use crate::time::{now_ms, rfc3339};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(board))
        .routes(routes!(change_status))
        .routes(routes!(create_block))
        .routes(routes!(list_blocks))
        .routes(routes!(release_block))
}

/// Statuses staff set by hand (out of order comes from blocks).
pub(crate) const SETTABLE: [&str; 4] = ["clean", "dirty", "inspected", "out_of_service"];
pub(crate) const BLOCK_KINDS: [&str; 2] = ["out_of_order", "out_of_service"];

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockView {
    pub id: String,
    pub room_id: String,
    pub room_number: String,
    /// `out_of_order` (out of inventory) or `out_of_service` (sellable, flagged).
    #[schema(value_type = crate::vocabulary::BlockKind)]
    pub kind: String,
    /// First night blocked.
    pub from: String,
    /// First night no longer blocked (exclusive).
    pub to: String,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: String,
    /// When the block was released; absent while it holds.
    pub released_at: Option<String>,
}

impl From<BlockRow> for BlockView {
    fn from(b: BlockRow) -> Self {
        BlockView {
            id: b.id,
            room_id: b.room_id,
            room_number: b.room_number,
            kind: b.kind,
            from: b.from_date,
            to: b.to_date,
            reason: crate::http::wire::text(&b.reason),
            created_by: b.created_by,
            created_at: rfc3339(b.created_at),
            released_at: (b.released_at > 0).then(|| rfc3339(b.released_at)),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardRoom {
    pub room_id: String,
    pub number: String,
    pub floor: Option<String>,
    pub room_type_id: String,
    pub room_type_code: String,
    /// clean, dirty, inspected, out_of_order or out_of_service.
    #[schema(value_type = crate::vocabulary::RoomStatus)]
    pub status: String,
    pub status_note: Option<String>,
    /// A guest is checked in to the room.
    pub occupied: bool,
    /// A reservation with this room arrives on the business date.
    pub arrival_today: bool,
    /// The guest in the room leaves on the business date.
    pub departure_today: bool,
    /// The guest in house, else the guest arriving today.
    pub guest_name: Option<String>,
    pub reservation_id: Option<String>,
    /// The block covering the business date, if any.
    pub block: Option<BlockView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BoardCounts {
    /// Rooms per status (every status present, zero included).
    pub by_status: BTreeMap<String, i64>,
    pub occupied: i64,
    pub vacant: i64,
    pub arrivals: i64,
    pub departures: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Board {
    pub property_id: String,
    pub business_date: String,
    /// The rooms matching the filters, by number.
    pub items: Vec<BoardRoom>,
    /// Always `null`: the board is one page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// Counts over all the property's rooms, whatever the filters.
    pub counts: BoardCounts,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BoardQuery {
    /// Only rooms with this status.
    #[param(value_type = Option<crate::vocabulary::RoomStatus>)]
    pub status: Option<String>,
    /// Only rooms on this floor.
    pub floor: Option<String>,
}

/// The housekeeping board for the property's business date.
#[utoipa::path(get, path = "/properties/{id}/housekeeping", tag = "housekeeping",
    security(("bearer" = [])), params(("id" = String, Path, description = "Property id"), BoardQuery),
    responses(
        (status = 200, description = "The board", body = Board),
        (status = 404, description = "No such property", body = ErrorBody),
        (status = 422, description = "A filter is invalid", body = ErrorBody),
    ))]
async fn board(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::HousekeepingRead>,
    ApiPath(property_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<BoardQuery>,
) -> Result<Json<Board>, ApiError> {
    access::ensure(&principal, &property_id)?;
    if let Some(status) = &query.status
        && !store::STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::invalid_field(
            "status",
            format!("must be one of {}", store::STATUSES.join(", ")),
        ));
    }
    let board = state
        .db
        .read(move |conn| -> Result<Board, ApiError> {
            let settings = access::settings_for(conn, &principal, &property_id)?;
            let today = settings.business_date.to_string();
            let rooms = store::rooms(conn, &property_id)?;
            let stays = store::stays_today(conn, &property_id, &today)?;
            let tomorrow = dates::next_day(settings.business_date).to_string();
            let mut blocks: HashMap<String, BlockRow> = HashMap::new();
            for b in store::blocks(conn, &property_id, &today, &tomorrow)? {
                blocks.entry(b.room_id.clone()).or_insert(b);
            }
            let mut in_house: HashMap<&str, &store::StayRow> = HashMap::new();
            let mut arriving: HashMap<&str, &store::StayRow> = HashMap::new();
            for s in &stays {
                if s.status == "checked_in" {
                    in_house.insert(s.room_id.as_str(), s);
                } else {
                    arriving.insert(s.room_id.as_str(), s);
                }
            }
            let mut counts = BoardCounts {
                by_status: store::STATUSES.iter().map(|s| (s.to_string(), 0)).collect(),
                occupied: 0,
                vacant: 0,
                arrivals: 0,
                departures: 0,
            };
            let mut shown = Vec::new();
            for RoomRow {
                id,
                number,
                floor,
                room_type_id,
                room_type_code,
                status,
                status_note,
                ..
            } in rooms
            {
                let stay = in_house.get(id.as_str());
                let arrival = arriving.get(id.as_str());
                let occupied = stay.is_some();
                let arrival_today = arrival.is_some() || stay.is_some_and(|s| s.arrival == today);
                let departure_today = stay.is_some_and(|s| s.departure == today);
                *counts.by_status.entry(status.clone()).or_insert(0) += 1;
                if occupied {
                    counts.occupied += 1;
                } else {
                    counts.vacant += 1;
                }
                counts.arrivals += i64::from(arrival.is_some());
                counts.departures += i64::from(departure_today);
                let keep = query.status.as_ref().is_none_or(|s| *s == status)
                    && query.floor.as_ref().is_none_or(|f| *f == floor);
                if !keep {
                    continue;
                }
                let current = stay.or(arrival);
                shown.push(BoardRoom {
                    block: blocks.remove(&id).map(BlockView::from),
                    room_id: id,
                    number,
                    floor: crate::http::wire::text(&floor),
                    room_type_id,
                    room_type_code,
                    status,
                    status_note: crate::http::wire::text(&status_note),
                    occupied,
                    arrival_today,
                    departure_today,
                    guest_name: current.map(|s| s.guest_name.clone()),
                    reservation_id: current.map(|s| s.reservation_id.clone()),
                });
            }
            Ok(Board { property_id, business_date: today, items: shown, next_cursor: None, counts })
        })
        .await?;
    Ok(Json(board))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `inspected` only from `clean`; out of order comes with a block.
    #[schema(value_type = crate::vocabulary::SettableRoomStatus)]
    pub status: String,
    #[schema(max_length = 500, format = "stayos:free-text")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomStatusView {
    pub room_id: String,
    pub number: String,
    pub floor: Option<String>,
    pub room_type_code: String,
    #[schema(value_type = crate::vocabulary::RoomStatus)]
    pub status: String,
    pub previous_status: Option<String>,
    pub status_note: Option<String>,
    pub status_at: String,
}

/// Set a room's housekeeping status.
#[utoipa::path(put, path = "/properties/{id}/rooms/{room_id}/status", tag = "housekeeping",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"), ("room_id" = String, Path, description = "Room id")),
    request_body = StatusChange,
    responses(
        (status = 200, description = "The room's new status", body = RoomStatusView),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 409, description = "Not allowed from the current status", body = ErrorBody),
        (status = 422, description = "Invalid status", body = ErrorBody),
    ))]
async fn change_status(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::HousekeepingWrite>,
    ApiPath((property_id, room_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<StatusChange>,
) -> Result<Json<RoomStatusView>, ApiError> {
    access::ensure(&principal, &property_id)?;
    let to = body.status.clone();
    if to == "out_of_order" {
        return Err(ApiError::invalid_field(
            "status",
            "out_of_order is set by a block: POST /properties/{id}/rooms/{room_id}/blocks \
             with kind out_of_order takes the room out of inventory",
        ));
    }
    if !SETTABLE.contains(&to.as_str()) {
        return Err(ApiError::invalid_field(
            "status",
            format!("must be one of {}", SETTABLE.join(", ")),
        ));
    }
    let note = crate::property::validate::free_text(
        "note",
        body.note.as_deref().unwrap_or_default(),
        500,
    )?;
    let actor = principal.actor().label();
    let view = state
        .db
        .write(move |tx| -> Result<RoomStatusView, ApiError> {
            let room = store::room(tx, &property_id, &room_id)?
                .ok_or_else(|| ApiError::not_found("room"))?;
            if room.status == "out_of_order" {
                return Err(ApiError::conflict(
                    "room_out_of_order",
                    "the room is out of order; release its block first",
                )
                .with_details(json!({ "status": room.status })));
            }
            if to == "inspected" && !matches!(room.status.as_str(), "clean" | "inspected") {
                return Err(ApiError::conflict(
                    "invalid_status_transition",
                    format!("a room is inspected after it is clean; this room is {}", room.status),
                )
                .with_details(json!({ "field": "status", "from": room.status, "to": to })));
            }
            let now = now_ms();
            store::set_status(tx, &room.id, &to, &note, &actor, now)?;
            Ok(RoomStatusView {
                room_id: room.id,
                number: room.number,
                floor: crate::http::wire::text(&room.floor),
                room_type_code: room.room_type_code,
                status: to,
                previous_status: crate::http::wire::text(&room.status),
                status_note: crate::http::wire::text(&note),
                status_at: rfc3339(now),
            })
        })
        .await?;
    Ok(Json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBlock {
    /// `out_of_order` (out of inventory) or `out_of_service` (sellable, flagged).
    #[schema(value_type = crate::vocabulary::BlockKind)]
    pub kind: String,
    /// First night blocked, YYYY-MM-DD.
    #[schema(format = Date)]
    pub from: String,
    /// First night no longer blocked (exclusive), YYYY-MM-DD.
    #[schema(format = Date)]
    pub to: String,
    /// Why the room is blocked: 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, format = "stayos:non-blank")]
    pub reason: String,
}

/// Block a room: out of order or out of service for the nights `[from, to)`.
#[utoipa::path(post, path = "/properties/{id}/rooms/{room_id}/blocks", tag = "housekeeping",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"), ("room_id" = String, Path, description = "Room id")),
    request_body = NewBlock,
    responses(
        (status = 201, description = "The block", body = BlockView),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 409, description = "room_in_use, would_oversell or block_overlaps", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn create_block(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::HousekeepingWrite>,
    ApiPath((property_id, room_id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<NewBlock>,
) -> Result<(StatusCode, Json<BlockView>), ApiError> {
    access::ensure(&principal, &property_id)?;
    if !BLOCK_KINDS.contains(&body.kind.as_str()) {
        return Err(ApiError::invalid_field("kind", "must be out_of_order or out_of_service"));
    }
    let from = dates::parse("from", &body.from)?;
    let to = dates::parse("to", &body.to)?;
    dates::range(from, to, "to")?;
    let reason = body.reason.trim().to_string();
    if reason.is_empty() {
        return Err(ApiError::invalid_field("reason", "say why the room is blocked"));
    }
    if body.reason.chars().count() > 500 {
        return Err(ApiError::invalid_field("reason", "at most 500 characters"));
    }
    let actor_entry = principal.actor();
    let actor = actor_entry.label();
    let kind = body.kind;
    let view = state
        .db
        .write(move |tx| -> Result<BlockView, ApiError> {
            let settings = access::settings_for(tx, &principal, &property_id)?;
            let room = store::room(tx, &property_id, &room_id)?
                .ok_or_else(|| ApiError::not_found("room"))?;
            let (from, to) = (from.to_string(), to.to_string());
            if let Some(other) = store::overlapping_block(tx, &room.id, &from, &to)? {
                return Err(ApiError::conflict(
                    "block_overlaps",
                    format!(
                        "room {} is already blocked from {} to {}",
                        room.number, other.from_date, other.to_date
                    ),
                )
                .with_details(
                    json!({ "block_id": other.id, "from": other.from_date, "to": other.to_date }),
                ));
            }
            if kind == "out_of_order" {
                if let Some((reservation_id, night)) = store::room_in_use(tx, &room.id, &from, &to)?
                {
                    return Err(ApiError::conflict(
                        "room_in_use",
                        format!(
                            "room {} is assigned to reservation {reservation_id} on {night}; \
                             move that reservation to another room first",
                            room.number
                        ),
                    )
                    .with_details(json!({ "reservation_id": reservation_id, "night": night })));
                }
                if let Some((night, sold, capacity)) =
                    store::would_oversell(tx, &room.room_type_id, &from, &to)?
                {
                    return Err(ApiError::conflict(
                        "would_oversell",
                        format!(
                            "{sold} rooms of type {} are sold on {night}; without room {} only \
                             {capacity} could be",
                            room.room_type_code, room.number
                        ),
                    )
                    .with_details(json!({ "night": night, "sold": sold, "capacity": capacity })));
                }
            }
            let now = now_ms();
            let id = store::insert_block(
                tx,
                &property_id,
                &room.id,
                &kind,
                &from,
                &to,
                &reason,
                &actor,
                now,
            )?;
            let today = settings.business_date.to_string();
            if from.as_str() <= today.as_str() && today.as_str() < to.as_str() {
                store::set_status(tx, &room.id, &kind, &reason, &actor, now)?;
            }
            audit::record(
                tx,
                Entry::new("room_blocked", actor_entry).subject(&id).details(json!({
                    "property_id": property_id, "room_id": room.id, "room_number": room.number,
                    "kind": kind, "from": from, "to": to, "reason": reason,
                })),
                now,
            )?;
            let block =
                store::block(tx, &property_id, &id)?.ok_or_else(|| ApiError::not_found("block"))?;
            Ok(BlockView::from(block))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BlocksQuery {
    /// Blocks holding on or after this night (default: the business date).
    #[param(format = Date)]
    pub from: Option<String>,
    /// Blocks starting before this night (default: a year after `from`).
    #[param(format = Date)]
    pub to: Option<String>,
}

/// The property's unreleased blocks overlapping `[from, to)`.
#[utoipa::path(get, path = "/properties/{id}/room-blocks", tag = "housekeeping",
    security(("bearer" = [])), params(("id" = String, Path, description = "Property id"), BlocksQuery),
    responses(
        (status = 200, description = "The blocks", body = Page<BlockView>),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    ))]
async fn list_blocks(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::HousekeepingRead>,
    ApiPath(property_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<BlocksQuery>,
) -> Result<Json<Page<BlockView>>, ApiError> {
    access::ensure(&principal, &property_id)?;
    let from = query.from.as_deref().map(|f| dates::parse("from", f)).transpose()?;
    let to = query.to.as_deref().map(|t| dates::parse("to", t)).transpose()?;
    let blocks = state
        .db
        .read(move |conn| -> Result<Vec<BlockView>, ApiError> {
            let settings = access::settings_for(conn, &principal, &property_id)?;
            let from = from.unwrap_or(settings.business_date);
            let to = match to {
                Some(to) => to,
                None => from.checked_add(jiff::Span::new().days(365)).unwrap_or(from),
            };
            if to <= from {
                return Err(ApiError::invalid_field("to", "must be after from"));
            }
            Ok(store::blocks(conn, &property_id, &from.to_string(), &to.to_string())?
                .into_iter()
                .map(BlockView::from)
                .collect())
        })
        .await?;
    Ok(Json(Page::all(blocks)))
}

/// Release a block: the room comes back (dirty) and the waitlist may take it.
#[utoipa::path(delete, path = "/properties/{id}/room-blocks/{block_id}", tag = "housekeeping",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Property id"), ("block_id" = String, Path, description = "Block id")),
    responses(
        (status = 200, description = "The released block", body = BlockView),
        (status = 404, description = "No such block", body = ErrorBody),
        (status = 409, description = "Already released", body = ErrorBody),
    ))]
async fn release_block(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::HousekeepingWrite>,
    ApiPath((property_id, block_id)): ApiPath<(String, String)>,
) -> Result<Json<BlockView>, ApiError> {
    access::ensure(&principal, &property_id)?;
    let actor_entry = principal.actor();
    let actor = actor_entry.label();
    let view = state
        .db
        .write(move |tx| -> Result<BlockView, ApiError> {
            let settings = access::settings_for(tx, &principal, &property_id)?;
            let block = store::block(tx, &property_id, &block_id)?
                .ok_or_else(|| ApiError::not_found("block"))?;
            if block.released_at > 0 {
                return Err(ApiError::conflict("block_released", "the block is already released")
                    .with_details(json!({ "block_id": block.id })));
            }
            let now = now_ms();
            store::release_block(tx, &block.id, now)?;
            let today = settings.business_date.to_string();
            let active = block.from_date <= today && today < block.to_date;
            if active
                && let Some(room) = store::room(tx, &property_id, &block.room_id)?
                && room.status == block.kind
            {
                store::set_status(tx, &room.id, "dirty", "block released", &actor, now)?;
            }
            if block.kind == "out_of_order" && !block.room_type_id.is_empty() {
                crate::reservation::waitlist::promote_for_type(
                    tx,
                    &property_id,
                    &block.room_type_id,
                    &actor,
                    now,
                )?;
            }
            audit::record(
                tx,
                Entry::new("room_block_released", actor_entry).subject(&block.id).details(json!({
                    "property_id": property_id, "room_id": block.room_id, "kind": block.kind,
                    "from": block.from_date, "to": block.to_date,
                })),
                now,
            )?;
            let block = store::block(tx, &property_id, &block.id)?
                .ok_or_else(|| ApiError::not_found("block"))?;
            Ok(BlockView::from(block))
        })
        .await?;
    Ok(Json(view))
}
