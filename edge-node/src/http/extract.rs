//! Request extractors whose rejections are `ApiError`s that name the offending field:
//! `ApiJson` for bodies, `ApiQuery` for query strings, `ApiPath` for path parameters.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON request body. Wrong content type → 415; malformed JSON → 400 `malformed_json`;
/// a missing, unknown or mistyped field → 422 `validation_failed` with `details.field`.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned + utoipa::ToSchema,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_json_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The bytes of a JSON request body: 415 unless it is declared JSON, 413 past the limit.
pub async fn read_json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    if !has_json_content_type(&req) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| match rejection {
        BytesRejection::FailedToBufferBody(_) if is_length_limit(&rejection) => {
            ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE)
        }
        other => ApiError::bad_request("unreadable_body", other.body_text()),
    })
}

fn is_length_limit(rejection: &BytesRejection) -> bool {
    rejection.status() == StatusCode::PAYLOAD_TOO_LARGE
}

fn has_json_content_type(req: &Request) -> bool {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else { return false };
    let Ok(value) = value.to_str() else { return false };
    let mime = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Parses a JSON request body into `T`, mapping every failure to an `ApiError` that says
/// where: only a document that is not JSON at all is a 400 `malformed_json`; a body that is
/// not an object, and any field of the wrong type or value, is a 422 naming the field.
///
/// The body is read into a `serde_json::Value` first, so a type error deep inside (an enum
/// given `{}`) is reported as a data error at its path rather than as a syntax error, and a
/// number JSON Schema calls an integer (`643.0`) is one.
pub fn parse_json<T: DeserializeOwned + utoipa::ToSchema>(bytes: &[u8]) -> Result<T, ApiError> {
    let body = serde_json::Value::Object(parse_object(bytes)?);
    super::shape::check::<T>(&body)?;
    match body {
        serde_json::Value::Object(map) => from_object(map),
        _ => unreachable!("parse_object gives an object"),
    }
}

/// A request body as a JSON object: 400 `malformed_json` unless it is JSON, 422 naming
/// `body` unless it is an object; integral numbers (`643.0`) made integers.
pub fn parse_object(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let mut value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(err) => return Err(syntax_error(&err)),
    };
    integral_floats_to_integers(&mut value);
    match value {
        serde_json::Value::Object(map) => Ok(map),
        other => Err(ApiError::invalid_field(
            "body",
            format!("the body must be a JSON object, not {}", json_kind(&other)),
        )),
    }
}

/// `T` from a body's object, every failure a 422 naming the field in plain words.
pub fn from_object<T: DeserializeOwned>(
    map: serde_json::Map<String, serde_json::Value>,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|err| {
        let path = err.path().to_string();
        let message = plain_message(&err.inner().to_string());
        ApiError::invalid_field(&field_name(&path, &message), message)
    })
}

fn syntax_error(err: &serde_json::Error) -> ApiError {
    let text = err.to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text.clone(),
    };
    if err.is_eof() && err.line() <= 1 && err.column() == 0 {
        return ApiError::bad_request(
            "malformed_json",
            "the request body is empty; send a JSON object",
        );
    }
    ApiError::bad_request(
        "malformed_json",
        format!("malformed JSON at line {} column {}: {message}", err.line(), err.column()),
    )
    .with_details(serde_json::json!({ "line": err.line(), "column": err.column() }))
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// `643.0` → `643`: JSON Schema's `integer` is any number without a fractional part.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                // In range, so the conversion is exact.
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

/// serde's message without Rust's vocabulary: `expected struct GuestInput` → `expected an
/// object`, `expected u32` → `expected a non-negative integer`, `expected enum Role` →
/// `expected one of the documented values`.
fn plain_message(message: &str) -> String {
    let mut out = Vec::new();
    let mut words = message.split(' ').peekable();
    while let Some(word) = words.next() {
        let (core, tail) = match word.find(|c: char| !c.is_ascii_alphanumeric()) {
            Some(i) => word.split_at(i),
            None => (word, ""),
        };
        let plain = match core {
            "struct" | "map" if words.peek().is_some() && core == "struct" => {
                let next = words.next().unwrap_or("");
                let tail = next.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
                out.push(format!("an object{tail}"));
                continue;
            }
            "enum" => {
                let next = words.next().unwrap_or("");
                let tail = next.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
                out.push(format!("one of the documented values{tail}"));
                continue;
            }
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a non-negative integer",
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
            "f32" | "f64" => "a number",
            "unit" => "null",
            _ => {
                out.push(word.to_string());
                continue;
            }
        };
        out.push(format!("{plain}{tail}"));
    }
    out.join(" ")
}

/// The field a data error is about. serde reports a missing or unknown field at its parent's
/// path with the name in backticks in the message; anything else is at its own path.
fn field_name(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match (path, named) {
        (".", Some(name)) => name.to_string(),
        // serde_path_to_error already includes an unknown field in the path.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_string()
        }
        (parent, Some(name)) => format!("{parent}.{name}"),
        (".", None) => "body".to_string(),
        (path, None) => path.to_string(),
    }
}

/// A query string. An unknown, missing or mistyped parameter → 422 naming it.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(query));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|err| {
            let path = err.path().to_string();
            let message = plain_message(&err.inner().to_string());
            ApiError::invalid_field(&field_name(&path, &message), message)
        })
    }
}

fn form_urlencoded_parse(query: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(query.as_bytes())
}

/// Path parameters; a parameter that does not parse → 400 `invalid_path`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| ApiPath(value))
            .map_err(|rejection: PathRejection| {
                ApiError::bad_request("invalid_path", rejection.body_text())
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        attempts: u32,
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = parse_json::<Login>(br#"{"attempts":1}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(format!("{err}").contains("email"), "{err}");
    }

    #[test]
    fn a_mistyped_field_is_named_by_its_path() {
        let err = parse_json::<Login>(br#"{"email":"a@b.c","attempts":"x"}"#).unwrap_err();
        assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(format!("{err}").starts_with("422 validation_failed: attempts:"), "{err}");
    }

    #[test]
    fn malformed_json_and_trailing_garbage_are_bad_requests() {
        for body in [&b"{\"email\":"[..], b"{} x", b"", b"not json"] {
            let err = parse_json::<serde_json::Value>(body).unwrap_err();
            assert_eq!(
                err.status(),
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(err.code(), "malformed_json");
        }
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Register {
        role: Kind,
        nights: u32,
    }

    #[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code)]
    enum Kind {
        Clerk,
        Owner,
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_and_never_mapped_by_position() {
        for body in [&br#"["a@b.c", 1]"#[..], b"null", b"7", b"\"x\""] {
            let err = parse_json::<Login>(body).unwrap_err();
            assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY, "{err}");
            assert!(format!("{err}").starts_with("422 validation_failed: body:"), "{err}");
        }
    }

    #[test]
    fn a_wrong_type_for_an_enum_is_a_422_naming_the_field_in_plain_words() {
        for role in ["{}", "[]", "7", "\"janitor\""] {
            let body = format!(r#"{{"role":{role},"nights":1}}"#);
            let err = parse_json::<Register>(body.as_bytes()).unwrap_err();
            let text = format!("{err}");
            assert!(text.starts_with("422 validation_failed: role:"), "{text}");
            assert!(!text.contains("enum Kind") && !text.contains("Kind"), "{text}");
        }
        let err = parse_json::<Register>(br#"{"role":"clerk","nights":-1}"#).unwrap_err();
        assert_eq!(
            format!("{err}"),
            "422 validation_failed: nights: invalid value: integer `-1`, expected a non-negative integer"
        );
        let err = parse_json::<Login>(br#"{"email":{"a":1},"attempts":1}"#).unwrap_err();
        assert!(!format!("{err}").contains("struct"), "{err}");
    }

    #[test]
    fn an_integral_number_is_an_integer() {
        let r = parse_json::<Register>(br#"{"role":"owner","nights":643.0}"#).expect("643.0");
        assert_eq!(r.nights, 643);
        let err = parse_json::<Register>(br#"{"role":"owner","nights":1.5}"#).unwrap_err();
        assert!(format!("{err}").starts_with("422 validation_failed: nights:"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_refused_by_name() {
        let err =
            parse_json::<Login>(br#"{"email":"a@b.c","attempts":1,"pasword":"x"}"#).unwrap_err();
        assert!(format!("{err}").starts_with("422 validation_failed: pasword:"), "{err}");
    }
}
