//! The edge schema: SQL files under `migrations/edge/`, embedded in the binary and applied in
//! one transaction at start. The schema version is SQLite's `user_version`.

use std::sync::LazyLock;

use include_dir::{Dir, include_dir};
use rusqlite::Connection;
use rusqlite_migration::{Migrations, SchemaVersion};

use super::DbError;

static EDGE_MIGRATIONS_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../migrations/edge");

static EDGE_MIGRATIONS: LazyLock<Result<Migrations<'static>, String>> =
    LazyLock::new(|| Migrations::from_directory(&EDGE_MIGRATIONS_DIR).map_err(|e| e.to_string()));

fn migrations() -> Result<&'static Migrations<'static>, DbError> {
    EDGE_MIGRATIONS
        .as_ref()
        .map_err(|e| DbError::Migration(rusqlite_migration::Error::FileLoad(e.clone())))
}

/// Number of migrations this binary carries: the schema version it brings a database to.
pub fn latest_version() -> usize {
    EDGE_MIGRATIONS_DIR.dirs().count()
}

/// The schema version recorded in the database (0 for a new one).
pub fn current_version(conn: &Connection) -> Result<usize, DbError> {
    let version = migrations()?.current_version(conn)?;
    Ok(usize::from(&version))
}

/// Applies every pending migration in one transaction; a no-op when the schema is current.
/// Refuses a database written by a newer binary instead of touching it.
pub fn apply(conn: &mut Connection) -> Result<(), DbError> {
    let migrations = migrations()?;
    let found = current_version(conn)?;
    let latest = latest_version();
    if found > latest {
        return Err(DbError::SchemaTooNew { found, latest });
    }
    if matches!(migrations.current_version(conn)?, SchemaVersion::Inside(v) if usize::from(v) == latest)
    {
        return Ok(());
    }
    migrations.to_latest(conn)?;
    Ok(())
}
