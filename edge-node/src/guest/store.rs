//! SQL of guest profiles.

use rusqlite::Connection;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::error::ApiError;

/// A guest profile as a request gives it (create, or inline in a reservation).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestInput {
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// Validates `input` (422 naming the field, prefixed with `field_prefix`, e.g. `guest.`) and
/// creates the profile at `property_id` inside the caller's transaction; returns its id.
pub fn create_in_tx(
    tx: &Connection,
    input: &GuestInput,
    field_prefix: &str,
    property_id: &str,
    now: i64,
) -> Result<String, ApiError> {
    let _ = (tx, input, field_prefix, property_id, now);
    Err(ApiError::internal("guest profiles are not built yet"))
}
