//! The StayOS edge node: every hotel domain of one property over HTTP on its LAN, on a local
//! SQLite database. `stayos-edge` (main.rs) is the command line around this library; the
//! `tests` crate starts it in-process and as a real binary.

pub mod audit;
pub mod auth;
pub mod changefile;
pub mod config;
pub mod dates;
pub mod db;
pub mod demo;
pub mod fsutil;
pub mod guest;
pub mod housekeeping;
pub mod http;
pub mod init;
pub mod logging;
pub mod memory;
pub mod node;
pub mod property;
pub mod reservation;
pub mod server;
pub mod state;
pub mod sync;
pub mod time;
pub mod tls;
pub mod vocabulary;
