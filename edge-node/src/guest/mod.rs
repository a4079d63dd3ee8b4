//! Guests: profiles, preferences, consent, identity documents, history, search, duplicate
//! detection and merge, loyalty, and privacy (export and erasure).
//!
//! - `store`: validation (every bad field named), the normalised search columns, profile
//!   create/update/read, preferences, duplicates, booking history.
//! - `normalize`: accent folding, phone digits, prefix bounds for index range scans.
//! - `search`: keyset-paginated prefix search on `(property_id, column, id)` indexes.
//! - `documents`: identity documents, numbers always masked in responses.
//! - `loyalty`: the property's rule, accounts, ledger, `earn_on_checkout`.
//! - `privacy`: export, erasure by overwriting (so it replicates), merge of two profiles.
//! - `routes`: the HTTP API.

pub mod documents;
pub mod loyalty;
pub mod normalize;
pub mod privacy;
pub mod routes;
pub mod search;
pub mod store;

pub use store::{GuestInput, create_in_tx};
