//! One payment attempt as Click runs it: Prepare, the debit, Complete
//! (gateways.md §4.1–4.3), with the configured duplicates and delays.

use super::store::{LACK_OF_MONEY, STATUS_MERCHANT_REFUSED, STATUS_PROCESSING, STATUS_SUCCESSFUL};
use super::wire::{self, Call, Reply};
use super::Click;
use std::time::Duration;

/// Whether the payer's card has the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Funds {
    Enough,
    Insufficient,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Outcome {
    /// Complete answered 0.
    Paid,
    /// The debit failed; Complete carried -5017 (the merchant's answer is in `note`).
    Declined { answer: Option<i64> },
    /// Prepare was refused (no Complete follows).
    PrepareRefused { error: i64, note: String },
    /// The money was taken but Complete was refused: the payment hangs for
    /// Click's support, as the docs warn.
    CompleteRefused { error: i64, note: String },
    /// No usable answer from the merchant.
    Unreachable(String),
    /// No `prepare_url` configured.
    NoMerchant,
}

/// Sends `call` once, then `duplicate_calls` identical times, counting
/// duplicates whose answer `expected_repeat` does not accept.
async fn deliver(
    click: &Click,
    url: &str,
    call: &Call,
    expected_repeat: impl Fn(&Reply, &Reply) -> bool,
) -> Result<Reply, String> {
    let cfg = click.config();
    let form = call.form(&call.sign(&cfg.secret_key));
    let timeout = Duration::from_millis(cfg.call_timeout_ms);
    if cfg.call_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.call_delay_ms)).await;
    }
    let first = wire::send(click.http(), url, &form, timeout).await;
    {
        let mut store = click.store();
        if call.action == "0" {
            store.stats.prepares_sent += 1;
        } else {
            store.stats.completes_sent += 1;
        }
        if first.is_err() {
            store.stats.merchant_failures += 1;
        }
    }
    for _ in 0..cfg.duplicate_calls {
        let again = wire::send(click.http(), url, &form, timeout).await;
        let mut store = click.store();
        store.stats.duplicates_sent += 1;
        let fine = match (&first, &again) {
            (Ok(f), Ok(a)) => expected_repeat(f, a),
            _ => false,
        };
        if !fine {
            store.stats.duplicate_answers_wrong += 1;
        }
    }
    first
}

/// Runs one attempt for order `merchant_trans_id` of `amount_tiyin`.
pub(super) async fn run(
    click: &Click,
    merchant_trans_id: &str,
    amount_tiyin: u64,
    funds: Funds,
) -> Outcome {
    let cfg = click.config();
    let (Some(prepare_url), Some(complete_url)) = (
        cfg.prepare_url.clone(),
        cfg.complete_target().map(str::to_owned),
    ) else {
        return Outcome::NoMerchant;
    };
    let (trans_id, paydoc_id) = click.store().begin(merchant_trans_id, amount_tiyin);
    let refused = |click: &Click| click.store().set_status(paydoc_id, STATUS_MERCHANT_REFUSED);
    let prepare = Call {
        click_trans_id: trans_id.to_string(),
        service_id: cfg.service_id.clone(),
        click_paydoc_id: paydoc_id.to_string(),
        merchant_trans_id: merchant_trans_id.to_owned(),
        merchant_prepare_id: None,
        amount: cfg.amount_format.text(amount_tiyin),
        action: "0".into(),
        error: "0".into(),
        error_note: "Success".into(),
        sign_time: wire::sign_time_now(),
    };
    // A repeated Prepare must get the same answer, id included.
    let prepared = deliver(click, &prepare_url, &prepare, |f, a| {
        f.essence() == a.essence()
    })
    .await;
    let prepare_id = match prepared {
        Err(e) => {
            refused(click);
            return Outcome::Unreachable(e);
        }
        Ok(r) if r.error != 0 => {
            refused(click);
            return Outcome::PrepareRefused {
                error: r.error,
                note: r.error_note,
            };
        }
        Ok(r) => match r.merchant_prepare_id {
            Some(id) => id,
            None => {
                refused(click);
                return Outcome::PrepareRefused {
                    error: 0,
                    note: "the answer has no merchant_prepare_id".into(),
                };
            }
        },
    };
    click.store().set_status(paydoc_id, STATUS_PROCESSING);
    let (error, note) = match funds {
        Funds::Enough => ("0", "Success"),
        Funds::Insufficient => ("-5017", "Insufficient funds"),
    };
    let complete = Call {
        merchant_prepare_id: Some(prepare_id),
        action: "1".into(),
        error: error.into(),
        error_note: note.into(),
        sign_time: wire::sign_time_now(),
        ..prepare
    };
    // A repeat of a successful Complete is -4; of a cancelling one, -9.
    let completed = deliver(click, &complete_url, &complete, |f, a| match f.error {
        0 => a.error == -4,
        _ => a.error == -9,
    })
    .await;
    let mut store = click.store();
    match (funds, completed) {
        (Funds::Insufficient, answer) => {
            store.set_status(paydoc_id, LACK_OF_MONEY);
            store.stats.payments_declined += 1;
            Outcome::Declined {
                answer: answer.ok().map(|r| r.error),
            }
        }
        (Funds::Enough, Ok(r)) if r.error == 0 => {
            store.set_status(paydoc_id, STATUS_SUCCESSFUL);
            store.stats.payments_successful += 1;
            Outcome::Paid
        }
        (Funds::Enough, Ok(r)) => {
            store.set_status(paydoc_id, STATUS_MERCHANT_REFUSED);
            Outcome::CompleteRefused {
                error: r.error,
                note: r.error_note,
            }
        }
        (Funds::Enough, Err(e)) => {
            // Click would retry later; the simulator leaves it processing.
            Outcome::Unreachable(e)
        }
    }
}
