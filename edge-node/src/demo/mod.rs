//! `stayos-edge demo`: a throw-away node with a demo property, for trying StayOS in a
//! browser. The data directory lives in a temporary folder removed on exit.
//!
//! The demo property is a believable hotel (see [`seed::demo_hotel`]): 120 rooms of five
//! types on six floors, two rate plans with a year of seasonal prices, 3,000 guests and about
//! six months of reservations around the business date in every state.

use std::net::SocketAddr;

use crate::config::Config;
use crate::init::{InitOptions, InitReport, init};

pub mod seed;

pub const DEMO_EMAIL: &str = "owner@demo.stayos.example";
pub const DEMO_PASSWORD: &str = "demo-harbour-lantern-42";
pub const DEMO_PROPERTY: &str = "Harbour View Hotel (demo)";

/// Initialises a demo data directory in `dir`.
pub fn prepare(dir: &std::path::Path) -> Result<InitReport, crate::init::InitError> {
    init(&InitOptions {
        data_dir: dir.to_path_buf(),
        property_name: DEMO_PROPERTY.into(),
        admin_email: DEMO_EMAIL.into(),
        admin_name: Some("Demo Owner".into()),
        admin_password: DEMO_PASSWORD.into(),
        tls_names: Vec::new(),
    })
}

/// Where the demo listens unless told otherwise.
pub const DEMO_LISTEN: &str = "127.0.0.1:8080";

/// The demo's configuration: plain HTTP on 127.0.0.1:8080 with readable logs, then the same
/// `STAYOS_*` overrides `serve` takes (`STAYOS_LISTEN`, `STAYOS_LOG__LEVEL`, …), then
/// `--listen` if given.
pub fn config(listen: Option<SocketAddr>) -> Result<Config, crate::config::ConfigError> {
    let mut base =
        Config { listen: DEMO_LISTEN.parse().expect("a socket address"), ..Config::default() };
    base.log.format = crate::config::LogFormat::Pretty;
    let mut config = Config::with_env(base)?;
    if let Some(listen) = listen {
        config.listen = listen;
    }
    Ok(config)
}

/// Seeds the demo hotel ([`seed::HotelSpec::demo`]) into the initialised data directory
/// `dir` through the single write path, in one transaction; returns what was created.
pub async fn seed_hotel(
    dir: &std::path::Path,
    property_id: &str,
) -> Result<seed::HotelSummary, crate::db::DbError> {
    let db = crate::db::Db::open(dir, 1)?;
    let property = property_id.to_string();
    let seeded = db
        .write(move |tx| -> Result<seed::HotelSummary, crate::db::DbError> {
            let settings = crate::property::access::settings(tx, &property)?
                .ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            let hotel = seed::demo_hotel(
                tx,
                &property,
                settings.business_date,
                crate::time::now_ms(),
                &seed::HotelSpec::demo(),
            )?;
            Ok(hotel.summary)
        })
        .await;
    db.close();
    seeded
}
