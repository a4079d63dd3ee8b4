//! StayOS edge node behaviour, end to end over HTTP against real servers (in-process on
//! loopback, or the real `stayos-edge` binary for the command line). One binary, one module
//! per area.

mod api_keys;
mod audit;
mod cli;
mod http_layer;
mod login;
mod mfa;
mod routes_need_permissions;
mod sessions;
mod staff;
