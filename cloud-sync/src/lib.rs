//! The StayOS cloud hub: a full replica of every enrolled property on PostgreSQL.
//!
//! - `db`: the connection pool and the hub's migrations (`migrations/hub/`).
//! - `schema`: the edge schema the hub mirrors, and the relational read tables built from it.
//! - `value`: column values in an encoding whose byte order is cr-sqlite's value order.
//! - `store`: merging changesets with exactly the `crdt` rules, and pulls.
//! - `tail`: the changes of recent versions in memory, which answer caught-up pulls.
//! - `nodes`: enrollment tokens, node credentials, revocation, the hub's audit log.
//! - `server`: the HTTPS sync endpoint, `/health`, `/ready`, `/metrics`.
//! - `tls`: the hub's own certificate, which enrolled edges pin.

pub mod db;
pub mod nodes;
pub mod schema;
pub mod screen;
pub mod server;
pub mod store;
pub mod tail;
pub mod tls;
pub mod value;
