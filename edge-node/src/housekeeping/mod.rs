//! Housekeeping: room statuses (clean, dirty, inspected, out of order, out of service),
//! occupancy derived from stays, out-of-order blocks, and the board per property.

pub mod routes;
pub mod store;
