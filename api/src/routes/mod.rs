//! HTTP routes, one module per resource.

pub mod crazyminer;
pub mod health;
pub mod v1;
