//! Properties (hotels) and their set-up: settings, room types, rooms, amenities,
//! cancellation policies, rate plans with nightly prices and restrictions.

pub mod access;
pub mod rates;
pub mod rooms;
pub mod routes;
pub mod store;
pub mod validate;
