//! What the Payme simulator remembers: counters for `_stats`.

use serde::{Deserialize, Serialize};

/// Counters since start or the last `_reset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymeStats {
    /// Calls sent to the merchant (each duplicate counts).
    pub calls_sent: u64,
    /// Calls without a usable answer (transport failure, not HTTP 200, not JSON-RPC).
    pub calls_failed: u64,
    /// Calls the merchant answered with an error.
    pub errors_answered: u64,
    /// Answers without the request's `id`.
    pub envelope_problems: u64,
    /// Duplicate calls whose two answers differed.
    pub duplicate_mismatches: u64,
    pub payments_performed: u64,
    pub debits_failed: u64,
    /// The Payme id of the latest transaction the merchant created.
    pub last_payme_id: Option<String>,
    pub last_problem: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub stats: PaymeStats,
}
