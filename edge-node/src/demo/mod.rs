//! `stayos-edge demo`: a throw-away node with a demo property, for trying StayOS in a
//! browser. The data directory lives in a temporary folder removed on exit.

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

/// The demo's configuration: plain HTTP on `listen`, readable logs.
pub fn config(listen: SocketAddr) -> Config {
    let mut config = Config { listen, ..Config::default() };
    config.log.format = crate::config::LogFormat::Pretty;
    config
}
