//! Who is calling and whether they may: the client address rule, the rate
//! limit on creating routes and per-gateway source allowlists.

pub mod allowlist;
pub mod client;
pub mod rate_limit;
