//! HTTP routes, one module per resource.

pub mod crazyminer;
pub mod health;
pub mod refunds;
pub mod shop;
pub mod v1;
pub mod webhook_endpoints;
