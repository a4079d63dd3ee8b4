//! Reservations: availability and inventory, pricing, the reservation state machine and its
//! actions, group bookings, the waitlist, lists, and end of day.

pub mod availability;
pub mod eod;
pub mod inventory;
pub mod pricing;
pub mod routes;
pub mod states;
pub mod store;
pub mod waitlist;
