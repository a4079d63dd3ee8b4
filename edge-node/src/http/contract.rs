//! What the OpenAPI document promises beyond each handler's own annotation: the API's
//! version, and the error statuses the shared layers answer for every operation of a kind.
//!
//! A handler's `responses(...)` lists what the handler itself decides (404 for a missing
//! reservation, 409 for a refused action). The extractors and middleware answer more, the same
//! way for every route: `Authorized<P>` 401 and 403, `ApiJson` 400, 413, 415 and 422, path and
//! query extractors 422, the rate limiter 429, the timeout 408, a draining node 503, a failure
//! 500. `complete` adds those to every operation they apply to, so a generated client knows
//! every status it can receive, without 96 annotations repeating them.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, Ref, RefOr, ResponseBuilder, Schema};

/// The version of the HTTP API, a date like Stripe's: a client built against one version keeps
/// working with a node of any later version except where `API-CHANGELOG.md` lists a breaking
/// change since. Served as `info.version` and in the `StayOS-API-Version` header of every
/// response.
pub const API_VERSION: &str = "2026-12-07";

/// The response header that carries [`API_VERSION`].
pub const VERSION_HEADER: &str = "stayos-api-version";

/// Sets the version, adds the shared layers' statuses to every operation that can answer
/// them (an operation's own description of a status is kept), and lets each PUT body carry
/// the representation its GET serves (see [`representation_bodies`]).
pub fn complete(doc: &mut OpenApi) {
    doc.info.version = API_VERSION.to_string();
    named_patterns(doc);
    representation_bodies(doc);
    for (path, item) in doc.paths.paths.iter_mut() {
        // Every `/guests/{id}…` operation reads the profile first: a profile merged away or
        // erased answers 409 (`guest_merged` with `details.merged_into`, `guest_erased`).
        if path.starts_with("/guests/{id}") {
            for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete]
                .into_iter()
                .flatten()
            {
                op.responses.responses.entry("409".into()).or_insert_with(|| {
                    error_response(
                        "The profile was merged into another (`guest_merged`, \
                         `details.merged_into`) or erased (`guest_erased`)",
                    )
                });
            }
        }
        if let Some(op) = &mut item.get {
            complete_operation(op, true);
        }
        for op in
            [&mut item.put, &mut item.post, &mut item.delete, &mut item.patch].into_iter().flatten()
        {
            complete_operation(op, false);
        }
    }
}

/// A PUT takes back what the GET of the same path served (`http::representation`): its body
/// schema becomes the input type's properties plus the representation's other properties,
/// marked `readOnly` (accepted when unchanged, refused by name when changed).
fn representation_bodies(doc: &mut OpenApi) {
    let Some(components) = &doc.components else { return };
    let schemas = &components.schemas;
    let object = |name: &str| match schemas.get(name) {
        Some(RefOr::T(Schema::Object(o))) => Some(o.clone()),
        _ => None,
    };
    let mut merged = Vec::new();
    for (path, item) in &doc.paths.paths {
        let (Some(get), Some(put)) = (&item.get, &item.put) else { continue };
        let (Some(view), Some(input)) = (
            get.responses.responses.get("200").and_then(|r| match r {
                RefOr::T(r) => match r.content.get("application/json")? {
                    RefOr::T(c) => json_ref(c.schema.as_ref()?),
                    RefOr::Ref(_) => None,
                },
                RefOr::Ref(_) => None,
            }),
            put.request_body.as_ref().and_then(|b| match b {
                RefOr::T(b) => match b.content.get("application/json")? {
                    RefOr::T(c) => json_ref(c.schema.as_ref()?),
                    RefOr::Ref(_) => None,
                },
                RefOr::Ref(_) => None,
            }),
        ) else {
            continue;
        };
        let (Some(view), Some(mut body)) = (object(&view), object(&input)) else { continue };
        if view == body {
            continue;
        }
        for (name, property) in view.properties {
            if body.properties.contains_key(&name) {
                continue;
            }
            // A reference (an enum, a nested view) is inlined so that it can carry readOnly.
            let inlined = match &property {
                RefOr::Ref(_) => json_ref(&property).and_then(|name| object(&name)),
                RefOr::T(Schema::Object(o)) => Some(o.clone()),
                RefOr::T(_) => None,
            };
            let property = match inlined {
                Some(mut o) => {
                    o.read_only = Some(true);
                    RefOr::T(Schema::Object(o))
                }
                None => property,
            };
            body.properties.insert(name, property);
        }
        body.description = Some(format!(
            "The record as `GET {path}` serves it, or any part of it: fields left out keep \
             their value; read-only fields are accepted when they hold the current value and \
             refused by name otherwise."
        ));
        merged.push((path.clone(), body));
    }
    for (path, body) in merged {
        let Some(RefOr::T(request)) = doc
            .paths
            .paths
            .get_mut(&path)
            .and_then(|i| i.put.as_mut())
            .and_then(|p| p.request_body.as_mut())
        else {
            continue;
        };
        if let Some(RefOr::T(content)) = request.content.get_mut("application/json") {
            content.schema = Some(RefOr::T(Schema::Object(body)));
        }
    }
}

/// Puts each named text rule's pattern (`format = "stayos:<name>"`, see `http::patterns`)
/// in its place, in the components and in parameters.
fn named_patterns(doc: &mut OpenApi) {
    if let Some(components) = &mut doc.components {
        components.schemas.values_mut().for_each(resolve_patterns);
    }
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
            .into_iter()
            .flatten()
        {
            for param in op.parameters.iter_mut().flatten() {
                if let RefOr::T(param) = param
                    && let Some(schema) = &mut param.schema
                {
                    resolve_patterns(schema);
                }
            }
        }
    }
}

fn resolve_patterns(schema: &mut RefOr<Schema>) {
    use utoipa::openapi::schema::{ArrayItems, SchemaFormat};
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(o) => {
            if let Some(SchemaFormat::Custom(name)) = &o.format
                && let Some(pattern) = super::patterns::named(name)
            {
                o.pattern = Some(pattern.to_string());
                o.format = None;
            }
            o.properties.values_mut().for_each(resolve_patterns);
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(items) = &mut a.items {
                resolve_patterns(items);
            }
        }
        Schema::OneOf(x) => x.items.iter_mut().for_each(resolve_patterns),
        Schema::AllOf(x) => x.items.iter_mut().for_each(resolve_patterns),
        Schema::AnyOf(x) => x.items.iter_mut().for_each(resolve_patterns),
        _ => {}
    }
}

/// A response with the one error body.
fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                utoipa::openapi::ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}

/// The component name a `#/components/schemas/...` reference names.
fn json_ref(schema: &RefOr<Schema>) -> Option<String> {
    match schema {
        RefOr::Ref(r) => r.ref_location.strip_prefix("#/components/schemas/").map(str::to_string),
        RefOr::T(_) => None,
    }
}

fn complete_operation(op: &mut Operation, is_get: bool) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let params: Vec<(ParameterIn, String)> = op
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some((p.parameter_in.clone(), p.name.clone())),
            RefOr::Ref(_) => None,
        })
        .collect();
    let has_if_match = params
        .iter()
        .any(|(place, name)| matches!(place, ParameterIn::Header) && name == "If-Match");
    let has_path = params.iter().any(|(p, _)| matches!(p, ParameterIn::Path));
    let has_query = params.iter().any(|(p, _)| matches!(p, ParameterIn::Query));

    if is_get {
        op.responses.responses.entry("304".into()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(
                        "`If-None-Match` named the current `ETag`: the client's copy is current \
                         (no body)",
                    )
                    .build(),
            )
        });
    }
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description));
    };
    if secured {
        add("401", "No valid access token or API key (`unauthenticated`, `token_expired`, …)");
        add("403", "The caller's role or properties do not allow this");
    }
    if has_body {
        add("400", "The body is not JSON at all (`malformed_json`)");
        add("413", "The body is larger than the node accepts (`payload_too_large`)");
        add("415", "The body is not `application/json` (`unsupported_media_type`)");
    }
    if has_body || has_path || has_query {
        add(
            "422",
            "A field or parameter is missing, of the wrong type or invalid (`validation_failed`, \
             `details.field` names it)",
        );
    }
    if has_if_match {
        add(
            "412",
            "`If-Match` named a version that is no longer current (`precondition_failed`); \
             `details.current` is the record as it is now and `details.etag` its tag",
        );
    }
    if has_path || secured {
        add(
            "404",
            "Nothing with that id here — a property, reservation, guest … named in the path, \
             query or body; one that is not the caller's is answered the same (`not_found`)",
        );
    }
    add("408", "The request took longer than the node allows (`request_timeout`)");
    add("429", "Too many requests from this address, or too many failed logins; see `Retry-After`");
    add("500", "The node failed; the cause is in its log (`internal_error`)");
    add("503", "The node is shutting down (`shutting_down`)");
}
