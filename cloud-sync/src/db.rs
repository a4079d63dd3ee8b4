//! The hub's PostgreSQL: the connection pool and the migrations of `migrations/hub/`.
//!
//! Hub migrations are plain SQL directories (`NNNN-name/up.sql`) applied in name order, each
//! in its own transaction and recorded in `hub_migrations`. Several parts of the hub add their
//! own directories; none is ever edited once released. After the SQL, `migrate` makes sure the
//! hub has a site id and that the `replica` read tables match the edge schema the binary
//! embeds.

use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod, Runtime};
use include_dir::{Dir, include_dir};
use tokio_postgres::NoTls;

use crate::schema::HubSchema;

static HUB_MIGRATIONS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../migrations/hub");

/// Session advisory lock held while migrating, so two hub processes starting together do not
/// apply the same migration twice.
const MIGRATE_LOCK: i64 = 0x5354_4159_4f53_4d31;

/// The hub's connection pool.
pub type Pool = deadpool_postgres::Pool;

/// The PostgreSQL notification channel hub processes share. Payloads: `head:<version>` after
/// a merge commits (long-polls of every hub process wake), `revoked:<node_id>` after a
/// revocation commits (cached credentials are dropped).
pub const NOTIFY_CHANNEL: &str = "stayos_hub";

/// Why a hub storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("PostgreSQL: {}", pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no PostgreSQL connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("bad database URL: {0}")]
    Config(String),
    #[error("{0}")]
    Invalid(String),
}

/// A pool of at most `max_size` connections to `database_url` (a `postgres://` URL or a
/// `key=value` string), without TLS: the hub's database is local to it. Connections open
/// lazily, so a malformed URL fails here and an unreachable server on first use.
pub fn connect(database_url: &str, max_size: usize) -> Result<Pool, HubError> {
    let config = pg_config(database_url)?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig { recycling_method: RecyclingMethod::Fast },
    );
    Pool::builder(manager)
        .max_size(max_size.max(1))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| HubError::Config(e.to_string()))
}

/// A database URL (a `postgres://` URL or a `key=value` string) parsed.
pub fn pg_config(database_url: &str) -> Result<tokio_postgres::Config, HubError> {
    database_url.parse().map_err(|e| HubError::Config(format!("{e}")))
}

/// Applies the hub migrations not yet applied, creates the hub's site id once, and (re)builds
/// the `replica` read tables from the edge schema this binary embeds, re-projecting tables and
/// columns that are new. Idempotent; serialized across processes.
pub async fn migrate(pool: &Pool) -> Result<(), HubError> {
    migrate_with(pool, &HubSchema::edge()?).await
}

/// [`migrate`] with the read tables of `schema` (tests use their own edge tables).
pub async fn migrate_with(pool: &Pool, schema: &HubSchema) -> Result<(), HubError> {
    let mut client = pool.get().await?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATE_LOCK]).await?;
    let result = migrate_locked(&mut client, schema).await;
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATE_LOCK]).await;
    result?;
    unlocked?;
    Ok(())
}

async fn migrate_locked(
    client: &mut deadpool_postgres::Object,
    schema: &HubSchema,
) -> Result<(), HubError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hub_migrations (
                 name       text PRIMARY KEY,
                 applied_at timestamptz NOT NULL DEFAULT now()
             )",
        )
        .await?;
    let applied: Vec<String> = client
        .query("SELECT name FROM hub_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut dirs: Vec<&Dir<'_>> = HUB_MIGRATIONS.dirs().collect();
    dirs.sort_by_key(|d| d.path());
    for dir in dirs {
        let name = dir.path().to_string_lossy().into_owned();
        if applied.contains(&name) {
            continue;
        }
        let sql = dir
            .get_file(dir.path().join("up.sql"))
            .and_then(|f| f.contents_utf8())
            .ok_or_else(|| HubError::Invalid(format!("hub migration {name} has no up.sql")))?;
        let tx = client.transaction().await?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| HubError::Invalid(format!("hub migration {name}: {}", pg_message(&e))))?;
        tx.execute("INSERT INTO hub_migrations (name) VALUES ($1)", &[&name]).await?;
        tx.commit().await?;
        tracing::info!(migration = %name, "applied hub migration");
    }
    let site: [u8; 16] = rand::random();
    client
        .execute(
            "INSERT INTO hub_meta (key, value) VALUES ('site_id', $1) ON CONFLICT (key) DO NOTHING",
            &[&site.as_slice()],
        )
        .await?;
    crate::store::sync_read_tables(client, schema).await
}

/// PostgreSQL's own message for an error, which `Display` of `tokio_postgres::Error` hides.
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

/// A value of `hub_meta`.
pub async fn hub_meta(pool: &Pool, key: &str) -> Result<Option<Vec<u8>>, HubError> {
    let client = pool.get().await?;
    let row = client.query_opt("SELECT value FROM hub_meta WHERE key = $1", &[&key]).await?;
    Ok(row.map(|r| r.get(0)))
}

/// Sets a value of `hub_meta`.
pub async fn set_hub_meta(pool: &Pool, key: &str, value: &[u8]) -> Result<(), HubError> {
    let client = pool.get().await?;
    client
        .execute(
            "INSERT INTO hub_meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&key, &value],
        )
        .await?;
    Ok(())
}
