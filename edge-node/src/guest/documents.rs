//! Identity documents seen at check-in. The number is kept in full only on the node that saw
//! the document, in the local-only `guest_document_numbers` (the authorities' guest
//! registration needs it); the replicated `guest_documents` row — which reaches the hub and
//! every property of the chain — carries it masked: a fixed run of dots and at most its last
//! four characters. Every response, the export included, shows the masked form.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::ApiError;
use crate::time::rfc3339;

pub const KINDS: &[&str] = &["passport", "id_card", "driving_licence", "residence_permit"];

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentInput {
    #[schema(value_type = crate::vocabulary::DocumentKind)]
    pub kind: String,
    /// 4 to 30 letters, digits, spaces or `-`.
    #[schema(
        min_length = 4,
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9-][A-Za-z0-9 -]{2,28}[A-Za-z0-9-][\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "X1234567"
    )]
    pub number: String,
    /// ISO 3166-1 alpha-2.
    #[schema(
        pattern = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z]{2}[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
        example = "DE"
    )]
    pub issuing_country: String,
    /// `YYYY-MM-DD`; an expired document is refused.
    #[schema(format = Date)]
    pub expires_on: String,
    /// The stay it was shown for (a reservation of this guest).
    #[serde(default)]
    pub reservation_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: String,
    #[schema(value_type = crate::vocabulary::DocumentKind)]
    pub kind: String,
    /// Masked, e.g. `•••••1234`.
    pub number: String,
    pub issuing_country: Option<String>,
    pub expires_on: Option<String>,
    pub reservation_id: Option<String>,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// The first character of every masked number; validated numbers never contain it.
const MASK_DOT: char = '•';

/// The number with only its last characters visible (at most 4, at most half of it).
pub fn mask(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let visible = (chars.len() / 2).min(4);
    let tail: String = chars[chars.len() - visible..].iter().collect();
    format!("•••••{tail}")
}

/// How a stored number is shown: masked forms as they are, a clear one (written by a node
/// older than the local number table, not yet moved) masked.
fn shown(stored: &str) -> String {
    if stored.starts_with(MASK_DOT) { stored.to_string() } else { mask(stored) }
}

/// Moves the clear numbers of this node's own documents into `guest_document_numbers` and
/// leaves the masked form in `guest_documents` (a replicated change, so the hub's and the
/// other properties' copies lose the clear number too). A document is this node's when its
/// reservation is here or its guest was first seen at a property of this node; the others'
/// clear numbers are left for their own node to move, so none is lost. Idempotent; run at
/// every start (`db::prepare`). Returns how many it moved.
pub fn keep_numbers_home(tx: &Connection) -> rusqlite::Result<usize> {
    let clear: Vec<(String, String, i64)> = tx
        .prepare(
            "SELECT d.id, d.number, d.recorded_at FROM guest_documents d
             WHERE d.number <> '' AND substr(d.number, 1, 1) <> '•'
               AND (EXISTS (SELECT 1 FROM reservations r WHERE r.id = d.reservation_id)
                    OR EXISTS (SELECT 1 FROM guests g JOIN properties p ON p.id = g.property_id
                               WHERE g.id = d.guest_id))",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, number, recorded_at) in &clear {
        tx.execute(
            "INSERT INTO guest_document_numbers (document_id, number, recorded_at)
             VALUES (?1, ?2, ?3) ON CONFLICT (document_id) DO NOTHING",
            params![id, number, recorded_at],
        )?;
        tx.execute(
            "UPDATE guest_documents SET number = ?2 WHERE id = ?1",
            params![id, mask(number)],
        )?;
    }
    if !clear.is_empty() {
        tracing::info!(documents = clear.len(), "moved identity-document numbers to this node");
    }
    Ok(clear.len())
}

/// Forgets the full numbers of a guest's documents (erasure).
pub fn forget_numbers(tx: &Connection, guest_id: &str) -> rusqlite::Result<usize> {
    tx.prepare_cached(
        "DELETE FROM guest_document_numbers
         WHERE document_id IN (SELECT id FROM guest_documents WHERE guest_id = ?1)",
    )?
    .execute([guest_id])
}

/// A validated document: (kind, number, country, expires_on, reservation_id).
pub struct CleanDocument {
    pub kind: String,
    pub number: String,
    pub issuing_country: String,
    pub expires_on: String,
    pub reservation_id: String,
}

/// Validates a document against `today` (the property's business date).
pub fn validate(d: &DocumentInput, today: jiff::civil::Date) -> Result<CleanDocument, ApiError> {
    let kind = d.kind.trim();
    if !KINDS.contains(&kind) {
        return Err(ApiError::invalid_field(
            "kind",
            format!("must be one of {}", KINDS.join(", ")),
        ));
    }
    let number: String = d.number.trim().to_uppercase();
    if !(4..=30).contains(&number.chars().count())
        || !number.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ')
    {
        return Err(ApiError::invalid_field(
            "number",
            "must be 4 to 30 letters, digits, spaces or -",
        ));
    }
    let country = d.issuing_country.trim();
    if country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ApiError::invalid_field(
            "issuing_country",
            "must be an ISO 3166-1 alpha-2 country code like DE",
        ));
    }
    let expires = crate::dates::parse("expires_on", d.expires_on.trim())?;
    if expires < today {
        return Err(ApiError::invalid_field("expires_on", "the document has expired"));
    }
    Ok(CleanDocument {
        kind: kind.to_string(),
        number,
        issuing_country: country.to_ascii_uppercase(),
        expires_on: expires.to_string(),
        reservation_id: d.reservation_id.as_deref().unwrap_or("").trim().to_string(),
    })
}

pub fn insert(
    tx: &Connection,
    guest_id: &str,
    d: &CleanDocument,
    actor: &str,
    now: i64,
) -> rusqlite::Result<String> {
    let id = uuid::Uuid::now_v7().to_string();
    tx.prepare_cached(
        "INSERT INTO guest_documents (id, guest_id, reservation_id, kind, number,
            issuing_country, expires_on, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        id,
        guest_id,
        d.reservation_id,
        d.kind,
        mask(&d.number),
        d.issuing_country,
        d.expires_on,
        actor,
        now
    ])?;
    tx.prepare_cached(
        "INSERT INTO guest_document_numbers (document_id, number, recorded_at)
         VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, d.number, now])?;
    Ok(id)
}

/// A guest's documents, newest first, numbers masked.
pub fn list(conn: &Connection, guest_id: &str) -> rusqlite::Result<Vec<DocumentView>> {
    conn.prepare_cached(
        "SELECT id, kind, number, issuing_country, expires_on, reservation_id, recorded_by,
                recorded_at
         FROM guest_documents WHERE guest_id = ?1 ORDER BY recorded_at DESC, id DESC",
    )?
    .query_map([guest_id], |r| {
        Ok(DocumentView {
            id: r.get(0)?,
            kind: r.get(1)?,
            number: shown(&r.get::<_, String>(2)?),
            issuing_country: crate::http::wire::column(r, 3)?,
            expires_on: crate::http::wire::column(r, 4)?,
            reservation_id: crate::http::wire::column(r, 5)?,
            recorded_by: r.get(6)?,
            recorded_at: rfc3339(r.get(7)?),
        })
    })?
    .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks_all_but_the_last_characters() {
        assert_eq!(super::mask("C01X00T47"), "•••••0T47");
        assert_eq!(super::mask("123456"), "•••••456");
        assert_eq!(super::mask(""), "");
        assert_eq!(super::shown("•••••0T47"), "•••••0T47", "masked once only");
        assert_eq!(super::shown("C01X00T47"), "•••••0T47");
    }
}
