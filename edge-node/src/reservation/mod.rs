//! Reservations: availability and inventory, pricing, the reservation state machine and its
//! actions, group bookings, the waitlist, lists, and end of day.

pub mod inventory;
pub mod routes;
pub mod waitlist;
