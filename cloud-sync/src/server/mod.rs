//! The hub's HTTP(S) server: the sync endpoints nodes call, enrollment, `/health`, `/ready`
//! and `/metrics`, with request ids, tracing spans, per-route body limits and timeouts, and
//! one JSON error shape for everything, including errors produced by the layers themselves.
//!
//! Routes live here in one place; handlers in `sync`, `enroll` and `ops`; the authenticated
//! node is the `auth::AuthNode` extractor. No handler holds a database connection while it
//! waits: a long-poll waits on the store's head watch, so a thousand nodes waiting at once
//! cost a thousand small tasks, not a thousand connections or threads.

pub mod auth;
pub mod enroll;
pub mod error;
pub mod limits;
pub mod metrics;
pub mod notify;
pub mod ops;
pub mod sync;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use self::error::ApiError;
use self::limits::{PushGate, PushLimits};
use crate::nodes::{CredentialCache, Throttle};
use crate::store::Store;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long in-flight requests get to finish after a shutdown signal. Long-polls answer at
/// once when shutdown starts, so only real work (a merge) can use this.
pub const GRACE: Duration = Duration::from_secs(10);

/// Body limit of the routes that take small JSON bodies (or none).
const SMALL_BODY_LIMIT: usize = 64 * 1024;
/// Time limit of an ordinary request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time limit of a push: decoding and merging a large batch in one transaction.
const PUSH_TIMEOUT: Duration = Duration::from_secs(300);
/// Time limit of a pull: the longest wait plus the time to read and send the answer.
const PULL_TIMEOUT: Duration = Duration::from_secs(sync::PULL_WAIT_MAX_SECS + 30);
/// How long a successful authentication is remembered. Revocations do not wait for it (they
/// are notified); it bounds how long anything else changed by hand in `nodes` goes unseen.
const CREDENTIAL_TTL: Duration = Duration::from_secs(30);

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct HubState {
    pub store: Store,
    pub metrics: PrometheusHandle,
    /// Becomes `true` when the server starts shutting down: long-polls answer at once.
    pub shutdown: watch::Receiver<bool>,
    /// `last_seen_at` is written at most once a minute per node.
    seen: Arc<Throttle>,
    /// A revoked node that keeps retrying is audited at most once a minute.
    revoked_audit: Arc<Throttle>,
    /// "A node pulled past the head" is logged at most once a minute per node.
    ahead_warned: Arc<Throttle>,
    /// Recent successful authentications; dropped on revocation (see `notify`).
    credentials: Arc<CredentialCache>,
    /// What pushes may run at once and hold (see `limits`).
    pushes: Arc<PushGate>,
}

impl HubState {
    pub fn new(store: Store, shutdown: watch::Receiver<bool>, limits: PushLimits) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            store,
            metrics: metrics::recorder(),
            shutdown,
            seen: Arc::new(Throttle::new(minute)),
            revoked_audit: Arc::new(Throttle::new(minute)),
            ahead_warned: Arc::new(Throttle::new(minute)),
            credentials: Arc::new(CredentialCache::new(CREDENTIAL_TTL)),
            pushes: Arc::new(PushGate::new(limits)),
        }
    }
}

fn timeout(limit: Duration) -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limit)
}

/// The complete application: routes, fallback and the middleware stack.
pub fn app(state: HubState) -> Router {
    // Outermost first. Metrics and error shaping sit inside the tower-http layers; body
    // limits are axum's own, enforced where bodies are read (413), the route's limit winning
    // over the default.
    let middleware = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id =
                req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %req.method(), uri = %req.uri().path(), request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT));

    Router::new()
        .route("/health", get(ops::health).layer(timeout(REQUEST_TIMEOUT)))
        .route("/ready", get(ops::ready).layer(timeout(REQUEST_TIMEOUT)))
        .route("/metrics", get(ops::metrics).layer(timeout(REQUEST_TIMEOUT)))
        .route(
            "/v1/enroll",
            post(enroll::enroll).layer(
                ServiceBuilder::new()
                    .layer(timeout(REQUEST_TIMEOUT))
                    .layer(DefaultBodyLimit::max(enroll::ENROLL_BODY_LIMIT)),
            ),
        )
        .route("/v1/sync/hello", get(sync::hello).layer(timeout(REQUEST_TIMEOUT)))
        .route(
            "/v1/sync/push",
            post(sync::push).layer(
                ServiceBuilder::new()
                    .layer(timeout(PUSH_TIMEOUT))
                    .layer(DefaultBodyLimit::max(limits::PUSH_BODY_LIMIT)),
            ),
        )
        .route("/v1/sync/pull", get(sync::pull).layer(timeout(PULL_TIMEOUT)))
        .fallback(|| async { ApiError::for_status(StatusCode::NOT_FOUND) })
        .with_state(state)
        .layer(middleware)
}

/// How the server speaks.
pub enum Transport {
    /// Plain HTTP: loopback tests, or behind a proxy that terminates TLS.
    Http,
    /// HTTPS with this certificate chain and key (PEM).
    Https { cert_pem: Vec<u8>, key_pem: Vec<u8> },
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str(match self {
            Transport::Http => "Http",
            Transport::Https { .. } => "Https",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the TLS certificate or key is not usable: {0}")]
    Tls(std::io::Error),
    #[error("failed to listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A serving hub.
pub struct RunningHub {
    pub local_addr: SocketAddr,
    pub tls: bool,
    handle: Handle<SocketAddr>,
    shutdown: watch::Sender<bool>,
    serve: JoinHandle<std::io::Result<()>>,
    housekeeping: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningHub").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl RunningHub {
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.local_addr)
    }

    /// Stops accepting connections, answers waiting long-polls at once, and lets in-flight
    /// requests finish within [`GRACE`].
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.handle.graceful_shutdown(Some(GRACE));
        let served = self.serve.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        for task in &self.housekeeping {
            task.abort();
        }
        served
    }
}

/// Binds `listen` and serves `store`; `database` (the store's database) is where the server
/// listens for other hub processes' notifications (`notify`); `limits` bound pushes.
pub async fn start(
    store: Store,
    database: tokio_postgres::Config,
    listen: SocketAddr,
    transport: Transport,
    limits: PushLimits,
) -> Result<RunningHub, StartError> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = HubState::new(store.clone(), shutdown_rx, limits);
    let prometheus = state.metrics.clone();
    let credentials = state.credentials.clone();
    let app = app(state);

    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| StartError::Bind { addr: listen, source })?;
    let local_addr =
        listener.local_addr().map_err(|source| StartError::Bind { addr: listen, source })?;
    let handle: Handle<SocketAddr> = Handle::new();
    let service = app.into_make_service();
    let tls = matches!(transport, Transport::Https { .. });
    let serve = match transport {
        Transport::Https { cert_pem, key_pem } => {
            crate::tls::install_crypto_provider();
            let rustls =
                RustlsConfig::from_pem(cert_pem, key_pem).await.map_err(StartError::Tls)?;
            let server = axum_server::from_tcp_rustls(listener, rustls)
                .map_err(|source| StartError::Bind { addr: listen, source })?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(service).await })
        }
        Transport::Http => {
            let server = axum_server::from_tcp(listener)
                .map_err(|source| StartError::Bind { addr: listen, source })?
                .handle(handle.clone());
            tokio::spawn(async move { server.serve(service).await })
        }
    };

    let mut head = store.subscribe();
    let housekeeping = vec![
        notify::spawn(database, store.clone(), credentials),
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                prometheus.run_upkeep();
            }
        }),
        tokio::spawn(async move {
            loop {
                let version = *head.borrow_and_update();
                metrics::head(version);
                if head.changed().await.is_err() {
                    break;
                }
            }
        }),
    ];
    Ok(RunningHub { local_addr, tls, handle, shutdown: shutdown_tx, serve, housekeeping })
}
