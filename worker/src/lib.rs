//! The worker pool: takes job messages from the queue, runs each job against
//! the ledger (claim → decide → call out → record), and sweeps the ledger for
//! work whose message was lost or whose worker died.

pub mod engine;
pub mod expiry;
pub mod jobs;
pub mod pool;
pub mod reconciler;
pub mod runner;
pub mod sampler;
pub mod sweeper;
pub mod webhook_lane;

pub use engine::{Engine, ReturnUrls};
