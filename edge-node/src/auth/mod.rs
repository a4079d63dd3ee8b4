//! Staff authentication and authorisation (the seed's auth-service): staff accounts with
//! roles scoped to properties, argon2id passwords, JWT access tokens with rotating refresh
//! tokens, TOTP two-factor login, API keys, and login throttling.

pub mod extract;
pub mod model;
pub mod password;
pub mod permissions;
pub mod routes;
pub mod store;
pub mod throttle;
pub mod tokens;

pub use routes::router;
