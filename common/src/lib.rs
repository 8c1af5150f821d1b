//! Shared core of paygate: the payment domain, persistence, the job queue,
//! gateway clients, encryption and configuration. The API and the worker
//! depend on this crate; it depends on neither.

pub mod config;
pub mod crypto;
pub mod domain;
pub mod gateways;
pub mod payment_ttl;
pub mod payment_watch;
pub mod queue;
pub mod security;
pub mod store;
pub mod telemetry;
pub mod userdir;
pub mod webhooks;
