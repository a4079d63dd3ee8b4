//! StayOS behaviour end to end: the edge node over HTTP against real servers (in-process on
//! loopback, or the real `stayos-edge` binary for the command line), and the `crdt` crate
//! against the real cr-sqlite. One binary, one module per area.

mod api_contract;
mod api_keys;
mod audit;
mod availability;
mod changes_cli;
mod cli;
mod crsqlite_interop;
mod demo;
mod guests;
mod hostile;
mod housekeeping;
mod http_layer;
mod login;
mod loyalty;
mod mfa;
mod properties;
mod rates;
mod replication_concurrency;
mod replication_rules;
mod reservation_race;
mod reservations;
mod routes_need_permissions;
mod sessions;
mod staff;
mod sync;
mod sync_faults;
mod sync_guard;
mod sync_status;
