//! The audit log: append-only (triggers refuse UPDATE and DELETE) and hash-chained — each
//! entry's hash covers its content and the previous entry's hash, so removing or editing a
//! row breaks the chain at that point, and `verify` says where.
//!
//! Other modules record events by calling `audit::record` inside their own write
//! transaction, so an action and its audit entry commit or roll back together.

pub mod routes;
pub mod store;

pub use store::{Actor, Entry, record};
