//! The hub's PostgreSQL: the connection pool and the migrations of `migrations/hub/`.

use tokio_postgres::NoTls;

/// The hub's connection pool.
pub type Pool = deadpool_postgres::Pool;

/// Why a hub storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no PostgreSQL connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("bad database URL: {0}")]
    Config(String),
    #[error("{0}")]
    Invalid(String),
}

/// A pool of at most `max_size` connections to `database_url` (a `postgres://` URL or a
/// key=value string). Connections are opened lazily, so a bad URL fails here but an
/// unreachable server fails on first use.
pub fn connect(database_url: &str, max_size: usize) -> Result<Pool, HubError> {
    let _ = (database_url, max_size, NoTls);
    unimplemented!()
}

/// Applies the hub migrations not yet applied, creates the hub's site id once, and (re)builds
/// the `replica` read tables from the edge schema. Idempotent; serialized across processes.
pub async fn migrate(pool: &Pool) -> Result<(), HubError> {
    let _ = pool;
    unimplemented!()
}

/// A value of `hub_meta`.
pub async fn hub_meta(pool: &Pool, key: &str) -> Result<Option<Vec<u8>>, HubError> {
    let _ = (pool, key);
    unimplemented!()
}

/// Sets a value of `hub_meta`.
pub async fn set_hub_meta(pool: &Pool, key: &str, value: &[u8]) -> Result<(), HubError> {
    let _ = (pool, key, value);
    unimplemented!()
}
