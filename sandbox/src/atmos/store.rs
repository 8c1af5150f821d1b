//! Transactions, tokens and counters of the Atmos simulator. Synchronous;
//! each method runs under the one store mutex and is atomic.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Counters exposed at `GET /sandbox/atmos/_stats`. Calls rejected by fault
/// injection only count in `injected_errors_total`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AtmosStats {
    pub tokens_issued: u64,
    /// Successful /merchant/pay/create calls.
    pub creates_total: u64,
    pub creates_by_account: BTreeMap<String, u64>,
    /// Every callback POST, duplicates included.
    /// `callbacks_accepted + callbacks_refused + callback_errors == callbacks_sent`.
    pub callbacks_sent: u64,
    /// HTTP 200 with `status == 1`.
    pub callbacks_accepted: u64,
    /// HTTP 200 with any other `status`.
    pub callbacks_refused: u64,
    /// Transport failure, non-200 status or a non-JSON reply.
    pub callback_errors: u64,
    pub confirmed_total: u64,
    pub declined_total: u64,
    pub reversed_total: u64,
    pub gets_total: u64,
    pub injected_errors_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnStatus {
    Pending,
    Confirmed,
    Declined,
    Reversed,
}

impl TxnStatus {
    fn code(self) -> &'static str {
        match self {
            TxnStatus::Pending => "1",
            TxnStatus::Confirmed => "0",
            TxnStatus::Declined => "-1",
            TxnStatus::Reversed => "-20",
        }
    }

    fn message(self) -> &'static str {
        match self {
            TxnStatus::Pending => "Pending",
            TxnStatus::Confirmed => "Success",
            TxnStatus::Declined => "Declined",
            TxnStatus::Reversed => "Canceled",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Txn {
    pub trans_id: u64,
    pub account: String,
    /// Tiyin.
    pub amount: u64,
    pub terminal_id: Option<String>,
    pub details: Option<String>,
    pub status: TxnStatus,
    pub success_trans_id: Option<u64>,
    pub card_id: Option<String>,
    pub create_time_ms: i64,
    pub confirm_time_ms: Option<i64>,
    /// A payment (callback round trip) is under way.
    pub paying: bool,
}

impl Txn {
    /// The `store_transaction` object as the API shows it.
    pub(crate) fn to_json(&self) -> Value {
        let mut t = Map::new();
        t.insert("trans_id".into(), json!(self.trans_id));
        if let Some(id) = self.success_trans_id {
            t.insert("success_trans_id".into(), json!(id));
        }
        t.insert("account".into(), json!(self.account));
        t.insert("amount".into(), json!(self.amount));
        t.insert("total".into(), json!(self.amount));
        t.insert("terminal_id".into(), json!(self.terminal_id));
        t.insert("details".into(), json!(self.details));
        t.insert(
            "confirmed".into(),
            json!(matches!(
                self.status,
                TxnStatus::Confirmed | TxnStatus::Reversed
            )),
        );
        t.insert("prepay_time".into(), json!(self.create_time_ms));
        t.insert("confirm_time".into(), json!(self.confirm_time_ms));
        t.insert("status_code".into(), json!(self.status.code()));
        t.insert("status_message".into(), json!(self.status.message()));
        t.insert("card_id".into(), json!(self.card_id));
        Value::Object(t)
    }
}

pub(crate) struct NewTxn {
    pub account: String,
    pub amount: u64,
    pub terminal_id: Option<String>,
    pub details: Option<String>,
}

/// Why a payment cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotPayable {
    NotFound,
    InProgress,
    Settled(TxnStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReverseError {
    NotFound,
    NotConfirmed,
    Closed,
}

pub(crate) struct Store {
    txns: HashMap<u64, Txn>,
    by_success_id: HashMap<u64, u64>,
    next_trans_id: u64,
    next_success_id: u64,
    /// access_token → expiry.
    pub tokens: HashMap<String, Instant>,
    pub stats: AtmosStats,
    /// Transactions a card was attached to by `/merchant/pay/pre-apply`
    /// (the OTP was "sent"), waiting for `/merchant/pay/apply`.
    pub pre_applied: std::collections::HashSet<u64>,
}

impl Default for Store {
    fn default() -> Self {
        // Random starts so ids from two sandbox runs rarely collide in a
        // merchant database; disjoint ranges (8 vs 10 digits) so a reverse
        // request's `transaction_id` can unambiguously be either kind of id.
        Self {
            txns: HashMap::new(),
            by_success_id: HashMap::new(),
            next_trans_id: rand::random_range(10_000_000..50_000_000),
            next_success_id: rand::random_range(5_000_000_000..6_000_000_000),
            tokens: HashMap::new(),
            stats: AtmosStats::default(),
            pre_applied: std::collections::HashSet::new(),
        }
    }
}

impl Store {
    pub(crate) fn create(&mut self, new: NewTxn, now_ms: i64) -> Txn {
        let trans_id = self.next_trans_id;
        self.next_trans_id += 1;
        self.stats.creates_total += 1;
        *self
            .stats
            .creates_by_account
            .entry(new.account.clone())
            .or_default() += 1;
        let txn = Txn {
            trans_id,
            account: new.account,
            amount: new.amount,
            terminal_id: new.terminal_id,
            details: new.details,
            status: TxnStatus::Pending,
            success_trans_id: None,
            card_id: None,
            create_time_ms: now_ms,
            confirm_time_ms: None,
            paying: false,
        };
        self.txns.insert(trans_id, txn.clone());
        txn
    }

    pub(crate) fn get(&self, trans_id: u64) -> Option<&Txn> {
        self.txns.get(&trans_id)
    }

    /// Marks a pending transaction as being paid, so a second click cannot
    /// start a second callback round trip.
    pub(crate) fn begin_payment(&mut self, trans_id: u64) -> Result<Txn, NotPayable> {
        let txn = self.txns.get_mut(&trans_id).ok_or(NotPayable::NotFound)?;
        match (txn.status, txn.paying) {
            (TxnStatus::Pending, true) => Err(NotPayable::InProgress),
            (TxnStatus::Pending, false) => {
                txn.paying = true;
                Ok(txn.clone())
            }
            (status, _) => Err(NotPayable::Settled(status)),
        }
    }

    pub(crate) fn finish_payment(&mut self, trans_id: u64, confirmed: bool, now_ms: i64) {
        let success_id = self.next_success_id;
        let Some(txn) = self.txns.get_mut(&trans_id) else {
            return; // reset meanwhile
        };
        txn.paying = false;
        if txn.status != TxnStatus::Pending {
            return;
        }
        // Atmos's test cards are Uzcard 8600…; the last digits follow the
        // processing id so different payments show different cards.
        txn.card_id = Some(format!("860049******{:04}", success_id % 10_000));
        if confirmed {
            self.next_success_id += 1;
            txn.status = TxnStatus::Confirmed;
            txn.success_trans_id = Some(success_id);
            txn.confirm_time_ms = Some(now_ms);
            self.by_success_id.insert(success_id, trans_id);
            self.stats.confirmed_total += 1;
        } else {
            txn.status = TxnStatus::Declined;
            self.stats.declined_total += 1;
        }
    }

    /// The payer pressed "Decline". Returns the resulting status.
    pub(crate) fn decline(&mut self, trans_id: u64) -> Option<TxnStatus> {
        let txn = self.txns.get_mut(&trans_id)?;
        if txn.status == TxnStatus::Pending && !txn.paying {
            txn.status = TxnStatus::Declined;
            self.stats.declined_total += 1;
        }
        Some(txn.status)
    }

    /// Finds the transaction a reverse request means: by `success_trans_id`,
    /// or by a `transaction_id` that is either a processing id (variant a)
    /// or an Atmos transaction id (variant c).
    pub(crate) fn find_for_reverse(
        &self,
        success_trans_id: Option<u64>,
        transaction_id: Option<u64>,
    ) -> Option<u64> {
        if let Some(s) = success_trans_id {
            return self.by_success_id.get(&s).copied();
        }
        let id = transaction_id?;
        self.by_success_id
            .get(&id)
            .copied()
            .or_else(|| self.txns.contains_key(&id).then_some(id))
    }

    pub(crate) fn reverse(&mut self, trans_id: u64) -> Result<Txn, ReverseError> {
        let txn = self.txns.get_mut(&trans_id).ok_or(ReverseError::NotFound)?;
        match txn.status {
            TxnStatus::Confirmed => {
                txn.status = TxnStatus::Reversed;
                self.stats.reversed_total += 1;
                Ok(txn.clone())
            }
            TxnStatus::Pending => Err(ReverseError::NotConfirmed),
            TxnStatus::Declined | TxnStatus::Reversed => Err(ReverseError::Closed),
        }
    }

    /// Forgets transactions and counters but keeps issued tokens, so a
    /// running client's cached token survives a test's reset.
    pub(crate) fn reset(&mut self) {
        let tokens = std::mem::take(&mut self.tokens);
        *self = Store::default();
        self.tokens = tokens;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(store: &mut Store) -> u64 {
        store
            .create(
                NewTxn {
                    account: "197".into(),
                    amount: 5_000_000,
                    terminal_id: None,
                    details: None,
                },
                0,
            )
            .trans_id
    }

    #[test]
    fn payment_lifecycle() {
        let mut s = Store::default();
        let id = txn(&mut s);
        assert!(s.begin_payment(id).is_ok());
        assert_eq!(s.begin_payment(id).unwrap_err(), NotPayable::InProgress);
        assert_eq!(s.decline(id), Some(TxnStatus::Pending));
        s.finish_payment(id, true, 1);
        let success = s.get(id).unwrap().success_trans_id.unwrap();
        assert_eq!(s.find_for_reverse(Some(success), None), Some(id));
        assert_eq!(s.find_for_reverse(None, Some(success)), Some(id));
        assert_eq!(s.find_for_reverse(None, Some(id)), Some(id));
        assert!(s.reverse(id).is_ok());
        assert_eq!(s.reverse(id).unwrap_err(), ReverseError::Closed);
        assert_eq!(s.get(id).unwrap().to_json()["status_code"], "-20");
    }

    #[test]
    fn pending_cannot_be_reversed() {
        let mut s = Store::default();
        let id = txn(&mut s);
        assert_eq!(s.reverse(id).unwrap_err(), ReverseError::NotConfirmed);
    }
}
