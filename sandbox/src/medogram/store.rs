//! Invoices, counters and registered users of the medogram simulator.
//!
//! Everything here is synchronous and runs under one mutex, so each protocol
//! step is atomic: two concurrent "pay" clicks cannot mint two trans_ids.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Counters exposed at `GET /sandbox/medogram/_stats`. Calls rejected by
/// fault injection only count in `injected_errors_total`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MedogramStats {
    /// gateway-send calls, valid or not.
    pub sends_total: u64,
    /// Invoices actually created (a deduplicated repeat send creates none).
    pub invoices_created: u64,
    /// gateway-send calls per `factorId` (calls without one are not listed).
    pub sends_by_factor: BTreeMap<String, u64>,
    pub invoices_by_factor: BTreeMap<String, u64>,
    /// gateway-result-second calls, whatever their answer.
    pub verifies_total: u64,
    /// Status-1 answers per trans_id; more than one means a double credit
    /// would have happened at the real gateway's merchant.
    pub verifies_by_trans: BTreeMap<String, u64>,
    /// Status-11 ("already verified") answers.
    pub already_verified_total: u64,
    pub paid_total: u64,
    pub cancelled_total: u64,
    pub injected_errors_total: u64,
    pub user_fetches_total: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InvoiceState {
    Pending,
    Paid,
    Cancelled,
}

#[derive(Debug, Clone)]
pub(crate) struct Invoice {
    pub id_get: u64,
    pub amount: u64,
    pub redirect: String,
    /// Empty when the merchant sent none.
    pub factor_id: String,
    pub name: String,
    pub email: String,
    pub description: String,
    pub state: InvoiceState,
    pub trans_id: Option<u64>,
    verified: bool,
}

pub(crate) struct NewInvoice {
    pub amount: u64,
    pub redirect: String,
    pub factor_id: String,
    pub name: String,
    pub email: String,
    pub description: String,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Decision {
    Pay,
    Cancel,
}

/// What the browser carries back to the merchant.
#[derive(Debug, Clone)]
pub(crate) struct BrowserReturn {
    pub redirect: String,
    pub trans_id: String,
    pub id_get: String,
    pub factor_id: String,
}

impl BrowserReturn {
    pub(crate) fn fields(&self) -> [(&'static str, &str); 3] {
        [
            ("trans_id", &self.trans_id),
            ("id_get", &self.id_get),
            ("factorId", &self.factor_id),
        ]
    }
}

/// A successful verification: `status` is 1 the first time, 11 after.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    pub status: i64,
    pub amount: u64,
    pub card_num: String,
    pub factor_id: String,
}

#[derive(Default)]
pub(crate) struct Store {
    invoices: HashMap<u64, Invoice>,
    /// (factorId, amount) → id_get, for `send_dedupe_by_factor`.
    by_factor: HashMap<(String, u64), u64>,
    trans_ids: HashSet<u64>,
    /// Users registered through `PUT /api/users/{id}/`.
    pub users: HashMap<String, Map<String, Value>>,
    pub stats: MedogramStats,
}

impl Store {
    pub(crate) fn record_send(&mut self, factor_id: &str) {
        self.stats.sends_total += 1;
        if !factor_id.is_empty() {
            *self
                .stats
                .sends_by_factor
                .entry(factor_id.to_owned())
                .or_default() += 1;
        }
    }

    /// Returns the invoice's id_get and whether it is new.
    pub(crate) fn create_invoice(&mut self, new: NewInvoice, dedupe: bool) -> (u64, bool) {
        let key = (new.factor_id.clone(), new.amount);
        if dedupe && !new.factor_id.is_empty() {
            if let Some(&existing) = self.by_factor.get(&key) {
                return (existing, false);
            }
        }
        // Unique in this process's memory only, and paygate's database keeps
        // every id_get it was ever given (unique per provider). A restarted
        // simulator in front of the same database drew ids below 10^8 and
        // hit an old one about once in 1 200 invoices with 85 000 stored (the
        // embedded bench's seed route: a `202` after the full wait,
        // PERFORMANCE.md "The embedded seed route's `202`s"); below 10^12 it
        // is about once in 10^7 for the same database.
        let id_get = loop {
            let candidate = rand::random_range(1_000_000..1_000_000_000_000u64);
            if !self.invoices.contains_key(&candidate) {
                break candidate;
            }
        };
        if !new.factor_id.is_empty() {
            *self
                .stats
                .invoices_by_factor
                .entry(new.factor_id.clone())
                .or_default() += 1;
            self.by_factor.entry(key).or_insert(id_get);
        }
        self.stats.invoices_created += 1;
        self.invoices.insert(
            id_get,
            Invoice {
                id_get,
                amount: new.amount,
                redirect: new.redirect,
                factor_id: new.factor_id,
                name: new.name,
                email: new.email,
                description: new.description,
                state: InvoiceState::Pending,
                trans_id: None,
                verified: false,
            },
        );
        (id_get, true)
    }

    pub(crate) fn invoice(&self, id_get: u64) -> Option<&Invoice> {
        self.invoices.get(&id_get)
    }

    /// Applies the payer's decision. A settled invoice keeps its outcome and
    /// trans_id, so a reloaded or double-clicked form just returns again.
    pub(crate) fn settle(&mut self, id_get: u64, decision: Decision) -> Option<BrowserReturn> {
        let fresh_trans_id = self.new_trans_id();
        let invoice = self.invoices.get_mut(&id_get)?;
        if invoice.state == InvoiceState::Pending {
            invoice.trans_id = Some(fresh_trans_id);
            self.trans_ids.insert(fresh_trans_id);
            match decision {
                Decision::Pay => {
                    invoice.state = InvoiceState::Paid;
                    self.stats.paid_total += 1;
                }
                Decision::Cancel => {
                    invoice.state = InvoiceState::Cancelled;
                    self.stats.cancelled_total += 1;
                }
            }
        }
        Some(BrowserReturn {
            redirect: invoice.redirect.clone(),
            trans_id: invoice.trans_id.unwrap_or(fresh_trans_id).to_string(),
            id_get: id_get.to_string(),
            factor_id: invoice.factor_id.clone(),
        })
    }

    /// `None` means -4: unknown pair, or the payment did not succeed.
    pub(crate) fn verify(&mut self, trans_id: u64, id_get: u64) -> Option<Verified> {
        let invoice = self.invoices.get_mut(&id_get)?;
        if invoice.state != InvoiceState::Paid || invoice.trans_id != Some(trans_id) {
            return None;
        }
        let status = if invoice.verified {
            self.stats.already_verified_total += 1;
            11
        } else {
            invoice.verified = true;
            *self
                .stats
                .verifies_by_trans
                .entry(trans_id.to_string())
                .or_default() += 1;
            1
        };
        Some(Verified {
            status,
            amount: invoice.amount,
            card_num: format!("603799******{:04}", trans_id % 10_000),
            factor_id: invoice.factor_id.clone(),
        })
    }

    /// 8–10 digits, never reused, so a trans_id identifies one invoice.
    fn new_trans_id(&self) -> u64 {
        loop {
            let candidate = rand::random_range(10_000_000..10_000_000_000u64);
            if !self.trans_ids.contains(&candidate) {
                return candidate;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(factor: &str, amount: u64) -> NewInvoice {
        NewInvoice {
            amount,
            redirect: "https://m.example/r".into(),
            factor_id: factor.into(),
            name: String::new(),
            email: String::new(),
            description: String::new(),
        }
    }

    #[test]
    fn dedupe_only_same_factor_and_amount() {
        let mut s = Store::default();
        let (a, created) = s.create_invoice(new("f1", 1000), true);
        assert!(created);
        assert_eq!(s.create_invoice(new("f1", 1000), true), (a, false));
        assert_ne!(s.create_invoice(new("f1", 2000), true).0, a);
        assert_ne!(s.create_invoice(new("f1", 1000), false).0, a);
        assert_eq!(s.stats.invoices_created, 3);
        assert_eq!(s.stats.invoices_by_factor["f1"], 3);
    }

    #[test]
    fn settle_is_sticky() {
        let mut s = Store::default();
        let (id, _) = s.create_invoice(new("", 5000), true);
        let first = s.settle(id, Decision::Pay).unwrap();
        let again = s.settle(id, Decision::Cancel).unwrap();
        assert_eq!(first.trans_id, again.trans_id);
        assert_eq!(s.invoice(id).unwrap().state, InvoiceState::Paid);
        let t: u64 = first.trans_id.parse().unwrap();
        assert!((10_000_000..10_000_000_000).contains(&t));
        assert_eq!(s.verify(t, id).unwrap().status, 1);
        assert_eq!(s.verify(t, id).unwrap().status, 11);
        assert!(s.verify(t + 1, id).is_none());
    }
}
