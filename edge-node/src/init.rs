//! `stayos-edge init`: turns an empty directory into a node's data directory — database with
//! the schema, the node's site id, the property, its owner account, the token signing key,
//! the audit key, the property's CA and server certificate, and a commented `stayos.toml`.
//!
//! Every input is checked before anything is written; if a step fails after that, whatever
//! `init` created is removed again, so a failed `init` leaves the directory as it found it.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::audit::{self, Actor, Entry};
use crate::auth::model::{Email, PersonName};
use crate::auth::permissions::Role;
use crate::auth::tokens::{JWT_KEY_FILE, TokenKeys};
use crate::auth::{password, store as auth_store};
use crate::config::{CONFIG_FILE, Config};
use crate::db::{self, DB_FILE};
use crate::property::store::{self as property_store, PropertyRecord};
use crate::{fsutil, node, tls};

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub data_dir: PathBuf,
    pub property_name: String,
    pub admin_email: String,
    pub admin_name: Option<String>,
    pub admin_password: String,
    /// Extra host names or IP addresses for the server certificate.
    pub tls_names: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct InitReport {
    pub property_id: String,
    pub owner_id: String,
    pub site_id: String,
    pub ca_cert: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{0} is already an initialised StayOS data directory; nothing was changed")]
    AlreadyInitialised(String),
    #[error("--{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("the owner's password {0}; nothing was changed")]
    WeakPassword(String),
    #[error("failed to prepare {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("failed to create the database: {0}")]
    Db(#[from] db::DbError),
    #[error("failed to create the database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
}

/// Whether `dir` holds a node's database.
pub fn is_initialised(dir: &Path) -> bool {
    dir.join(DB_FILE).exists()
}

/// Removes what a failed `init` created, unless disarmed.
struct Undo {
    paths: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for path in self.paths.iter().rev() {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
    }
}

/// Makes a folder of secrets accessible to the node's own user only.
fn private_dir(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
    }
}

pub fn init(opts: &InitOptions) -> Result<InitReport, InitError> {
    let invalid = |field, reason: String| InitError::Invalid { field, reason };
    let property_name =
        PersonName::parse(&opts.property_name).map_err(|r| invalid("property-name", r))?;
    let email = Email::parse(&opts.admin_email).map_err(|r| invalid("admin-email", r))?;
    let owner_name = PersonName::parse(opts.admin_name.as_deref().unwrap_or("Owner"))
        .map_err(|r| invalid("admin-name", r))?;
    password::check_strength(
        &opts.admin_password,
        &[email.as_str(), owner_name.as_str(), property_name.as_str()],
    )
    .map_err(InitError::WeakPassword)?;

    let dir = &opts.data_dir;
    let shown = dir.display().to_string();
    if is_initialised(dir) {
        return Err(InitError::AlreadyInitialised(shown));
    }
    for leftover in ["keys", "tls"] {
        if dir.join(leftover).exists() {
            return Err(invalid(
                "data-dir",
                format!(
                    "{shown} already has a {leftover}/ folder but no database; move it away first"
                ),
            ));
        }
    }

    let mut undo = Undo { paths: Vec::new(), armed: true };
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|source| InitError::Io { path: shown.clone(), source })?;
        private_dir(dir);
        undo.paths.push(dir.clone());
    }
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| InitError::Io { path, source }
    };

    let keys_dir = dir.join("keys");
    undo.paths.push(keys_dir.clone());
    std::fs::create_dir_all(&keys_dir).map_err(io(&keys_dir))?;
    private_dir(&keys_dir);
    let key_path = dir.join(JWT_KEY_FILE);
    fsutil::write_file(&key_path, TokenKeys::generate_secret_file_contents().as_bytes(), true)
        .map_err(io(&key_path))?;

    undo.paths.push(dir.join("tls"));
    tls::generate(dir, property_name.as_str(), &opts.tls_names)?;
    private_dir(&dir.join("tls"));

    let config_path = dir.join(CONFIG_FILE);
    if !config_path.exists() {
        undo.paths.push(config_path.clone());
        fsutil::write_file(&config_path, Config::template().as_bytes(), false)
            .map_err(io(&config_path))?;
    }

    for file in [DB_FILE.to_string(), format!("{DB_FILE}-wal"), format!("{DB_FILE}-shm")] {
        undo.paths.push(dir.join(file));
    }
    let hash = password::hash_blocking(&opts.admin_password)?;
    let report = create_database(dir, property_name.as_str(), &email, owner_name.as_str(), &hash)?;
    undo.armed = false;
    Ok(report)
}

fn create_database(
    dir: &Path,
    property_name: &str,
    email: &Email,
    owner_name: &str,
    password_hash: &str,
) -> Result<InitReport, InitError> {
    let mut conn = db::open_writer(&dir.join(DB_FILE))?;
    let replica = db::prepare(&mut conn)?;
    // The audit key exists before the first entry, so the whole chain is keyed.
    let audit_key = audit::key::AuditKey::generate(1);
    audit::key::create(dir, &audit_key).map_err(db::DbError::from)?;
    audit::key::install(&conn, &audit_key)?;
    let now = crate::time::now_ms();
    let info = node::NodeInfo {
        site_id: hex::encode(crdt::site_id(&conn).map_err(db::DbError::from)?),
        property_id: uuid::Uuid::now_v7().to_string(),
    };
    let owner_id = uuid::Uuid::now_v7().to_string();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    node::store(&tx, &info)?;
    let property = PropertyRecord {
        name: property_name.to_string(),
        ..PropertyRecord::new(info.property_id.clone(), now)
    };
    property_store::save_record(
        &tx,
        &PropertyRecord {
            business_date: crate::dates::today_in(&property.timezone).to_string(),
            ..property
        },
    )?;
    let properties = [info.property_id.clone()];
    auth_store::insert_staff(
        &tx,
        &auth_store::NewStaff {
            id: &owner_id,
            email: email.as_str(),
            name: owner_name,
            role: Role::Owner.as_str(),
            password_hash,
            properties: &properties,
            now,
        },
    )?;
    audit::record(
        &tx,
        Entry::new("node_initialised", Actor::System)
            .subject(&info.property_id)
            .details(json!({ "property_name": property_name, "site_id": info.site_id })),
        now,
    )?;
    audit::record(
        &tx,
        Entry::new("staff_registered", Actor::System)
            .subject(&owner_id)
            .details(json!({ "email": email.as_str(), "role": "owner", "properties": properties })),
        now,
    )?;
    replica.flush(&tx).map_err(db::DbError::from)?;
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(InitReport {
        property_id: info.property_id,
        owner_id,
        site_id: info.site_id,
        ca_cert: dir.join(tls::CA_CERT),
    })
}
