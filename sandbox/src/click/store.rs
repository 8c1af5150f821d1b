//! The simulator's memory: Click payments (one per pay attempt) and counters.

use serde::Serialize;
use std::collections::HashMap;

/// `payment_status` values the Merchant API reports (docs: <0 error,
/// 0 created, 1 processing, 2 successful).
pub(super) const STATUS_CREATED: i64 = 0;
pub(super) const STATUS_PROCESSING: i64 = 1;
pub(super) const STATUS_SUCCESSFUL: i64 = 2;
/// Click names no status for a reversed payment; the simulator reports this
/// one (the invoice API's "deleted").
pub(super) const STATUS_REVERSED: i64 = -99;
/// The merchant refused or failed: the attempt is abandoned.
pub(super) const STATUS_MERCHANT_REFUSED: i64 = -1;
/// Click's own code for a failed debit.
pub(super) const LACK_OF_MONEY: i64 = -5017;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Payment {
    pub click_trans_id: u64,
    pub merchant_trans_id: String,
    pub amount_tiyin: u64,
    pub status: i64,
}

/// Counters (`GET /sandbox/click/_stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClickStats {
    pub prepares_sent: u64,
    pub completes_sent: u64,
    /// Extra identical sends (`duplicate_calls`).
    pub duplicates_sent: u64,
    /// Duplicates whose answer was not what stored state implies (a repeated
    /// Prepare answered differently, a repeated Complete not -4 / -9).
    pub duplicate_answers_wrong: u64,
    /// Calls that got no usable answer (HTTP error, not JSON, timeout).
    pub merchant_failures: u64,
    pub payments_successful: u64,
    pub payments_declined: u64,
    pub status_queries: u64,
    pub reversals: u64,
    pub auth_failures: u64,
}

pub(super) struct Store {
    /// Ids start from the clock, so a restarted simulator never repeats a
    /// `click_trans_id` a merchant's database already holds.
    next_id: u64,
    pub payments: HashMap<u64, Payment>,
    pub stats: ClickStats,
}

impl Default for Store {
    fn default() -> Self {
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
        Store {
            // ~1.7e15 today: unique across restarts (under 1000 attempts per
            // millisecond) and still below 2^53 for JavaScript merchants.
            next_id: now_ms.saturating_mul(1000),
            payments: HashMap::new(),
            stats: ClickStats::default(),
        }
    }
}

impl Store {
    /// A new attempt: (click_trans_id, click_paydoc_id), with the payment created.
    pub fn begin(&mut self, merchant_trans_id: &str, amount_tiyin: u64) -> (u64, u64) {
        self.next_id += 2;
        let (trans_id, paydoc_id) = (self.next_id - 1, self.next_id);
        self.payments.insert(
            paydoc_id,
            Payment {
                click_trans_id: trans_id,
                merchant_trans_id: merchant_trans_id.to_owned(),
                amount_tiyin,
                status: STATUS_CREATED,
            },
        );
        (trans_id, paydoc_id)
    }

    pub fn set_status(&mut self, paydoc_id: u64, status: i64) {
        if let Some(p) = self.payments.get_mut(&paydoc_id) {
            p.status = status;
        }
    }

    pub fn reset(&mut self) {
        self.payments.clear();
        self.stats = ClickStats::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_and_distinct() {
        let mut s = Store::default();
        let (t1, p1) = s.begin("1", 100);
        let (t2, p2) = s.begin("1", 100);
        assert!(t1 != p1 && t2 > p1 && p2 > t2);
        assert!(p2 < (1u64 << 53));
        assert_eq!(s.payments[&p1].status, STATUS_CREATED);
        s.set_status(p1, STATUS_SUCCESSFUL);
        assert_eq!(s.payments[&p1].status, STATUS_SUCCESSFUL);
        s.reset();
        assert!(s.payments.is_empty());
        let (t3, _) = s.begin("1", 100);
        assert!(t3 > p2, "reset never reuses ids");
    }
}
