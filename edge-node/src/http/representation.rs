//! The body of a PUT: the representation the GET of the same resource served, or any part of
//! it. A client may send back what it read with its edits applied; the fields it cannot write
//! (`id`, `created_at`, a reservation's price …) are accepted when they still hold the
//! record's current value and refused by name when they differ — never silently ignored, so a
//! client that thinks it changed one learns that it did not.
//!
//! Which fields are writable comes from the input type's own OpenAPI schema (the same
//! declaration that documents it, so the two cannot drift); the rest of the body is compared
//! with the current record inside the write transaction, together with `If-Match`.

use axum::extract::{FromRequest, Request};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::PartialSchema;
use utoipa::openapi::{RefOr, Schema};

use super::error::ApiError;
use super::etag::IfMatch;
use super::extract::{from_object, parse_object, read_json_body};

/// A PUT body: `input` holds the writable fields; the others wait for [`Self::check`].
#[derive(Debug)]
pub struct Representation<T> {
    pub input: T,
    read_only: Map<String, Value>,
}

/// The names of `T`'s properties in its schema.
fn writable<T: PartialSchema>() -> Vec<String> {
    match T::schema() {
        RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

impl<T: DeserializeOwned + PartialSchema> Representation<T> {
    /// Splits a body into the writable fields (parsed as `T`, every error naming its field)
    /// and the others.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApiError>
    where
        T: utoipa::ToSchema,
    {
        let mut body = parse_object(bytes)?;
        super::shape::check::<T>(&Value::Object(body.clone()))?;
        let names = writable::<T>();
        let mut read_only = Map::new();
        for key in body.keys().filter(|k| !names.contains(k)).cloned().collect::<Vec<_>>() {
            if let Some(value) = body.remove(&key) {
                read_only.insert(key, value);
            }
        }
        Ok(Representation { input: from_object(body)?, read_only })
    }
}

impl<T> Representation<T> {
    /// The input, and the read-only fields still to [`check`](Self::check) — for a handler
    /// that reads the input before its write transaction.
    pub fn split(self) -> (T, Representation<()>) {
        (self.input, Representation { input: (), read_only: self.read_only })
    }

    /// Refuses the write unless `If-Match` (if any) names the current version and every
    /// read-only field sent holds its current value. `current` reads the record as its GET
    /// serves it, once, and only when there is something to compare; call this in the write
    /// transaction.
    pub fn check<V: Serialize>(
        &self,
        if_match: &IfMatch,
        current: impl FnOnce() -> Result<V, ApiError>,
    ) -> Result<(), ApiError> {
        if self.read_only.is_empty() {
            return if_match.check(current);
        }
        let current = current()?;
        if_match.check(|| Ok(&current))?;
        let current = serde_json::to_value(&current).map_err(ApiError::internal)?;
        for (field, sent) in &self.read_only {
            match current.get(field) {
                Some(now) if same(now, sent) => {}
                Some(now) => {
                    return Err(ApiError::invalid_field(
                        field,
                        format!("is read-only: it is {now} and cannot be changed here"),
                    ));
                }
                None => return Err(ApiError::invalid_field(field, "unknown field")),
            }
        }
        Ok(())
    }
}

/// Equal as JSON values, with numbers compared by value (`48` and `48.0` alike).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl<T, S> FromRequest<S> for Representation<T>
where
    T: DeserializeOwned + PartialSchema + utoipa::ToSchema,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Representation::parse(&read_json_body(req, state).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    struct NameInput {
        name: Option<String>,
    }

    fn current() -> Result<Value, ApiError> {
        Ok(
            serde_json::json!({ "id": "r1", "name": "Ada", "created_at": "2026-12-07T10:00:00.000Z" }),
        )
    }

    #[test]
    fn what_get_served_is_accepted_back_with_its_edits() {
        let body = br#"{"id":"r1","name":"Grace","created_at":"2026-12-07T10:00:00.000Z"}"#;
        let put = Representation::<NameInput>::parse(body).expect("parsed");
        assert_eq!(put.input.name.as_deref(), Some("Grace"));
        put.check(&IfMatch::default(), current).expect("unchanged read-only fields pass");
    }

    #[test]
    fn a_changed_read_only_field_is_refused_by_name_and_an_unknown_one_too() {
        let put =
            Representation::<NameInput>::parse(br#"{"id":"r2","name":"Grace"}"#).expect("parsed");
        let err = put.check(&IfMatch::default(), current).expect_err("id changed");
        assert!(format!("{err}").starts_with("422 validation_failed: id: is read-only"), "{err}");
        let put = Representation::<NameInput>::parse(br#"{"colour":"red"}"#).expect("parsed");
        let err = put.check(&IfMatch::default(), current).expect_err("unknown");
        assert!(format!("{err}").starts_with("422 validation_failed: colour:"), "{err}");
        let err = Representation::<NameInput>::parse(br#"{"name":7}"#).expect_err("mistyped");
        assert!(format!("{err}").starts_with("422 validation_failed: name:"), "{err}");
    }
}
