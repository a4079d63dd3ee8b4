//! Guests: profiles, preferences, consent, identity documents, history, search, duplicate
//! detection and merge, loyalty, and privacy (export and erasure).

pub mod loyalty;
pub mod routes;
pub mod store;

pub use store::{GuestInput, create_in_tx};
