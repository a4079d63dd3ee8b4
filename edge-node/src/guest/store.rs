//! SQL of guest profiles: validation of what a request gives (every bad field named), the
//! normalised search columns, create, partial update, read, duplicates, preferences and
//! booking history.

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::normalize;
use crate::http::error::ApiError;
use crate::time::rfc3339;

/// A postal address; every part optional.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 200, format = "stayos:free-text")]
    pub line1: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 200, format = "stayos:free-text")]
    pub line2: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 100, format = "stayos:free-text")]
    pub city: Option<String>,
    /// Letters, digits, spaces and `-`.
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(
        max_length = 20,
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\u0000-\u001f\u0021-\u002c\u002e\u002f\u003a-\u0040\u005b-\u0060\u007b-\u009f]*[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(format = "stayos:country-or-empty", example = "DE")]
    pub country: Option<String>,
}

/// Marketing consent per channel (absent = unchanged on update, no consent on create).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentInput {
    #[serde(default)]
    pub email: Option<bool>,
    #[serde(default)]
    pub sms: Option<bool>,
    #[serde(default)]
    pub phone: Option<bool>,
    #[serde(default)]
    pub post: Option<bool>,
}

/// A guest profile as a request gives it (create, or inline in a reservation).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org",
    "phone": "+44 20 7946 0958", "language": "en-GB", "nationality": "GB",
    "address": { "line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4JH", "country": "GB" }
}))]
pub struct GuestInput {
    /// The property the guest belongs to. Optional when the caller belongs to exactly one
    /// property; inside a reservation it must be absent or the reservation's property.
    #[serde(default)]
    pub property_id: Option<String>,
    #[schema(min_length = 1, max_length = 100, format = "stayos:line")]
    pub first_name: String,
    #[schema(min_length = 1, max_length = 100, format = "stayos:line")]
    pub last_name: String,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(
        max_length = 254,
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]+@[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.][^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]*\.[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "name@hotel.example"
    )]
    pub email: Option<String>,
    /// As given (E.164-ish, e.g. `+44 20 7946 0958`); searched by its digits.
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*(\+[ ()./-]*([0-9][ ()./-]*){6,15}|[()./-][ ()./-]*([0-9][ ()./-]*){6,15}|[1-9][ ()./-]*([0-9][ ()./-]*){5,14}|0[ ()./-]+([0-9][ ()./-]*){5,14}|0[1-9][ ()./-]*([0-9][ ()./-]*){4,13}|00[ ()./-]*([0-9][ ()./-]*){6,15})?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "+44 20 7946 0958"
    )]
    pub phone: Option<String>,
    #[serde(default)]
    pub address: Option<AddressInput>,
    /// BCP 47 language tag, e.g. `de` or `en-GB`.
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3})?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "de-CH"
    )]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 200, format = "stayos:free-text")]
    pub company: Option<String>,
    /// VIP level: 0 (none) to 9.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9)]
    pub vip: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 4000, format = "stayos:free-text")]
    pub notes: Option<String>,
    /// `YYYY-MM-DD`, not in the future.
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    pub birth_date: Option<String>,
    /// ISO 3166-1 alpha-2.
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(format = "stayos:country-or-empty", example = "DE")]
    pub nationality: Option<String>,
    #[serde(default)]
    pub consent: Option<ConsentInput>,
}

/// A partial update: only the fields given change (`""` clears an optional text field).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GuestPatch {
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, format = "stayos:line")]
    pub first_name: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, format = "stayos:line")]
    pub last_name: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(
        max_length = 254,
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]+@[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.][^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]*\.[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@.])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "name@hotel.example"
    )]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*(\+[ ()./-]*([0-9][ ()./-]*){6,15}|[()./-][ ()./-]*([0-9][ ()./-]*){6,15}|[1-9][ ()./-]*([0-9][ ()./-]*){5,14}|0[ ()./-]+([0-9][ ()./-]*){5,14}|0[1-9][ ()./-]*([0-9][ ()./-]*){4,13}|00[ ()./-]*([0-9][ ()./-]*){6,15})?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "+44 20 7946 0958"
    )]
    pub phone: Option<String>,
    #[serde(default)]
    pub address: Option<AddressInput>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3})?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "de-CH"
    )]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 200, format = "stayos:free-text")]
    pub company: Option<String>,
    /// VIP level: 0 (none) to 9.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 9)]
    pub vip: Option<i64>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(max_length = 4000, format = "stayos:free-text")]
    pub notes: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    pub birth_date: Option<String>,
    #[serde(default, deserialize_with = "crate::http::wire::clearable")]
    #[schema(format = "stayos:country-or-empty", example = "DE")]
    pub nationality: Option<String>,
    #[serde(default)]
    pub consent: Option<ConsentInput>,
}

/// The stored personal fields of a profile, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub address_line1: String,
    pub address_line2: String,
    pub city: String,
    pub postal_code: String,
    pub country: String,
    pub language: String,
    pub company: String,
    pub vip: i64,
    pub notes: String,
    pub birth_date: String,
    pub nationality: String,
    pub consent_email: bool,
    pub consent_sms: bool,
    pub consent_phone: bool,
    pub consent_post: bool,
}

/// A whole stored profile.
#[derive(Debug, Clone)]
pub struct GuestRow {
    pub id: String,
    pub property_id: String,
    pub fields: Fields,
    pub search_name: String,
    pub email_norm: String,
    pub phone_digits: String,
    pub pref_room: String,
    pub pref_pillow: String,
    pub pref_dietary: String,
    pub pref_tags: Vec<String>,
    pub merged_into: String,
    pub erased_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

// ---- validation ----------------------------------------------------------------------------

fn bad(prefix: &str, field: &str, why: &str) -> ApiError {
    ApiError::invalid_field(&format!("{prefix}{field}"), why)
}

/// Trimmed text of at most `max` characters as sent (surrounding spaces count, as the
/// document's `maxLength` counts them), without control characters.
fn text(prefix: &str, field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let sent = value.chars().count();
    let value = value.trim();
    if sent > max {
        return Err(bad(prefix, field, &format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(bad(prefix, field, "must not contain control characters"));
    }
    Ok(value.to_string())
}

fn name(prefix: &str, field: &str, value: &str) -> Result<String, ApiError> {
    let value = text(prefix, field, value, 100)?;
    if value.is_empty() || value.contains('\n') {
        return Err(bad(prefix, field, "must not be empty"));
    }
    Ok(value)
}

fn email(prefix: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    crate::auth::model::Email::parse(value).map_err(|why| bad(prefix, "email", &why))?;
    if !value.split_once('@').is_some_and(|(_, d)| d.contains('.')) {
        return Err(bad(prefix, "email", "must be an e-mail address like name@hotel.example"));
    }
    Ok(value.to_string())
}

fn phone(prefix: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let allowed = value.char_indices().all(|(i, c)| {
        c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.' | '/') || (c == '+' && i == 0)
    });
    let digits = normalize::phone_digits(value).len();
    if !allowed || !(6..=15).contains(&digits) {
        return Err(bad(
            prefix,
            "phone",
            "must be a phone number like +44 20 7946 0958 (6 to 15 digits, optional leading +)",
        ));
    }
    Ok(value.to_string())
}

fn country(prefix: &str, field: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    if value.len() != 2 || !value.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(bad(prefix, field, "must be an ISO 3166-1 alpha-2 country code like DE"));
    }
    Ok(value.to_ascii_uppercase())
}

fn language(prefix: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let mut parts = value.split(['-', '_']);
    let primary = parts.next().unwrap_or("");
    let primary_ok =
        (2..=3).contains(&primary.len()) && primary.chars().all(|c| c.is_ascii_alphabetic());
    let rest: Vec<&str> = parts.collect();
    let rest_ok = rest.len() <= 3
        && rest
            .iter()
            .all(|p| (2..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if !primary_ok || !rest_ok {
        return Err(bad(prefix, "language", "must be a language tag like en or de-CH"));
    }
    let mut out = primary.to_ascii_lowercase();
    for p in rest {
        out.push('-');
        if p.len() == 2 { out.push_str(&p.to_ascii_uppercase()) } else { out.push_str(p) }
    }
    Ok(out)
}

fn postal_code(prefix: &str, value: &str) -> Result<String, ApiError> {
    let value = text(prefix, "address.postal_code", value, 20)?;
    if !value.chars().all(|c| c.is_alphanumeric() || c == ' ' || c == '-') {
        return Err(bad(
            prefix,
            "address.postal_code",
            "may only hold letters, digits, spaces and -",
        ));
    }
    Ok(value)
}

fn vip(prefix: &str, level: i64) -> Result<i64, ApiError> {
    if (0..=9).contains(&level) {
        Ok(level)
    } else {
        Err(bad(prefix, "vip", "must be a level from 0 (none) to 9"))
    }
}

fn birth_date(prefix: &str, value: &str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(String::new());
    }
    let field = format!("{prefix}birth_date");
    let date = crate::dates::parse(&field, value)?;
    if date > crate::dates::today_in("UTC").tomorrow().unwrap_or(date) {
        return Err(ApiError::invalid_field(&field, "must not be in the future"));
    }
    if date.year() < 1900 {
        return Err(ApiError::invalid_field(&field, "must be after 1900-01-01"));
    }
    Ok(date.to_string())
}

fn apply_address(prefix: &str, f: &mut Fields, a: &AddressInput) -> Result<(), ApiError> {
    if let Some(v) = &a.line1 {
        f.address_line1 = text(prefix, "address.line1", v, 200)?;
    }
    if let Some(v) = &a.line2 {
        f.address_line2 = text(prefix, "address.line2", v, 200)?;
    }
    if let Some(v) = &a.city {
        f.city = text(prefix, "address.city", v, 100)?;
    }
    if let Some(v) = &a.postal_code {
        f.postal_code = postal_code(prefix, v)?;
    }
    if let Some(v) = &a.country {
        f.country = country(prefix, "address.country", v)?;
    }
    Ok(())
}

fn apply_consent(f: &mut Fields, c: &ConsentInput) {
    f.consent_email = c.email.unwrap_or(f.consent_email);
    f.consent_sms = c.sms.unwrap_or(f.consent_sms);
    f.consent_phone = c.phone.unwrap_or(f.consent_phone);
    f.consent_post = c.post.unwrap_or(f.consent_post);
}

/// Applies a patch to `f`, validating every given field; errors name `prefix` + the field.
pub fn apply_patch(prefix: &str, f: &mut Fields, p: &GuestPatch) -> Result<(), ApiError> {
    if let Some(v) = &p.first_name {
        f.first_name = name(prefix, "first_name", v)?;
    }
    if let Some(v) = &p.last_name {
        f.last_name = name(prefix, "last_name", v)?;
    }
    if let Some(v) = &p.email {
        f.email = email(prefix, v)?;
    }
    if let Some(v) = &p.phone {
        f.phone = phone(prefix, v)?;
    }
    if let Some(a) = &p.address {
        apply_address(prefix, f, a)?;
    }
    if let Some(v) = &p.language {
        f.language = language(prefix, v)?;
    }
    if let Some(v) = &p.company {
        f.company = text(prefix, "company", v, 200)?;
    }
    if let Some(v) = p.vip {
        f.vip = vip(prefix, v)?;
    }
    if let Some(v) = &p.notes {
        f.notes = text(prefix, "notes", v, 4000)?;
    }
    if let Some(v) = &p.birth_date {
        f.birth_date = birth_date(prefix, v)?;
    }
    if let Some(v) = &p.nationality {
        f.nationality = country(prefix, "nationality", v)?;
    }
    if let Some(c) = &p.consent {
        apply_consent(f, c);
    }
    Ok(())
}

/// Validates a whole input into stored fields.
pub fn validate(input: &GuestInput, prefix: &str) -> Result<Fields, ApiError> {
    let patch = GuestPatch {
        first_name: Some(input.first_name.clone()),
        last_name: Some(input.last_name.clone()),
        email: input.email.clone(),
        phone: input.phone.clone(),
        address: input.address.clone(),
        language: input.language.clone(),
        company: input.company.clone(),
        vip: input.vip,
        notes: input.notes.clone(),
        birth_date: input.birth_date.clone(),
        nationality: input.nationality.clone(),
        consent: input.consent.clone(),
    };
    let mut fields = Fields::default();
    apply_patch(prefix, &mut fields, &patch)?;
    Ok(fields)
}

// ---- storage ---------------------------------------------------------------------------------

const COLUMNS: &str = "id, property_id, first_name, last_name, email, phone, address_line1,
    address_line2, city, postal_code, country, language, company, vip, notes, birth_date,
    nationality, consent_email, consent_sms, consent_phone, consent_post, search_name,
    email_norm, phone_digits, pref_room, pref_pillow, pref_dietary, pref_tags, merged_into,
    erased_at, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<GuestRow> {
    let tags: String = r.get(27)?;
    Ok(GuestRow {
        id: r.get(0)?,
        property_id: r.get(1)?,
        fields: Fields {
            first_name: r.get(2)?,
            last_name: r.get(3)?,
            email: r.get(4)?,
            phone: r.get(5)?,
            address_line1: r.get(6)?,
            address_line2: r.get(7)?,
            city: r.get(8)?,
            postal_code: r.get(9)?,
            country: r.get(10)?,
            language: r.get(11)?,
            company: r.get(12)?,
            vip: r.get(13)?,
            notes: r.get(14)?,
            birth_date: r.get(15)?,
            nationality: r.get(16)?,
            consent_email: r.get::<_, i64>(17)? != 0,
            consent_sms: r.get::<_, i64>(18)? != 0,
            consent_phone: r.get::<_, i64>(19)? != 0,
            consent_post: r.get::<_, i64>(20)? != 0,
        },
        search_name: r.get(21)?,
        email_norm: r.get(22)?,
        phone_digits: r.get(23)?,
        pref_room: r.get(24)?,
        pref_pillow: r.get(25)?,
        pref_dietary: r.get(26)?,
        pref_tags: serde_json::from_str(&tags).unwrap_or_default(),
        merged_into: r.get(28)?,
        erased_at: r.get(29)?,
        created_at: r.get(30)?,
        updated_at: r.get(31)?,
    })
}

/// A profile by id, whatever its state.
pub fn find(conn: &Connection, id: &str) -> rusqlite::Result<Option<GuestRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM guests WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// Inserts a new profile; returns its id.
pub fn insert(
    tx: &Connection,
    property_id: &str,
    f: &Fields,
    now: i64,
) -> rusqlite::Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    tx.prepare_cached("INSERT INTO guests (id, property_id, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![id, property_id, now])?;
    write_fields(tx, &id, f, now)?;
    Ok(id)
}

/// Overwrites the personal fields of `id` and its normalised search columns.
pub fn write_fields(tx: &Connection, id: &str, f: &Fields, now: i64) -> rusqlite::Result<()> {
    let (search_name, search_first) = normalize::search_names(&f.first_name, &f.last_name);
    tx.prepare_cached(
        "UPDATE guests SET first_name = ?2, last_name = ?3, search_name = ?4,
            search_name_first = ?5, email = ?6, email_norm = ?7, phone = ?8, phone_digits = ?9,
            address_line1 = ?10, address_line2 = ?11, city = ?12, postal_code = ?13,
            country = ?14, language = ?15, company = ?16, vip = ?17, notes = ?18,
            birth_date = ?19, nationality = ?20, consent_email = ?21, consent_sms = ?22,
            consent_phone = ?23, consent_post = ?24, updated_at = ?25
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        f.first_name,
        f.last_name,
        search_name,
        search_first,
        f.email,
        f.email.trim().to_lowercase(),
        f.phone,
        normalize::phone_digits(&f.phone),
        f.address_line1,
        f.address_line2,
        f.city,
        f.postal_code,
        f.country,
        f.language,
        f.company,
        f.vip,
        f.notes,
        f.birth_date,
        f.nationality,
        f.consent_email,
        f.consent_sms,
        f.consent_phone,
        f.consent_post,
        now
    ])?;
    Ok(())
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
    if let Some(given) = &input.property_id
        && given != property_id
    {
        return Err(bad(field_prefix, "property_id", "must be the property of the booking"));
    }
    let fields = validate(input, field_prefix)?;
    Ok(insert(tx, property_id, &fields, now)?)
}

// ---- views -----------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AddressView {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    pub postal_code: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentView {
    pub email: bool,
    pub sms: bool,
    pub phone: bool,
    pub post: bool,
}

/// Preferences of a guest. PUT replaces them all: a field left out or `null` has no value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preferences {
    #[serde(default)]
    #[schema(max_length = 200, format = "stayos:free-text")]
    pub room: Option<String>,
    #[serde(default)]
    #[schema(max_length = 200, format = "stayos:free-text")]
    pub pillow: Option<String>,
    #[serde(default)]
    #[schema(max_length = 200, format = "stayos:free-text")]
    pub dietary: Option<String>,
    /// At most 20 short free tags, each 1 to 40 characters.
    #[serde(default)]
    #[schema(max_items = 20, min_length = 1, max_length = 40, format = "stayos:line")]
    pub tags: Vec<String>,
}

/// A guest profile.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GuestView {
    pub id: String,
    pub property_id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: AddressView,
    pub language: Option<String>,
    pub company: Option<String>,
    /// 0 = not a VIP, else the VIP level.
    pub vip: i64,
    pub notes: Option<String>,
    pub birth_date: Option<String>,
    pub nationality: Option<String>,
    pub consent: ConsentView,
    pub preferences: Preferences,
    /// The surviving profile when this one was merged away.
    pub merged_into: Option<String>,
    pub erased: bool,
    pub erased_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl GuestRow {
    pub fn preferences(&self) -> Preferences {
        Preferences {
            room: crate::http::wire::text(&self.pref_room),
            pillow: crate::http::wire::text(&self.pref_pillow),
            dietary: crate::http::wire::text(&self.pref_dietary),
            tags: self.pref_tags.clone(),
        }
    }

    pub fn view(&self) -> GuestView {
        let f = &self.fields;
        GuestView {
            id: self.id.clone(),
            property_id: self.property_id.clone(),
            first_name: f.first_name.clone(),
            last_name: f.last_name.clone(),
            email: crate::http::wire::text(&f.email),
            phone: crate::http::wire::text(&f.phone),
            address: AddressView {
                line1: crate::http::wire::text(&f.address_line1),
                line2: crate::http::wire::text(&f.address_line2),
                city: crate::http::wire::text(&f.city),
                postal_code: crate::http::wire::text(&f.postal_code),
                country: crate::http::wire::text(&f.country),
            },
            language: crate::http::wire::text(&f.language),
            company: crate::http::wire::text(&f.company),
            vip: f.vip,
            notes: crate::http::wire::text(&f.notes),
            birth_date: crate::http::wire::text(&f.birth_date),
            nationality: crate::http::wire::text(&f.nationality),
            consent: ConsentView {
                email: f.consent_email,
                sms: f.consent_sms,
                phone: f.consent_phone,
                post: f.consent_post,
            },
            preferences: self.preferences(),
            merged_into: (!self.merged_into.is_empty()).then(|| self.merged_into.clone()),
            erased: self.erased_at > 0,
            erased_at: (self.erased_at > 0).then(|| rfc3339(self.erased_at)),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }

    pub fn is_live(&self) -> bool {
        self.merged_into.is_empty() && self.erased_at == 0
    }
}

// ---- preferences -----------------------------------------------------------------------------

/// Validates preferences (errors name the field).
pub fn clean_preferences(p: &Preferences) -> Result<Preferences, ApiError> {
    let field = |name, value: &Option<String>| -> Result<Option<String>, ApiError> {
        Ok(crate::http::wire::text(&text("", name, value.as_deref().unwrap_or(""), 200)?))
    };
    let (room, pillow, dietary) =
        (field("room", &p.room)?, field("pillow", &p.pillow)?, field("dietary", &p.dietary)?);
    if p.tags.len() > 20 {
        return Err(ApiError::invalid_field("tags", "at most 20 tags"));
    }
    let mut tags: Vec<String> = Vec::new();
    for (i, tag) in p.tags.iter().enumerate() {
        let sent = tag.chars().count();
        let tag = tag.trim();
        if tag.is_empty() || sent > 40 || tag.chars().any(char::is_control) {
            return Err(ApiError::invalid_field(
                &format!("tags[{i}]"),
                "a tag is 1 to 40 characters",
            ));
        }
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_string());
        }
    }
    Ok(Preferences { room, pillow, dietary, tags })
}

pub fn write_preferences(
    tx: &Connection,
    id: &str,
    p: &Preferences,
    now: i64,
) -> rusqlite::Result<()> {
    let tags = serde_json::to_string(&p.tags).unwrap_or_else(|_| "[]".into());
    let stored = |v: &Option<String>| v.clone().unwrap_or_default();
    tx.prepare_cached(
        "UPDATE guests SET pref_room = ?2, pref_pillow = ?3, pref_dietary = ?4, pref_tags = ?5,
            updated_at = ?6 WHERE id = ?1",
    )?
    .execute(params![
        id,
        stored(&p.room),
        stored(&p.pillow),
        stored(&p.dietary),
        tags,
        now
    ])?;
    Ok(())
}

// ---- duplicates ------------------------------------------------------------------------------

/// A profile that looks like the same person, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DuplicateView {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub birth_date: Option<String>,
    /// `email`, `phone`, `name_and_birth_date`.
    pub reasons: Vec<String>,
}

/// Live profiles of the same property with the same e-mail, phone digits, or name and
/// birth date as `g` (never `g` itself).
pub fn duplicates(conn: &Connection, g: &GuestRow) -> rusqlite::Result<Vec<DuplicateView>> {
    let mut found: Vec<DuplicateView> = Vec::new();
    let mut add = |row: GuestRow, reason: &str| {
        if let Some(d) = found.iter_mut().find(|d| d.id == row.id) {
            d.reasons.push(reason.to_string());
        } else {
            found.push(DuplicateView {
                id: row.id,
                first_name: row.fields.first_name,
                last_name: row.fields.last_name,
                email: crate::http::wire::text(&row.fields.email),
                phone: crate::http::wire::text(&row.fields.phone),
                birth_date: crate::http::wire::text(&row.fields.birth_date),
                reasons: vec![reason.to_string()],
            });
        }
    };
    let queries: [(&str, &str, Option<&str>); 3] = [
        ("email", "email_norm = ?2", Some(&g.email_norm)),
        ("phone", "phone_digits = ?2", Some(&g.phone_digits)),
        ("name_and_birth_date", "search_name = ?2 AND birth_date = ?4", Some(&g.search_name)),
    ];
    for (reason, cond, key) in queries {
        let key = key.unwrap_or("");
        if key.is_empty() || (reason == "name_and_birth_date" && g.fields.birth_date.is_empty()) {
            continue;
        }
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM guests WHERE {cond} AND property_id = ?1 AND id <> ?3
               AND merged_into = '' AND erased_at = 0 AND ?4 = ?4 LIMIT 20"
        ))?;
        let rows =
            stmt.query_map(params![g.property_id, key, g.id, g.fields.birth_date], from_row)?;
        for row in rows {
            add(row?, reason);
        }
    }
    Ok(found)
}

// ---- history ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StayView {
    pub reservation_id: String,
    pub property_id: String,
    /// Absent (null) for a stay at a property you do not belong to.
    pub confirmation_code: Option<String>,
    pub arrival: String,
    pub departure: String,
    pub nights: i64,
    pub status: String,
    /// Absent (null) for a stay at a property you do not belong to.
    pub total_minor: Option<i64>,
    pub currency: String,
    pub room_id: Option<String>,
    /// The room's number; null when none is assigned.
    pub room: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct HistoryTotals {
    /// Checked-out stays.
    pub stays: i64,
    /// Nights of the checked-out stays.
    pub nights: i64,
    /// Sum of `total_minor` of the checked-out stays whose amounts are shown.
    pub spend_minor: i64,
    /// Tentative or confirmed reservations.
    pub upcoming: i64,
    pub in_house: i64,
    pub cancellations: i64,
    pub no_shows: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HistoryView {
    pub guest_id: String,
    pub stays: Vec<StayView>,
    pub totals: HistoryTotals,
}

/// Every reservation of a guest, newest arrival first, with totals. A stay at a property for
/// which `full_stay(property_id)` is false is shown without its amount and confirmation
/// code: staff see the money and codes of their own properties only.
pub fn history(
    conn: &Connection,
    guest_id: &str,
    full_stay: &dyn Fn(&str) -> bool,
) -> rusqlite::Result<HistoryView> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.property_id, r.confirmation_code, r.arrival, r.departure, r.status,
                r.total_minor, r.currency, r.room_id, COALESCE(rm.number, ''),
                CAST(COALESCE(julianday(r.departure) - julianday(r.arrival), 0) AS INTEGER)
         FROM reservations r LEFT JOIN rooms rm ON rm.id = r.room_id AND r.room_id <> ''
         WHERE r.guest_id = ?1 ORDER BY r.arrival DESC, r.id",
    )?;
    let stays = stmt
        .query_map([guest_id], |r| {
            let property_id: String = r.get(1)?;
            let full = full_stay(&property_id);
            Ok(StayView {
                reservation_id: r.get(0)?,
                confirmation_code: if full { Some(r.get(2)?) } else { None },
                property_id,
                arrival: r.get(3)?,
                departure: r.get(4)?,
                status: r.get(5)?,
                total_minor: if full { Some(r.get(6)?) } else { None },
                currency: r.get(7)?,
                room_id: crate::http::wire::column(r, 8)?,
                room: crate::http::wire::column(r, 9)?,
                nights: r.get(10)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut totals = HistoryTotals::default();
    for s in &stays {
        match s.status.as_str() {
            "checked_out" => {
                totals.stays += 1;
                totals.nights += s.nights;
                totals.spend_minor += s.total_minor.unwrap_or(0);
            }
            "tentative" | "confirmed" => totals.upcoming += 1,
            "checked_in" => totals.in_house += 1,
            "cancelled" => totals.cancellations += 1,
            "no_show" => totals.no_shows += 1,
            _ => {}
        }
    }
    Ok(HistoryView { guest_id: guest_id.to_string(), stays, totals })
}
