//! Properties (hotels). This node serves one property, created by `init`; the property
//! service's routes (`/properties...`) arrive with the hotel core.

pub mod store;
