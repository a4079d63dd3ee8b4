//! Entity tags: every JSON representation the node serves has an `ETag`, and a write that
//! carries `If-Match` with a tag that is no longer current is refused with 412 and the current
//! representation — so two desks editing one guest learn of each other instead of silently
//! overwriting.
//!
//! The tag is a hash of the representation's JSON bytes, so serving it costs no query: the
//! middleware [`tag`] hashes the body a handler produced. A write handler checks `If-Match`
//! with [`IfMatch::check`] *inside its write transaction*, against the representation it reads
//! there (the same view the GET serializes), so the check and the write are atomic on the
//! single writer.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::IntoParams;

use super::error::ApiError;

/// Representations larger than this are served without a tag (none is near it today; the
/// bound keeps the middleware from buffering a large body it did not expect).
const MAX_TAGGED_BYTES: usize = 8 * 1024 * 1024;

/// The strong entity tag of a JSON representation: `"` + 16 hex digits of a SipHash of its
/// bytes + `-` + its length + `"`. Not a cryptographic hash on purpose: the tag only has to
/// change when the record does (two versions of one record colliding is a 2^-64 chance), and
/// every JSON response is hashed, so a fast hash matters more here than a strong one. SipHash
/// with fixed keys gives the same tag in every process of one build.
pub fn of_bytes(json: &[u8]) -> String {
    use std::hash::Hasher as _;
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(json);
    format!("\"{:016x}-{:x}\"", hasher.finish(), json.len())
}

/// The tag `value` has when it is served as JSON.
pub fn of<T: Serialize>(value: &T) -> Result<String, ApiError> {
    let bytes = serde_json::to_vec(value).map_err(ApiError::internal)?;
    Ok(of_bytes(&bytes))
}

/// Tags every successful JSON response to GET, PUT and PATCH, and answers a GET whose
/// `If-None-Match` names the current tag with 304 and no body.
pub async fn tag(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    if !matches!(method, Method::GET | Method::PUT | Method::PATCH) {
        return next.run(req).await;
    }
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let response = next.run(req).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::OK || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let known_small = axum::body::HttpBody::size_hint(&body)
        .upper()
        .is_some_and(|n| n <= MAX_TAGGED_BYTES as u64);
    if !known_small {
        return Response::from_parts(parts, body);
    }
    let bytes = match axum::body::to_bytes(body, MAX_TAGGED_BYTES).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return ApiError::internal(format!("failed to read a response: {err}")).into_response();
        }
    };
    let etag = of_bytes(&bytes);
    if method == Method::GET && if_none_match.as_ref().is_some_and(|v| matches_any(v, &etag)) {
        let mut not_modified = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(value) = HeaderValue::from_str(&etag) {
            not_modified.headers_mut().insert(header::ETAG, value);
        }
        return not_modified;
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        parts.headers.insert(header::ETAG, value);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Whether a list of entity tags (`If-Match` / `If-None-Match`) names `etag`, or is `*`.
/// Weak tags (`W/"…"`) are compared by their opaque part, as `If-None-Match` allows.
fn matches_any(header: &HeaderValue, etag: &str) -> bool {
    let Ok(text) = header.to_str() else { return false };
    text.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

/// The `If-Match` header of a write, if any. Without it the write goes ahead (last writer
/// wins, as before); with it the write happens only if the resource is still as the client
/// last saw it.
#[derive(Debug, Clone, Default)]
pub struct IfMatch(Option<HeaderValue>);

/// The `If-Match` header as the OpenAPI document describes it (for `params(...)`).
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatchHeader {
    /// The `ETag` the client last saw; if the resource changed since, the write is refused
    /// with 412 `precondition_failed` and the current representation in `details.current`.
    #[param(
        rename = "If-Match",
        nullable = false,
        pattern = r#"^(\*|(W/)?"[^"]*"(\s*,\s*(W/)?"[^"]*")*)$"#
    )]
    if_match: Option<String>,
}

impl IfMatch {
    /// Refuses with 412 unless the request had no `If-Match`, or it names the tag of the
    /// representation `current` reads now (read only when there is a tag to compare). Call it
    /// in the write transaction, with the view the GET of this resource serves.
    pub fn check<T: Serialize>(
        &self,
        current: impl FnOnce() -> Result<T, ApiError>,
    ) -> Result<(), ApiError> {
        let Some(expected) = &self.0 else { return Ok(()) };
        let bytes = serde_json::to_vec(&current()?).map_err(ApiError::internal)?;
        let etag = of_bytes(&bytes);
        if matches_any(expected, &etag) {
            return Ok(());
        }
        let current: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
        Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            "this record was changed by someone else since you loaded it; \
             review the current version and apply your change again",
        )
        .with_details(serde_json::json!({ "etag": etag, "current": current })))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if_match(&parts.headers).map(IfMatch)
    }
}

fn if_match(headers: &HeaderMap) -> Result<Option<HeaderValue>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else { return Ok(None) };
    let valid = value.to_str().is_ok_and(|t| {
        t.split(',')
            .map(str::trim)
            .all(|tag| tag == "*" || (tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')))
    });
    if !valid {
        return Err(ApiError::invalid_field(
            "If-Match",
            "expected `*` or entity tags in double quotes, as the ETag header gave them",
        ));
    }
    Ok(Some(value.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(v: &'static str) -> IfMatch {
        IfMatch(Some(HeaderValue::from_static(v)))
    }

    #[test]
    fn a_stale_tag_is_refused_with_the_current_representation_and_a_fresh_one_passes() {
        let current = serde_json::json!({ "id": "g1", "first_name": "Ada" });
        let tag = of(&current).expect("tag");
        let read = || Ok(current.clone());
        assert!(IfMatch::default().check(read).is_ok(), "no If-Match: no precondition");
        let fresh = IfMatch(Some(HeaderValue::from_str(&tag).expect("header")));
        assert!(fresh.check(read).is_ok());
        assert!(header("*").check(read).is_ok());
        let err = header("\"0123\"").check(read).expect_err("stale");
        assert_eq!(
            (err.status(), err.code()),
            (StatusCode::PRECONDITION_FAILED, "precondition_failed")
        );
    }

    #[test]
    fn a_malformed_if_match_is_a_422_naming_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_MATCH, HeaderValue::from_static("abc"));
        let err = if_match(&headers).expect_err("unquoted");
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(format!("{err}").contains("If-Match"), "{err}");
    }
}
