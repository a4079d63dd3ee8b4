//! The guest service over HTTP: profiles, search, preferences, documents, history,
//! duplicates and merge, loyalty, export and erasure.
//!
//! A guest profile is a chain-level record (DESIGN.md): it has a home property (its
//! `property_id`, which never changes) but may be read and edited at every property of the
//! chain, so `/guests/{id}` and `/guests/{id}/…` serve a guest of any property — after sync a
//! node holds the profiles of the whole chain — to staff with the guest permission. Listing,
//! search and creation stay per property (404 for a property the caller
//! does not belong to). A profile merged away answers 409 `guest_merged` with
//! `details.merged_into` on reads and writes (export and erase still work on it); an erased
//! profile reads as `erased: true` with blanked fields and refuses changes (409
//! `guest_erased`).
//!
//! What the chain shares is the profile, not another property's business: a guest's history
//! shows the stays of properties the caller does not belong to without amounts or
//! confirmation codes, and the acts that reach into another property's relationship with the
//! guest — export, erasure, merge and loyalty adjustments of a guest first seen at another
//! property — need the chain-level permission `guest.chain` (owners) and are audited, filed
//! under the acting node's property with the guest's home in `details.guest_property_id`.
//! A loyalty adjustment moves at most [`MAX_ADJUSTMENT_POINTS`] either way.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::documents::{self, DocumentInput, DocumentView};
use super::loyalty::{self, Account, LedgerEntry};
use super::privacy::{self, ErasureReport, GuestExport, MergeReport};
use super::search::{self, GuestPage, GuestSummary};
use super::store::{
    self, DuplicateView, GuestInput, GuestPatch, GuestRow, GuestView, HistoryView, Preferences,
};
use crate::audit::{self, Entry};
use crate::auth::extract::{Authorized, Principal};
use crate::auth::permissions::{Permission, perm};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::etag::{IfMatch, IfMatchHeader};
use crate::http::extract::{ApiJson, ApiPath, ApiQuery};
use crate::http::list::Page;
use crate::http::representation::Representation;
use crate::property::access;
use crate::state::AppState;
use crate::time::now_ms;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_guests, create_guest))
        .routes(routes!(get_guest, update_guest))
        .routes(routes!(history))
        .routes(routes!(get_preferences, put_preferences))
        .routes(routes!(list_documents, add_document))
        .routes(routes!(duplicates))
        .routes(routes!(merge))
        .routes(routes!(get_loyalty))
        .routes(routes!(enroll))
        .routes(routes!(adjust))
        .routes(routes!(export))
        .routes(routes!(erase))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GuestId {
    /// The guest's id.
    pub id: String,
}

// ---- helpers -------------------------------------------------------------------------------

/// The property a request acts on: the given one (403 without access), or the caller's only
/// property.
fn property_for(principal: &Principal, given: Option<&str>) -> Result<String, ApiError> {
    match given.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => {
            access::ensure(principal, id)?;
            Ok(id.to_string())
        }
        None => match principal.properties.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(ApiError::forbidden("property_forbidden", "you belong to no property")),
            _ => Err(ApiError::invalid_field(
                "property_id",
                "required when you belong to several properties",
            )),
        },
    }
}

/// The profile `id`, whichever property of the chain it belongs to (the caller's
/// permission was checked by the extractor): 404 when there is none.
///
/// Only chain-scoped rows (guests, documents, loyalty) may be written for a guest of another
/// property: the hub refuses a node's change to another property's rows. The routes below
/// keep to that — reservations they touch are found by guest id on this node, and this node
/// books only guests of its own property.
fn fetch(
    conn: &rusqlite::Connection,
    _principal: &Principal,
    id: &str,
) -> Result<GuestRow, ApiError> {
    store::find(conn, id)?.ok_or_else(|| ApiError::not_found("guest"))
}

/// Whether `g` was first seen at a property the caller does not belong to.
fn is_foreign(principal: &Principal, g: &GuestRow) -> bool {
    !principal.properties.contains(&g.property_id)
}

/// 403 `missing_permission` (`guest.chain`) when `g` is another property's guest and the
/// caller may not act on the chain's behalf.
fn ensure_chain(principal: &Principal, g: &GuestRow) -> Result<(), ApiError> {
    if is_foreign(principal, g) && !principal.role.allows(Permission::GuestChain) {
        let permission = Permission::GuestChain.as_str();
        return Err(ApiError::forbidden(
            "missing_permission",
            format!(
                "this guest was first seen at another property; the role {} does not have the \
                 permission {permission}",
                principal.role
            ),
        )
        .with_details(json!({ "permission": permission, "guest_property_id": g.property_id })));
    }
    Ok(())
}

/// Which properties' stays the caller sees with amounts and confirmation codes: their own,
/// or all with `guest.chain`.
fn full_stays(principal: &Principal) -> impl Fn(&str) -> bool + use<> {
    let chain = principal.role.allows(Permission::GuestChain);
    let own = principal.properties.clone();
    move |property: &str| chain || own.iter().any(|p| p == property)
}

/// The property an audit entry about `g` is filed under: the guest's own when the caller
/// works there, else none given, so the entry goes to the property the node serves (the
/// acting one; the hub takes a node's entries only for its own property).
fn audit_property<'a>(principal: &Principal, g: &'a GuestRow) -> Option<&'a str> {
    (!is_foreign(principal, g)).then_some(g.property_id.as_str())
}

/// An audit entry about `g`, filed as `audit_property` says, with the guest's home property.
fn guest_entry<'a>(
    event: &'a str,
    actor: crate::audit::Actor,
    principal: &Principal,
    g: &'a GuestRow,
    mut details: serde_json::Value,
) -> Entry<'a> {
    let foreign = is_foreign(principal, g);
    if let Some(map) = details.as_object_mut() {
        map.insert("guest_property_id".into(), json!(g.property_id));
        map.insert("chain".into(), json!(foreign));
    }
    let entry = Entry::new(event, actor).subject(&g.id).details(details);
    match audit_property(principal, g) {
        Some(property) => entry.property(property),
        None => entry,
    }
}

/// The most points one manual adjustment may add or take away: what a stay of 1,000.00
/// earns under the default rule. Larger corrections take several adjustments, each audited.
pub const MAX_ADJUSTMENT_POINTS: i64 = 10_000;

/// 409 `guest_merged` for a profile merged away.
fn not_merged(g: GuestRow) -> Result<GuestRow, ApiError> {
    if g.merged_into.is_empty() {
        Ok(g)
    } else {
        Err(ApiError::conflict(
            "guest_merged",
            format!("this profile was merged into guest {}", g.merged_into),
        )
        .with_details(json!({ "merged_into": g.merged_into })))
    }
}

/// `not_merged` and 409 `guest_erased` for an erased profile.
fn live(g: GuestRow) -> Result<GuestRow, ApiError> {
    let g = not_merged(g)?;
    if g.erased_at > 0 {
        return Err(ApiError::conflict("guest_erased", "this guest's data has been erased"));
    }
    Ok(g)
}

fn business_date(
    conn: &rusqlite::Connection,
    property_id: &str,
) -> Result<jiff::civil::Date, ApiError> {
    Ok(access::settings(conn, property_id)?
        .map(|s| s.business_date)
        .unwrap_or_else(|| crate::dates::today_in("UTC")))
}

// ---- profiles ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Name prefix, either order ("smith jo" or "john sm"); case and accents ignored.
    pub q: Option<String>,
    /// E-mail prefix (case-insensitive).
    pub email: Option<String>,
    /// Phone prefix, by digits with the country code (`+44 20` matches `442079460958`).
    pub phone: Option<String>,
    /// Optional when the caller belongs to one property.
    pub property_id: Option<String>,
    /// At most this many guests (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Search guests by name, e-mail or phone (one at a time; none lists all by name).
/// Merged-away and erased profiles are never listed.
#[utoipa::path(get, path = "/guests", tag = "guests", security(("bearer" = [])),
    params(SearchQuery),
    responses(
        (status = 200, description = "A page of guests", body = Page<GuestSummary>),
        (status = 422, description = "A parameter is invalid", body = ErrorBody),
    ))]
async fn list_guests(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestRead>,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<GuestPage>, ApiError> {
    let property_id = property_for(&principal, query.property_id.as_deref())?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid_field("limit", "must be between 1 and 100"));
    }
    let by = search::by(query.q.as_deref(), query.email.as_deref(), query.phone.as_deref())?;
    let page = state
        .db
        .read(move |conn| {
            search::search(conn, &property_id, &by, limit as usize, query.cursor.as_deref())
        })
        .await?;
    Ok(Json(page))
}

/// A created profile, with profiles that look like the same person.
#[derive(Debug, Serialize, ToSchema)]
pub struct GuestCreated {
    #[serde(flatten)]
    pub guest: GuestView,
    /// Same e-mail, same phone, or same name and birth date (creation still succeeds).
    pub possible_duplicates: Vec<DuplicateView>,
}

/// Create a guest profile.
#[utoipa::path(post, path = "/guests", tag = "guests", security(("bearer" = [])),
    request_body = GuestInput,
    responses(
        (status = 201, description = "Created", body = GuestCreated),
        (status = 422, description = "A field is missing or invalid", body = ErrorBody),
    ))]
async fn create_guest(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestWrite>,
    ApiJson(input): ApiJson<GuestInput>,
) -> Result<(StatusCode, Json<GuestCreated>), ApiError> {
    let property_id = property_for(&principal, input.property_id.as_deref())?;
    let fields = store::validate(&input, "")?;
    let now = now_ms();
    let created = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let id = store::insert(tx, &property_id, &fields, now)?;
            let g = store::find(tx, &id)?.ok_or_else(|| ApiError::internal("guest vanished"))?;
            let possible_duplicates = store::duplicates(tx, &g)?;
            Ok(GuestCreated { guest: g.view(), possible_duplicates })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A guest profile. An erased profile reads as `erased: true`; a profile merged away answers
/// 409 `guest_merged` with `details.merged_into`.
#[utoipa::path(get, path = "/guests/{id}", tag = "guests", security(("bearer" = [])),
    params(GuestId),
    responses(
        (status = 200, description = "The profile", body = GuestView),
        (status = 404, description = "No such guest", body = ErrorBody),
        (status = 409, description = "Merged into another profile", body = ErrorBody),
    ))]
async fn get_guest(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestRead>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<Json<GuestView>, ApiError> {
    let g = state.db.read(move |conn| not_merged(fetch(conn, &principal, &id)?)).await?;
    Ok(Json(g.view()))
}

/// Change some fields of a profile (the others stay).
#[utoipa::path(put, path = "/guests/{id}", tag = "guests", security(("bearer" = [])),
    params(IfMatchHeader, GuestId), request_body = GuestPatch,
    responses(
        (status = 200, description = "The updated profile", body = GuestView),
        (status = 404, description = "No such guest", body = ErrorBody),
        (status = 409, description = "Merged or erased", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn update_guest(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestWrite>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
    if_match: IfMatch,
    put: Representation<GuestPatch>,
) -> Result<Json<GuestView>, ApiError> {
    let now = now_ms();
    let g = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let g = live(fetch(tx, &principal, &id)?)?;
            put.check(&if_match, || Ok(g.view()))?;
            let patch = put.input;
            let mut fields = g.fields.clone();
            store::apply_patch("", &mut fields, &patch)?;
            if fields == g.fields {
                // Nothing changed: no write, so the version (ETag) other desks hold stays.
                return Ok(g);
            }
            store::write_fields(tx, &id, &fields, now)?;
            if (&fields.first_name, &fields.last_name)
                != (&g.fields.first_name, &g.fields.last_name)
            {
                // Reservations carry the name for lists and search.
                tx.prepare_cached("UPDATE reservations SET guest_name = ?2 WHERE guest_id = ?1")?
                    .execute([&id, &format!("{} {}", fields.first_name, fields.last_name)])?;
            }
            store::find(tx, &id)?.ok_or_else(|| ApiError::internal("guest vanished"))
        })
        .await?;
    Ok(Json(g.view()))
}

/// A guest's reservations (newest arrival first) with stays, nights, spend, upcoming,
/// cancellations and no-shows.
#[utoipa::path(get, path = "/guests/{id}/history", tag = "guests", security(("bearer" = [])),
    params(GuestId),
    responses(
        (status = 200, description = "Stays and totals", body = HistoryView),
        (status = 404, description = "No such guest", body = ErrorBody),
    ))]
async fn history(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestRead>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<Json<HistoryView>, ApiError> {
    let h = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let g = not_merged(fetch(conn, &principal, &id)?)?;
            Ok(store::history(conn, &g.id, &full_stays(&principal))?)
        })
        .await?;
    Ok(Json(h))
}

// ---- preferences ---------------------------------------------------------------------------

#[utoipa::path(get, path = "/guests/{id}/preferences", tag = "guests", security(("bearer" = [])),
    params(GuestId),
    responses(
        (status = 200, description = "Preferences", body = Preferences),
        (status = 404, description = "No such guest", body = ErrorBody),
    ))]
async fn get_preferences(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestRead>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<Json<Preferences>, ApiError> {
    let g = state.db.read(move |conn| not_merged(fetch(conn, &principal, &id)?)).await?;
    Ok(Json(g.preferences()))
}

/// Replace a guest's preferences (room, pillow, dietary, up to 20 tags).
#[utoipa::path(put, path = "/guests/{id}/preferences", tag = "guests", security(("bearer" = [])),
    params(IfMatchHeader, GuestId), request_body = Preferences,
    responses(
        (status = 200, description = "Preferences", body = Preferences),
        (status = 404, description = "No such guest", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn put_preferences(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestWrite>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
    if_match: IfMatch,
    ApiJson(prefs): ApiJson<Preferences>,
) -> Result<Json<Preferences>, ApiError> {
    let prefs = store::clean_preferences(&prefs)?;
    let now = now_ms();
    let stored = prefs.clone();
    state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let g = live(fetch(tx, &principal, &id)?)?;
            if_match.check(|| Ok(g.preferences()))?;
            Ok(store::write_preferences(tx, &id, &stored, now)?)
        })
        .await?;
    Ok(Json(prefs))
}

// ---- documents -----------------------------------------------------------------------------

#[utoipa::path(get, path = "/guests/{id}/documents", tag = "guests", security(("bearer" = [])),
    params(GuestId),
    responses(
        (status = 200, description = "Documents, numbers masked", body = Page<DocumentView>),
        (status = 404, description = "No such guest", body = ErrorBody),
    ))]
async fn list_documents(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestRead>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<Json<Page<DocumentView>>, ApiError> {
    let docs = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let g = not_merged(fetch(conn, &principal, &id)?)?;
            Ok(documents::list(conn, &g.id)?)
        })
        .await?;
    Ok(Json(Page::all(docs)))
}

/// Record an identity document shown by the guest (an expired one is refused).
#[utoipa::path(post, path = "/guests/{id}/documents", tag = "guests", security(("bearer" = [])),
    params(GuestId), request_body = DocumentInput,
    responses(
        (status = 201, description = "Recorded; the number is masked", body = DocumentView),
        (status = 404, description = "No such guest", body = ErrorBody),
        (status = 422, description = "A field is invalid or the document expired", body = ErrorBody),
    ))]
async fn add_document(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestWrite>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
    ApiJson(input): ApiJson<DocumentInput>,
) -> Result<(StatusCode, Json<DocumentView>), ApiError> {
    let now = now_ms();
    let actor = principal.actor().label();
    let doc = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let g = live(fetch(tx, &principal, &id)?)?;
            let clean = documents::validate(&input, business_date(tx, &g.property_id)?)?;
            if !clean.reservation_id.is_empty() {
                let ok: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM reservations
                         WHERE id = ?1 AND guest_id = ?2)",
                    )?
                    .query_row([&clean.reservation_id, &g.id], |r| r.get(0))?;
                if !ok {
                    return Err(ApiError::invalid_field(
                        "reservation_id",
                        "must be a reservation of this guest",
                    ));
                }
            }
            let doc_id = documents::insert(tx, &g.id, &clean, &actor, now)?;
            documents::list(tx, &g.id)?
                .into_iter()
                .find(|d| d.id == doc_id)
                .ok_or_else(|| ApiError::internal("document vanished"))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(doc)))
}

// ---- duplicates and merge ------------------------------------------------------------------

/// Live profiles of the same property that look like the same person.
#[utoipa::path(get, path = "/guests/{id}/duplicates", tag = "guests", security(("bearer" = [])),
    params(GuestId),
    responses(
        (status = 200, description = "Possible duplicates and why", body = Page<DuplicateView>),
        (status = 404, description = "No such guest", body = ErrorBody),
    ))]
async fn duplicates(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestRead>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<Json<Page<DuplicateView>>, ApiError> {
    let found = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            let g = not_merged(fetch(conn, &principal, &id)?)?;
            Ok(store::duplicates(conn, &g)?)
        })
        .await?;
    Ok(Json(Page::all(found)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The profile to merge into this one (it is marked merged and stops being listed).
    pub from_guest_id: String,
}

/// Merge another profile of the same property into this one: reservations, documents and
/// loyalty points move, empty fields are filled from the other profile.
#[utoipa::path(post, path = "/guests/{id}/merge", tag = "guests", security(("bearer" = [])),
    params(GuestId), request_body = MergeRequest,
    responses(
        (status = 200, description = "Merged", body = MergeReport),
        (status = 403, description = "Another property's guest, without guest.chain", body = ErrorBody),
        (status = 404, description = "No such guest", body = ErrorBody),
        (status = 409, description = "One of them is merged or erased", body = ErrorBody),
        (status = 422, description = "Same profile or another property", body = ErrorBody),
    ))]
async fn merge(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestPrivacy>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
    ApiJson(req): ApiJson<MergeRequest>,
) -> Result<Json<MergeReport>, ApiError> {
    let now = now_ms();
    let actor = principal.actor();
    let report = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let into = live(fetch(tx, &principal, &id)?)?;
            let from_id = req.from_guest_id.trim();
            if from_id == into.id {
                return Err(ApiError::invalid_field(
                    "from_guest_id",
                    "cannot merge a guest into itself",
                ));
            }
            let from = store::find(tx, from_id)?
                .ok_or_else(|| ApiError::invalid_field("from_guest_id", "no such guest"))?;
            if from.property_id != into.property_id {
                return Err(ApiError::invalid_field(
                    "from_guest_id",
                    "must be a guest of the same property",
                ));
            }
            let from = live(from)?;
            ensure_chain(&principal, &into)?;
            let (reservations_moved, documents_moved, points_moved) =
                privacy::merge(tx, &into, &from, &actor.label(), now)?;
            audit::record(
                tx,
                guest_entry(
                    "guest_merged",
                    actor.clone(),
                    &principal,
                    &into,
                    json!({
                        "from_guest_id": from.id,
                        "reservations_moved": reservations_moved,
                        "documents_moved": documents_moved,
                        "points_moved": points_moved,
                    }),
                ),
                now,
            )?;
            let guest = store::find(tx, &into.id)?
                .ok_or_else(|| ApiError::internal("guest vanished"))?
                .view();
            Ok(MergeReport {
                guest,
                merged_from: from.id,
                reservations_moved,
                documents_moved,
                points_moved,
            })
        })
        .await?;
    Ok(Json(report))
}

// ---- loyalty -------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct LoyaltyView {
    /// Absent when the guest is not enrolled.
    pub account: Option<Account>,
    /// Newest first.
    pub ledger: Vec<LedgerEntry>,
}

fn loyalty_view(conn: &rusqlite::Connection, guest_id: &str) -> Result<LoyaltyView, ApiError> {
    Ok(LoyaltyView {
        account: loyalty::account(conn, guest_id)?,
        ledger: loyalty::ledger(conn, guest_id)?,
    })
}

#[utoipa::path(get, path = "/guests/{id}/loyalty", tag = "guests", security(("bearer" = [])),
    params(GuestId),
    responses(
        (status = 200, description = "Account and ledger", body = LoyaltyView),
        (status = 404, description = "No such guest", body = ErrorBody),
    ))]
async fn get_loyalty(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestRead>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<Json<LoyaltyView>, ApiError> {
    let view = state
        .db
        .read(move |conn| {
            let g = not_merged(fetch(conn, &principal, &id)?)?;
            loyalty_view(conn, &g.id)
        })
        .await?;
    Ok(Json(view))
}

/// Enroll a guest in the loyalty programme (201; 200 when already enrolled).
#[utoipa::path(post, path = "/guests/{id}/loyalty/enroll", tag = "guests",
    security(("bearer" = [])), params(GuestId),
    responses(
        (status = 201, description = "Enrolled", body = LoyaltyView),
        (status = 200, description = "Already enrolled", body = LoyaltyView),
        (status = 404, description = "No such guest", body = ErrorBody),
        (status = 409, description = "Merged or erased", body = ErrorBody),
    ))]
async fn enroll(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestWrite>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<(StatusCode, Json<LoyaltyView>), ApiError> {
    let now = now_ms();
    let (created, view) = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let g = live(fetch(tx, &principal, &id)?)?;
            let created = loyalty::enroll(tx, &g.property_id, &g.id, now)?;
            Ok((created, loyalty_view(tx, &g.id)?))
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(view)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentRequest {
    /// Points to add (positive) or take away (negative): 1 to 10000 either way, not zero.
    #[schema(schema_with = adjustment_points)]
    pub points: i64,
    /// Why, for the ledger (required): 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, format = "stayos:non-blank")]
    pub reason: String,
}

/// `points` of an adjustment: -10000 to -1 or 1 to 10000.
fn adjustment_points() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    let range = |lo: i64, hi: i64| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(lo))
            .maximum(Some(hi))
    };
    OneOfBuilder::new()
        .item(range(-MAX_ADJUSTMENT_POINTS, -1))
        .item(range(1, MAX_ADJUSTMENT_POINTS))
        .description(Some(
            "Points to add (positive) or take away (negative): 1 to 10000 either way, not zero.",
        ))
        .build()
        .into()
}

/// Add or take away points by hand, with a reason. The balance never goes below zero (409
/// `insufficient_points`). Positive adjustments count towards the tier.
#[utoipa::path(post, path = "/guests/{id}/loyalty/adjustments", tag = "guests",
    security(("bearer" = [])), params(GuestId), request_body = AdjustmentRequest,
    responses(
        (status = 201, description = "Adjusted", body = LoyaltyView),
        (status = 403, description = "Another property's guest, without guest.chain", body = ErrorBody),
        (status = 404, description = "No such guest", body = ErrorBody),
        (status = 409, description = "Not enough points, or merged/erased", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ))]
async fn adjust(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::LoyaltyAdjust>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
    ApiJson(req): ApiJson<AdjustmentRequest>,
) -> Result<(StatusCode, Json<LoyaltyView>), ApiError> {
    if req.points == 0 || req.points.unsigned_abs() > MAX_ADJUSTMENT_POINTS.unsigned_abs() {
        return Err(ApiError::invalid_field(
            "points",
            format!(
                "must be a non-zero number of points, at most {MAX_ADJUSTMENT_POINTS} either way"
            ),
        ));
    }
    let reason = req.reason.trim().to_string();
    if reason.is_empty() || req.reason.chars().count() > 200 {
        return Err(ApiError::invalid_field("reason", "must be 1 to 200 characters"));
    }
    let now = now_ms();
    let actor = principal.actor();
    let view = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let g = live(fetch(tx, &principal, &id)?)?;
            ensure_chain(&principal, &g)?;
            loyalty::enroll(tx, &g.property_id, &g.id, now)?;
            let balance = loyalty::account(tx, &g.id)?.map(|a| a.balance).unwrap_or(0);
            if balance + req.points < 0 {
                return Err(ApiError::conflict(
                    "insufficient_points",
                    format!("the balance is {balance} points; cannot take away {}", -req.points),
                )
                .with_details(json!({ "balance": balance, "points": req.points })));
            }
            let after = loyalty::post(
                tx,
                &g.property_id,
                &g.id,
                "adjust",
                req.points,
                req.points.max(0),
                &reason,
                "",
                &actor.label(),
                now,
            )?;
            audit::record(
                tx,
                guest_entry(
                    "loyalty_adjusted",
                    actor.clone(),
                    &principal,
                    &g,
                    json!({ "points": req.points, "balance_after": after, "reason": reason }),
                ),
                now,
            )?;
            loyalty_view(tx, &g.id)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

// ---- privacy -------------------------------------------------------------------------------

/// Everything stored about a guest, as JSON (document numbers masked).
#[utoipa::path(get, path = "/guests/{id}/export", tag = "guests", security(("bearer" = [])),
    params(GuestId),
    responses(
        (status = 200, description = "The export", body = GuestExport),
        (status = 403, description = "Another property's guest, without guest.chain", body = ErrorBody),
        (status = 404, description = "No such guest", body = ErrorBody),
    ))]
async fn export(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestPrivacy>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<Json<GuestExport>, ApiError> {
    let now = now_ms();
    let actor = principal.actor();
    let export = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let g = fetch(tx, &principal, &id)?;
            ensure_chain(&principal, &g)?;
            let export = privacy::export(tx, &g, &full_stays(&principal), now)?;
            audit::record(
                tx,
                guest_entry("guest_exported", actor, &principal, &g, json!({})),
                now,
            )?;
            Ok(export)
        })
        .await?;
    Ok(Json(export))
}

/// Erase a guest: personal fields overwritten (the erasure replicates), documents blanked,
/// reservations kept for accounting as "Erased guest". Erasing again changes nothing (200).
#[utoipa::path(post, path = "/guests/{id}/erase", tag = "guests", security(("bearer" = [])),
    params(GuestId),
    responses(
        (status = 200, description = "Erased", body = ErasureReport),
        (status = 403, description = "Another property's guest, without guest.chain", body = ErrorBody),
        (status = 404, description = "No such guest", body = ErrorBody),
    ))]
async fn erase(
    State(state): State<AppState>,
    Authorized(principal, _): Authorized<perm::GuestPrivacy>,
    ApiPath(GuestId { id }): ApiPath<GuestId>,
) -> Result<Json<ErasureReport>, ApiError> {
    let now = now_ms();
    let actor = principal.actor();
    let report = state
        .db
        .write(move |tx| -> Result<_, ApiError> {
            let g = fetch(tx, &principal, &id)?;
            ensure_chain(&principal, &g)?;
            let report = privacy::erase(tx, &g, now)?;
            if report.newly_erased {
                audit::record(
                    tx,
                    guest_entry(
                        "guest_erased",
                        actor,
                        &principal,
                        &g,
                        json!({
                            "reservations": report.reservations,
                            "documents": report.documents,
                        }),
                    ),
                    now,
                )?;
            }
            Ok(report)
        })
        .await?;
    Ok(Json(report))
}
