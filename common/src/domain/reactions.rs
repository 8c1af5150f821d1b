//! The one place that reacts to a payment's status change. Whoever changes a
//! payment — a worker's job or the API settling inside a gateway's request —
//! builds the change through the store's `Changeset::change_payment`, which
//! asks here for the follow-up work and writes it in the same commit, so a
//! follow-up is never lost and never written for a change that did not land.

use super::job::{JobPayload, NewJob, RetryPolicies};
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
    jobs
}
