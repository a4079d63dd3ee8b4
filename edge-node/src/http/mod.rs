//! The HTTP layer — the seed's API-gateway duties inside the node: routing, request ids,
//! tracing spans, CORS for the LAN apps, body-size limits, timeouts, compression, per-client
//! rate limiting, metrics, the OpenAPI document and its docs page, and one JSON error shape
//! for everything, including errors produced by the layers themselves.

pub mod contract;
pub mod error;
pub mod etag;
pub mod extract;
pub mod list;
pub mod metrics;
pub mod ops;
pub mod patterns;
pub mod ratelimit;
pub mod representation;
pub mod shape;
pub mod wire;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use self::error::ApiError;
use self::ratelimit::ClientLimiter;
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "StayOS edge node",
        description = "The hotel's own API: every domain of the property, served on its LAN.",
    ),
    modifiers(&BearerAuth),
    components(schemas(error::ErrorBody)),
    tags(
        (name = "auth", description = "Staff login, tokens, two-factor login, API keys"),
        (name = "staff", description = "Staff accounts"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "properties", description = "Properties and their settings, room types, rooms, amenities"),
        (name = "rates", description = "Cancellation policies, rate plans, nightly prices and restrictions"),
        (name = "reservations", description = "Availability, reservations and their actions, end of day"),
        (name = "guests", description = "Guest profiles, preferences, documents, loyalty and privacy"),
        (name = "housekeeping", description = "Room statuses, out-of-order blocks and the housekeeping board"),
        (name = "sync", description = "Where this node stands with the hub"),
        (name = "ops", description = "Health, readiness, metrics"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token or sk_ API key")
                    .build(),
            ),
        );
    }
}

/// Every domain's routes with their OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(crate::auth::router())
        .merge(crate::audit::routes::router())
        .merge(crate::property::routes::router())
        .merge(crate::reservation::routes::router())
        .merge(crate::guest::routes::router())
        .merge(crate::housekeeping::routes::router())
        .merge(crate::sync::routes::router())
}

/// The OpenAPI document of this build.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().into_openapi();
    contract::complete(&mut doc);
    doc
}

/// The complete application: routes, docs, fallback and the middleware stack.
pub fn app(state: AppState, limiter: ClientLimiter) -> Router {
    let config = state.config.clone();
    let (routes, mut openapi) = api().split_for_parts();
    contract::complete(&mut openapi);
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(
            config.http.cors_allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            REQUEST_ID,
        ])
        .expose_headers([
            REQUEST_ID,
            header::ETAG,
            header::RETRY_AFTER,
            HeaderName::from_static(contract::VERSION_HEADER),
        ])
        .max_age(Duration::from_secs(600));

    // Outermost first. The axum middlewares (metrics, error shaping, rate limiting) sit inside
    // the tower-http layers that change body types (trace, compression). The body limit is
    // axum's own, enforced where bodies are read, and answers 413.
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static(contract::VERSION_HEADER),
            HeaderValue::from_static(contract::API_VERSION),
        ))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn(etag::tag))
        .layer(axum::middleware::from_fn_with_state(limiter, ratelimit::limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(config.http.request_timeout_secs),
        ))
        .layer(DefaultBodyLimit::max(config.http.body_limit_bytes));

    Router::new()
        .merge(routes)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .route("/", axum::routing::get(landing))
        .fallback(|| async { ApiError::for_status(StatusCode::NOT_FOUND) })
        .with_state(state)
        .layer(middleware)
}

/// Gives every error response the one JSON shape, whoever produced it: axum (405), tower
/// layers (408, 413), or anything else that answered an error with another body.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let mut replaced = ApiError::for_status(status).into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.remove(&name) {
            replaced.headers_mut().insert(name, value);
        }
    }
    replaced
}

/// A page for a person who opens the node in a browser.
async fn landing(State(state): State<AppState>) -> Html<String> {
    let property_id = state.node.property_id.clone();
    let name = state
        .db
        .read(move |conn| -> Result<_, ApiError> {
            Ok(crate::property::store::get_record(conn, &property_id)?.map(|p| p.name))
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "this property".into());
    let name = html_escape(&name);
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>StayOS — {name}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#1d2733}}
h1{{font-size:1.6rem}}a{{color:#0b5cad}}code{{background:#eef2f6;padding:.1rem .3rem;border-radius:3px}}</style>
</head><body>
<h1>StayOS edge node — {name}</h1>
<p>This node runs the hotel's operations on its own database and keeps working without the internet.</p>
<ul>
<li><a href="/docs/">API documentation</a> (try <code>POST /auth/login</code>, then <em>Authorize</em>)</li>
<li><a href="/openapi.json">OpenAPI document</a></li>
<li><a href="/health">Health</a> · <a href="/ready">Readiness</a> · <a href="/metrics">Metrics</a></li>
</ul>
<p>Version {version}.</p>
</body></html>"#,
        version = env!("CARGO_PKG_VERSION"),
    ))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
