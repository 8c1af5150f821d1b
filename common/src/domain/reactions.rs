//! The one place that reacts to a payment's status change. Whoever changes a
//! payment — a worker's job or the API settling inside a gateway's request —
//! builds the change through the store's `Changeset::change_payment`, which
//! asks here for the follow-up work and writes it in the same commit, so a
//! follow-up is never lost and never written for a change that did not land.

use super::job::{JobPayload, NewJob, RetryPolicies};
use super::notification::NotifyArgs;
use super::order::OrderChange;
use super::payment::PaymentChange;

/// The jobs a payment change calls for.
pub fn follow_ups(change: &PaymentChange, policies: &RetryPolicies) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    let Some(status) = change.new_status else {
        return jobs;
    };
    // A shop order follows its payment once the payment settles.
    if status.is_terminal() && change.order_id.is_some() {
        let job = NewJob::once_per_payment(JobPayload::UpdateOrder, change.id, policies);
        // The payment's first settlement (failed, cancelled) already used the
        // once-per-payment key; a late settlement needs its own update, or
        // the ledger would take it for a repeat and the order stay cancelled.
        jobs.push(if change.late_settlement {
            job.dedupe(format!("update_order:{}:late", change.id))
        } else {
            job
        });
    }
    // The merchant hears about it (an outbox: the job commits with the change).
    if let Some(args) = NotifyArgs::for_payment_change(change) {
        let key = args.dedupe_key(Some(change.id));
        jobs.push(NewJob::new(JobPayload::Notify(args), Some(change.id), policies).dedupe(key));
    }
    jobs
}

/// The jobs an order's move calls for: the merchant's notification. Written
/// by `Changeset::order_status` in the same write as the move.
pub fn order_follow_ups(change: &OrderChange, policies: &RetryPolicies) -> Vec<NewJob> {
    NotifyArgs::for_order_change(change)
        .map(|args| {
            let key = args.dedupe_key(None);
            NewJob::new(JobPayload::Notify(args), None, policies).dedupe(key)
        })
        .into_iter()
        .collect()
}
