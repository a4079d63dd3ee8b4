//! Starting and stopping the node's HTTP(S) server: open the database, build the app, bind,
//! serve until told to stop, then finish in-flight requests and close the database cleanly.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::task::JoinHandle;

use crate::auth::password::Hasher;
use crate::auth::tokens::TokenKeys;
use crate::config::Config;
use crate::db::Db;
use crate::http::ratelimit::ClientLimiter;
use crate::state::AppState;
use crate::sync::SyncStatus;
use crate::sync::agent::Agent;
use crate::{http, init, node, tls};

/// How long in-flight requests get to finish after a shutdown signal.
const GRACE: Duration = Duration::from_secs(20);

/// How often tentative reservations whose hold has run out are cancelled (their rooms go back
/// on sale and the waitlist moves). End of day does it too.
const HOLD_EXPIRY_PERIOD: Duration = Duration::from_secs(60);

/// Cancels expired tentative holds every `period`, for as long as the server runs.
async fn expire_holds_every(period: Duration, db: Db) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match crate::reservation::waitlist::expire_holds(&db, crate::time::now_ms()).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(
                    count = ids.len(),
                    "cancelled tentative reservations whose hold expired"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(error = ?err, "expiring tentative holds failed"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "{0} is not an initialised StayOS data directory; run `stayos-edge init --data-dir {0}` first"
    )]
    NotInitialised(String),
    #[error("the database has no node identity; it was not made by `stayos-edge init`")]
    NoIdentity,
    #[error("failed to open the database: {0}")]
    Db(#[from] crate::db::DbError),
    #[error(transparent)]
    Keys(#[from] crate::auth::tokens::KeyError),
    #[error("failed to load the TLS certificate from {path}: {source}")]
    Tls { path: String, source: std::io::Error },
    #[error("failed to listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("the start-up task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

#[derive(Debug)]
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub tls: bool,
    handle: Handle<SocketAddr>,
    serve: JoinHandle<std::io::Result<()>>,
    housekeeping: Vec<JoinHandle<()>>,
    agent: Agent,
    sync: SyncStatus,
    db: Db,
}

impl RunningServer {
    pub fn url(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.local_addr)
    }

    /// The node's database, for tools and tests that seed data through the write path.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The sync agent's status (what `GET /sync/status` shows).
    pub fn sync_status(&self) -> &SyncStatus {
        &self.sync
    }

    /// Stops accepting connections, lets in-flight requests finish (up to a grace period),
    /// stops the sync agent, then closes the database.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.handle.graceful_shutdown(Some(GRACE));
        let served = self.serve.await.unwrap_or_else(|e| Err(std::io::Error::other(e)));
        for task in &self.housekeeping {
            task.abort();
        }
        // Before the database closes: a merge the agent has handed to the writer finishes
        // as one transaction, and nothing new is queued after the close.
        self.agent.stop().await;
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.close()).await.map_err(std::io::Error::other)?;
        served
    }
}

/// Opens the data directory and starts serving on `config.listen`.
pub async fn start(
    data_dir: &Path,
    config: Config,
    use_tls: bool,
) -> Result<RunningServer, StartError> {
    if !init::is_initialised(data_dir) {
        return Err(StartError::NotInitialised(data_dir.display().to_string()));
    }
    let dir: PathBuf = data_dir.to_path_buf();
    let readers = config.db.readers;
    let db = tokio::task::spawn_blocking(move || Db::open(&dir, readers)).await??;
    let started = start_on(data_dir, &db, config, use_tls).await;
    if started.is_err() {
        let db = db.clone();
        let _ = tokio::task::spawn_blocking(move || db.close()).await;
    }
    started
}

async fn start_on(
    data_dir: &Path,
    db: &Db,
    config: Config,
    use_tls: bool,
) -> Result<RunningServer, StartError> {
    let node = db
        .read(|conn| node::load(conn).map_err(crate::db::DbError::from))
        .await?
        .ok_or(StartError::NoIdentity)?;
    let keys = TokenKeys::load(data_dir)?;
    let limiter = ClientLimiter::new(&config.rate_limit);
    let metrics = http::metrics::recorder();
    let listen = config.listen;
    let sync = SyncStatus::default();
    let node = Arc::new(node);
    let state = AppState {
        db: db.clone(),
        keys: Arc::new(keys),
        hasher: Hasher::default(),
        config: Arc::new(config),
        node: node.clone(),
        metrics: metrics.clone(),
        sync: sync.clone(),
    };
    let app = http::app(state, limiter.clone());

    let listener = std::net::TcpListener::bind(listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| StartError::Bind { addr: listen, source })?;
    let local_addr =
        listener.local_addr().map_err(|source| StartError::Bind { addr: listen, source })?;
    let handle: Handle<SocketAddr> = Handle::new();
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let serve = if use_tls {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let cert = data_dir.join(tls::SERVER_CERT);
        let rustls = RustlsConfig::from_pem_file(&cert, data_dir.join(tls::SERVER_KEY))
            .await
            .map_err(|source| StartError::Tls { path: cert.display().to_string(), source })?;
        let server = axum_server::from_tcp_rustls(listener, rustls)
            .map_err(|source| StartError::Bind { addr: listen, source })?
            .handle(handle.clone());
        tokio::spawn(async move { server.serve(service).await })
    } else {
        let server = axum_server::from_tcp(listener)
            .map_err(|source| StartError::Bind { addr: listen, source })?
            .handle(handle.clone());
        tokio::spawn(async move { server.serve(service).await })
    };

    let housekeeping = vec![
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                limiter.forget_idle_clients();
            }
        }),
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                metrics.run_upkeep();
            }
        }),
        tokio::spawn(expire_holds_every(HOLD_EXPIRY_PERIOD, db.clone())),
    ];
    let agent = Agent::spawn(db.clone(), node, sync.clone());
    Ok(RunningServer {
        local_addr,
        tls: use_tls,
        handle,
        serve,
        housekeeping,
        agent,
        sync,
        db: db.clone(),
    })
}
