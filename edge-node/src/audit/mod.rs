//! The audit log: append-only (triggers refuse UPDATE and DELETE, and are restored at start
//! if someone dropped them) and hash-chained — each entry's hash covers its content and the
//! previous entry's hash, keyed with the node's secret (`key`: HMAC-SHA256, the secret in
//! `DIR/keys/audit.key`, never in a table), so removing, editing or rewriting a row breaks
//! the chain at that point, and `verify` says where. The hub gives back the newest entry it
//! holds (`node_meta`'s `audit_anchor`), so deleting the newest entries is found too.
//!
//! Other modules record events by calling `audit::record` inside their own write
//! transaction, so an action and its audit entry commit or roll back together. Every entry
//! is filed under a property (`audit_log.property_id`, from which the hub derives the row's
//! owner): `Entry::property`, else the `property_id` in its details, else the property the
//! node serves (`store::node_property`).

pub mod key;
pub mod routes;
pub mod store;

pub use store::{Actor, Entry, record};
