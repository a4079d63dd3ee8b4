//! Properties (hotels) and their set-up: settings, room types, rooms, amenities,
//! cancellation policies, rate plans with nightly prices and restrictions.

pub mod access;
pub mod routes;
pub mod store;
